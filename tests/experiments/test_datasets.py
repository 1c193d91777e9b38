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


# ------------------------------------------------------------------ sequences
def _adding(**kw):
    return OmegaConf.create({"name": "adding", "length": 20, "n_train": 3000, "n_val": 500, **kw})


def test_adding_problem_is_the_uniform_form():
    d = datasets.load(_adding(), seed=0)
    assert d.X_train.shape == (3000, 20, 2) and d.y_train.shape == (3000, 1) and d.X_val.shape == (500, 20, 2)
    assert d.task == "regression" and d.n_features == 2 and d.seq_len == 20 and d.n_classes == 1
    for X, y in ((d.X_train, d.y_train), (d.X_val, d.y_val)):
        values, markers = X[..., 0], X[..., 1]
        assert values.min() >= 0.0 and values.max() < 1.0
        assert set(np.unique(markers)) == {0.0, 1.0}
        # one marker in each half: steps 0..9 and 10..19
        np.testing.assert_array_equal(markers[:, :10].sum(axis=1), 1)
        np.testing.assert_array_equal(markers[:, 10:].sum(axis=1), 1)
        # the target is the sum of the two marked values (computed here by a loop over examples)
        expected = [sum(v for v, m in zip(values[i], markers[i]) if m == 1.0) for i in range(len(X))]
        np.testing.assert_allclose(y[:, 0], expected, rtol=0, atol=1e-15)
    # markers spread over every step of each half
    assert (d.X_train[..., 1].sum(axis=0) > 0).all()


def test_adding_baseline_is_one_sixth():
    """Always predicting 1 scores E[(U1 + U2 - 1)^2] = Var(U1 + U2) = 1/6: the dataset's baseline, and
    the MSE on a large validation set within sampling error (sd of (s-1)^2 is about 0.18)."""
    d = datasets.load(_adding(n_val=20000), seed=3)
    # the baseline is the constant prediction's expected MSE, 1/6 exactly; a large sample agrees
    assert d.baseline_mse == 1 / 6
    assert abs(np.mean((d.y_val - 1.0) ** 2) - 1 / 6) < 4 * 0.18 / np.sqrt(20000)


def test_adding_is_seeded_and_its_validation_set_does_not_follow_the_training_size():
    a, b = datasets.load(_adding(), seed=0), datasets.load(_adding(), seed=0)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.X_val, datasets.load(_adding(), seed=1).X_val)
    bigger = datasets.load(_adding(n_train=4000), seed=0)
    np.testing.assert_array_equal(a.X_val, bigger.X_val)


def test_adding_odd_length_halves():
    d = datasets.load(_adding(length=5, n_train=2000), seed=0)
    markers = d.X_train[..., 1]
    np.testing.assert_array_equal(markers[:, :2].sum(axis=1), 1)   # first half: steps 0, 1
    np.testing.assert_array_equal(markers[:, 2:].sum(axis=1), 1)   # second half: steps 2, 3, 4
    assert (markers.sum(axis=0) > 0).all()


@pytest.mark.parametrize("order, shape", [("rows", (8, 8)), ("pixels", (64, 1))])
def test_seq_digits_reads_the_digits_row_by_row_or_pixel_by_pixel(order, shape):
    flat = datasets.load(_cfg(), seed=2)
    seq = datasets.load(OmegaConf.create({"name": "seq_digits", "val_fraction": 0.2, "order": order}), seed=2)
    assert seq.X_train.shape == (flat.X_train.shape[0], *shape) and seq.seq_len == shape[0]
    assert seq.n_features == shape[1] and seq.n_classes == 10 and seq.task == "classification"
    np.testing.assert_array_equal(seq.y_train, flat.y_train)
    # step t (rows) is image row t: pixels 8t..8t+7 of the standardized digit; pixels: pixel t
    for t in (0, 3, 7):
        if order == "rows":
            np.testing.assert_array_equal(seq.X_train[:, t, :], flat.X_train[:, 8 * t:8 * t + 8])
        else:
            np.testing.assert_array_equal(seq.X_val[:, 9 * t, 0], flat.X_val[:, 9 * t])
    assert datasets.sequence_length(OmegaConf.create({"name": "seq_digits", "order": order})) == shape[0]


def test_sequence_length_of_a_vector_dataset_is_an_error():
    with pytest.raises(ValueError, match="data=digits gives vectors"):
        datasets.sequence_length(OmegaConf.create({"name": "digits"}))


@pytest.mark.parametrize("length", [10, 100])
def test_adding_input_mean_square_against_its_sample(length):
    X, _ = datasets.adding_examples(20000, length, np.random.default_rng(0))
    # sd of x^2 per entry is below 0.3: the mean of 20000 * length * 2 entries is within 1e-3
    assert np.mean(X ** 2) == pytest.approx(datasets.adding_input_ms(length), abs=1e-3)
