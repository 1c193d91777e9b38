"""Each layer as a unit: backward against centred finite differences (float64) of its own
forward, for the input and every parameter; Residual's skip; BatchNorm's modes."""
import numpy as np
import pytest

from nncore import activations, layers

pytestmark = pytest.mark.usefixtures("single_thread_blas")

EPS, TOL = 1e-6, 1e-7


def _make(kind, rng, n=5):
    if kind == "dense":
        return layers.Dense(rng.normal(size=(4, n)), rng.normal(size=n))
    if kind == "activation":
        return layers.Activation(activations.get("tanh"))
    if kind in ("batchnorm", "layernorm"):
        layer = layers.BatchNorm(n, np.float64) if kind == "batchnorm" else layers.LayerNorm(n, np.float64)
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, size=n)
        layer.params["beta"][...] = rng.normal(size=n)
        return layer
    if kind == "residual":
        return layers.Residual([layers.Dense(rng.normal(size=(n, n)), rng.normal(size=n)),
                                layers.LayerNorm(n, np.float64), layers.Activation(activations.get("tanh"))], 0.6)
    raise KeyError(kind)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind", ["dense", "activation", "batchnorm", "layernorm", "residual"])
def test_backward_is_the_derivative_of_forward(ref, kind, train):
    rng = np.random.default_rng(3)
    layer = _make(kind, rng)
    n_in = 4 if kind == "dense" else 5
    x = rng.normal(size=(6, n_in))
    if kind == "batchnorm":  # running averages away from 0 and 1 for the eval case
        layer.running_mean[...] = rng.normal(size=5)
        layer.running_var[...] = rng.uniform(0.5, 2.0, size=5)
    R = rng.normal(size=layer.forward(x, False).shape)  # f = sum(out * R): dout = R

    def f():
        saved = (layer.running_mean.copy(), layer.running_var.copy()) if kind == "batchnorm" else None
        out = layer.forward(x, train)
        if saved is not None:  # finite differences must not move the running averages
            layer.running_mean, layer.running_var = saved
        return float(np.sum(out * R))

    f()
    dx = layer.backward(R)
    inner = layer.layers if kind == "residual" else [layer]
    grads = [(sub.params[k], sub.grads[k]) for sub in inner for k in sub.params]
    assert ref.rel_err(ref.numerical_grad(f, x, EPS), dx) <= TOL
    for p, g in grads:
        assert g.shape == p.shape
        assert ref.rel_err(ref.numerical_grad(f, p, EPS), g) <= TOL


def test_residual_adds_the_scaled_branch():
    rng = np.random.default_rng(0)
    dense = layers.Dense(rng.normal(size=(3, 3)), np.zeros(3))
    x = rng.normal(size=(4, 3))
    out = layers.Residual([dense], 0.25).forward(x, True)
    np.testing.assert_allclose(out, x + 0.25 * (x @ dense.params["W"]), rtol=1e-15)


def test_batchnorm_running_averages_move_only_in_training():
    bn = layers.BatchNorm(3, np.float64)
    x = np.random.default_rng(1).normal(loc=2.0, scale=3.0, size=(10, 3))
    bn.forward(x, False)
    np.testing.assert_array_equal(bn.running_mean, 0.0)
    bn.batch_stats = True  # what the probes set: the batch's statistics, averages untouched
    out = bn.forward(x, False)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_array_equal(bn.running_var, 1.0)
    bn.batch_stats = False
    bn.forward(x, True)
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-15)


def test_dropout_is_the_identity_at_evaluation_and_inverted_in_training():
    d = layers.Dropout(0.5, np.random.default_rng(0), np.float64)
    x = np.ones((200, 50))
    assert d.forward(x, False) is x
    out = d.forward(x, True)
    assert set(np.unique(out)) == {0.0, 2.0}
    np.testing.assert_array_equal(d.backward(x), out)
