"""Initializers: sample moments against the stated variance formulas, within sampling error.

W has shape (fan_in, fan_out). The shapes 512x256 and 256x512 tell fan_in from fan_out,
so a swapped fan would be caught.
"""
import math

import numpy as np
import pytest

from nncore import MLP, initializers

pytestmark = pytest.mark.usefixtures("single_thread_blas")

SHAPES = [(512, 512), (512, 256), (256, 512)]

N_SE = 5.0  # tolerance in standard errors


def _uniform_limit(name, fi, fo):
    return {
        "uniform": 1.0 / math.sqrt(fi),
        "xavier_uniform": math.sqrt(6.0 / (fi + fo)),
        "he_uniform": math.sqrt(6.0 / fi),
    }[name]


def _normal_var(name, fi, fo, sigma_w=1.0):
    return {
        "xavier_normal": 2.0 / (fi + fo),
        "he_normal": 2.0 / fi,
        "lecun_normal": 1.0 / fi,
        "normal": sigma_w ** 2 / fi,
    }[name]


def _check_mean(w, var):
    n = w.size
    assert abs(w.mean()) <= N_SE * math.sqrt(var / n), (w.mean(), var)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["uniform", "xavier_uniform", "he_uniform"])
def test_uniform_initializers(name, shape):
    fi, fo = shape
    w = initializers.init_weights(name, np.random.default_rng(1), fi, fo)
    assert w.shape == (fi, fo) and w.dtype == np.float64
    limit = _uniform_limit(name, fi, fo)
    var = limit ** 2 / 3.0
    n = w.size
    # sample variance of n iid uniforms: SE ~ var sqrt(0.8 / n)
    assert abs(w.var() - var) <= N_SE * var * math.sqrt(0.8 / n), (w.var(), var)
    _check_mean(w, var)
    assert np.max(np.abs(w)) <= limit
    assert np.max(np.abs(w)) >= limit * (1 - 1e-3)
    # both tails used
    assert w.min() <= -limit * (1 - 1e-3) and w.max() >= limit * (1 - 1e-3)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,params", [("xavier_normal", {}), ("he_normal", {}), ("lecun_normal", {}),
                                         ("normal", {}), ("normal", {"sigma_w": 2.5}),
                                         ("normal", {"sigma_w": 0.3})])
def test_normal_initializers(name, params, shape):
    fi, fo = shape
    w = initializers.init_weights(name, np.random.default_rng(2), fi, fo, **params)
    assert w.shape == (fi, fo) and w.dtype == np.float64
    var = _normal_var(name, fi, fo, **params)
    n = w.size
    assert abs(w.var() - var) <= N_SE * var * math.sqrt(2.0 / n), (w.var(), var)
    _check_mean(w, var)
    # untruncated normal: the tails go beyond 4 sigma for >= 65536 draws
    assert np.max(np.abs(w)) > 4.0 * math.sqrt(var)
    # kurtosis of a normal is 3 (distinguishes from a uniform of the same variance, kurtosis 1.8)
    kurt = np.mean((w - w.mean()) ** 4) / w.var() ** 2
    assert abs(kurt - 3.0) < 0.15


def test_he_normal_std_is_sqrt_2_over_fan_in_not_2_over_sqrt():
    w = initializers.he_normal(np.random.default_rng(3), 512, 512)
    assert abs(w.std() - math.sqrt(2 / 512)) < 0.02 * math.sqrt(2 / 512)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 0.5, math.sqrt(2.0)])
def test_orthogonal(shape, gain):
    fi, fo = shape
    w = initializers.init_weights("orthogonal", np.random.default_rng(4), fi, fo, gain=gain)
    assert w.shape == (fi, fo) and w.dtype == np.float64
    if fi >= fo:  # orthonormal columns
        np.testing.assert_allclose(w.T @ w, gain ** 2 * np.eye(fo), atol=1e-12)
    if fi <= fo:  # orthonormal rows
        np.testing.assert_allclose(w @ w.T, gain ** 2 * np.eye(fi), atol=1e-12)
    # entry variance gain^2 / max(fan_in, fan_out) (exact for the second moment)
    np.testing.assert_allclose(np.mean(w ** 2), gain ** 2 / max(fi, fo), rtol=1e-12)
    assert abs(w.mean()) <= N_SE * math.sqrt(gain ** 2 / max(fi, fo) / w.size)


def test_orthogonal_is_random():
    a = initializers.orthogonal(np.random.default_rng(5), 64, 64)
    b = initializers.orthogonal(np.random.default_rng(6), 64, 64)
    assert not np.allclose(a, b)
    # Haar: not biased towards the identity (trace of a Haar orthogonal matrix has mean 0, var 1)
    assert abs(np.trace(a)) < 6 and abs(np.trace(b)) < 6


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("value", [0.1, -0.25, 0.0])
def test_constant(shape, value):
    fi, fo = shape
    w = initializers.init_weights("constant", np.random.default_rng(7), fi, fo, value=value)
    assert w.shape == (fi, fo)
    assert np.all(w == value)


def test_constant_default_value():
    w = initializers.init_weights("constant", np.random.default_rng(7), 3, 4)
    assert np.all(w == 0.1)


def test_unused_params_are_ignored():
    rng_a, rng_b = np.random.default_rng(8), np.random.default_rng(8)
    a = initializers.init_weights("he_normal", rng_a, 30, 20, sigma_w=5.0, gain=3.0, value=1.0)
    b = initializers.he_normal(rng_b, 30, 20)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(initializers.REGISTRY))
def test_float32(name):
    w = initializers.init_weights(name, np.random.default_rng(9), 16, 8, dtype=np.float32)
    assert w.dtype == np.float32 and w.shape == (16, 8)


@pytest.mark.parametrize("bad", [{"sigma_w": -1.0}, {"sigma_w": float("nan")}])
def test_normal_bad_sigma(bad):
    with pytest.raises(ValueError, match="sigma_w"):
        initializers.init_weights("normal", np.random.default_rng(0), 4, 4, **bad)


def test_orthogonal_bad_gain_and_constant_bad_value():
    with pytest.raises(ValueError, match="gain"):
        initializers.init_weights("orthogonal", np.random.default_rng(0), 4, 4, gain=-1.0)
    with pytest.raises(ValueError, match="finite"):
        initializers.init_weights("constant", np.random.default_rng(0), 4, 4, value=float("inf"))


# ------------------------------------------------------------ through the MLP
def test_mlp_weight_shapes_and_scheme():
    net = MLP(512, [256, 512], 10, init="he_normal", seed=3)
    assert [w.shape for w in net.weights] == [(512, 256), (256, 512), (512, 10)]
    assert [b.shape for b in net.biases] == [(256,), (512,), (10,)]
    for w in net.weights[:2]:
        fi = w.shape[0]
        var = 2.0 / fi
        assert abs(w.var() - var) <= N_SE * var * math.sqrt(2.0 / w.size)


def test_mlp_init_params_reach_initializer():
    net = MLP(512, [512], 4, init="normal", init_params={"sigma_w": 3.0}, seed=1)
    var = 9.0 / 512
    w = net.weights[0]
    assert abs(w.var() - var) <= N_SE * var * math.sqrt(2.0 / w.size)
    net = MLP(64, [32], 4, init="orthogonal", init_params={"gain": 2.0}, seed=1)
    np.testing.assert_allclose(net.weights[0].T @ net.weights[0], 4.0 * np.eye(32), atol=1e-12)
    net = MLP(8, [8], 4, init="constant", init_params={"value": -0.5}, seed=1)
    assert all(np.all(w == -0.5) for w in net.weights)


def test_biases_zero_by_default():
    for init in sorted(initializers.REGISTRY):
        net = MLP(8, [16, 16], 3, init=init, seed=0)
        for b in net.biases:
            assert np.all(b == 0.0), init


@pytest.mark.parametrize("sigma_b", [0.05, 1.0])
def test_biases_normal_with_sigma_b(sigma_b):
    net = MLP(16, [512, 512, 512, 512], 512, sigma_b=sigma_b, seed=11)
    b = np.concatenate(net.biases)
    var = sigma_b ** 2
    n = b.size
    assert abs(b.var() - var) <= N_SE * var * math.sqrt(2.0 / n), (b.var(), var)
    assert abs(b.mean()) <= N_SE * math.sqrt(var / n)
    # different layers get different draws
    assert not np.allclose(net.biases[0], net.biases[1])


def test_sigma_b_negative_is_value_error():
    with pytest.raises(ValueError, match="sigma_b"):
        MLP(4, [4], 2, sigma_b=-0.1)


def test_same_seed_same_weights_different_seed_different():
    a = MLP(10, [20, 20], 3, seed=5, sigma_b=0.1)
    b = MLP(10, [20, 20], 3, seed=5, sigma_b=0.1)
    c = MLP(10, [20, 20], 3, seed=6, sigma_b=0.1)
    for wa, wb, wc in zip(a.weights + a.biases, b.weights + b.biases, c.weights + c.biases):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)


# ---------------------------------------------- initializer parameters through the MLP
INITIALIZERS = tuple(sorted(initializers.REGISTRY))


@pytest.mark.parametrize("init", ["normal", "xavier_uniform"])
def test_unknown_initializer_parameter_is_rejected(init):
    with pytest.raises(ValueError, match="sigma"):
        MLP(3, [4], 2, init=init, init_params={"sigma": 3.0})


@pytest.mark.parametrize("init", INITIALIZERS)
def test_every_initializer_accepts_sigma_w_gain_and_value(init):
    net = MLP(3, [4], 2, init=init, init_params={"sigma_w": 2.0, "gain": 1.5, "value": 0.3})
    assert all(np.isfinite(w).all() for w in net.weights)


def test_normal_initializer_uses_sigma_w():
    net = MLP(512, [512], 2, init="normal", init_params={"sigma_w": 3.0, "gain": 9.0, "value": 9.0}, seed=0)
    assert net.weights[0].std() * math.sqrt(512) == pytest.approx(3.0, rel=0.02)
