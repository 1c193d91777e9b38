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

Each statistic is one small function over the list of per-layer arrays. Every one accumulates
in float64 (float32 data is converted first: its squares overflow from 1.8e19 and underflow below
1e-19, where the statistics of exploding and vanishing networks live). Consecutive layers of equal
shape are stacked and reduced in a few NumPy calls, not a few per layer.
"""
import numpy as np

STATS = ("grad_norm", "bias_grad_norm", "delta_ms", "preact_mean", "preact_var", "act_mean",
         "act_var", "saturation", "dead_frac", "weight_norm", "update_ratio", "unit_spread")
HISTOGRAM_KINDS = ("act", "delta", "weight_grad")
SATURATION_THRESHOLD = 0.1  # relative to max phi'
EXACT_SPREAD2 = 1e-4  # unit_spread^2 below which the spread is computed from the differences


def _stacks(arrays):
    """[(lo, hi, stack)]: maximal runs of consecutive arrays of equal shape, each as one float64
    array of shape (hi - lo, *shape) (no copy for a single float64 array)."""
    runs, lo = [], 0
    for i in range(1, len(arrays) + 1):
        if i == len(arrays) or arrays[i].shape != arrays[lo].shape:
            run = arrays[lo:i]
            stack = run[0][None] if len(run) == 1 else np.stack(run)
            runs.append((lo, i, stack.astype(np.float64, copy=False)))
            lo = i
    return runs


def mean_var(arrays):
    """(means, variances) of each array over all its entries, two-pass (no cancellation)."""
    mean, var = np.empty(len(arrays)), np.empty(len(arrays))
    for lo, hi, s in _stacks(arrays):
        flat = s.reshape(hi - lo, -1)
        mean[lo:hi] = flat.mean(axis=1)
        dev = flat - mean[lo:hi, None]
        var[lo:hi] = np.einsum("ij,ij->i", dev, dev) / flat.shape[1]
    return mean, var


def sum_squares(arrays):
    """Sum of the squares of each array's entries."""
    out = np.empty(len(arrays))
    for lo, hi, s in _stacks(arrays):
        flat = s.reshape(hi - lo, -1)
        out[lo:hi] = np.einsum("ij,ij->i", flat, flat)
    return out


def norms(arrays):
    """Frobenius (or 2-) norm of each array."""
    return np.sqrt(sum_squares(arrays))


def delta_ms(deltas):
    """Mean square of the per-example error B dL/dz_l, from dL/dz_l of shape (B, n_l):
    mean((B d)^2) = sum(d^2) B / n_l."""
    scale = np.array([d.shape[0] / d.size * d.shape[0] for d in deltas])
    return sum_squares(deltas) * scale


def saturation(derivatives, threshold):
    """Fraction of (example, unit) pairs of each layer with phi' < ``threshold``."""
    return np.array([np.count_nonzero(d < threshold) / d.size for d in derivatives])


def dead_frac(derivatives, threshold):
    """Fraction of units of each layer with phi' < ``threshold`` for every example."""
    return np.array([(d < threshold).all(axis=0).mean() for d in derivatives])


def unit_spread(W, b):
    """max_j ||w_j - w_1|| / sqrt(mean_k ||w_k||^2) over units j (columns of W, with b_j).

    Measured against unit 1, not the mean, so that identical units give exactly 0."""
    W, b = (np.asarray(a) for a in (W, b))
    W, b = (a if np.issubdtype(a.dtype, np.inexact) else a.astype(np.float64) for a in (W, b))
    return float(unit_spreads([W], [b])[0])


def unit_spreads(weights, biases):
    """unit_spread of every layer. ||w_j - w_1||^2 = ||w_j||^2 + ||w_1||^2 - 2 w_j.w_1 cancels
    when the units are nearly identical (relative error ~ fan_in eps / spread^2): layers with
    spread^2 <= EXACT_SPREAD2 are recomputed from the differences, so the error stays below
    ~1e-8 and identical units give exactly 0."""
    out = np.empty(len(weights))
    for lo, hi, W in _stacks(weights):
        b = np.stack(biases[lo:hi]).astype(np.float64, copy=False)
        col_sq = np.einsum("lij,lij->lj", W, W)
        cross = np.einsum("li,lij->lj", W[:, :, 0], W)
        db = b - b[:, :1]
        dist2 = col_sq + col_sq[:, :1] - 2.0 * cross + db * db
        rms2 = (col_sq.sum(axis=1) + np.einsum("lj,lj->l", b, b)) / W.shape[2]
        for k in np.flatnonzero(dist2.max(axis=1) <= EXACT_SPREAD2 * rms2):
            dev = W[k] - W[k, :, :1]
            dist2[k] = np.einsum("ij,ij->j", dev, dev) + db[k] * db[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[lo:hi] = np.where(rms2 > 0, np.sqrt(np.maximum(dist2.max(axis=1), 0.0)
                                                    / np.where(rms2 > 0, rms2, 1.0)), 0.0)
    return out


def update_ratio(update_norms, weight_norm):
    """||delta W_l|| / ||W_l|| (0 where ||W_l|| = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weight_norm > 0, update_norms / np.where(weight_norm > 0, weight_norm, 1.0), 0.0)


def layer_stats(net):
    """{stat_name: array over layers 1..L} from the caches of ``net``'s last forward and backward
    pass (``MLP.probe`` runs that pass first)."""
    zs = [d.cache["z"] for d in net.dense]
    acts = [block.cache["out"] for block in net.hidden_layers] + [zs[-1]]
    derivatives = [a.cache["dphi"] for a in net.activation_layers]
    threshold = SATURATION_THRESHOLD * net.activation.max_derivative
    out = {}
    out["grad_norm"] = norms([d.grads["W"] for d in net.dense])
    out["bias_grad_norm"] = norms([d.grads["b"] for d in net.dense])
    out["delta_ms"] = delta_ms([d.cache["dz"] for d in net.dense])
    out["preact_mean"], out["preact_var"] = mean_var(zs)
    out["act_mean"], out["act_var"] = mean_var(acts[:-1])
    out["act_mean"] = np.append(out["act_mean"], out["preact_mean"][-1])
    out["act_var"] = np.append(out["act_var"], out["preact_var"][-1])
    out["saturation"] = np.append(saturation(derivatives, threshold), 0.0)
    out["dead_frac"] = np.append(dead_frac(derivatives, threshold), 0.0)
    out["weight_norm"] = norms(net.weights)
    out["update_ratio"] = update_ratio(net.update_norms, out["weight_norm"])
    out["unit_spread"] = unit_spreads(net.weights, net.biases)
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
    last forward and backward pass.

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
