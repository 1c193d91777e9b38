import numpy as np
import pytest
from omegaconf import OmegaConf

from experiments import datasets


def _cfg(**kw):
    base = dict(name="digits", val_fraction=0.2, n_samples=500, dim=8, n_classes=4, noise=0.2, teacher_depth=2,
                cache_dir=None)
    base.update(kw)
    return OmegaConf.create(base)


def test_digits_split_is_stratified_standardized_and_seeded():
    d = datasets.load(_cfg(), seed=0)
    assert d.X_train.shape[1] == 64 and d.n_classes == 10
    assert d.X_train.shape[0] + d.X_val.shape[0] == 1797
    assert abs(d.X_val.shape[0] - 0.2 * 1797) <= 10
    train_frac = np.bincount(d.y_train) / d.y_train.size
    val_frac = np.bincount(d.y_val) / d.y_val.size
    assert np.abs(train_frac - val_frac).max() < 0.01
    used = d.X_train.std(axis=0) > 0
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(d.X_train.std(axis=0)[used], 1, rtol=1e-12)
    again = datasets.load(_cfg(), seed=0)
    np.testing.assert_array_equal(d.X_train, again.X_train)
    other = datasets.load(_cfg(), seed=1)
    assert not np.array_equal(d.y_train, other.y_train)


def test_digits_read_without_scikit_learn_equal_its_loader():
    from sklearn.datasets import load_digits
    X, y = datasets.load_digits()
    X_ref, y_ref = load_digits(return_X_y=True)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert X.dtype == np.float64 and X.shape == (1797, 64)


def test_loading_digits_does_not_import_scikit_learn():
    import subprocess
    import sys
    code = ("import sys; from omegaconf import OmegaConf; from experiments import datasets; "
            "datasets.load(OmegaConf.create({'name': 'digits', 'val_fraction': 0.2}), 0); "
            "print('sklearn' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["spirals", "gaussian"])
def test_synthetic_datasets(name):
    d = datasets.load(_cfg(name=name), seed=3)
    assert d.X_train.shape[0] + d.X_val.shape[0] == 500
    assert d.n_classes == 4
    assert d.X_train.shape[1] == (2 if name == "spirals" else 8)
    assert d.y_train.min() >= 0 and d.y_train.max() < 4
    assert len(np.unique(d.y_train)) >= 2
    assert np.isfinite(d.X_train).all()


def test_unknown_dataset():
    with pytest.raises(ValueError, match="digits"):
        datasets.load(_cfg(name="cifar"), seed=0)


def test_mnist_without_the_network_is_one_clear_error(monkeypatch):
    """No network (and nothing cached): one ValueError that names the dataset and the remedy,
    not urllib's URLError. fetch_openml is replaced: tests never reach the network."""
    import urllib.error

    import sklearn.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    with pytest.raises(ValueError, match=r"data=mnist: cannot download mnist_784 .*Name or service not known.*"
                                         r"data\.cache_dir"):
        datasets.load(_cfg(name="mnist"), seed=0)
