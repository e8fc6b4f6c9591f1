"""Input checks shared by every public entry point.

Each check raises ``ValueError`` (a value or shape that cannot be used) or
``TypeError`` (a kind of object that cannot be used) naming the argument and
the shapes involved, so the C++ core only ever sees valid, native-endian,
aligned, contiguous data. NumPy scalars are numbers here like Python's own
(``np.float32(0.5)``, ``np.int64(3)``); booleans are not numbers.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def native(arr: np.ndarray) -> np.ndarray:
    """`arr` in native byte order (converted only when it is not)."""
    if arr.dtype.isnative:
        return arr
    return arr.astype(arr.dtype.newbyteorder("="))


def for_core(arr: np.ndarray, dtype=None) -> np.ndarray:
    """`arr` as a native-endian, aligned, C-contiguous array of `dtype`.

    A copy is made only when one of the three does not hold already: a
    misaligned array (``flags.aligned == False``, e.g. a view into a packed
    buffer) reaches C++ as a copy, like a strided one.
    """
    arr = native(np.asarray(arr))
    return np.require(arr, dtype=dtype, requirements=["C", "A"])


def float_dtype_of(dtype, name: str) -> np.dtype:
    """The float32/float64 dtype hsslin stores data of `dtype` in.

    float32 and float64 are kept (in either byte order); float16 becomes
    float32; integers and booleans become float64; complex raises TypeError,
    and so does longdouble (refused rather than rounded silently).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"{name} must be real; complex dtype {dtype} is not supported")
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return np.dtype(f"f{dtype.itemsize}")
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "iub":
        return np.dtype(np.float64)
    if dtype.kind == "f":
        raise TypeError(f"{name} has dtype {dtype}; use float32 or float64")
    raise TypeError(f"{name} must be a real numeric array, got dtype {dtype}")


def require_finite(arr: np.ndarray, name: str) -> None:
    """Raises ValueError naming the first NaN/Inf entry of `arr`."""
    if arr.size and not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} has a non-finite entry (NaN or Inf) at index {bad}")


def as_float_matrix(A, name: str = "A", dtype=None) -> np.ndarray:
    """Returns `A` as a C-contiguous, finite, non-empty 2-D float32/float64 array.

    Dtype rules as in :func:`float_dtype_of`, or `dtype` when given. A view
    is returned without copying when `A` already fits.
    """
    if hasattr(A, "toarray") and not isinstance(A, np.ndarray):
        raise TypeError(
            f"{name} must be a dense array; got sparse {type(A).__name__} (call .toarray() first)"
        )
    arr = np.asarray(A)
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    if dtype is not None:
        target = np.dtype(dtype)
        if target not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {target}")
        float_dtype_of(arr.dtype, name)  # the same refusals (complex, strings) either way
    else:
        target = float_dtype_of(arr.dtype, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    arr = for_core(arr, target)
    require_finite(arr, name)
    return arr


def check_real(value, name: str, low: float, high: float, *, low_open=False, high_open=False) -> float:
    """`value` as a float in the interval from `low` to `high` (ends open where asked).

    Any real number is accepted, NumPy scalars included; booleans and
    non-numbers raise TypeError, NaN and values outside raise ValueError.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not inside or math.isnan(value):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_tol(tol, name: str = "tol") -> float:
    """A relative tolerance: a real number in (0, 1)."""
    return check_real(tol, name, 0.0, 1.0, low_open=True, high_open=True)


def check_rank_decay(rank_decay) -> float:
    """The factor of a HODLR rank schedule per level: a real number in (0, 1]."""
    return check_real(rank_decay, "rank_decay", 0.0, 1.0, low_open=True)


def check_sparsity(sparsity) -> float:
    """The share of entries a sparse part keeps: a real number in [0, 1)."""
    return check_real(sparsity, "sparsity", 0.0, 1.0, high_open=True)


def check_int(value, name: str, minimum: int, allow_none: bool = False):
    """`value` as an int >= `minimum` (None passes through when `allow_none`)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_seed(seed) -> int:
    """A non-negative integer seed, folded to the 64 bits the core's generator takes."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed) & 0xFFFFFFFFFFFFFFFF


def _operand_shape_error(name: str, shape, n: int) -> ValueError:
    return ValueError(f"{name} has shape {shape}, expected ({n},) or ({n}, k)")


def as_operand(x, n: int, dtype: np.dtype, name: str = "x") -> np.ndarray:
    """Validates a right-hand side for a product with an operator of `n` columns.

    Returns x as an array of shape (n,) or (n, k) in C or Fortran order
    (kept, no copy), native byte order and aligned (copied otherwise),
    whose dtype is NumPy's promotion ``np.result_type(dtype, x.dtype)``:
    the operator's own dtype, float64 (a float32 operator and float64 or
    int64 data), or complex64/complex128. Wrong shapes raise ValueError;
    non-numeric data (strings, objects, sparse matrices) and longdouble
    raise TypeError.
    """
    if (
        type(x) is np.ndarray
        and x.dtype == dtype
        and x.ndim == 1
        and x.shape[0] == n
        and x.flags.c_contiguous
        and x.flags.aligned
    ):
        return x  # the common case, decided in a few attribute reads
    if hasattr(x, "toarray") and not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a dense array; got sparse {type(x).__name__} (call .toarray())")
    arr = native(np.asarray(x))
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    target = np.result_type(dtype, arr.dtype)
    if target not in FLOAT_DTYPES and target not in (np.complex64, np.complex128):
        raise TypeError(f"{name} has dtype {arr.dtype}; use float32, float64 or their complex types")
    if arr.ndim not in (1, 2) or arr.shape[0] != n:
        raise _operand_shape_error(name, arr.shape, n)
    if arr.ndim == 2 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
        return np.require(arr, dtype=target, requirements=["F", "A"])
    return np.require(arr, dtype=target, requirements=["C", "A"])


def as_vector_operand(x, n: int, dtype: np.dtype, name: str = "x") -> np.ndarray:
    """As :func:`as_operand`, for scipy's ``matvec``: shape (n,) or (n, 1) only."""
    arr = as_operand(x, n, dtype, name)
    if arr.ndim == 2 and arr.shape[1] != 1:
        raise ValueError(
            f"{name} has shape {arr.shape}, expected ({n},) or ({n}, 1); use matmat for several columns"
        )
    return arr


def as_matrix_operand(X, n: int, dtype: np.dtype, name: str = "X") -> np.ndarray:
    """As :func:`as_operand`, for scipy's ``matmat``: shape (n, k) only."""
    arr = as_operand(X, n, dtype, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n}, k)")
    return arr
