"""The matrix-object protocol shared by every hsslin operator.

Subclasses provide ``shape``, ``dtype``, ``nbytes``, ``_apply(x, transpose)``
(x already validated) and ``_dense(transpose)``; this base class turns them
into scipy-style ``matvec``/``rmatvec``/``matmat``, ``@``, ``.T`` and a
``LinearOperator`` view.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_matrix, as_operand


class LinearOperatorMixin:
    """Products, transposes and scipy interoperability for a compressed matrix."""

    ndim = 2
    # NumPy must hand ``x @ A`` to __rmatmul__ instead of trying to convert A.
    __array_ufunc__ = None

    # -- subclass hooks -------------------------------------------------
    def _apply(self, x: np.ndarray, transpose: bool) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _dense(self, transpose: bool) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # -- products -------------------------------------------------------
    def _product(self, x, transpose: bool, name: str = "x") -> np.ndarray:
        m, n = self.shape
        x = as_operand(x, m if transpose else n, self.dtype, name, type(self).__name__)
        return self._apply(x, transpose)

    def matvec(self, x) -> np.ndarray:
        """Returns ``A @ x`` for x of shape (n,) or (n, 1) (scipy's convention)."""
        x_arr = np.asarray(x)
        y = self._product(x_arr, False)
        return y.reshape(-1, 1) if x_arr.ndim == 2 else y

    def rmatvec(self, x) -> np.ndarray:
        """Returns ``A.T @ x`` (real matrices: the adjoint product)."""
        x_arr = np.asarray(x)
        y = self._product(x_arr, True)
        return y.reshape(-1, 1) if x_arr.ndim == 2 else y

    def matmat(self, X) -> np.ndarray:
        """Returns ``A @ X`` for X of shape (n, k), row- or column-major."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X has shape {X.shape}, expected ({self.shape[1]}, k)")
        return self._product(X, False, "X")

    def rmatmat(self, X) -> np.ndarray:
        """Returns ``A.T @ X`` for X of shape (m, k)."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X has shape {X.shape}, expected ({self.shape[0]}, k)")
        return self._product(X, True, "X")

    def dot(self, x) -> np.ndarray:
        return self @ x

    def __matmul__(self, x):
        if isinstance(x, LinearOperatorMixin):
            return NotImplemented
        return self._product(x, False)

    def __rmatmul__(self, x):
        # x @ A == (A.T @ x.T).T
        x_arr = np.asarray(x)
        if x_arr.ndim == 1:
            return self._product(x_arr, True)
        return self._product(x_arr.T, True).T

    @property
    def T(self) -> TransposedOperator:
        """The transpose as a lightweight view sharing this object's storage."""
        return TransposedOperator(self)

    def transpose(self) -> TransposedOperator:
        return self.T

    # -- conversions ----------------------------------------------------
    def to_dense(self) -> np.ndarray:
        """Returns the represented matrix as a dense C-ordered array."""
        return self._dense(False)

    def toarray(self) -> np.ndarray:
        return self.to_dense()

    def aslinearoperator(self):
        """Returns a ``scipy.sparse.linalg.LinearOperator`` backed by this object."""
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
        """Returns ``||A - self||_F / ||A||_F`` against a dense reference `A`."""
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

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> A = np.arange(12.0).reshape(3, 4)
    >>> H = hsslin.HSSMatrix.from_dense(A)
    >>> H.T.shape
    (4, 3)
    >>> bool(np.allclose(H.T @ np.ones(3), A.T @ np.ones(3)))
    True
    """

    def __init__(self, base: LinearOperatorMixin):
        self._base = base

    @property
    def shape(self) -> tuple[int, int]:
        m, n = self._base.shape
        return (n, m)

    @property
    def dtype(self) -> np.dtype:
        return self._base.dtype

    @property
    def nbytes(self) -> int:
        return self._base.nbytes

    @property
    def T(self) -> LinearOperatorMixin:
        return self._base

    def _apply(self, x, transpose):
        return self._base._apply(x, not transpose)

    def _dense(self, transpose):
        return self._base._dense(not transpose)
