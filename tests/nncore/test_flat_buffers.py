"""Flat parameter and gradient buffers: views and their order, replaced entries, copies
(deepcopy, pickle), Grads.packed and replaced gradients; the probes' stacked paths (runs of
equal-width layers, work-array chunks, a layer bigger than the work array) and unit_spread
(Gram form with its exact fallback) against direct computations."""
import copy
import math
import pickle

import numpy as np
import pytest

from nncore import MLP, STATS, Grads, optimizers, probes
from test_probes import reference_stats  # the independent reference of the probe tests

pytestmark = pytest.mark.usefixtures("single_thread_blas")


def _data(n_in, n_out, B, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n_in))
    y = rng.integers(0, n_out, size=B)
    y[:n_out] = np.arange(n_out)
    return X, y


def _net(hidden=(7, 7, 3), n_in=5, n_out=4, **kw):
    kw = {"activation": "tanh", "init": "normal", "init_params": {"sigma_w": 1.5}, "sigma_b": 0.5, "seed": 3, **kw}
    return MLP(n_in, list(hidden), n_out, **kw)


def _params(net):
    return [p.copy() for p in net.weights + net.biases]


def _assert_views_of_flat(net):
    flat = net.flat_parameters()
    entries = net.weights + net.biases
    assert flat.ndim == 1 and flat.dtype == net.dtype and flat.flags.c_contiguous
    assert flat.size == sum(p.size for p in entries)
    offset = 0
    for p in entries:  # in order W_1..W_L, b_1..b_L, back to back
        assert np.shares_memory(p, flat)
        assert p.flags.c_contiguous and p.dtype == net.dtype
        assert p.ctypes.data == flat.ctypes.data + offset * flat.itemsize
        offset += p.size
    np.testing.assert_array_equal(flat, np.concatenate([p.reshape(-1) for p in entries]))
    return flat


# --------------------------------------------------------- parameter views
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_weights_and_biases_are_views_of_flat_parameters(dtype):
    net = _net(dtype=dtype)
    flat = _assert_views_of_flat(net)
    assert net.flat_parameters() is flat
    assert [w.shape for w in net.weights] == [(5, 7), (7, 7), (7, 3), (3, 4)]
    assert [b.shape for b in net.biases] == [(7,), (7,), (3,), (4,)]
    # writes go both ways
    flat[:] = np.arange(flat.size)
    assert net.weights[0][0, 1] == 1 and net.weights[1][0, 0] == 35
    assert net.biases[0][0] == 35 + 49 + 21 + 12
    net.biases[3][:] = -1.0
    np.testing.assert_array_equal(flat[-4:], -1.0)


@pytest.mark.parametrize("kind,index", [("weights", 0), ("weights", 2), ("biases", 1)])
def test_replaced_entry_is_used_by_step_and_forward(ref, kind, index):
    net = _net()
    X, y = _data(5, 4, 9)
    rng = np.random.default_rng(1)
    old_flat = net.flat_parameters()
    entries = getattr(net, kind)
    other = net.biases[-1] if kind == "weights" else net.weights[-1]  # a reference a user kept
    entry = getattr(net, kind)[index]
    arr = rng.normal(size=entry.shape)
    arr_saved = arr.copy()
    getattr(net, kind)[index] = arr
    # the forward pass uses the replacement at once
    zs, _, _ = ref.forward(net.weights, net.biases, X, "tanh")
    np.testing.assert_allclose(net.forward(X), zs[-1], rtol=1e-13, atol=1e-15)
    gw = [rng.normal(size=w.shape) for w in net.weights]
    gb = [rng.normal(size=b.shape) for b in net.biases]
    before = _params(net)
    np.testing.assert_array_equal(getattr(net, kind)[index], arr)
    opt = optimizers.get("sgd", lr=0.1)
    opt.step(net, Grads(gw, gb, []))
    for p, p0, g in zip(net.weights + net.biases, before, gw + gb):
        np.testing.assert_array_equal(p, p0 - 0.1 * g)
    np.testing.assert_array_equal(arr, arr_saved)  # the user's array was copied, not updated
    assert not np.shares_memory(arr, net.flat_parameters())
    new_flat = _assert_views_of_flat(net)
    # copied into place: the same flat array and list, and kept references still track the network
    assert new_flat is old_flat
    assert getattr(net, kind) is entries and getattr(net, kind)[index] is entry
    assert other is (net.biases[-1] if kind == "weights" else net.weights[-1])
    # the forward pass afterwards uses the updated weights
    zs, _, _ = ref.forward([p0 - 0.1 * g for p0, g in zip(before[:4], gw)],
                           [p0 - 0.1 * g for p0, g in zip(before[4:], gb)], X, "tanh")
    np.testing.assert_allclose(net.forward(X), zs[-1], rtol=1e-13, atol=1e-15)
    # and its own gradients are those of the new parameters
    _, grads = net.loss_and_grads(X, y)
    zs, _, as_ = ref.forward(net.weights, net.biases, X, "tanh")
    _, _, rgW, rgb = ref.backward(net.weights, X, zs, as_, "tanh", "cross_entropy", y)
    for a, b in zip(grads.weights + grads.biases, rgW + rgb):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_replaced_entry_with_other_dtype_is_cast():
    net = _net(dtype="float32")
    arr = np.full((7, 7), 0.25)  # float64 into a float32 network
    net.weights[1] = arr
    flat = _assert_views_of_flat(net)
    assert flat.dtype == np.float32
    np.testing.assert_array_equal(net.weights[1], np.float32(0.25))


@pytest.mark.parametrize("kind,index,bad", [("weights", 1, (7, 8)), ("weights", 0, (7, 5)), ("biases", 2, (4,))])
def test_replaced_entry_with_wrong_shape(kind, index, bad):
    net = _net()
    X, y = _data(5, 4, 9)
    flat = net.flat_parameters()
    flat_saved = flat.copy()
    before = _params(net)
    good = getattr(net, kind)[index].shape
    _, grads = net.loss_and_grads(X, y)
    getattr(net, kind)[index] = np.zeros(bad)
    opt = optimizers.get("adam", lr=0.1)
    with pytest.raises(ValueError) as info:
        opt.step(net, grads)
    msg = str(info.value)
    assert str(good) in msg and str(bad) in msg, msg
    with pytest.raises(ValueError, match=r"\(7, 7\)"):
        net.flat_parameters()
    with pytest.raises(ValueError):
        net.probe(X, y)
    # nothing changed: the flat array, the other entries, the optimizer
    np.testing.assert_array_equal(flat, flat_saved)
    for k, (p, p0) in enumerate(zip(net.weights + net.biases, before)):
        if k != index + (net.n_layers if kind == "biases" else 0):
            np.testing.assert_array_equal(p, p0)
            assert np.shares_memory(p, flat)
    assert opt.t == 0 and opt.state == {}
    # a correct replacement makes the network usable again
    getattr(net, kind)[index] = before[index + (net.n_layers if kind == "biases" else 0)]
    _, grads = net.loss_and_grads(X, y)
    opt.step(net, grads)
    assert opt.t == 1
    _assert_views_of_flat(net)


# --------------------------------------------------------- copies of a net
def _copies():
    return [("deepcopy", copy.deepcopy), ("pickle", lambda n: pickle.loads(pickle.dumps(n)))]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_is_independent(how):
    make = dict(_copies())[how]
    X, y = _data(5, 4, 9)
    net = _net()
    twin = _net()  # the same network, never copied
    saved = _params(net)
    c = make(net)
    flat = net.flat_parameters()
    cflat = c.flat_parameters()
    assert not np.shares_memory(flat, cflat)
    opt, opt_twin = optimizers.get("momentum", lr=0.1), optimizers.get("momentum", lr=0.1)
    for _ in range(3):
        _, g = c.loss_and_grads(X, y)
        opt.step(c, g)
        _, gt = twin.loss_and_grads(X, y)
        opt_twin.step(twin, gt)
    for p, p0 in zip(net.weights + net.biases, saved):  # the original is untouched
        np.testing.assert_array_equal(p, p0)
    for p, q, p0 in zip(c.weights + c.biases, twin.weights + twin.biases, saved):  # the copy moved as a twin
        np.testing.assert_array_equal(p, q)
        assert not np.array_equal(p, p0)
    np.testing.assert_array_equal(c.update_norms, twin.update_norms)
    assert np.all(net.update_norms == 0)
    cflat = _assert_views_of_flat(c)  # views of its own flat array again
    assert not np.shares_memory(cflat, net.flat_parameters())
    # stepping the original leaves the copy alone
    csaved = _params(c)
    _, g = net.loss_and_grads(X, y)
    optimizers.get("sgd", lr=0.1).step(net, g)
    for p, p0 in zip(c.weights + c.biases, csaved):
        np.testing.assert_array_equal(p, p0)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_of_a_used_network_steps_and_probes_correctly(how):
    make = dict(_copies())[how]
    X, y = _data(5, 4, 9)
    X2, y2 = _data(5, 4, 9, seed=1)
    net = _net()
    net.loss_and_grads(X, y)   # caches the training gradient buffers and workspace
    net.probe(X, y)            # and the probe ones
    problems = []
    # probes of a copy: same statistics as an uncopied twin
    sc, st = make(net).probe(X2, y2), _net().probe(X2, y2)
    bad = [k for k in STATS if not np.array_equal(sc[k], st[k])]
    if bad:
        problems.append(f"probe statistics of the copy differ from the twin's: {bad}")
    # gradients and a step of a copy: same as an uncopied twin's
    c, twin = make(net), _net()
    _, g = c.loss_and_grads(X2, y2)
    _, gt = twin.loss_and_grads(X2, y2)
    for a, b in zip(g.weights + g.biases, gt.weights + gt.biases):
        np.testing.assert_array_equal(a, b)  # the views themselves are right
    flat = g.packed()
    if flat is not None and not np.array_equal(flat, np.concatenate([a.reshape(-1) for a in g.weights + g.biases])):
        problems.append("Grads.packed() holds other values than Grads.weights/biases")
    optimizers.get("sgd", lr=0.1).step(c, g)
    optimizers.get("sgd", lr=0.1).step(twin, gt)
    if not all(np.array_equal(a, b) for a, b in zip(c.weights + c.biases, twin.weights + twin.biases)):
        problems.append("a step on the copy differs from the same step on the twin")
    assert not problems, problems


# ------------------------------------------------------------------ Grads
def test_grads_are_views_of_one_flat_buffer():
    net = _net()
    X, y = _data(5, 4, 9)
    _, g = net.loss_and_grads(X, y)
    assert g.packed() is g.flat
    assert g.flat.dtype == net.dtype and g.flat.size == net.flat_parameters().size
    assert not np.shares_memory(g.flat, net.flat_parameters())
    assert len(g.views) == 2 * net.n_layers
    offset = 0
    for v, a in zip(g.views, g.weights + g.biases):
        assert v is a
        assert a.ctypes.data == g.flat.ctypes.data + offset * g.flat.itemsize
        offset += a.size
    np.testing.assert_array_equal(g.flat, np.concatenate([a.reshape(-1) for a in g.weights + g.biases]))
    # the next call reuses the buffer (as torch's .grad)
    _, g2 = net.loss_and_grads(X[:5], y[:5])
    assert g2.flat is g.flat and g2.packed() is g.flat


@pytest.mark.parametrize("kind", ["weights", "biases"])
def test_replaced_gradient_is_used_and_grads_untouched(kind):
    net = _net()
    X, y = _data(5, 4, 9)
    _, g = net.loss_and_grads(X, y)
    flat_saved = g.flat.copy()
    getattr(g, kind)[0] = getattr(g, kind)[0] * 2
    assert g.packed() is None
    given = [a.copy() for a in g.weights + g.biases]
    before = _params(net)
    opt = optimizers.get("sgd", lr=0.1)
    opt.step(net, g)
    for p, p0, gg in zip(net.weights + net.biases, before, given):
        np.testing.assert_array_equal(p, p0 - 0.1 * gg)
    for a, a0 in zip(g.weights + g.biases, given):
        np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(g.flat, flat_saved)  # the original buffer still holds the original
    assert opt.last_total_norm == pytest.approx(math.sqrt(sum(np.sum(a * a) for a in given)), rel=1e-12)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("name", sorted(optimizers.REGISTRY))
def test_optimizer_does_not_modify_grads(name, packed):
    net = _net()
    X, y = _data(5, 4, 9)
    opt = optimizers.get(name, weight_decay=0.1, clip_norm=0.01)
    for _ in range(3):
        _, g = net.loss_and_grads(X, y)
        if not packed:
            g.biases[-1] = g.biases[-1].copy()
        assert (g.packed() is not None) == packed
        saved = [a.copy() for a in g.weights + g.biases + g.deltas]
        flat_saved = g.flat.copy()
        opt.step(net, g)
        assert opt.last_total_norm > 0.01  # clipping is active
        for a, a0 in zip(g.weights + g.biases + g.deltas, saved):
            np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(g.flat, flat_saved)


def test_gradient_shape_mismatch_changes_nothing():
    net = _net()
    X, y = _data(5, 4, 9)
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


# ------------------------------------------------- probes on stacked layers
STACKED = [(5, [7, 7, 7, 3, 3, 9], 4), (6, [6, 6, 6], 6), (4, [5, 5, 4, 4, 4, 4], 4)]


def _stacked_net(arch, act, dtype="float64", seed=3, sigma_w=1.5):
    n_in, hidden, n_out = arch
    return MLP(n_in, hidden, n_out, activation=act, init="normal", init_params={"sigma_w": sigma_w},
               sigma_b=0.5, dtype=dtype, seed=seed)


def _assert_stats(got, want, rtol, atol=1e-14):
    assert set(got) == set(STATS)
    for k in STATS:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


def test_stacked_architectures_have_runs():
    """The architectures below do stack layers (else the stacked paths are not exercised)."""
    for arch in STACKED:
        net = _stacked_net(arch, "tanh")
        runs = probes._runs([w.shape for w in net.weights])
        assert any(e - s > 1 for s, e in runs), arch
    assert probes._runs([w.shape for w in _stacked_net(STACKED[1], "tanh").weights]) == [(0, 4)]


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("arch", STACKED, ids=lambda a: "-".join(map(str, [a[0], *a[1], a[2]])))
def test_probe_stacked_layers_match_reference_float64(ref, arch, act):
    net = _stacked_net(arch, act)
    X, y = _data(arch[0], arch[2], 12)
    opt = optimizers.get("sgd", lr=0.1)
    prev = None
    for step in range(2):  # at init, then after a step (update_ratio > 0)
        got = net.probe(X, y)
        want, _ = reference_stats(ref, net.weights, net.biases, X, y, act, "cross_entropy", prev_weights=prev)
        _assert_stats(got, want, rtol=1e-10)
        prev = [w.copy() for w in net.weights]
        _, g = net.loss_and_grads(X, y)
        opt.step(net, g)
    assert np.all(got["unit_spread"] > 0)
    assert np.any(got["update_ratio"] > 0) and np.any(got["grad_norm"] > 0)  # (small relu layers may be dead)


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("arch", STACKED, ids=lambda a: "-".join(map(str, [a[0], *a[1], a[2]])))
def test_probe_stacked_layers_float32_close_to_reference(ref, arch, act):
    net = _stacked_net(arch, act, dtype="float32")
    X, y = _data(arch[0], arch[2], 12)
    got = net.probe(X, y)
    Ws = [w.astype(np.float64) for w in net.weights]
    bs = [b.astype(np.float64) for b in net.biases]
    want, _ = reference_stats(ref, Ws, bs, X, y, act, "cross_entropy")
    for k in STATS:
        assert np.all(np.isfinite(got[k])), k
    _assert_stats(got, want, rtol=1e-4, atol=1e-5)


def test_probe_many_equal_layers_in_work_array_chunks(ref):
    """12 stacked 64-wide layers on a batch of 100: 6400 elements a layer, so _mean_var takes
    the layers 5 at a time through its work array (chunks of 5, 5, 2) and _unit_spread reads
    the 11 (64, 64) weight matrices 8 at a time."""
    net = MLP(8, [64] * 12, 3, activation="tanh", init="normal", init_params={"sigma_w": 1.2},
              sigma_b=0.3, seed=2)
    X, y = _data(8, 3, 100)
    assert len(probes._row_chunks(np.empty((12, 6400)), probes.WORK_ELEMENTS)) == 3
    got = net.probe(X, y)
    want, _ = reference_stats(ref, net.weights, net.biases, X, y, "tanh", "cross_entropy")
    _assert_stats(got, want, rtol=1e-10)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-4)])
def test_probe_layer_bigger_than_work_array(ref, dtype, rtol):
    width, batch = 512, 128
    assert batch * width > probes.WORK_ELEMENTS
    net = MLP(10, [width, width], 3, activation="tanh", init="normal", init_params={"sigma_w": 1.5},
              sigma_b=0.2, dtype=dtype, seed=4)
    X, y = _data(10, 3, batch)
    got = net.probe(X, y)
    zs, hs, _ = ref.forward([w.astype(np.float64) for w in net.weights],
                            [b.astype(np.float64) for b in net.biases], X, "tanh")
    acts = hs + [zs[-1]]
    np.testing.assert_allclose(got["preact_var"], [np.var(z) for z in zs], rtol=rtol)
    np.testing.assert_allclose(got["act_var"], [np.var(a) for a in acts], rtol=rtol)
    np.testing.assert_allclose(got["preact_mean"], [np.mean(z) for z in zs], rtol=rtol,
                               atol=rtol * max(np.std(z) for z in zs))
    np.testing.assert_allclose(got["act_mean"], [np.mean(a) for a in acts], rtol=rtol,
                               atol=rtol * max(np.std(a) for a in acts))
    assert np.all(got["preact_var"] > 0.1)
    # the work array kept on the workspace is the small one
    ws = net._workspace(batch, "probe")
    assert ws.work["tmp"].size == probes.WORK_ELEMENTS and ws.work["tmp"].dtype == np.float64


# ------------------------------------------------------------- unit_spread
def _direct_spread(W, b):
    """max_j ||u_j - u_1|| / rms_j ||u_j||, u_j = (W[:, j], b_j), from the differences, in float64."""
    U = np.vstack([np.asarray(W, np.float64), np.asarray(b, np.float64)[None, :]]).T
    return math.sqrt(np.max(np.sum((U - U[0]) ** 2, axis=1)) / np.mean(np.sum(U * U, axis=1)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", [[8, 8, 8, 4, 4], [6, 6, 6], [16, 16]])
def test_unit_spread_exactly_zero_for_constant_init(dtype, hidden):
    """Even widths: for some odd sizes (e.g. 3, 7, 9, 33) OpenBLAS's edge kernels round identical
    rows of a product differently, and the units' weights themselves stop being identical (not
    a probe matter; the test checks that the weights are identical before checking the probe)."""
    net = MLP(5, hidden, 4, activation="tanh", init="constant", init_params={"value": 0.2}, dtype=dtype, seed=0)
    X, y = _data(5, 4, 32)
    stats = net.probe(X, y)
    assert np.all(stats["unit_spread"] == 0.0), stats["unit_spread"]
    for W, b in zip(net.weights, net.biases):
        assert probes.unit_spread(W, b) == 0.0
    # a few SGD steps keep the hidden units identical (symmetric gradients); output units differ
    opt = optimizers.get("sgd", lr=0.5)
    for _ in range(5):
        _, g = net.loss_and_grads(X, y)
        opt.step(net, g)
    stats = net.probe(X, y)
    L = net.n_layers
    for l, (W, b) in enumerate(zip(net.weights[:-1], net.biases[:-1])):
        assert np.all(W == W[:, :1]) and np.all(b == b[0]), f"hidden units of layer {l + 1} diverged"
        assert not np.all(W == 0.2)  # they did move
        assert stats["unit_spread"][l] == 0.0, (l, stats["unit_spread"])
        assert probes.unit_spread(W, b) == 0.0
    assert stats["unit_spread"][L - 1] > 1e-3
    assert stats["unit_spread"][L - 1] == pytest.approx(_direct_spread(net.weights[-1], net.biases[-1]),
                                                        rel=1e-10 if dtype == "float64" else 1e-4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unit_spread_zero_for_identical_units_with_large_values(dtype):
    W = np.tile(np.random.default_rng(0).normal(scale=1e3, size=(40, 1)), (1, 9)).astype(dtype)
    b = np.full(9, 7.5, dtype=dtype)
    assert probes.unit_spread(W, b) == 0.0
    assert probes.unit_spread(np.zeros((4, 3), dtype), np.zeros(3, dtype)) == 0.0  # no division by zero


@pytest.mark.parametrize("fan_in,fan_out", [(7, 7), (64, 64), (300, 5)])
@pytest.mark.parametrize("rel", [1e-9, 1e-12])
def test_unit_spread_nearly_identical_units(fan_in, fan_out, rel):
    rng = np.random.default_rng(fan_in)
    W = 0.3 * (1.0 + rel * rng.normal(size=(fan_in, fan_out)))
    b = 0.1 * (1.0 + rel * rng.normal(size=fan_out))
    want = _direct_spread(W, b)
    assert 0 < want < 1e-7
    assert probes.unit_spread(W, b) == pytest.approx(want, rel=1e-6)


def test_unit_spread_nearly_identical_units_in_network(ref):
    """Through net.probe, with stacked layers: constant weights plus 1e-9 relative noise."""
    net = MLP(6, [6, 6, 6], 6, activation="tanh", init="constant", init_params={"value": 0.2}, seed=0)
    rng = np.random.default_rng(5)
    for p in net.weights + net.biases:
        p += 0.2 * 1e-9 * rng.normal(size=p.shape)
    X, y = _data(6, 6, 10)
    got = net.probe(X, y)["unit_spread"]
    want = [_direct_spread(W, b) for W, b in zip(net.weights, net.biases)]
    assert all(0 < w < 1e-7 for w in want)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("shape", [(7, 7), (5, 7), (64, 64), (3, 9), (200, 30)])
def test_unit_spread_random_weights(shape):
    rng = np.random.default_rng(sum(shape))
    W = rng.normal(size=shape) / math.sqrt(shape[0])
    b = rng.normal(scale=0.5, size=shape[1])
    want = _direct_spread(W, b)
    assert probes.unit_spread(W, b) == pytest.approx(want, rel=1e-10)
    got32 = probes.unit_spread(W.astype(np.float32), b.astype(np.float32))
    assert got32 == pytest.approx(_direct_spread(W.astype(np.float32), b.astype(np.float32)), rel=1e-4)


@pytest.mark.parametrize("arch", STACKED + [(8, [64] * 12, 3)], ids=str)
def test_unit_spread_random_weights_in_network(arch):
    net = _stacked_net(arch, "relu")
    X, y = _data(arch[0], arch[2], 10)
    got = net.probe(X, y)["unit_spread"]
    want = [_direct_spread(W, b) for W, b in zip(net.weights, net.biases)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.all(got > 0.1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fan_in,fan_out", [(7, 7), (256, 64)])
@pytest.mark.parametrize("rel", [1e-7, 1e-5, 3e-3, 1e-2, 3e-2, 0.3])
def test_unit_spread_accurate_on_both_sides_of_the_exact_fallback(dtype, fan_in, fan_out, rel):
    """The Gram form is used above EXACT_SPREAD2 and the differences below: either way the
    spread matches a float64 computation from the differences to 1e-8 (float32 weights are
    summed in float64 too)."""
    rng = np.random.default_rng(int(1e3 * rel) + fan_in)
    W = (0.3 * (1.0 + rel * rng.normal(size=(fan_in, fan_out)))).astype(dtype)
    b = (0.1 * (1.0 + rel * rng.normal(size=fan_out))).astype(dtype)
    want = _direct_spread(W.astype(np.float64), b.astype(np.float64))
    assert want > 0
    assert probes.unit_spread(W, b) == pytest.approx(want, rel=1e-8)


@pytest.mark.parametrize("chunk", [1, 10, 1 << 20])
@pytest.mark.parametrize("arch", STACKED, ids=str)
def test_probe_during_the_pass_equals_stats_after_it(monkeypatch, ref, arch, chunk):
    """net.probe computes the statistics chunk by chunk during its pass (LayerStats hooks);
    probes.layer_stats computes them after a pass: the same numbers, for any chunk size, and
    both match the independent reference."""
    monkeypatch.setattr(probes, "CHUNK_ELEMENTS", chunk)
    net = _stacked_net(arch, "tanh")
    X, y = _data(arch[0], arch[2], 10)
    during = net.probe(X, y)
    ws = net._workspace(X.shape[0], "probe")
    after = probes.layer_stats(net, ws, net._grad_buffers("probe")[2])
    for k in STATS:
        np.testing.assert_array_equal(during[k], after[k], err_msg=k)
    want, _ = reference_stats(ref, net.weights, net.biases, X, y, "tanh", "cross_entropy")
    for k in STATS:
        np.testing.assert_allclose(during[k], want[k], rtol=1e-10, atol=1e-14, err_msg=k)
