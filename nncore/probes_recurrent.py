"""Statistics through time of a recurrent network, from its cells' caches after one forward and
backward pass (``RNN.probe`` runs it).

Every statistic is an array of shape (K, T): stacked layer k = 1..K at row k-1, time step
t = 1..T at column t-1 (the time axis is the last one; t = T is the step the readout sees).
Definitions, for layer k at step t, over the batch's B examples and the layer's H units:

  delta_ms      mean of (d loss_n / d h_t)^2, the per-example total error on the hidden state
                (through the layer above and through time); with L the batch mean this is
                mean((B dL/dh_t)^2), independent of B, as the MLP's ``delta_ms``
  act_mean, act_var      mean and variance of h_t
  grad_norm     ||h_(t-1)^T da_t||_F: step t's term of dL/dW_hh = sum_t h_(t-1)^T da_t (da_t the
                error on the recurrent pre-activations, L the batch mean); 0 at t = 1 (h_0 = 0)
  saturation    rnn: fraction of (example, unit) pairs with phi'(a_t) < 0.1 max phi';
                lstm, gru: the same over every gate unit, each gate against its own nonlinearity's
                maximum slope (sigmoid 1/4, tanh 1), from the gates' cached values
  dead_frac     the units (of phi, or gate units) whose slope is below that threshold for every
                example of the batch at step t, as a fraction of all of them
  preact_mean, preact_var   rnn only: of the pre-activation a_t
  forget_mean   lstm only: mean forget gate f_t
  cell_rms      lstm only: sqrt(mean(c_t^2)), the cell state's RMS
  update_mean   gru only: mean update gate z_t

Which statistics a cell has is ``STATS[cell]``. Everything is accumulated in float64.

Writing them to ``layer_stats.parquet`` (long format step, layer, stat, value): the pair
(k, t) is one integer ``layer`` = ``time_layer(k, t)`` = k * TIME_BASE + t (layer 2 at step 37
is 200037), read back by ``layer_and_time``; T must be below TIME_BASE.
"""
import numpy as np

from . import probes
from .activations import Sigmoid
from .probes import SATURATION_THRESHOLD

COMMON = ("delta_ms", "act_mean", "act_var", "grad_norm", "saturation", "dead_frac")
STATS = {"rnn": COMMON + ("preact_mean", "preact_var"),
         "lstm": COMMON + ("forget_mean", "cell_rms"),
         "gru": COMMON + ("update_mean",)}
TIME_BASE = 100_000
SIGMOID_MAX_SLOPE = Sigmoid.max_derivative


def time_layer(k, t):
    """The integer that stands for (layer k, step t) in a ``layer`` column: k * TIME_BASE + t."""
    k, t = np.asarray(k), np.asarray(t)
    if np.any(t < 1) or np.any(t >= TIME_BASE) or np.any(k < 1):
        raise ValueError(f"layer k must be >= 1 and step t in [1, {TIME_BASE}), got k={k}, t={t}")
    return k * TIME_BASE + t


def time_layers(K, T):
    """The codes of a (K, T) array's entries in row-major order (as ``ravel``): layer 1's steps
    1..T, then layer 2's, ..."""
    return time_layer(np.repeat(np.arange(1, K + 1), T), np.tile(np.arange(1, T + 1), K))


def layer_and_time(code):
    """(k, t) from ``time_layer``'s integer (arrays work elementwise)."""
    return np.divmod(code, TIME_BASE)


def _f64(a):
    return a if a.dtype == np.float64 else a.astype(np.float64)


def _mean_var(a):
    """Per step (axis 0) mean and variance over the other axes, two-pass."""
    a = _f64(a).reshape(a.shape[0], -1)
    mean = a.mean(axis=1)
    dev = a - mean[:, None]
    return mean, np.einsum("ij,ij->i", dev, dev) / a.shape[1]


def _mean_square(a):
    a = _f64(a).reshape(a.shape[0], -1)
    return np.einsum("ij,ij->i", a, a) / a.shape[1]


def delta_ms(dh):
    """Per step: mean of (B dL/dh_t)^2 from the total dL/dh of shape (T, B, H)."""
    return _mean_square(dh) * (dh.shape[1] * dh.shape[1])


# Steps per block of step_grad_norms: its (G, steps, H, H) products stay within this many bytes (an
# LSTM at H = 256, T = 100 made 210 MB at once).
STEP_BLOCK_BYTES = 16 * 2**20


def step_grad_norms(h_prev, da_hh):
    """Per step: ||h_(t-1)^T da_t||_F, from h_0..h_(T-1) (T, B, H) and the recurrent side's
    pre-activation errors gate by gate, (G, T, B, H)."""
    h_prev, da_hh = _f64(h_prev).transpose(0, 2, 1), _f64(da_hh)
    G, T, _, H = da_hh.shape
    block = max(1, STEP_BLOCK_BYTES // (8 * G * h_prev.shape[1] * H))
    out = np.empty(T)
    for start in range(0, T, block):
        terms = np.matmul(h_prev[start:start + block], da_hh[:, start:start + block])  # (G, block, H, H)
        out[start:start + block] = np.einsum("gtij,gtij->t", terms, terms)
    return np.sqrt(out)


def _fraction_below(d, threshold, batch_axis=1):
    """Per step (axis 0 of ``d``, the other axes the batch's ``batch_axis`` and the units'): the
    fraction of entries below ``threshold``, and the fraction of units below it for every example."""
    below = d < threshold
    rest = tuple(range(1, below.ndim))
    units = below[0].size // below.shape[batch_axis]
    every = np.logical_and.reduce(below, axis=batch_axis)
    return (np.count_nonzero(below, axis=rest) / below[0].size,
            np.count_nonzero(every, axis=tuple(range(1, every.ndim))) / units)


def gate_saturation(cell, gates):
    """Per step: (saturation, dead_frac) of the gate units (every gate; slope below 0.1 of its
    nonlinearity's maximum: sigmoid' = s (1 - s) (max 1/4), tanh' = 1 - g^2 (max 1))."""
    tanh_gate = {"lstm": 2, "gru": 2}[cell.name]  # g (i, f, g, o) and n (r, z, n)
    slope = np.subtract(1.0, gates)
    slope *= gates
    np.multiply(gates[tanh_gate], gates[tanh_gate], out=slope[tanh_gate])
    np.subtract(1.0, slope[tanh_gate], out=slope[tanh_gate])
    slope[tanh_gate] *= SIGMOID_MAX_SLOPE  # every gate now against the sigmoid's maximum
    # a step-major view (T, G, B, H), no copy: the batch is axis 2, the units G x H
    return _fraction_below(slope.transpose(1, 0, 2, 3), SATURATION_THRESHOLD * SIGMOID_MAX_SLOPE, batch_axis=2)


def cell_stats(cell):
    """{stat: array over t = 1..T} of one cell's last forward and backward pass."""
    c = cell.cache
    h = c["h"]
    out = {"delta_ms": delta_ms(c["dh"]), "grad_norm": step_grad_norms(h[:-1], c["da_hh"])}
    out["act_mean"], out["act_var"] = _mean_var(h[1:])
    if cell.name == "rnn":
        phi = cell.phi
        slope = phi.derivative(c["a"], h[1:])
        out["saturation"], out["dead_frac"] = _fraction_below(slope, SATURATION_THRESHOLD * phi.max_derivative)
        out["preact_mean"], out["preact_var"] = _mean_var(c["a"])
        return out
    gates = c["gates"]
    out["saturation"], out["dead_frac"] = gate_saturation(cell, gates)
    if cell.name == "lstm":
        out["forget_mean"] = _f64(gates[1]).mean(axis=(1, 2))
        out["cell_rms"] = np.sqrt(_mean_square(c["c"][1:]))
    else:
        out["update_mean"] = _f64(gates[1]).mean(axis=(1, 2))
    return out


def step_stats(net):
    """{stat: array (K, T)} for ``net``'s last pass, the stats of ``STATS[net.cell]``."""
    per_layer = [cell_stats(cell) for cell in net.cells]
    return {name: np.stack([s[name] for s in per_layer]) for name in STATS[net.cell]}


def layer_histograms(net, bins=64):
    """{kind: [(counts, edges) for layers 1..K, then the readout]} of the last pass, as
    ``probes.layer_histograms``: ``act`` (h_t over every step; the readout's output), ``delta``
    (per-example B dL/dh_t over every step; B dL/dz of the readout) and ``weight_grad``
    (dL/dW_hh; the readout's dL/dW)."""
    probes.check_bins(bins)
    readout = net.readout
    z = readout.cache["z"]  # kept by the probe pass
    B = z.shape[0]
    return {
        "act": [probes.histogram(c.cache["h"][1:], bins) for c in net.cells] + [probes.histogram(z, bins)],
        "delta": [probes.histogram(c.cache["dh"] * B, bins) for c in net.cells]
        + [probes.histogram(readout.cache["dz"] * B, bins)],
        "weight_grad": [probes.histogram(c.grads["W_hh"], bins) for c in net.cells]
        + [probes.histogram(readout.grads["W"], bins)],
    }
