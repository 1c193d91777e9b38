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

Inside a cell, gate arrays are gate-major, (G, T, B, H): each gate's (B, H) block of a step is
contiguous, and NumPy's elementwise operations on contiguous blocks take a quarter of the time
they take on the gate columns of a (B, G H) row (measured: 0.8 us against 3.3 us for 32 x 64
doubles; a GRU layer's forward and backward at batch 32, T 100, H 64 went from 21.7 ms to
15.1 ms, an LSTM's from 19.9 ms to 18.7 ms, where exp and tanh dominate). W_ih and W_hh enter
as their gate blocks (G, n, H), one batched GEMM a step.

Cache after a forward (what the backward and the probes read), t = 1..T at index t-1 unless said:
  x       the input (T, B, n_in)
  h       h_0..h_T (T+1, B, H), h_0 = 0
  a       rnn: the pre-activations a_t (T, B, H)
  gates   lstm: [i, f, g, o] after their nonlinearities (4, T, B, H); gru: [r, z, n] (3, T, B, H)
  c, tc   lstm: c_0..c_T (T+1, B, H) and tanh(c_t) (T, B, H)
  hn      gru: W_hn h_(t-1) + b_hn (T, B, H), what r multiplies
after a backward also
  dh      the total dL/dh_t (T, B, H)
  da      dL/d(pre-activations) of the input side, (G, T, B, H); ``da_hh`` that of the recurrent
          side (the same array except for GRU's n gate, where it is r times the input side's)

Gradients: dL/dW_ih = sum_t x_t^T da_t and dL/dW_hh = sum_t h_(t-1)^T da_hh_t, one GEMM per gate
over all steps after the loop; step t's term h_(t-1)^T da_hh_t is what ``probes_recurrent`` reports.
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


def _blocks(W, gates):
    """(n, G H) -> (G, n, H): each gate's block, contiguous (a copy)."""
    n = W.shape[0]
    return np.ascontiguousarray(W.reshape(n, gates, -1).transpose(1, 0, 2))


def _unblock(blocks):
    """(G, n, H) -> (n, G H): the inverse of ``_blocks``."""
    G, n, H = blocks.shape
    return np.ascontiguousarray(blocks.transpose(1, 0, 2)).reshape(n, G * H)


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
        """x_t W_ih + ``biases`` (G H,) for every step, gate by gate: (G, T, B, H), one GEMM per gate."""
        T, B, n_in = x.shape
        G, H = self.gates, self.hidden
        a = np.matmul(x.reshape(T * B, n_in), _blocks(self.params["W_ih"], G)).reshape(G, T, B, H)
        a += biases.reshape(G, 1, 1, H)
        return a

    def _finish(self, x, dh, da, da_hh):
        """Gradients from the pre-activation errors of every step (G, T, B, H), and dL/dx."""
        T, B, n_in = x.shape
        G, H = self.gates, self.hidden
        flat = da.reshape(G, T * B, H)
        h_prev = self.cache["h"][1:-1].reshape((T - 1) * B, H)  # h_0 = 0 adds nothing
        b_ih = flat.sum(axis=1).reshape(G * H)
        self.grads = {"W_ih": _unblock(np.matmul(x.reshape(T * B, n_in).T, flat)),
                      "W_hh": _unblock(np.matmul(h_prev.T, da_hh[:, 1:].reshape(G, (T - 1) * B, H))),
                      "b_ih": b_ih,
                      "b_hh": b_ih.copy() if da_hh is da else da_hh.reshape(G, T * B, H).sum(axis=1).reshape(G * H)}
        self.cache.update(dh=dh, da=da, da_hh=da_hh)
        if not self.input_grad:
            return None
        W_ih_T = np.ascontiguousarray(_blocks(self.params["W_ih"], G).transpose(0, 2, 1))
        return np.add.reduce(np.matmul(flat, W_ih_T), axis=0).reshape(T, B, n_in)


class ElmanCell(Cell):
    """torch.nn.RNN: h_t = phi(x_t W_ih + b_ih + h_(t-1) W_hh + b_hh), phi an nncore activation."""
    name = "rnn"
    gates = 1

    def __init__(self, W_ih, W_hh, b_ih, b_hh, phi, input_grad=True):
        super().__init__(W_ih, W_hh, b_ih, b_hh, input_grad)
        self.phi = phi

    def forward(self, x, train=False):
        T, B, _ = x.shape
        a = self._input_side(x, self.params["b_ih"] + self.params["b_hh"])[0]
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
        W_hh_T, phi = np.ascontiguousarray(self.params["W_hh"].T), self.phi
        da = np.empty_like(a)
        for t in range(a.shape[0] - 1, -1, -1):
            if t < a.shape[0] - 1:
                dh[t] += da[t + 1] @ W_hh_T      # dL/dh_t through a_(t+1)
            da[t] = phi.backprop(dh[t], a[t], h[t + 1])
        da = da[None]
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
        h, tc, rec = np.empty_like(c), np.empty((T, B, H), gates.dtype), np.empty((4, B, H), gates.dtype)
        c[0] = h[0] = 0.0
        W_hh = _blocks(self.params["W_hh"], 4)
        with np.errstate(over="ignore"):
            for t in range(T):
                g = gates[:, t]
                if t:
                    g += np.matmul(h[t], W_hh, out=rec)
                _sigmoid(g[:2], g[:2])                                 # i, f
                np.tanh(g[2], out=g[2])                                 # g
                _sigmoid(g[3], g[3])                                    # o
                np.multiply(g[1], c[t], out=c[t + 1])                   # f c_(t-1)
                c[t + 1] += g[0] * g[2]                                 # + i g
                np.tanh(c[t + 1], out=tc[t])
                np.multiply(g[3], tc[t], out=h[t + 1])                  # o tanh(c_t)
        self.cache = {"x": x, "h": h, "gates": gates, "c": c, "tc": tc}
        return h[1:]

    def backward(self, dh):
        gates, c, tc = self.cache["gates"], self.cache["c"], self.cache["tc"]
        T = gates.shape[1]
        W_hh_T = np.ascontiguousarray(_blocks(self.params["W_hh"], 4).transpose(0, 2, 1))
        da = np.empty_like(gates)
        dc = np.zeros_like(dh[0])  # dL/dc_t through c_(t+1)
        back = np.empty_like(gates[:, 0])
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh[t] += np.add.reduce(np.matmul(da[:, t + 1], W_hh_T, out=back), axis=0)
            i, f, g, o = gates[:, t]
            d = da[:, t]
            # dL/dc_t = dc + dh o tanh'(c_t)
            dtc = dh[t] * o
            dtc *= 1.0 - tc[t] * tc[t]
            dc += dtc
            # pre-activation errors: sigma' = s (1 - s), tanh' = 1 - g^2
            np.multiply(dc, g, out=d[0])
            d[0] *= i * (1.0 - i)
            np.multiply(dc, c[t], out=d[1])
            d[1] *= f * (1.0 - f)
            np.multiply(dc, i, out=d[2])
            d[2] *= 1.0 - g * g
            np.multiply(dh[t], tc[t], out=d[3])
            d[3] *= o * (1.0 - o)
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
        hn, rec = np.empty((T, B, H), gates.dtype), np.empty((3, B, H), gates.dtype)
        h[0] = 0.0
        W_hh, b_hn = _blocks(self.params["W_hh"], 3), b_hh[2 * H:]
        with np.errstate(over="ignore"):
            for t in range(T):
                g = gates[:, t]
                if t:
                    np.matmul(h[t], W_hh, out=rec)
                    g[:2] += rec[:2]
                    np.add(rec[2], b_hn, out=hn[t])
                else:
                    hn[t] = b_hn
                r, z, n = g
                _sigmoid(g[:2], g[:2])
                n += r * hn[t]
                np.tanh(n, out=n)
                np.subtract(h[t], n, out=h[t + 1])                     # n + z (h_(t-1) - n)
                h[t + 1] *= z
                h[t + 1] += n
        self.cache = {"x": x, "h": h, "gates": gates, "hn": hn}
        return h[1:]

    def backward(self, dh):
        gates, h, hn = self.cache["gates"], self.cache["h"], self.cache["hn"]
        T = gates.shape[1]
        W_hh_T = np.ascontiguousarray(_blocks(self.params["W_hh"], 3).transpose(0, 2, 1))
        da, da_hh = np.empty_like(gates), np.empty_like(gates)
        back = np.empty_like(gates[:, 0])
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh[t] += np.add.reduce(np.matmul(da_hh[:, t + 1], W_hh_T, out=back), axis=0)
                dh[t] += dh[t + 1] * gates[1, t + 1]                    # through z h_t in h_(t+1)
            r, z, n = gates[:, t]
            d, dr = da[:, t], da_hh[:, t]
            np.subtract(1.0, z, out=d[2])                               # dL/dn = dh (1 - z)
            d[2] *= dh[t]
            d[2] *= 1.0 - n * n                                         # tanh'
            np.multiply(d[2], r, out=dr[2])                             # recurrent side of n: r da_n
            np.multiply(d[2], hn[t], out=d[0])                          # dL/dr
            d[0] *= r * (1.0 - r)
            np.subtract(h[t], n, out=d[1])                              # dL/dz = dh (h_(t-1) - n)
            d[1] *= dh[t]
            d[1] *= z * (1.0 - z)
            dr[:2] = d[:2]
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
