"""The sum of squares of a flat float64 array: the primitive under every norm and variance of
nncore (the probes' statistics, the gradient and update norms).

A BLAS dot is the fastest one (1.2 us for 4096 entries, against 3.6 us for einsum's loop), but
OpenBLAS hands a dot of more than 10,000 entries to its other threads, which costs far more than
the dot when the cores are busy (measured in an unpinned depth-50 job: 0.25 s per probe instead
of 2 ms). Longer arrays therefore go through einsum's loop, which is single-threaded.
"""
import numpy as np

BLAS_DOT_MAX = 8192  # entries; below OpenBLAS's threading threshold for dot


def sum_of_squares(flat):
    """sum(flat ** 2) of a 1-D float64 array, as a Python float."""
    if flat.size <= BLAS_DOT_MAX:
        return float(np.dot(flat, flat))
    return float(np.einsum("i,i->", flat, flat))
