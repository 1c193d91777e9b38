"""Probes: every per-layer statistic against a direct computation with the hand-written
forward/backward of conftest; batch-size independence of delta_ms; update_ratio;
histograms; probes have no side effects and run without dropout."""
import math

import numpy as np
import pytest

from nncore import MLP, STATS, activations, optimizers, probes

pytestmark = pytest.mark.usefixtures("single_thread_blas")

ACTIVATIONS = tuple(sorted(activations.REGISTRY))
N_IN, HIDDEN, N_OUT, B = 6, [8, 7, 8], 4, 10


def _data(loss, ref, seed=0, B=B):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, N_IN))
    return X, ref.make_targets(loss, rng, B, N_OUT)


def _net(act, loss="cross_entropy", dropout=0.0, sigma_w=2.0, seed=3, **kw):
    return MLP(N_IN, HIDDEN, N_OUT, activation=act, loss=loss, init="normal",
               init_params={"sigma_w": sigma_w}, sigma_b=0.5, dropout=dropout, seed=seed, **kw)


def reference_stats(ref, Ws, bs, X, y, act, loss, prev_weights=None, alpha=None):
    """The definitions of nncore/probes.py, computed from scratch."""
    alpha = ref.LEAKY_ALPHA if alpha is None else alpha
    zs, hs, as_ = ref.forward(Ws, bs, X, act, None, alpha)
    _, deltas, gW, gb = ref.backward(Ws, X, zs, as_, act, loss, y, None, alpha)
    Bn = X.shape[0]
    L = len(Ws)
    thr = 0.1 * ref.MAX_DERIVATIVE[act]
    out = {k: [] for k in STATS}
    for l in range(L):
        z = zs[l]
        a = hs[l] if l < L - 1 else zs[l]
        out["grad_norm"].append(math.sqrt(np.sum(gW[l] ** 2)))
        out["bias_grad_norm"].append(math.sqrt(np.sum(gb[l] ** 2)))
        out["delta_ms"].append(np.mean((Bn * deltas[l]) ** 2))
        out["preact_mean"].append(np.mean(z))
        out["preact_var"].append(np.mean((z - np.mean(z)) ** 2))
        out["act_mean"].append(np.mean(a))
        out["act_var"].append(np.mean((a - np.mean(a)) ** 2))
        if l < L - 1:
            sat = ref.dphi(act, z, alpha) < thr
            out["saturation"].append(np.mean(sat))
            out["dead_frac"].append(np.mean(np.all(sat, axis=0)))
            bounds = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0)}.get(act)
            out["near_lower_bound"].append(np.nan if bounds is None else
                                           np.mean(a < bounds[0] + 0.05 * (bounds[1] - bounds[0])))
        else:  # linear output layer
            out["saturation"].append(0.0)
            out["dead_frac"].append(0.0)
            out["near_lower_bound"].append(0.0)
        out["weight_norm"].append(math.sqrt(np.sum(Ws[l] ** 2)))
        units = np.vstack([Ws[l], bs[l][None, :]]).T  # one row per unit: its incoming weights and bias
        centred = units - units[0]
        out["unit_spread"].append(np.sqrt(np.max(np.sum(centred ** 2, axis=1)) / np.mean(np.sum(units ** 2, axis=1))))
        if prev_weights is None:
            out["update_ratio"].append(0.0)
        else:
            out["update_ratio"].append(math.sqrt(np.sum((Ws[l] - prev_weights[l]) ** 2)) / out["weight_norm"][-1])
    return {k: np.array(v) for k, v in out.items()}, (zs, hs, deltas, gW)


def _assert_stats(got, want, rtol=1e-10):
    assert set(got) == set(STATS)
    for k in STATS:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_probe_matches_reference(ref, act, loss):
    net = _net(act, loss)
    X, y = _data(loss, ref)
    got = net.probe(X, y)
    want, _ = reference_stats(ref, net.weights, net.biases, X, y, act, loss)
    _assert_stats(got, want)
    assert all(got[k].shape == (net.n_layers,) for k in STATS)


# the bounded activations (finite sup phi^2), which saturate: sigmoid, softsign, tanh
SATURATING = tuple(n for n in ACTIVATIONS if activations.REGISTRY[n].sup_square is not None)


@pytest.mark.parametrize("act", SATURATING)
def test_saturation_is_nontrivial_and_relative_to_max_derivative(ref, act):
    """Large weights: some units saturate, not all. For sigmoid the threshold is 0.1 * 1/4."""
    net = _net(act, sigma_w=6.0)
    X, y = _data("cross_entropy", ref)
    got = net.probe(X, y)
    want, _ = reference_stats(ref, net.weights, net.biases, X, y, act, "cross_entropy")
    np.testing.assert_allclose(got["saturation"], want["saturation"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(got["dead_frac"], want["dead_frac"], rtol=0, atol=1e-15)
    assert np.any((got["saturation"][:-1] > 0) & (got["saturation"][:-1] < 1))
    assert got["saturation"][-1] == 0.0 and got["dead_frac"][-1] == 0.0


def test_dead_frac_relu(ref):
    net = _net("relu")
    # kill units 0 and 1 of layer 1 and unit 3 of layer 3 for every input
    net.biases[0][:2] = -1e3
    net.biases[2][3] = -1e3
    X, y = _data("cross_entropy", ref)
    got = net.probe(X, y)
    want, _ = reference_stats(ref, net.weights, net.biases, X, y, "relu", "cross_entropy")
    np.testing.assert_allclose(got["dead_frac"], want["dead_frac"], atol=1e-15)
    np.testing.assert_allclose(got["saturation"], want["saturation"], atol=1e-15)
    assert got["dead_frac"][0] >= 2 / HIDDEN[0]
    assert got["dead_frac"][2] >= 1 / HIDDEN[2]
    # a dead unit gets no gradient: its column of dL/dW_1 is zero
    _, grads = net.loss_and_grads(X, y)
    assert np.all(grads.weights[0][:, :2] == 0)


def test_identity_never_saturates(ref):
    net = _net("identity", "mse")
    X, y = _data("mse", ref)
    got = net.probe(X, y)
    assert np.all(got["saturation"] == 0) and np.all(got["dead_frac"] == 0)


def test_delta_ms_last_layer_closed_form(ref):
    """For cross-entropy the per-example error at the logits is softmax - onehot."""
    net = _net("tanh")
    X, y = _data("cross_entropy", ref)
    got = net.probe(X, y)
    zs, _, _ = ref.forward(net.weights, net.biases, X, "tanh")
    z = zs[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    err = p - np.eye(N_OUT)[y]
    assert got["delta_ms"][-1] == pytest.approx(np.mean(err ** 2), rel=1e-12)


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_batch_size_independence(ref, act, loss):
    """Duplicating the batch changes nothing: the loss is a mean and delta_ms is per example."""
    net = _net(act, loss)
    X, y = _data(loss, ref)
    s1 = net.probe(X, y)
    s2 = net.probe(np.concatenate([X, X]), np.concatenate([y, y]))
    for k in STATS:
        np.testing.assert_allclose(s2[k], s1[k], rtol=1e-12, atol=1e-15, err_msg=k)
    assert np.all(s1["delta_ms"] > 0)


def test_update_ratio_zero_before_any_step(ref):
    net = _net("tanh")
    X, y = _data("cross_entropy", ref)
    np.testing.assert_array_equal(net.probe(X, y)["update_ratio"], np.zeros(net.n_layers))


@pytest.mark.parametrize("name,kw", [("sgd", {"lr": 0.1}), ("adam", {"lr": 0.01}), ("momentum", {"lr": 0.05})])
def test_update_ratio_after_steps(ref, name, kw):
    net = _net("tanh")
    X, y = _data("cross_entropy", ref)
    opt = optimizers.get(name, **kw)
    for _ in range(3):
        prev = [w.copy() for w in net.weights]
        _, grads = net.loss_and_grads(X, y)
        opt.step(net, grads)
    got = net.probe(X, y)
    want, _ = reference_stats(ref, net.weights, net.biases, X, y, "tanh", "cross_entropy", prev_weights=prev)
    np.testing.assert_allclose(got["update_ratio"], want["update_ratio"], rtol=1e-8)
    assert np.all(got["update_ratio"] > 0)
    _assert_stats({k: v for k, v in got.items() if k != "update_ratio"} | {"update_ratio": want["update_ratio"]},
                  want)


def test_probe_has_no_side_effects(ref):
    net = _net("tanh", dropout=0.3)
    X, y = _data("cross_entropy", ref)
    X2, y2 = _data("cross_entropy", ref, seed=1)
    params = [p.copy() for p in net.weights + net.biases]
    loss, grads = net.loss_and_grads(X, y, deltas=True)
    saved = [g.copy() for g in grads.weights + grads.biases + grads.deltas]
    masks = [m.copy() for m in net.last_masks]
    norms = net.update_norms.copy()
    net.probe(X2, y2)
    net.probe_with_histograms(X2, y2)
    for p, p0 in zip(net.weights + net.biases, params):
        np.testing.assert_array_equal(p, p0)
    for g, g0 in zip(grads.weights + grads.biases + grads.deltas, saved):  # training gradients intact
        np.testing.assert_array_equal(g, g0)
    for m, m0 in zip(net.last_masks, masks):
        np.testing.assert_array_equal(m, m0)
    np.testing.assert_array_equal(net.update_norms, norms)


def test_probe_does_not_consume_dropout_randomness(ref):
    """Probing (evaluation mode) draws no dropout masks, so it cannot change a run's training."""
    X, y = _data("cross_entropy", ref)
    a, b = _net("tanh", dropout=0.5), _net("tanh", dropout=0.5)
    a.probe(X, y)
    a.loss_and_grads(X, y)
    b.loss_and_grads(X, y)
    for ma, mb in zip(a.last_masks, b.last_masks):
        np.testing.assert_array_equal(ma, mb)


def test_dropout_off_in_probes(ref):
    net = _net("relu", dropout=0.5)
    X, y = _data("cross_entropy", ref)
    s1 = net.probe(X, y)
    s2 = net.probe(X, y)
    want, _ = reference_stats(ref, net.weights, net.biases, X, y, "relu", "cross_entropy")
    _assert_stats(s1, want)
    for k in STATS:
        np.testing.assert_array_equal(s1[k], s2[k])


def test_probe_with_histograms(ref):
    net = _net("tanh")
    X, y = _data("cross_entropy", ref)
    stats, hists = net.probe_with_histograms(X, y)
    _assert_stats(stats, net.probe(X, y), rtol=0)
    want, (zs, hs, deltas, gW) = reference_stats(ref, net.weights, net.biases, X, y, "tanh", "cross_entropy")
    L = net.n_layers
    assert set(hists) == {"act", "delta", "weight_grad"}
    values = {
        "act": [hs[l] if l < L - 1 else zs[l] for l in range(L)],
        "delta": [B * d for d in deltas],
        "weight_grad": gW,
    }
    for kind, per_layer in hists.items():
        assert len(per_layer) == L
        for l, (counts, edges) in enumerate(per_layer):
            v = values[kind][l]
            assert counts.shape == (64,) and edges.shape == (65,)
            assert counts.sum() == v.size
            assert np.all(counts >= 0)
            assert np.all(np.diff(edges) > 0)
            np.testing.assert_allclose([edges[0], edges[-1]], [v.min(), v.max()], rtol=1e-10, atol=1e-14)
            # same counts as binning the reference values (allowing for a value on an edge)
            rcounts, _ = np.histogram(v, bins=64, range=(edges[0], edges[-1]))
            assert np.abs(rcounts - counts).sum() <= 2


def test_histogram_bins_argument(ref):
    net = _net("relu")
    X, y = _data("cross_entropy", ref)
    _, hists = net.probe_with_histograms(X, y, bins=10)
    for kind in ("act", "delta", "weight_grad"):
        for counts, edges in hists[kind]:
            assert counts.shape == (10,) and edges.shape == (11,)
    assert hists["act"][0][0].sum() == B * HIDDEN[0]
    with pytest.raises(ValueError, match="bins"):
        net.probe_with_histograms(X, y, bins=0)


def test_histogram_of_constant_values():
    """All-equal values (e.g. relu units that are all dead) still give a valid histogram."""
    counts, edges = probes.histogram(np.zeros((3, 4)), bins=8)
    assert counts.sum() == 12 and edges[0] < 0 < edges[-1]
    counts, _ = probes.histogram(np.array([1.0, np.nan, np.inf, 2.0]), bins=4)
    assert counts.sum() == 2


F64_MAX = np.finfo(np.float64).max


@pytest.mark.parametrize("values", [
    np.array([1.0, np.nextafter(1.0, 2.0)]),                        # a range of one ulp
    np.array([1.0, np.nextafter(np.float32(1.0), np.float32(2.0))], np.float32),
    np.array([-3e38, 3e38], np.float32),                              # a range beyond float32's
    np.array([-1e308, 1e308]),                                        # ... and beyond float64's
    np.array([F64_MAX, -F64_MAX, 0.0]), np.full(3, F64_MAX), np.full(5, -1e300), np.full(4, 1e20),
    np.array([5e-324, 0.0])])
def test_histogram_of_nearly_constant_and_huge_values(values):
    """np.histogram refuses bins narrower than an ulp and ranges whose width overflows: these
    finite values still get every count, in finite, strictly increasing edges that span them."""
    counts, edges = probes.histogram(values, bins=64)
    data = values.astype(np.float64)
    assert counts.sum() == values.size and counts.shape == (64,)
    assert np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)
    assert edges[0] <= data.min() and data.max() <= edges[-1]


def test_histogram_bins_huge_values_as_numpy_bins_their_halves():
    """Beyond float64's range the halves are binned (halving is exact): the counts are those of
    the halved data in the halved range."""
    values = np.array([-1e308, -2e307, 0.0, 3e307, 1e308, 1e308])
    counts, edges = probes.histogram(values, bins=8)
    want, want_edges = np.histogram(values / 2, bins=8, range=(-0.5e308, 0.5e308))
    np.testing.assert_array_equal(counts, want)
    np.testing.assert_array_equal(edges, want_edges * 2)


def test_probe_histograms_of_a_collapsed_constant_init_network():
    """Constant init with tanh: deep layers agree to within ulps (not exactly), which used to
    make np.histogram raise inside the probe and fail the run."""
    rng = np.random.default_rng(0)
    X, y = rng.uniform(size=(64, 16)), rng.integers(0, 10, 64)
    net = MLP(16, [32] * 12, 10, activation="tanh", init="constant", init_params={"value": 0.3})
    _, hists = net.probe_with_histograms(X, y)
    spreads = [np.ptp(block.cache["out"]) for block in net.hidden_layers]
    assert any(0 < s < 1e-12 for s in spreads)  # the case np.histogram refused
    for kind, per_layer in hists.items():
        for counts, edges in per_layer:
            assert np.all(np.diff(edges) > 0), kind
    assert [c.sum() for c, _ in hists["act"]] == [64 * 32] * 12 + [64 * 10]


def test_nan_weights_give_nan_spread_and_update_ratio():
    """NaN parameters are not 'identical units' (unit_spread 0) nor an update of 0."""
    assert math.isnan(probes.unit_spread(np.full((3, 4), np.nan), np.zeros(4)))
    assert math.isnan(probes.unit_spread(np.ones((3, 4)), np.array([0.0, np.nan, 0.0, 0.0])))
    assert math.isnan(probes.update_ratio(np.nan, np.nan))
    assert math.isnan(probes.update_ratio(1.0, np.nan))
    assert probes.update_ratio(1.0, 0.0) == 0.0 and probes.unit_spread(np.zeros((3, 4)), np.zeros(4)) == 0.0


def test_probe_float32_close_to_float64(ref):
    X, y = _data("cross_entropy", ref)
    s64 = _net("tanh").probe(X, y)
    s32 = _net("tanh", dtype="float32").probe(X, y)
    for k in STATS:
        assert np.all(np.isfinite(s32[k]))
        np.testing.assert_allclose(s32[k], s64[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
def test_probe_loss_and_accuracy(ref, loss):
    net = _net("tanh", loss, dropout=0.5)
    assert math.isnan(net.probe_loss) and math.isnan(net.probe_accuracy)
    X, y = _data(loss, ref, B=40)
    net.probe(X, y)
    zs, _, _ = ref.forward(net.weights, net.biases, X, "tanh")  # dropout off
    z = zs[-1]
    assert net.probe_loss == pytest.approx(ref.loss_and_dz(loss, z, y)[0], rel=1e-12)
    if loss == "cross_entropy":
        acc = np.mean(np.argmax(z, axis=1) == y)
    elif loss == "bce":
        acc = np.mean((z > 0) == (y == 1))
    else:
        acc = np.mean(np.argmax(z, axis=1) == np.argmax(y, axis=1))
    assert net.probe_accuracy == pytest.approx(acc, abs=1e-15)
    assert 0 < acc < 1  # not a degenerate check
    # probe_with_histograms sets them too
    X2, y2 = _data(loss, ref, seed=5, B=40)
    net.probe_with_histograms(X2, y2)
    zs2, _, _ = ref.forward(net.weights, net.biases, X2, "tanh")
    assert net.probe_loss == pytest.approx(ref.loss_and_dz(loss, zs2[-1], y2)[0], rel=1e-12)


def test_unit_spread_is_zero_for_constant_init_and_positive_otherwise():
    X = np.random.default_rng(0).normal(size=(16, 5))
    y = np.arange(16) % 3
    same = MLP(5, [6, 6], 3, activation="tanh", init="constant", init_params={"value": 0.2}, seed=0)
    stats = same.probe(X, y)
    np.testing.assert_array_equal(stats["unit_spread"], 0.0)
    varied = MLP(5, [6, 6], 3, activation="tanh", init="xavier_uniform", seed=0)
    assert np.all(varied.probe(X, y)["unit_spread"] > 0.1)


@pytest.mark.parametrize("n", [1, 7, 64, 64 * 1024 + 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sums_of_squares_in_float64(n, dtype):
    """Every element counts once, whatever the length, against math.fsum; float32 squares that
    underflow or overflow float32 (2nd and 3rd rows) are summed in float64."""
    rows = (np.random.default_rng(n).standard_normal((3, n)) * [[1.0], [1e-30], [1e30]]).astype(dtype)
    assert rows.dtype == dtype
    want = [math.fsum(float(v) ** 2 for v in row) for row in rows]
    np.testing.assert_allclose(probes.sum_squares(list(rows)), want, rtol=1e-13)
    np.testing.assert_allclose(probes.sum_squares([row[None] for row in rows]), want, rtol=1e-13)


# ------------------------------ float32 accumulation, equal layers, unit_spread, bins
def _axy(n_in=3, n_out=2, B=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), np.arange(B) % n_out


@pytest.mark.parametrize("bins", [0, -1, 2.5, "64"])
def test_probe_with_histograms_rejects_bad_bins_before_probing(bins):
    X, y = _axy(B=16)
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


@pytest.mark.parametrize("case", ["exploding", "vanishing"])
def test_float32_statistics_are_accumulated_in_float64(case):
    """preact/act variances of a float32 network, computed in float64 from its own float32
    values: no overflow to inf (exploding) and no lost digits near the float32 range (vanishing)."""
    if case == "exploding":
        net = MLP(8, [16] * 13, 4, activation="relu", init="normal", init_params={"sigma_w": 40.0},
                  dtype="float32", seed=0)
    else:
        net = MLP(8, [16] * 24, 4, activation="tanh", init="normal", init_params={"sigma_w": 0.1},
                  dtype="float32", seed=0)
    X, y = _axy(8, 4, 32)
    stats = net.probe(X, y)
    zs = [d.cache["z"] for d in net.dense]
    for l, z in enumerate(zs):
        z64 = z.astype(np.float64)
        assert np.isfinite(stats["preact_var"][l])
        assert stats["preact_var"][l] == pytest.approx(z64.var(), rel=1e-10)
        assert stats["preact_mean"][l] == pytest.approx(z64.mean(), rel=1e-10, abs=1e-300)
    if case == "exploding":  # the sum of squares is beyond float32's range: it would be inf there
        assert stats["preact_var"][-2] * zs[-2].size > np.finfo(np.float32).max
    else:
        assert 0 < stats["preact_var"][-2] < 1e-40


def test_unit_spread_of_integer_arrays():
    W, b = np.array([[1, 2], [3, 4]]), np.array([0, 1])
    assert probes.unit_spread(W, b) == pytest.approx(probes.unit_spread(W.astype(float), b.astype(float)), rel=1e-15)
    assert probes.unit_spread(W, b) > 0


STACKED = [(5, [7, 7, 7, 3, 3, 9], 4), (6, [6, 6, 6], 6), (4, [5, 5, 4, 4, 4, 4], 4)]


def _stacked_net(arch, act, dtype="float64", seed=3, sigma_w=1.5):
    n_in, hidden, n_out = arch
    return MLP(n_in, hidden, n_out, activation=act, init="normal", init_params={"sigma_w": sigma_w},
               sigma_b=0.5, dtype=dtype, seed=seed)


def _assert_stats_tol(got, want, rtol, atol=1e-14):
    assert set(got) == set(STATS)
    for k in STATS:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("arch", STACKED, ids=lambda a: "-".join(map(str, [a[0], *a[1], a[2]])))
def test_probe_stacked_layers_match_reference_float64(ref, arch, act):
    net = _stacked_net(arch, act)
    X, y = ref.classification_data(arch[0], arch[2], 12)
    opt = optimizers.get("sgd", lr=0.1)
    prev = None
    for step in range(2):  # at init, then after a step (update_ratio > 0)
        got = net.probe(X, y)
        want, _ = reference_stats(ref, net.weights, net.biases, X, y, act, "cross_entropy", prev_weights=prev)
        _assert_stats_tol(got, want, rtol=1e-10)
        prev = [w.copy() for w in net.weights]
        _, g = net.loss_and_grads(X, y)
        opt.step(net, g)
    assert np.all(got["unit_spread"] > 0)
    assert np.any(got["update_ratio"] > 0) and np.any(got["grad_norm"] > 0)  # (small relu layers may be dead)


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("arch", STACKED, ids=lambda a: "-".join(map(str, [a[0], *a[1], a[2]])))
def test_probe_stacked_layers_float32_close_to_reference(ref, arch, act):
    net = _stacked_net(arch, act, dtype="float32")
    X, y = ref.classification_data(arch[0], arch[2], 12)
    got = net.probe(X, y)
    Ws = [w.astype(np.float64) for w in net.weights]
    bs = [b.astype(np.float64) for b in net.biases]
    want, _ = reference_stats(ref, Ws, bs, X, y, act, "cross_entropy")
    for k in STATS:  # near_lower_bound is NaN for an unbounded activation's hidden layers (relu)
        assert np.all(np.isfinite(got[k]) | (k == "near_lower_bound" and act == "relu")), k
    _assert_stats_tol(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-4)])
def test_probe_of_wide_layers_matches_the_reference(ref, dtype, rtol):
    width, batch = 512, 128
    net = MLP(10, [width, width], 3, activation="tanh", init="normal", init_params={"sigma_w": 1.5},
              sigma_b=0.2, dtype=dtype, seed=4)
    X, y = ref.classification_data(10, 3, batch)
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


def _direct_spread(W, b):
    """max_j ||u_j - u_1|| / rms_j ||u_j||, u_j = (W[:, j], b_j), from the differences, in float64."""
    U = np.vstack([np.asarray(W, np.float64), np.asarray(b, np.float64)[None, :]]).T
    return math.sqrt(np.max(np.sum((U - U[0]) ** 2, axis=1)) / np.mean(np.sum(U * U, axis=1)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", [[8, 8, 8, 4, 4], [6, 6, 6], [16, 16]])
def test_unit_spread_exactly_zero_for_constant_init(ref, dtype, hidden):
    """Even widths: for some odd sizes (e.g. 3, 7, 9, 33) OpenBLAS's edge kernels round identical
    rows of a product differently, and the units' weights themselves stop being identical (not
    a probe matter; the test checks that the weights are identical before checking the probe)."""
    net = MLP(5, hidden, 4, activation="tanh", init="constant", init_params={"value": 0.2}, dtype=dtype, seed=0)
    X, y = ref.classification_data(5, 4, 32)
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
    X, y = ref.classification_data(6, 6, 10)
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
def test_unit_spread_random_weights_in_network(ref, arch):
    net = _stacked_net(arch, "relu")
    X, y = ref.classification_data(arch[0], arch[2], 10)
    got = net.probe(X, y)["unit_spread"]
    want = [_direct_spread(W, b) for W, b in zip(net.weights, net.biases)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.all(got > 0.1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fan_in,fan_out", [(7, 7), (256, 64)])
@pytest.mark.parametrize("rel", [1e-7, 1e-5, 3e-3, 1e-2, 3e-2, 0.3])
def test_unit_spread_accurate_for_near_and_far_units(dtype, fan_in, fan_out, rel):
    """Nearly identical units and clearly different ones: the spread matches a float64
    computation from the differences to 1e-8 (float32 weights are summed in float64 too)."""
    rng = np.random.default_rng(int(1e3 * rel) + fan_in)
    W = (0.3 * (1.0 + rel * rng.normal(size=(fan_in, fan_out)))).astype(dtype)
    b = (0.1 * (1.0 + rel * rng.normal(size=fan_out))).astype(dtype)
    want = _direct_spread(W.astype(np.float64), b.astype(np.float64))
    assert want > 0
    assert probes.unit_spread(W, b) == pytest.approx(want, rel=1e-8)


# ------------------------------------------------------------------ Jacobian probes
def test_jacobian_probe_spectrum_and_per_layer_singular_values():
    from nncore import MLP, probes
    net = MLP(5, [6, 6], 3, activation="tanh", init="normal", init_params={"sigma_w": 1.2}, seed=1)
    X = np.random.default_rng(0).normal(size=(3, 5))
    jp = probes.jacobian_probe(net, X, bins=8)
    # reference: J J^T's eigenvalues from the textbook chain rule D2 W2^T D1 W1^T (column form)
    W1, W2 = net.weights[0], net.weights[1]
    eig = []
    layer1, layer2 = [], []
    for x in X:
        z1 = x @ W1
        a1 = np.tanh(z1)
        z2 = a1 @ W2
        J1 = (1 - a1 ** 2)[:, None] * W1.T
        J2 = (1 - np.tanh(z2) ** 2)[:, None] * W2.T
        J = J2 @ J1  # 6 x 5: 5 squared singular values = the non-zero eigenvalues of J^T J
        eig.append(np.linalg.eigvalsh(J.T @ J))
        layer1.append(np.sqrt(np.clip(np.linalg.eigvalsh(J1.T @ J1), 0, None)))
        layer2.append(np.sqrt(np.clip(np.linalg.eigvalsh(J2.T @ J2), 0, None)))
    eig = np.concatenate(eig)
    assert jp.stats["sv2_mean"] == pytest.approx(eig.mean(), rel=1e-10)
    assert jp.stats["sv2_var"] == pytest.approx(eig.var(), rel=1e-8)
    assert jp.stats["sv_max"] == pytest.approx(np.sqrt(eig.max()), rel=1e-10)
    assert jp.stats["sv_min"] == pytest.approx(np.sqrt(max(eig.min(), 0)), rel=1e-6, abs=1e-12)
    counts, edges = jp.histogram
    assert counts.sum() == eig.size
    assert edges[0] == pytest.approx(np.log10(eig.min())) and edges[-1] == pytest.approx(np.log10(eig.max()))
    W3_sv = np.linalg.svd(net.weights[2], compute_uv=False)
    k = probes.JACOBIAN_LAYER_INPUTS
    np.testing.assert_allclose(jp.layer_sv_mean, [np.mean(layer1[:k]), np.mean(layer2[:k]), W3_sv.mean()], rtol=1e-8)


def test_jacobian_probe_of_a_diverged_network_is_nan_not_a_crash():
    from nncore import MLP, probes
    net = MLP(4, [5, 5], 2, seed=0)
    net.weights[1][0, 0] = np.nan
    jp = probes.jacobian_probe(net, np.ones((2, 4)))
    assert all(np.isnan(v) for v in jp.stats.values())
    assert jp.histogram[0].sum() == 0
    assert np.isnan(jp.layer_sv_mean[1]) and np.isfinite(jp.layer_sv_mean[0])


def test_near_lower_bound_counts_the_bottom_of_the_range_only():
    net = MLP(2, [4], 2, activation="sigmoid", init="normal", seed=0)
    net.weights[0][...] = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]]) * 10
    X = np.array([[1.0, 0.0], [0.0, 0.0]])  # row 1: z = (10, -10, 0, 0): one unit near 0, one near 1
    stats = net.probe(X, np.array([0, 1]))
    assert stats["near_lower_bound"][0] == pytest.approx(1 / 8)
    assert stats["saturation"][0] == pytest.approx(2 / 8)  # both ends, by phi'
    assert np.isnan(MLP(2, [3], 2, activation="relu").probe(X, np.array([0, 1]))["near_lower_bound"][0])
