"""QuantizedMatrix: a dense matrix stored in float16, bfloat16 or 2-8-bit integer codes.

The codes, float16 group scales and zero points live in the C++ core
(``cpp/include/hsslin/quantized.hpp`` has the layout); every product
decodes them as it reads, a block of rows at a time, and accumulates in the
operator's dtype.
"""

from __future__ import annotations

import numpy as np

from ._io import Kind, Persistent, register_core
from ._loader import core as _core
from ._operator import LinearOperatorMixin, ShapeAndDtype
from ._validation import as_float_matrix

__all__ = ["QuantizedMatrix", "FORMATS", "GROUP_SIZES"]

_IMPLS = {np.dtype(np.float32): _core.QuantizedMatrix32, np.dtype(np.float64): _core.QuantizedMatrix64}
_DTYPE_OF = {impl: dtype for dtype, impl in _IMPLS.items()}

#: Storage formats: the two 16-bit floats and integer codes of 2 to 8 bits.
FORMATS = ("float16", "bfloat16", *(f"int{b}" for b in range(2, 9)))
#: Group sizes of the integer formats (None: one group, one scale, per row).
GROUP_SIZES = (32, 64, 128, None)
_FLOAT_CODES = {"float16": 1, "bfloat16": 2}
_INT_CODE = 3
_DEFAULT_GROUP = 64


class _Default:
    def __repr__(self):
        return str(_DEFAULT_GROUP)


_UNSET = _Default()


def _format_args(format, group_size, zero_point):
    """(format code, bits, group size for C++ (0: per row), zero point) of the user's arguments."""
    if not isinstance(format, str) or format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if not isinstance(zero_point, (bool, np.bool_)):
        raise TypeError(f"zero_point must be a bool, got {type(zero_point).__name__}")
    if format in _FLOAT_CODES:
        if group_size is not _UNSET and group_size is not None:
            raise ValueError(f"group_size applies to the integer formats, not {format!r}")
        if zero_point:
            raise ValueError(f"zero_point applies to the integer formats, not {format!r}")
        return _FLOAT_CODES[format], 16, 0, False
    if group_size is _UNSET:
        group_size = _DEFAULT_GROUP
    if group_size is not None and (
        isinstance(group_size, (bool, np.bool_)) or not isinstance(group_size, (int, np.integer))
    ):
        raise TypeError(f"group_size must be 32, 64, 128 or None, got {type(group_size).__name__}")
    if group_size not in GROUP_SIZES:
        raise ValueError(f"group_size must be 32, 64, 128 or None (one group per row), got {group_size}")
    return _INT_CODE, int(format[3:]), 0 if group_size is None else int(group_size), bool(zero_point)


class QuantizedMatrix(ShapeAndDtype, LinearOperatorMixin, Persistent):
    """A dense matrix in low-precision storage, decoded on the fly by every product.

    Formats:

    - ``"float16"``, ``"bfloat16"``: every entry rounded to nearest (even);
      float16 refuses data beyond its largest finite value 65504 (ValueError)
      instead of storing inf;
    - ``"int2"`` ... ``"int8"``: each row is cut into groups of `group_size`
      columns (32, 64 or 128, which must divide the row; None: one group per
      row) with one float16 scale per group: symmetric codes
      ``round(w / scale)`` with ``scale >= max |w| / (2**(bits-1) - 1)``, or,
      with ``zero_point=True``, asymmetric codes over ``[min(0, w), max(0,
      w)]`` with a stored uint8 zero point per group. Each scale is rounded
      *up* to float16, so no entry is clipped: every entry is within half
      its group's scale. Codes are packed 2 bits wide for int2, 4 bits (two
      per byte) for int3 and int4, one byte for int5 to int8 (so int3 takes
      int4's bytes and int5-int7 take int8's).

    The operator's dtype is the input's (float32 or float64); products follow
    NumPy's promotion like every hsslin operator.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> rng = np.random.default_rng(0)
    >>> W = rng.standard_normal((256, 128)).astype(np.float32)
    >>> Q = hsslin.QuantizedMatrix.from_dense(W, "int4", group_size=64)
    >>> Q.format, Q.bits, Q.group_size, Q.dtype
    ('int4', 4, 64, dtype('float32'))
    >>> Q.nbytes, W.nbytes  # codes, scales and a 40-byte header
    (17448, 131072)
    >>> x = rng.standard_normal(128).astype(np.float32)
    >>> bool(np.allclose(Q @ x, Q.to_dense() @ x, rtol=1e-4, atol=1e-4))
    True
    >>> round(Q.relative_error(W), 2)
    0.11
    """

    def __init__(self, impl):
        if type(impl) not in _DTYPE_OF:
            raise TypeError("QuantizedMatrix is built by QuantizedMatrix.from_dense(W, format, ...)")
        self._impl = impl
        self._shape = (impl.rows, impl.cols)
        # The dtype products compute in (float32 or float64), not the storage format.
        self._dtype = _DTYPE_OF[type(impl)]

    @classmethod
    def _from_impl(cls, impl):
        return cls(impl)

    @classmethod
    def from_dense(cls, W, format: str = "int4", group_size=_UNSET, zero_point: bool = False):
        """Encode a dense matrix.

        Parameters
        ----------
        W : array_like (m, n)
            Real, finite, non-empty; float32 stays float32, others become float64.
        format : str
            One of :data:`FORMATS`: ``"float16"``, ``"bfloat16"``, ``"int2"`` ... ``"int8"``.
        group_size : {32, 64, 128, None}, optional
            Integer formats: columns per scale (default 64; it must divide n),
            or None for one scale per row (per-channel).
        zero_point : bool, optional
            Integer formats: asymmetric codes with a uint8 zero point per group.

        Returns
        -------
        QuantizedMatrix

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> Q = hsslin.QuantizedMatrix.from_dense(np.array([[1.0, -2.0], [0.5, 3.0]]), "float16")
        >>> Q.to_dense()
        array([[ 1. , -2. ],
               [ 0.5,  3. ]])
        >>> hsslin.QuantizedMatrix.from_dense(np.ones((2, 3)), "int8", group_size=32)
        Traceback (most recent call last):
        ...
        ValueError: group_size=32 does not divide the row length 3 (...)
        """
        code, bits, group, zp = _format_args(format, group_size, zero_point)
        W = as_float_matrix(W, "W")
        return cls(_IMPLS[W.dtype].encode(W, code, bits, group, zp))

    @classmethod
    def from_codes(cls, codes, scales, zeros=None, format: str = "int4", group_size=_UNSET, dtype=np.float32):
        """An integer-format matrix stored exactly as given: entry = scale * (code - zero).

        For quantizers of one's own (``hsslin.compress(W, "gptq")`` uses it):
        the codes and scales are stored bit for bit, nothing is re-rounded.

        Parameters
        ----------
        codes : array_like of int (m, n)
            Unsigned codes in ``[0, 2**bits - 1]``.
        scales : array_like (m, n / group_size)
            Non-negative finite float16 values (a float16 array, or floats
            that are exactly float16 values), one per group.
        zeros : array_like of int (m, n / group_size), optional
            Zero points in ``[0, 2**bits - 1]``; given means ``zero_point=True``.
            Without it the zero is ``2**(bits - 1)`` (symmetric).
        format, group_size
            As in :meth:`from_dense` (integer formats only).
        dtype : float32 or float64
            The dtype products compute in.

        Raises ValueError naming the argument for a wrong shape, a code or
        zero out of range, or a scale that is negative, non-finite or not a
        float16 value.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> Q = hsslin.QuantizedMatrix.from_codes([[0, 15, 8, 9]], [[0.5, 0.25]], group_size=None)
        Traceback (most recent call last):
        ...
        ValueError: scales holds 2 values, expected 1 (1 rows x 1 groups per row)
        >>> Q = hsslin.QuantizedMatrix.from_codes([[0, 15, 8, 9]], [[0.5]], format="int4", group_size=None)
        >>> Q.to_dense()
        array([[-4. ,  3.5,  0. ,  0.5]], dtype=float32)
        """
        code, bits, group, _ = _format_args(format, group_size, False)
        if code != _INT_CODE:
            raise ValueError(f"from_codes builds the integer formats, not {format!r}")
        dtype = np.dtype(dtype)
        if dtype not in _IMPLS:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        arrays = {}
        for name, value in (("codes", codes), ("zeros", zeros)):
            if value is None:
                continue
            a = np.asarray(value)
            if a.dtype.kind not in "iu":
                if a.dtype.kind != "f" or not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                    raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
            if a.size and (a.min() < 0 or a.max() > (1 << bits) - 1):
                raise ValueError(
                    f"{name} must lie in [0, {(1 << bits) - 1}] for {format}, got {a.min()}..{a.max()}"
                )
            arrays[name] = np.ascontiguousarray(a, dtype=np.int64)
        if arrays["codes"].ndim != 2:
            raise ValueError(f"codes must be 2-D (m, n), got shape {arrays['codes'].shape}")
        s = np.asarray(scales)
        if s.dtype.kind != "f":
            raise ValueError(f"scales must be floating point (float16 values), got dtype {s.dtype}")
        s = np.ascontiguousarray(s, dtype=np.float64)
        z = arrays.get("zeros", np.zeros(0, dtype=np.int64))
        impl = _IMPLS[dtype].from_codes(arrays["codes"], s, z, bits, group, zeros is not None)
        return cls(impl)

    @staticmethod
    def nbytes_for(shape, format: str = "int4", group_size=_UNSET, zero_point: bool = False) -> int:
        """The :attr:`nbytes` a matrix of `shape` would take in that format (counted by the C++ core).

        Examples
        --------
        >>> import hsslin
        >>> hsslin.QuantizedMatrix.nbytes_for((4096, 4096), "int4", group_size=64)
        8912936
        """
        code, bits, group, zp = _format_args(format, group_size, zero_point)
        m, n = (int(s) for s in shape)
        return int(_core.quantized_nbytes(m, n, code, bits, group, zp))

    # -- attributes -------------------------------------------------------

    @property
    def format(self) -> str:
        """The storage format, one of :data:`FORMATS`."""
        code = self._impl.format
        return {1: "float16", 2: "bfloat16"}.get(code, f"int{self._impl.bits}")

    @property
    def bits(self) -> int:
        """Bits of each code: 16 for the float formats, 2-8 for the integer formats."""
        return int(self._impl.bits)

    @property
    def group_size(self):
        """Columns per scale (32, 64, 128), or None: one group per row, or a float format."""
        g = int(self._impl.group_size)
        return g or None

    @property
    def zero_point(self) -> bool:
        """True when the integer codes are asymmetric (a zero point per group)."""
        return bool(self._impl.zero_point)

    @property
    def nbytes(self) -> int:
        """Every stored byte: codes, float16 scales, zero points and a 40-byte header."""
        return int(self._impl.nbytes)

    @property
    def scales(self) -> np.ndarray:
        """The float16 scales, shape ``(m, groups per row)`` (empty for the float formats)."""
        m, n = self.shape
        s = self._impl.scales.view(np.float16)
        return s.reshape(m, -1) if s.size else s.reshape(m, 0)

    @property
    def codes(self) -> np.ndarray:
        """The integer codes unpacked, uint8 of shape (m, n) (empty for the float formats).

        Entry ``(i, j)`` decodes to ``scale * (code - zero)``; see :meth:`from_codes`.
        """
        m, n = self.shape
        if self.bits == 16:
            return np.zeros((m, 0), dtype=np.uint8)
        G = self.group_size or n
        w = 2 if self.bits <= 2 else 4 if self.bits <= 4 else 8
        B = (G * w + 7) // 8
        packed = self._impl.codes.reshape(m, n // G, B)
        # Code t of a group sits in byte t mod B at bit w * (t // B) (quantized.hpp).
        slots = [(packed >> (w * k)) & ((1 << w) - 1) for k in range(8 // w)]
        return np.concatenate(slots, axis=2)[:, :, :G].reshape(m, n).astype(np.uint8)

    @property
    def zeros(self):
        """The uint8 zero points, shape (m, groups per row), or None when symmetric."""
        if not self.zero_point:
            return None
        return self._impl.zeros.reshape(self.shape[0], -1)

    def __repr__(self):
        m, n = self.shape
        group = f", group_size={self.group_size}" if self.bits < 16 else ""
        zp = ", zero_point" if self.zero_point else ""
        return f"<QuantizedMatrix {m}x{n} {self.format}{group}{zp}, {self.dtype.name} products>"

    # -- operator hooks ---------------------------------------------------

    def _apply(self, x, transpose):
        return self._impl.apply(x, transpose)

    def _dense(self, transpose):
        return self._impl.to_dense(transpose)

    def _as_float64(self):
        # The same storage (shared, not copied); decoded values are exact in both dtypes.
        return QuantizedMatrix(self._impl.as_float64())

    def astype(self, dtype):
        """The same storage with products in `dtype` (float32 or float64); nothing is copied.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> Q = hsslin.QuantizedMatrix.from_dense(np.eye(2), "bfloat16")
        >>> Q.astype(np.float32).dtype
        dtype('float32')
        """
        dtype = np.dtype(dtype)
        if dtype not in _IMPLS:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if dtype == self.dtype:
            return self
        impl = self._impl.as_float32() if dtype == np.float32 else self._impl.as_float64()
        return QuantizedMatrix(impl)


register_core(Kind.QUANTIZED, QuantizedMatrix, _IMPLS)
