"""Sparse plus hierarchical: ``W ~= S + P_r^T H P_c`` (Kumar & Gupta, arXiv 2601.07839).

S keeps the largest-magnitude weights (CSR); P_r, P_c are reverse
Cuthill-McKee orders that pull the heavy remaining weights toward the
diagonal; H is a hierarchical (HODLR or HSS) form of the permuted residual.
"""

from __future__ import annotations

import numpy as np

from ._container import write_container
from ._loader import core as _core
from ._operator import LinearOperatorMixin
from ._validation import as_float_matrix, check_int

_fused_apply = _core.sparse_plus_apply

_PERMUTATIONS = (None, "rcm")
_PATTERNS = ("residual", "sparse")
_HIERARCHIES = ("hodlr", "hss")


def _check_sparsity(sparsity) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.floating)):
        raise TypeError(f"sparsity must be a number in [0, 1), got {type(sparsity).__name__}")
    sparsity = float(sparsity)
    if not (0.0 <= sparsity < 1.0):
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return sparsity


def rcm_orders(pattern_source: np.ndarray, density: float):
    """RCM row and column orders of the pattern of the heaviest `density` share of entries."""
    from ._sparse import CSRMatrix, reverse_cuthill_mckee

    m, n = pattern_source.shape
    density = min(max(density, 4.0 / (m * n)), 0.5)
    P = CSRMatrix.from_dense(pattern_source, sparsity=density)
    order = reverse_cuthill_mckee(P.to_scipy())
    if m == n and not isinstance(order, tuple):
        return np.asarray(order, dtype=np.int32), np.asarray(order, dtype=np.int32)
    rows, cols = order
    return np.asarray(rows, dtype=np.int32), np.asarray(cols, dtype=np.int32)


class SparsePlusHSS(LinearOperatorMixin):
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
        if S.shape != H.shape:
            raise ValueError(f"S has shape {S.shape} but H has shape {H.shape}")
        m, n = S.shape
        for name, perm, size in (("row_perm", row_perm, m), ("col_perm", col_perm, n)):
            if perm is not None:
                p = np.asarray(perm)
                if p.shape != (size,) or not np.array_equal(np.sort(p), np.arange(size)):
                    raise ValueError(f"{name} must be a permutation of range({size})")
        self.S, self.H = S, H
        self.row_perm = None if row_perm is None else np.ascontiguousarray(row_perm, np.int32)
        self.col_perm = None if col_perm is None else np.ascontiguousarray(col_perm, np.int32)
        self.meta = dict(meta or {})

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
        from ._hierarchical import HODLRMatrix, HSSMatrix
        from ._sparse import CSRMatrix

        W = as_float_matrix(W, "W")
        sparsity = _check_sparsity(sparsity)
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
            "leaf_size": leaf_size,
        }
        return cls(S, H, row_perm, col_perm, meta)

    @property
    def shape(self):
        return self.S.shape

    @property
    def dtype(self):
        return self.H.dtype

    @property
    def nbytes(self) -> int:
        perms = sum(p.nbytes for p in (self.row_perm, self.col_perm) if p is not None)
        return int(self.S.nbytes + self.H.nbytes + perms)

    def _apply(self, x, transpose):
        # A = S + Pr^T H Pc:  A x = S x + scatter_r(H gather_c(x));
        # A^T x = S^T x + scatter_c(H^T gather_r(x)). One C++ call does all four
        # steps (GIL released once, no Python temporaries).
        # The parts it takes are looked up on each call (S, H and the orders are
        # plain attributes a caller may replace); only the Python work of
        # finding them is kept short, as it is paid again on cold caches.
        S, H = self.S, self.H
        S_impl = getattr(S, "_S", None)
        H_impl = getattr(H, "_impl", None)
        if S_impl is not None and H_impl is not None and S.dtype == H.dtype:
            return _fused_apply(S_impl, H_impl, self.row_perm, self.col_perm, x, transpose)
        gather = self.row_perm if transpose else self.col_perm
        scatter = self.col_perm if transpose else self.row_perm
        y = self.S._apply(x, transpose)
        xp = x if gather is None else np.ascontiguousarray(x[gather])
        z = self.H._apply(xp, transpose)
        if scatter is None:
            y += z
        else:
            y[scatter] += z
        return y

    def _dense(self, transpose):
        D = self.S.to_dense()
        Hd = self.H.to_dense()
        if self.row_perm is None:
            D += Hd
        else:
            D[np.ix_(self.row_perm, self.col_perm)] += Hd
        return np.ascontiguousarray(D.T) if transpose else D

    def to_bytes(self) -> bytes:
        arrays = {}
        if self.row_perm is not None:
            arrays = {"row_perm": self.row_perm, "col_perm": self.col_perm}
        return write_container(
            7, self.dtype, arrays, {"S": self.S.to_bytes(), "H": self.H.to_bytes()}, self.meta
        )

    @classmethod
    def _from_container(cls, arrays, blobs, meta=None):
        from ._hierarchical import _from_bytes

        return cls(
            _from_bytes(blobs["S"]),
            _from_bytes(blobs["H"]),
            arrays.get("row_perm"),
            arrays.get("col_perm"),
            meta,
        )

    def save(self, path) -> None:
        with open(path, "wb") as f:
            f.write(self.to_bytes())


def _register():
    from . import _registry

    _registry.register_container(7, SparsePlusHSS)


_register()
