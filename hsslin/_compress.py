"""``hsslin.compress``: one entry point for every method, optionally at a byte budget."""

from __future__ import annotations

import math

from ._validation import as_float_matrix, check_int

METHODS = (
    "svd",
    "sparse",
    "sparse+svd",
    "hodlr",
    "hss",
    "sparse+hodlr",
    "sparse+hodlr+rcm",
    "sparse+hss+rcm",
)
_SPLITS = (0.25, 0.5, 0.75)  # shares of the budget tried for the sparse part


def _csr_nbytes(m: int, nnz: int, itemsize: int) -> int:
    from ._sparse import CSRMatrix

    return CSRMatrix.bytes_for(m, nnz, itemsize)


def _max_nnz(m: int, n: int, budget: int, itemsize: int) -> int:
    """Largest nnz whose CSR matrix fits `budget` bytes (bytes are affine in nnz)."""
    base = _csr_nbytes(m, 0, itemsize)
    per = _csr_nbytes(m, 1, itemsize) - base
    return max(0, min(m * n - 1, (budget - base) // per))


def _max_hodlr_rank(m, n, budget, itemsize, leaf_size, rank_decay, min_rank) -> int:
    from ._tree import hodlr_nbytes

    if hodlr_nbytes(m, n, leaf_size, 1, rank_decay, min_rank, itemsize) > budget:
        return 0
    lo, hi = 1, max(1, min(m, n))
    while lo < hi:  # bytes grow with the outer rank
        mid = (lo + hi + 1) // 2
        if hodlr_nbytes(m, n, leaf_size, mid, rank_decay, min_rank, itemsize) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _too_small(method: str, minimum: int, budget: int):
    raise ValueError(
        f"budget_bytes={budget} is too small for method {method!r}: it needs at least {minimum} bytes"
    )


def _best(candidates, W):
    """The candidate with the lowest relative error (candidates: iterable of operators)."""
    best, best_err = None, math.inf
    for op in candidates:
        if op is None:
            continue
        err = op.relative_error(W)
        if err < best_err:
            best, best_err = op, err
    return best


def _fit_hss(W, budget, leaf_size, seed, sparse_part=None, rcm=False):
    """HSS (or sparse + HSS) with the largest rank cap whose result fits the budget.

    A tolerance cannot aim at a size: weight matrices compress poorly in HSS
    form (nested bases need the whole off-diagonal block row to be low
    rank), so any tolerance below 1 may end in the dense fallback. The rank
    cap `max_rank` bounds the size instead; bytes grow with it, so a
    bisection over it finds the largest that fits.
    """
    from ._hierarchical import HSSMatrix
    from ._sparse_plus import SparsePlusHSS

    def build(max_rank):
        if sparse_part is None:
            return HSSMatrix.from_dense(W, tol=1e-6, max_rank=max_rank, leaf_size=leaf_size, seed=seed)
        return SparsePlusHSS.from_dense(
            W,
            sparsity=sparse_part,
            tol=1e-6,
            max_rank=max_rank,
            leaf_size=leaf_size,
            permutation="rcm" if rcm else None,
            hierarchy="hss",
            seed=seed,
        )

    lo, hi = 1, max(1, min(W.shape) // 2)
    best = build(lo)
    if best.nbytes > budget:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        op = build(mid)
        if op.nbytes <= budget:
            best, lo = op, mid
        else:
            hi = mid - 1
    return best


def compress(W, method: str = "sparse+hodlr+rcm", budget_bytes: int | None = None, **params):
    """Compresses a weight matrix with one of several methods, optionally to a byte budget.

    Parameters
    ----------
    W : array_like (m, n)
        Real matrix; float32 stays float32.
    method : str
        ``"svd"`` (truncated SVD, parameter `rank`), ``"sparse"`` (magnitude
        pruning, `sparsity`), ``"sparse+svd"`` (`sparsity`, `rank`,
        `iterations` > 1 for OATS-style alternation), ``"hodlr"`` (`rank`
        schedule with `rank_decay`, or `tol`), ``"hss"`` (`tol`),
        ``"sparse+hodlr"``, ``"sparse+hodlr+rcm"`` (`sparsity`, `rank`,
        `rank_decay`, `rcm_pattern`), ``"sparse+hss+rcm"`` (`sparsity`, `tol`).
        Every method also takes `leaf_size` where it applies and `seed`.
    budget_bytes : int, optional
        When given, the method chooses its own parameters so that
        ``result.nbytes <= budget_bytes`` (always holds; ValueError stating
        the minimum when nothing fits). Split methods try sparse shares of
        25/50/75% of the budget and keep the most accurate.

    Returns
    -------
    An operator with ``@``, ``.T``, ``nbytes``, ``to_dense()`` and
    ``relative_error(W)``.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> rng = np.random.default_rng(0)
    >>> W = rng.standard_normal((128, 96)).astype(np.float32)
    >>> A = hsslin.compress(W, "svd", budget_bytes=W.nbytes // 2)
    >>> A.nbytes <= W.nbytes // 2
    True
    >>> B = hsslin.compress(W, "sparse+hodlr+rcm", budget_bytes=W.nbytes // 2, leaf_size=32)
    >>> B.nbytes <= W.nbytes // 2, B.shape
    (True, (128, 96))
    """
    from ._hierarchical import HODLRMatrix, HSSMatrix
    from ._lowrank import LowRankMatrix, SparsePlusLowRank
    from ._sparse import CSRMatrix
    from ._sparse_plus import SparsePlusHSS

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    W = as_float_matrix(W, "W")
    m, n = W.shape
    s = W.dtype.itemsize
    leaf_size = check_int(params.pop("leaf_size", 64), "leaf_size", 1)
    seed = params.pop("seed", 0)
    rank_decay = params.pop("rank_decay", 0.5)
    min_rank = params.pop("min_rank", 1)
    if budget_bytes is None:
        return _compress_with_params(W, method, leaf_size, seed, rank_decay, min_rank, params)
    budget = check_int(budget_bytes, "budget_bytes", 1)
    unknown = set(params) - {"iterations", "rcm_pattern"}
    if unknown:
        raise ValueError(
            f"with budget_bytes the method picks its own parameters; remove {', '.join(sorted(unknown))}"
        )
    iterations = params.get("iterations", 1)
    rcm_pattern = params.get("rcm_pattern", "residual")

    if method == "svd":
        r = (budget - LowRankMatrix.bytes_for(m, n, 0, s)) // ((m + n) * s)
        if r < 1:
            _too_small(method, LowRankMatrix.bytes_for(m, n, 1, s), budget)
        return LowRankMatrix.from_dense(W, rank=min(r, min(m, n)))
    if method == "sparse":
        nnz = _max_nnz(m, n, budget, s)
        if nnz < 1:
            _too_small(method, _csr_nbytes(m, 1, s), budget)
        return CSRMatrix.from_dense(W, sparsity=nnz / (m * n) * (1 - 1e-12))
    if method == "hodlr":
        r = _max_hodlr_rank(m, n, budget, s, leaf_size, rank_decay, min_rank)
        if r < 1:
            from ._tree import hodlr_nbytes

            _too_small(method, hodlr_nbytes(m, n, leaf_size, 1, rank_decay, min_rank, s), budget)
        return HODLRMatrix.from_dense(
            W, rank=r, rank_decay=rank_decay, min_rank=min_rank, leaf_size=leaf_size, seed=seed
        )
    if method == "hss":
        op = _fit_hss(W, budget, leaf_size, seed)
        if op is None:
            _too_small(
                method, HSSMatrix.from_dense(W, tol=1e-6, max_rank=1, leaf_size=leaf_size).nbytes, budget
            )
        return op

    # Split methods: part of the budget to S, the rest to the low-rank part.
    candidates = []
    for share in _SPLITS:
        nnz = _max_nnz(m, n, int(budget * share), s)
        if nnz < 1:
            continue
        sparsity = nnz / (m * n) * (1 - 1e-12)
        rest = budget - _csr_nbytes(m, nnz, s)
        if method == "sparse+svd":
            r = (rest - LowRankMatrix.bytes_for(m, n, 0, s)) // ((m + n) * s)
            if r >= 1:
                candidates.append(
                    SparsePlusLowRank.from_dense(
                        W, sparsity=sparsity, rank=min(r, min(m, n)), iterations=iterations
                    )
                )
        elif method in ("sparse+hodlr", "sparse+hodlr+rcm"):
            perm_bytes = (m + n) * 4 if method.endswith("rcm") else 0
            r = _max_hodlr_rank(m, n, rest - perm_bytes, s, leaf_size, rank_decay, min_rank)
            if r >= 1:
                candidates.append(
                    SparsePlusHSS.from_dense(
                        W,
                        sparsity=sparsity,
                        rank=r,
                        rank_decay=rank_decay,
                        min_rank=min_rank,
                        leaf_size=leaf_size,
                        permutation="rcm" if method.endswith("rcm") else None,
                        rcm_pattern=rcm_pattern,
                        seed=seed,
                    )
                )
        else:  # sparse+hss+rcm
            op = _fit_hss(W, budget, leaf_size, seed, sparse_part=sparsity, rcm=True)
            if op is not None and rcm_pattern != "residual":
                op = None  # the HSS split always orders by the residual's pattern
            if op is not None:
                candidates.append(op)
    best = _best([c for c in candidates if c.nbytes <= budget], W)
    if best is None:
        raise ValueError(
            f"budget_bytes={budget} is too small for method {method!r}: the "
            f"smallest split tried needs more (dense is {W.nbytes} bytes)"
        )
    return best


def _compress_with_params(W, method, leaf_size, seed, rank_decay, min_rank, params):
    from ._hierarchical import HODLRMatrix, HSSMatrix
    from ._lowrank import LowRankMatrix, SparsePlusLowRank
    from ._sparse import CSRMatrix
    from ._sparse_plus import SparsePlusHSS

    def need(*names):
        missing = [k for k in names if k not in params]
        if missing:
            raise ValueError(f"method {method!r} needs {', '.join(missing)} (or pass budget_bytes)")

    allowed = {
        "svd": {"rank"},
        "sparse": {"sparsity", "per_row"},
        "sparse+svd": {"sparsity", "rank", "iterations", "per_row"},
        "hodlr": {"rank", "tol", "max_rank", "power_iterations"},
        "hss": {"tol", "max_rank"},
        "sparse+hodlr": {"sparsity", "rank", "tol", "max_rank"},
        "sparse+hodlr+rcm": {"sparsity", "rank", "tol", "max_rank", "rcm_pattern"},
        "sparse+hss+rcm": {"sparsity", "tol", "max_rank", "rcm_pattern"},
    }[method]
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"method {method!r} does not take {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    if method == "svd":
        need("rank")
        return LowRankMatrix.from_dense(W, **params)
    if method == "sparse":
        need("sparsity")
        return CSRMatrix.from_dense(W, **params)
    if method == "sparse+svd":
        need("sparsity", "rank")
        return SparsePlusLowRank.from_dense(W, **params)
    if method == "hodlr":
        return HODLRMatrix.from_dense(
            W, rank_decay=rank_decay, min_rank=min_rank, leaf_size=leaf_size, seed=seed, **params
        )
    if method == "hss":
        return HSSMatrix.from_dense(W, leaf_size=leaf_size, seed=seed, **params)
    need("sparsity")
    hierarchy = "hss" if "hss" in method else "hodlr"
    return SparsePlusHSS.from_dense(
        W,
        rank_decay=rank_decay,
        min_rank=min_rank,
        leaf_size=leaf_size,
        seed=seed,
        hierarchy=hierarchy,
        permutation="rcm" if method.endswith("rcm") else None,
        **params,
    )
