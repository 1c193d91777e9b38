"""Elementwise work split over threads, as torch's intra-op parallelism does.

BLAS already runs the matrix products on several cores; the rest of a step (the
activation, its derivative, the optimizer update) is elementwise, and NumPy's
ufuncs release the GIL, so splitting such work into contiguous parts and running
the parts on threads uses the other cores too. Results are bit-identical to a
single call: every element gets the same operations in the same order.

The thread count defaults to ``$OMP_NUM_THREADS``, else the number of CPUs: the
same as OpenBLAS's, so a sweep that pins one BLAS thread per worker process runs
one thread here too. ``set_num_threads(n)`` changes it. Work of fewer than
``MIN_PART`` elements per thread runs in the calling thread: handing a part to
another thread costs some 10-30 microseconds.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MIN_PART = 8192  # elements per thread below which splitting costs more than it saves

_lock = threading.Lock()
_threads = None
_pool = None


def _default_threads():
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        n = 0
    return n if n >= 1 else (os.cpu_count() or 1)


def num_threads():
    """Threads used for elementwise work (>= 1)."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_num_threads(n):
    """Use ``n`` threads (an integer >= 1) for elementwise work from now on."""
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of threads must be an integer >= 1, got {n!r}")
    with _lock:
        _threads = int(n)
        if _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None


def _get_pool():
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=num_threads() - 1, thread_name_prefix="nncore")
        return _pool


def _forget_pool():  # a forked child has none of the parent's threads
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def bounds(n, parts, align=1):
    """``parts`` contiguous ranges [(lo, hi), ...] covering range(n); inner boundaries are
    multiples of ``align``."""
    step = -(-n // parts)
    step = -(-step // align) * align
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)] or [(0, 0)]


def n_parts(n_elements, limit=None):
    """How many threads work of ``n_elements`` elements is worth (at most ``limit``)."""
    parts = min(num_threads(), max(1, n_elements // MIN_PART))
    return parts if limit is None else max(1, min(parts, limit))


def run(fn, ranges):
    """Call ``fn(lo, hi)`` for every (lo, hi) in ``ranges``: the first in this thread, the
    others on the pool, concurrently. Returns when all are done; re-raises their errors.
    The caller's NumPy error state (np.errstate) applies in every thread."""
    if len(ranges) == 1:
        fn(*ranges[0])
        return
    err = np.geterr()

    def task(lo, hi):
        with np.errstate(**err):
            fn(lo, hi)

    pool = _get_pool()
    futures = [pool.submit(task, lo, hi) for lo, hi in ranges[1:]]
    try:
        fn(*ranges[0])
    finally:
        for f in futures:
            f.result()


def split_rows(fn, n_rows, n_elements):
    """``fn(lo, hi)`` over row ranges of an array of ``n_rows`` rows and ``n_elements``
    elements, split over as many threads as the size is worth."""
    parts = n_parts(n_elements, limit=n_rows)
    if parts == 1:
        fn(0, n_rows)
    else:
        run(fn, bounds(n_rows, parts))
