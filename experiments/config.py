"""Structured config schema (validated by Hydra/OmegaConf), range checks, and run identity.

OmegaConf checks keys and types; ``validate`` checks ranges and names, so that a
bad value fails before any run is created, with a message naming the key.
"""
import hashlib
import json
import math
from dataclasses import dataclass, field, make_dataclass
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from nncore import activations, initializers, losses, optimizers, recurrent
from nncore.probes_recurrent import TIME_BASE

from . import datasets


class ConfigError(ValueError):
    """A config value is out of range or names nothing; the message names the key."""


@dataclass
class ModelConf:
    depth: int = 5            # number of hidden layers
    width: int = 64
    dropout: float = 0.0
    norm: str = "none"        # none | batch | layer: BatchNorm1d or LayerNorm between Dense and phi
    residual: bool = False    # a_l = a_(l-1) + residual_scale * h_l for hidden layers l >= 2
    residual_scale: float = 1.0
    # Recurrent nets (arch=rnn | lstm | gru): depth is then the number of stacked layers, width H.
    cell: str = "none"           # none (an MLP) | rnn | lstm | gru
    recurrent_init: str = "same"  # W_hh: same (as init) | identity | orthogonal | any init name
    recurrent_gain: float = 1.0  # orthogonal's gain, identity's scale (W_hh = gain * I)
    forget_bias: float = 0.0     # added to the LSTM's forget-gate bias, the GRU's update-gate bias


# The architecture keys at their defaults (a plain MLP): left out of a run's identity, so
# that configs which do not set them keep the hashes they had before the keys existed.
ARCH_DEFAULTS = {"norm": "none", "residual": False, "residual_scale": 1.0}
NORMS = ("none", "batch", "layer")
# The recurrent keys: in a run's identity only when model.cell is a recurrent cell (and then only
# those that change its network: forget_bias for lstm and gru, recurrent_gain for orthogonal and
# identity), so that every MLP keeps the hash it had before they existed.
RECURRENT_KEYS = ("cell", "recurrent_init", "recurrent_gain", "forget_bias")
CELLS = tuple(recurrent.REGISTRY)
SAME_INIT = "same"   # model.recurrent_init: W_hh drawn as init.name draws W_ih
GATED_CELLS = ("lstm", "gru")          # take forget_bias
SCALED_RECURRENT_INITS = ("orthogonal", "identity")   # take recurrent_gain
RECURRENT_DEFAULTS = {"recurrent_init": "same", "recurrent_gain": 1.0, "forget_bias": 0.0}  # as ModelConfig


def _activation_conf():
    """The activation group's schema: ``name`` and every parameter that some registered activation
    declares (``nncore.activations``' ``params``), typed by its default, so that an override such as
    ``activation.alpha=0.2`` is type-checked at compose time (a parameter whose declared defaults
    differ in type between classes is typed Any; ``validate`` still range-checks every one). Each
    activation's YAML sets its own parameters' defaults; the schema's default (the first declaring class's) fills the key for the
    activations that do not take it, which ignore it."""
    defaults = {}
    for name in sorted(activations.REGISTRY):
        for key, default in activations.REGISTRY[name].params.items():
            defaults.setdefault(key, []).append(default)
    fields = [("name", str, field(default="tanh"))]
    for key in sorted(defaults):
        kinds = {type(v) for v in defaults[key]}
        fields.append((key, kinds.pop() if len(kinds) == 1 else Any, field(default=defaults[key][0])))
    return make_dataclass("ActivationConf", fields)


ActivationConf = _activation_conf()
ActivationConf.__module__ = __name__  # make_dataclass names module "types" (before 3.12): composed configs must pickle
# Activation parameters that every config's identity carries, whatever its activation takes: the
# schema held leaky_relu's alpha for every activation when existing runs' hashes were computed.
# A parameter declared later enters only the identity of configs whose activation takes it.
HASHED_ACTIVATION_PARAMS = ("alpha",)


@dataclass
class InitConf:
    name: str = "xavier_uniform"
    sigma_w: float = 1.0      # normal: std = sigma_w / sqrt(fan_in)
    sigma_b: float = 0.0      # biases N(0, sigma_b^2); 0 = zero biases
    gain: float = 1.0         # orthogonal
    value: float = 0.1        # constant


@dataclass
class OptimizerConf:
    """torch.optim keyword names; None means torch's default for that optimizer."""
    name: str = "sgd"
    lr: float = 0.05
    momentum: Optional[float] = None
    dampening: Optional[float] = None
    nesterov: Optional[bool] = None
    betas: Optional[List[float]] = None
    eps: Optional[float] = None
    alpha: Optional[float] = None
    centered: Optional[bool] = None
    rho: Optional[float] = None
    lr_decay: Optional[float] = None
    initial_accumulator_value: Optional[float] = None
    amsgrad: Optional[bool] = None
    weight_decay: float = 0.0


@dataclass
class DataConf:
    name: str = "digits"
    val_fraction: float = 0.2
    n_samples: int = 2000     # spirals, gaussian
    dim: int = 20             # gaussian input dimension
    n_classes: int = 10       # spirals arms / gaussian classes
    noise: float = 0.2        # spirals
    teacher_depth: int = 2    # gaussian: hidden layers of the random teacher
    cache_dir: Optional[str] = None   # mnist: scikit-learn data_home
    length: int = 50          # adding: sequence length T
    n_train: int = 10000      # adding: training examples
    n_val: int = 1000         # adding: validation examples
    order: str = "rows"       # seq_digits: rows (T = 8) | pixels (T = 64)


@dataclass
class TrainConf:
    epochs: int = 20
    batch_size: int = 64
    log_every: int = 10
    probe_size: int = 256
    clip_norm: Optional[float] = None
    dtype: str = "float64"
    loss: str = "cross_entropy"
    histogram_snapshots: int = 3     # histograms between step 0 and the end
    histogram_bins: int = 64


@dataclass
class TrackingConf:
    uri: Optional[str] = None        # None: $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db
    experiment: str = "gradpath"


@dataclass
class Config:
    model: ModelConf = field(default_factory=ModelConf)
    activation: ActivationConf = field(default_factory=ActivationConf)
    init: InitConf = field(default_factory=InitConf)
    optimizer: OptimizerConf = field(default_factory=OptimizerConf)
    data: DataConf = field(default_factory=DataConf)
    train: TrainConf = field(default_factory=TrainConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    seed: int = 0
    study: Optional[str] = None      # name of the named experiment, if any


def register():
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)


DATASETS = tuple(datasets.LOADERS)
# Keys that do not change a run's result: excluded from its identity.
NOT_IDENTITY = ("tracking",)


def _check(ok, key, message):
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def validate(cfg):
    """Raise ConfigError naming the first key whose value is out of range or unknown."""
    m, t, d, o = cfg.model, cfg.train, cfg.data, cfg.optimizer
    _check(_is_int(m.depth) and m.depth >= 1, "model.depth", f"must be an integer >= 1, got {m.depth}")
    _check(_is_int(m.width) and m.width >= 1, "model.width", f"must be an integer >= 1, got {m.width}")
    _check(0.0 <= m.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {m.dropout}")
    _check(m.norm in NORMS, "model.norm", f"must be one of {', '.join(NORMS)}, got {m.norm!r}")
    _check(isinstance(m.residual, bool), "model.residual", f"must be true or false, got {m.residual!r}")
    _check(math.isfinite(m.residual_scale) and m.residual_scale > 0, "model.residual_scale",
           f"must be a finite number > 0, got {m.residual_scale}")
    _validate_recurrent(cfg)
    _check(cfg.activation.name in activations.REGISTRY, "activation.name",
           f"unknown activation {cfg.activation.name!r}; valid: {', '.join(sorted(activations.REGISTRY))}")
    params = activation_params(cfg)
    cls = activations.REGISTRY[cfg.activation.name]
    # Every parameter set in cfg.activation is range-checked, also one the chosen activation ignores
    # (alpha with tanh): it enters the config's identity, so a bad value would make a new grid point.
    for key in activations.parameter_names():  # one at a time, so that the message names the key
        if key not in cfg.activation or cfg.activation[key] is None:
            continue
        owner = cls if key in cls.params else next(c for _, c in sorted(activations.REGISTRY.items())
                                                    if key in c.params)
        try:
            owner(**{key: cfg.activation[key]})
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"activation.{key}: {exc}") from None
    try:
        cls(**params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"activation: {exc}") from None
    inits = recurrent.init_names() if is_recurrent(cfg) else sorted(initializers.REGISTRY)
    _check(cfg.init.name in inits, "init.name", f"unknown initializer {cfg.init.name!r}"
           + ("" if is_recurrent(cfg) else f" for an MLP ({', '.join(sorted(set(recurrent.init_names()) - set(inits)))}: "
              "recurrent nets only)") + f"; valid: {', '.join(inits)}")
    for key in ("sigma_w", "sigma_b", "gain"):
        v = cfg.init[key]
        _check(math.isfinite(v) and v >= 0, f"init.{key}", f"must be a finite number >= 0, got {v}")
    _check(math.isfinite(cfg.init.value), "init.value", f"must be finite, got {cfg.init.value}")
    _check(o.name in optimizers.REGISTRY, "optimizer.name",
           f"unknown optimizer {o.name!r}; valid: {', '.join(sorted(optimizers.REGISTRY))}")
    _check(math.isfinite(o.lr) and o.lr > 0, "optimizer.lr", f"must be > 0, got {o.lr}")
    try:
        optimizers.get(o.name, **optimizer_kwargs(cfg))
    except ValueError as exc:
        raise ConfigError(f"optimizer: {exc}") from None
    _check(0.0 < d.val_fraction < 1.0, "data.val_fraction", f"must be in (0, 1), got {d.val_fraction}")
    _check(d.n_samples >= 10, "data.n_samples", f"must be >= 10, got {d.n_samples}")
    _check(d.dim >= 1, "data.dim", f"must be >= 1, got {d.dim}")
    _check(d.n_classes >= 2, "data.n_classes", f"must be >= 2, got {d.n_classes}")
    _check(d.noise >= 0, "data.noise", f"must be >= 0, got {d.noise}")
    _check(d.teacher_depth >= 1, "data.teacher_depth", f"must be >= 1, got {d.teacher_depth}")
    _check(t.epochs >= 0, "train.epochs", f"must be >= 0, got {t.epochs}")
    _check(t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}")
    _check(t.log_every >= 1, "train.log_every", f"must be >= 1, got {t.log_every}")
    _check(t.probe_size >= 1, "train.probe_size", f"must be >= 1, got {t.probe_size}")
    _check(t.clip_norm is None or (math.isfinite(t.clip_norm) and t.clip_norm > 0), "train.clip_norm",
           f"must be > 0 or null, got {t.clip_norm}")
    _check(t.dtype in ("float64", "float32"), "train.dtype", f"must be float64 or float32, got {t.dtype!r}")
    _check(t.loss in losses.REGISTRY, "train.loss",
           f"unknown loss {t.loss!r}; valid: {', '.join(sorted(losses.REGISTRY))}")
    if d.name in datasets.REGRESSION:
        _check(t.loss == "mse", "train.loss", f"data={d.name} is a regression (float targets): use mse, got {t.loss!r}")
    else:
        # nncore's mse and bce take one-hot or multi-label targets, and their accuracies are not a
        # classifier's: these datasets give class labels, the trainability verdict a class accuracy.
        _check(t.loss == "cross_entropy", "train.loss",
               f"{t.loss!r} needs one-hot or multi-label targets; data={d.name} gives class labels: "
               "use cross_entropy")
    _check(t.histogram_snapshots >= 0, "train.histogram_snapshots", f"must be >= 0, got {t.histogram_snapshots}")
    _check(t.histogram_bins >= 1, "train.histogram_bins", f"must be >= 1, got {t.histogram_bins}")
    _check(_is_int(cfg.seed) and cfg.seed >= 0, "seed", f"must be an integer >= 0, got {cfg.seed}")


def _validate_recurrent(cfg):
    """The recurrent keys and the pairing of architecture and data: a recurrent cell reads
    sequences (batch, T, features), an MLP vectors; each the other's data is one line."""
    m, d = cfg.model, cfg.data
    _check(m.cell in ("none", *CELLS), "model.cell", f"must be one of none, {', '.join(CELLS)}, got {m.cell!r}")
    names = (SAME_INIT, *recurrent.recurrent_init_names())
    _check(m.recurrent_init in names, "model.recurrent_init", f"must be one of {', '.join(names)}, got {m.recurrent_init!r}")
    _check(math.isfinite(m.recurrent_gain) and m.recurrent_gain >= 0, "model.recurrent_gain",
           f"must be a finite number >= 0, got {m.recurrent_gain}")
    _check(math.isfinite(m.forget_bias), "model.forget_bias", f"must be finite, got {m.forget_bias}")
    _check(d.name in DATASETS, "data.name", f"unknown dataset {d.name!r}; valid: {', '.join(DATASETS)}")
    _check(_is_int(d.length) and d.length >= 2, "data.length",
           f"must be an integer >= 2 (a marker in each half), got {d.length}")
    _check(_is_int(d.n_train) and d.n_train >= 1, "data.n_train", f"must be an integer >= 1, got {d.n_train}")
    _check(_is_int(d.n_val) and d.n_val >= 1, "data.n_val", f"must be an integer >= 1, got {d.n_val}")
    _check(d.order in datasets.SEQ_DIGITS_SHAPES, "data.order",
           f"must be one of {', '.join(datasets.SEQ_DIGITS_SHAPES)}, got {d.order!r}")
    _check(d.length < TIME_BASE, "data.length", f"must be < {TIME_BASE} (the time axis's code in layer_stats), "
           f"got {d.length}")
    # A key that does not change the network is not in the run's identity: were it set, a sweep over it
    # would repeat one run under several names.
    for key in recurrent_keys_unused(m):
        if key != "cell" and m[key] != RECURRENT_DEFAULTS[key]:
            where = ("an MLP (model.cell none)" if m.cell == "none" else
                     f"cell {m.cell}" if key == "forget_bias" else f"model.recurrent_init={m.recurrent_init}")
            uses = {"recurrent_init": "recurrent nets", "forget_bias": f"cells {' and '.join(GATED_CELLS)}",
                    "recurrent_gain": f"model.recurrent_init={' or '.join(SCALED_RECURRENT_INITS)}"}[key]
            _check(False, f"model.{key}", f"applies to {uses} only, not to {where}; got {m[key]!r}")
    sequences = datasets.KINDS[d.name] == "sequences"
    if m.cell == "none":
        _check(not sequences, "data.name", f"data={d.name} gives sequences (batch, T, features): "
               f"choose a recurrent arch (arch={' | '.join(CELLS)}) or a vector dataset")
        return
    _check(sequences, "model.cell", f"arch={m.cell} reads sequences, but data={d.name} gives vectors: choose "
           f"data={' | '.join(n for n, kind in datasets.KINDS.items() if kind == 'sequences')}")
    _check(m.norm == "none", "model.norm", f"a recurrent net (cell {m.cell}) takes no normalization, got {m.norm!r}")
    _check(cfg.init.name != recurrent.PYTORCH_INIT or cfg.init.sigma_b == 0.0, "init.sigma_b",
           f"init=pytorch draws every bias U(+-1/sqrt(H)); sigma_b applies to nncore's initializers, got {cfg.init.sigma_b}")
    _check(m.cell == "rnn" or cfg.activation.name == "tanh", "activation.name",
           f"applies to cell rnn only: cell {m.cell} has its own nonlinearities (leave activation=tanh), "
           f"got {cfg.activation.name!r}")
    _check(not m.residual, "model.residual", f"a recurrent net (cell {m.cell}) takes no residual connections")
    _check(m.dropout == 0.0, "model.dropout", f"a recurrent net (cell {m.cell}) takes no dropout, got {m.dropout}")


def is_recurrent(cfg):
    """Whether the config (composed, or resolved to a dict) builds a recurrent net (model.cell rnn,
    lstm or gru)."""
    return (cfg.get("model") or {}).get("cell", "none") not in (None, "none")


def seq_len(cfg):
    """T of a recurrent run's data (adding: data.length; seq_digits: 8 or 64), else None."""
    return datasets.sequence_length(cfg.data) if datasets.KINDS.get(cfg.data.name) == "sequences" else None


def activation_params(cfg):
    """{parameter: value} of cfg.activation that its activation takes ({} for most): with the
    name, what ``nncore.activations.get`` (and ``MLP(activation_params=...)``) builds it from."""
    values = OmegaConf.to_container(cfg.activation, resolve=True)
    return activations.parameters_of(cfg.activation.name, values)


def optimizer_kwargs(cfg):
    """torch.optim keyword arguments set in cfg.optimizer (None = that optimizer's default)."""
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.optimizer).items() if k != "name" and v is not None}
    if not kwargs.get("weight_decay"):
        kwargs.pop("weight_decay", None)
    if cfg.train.clip_norm is not None:
        kwargs["clip_norm"] = cfg.train.clip_norm
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return kwargs


def identity(cfg):
    """The resolved config minus keys that do not change the result.

    The architecture keys enter only where they change the network: model.norm unless "none",
    model.residual when true, model.residual_scale when residual and != 1.0 (it is unused
    without residual connections). A plain MLP's identity is what it was before they existed.
    Of the activation's parameters, those it takes and HASHED_ACTIVATION_PARAMS enter."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_IDENTITY:
        container.pop(key, None)
    container.pop("hydra", None)
    activation = container.get("activation", {})
    cls = activations.REGISTRY.get(activation.get("name"))
    if cls is not None:
        for key in [k for k in activation if k not in ("name", *cls.params, *HASHED_ACTIVATION_PARAMS)]:
            del activation[key]
    model = container.get("model", {})
    residual = model.get("residual", False)
    for key, default in ARCH_DEFAULTS.items():
        if key in model and (model[key] == default or (key == "residual_scale" and not residual)):
            del model[key]
    for key in recurrent_keys_unused(model):
        model.pop(key, None)
    data = container.get("data", {})
    for key in SEQUENCE_DATA_KEYS:
        if key not in DATA_KEYS.get(data.get("name"), ()):
            data.pop(key, None)
    return container


def recurrent_keys_unused(model):
    """The recurrent keys of ``model`` (a dict) that do not change its network: all of them for an
    MLP, forget_bias for an Elman RNN, recurrent_gain unless W_hh is orthogonal or identity."""
    cell = model.get("cell", "none")
    if cell == "none":
        return list(RECURRENT_KEYS)
    unused = [] if cell in GATED_CELLS else ["forget_bias"]
    if model.get("recurrent_init") not in SCALED_RECURRENT_INITS:
        unused.append("recurrent_gain")
    return unused


def arch_kwargs(cfg):
    """MLP keyword arguments for the architecture keys that differ from a plain MLP; {} for a
    plain MLP, so plain runs call MLP exactly as before the keys existed."""
    m = cfg.model
    kwargs = {}
    if m.norm != "none":
        kwargs["norm"] = m.norm
    if m.residual:
        kwargs["residual"] = True
        if m.residual_scale != 1.0:
            kwargs["residual_scale"] = float(m.residual_scale)
    return kwargs


def arch_label(cfg):
    """Short architecture label: plain, res, res0.141, bn, ln, res-ln, ... (residual first); the
    cell (rnn, lstm, gru) for a recurrent net."""
    m = cfg.model
    if is_recurrent(cfg):
        return m.cell
    parts = []
    if m.residual:
        parts.append("res" if m.residual_scale == 1.0 else f"res{m.residual_scale:.3g}")
    if m.norm != "none":
        parts.append({"batch": "bn", "layer": "ln"}[m.norm])
    return "-".join(parts) or "plain"


def config_hash(cfg):
    """12 hex digits identifying the result of a run: same hash, same numbers."""
    blob = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def flatten(container, prefix=""):
    """Dot-flattened leaves {"model.depth": 5, ...} of a nested dict."""
    out = {}
    for key, value in container.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


# The data keys each dataset reads (datasets.py); the others do not apply to its runs.
DATA_KEYS = {"digits": ("val_fraction",), "spirals": ("val_fraction", "n_samples", "n_classes", "noise"),
             "gaussian": ("val_fraction", "n_samples", "dim", "n_classes", "teacher_depth"),
             "mnist": ("val_fraction", "cache_dir"), "seq_digits": ("val_fraction", "order"),
             "adding": ("length", "n_train", "n_val")}
# Data keys added with the sequence datasets: in a run's identity only for the datasets that read
# them, so that the other datasets' runs keep their hashes.
SEQUENCE_DATA_KEYS = ("length", "n_train", "n_val", "order")


def logged_params(container):
    """The run's MLflow params: dot-flattened leaves of the resolved config (a plain dict), without
    the keys that are None or belong to choices the run did not make (another optimizer's, another
    dataset's, initializer or activation parameters its choice does not take). Only what is shown
    changes; the run's identity (config_hash) is the whole config."""
    params = flatten(container)
    optimizer = container.get("optimizer", {}).get("name")
    dataset = container.get("data", {}).get("name")
    init = container.get("init", {}).get("name")
    applies = {
        "optimizer.": set(getattr(optimizers.REGISTRY.get(optimizer), "defaults", {})) | {"name", "weight_decay"},
        "data.": {"name", *DATA_KEYS.get(dataset, ())},
        "init.": {"name", "sigma_b", *initializers.PARAMS.get(init, ()), *recurrent_init_params(container)},
        "activation.": {"name", *getattr(activations.REGISTRY.get(container.get("activation", {}).get("name")),
                                         "params", {})},
        "model.": ({"depth", "width", *(set(RECURRENT_KEYS) - set(recurrent_keys_unused(container.get("model", {}))))}
                   if is_recurrent(container) else  # no dropout, norm, residual
                   {"depth", "width", "dropout", "norm", "residual",
                    *(("residual_scale",) if container.get("model", {}).get("residual") else ())}),
    }

    def shown(key, value):
        if value is None:
            return False
        for prefix, keys in applies.items():
            if key.startswith(prefix):
                return key[len(prefix):] in keys
        return True
    return {key: value for key, value in params.items() if shown(key, value)}


def recurrent_init_params(container):
    """The init.* keys that W_hh's own initializer reads (model.recurrent_init other than "same":
    init.sigma_w for normal, init.value for constant; its gain is model.recurrent_gain)."""
    model = container.get("model", {})
    if not is_recurrent(container) or model.get("recurrent_init", SAME_INIT) == SAME_INIT:
        return ()
    return tuple(k for k in initializers.PARAMS.get(model["recurrent_init"], ()) if k != "gain")


def run_name(cfg):
    """e.g. tanh-xavier_uniform-d20-adam-s0; tanh-xavier_uniform-d20-adam-res0.141-ln-s0 when the
    architecture is not a plain MLP (plain runs keep their names); recurrent runs name the cell first,
    then the activation (rnn only), the inits (with normal's sigma_w), forget bias, stacked layers, T, the
    optimizer and clip_norm, e.g. rnn-relu-normal0.01-identity-T100-sgd-clip1-s0, lstm-pytorch-fb1-T50-adam-s1."""
    if is_recurrent(cfg):
        return recurrent_run_name(cfg)
    arch = arch_label(cfg)
    arch = "" if arch == "plain" else f"-{arch}"
    return f"{cfg.activation.name}-{cfg.init.name}-d{cfg.model.depth}-{cfg.optimizer.name}{arch}-s{cfg.seed}"


def recurrent_run_name(cfg):
    m = cfg.model

    def with_sigma_w(init):  # normal's sigma_w is in the name: it is what tells such runs apart
        return init + (f"{cfg.init.sigma_w:g}" if "sigma_w" in initializers.PARAMS.get(init, ()) else "")
    parts = [m.cell] + ([cfg.activation.name] if m.cell == "rnn" else []) + [with_sigma_w(cfg.init.name)]
    if m.recurrent_init != SAME_INIT:
        if m.recurrent_init in SCALED_RECURRENT_INITS:
            parts.append(m.recurrent_init + (f"{m.recurrent_gain:g}" if m.recurrent_gain != 1.0 else ""))
        else:  # drawn with init's parameters
            parts.append(with_sigma_w(m.recurrent_init))
    if m.cell in GATED_CELLS and m.forget_bias != 0.0:
        parts.append(f"fb{m.forget_bias:g}")
    if m.depth != 1:
        parts.append(f"L{m.depth}")
    parts += [f"T{seq_len(cfg)}", cfg.optimizer.name]
    if cfg.train.clip_norm is not None:
        parts.append(f"clip{cfg.train.clip_norm:g}")
    parts.append(f"s{cfg.seed}")
    return "-".join(parts)
