"""Regression tests for defects a review of the flat-buffer / threads / chunked-probe change
found: copies of Grads, float32 statistics at the extremes, references kept across a
replacement, worker errors and error callbacks, optimizer reuse, tuples, integer input to
unit_spread, and the step counter after a failed step."""
import copy
import threading
import time

import numpy as np
import pytest

from nncore import MLP, Grads, optimizers, parallel, probes


@pytest.fixture(autouse=True)
def restore_threads():
    original = parallel.num_threads()
    yield
    parallel.set_num_threads(original)


def _xy(n_in=5, n_out=4, B=9, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, n_in)), np.arange(B) % n_out


def test_deepcopied_grads_modified_in_place_are_the_ones_applied():
    X, y = _xy()
    net = MLP(5, [7, 7], 4, seed=1)
    _, grads = net.loss_and_grads(X, y)
    kept = copy.deepcopy(grads)
    assert kept.packed() is None  # a copy's views no longer share its flat array
    for g in kept.weights + kept.biases:
        g *= 0.0
    assert optimizers.global_norm(kept) == 0.0
    before = [w.copy() for w in net.weights]
    optimizers.get("sgd", lr=0.5).step(net, kept)
    for w, w0 in zip(net.weights, before):
        np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(net.update_norms, 0.0)


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
    X, y = _xy(8, 4, 32)
    stats = net.probe(X, y)
    ws = net._workspace(32, "probe")
    for l, z in enumerate(ws.z):
        z64 = z.astype(np.float64)
        assert np.isfinite(stats["preact_var"][l])
        assert stats["preact_var"][l] == pytest.approx(z64.var(), rel=1e-10)
        assert stats["preact_mean"][l] == pytest.approx(z64.mean(), rel=1e-10, abs=1e-300)
    if case == "exploding":  # the sum of squares is beyond float32's range: it would be inf there
        assert stats["preact_var"][-2] * ws.z[-2].size > np.finfo(np.float32).max
    else:
        assert 0 < stats["preact_var"][-2] < 1e-40


def test_references_to_other_entries_keep_tracking_after_a_replacement():
    X, y = _xy()
    net = MLP(5, [7, 7], 4, seed=1)
    last = net.weights[-1]
    weights = net.weights
    net.weights[0] = np.zeros_like(net.weights[0])
    _, grads = net.loss_and_grads(X, y)
    optimizers.get("sgd", lr=0.1).step(net, grads)
    assert net.weights is weights and net.weights[-1] is last
    assert np.shares_memory(last, net.flat_parameters())


def test_run_waits_for_every_part_before_raising():
    parallel.set_num_threads(3)
    done = threading.Event()

    def work(lo, hi):
        if lo == 1:
            raise RuntimeError("part 2 failed")
        if lo == 2:
            time.sleep(0.2)
            done.set()

    with pytest.raises(RuntimeError, match="part 2 failed"):
        parallel.run(work, [(0, 1), (1, 2), (2, 3)])
    assert done.is_set()


def test_run_forwards_the_error_callback():
    parallel.set_num_threads(2)
    seen = []

    def handler(kind, flag):
        seen.append((threading.get_ident(), kind))

    def work(lo, hi):
        np.exp(np.full(4, -1000.0))  # underflow

    with np.errstate(under="call", call=handler):
        parallel.run(work, [(0, 1), (1, 2)])
    assert len({ident for ident, _ in seen}) == 2  # called in the caller and in the worker
    assert all("underflow" in kind for _, kind in seen)


def test_optimizer_reused_on_another_architecture_of_the_same_size_is_refused():
    a, b = MLP(3, [4], 2), MLP(5, [3], 2)
    assert a.flat_parameters().size == b.flat_parameters().size
    opt = optimizers.get("adam")
    Xa, ya = _xy(3, 2)
    opt.step(a, a.loss_and_grads(Xa, ya)[1])
    Xb, yb = _xy(5, 2)
    weights = [w.copy() for w in b.weights]
    with pytest.raises(ValueError, match="shapes"):
        opt.step(b, b.loss_and_grads(Xb, yb)[1])
    for w, w0 in zip(b.weights, weights):
        np.testing.assert_array_equal(w, w0)


def test_tuple_fields_work():
    X, y = _xy()
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


def test_unit_spread_of_integer_arrays():
    W, b = np.array([[1, 2], [3, 4]]), np.array([0, 1])
    assert probes.unit_spread(W, b) == pytest.approx(probes.unit_spread(W.astype(float), b.astype(float)), rel=1e-15)
    assert probes.unit_spread(W, b) > 0


def test_failed_step_does_not_advance_the_step_counter(monkeypatch):
    X, y = _xy()
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
    g = grads.packed().copy()
    p0 = net.flat_parameters().copy()
    opt.step(net, grads)
    # torch semantics of the first step: buf = g (not (1 - dampening) g)
    np.testing.assert_allclose(net.flat_parameters(), p0 - 0.1 * g, rtol=1e-14)
