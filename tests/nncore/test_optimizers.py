"""Optimizers: parameter trajectories on a fixed sequence of 20 random gradients against
reference loops written here from torch.optim's algorithms (defaults included), with
weight decay and gradient clipping; update norms; validation."""
import copy
import math
import warnings

import numpy as np
import pytest

from nncore import MLP, Grads, optimizers

pytestmark = pytest.mark.usefixtures("single_thread_blas")

N_STEPS = 20
RTOL = 1e-12
ATOL = 1e-15

TORCH_DEFAULTS = {
    "sgd": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "nesterov": False},
    "momentum": {"lr": 1e-3, "momentum": 0.9, "dampening": 0.0, "nesterov": False},
    "nesterov": {"lr": 1e-3, "momentum": 0.9, "dampening": 0.0, "nesterov": True},
    "adagrad": {"lr": 1e-2, "lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
    "rmsprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False},
}
RULE = {"sgd": "sgd", "momentum": "sgd", "nesterov": "sgd", "adagrad": "adagrad", "rmsprop": "rmsprop",
        "adadelta": "adadelta", "adam": "adam"}


# ------------------------------------------------------------ the references
def _sgd(h, st, g, t):
    mu, damp = h["momentum"], h["dampening"]
    if mu != 0:
        if t == 1:
            buf = g.copy()                       # no dampening on the first step
        else:
            buf = mu * st["buf"] + (1 - damp) * g
        st["buf"] = buf
        d = g + mu * buf if h["nesterov"] else buf
    else:
        d = g
    return h["lr"] * d


def _adagrad(h, st, g, t):
    clr = h["lr"] / (1 + (t - 1) * h["lr_decay"])
    st["sum"] = st.get("sum", h["initial_accumulator_value"]) + g * g
    return clr * g / (np.sqrt(st["sum"]) + h["eps"])


def _rmsprop(h, st, g, t):
    a = h["alpha"]
    st["v"] = a * st.get("v", 0.0) + (1 - a) * g * g
    vt = st["v"]
    if h["centered"]:
        st["gavg"] = a * st.get("gavg", 0.0) + (1 - a) * g
        vt = vt - st["gavg"] ** 2
    avg = np.sqrt(vt) + h["eps"]                   # eps outside the square root
    if h["momentum"] > 0:
        st["buf"] = h["momentum"] * st.get("buf", 0.0) + g / avg
        return h["lr"] * st["buf"]
    return h["lr"] * g / avg


def _adadelta(h, st, g, t):
    rho, eps = h["rho"], h["eps"]
    st["v"] = rho * st.get("v", 0.0) + (1 - rho) * g * g
    dx = np.sqrt(st.get("u", 0.0) + eps) / np.sqrt(st["v"] + eps) * g
    st["u"] = rho * st.get("u", 0.0) + (1 - rho) * dx * dx
    return h["lr"] * dx


def _adam(h, st, g, t):
    b1, b2 = h["betas"]
    st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
    m_hat = st["m"] / (1 - b1 ** t)
    if h["amsgrad"]:
        # torch keeps the running max of the raw second moment and bias-corrects it with the current t
        st["vmax"] = np.maximum(st.get("vmax", 0.0), st["v"])
        v_hat = st["vmax"] / (1 - b2 ** t)
    else:
        v_hat = st["v"] / (1 - b2 ** t)
    return h["lr"] * m_hat / (np.sqrt(v_hat) + h["eps"])  # eps after sqrt(v_hat)


RULES = {"sgd": _sgd, "adagrad": _adagrad, "rmsprop": _rmsprop, "adadelta": _adadelta, "adam": _adam}


def reference_trajectory(name, hyper, params0, grad_seq, weight_decay=0.0, clip_norm=None):
    """[(params after step t, steps u_t)] for t = 1..T, p_t = p_(t-1) - u_t."""
    h = {**TORCH_DEFAULTS[name], **hyper}
    rule = RULES[RULE[name]]
    params = [p.copy() for p in params0]
    states = [{} for _ in params]
    out = []
    for t, gs in enumerate(grad_seq, start=1):
        gs = [g.copy() for g in gs]
        if clip_norm is not None:  # torch.nn.utils.clip_grad_norm_ over all parameters
            total = math.sqrt(sum(float(np.sum(g * g)) for g in gs))
            coef = clip_norm / (total + 1e-6)
            if coef < 1:
                gs = [g * coef for g in gs]
        if weight_decay:
            gs = [g + weight_decay * p for g, p in zip(gs, params)]
        steps = [rule(h, st, g, t) for st, g in zip(states, gs)]
        params = [p - u for p, u in zip(params, steps)]
        out.append(([p.copy() for p in params], steps))
    return out


# ------------------------------------------------------------------- helpers
def _net():
    # sigma_b > 0: biases are non-zero, so weight decay on biases is visible
    return MLP(3, [4, 5], 2, sigma_b=0.3, seed=7)


def _grad_seq(net, scale=1.0, seed=0, vary=True):
    rng = np.random.default_rng(seed)
    seq = []
    for _ in range(N_STEPS):
        s = scale * (math.exp(rng.normal()) if vary else 1.0)  # a per-step scale: some steps clip, some not
        seq.append([s * rng.normal(size=w.shape) for w in net.weights + net.biases])
    return seq


def _run(opt, net, grad_seq):
    n_w = len(net.weights)
    traj = []
    for gs in grad_seq:
        grads = Grads(weights=[g.copy() for g in gs[:n_w]], biases=[g.copy() for g in gs[n_w:]], deltas=[])
        before = [w.copy() for w in grads.weights + grads.biases]
        opt.step(net, grads)
        # the optimizer must not modify the gradients it was given
        for g, g0 in zip(grads.weights + grads.biases, before):
            np.testing.assert_array_equal(g, g0)
        traj.append(([p.copy() for p in net.weights + net.biases], net.update_norms.copy()))
    return traj


def _compare(name, hyper, kwargs, scale=1.0, weight_decay=0.0, clip_norm=None, seed=0):
    net = _net()
    params0 = [p.copy() for p in net.weights + net.biases]
    seq = _grad_seq(net, scale, seed)
    if weight_decay:
        kwargs = {**kwargs, "weight_decay": weight_decay}
    if clip_norm is not None:
        kwargs = {**kwargs, "clip_norm": clip_norm}
    opt = optimizers.get(name, **kwargs)
    got = _run(opt, net, seq)
    want = reference_trajectory(name, hyper, params0, seq, weight_decay, clip_norm)
    n_w = len(net.weights)
    for t, ((params, norms), (rparams, rsteps)) in enumerate(zip(got, want), start=1):
        for i, (p, rp) in enumerate(zip(params, rparams)):
            np.testing.assert_allclose(p, rp, rtol=RTOL, atol=ATOL, err_msg=f"{name} {kwargs} step {t} param {i}")
        rnorms = [np.linalg.norm(u) for u in rsteps[:n_w]]
        np.testing.assert_allclose(norms, rnorms, rtol=1e-10, err_msg=f"update_norms at step {t}")
        # ... which is ||W_t - W_(t-1)|| up to the rounding of the subtraction
        prev = params0 if t == 1 else got[t - 2][0]
        np.testing.assert_allclose(norms, [np.linalg.norm(p - q) for p, q in zip(params[:n_w], prev[:n_w])],
                                   rtol=1e-6, atol=1e-14)
    # the trajectory actually moved
    assert not np.array_equal(got[-1][0][0], params0[0])
    return opt, seq, got


# --------------------------------------------------------------------- cases
CASES = [
    # (optimizer name, kwargs given to nncore = hyperparameters of the reference beyond the defaults)
    ("sgd", {}),
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.5}),
    ("sgd", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3}),
    ("sgd", {"lr": 0.05, "momentum": 0.7, "nesterov": True}),
    ("momentum", {}),
    ("momentum", {"lr": 0.02, "momentum": 0.8}),
    ("nesterov", {}),
    ("nesterov", {"lr": 0.02, "momentum": 0.95}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.2, "eps": 1e-6}),
    ("rmsprop", {}),
    ("rmsprop", {"lr": 1e-3, "alpha": 0.9}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {"momentum": 0.9}),
    ("rmsprop", {"centered": True, "momentum": 0.5, "alpha": 0.95}),
    ("adadelta", {}),
    ("adadelta", {"lr": 0.5, "rho": 0.95, "eps": 1e-5}),
    ("adam", {}),
    ("adam", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("adam", {"amsgrad": True}),
    ("adam", {"amsgrad": True, "lr": 3e-3, "betas": (0.5, 0.9)}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for n, kw in CASES]


@pytest.mark.parametrize("scale", [1.0, 1e-8], ids=["g~1", "g~1e-8"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_trajectory(name, kwargs, scale):
    """g ~ 1e-8 makes eps matter: it tells eps inside from outside the square root, and
    eps before from after the bias correction."""
    _compare(name, kwargs, kwargs, scale=scale)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_trajectory_weight_decay(name, kwargs):
    _compare(name, kwargs, kwargs, weight_decay=0.05)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_trajectory_clip_norm(name, kwargs):
    net = _net()
    seq = _grad_seq(net)
    totals = [math.sqrt(sum(float(np.sum(g * g)) for g in gs)) for gs in seq]
    clip = float(np.median(totals))
    opt, _, _ = _compare(name, kwargs, kwargs, clip_norm=clip)
    # last_total_norm is the norm before clipping
    assert opt.last_total_norm == pytest.approx(totals[-1], rel=1e-12)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_trajectory_clip_norm_and_weight_decay(name, kwargs):
    """Clipping acts on the raw gradients; the decay term is added afterwards (as torch)."""
    _compare(name, kwargs, kwargs, clip_norm=1.5, weight_decay=0.1, seed=3)


@pytest.mark.parametrize("name", sorted(TORCH_DEFAULTS))
def test_defaults(name):
    opt = optimizers.get(name)
    for key, value in TORCH_DEFAULTS[name].items():
        assert opt.hyper[key] == value, (name, key)
    assert opt.lr == TORCH_DEFAULTS[name]["lr"]
    assert opt.weight_decay == 0.0 and opt.clip_norm is None


def test_first_momentum_step_is_plain_sgd():
    """torch: buf = g on the first step, so the first step is lr * g (lr * (1 + mu) g with nesterov)."""
    for name, factor in (("momentum", 1.0), ("nesterov", 1.9)):
        net = _net()
        w0 = net.weights[0].copy()
        gs = _grad_seq(net, vary=False)[0]
        n_w = len(net.weights)
        optimizers.get(name, lr=0.1).step(net, Grads(gs[:n_w], gs[n_w:], []))
        np.testing.assert_allclose(net.weights[0], w0 - 0.1 * factor * gs[0], rtol=1e-14)


def test_adam_first_step_is_lr_times_sign():
    """Bias correction makes Adam's first step lr * g / (|g| + eps) ~ lr * sign(g)."""
    net = _net()
    w0 = net.weights[0].copy()
    gs = _grad_seq(net, vary=False)[0]
    n_w = len(net.weights)
    optimizers.get("adam", lr=0.01).step(net, Grads(gs[:n_w], gs[n_w:], []))
    np.testing.assert_allclose(w0 - net.weights[0], 0.01 * gs[0] / (np.abs(gs[0]) + 1e-8), rtol=1e-12)


def test_clip_not_applied_when_norm_below_threshold():
    net_a, net_b = _net(), _net()
    seq = _grad_seq(net_a)
    big = 10 * max(math.sqrt(sum(float(np.sum(g * g)) for g in gs)) for gs in seq)
    ta = _run(optimizers.get("sgd", lr=0.1, clip_norm=big), net_a, seq)
    tb = _run(optimizers.get("sgd", lr=0.1), net_b, seq)
    for (pa, _), (pb, _) in zip(ta, tb):
        for a, b in zip(pa, pb):
            np.testing.assert_array_equal(a, b)


def test_clip_grad_norm_function():
    rng = np.random.default_rng(0)
    gw = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    gb = [rng.normal(size=4), rng.normal(size=2)]
    orig = [g.copy() for g in gw + gb]
    total = math.sqrt(sum(float(np.sum(g * g)) for g in orig))
    grads = Grads(gw, gb, [])
    assert optimizers.clip_grad_norm(grads, 1.0) == pytest.approx(total, rel=1e-14)
    coef = 1.0 / (total + 1e-6)
    for g, g0 in zip(grads.weights + grads.biases, orig):
        np.testing.assert_allclose(g, g0 * coef, rtol=1e-14)
    new_total = math.sqrt(sum(float(np.sum(g * g)) for g in grads.weights + grads.biases))
    assert new_total == pytest.approx(1.0, rel=1e-5)
    # above the norm: untouched
    before = [g.copy() for g in grads.weights + grads.biases]
    optimizers.clip_grad_norm(grads, 100.0)
    for g, g0 in zip(grads.weights + grads.biases, before):
        np.testing.assert_array_equal(g, g0)


def test_update_norms_only_weights_and_zero_initially():
    net = _net()
    np.testing.assert_array_equal(net.update_norms, np.zeros(net.n_layers))
    gs = _grad_seq(net)[0]
    n_w = len(net.weights)
    w0 = [w.copy() for w in net.weights]
    optimizers.get("sgd", lr=0.1).step(net, Grads(gs[:n_w], gs[n_w:], []))
    assert net.update_norms.shape == (net.n_layers,)
    np.testing.assert_allclose(net.update_norms, [0.1 * np.linalg.norm(g) for g in gs[:n_w]], rtol=1e-13)
    np.testing.assert_allclose(net.update_norms, [np.linalg.norm(w - v) for w, v in zip(net.weights, w0)],
                               rtol=1e-9)


def test_step_updates_in_place():
    net = _net()
    ids = [id(p) for p in net.weights + net.biases]
    gs = _grad_seq(net)[0]
    n_w = len(net.weights)
    optimizers.get("adam").step(net, Grads(gs[:n_w], gs[n_w:], []))
    assert [id(p) for p in net.weights + net.biases] == ids


def test_float32_parameters_stay_float32():
    net = MLP(3, [4], 2, dtype="float32", seed=0, sigma_b=0.1)
    for name in sorted(TORCH_DEFAULTS):
        opt = optimizers.get(name, weight_decay=0.01, clip_norm=1.0)
        for _ in range(3):
            gw = [np.ones_like(w) for w in net.weights]
            gb = [np.ones_like(b) for b in net.biases]
            opt.step(net, Grads(gw, gb, []))
        assert all(p.dtype == np.float32 for p in net.weights + net.biases), name
        assert all(np.all(np.isfinite(p)) for p in net.weights + net.biases), name


def test_with_real_gradients_loss_decreases():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5))
    y = (X[:, 0] > 0).astype(int)
    for name, kw in (("sgd", {"lr": 0.5}), ("momentum", {"lr": 0.1}), ("adam", {"lr": 1e-2}),
                     ("rmsprop", {"lr": 1e-2}), ("adagrad", {"lr": 0.1}), ("adadelta", {}),
                     ("nesterov", {"lr": 0.1})):
        net = MLP(5, [16, 16], 2, activation="tanh", seed=1)
        opt = optimizers.get(name, **kw)
        first = net.loss(X, y)
        for _ in range(30):
            _, grads = net.loss_and_grads(X, y)
            opt.step(net, grads)
        assert net.loss(X, y) < first, name


def test_step_with_a_precomputed_total_norm_matches_step_without():
    from nncore import MLP, optimizers
    from nncore.optimizers import global_norm
    X = np.random.default_rng(0).normal(size=(8, 4))
    y = np.arange(8) % 3
    a, b = MLP(4, [5, 5], 3, seed=1), MLP(4, [5, 5], 3, seed=1)
    opt_a, opt_b = optimizers.get("adam", lr=0.1, clip_norm=0.01), optimizers.get("adam", lr=0.1, clip_norm=0.01)
    for _ in range(3):
        _, ga = a.loss_and_grads(X, y, train=False)
        norm = global_norm(ga)
        assert norm == pytest.approx(np.sqrt(sum(np.sum(g ** 2) for g in ga.weights + ga.biases)), rel=1e-12)
        opt_a.step(a, ga, total_norm=norm)
        _, gb = b.loss_and_grads(X, y, train=False)
        opt_b.step(b, gb)
    for wa, wb in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("dtype, lr", [("float64", 1e-300), ("float64", 1e-310), ("float64", 5e-324),
                                       ("float32", 1e-30), ("float32", 1e-39), ("float32", 1e-300)])
def test_adam_tiny_learning_rates(dtype, lr):
    """Adam folds lr / (1 - b1^t) into its denominator; where that constant would overflow the
    parameters' dtype (lr below ~1e-38 in float32, ~1e-300 in float64) the step must still be
    the torch rule, finite, and exactly 0 where the gradient is 0. Parameters start at 0 so
    that steps this small are representable."""
    net = MLP(3, [4, 5], 2, sigma_b=0.3, seed=7, dtype=dtype)
    for p in net.weights + net.biases:
        p[...] = 0.0
    seq = [[g.astype(dtype) for g in gs] for gs in _grad_seq(net)[:3]]
    for gs in seq:
        gs[0][0] = 0.0  # a row of W_1 that never gets a gradient
    got = _run(optimizers.get("adam", lr=lr), net, seq)
    want = reference_trajectory("adam", {"lr": lr}, [np.zeros(p.shape) for p in net.weights + net.biases],
                                [[g.astype(np.float64) for g in gs] for gs in seq])
    tiny = np.finfo(dtype).smallest_subnormal
    for (params, _), (rparams, _) in zip(got, want):
        for p, rp in zip(params, rparams):
            assert np.all(np.isfinite(p))
            # subnormal steps carry fewer digits: compare to a few units of the smallest subnormal
            np.testing.assert_allclose(p, rp, rtol=1e-9 if dtype == "float64" else 1e-5, atol=3 * tiny)
        assert np.all(params[0][0] == 0.0)
    if lr > 1e-40:
        assert np.any(got[-1][0][0] != 0.0)


# ------------------- edge cases of the rules, float32 norms, gradients given by the caller
def _axy(n_in=3, n_out=2, B=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), np.arange(B) % n_out


def _norm64(arrays):
    """sqrt of the summed squares of the entries, in float64."""
    return math.sqrt(sum(float(np.sum(np.asarray(a, dtype=np.float64) ** 2)) for a in arrays))


def _signed(rng, shape, lo, hi):
    """float32 entries of magnitude in [lo, hi) (log-uniform) with random signs."""
    mag = np.exp(rng.uniform(math.log(lo), math.log(hi), size=shape))
    return (mag * rng.choice([-1.0, 1.0], size=shape)).astype(np.float32)


def _overflowing_net():
    """A float32 net with finite loss and gradients whose sum of squares is beyond float32's
    range (norm > 1.8e19)."""
    net = MLP(4, [8, 8, 8], 2, activation="identity", loss="mse", dtype="float32", seed=0,
              init="constant", init_params={"value": 30.0})
    return net, np.full((4, 4), 30.0), np.zeros((4, 2))


def _step_once(name, **kw):
    """One step of optimizer ``name`` on a float64 net with fixed gradients; (p0, g, p1) as float64 lists."""
    net = MLP(3, [4], 2, seed=0, sigma_b=0.3)
    X, y = _axy(B=8)
    _, grads = net.loss_and_grads(X, y)
    g = [a.copy() for a in grads.weights + grads.biases]
    p0 = [a.copy() for a in net.weights + net.biases]
    optimizers.get(name, **kw).step(net, grads)
    return p0, g, [a.copy() for a in net.weights + net.biases]


@pytest.mark.parametrize("lo, hi", [(1e19, 1e20), (1e-25, 1e-24)], ids=["huge", "tiny"])
@pytest.mark.parametrize("in_place", [True, False], ids=["in_place", "replaced"])
def test_float32_global_norm_is_the_float64_norm(lo, hi, in_place):
    net = MLP(5, [6, 7], 3, dtype="float32", seed=0)
    X, y = _axy(5, 3, 8)
    _, grads = net.loss_and_grads(X, y)
    rng = np.random.default_rng(1)
    for entries in (grads.weights, grads.biases):
        for l in range(len(entries)):
            values = _signed(rng, entries[l].shape, lo, hi)
            if in_place:
                entries[l][...] = values
            else:
                entries[l] = values
    gs = grads.weights + grads.biases
    assert all(g.dtype == np.float32 and np.isfinite(g).all() for g in gs)
    expected = _norm64(gs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = optimizers.global_norm(grads)
    assert math.isfinite(got) and got > 0.0
    assert got == pytest.approx(expected, rel=1e-5, abs=0.0)  # abs=0: approx's default 1e-12 would pass 0


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


def _rxy(n_in=5, n_out=4, B=9, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), np.arange(B) % n_out


def test_deepcopied_grads_modified_in_place_are_the_ones_applied():
    X, y = _rxy()
    net = MLP(5, [7, 7], 4, seed=1)
    _, grads = net.loss_and_grads(X, y)
    kept = copy.deepcopy(grads)
    for g in kept.weights + kept.biases:
        g *= 0.0
    assert optimizers.global_norm(kept) == 0.0
    before = [w.copy() for w in net.weights]
    optimizers.get("sgd", lr=0.5).step(net, kept)
    for w, w0 in zip(net.weights, before):
        np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(net.update_norms, 0.0)


def test_optimizer_reused_on_another_architecture_of_the_same_size_is_refused():
    a, b = MLP(3, [4], 2), MLP(5, [3], 2)
    assert sum(p.size for p in a.parameters()) == sum(p.size for p in b.parameters())
    opt = optimizers.get("adam")
    Xa, ya = _rxy(3, 2)
    opt.step(a, a.loss_and_grads(Xa, ya)[1])
    Xb, yb = _rxy(5, 2)
    weights = [w.copy() for w in b.weights]
    with pytest.raises(ValueError, match="shapes"):
        opt.step(b, b.loss_and_grads(Xb, yb)[1])
    for w, w0 in zip(b.weights, weights):
        np.testing.assert_array_equal(w, w0)


def test_tuple_fields_work():
    X, y = _rxy()
    net = MLP(5, [7], 4, seed=2)
    _, grads = net.loss_and_grads(X, y)
    g = Grads(tuple(w * 0.5 for w in grads.weights), tuple(grads.biases), [])
    w0 = net.weights[0].copy()
    optimizers.get("sgd", lr=1.0).step(net, g)
    np.testing.assert_allclose(net.weights[0], w0 - g.weights[0], rtol=1e-15)
    net.weights = tuple(net.weights)
    w0 = net.weights[0].copy()
    optimizers.get("sgd", lr=1.0).step(net, g)
    np.testing.assert_allclose(net.weights[0], w0 - g.weights[0], rtol=1e-15)


def test_failed_step_does_not_advance_the_step_counter(monkeypatch):
    X, y = _rxy()
    net = MLP(5, [7], 4, seed=2)
    opt = optimizers.get("sgd", lr=0.1, momentum=0.9, dampening=0.5)
    _, grads = net.loss_and_grads(X, y)

    def fail(*args):
        raise FloatingPointError("simulated")

    monkeypatch.setattr(opt, "_update", fail)
    with pytest.raises(FloatingPointError):
        opt.step(net, grads)
    assert opt.t == 0
    monkeypatch.undo()
    g = np.concatenate([a.ravel() for a in grads.parameters()])
    p0 = np.concatenate([a.ravel() for a in net.parameters()])
    opt.step(net, grads)
    # torch semantics of the first step: buf = g (not (1 - dampening) g)
    np.testing.assert_allclose(np.concatenate([a.ravel() for a in net.parameters()]), p0 - 0.1 * g, rtol=1e-14)


def _fb_net(hidden=(7, 7, 3), n_in=5, n_out=4, **kw):
    kw = {"activation": "tanh", "init": "normal", "init_params": {"sigma_w": 1.5}, "sigma_b": 0.5, "seed": 3, **kw}
    return MLP(n_in, list(hidden), n_out, **kw)


def _params(net):
    return [p.copy() for p in net.weights + net.biases]


@pytest.mark.parametrize("kind", ["weights", "biases"])
def test_replaced_gradient_is_used_and_grads_untouched(ref, kind):
    net = _fb_net()
    X, y = ref.classification_data(5, 4, 9)
    _, g = net.loss_and_grads(X, y)
    saved = [a.copy() for a in g.weights + g.biases]
    getattr(g, kind)[0] = getattr(g, kind)[0] * 2
    given = [a.copy() for a in g.weights + g.biases]
    before = _params(net)
    opt = optimizers.get("sgd", lr=0.1)
    opt.step(net, g)
    for p, p0, gg in zip(net.weights + net.biases, before, given):
        np.testing.assert_array_equal(p, p0 - 0.1 * gg)
    for a, a0 in zip(g.weights + g.biases, given):
        np.testing.assert_array_equal(a, a0)
    assert not np.array_equal(saved[0 if kind == "weights" else net.n_layers], given[0 if kind == "weights" else net.n_layers])
    assert opt.last_total_norm == pytest.approx(math.sqrt(sum(np.sum(a * a) for a in given)), rel=1e-12)


@pytest.mark.parametrize("replaced", [False, True])
@pytest.mark.parametrize("name", sorted(optimizers.REGISTRY))
def test_optimizer_does_not_modify_grads(ref, name, replaced):
    net = _fb_net()
    X, y = ref.classification_data(5, 4, 9)
    opt = optimizers.get(name, weight_decay=0.1, clip_norm=0.01)
    for _ in range(3):
        _, g = net.loss_and_grads(X, y, deltas=True)
        if replaced:
            g.biases[-1] = g.biases[-1].copy()
        saved = [a.copy() for a in g.weights + g.biases + g.deltas]
        opt.step(net, g)
        assert opt.last_total_norm > 0.01  # clipping is active
        for a, a0 in zip(g.weights + g.biases + g.deltas, saved):
            np.testing.assert_array_equal(a, a0)


def test_gradient_shape_mismatch_changes_nothing(ref):
    net = _fb_net()
    X, y = ref.classification_data(5, 4, 9)
    _, g = net.loss_and_grads(X, y)
    bad = Grads([a.copy() for a in g.weights], [a.copy() for a in g.biases], [])
    bad.weights[1] = np.ones((7, 6))
    before = _params(net)
    opt = optimizers.get("adam", lr=0.1)
    with pytest.raises(ValueError, match=r"\(7, 6\)"):
        opt.step(net, bad)
    for p, p0 in zip(net.weights + net.biases, before):
        np.testing.assert_array_equal(p, p0)
    assert opt.t == 0 and np.all(net.update_norms == 0)


UPDATE_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.05, "rmsprop": 0.01,
             "adadelta": 1.0, "adam": 0.01}


@pytest.mark.parametrize("name", sorted(optimizers.REGISTRY))
def test_update_norms_are_weight_change_norms(ref, name):
    X, y = ref.classification_data(5, 4, 9)
    net = _fb_net()
    opt = optimizers.get(name, lr=UPDATE_LR[name], weight_decay=0.01)
    for _ in range(4):
        before = [w.copy() for w in net.weights]
        b_before = [b.copy() for b in net.biases]
        _, g = net.loss_and_grads(X, y)
        opt.step(net, g)
        want = np.array([np.linalg.norm(w - w0) for w, w0 in zip(net.weights, before)])
        assert np.all(want > 0)
        np.testing.assert_allclose(net.update_norms, want, rtol=1e-12, atol=0)
        assert any(not np.array_equal(b, b0) for b, b0 in zip(net.biases, b_before))  # biases move too
