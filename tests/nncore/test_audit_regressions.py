"""Regression tests for the defects an audit of nncore found: divergence on
the last update, float32 global norms beyond float32's range, histogram bins validated late,
histogram steps off the log grid, and bad input silently accepted (initializer parameters,
optimizer flags, complex X, float32 MSE targets, ignored dropout masks, hidden as an int,
dropout=None, rmsprop alpha / adadelta rho = 1).

References are computed here in float64 NumPy, never by nncore."""
import math
import warnings

import numpy as np
import pytest

from nncore import MLP, optimizers, train

INITIALIZERS = ("uniform", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
                "lecun_normal", "normal", "orthogonal", "constant")


def _xy(n_in=3, n_out=2, B=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), np.arange(B) % n_out


def _norm64(arrays):
    """sqrt of the summed squares of the entries, in float64."""
    return math.sqrt(sum(float(np.sum(np.asarray(a, dtype=np.float64) ** 2)) for a in arrays))


def _signed(rng, shape, lo, hi):
    """float32 entries of magnitude in [lo, hi) (log-uniform) with random signs."""
    mag = np.exp(rng.uniform(math.log(lo), math.log(hi), size=shape))
    return (mag * rng.choice([-1.0, 1.0], size=shape)).astype(np.float32)


# ------------------------------------------------------------ 1. last update diverges
def test_non_finite_parameters_after_the_last_update_are_divergence():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 3)), np.full((16, 2), 1e6)
    net = MLP(3, [4, 4], 2, seed=0, loss="mse")
    records = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(net, optimizers.get("sgd", lr=1e308), X, y, epochs=1, batch_size=16,
                       callback=records.append)
    assert caught == [], [str(w.message) for w in caught]
    assert not np.isfinite(np.concatenate([np.ravel(p) for p in net.weights + net.biases])).all()
    assert result.steps == 1
    assert result.diverged is True
    assert result.diverged_step == 1


# ----------------------------------------------- 2. float32 global norm, no overflow/underflow
@pytest.mark.parametrize("lo, hi", [(1e19, 1e20), (1e-25, 1e-24)], ids=["huge", "tiny"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "replaced"])
def test_float32_global_norm_is_the_float64_norm(lo, hi, packed):
    net = MLP(5, [6, 7], 3, dtype="float32", seed=0)
    X, y = _xy(5, 3, 8)
    _, grads = net.loss_and_grads(X, y)
    rng = np.random.default_rng(1)
    for entries in (grads.weights, grads.biases):
        for l in range(len(entries)):
            values = _signed(rng, entries[l].shape, lo, hi)
            if packed:
                entries[l][...] = values
            else:
                entries[l] = values
    assert (grads.packed() is not None) == packed  # the path under test
    gs = grads.weights + grads.biases
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in gs)
    expected = _norm64(gs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = optimizers.global_norm(grads)
    assert math.isfinite(got) and got > 0.0
    assert got == pytest.approx(expected, rel=1e-5, abs=0.0)  # abs=0: approx's default 1e-12 would pass 0


def _overflowing_net():
    """float32 net of /tmp/audit/norm_overflow.py: finite loss and gradients, but the sum of
    squares of the gradients is beyond float32's range (norm > 1.8e19)."""
    net = MLP(4, [8, 8, 8], 2, activation="identity", loss="mse", dtype="float32", seed=0,
              init="constant", init_params={"value": 30.0})
    return net, np.full((4, 4), 30.0), np.zeros((4, 2))


def test_train_does_not_diverge_on_finite_float32_gradients_with_a_huge_norm():
    net, X, y = _overflowing_net()
    ref_net, _, _ = _overflowing_net()
    loss, g = ref_net.loss_and_grads(X, y)
    gs = [a.copy() for a in g.weights + g.biases]
    assert math.isfinite(loss) and all(np.isfinite(a).all() for a in gs)
    assert _norm64(gs) > 1.8e19  # squares sum beyond float32's max
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = train(net, optimizers.get("sgd", lr=1e-30), X, y, epochs=1, batch_size=4)
    assert result.diverged_step is None
    assert not result.diverged
    assert result.steps == 1
    assert np.isfinite(net.flat_parameters()).all()


def test_clipped_step_on_float32_gradients_with_a_huge_norm():
    net, X, y = _overflowing_net()
    _, grads = net.loss_and_grads(X, y)
    g64 = [a.astype(np.float64) for a in grads.weights + grads.biases]
    p0 = [a.astype(np.float64) for a in net.weights + net.biases]
    norm = _norm64(g64)
    lr = 0.1
    expected_u = [lr * g / (norm + 1e-6) for g in g64]  # torch clip_grad_norm_(1.0), then SGD
    assert max(float(np.abs(u).max()) for u in expected_u) > 1e-2
    opt = optimizers.get("sgd", lr=lr, clip_norm=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step(net, grads)
    new = [a.astype(np.float64) for a in net.weights + net.biases]
    assert all(np.isfinite(a).all() for a in new)
    for a, a0, u in zip(new, p0, expected_u):
        np.testing.assert_allclose(a0 - a, u, rtol=0, atol=1e-4)


# ------------------------------------------------------ 3. histogram bins checked up front
@pytest.mark.parametrize("bins", [0, -1, 2.5, "64"])
@pytest.mark.parametrize("histogram_steps", [(20,), ()], ids=["hist_at_20", "no_hist_steps"])
def test_train_rejects_bad_histogram_bins_before_any_update(bins, histogram_steps):
    X, y = _xy()
    net = MLP(3, [8, 8], 2, seed=0)
    opt = optimizers.get("adam", lr=0.01)
    before = [p.copy() for p in net.weights + net.biases]
    calls = []
    with pytest.raises(ValueError, match="bins"):
        train(net, opt, X, y, epochs=4, batch_size=8, log_every=10, histogram_steps=histogram_steps,
              histogram_bins=bins, callback=calls.append)
    assert calls == []
    assert opt.t == 0
    for p, p0 in zip(net.weights + net.biases, before):
        np.testing.assert_array_equal(p, p0)


@pytest.mark.parametrize("bins", [0, -1, 2.5, "64"])
def test_probe_with_histograms_rejects_bad_bins_before_probing(bins):
    X, y = _xy(B=16)
    net = MLP(3, [4], 2, seed=0)
    with pytest.raises(ValueError, match="bins"):
        net.probe_with_histograms(X, y, bins=bins)
    assert math.isnan(net.probe_loss)
    net.probe(X[:8], y[:8])
    previous = net.probe_loss
    assert math.isfinite(previous)
    with pytest.raises(ValueError, match="bins"):
        net.probe_with_histograms(X, y, bins=bins)  # another batch: another loss if it ran
    assert net.probe_loss == previous


# ------------------------------------------------- 4. histogram steps off the log grid
def test_histogram_steps_off_the_log_grid_are_reported():
    X, y = _xy()
    net = MLP(3, [4], 2, seed=0)
    got = []
    result = train(net, optimizers.get("sgd", lr=0.1), X, y, epochs=4, batch_size=8, log_every=10,
                   histogram_steps=(5, 10_000), callback=got.append)
    assert result.steps == 32  # 4 epochs of 64 / 8 batches
    assert [r.step for r in got] == [0, 5, 10, 20, 30, 32]
    by_step = {r.step: r for r in got}
    assert by_step[5].histograms is not None
    assert set(by_step[5].histograms) == {"act", "delta", "weight_grad"}
    assert by_step[32].final and by_step[32].histograms is not None
    for step in (0, 10, 20, 30):
        assert by_step[step].histograms is None


# ------------------------------------------------------------------- 5. bad input
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


@pytest.mark.parametrize("name, kw", [("adam", {"amsgrad": "False"}), ("rmsprop", {"centered": "false"}),
                                      ("sgd", {"momentum": 0.9, "nesterov": "no"})])
def test_string_optimizer_flags_are_rejected(name, kw):
    flag = [k for k in kw if k != "momentum"][0]
    with pytest.raises(ValueError, match=flag):
        optimizers.get(name, **kw)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)])
@pytest.mark.parametrize("name, flag, extra", [("adam", "amsgrad", {}), ("rmsprop", "centered", {}),
                                               ("sgd", "nesterov", {"momentum": 0.9})])
def test_bool_optimizer_flags_are_accepted(name, flag, extra, value):
    opt = optimizers.get(name, **extra, **{flag: value})
    assert opt.hyper[flag] == bool(value)


@pytest.mark.parametrize("call", ["loss_and_grads", "probe"])
def test_complex_X_is_rejected_without_warning(call):
    net = MLP(2, [3], 2, seed=0)
    X = np.array([[1 + 5j, 2 - 3j], [0.5 + 0j, 1 + 1j]])
    y = np.array([0, 1])
    before = net.flat_parameters().copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="X"):
            getattr(net, call)(X, y)
    assert caught == [], [str(w.message) for w in caught]
    np.testing.assert_array_equal(net.flat_parameters(), before)


# --------------------------------------------- 6. float32 MSE targets beyond float32's range
@pytest.mark.parametrize("call", ["loss_and_grads", "probe"])
def test_float32_mse_targets_beyond_float32_range_are_rejected(call):
    net = MLP(3, [4], 2, loss="mse", dtype="float32", seed=0)
    X, y = np.zeros((8, 3)), np.full((8, 2), 1e39)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="target"):
            getattr(net, call)(X, y)
    assert caught == [], [str(w.message) for w in caught]


def test_train_rejects_float32_mse_targets_beyond_float32_range_before_any_update():
    net = MLP(3, [4], 2, loss="mse", dtype="float32", seed=0)
    X, y = np.random.default_rng(0).normal(size=(8, 3)), np.full((8, 2), 1e39)
    before = net.flat_parameters().copy()
    calls = []
    with pytest.raises(ValueError, match="target"):
        train(net, optimizers.get("sgd"), X, y, epochs=1, batch_size=8, callback=calls.append)
    assert calls == []
    np.testing.assert_array_equal(net.flat_parameters(), before)


def test_float64_mse_targets_at_1e39_are_still_accepted():
    net = MLP(3, [4], 2, loss="mse", seed=0)
    X, y = np.zeros((8, 3)), np.full((8, 2), 1e39)
    loss, _ = net.loss_and_grads(X, y)
    # X = 0 and zero biases: the logits are 0, the loss is mean(y^2)
    assert loss == pytest.approx(1e78, rel=1e-12)


# ------------------------------------------------------------- 7. fixed dropout masks
def _mask_case():
    rng = np.random.default_rng(0)
    return rng.normal(size=(5, 3)), np.zeros(5, int), [np.zeros((5, 4)), np.zeros((5, 4))]


def test_masks_without_dropout_are_rejected():
    X, y, masks = _mask_case()
    net = MLP(3, [4, 4], 2, seed=0)
    with pytest.raises(ValueError, match="mask"):
        net.loss_and_grads(X, y, masks=masks)


def test_masks_with_train_false_are_rejected():
    X, y, masks = _mask_case()
    net = MLP(3, [4, 4], 2, seed=0, dropout=0.5)
    with pytest.raises(ValueError, match="mask"):
        net.loss_and_grads(X, y, train=False, masks=masks)


def test_masks_are_used_with_dropout_and_train():
    X, y, masks = _mask_case()
    net = MLP(3, [4, 4], 2, seed=0, dropout=0.5)
    loss, _ = net.loss_and_grads(X, y, masks=masks)
    # all units dropped and zero biases: the logits are 0, so the cross-entropy is ln 2
    assert loss == pytest.approx(math.log(2.0), rel=1e-12)


def test_mask_shape_error_shows_expected_and_given_shapes():
    X, y, _ = _mask_case()
    net = MLP(3, [4, 4], 2, seed=0, dropout=0.5)
    with pytest.raises(ValueError) as info:
        net.loss_and_grads(X, y, masks=[np.ones((3, 4)), np.ones((5, 4))])
    message = str(info.value)
    assert "(3, 4)" in message  # given
    assert "(5, 4)" in message  # expected


# ------------------------------------------------------ 8. constructor and optimizer ranges
def test_hidden_as_an_int_is_a_value_error():
    with pytest.raises(ValueError, match="hidden"):
        MLP(3, 4, 2)


def test_dropout_none_is_a_value_error():
    with pytest.raises(ValueError, match="dropout"):
        MLP(3, [4], 2, dropout=None)


def _step_once(name, **kw):
    """One step of optimizer ``name`` on a float64 net with fixed gradients; (p0, g, p1) as float64 lists."""
    net = MLP(3, [4], 2, seed=0, sigma_b=0.3)
    X, y = _xy(B=8)
    _, grads = net.loss_and_grads(X, y)
    g = [a.copy() for a in grads.weights + grads.biases]
    p0 = [a.copy() for a in net.weights + net.biases]
    optimizers.get(name, **kw).step(net, grads)
    return p0, g, [a.copy() for a in net.weights + net.biases]


def test_rmsprop_alpha_one_is_accepted():
    # torch: square_avg stays 0, so the step is lr * g / (0 + eps)
    p0, g, p1 = _step_once("rmsprop", lr=0.1, alpha=1.0, eps=1.0)
    for a0, ga, a1 in zip(p0, g, p1):
        np.testing.assert_allclose(a1, a0 - 0.1 * ga, rtol=1e-12, atol=1e-15)


def test_adadelta_rho_one_is_accepted():
    # torch: both averages stay 0, so delta = sqrt(eps) / sqrt(eps) g = g and the step is lr * g
    p0, g, p1 = _step_once("adadelta", lr=0.1, rho=1.0)
    for a0, ga, a1 in zip(p0, g, p1):
        np.testing.assert_allclose(a1, a0 - 0.1 * ga, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name, kw", [("rmsprop", {"alpha": 1.1}), ("rmsprop", {"alpha": -0.1}),
                                      ("adadelta", {"rho": 1.1}), ("adadelta", {"rho": -0.1})])
def test_rmsprop_alpha_and_adadelta_rho_out_of_range_are_rejected(name, kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        optimizers.get(name, **kw)


# ------------------------------------------------ from the review of the fixes above
def test_mse_accepts_boolean_targets():
    net = MLP(3, [4], 2, loss="mse", seed=0)
    X = np.ones((2, 3))
    y = np.array([[True, False], [False, True]])
    z = net.forward(X)
    assert net.loss(X, y) == pytest.approx(float(np.mean((z - y.astype(np.float64)) ** 2)), rel=1e-12)


def test_dropout_as_a_zero_dimensional_array_is_accepted():
    assert MLP(3, [4], 2, dropout=np.array(0.25)).dropout == 0.25


@pytest.mark.parametrize("hidden", [np.array(8), np.ones((2, 2), dtype=int)])
def test_hidden_as_an_array_that_is_not_a_list_of_widths(hidden):
    with pytest.raises(ValueError, match="hidden"):
        MLP(3, hidden, 2)
