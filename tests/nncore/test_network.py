"""The MLP as a whole: construction and its bad input, the exact equations of norm and residual
layers against a reference written here from their definitions (BatchNorm1d and LayerNorm as
torch defines them), BatchNorm's running averages, replaced parameters, copies, seeds and
dtypes, fixed dropout masks."""
import copy
import math
import pickle
import warnings

import numpy as np
import pytest

from nncore import MLP, Grads, STATS, layers, optimizers

pytestmark = pytest.mark.usefixtures("single_thread_blas")

EPS, MOMENTUM = 1e-5, 0.1  # torch.nn.BatchNorm1d's and LayerNorm's defaults


def _data(n_in=5, n_out=4, B=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n_in))
    y = rng.integers(0, n_out, size=B)
    y[:n_out] = np.arange(n_out)[:B]
    return X, y


def _net(hidden=(7, 7, 3), n_in=5, n_out=4, **kw):
    kw = {"activation": "tanh", "init": "normal", "init_params": {"sigma_w": 1.5}, "sigma_b": 0.5, "seed": 3, **kw}
    return MLP(n_in, list(hidden), n_out, **kw)


def _params(net):
    return [p.copy() for p in net.parameters()]


# ------------------------------------------------- the reference: the equations of network.py
def _normalize(z, axis, mean=None, var=None):
    """(z - mean) / sqrt(var + eps), with the biased variance along ``axis`` unless given."""
    if mean is None:
        mean = np.mean(z, axis=axis, keepdims=True)
        var = np.mean((z - mean) ** 2, axis=axis, keepdims=True)
    return (z - mean) / np.sqrt(var + EPS)


def reference_forward(Ws, bs, gammas, betas, X, norm, residual, scale, masks=None, running=None):
    """(logits, zs, as_, batch statistics) from the definitions; ``running`` = (means, vars) per
    hidden layer makes BatchNorm use them (evaluation)."""
    a, zs, as_, stats = X, [], [], []
    L = len(Ws)
    for l in range(L):
        z = a @ Ws[l] + bs[l]
        zs.append(z)
        if l == L - 1:
            return z, zs, as_, stats
        if norm == "batch":
            if running is None:
                mean, var = z.mean(axis=0), ((z - z.mean(axis=0)) ** 2).mean(axis=0)
                stats.append((mean, var))
                u = _normalize(z, 0)
            else:
                u = _normalize(z, 0, running[0][l], running[1][l])
            u = gammas[l] * u + betas[l]
        elif norm == "layer":
            u = gammas[l] * _normalize(z, 1) + betas[l]
        else:
            u = z
        h = np.tanh(u)
        if masks is not None:
            h = h * masks[l]
        a = a + scale * h if residual and l >= 1 else h
        as_.append(a)


def _softmax_ce(z, y):
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def _randomize_norms(net, seed=7):
    rng = np.random.default_rng(seed)
    for g, b in zip(net.norm_scales, net.norm_shifts):
        g[...] = rng.uniform(0.5, 1.5, size=g.shape)
        b[...] = rng.normal(scale=0.3, size=b.shape)


CONFIGS = [dict(norm="batch"), dict(norm="layer"), dict(residual=True), dict(residual=True, residual_scale=0.5),
           dict(norm="batch", residual=True, residual_scale=0.3), dict(norm="layer", residual=True, dropout=0.3)]
CONFIG_IDS = ["-".join(f"{k}={v}" for k, v in c.items()) for c in CONFIGS]


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_training_loss_follows_the_equations(config):
    net = _net(hidden=(6, 6, 6), **config)
    _randomize_norms(net)
    X, y = _data(B=11)
    masks = None
    if net.dropout:
        net.loss_and_grads(X, y)
        masks = [m.copy() for m in net.last_masks]
    loss, grads = net.loss_and_grads(X, y, masks=masks, deltas=True)
    z, zs, _, _ = reference_forward(net.weights, net.biases, net.norm_scales, net.norm_shifts, X,
                                    net.norm, net.residual, net.residual_scale, masks)
    assert loss == pytest.approx(_softmax_ce(z, y), rel=1e-13)
    for d, z_ref in zip(grads.deltas, zs):
        assert d.shape == z_ref.shape
    depth = net.depth
    n_norm = depth if config.get("norm") else 0
    assert len(net.norm_scales) == len(net.norm_shifts) == len(grads.norm_scales) == len(grads.norm_shifts) == n_norm
    assert len(net.parameters()) == 2 * net.n_layers + 2 * n_norm


def test_norm_parameters_start_at_one_and_zero_and_do_not_change_the_weight_draws():
    plain = _net()
    for norm in ("batch", "layer"):
        net = _net(norm=norm)
        for g, b, width in zip(net.norm_scales, net.norm_shifts, [7, 7, 3]):
            np.testing.assert_array_equal(g, np.ones(width))
            np.testing.assert_array_equal(b, np.zeros(width))
            assert g.dtype == b.dtype == net.dtype
        for p, q in zip(net.weights + net.biases, plain.weights + plain.biases):
            np.testing.assert_array_equal(p, q)
    assert plain.norm_scales == [] and plain.norm_shifts == []
    assert _net(residual=True, hidden=(7, 7, 7)).weights[1].shape == (7, 7)


def test_batchnorm_running_averages_follow_torch():
    """Once per training loss_and_grads: running_mean <- 0.9 running_mean + 0.1 mean, running_var
    <- 0.9 running_var + 0.1 * unbiased var; evaluation uses them; train=False and probes do
    not move them."""
    net = _net(norm="batch", hidden=(6, 6))
    _randomize_norms(net)
    bns = [n for n in net.norms]
    assert all(isinstance(n, layers.BatchNorm) for n in bns)
    means, vars_ = [np.zeros(6)] * 2, [np.ones(6)] * 2
    opt = optimizers.get("sgd", lr=0.1)
    for step in range(3):
        X, y = _data(B=8 + step, seed=step)
        _, _, _, stats = reference_forward(net.weights, net.biases, net.norm_scales, net.norm_shifts, X,
                                           "batch", False, 1.0)
        B = X.shape[0]
        means = [(1 - MOMENTUM) * m + MOMENTUM * s[0] for m, s in zip(means, stats)]
        vars_ = [(1 - MOMENTUM) * v + MOMENTUM * s[1] * B / (B - 1) for v, s in zip(vars_, stats)]
        _, g = net.loss_and_grads(X, y)
        for n, m, v in zip(bns, means, vars_):
            np.testing.assert_allclose(n.running_mean, m, rtol=1e-13, atol=1e-16)
            np.testing.assert_allclose(n.running_var, v, rtol=1e-13)
        opt.step(net, g)
    saved = [(n.running_mean.copy(), n.running_var.copy()) for n in bns]
    X, y = _data(B=10, seed=9)
    net.probe(X, y)
    net.loss_and_grads(X, y, train=False)
    net.evaluate(X, y)
    net.forward(X)
    for n, (m, v) in zip(bns, saved):
        np.testing.assert_array_equal(n.running_mean, m)
        np.testing.assert_array_equal(n.running_var, v)
    z, _, _, _ = reference_forward(net.weights, net.biases, net.norm_scales, net.norm_shifts, X, "batch",
                                   False, 1.0, running=(means, vars_))
    loss, acc = net.evaluate(X, y)
    assert loss == pytest.approx(_softmax_ce(z, y), rel=1e-12)
    np.testing.assert_allclose(net.forward(X), z, rtol=1e-12, atol=1e-14)
    assert net.loss_and_grads(X, y, train=False)[0] == pytest.approx(loss, rel=1e-14)


def test_probe_uses_the_probe_batch_statistics():
    """BatchNorm in a probe normalizes with the probe batch's own statistics (as in training);
    preact_* describe z_l before the norm, act_* the layer's output."""
    net = _net(norm="batch", hidden=(6, 6))
    _randomize_norms(net)
    X, y = _data(B=12, seed=4)
    for _ in range(2):  # running averages away from the batch's
        net.loss_and_grads(*_data(B=7, seed=5))
    stats = net.probe(X, y)
    z, zs, as_, _ = reference_forward(net.weights, net.biases, net.norm_scales, net.norm_shifts, X, "batch", False, 1.0)
    assert net.probe_loss == pytest.approx(_softmax_ce(z, y), rel=1e-12)
    np.testing.assert_allclose(stats["preact_var"], [np.var(v) for v in zs], rtol=1e-12)
    np.testing.assert_allclose(stats["act_var"], [np.var(v) for v in as_ + [z]], rtol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_residual_probe_describes_the_sum(scale):
    net = _net(hidden=(6, 6, 6), residual=True, residual_scale=scale)
    X, y = _data(B=10)
    stats = net.probe(X, y)
    z, zs, as_, _ = reference_forward(net.weights, net.biases, [], [], X, None, True, scale)
    np.testing.assert_allclose(stats["act_mean"][:-1], [np.mean(a) for a in as_], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(stats["act_var"][:-1], [np.var(a) for a in as_], rtol=1e-12)
    np.testing.assert_allclose(stats["preact_var"], [np.var(v) for v in zs], rtol=1e-12)


def test_batchnorm_training_on_a_single_example_is_refused():
    net = _net(norm="batch")
    X, y = _data(B=1)
    with pytest.raises(ValueError, match="BatchNorm.*at least 2"):
        net.loss_and_grads(X, y)
    assert np.isfinite(net.evaluate(X, y)[0])  # evaluation uses the running averages
    assert all(np.isfinite(v).all() for v in net.probe(X, y).values())


@pytest.mark.parametrize("kw, match", [
    ({"norm": "group"}, "norm"), ({"norm": True}, "norm"), ({"norm": "Batch"}, "norm"),
    ({"residual": 1}, "residual"), ({"residual": "yes"}, "residual"),
    ({"residual_scale": float("nan")}, "residual_scale"), ({"residual_scale": "1"}, "residual_scale"),
    ({"residual_scale": True}, "residual_scale"), ({"residual": True, "hidden": (7, 7, 3)}, "equal hidden widths"),
])
def test_bad_norm_and_residual_options(kw, match):
    kw = dict(kw)
    hidden = kw.pop("hidden", (7, 7, 7))
    with pytest.raises(ValueError, match=match) as info:
        _net(hidden=hidden, **kw)
    assert "\n" not in str(info.value)


def test_residual_with_one_hidden_layer_is_a_plain_net():
    """a_1 = h_1 always (the skip starts at layer 2), so depth 1 needs no equal widths."""
    X, y = _data()
    a, b = _net(hidden=(7,), residual=True), _net(hidden=(7,))
    assert a.loss_and_grads(X, y)[0] == b.loss_and_grads(X, y)[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS[:3], ids=CONFIG_IDS[:3])
def test_dtype_is_kept_everywhere(dtype, config):
    net = _net(hidden=(6, 6), dtype=dtype, **config)
    X, y = _data()
    _, g = net.loss_and_grads(X, y, deltas=True)
    optimizers.get("adam").step(net, g)
    assert all(p.dtype == np.dtype(dtype) for p in net.parameters())
    assert all(a.dtype == np.dtype(dtype) for a in g.parameters() + g.deltas)
    assert net.forward(X).dtype == np.dtype(dtype)
    for n in net.norms:
        if isinstance(n, layers.BatchNorm):
            assert n.running_mean.dtype == n.running_var.dtype == np.dtype(dtype)


def test_same_seed_same_network_and_other_seed_another():
    X, y = _data()
    a, b, c = _net(seed=5, norm="layer"), _net(seed=5, norm="layer"), _net(seed=6, norm="layer")
    assert all(np.array_equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert a.loss_and_grads(X, y)[0] == b.loss_and_grads(X, y)[0]


# ---------------------------------------------------------- replaced entries
@pytest.mark.parametrize("kind,index", [("weights", 0), ("weights", 2), ("biases", 1), ("norm_scales", 1)])
def test_replaced_entry_is_used_by_step_and_forward(kind, index):
    net = _net(norm="layer")
    X, y = _data()
    rng = np.random.default_rng(1)
    entries = getattr(net, kind)
    arr = rng.normal(size=entries[index].shape)
    arr_saved = arr.copy()
    entries[index] = arr

    def ref_logits():
        return reference_forward(net.weights, net.biases, net.norm_scales, net.norm_shifts, X, "layer", False, 1.0)[0]
    np.testing.assert_allclose(net.forward(X), ref_logits(), rtol=1e-13, atol=1e-15)
    assert getattr(net, kind) is entries  # the same list, its entry now the network's own copy
    assert entries[index] is not arr
    np.testing.assert_array_equal(entries[index], arr)
    gs = [rng.normal(size=p.shape) for p in net.parameters()]
    n = [len(net.weights), len(net.biases), len(net.norm_scales), len(net.norm_shifts)]
    split = np.cumsum([0] + n)
    grads = Grads(*(gs[split[i]:split[i + 1]] for i in range(2)), [], gs[split[2]:split[3]], gs[split[3]:split[4]])
    before = _params(net)
    optimizers.get("sgd", lr=0.1).step(net, grads)
    for p, p0, g in zip(net.parameters(), before, gs):
        np.testing.assert_array_equal(p, p0 - 0.1 * g)
    np.testing.assert_array_equal(arr, arr_saved)  # the user's array was copied, not updated
    np.testing.assert_allclose(net.forward(X), ref_logits(), rtol=1e-13, atol=1e-15)


def test_replaced_entry_with_other_dtype_is_cast():
    net = _net(dtype="float32")
    net.weights[1] = np.full((7, 7), 0.25)  # float64 into a float32 network
    assert net.parameters()[1].dtype == np.float32
    np.testing.assert_array_equal(net.weights[1], np.float32(0.25))
    assert net.weights[1] is net.dense[1].params["W"]


@pytest.mark.parametrize("kind,index,bad", [("weights", 1, (7, 8)), ("weights", 0, (7, 5)), ("biases", 2, (4,))])
def test_replaced_entry_with_wrong_shape(kind, index, bad):
    net = _net()
    X, y = _data()
    before = _params(net)
    good = getattr(net, kind)[index].shape
    _, grads = net.loss_and_grads(X, y)
    getattr(net, kind)[index] = np.zeros(bad)
    opt = optimizers.get("adam", lr=0.1)
    for call in (lambda: opt.step(net, grads), lambda: net.probe(X, y), lambda: net.loss_and_grads(X, y),
                 lambda: net.forward(X)):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert str(good) in msg and str(bad) in msg, msg
    k_bad = index + (net.n_layers if kind == "biases" else 0)
    for k, (d, p0) in enumerate(zip([*net.dense, *net.dense], before)):
        if k != k_bad:
            np.testing.assert_array_equal(d.params["W" if k < net.n_layers else "b"], p0)
    assert opt.t == 0 and opt.state == []
    getattr(net, kind)[index] = before[k_bad]  # a correct replacement makes the network usable again
    _, grads = net.loss_and_grads(X, y)
    opt.step(net, grads)
    assert opt.t == 1


# ------------------------------------------------------------------ copies
def _copies():
    return {"deepcopy": copy.deepcopy, "pickle": lambda n: pickle.loads(pickle.dumps(n))}


@pytest.mark.parametrize("config", [{}, {"norm": "batch", "dropout": 0.2}], ids=["plain", "batchnorm-dropout"])
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_is_independent(how, config):
    X, y = _data()
    net, twin = _net(**config), _net(**config)  # twin: the same network, never copied
    net.loss_and_grads(X, y)
    twin.loss_and_grads(X, y)
    saved = _params(net)
    c = _copies()[how](net)
    assert all(not np.shares_memory(p, q) for p, q in zip(c.parameters(), net.parameters()))
    assert c.weights[0] is c.dense[0].params["W"]
    opt, opt_twin = optimizers.get("momentum", lr=0.1), optimizers.get("momentum", lr=0.1)
    for _ in range(3):
        opt.step(c, c.loss_and_grads(X, y)[1])
        opt_twin.step(twin, twin.loss_and_grads(X, y)[1])
    for p, p0 in zip(net.parameters(), saved):  # the original is untouched
        np.testing.assert_array_equal(p, p0)
    for p, q in zip(c.parameters(), twin.parameters()):  # the copy moved as its twin
        np.testing.assert_array_equal(p, q)
    for a, b in zip(c.norms, twin.norms):
        np.testing.assert_array_equal(a.running_var, b.running_var)
    np.testing.assert_array_equal(c.update_norms, twin.update_norms)
    assert np.all(net.update_norms == 0)
    stats_c, stats_t = c.probe(X, y), twin.probe(X, y)
    assert all(np.array_equal(stats_c[k], stats_t[k]) for k in STATS)


def test_pickle_does_not_carry_the_last_pass():
    net = _net(hidden=(64, 64))
    size = len(pickle.dumps(net))
    net.loss_and_grads(*_data(B=500))
    assert len(pickle.dumps(net)) < size + 2000




# ---------------------------------------------- bad input, fixed masks, kept references
def _axy(n_in=3, n_out=2, B=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), np.arange(B) % n_out


def _mask_case():
    rng = np.random.default_rng(0)
    return rng.normal(size=(5, 3)), np.zeros(5, int), [np.zeros((5, 4)), np.zeros((5, 4))]


@pytest.mark.parametrize("call", ["loss_and_grads", "probe"])
def test_complex_X_is_rejected_without_warning(call):
    net = MLP(2, [3], 2, seed=0)
    X = np.array([[1 + 5j, 2 - 3j], [0.5 + 0j, 1 + 1j]])
    y = np.array([0, 1])
    before = [p.copy() for p in net.parameters()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="X"):
            getattr(net, call)(X, y)
    assert caught == [], [str(w.message) for w in caught]
    for p, p0 in zip(net.parameters(), before):
        np.testing.assert_array_equal(p, p0)


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


def test_hidden_as_an_int_is_a_value_error():
    with pytest.raises(ValueError, match="hidden"):
        MLP(3, 4, 2)


def test_dropout_none_is_a_value_error():
    with pytest.raises(ValueError, match="dropout"):
        MLP(3, [4], 2, dropout=None)


def test_dropout_as_a_zero_dimensional_array_is_accepted():
    assert MLP(3, [4], 2, dropout=np.array(0.25)).dropout == 0.25


@pytest.mark.parametrize("hidden", [np.array(8), np.ones((2, 2), dtype=int)])
def test_hidden_as_an_array_that_is_not_a_list_of_widths(hidden):
    with pytest.raises(ValueError, match="hidden"):
        MLP(3, hidden, 2)


def test_references_to_other_entries_keep_tracking_after_a_replacement():
    X, y = _data()
    net = MLP(5, [7, 7], 4, seed=1)
    last = net.weights[-1]
    weights = net.weights
    net.weights[0] = np.zeros_like(net.weights[0])
    _, grads = net.loss_and_grads(X, y)
    optimizers.get("sgd", lr=0.1).step(net, grads)
    assert net.weights is weights and net.weights[-1] is last
    assert last is net.dense[-1].params["W"]


@pytest.mark.parametrize("activation", ["relu", "tanh", "softsign"])
def test_a_training_pass_keeps_only_what_its_backward_needs(activation):
    """z and dL/dz stay in the caches only when asked for (the probes' pass, deltas=True); u only
    when phi' needs it (softsign's does). Asking changes no gradient."""
    net = _net(activation=activation)
    X, y = _data()
    _, lean = net.loss_and_grads(X, y)
    assert lean.deltas == []
    assert all(set(d.cache) == {"x"} for d in net.dense)
    assert all(("u" in a.cache) == (activation == "softsign") for a in net.activation_layers)
    _, full = net.loss_and_grads(X, y, deltas=True)
    assert [d.shape for d in full.deltas] == [(X.shape[0], n) for n in net.sizes[1:]]
    assert all({"x", "z", "dz"} <= set(d.cache) for d in net.dense)
    for a, b in zip(lean.parameters(), full.parameters()):
        np.testing.assert_array_equal(a, b)
    net.loss_and_grads(X, y)  # the next plain pass keeps no more than before
    assert all(set(d.cache) == {"x"} for d in net.dense)
    net.probe(X, y)
    assert all({"x", "z", "dz"} <= set(d.cache) for d in net.dense)
    assert all("u" in a.cache for a in net.activation_layers)


def test_config_records_the_activation_parameters_it_uses():
    from nncore.activations import LeakyReLU
    assert MLP(3, [4], 2, activation=LeakyReLU(alpha=0.2)).config["activation_params"] == {"alpha": 0.2}
    assert MLP(3, [4], 2, activation="leaky_relu").config["activation_params"] == {"alpha": 0.01}
    assert MLP(3, [4], 2, activation="leaky_relu", activation_params={"alpha": 0.3}).config["activation_params"] == {"alpha": 0.3}
    assert MLP(3, [4], 2, activation="tanh").config["activation_params"] == {}
