"""The MLP: a list of layers (``nncore.layers``), each of which caches what its backward needs.

Conventions (used by every module of nncore):
  - row vectors: z_l = a_(l-1) @ W_l + b_l with W_l of shape (fan_in, fan_out);
  - layers l = 1..L, L = number of hidden layers + 1; l = 1 is nearest the input, a_0 = x;
  - hidden layer l = 1..L-1:
        z_l = a_(l-1) W_l + b_l                    (Dense)
        u_l = Norm_l(z_l) with ``norm``, else z_l  (BatchNorm or LayerNorm)
        h_l = phi(u_l), then dropout on h_l        (Activation, Dropout)
        a_l = a_(l-1) + residual_scale * h_l with ``residual`` and l >= 2, else a_l = h_l;
  - the output layer L is linear: z_L = a_(L-1) W_L + b_L, the logits fed to the loss;
  - the loss is the batch mean, so grads are d(mean loss)/d(parameter);
  - ``deltas[l-1]`` is dL/dz_l for that batch mean; the per-example error
    d loss_n / d z_l is B * dL/dz_l (see probes.delta_ms).
Python lists are 0-based: ``weights[0]`` is W_1.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from . import activations, initializers, layers, losses, probes, probes_recurrent, recurrent
from .checks import finite_in, number
from .rng import generator

DTYPES = {"float64": np.float64, "float32": np.float32}
NORMS = {"batch": layers.BatchNorm, "layer": layers.LayerNorm}
# the parameter lists of an MLP, in the order of ``MLP.parameters()``: (attribute, layer key)
PARAMETER_LISTS = (("weights", "W"), ("biases", "b"), ("norm_scales", "gamma"), ("norm_shifts", "beta"))


def _is_size(value):
    """Whether ``value`` is an integer >= 1 (a width; True is not one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 1


@dataclass
class Grads:
    """Gradients of the batch-mean loss; lists mirror ``MLP.weights``, ``MLP.biases``,
    ``MLP.norm_scales`` and ``MLP.norm_shifts`` (the last two empty without ``norm``).

    Each ``loss_and_grads`` call returns new arrays: these stay valid after the next call.
    """
    weights: list
    biases: list
    deltas: list  # dL/dz_l, shape (B, n_l), l = 1..L; empty unless asked for (loss_and_grads(deltas=True))
    norm_scales: list = field(default_factory=list)
    norm_shifts: list = field(default_factory=list)

    def parameters(self):
        """Every gradient, in the order of ``MLP.parameters()``."""
        return [*self.weights, *self.biases, *self.norm_scales, *self.norm_shifts]


class MLP:
    """Multilayer perceptron with per-layer instrumentation.

    MLP(n_in, hidden, n_out, activation="tanh", init="xavier_uniform",
        loss="cross_entropy", dropout=0.0, dtype="float64", seed=0,
        activation_params=None, init_params=None, sigma_b=0.0,
        norm=None, residual=False, residual_scale=1.0)

    ``hidden`` lists the hidden widths (depth = len(hidden) >= 1). ``init_params``
    holds sigma_w / gain / value for the initializers that take them; biases are
    zero, or N(0, sigma_b^2). ``dropout`` p in [0, 1) is inverted dropout on every
    hidden layer's output, as torch.nn.Dropout(p): active only when ``train=True``.
    ``norm`` ("batch" or "layer") normalizes every hidden pre-activation, as
    torch.nn.BatchNorm1d(eps=1e-5, momentum=0.1) or torch.nn.LayerNorm(eps=1e-5); their scales
    and shifts are ``norm_scales`` and ``norm_shifts``. ``residual`` adds each hidden layer's
    input to its output from layer 2 on, ``residual_scale`` times the layer's branch (the
    hidden widths must then be equal). See the module docstring for the exact equations.

    BatchNorm trains on the batch's statistics and updates its running averages at each
    training forward pass (each ``loss_and_grads`` call with ``train=True``); ``evaluate``,
    ``loss``, ``forward(train=False)`` and ``loss_and_grads(train=False)`` use the running
    averages, as torch's ``eval()``.
    """

    def __init__(self, n_in, hidden, n_out, activation="tanh", init="xavier_uniform",
                 loss="cross_entropy", dropout=0.0, dtype="float64", seed=0,
                 activation_params=None, init_params=None, sigma_b=0.0,
                 norm=None, residual=False, residual_scale=1.0):
        if (isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__")
                or (isinstance(hidden, np.ndarray) and hidden.ndim != 1)):
            raise ValueError(f"hidden must be a list of widths (e.g. [64] * depth), got {hidden!r}")
        hidden = list(hidden)
        for name, value in (("n_in", n_in), ("n_out", n_out)):
            if not _is_size(value):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if len(hidden) < 1:
            raise ValueError("depth must be >= 1 (give at least one hidden width)")
        if not all(map(_is_size, hidden)):
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
        if norm is not None and (not isinstance(norm, str) or norm not in NORMS):
            raise ValueError(f"unknown norm {norm!r}; valid: None, {', '.join(repr(n) for n in NORMS)}")
        if not isinstance(residual, (bool, np.bool_)):
            raise ValueError(f"residual must be True or False, got {residual!r}")
        if (isinstance(residual_scale, (bool, np.bool_)) or np.ndim(residual_scale) != 0
                or np.asarray(residual_scale).dtype.kind not in "iuf" or not math.isfinite(residual_scale)):
            raise ValueError(f"residual_scale must be a finite number, got {residual_scale!r}")
        if residual and len(set(hidden)) > 1:
            raise ValueError(f"residual connections need equal hidden widths, got {hidden}")
        self.dtype = np.dtype(DTYPES[dtype_name])
        self.activation = activations.get(activation, **(activation_params or {}))
        self.loss_fn = losses.get(loss)
        initializers.get(init)
        initializers.check_params(init_params or {})
        self.sizes = [int(n_in)] + [int(w) for w in hidden] + [int(n_out)]
        self.dropout = dropout
        self.norm, self.residual, self.residual_scale = norm, bool(residual), float(residual_scale)
        self.seed = seed
        self.config = dict(activation=self.activation.name, init=init, loss=self.loss_fn.name,
                           dropout=dropout, dtype=self.dtype.name, seed=seed, sigma_b=sigma_b,
                           init_params=dict(init_params or {}), activation_params=self.activation.param_values(),
                           norm=norm, residual=self.residual, residual_scale=self.residual_scale)
        self._build(init, init_params or {}, sigma_b)
        self.weight_updates = None  # the last optimizer step's delta W_l, l = 1..L (None before any)
        self.probe_loss = self.probe_accuracy = float("nan")
        self.last_masks = None

    def _build(self, init, init_params, sigma_b):
        """The layers, parameters drawn layer by layer from the "init" stream (W_l, then b_l)."""
        init_rng, dropout_rng = generator(self.seed, "init"), generator(self.seed, "dropout")
        self.dense, self.norms, self.activation_layers, self.dropouts = [], [], [], []
        self.layers = []  # hidden blocks (layers.Sequential or layers.Residual), then the output Dense
        for l, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            W = initializers.init_weights(init, init_rng, fan_in, fan_out, self.dtype, **init_params)
            b = initializers.init_bias(init_rng, fan_out, self.dtype, sigma_b)
            dense = layers.Dense(np.ascontiguousarray(W, dtype=self.dtype), b, input_grad=l > 0)
            self.dense.append(dense)
            if l == self.n_layers - 1:
                self.layers.append(dense)
                break
            block = [dense]
            if self.norm:
                self.norms.append(NORMS[self.norm](fan_out, self.dtype))
                block.append(self.norms[-1])
            self.activation_layers.append(layers.Activation(self.activation))
            block.append(self.activation_layers[-1])
            if self.dropout > 0:
                self.dropouts.append(layers.Dropout(self.dropout, dropout_rng, self.dtype))
                block.append(self.dropouts[-1])
            self.layers.append(layers.Residual(block, self.residual_scale) if self.residual and l > 0
                               else layers.Sequential(block))
        self.weights = [d.params["W"] for d in self.dense]
        self.biases = [d.params["b"] for d in self.dense]
        self.norm_scales = [n.params["gamma"] for n in self.norms]
        self.norm_shifts = [n.params["beta"] for n in self.norms]
        self._synced = ()

    def __setstate__(self, state):  # a copy's arrays are new objects: check them at first use
        self.__dict__.update(state)
        self._synced = ()

    # ------------------------------------------------------------------ shape
    @property
    def n_layers(self):
        """L: hidden layers + the output layer."""
        return len(self.sizes) - 1

    @property
    def update_norms(self):
        """||delta W_l||_F of the last optimizer step, l = 1..L (zeros before any), from the updates
        it left in ``weight_updates``: computed when read, since only the probes read them."""
        if self.weight_updates is None:
            return np.zeros(self.n_layers)
        return probes.norms(self.weight_updates)

    @property
    def depth(self):
        return len(self.sizes) - 2

    @property
    def hidden_layers(self):
        """The hidden blocks, l = 1..L-1 (their cache's "out" is a_l)."""
        return self.layers[:-1]

    def _owners(self, name):
        return {"weights": self.dense, "biases": self.dense,
                "norm_scales": self.norms, "norm_shifts": self.norms}[name]

    def parameters(self):
        """Every parameter array, updated in place by the optimizers: weights W_1..W_L, biases
        b_1..b_L, then norm scales and shifts of the hidden layers. An entry of one of these
        lists that was replaced (``net.weights[0] = W``) is copied into the network first (a new
        array, in the network's dtype, that becomes the entry); ValueError on a bad shape, with
        nothing changed."""
        self._sync()
        return [*self.weights, *self.biases, *self.norm_scales, *self.norm_shifts]

    def _ids(self):
        return tuple(map(id, [*self.weights, *self.biases, *self.norm_scales, *self.norm_shifts]))

    def _sync(self):
        # fast path: the same arrays as after the last sync (ids of live arrays are unique, and
        # the layers keep every array that was synced alive)
        if self._ids() == self._synced:
            return
        replaced = []
        for name, key in PARAMETER_LISTS:
            entries, owners = getattr(self, name), self._owners(name)
            if len(entries) == len(owners) and all(a is o.params[key] for a, o in zip(entries, owners)):
                continue
            shapes = [o.params[key].shape for o in owners]
            if len(entries) != len(owners) or any(np.shape(a) != s for a, s in zip(entries, shapes)):
                if name in ("weights", "biases"):
                    shapes = [d.params[k].shape for k in ("W", "b") for d in self.dense]
                    got = [np.shape(a) for a in list(self.weights) + list(self.biases)]
                    raise ValueError(f"weights and biases must have shapes {shapes}, got {got}")
                raise ValueError(f"{name} must have shapes {shapes}, got {[np.shape(a) for a in entries]}")
            replaced.append((name, key, entries, owners))
        for name, key, entries, owners in replaced:
            fresh = []
            for a, o in zip(entries, owners):
                if a is not o.params[key]:
                    copy = np.empty(o.params[key].shape, self.dtype)
                    np.copyto(copy, a, casting="same_kind")
                    o.params[key] = copy
                fresh.append(o.params[key])
            if isinstance(entries, list):
                entries[:] = fresh
            else:
                setattr(self, name, fresh)
        self._synced = self._ids()

    def __repr__(self):
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, default in
                        (("norm", None), ("residual", False), ("residual_scale", 1.0)) if getattr(self, k) != default)
        return (f"MLP(sizes={self.sizes}, activation={self.activation.name!r}, init={self.config['init']!r}, "
                f"loss={self.loss_fn.name!r}, dropout={self.dropout}, dtype={self.dtype.name!r}{extra})")

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
    def _forward(self, X, train):
        self._sync()
        for layer in self.layers:
            X = layer.forward(X, train)
        return X

    def _backward(self, dz):
        for layer in reversed(self.layers):
            dz = layer.backward(dz)

    def _keep_for_probes(self, keep):
        """Make the next passes keep what the probes read (z, u, dL/dz) in the layers' caches."""
        for layer in self.dense + self.activation_layers:
            layer.keep_for_probes = keep

    def _grads(self, deltas):
        return Grads([d.grads["W"] for d in self.dense], [d.grads["b"] for d in self.dense],
                     [d.cache["dz"] for d in self.dense] if deltas else [],
                     [n.grads["gamma"] for n in self.norms], [n.grads["beta"] for n in self.norms])

    def loss_and_grads(self, X, y, train=True, masks=None, deltas=False):
        """Mean loss on (X, y) and its gradients.

        ``train`` turns dropout on and makes BatchNorm use and update the batch's statistics.
        ``masks`` (a list of one array per hidden layer, already scaled by 1/(1-p)) fixes the
        dropout masks instead of drawing them. ``deltas`` also returns dL/dz_l of every layer in
        ``Grads.deltas`` (otherwise empty: a training step does not keep them).
        """
        X, y = self.check_inputs(X, y)
        if masks is not None:
            if not (train and self.dropout > 0):
                raise ValueError("masks are only used with dropout on: give train=True and a network "
                                 f"with dropout > 0 (this one has dropout={self.dropout}, train={train})")
            expected = [(X.shape[0], n) for n in self.sizes[1:-1]]
            shapes = [np.shape(m) for m in masks]
            if shapes != expected:
                raise ValueError(f"masks must be {self.depth} arrays of shapes {expected}, got {shapes}")
            for d, m in zip(self.dropouts, masks):
                d.fixed_mask = np.array(m, dtype=self.dtype)
        if deltas:
            self._keep_for_probes(True)
        try:
            z = self._forward(X, train)
            loss, dz = self.loss_fn.forward_backward(z, y)
            self._backward(dz)
        finally:
            for d in self.dropouts:
                d.fixed_mask = None
            if deltas:
                self._keep_for_probes(False)
        self.last_masks = [d.cache["mask"] for d in self.dropouts] if train and self.dropout > 0 else None
        return loss, self._grads(deltas)

    def forward(self, X, train=False):
        """Logits z_L for X (a new array). Dropout and BatchNorm's batch statistics (and the
        update of its running averages) only when ``train``."""
        X, _ = self.check_inputs(X)
        return self._forward(X, train)

    def loss(self, X, y):
        """Mean loss at evaluation (no dropout; BatchNorm's running averages)."""
        X, y = self.check_inputs(X, y)
        return self.loss_fn.forward_backward(self._forward(X, train=False), y)[0]

    def evaluate(self, X, y):
        """(mean loss, accuracy) at evaluation (no dropout; BatchNorm's running averages)."""
        X, y = self.check_inputs(X, y)
        z = self._forward(X, train=False)
        return self.loss_fn.forward_backward(z, y)[0], self.loss_fn.accuracy(z, y)

    # ----------------------------------------------------------------- probes
    def _probe_pass(self, X, y):
        """One forward and backward pass on (X, y) with dropout off and BatchNorm on the batch's
        own statistics (its running averages untouched); the layers' caches then hold it."""
        X, y = self.check_inputs(X, y)
        for n in self.norms:
            if isinstance(n, layers.BatchNorm):
                n.batch_stats = True
        self._keep_for_probes(True)
        try:
            z = self._forward(X, train=False)
            self.probe_accuracy = self.loss_fn.accuracy(z, y)
            self.probe_loss, dz = self.loss_fn.forward_backward(z, y)
            self._backward(dz)
        finally:
            for n in self.norms:
                if isinstance(n, layers.BatchNorm):
                    n.batch_stats = False
            self._keep_for_probes(False)

    def probe(self, X, y):
        """Per-layer statistics on (X, y) with dropout off: {stat_name: array over layers 1..L}.

        See ``nncore.probes`` for the definitions. BatchNorm normalizes with the probe batch's
        own statistics (as in training, where the pathologies under study arise) and its running
        averages are not updated. The network's parameters and the gradients returned by
        ``loss_and_grads`` are unchanged. The probe batch's mean loss and accuracy are left in
        ``net.probe_loss`` and ``net.probe_accuracy``.
        """
        self._probe_pass(X, y)
        return probes.layer_stats(self)

    def probe_with_histograms(self, X, y, bins=64):
        """(stats, histograms): ``probe`` plus per-layer histograms, see probes.layer_histograms."""
        probes.check_bins(bins)
        self._probe_pass(X, y)
        return probes.layer_stats(self), probes.layer_histograms(self, bins)

    # --------------------------------------------------------------- Jacobians
    def _check_row_jacobian(self):
        if self.norm == "batch":
            raise ValueError("no per-row Jacobian for a network with BatchNorm: its rows are coupled through "
                             "the batch statistics (each row's output depends on every other row of the batch)")

    def _hidden_jvps(self, X, per_layer):
        """Forward X through the hidden blocks one at a time (dropout off, caches kept), pushing
        tangents through each block's ``jvp``; yields (l, tangents after block l), of shape
        (batch, k, n_l). ``per_layer``: each block starts from the identity on its own input
        (k = n_(l-1)); otherwise the identity on x is chained through all blocks (k = n_in)."""
        X, _ = self.check_inputs(X)
        self._check_row_jacobian()
        self._sync()
        self._keep_for_probes(True)
        try:
            a, t = X, None
            for l, block in enumerate(self.hidden_layers, start=1):
                if per_layer or t is None:
                    n = a.shape[1]
                    t = np.broadcast_to(np.eye(n, dtype=self.dtype), (a.shape[0], n, n))
                a = block.forward(a, train=False)
                t = block.jvp(t)
                yield l, t
        finally:
            self._keep_for_probes(False)

    def jacobian(self, X):
        """Input-output Jacobians of the last hidden layer, J_n = d a_(L-1) / d x_n for every row x_n
        of X: an array of shape (batch, n_(L-1), n_in), J_n[i, j] = d a_(L-1),i / d x_n,j.

        Evaluated as at a probe or at evaluation: dropout off; LayerNorm and residual blocks
        included. Forward mode, one block at a time (each block's ``jvp``): the identity
        (batch, n_in, n_in) is pushed through the hidden blocks. ValueError for a network with
        BatchNorm, whose rows are coupled through the batch statistics.
        """
        for _, t in self._hidden_jvps(X, per_layer=False):
            pass
        return np.ascontiguousarray(np.swapaxes(t, 1, 2))

    def layer_jacobians(self, X):
        """Each layer's Jacobian on its own, for every row of X (Glorot & Bengio 2010, section 4.2.1):
        yields (l, J_l) for l = 1..L, J_l of shape (batch, n_l, n_(l-1)) with
        J_l[n] = d a_l / d a_(l-1) at row n's forward pass (hidden layers, dropout off: the whole
        block, with its norm and residual path), and for the linear output layer
        d z_L / d a_(L-1) = W_L^T, the same for every row. One layer at a time (a generator): at
        width 1000 each is 8 MB per row. ValueError with BatchNorm (see ``jacobian``).
        """
        for l, t in self._hidden_jvps(X, per_layer=True):
            yield l, np.swapaxes(t, 1, 2)
        W = self.weights[-1]
        yield self.n_layers, np.broadcast_to(W.T, (np.shape(X)[0],) + W.T.shape)


# ====================================================================== recurrent networks
@dataclass
class RecurrentGrads:
    """Gradients of an ``RNN``'s batch-mean loss: ``cells[k]`` {W_ih, W_hh, b_ih, b_hh} of stacked
    layer k+1, ``readout`` {W, b}; ``hidden_deltas[k]`` the total dL/dh_t of layer k+1, shape
    (B, T, H) (a view), empty unless asked for (loss_and_grads(deltas=True))."""
    cells: list
    readout: dict
    hidden_deltas: list = field(default_factory=list)

    def parameters(self):
        """Every gradient, in the order of ``RNN.parameters()``."""
        return _recurrent_order(self.cells, self.readout)


def _recurrent_order(cells, readout):
    """The one order of an RNN's parameters (or gradients): the main weight of each layer first,
    W_hh of layers 1..K and the readout's W (so that an optimizer's ``weight_updates``, its first
    ``n_layers`` updates, are theirs), then W_ih of every layer, b_ih, b_hh, the readout's b."""
    return [*(c["W_hh"] for c in cells), readout["W"], *(c["W_ih"] for c in cells),
            *(c["b_ih"] for c in cells), *(c["b_hh"] for c in cells), readout["b"]]


class RNN:
    """A stack of recurrent layers (``nncore.recurrent``) and a Dense readout on the top layer's h_T.

    RNN(n_in, hidden, n_out, cell="rnn", activation="tanh", num_layers=1, init="pytorch",
        recurrent_init=None, forget_bias=0.0, loss="cross_entropy", seed=0, dtype="float64",
        activation_params=None, init_params=None, recurrent_params=None, sigma_b=0.0)

    X has shape (batch, T, n_in), batch first; steps t = 1..T, h_0 = 0 (and c_0 = 0). Layer 1
    reads x_t, layer k > 1 reads h_t of layer k-1; all have ``hidden`` = H units. The readout is
    z = h_T W + b, the logits (or, with loss="mse", the regression outputs: targets of shape
    (batch, n_out), real-valued, or one-hot). ``cell`` is "rnn" (Elman, with ``activation``: any
    name of ``nncore.activations.REGISTRY``), "lstm" or "gru" (torch's fixed gate nonlinearities;
    ``activation`` must stay "tanh" for them). Each cell equals torch.nn.RNN/LSTM/GRU, see
    ``nncore.recurrent``; ``net.cells[k].params`` holds W_ih (n_in_k, G H), W_hh (H, G H), b_ih and
    b_hh (G H,), and ``net.readout.params`` W (H, n_out) and b (n_out,).

    Initialization, from the "init" stream, layer by layer (W_ih, W_hh, b_ih, b_hh), then the readout:
      init="pytorch"  torch's defaults: every weight and bias of a cell U(+-1/sqrt(H)), the readout
                      as torch.nn.Linear (W and b U(+-1/sqrt(H)));
      init=<name>     an nncore initializer for W_ih, W_hh (gate block by gate block, fan-in
                      based: init="normal", init_params={"sigma_w": s} gives Var = s^2/fan_in) and
                      the readout's W; b_ih ~ N(0, sigma_b^2) (zero by default), b_hh = 0 and the
                      readout's b zero (or N(0, sigma_b^2)), so that b_ih + b_hh has variance sigma_b^2;
      recurrent_init  W_hh's own scheme (default: ``init``): any of the above, or "identity"
                      (IRNN, W_hh = gain I per gate block); ``recurrent_params`` its sigma_w / gain
                      (default: ``init_params``);
      forget_bias     added to b_ih's forget gate f (lstm) or update gate z (gru) after drawing:
                      the total gate bias b_ih + b_hh grows by it (Jozefowicz et al. 2015); 0 for rnn.

    The loss is the batch mean; ``loss_and_grads`` fills each layer's ``grads`` and returns them
    as ``RecurrentGrads``, whose ``parameters()`` follow ``net.parameters()``, so the optimizers,
    weight decay and clipping of ``nncore.optimizers`` work unchanged. ``probe`` gives the
    statistics through time of ``nncore.probes_recurrent``.
    """
    norm = None  # no normalization layers (the training loop's BatchNorm check reads it)

    def __init__(self, n_in, hidden, n_out, cell="rnn", activation="tanh", num_layers=1, init="pytorch",
                 recurrent_init=None, forget_bias=0.0, loss="cross_entropy", seed=0, dtype="float64",
                 activation_params=None, init_params=None, recurrent_params=None, sigma_b=0.0):
        for name, value in (("n_in", n_in), ("hidden", hidden), ("n_out", n_out), ("num_layers", num_layers)):
            if not _is_size(value):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(cell, str) or cell not in recurrent.REGISTRY:
            raise ValueError(f"unknown cell {cell!r}; valid: {', '.join(recurrent.REGISTRY)}")
        if cell != "rnn" and (activation != "tanh" or activation_params):
            raise ValueError(f"activation applies to cell 'rnn' only (the {cell} cell's gates are torch's "
                             f"sigmoid and tanh), got activation={activation!r}")
        try:
            dtype_name = np.dtype(dtype).name if dtype not in DTYPES else dtype
        except TypeError:
            dtype_name = None
        if dtype_name not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        if not isinstance(init, str) or init not in recurrent.init_names():
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(recurrent.init_names())}")
        recurrent_init = init if recurrent_init is None else recurrent_init
        if not isinstance(recurrent_init, str) or recurrent_init not in recurrent.recurrent_init_names():
            raise ValueError(f"unknown recurrent_init {recurrent_init!r}; valid: "
                             f"{', '.join(recurrent.recurrent_init_names())}")
        forget_bias = number("forget_bias", forget_bias)
        if cell == "rnn" and forget_bias != 0.0:
            raise ValueError(f"forget_bias applies to cells 'lstm' and 'gru' only, got {forget_bias} for cell 'rnn'")
        sigma_b = number("sigma_b", sigma_b, low=0.0)
        if sigma_b and init == recurrent.PYTORCH_INIT:
            raise ValueError(f"sigma_b applies to nncore's initializers; init='pytorch' draws every bias "
                             f"U(+-1/sqrt(H)), got sigma_b={sigma_b}")
        init_params = dict(init_params or {})
        recurrent_params = dict(init_params if recurrent_params is None else recurrent_params)
        initializers.check_params(init_params)
        initializers.check_params(recurrent_params)
        generator(seed, "init")  # validates the seed
        self.dtype = np.dtype(DTYPES[dtype_name])
        self.cell = cell
        self.activation = activations.get(activation, **(activation_params or {}))
        self.loss_fn = losses.get(loss)
        self.n_in, self.hidden, self.n_out, self.num_layers = int(n_in), int(hidden), int(n_out), int(num_layers)
        self.seed = seed
        self.config = dict(cell=cell, activation=self.activation.name if cell == "rnn" else None,
                           num_layers=self.num_layers, init=init, recurrent_init=recurrent_init,
                           forget_bias=forget_bias, loss=self.loss_fn.name, seed=seed, dtype=self.dtype.name,
                           activation_params=self.activation.param_values(), init_params=init_params,
                           recurrent_params=recurrent_params, sigma_b=sigma_b)
        self._build(init, recurrent_init, init_params, recurrent_params, sigma_b, forget_bias)
        self.weight_updates = None
        self.probe_loss = self.probe_accuracy = self.probe_grad_norm = float("nan")

    def _build(self, init, recurrent_init, init_params, recurrent_params, sigma_b, forget_bias):
        rng, H, dt = generator(self.seed, "init"), self.hidden, self.dtype
        cls = recurrent.REGISTRY[self.cell]
        G = cls.gates
        self.cells = []
        for k in range(self.num_layers):
            fan_in = self.n_in if k == 0 else H
            W_ih = recurrent.init_gate_weights(init, rng, fan_in, H, G, dt, init_params)
            W_hh = recurrent.init_gate_weights(recurrent_init, rng, H, H, G, dt, recurrent_params)
            if init == recurrent.PYTORCH_INIT:
                bound = 1.0 / math.sqrt(H)
                b_ih, b_hh = (rng.uniform(-bound, bound, G * H).astype(dt) for _ in range(2))
            else:
                b_ih, b_hh = initializers.init_bias(rng, G * H, dt, sigma_b), np.zeros(G * H, dt)
            if forget_bias:
                b_ih[H:2 * H] += forget_bias  # f (lstm: i, f, g, o) or z (gru: r, z, n)
            args = (W_ih, W_hh, b_ih, b_hh)
            self.cells.append(cls(*args, self.activation, input_grad=k > 0) if self.cell == "rnn"
                              else cls(*args, input_grad=k > 0))
        if init == recurrent.PYTORCH_INIT:
            bound = 1.0 / math.sqrt(H)
            W = rng.uniform(-bound, bound, (H, self.n_out)).astype(dt)
            b = rng.uniform(-bound, bound, self.n_out).astype(dt)
        else:
            W = initializers.init_weights(init, rng, H, self.n_out, dt, **init_params).astype(dt, copy=False)
            b = initializers.init_bias(rng, self.n_out, dt, sigma_b)
        self.readout = layers.Dense(np.ascontiguousarray(W), b)

    # ------------------------------------------------------------------ shape
    @property
    def n_layers(self):
        """Stacked recurrent layers + the readout."""
        return self.num_layers + 1

    @property
    def depth(self):
        return self.num_layers

    @property
    def update_norms(self):
        """||delta W||_F of the last optimizer step for W_hh of each layer and the readout's W
        (zeros before any)."""
        if self.weight_updates is None:
            return np.zeros(self.n_layers)
        return probes.norms(self.weight_updates)

    def parameters(self):
        """Every parameter array, updated in place by the optimizers; the order is
        ``RecurrentGrads.parameters()``'s: W_hh of each layer, the readout's W, then W_ih, b_ih
        and b_hh of each layer and the readout's b."""
        return _recurrent_order([c.params for c in self.cells], self.readout.params)

    def __repr__(self):
        act = f", activation={self.activation.name!r}" if self.cell == "rnn" else ""
        return (f"RNN(n_in={self.n_in}, hidden={self.hidden}, n_out={self.n_out}, cell={self.cell!r}{act}, "
                f"num_layers={self.num_layers}, init={self.config['init']!r}, "
                f"recurrent_init={self.config['recurrent_init']!r}, loss={self.loss_fn.name!r}, "
                f"dtype={self.dtype.name!r})")

    # ------------------------------------------------------------- validation
    def check_inputs(self, X, y=None):
        """Return X (in the network's dtype, batch first) and y, validated; ValueError on bad
        shape or values."""
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[2] != self.n_in:
            raise ValueError(f"X must have shape (batch, T, {self.n_in}), got {X.shape}")
        if X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(f"X must hold at least one example of at least one step, got shape {X.shape}")
        X = finite_in(X, self.dtype, "X")
        if y is not None:
            y = self.loss_fn.check_targets(y, X.shape[0], self.n_out, self.dtype)
        return X, y

    # ------------------------------------------------------------ computation
    def _forward(self, X):
        h = np.ascontiguousarray(X.transpose(1, 0, 2))  # time-major inside the cells
        for cell in self.cells:
            h = cell.forward(h)
        return self.readout.forward(h[-1], False)

    def _backward(self, dz):
        dh_T = self.readout.backward(dz)
        dh = np.zeros((self.cells[-1].cache["h"].shape[0] - 1, *dh_T.shape), dh_T.dtype)
        dh[-1] = dh_T
        for cell in reversed(self.cells):
            dh = cell.backward(dh)

    def loss_and_grads(self, X, y, train=True, deltas=False):
        """Mean loss on (X, y) and its ``RecurrentGrads`` (new arrays); with ``deltas`` also the
        total dL/dh_t of every layer, ``hidden_deltas[k]`` of shape (B, T, H). ``train`` is
        accepted for the training loop's sake: nothing here differs between training and evaluation."""
        X, y = self.check_inputs(X, y)
        loss, dz = self.loss_fn.forward_backward(self._forward(X), y)
        self._backward(dz)
        return loss, self._grads(deltas)

    def _grads(self, deltas):
        return RecurrentGrads([dict(c.grads) for c in self.cells], dict(self.readout.grads),
                              [c.cache["dh"].transpose(1, 0, 2) for c in self.cells] if deltas else [])

    def forward(self, X, train=False):
        """The readout's output z for X (a new array)."""
        X, _ = self.check_inputs(X)
        return self._forward(X)

    def loss(self, X, y):
        """Mean loss."""
        X, y = self.check_inputs(X, y)
        return self.loss_fn.forward_backward(self._forward(X), y)[0]

    def evaluate(self, X, y):
        """(mean loss, accuracy); the accuracy is NaN for a regression with one output (mse)."""
        X, y = self.check_inputs(X, y)
        z = self._forward(X)
        return self.loss_fn.forward_backward(z, y)[0], self.loss_fn.accuracy(z, y)

    # ----------------------------------------------------------------- probes
    def _probe_pass(self, X, y):
        X, y = self.check_inputs(X, y)
        self.readout.keep_for_probes = True  # its z and dL/dz, for the histograms
        try:
            z = self._forward(X)
            self.probe_accuracy = self.loss_fn.accuracy(z, y)
            self.probe_loss, dz = self.loss_fn.forward_backward(z, y)
            self._backward(dz)
        finally:
            self.readout.keep_for_probes = False
        self.probe_grad_norm = math.sqrt(probes.sum_squares(self._grads(False).parameters()).sum())

    def probe(self, X, y):
        """Statistics through time on (X, y): {stat: array of shape (num_layers, T)}, layer k at
        row k-1 and step t at column t-1 (see ``nncore.probes_recurrent``). The parameters are
        unchanged; the probe batch's loss, accuracy and global gradient norm (every parameter's
        gradient) are left in ``probe_loss``, ``probe_accuracy`` and ``probe_grad_norm``."""
        self._probe_pass(X, y)
        return probes_recurrent.step_stats(self)

    def probe_with_histograms(self, X, y, bins=64):
        """(stats, histograms): ``probe`` plus ``probes_recurrent.layer_histograms``."""
        probes.check_bins(bins)
        self._probe_pass(X, y)
        return probes_recurrent.step_stats(self), probes_recurrent.layer_histograms(self, bins)
