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


def unit_spread(W, b):
    """max_j ||w_j - w_1|| / sqrt(mean_k ||w_k||^2) over units j (columns of W, with b_j).

    Measured against unit 1, not the mean, so that identical units give exactly 0."""
    W, b = (np.asarray(a) for a in (W, b))
    W, b = (a if np.issubdtype(a.dtype, np.inexact) else a.astype(np.float64) for a in (W, b))
    return float(_unit_spread(W[None], b[None])[0][0])


def _unit_spread(W, b):
    """(unit_spread, ||W||^2) of each layer of a stack: W (k, fan_in, fan_out), b (k, fan_out).

    ||w_j - w_1||^2 = ||w_j||^2 + ||w_1||^2 - 2 w_j.w_1, summed in float64 (float32 weights
    are converted a chunk at a time: their squares overflow float32 from 1.8e19), reads W
    twice instead of writing and reading a difference array. It cancels when the units are
    nearly identical, with a relative error of about fan_in * eps / spread^2: layers with
    spread^2 <= EXACT_SPREAD2 are recomputed from the differences, so the error stays below
    ~1e-8 and identical units give exactly 0."""
    col_sq, cross = np.empty(W.shape[::2]), np.empty(W.shape[::2])
    for lo, hi in _row_chunks(W, WORK_ELEMENTS):  # the chunk is still in cache for its second read
        Wc = W[lo:hi].astype(np.float64, copy=False)
        col_sq[lo:hi] = np.einsum("lij,lij->lj", Wc, Wc)
        cross[lo:hi] = np.matmul(Wc[:, None, :, 0], Wc)[:, 0, :]
    db = (b - b[:, :1]).astype(np.float64)
    dist2 = col_sq + col_sq[:, :1]
    dist2 -= 2.0 * cross
    dist2 += db * db
    w_sq = col_sq.sum(axis=1)
    rms2 = (w_sq + np.square(b, dtype=np.float64).sum(axis=1)) / W.shape[2]
    for l in np.flatnonzero(dist2.max(axis=1) <= EXACT_SPREAD2 * rms2):
        dev = W[l].astype(np.float64) - W[l, :, :1]
        dist2[l] = np.einsum("ij,ij->j", dev, dev) + db[l] * db[l]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(rms2 > 0, np.sqrt(np.maximum(dist2.max(axis=1), 0.0) / np.where(rms2 > 0, rms2, 1.0)), 0.0)
    return spread, w_sq


EXACT_SPREAD2 = 1e-4  # unit_spread^2 below which the spread is computed from the differences


def _runs(shapes):
    """[(start, stop)]: the maximal runs of consecutive equal shapes."""
    runs, start = [], 0
    for i in range(1, len(shapes) + 1):
        if i == len(shapes) or shapes[i] != shapes[start]:
            runs.append((start, i))
            start = i
    return runs


def _sum_squares(block):
    """Sum of squares of each row of ``block`` in float64 (batched BLAS dots). float32 rows are
    converted a few at a time: in float32, squares overflow from 1.8e19 and underflow below
    1e-19, where the statistics of exploding and vanishing networks live."""
    if block.dtype == np.float64:
        return _dots(block)
    out = np.empty(block.shape[0])
    for lo, hi in _row_chunks(block, WORK_ELEMENTS):
        out[lo:hi] = _dots(block[lo:hi].astype(np.float64))
    return out


def _dots(rows):
    """Sum of squares of each row of a 2-D array, from BLAS dots of at most DOT_ELEMENTS."""
    n_rows, n = rows.shape
    if n <= DOT_ELEMENTS:
        return np.matmul(rows[:, None, :], rows[:, :, None]).reshape(-1)
    k = n // DOT_ELEMENTS
    head = rows[:, :k * DOT_ELEMENTS].reshape(n_rows, k, DOT_ELEMENTS)
    sq = np.matmul(head[:, :, None, :], head[:, :, :, None]).reshape(n_rows, k).sum(axis=1)
    if k * DOT_ELEMENTS < n:
        sq += _dots(rows[:, k * DOT_ELEMENTS:])
    return sq


# OpenBLAS computes a dot of up to 10,000 elements in the calling thread; a longer one wakes its
# other threads, which costs more than the dot (measured with 2 threads: these sums 2-4x slower
# alone, the float32 probe at 20/256/128 4% slower)
DOT_ELEMENTS = 8192


def _mean_var(block, tmp):
    """Mean and variance of each row of ``block``, in float64 and in two passes (no
    cancellation). Rows go a few at a time through the small float64 work array ``tmp``,
    so that the second pass reads them from cache, not from memory."""
    n = block.shape[1]
    if tmp.size < n:
        tmp = np.empty(n)
    mean, sq = np.empty(block.shape[0]), np.empty(block.shape[0])
    for lo, hi in _row_chunks(block, tmp.size):
        rows = block[lo:hi]
        dev = tmp[:rows.size].reshape(rows.shape)
        if rows.dtype == np.float64:
            mean[lo:hi] = rows.sum(axis=1) / n
            np.subtract(rows, mean[lo:hi, None], out=dev)
        else:  # converted once: faster than two mixed-type passes (measured 1.3-1.5x)
            np.copyto(dev, rows)
            mean[lo:hi] = dev.sum(axis=1) / n
            dev -= mean[lo:hi, None]
        sq[lo:hi] = _dots(dev)
    return mean, sq / n


def _row_chunks(block, elements):
    """[(lo, hi)]: ranges of rows of ``block`` of about ``elements`` elements (one row at least)."""
    rows = max(1, elements // max(1, block[0].size))
    return [(lo, min(lo + rows, block.shape[0])) for lo in range(0, block.shape[0], rows)]


WORK_ELEMENTS = 32768  # float64 elements (256 KiB) of the work array of _mean_var: fits a core's L2 cache


CHUNK_ELEMENTS = 1 << 20  # per array of a chunk of layers: larger chunks, fewer NumPy calls


class LayerStats:
    """The statistics of one evaluation-mode forward and backward pass, computed chunk by chunk
    of layers *during* the pass, as soon as a chunk is done, so that its arrays are more
    likely to be still in cache (measured: 2-13% less probe time than after the pass).

    A chunk is consecutive layers of equal shapes (activations (B, n), weights (fan_in,
    fan_out)), taken as one (layers, elements) block: a few NumPy calls per chunk, not per
    layer (smaller chunks, tried to keep them in L2, cost more in NumPy calls than they
    saved). The network calls ``forward_done(l)`` after layer l's activation and
    ``backward_done(l)`` after layer l's gradients (l 0-based); ``result()`` gives
    {stat_name: array over layers 1..L}. Sums of squares are BLAS dots in float64
    (float32 data converted a chunk at a time); means are pairwise sums in float64.
    """

    def __init__(self, net, ws, grad_flat):
        self.net, self.ws, self.grad_flat = net, ws, grad_flat
        self.params = net.flat_parameters()
        self.out = {name: np.zeros(net.n_layers) for name in STATS}
        self.threshold = SATURATION_THRESHOLD * net.activation.max_derivative
        # fixed for a network and batch size: made at the first probe, kept on the workspace
        if "stats_layout" not in ws.work:
            ws.work["stats_layout"] = _layout(net, ws)
            ws.work["tmp"] = np.empty(WORK_ELEMENTS)  # no page faults per probe
        self.tmp = ws.work["tmp"]
        self.act_off, self.w_off, self.b_off, self.ends, self.starts = ws.work["stats_layout"]

    @staticmethod
    def _block(flat, offsets, s, e):
        return flat[offsets[s]:offsets[e]].reshape(e - s, -1)

    def forward_done(self, l):
        chunk = self.ends.get(l)
        if chunk is None:
            return
        s, e = chunk
        out, ws = self.out, self.ws
        z = self._block(ws.z_flat, self.act_off, s, e)
        out["preact_mean"][s:e], out["preact_var"][s:e] = _mean_var(z, self.tmp)
        if e == self.net.n_layers:  # a_L = z_L, the logits
            out["act_mean"][s:e], out["act_var"][s:e] = out["preact_mean"][s:e], out["preact_var"][s:e]
        else:
            h = self._block(ws.h_flat, self.act_off, s, e)
            out["act_mean"][s:e], out["act_var"][s:e] = _mean_var(h, self.tmp)

    def backward_done(self, l):
        chunk = self.starts.get(l)
        if chunk is None:
            return
        s, e = chunk
        out, ws, net = self.out, self.ws, self.net
        batch = ws.z[0].shape[0]
        d = self._block(ws.delta_flat, self.act_off, s, e)
        out["delta_ms"][s:e] = _sum_squares(d) * (batch / d.shape[1] * batch)
        if e < net.n_layers:  # phi' of hidden layers, left in ws.scratch by the backward pass
            deriv = self._block(ws.scratch_flat, self.act_off, s, e)
            saturated = deriv < self.threshold
            # count_nonzero per row: 5x faster than with axis= (which sums through a cast)
            out["saturation"][s:e] = [np.count_nonzero(row) / row.size for row in saturated]
            out["dead_frac"][s:e] = saturated.reshape(e - s, batch, -1).all(axis=1).mean(axis=1)
        out["grad_norm"][s:e] = np.sqrt(_sum_squares(self._block(self.grad_flat, self.w_off, s, e)))
        out["bias_grad_norm"][s:e] = np.sqrt(_sum_squares(self._block(self.grad_flat, self.b_off, s, e)))
        W = self._block(self.params, self.w_off, s, e).reshape(e - s, *net.weights[s].shape)
        b = self._block(self.params, self.b_off, s, e)
        out["unit_spread"][s:e], w_sq = _unit_spread(W, b)
        out["weight_norm"][s:e] = np.sqrt(w_sq)

    def result(self):
        out = self.out
        with np.errstate(divide="ignore", invalid="ignore"):
            out["update_ratio"] = np.where(out["weight_norm"] > 0, self.net.update_norms
                                           / np.where(out["weight_norm"] > 0, out["weight_norm"], 1.0), 0.0)
        return out


def _layout(net, ws):
    """(act_off, w_off, b_off, ends, starts) for LayerStats: where each layer starts in the flat
    activation and parameter arrays, and the chunks by last and by first layer."""
    L = net.n_layers
    act_sizes = [z.size for z in ws.z]
    w_sizes = [w.size for w in net.weights]
    act_off = np.concatenate([[0], np.cumsum(act_sizes)]).tolist()
    offsets = net._param_offsets()
    w_off, b_off = offsets[:L + 1], offsets[L:]
    # the output layer has no phi: a chunk of its own
    keys = [(z.shape, w.shape, l == L - 1) for l, (z, w) in enumerate(zip(ws.z, net.weights))]
    chunks = []
    for s, e in _runs(keys):
        step = max(1, CHUNK_ELEMENTS // max(act_sizes[s], w_sizes[s]))
        chunks += [(a, min(a + step, e)) for a in range(s, e, step)]
    return act_off, w_off, b_off, {e - 1: (s, e) for s, e in chunks}, {s: (s, e) for s, e in chunks}


def layer_stats(net, ws, grad_flat):
    """Statistics of ``net`` from workspace ``ws`` and the flat gradient buffer, as filled by one
    evaluation-mode forward and backward pass (``ws``, the probes' workspace, then holds phi'(z_l)
    of every layer), computed after the pass (``MLP.probe`` computes the same numbers during it,
    see LayerStats)."""
    stats = LayerStats(net, ws, grad_flat)
    for l in range(net.n_layers):
        stats.forward_done(l)
    for l in range(net.n_layers - 1, -1, -1):
        stats.backward_done(l)
    return stats.result()


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


def layer_histograms(net, ws, grad_w, bins=64):
    """Per-layer histograms {kind: [(counts, edges) for l = 1..L]}.

    kinds: ``act`` (a_l, the logits for l = L), ``delta`` (per-example error
    B dL/dz_l, as in delta_ms) and ``weight_grad`` (dL/dW_l).
    """
    check_bins(bins)
    L = net.n_layers
    batch = ws.z[0].shape[0]
    acts = [ws.h[l] if l < L - 1 else ws.z[l] for l in range(L)]
    return {
        "act": [histogram(a, bins) for a in acts],
        "delta": [histogram(d * batch, bins) for d in ws.delta],
        "weight_grad": [histogram(g, bins) for g in grad_w],
    }
