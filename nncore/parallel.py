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
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

MIN_PART = 8192  # elements per thread below which splitting costs more than it saves
PART_NS = 100_000  # rough work per thread (ns) below which splitting costs more than it saves
SHORT_SPIN = 10  # OPENBLAS_THREAD_TIMEOUT at or below which OpenBLAS leaves the cores free

_lock = threading.Lock()
_threads = None
_pool = None


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
    others on the pool, concurrently. Returns when all are done; re-raises their errors.
    The caller's NumPy error state (np.errstate) applies in every thread."""
    if len(ranges) == 1 or num_threads() == 1:
        for lo, hi in ranges:
            fn(lo, hi)
        return
    err, call = np.geterr(), np.geterrcall()

    def task(lo, hi):
        with np.errstate(call=call, **err):
            fn(lo, hi)

    pool = _get_pool()
    futures = [pool.submit(task, lo, hi) for lo, hi in ranges[1:]]
    error = None
    try:
        fn(*ranges[0])
    except BaseException as exc:  # noqa: B902 - re-raised below, once no part is still running
        error = exc
    wait(futures)
    for f in futures:
        if error is None and f.exception() is not None:
            error = f.exception()
    if error is not None:
        raise error


def split_rows(fn, n_rows, n_elements, min_part=None):
    """``fn(lo, hi)`` over row ranges of an array of ``n_rows`` rows and ``n_elements``
    elements, split over as many threads as the size is worth (see n_parts)."""
    parts = n_parts(n_elements, limit=n_rows, min_part=min_part)
    if parts == 1:
        fn(0, n_rows)
    else:
        run(fn, bounds(n_rows, parts))
