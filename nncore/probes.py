"""Per-layer statistics, computed from the layers' caches after one forward/backward pass.

All statistics are arrays over layers l = 1..L (index l-1). Definitions:
  grad_norm       ||dL/dW_l||_F, L the batch-mean loss
  bias_grad_norm  ||dL/db_l||_2
  delta_ms        mean over batch and units of (d loss_n / d z_l)^2, the per-example
                  back-propagated error; equals mean((B dL/dz_l)^2), so it does not
                  depend on the batch size B
  preact_mean, preact_var   of z_l over batch and units
  act_mean, act_var         of a_l, the hidden layer's output (dropout off; with residual
                            connections a_(l-1) + residual_scale phi(u_l)); a_L = z_L, the logits
  saturation      fraction of (example, unit) pairs with phi'(u) < 0.1 max phi' (u_l = z_l, or
                  the normalized z_l with ``norm``; 0 for the output layer)
  dead_frac       fraction of units with phi'(u) < 0.1 max phi' for every example
  weight_norm     ||W_l||_F
  update_ratio    ||delta W_l||_F / ||W_l||_F over the last optimizer step (0 before any)
  unit_spread     how different the units of layer l are: max_j ||w_j - w_1|| / rms_j ||w_j||,
                  w_j = (W_l[:, j], b_l[j]) the incoming weights and bias of unit j; exactly 0
                  when all units are identical (the symmetry problem of constant init)

Each statistic is one small function over the list of per-layer arrays, layer by layer (stacking
them costs a copy and, at these sizes, page faults on the large temporaries). Every one
accumulates in float64 (float32 data is converted first: its squares overflow from 1.8e19 and
underflow below 1e-19, where the statistics of exploding and vanishing networks live).
"""
import math

import numpy as np

from .squares import sum_of_squares

STATS = ("grad_norm", "bias_grad_norm", "delta_ms", "preact_mean", "preact_var", "act_mean",
         "act_var", "saturation", "dead_frac", "weight_norm", "update_ratio", "unit_spread")
SATURATION_THRESHOLD = 0.1  # relative to max phi'


def _f64(a):
    """``a``'s entries as a flat float64 array (a view when they already are)."""
    return a.ravel() if a.dtype == np.float64 else a.astype(np.float64).ravel()


def mean_var(arrays):
    """(means, variances) of each array over all its entries, two-pass (no cancellation)."""
    means, variances = [], []
    for a in arrays:
        flat = _f64(a)
        mean = np.add.reduce(flat) / flat.size
        means.append(mean)
        variances.append(sum_of_squares(flat - mean) / flat.size)
    return np.array(means), np.array(variances)


def sum_squares(arrays):
    """Sum of the squares of each array's entries."""
    return np.array([sum_of_squares(_f64(a)) for a in arrays])


def norms(arrays):
    """Frobenius (or 2-) norm of each array."""
    return np.sqrt(sum_squares(arrays))


def delta_ms(deltas):
    """Mean square of the per-example error B dL/dz_l, from dL/dz_l of shape (B, n_l):
    mean((B d)^2) = sum(d^2) B / n_l."""
    scale = np.array([d.shape[0] / d.size * d.shape[0] for d in deltas])
    return sum_squares(deltas) * scale


def saturation(saturated):
    """Fraction of (example, unit) pairs of each layer with phi' < threshold, from the boolean
    arrays ``phi' < threshold``."""
    return np.array([np.count_nonzero(s) / s.size for s in saturated])


def dead_frac(saturated):
    """Fraction of units of each layer with phi' < threshold for every example."""
    return np.array([np.count_nonzero(s.all(axis=0)) / s.shape[1] for s in saturated])


def unit_spread(W, b):
    """max_j ||w_j - w_1|| / sqrt(mean_k ||w_k||^2) over units j (columns of W, with b_j).

    Measured against unit 1, not the mean, so that identical units give exactly 0."""
    W, b = (np.asarray(a) for a in (W, b))
    W, b = (a if np.issubdtype(a.dtype, np.inexact) else a.astype(np.float64) for a in (W, b))
    return float(unit_spreads([W], [b])[0])


def unit_spreads(weights, biases, weight_norms=None):
    """unit_spread of every layer, from the differences w_j - w_1 (exact: identical units give
    exactly 0); ``weight_norms`` (||W_l||, for the rms) are computed when not given."""
    if weight_norms is None:
        weight_norms = norms(weights)
    out = np.empty(len(weights))
    for l, (W, b, w_norm) in enumerate(zip(weights, biases, weight_norms)):
        W, b = (a if a.dtype == np.float64 else a.astype(np.float64) for a in (W, b))
        dev = W - W[:, :1]
        db = b - b[0]
        dist2 = np.einsum("ij,ij->j", dev, dev) + db * db
        rms2 = (w_norm * w_norm + b @ b) / W.shape[1]
        out[l] = math.sqrt(dist2.max() / rms2) if rms2 > 0 else 0.0
    return out


def update_ratio(update_norms, weight_norm):
    """||delta W_l|| / ||W_l|| (0 where ||W_l|| = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weight_norm > 0, update_norms / np.where(weight_norm > 0, weight_norm, 1.0), 0.0)


def layer_stats(net):
    """{stat_name: array over layers 1..L} from the caches of ``net``'s last probe pass
    (``MLP.probe`` runs it first; a training pass keeps only what its backward needs, see
    ``layers``)."""
    zs = [d.cache["z"] for d in net.dense]
    acts = [block.cache["out"] for block in net.hidden_layers] + [zs[-1]]
    threshold = SATURATION_THRESHOLD * net.activation.max_derivative
    saturated = [a.phi.derivative(a.cache["u"], a.cache["h"]) < threshold for a in net.activation_layers]
    out = {}
    out["grad_norm"] = norms([d.grads["W"] for d in net.dense])
    out["bias_grad_norm"] = norms([d.grads["b"] for d in net.dense])
    out["delta_ms"] = delta_ms([d.cache["dz"] for d in net.dense])
    out["preact_mean"], out["preact_var"] = mean_var(zs)
    out["act_mean"], out["act_var"] = mean_var(acts[:-1])
    out["act_mean"] = np.append(out["act_mean"], out["preact_mean"][-1])
    out["act_var"] = np.append(out["act_var"], out["preact_var"][-1])
    out["saturation"] = np.append(saturation(saturated), 0.0)
    out["dead_frac"] = np.append(dead_frac(saturated), 0.0)
    out["weight_norm"] = norms(net.weights)
    out["update_ratio"] = update_ratio(net.update_norms, out["weight_norm"])
    out["unit_spread"] = unit_spreads(net.weights, net.biases, out["weight_norm"])
    return {name: out[name] for name in STATS}


def check_bins(bins):
    """ValueError unless ``bins`` is an integer >= 1."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"histogram bins must be an integer >= 1, got {bins!r}")


def histogram(values, bins=64):
    """(counts, edges) of the finite entries of ``values``; edges span their range."""
    flat = values.reshape(-1)
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
    lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
    return counts, edges


def layer_histograms(net, bins=64):
    """Per-layer histograms {kind: [(counts, edges) for l = 1..L]} from the caches of ``net``'s
    last probe pass.

    kinds: ``act`` (a_l, the logits for l = L), ``delta`` (per-example error
    B dL/dz_l, as in delta_ms) and ``weight_grad`` (dL/dW_l).
    """
    check_bins(bins)
    acts = [block.cache["out"] for block in net.hidden_layers] + [net.dense[-1].cache["z"]]
    deltas = [d.cache["dz"] for d in net.dense]
    return {
        "act": [histogram(a, bins) for a in acts],
        "delta": [histogram(d * d.shape[0], bins) for d in deltas],
        "weight_grad": [histogram(d.grads["W"], bins) for d in net.dense],
    }
