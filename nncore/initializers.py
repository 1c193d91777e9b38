"""Weight initializers. ``W`` has shape (fan_in, fan_out) (row vectors: Z = X @ W + b).

Each function is ``init(rng, fan_in, fan_out, dtype, **params) -> W`` and its
docstring states the distribution and the variance it targets. Normals are
untruncated, so the sample variance converges to the stated one.
"""
import math

import numpy as np

from .checks import number


def _uniform(rng, limit, fan_in, fan_out, dtype):
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype, copy=False)


def _normal(rng, std, fan_in, fan_out, dtype):
    return rng.normal(0.0, std, size=(fan_in, fan_out)).astype(dtype, copy=False)


def uniform(rng, fan_in, fan_out, dtype=np.float64):
    """The "standard" init of Glorot & Bengio 2010: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); variance 1/(3 fan_in)."""
    return _uniform(rng, 1.0 / math.sqrt(fan_in), fan_in, fan_out, dtype)


def xavier_uniform(rng, fan_in, fan_out, dtype=np.float64):
    """U(-sqrt(6/(fan_in+fan_out)), +sqrt(6/(fan_in+fan_out))); variance 2/(fan_in+fan_out)."""
    return _uniform(rng, math.sqrt(6.0 / (fan_in + fan_out)), fan_in, fan_out, dtype)


def xavier_normal(rng, fan_in, fan_out, dtype=np.float64):
    """N(0, 2/(fan_in+fan_out))."""
    return _normal(rng, math.sqrt(2.0 / (fan_in + fan_out)), fan_in, fan_out, dtype)


def he_uniform(rng, fan_in, fan_out, dtype=np.float64):
    """U(-sqrt(6/fan_in), +sqrt(6/fan_in)); variance 2/fan_in."""
    return _uniform(rng, math.sqrt(6.0 / fan_in), fan_in, fan_out, dtype)


def he_normal(rng, fan_in, fan_out, dtype=np.float64):
    """N(0, 2/fan_in): std = sqrt(2/fan_in)."""
    return _normal(rng, math.sqrt(2.0 / fan_in), fan_in, fan_out, dtype)


def lecun_normal(rng, fan_in, fan_out, dtype=np.float64):
    """N(0, 1/fan_in)."""
    return _normal(rng, math.sqrt(1.0 / fan_in), fan_in, fan_out, dtype)


def normal(rng, fan_in, fan_out, dtype=np.float64, sigma_w=1.0):
    """Mean-field parametrization: N(0, sigma_w^2/fan_in)."""
    sigma_w = _check_nonnegative("sigma_w", sigma_w)
    return _normal(rng, sigma_w / math.sqrt(fan_in), fan_in, fan_out, dtype)


def orthogonal(rng, fan_in, fan_out, dtype=np.float64, gain=1.0):
    """gain * a random (semi-)orthogonal matrix, as torch.nn.init.orthogonal_.

    Orthonormal rows (fan_in <= fan_out) or columns (fan_in > fan_out); each
    entry has variance gain^2 / max(fan_in, fan_out).
    """
    gain = _check_nonnegative("gain", gain)
    rows, cols = max(fan_in, fan_out), min(fan_in, fan_out)
    q, r = np.linalg.qr(rng.normal(size=(rows, cols)))
    q *= np.sign(np.diag(r))  # sign fix makes Q Haar-distributed
    w = q if fan_in >= fan_out else q.T
    return (gain * w).astype(dtype, copy=False)


def constant(rng, fan_in, fan_out, dtype=np.float64, value=0.1):
    """Every weight equal to ``value``: all units of a layer stay identical (the symmetry problem)."""
    value = number("constant init value", value)
    return np.full((fan_in, fan_out), value, dtype=dtype)


def _check_nonnegative(name, value):
    return number(name, value, low=0.0)


REGISTRY = {f.__name__: f for f in (uniform, xavier_uniform, xavier_normal, he_uniform, he_normal,
                                    lecun_normal, normal, orthogonal, constant)}

# Parameters each initializer accepts; the others ignore sigma_w/gain/value so that
# one config can carry them all.
PARAMS = {"normal": ("sigma_w",), "orthogonal": ("gain",), "constant": ("value",)}


def get(name):
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown initializer {name!r}; valid: {', '.join(sorted(REGISTRY))}") from None


def check_params(params):
    """ValueError for a parameter that no initializer takes (a misspelled sigma_w would
    otherwise be ignored without a word)."""
    valid = sorted({p for names in PARAMS.values() for p in names})
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"unknown initializer parameter(s) {unknown}; valid: {', '.join(valid)}")


def init_weights(name, rng, fan_in, fan_out, dtype=np.float64, **params):
    """Draw W with initializer ``name``; of the valid ``params`` (see check_params), those
    that this initializer does not take are ignored."""
    fn = get(name)
    check_params(params)
    used = {k: v for k, v in params.items() if k in PARAMS.get(name, ())}
    return fn(rng, fan_in, fan_out, dtype, **used)


def init_bias(rng, fan_out, dtype=np.float64, sigma_b=0.0):
    """Zero biases by default, or N(0, sigma_b^2)."""
    sigma_b = _check_nonnegative("sigma_b", sigma_b)
    if sigma_b == 0.0:
        return np.zeros(fan_out, dtype=dtype)
    return rng.normal(0.0, sigma_b, size=fan_out).astype(dtype, copy=False)
