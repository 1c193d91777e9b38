"""Recurrent cells: each one's forward over time, and its backprop through time right under it.

Every cell runs a whole sequence and follows torch.nn.RNN, LSTM and GRU (one layer) exactly, in
this project's row-vector layout (the transpose of torch's weights, gates stacked in torch's order):

  params   W_ih (n_in, G H), W_hh (H, G H), b_ih (G H,), b_hh (G H,);  G = 1 (rnn), 4 (lstm), 3 (gru)
  zero initial states h_0 = 0 (and c_0 = 0), t = 1..T;  with a_t = x_t W_ih + b_ih + h_(t-1) W_hh + b_hh:

  rnn   h_t = phi(a_t)                                             (Elman; phi any nncore activation)
  lstm  [i, f, g, o] = [sigma, sigma, tanh, sigma](a_t)            (gate order i, f, g, o)
        c_t = f c_(t-1) + i g,   h_t = o tanh(c_t)
  gru   [r, z] = sigma(x_t W_i[rz] + b_i[rz] + h_(t-1) W_h[rz] + b_h[rz])  (gate order r, z, n)
        n = tanh(x_t W_in + b_in + r (h_(t-1) W_hn + b_hn)),   h_t = (1 - z) n + z h_(t-1)

Arrays are time-major inside a cell: ``forward(x)`` takes x of shape (T, B, n_in) and returns
h_1..h_T, shape (T, B, H) (a view of the cache; the network transposes from and to its
batch-first API). ``backward(dh)`` takes dh[t-1] = the part of dL/dh_t that comes from above
(the next layer, or the readout at t = T), adds the part that comes back through time, and so
turns ``dh`` into the *total* dL/dh_t (kept in ``cache["dh"]``); it fills ``grads`` (new arrays,
shaped like ``params``) and returns dL/dx, shape (T, B, n_in) (None for the first layer: nothing
uses it). It reads the forward's cache and never recomputes the forward.

Cache after a forward (what the backward and the probes read), t = 1..T at index t-1 unless said:
  x       the input (T, B, n_in)
  h       h_0..h_T (T+1, B, H), h_0 = 0
  a       rnn: the pre-activations a_t (T, B, H)
  gates   lstm: [i, f, g, o] after their nonlinearities (T, B, 4H); gru: [r, z, n] (T, B, 3H)
  c, tc   lstm: c_0..c_T (T+1, B, H) and tanh(c_t) (T, B, H)
  hn      gru: W_hn h_(t-1) + b_hn (T, B, H), what r multiplies
after a backward also
  dh      the total dL/dh_t (T, B, H)
  da      dL/d(pre-activations) of the input side, (T, B, G H); ``da_hh`` that of the recurrent
          side (the same array except for GRU's n gate, where it is r times the input side's)

Gradients: dL/dW_ih = sum_t x_t^T da_t and dL/dW_hh = sum_t h_(t-1)^T da_hh_t, each one GEMM over
all steps after the loop; step t's term h_(t-1)^T da_hh_t is what ``probes_recurrent`` reports.
Gate sigmoids are 1 / (1 + exp(-a)), as torch computes them (exp overflows to inf for a < -709
and gives the exact limit 0, so overflow warnings are silenced inside the loops).
"""
import numpy as np

from . import initializers
from .checks import number
from .layers import Layer


def _sigmoid(a, out):
    """out = 1 / (1 + exp(-a)) (``out`` may be ``a``)."""
    np.negative(a, out=out)
    np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


class Cell(Layer):
    """A recurrent layer over a whole sequence; see the module docstring."""
    name = "cell"
    gates = 1

    def __init__(self, W_ih, W_hh, b_ih, b_hh, input_grad=True):
        super().__init__()
        self.params = {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh}
        self.hidden = W_hh.shape[0]
        self.input_grad = input_grad

    def _input_side(self, x, biases):
        """x_t W_ih + ``biases`` for every step in one GEMM, (T, B, G H)."""
        T, B, n_in = x.shape
        a = np.matmul(x.reshape(T * B, n_in), self.params["W_ih"]).reshape(T, B, -1)
        a += biases
        return a

    def _finish(self, x, dh, da, da_hh):
        """Gradients from the pre-activation errors of every step, and dL/dx."""
        T, B, n_in = x.shape
        H = self.hidden
        flat, flat_hh = da.reshape(T * B, -1), da_hh.reshape(T * B, -1)
        h_prev = self.cache["h"][1:-1].reshape((T - 1) * B, H)  # h_0 = 0 adds nothing
        self.grads = {"W_ih": x.reshape(T * B, n_in).T @ flat,
                      "W_hh": h_prev.T @ flat_hh[B:],
                      "b_ih": flat.sum(axis=0),
                      "b_hh": flat_hh.sum(axis=0) if da_hh is not da else flat.sum(axis=0)}
        self.cache.update(dh=dh, da=da, da_hh=da_hh)
        if not self.input_grad:
            return None
        return (flat @ self.params["W_ih"].T).reshape(T, B, n_in)


class ElmanCell(Cell):
    """torch.nn.RNN: h_t = phi(x_t W_ih + b_ih + h_(t-1) W_hh + b_hh), phi an nncore activation."""
    name = "rnn"
    gates = 1

    def __init__(self, W_ih, W_hh, b_ih, b_hh, phi, input_grad=True):
        super().__init__(W_ih, W_hh, b_ih, b_hh, input_grad)
        self.phi = phi

    def forward(self, x, train=False):
        T, B, _ = x.shape
        a = self._input_side(x, self.params["b_ih"] + self.params["b_hh"])
        h = np.empty((T + 1, B, self.hidden), a.dtype)
        h[0] = 0.0
        W_hh, phi = self.params["W_hh"], self.phi
        for t in range(T):
            if t:
                a[t] += h[t] @ W_hh
            h[t + 1] = phi.forward(a[t])
        self.cache = {"x": x, "h": h, "a": a}
        return h[1:]

    def backward(self, dh):
        a, h = self.cache["a"], self.cache["h"]
        W_hh_T, phi = self.params["W_hh"].T, self.phi
        da = np.empty_like(a)
        for t in range(a.shape[0] - 1, -1, -1):
            if t < a.shape[0] - 1:
                dh[t] += da[t + 1] @ W_hh_T      # dL/dh_t through a_(t+1)
            da[t] = phi.backprop(dh[t], a[t], h[t + 1])
        return self._finish(self.cache["x"], dh, da, da)


class LSTMCell(Cell):
    """torch.nn.LSTM: gates i, f, g, o; c_t = f c_(t-1) + i g, h_t = o tanh(c_t)."""
    name = "lstm"
    gates = 4

    def forward(self, x, train=False):
        T, B, _ = x.shape
        H = self.hidden
        gates = self._input_side(x, self.params["b_ih"] + self.params["b_hh"])
        c = np.empty((T + 1, B, H), gates.dtype)
        h, tc = np.empty_like(c), np.empty((T, B, H), gates.dtype)
        c[0] = h[0] = 0.0
        W_hh = self.params["W_hh"]
        with np.errstate(over="ignore"):
            for t in range(T):
                g = gates[t]
                if t:
                    g += h[t] @ W_hh
                cand = np.tanh(g[:, 2 * H:3 * H])
                _sigmoid(g, g)
                g[:, 2 * H:3 * H] = cand
                np.multiply(g[:, H:2 * H], c[t], out=c[t + 1])           # f c_(t-1)
                cand *= g[:, :H]
                c[t + 1] += cand                                        # + i g
                np.tanh(c[t + 1], out=tc[t])
                np.multiply(g[:, 3 * H:], tc[t], out=h[t + 1])          # o tanh(c_t)
        self.cache = {"x": x, "h": h, "gates": gates, "c": c, "tc": tc}
        return h[1:]

    def backward(self, dh):
        gates, c, tc = self.cache["gates"], self.cache["c"], self.cache["tc"]
        T, B, _ = gates.shape
        H = self.hidden
        W_hh_T = self.params["W_hh"].T
        da = np.empty_like(gates)
        dc = np.zeros((B, H), gates.dtype)  # dL/dc_t through c_(t+1)
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh[t] += da[t + 1] @ W_hh_T
            g, d = gates[t], da[t]
            i, f, cand, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
            # dL/dc_t = dc + dh o tanh'(c_t)
            dtc = dh[t] * o
            dtc *= 1.0 - tc[t] * tc[t]
            dc += dtc
            # pre-activation errors: sigma' = s (1 - s), tanh' = 1 - g^2
            np.multiply(dc, cand, out=d[:, :H])
            d[:, :H] *= i * (1.0 - i)
            np.multiply(dc, c[t], out=d[:, H:2 * H])
            d[:, H:2 * H] *= f * (1.0 - f)
            np.multiply(dc, i, out=d[:, 2 * H:3 * H])
            d[:, 2 * H:3 * H] *= 1.0 - cand * cand
            np.multiply(dh[t], tc[t], out=d[:, 3 * H:])
            d[:, 3 * H:] *= o * (1.0 - o)
            dc *= f                                                     # dL/dc_(t-1) through c_t
        return self._finish(self.cache["x"], dh, da, da)


class GRUCell(Cell):
    """torch.nn.GRU: gates r, z, n; n = tanh(x W_in + b_in + r (h W_hn + b_hn)), h_t = (1-z) n + z h_(t-1)."""
    name = "gru"
    gates = 3

    def forward(self, x, train=False):
        T, B, _ = x.shape
        H = self.hidden
        b_hh = self.params["b_hh"]
        biases = self.params["b_ih"].copy()
        biases[:2 * H] += b_hh[:2 * H]  # b_hn stays inside r (...)
        gates = self._input_side(x, biases)
        h = np.empty((T + 1, B, H), gates.dtype)
        hn = np.empty((T, B, H), gates.dtype)
        h[0] = 0.0
        W_hh, b_hn = self.params["W_hh"], b_hh[2 * H:]
        with np.errstate(over="ignore"):
            for t in range(T):
                g = gates[t]
                if t:
                    rec = h[t] @ W_hh
                    g[:, :2 * H] += rec[:, :2 * H]
                    np.add(rec[:, 2 * H:], b_hn, out=hn[t])
                else:
                    hn[t] = b_hn
                rz = _sigmoid(g[:, :2 * H], g[:, :2 * H])
                n = g[:, 2 * H:]
                n += rz[:, :H] * hn[t]
                np.tanh(n, out=n)
                np.subtract(h[t], n, out=h[t + 1])                     # n + z (h_(t-1) - n)
                h[t + 1] *= rz[:, H:]
                h[t + 1] += n
        self.cache = {"x": x, "h": h, "gates": gates, "hn": hn}
        return h[1:]

    def backward(self, dh):
        gates, h, hn = self.cache["gates"], self.cache["h"], self.cache["hn"]
        T, B, _ = gates.shape
        H = self.hidden
        W_hh_T = self.params["W_hh"].T
        da, da_hh = np.empty_like(gates), np.empty_like(gates)
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh[t] += da_hh[t + 1] @ W_hh_T
                dh[t] += dh[t + 1] * gates[t + 1][:, H:2 * H]           # through z h_t in h_(t+1)
            g, d, dr = gates[t], da[t], da_hh[t]
            r, z, n = g[:, :H], g[:, H:2 * H], g[:, 2 * H:]
            dn = d[:, 2 * H:]
            np.subtract(1.0, z, out=dn)                                 # dL/dn = dh (1 - z)
            dn *= dh[t]
            dn *= 1.0 - n * n                                           # tanh'
            np.multiply(dn, r, out=dr[:, 2 * H:])                        # recurrent side of n: r da_n
            np.multiply(dn, hn[t], out=d[:, :H])                         # dL/dr
            d[:, :H] *= r * (1.0 - r)
            np.subtract(h[t], n, out=d[:, H:2 * H])                      # dL/dz = dh (h_(t-1) - n)
            d[:, H:2 * H] *= dh[t]
            d[:, H:2 * H] *= z * (1.0 - z)
            dr[:, :2 * H] = d[:, :2 * H]
        return self._finish(self.cache["x"], dh, da, da_hh)


REGISTRY = {cls.name: cls for cls in (ElmanCell, LSTMCell, GRUCell)}


# ------------------------------------------------------------------ initialization
# The schemes a recurrent network takes: torch's default, every nncore initializer (fan-in based,
# drawn gate block by gate block), and, for W_hh only, the identity (IRNN, Le et al. 2015).
PYTORCH_INIT = "pytorch"
RECURRENT_ONLY = ("identity",)


def init_names():
    """Valid ``init`` names (W_ih, the readout and, unless ``recurrent_init`` is given, W_hh)."""
    return (PYTORCH_INIT, *sorted(initializers.REGISTRY))


def recurrent_init_names():
    """Valid ``recurrent_init`` names (W_hh)."""
    return (*init_names(), *RECURRENT_ONLY)


def init_gate_weights(name, rng, fan_in, hidden, gates, dtype, params):
    """A (fan_in, gates * hidden) weight of a cell, drawn from ``rng``.

    pytorch   U(-1/sqrt(H), 1/sqrt(H)) for every entry, as torch.nn.RNN/LSTM/GRU (variance 1/(3H));
    identity  gain * I_H for each gate block (W_hh only; ``params`` may hold ``gain``, default 1);
    others    the nncore initializer of that name applied to each (fan_in, H) gate block, in gate
              order, with ``params`` (sigma_w, gain, value): fan-in based, so ``normal`` gives
              entries of variance sigma_w^2 / fan_in and ``orthogonal`` an orthogonal block times gain.
    """
    if name == PYTORCH_INIT:
        bound = 1.0 / np.sqrt(hidden)
        return rng.uniform(-bound, bound, size=(fan_in, gates * hidden)).astype(dtype, copy=False)
    if name == "identity":
        if fan_in != hidden:
            raise ValueError(f"identity init needs a square weight (W_hh), got fan_in {fan_in} and H {hidden}")
        gain = number("gain", params.get("gain", 1.0), low=0.0)
        return np.tile(gain * np.eye(hidden, dtype=dtype), (1, gates))
    blocks = [initializers.init_weights(name, rng, fan_in, hidden, dtype, **params) for _ in range(gates)]
    return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=dtype)
