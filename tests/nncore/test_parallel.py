"""nncore.parallel: range splitting, thread-count setting and default, error state and
exceptions in worker threads; the threaded paths of the network and the optimizers give
bit-identical results to one thread (with tiny parts and blocks that straddle layers)."""
import os
import threading
import time
import warnings

import numpy as np
import pytest

from nncore import MLP, optimizers, parallel

pytestmark = pytest.mark.usefixtures("single_thread_blas")

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "softsign", "identity")


@pytest.fixture(autouse=True)
def restore_threads():
    """Every test leaves the thread count as it found it (other tests depend on it)."""
    original = parallel.num_threads()
    yield original
    parallel.set_num_threads(original)
    assert parallel.num_threads() == original


@pytest.fixture
def tiny_parts(monkeypatch):
    """Split even the smallest work: one element per part at least, optimizer blocks of 7 float64
    or 14 float32 elements (so that blocks straddle the boundaries between layers)."""
    monkeypatch.setattr(parallel, "MIN_PART", 1)
    monkeypatch.setattr(parallel, "PART_NS", 1e-9)
    monkeypatch.setattr(optimizers, "BLOCK_BYTES", 56)


@pytest.fixture
def spy(monkeypatch):
    """Records the number of ranges of every parallel.run call and the threads that ran them."""
    calls, idents = [], set()
    original = parallel.run

    def run(fn, ranges):
        calls.append(len(ranges))

        def recorded(lo, hi):
            idents.add(threading.get_ident())
            fn(lo, hi)
        original(recorded, ranges)

    monkeypatch.setattr(parallel, "run", run)

    class Spy:
        def reset(self):
            calls.clear()
            idents.clear()
    s = Spy()
    s.calls, s.idents = calls, idents
    return s


# ------------------------------------------------------------------ bounds
@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 64, 100, 101, 1000, 8193])
@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("align", [1, 2, 3, 8, 64])
def test_bounds_cover_range_contiguously(n, parts, align):
    rs = parallel.bounds(n, parts, align)
    assert rs[0][0] == 0 and rs[-1][1] == n
    assert 1 <= len(rs) <= parts
    for (lo, hi), (lo2, _) in zip(rs, rs[1:]):
        assert hi == lo2  # contiguous, no gap or overlap
    for lo, hi in rs:
        assert lo < hi  # no empty range when n >= 1
    for _, hi in rs[:-1]:
        assert hi % align == 0  # inner boundaries aligned
    covered = np.concatenate([np.arange(lo, hi) for lo, hi in rs])
    np.testing.assert_array_equal(covered, np.arange(n))


def test_bounds_examples():
    assert parallel.bounds(10, 2) == [(0, 5), (5, 10)]
    assert parallel.bounds(10, 3) == [(0, 4), (4, 8), (8, 10)]
    assert parallel.bounds(10, 3, align=4) == [(0, 4), (4, 8), (8, 10)]
    assert parallel.bounds(10, 2, align=4) == [(0, 8), (8, 10)]
    assert parallel.bounds(3, 8) == [(0, 1), (1, 2), (2, 3)]  # fewer ranges than parts
    assert parallel.bounds(5, 1) == [(0, 5)]


# ----------------------------------------------------------------- n_parts
def test_n_parts_respects_min_part_limit_and_threads():
    parallel.set_num_threads(4)
    assert parallel.n_parts(100, min_part=10) == 4
    assert parallel.n_parts(39, min_part=10) == 3
    assert parallel.n_parts(20, min_part=10) == 2
    assert parallel.n_parts(19, min_part=10) == 1
    assert parallel.n_parts(5, min_part=10) == 1
    assert parallel.n_parts(0, min_part=10) == 1
    assert parallel.n_parts(100, min_part=10, limit=3) == 3
    assert parallel.n_parts(100, min_part=10, limit=1) == 1
    assert parallel.n_parts(100, min_part=10, limit=0) == 1  # always at least one part
    assert parallel.n_parts(100, min_part=10, limit=10) == 4  # the thread count still caps it
    # default min_part is MIN_PART
    assert parallel.n_parts(parallel.MIN_PART - 1) == 1
    assert parallel.n_parts(2 * parallel.MIN_PART) == 2
    assert parallel.n_parts(100 * parallel.MIN_PART) == 4
    parallel.set_num_threads(1)
    assert parallel.n_parts(100 * parallel.MIN_PART) == 1
    assert parallel.n_parts(100, min_part=1, limit=50) == 1


def test_n_parts_reads_min_part_at_call_time(monkeypatch):
    parallel.set_num_threads(3)
    monkeypatch.setattr(parallel, "MIN_PART", 1)
    assert parallel.n_parts(2) == 2
    assert parallel.n_parts(1000) == 3


# ---------------------------------------------------------- set_num_threads
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, False, "2", None, 2.0, np.float64(2.0)])
def test_set_num_threads_rejects_non_positive_integers(bad):
    before = parallel.num_threads()
    with pytest.raises(ValueError, match="number of threads"):
        parallel.set_num_threads(bad)
    assert parallel.num_threads() == before


def test_set_num_threads_accepts_integers():
    parallel.set_num_threads(np.int64(2))
    assert parallel.num_threads() == 2 and type(parallel.num_threads()) is int
    parallel.set_num_threads(3)
    assert parallel.num_threads() == 3


def test_run_is_concurrent_and_pool_follows_thread_count():
    """All ranges run at the same time (a barrier of len(ranges) parties is passed), also after
    the thread count grew: the pool is rebuilt with the new size."""
    for n in (2, 3, 2):
        parallel.set_num_threads(n)
        barrier = threading.Barrier(n, timeout=20)
        seen, idents = [], set()

        def fn(lo, hi):
            barrier.wait()
            seen.append((lo, hi))
            idents.add(threading.get_ident())

        parallel.run(fn, parallel.bounds(n * 10, n))
        assert sorted(seen) == parallel.bounds(n * 10, n)
        assert len(idents) == n
        assert threading.get_ident() in idents  # the first range runs in the caller


def test_run_single_range_runs_in_caller():
    got = []
    parallel.run(lambda lo, hi: got.append((lo, hi, threading.get_ident())), [(0, 5)])
    assert got == [(0, 5, threading.get_ident())]


@pytest.mark.parametrize("n_rows,n_elements,min_part,want", [
    (10, 100, 10, 3), (10, 100, 50, 2), (10, 100, 200, 1), (2, 1000, 1, 2), (1, 1000, 1, 1)])
def test_split_rows_covers_rows(n_rows, n_elements, min_part, want):
    parallel.set_num_threads(3)
    got = []
    parallel.split_rows(lambda lo, hi: got.append((lo, hi)), n_rows, n_elements, min_part=min_part)
    got.sort()
    assert len(got) == want
    assert got[0][0] == 0 and got[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in zip(got, got[1:]))


# ------------------------------------------------- errstate and exceptions
def _overflow_in_worker(record):
    def fn(lo, hi):
        record.append(threading.get_ident())
        if lo == 1:  # the second range: runs on a pool thread
            np.exp(np.full(3, 1000.0))
    return fn


def test_errstate_raise_propagates_into_workers():
    parallel.set_num_threads(2)
    record = []
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError, match="overflow"):
            parallel.run(_overflow_in_worker(record), [(0, 1), (1, 2)])
    assert len(set(record)) == 2  # really ran on another thread


def test_errstate_ignore_propagates_into_workers():
    parallel.set_num_threads(2)
    record = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):
            parallel.run(_overflow_in_worker(record), [(0, 1), (1, 2)])
    assert len(set(record)) == 2


def test_errstate_warn_in_worker_emits_runtime_warning():
    """The positive control of the test above: with over="warn" the worker does warn."""
    parallel.set_num_threads(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="warn"):
            with pytest.raises(RuntimeWarning, match="overflow"):
                parallel.run(_overflow_in_worker([]), [(0, 1), (1, 2)])


def test_errstate_in_caller_is_not_changed_by_run():
    parallel.set_num_threads(2)
    with np.errstate(over="raise", invalid="ignore"):
        before = np.geterr()
        parallel.run(lambda lo, hi: None, [(0, 1), (1, 2)])
        assert np.geterr() == before


@pytest.mark.parametrize("threads", [2, 3])
def test_worker_exception_is_reraised(threads):
    parallel.set_num_threads(threads)
    where = []

    def fn(lo, hi):
        if lo == threads - 1:  # the last range: a pool thread
            where.append(threading.get_ident())
            raise KeyError(f"boom in range {lo}")

    with pytest.raises(KeyError, match="boom in range"):
        parallel.run(fn, [(k, k + 1) for k in range(threads)])
    assert where and where[0] != threading.get_ident()


def test_caller_range_exception_is_reraised_after_workers_finish():
    parallel.set_num_threads(2)
    done = []

    def fn(lo, hi):
        if lo == 0:
            raise ZeroDivisionError("caller range")
        done.append(lo)

    with pytest.raises(ZeroDivisionError, match="caller range"):
        parallel.run(fn, [(0, 1), (1, 2)])
    assert done == [1]  # run waited for the worker before re-raising


# ------------------------------------------------------ default thread count
def test_installed_numpy_uses_openblas():
    name = np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    assert "openblas" in str(name).lower(), name


@pytest.mark.parametrize("timeout,spins", [(None, True), ("28", True), ("11", True), ("30", True),
                                           ("10", False), ("4", False), ("junk", True)])
def test_blas_spins_reads_openblas_thread_timeout(monkeypatch, timeout, spins):
    if timeout is None:
        monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", timeout)
    assert parallel.SHORT_SPIN == 10
    assert parallel._blas_spins() is spins


def test_default_threads_short_spin_uses_omp_num_threads(monkeypatch):
    monkeypatch.setattr(parallel, "_threads", None)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert parallel.num_threads() == 3


def test_default_threads_short_spin_without_omp_uses_cpu_count(monkeypatch):
    monkeypatch.setattr(parallel, "_threads", None)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert parallel.num_threads() == 5


@pytest.mark.parametrize("timeout", [None, "28"])
def test_default_threads_is_one_when_openblas_spins(monkeypatch, timeout):
    monkeypatch.setattr(parallel, "_threads", None)
    if timeout is None:
        monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", timeout)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert parallel._blas_spins()  # the real check, on the installed NumPy (scipy-openblas)
    assert parallel.num_threads() == 1


@pytest.mark.parametrize("omp,cpus,want", [("3", 8, 3), ("1", 8, 1), (None, 6, 6), ("0", 6, 6),
                                           ("-2", 6, 6), ("x", 6, 6), (None, None, 1)])
def test_default_threads_without_openblas(monkeypatch, omp, cpus, want):
    monkeypatch.setattr(parallel, "_threads", None)
    monkeypatch.setattr(parallel, "_blas_spins", lambda: False)
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert parallel.num_threads() == want


def test_default_is_computed_once(monkeypatch):
    monkeypatch.setattr(parallel, "_threads", None)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert parallel.num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert parallel.num_threads() == 3  # cached until set_num_threads


# -------------------------------------------- bit-identical threaded paths
def _data(n_in=6, n_out=4, B=13, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, n_in))
    y = rng.integers(0, n_out, size=B)
    y[:n_out] = np.arange(n_out)
    return X, y


def _net(act, dropout=0.0, dtype="float64"):
    return MLP(6, [9, 9, 5], 4, activation=act, init="normal", init_params={"sigma_w": 1.5},
               sigma_b=0.3, dropout=dropout, dtype=dtype, seed=7)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_loss_and_grads_bit_identical_across_threads(tiny_parts, spy, act, dropout, threads):
    X, y = _data()
    results = []
    for n in (1, threads):
        parallel.set_num_threads(n)
        spy.reset()
        net = _net(act, dropout)
        loss, g = net.loss_and_grads(X, y, train=True)
        logits = net.forward(X)
        masks = None if net.last_masks is None else [m.copy() for m in net.last_masks]
        results.append((loss, [a.copy() for a in g.weights + g.biases + g.deltas], logits, masks))
        if n == 1:
            assert not spy.calls  # one thread: nothing handed to the pool
        else:
            assert max(spy.calls) == threads and len(spy.idents) >= 2
    (l1, g1, z1, m1), (l2, g2, z2, m2) = results
    assert l1 == l2
    assert len(g1) == len(g2) == 3 * 4
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(z1, z2)
    assert (m1 is None) == (dropout == 0.0) == (m2 is None)
    if m1 is not None:
        for a, b in zip(m1, m2):
            np.testing.assert_array_equal(a, b)
        assert any(np.any(a == 0) for a in m1)


OPT_CASES = [(name, {}) for name in optimizers.REGISTRY] + [
    ("sgd", {"lr": 0.1}),
    ("adam", {"lr": 0.01, "amsgrad": True}),
    ("rmsprop", {"centered": True, "momentum": 0.9}),
    ("adam", {"lr": 0.01, "weight_decay": 0.05, "clip_norm": 0.05}),
    ("momentum", {"lr": 0.05, "dampening": 0.3, "weight_decay": 0.01, "clip_norm": 0.05}),
    ("nesterov", {"lr": 0.05, "weight_decay": 0.1}),
    ("adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 0.1, "clip_norm": 0.05}),
    ("adadelta", {"weight_decay": 0.01, "clip_norm": 0.05}),
    ("rmsprop", {"centered": True, "momentum": 0.5, "weight_decay": 0.01, "clip_norm": 0.05}),
]


def _trajectory(name, kw, steps=10, act="tanh", dropout=0.2):
    X, y = _data()
    net = _net(act, dropout)
    opt = optimizers.get(name, **kw)
    weights, norms, losses = [], [], []
    for _ in range(steps):
        loss, g = net.loss_and_grads(X, y)
        opt.step(net, g)
        losses.append(loss)
        weights.append([p.copy() for p in net.weights + net.biases])
        norms.append(net.update_norms.copy())
    return net, opt, losses, weights, norms


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("name,kw", OPT_CASES, ids=[f"{n}-{'-'.join(kw)}" for n, kw in OPT_CASES])
def test_optimizer_trajectories_bit_identical_across_threads(tiny_parts, spy, name, kw, threads):
    parallel.set_num_threads(1)
    net1, opt1, loss1, w1, n1 = _trajectory(name, kw)
    spy.reset()
    parallel.set_num_threads(threads)
    net2, opt2, loss2, w2, n2 = _trajectory(name, kw)
    assert threads in spy.calls and len(spy.idents) >= 2  # the optimizer used the threads
    assert len(opt2._layout["blocks"]) > 20  # 7-element blocks: many of them
    assert loss1 == loss2
    for step in range(len(w1)):
        for a, b in zip(w1[step], w2[step]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(n1[step], n2[step])
    assert set(opt1.state) == set(opt2.state)
    for key in opt1.state:
        np.testing.assert_array_equal(opt1.state[key], opt2.state[key])
    # the parameters really moved and update norms are positive
    assert not np.array_equal(w1[-1][0], _net("tanh", 0.2).weights[0])
    assert np.all(n1[-1] > 0)
    if "clip_norm" in kw:
        assert opt1.last_total_norm > kw["clip_norm"]  # clipping was active


UPDATE_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.05, "rmsprop": 0.01,
             "adadelta": 1.0, "adam": 0.01}


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(optimizers.REGISTRY))
def test_update_norms_are_weight_change_norms(tiny_parts, name, threads):
    parallel.set_num_threads(threads)
    X, y = _data()
    net = _net("tanh")
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
    # blocks straddle layers: some block holds parts of two weight matrices
    assert any(len(s) > 1 for s in opt._layout["segs"])


# ------------------------------------------------------------------ edge cases
def test_bounds_of_empty_range():
    assert parallel.bounds(0, 2) == [(0, 0)]


def test_run_several_ranges_with_one_thread():
    parallel.set_num_threads(1)
    seen = []
    parallel.run(lambda lo, hi: seen.append((lo, hi)), [(0, 1), (1, 2)])
    assert sorted(seen) == [(0, 1), (1, 2)]


def test_min_part_for_holds_part_ns_of_work():
    assert parallel.min_part_for(parallel.PART_NS / 1000) == 1000
    assert parallel.min_part_for(10 * parallel.PART_NS) == 1  # never below one element


@pytest.mark.parametrize("dtype, split", [("float64", True), ("float32", False)])
def test_forward_splits_only_layers_worth_it(spy, dtype, split):
    """tanh layers of 128 x 256: a float64 half takes some 250 us (worth a thread), a float32
    half some 50 us (measured slower split than not)."""
    parallel.set_num_threads(2)
    net = MLP(256, [256, 256], 4, activation="tanh", dtype=dtype, seed=0)
    ws = net._workspace(128, "eval")
    spy.reset()
    net._forward(np.ones((128, 256), dtype=dtype), ws, train=False)
    assert (2 in spy.calls) == split


def test_nested_run_runs_serially_in_the_caller():
    """A run() inside a part finds the pool busy: its ranges run in that part's thread."""
    parallel.set_num_threads(2)
    inner = []

    def part(lo, hi):
        parallel.run(lambda a, b: inner.append((lo, a, threading.get_ident())), [(0, 1), (1, 2)])
    parallel.run(part, [(0, 1), (1, 2)])
    assert sorted((lo, a) for lo, a, _ in inner) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for lo in (0, 1):
        assert len({ident for l, _, ident in inner if l == lo}) == 1


def test_runs_from_two_threads_at_once_all_complete():
    parallel.set_num_threads(2)
    out = np.zeros((2, 200_000))

    def caller(row):
        for _ in range(20):
            parallel.run(lambda lo, hi: out[row, lo:hi].__iadd__(1.0), parallel.bounds(out.shape[1], 2))
    threads = [threading.Thread(target=caller, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert np.all(out == 20.0)


def test_more_ranges_than_threads_all_run():
    parallel.set_num_threads(2)
    seen = []
    parallel.run(lambda lo, hi: seen.append((lo, hi, threading.get_ident())), [(i, i + 1) for i in range(5)])
    assert sorted((lo, hi) for lo, hi, _ in seen) == [(i, i + 1) for i in range(5)]
    assert len({ident for _, _, ident in seen}) == 2


def test_a_run_interrupted_while_waiting_leaves_a_working_pool(monkeypatch):
    """KeyboardInterrupt while the caller waits for a part (a Ctrl-C mid-step): the part's
    worker is retired, and the next run gets every part done, none twice."""
    parallel.set_num_threads(2)
    release = threading.Event()
    first = parallel._get_workers()[0]
    original_join = type(first).join

    def interrupted_join(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(type(first), "join", interrupted_join)
    with pytest.raises(KeyboardInterrupt):
        parallel.run(lambda lo, hi: release.wait(5) if lo == 1 else None, [(0, 1), (1, 2)])
    monkeypatch.setattr(type(first), "join", original_join)
    release.set()
    assert first not in parallel._get_workers()
    seen = []
    parallel.run(lambda lo, hi: seen.append((lo, hi)), [(0, 1), (1, 2)])
    assert sorted(seen) == [(0, 1), (1, 2)]


def test_set_num_threads_inside_a_part_does_not_deadlock():
    """Called from a part (caller or worker): it cannot wait for the run() it is inside; the
    run retires the old workers when it is done."""
    parallel.set_num_threads(2)
    result = []

    def part(lo, hi):
        parallel.set_num_threads(2)

    worker = threading.Thread(target=lambda: result.append(parallel.run(part, [(0, 1), (1, 2)])))
    worker.start()
    worker.join(20)
    assert not worker.is_alive() and result == [None]
    seen = []
    parallel.run(lambda lo, hi: seen.append(lo), [(0, 1), (1, 2)])
    assert sorted(seen) == [0, 1]


def test_set_num_threads_repeatedly_leaks_no_threads():
    parallel.set_num_threads(3)
    parallel.run(lambda lo, hi: None, [(0, 1), (1, 2), (2, 3)])
    before = threading.active_count()
    for n in (3, 2, 3, 2, 3) * 4:
        parallel.set_num_threads(n)
        parallel.run(lambda lo, hi: None, [(0, 1), (1, 2), (2, 3)])
    parallel.set_num_threads(3)
    parallel.run(lambda lo, hi: None, [(0, 1), (1, 2), (2, 3)])
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)  # retired workers end as soon as they wake
    assert threading.active_count() <= before
