"""HSSMatrix and HODLRMatrix: the hierarchical formats users build and apply."""

from __future__ import annotations

import os

import numpy as np

from . import _kernels, _registry
from ._factor import factorize
from ._loader import core as _core
from ._operator import LinearOperatorMixin
from ._validation import as_float_matrix, check_int, check_seed, check_tol

_HSS = {np.dtype(np.float32): _core.HSSMatrix32, np.dtype(np.float64): _core.HSSMatrix64}
_HODLR = {np.dtype(np.float32): _core.HODLRMatrix32, np.dtype(np.float64): _core.HODLRMatrix64}


class _Hierarchical(LinearOperatorMixin):
    """Common behaviour of the two tree formats (wraps a C++ object)."""

    _kinds: dict = {}

    def __init__(self, impl, permutation=None):
        if type(impl) not in self._kinds.values():
            raise TypeError(
                f"use {type(self).__name__}.from_dense(...) or hsslin.load(...) "
                f"to create a {type(self).__name__}"
            )
        self._impl = impl
        # Read once: a product checks both, and a product on cold caches pays
        # for every call into the extension (see docs/bench_hss.md).
        self._shape = (int(impl.rows), int(impl.cols))
        self._dtype = np.dtype(np.float32) if "32" in type(impl).__name__ else np.dtype(np.float64)
        self._perm = _kernels.as_permutation(permutation, self._shape)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the represented matrix."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """float32 or float64."""
        return self._dtype

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
        return int(self._impl.leaf_size)

    @property
    def permutation(self) -> np.ndarray | None:
        """Read-only: point ``perm[t]`` is at position ``t`` of the cluster tree (from_kernel),
        or None when the tree follows the caller's order. Products, solves and
        log-determinants always take and return vectors in the caller's order."""
        return self._perm

    def factor(self, symmetric: bool = False):
        """Factors the (square) matrix for solves and log-determinants.

        ``symmetric=True`` runs the Cholesky-type variant, which needs a
        symmetric positive definite matrix; see :class:`hsslin.Factorization`.
        """
        return factorize(self, symmetric)

    def _apply(self, x, transpose):
        if self._perm is not None:
            return _kernels.apply_permuted(self._apply_tree, self._perm, x, transpose)
        return self._apply_tree(x, transpose)

    def _apply_tree(self, x, transpose):
        return self._impl.apply(x, transpose)

    def _dense(self, transpose):
        D = self._impl.to_dense(transpose)
        return D if self._perm is None else _kernels.unpermute_dense(D, self._perm)

    def copy(self):
        """Returns an independent deep copy."""
        return type(self)(self._impl.copy(), self._perm)

    __copy__ = copy

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_from_bytes, (self.to_bytes(),))

    def to_bytes(self) -> bytes:
        """The versioned, checksummed binary form that `save` writes."""
        return _kernels.permuted_bytes(self._impl.serialize(), self._perm, self._dtype)

    @classmethod
    def _from_container(cls, arrays, blobs, meta=None):
        # A matrix saved with its geometric permutation (kind _kernels.PERMUTED_KIND).
        inner = _from_bytes(blobs["matrix"])
        return type(inner)(inner._impl, arrays["permutation"])

    def save(self, path) -> None:
        """Writes the matrix to `path` (versioned format, checked by `hsslin.load`)."""
        data = self.to_bytes()
        tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


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

    _kinds = _HSS
    from_kernel = classmethod(_kernels.hss_from_kernel)
    from_operator = classmethod(_kernels.hss_from_operator)

    @classmethod
    def from_dense(
        cls,
        A,
        tol: float = 1e-8,
        max_rank: int | None = None,
        leaf_size: int = 64,
        seed: int = 0,
        oversampling: int = 10,
        initial_samples: int = 48,
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
        tol = check_tol(tol)
        max_rank = check_int(max_rank, "max_rank", 1, allow_none=True)
        leaf_size = check_int(leaf_size, "leaf_size", 1)
        oversampling = check_int(oversampling, "oversampling", 2)
        initial_samples = check_int(initial_samples, "initial_samples", 1)
        impl = _HSS[A.dtype].compress(
            A, tol, max_rank or 0, leaf_size, oversampling, initial_samples, check_seed(seed)
        )
        return cls(impl)

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
        """Relative Frobenius error measured at build time on 8 held-out random probes."""
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

    @property
    def is_dense(self) -> bool:
        """True when compression did not pay and the matrix is stored as one dense block."""
        return bool(self._impl.is_dense_fallback)

    def _apply_tree(self, x, transpose):
        # A single dense block (one-leaf tree or dense fallback): the platform BLAS
        # beats any kernel of ours on a plain dense product.
        try:
            D = self._dense_block
        except AttributeError:
            D = self._dense_block = self._impl.dense_view()
        if D is None:
            return self._impl.apply(x, transpose)
        return (D.T if transpose else D) @ x


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

    _kinds = _HODLR
    from_kernel = classmethod(_kernels.hodlr_from_kernel)

    @classmethod
    def from_dense(
        cls,
        A,
        tol: float | None = None,
        rank: int | None = None,
        rank_decay: float = 0.5,
        min_rank: int = 1,
        max_rank: int | None = None,
        leaf_size: int = 64,
        power_iterations: int = 2,
        seed: int = 0,
    ) -> HODLRMatrix:
        """Compresses a dense matrix to a tolerance or to a rank schedule.

        Parameters
        ----------
        A : array_like, shape (m, n)
            Real matrix (dtype rules as in :meth:`HSSMatrix.from_dense`).
        tol : float in (0, 1), optional
            Target relative Frobenius error; each block gets the smallest rank
            that keeps the total within `tol` (the error is exact, not
            estimated: see :attr:`error_estimate`). Default 1e-8 when neither
            `tol` nor `rank` is given.
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
        if tol is not None and rank is not None:
            raise ValueError("give either tol or rank (a rank schedule), not both")
        if tol is None and rank is None:
            tol = 1e-8
        tol = check_tol(tol) if tol is not None else 0.0
        rank = check_int(rank, "rank", 1, allow_none=True) or 0
        if (
            isinstance(rank_decay, bool)
            or not isinstance(rank_decay, (int, float))
            or not (0.0 < float(rank_decay) <= 1.0)
        ):
            raise ValueError(f"rank_decay must be in (0, 1], got {rank_decay!r}")
        min_rank = check_int(min_rank, "min_rank", 1)
        max_rank = check_int(max_rank, "max_rank", 1, allow_none=True) or 0
        leaf_size = check_int(leaf_size, "leaf_size", 1)
        power_iterations = check_int(power_iterations, "power_iterations", 0)
        impl = _HODLR[A.dtype].compress(
            A, tol, rank, float(rank_decay), min_rank, max_rank, leaf_size, power_iterations, check_seed(seed)
        )
        return cls(impl)

    @property
    def ranks(self) -> list[np.ndarray]:
        """Ranks of the off-diagonal blocks per level (root's blocks first); -1 = kept dense."""
        return [np.asarray(level, dtype=np.int64) for level in self._impl.level_ranks()]

    @property
    def error_estimate(self) -> float:
        """Relative Frobenius error of the compression (exact: summed block by block)."""
        return float(self._impl.relative_error)

    @property
    def rank_schedule(self) -> tuple[int, float, int] | None:
        """(rank, rank_decay, min_rank) when built from a schedule, else None."""
        r = int(self._impl.rank)
        return (r, float(self._impl.rank_decay), int(self._impl.min_rank)) if r > 0 else None

    def parts(self) -> list[dict]:
        """Copies of every stored factor, node by node in heap order (for adapters)."""
        return self._impl.parts()


_KIND_CLASSES = {1: (HSSMatrix, _HSS), 2: (HODLRMatrix, _HODLR)}
_registry.register_container(_kernels.PERMUTED_KIND, _Hierarchical)
_MAGIC = b"HSSLIN\x00\n"


def _from_bytes(data: bytes):
    if len(data) < 40 or data[:8] != _MAGIC:
        raise ValueError("not an hsslin file (bad magic number or shorter than the header)")
    kind = int.from_bytes(data[12:16], "little")
    scalar = int.from_bytes(data[16:20], "little")
    from . import _registry

    if kind in _registry._CONTAINERS:
        from ._container import read_container

        cls = _registry._CONTAINERS[kind]
        arrays, blobs, meta = read_container(data, kind)
        return cls._from_container(arrays, blobs, **({"meta": meta} if meta else {}))
    if kind in _KIND_CLASSES:
        cls, impls = _KIND_CLASSES[kind]
    else:
        cls, impls = _registry.lookup(kind)
    dtype = {4: np.dtype(np.float32), 8: np.dtype(np.float64)}.get(scalar)
    if dtype is None:
        raise ValueError(f"corrupted file: scalar size {scalar}")
    return cls(impls[dtype].deserialize(data))


def load(path):
    """Reads an object written by ``save`` and checks its version and checksum.

    Raises ValueError for a file that is not an hsslin file, is truncated or
    corrupted, or was written by a newer format version.

    Examples
    --------
    >>> import numpy as np, hsslin, tempfile, os
    >>> H = hsslin.HSSMatrix.from_dense(np.eye(100) + 0.01)
    >>> path = os.path.join(tempfile.mkdtemp(), "eye.hss")
    >>> H.save(path)
    >>> H2 = hsslin.load(path)
    >>> bool(np.array_equal(H2.to_dense(), H.to_dense()))
    True
    """
    with open(path, "rb") as f:
        data = f.read()
    return _from_bytes(data)
