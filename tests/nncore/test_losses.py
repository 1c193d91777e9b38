"""Losses: batch-mean values against written-out formulas, gradients by finite differences,
stability for logits of +-1e4, target validation."""
import math
import warnings

import numpy as np
import pytest

from nncore import MLP, losses

pytestmark = pytest.mark.usefixtures("single_thread_blas")

LOSSES = ("cross_entropy", "bce", "mse")


def _case(name, seed=0, B=7, n_out=4, scale=2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=scale, size=(B, n_out))
    if name == "cross_entropy":
        y = rng.integers(0, n_out, size=B)
    elif name == "bce":
        y = (rng.random((B, n_out)) < 0.5).astype(np.float64)
    else:
        y = rng.normal(size=(B, n_out))
    return z, y


def _naive(name, z, y):
    """Loss written the most direct way (fine for moderate logits)."""
    if name == "cross_entropy":
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return -np.mean(np.log(p[np.arange(len(y)), y]))
    if name == "bce":
        s = 1.0 / (1.0 + np.exp(-z))
        return -np.mean(y * np.log(s) + (1 - y) * np.log(1 - s))
    return np.mean((z - y) ** 2)


@pytest.mark.parametrize("name", LOSSES)
def test_value_matches_formula(name):
    z, y = _case(name)
    fn = losses.get(name)
    y = fn.check_targets(y, *z.shape)
    loss, dz = fn.forward_backward(z.copy(), y)
    np.testing.assert_allclose(loss, _naive(name, z, y), rtol=1e-12)
    assert isinstance(loss, float)
    assert dz.shape == z.shape


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_formula_and_finite_differences(name, ref):
    z, y = _case(name, seed=1)
    fn = losses.get(name)
    y = fn.check_targets(y, *z.shape)
    _, dz = fn.forward_backward(z.copy(), y)
    np.testing.assert_allclose(dz, ref.loss_and_dz(name, z, y)[1], rtol=1e-12, atol=1e-17)
    zz = z.copy()
    num = ref.numerical_grad(lambda: _naive(name, zz, y), zz)
    assert ref.rel_err(num, dz) <= 1e-6


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_is_of_the_mean(name):
    """Duplicating the batch leaves the loss unchanged and halves each row's gradient."""
    z, y = _case(name, seed=2)
    fn = losses.get(name)
    loss1, dz1 = fn.forward_backward(z.copy(), y)
    dz1 = dz1.copy()
    loss2, dz2 = fn.forward_backward(np.concatenate([z, z]), np.concatenate([y, y]))
    np.testing.assert_allclose(loss2, loss1, rtol=1e-13)
    np.testing.assert_allclose(dz2[: len(z)], dz1 / 2, rtol=1e-13, atol=1e-18)


@pytest.mark.parametrize("name", LOSSES)
def test_logits_untouched_and_gradient_new(name):
    z, y = _case(name, seed=3)
    fn = losses.get(name)
    z0, y0 = z.copy(), y.copy()
    _, dz = fn.forward_backward(z, y)
    np.testing.assert_array_equal(z, z0)  # logits untouched
    np.testing.assert_array_equal(y, y0)
    assert not np.shares_memory(dz, z) and not np.shares_memory(dz, y)


def test_cross_entropy_extreme_logits_finite_and_exact():
    fn = losses.get("cross_entropy")
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]])
    y = np.array([0, 0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            loss, dz = fn.forward_backward(z.copy(), y)
    # per example: 0, 2e4, log 2, log 3
    expected = (0.0 + 2e4 + math.log(2.0) + math.log(3.0)) / 4
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    assert np.all(np.isfinite(dz))
    # softmax - onehot, over B
    p = np.array([[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(dz, (p - onehot) / 4, atol=1e-15)


def test_bce_extreme_logits_finite_and_exact():
    fn = losses.get("bce")
    z = np.array([[1e4, -1e4, 1e4, -1e4, 0.0]])
    y = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            loss, dz = fn.forward_backward(z.copy(), y)
    np.testing.assert_allclose(loss, (0 + 0 + 1e4 + 1e4 + math.log(2.0)) / 5, rtol=1e-12)
    np.testing.assert_allclose(dz, np.array([[0.0, 0.0, 1.0, -1.0, -0.5]]) / 5, atol=1e-15)


def test_bce_moderate_tail_accuracy():
    """log(1 + exp(-|z|)) computed accurately: z = 40, y = 1 gives exp(-40), not 0."""
    fn = losses.get("bce")
    loss, _ = fn.forward_backward(np.array([[40.0]]), np.array([[1.0]]))
    np.testing.assert_allclose(loss, math.log1p(math.exp(-40.0)), rtol=1e-12)


@pytest.mark.parametrize("dtype,z_min,rtol", [(np.float64, -700.0, 1e-14), (np.float32, -80.0, 2e-7)])
def test_bce_gradient_keeps_its_precision_for_negative_logits(dtype, z_min, rtol):
    """dL/dz = (sigmoid(z) - y) / N against sigmoid from math.exp in float64: for y = 0 and very
    negative z the gradient is a tiny sigmoid(z) (4.2e-18 at z = -40), not 0 or a cancelled
    1 - sigmoid(|z|). z_min keeps sigmoid(z) a normal number of the dtype."""
    fn = losses.get("bce")
    z = np.linspace(z_min, 30.0, 41).astype(dtype)[None, :]
    _, dz = fn.forward_backward(z, np.zeros_like(z))
    want = np.array([1.0 / (1.0 + math.exp(-float(v))) for v in z[0]]) / z.size
    assert dz.dtype == dtype
    np.testing.assert_allclose(dz[0], want, rtol=rtol, atol=0)


def test_mse_extreme_values():
    fn = losses.get("mse")
    loss, dz = fn.forward_backward(np.array([[1e4, -1e4]]), np.array([[0.0, 0.0]]))
    np.testing.assert_allclose(loss, 1e8, rtol=1e-15)
    np.testing.assert_allclose(dz, [[1e4, -1e4]], rtol=1e-15)


def test_accuracy():
    ce = losses.get("cross_entropy")
    z = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    assert ce.accuracy(z, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    bce = losses.get("bce")
    assert bce.accuracy(np.array([[1.0, -1.0], [-2.0, 0.5]]), np.array([[1, 0], [1, 1]])) == pytest.approx(3 / 4)
    mse = losses.get("mse")
    assert mse.accuracy(z, np.eye(2)[[0, 1, 1]]) == pytest.approx(2 / 3)


def test_cross_entropy_targets():
    ce = losses.get("cross_entropy")
    y = ce.check_targets(np.array([0.0, 2.0, 1.0]), 3, 3)  # integral floats accepted
    assert np.issubdtype(y.dtype, np.integer)
    np.testing.assert_array_equal(y, [0, 2, 1])
    with pytest.raises(ValueError, match=r"\(3,\)"):
        ce.check_targets(np.zeros((3, 1), dtype=int), 3, 3)
    with pytest.raises(ValueError, match="range"):
        ce.check_targets(np.array([0, 3, 1]), 3, 3)
    with pytest.raises(ValueError, match="range"):
        ce.check_targets(np.array([0, -1, 1]), 3, 3)
    with pytest.raises(ValueError, match="integer"):
        ce.check_targets(np.array([0.5, 1.0, 1.0]), 3, 3)


def test_bce_and_mse_targets():
    bce = losses.get("bce")
    with pytest.raises(ValueError, match="0 or 1"):
        bce.check_targets(np.full((2, 3), 0.5), 2, 3)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        bce.check_targets(np.zeros((3, 2)), 2, 3)
    mse = losses.get("mse")
    with pytest.raises(ValueError, match="finite"):
        mse.check_targets(np.array([[0.0, np.nan, 1.0]] * 2), 2, 3)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        mse.check_targets(np.zeros(2), 2, 3)


def test_unknown_loss():
    with pytest.raises(ValueError, match="cross_entropy"):
        losses.get("hinge")


# ---------------------------------------------------- targets checked by the network
@pytest.mark.parametrize("call", ["loss_and_grads", "probe"])
def test_float32_mse_targets_beyond_float32_range_are_rejected(call):
    net = MLP(3, [4], 2, loss="mse", dtype="float32", seed=0)
    X, y = np.zeros((8, 3)), np.full((8, 2), 1e39)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="target"):
            getattr(net, call)(X, y)
    assert caught == [], [str(w.message) for w in caught]


def test_float64_mse_targets_at_1e39_are_still_accepted():
    net = MLP(3, [4], 2, loss="mse", seed=0)
    X, y = np.zeros((8, 3)), np.full((8, 2), 1e39)
    loss, _ = net.loss_and_grads(X, y)
    # X = 0 and zero biases: the logits are 0, the loss is mean(y^2)
    assert loss == pytest.approx(1e78, rel=1e-12)


def test_mse_accepts_boolean_targets():
    net = MLP(3, [4], 2, loss="mse", seed=0)
    X = np.ones((2, 3))
    y = np.array([[True, False], [False, True]])
    z = net.forward(X)
    assert net.loss(X, y) == pytest.approx(float(np.mean((z - y.astype(np.float64)) ** 2)), rel=1e-12)
