"""Back-propagation: centred finite differences (float64) of a hand-written forward pass,
for every activation x loss, weights and biases of every layer, the back-propagated
errors dL/dz_l, and dropout with fixed masks. Also inverted dropout itself."""
import numpy as np
import pytest

from nncore import MLP, activations

pytestmark = pytest.mark.usefixtures("single_thread_blas")

ACTIVATIONS = tuple(sorted(activations.REGISTRY))
LOSSES = ("cross_entropy", "bce", "mse")
N_IN, HIDDEN, N_OUT, B = 4, [5, 6, 5], 3, 7  # depth 3: L = 4 layers
EPS = 1e-6
TOL = 1e-6
KINK = 1e-4


def _build(ref, act, loss, dropout=0.0, hidden=HIDDEN, activation_params=None):
    """Network, data and (if dropout) fixed masks, with every hidden pre-activation
    at least KINK away from 0 where phi' jumps at 0 (relu, leaky_relu: by the reference's phi'),
    so that they are smooth under +-EPS."""
    alpha = (activation_params or {}).get("alpha", ref.LEAKY_ALPHA)
    rng = np.random.default_rng(1234)
    X = rng.normal(size=(B, N_IN))
    y = ref.make_targets(loss, rng, B, N_OUT)
    # sigmoid (phi' <= 1/4) shrinks the gradients of early layers ~4x per layer under the
    # default init, which brings finite-difference rounding noise to ~1e-7 relative;
    # sigma_w = 4 keeps them O(1e-2) and the check sharp.
    init = dict(init="normal", init_params={"sigma_w": 4.0}) if act == "sigmoid" else {}
    for seed in range(100):
        net = MLP(N_IN, hidden, N_OUT, activation=act, loss=loss, dropout=dropout, seed=seed,
                  sigma_b=0.1, activation_params=activation_params, **init)
        masks = None
        if dropout:
            net.loss_and_grads(X, y)  # train mode: draws masks
            masks = [m.copy() for m in net.last_masks]
        zs, _, _ = ref.forward(net.weights, net.biases, X, act, masks, alpha)
        kinked = ref.dphi(act, np.array([-1e-300]), alpha)[0] != ref.dphi(act, np.array([1e-300]), alpha)[0]
        if kinked and min(np.min(np.abs(z)) for z in zs[:-1]) < KINK:  # relu, leaky_relu
            continue
        return net, X, y, masks, alpha
    raise AssertionError("no seed without near-kink pre-activations")


def _check_param_grads(ref, net, X, y, act, loss, masks, alpha):
    Ws = [w.copy() for w in net.weights]
    bs = [b.copy() for b in net.biases]
    value, grads = net.loss_and_grads(X, y, masks=masks)
    gW = [g.copy() for g in grads.weights]
    gb = [g.copy() for g in grads.biases]
    assert value == pytest.approx(ref.total_loss(Ws, bs, X, y, act, loss, masks, alpha), rel=1e-12)

    def f():
        return ref.total_loss(Ws, bs, X, y, act, loss, masks, alpha)

    for l in range(net.n_layers):
        num_w = ref.numerical_grad(f, Ws[l], EPS)
        num_b = ref.numerical_grad(f, bs[l], EPS)
        assert gW[l].shape == Ws[l].shape and gb[l].shape == bs[l].shape
        err_w, err_b = ref.rel_err(num_w, gW[l]), ref.rel_err(num_b, gb[l])
        assert err_w <= TOL, f"weights of layer {l + 1}: rel err {err_w:.2e}"
        assert err_b <= TOL, f"biases of layer {l + 1}: rel err {err_b:.2e}"
        assert np.max(np.abs(num_w)) > 1e-8 and np.max(np.abs(num_b)) > 1e-8  # the check is not vacuous
    # the parameters were not touched by computing gradients
    for w, w0 in zip(net.weights + net.biases, Ws + bs):
        np.testing.assert_array_equal(w, w0)


def _check_deltas(ref, net, X, y, act, loss, masks, alpha):
    Ws = [w.copy() for w in net.weights]
    bs = [b.copy() for b in net.biases]
    _, grads = net.loss_and_grads(X, y, masks=masks, deltas=True)
    deltas = [d.copy() for d in grads.deltas]
    gb = [g.copy() for g in grads.biases]
    assert len(deltas) == net.n_layers
    for l in range(net.n_layers):
        shift = np.zeros((B, net.sizes[l + 1]))
        num = ref.numerical_grad(lambda: ref.total_loss(Ws, bs, X, y, act, loss, masks, alpha, z_shift=(l, shift)),
                                 shift, EPS)
        assert deltas[l].shape == num.shape
        err = ref.rel_err(num, deltas[l])
        assert err <= TOL, f"dL/dz of layer {l + 1}: rel err {err:.2e}"
        # dL/db_l = sum over the batch of dL/dz_l
        np.testing.assert_allclose(gb[l], deltas[l].sum(axis=0), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_param_gradients_finite_differences(ref, act, loss):
    net, X, y, masks, alpha = _build(ref, act, loss)
    _check_param_grads(ref, net, X, y, act, loss, masks, alpha)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_deltas_finite_differences(ref, act, loss):
    net, X, y, masks, alpha = _build(ref, act, loss)
    _check_deltas(ref, net, X, y, act, loss, masks, alpha)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_gradients_with_fixed_dropout_masks(ref, act, loss):
    net, X, y, masks, alpha = _build(ref, act, loss, dropout=0.3)
    assert any(np.any(m == 0) for m in masks)  # some units are actually dropped
    _check_param_grads(ref, net, X, y, act, loss, masks, alpha)
    _check_deltas(ref, net, X, y, act, loss, masks, alpha)


@pytest.mark.parametrize("loss", LOSSES)
def test_leaky_relu_custom_alpha(ref, loss):
    net, X, y, masks, alpha = _build(ref, "leaky_relu", loss, activation_params={"alpha": 0.2})
    assert alpha == 0.2
    _check_param_grads(ref, net, X, y, "leaky_relu", loss, masks, alpha)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_depth_one(ref, act):
    net, X, y, masks, alpha = _build(ref, act, "cross_entropy", hidden=[6])
    _check_param_grads(ref, net, X, y, act, "cross_entropy", masks, alpha)
    _check_deltas(ref, net, X, y, act, "cross_entropy", masks, alpha)


@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_matches_handwritten_backprop(ref, act, dropout):
    """Exact agreement (to rounding) with the analytical back-propagation written in conftest."""
    net, X, y, masks, alpha = _build(ref, act, "cross_entropy", dropout=dropout)
    value, grads = net.loss_and_grads(X, y, masks=masks, deltas=True)
    zs, _, as_ = ref.forward(net.weights, net.biases, X, act, masks, alpha)
    rvalue, rdeltas, rgW, rgb = ref.backward(net.weights, X, zs, as_, act, "cross_entropy", y, masks, alpha)
    assert value == pytest.approx(rvalue, rel=1e-13)
    for l in range(net.n_layers):
        np.testing.assert_allclose(grads.weights[l], rgW[l], rtol=1e-11, atol=1e-15)
        np.testing.assert_allclose(grads.biases[l], rgb[l], rtol=1e-11, atol=1e-15)
        np.testing.assert_allclose(grads.deltas[l], rdeltas[l], rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_forward_matches_handwritten(ref, act):
    net, X, y, _, alpha = _build(ref, act, "mse", dropout=0.5)
    zs, _, _ = ref.forward(net.weights, net.biases, X, act, None, alpha)
    out = net.forward(X)  # evaluation: no dropout
    np.testing.assert_allclose(out, zs[-1], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(net.forward(X), out)
    assert net.loss(X, y) == pytest.approx(ref.loss_and_dz("mse", zs[-1], y)[0], rel=1e-12)
    # train=False in loss_and_grads: no dropout either
    value, _ = net.loss_and_grads(X, y, train=False)
    assert value == pytest.approx(ref.loss_and_dz("mse", zs[-1], y)[0], rel=1e-12)
    assert net.last_masks is None


def test_grads_stay_valid_after_the_next_call(ref):
    """Each call returns new arrays: the gradients of one call are not overwritten by the next."""
    net, X, y, _, _ = _build(ref, "tanh", "cross_entropy")
    _, g1 = net.loss_and_grads(X, y, deltas=True)
    saved = [a.copy() for a in g1.weights + g1.biases + g1.deltas]
    _, g2 = net.loss_and_grads(X[:3] * 2.0, y[:3], deltas=True)
    assert not np.allclose(g2.weights[0], saved[0])
    for a, a0 in zip(g1.weights + g1.biases + g1.deltas, saved):
        np.testing.assert_array_equal(a, a0)


# ------------------------------------------------------------------- dropout
def _identity_readout_net(p, width=300, seed=0):
    """One hidden tanh layer followed by W_2 = I, b_2 = 0, so the output *is* the dropped-out hidden layer."""
    net = MLP(6, [width], width, activation="tanh", loss="mse", dropout=p, seed=seed, sigma_b=0.5)
    net.weights[1][...] = np.eye(width)
    net.biases[1][...] = 0.0
    return net


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_inverted_dropout_train_mode(ref, p):
    net = _identity_readout_net(p)
    X = np.random.default_rng(3).normal(size=(40, 6))
    h = ref.phi("tanh", X @ net.weights[0] + net.biases[0])
    assert np.all(np.abs(h) > 0)
    out = net.forward(X, train=True)
    dropped = out == 0
    # survivors scaled by exactly 1/(1 - p)
    np.testing.assert_allclose(out[~dropped], h[~dropped] / (1 - p), rtol=1e-12)
    n = out.size
    frac = dropped.mean()
    assert abs(frac - p) <= 5 * np.sqrt(p * (1 - p) / n), frac
    # a fresh mask every call
    out2 = net.forward(X, train=True)
    assert not np.array_equal(out2 == 0, dropped)
    # unbiased: the mean over many masks approaches h
    mean = np.mean([net.forward(X, train=True) for _ in range(50)], axis=0)
    assert abs(np.mean(mean - h)) < 0.02


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_dropout_masks_values_and_fraction(p):
    net = MLP(10, [200, 200], 3, dropout=p, seed=4)
    X = np.random.default_rng(5).normal(size=(50, 10))
    y = np.arange(50) % 3
    net.loss_and_grads(X, y)
    assert net.last_masks is not None and len(net.last_masks) == 2
    for m in net.last_masks:
        assert m.shape == (50, 200)
        vals = np.unique(m)
        np.testing.assert_allclose(vals, [0.0, 1.0 / (1.0 - p)], rtol=1e-15)
        frac = np.mean(m == 0)
        assert abs(frac - p) <= 5 * np.sqrt(p * (1 - p) / m.size)
    assert not np.array_equal(net.last_masks[0] == 0, net.last_masks[1] == 0)


def test_dropout_identity_in_eval(ref):
    net = _identity_readout_net(0.5)
    X = np.random.default_rng(6).normal(size=(20, 6))
    h = ref.phi("tanh", X @ net.weights[0] + net.biases[0])
    np.testing.assert_allclose(net.forward(X), h, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(net.forward(X, train=False), h, rtol=1e-12, atol=1e-15)


def test_fixed_masks_are_used(ref):
    net, X, y, masks, alpha = _build(ref, "tanh", "mse", dropout=0.5)
    v1, _ = net.loss_and_grads(X, y, masks=masks)
    v2, _ = net.loss_and_grads(X, y, masks=masks)
    assert v1 == v2
    other = [np.where(np.random.default_rng(9).random(m.shape) < 0.5, 0.0, 2.0) for m in masks]
    v3, _ = net.loss_and_grads(X, y, masks=other)
    assert v3 == pytest.approx(ref.total_loss(net.weights, net.biases, X, y, "tanh", "mse", other, alpha), rel=1e-12)
    assert v3 != v1


def test_no_dropout_means_no_masks():
    net = MLP(3, [4], 2, seed=0)
    net.loss_and_grads(np.ones((2, 3)), np.array([0, 1]))
    assert net.last_masks is None


# ------------------------------------------- BatchNorm, LayerNorm and residual networks
NORM_CONFIGS = [dict(norm="batch"), dict(norm="layer"), dict(residual=True, residual_scale=0.7),
                dict(norm="batch", residual=True), dict(norm="layer", residual=True, residual_scale=0.5, dropout=0.3)]


NORM_CASES = [(c, t) for c in NORM_CONFIGS for t in (True, False) if t or not c.get("dropout")]  # masks: training only


@pytest.mark.parametrize("config, train", NORM_CASES,
                         ids=["-".join(f"{k}={v}" for k, v in c.items()) + ("-train" if t else "-eval") for c, t in NORM_CASES])
def test_norm_and_residual_networks_finite_differences(ref, config, train):
    """Every gradient (W, b, gamma, beta of every layer) against centred finite differences, in
    float64, of the loss computed by the reference of test_network (the equations written out).
    ``eval``: BatchNorm on running averages moved away from 0 and 1 by a few training passes."""
    from test_network import _randomize_norms, _softmax_ce, reference_forward
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(B, N_IN)), np.arange(B) % N_OUT
    net = MLP(N_IN, [5, 5, 5], N_OUT, activation="tanh", sigma_b=0.3, seed=1, **config)
    _randomize_norms(net)
    for _ in range(3):
        net.loss_and_grads(rng.normal(size=(B, N_IN)), y)
    running = None
    if not train and net.norm == "batch":
        running = ([n.running_mean.copy() for n in net.norms], [n.running_var.copy() for n in net.norms])
        assert not np.allclose(running[1][0], 1.0)
    masks = [m.copy() for m in net.last_masks] if net.dropout else None
    value, grads = net.loss_and_grads(X, y, train=train, masks=masks)
    params = [p.copy() for p in net.parameters()]
    nW = net.n_layers
    nN = len(net.norm_scales)

    def f():
        Ws, bs = params[:nW], params[nW:2 * nW]
        gs, betas = params[2 * nW:2 * nW + nN], params[2 * nW + nN:]
        z = reference_forward(Ws, bs, gs, betas, X, net.norm, net.residual, net.residual_scale, masks, running)[0]
        return _softmax_ce(z, y)

    assert value == pytest.approx(f(), rel=1e-12)
    for k, (p, g) in enumerate(zip(params, grads.parameters())):
        num = ref.numerical_grad(f, p, EPS)
        assert g.shape == p.shape
        if train and net.norm == "batch" and nW <= k < 2 * nW - 1:
            # b_l of a hidden layer is cancelled by the batch mean: its gradient is exactly 0
            assert np.max(np.abs(num)) < 1e-9 and np.max(np.abs(g)) < 1e-14, k
            continue
        err = ref.rel_err(num, g)
        assert err <= TOL, f"parameter {k}: rel err {err:.2e}"
        assert np.max(np.abs(num)) > 1e-8, k
