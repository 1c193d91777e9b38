"""The check of array inputs that the network (X) and the losses (targets) share."""
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
