"""Input checks shared by every public entry point.

Each check raises ``ValueError`` or ``TypeError`` naming the argument and
the shapes involved, so the C++ core only ever sees valid, contiguous data.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_matrix(A, name: str = "A", dtype=None) -> np.ndarray:
    """Returns `A` as a C-contiguous, finite, non-empty 2-D float32/float64 array.

    float32 and float64 are kept; float16 becomes float32; integers and
    booleans become float64 (documented conversion); complex raises
    TypeError. A view is returned without copying when `A` already fits.
    """
    if hasattr(A, "toarray") and not isinstance(A, np.ndarray):
        raise TypeError(
            f"{name} must be a dense array; got sparse {type(A).__name__} (call .toarray() first)"
        )
    arr = np.asarray(A)
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real; complex dtype {arr.dtype} is not supported")
    if dtype is not None:
        target = np.dtype(dtype)
        if target not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {target}")
    elif arr.dtype in FLOAT_DTYPES:
        target = arr.dtype
    elif arr.dtype == np.float16:
        target = np.dtype(np.float32)
    elif arr.dtype.kind in "iub":
        target = np.dtype(np.float64)
    elif arr.dtype.kind == "f":  # longdouble: refuse rather than round silently
        raise TypeError(f"{name} has dtype {arr.dtype}; use float32 or float64")
    else:
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=target)
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} has a non-finite entry (NaN or Inf) at index {bad}")
    return arr


def check_tol(tol, name: str = "tol") -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(tol).__name__}")
    tol = float(tol)
    if not (0.0 < tol < 1.0):
        raise ValueError(f"{name} must be in (0, 1), got {tol}")
    return tol


def check_int(value, name: str, minimum: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed) & 0xFFFFFFFFFFFFFFFF


def as_operand(x, n: int, dtype: np.dtype, name: str = "x", op: str = "H") -> np.ndarray:
    """Validates a right-hand side for a product with an operator of `n` columns.

    Accepts shape (n,) or (n, k), C or Fortran order (kept, no copy);
    other strides are copied. Integers are converted to the operator's
    dtype; float32 data for a float64 operator is upcast; float64 data for a
    float32 operator raises (no silent downcast).
    """
    if (
        type(x) is np.ndarray
        and x.dtype == dtype
        and x.ndim == 1
        and x.shape[0] == n
        and x.flags.c_contiguous
    ):
        return x  # the common case, decided in a few attribute reads
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real; complex dtype {arr.dtype} is not supported")
    if arr.dtype.kind in "iub" or arr.dtype == np.float16:
        arr = arr.astype(dtype)
    elif arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    elif arr.dtype != dtype:
        if arr.dtype == np.float64 and dtype == np.float32:
            raise ValueError(
                f"{name} has dtype float64 but {op} is float32; convert {name} with "
                f"{name}.astype(np.float32), or build {op} from float64 data"
            )
        arr = arr.astype(dtype)
    if arr.ndim not in (1, 2) or arr.shape[0] != n:
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n},) or ({n}, k)")
    if arr.ndim == 2 and not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    elif arr.ndim == 1 and not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr
