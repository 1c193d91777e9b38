"""The checks of inputs that several modules share: arrays (the network's X, the losses'
targets) and scalar hyperparameters (the optimizers', initializers' and theory's)."""
import math

import numpy as np


def finite_in(a, dtype, what, kinds="iuf"):
    """``a`` as an array in ``dtype`` (None: its own); ValueError naming ``what`` when its dtype
    kind is not in ``kinds`` (NumPy kind codes; default: integers and floats), or when it holds
    NaN or inf, before the cast or after it (values beyond ``dtype``'s range)."""
    a = np.asarray(a)
    if a.dtype.kind not in kinds:
        raise ValueError(f"{what} must be numeric and real, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} must be finite (got NaN or inf)")
    if dtype is not None and a.dtype != dtype:
        with np.errstate(over="ignore"):
            a = a.astype(dtype)
        if not np.isfinite(a).all():
            raise ValueError(f"{what} must be finite in {np.dtype(dtype).name} (got NaN or inf: values beyond its range)")
    return a


def integer(name, value, low=0):
    """``value`` as an int >= ``low``; ValueError naming ``name`` otherwise (booleans are not
    integers here, whatever Python says)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def number(name, value, low=None, high=None, strict=False, top=None):
    """``value`` as a finite float checked against [low, high) (or (low, high) with ``strict``;
    ``top`` is an inclusive upper bound); ValueError naming ``name`` otherwise. Booleans, strings
    and None are not numbers here (``float("0.3")`` would accept a string)."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or np.ndim(value) != 0:
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (strict and value == low)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    if high is not None and value >= high:
        raise ValueError(f"{name} must be < {high}, got {value}")
    if top is not None and value > top:
        raise ValueError(f"{name} must be <= {top}, got {value}")
    return value
