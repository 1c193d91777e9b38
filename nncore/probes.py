"""Per-layer statistics, computed from the caches of one forward/backward pass.

All statistics are arrays over layers l = 1..L (index l-1). Definitions:
  grad_norm       ||dL/dW_l||_F, L the batch-mean loss
  bias_grad_norm  ||dL/db_l||_2
  delta_ms        mean over batch and units of (d loss_n / d z_l)^2, the per-example
                  back-propagated error; equals mean((B dL/dz_l)^2), so it does not
                  depend on the batch size B
  preact_mean, preact_var   of z_l over batch and units
  act_mean, act_var         of a_l = phi(z_l) (dropout off); a_L = z_L, the logits
  saturation      fraction of (example, unit) pairs with phi'(z) < 0.1 max phi'
  dead_frac       fraction of units with phi'(z) < 0.1 max phi' for every example
  weight_norm     ||W_l||_F
  update_ratio    ||delta W_l||_F / ||W_l||_F over the last optimizer step (0 before any)
  unit_spread     how different the units of layer l are: max_j ||w_j - w_1|| / rms_j ||w_j||,
                  w_j = (W_l[:, j], b_l[j]) the incoming weights and bias of unit j; exactly 0
                  when all units are identical (the symmetry problem of constant init)
"""
import numpy as np

STATS = ("grad_norm", "bias_grad_norm", "delta_ms", "preact_mean", "preact_var", "act_mean",
         "act_var", "saturation", "dead_frac", "weight_norm", "update_ratio", "unit_spread")
HISTOGRAM_KINDS = ("act", "delta", "weight_grad")
SATURATION_THRESHOLD = 0.1  # relative to max phi'


def _sq_norm(x):
    flat = x.reshape(-1)
    return float(np.dot(flat, flat))


def unit_spread(W, b):
    """max_j ||w_j - w_1|| / sqrt(mean_k ||w_k||^2) over units j (columns of W, with b_j).

    Measured against unit 1, not the mean, so that identical units give exactly 0."""
    dev = W - W[:, :1]
    dev *= dev
    dist2 = dev.sum(axis=0) + (b - b[0]) ** 2
    rms2 = (_sq_norm(W) + _sq_norm(b)) / W.shape[1]
    return float(np.sqrt(dist2.max() / rms2)) if rms2 > 0 else 0.0


def layer_stats(net, ws, grad_w, grad_b):
    """Statistics of ``net`` from workspace ``ws`` (filled by an evaluation-mode pass)."""
    L = net.n_layers
    batch = ws.z[0].shape[0]
    out = {name: np.zeros(L) for name in STATS}
    threshold = SATURATION_THRESHOLD * net.activation.max_derivative
    for l in range(L):
        z, d = ws.z[l], ws.delta[l]
        out["grad_norm"][l] = _sq_norm(grad_w[l]) ** 0.5
        out["bias_grad_norm"][l] = _sq_norm(grad_b[l]) ** 0.5
        out["delta_ms"][l] = _sq_norm(d) / d.size * batch * batch
        out["preact_mean"][l] = z.mean(dtype=np.float64)
        out["preact_var"][l] = z.var(dtype=np.float64)
        out["weight_norm"][l] = _sq_norm(net.weights[l]) ** 0.5
        out["unit_spread"][l] = unit_spread(net.weights[l], net.biases[l])
        if l == L - 1:  # linear output layer: a_L = z_L, phi' = 1
            out["act_mean"][l] = out["preact_mean"][l]
            out["act_var"][l] = out["preact_var"][l]
            continue
        h = ws.h[l]
        out["act_mean"][l] = h.mean(dtype=np.float64)
        out["act_var"][l] = h.var(dtype=np.float64)
        deriv = net.activation.derivative(z, h, out=ws.scratch[l])
        saturated = deriv < threshold
        out["saturation"][l] = saturated.mean()
        out["dead_frac"][l] = saturated.all(axis=0).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["update_ratio"] = np.where(out["weight_norm"] > 0,
                                       net.update_norms / np.where(out["weight_norm"] > 0, out["weight_norm"], 1.0),
                                       0.0)
    return out


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


def layer_histograms(net, ws, grad_w, bins=64):
    """Per-layer histograms {kind: [(counts, edges) for l = 1..L]}.

    kinds: ``act`` (a_l, the logits for l = L), ``delta`` (per-example error
    B dL/dz_l, as in delta_ms) and ``weight_grad`` (dL/dW_l).
    """
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    L = net.n_layers
    batch = ws.z[0].shape[0]
    acts = [ws.h[l] if l < L - 1 else ws.z[l] for l in range(L)]
    return {
        "act": [histogram(a, bins) for a in acts],
        "delta": [histogram(d * batch, bins) for d in ws.delta],
        "weight_grad": [histogram(g, bins) for g in grad_w],
    }
