"""Sparse building blocks: CSR matrices, reverse Cuthill-McKee, top-magnitude extraction.

The arrays of a :class:`CSRMatrix` are shared with NumPy and SciPy without
copying wherever the layout allows: values and int32 column indices are
borrowed from (and lent to) ``scipy.sparse`` CSR arrays; the row pointers are
kept as int64 and converted on the way out (``rows + 1`` entries only).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from ._io import CorePersistent, Kind, register_core
from ._loader import core as _core
from ._operator import LinearOperatorMixin, ShapeAndDtype, TransposedOperator
from ._validation import check_density, float_dtype_of, for_core, require_finite

__all__ = ["CSRMatrix", "bandwidth", "reverse_cuthill_mckee"]

_IMPLS = {np.dtype(np.float32): _core.CSRMatrix32, np.dtype(np.float64): _core.CSRMatrix64}
_DTYPE_OF = {impl: dtype for dtype, impl in _IMPLS.items()}
_INT32_MAX = np.iinfo(np.int32).max


def _as_indices(indices, cols, name="indices"):
    """int32 column indices (no copy when already int32 and contiguous)."""
    indices = np.asarray(indices)
    if indices.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {indices.shape}")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {indices.dtype}")
    if indices.dtype != np.int32:
        # Range-check before narrowing: a wrapped index would pass validation.
        if indices.size and (indices.min() < 0 or indices.max() >= max(cols, 1)):
            bad = int(indices.min()) if indices.min() < 0 else int(indices.max())
            raise ValueError(f"{name} holds {bad}, out of range [0, {cols})")
        indices = indices.astype(np.int32)
    return for_core(indices)


def _as_indptr(indptr, rows):
    indptr = np.asarray(indptr)
    if indptr.ndim != 1:
        raise ValueError(f"indptr must be 1-D, got shape {indptr.shape}")
    if indptr.dtype.kind not in "iu":
        raise TypeError(f"indptr must have an integer dtype, got {indptr.dtype}")
    if indptr.shape[0] != rows + 1:
        raise ValueError(f"indptr has {indptr.shape[0]} entries, expected shape[0] + 1 = {rows + 1}")
    if indptr.dtype not in (np.int32, np.int64):
        indptr = indptr.astype(np.int64)
    return for_core(indptr)


def _as_shape(shape):
    try:
        m, n = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair of integers, got {shape!r}") from None
    if m < 0 or n < 0:
        raise ValueError(f"shape must be non-negative, got {(m, n)}")
    if n > _INT32_MAX:
        raise ValueError(f"shape[1] = {n} does not fit int32 column indices")
    return m, n


class CSRMatrix(ShapeAndDtype, LinearOperatorMixin, CorePersistent):
    """Real sparse matrix in compressed sparse row form (float32 or float64).

    Storage is values, int32 column indices and int64 row pointers; products
    run in hsslin's threaded C++ kernels. Duplicate entries within a row are
    allowed and act as their sum (as in SciPy's non-canonical CSR); column
    indices need not be sorted. The arrays are validated once, on
    construction, and are read-only afterwards.

    Parameters
    ----------
    arg1 : tuple of (data, indices, indptr)
        The CSR arrays, as for ``scipy.sparse.csr_array``. Integer or bool
        data become float64; complex data raise TypeError.
    shape : tuple of int
        ``(m, n)``; required.
    copy : bool, optional
        Copy the arrays. By default data that already have the right dtype
        and layout are borrowed, not copied (writing to them afterwards
        changes the matrix); the column indices are copied unless another
        CSRMatrix owns them, so that no later write can make an index
        invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from hsslin._sparse import CSRMatrix
    >>> S = CSRMatrix(([1.0, 2.0, 3.0], [0, 2, 1], [0, 2, 3]), shape=(2, 3))
    >>> S.shape, S.dtype, S.nnz
    ((2, 3), dtype('float64'), 3)
    >>> S @ np.ones(3)
    array([3., 3.])
    >>> S.T @ np.ones(2)
    array([1., 3., 2.])
    >>> S.to_dense()
    array([[1., 0., 2.],
           [0., 3., 0.]])
    """

    def __init__(self, arg1, shape=None, *, copy=False):
        if type(arg1) in _DTYPE_OF:
            self._set_impl(arg1)
            return
        if not (isinstance(arg1, tuple) and len(arg1) == 3):
            raise TypeError(
                "CSRMatrix expects (data, indices, indptr) and shape; use "
                "CSRMatrix.from_scipy or CSRMatrix.from_dense for other inputs"
            )
        if shape is None:
            raise ValueError("shape is required with (data, indices, indptr)")
        m, n = _as_shape(shape)
        data, indices, indptr = arg1
        data = np.asarray(data)
        dtype = float_dtype_of(data.dtype, "data")
        if data.ndim != 1:
            raise ValueError(f"data must be 1-D, got shape {data.shape}")
        data = np.array(data, dtype=dtype, copy=True) if copy else for_core(data, dtype)
        require_finite(data, "data")
        indices = _as_indices(indices, n)
        if copy:
            indices = indices.copy()
        indptr = _as_indptr(indptr, m)
        if data.shape[0] != indices.shape[0]:
            raise ValueError(f"data has shape {data.shape} but indices has shape {indices.shape}")
        self._set_impl(_IMPLS[dtype](data, indices, indptr, (m, n)))

    # -- construction -----------------------------------------------------

    @classmethod
    def from_scipy(cls, S):
        """Build from any ``scipy.sparse`` array or matrix.

        CSR input with float32/float64 values shares them without copying
        (the column indices are copied: an index that scipy's arrays later
        change cannot reach a product); other formats are converted with ``tocsr()``;
        int64 indices that fit are narrowed to int32; integer values become
        float64.

        Parameters
        ----------
        S : scipy.sparse array or matrix
            Real-valued; any format (csr, csc, coo, ...).

        Returns
        -------
        CSRMatrix

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from hsslin._sparse import CSRMatrix
        >>> A = sp.csr_array(np.array([[0.0, 1.5], [2.0, 0.0]]))
        >>> S = CSRMatrix.from_scipy(A)
        >>> np.shares_memory(S.data, A.data)
        True
        >>> CSRMatrix.from_scipy(sp.coo_matrix(A)).to_dense()
        array([[0. , 1.5],
               [2. , 0. ]])
        """
        if not sp.issparse(S):
            raise TypeError(f"S must be a scipy.sparse array or matrix, got {type(S).__name__}")
        if S.ndim != 2:
            raise ValueError(f"S must be 2-D, got shape {S.shape}")
        float_dtype_of(S.dtype, "S")
        if S.format != "csr":
            S = S.tocsr()
        return cls((S.data, S.indices, S.indptr), shape=S.shape)

    @classmethod
    def from_dense(cls, W, density=None, per_row=False, *, sparsity=None):
        """Keep the largest-magnitude entries of a dense matrix.

        Keeps ``k = ceil(density * m * n)`` entries (with ``per_row``:
        ``ceil(density * n)`` in every row), found by selection
        (``std::nth_element``), not a full sort. A product within a few ulps
        of an integer counts as that integer, so ``density=0.1`` of 2000
        entries keeps 200. Ties at the threshold go to the entry that comes
        first in row-major order.

        Parameters
        ----------
        W : array_like, shape (m, n)
            Real, finite. Integer input becomes float64.
        density : float
            Fraction of entries kept, in [0, 1). (Formerly ``sparsity=``,
            still accepted with a DeprecationWarning.)
        per_row : bool, optional
            Select within each row instead of over the whole matrix.

        Returns
        -------
        CSRMatrix
            Column indices sorted within each row.

        Examples
        --------
        >>> import numpy as np
        >>> from hsslin._sparse import CSRMatrix
        >>> W = np.array([[1.0, -5.0, 2.0], [0.5, 4.0, -3.0]])
        >>> CSRMatrix.from_dense(W, density=0.5).to_dense()
        array([[ 0., -5.,  0.],
               [ 0.,  4., -3.]])
        >>> CSRMatrix.from_dense(W, density=0.3, per_row=True).to_dense()
        array([[ 0., -5.,  0.],
               [ 0.,  4.,  0.]])
        """
        W = np.asarray(W)
        dtype = float_dtype_of(W.dtype, "W")
        if W.ndim != 2:
            raise ValueError(f"W must be 2-D, got shape {W.shape}")
        W = for_core(W, dtype)
        require_finite(W, "W")
        rho = check_density(density, sparsity)
        return cls(_core.top_magnitude(W, rho, bool(per_row)))

    def _set_impl(self, impl):
        self._impl = impl
        self._shape = (impl.rows, impl.cols)
        self._dtype = _DTYPE_OF[type(impl)]

    # -- attributes -------------------------------------------------------

    @property
    def nnz(self):
        """Number of stored entries (duplicates counted)."""
        return self._impl.nnz

    @property
    def data(self):
        """Stored values (read-only view, no copy)."""
        return self._impl.data

    @property
    def indices(self):
        """int32 column indices (read-only view, no copy)."""
        return self._impl.indices

    @property
    def indptr(self):
        """int64 row pointers (read-only view, no copy)."""
        return self._impl.indptr

    @property
    def nbytes(self):
        """Bytes stored: values + indices + row pointers + a 24-byte header."""
        return self._impl.nbytes

    def __repr__(self):
        m, n = self.shape
        return f"<CSRMatrix {m}x{n}, {self.nnz} stored {self.dtype.name} entries>"

    @staticmethod
    def nbytes_for(rows: int, nnz: int, dtype) -> int:
        """The :attr:`nbytes` of a `dtype` CSR matrix with `rows` rows and `nnz` entries.

        Counted by the C++ core, by the rule :attr:`nbytes` uses.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> S = hsslin.CSRMatrix.from_dense(np.eye(5), density=0.2)
        >>> hsslin.CSRMatrix.nbytes_for(5, S.nnz, np.float64) == S.nbytes
        True
        """
        return int(_IMPLS[np.dtype(dtype)].nbytes_for(rows, nnz))

    def _dense(self, transpose):
        return self._impl.to_dense(transpose)

    def _apply(self, x, transpose):
        return self._impl.apply(x, transpose)

    def _as_float64(self):
        return self.astype(np.float64)

    # -- conversion -------------------------------------------------------

    def to_scipy(self):
        """A ``scipy.sparse.csr_array`` sharing values and indices (no copy).

        The row pointers are narrowed to SciPy's index dtype (a copy of
        ``m + 1`` entries). The shared arrays are read-only.

        Examples
        --------
        >>> import numpy as np
        >>> from hsslin._sparse import CSRMatrix
        >>> S = CSRMatrix.from_dense([[0.0, 2.0], [3.0, 0.0]], density=0.5)
        >>> A = S.to_scipy()
        >>> A.toarray()
        array([[0., 2.],
               [3., 0.]])
        >>> np.shares_memory(A.data, S.data)
        True
        """
        indptr = self.indptr
        if self.nnz <= _INT32_MAX:
            # SciPy wants one index dtype; narrowing indptr keeps indices shared.
            indptr = indptr.astype(np.int32)
        return sp.csr_array((self.data, self.indices, indptr), shape=self.shape, copy=False)

    def astype(self, dtype):
        """Copy with values converted to `dtype` (float32 or float64); indices are shared.

        Examples
        --------
        >>> import numpy as np
        >>> from hsslin._sparse import CSRMatrix
        >>> S = CSRMatrix(([1.0], [0], [0, 1]), shape=(1, 1))
        >>> S.astype(np.float32).dtype
        dtype('float32')
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if dtype == self.dtype:
            return self
        return CSRMatrix((self.data.astype(dtype), self.indices, self.indptr), shape=self.shape)

    def as_linear_operator(self):
        """Deprecated name of :meth:`aslinearoperator` (the name every hsslin class has)."""
        warnings.warn(
            "CSRMatrix.as_linear_operator is deprecated; use aslinearoperator",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.aslinearoperator()


def _pattern_arrays(pattern, name="pattern"):
    """(indptr int64, indices int32, shape) of a sparse or dense pattern."""
    if isinstance(pattern, TransposedOperator) and isinstance(pattern.T, CSRMatrix):
        pattern = pattern.T.to_scipy().T.tocsr()
    if isinstance(pattern, CSRMatrix):
        return pattern.indptr, pattern.indices, pattern.shape
    if sp.issparse(pattern):
        if pattern.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {pattern.shape}")
        S = pattern if pattern.format == "csr" else pattern.tocsr()
    else:
        A = np.asarray(pattern)
        if A.dtype.kind not in "biufc":
            raise TypeError(f"{name} has dtype {A.dtype}; expected a numeric array")
        if A.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {A.shape}")
        S = sp.csr_array(A != 0)
    m, n = _as_shape(S.shape)
    if m + n > _INT32_MAX:
        raise ValueError(f"{name} has shape {S.shape}; at most 2**31 - 1 rows + columns")
    indices = _as_indices(S.indices, n, f"{name}.indices")
    return for_core(S.indptr, np.int64), indices, (m, n)


def reverse_cuthill_mckee(pattern, symmetric_mode=False):
    """Reverse Cuthill-McKee ordering of a sparsity pattern.

    Square patterns are ordered on the graph of ``S + S.T`` (or ``S`` itself
    with ``symmetric_mode=True``); self-loops and duplicates are ignored.
    Rectangular patterns are ordered on the bipartite row/column graph.
    Every connected component is ordered from its lowest-degree node (scipy's
    start) and from each node the George-Liu search for a pseudo-peripheral
    node probes, keeping the order of smallest bandwidth; the breadth-first
    search takes neighbours by increasing degree (ties: lower index).

    Parameters
    ----------
    pattern : scipy.sparse array/matrix, CSRMatrix or array_like
        Only the positions of the stored (for dense input: nonzero) entries
        matter.
    symmetric_mode : bool, optional
        Skip forming ``S + S.T`` for a square pattern that is symmetric (one
        pass over the entries checks it; a pattern that is not is ordered on
        ``S + S.T`` as without this flag).

    Returns
    -------
    perm : ndarray of int64
        For square input: position -> old index, so ``A[perm][:, perm]`` is
        the reordered matrix.
    (row_perm, col_perm) : tuple of ndarray of int64
        For rectangular input: ``A[row_perm][:, col_perm]``.

    Examples
    --------
    >>> import numpy as np
    >>> from hsslin._sparse import reverse_cuthill_mckee, bandwidth
    >>> A = np.eye(6) + np.eye(6, k=3) + np.eye(6, k=-3)
    >>> perm = reverse_cuthill_mckee(A)
    >>> bandwidth(A), bandwidth(A, perm)
    (3, 1)
    >>> rows, cols = reverse_cuthill_mckee(np.ones((2, 3)))
    >>> rows.shape, cols.shape
    ((2,), (3,))
    """
    indptr, indices, shape = _pattern_arrays(pattern)
    rows, cols = _core.reverse_cuthill_mckee(indptr, indices, shape, bool(symmetric_mode))
    if shape[0] == shape[1]:
        return rows
    return rows, cols


def _as_perm(perm, n, name):
    perm = np.asarray(perm)
    if perm.ndim != 1 or perm.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D integer array, got {perm.dtype} {perm.shape}")
    if perm.shape[0] != n:
        raise ValueError(f"{name} has shape {perm.shape}, expected ({n},)")
    return for_core(perm, np.int64)


def bandwidth(pattern, perm=None):
    """Bandwidth ``max |i' - j'|`` of a pattern, optionally after reordering.

    Parameters
    ----------
    pattern : scipy.sparse array/matrix, CSRMatrix or array_like
    perm : array_like or tuple of two array_like, optional
        A permutation applied to rows and columns (square patterns), or a
        pair ``(row_perm, col_perm)``, as returned by
        :func:`reverse_cuthill_mckee`. Default: the identity.

    Returns
    -------
    int
        0 for a pattern without entries.

    Examples
    --------
    >>> import numpy as np
    >>> from hsslin._sparse import bandwidth
    >>> A = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    >>> bandwidth(A), bandwidth(A, [0, 2, 1])
    (2, 1)
    """
    indptr, indices, (m, n) = _pattern_arrays(pattern)
    if perm is None:
        row_perm, col_perm = np.arange(m, dtype=np.int64), np.arange(n, dtype=np.int64)
    elif isinstance(perm, tuple) and len(perm) == 2:
        row_perm, col_perm = _as_perm(perm[0], m, "row_perm"), _as_perm(perm[1], n, "col_perm")
    else:
        if m != n:
            raise ValueError(f"pattern has shape {(m, n)}; give perm as a (row_perm, col_perm) pair")
        row_perm = col_perm = _as_perm(perm, m, "perm")
    return int(_core.bandwidth(indptr, indices, (m, n), row_perm, col_perm))


register_core(Kind.CSR, CSRMatrix, _IMPLS)
