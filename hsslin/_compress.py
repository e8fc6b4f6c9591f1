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


def _fit_hss(W, budget, leaf_size, seed, sparse_part=None, rcm=False, rcm_pattern="residual"):
    """HSS (or sparse + HSS) under a rank cap chosen to fit the budget; None when even cap 1 does not.

    A tolerance cannot aim at a size: weight matrices compress poorly in HSS
    form (nested bases need the whole off-diagonal block row to be low
    rank), so any tolerance below 1 may end in the dense fallback. The rank
    cap `max_rank` bounds the size instead; bytes grow with it, so a
    bisection over it finds the largest cap that fits. The error, though,
    need not fall as the cap grows: a cap truncates every basis below the
    tolerance's rank, and with nested bases the truncations compound up the
    tree. So every cap the bisection built that fits is a candidate, and the
    most accurate one is returned (measured against W).
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
            rcm_pattern=rcm_pattern,
            seed=seed,
        )

    lo, hi = 1, max(1, min(W.shape) // 2)
    first = build(lo)
    if first.nbytes > budget:
        return None
    fitting = [first]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        op = build(mid)
        if op.nbytes <= budget:
            fitting.append(op)
            lo = mid
        else:
            hi = mid - 1
    return _best(fitting, W)


def compress(W, method: str = "sparse+hodlr+rcm", budget_bytes: int | None = None, **params):
    """Compresses a weight matrix with one of several methods, optionally to a byte budget.

    Parameters
    ----------
    W : array_like (m, n)
        Real matrix; float32 stays float32.
    method : str
        ``"svd"`` (truncated SVD, parameter `rank`; with `input_gram` =
        X^T X of calibration inputs, activation-aware: it minimises the
        output error ``||(W - A) X^T||_F``), ``"sparse"`` (magnitude
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
    unknown = set(params) - {"iterations", "rcm_pattern", "input_gram"}
    if unknown:
        raise ValueError(
            f"with budget_bytes the method picks its own parameters; remove {', '.join(sorted(unknown))}"
        )
    if "input_gram" in params and method != "svd":
        raise ValueError(f"input_gram (activation-aware compression) applies to method 'svd', not {method!r}")
    iterations = params.get("iterations", 1)
    rcm_pattern = params.get("rcm_pattern", "residual")

    if method == "svd":
        r = (budget - LowRankMatrix.bytes_for(m, n, 0, s)) // ((m + n) * s)
        if r < 1:
            _too_small(method, LowRankMatrix.bytes_for(m, n, 1, s), budget)
        return LowRankMatrix.from_dense(W, rank=min(r, min(m, n)), input_gram=params.get("input_gram"))
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
    rcm = method.endswith("rcm")
    perm_bytes = (m + n) * 4 if rcm else 0

    def split(nnz):
        """The split with `nnz` sparse entries and the largest low-rank part that fits (or None)."""
        sparsity = nnz / (m * n) * (1 - 1e-12)
        rest = budget - _csr_nbytes(m, nnz, s)
        if method == "sparse+svd":
            r = (rest - LowRankMatrix.bytes_for(m, n, 0, s)) // ((m + n) * s)
            if r < 1:
                return None
            return SparsePlusLowRank.from_dense(
                W, sparsity=sparsity, rank=min(r, min(m, n)), iterations=iterations
            )
        if method in ("sparse+hodlr", "sparse+hodlr+rcm"):
            r = _max_hodlr_rank(m, n, rest - perm_bytes, s, leaf_size, rank_decay, min_rank)
            if r < 1:
                return None
            return SparsePlusHSS.from_dense(
                W,
                sparsity=sparsity,
                rank=r,
                rank_decay=rank_decay,
                min_rank=min_rank,
                leaf_size=leaf_size,
                permutation="rcm" if rcm else None,
                rcm_pattern=rcm_pattern,
                seed=seed,
            )
        return _fit_hss(W, budget, leaf_size, seed, sparse_part=sparsity, rcm=True, rcm_pattern=rcm_pattern)

    shares = sorted({_max_nnz(m, n, int(budget * share), s) for share in _SPLITS} - {0})
    candidates = [split(nnz) for nnz in shares]
    if not any(c is not None and c.nbytes <= budget for c in candidates):
        # The smallest split: one sparse entry, all the rest to the low-rank part.
        candidates.append(split(1) if _csr_nbytes(m, 1, s) < budget else None)
    best = _best([c for c in candidates if c is not None and c.nbytes <= budget], W)
    if best is None:
        _too_small(method, _split_minimum(W, method, leaf_size, seed, rank_decay, min_rank), budget)
    return best


def _split_minimum(W, method, leaf_size, seed, rank_decay, min_rank) -> int:
    """Bytes of the smallest split: one sparse entry plus the smallest low-rank part.

    compress() tries exactly this split when no share of the budget fits, so
    a budget of this many bytes always succeeds.
    """
    from ._lowrank import LowRankMatrix
    from ._sparse_plus import SparsePlusHSS
    from ._tree import hodlr_nbytes

    m, n = W.shape
    s = W.dtype.itemsize
    sparse = _csr_nbytes(m, 1, s)
    if method == "sparse+svd":
        return sparse + LowRankMatrix.bytes_for(m, n, 1, s)
    if method in ("sparse+hodlr", "sparse+hodlr+rcm"):
        perm_bytes = (m + n) * 4 if method.endswith("rcm") else 0
        return sparse + perm_bytes + hodlr_nbytes(m, n, leaf_size, 1, rank_decay, min_rank, s)
    # sparse+hss+rcm: HSS sizes depend on the data (ranks found, dense fallback): build it.
    op = SparsePlusHSS.from_dense(
        W,
        sparsity=1 / (m * n) * (1 - 1e-12),
        tol=1e-6,
        max_rank=1,
        leaf_size=leaf_size,
        permutation="rcm",
        hierarchy="hss",
        seed=seed,
    )
    return int(op.nbytes)


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
        "svd": {"rank", "input_gram"},
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
