"""Datasets: (X_train, y_train, X_val, y_val) with integer labels, standardized with
training statistics. Splits are stratified and seeded by the run's "data" stream.
No test needs the network: only ``mnist`` downloads (once, into its cache)."""
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
    n_classes: int
    name: str

    @property
    def n_features(self):
        return self.X_train.shape[1]


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


LOADERS = {"digits": digits, "spirals": spirals, "gaussian": gaussian, "mnist": mnist}


def load(data_cfg, seed):
    """Dataset ``data_cfg.name`` for the run's ``seed``."""
    try:
        loader = LOADERS[data_cfg.name]
    except KeyError:
        raise ValueError(f"unknown dataset {data_cfg.name!r}; valid: {', '.join(LOADERS)}") from None
    return loader(data_cfg, generator(seed, "data"))
