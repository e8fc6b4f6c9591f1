"""The matrix-object protocol shared by every hsslin operator.

A class provides ``shape``, ``dtype``, ``nbytes`` and three hooks:

- ``_apply(x, transpose)``: ``A @ x`` (or ``A.T @ x``) for x already
  validated, of shape (n,) or (n, k), C or Fortran order, of the
  operator's own dtype;
- ``_dense(transpose)``: the matrix (or its transpose) as a dense C array;
- ``_as_float64()``: float32 operators only, the same matrix with float64
  storage (values widened exactly), for operands that NumPy would promote.

:class:`LinearOperatorMixin` turns them into scipy's ``matvec``/``rmatvec``/
``matmat``/``rmatmat``, ``@`` on both sides, ``dot``, ``.T`` (one
:class:`TransposedOperator` view for every class) and a ``LinearOperator``
view, with one operand validator (:func:`hsslin._validation.as_operand`), so
the same mistake raises the same exception from every class.

Operand dtypes follow NumPy's promotion: the result has dtype
``np.result_type(A.dtype, x.dtype)``. A float64 (or int64) operand of a
float32 operator is applied through a float64 copy of the operator, built on
first use and kept (it holds twice the operator's bytes); the result is then
the float32-stored matrix applied to x in float64 arithmetic, as NumPy
computes ``A32 @ x64``. A complex operand is applied to its real and
imaginary parts separately.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_matrix, as_matrix_operand, as_operand, as_vector_operand

# Device kinds ``to`` can move an operator to: hsslin.cuda registers "cuda"
# (imported by hsslin/__init__.py; it loads its extension only when used).
DEVICE_BACKENDS: dict = {}


class ShapeAndDtype:
    """``shape`` and ``dtype`` of an object that sets ``_shape`` and ``_dtype`` once, in ``__init__``.

    (Read once: a product checks both, and a product on cold caches pays for
    every call into the extension; see docs/bench_hss.md.)
    """

    _shape: tuple[int, int]
    _dtype: np.dtype

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the represented matrix."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """float32 or float64: the precision the values are stored and applied in."""
        return self._dtype


class LinearOperatorMixin:
    """Products, transposes and scipy interoperability for a compressed matrix.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> L = hsslin.LowRankMatrix.from_dense(A, rank=2)
    >>> bool(np.allclose(L @ np.ones(3), A.sum(axis=1)))
    True
    >>> bool(np.allclose(np.ones(2) @ L, A.sum(axis=0)))
    True
    >>> L.matvec(np.ones((3, 1))).shape
    (2, 1)
    >>> (L @ np.ones(3, np.complex128)).dtype
    dtype('complex128')
    """

    ndim = 2
    # NumPy must hand ``x @ A`` to __rmatmul__ instead of trying to convert A.
    __array_ufunc__ = None

    # -- subclass hooks -------------------------------------------------
    def _apply(self, x: np.ndarray, transpose: bool) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _dense(self, transpose: bool) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _as_float64(self) -> LinearOperatorMixin:  # pragma: no cover
        raise NotImplementedError

    # -- products -------------------------------------------------------
    def _product(self, x, transpose: bool, check=as_operand, name: str = "x") -> np.ndarray:
        m, n = self.shape
        return self._apply_any(check(x, m if transpose else n, self.dtype, name), transpose)

    def _apply_any(self, x: np.ndarray, transpose: bool) -> np.ndarray:
        """Apply to a validated operand of any dtype :func:`as_operand` returns."""
        if x.dtype == self.dtype:
            return self._apply(x, transpose)
        if x.dtype.kind == "c":
            re = self._apply_any(np.ascontiguousarray(x.real), transpose)
            im = self._apply_any(np.ascontiguousarray(x.imag), transpose)
            out = np.empty(re.shape, dtype=x.dtype)
            out.real, out.imag = re, im
            return out
        return self._widened()._apply(x, transpose)  # float64 data, float32 operator

    def _widened(self) -> LinearOperatorMixin:
        """The float64 copy of a float32 operator, built on first use and kept."""
        wide = self.__dict__.get("_float64_copy")
        if wide is None:
            wide = self._float64_copy = self._as_float64()
        return wide

    def matvec(self, x) -> np.ndarray:
        """Return ``A @ x`` for x of shape (n,) or (n, 1) (scipy's contract).

        Several columns raise ValueError (use :meth:`matmat` or ``@``).

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> S = hsslin.CSRMatrix(([1.0, 2.0], [0, 1], [0, 1, 2]), shape=(2, 2))
        >>> S.matvec(np.array([3.0, 4.0]))
        array([3., 8.])
        >>> S.matvec(np.ones((2, 2)))
        Traceback (most recent call last):
        ...
        ValueError: x has shape (2, 2), expected (2,) or (2, 1); use matmat for several columns
        """
        return self._product(x, False, as_vector_operand)

    def rmatvec(self, x) -> np.ndarray:
        """Return ``A.T @ x`` for x of shape (m,) or (m, 1) (real matrices: the adjoint).

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> S = hsslin.CSRMatrix(([1.0, 2.0], [1, 1], [0, 1, 2]), shape=(2, 2))
        >>> S.rmatvec(np.array([3.0, 4.0]))
        array([ 0., 11.])
        """
        return self._product(x, True, as_vector_operand)

    def matmat(self, X) -> np.ndarray:
        """Return ``A @ X`` for X of shape (n, k), row- or column-major (the result keeps the order).

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> S = hsslin.CSRMatrix(([1.0, 2.0], [0, 1], [0, 1, 2]), shape=(2, 2))
        >>> S.matmat(np.eye(2))
        array([[1., 0.],
               [0., 2.]])
        """
        return self._product(X, False, as_matrix_operand, "X")

    def rmatmat(self, X) -> np.ndarray:
        """Return ``A.T @ X`` for X of shape (m, k).

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> S = hsslin.CSRMatrix(([1.0, 2.0], [1, 1], [0, 1, 2]), shape=(2, 2))
        >>> S.rmatmat(np.eye(2))
        array([[0., 0.],
               [1., 2.]])
        """
        return self._product(X, True, as_matrix_operand, "X")

    def dot(self, x) -> np.ndarray:
        """Return ``A @ x`` (x of shape (n,) or (n, k)).

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> S = hsslin.CSRMatrix(([1.0, 2.0], [0, 1], [0, 1, 2]), shape=(2, 2))
        >>> S.T.dot([1, 1])
        array([1., 2.])
        """
        return self @ x

    def __matmul__(self, x):
        if isinstance(x, LinearOperatorMixin):
            return NotImplemented
        return self._product(x, False)

    def __rmatmul__(self, x):
        if isinstance(x, LinearOperatorMixin):
            return NotImplemented
        # x @ A == (A.T @ x.T).T
        x_arr = x if hasattr(x, "toarray") else np.asarray(x)
        if getattr(x_arr, "ndim", 0) == 2:
            return self._product(x_arr.T, True).T
        return self._product(x_arr, True)

    @property
    def T(self) -> LinearOperatorMixin:
        """The transpose as a lightweight view sharing this object's storage.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> S = hsslin.CSRMatrix(([1.0, 2.0], [0, 2], [0, 2]), shape=(1, 3))
        >>> S.T.shape
        (3, 1)
        >>> S.T @ np.array([2.0])
        array([2., 0., 4.])
        >>> np.ones(3) @ S.T
        array([3.])
        """
        return TransposedOperator(self)

    def transpose(self) -> LinearOperatorMixin:
        """Same as :attr:`T`."""
        return self.T

    # -- conversions ----------------------------------------------------
    def to(self, device):
        """The operator on `device`: ``"cpu"`` (itself) or ``"cuda"``, ``"cuda:N"`` (see :mod:`hsslin.cuda`).

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> L = hsslin.LowRankMatrix(np.ones((3, 1)), np.ones((2, 1)))
        >>> L.to("cpu") is L
        True
        """
        kind = str(device).partition(":")[0]
        if kind == "cpu":
            return self
        backend = DEVICE_BACKENDS.get(kind)
        if backend is None:
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        return backend(self, device)

    def to_dense(self) -> np.ndarray:
        """Return the represented matrix as a dense C-ordered array."""
        return self._dense(False)

    def toarray(self) -> np.ndarray:
        """Same as :meth:`to_dense` (scipy's name)."""
        return self.to_dense()

    def aslinearoperator(self):
        """Return a ``scipy.sparse.linalg.LinearOperator`` backed by this object.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> from scipy.sparse.linalg import lsqr
        >>> A = np.eye(4, dtype=np.float32) * 2
        >>> op = hsslin.LowRankMatrix.from_dense(A, rank=4).aslinearoperator()
        >>> bool(np.allclose(lsqr(op, np.ones(4), atol=1e-10, btol=1e-10)[0], 0.5))
        True
        """
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(
            self.shape,
            matvec=self.matvec,
            rmatvec=self.rmatvec,
            matmat=self.matmat,
            rmatmat=self.rmatmat,
            dtype=self.dtype,
        )

    # -- sizes and accuracy ---------------------------------------------
    @property
    def dense_nbytes(self) -> int:
        """Bytes of the same matrix stored dense in this object's dtype."""
        return int(self.shape[0]) * int(self.shape[1]) * self.dtype.itemsize

    @property
    def compression_ratio(self) -> float:
        """Dense bytes divided by stored bytes (above 1 means smaller than dense)."""
        return self.dense_nbytes / self.nbytes

    def relative_error(self, A) -> float:
        """Return ``||A - self||_F / ||A||_F`` against a dense reference `A` (measured now)."""
        A = as_float_matrix(A, "A")
        if A.shape != self.shape:
            raise ValueError(f"A has shape {A.shape}, expected {self.shape}")
        ref = A.astype(np.float64)
        norm = np.linalg.norm(ref)
        diff = np.linalg.norm(ref - self.to_dense().astype(np.float64))
        return float(diff / norm) if norm > 0 else float(diff)

    def __repr__(self) -> str:
        m, n = self.shape
        return (
            f"<{m}x{n} {type(self).__name__} of dtype {self.dtype}, "
            f"{self.nbytes} bytes ({100.0 / self.compression_ratio:.2f}% of dense)>"
        )


class TransposedOperator(LinearOperatorMixin):
    """The transpose of an hsslin operator; products run the transposed kernels.

    Every class's ``.T`` returns one of these; ``A.T.T`` is ``A`` itself.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> A = np.arange(12.0).reshape(3, 4)
    >>> H = hsslin.HSSMatrix.from_dense(A)
    >>> H.T.shape
    (4, 3)
    >>> bool(np.allclose(H.T @ np.ones(3), A.T @ np.ones(3)))
    True
    >>> H.T.T is H
    True
    """

    def __init__(self, base: LinearOperatorMixin):
        self._base = base

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns): the base's, swapped."""
        m, n = self._base.shape
        return (n, m)

    @property
    def dtype(self) -> np.dtype:
        """The base's dtype."""
        return self._base.dtype

    @property
    def nbytes(self) -> int:
        """The base's bytes (the view stores none of its own)."""
        return self._base.nbytes

    @property
    def T(self) -> LinearOperatorMixin:
        """The operator this is the transpose of."""
        return self._base

    def _apply(self, x, transpose):
        return self._base._apply(x, not transpose)

    def _apply_any(self, x, transpose):
        return self._base._apply_any(x, not transpose)

    def _as_float64(self):
        return TransposedOperator(self._base._widened())

    def _dense(self, transpose):
        return self._base._dense(not transpose)

    def __repr__(self) -> str:
        return f"<transposed view of {self._base!r}>"
