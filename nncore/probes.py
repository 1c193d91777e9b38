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
  near_lower_bound  fraction of (example, unit) pairs whose activation phi(u_l) lies in the lowest
                  5% of phi's range (NEAR_BOUND_FRACTION of sup phi - inf phi above inf phi:
                  sigmoid phi < 0.05, tanh and softsign phi < -0.9): saturation at the lower bound
                  alone, as Glorot & Bengio 2010 (Fig. 2) mean for the top sigmoid layer driven
                  to 0 (``saturation`` counts both ends, by phi'); NaN for unbounded activations
                  (relu, leaky_relu, identity), 0 for the output layer
  weight_norm     ||W_l||_F
  update_ratio    ||delta W_l||_F / ||W_l||_F over the last optimizer step (0 before any)
  unit_spread     how different the units of layer l are: max_j ||w_j - w_1|| / rms_j ||w_j||,
                  w_j = (W_l[:, j], b_l[j]) the incoming weights and bias of unit j; exactly 0
                  when all units are identical (the symmetry problem of constant init)

Jacobian probes (``jacobian_probe``; the training loop runs them at step 0 and after the last step
on the first JACOBIAN_INPUTS probe rows, dropout off; not for BatchNorm networks, whose rows are
coupled). J_n = d a_(L-1) / d x_n (``MLP.jacobian``); its squared singular values are the
eigenvalues of J_n J_n^T (min(n_(L-1), n_in) of them: all of them for a square J), pooled over
the rows:
  sv2_mean, sv2_var  mean and (population) variance of the squared singular values: the moments
                     that free probability predicts (``nncore.theory_spectrum``)
  sv_max, sv_min     the largest and smallest singular value
  JACOBIAN_HISTOGRAM the histogram of log10 of the squared singular values (they span decades;
                     exact zeros, with no log, are left out), stored with layer = L-1
  jacobian_sv_mean   per layer l = 1..L, the average singular value of d a_l / d a_(l-1)
                     (``MLP.layer_jacobians``; W_L^T for the output layer) over the first
                     JACOBIAN_LAYER_INPUTS rows: Glorot
                     & Bengio 2010's section 4.2.1 measure, 1 for a layer that keeps every
                     direction's length

Each statistic is one small function of one layer's arrays; ``layer_stats`` calls them layer by
layer (stacking the layers costs a copy and, at these sizes, page faults on the large
temporaries). Every one accumulates in float64 (float32 data is converted first: its squares
overflow from 1.8e19 and underflow below 1e-19, where the statistics of exploding and vanishing
networks live).
"""
import math
from dataclasses import dataclass

import numpy as np

from .squares import sum_of_squares

STATS = ("grad_norm", "bias_grad_norm", "delta_ms", "preact_mean", "preact_var", "act_mean",
         "act_var", "saturation", "dead_frac", "near_lower_bound", "weight_norm", "update_ratio", "unit_spread")
SATURATION_THRESHOLD = 0.1  # relative to max phi'
NEAR_BOUND_FRACTION = 0.05  # of phi's range, for near_lower_bound
JACOBIAN_INPUTS = 4  # probe rows whose Jacobians are measured (their spectra are pooled)
# rows of the per-layer measure: one row of a width-n layer gives n singular values, whose mean
# varies little between rows, and an SVD per layer and row is the probe's main cost (4 rows took
# 8-13% of a depth-50 width-64 training run of the default study, 1 row 2%)
JACOBIAN_LAYER_INPUTS = 1
JACOBIAN_STATS = ("sv2_mean", "sv2_var", "sv_max", "sv_min")
JACOBIAN_HISTOGRAM = "jacobian_log10_sv2"  # histogram kind: log10 of the squared singular values of J
LAYER_JACOBIAN_STAT = "jacobian_sv_mean"  # per-layer statistic of the Jacobian probe
FLOAT64_MAX = float(np.finfo(np.float64).max)


def _f64(a):
    """``a``'s entries as a flat float64 array (a view when they already are)."""
    return a.ravel() if a.dtype == np.float64 else a.astype(np.float64).ravel()


def sum_squares(arrays):
    """Sum of the squares of each array's entries."""
    return np.array([sum_of_squares(_f64(a)) for a in arrays])


def norms(arrays):
    """Frobenius (or 2-) norm of each array."""
    return np.sqrt(sum_squares(arrays))


def norm(a):
    """Frobenius (or 2-) norm of one array: grad_norm, bias_grad_norm and weight_norm."""
    return math.sqrt(sum_of_squares(_f64(a)))


def mean_var(a):
    """(mean, variance) of ``a``'s entries, two-pass (no cancellation)."""
    flat = _f64(a)
    mean = np.add.reduce(flat) / flat.size
    return mean, sum_of_squares(flat - mean) / flat.size


def delta_ms(dz):
    """Mean square of the per-example error B dL/dz_l, from dL/dz_l of shape (B, n_l):
    mean((B d)^2) = sum(d^2) B / n_l."""
    return sum_of_squares(_f64(dz)) * (dz.shape[0] / dz.shape[1])


def saturation(saturated):
    """Fraction of (example, unit) pairs with phi' < threshold, from the boolean array
    ``phi' < threshold`` of shape (B, n_l)."""
    return np.count_nonzero(saturated) / saturated.size


def dead_frac(saturated):
    """Fraction of units with phi' < threshold for every example."""
    return np.count_nonzero(np.logical_and.reduce(saturated, axis=0)) / saturated.shape[1]


def near_lower_bound(h, bounds):
    """Fraction of the activations ``h`` = phi(u) (shape (B, n_l)) below inf phi + NEAR_BOUND_FRACTION
    (sup phi - inf phi), ``bounds`` = (inf phi, sup phi); NaN when phi is unbounded (``bounds`` None)."""
    if bounds is None:
        return math.nan
    low, high = bounds
    return np.count_nonzero(h < low + NEAR_BOUND_FRACTION * (high - low)) / h.size


def unit_spread(W, b, weight_norm=None):
    """max_j ||w_j - w_1|| / sqrt(mean_k ||w_k||^2) over units j (columns of W, with b_j);
    ``weight_norm`` is ||W|| when already known.

    Measured against unit 1, not the mean, so that identical units give exactly 0."""
    W, b = (np.asarray(a) for a in (W, b))
    if W.dtype != np.float64 or b.dtype != np.float64:
        W, b = W.astype(np.float64), b.astype(np.float64)
    dev = W - W[:, :1]
    dist2 = np.einsum("ij,ij->j", dev, dev)
    db = b - b[0]
    dist2 += db * db
    if weight_norm is None:
        weight_norm = norm(W)
    rms2 = (weight_norm * weight_norm + np.dot(b, b)) / W.shape[1]
    if rms2 == 0:  # all-zero weights and biases: identical units
        return 0.0
    return math.sqrt(dist2.max() / rms2)  # NaN for NaN weights (never the 0 of symmetry)


def update_ratio(update_norm, weight_norm):
    """||delta W_l|| / ||W_l|| (0 where ||W_l|| = 0; NaN for NaN norms)."""
    return update_norm / weight_norm if weight_norm != 0 else 0.0


def layer_stats(net):
    """{stat_name: array over layers 1..L} from the caches of ``net``'s last probe pass
    (``MLP.probe`` runs it first; a training pass keeps only what its backward needs, see
    ``layers``), one layer at a time."""
    L = net.n_layers
    out = {name: np.empty(L) for name in STATS}
    threshold = SATURATION_THRESHOLD * net.activation.max_derivative
    update_norms = net.update_norms
    for l, dense in enumerate(net.dense):
        W, b = dense.params["W"], dense.params["b"]
        out["grad_norm"][l] = norm(dense.grads["W"])
        out["bias_grad_norm"][l] = norm(dense.grads["b"])
        out["delta_ms"][l] = delta_ms(dense.cache["dz"])
        out["preact_mean"][l], out["preact_var"][l] = mean_var(dense.cache["z"])
        if l < L - 1:
            act = net.activation_layers[l]
            saturated = act.phi.derivative(act.cache["u"], act.cache["h"]) < threshold
            out["saturation"][l], out["dead_frac"][l] = saturation(saturated), dead_frac(saturated)
            out["near_lower_bound"][l] = near_lower_bound(act.cache["h"], act.phi.bounds)
            out["act_mean"][l], out["act_var"][l] = mean_var(net.layers[l].cache["out"])
        else:  # the linear output layer: a_L = z_L, and it never saturates
            out["saturation"][l] = out["dead_frac"][l] = out["near_lower_bound"][l] = 0.0
            out["act_mean"][l], out["act_var"][l] = out["preact_mean"][l], out["preact_var"][l]
        out["weight_norm"][l] = norm(W)
        out["update_ratio"][l] = update_ratio(update_norms[l], out["weight_norm"][l])
        out["unit_spread"][l] = unit_spread(W, b, out["weight_norm"][l])
    return out


def check_bins(bins):
    """ValueError unless ``bins`` is an integer >= 1."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"histogram bins must be an integer >= 1, got {bins!r}")


def histogram(values, bins=64):
    """(counts, edges) of the finite entries of ``values``, in float64; the edges span their
    range, widened to 1 around a constant and to 4 ulps a bin around a nearly constant one
    (np.histogram refuses bins narrower than an ulp)."""
    flat = values.reshape(-1)
    finite = flat[np.isfinite(flat)].astype(np.float64, copy=False)
    if finite.size == 0:
        return np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
    lo, hi = float(finite.min()), float(finite.max())
    with np.errstate(over="ignore"):  # the spacing of float64's largest value is inf
        min_width = 4 * bins * float(np.spacing(max(abs(lo), abs(hi))))
    if lo == hi or hi - lo < min_width:
        centre, half = 0.5 * lo + 0.5 * hi, 0.5 * max(min_width, 1.0 if lo == hi else 0.0)
        lo, hi = max(centre - half, -FLOAT64_MAX), min(centre + half, FLOAT64_MAX)
    if math.isinf(hi - lo):  # a range beyond float64's: bin the halves (exact), then scale back
        counts, edges = np.histogram(finite * 0.5, bins=bins, range=(0.5 * lo, 0.5 * hi))
        return counts, edges * 2.0
    return np.histogram(finite, bins=bins, range=(lo, hi))


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


# ----------------------------------------------------------------------------- Jacobian spectra
def singular_values(J):
    """Singular values of each J[n] (J of shape (batch, m, k)): (batch, min(m, k)), in float64."""
    return np.linalg.svd(np.asarray(J, dtype=np.float64), compute_uv=False)


def spectrum_stats(sv):
    """{sv2_mean, sv2_var, sv_max, sv_min} of the singular values ``sv``, pooled: mean and
    population variance of their squares (the eigenvalues of J J^T), largest and smallest value."""
    mean, var = mean_var(sv * sv)
    return {"sv2_mean": float(mean), "sv2_var": float(var), "sv_max": float(sv.max()), "sv_min": float(sv.min())}


def mean_singular_value(J):
    """Average singular value of the Jacobians J[n], over rows and singular values."""
    return float(singular_values(J).mean())


@dataclass
class JacobianProbe:
    """``stats``: JACOBIAN_STATS of J = d a_(L-1)/dx; ``histogram``: (counts, edges) of log10 of its
    squared singular values; ``layer_sv_mean``: LAYER_JACOBIAN_STAT over layers 1..L."""
    stats: dict
    histogram: tuple
    layer_sv_mean: np.ndarray


def jacobian_probe(net, X, bins=64):
    """The Jacobian statistics of the module docstring on the rows of X (NaN spectra when they are
    not finite: a diverged network's probe is a result, not a crash)."""
    check_bins(bins)
    with np.errstate(all="ignore"):
        J = net.jacobian(X)
        if np.isfinite(J).all():
            sv = singular_values(J)
            stats = spectrum_stats(sv)
            with np.errstate(divide="ignore"):
                hist = histogram(np.log10(sv * sv), bins)  # histogram() leaves out log10(0) = -inf
        else:
            stats = dict.fromkeys(JACOBIAN_STATS, math.nan)
            hist = histogram(np.array([]), bins)
        layer = np.array([mean_singular_value(J_l) if np.isfinite(J_l).all() else math.nan
                          for _, J_l in net.layer_jacobians(X[:JACOBIAN_LAYER_INPUTS])])
    return JacobianProbe(stats, hist, layer)
