"""Kernel matrices of point sets: built-in kernels, exact products, hierarchical forms.

The hierarchical forms are built from entries without forming the matrix.

The kernels are evaluated in the C++ core (see ``cpp/include/hsslin/kernel_matrix.hpp``
for their formulas). :meth:`HSSMatrix.from_kernel` orders the points by a
geometric cluster tree and compresses by interpolative decompositions on
sampled entries; :meth:`HSSMatrix.from_operator` compresses any matrix it
can multiply by and read entries of.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._loader import core as _core
from ._operator import LinearOperatorMixin, ShapeAndDtype
from ._options import given, hss_options
from ._validation import check_int

KERNELS = tuple(_core.kernel_names())
CLUSTERINGS = ("kd", "pca")
_KERNEL_MATRIX = {np.dtype(np.float32): _core.KernelMatrix32, np.dtype(np.float64): _core.KernelMatrix64}
_FROM_KERNEL = {
    ("hss", np.dtype(np.float32)): _core.hss_from_kernel32,
    ("hss", np.dtype(np.float64)): _core.hss_from_kernel64,
    ("hodlr", np.dtype(np.float32)): _core.hodlr_from_kernel32,
    ("hodlr", np.dtype(np.float64)): _core.hodlr_from_kernel64,
}


def as_points(points, name: str = "points") -> np.ndarray:
    """Returns `points` as a C-contiguous float64 (N, d) array of finite coordinates.

    A 1-D array is taken as N points on a line.
    """
    arr = np.asarray(points)
    if arr.dtype == object or arr.dtype.kind not in "iufb":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, d) array, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise ValueError(f"{name} has a non-finite coordinate (NaN or Inf) in point {bad}")
    return arr


def check_kernel(kernel, lengthscale, nugget, points: np.ndarray | None = None) -> tuple[str, float, float]:
    """Validates a kernel name, lengthscale (> 0) and nugget (>= 0)."""
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be a string naming a built-in kernel, got {type(kernel).__name__}")
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; the built-in kernels are {', '.join(KERNELS)}")
    for value, name in ((lengthscale, "lengthscale"), (nugget, "nugget")):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not (np.isfinite(lengthscale) and lengthscale > 0):
        raise ValueError(f"lengthscale must be > 0, got {lengthscale}")
    if not (np.isfinite(nugget) and nugget >= 0):
        raise ValueError(f"nugget must be >= 0, got {nugget}")
    if kernel == "inverse_distance" and points is not None:
        if np.unique(points, axis=0).shape[0] != points.shape[0]:
            raise ValueError("inverse_distance needs distinct points: 1/r is infinite between duplicates")
    return kernel, float(lengthscale), float(nugget)


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


class KernelMatrix(ShapeAndDtype, LinearOperatorMixin):
    """The kernel matrix ``K[i, j] = k(|x_i - x_j|) + nugget * [i == j]`` of a point set, unformed.

    Products are exact and computed block by block in the C++ core (O(N^2)
    kernel evaluations each, O(N) memory), so they can check a hierarchical
    approximation at sizes where the dense matrix would not fit.

    Parameters
    ----------
    points : array_like, shape (N, d) or (N,)
        Coordinates; NaN or Inf raise ValueError.
    kernel : str
        One of :data:`hsslin.KERNELS`: ``gaussian`` exp(-r^2/(2 l^2)),
        ``exponential`` (alias ``laplace``) exp(-r/l), ``matern32``,
        ``matern52``, ``inverse_multiquadric`` 1/sqrt(1 + r^2/l^2), and
        ``inverse_distance`` l/r whose diagonal is the nugget alone.
    lengthscale : float > 0
    nugget : float >= 0
        Added to the diagonal (by index).
    dtype : float32 or float64
        Precision of entries and products (distances are computed in float64).

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> x = np.random.default_rng(0).uniform(size=(500, 2))
    >>> K = hsslin.KernelMatrix(x, "matern32", lengthscale=0.2, nugget=1e-3)
    >>> d = np.linalg.norm(x[:, None] - x[None, :], axis=-1) * np.sqrt(3) / 0.2
    >>> dense = (1 + d) * np.exp(-d) + 1e-3 * np.eye(500)
    >>> bool(np.allclose(K.to_dense(), dense))
    True
    >>> bool(np.allclose(K @ np.ones(500), dense.sum(axis=1)))
    True
    """

    def __init__(
        self,
        points,
        kernel: str = "gaussian",
        lengthscale: float = 1.0,
        nugget: float = 0.0,
        dtype=np.float64,
    ):
        self._points = as_points(points)
        self._kernel = check_kernel(kernel, lengthscale, nugget, self._points)
        self._dtype = _float_dtype(dtype)
        self._impl = _KERNEL_MATRIX[self._dtype](self._points, *self._kernel)
        n = self._points.shape[0]
        self._shape = (n, n)

    @property
    def nbytes(self) -> int:
        """Bytes held: the coordinates (the matrix itself is never stored)."""
        return int(self._points.nbytes)

    @property
    def points(self) -> np.ndarray:
        return self._points

    @property
    def kernel(self) -> tuple[str, float, float]:
        """(name, lengthscale, nugget)."""
        return self._kernel

    def entries(self, rows, cols) -> np.ndarray:
        """``K[np.ix_(rows, cols)]`` for integer index arrays."""
        r = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1))
        c = np.ascontiguousarray(np.asarray(cols, dtype=np.int64).reshape(-1))
        return self._impl.entries(r, c)

    def _apply(self, x, transpose):
        return self._impl.apply(x)  # symmetric: K^T = K

    def _as_float64(self):
        return KernelMatrix(self._points, *self._kernel, dtype=np.float64)

    def _dense(self, transpose):
        idx = np.arange(self._shape[0], dtype=np.int64)
        return np.ascontiguousarray(self._impl.entries(idx, idx))


def _from_kernel(family, points, kernel, lengthscale, nugget, tol, leaf_size, clustering, seed, dtype):
    pts = as_points(points)
    kernel, lengthscale, nugget = check_kernel(kernel, lengthscale, nugget, pts)
    options = hss_options(tol=tol, leaf_size=given(leaf_size), seed=seed)
    if clustering not in CLUSTERINGS:
        raise ValueError(f"clustering must be one of {CLUSTERINGS}, got {clustering!r}")
    fn = _FROM_KERNEL[family, _float_dtype(dtype)]
    return fn(pts, kernel, lengthscale, nugget, options, clustering)


def _kernel_builder(family: str, doc: str):
    """The ``from_kernel`` classmethod body of `family` ("hss" or "hodlr"), documented by `doc`."""

    def from_kernel(
        cls,
        points,
        kernel: str = "gaussian",
        lengthscale: float = 1.0,
        nugget: float = 0.0,
        tol: float = 1e-6,
        leaf_size: int | None = None,
        clustering: str = "kd",
        seed: int = 0,
        dtype=np.float64,
    ):
        impl, perm = _from_kernel(
            family, points, kernel, lengthscale, nugget, tol, leaf_size, clustering, seed, dtype
        )
        return cls._in_caller_order(impl, perm)

    from_kernel.__name__ = from_kernel.__qualname__ = f"{family}_from_kernel"
    from_kernel.__doc__ = doc
    return from_kernel


hss_from_kernel = _kernel_builder(
    "hss",
    """Builds the HSS form of a kernel matrix from its points, never forming it.

    A geometric cluster tree orders the points (recursive bisection:
    ``clustering="kd"`` splits the longest side of each cluster's bounding
    box at the median, ``"pca"`` the principal axis); :attr:`permutation`
    holds that order, and products, solves and log-determinants take and
    return vectors in the caller's order. Each node's basis comes from an
    interpolative decomposition of sampled entries: its rows against its
    near field (the skeletons of the neighbouring clusters, weighted by
    their bases) and against uniform random samples of its far field. The
    cost is O(N r^2) for ranks r, with O(N r) kernel evaluations.

    Parameters
    ----------
    points : array_like, shape (N, d) or (N,)
        Coordinates (d = 1, 2, 3, ...); NaN or Inf raise ValueError.
    kernel, lengthscale, nugget
        See :class:`hsslin.KernelMatrix`.
    tol : float in (0, 1)
        Target ``||K - H||_F / ||K||_F``. The error is estimated on 8
        held-out random probes restricted to 512 random rows evaluated
        exactly (:attr:`error_estimate`); a miss rebuilds with a tighter
        node tolerance (up to 3 times).
    leaf_size : int, optional
        Largest leaf (default: the HSS default).
    clustering : {"kd", "pca"}
    seed : int
        Seeds the far-field samples and the probes (results are reproducible).
    dtype : float32 or float64

    Returns
    -------
    HSSMatrix
        Symmetric (``symmetric=True`` factorizations apply), with
        :attr:`permutation` set.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> x = np.random.default_rng(0).uniform(size=(3000, 2))
    >>> H = hsslin.HSSMatrix.from_kernel(x, "gaussian", lengthscale=0.2, nugget=1e-2, tol=1e-8)
    >>> K = hsslin.KernelMatrix(x, "gaussian", lengthscale=0.2, nugget=1e-2)
    >>> b = np.ones(3000)
    >>> bool(np.linalg.norm(H @ b - K @ b) < 1e-7 * np.linalg.norm(K @ b))
    True
    >>> F = H.factor(symmetric=True)
    >>> bool(np.linalg.norm(K @ F.solve(b) - b) < 1e-5 * np.linalg.norm(b))
    True
    """,
)


hodlr_from_kernel = _kernel_builder(
    "hodlr",
    """Builds the HODLR form of a kernel matrix from its points, never forming it.

    The HSS construction of :meth:`HSSMatrix.from_kernel` runs first; each
    off-diagonal block ``U_a B V_b^T`` of its expanded bases is then
    recompressed by QR and SVD to the smallest rank that keeps the total
    added error within ``tol * ||H||_F`` (blocks share it by their entry
    counts). :attr:`error_estimate` adds that to the HSS estimate.
    Parameters as for :meth:`HSSMatrix.from_kernel`.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> x = np.random.default_rng(0).uniform(size=(2000, 2))
    >>> H = hsslin.HODLRMatrix.from_kernel(x, "exponential", lengthscale=0.3, nugget=0.1, tol=1e-8)
    >>> K = hsslin.KernelMatrix(x, "exponential", lengthscale=0.3, nugget=0.1)
    >>> b = np.ones(2000)
    >>> bool(np.linalg.norm(K @ H.factor().solve(b) - b) < 1e-6 * np.linalg.norm(b))
    True
    """,
)


_FROM_OPERATOR = {
    np.dtype(np.float32): _core.hss_from_operator32,
    np.dtype(np.float64): _core.hss_from_operator64,
}


def hss_from_operator(
    cls,
    shape,
    matvec,
    rmatvec=None,
    entries=None,
    symmetric: bool = False,
    tol: float | None = None,
    max_rank: int | None = None,
    leaf_size: int | None = None,
    seed: int = 0,
    dtype=np.float64,
    oversampling: int | None = None,
    initial_samples: int | None = None,
):
    """Compresses a matrix known only through products and entries.

    The randomized construction of :meth:`from_dense` (Martinsson 2011, as
    STRUMPACK's ``compress(Amult, Aelem)``), with the dense array replaced
    by callables: ``matvec`` and ``rmatvec`` sample the range and co-range
    with random blocks of vectors (a few calls with tens of columns), and
    ``entries`` reads the diagonal blocks and the couplings between
    skeletons. Incompressible input falls back to one dense block, read
    through ``entries``.

    Parameters
    ----------
    shape : (m, n)
    matvec : callable
        ``matvec(X)`` with X of shape (n, k) returns ``A @ X``, shape (m, k).
    rmatvec : callable, optional
        ``rmatvec(X)`` with X of shape (m, k) returns ``A.T @ X``; not
        needed with ``symmetric=True``.
    entries : callable
        ``entries(I, J)`` with integer arrays I, J returns ``A[np.ix_(I, J)]``.
    symmetric : bool
        A is exactly symmetric: one side is sampled and ``V = U``
        (``symmetric=True`` factorizations then apply).
    tol, max_rank, leaf_size, seed, oversampling, initial_samples
        As for :meth:`from_dense` (defaults from the core's HSS options).
    dtype : float32 or float64

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> x = np.linspace(0, 1, 3000)
    >>> K = hsslin.KernelMatrix(x, "exponential", lengthscale=0.2)
    >>> H = hsslin.HSSMatrix.from_operator(K.shape, K.matmat, entries=K.entries,
    ...                                    symmetric=True, tol=1e-8)
    >>> b = np.ones(3000)
    >>> bool(np.linalg.norm(H @ b - K @ b) < 1e-7 * np.linalg.norm(K @ b))
    True
    """
    try:
        m, n = (check_int(v, "shape", 1) for v in shape)
    except TypeError:
        raise TypeError(f"shape must be a pair of integers, got {shape!r}") from None
    for f, name in ((matvec, "matvec"), (entries, "entries")):
        if not callable(f):
            raise TypeError(f"{name} must be callable, got {type(f).__name__}")
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be a bool, got {type(symmetric).__name__}")
    if symmetric and m != n:
        raise ValueError(f"symmetric=True needs a square shape, got {(m, n)}")
    if not symmetric and not callable(rmatvec):
        raise TypeError("rmatvec must be callable (or pass symmetric=True for a symmetric matrix)")
    impl = _FROM_OPERATOR[_float_dtype(dtype)](
        m,
        n,
        matvec,
        rmatvec if rmatvec is not None else matvec,
        entries,
        bool(symmetric),
        hss_options(
            given(tol), max_rank, given(leaf_size), given(oversampling), given(initial_samples), seed
        ),
    )
    return cls(impl)


# -- the geometric order behind a hierarchical matrix --------------------------------
def as_permutation(perm, shape: tuple[int, int]) -> np.ndarray | None:
    """A read-only int64 copy of `perm`, checked to permute range(n) of a square shape."""
    if perm is None:
        return None
    p = np.array(perm, dtype=np.int64).reshape(-1)
    if shape[0] != shape[1] or p.shape != (shape[0],) or not np.array_equal(np.sort(p), np.arange(p.size)):
        raise ValueError(f"permutation must be a permutation of range({shape[0]}) for a square matrix")
    p.setflags(write=False)
    return p


def apply_permuted(apply_tree, perm: np.ndarray, x: np.ndarray, transpose: bool) -> np.ndarray:
    """``(A @ x)[perm] = H @ x[perm]`` for ``A[perm[s], perm[t]] = H[s, t]`` (same for A^T)."""
    y_tree = apply_tree(x[perm], transpose)
    y = np.empty_like(y_tree)
    y[perm] = y_tree
    return y


def unpermute_dense(D: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """The caller's-order matrix A of a tree-order dense D (``A[perm[s], perm[t]] = D[s, t]``)."""
    A = np.empty_like(D)
    A[np.ix_(perm, perm)] = D
    return A
