"""Seeded random streams: one independent ``numpy.random.Generator`` per purpose.

The same seed gives the same stream for each purpose, so changing, say, the
shuffling never changes the initial weights.
"""
import numpy as np

PURPOSES = ("init", "shuffle", "dropout", "data")


def generator(seed, purpose):
    """Generator for ``purpose`` (one of PURPOSES) derived from the run's ``seed``."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown random stream {purpose!r}; valid: {', '.join(PURPOSES)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(PURPOSES.index(purpose),))))
