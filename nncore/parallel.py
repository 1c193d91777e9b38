"""Elementwise work split over threads, as torch's intra-op parallelism does.

BLAS already runs the matrix products on several cores; the rest of a step (the
activation, its derivative, the optimizer update) is elementwise, and NumPy's
ufuncs release the GIL, so splitting such work into contiguous parts and running
the parts on threads uses the other cores too. Results are bit-identical to a
single call: every element gets the same operations in the same order.

The thread count defaults to ``$OMP_NUM_THREADS``, else the number of CPUs: the
same as the BLAS's, so a sweep that pins one BLAS thread per worker process runs
one thread here too. One exception: after each matrix product, OpenBLAS's idle
threads spin for about 0.1 s (2^28 cycles) before they sleep, and take the cores
that these threads need (measured: a training step got slower, not faster). So
when NumPy's BLAS is OpenBLAS, the default is one thread unless
``$OPENBLAS_THREAD_TIMEOUT`` (read by OpenBLAS when NumPy is imported: log2 of
the cycles to spin, 4 to 30) is at most ``SHORT_SPIN``. ``set_num_threads(n)``
overrides the default.

Work of fewer than ``MIN_PART`` elements per thread runs in the calling thread:
handing a part to another thread costs some 10-30 microseconds, and more right
after a matrix product (the other core is then waking from BLAS). Work whose cost
per element is known uses ``min_part_for``: a part must hold ``PART_NS`` of work
(measured in a step of tanh layers 128 x 256: split, float64 forward 12.6 vs 17.2 ms;
float32 5.2 vs 4.7 ms, where each half would take some 50 us).
"""
import os
import threading

import numpy as np

MIN_PART = 8192  # elements per thread below which splitting costs more than it saves
PART_NS = 100_000  # rough work per thread (ns) below which splitting costs more than it saves
SHORT_SPIN = 10  # OPENBLAS_THREAD_TIMEOUT at or below which OpenBLAS leaves the cores free

_lock = threading.Lock()  # guards _threads, _workers and _stale
_busy = threading.Lock()  # held by the run() that is using the workers
_threads = None
_workers = []
_stale = []  # workers dropped by set_num_threads while a run() had the pool


def _env_int(name):
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return None


def _blas_spins():
    """True when NumPy's BLAS is OpenBLAS with idle threads spinning longer than SHORT_SPIN."""
    try:
        name = np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    except (AttributeError, KeyError, TypeError):
        return False
    timeout = _env_int("OPENBLAS_THREAD_TIMEOUT")
    return "openblas" in str(name).lower() and (timeout is None or timeout > SHORT_SPIN)


def _default_threads():
    if _blas_spins():
        return 1
    n = _env_int("OMP_NUM_THREADS")
    return n if n is not None and n >= 1 else (os.cpu_count() or 1)


def num_threads():
    """Threads used for elementwise work (>= 1)."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_num_threads(n):
    """Use ``n`` threads (an integer >= 1) for elementwise work from now on."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of threads must be an integer >= 1, got {n!r}")
    with _lock:
        _threads = int(n)
        _stale.extend(_workers)
        _workers.clear()
    # a run() using the pool (in another thread, or the one calling this) retires them itself
    if _busy.acquire(blocking=False):
        try:
            _retire_stale()
        finally:
            _busy.release()


class _Worker:
    """A pool thread that sleeps on a lock until it is given a part: two lock hand-offs per part,
    where concurrent.futures takes a queue, a future and a condition (measured: the float64 Adam
    step at 20/256/128 4-7% faster, its forward pass 10%; other shapes 1-2%)."""

    def __init__(self):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task, self.error, self._retired = None, None, False
        threading.Thread(target=self._loop, name="nncore", daemon=True).start()

    def _loop(self):
        while True:
            self._go.acquire()
            task, self._task = self._task, None
            if task is None:  # woken by retire()
                return
            fn, lo, hi, err, call = task
            try:
                with np.errstate(call=call, **err):
                    fn(lo, hi)
            except BaseException as exc:  # noqa: B902 - handed to the caller by join()
                self.error = exc
            task = fn = None  # keep nothing of the caller's alive while asleep
            self._done.release()
            if self._retired:
                return

    def start(self, task):
        self._task, self.error = task, None
        self._go.release()

    def join(self):
        """Wait for the part; its exception, or None."""
        self._done.acquire()
        error, self.error = self.error, None
        return error

    def retire(self):
        """End the thread: now if it is idle, else after its part (never reuse it after this)."""
        self._retired = True
        try:
            self._go.release()  # wakes it if asleep; if a part is pending, _go is already free
        except RuntimeError:
            pass


def _get_workers():
    with _lock:
        while len(_workers) < num_threads() - 1:
            _workers.append(_Worker())
        return list(_workers)


def _retire_stale():  # with _busy held: no run() can start a stale worker any more
    with _lock:
        stale, _stale[:] = list(_stale), []
    for worker in stale:
        worker.retire()


def _forget_pool():  # a forked child has none of the parent's threads
    global _lock, _busy, _workers, _stale
    _lock, _busy, _workers, _stale = threading.Lock(), threading.Lock(), [], []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def bounds(n, parts, align=1):
    """``parts`` contiguous ranges [(lo, hi), ...] covering range(n); inner boundaries are
    multiples of ``align``."""
    if n <= 0:
        return [(0, 0)]
    step = -(-n // parts)
    step = -(-step // align) * align
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def n_parts(n_elements, limit=None, min_part=None):
    """How many threads work of ``n_elements`` elements is worth (at most ``limit``), at
    ``min_part`` elements (default MIN_PART) per thread at least."""
    parts = min(num_threads(), max(1, n_elements // (min_part or MIN_PART)))
    return parts if limit is None else max(1, min(parts, limit))


def min_part_for(ns_per_element):
    """The smallest part worth a thread, in elements, for work of ``ns_per_element`` each."""
    return max(1, int(PART_NS / ns_per_element))


def run(fn, ranges):
    """Call ``fn(lo, hi)`` for every (lo, hi) in ``ranges``: the first in this thread, the
    others on the pool, concurrently (ranges beyond the pool's size also in this thread).
    Returns when all are done; re-raises the first error. The caller's NumPy error state
    (np.errstate) applies in every thread. While another thread's run() (or an enclosing
    one) has the pool, every range runs in this thread: the same results, serially."""
    if len(ranges) <= 1 or num_threads() == 1 or not _busy.acquire(blocking=False):
        for lo, hi in ranges:
            fn(lo, hi)
        return
    workers, joined = [], False
    try:
        err, call = np.geterr(), np.geterrcall()
        workers = _get_workers()[:len(ranges) - 1]
        for worker, (lo, hi) in zip(workers, ranges[1:]):
            worker.start((fn, lo, hi, err, call))
        errors = []
        for lo, hi in [ranges[0], *ranges[1 + len(workers):]]:
            try:
                fn(lo, hi)
            except BaseException as exc:  # noqa: B902 - re-raised below, once no part is still running
                errors.append(exc)
        errors += [e for e in (worker.join() for worker in workers) if e is not None]
        joined = True
    finally:
        try:
            if not joined:  # interrupted while waiting (Ctrl-C): parts may still run, and their
                with _lock:  # late completions must not be taken by a later run: retire them
                    _workers[:] = [w for w in _workers if w not in workers]
                    _stale.extend(workers)
            _retire_stale()
        finally:
            _busy.release()
    if errors:
        raise errors[0]


def split_rows(fn, n_rows, n_elements, min_part=None):
    """``fn(lo, hi)`` over row ranges of an array of ``n_rows`` rows and ``n_elements``
    elements, split over as many threads as the size is worth (see n_parts)."""
    parts = n_parts(n_elements, limit=n_rows, min_part=min_part)
    if parts == 1:
        fn(0, n_rows)
    else:
        run(fn, bounds(n_rows, parts))
