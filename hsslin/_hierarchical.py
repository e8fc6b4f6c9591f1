"""HSSMatrix and HODLRMatrix: the hierarchical formats users build and apply."""

from __future__ import annotations

import warnings

import numpy as np

from . import _kernels
from ._factor import factorize
from ._io import CorePersistent, Kind, from_bytes, register_container, register_core
from ._loader import core as _core
from ._operator import LinearOperatorMixin, ShapeAndDtype
from ._options import HODLR_DEFAULTS, HSS_DEFAULTS, hodlr_options, hss_options
from ._validation import as_float_matrix, check_int, check_rank_decay

_HSS = {np.dtype(np.float32): _core.HSSMatrix32, np.dtype(np.float64): _core.HSSMatrix64}
_HODLR = {np.dtype(np.float32): _core.HODLRMatrix32, np.dtype(np.float64): _core.HODLRMatrix64}


class _Hierarchical(ShapeAndDtype, LinearOperatorMixin, CorePersistent):
    """Common behaviour of the two tree formats (wraps a C++ object)."""

    _impls: dict = {}  # dtype -> C++ class, set by each subclass

    def __init__(self, impl):
        dtype = {t: d for d, t in self._impls.items()}.get(type(impl))
        if dtype is None:
            raise TypeError(
                f"use {type(self).__name__}.from_dense(...) or hsslin.load(...) "
                f"to create a {type(self).__name__}"
            )
        self._impl = impl
        # Read once: a product checks both, and a product on cold caches pays
        # for every call into the extension (see docs/bench_hss.md).
        self._shape = (int(impl.rows), int(impl.cols))
        self._dtype = dtype

    @property
    def nbytes(self) -> int:
        """Every stored byte: factor values, tree ranges, factor shapes and header."""
        return int(self._impl.nbytes)

    @property
    def levels(self) -> int:
        """Depth of the cluster tree (0: a single dense block)."""
        return int(self._impl.levels)

    @property
    def leaf_size(self) -> int:
        """Largest leaf block the tree was built with."""
        return int(self._impl.leaf_size)

    @property
    def permutation(self) -> np.ndarray | None:
        """None: the tree follows the caller's order (``from_kernel`` builds matrices that permute)."""
        return None

    def factor(self, symmetric: bool = False):
        """Factors the (square) matrix for solves and log-determinants.

        ``symmetric=True`` runs the Cholesky-type variant, which needs a
        symmetric positive definite matrix; see :class:`hsslin.Factorization`.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> A = np.eye(300) + np.full((300, 300), 0.5)
        >>> F = hsslin.HSSMatrix.from_dense(A, tol=1e-10, leaf_size=32).factor(symmetric=True)
        >>> bool(np.allclose(A @ F.solve(np.ones(300)), 1.0))
        True
        """
        return factorize(self, symmetric)

    @classmethod
    def _in_caller_order(cls, impl, permutation):
        """The matrix of tree-order `impl` whose points the caller ordered by ``perm[t] -> t``."""
        return cls._permuted_class(impl, permutation)

    def _apply(self, x, transpose):
        return self._impl.apply(x, transpose)

    def _dense(self, transpose):
        return self._impl.to_dense(transpose)

    def copy(self):
        """Return an independent deep copy."""
        return type(self)(self._impl.copy())

    __copy__ = copy

    def __deepcopy__(self, memo):
        return self.copy()


class HSSMatrix(_Hierarchical):
    """Hierarchically semiseparable matrix with nested bases.

    Leaves hold dense diagonal blocks D and bases U, V; inner nodes hold the
    couplings B between their two children and transfer matrices, so that
    an off-diagonal block is ``A[I_a, J_b] ~= U_a B_ab V_b^T`` and storage
    and products cost O(N r). Build one with :meth:`from_dense`.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> x = np.linspace(0, 1, 1000)
    >>> K = np.exp(-(x[:, None] - x[None, :]) ** 2 / (2 * 0.05**2)) + 1e-2 * np.eye(1000)
    >>> H = hsslin.HSSMatrix.from_dense(K, tol=1e-8)
    >>> H.shape, H.dtype
    ((1000, 1000), dtype('float64'))
    >>> bool(H.relative_error(K) < 1e-8)
    True
    >>> b = np.ones(1000)
    >>> bool(np.allclose(H @ b, K @ b, rtol=1e-6))
    True
    >>> H.compression_ratio > 5
    True
    """

    _impls = _HSS
    from_kernel = classmethod(_kernels.hss_from_kernel)
    from_operator = classmethod(_kernels.hss_from_operator)

    @classmethod
    def from_dense(
        cls,
        A,
        tol: float = HSS_DEFAULTS.tol,
        max_rank: int | None = None,
        leaf_size: int = HSS_DEFAULTS.leaf_size,
        seed: int = HSS_DEFAULTS.seed,
        oversampling: int = HSS_DEFAULTS.oversampling,
        initial_samples: int = HSS_DEFAULTS.initial_samples,
    ) -> HSSMatrix:
        """Compresses a dense matrix to relative Frobenius error about `tol`.

        Parameters
        ----------
        A : array_like, shape (m, n)
            Real matrix. float32 and float64 are kept (the result has the
            same dtype); integer and boolean input is converted to float64,
            float16 to float32. NaN/Inf entries raise ValueError.
        tol : float in (0, 1)
            Target ``||A - H||_F / ||A||_F``. Randomized sampling with
            interpolative decompositions (Martinsson 2011) picks every rank
            adaptively; the achieved error is measured on held-out random
            probes and exposed as :attr:`error_estimate`. In float32 the
            error cannot go much below ~1e-6 (rounding).
        max_rank : int, optional
            Cap on every basis rank. When it binds, the error may exceed
            `tol`; :attr:`error_estimate` says by how much.
        leaf_size : int
            Largest leaf block. Matrices with both sides <= leaf_size are
            stored as a single dense block.
        seed : int
            Seed of the random sampling (results are reproducible).
        oversampling, initial_samples : int
            Extra samples beyond the detected rank, and the first sample size.

        Returns
        -------
        HSSMatrix
            Incompressible input (e.g. iid random entries) is detected from
            the rank growth and kept as a single dense block
            (:attr:`is_dense`), so it never costs more than dense. Products
            with a single dense block run in numpy's BLAS (a read-only view
            of the stored block, no copy), so they cost what a dense product
            costs; they use the BLAS threads, not hsslin's.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> rng = np.random.default_rng(0)
        >>> L = rng.standard_normal((500, 5))
        >>> A = L @ L.T + np.diag(rng.uniform(1, 2, 500))   # low rank plus diagonal
        >>> H = hsslin.HSSMatrix.from_dense(A, tol=1e-10, leaf_size=32)
        >>> bool(max(max(r) for r in H.ranks) <= 6)
        True
        >>> bool(H.error_estimate < 1e-10)
        True
        """
        A = as_float_matrix(A, "A")
        options = hss_options(tol, max_rank, leaf_size, oversampling, initial_samples, seed)
        return cls(_HSS[A.dtype].compress(A, options))

    @property
    def ranks(self) -> list[np.ndarray]:
        """Row-basis ranks per level, from the root's children down to the leaves."""
        return [np.asarray(level, dtype=np.int64) for level in self._impl.level_ranks(False)]

    @property
    def col_ranks(self) -> list[np.ndarray]:
        """Column-basis ranks per level (equal to :attr:`ranks` for symmetric input)."""
        return [np.asarray(level, dtype=np.int64) for level in self._impl.level_ranks(True)]

    @property
    def error_estimate(self) -> float:
        """An estimate of ``||A - H||_F / ||A||_F``, measured at build time on 8 held-out random probes.

        Nested bases leave no block-by-block residual to sum, so unlike
        :attr:`HODLRMatrix.error` this is estimated (see the safety factor in
        tests/conftest.py); :meth:`relative_error` measures the error against
        a dense matrix you pass it.
        """
        return float(self._impl.error_estimate)

    @property
    def tol(self) -> float:
        return float(self._impl.tol)

    @property
    def samples(self) -> int:
        """Random samples the adaptive construction settled on."""
        return int(self._impl.samples)

    @property
    def symmetric(self) -> bool:
        """True when the input was exactly symmetric (sampling was shared)."""
        return bool(self._impl.symmetric)

    def parts(self) -> list[dict]:
        """Copies of every stored factor, node by node in heap order (for adapters).

        Each node's dict holds ``D`` (leaves: the diagonal block), ``U`` and ``V``
        (leaves: the bases; inner nodes: the transfer matrices, so that
        ``U_i = diag(U_a, U_b) @ U``; empty at the root) and ``B12``, ``B21``
        (inner nodes: ``A[I_a, J_b] ~= U_a B12 V_b^T``, ``A[I_b, J_a] ~= U_b B21 V_a^T``);
        a factor a node does not have is an empty array.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> x = np.linspace(0, 1, 200)
        >>> H = hsslin.HSSMatrix.from_dense(np.exp(-np.abs(x[:, None] - x)), tol=1e-6, leaf_size=50)
        >>> parts = H.parts()
        >>> len(parts) == 2 ** (H.levels + 1) - 1, parts[-1]["D"].shape
        (True, (50, 50))
        """
        return self._impl.parts()

    @property
    def is_dense(self) -> bool:
        """True when compression did not pay and the matrix is stored as one dense block."""
        return bool(self._impl.is_dense_fallback)

    def _dense_view(self):
        """A read-only view of the single dense block (one-leaf tree or dense fallback), else None."""
        try:
            return self._dense_block
        except AttributeError:
            self._dense_block = self._impl.dense_view()
            return self._dense_block

    def _apply(self, x, transpose):
        # A single dense block: the platform BLAS beats any kernel of ours on a
        # plain dense product.
        D = self._dense_view()
        if D is None:
            return self._impl.apply(x, transpose)
        return (D.T if transpose else D) @ x

    def _as_float64(self):
        # The same tree, factors, options and estimates, every value widened
        # exactly (HSSMatrix<float>::cast<double> in C++).
        return HSSMatrix(self._impl.to_float64())


class HODLRMatrix(_Hierarchical):
    """Hierarchical off-diagonal low-rank matrix (bases not nested).

    Same tree as :class:`HSSMatrix`; each off-diagonal block
    ``A[I_a, J_b] ~= U V^T`` has its own factors. Ranks come from a
    tolerance or from a schedule: rank `rank` at the root's two blocks,
    multiplied by `rank_decay` at each level down, never below `min_rank` —
    the form of the LLM compression in Kumar & Gupta (arXiv 2601.07839).

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> rng = np.random.default_rng(0)
    >>> W = rng.standard_normal((384, 256)).astype(np.float32)
    >>> H = hsslin.HODLRMatrix.from_dense(W, rank=64, rank_decay=0.5, leaf_size=48)
    >>> [int(r.max()) for r in H.ranks]
    [64, 32, 16]
    >>> H.dtype
    dtype('float32')
    """

    _impls = _HODLR
    from_kernel = classmethod(_kernels.hodlr_from_kernel)

    @classmethod
    def from_dense(
        cls,
        A,
        tol: float | None = None,
        rank: int | None = None,
        rank_decay: float = HODLR_DEFAULTS.rank_decay,
        min_rank: int = HODLR_DEFAULTS.min_rank,
        max_rank: int | None = None,
        leaf_size: int = HODLR_DEFAULTS.leaf_size,
        power_iterations: int = HODLR_DEFAULTS.power_iterations,
        seed: int = HODLR_DEFAULTS.seed,
    ) -> HODLRMatrix:
        """Compresses a dense matrix to a tolerance or to a rank schedule.

        Parameters
        ----------
        A : array_like, shape (m, n)
            Real matrix (dtype rules as in :meth:`HSSMatrix.from_dense`).
        tol : float in (0, 1), optional
            Target relative Frobenius error; each block gets the smallest rank
            that keeps the total within `tol` (the error is exact, not
            estimated: see :attr:`error`). When neither `tol` nor `rank`
            is given: ``HODLROptions.default_tol`` of the core (1e-8).
        rank : int, optional
            Outer rank: the two off-diagonal blocks under the root get this
            rank, each level down ``round(rank * rank_decay**level)``, never
            below `min_rank`. Blocks whose factors would not save bytes are
            kept dense (rank -1 in :attr:`ranks`).
        rank_decay : float in (0, 1]
        min_rank, max_rank : int
            Floor of the schedule; cap for the tolerance mode.
        leaf_size : int
        power_iterations : int
            Subspace iterations of the randomized SVD in schedule mode.
        seed : int

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> x = np.linspace(0, 1, 600)
        >>> K = 1.0 / (1.0 + 100 * np.abs(x[:, None] - x[None, :]))
        >>> H = hsslin.HODLRMatrix.from_dense(K, tol=1e-6)
        >>> bool(H.relative_error(K) <= 1e-6)
        True
        """
        A = as_float_matrix(A, "A")
        options = hodlr_options(tol, rank, rank_decay, min_rank, max_rank, leaf_size, power_iterations, seed)
        return cls(_HODLR[A.dtype].compress(A, options))

    @property
    def ranks(self) -> list[np.ndarray]:
        """Ranks of the off-diagonal blocks per level (root's blocks first); -1 = kept dense."""
        return [np.asarray(level, dtype=np.int64) for level in self._impl.level_ranks()]

    @property
    def error(self) -> float:
        """The relative Frobenius error ``||A - H||_F / ||A||_F`` of the compression: exact.

        Each block's error is measured on its explicit residual at build time
        and the squares are summed, so this is the true error of the stored
        matrix against the input (in working precision), not an estimate as
        :attr:`HSSMatrix.error_estimate` is. :meth:`relative_error` measures
        the error against any dense matrix you pass it.
        """
        return float(self._impl.relative_error)

    @property
    def error_estimate(self) -> float:
        """Deprecated name of :attr:`error` (which is exact, not estimated, for HODLR)."""
        warnings.warn(
            "HODLRMatrix.error_estimate is the exact error; use HODLRMatrix.error",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.error

    @property
    def rank_schedule(self) -> tuple[int, float, int] | None:
        """(rank, rank_decay, min_rank) when built from a schedule, else None."""
        r = int(self._impl.rank)
        return (r, float(self._impl.rank_decay), int(self._impl.min_rank)) if r > 0 else None

    @property
    def rank_decay(self) -> float:
        """The schedule's factor per level, as built (kept by :meth:`from_parts`)."""
        return float(self._impl.rank_decay)

    def parts(self) -> list[dict]:
        """Copy of every stored factor, node by node in heap order (for adapters)."""
        return self._impl.parts()

    def _as_float64(self):
        parts = [{key: _widen_part(value) for key, value in node.items()} for node in self._impl.parts()]
        return HODLRMatrix.from_parts(
            parts, self.shape, self.levels, self.leaf_size, self.rank_decay, self.error
        )

    @staticmethod
    def nbytes_for(shape, dtype, rank, rank_decay, min_rank, leaf_size) -> int:
        """The :attr:`nbytes` of ``from_dense(A, rank=rank, ...)`` for any `shape` `dtype` A.

        Counted by the C++ core from the cluster tree and the rank schedule
        (each block's rank kept to what the block allows, and a block whose
        factors would cost more than its entries counted dense), the rule
        :attr:`nbytes` uses.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> A = np.random.default_rng(0).standard_normal((300, 200))
        >>> H = hsslin.HODLRMatrix.from_dense(A, rank=8, leaf_size=32)
        >>> hsslin.HODLRMatrix.nbytes_for(A.shape, A.dtype, 8, H.rank_decay, 1, 32) == H.nbytes
        True
        """
        rows, cols = shape
        options = hodlr_options(
            rank=check_int(rank, "rank", 1),
            rank_decay=check_rank_decay(rank_decay),
            min_rank=check_int(min_rank, "min_rank", 1),
            leaf_size=check_int(leaf_size, "leaf_size", 1),
        )
        return int(_HODLR[np.dtype(dtype)].nbytes_for(rows, cols, options))

    @classmethod
    def from_parts(cls, parts, shape, levels, leaf_size, rank_decay, error_estimate) -> HODLRMatrix:
        """Rebuilds a matrix from factors laid out as :meth:`parts` returns them (for adapters).

        The dtype is that of the factors; the other arguments are the
        original's ``shape``, ``levels``, ``leaf_size``, ``rank_decay`` and
        ``error_estimate``.
        """
        dtype = np.dtype(parts[-1]["D"].dtype) if len(parts) else None  # the last node is a leaf
        if dtype not in _HODLR:
            raise TypeError(f"parts must hold float32 or float64 factors, got {dtype}")
        rows, cols = shape
        return cls(_HODLR[dtype].from_parts(rows, cols, levels, parts, rank_decay, leaf_size, error_estimate))


def _widen_part(value):
    """A factor (or a block's dict of factors) of a float32 HODLR node, in float64 (exact)."""
    if isinstance(value, dict):
        return {k: _widen_part(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.astype(np.float64)
    return value


class _Permuted:
    """A hierarchical matrix built on a geometric order of its points (``from_kernel``).

    The tree holds ``H[s, t] = A[perm[s], perm[t]]``; products, dense copies,
    solves and log-determinants take and return vectors in the caller's
    order, and files keep the permutation. Per-node views (``ranks``,
    ``parts``) are in the tree's order.
    """

    _base: type = _Hierarchical  # the format without a permutation

    def __init__(self, impl, permutation):
        super().__init__(impl)
        self._perm = _kernels.as_permutation(permutation, self._shape)

    @property
    def permutation(self) -> np.ndarray:
        """Read-only: position ``t`` of the cluster tree holds the caller's point ``perm[t]``."""
        return self._perm

    @property
    def nbytes(self) -> int:
        """Every stored byte, the permutation included."""
        return super().nbytes + int(self._perm.nbytes)

    def _apply(self, x, transpose):
        return _kernels.apply_permuted(super()._apply, self._perm, x, transpose)

    def _dense(self, transpose):
        return _kernels.unpermute_dense(super()._dense(transpose), self._perm)

    def _as_float64(self):
        return type(self)(super()._as_float64()._impl, self._perm)

    def copy(self):
        """Return an independent deep copy."""
        return type(self)(self._impl.copy(), self._perm)

    __copy__ = copy

    def _container_parts(self):
        return {"permutation": self._perm}, {"matrix": self._base(self._impl)}, {}

    @classmethod
    def _from_container(cls, arrays, parts, meta):
        inner = parts["matrix"]
        if type(inner) is not cls._base:
            raise ValueError(f"a {cls.__name__} holds a plain {cls._base.__name__}")
        return cls(inner._impl, arrays["permutation"])


class PermutedHSSMatrix(_Permuted, HSSMatrix):
    """An :class:`HSSMatrix` on a geometric order (see :meth:`HSSMatrix.from_kernel`)."""

    _base = HSSMatrix


class PermutedHODLRMatrix(_Permuted, HODLRMatrix):
    """A :class:`HODLRMatrix` on a geometric order (see :meth:`HODLRMatrix.from_kernel`)."""

    _base = HODLRMatrix


HSSMatrix._permuted_class = PermutedHSSMatrix
HODLRMatrix._permuted_class = PermutedHODLRMatrix
register_core(Kind.HSS, HSSMatrix, _HSS)
register_core(Kind.HODLR, HODLRMatrix, _HODLR)
_PERMUTATION_SCHEMA = dict(arrays=("permutation",))
register_container(
    Kind.PERMUTED_HSS, PermutedHSSMatrix, parts={"matrix": (HSSMatrix,)}, **_PERMUTATION_SCHEMA
)
register_container(
    Kind.PERMUTED_HODLR, PermutedHODLRMatrix, parts={"matrix": (HODLRMatrix,)}, **_PERMUTATION_SCHEMA
)
_from_bytes = from_bytes  # the name pickles written before hsslin._io existed refer to
