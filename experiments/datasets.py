"""Datasets: (X_train, y_train, X_val, y_val), seeded by the run's "data" stream.
No test needs the network: only ``mnist`` downloads (once, into its cache).

Two kinds (``KINDS``, the one registry that the config's pre-flight reads):
  vectors    X of shape (n, n_features) for an MLP: digits, spirals, gaussian, mnist;
             integer labels, standardized with training statistics, stratified splits.
  sequences  X of shape (n, T, n_features), batch first, for a recurrent net:
             adding   the adding problem in its uniform form (Arjovsky et al. 2016), a regression:
                      y of shape (n, 1), float;
             seq_digits  the bundled digits read as a sequence: row by row (T = 8, 8 pixels a
                      step) or pixel by pixel (T = 64, one pixel a step; ``order=pixels``);
                      standardized per pixel as digits, then reshaped row-major.
Regression datasets (``REGRESSION``) carry their baseline: the MSE of the constant prediction
that the task's folklore names (adding: always 1, whose expected MSE is Var(U1 + U2) = 1/6)."""
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nncore.rng import generator


@dataclass
class Dataset:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    n_classes: int            # output units: the classes, or the regression targets' width (adding: 1)
    name: str
    task: str = "classification"   # or "regression" (float targets of shape (n, n_classes))
    baseline_mse: float = None     # regression: expected MSE of the constant prediction (adding: 1, so 1/6)

    @property
    def n_features(self):
        """Inputs per example (vectors) or per time step (sequences)."""
        return self.X_train.shape[-1]

    @property
    def seq_len(self):
        """T for a sequence dataset, else None."""
        return self.X_train.shape[1] if self.X_train.ndim == 3 else None


def _stratified_split(y, val_fraction, rng):
    """Indices (train, val): each class contributes round(val_fraction * count) to val."""
    train_idx, val_idx = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_val = int(round(val_fraction * idx.size))
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(val_idx))


def _finish(X, y, val_fraction, rng, name, n_classes=None):
    train_idx, val_idx = _stratified_split(y, val_fraction, rng)
    X_train, X_val = X[train_idx], X[val_idx]
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (digits' border) stay 0 instead of NaN
    X_train = (X_train - mean) / std
    X_val = (X_val - mean) / std
    return Dataset(X_train, y[train_idx].astype(np.int64), X_val, y[val_idx].astype(np.int64),
                   int(n_classes or y.max() + 1), name)


def digits_file():
    """scikit-learn's bundled digits.csv.gz (UCI optdigits test set: 1797 rows of 64 pixel counts 0-16
    and the label), found without importing scikit-learn, which takes seconds to import."""
    spec = importlib.util.find_spec("sklearn")  # a top-level package: located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("data=digits needs scikit-learn installed (its package ships the digits data file)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.exists():
        raise ValueError(f"data=digits: {path} is missing from the scikit-learn installation")
    return path


def load_digits():
    """(X float64 (1797, 64), y int64) exactly as sklearn.datasets.load_digits(return_X_y=True)."""
    with gzip.open(digits_file(), "rt") as fh:
        data = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    return data[:, :-1], data[:, -1].astype(np.int64)


def digits(cfg, rng):
    X, y = load_digits()
    return _finish(X, y, cfg.val_fraction, rng, "digits")


def spirals(cfg, rng):
    """n_classes interleaved spiral arms in the plane with Gaussian noise."""
    k, n = cfg.n_classes, cfg.n_samples
    y = np.arange(n) % k
    t = rng.uniform(0.0, 1.0, size=n)
    radius = t
    angle = 4.0 * np.pi * t + 2.0 * np.pi * y / k
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    X += rng.normal(0.0, cfg.noise * 0.1, size=X.shape)
    return _finish(X, y, cfg.val_fraction, rng, "spirals", k)


def gaussian(cfg, rng):
    """X ~ N(0, I_dim); y = argmax of a random tanh teacher (teacher_depth hidden layers of width 2*dim)."""
    X = rng.normal(size=(cfg.n_samples, cfg.dim))
    h = X
    width = 2 * cfg.dim
    for _ in range(cfg.teacher_depth):
        h = np.tanh(h @ rng.normal(0.0, np.sqrt(2.0 / h.shape[1]), size=(h.shape[1], width)))
    logits = h @ rng.normal(0.0, 1.0 / np.sqrt(width), size=(width, cfg.n_classes))
    y = np.argmax(logits, axis=1)
    return _finish(X, y, cfg.val_fraction, rng, "gaussian", cfg.n_classes)


def mnist(cfg, rng):
    import urllib.error

    from sklearn.datasets import fetch_openml
    try:
        X, y = fetch_openml("mnist_784", version=1, return_X_y=True, as_frame=False, data_home=cfg.cache_dir,
                            parser="liac-arff")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ValueError(f"data=mnist: cannot download mnist_784 from openml.org ({reason}); set "
                         "data.cache_dir to a directory where scikit-learn has cached it") from None
    return _finish(X.astype(np.float64), y.astype(np.int64), cfg.val_fraction, rng, "mnist")


def seq_digits(cfg, rng):
    """digits as a sequence: ``order`` "rows" gives T = 8 steps of a row's 8 pixels, "pixels" T = 64
    steps of one pixel, in reading order (row-major), from the same standardized split as digits."""
    flat = digits(cfg, rng)
    shape = SEQ_DIGITS_SHAPES[cfg.order]
    return Dataset(flat.X_train.reshape(-1, *shape), flat.y_train, flat.X_val.reshape(-1, *shape), flat.y_val,
                   flat.n_classes, "seq_digits")


# data.order -> (T, features per step) of seq_digits
SEQ_DIGITS_SHAPES = {"rows": (8, 8), "pixels": (64, 1)}
ADDING_CONSTANT = 1.0   # the constant prediction of the adding problem's baseline (E[target] = 1)
# Its expected MSE, Var(U1 + U2) = 2/12: the baseline the adding problem's runs are judged against
# (trained below 6% of it, 0.01: experiments.diagnose_time), the same for every sample of the task.
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_examples(n, length, rng):
    """(X (n, length, 2), y (n, 1)) of the uniform adding problem (Arjovsky et al. 2016): channel 0
    holds values U[0, 1], channel 1 a marker 1 at one step drawn uniformly from each half (steps
    [0, length // 2) and [length // 2, length)) and 0 elsewhere; the target is the sum of the two
    marked values."""
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    rows = np.arange(n)
    markers = np.zeros((n, length))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), y[:, None]


def adding(cfg, rng):
    """The adding problem with T = ``length``: ``n_train`` and ``n_val`` examples from two
    independent streams of the run's data stream, so that the validation set does not change
    with the training set's size."""
    train_rng, val_rng = rng.spawn(2)
    X_train, y_train = adding_examples(cfg.n_train, cfg.length, train_rng)
    X_val, y_val = adding_examples(cfg.n_val, cfg.length, val_rng)
    return Dataset(X_train, y_train, X_val, y_val, 1, "adding", task="regression", baseline_mse=ADDING_BASELINE_MSE)


LOADERS = {"digits": digits, "spirals": spirals, "gaussian": gaussian, "mnist": mnist,
           "seq_digits": seq_digits, "adding": adding}
# What each dataset gives: "vectors" for an MLP, "sequences" (batch, T, features) for a recurrent net.
KINDS = {"digits": "vectors", "spirals": "vectors", "gaussian": "vectors", "mnist": "vectors",
         "seq_digits": "sequences", "adding": "sequences"}
REGRESSION = ("adding",)  # float targets and the mse loss; the others give class labels


def load(data_cfg, seed):
    """Dataset ``data_cfg.name`` for the run's ``seed``."""
    try:
        loader = LOADERS[data_cfg.name]
    except KeyError:
        raise ValueError(f"unknown dataset {data_cfg.name!r}; valid: {', '.join(LOADERS)}") from None
    return loader(data_cfg, generator(seed, "data"))


def sequence_length(data_cfg):
    """T of a sequence dataset's config, without loading it (run names, tags)."""
    if data_cfg.name == "adding":
        return int(data_cfg.length)
    if data_cfg.name == "seq_digits":
        return SEQ_DIGITS_SHAPES[data_cfg.order][0]
    raise ValueError(f"data={data_cfg.name} gives vectors, not sequences")


def adding_input_ms(length):
    """The adding problem's mean square input over examples, steps and both channels, in expectation:
    (E[U^2] + the marker channel's 2/length) / 2 = (1/3 + 2/length) / 2 (one marker per half)."""
    return (1.0 / 3.0 + 2.0 / length) / 2.0
