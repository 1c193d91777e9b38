"""The training loop: callback schedule and step numbering, batching, determinism,
float32, and divergence handling."""
import math
import warnings

import numpy as np
import pytest

import nncore
from nncore import MLP, STATS, optimizers, train
from nncore.rng import generator
from nncore.training import n_steps

pytestmark = pytest.mark.usefixtures("single_thread_blas")


def _data(n=50, n_in=5, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = (np.argmax(X[:, :n_out], axis=1)).astype(np.int64)
    return X, y


class Recorder:
    def __init__(self):
        self.records = []

    def __call__(self, rec):
        self.records.append(dict(step=rec.step, epoch=rec.epoch, final=rec.final, train_loss=rec.train_loss,
                                 train_grad_norm=rec.train_grad_norm,
                                 stats={k: v.copy() for k, v in rec.stats.items()},
                                 hist=rec.histograms is not None, net=rec.net))

    @property
    def steps(self):
        return [r["step"] for r in self.records]


# ------------------------------------------------------------ schedule
@pytest.mark.parametrize("n,bs,epochs,log_every,expected", [
    (50, 8, 3, 5, [0, 5, 10, 15, 20, 21]),    # 7 batches/epoch, 21 steps, last one not a multiple
    (50, 8, 3, 7, [0, 7, 14, 21]),            # last step is a multiple: reported once
    (48, 8, 2, 100, [0, 12]),                 # log_every beyond the end: step 0 and the end
    (10, 3, 1, 1, [0, 1, 2, 3, 4]),
])
def test_callback_schedule(n, bs, epochs, log_every, expected):
    X, y = _data(n)
    net = MLP(5, [6], 3, seed=0)
    rec = Recorder()
    res = train(net, optimizers.get("sgd", lr=0.1), X, y, epochs=epochs, batch_size=bs, log_every=log_every,
                callback=rec)
    assert rec.steps == expected
    assert res.steps == n_steps(n, bs, epochs) == expected[-1]
    assert len(res.train_losses) == res.steps
    assert res.diverged_step is None and not res.diverged
    assert [r["final"] for r in rec.records] == [False] * (len(expected) - 1) + [True]


def test_n_steps():
    assert n_steps(50, 8, 3) == 21
    assert n_steps(48, 8, 2) == 12
    assert n_steps(1, 8, 5) == 5
    assert n_steps(10, 10, 0) == 0


def test_step_zero_is_before_any_update():
    X, y = _data()
    net = MLP(5, [6, 6], 3, seed=1)
    w0 = [w.copy() for w in net.weights]
    seen = {}

    def cb(rec):
        if rec.step == 0:
            seen["weights"] = [w.copy() for w in rec.net.weights]
            seen["stats"] = {k: v.copy() for k, v in rec.stats.items()}
            seen["loss"] = rec.train_loss
            seen["epoch"] = rec.epoch

    train(net, optimizers.get("adam", lr=0.01), X, y, epochs=1, batch_size=10, log_every=2, callback=cb)
    for w, v in zip(seen["weights"], w0):
        np.testing.assert_array_equal(w, v)
    np.testing.assert_array_equal(seen["stats"]["update_ratio"], np.zeros(net.n_layers))
    assert math.isnan(seen["loss"]) and seen["epoch"] == 0
    assert set(seen["stats"]) == set(STATS)
    np.testing.assert_allclose(seen["stats"]["weight_norm"], [np.linalg.norm(w) for w in w0], rtol=1e-12)
    assert not any(np.array_equal(w, v) for w, v in zip(net.weights, w0))  # training did happen


def test_epoch_numbers_and_records():
    X, y = _data(50)
    net = MLP(5, [6], 3, seed=0)
    rec = Recorder()
    res = train(net, optimizers.get("sgd", lr=0.1), X, y, epochs=3, batch_size=8, log_every=5, callback=rec)
    # 7 steps per epoch: the epoch reported is the number of completed epochs
    assert [r["epoch"] for r in rec.records] == [0, 0, 1, 2, 2, 3]
    for r in rec.records[1:]:
        assert r["train_loss"] == res.train_losses[r["step"] - 1]
        assert math.isfinite(r["train_grad_norm"]) and r["train_grad_norm"] > 0
        assert np.all(r["stats"]["update_ratio"] > 0)
    assert rec.records[0]["net"] is net


def test_loop_equals_manual_loop():
    """train == shuffled mini-batches from the 'shuffle' stream, loss_and_grads, opt.step."""
    X, y = _data(23)
    a = MLP(5, [7, 7], 3, seed=4, dropout=0.2)
    b = MLP(5, [7, 7], 3, seed=4, dropout=0.2)
    res = train(a, optimizers.get("momentum", lr=0.05), X, y, epochs=2, batch_size=5)
    opt = optimizers.get("momentum", lr=0.05)
    rng = generator(4, "shuffle")
    losses = []
    for _ in range(2):
        order = rng.permutation(23)
        for s in range(0, 23, 5):
            idx = order[s:s + 5]
            loss, grads = b.loss_and_grads(X[idx], y[idx], train=True)
            losses.append(loss)
            opt.step(b, grads)
    assert res.train_losses == losses
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(p, q)


def test_first_batch_loss_matches_reference(ref):
    X, y = _data(40)
    net = MLP(5, [6, 6], 3, activation="softsign", seed=2, sigma_b=0.1)
    Ws = [w.copy() for w in net.weights]
    bs = [b.copy() for b in net.biases]
    res = train(net, optimizers.get("sgd"), X, y, epochs=1, batch_size=16, seed=9)
    idx = generator(9, "shuffle").permutation(40)[:16]
    assert res.train_losses[0] == pytest.approx(ref.total_loss(Ws, bs, X[idx], y[idx], "softsign", "cross_entropy"),
                                                rel=1e-12)


def test_records_carry_probe_loss_and_accuracy(ref):
    X, y = _data(40)
    net = MLP(5, [6, 6], 3, seed=2, sigma_b=0.1, dropout=0.3)
    Ws = [w.copy() for w in net.weights]
    bs = [b.copy() for b in net.biases]
    recs = []
    train(net, optimizers.get("sgd", lr=0.1), X, y, epochs=1, batch_size=8, log_every=1, callback=recs.append,
          probe_X=X[:20], probe_y=y[:20])
    zs, _, _ = ref.forward(Ws, bs, X[:20], "tanh")
    assert recs[0].probe_loss == pytest.approx(ref.loss_and_dz("cross_entropy", zs[-1], y[:20])[0], rel=1e-12)
    assert recs[0].probe_accuracy == pytest.approx(np.mean(np.argmax(zs[-1], axis=1) == y[:20]), abs=1e-15)
    assert all(math.isfinite(r.probe_loss) for r in recs)
    assert len({r.probe_loss for r in recs}) == len(recs)  # it follows training


def test_probe_batch_default_and_explicit():
    X, y = _data(300)
    rec_default, rec_explicit, rec_first = Recorder(), Recorder(), Recorder()
    for rec, kw in ((rec_default, {}), (rec_explicit, {"probe_X": X[:256], "probe_y": y[:256]}),
                    (rec_first, {"probe_X": X[:10], "probe_y": y[:10]})):
        net = MLP(5, [6], 3, seed=0)
        train(net, optimizers.get("sgd", lr=0.1), X, y, epochs=1, batch_size=100, log_every=1, callback=rec, **kw)
    for ra, rb in zip(rec_default.records, rec_explicit.records):
        for k in STATS:
            np.testing.assert_array_equal(ra["stats"][k], rb["stats"][k])
    assert not np.array_equal(rec_default.records[0]["stats"]["grad_norm"], rec_first.records[0]["stats"]["grad_norm"])


def test_histogram_steps():
    X, y = _data(50)
    net = MLP(5, [6], 3, seed=0)
    rec = Recorder()
    train(net, optimizers.get("sgd", lr=0.1), X, y, epochs=2, batch_size=10, log_every=2, callback=rec,
          histogram_steps=(0, 4))
    assert [(r["step"], r["hist"]) for r in rec.records] == [(0, True), (2, False), (4, True), (6, False),
                                                            (8, False), (10, True)]  # and the final step


def test_zero_epochs():
    X, y = _data(20)
    net = MLP(5, [6], 3, seed=0)
    w0 = [w.copy() for w in net.weights]
    rec = Recorder()
    res = train(net, optimizers.get("sgd"), X, y, epochs=0, batch_size=4, callback=rec)
    assert res.steps == 0 and res.train_losses == [] and rec.steps == [0] and rec.records[0]["final"]
    for w, v in zip(net.weights, w0):
        np.testing.assert_array_equal(w, v)


def test_batch_larger_than_dataset():
    X, y = _data(7)
    net = MLP(5, [6], 3, seed=0)
    res = train(net, optimizers.get("sgd"), X, y, epochs=3, batch_size=100)
    assert res.steps == 3


# --------------------------------------------------------------- determinism
def _full_run(seed, dropout=0.3, dtype="float64", act="tanh"):
    X, y = _data(60, seed=11)
    net = MLP(5, [12, 12, 12], 3, activation=act, dropout=dropout, seed=seed, sigma_b=0.1, dtype=dtype)
    rec = Recorder()
    res = train(net, optimizers.get("adam", lr=0.01), X, y, epochs=3, batch_size=8, log_every=4, callback=rec,
                histogram_steps=(0, 8))
    return net, res, rec


def test_same_seed_bit_identical():
    n1, r1, c1 = _full_run(5)
    n2, r2, c2 = _full_run(5)
    for p, q in zip(n1.weights + n1.biases, n2.weights + n2.biases):
        np.testing.assert_array_equal(p, q)
    assert r1.train_losses == r2.train_losses
    assert c1.steps == c2.steps
    for a, b in zip(c1.records, c2.records):
        for k in STATS:
            np.testing.assert_array_equal(a["stats"][k], b["stats"][k])


def test_different_seed_differs():
    n1, r1, c1 = _full_run(5)
    n2, r2, c2 = _full_run(6)
    assert not np.array_equal(n1.weights[0], n2.weights[0])
    assert r1.train_losses != r2.train_losses
    assert not np.array_equal(c1.records[0]["stats"]["grad_norm"], c2.records[0]["stats"]["grad_norm"])


def test_shuffle_seed_only_changes_order():
    X, y = _data(40)
    nets = [MLP(5, [6], 3, seed=1) for _ in range(3)]
    r0 = train(nets[0], optimizers.get("sgd", lr=0.1), X, y, epochs=1, batch_size=8)
    r1 = train(nets[1], optimizers.get("sgd", lr=0.1), X, y, epochs=1, batch_size=8, seed=1)
    r2 = train(nets[2], optimizers.get("sgd", lr=0.1), X, y, epochs=1, batch_size=8, seed=2)
    assert r0.train_losses == r1.train_losses  # default shuffle seed is the network's seed
    assert r0.train_losses != r2.train_losses


# ------------------------------------------------------------------- float32
def test_float32_everywhere():
    X, y = _data(30)
    net = MLP(5, [8, 8], 3, dtype="float32", seed=0, dropout=0.1, sigma_b=0.1)
    assert all(p.dtype == np.float32 for p in net.weights + net.biases)
    loss, grads = net.loss_and_grads(X, y, deltas=True)
    assert isinstance(loss, float)
    for arr in grads.weights + grads.biases + grads.deltas + list(net.last_masks):
        assert arr.dtype == np.float32
    assert net.forward(X).dtype == np.float32
    res = train(net, optimizers.get("adam", lr=0.01), X, y, epochs=2, batch_size=10)
    assert res.steps == 6 and all(math.isfinite(v) for v in res.train_losses)
    assert all(p.dtype == np.float32 for p in net.weights + net.biases)


@pytest.mark.parametrize("act", sorted(nncore.activations.REGISTRY))
@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
def test_float32_close_to_float64(ref, act, loss):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 5))
    y = ref.make_targets(loss, rng, 16, 3)
    n64 = MLP(5, [8, 8, 8], 3, activation=act, loss=loss, seed=3)
    n32 = MLP(5, [8, 8, 8], 3, activation=act, loss=loss, seed=3, dtype="float32")
    l64, g64 = n64.loss_and_grads(X, y)
    g64 = [g.copy() for g in g64.weights]
    l32, g32 = n32.loss_and_grads(X, y)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for a, b in zip(g32.weights, g64):
        assert a.dtype == np.float32
        assert np.max(np.abs(a - b)) <= 1e-4 * max(np.max(np.abs(b)), 1e-3)


def test_float32_dtype_spellings():
    for spelling in ("float32", np.float32, np.dtype("float32")):
        assert MLP(2, [3], 2, dtype=spelling).weights[0].dtype == np.float32
    assert MLP(2, [3], 2).weights[0].dtype == np.float64


# ----------------------------------------------------------------- divergence
def test_divergence_is_reported_without_warnings_or_exceptions():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 10))
    y = rng.integers(0, 4, size=64)
    net = MLP(10, [32] * 20, 4, activation="relu", init="normal", init_params={"sigma_w": 10}, seed=0)
    rec = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = train(net, optimizers.get("sgd", lr=1.0), X, y, epochs=20, batch_size=16, log_every=1, callback=rec)
    assert res.diverged_step is not None and res.diverged
    assert isinstance(res.diverged_step, int)
    assert 0 <= res.diverged_step < n_steps(64, 16, 20)
    assert res.steps == res.diverged_step
    assert len(res.train_losses) == res.diverged_step + 1
    assert all(math.isfinite(v) for v in res.train_losses[:-1])
    assert rec.steps == list(range(res.diverged_step + 1))


def test_divergence_on_gradient_norm_overflow_with_finite_loss():
    """Loss log(3) is finite, but dL/dW_2 ~ 1e308 makes the gradient norm overflow: that stops training too."""
    X = np.ones((8, 5))
    y = np.arange(8) % 3
    net = MLP(5, [4], 3, activation="identity", seed=0)
    net.weights[0][...] = 3e307   # hidden activations 1.5e308, finite
    net.weights[1][...] = 0.0     # logits 0: loss log(3)
    w_before = [w.copy() for w in net.weights]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = train(net, optimizers.get("sgd"), X, y, epochs=2, batch_size=8)
    assert res.diverged_step == 0 and res.steps == 0
    assert res.train_losses == [pytest.approx(math.log(3.0), rel=1e-12)]
    for w, v in zip(net.weights, w_before):  # no update was applied
        np.testing.assert_array_equal(w, v)


def test_train_exports():
    assert nncore.train is train
    assert {"MLP", "Grads", "STATS", "train"} <= set(nncore.__all__)


# ------------------------------------- divergence, histogram bins and steps, bad targets
def _axy(n_in=3, n_out=2, B=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), np.arange(B) % n_out


def _norm64(arrays):
    """sqrt of the summed squares of the entries, in float64."""
    return math.sqrt(sum(float(np.sum(np.asarray(a, dtype=np.float64) ** 2)) for a in arrays))


def _overflowing_net():
    """A float32 net with finite loss and gradients whose sum of squares is beyond float32's
    range (norm > 1.8e19)."""
    net = MLP(4, [8, 8, 8], 2, activation="identity", loss="mse", dtype="float32", seed=0,
              init="constant", init_params={"value": 30.0})
    return net, np.full((4, 4), 30.0), np.zeros((4, 2))


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
    assert all(np.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize("bins", [0, -1, 2.5, "64"])
@pytest.mark.parametrize("histogram_steps", [(20,), ()], ids=["hist_at_20", "no_hist_steps"])
def test_train_rejects_bad_histogram_bins_before_any_update(bins, histogram_steps):
    X, y = _axy()
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


def test_histogram_steps_off_the_log_grid_are_reported():
    X, y = _axy()
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


def test_train_rejects_float32_mse_targets_beyond_float32_range_before_any_update():
    net = MLP(3, [4], 2, loss="mse", dtype="float32", seed=0)
    X, y = np.random.default_rng(0).normal(size=(8, 3)), np.full((8, 2), 1e39)
    before = [p.copy() for p in net.parameters()]
    calls = []
    with pytest.raises(ValueError, match="target"):
        train(net, optimizers.get("sgd"), X, y, epochs=1, batch_size=8, callback=calls.append)
    assert calls == []
    for p, p0 in zip(net.parameters(), before):
        np.testing.assert_array_equal(p, p0)


# ------------------------------------------------- pre-clip gradient norms and clipping
def _pre_clip_norms(net, opt, X, y, epochs, batch_size):
    """The manual loop's global norm of each batch's gradients (np.linalg.norm), before the step."""
    rng, norms = generator(net.seed, "shuffle"), []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for s in range(0, len(X), batch_size):
            idx = order[s:s + batch_size]
            _, grads = net.loss_and_grads(X[idx], y[idx], train=True)
            norms.append(np.linalg.norm(np.concatenate([g.ravel() for g in grads.parameters()])))
            opt.step(net, grads)
    return norms


@pytest.mark.parametrize("clip,expected_fraction", [(None, 0.0), (1e-3, 1.0), (1e6, 0.0)])
def test_every_steps_norm_before_clipping_and_the_clipped_fraction(clip, expected_fraction):
    X, y = _data(23)
    kw = {} if clip is None else {"clip_norm": clip}
    res = train(MLP(5, [7], 3, seed=2), optimizers.get("sgd", lr=0.1, **kw), X, y, epochs=2, batch_size=5)
    manual = _pre_clip_norms(MLP(5, [7], 3, seed=2), optimizers.get("sgd", lr=0.1, **kw), X, y, 2, 5)
    assert len(res.grad_norms) == len(res.clipped) == res.steps == 10
    np.testing.assert_allclose(res.grad_norms, manual, rtol=1e-12)
    assert min(res.grad_norms) > 1e-3  # so clip_norm=1e-3 clips every step, 1e6 none
    assert res.clipped_fraction == expected_fraction


def test_clipped_fraction_counts_the_steps_above_the_threshold():
    X, y = _data(40)
    free = train(MLP(5, [7], 3, seed=3), optimizers.get("sgd", lr=0.1), X, y, epochs=3, batch_size=4)
    threshold = float(np.median(free.grad_norms))
    res = train(MLP(5, [7], 3, seed=3), optimizers.get("sgd", lr=0.1, clip_norm=threshold), X, y, epochs=3,
                batch_size=4)
    # torch's rule: clipped when clip_norm / (norm + 1e-6) < 1
    assert res.clipped == [threshold < n + 1e-6 for n in res.grad_norms]
    assert 0.0 < res.clipped_fraction < 1.0


def test_recurrent_network_trains_in_the_same_loop():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6, 3))
    y = X[:, :, 0].sum(axis=1, keepdims=True)
    net = nncore.RNN(3, 8, 1, cell="lstm", loss="mse", seed=1)
    rec = Recorder()
    res = train(net, optimizers.get("adam", lr=0.02, clip_norm=1.0), X, y, epochs=5, batch_size=8,
                log_every=5, callback=rec, histogram_steps=[0])
    assert res.steps == 15 and len(res.grad_norms) == 15 and not res.diverged
    assert res.train_losses[-1] < res.train_losses[0]
    assert rec.records[0]["stats"]["delta_ms"].shape == (1, 6) and rec.records[0]["hist"]
    with pytest.raises(ValueError, match="jacobian_inputs needs a network with an input-output Jacobian"):
        train(net, optimizers.get("sgd"), X, y, epochs=1, batch_size=8, jacobian_inputs=2)


def test_diverging_step_keeps_its_pre_clip_norm():
    """The gradient norm that overflows is recorded, with the steps before it (clip_norm does not hide it)."""
    X = np.ones((8, 5))
    y = np.arange(8) % 3
    net = MLP(5, [4], 3, activation="identity", seed=0)
    net.weights[0][...] = 3e307   # hidden activations 1.5e308, finite; logits 0
    net.weights[1][...] = 0.0
    res = train(net, optimizers.get("sgd", clip_norm=1.0), X, y, epochs=2, batch_size=8)
    assert res.diverged_step == 0 and res.grad_norms == [math.inf] and res.clipped == []
    assert math.isnan(res.clipped_fraction)


def test_jacobian_probes_at_step_zero_and_the_last_step_only():
    from nncore import MLP, optimizers, train
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), np.arange(40) % 3
    net = MLP(4, [5, 5], 3, seed=0)
    seen = {}
    train(net, optimizers.get("sgd", lr=0.1), X, y, epochs=2, batch_size=10, log_every=3, jacobian_inputs=2,
          callback=lambda p: seen.__setitem__(p.step, p.jacobian))
    assert sorted(s for s, j in seen.items() if j is not None) == [0, 8]
    assert seen[8].layer_sv_mean.shape == (3,) and np.isfinite(seen[8].stats["sv2_mean"])
    bn = MLP(4, [5, 5], 3, norm="batch", seed=0)
    got = []
    train(bn, optimizers.get("sgd", lr=0.1), X, y, epochs=1, batch_size=10, jacobian_inputs=2,
          callback=lambda p: got.append(p.jacobian))
    assert got and all(j is None for j in got)  # BatchNorm rows are coupled: no Jacobian probe
    with pytest.raises(ValueError, match="jacobian_inputs"):
        train(net, optimizers.get("sgd"), X, y, epochs=1, batch_size=10, jacobian_inputs=-1)
