"""Sparse plus hierarchical: ``W ~= S + P_r^T H P_c`` (Kumar & Gupta, arXiv 2601.07839).

S keeps the largest-magnitude weights (CSR); P_r, P_c are reverse
Cuthill-McKee orders that pull the heavy remaining weights toward the
diagonal; H is a hierarchical (HODLR or HSS) form of the permuted residual.
"""

from __future__ import annotations

import numpy as np

from ._hierarchical import HODLRMatrix, HSSMatrix
from ._io import Kind, Persistent, register_container
from ._loader import core as _core
from ._operator import LinearOperatorMixin
from ._sparse import CSRMatrix, reverse_cuthill_mckee
from ._validation import as_float_matrix, check_int, check_rank_decay, check_sparsity, check_tol

_fused_apply = _core.sparse_plus_apply
_FUSED = (HODLRMatrix, HSSMatrix)  # the H types the fused C++ product takes
PERMUTATION_DTYPE = np.dtype(np.int32)  # how row_perm and col_perm are stored (and counted in nbytes)

_PERMUTATIONS = (None, "rcm")
_PATTERNS = ("residual", "sparse")
_HIERARCHIES = ("hodlr", "hss")


def _as_permutation(perm, size: int, name: str):
    """`perm` as a read-only int32 array holding each of 0..size-1 once, or None."""
    if perm is None:
        return None
    p = np.asarray(perm)
    if p.dtype.kind not in "iu" or p.shape != (size,):
        raise ValueError(
            f"{name} must be a permutation of range({size}), got {p.dtype} array of shape {p.shape}"
        )
    if size and (p.min() < 0 or p.max() >= size):
        raise ValueError(
            f"{name} must be a permutation of range({size}); it holds {int(p.min())}..{int(p.max())}"
        )
    if np.bincount(p.astype(np.int64), minlength=size).max(initial=1) != 1:
        raise ValueError(f"{name} must be a permutation of range({size}); it repeats an index")
    p = np.array(p, dtype=PERMUTATION_DTYPE)  # a copy of our own: the caller's array may change later
    p.flags.writeable = False
    return p


def rcm_orders(pattern_source: np.ndarray, density: float):
    """RCM row and column orders of the pattern of the heaviest `density` share of entries."""
    m, n = pattern_source.shape
    density = min(max(density, 4.0 / (m * n)), 0.5)
    P = CSRMatrix.from_dense(pattern_source, sparsity=density)
    order = reverse_cuthill_mckee(P.to_scipy())
    if m == n and not isinstance(order, tuple):
        return np.asarray(order, dtype=PERMUTATION_DTYPE), np.asarray(order, dtype=PERMUTATION_DTYPE)
    rows, cols = order
    return np.asarray(rows, dtype=PERMUTATION_DTYPE), np.asarray(cols, dtype=PERMUTATION_DTYPE)


class SparsePlusHSS(LinearOperatorMixin, Persistent):
    """``W ~= S + P_r^T H P_c``: sparse, permutations, hierarchical residual.

    Products compute ``y = S x`` and ``y[row_perm] += H (x[col_perm])``.
    :attr:`nbytes` counts S's values, indices and row pointers, both
    permutations and every byte of H.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> rng = np.random.default_rng(0)
    >>> W = rng.standard_normal((256, 256)).astype(np.float32) / 16
    >>> A = hsslin.SparsePlusHSS.from_dense(W, sparsity=0.1, rank=32, leaf_size=32)
    >>> A.shape, A.dtype
    ((256, 256), dtype('float32'))
    >>> bool(np.allclose(A @ np.ones(256, np.float32), A.to_dense() @ np.ones(256), atol=1e-4))
    True
    """

    def __init__(self, S, H, row_perm=None, col_perm=None, meta: dict | None = None):
        if not isinstance(S, CSRMatrix) or not isinstance(H, LinearOperatorMixin):
            raise TypeError(
                f"S must be a CSRMatrix and H an hsslin operator, got {type(S).__name__} "
                f"and {type(H).__name__}"
            )
        if S.shape != H.shape or S.dtype != H.dtype:
            raise ValueError(f"S is {S.shape} {S.dtype} but H is {H.shape} {H.dtype}")
        m, n = S.shape
        self._S, self._H = S, H
        self._row_perm = _as_permutation(row_perm, m, "row_perm")
        self._col_perm = _as_permutation(col_perm, n, "col_perm")
        self.meta = dict(meta or {})

    @property
    def S(self) -> CSRMatrix:
        """The sparse part (the largest-magnitude weights)."""
        return self._S

    @property
    def H(self):
        """The part that approximates the permuted residual (:class:`HODLRMatrix` or :class:`HSSMatrix`
        when built by :meth:`from_dense`; any hsslin operator of S's shape and dtype otherwise)."""
        return self._H

    @property
    def row_perm(self) -> np.ndarray | None:
        """Read-only int32 row order (None: the identity).

        ``A[row_perm][:, col_perm] == S[row_perm][:, col_perm] + H`` for the represented A.
        """
        return self._row_perm

    @property
    def col_perm(self) -> np.ndarray | None:
        """Read-only int32 column order (see :attr:`row_perm`); None: identity."""
        return self._col_perm

    @classmethod
    def from_dense(
        cls,
        W,
        sparsity: float = 0.1,
        rank: int | None = None,
        rank_decay: float = 0.5,
        leaf_size: int = 64,
        tol: float | None = None,
        permutation: str | None = "rcm",
        hierarchy: str = "hodlr",
        rcm_pattern: str = "residual",
        min_rank: int = 1,
        max_rank: int | None = None,
        seed: int = 0,
    ) -> SparsePlusHSS:
        """Splits W into its heaviest entries plus a permuted hierarchical residual.

        Parameters
        ----------
        W : array_like (m, n)
        sparsity : float in [0, 1)
            Share of entries kept in S (``ceil(sparsity * m * n)`` largest |w|).
        rank, rank_decay, min_rank : HODLR rank schedule (outer rank at the
            root, multiplied by rank_decay per level). Exactly one of `rank`
            and `tol` may be given; with neither, tol = 1e-8.
        max_rank : int, optional
            Rank cap with `tol` (HSS: every basis; HODLR: every block).
        tol : float, optional
            Relative tolerance for H on the residual (HODLR or HSS).
        permutation : "rcm" or None
        hierarchy : "hodlr" or "hss" (HSS takes `tol`, not a rank schedule).
        rcm_pattern : "residual" (default) or "sparse"
            Which pattern RCM orders: the heaviest entries of the residual
            W - S (at the same density as S), or S itself. The residual
            pattern gave lower error at equal bytes in our measurements
            (docs/bench_weights.md).
        """
        W = as_float_matrix(W, "W")
        sparsity = check_sparsity(sparsity)
        rank_decay = check_rank_decay(rank_decay)
        if tol is not None:
            tol = check_tol(tol)
        if permutation not in _PERMUTATIONS:
            raise ValueError(f"permutation must be 'rcm' or None, got {permutation!r}")
        if hierarchy not in _HIERARCHIES:
            raise ValueError(f"hierarchy must be 'hodlr' or 'hss', got {hierarchy!r}")
        if rcm_pattern not in _PATTERNS:
            raise ValueError(f"rcm_pattern must be 'residual' or 'sparse', got {rcm_pattern!r}")
        if rank is not None and tol is not None:
            raise ValueError("give either rank (a schedule) or tol, not both")
        if hierarchy == "hss" and rank is not None:
            raise ValueError("hierarchy='hss' is built to a tolerance: pass tol, not rank")
        if rank is not None:
            rank = check_int(rank, "rank", 1)
        S = CSRMatrix.from_dense(W, sparsity=sparsity)
        R = W - S.to_dense()
        row_perm = col_perm = None
        if permutation == "rcm":
            source = np.abs(R) if rcm_pattern == "residual" else np.abs(S.to_dense())
            row_perm, col_perm = rcm_orders(source, max(sparsity, 0.02))
            R = R[np.ix_(row_perm, col_perm)]
        R = np.ascontiguousarray(R)
        if hierarchy == "hss":
            H = HSSMatrix.from_dense(
                R, tol=1e-8 if tol is None else tol, max_rank=max_rank, leaf_size=leaf_size, seed=seed
            )
        else:
            H = HODLRMatrix.from_dense(
                R,
                tol=tol,
                rank=rank,
                rank_decay=rank_decay,
                min_rank=min_rank,
                max_rank=max_rank,
                leaf_size=leaf_size,
                seed=seed,
            )
        meta = {
            "sparsity": sparsity,
            "rank": rank,
            "rank_decay": rank_decay,
            "tol": tol,
            "permutation": permutation,
            "hierarchy": hierarchy,
            "rcm_pattern": rcm_pattern,
            "leaf_size": H.leaf_size,
        }
        return cls(S, H, row_perm, col_perm, meta)

    @property
    def shape(self):
        """(rows, columns)."""
        return self._S.shape

    @property
    def dtype(self):
        """float32 or float64 (both parts')."""
        return self._H.dtype

    @property
    def nbytes(self) -> int:
        """S's values, indices and row pointers, both permutations and every byte of H."""
        perms = sum(p.nbytes for p in (self._row_perm, self._col_perm) if p is not None)
        return int(self._S.nbytes + self._H.nbytes + perms)

    def _apply(self, x, transpose):
        # A = S + Pr^T H Pc:  A x = S x + scatter_r(H gather_c(x));
        # A^T x = S^T x + scatter_c(H^T gather_r(x)). With a hierarchical H one C++
        # call does all four steps (GIL released once, no Python temporaries).
        if isinstance(self._H, _FUSED):
            return _fused_apply(self._S._impl, self._H._impl, self._row_perm, self._col_perm, x, transpose)
        gather = self._row_perm if transpose else self._col_perm
        scatter = self._col_perm if transpose else self._row_perm
        y = self._S._apply(x, transpose)
        z = self._H._apply(x if gather is None else np.ascontiguousarray(x[gather]), transpose)
        if scatter is None:
            y += z
        else:
            y[scatter] += z
        return y

    def _as_float64(self):
        return SparsePlusHSS(
            self._S._widened(), self._H._widened(), self._row_perm, self._col_perm, self.meta
        )

    def _dense(self, transpose):
        D = self._S.to_dense()
        m, n = D.shape
        rows = np.arange(m) if self._row_perm is None else self._row_perm
        cols = np.arange(n) if self._col_perm is None else self._col_perm
        D[np.ix_(rows, cols)] += self._H.to_dense()
        return np.ascontiguousarray(D.T) if transpose else D

    def _container_parts(self):
        arrays = {
            name: p
            for name, p in (("row_perm", self._row_perm), ("col_perm", self._col_perm))
            if p is not None
        }
        return arrays, {"S": self._S, "H": self._H}, self.meta

    @classmethod
    def _from_container(cls, arrays, parts, meta):
        return cls(parts["S"], parts["H"], arrays.get("row_perm"), arrays.get("col_perm"), meta)


register_container(
    Kind.SPARSE_PLUS_HSS,
    SparsePlusHSS,
    optional_arrays=("row_perm", "col_perm"),
    parts={"S": (CSRMatrix,), "H": (LinearOperatorMixin,)},
)
