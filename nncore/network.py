"""The MLP: forward caches what backward needs, backward never recomputes it.

Conventions (used by every module of nncore):
  - row vectors: z_l = a_(l-1) @ W_l + b_l with W_l of shape (fan_in, fan_out);
  - layers l = 1..L, L = number of hidden layers + 1; l = 1 is nearest the input and
    layer L (the output layer) is linear: a_L = z_L are the logits fed to the loss;
  - the loss is the batch mean, so grads are d(mean loss)/d(parameter);
  - ``deltas[l-1]`` is dL/dz_l for that batch mean; the per-example error
    d loss_n / d z_l is B * dL/dz_l (see probes.delta_ms).
Python lists are 0-based: ``weights[0]`` is W_1.
"""
from dataclasses import dataclass, field

import numpy as np

from . import activations, initializers, losses, parallel, probes
from .checks import finite_in
from .rng import generator

DTYPES = {"float64": np.float64, "float32": np.float32}
# Rough cost (ns per element) of the backward pass's elementwise work, phi' (from the cached
# phi, a few cheap passes for every activation) times the error: see parallel.min_part_for.
DERIVATIVE_NS = 1.5


def packed(shapes, dtype):
    """(flat, views): one flat array and a C-contiguous view of it for every shape, in order."""
    sizes = [int(np.prod(s)) for s in shapes]
    flat = np.empty(sum(sizes), dtype)
    views, start = [], 0
    for shape, size in zip(shapes, sizes):
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return flat, views


def _still_views(flat, views, entries):
    """Whether ``entries`` are exactly ``views`` and these still share ``flat``'s memory (a copy
    or an unpickled object keeps the views' identities but not their sharing)."""
    return (flat is not None and bool(views) and views[0].base is flat and len(entries) == len(views)
            and all(a is b for a, b in zip(entries, views)))


@dataclass
class Grads:
    """Gradients of the batch-mean loss; lists mirror ``MLP.weights`` / ``MLP.biases``.

    The arrays belong to the network and are overwritten by its next
    ``loss_and_grads`` call (as torch's ``.grad``): copy them to keep them.
    ``flat``, when given, is one array holding every weight then bias gradient, of
    which ``weights`` and ``biases`` are views (``views`` lists them in that order).
    """
    weights: list
    biases: list
    deltas: list  # dL/dz_l, shape (B, n_l), l = 1..L
    flat: np.ndarray = field(default=None, repr=False)
    views: tuple = field(default=(), repr=False)

    def packed(self):
        """``flat`` if ``weights`` and ``biases`` are still its views, else None (an entry was
        replaced, or this is a copy)."""
        current = list(self.weights) + list(self.biases)
        return self.flat if _still_views(self.flat, self.views, current) else None


class _Workspace:
    """Buffers for one batch size: no allocation per step in the hot loop.

    Each kind of buffer is one flat array holding the layers in order (``z_flat``
    etc.), so that the probes can treat consecutive layers of equal width as one
    (layers, batch, width) block. phi'(z) (``scratch``) is kept per layer only with
    ``keep_derivatives`` (the probes' workspace); otherwise every layer reuses one buffer.
    """

    def __init__(self, sizes, batch, dtype, dropout, keep_derivatives=False):
        every = [(batch, n) for n in sizes[1:]]
        hidden = every[:-1]
        self.z_flat, self.z = packed(every, dtype)
        self.h_flat, self.h = packed(hidden, dtype)              # phi(z_l), hidden layers
        self.a = packed(hidden, dtype)[1] if dropout else self.h  # after dropout
        self.delta_flat, self.delta = packed(every, dtype)
        if keep_derivatives:  # phi'(z_l) of every layer after a backward pass, for the probes
            self.scratch_flat, self.scratch = packed(hidden, dtype)
        else:  # one layer's worth, reused: it stays in cache and is never written back to memory
            self.scratch_flat = np.empty(max(n * m for n, m in hidden), dtype)
            self.scratch = [self.scratch_flat[:n * m].reshape(n, m) for n, m in hidden]
        self.masks = packed(hidden, dtype)[1] if dropout else None
        self.n_layers = len(sizes) - 1
        self.work = {}  # the probes' layout and work array, see probes.LayerStats


class MLP:
    """Multilayer perceptron with per-layer instrumentation.

    MLP(n_in, hidden, n_out, activation="tanh", init="xavier_uniform",
        loss="cross_entropy", dropout=0.0, dtype="float64", seed=0,
        activation_params=None, init_params=None, sigma_b=0.0)

    ``hidden`` lists the hidden widths (depth = len(hidden) >= 1). ``init_params``
    holds sigma_w / gain / value for the initializers that take them; biases are
    zero, or N(0, sigma_b^2). ``dropout`` p in [0, 1) is inverted dropout on every
    hidden layer's output, as torch.nn.Dropout(p): active only when ``train=True``.
    """

    def __init__(self, n_in, hidden, n_out, activation="tanh", init="xavier_uniform",
                 loss="cross_entropy", dropout=0.0, dtype="float64", seed=0,
                 activation_params=None, init_params=None, sigma_b=0.0):
        if (isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__")
                or (isinstance(hidden, np.ndarray) and hidden.ndim != 1)):
            raise ValueError(f"hidden must be a list of widths (e.g. [64] * depth), got {hidden!r}")
        hidden = list(hidden)
        for name, value in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if len(hidden) < 1:
            raise ValueError("depth must be >= 1 (give at least one hidden width)")
        if any(not isinstance(w, (int, np.integer)) or w < 1 for w in hidden):
            raise ValueError(f"hidden widths must be integers >= 1, got {hidden}")
        if isinstance(dropout, (bool, np.bool_)) or np.ndim(dropout) != 0 or np.asarray(dropout).dtype.kind not in "iuf":
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        dropout = float(dropout)
        if not (0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        try:
            dtype_name = np.dtype(dtype).name if dtype not in DTYPES else dtype
        except TypeError:
            dtype_name = None
        if dtype_name not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        self.dtype = np.dtype(DTYPES[dtype_name])
        self.activation = activations.get(activation, **(activation_params or {}))
        self.loss_fn = losses.get(loss)
        initializers.get(init)
        initializers.check_params(init_params or {})
        self.sizes = [int(n_in)] + [int(w) for w in hidden] + [int(n_out)]
        self.dropout = dropout
        self.seed = seed
        self.config = dict(activation=self.activation.name, init=init, loss=self.loss_fn.name,
                           dropout=dropout, dtype=self.dtype.name, seed=seed, sigma_b=sigma_b,
                           init_params=dict(init_params or {}), activation_params=dict(activation_params or {}))

        init_rng = generator(seed, "init")
        self._params, views = packed(self._param_shapes(), self.dtype)
        self.weights, self.biases = views[:self.n_layers], views[self.n_layers:]
        for w, b, fan_in, fan_out in zip(self.weights, self.biases, self.sizes[:-1], self.sizes[1:]):
            np.copyto(w, initializers.init_weights(init, init_rng, fan_in, fan_out, self.dtype,
                                                   **(init_params or {})))
            np.copyto(b, initializers.init_bias(init_rng, fan_out, self.dtype, sigma_b))
        self._param_views = tuple(views)
        self._dropout_rng = generator(seed, "dropout")
        self.update_norms = np.zeros(self.n_layers)  # ||delta W_l|| of the last optimizer step
        self.probe_loss = self.probe_accuracy = float("nan")
        self._grads = {}
        self._workspaces = {}

    def __getstate__(self):
        # buffers are rebuilt on use; the copy must not share or keep views of the original's
        state = self.__dict__.copy()
        state["_grads"], state["_workspaces"] = {}, {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._param_views = ()  # pickling copied each view on its own: pack them again
        self.flat_parameters()

    # ------------------------------------------------------------------ shape
    @property
    def n_layers(self):
        """L: hidden layers + the output layer."""
        return len(self.sizes) - 1

    @property
    def depth(self):
        return len(self.sizes) - 2

    def _param_shapes(self):
        return ([(fi, fo) for fi, fo in zip(self.sizes[:-1], self.sizes[1:])]
                + [(fo,) for fo in self.sizes[1:]])

    def _param_offsets(self):
        """Where each parameter starts in ``flat_parameters()`` (weights W_1..W_L, then biases
        b_1..b_L), and the total size last: 2L + 1 integers."""
        return np.concatenate([[0], np.cumsum([int(np.prod(s)) for s in self._param_shapes()])]).tolist()

    def flat_parameters(self):
        """Every weight then every bias as one flat array, of which ``weights`` and ``biases``
        are views: the optimizers update it in one pass. An entry of ``weights`` or ``biases``
        that was replaced by another array is copied into its place first, and the entry is
        the view again (the same list objects; other entries untouched); ValueError on a bad
        shape, with nothing changed."""
        current = list(self.weights) + list(self.biases)
        views = self._param_views
        if _still_views(self._params, views, current):
            return self._params
        intact = bool(views) and views[0].base is self._params
        shapes = self._param_shapes()
        if len(current) != len(shapes) or any(np.shape(a) != s for a, s in zip(current, shapes)):
            raise ValueError(f"weights and biases must have shapes {shapes}, got "
                             f"{[np.shape(a) for a in current]}")
        if not intact:  # after unpickling: the views were copied one by one
            self._params, views = packed(shapes, self.dtype)
            self._param_views = views = tuple(views)
        for v, a in zip(views, current):
            if a is not v:
                np.copyto(v, a, casting="same_kind")
        for name, start in (("weights", 0), ("biases", self.n_layers)):
            entries = getattr(self, name)
            if not isinstance(entries, list):
                entries = list(entries)
                setattr(self, name, entries)
            entries[:] = views[start:start + len(entries)]
        return self._params

    def __repr__(self):
        return (f"MLP(sizes={self.sizes}, activation={self.activation.name!r}, init={self.config['init']!r}, "
                f"loss={self.loss_fn.name!r}, dropout={self.dropout}, dtype={self.dtype.name!r})")

    # ------------------------------------------------------------- validation
    def check_inputs(self, X, y=None):
        """Return X (in the network's dtype) and y, validated; ValueError on bad shape or values."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have shape (N, {self.sizes[0]}), got {X.shape}")
        if X.shape[0] < 1:
            raise ValueError("X must hold at least one example")
        X = finite_in(X, self.dtype, "X")
        if y is not None:
            y = self.loss_fn.check_targets(y, X.shape[0], self.sizes[-1], self.dtype)
        return X, y

    # ------------------------------------------------------------ computation
    def _workspace(self, batch, kind):
        key = (batch, kind)
        ws = self._workspaces.get(key)
        if ws is None:
            ws = self._workspaces[key] = _Workspace(self.sizes, batch, self.dtype, self.dropout > 0,
                                                    keep_derivatives=kind == "probe")
        return ws

    def _grad_buffers(self, kind):
        """(weight grads, bias grads, flat, views): the views of one flat array."""
        g = self._grads.get(kind)
        if g is None:
            flat, views = packed(self._param_shapes(), self.dtype)
            g = self._grads[kind] = (views[:self.n_layers], views[self.n_layers:], flat, tuple(views))
        return g

    def _forward(self, X, ws, train, masks=None, stats=None):
        """Fill ws.z / ws.h / ws.a for batch X; returns the logits z_L (a view into ws).
        ``stats`` (a probes.LayerStats) is told when each layer is done."""
        use_dropout = train and self.dropout > 0
        # phi plus the bias (and the dropout mask): about half a ns per element more
        act_part = parallel.min_part_for(self.activation.cost_ns.get(self.dtype.name, 1.0) + 0.5)
        a_prev = X
        L = self.n_layers
        for l in range(L):
            z = ws.z[l]
            np.matmul(a_prev, self.weights[l], out=z)
            if l == L - 1:
                z += self.biases[l]
                if stats is not None:
                    stats.forward_done(l)
                break
            if use_dropout:
                if masks is not None:
                    np.copyto(ws.masks[l], masks[l])
                else:
                    keep = self._dropout_rng.random(z.shape) >= self.dropout
                    np.multiply(keep, 1.0 / (1.0 - self.dropout), out=ws.masks[l])
            parallel.split_rows(self._activate(ws, l, use_dropout), z.shape[0], z.size, min_part=act_part)
            if stats is not None:
                stats.forward_done(l)
            a_prev = ws.a[l]
        ws.dropout_active = use_dropout
        return ws.z[L - 1]

    def _activate(self, ws, l, use_dropout):
        """Rows [lo, hi) of hidden layer l after its matrix product: bias, phi, dropout."""
        z, h, a, b = ws.z[l], ws.h[l], ws.a[l], self.biases[l]

        def rows(lo, hi):
            zr = z[lo:hi]
            zr += b
            self.activation.forward(zr, out=h[lo:hi])
            if use_dropout:
                np.multiply(h[lo:hi], ws.masks[l][lo:hi], out=a[lo:hi])
            elif a is not h:
                np.copyto(a[lo:hi], h[lo:hi])
        return rows

    def _backpropagate(self, ws, l):
        """Rows [lo, hi) of dL/dz_l from dL/da_l (in ws.delta[l-1]): dropout mask, then phi'(z_l).
        phi'(z_l) is left in ws.scratch (kept for every layer in the probes' workspace)."""
        d, z, h, s = ws.delta[l], ws.z[l], ws.h[l], ws.scratch[l]
        mask = ws.masks[l] if ws.dropout_active else None

        def rows(lo, hi):
            dr = d[lo:hi]
            if mask is not None:
                dr *= mask[lo:hi]
            dr *= self.activation.derivative(z[lo:hi], h[lo:hi], out=s[lo:hi])
        return rows

    def _backward(self, X, y, ws, grad_w, grad_b, stats=None):
        L = self.n_layers
        deriv_part = parallel.min_part_for(DERIVATIVE_NS)
        loss, _ = self.loss_fn.forward_backward(ws.z[L - 1], y, dz=ws.delta[L - 1])
        for l in range(L - 1, -1, -1):
            a_prev = X if l == 0 else ws.a[l - 1]
            d = ws.delta[l]
            np.matmul(a_prev.T, d, out=grad_w[l])
            np.add.reduce(d, axis=0, out=grad_b[l])
            if l > 0:
                d_prev = ws.delta[l - 1]
                np.matmul(d, self.weights[l].T, out=d_prev)
                parallel.split_rows(self._backpropagate(ws, l - 1), d_prev.shape[0], d_prev.size,
                                    min_part=deriv_part)
            if stats is not None:
                stats.backward_done(l)
        return loss

    def loss_and_grads(self, X, y, train=True, masks=None):
        """Mean loss on (X, y) and its gradients.

        ``train`` turns dropout on. ``masks`` (a list of one array per hidden layer,
        already scaled by 1/(1-p)) fixes the dropout masks instead of drawing them.
        """
        X, y = self.check_inputs(X, y)
        ws = self._workspace(X.shape[0], "train")
        if masks is not None:
            if not (train and self.dropout > 0):
                raise ValueError("masks are only used with dropout on: give train=True and a network "
                                 f"with dropout > 0 (this one has dropout={self.dropout}, train={train})")
            shapes = [np.shape(m) for m in masks]
            if shapes != [h.shape for h in ws.h]:
                raise ValueError(f"masks must be {self.depth} arrays of shapes {[h.shape for h in ws.h]}, "
                                 f"got {shapes}")
        grad_w, grad_b, flat, views = self._grad_buffers("train")
        self._forward(X, ws, train, masks)
        loss = self._backward(X, y, ws, grad_w, grad_b)
        self.last_masks = ws.masks if ws.dropout_active else None
        return loss, Grads(list(grad_w), list(grad_b), ws.delta, flat, views)

    def forward(self, X, train=False):
        """Logits z_L for X (a new array). Dropout only when ``train``."""
        X, _ = self.check_inputs(X)
        ws = self._workspace(X.shape[0], "eval")
        return self._forward(X, ws, train).copy()

    def loss(self, X, y):
        """Mean loss at evaluation (no dropout)."""
        X, y = self.check_inputs(X, y)
        ws = self._workspace(X.shape[0], "eval")
        z = self._forward(X, ws, train=False)
        return self.loss_fn.forward_backward(z, y, dz=ws.delta[-1])[0]

    def evaluate(self, X, y):
        """(mean loss, accuracy) at evaluation (no dropout)."""
        X, y = self.check_inputs(X, y)
        ws = self._workspace(X.shape[0], "eval")
        z = self._forward(X, ws, train=False)
        acc = self.loss_fn.accuracy(z, y)
        return self.loss_fn.forward_backward(z, y, dz=ws.delta[-1])[0], acc

    # ----------------------------------------------------------------- probes
    def _probe_pass(self, X, y):
        """One evaluation-mode pass on (X, y); returns (workspace, weight grads, statistics)."""
        X, y = self.check_inputs(X, y)
        ws = self._workspace(X.shape[0], "probe")
        grad_w, grad_b, grad_flat, _ = self._grad_buffers("probe")
        stats = probes.LayerStats(self, ws, grad_flat)
        self._forward(X, ws, train=False, stats=stats)
        accuracy = self.loss_fn.accuracy(ws.z[-1], y)
        loss = self._backward(X, y, ws, grad_w, grad_b, stats=stats)
        self.probe_loss, self.probe_accuracy = loss, accuracy
        return ws, grad_w, stats.result()

    def probe(self, X, y):
        """Per-layer statistics on (X, y) with dropout off: {stat_name: array over layers 1..L}.

        See ``nncore.probes`` for the definitions. The network's parameters and
        its training gradients are unchanged. The probe batch's mean loss and
        accuracy are left in ``net.probe_loss`` and ``net.probe_accuracy``.
        """
        return self._probe_pass(X, y)[2]

    def probe_with_histograms(self, X, y, bins=64):
        """(stats, histograms): ``probe`` plus per-layer histograms, see probes.layer_histograms."""
        probes.check_bins(bins)
        ws, grad_w, stats = self._probe_pass(X, y)
        return stats, probes.layer_histograms(self, ws, grad_w, bins)
