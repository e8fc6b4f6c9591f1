"""``hsslin.compress``: one entry point for every method, optionally at a byte budget."""

from __future__ import annotations

import math

import numpy as np

from . import _activation, _gptq
from ._hierarchical import HODLRMatrix, HSSMatrix
from ._lowrank import LowRankMatrix, SparsePlusLowRank, check_input_gram
from ._options import HODLR_DEFAULTS
from ._quantized import QuantizedMatrix
from ._sparse import CSRMatrix
from ._sparse_plus import PERMUTATION_DTYPE, SparsePlusHSS
from ._validation import as_float_matrix, check_density, check_int, check_rank_decay

METHODS = (
    "svd",
    "sparse",
    "sparse+svd",
    "hodlr",
    "hss",
    "sparse+hodlr",
    "sparse+hodlr+rcm",
    "sparse+hss+rcm",
    "rtn",
    "gptq",
    "float16",
    "bfloat16",
)
#: Bit widths of method "rtn" (each in the storage of QuantizedMatrix's "int<bits>" format).
RTN_BITS = tuple(range(2, 9))
_RTN_GROUPS = (32, 64, 128, None)  # finest first: None is one group per row
#: Methods that take `input_gram` (activation-aware fits).
CALIBRATED = ("svd", "sparse", "sparse+svd", "gptq")
_SPLITS = (0.25, 0.5, 0.75)  # shares of the budget tried for the sparse part


def _float_dtype(itemsize: int) -> np.dtype:
    return np.dtype(np.float32 if itemsize == 4 else np.float64)


def _csr_nbytes(m: int, nnz: int, itemsize: int) -> int:
    return CSRMatrix.nbytes_for(m, nnz, _float_dtype(itemsize))


def hodlr_nbytes(m, n, leaf_size, rank, rank_decay, min_rank, itemsize) -> int:
    return HODLRMatrix.nbytes_for((m, n), _float_dtype(itemsize), rank, rank_decay, min_rank, leaf_size)


def _max_nnz(m: int, n: int, budget: int, itemsize: int) -> int:
    """Largest nnz (at most all m * n entries) whose CSR matrix fits `budget` bytes.

    Bytes are affine in nnz. :func:`_density_for` turns the count into a
    density below 1 that keeps exactly that many, all m * n included.
    """
    base = _csr_nbytes(m, 0, itemsize)
    per = _csr_nbytes(m, 1, itemsize) - base
    return max(0, min(m * n, (budget - base) // per))


def _density_for(nnz: int, m: int, n: int) -> float:
    """A density that keeps exactly `nnz` entries: ceil(rho * m * n) = nnz for rho just below nnz / (m n)."""
    return nnz / (m * n) * (1 - 1e-12)


def _max_hodlr_rank(m, n, budget, itemsize, leaf_size, rank_decay, min_rank) -> int:
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
    """Raise the ValueError for a budget below `minimum`, the bytes of the smallest form built or counted."""
    if minimum <= budget:  # a claim the caller could refute: a bug, never a user's mistake
        raise RuntimeError(
            f"hsslin bug: method {method!r} found nothing within budget_bytes={budget}, yet its smallest "
            f"form takes {minimum} bytes"
        )
    raise ValueError(
        f"budget_bytes={budget} is too small for method {method!r}: it needs at least {minimum} bytes"
    )


def _within_budget(op, method: str, budget: int):
    """`op`, checked against the promise ``op.nbytes <= budget``."""
    if op.nbytes > budget:
        raise RuntimeError(
            f"hsslin bug: method {method!r} predicted a size within budget_bytes={budget} but built "
            f"{op.nbytes} bytes"
        )
    return op


def _best(candidates, W, method: str, input_gram=None):
    """The candidate with the lowest relative error (the first of equals); output error with `input_gram`.

    A candidate whose error is not finite holds non-finite values: it is
    never chosen, and when every candidate is such, RuntimeError says so
    (rather than a budget that could not be met).
    """
    if input_gram is None:
        scored = [(op.relative_error(W), i, op) for i, op in enumerate(candidates)]
    else:
        scored = [(_activation.output_error(op, W, input_gram), i, op) for i, op in enumerate(candidates)]
    finite = [t for t in scored if math.isfinite(t[0])]
    if not finite:
        raise RuntimeError(
            f"method {method!r} built only forms with non-finite values from W (largest |entry| "
            f"{float(abs(W).max()):.3g}); scale W, or use another method"
        )
    return min(finite, key=lambda t: t[:2])[2]


def _fit_hss(W, budget, method, leaf_size, seed, sparse_part=None, rcm=False, rcm_pattern="residual"):
    """HSS (or sparse + HSS) under a rank cap chosen to fit the budget.

    Returns (operator, bytes of the cap-1 build): the operator is None when
    even cap 1 does not fit, and those bytes are then the honest minimum.

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

    def build(max_rank):
        if sparse_part is None:
            return HSSMatrix.from_dense(W, tol=1e-6, max_rank=max_rank, leaf_size=leaf_size, seed=seed)
        return SparsePlusHSS.from_dense(
            W,
            density=sparse_part,
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
        return None, first.nbytes
    fitting = [first]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        op = build(mid)
        if op.nbytes <= budget:
            fitting.append(op)
            lo = mid
        else:
            hi = mid - 1
    return _best(fitting, W, method), first.nbytes


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
        pruning, `density`; with `input_gram`, Wanda's score
        ``|W_ij| sqrt(G_jj)``), ``"sparse+svd"`` (`density`, `rank`,
        `iterations` > 1 for OATS-style alternation; with `input_gram`, OATS'
        scaling by the input norms and, at a budget, the split of least
        output error), ``"hodlr"`` (`rank`
        schedule with `rank_decay`, or `tol`), ``"hss"`` (`tol`),
        ``"sparse+hodlr"``, ``"sparse+hodlr+rcm"`` (`density`, `rank`,
        `rank_decay`, `rcm_pattern`), ``"sparse+hss+rcm"`` (`density`, `tol`).
        Every method also takes `leaf_size` where it applies and `seed`.
        Quantizers (a :class:`QuantizedMatrix`): ``"rtn"`` (round to
        nearest, `bits` 2-8, `group_size` 32/64/128 or None for one scale
        per row, default 64, `zero_point`), ``"float16"``, ``"bfloat16"``.
    budget_bytes : int, optional
        When given, the method chooses its own parameters so that
        ``result.nbytes <= budget_bytes``: a promise, checked on the object
        built before it is returned. When nothing fits, ValueError states
        the bytes of the smallest form the method builds (always more than
        the budget; a budget of that size succeeds). Split methods try
        sparse shares of 25/50/75% of the budget and keep the most
        accurate; ``"sparse"`` may keep every entry when the budget allows.
        ``"rtn"`` takes the most bits that fit, then the finest grouping
        that divides the row (32, 64, 128, then one group per row); int3
        stores int4's bytes and int5-int7 int8's, so a budget picks 8, 4
        or 2 bits. `zero_point` may be given with a budget.

    Returns
    -------
    An operator with ``@``, ``.T``, ``nbytes``, ``to_dense()`` and
    ``relative_error(W)``.

    Raises
    ------
    RuntimeError
        When every form built holds non-finite values (W's magnitudes
        overflowed in the compression), rather than returning one.

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
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    W = as_float_matrix(W, "W")
    if "sparsity" in params:  # the deprecated name of density
        params["density"] = check_density(params.pop("density", None), params.pop("sparsity"))
    # The hierarchical parts' defaults (the core's HODLROptions; HSS starts from the same leaf size).
    leaf_size = check_int(params.pop("leaf_size", HODLR_DEFAULTS.leaf_size), "leaf_size", 1)
    seed = params.pop("seed", 0)
    rank_decay = check_rank_decay(params.pop("rank_decay", HODLR_DEFAULTS.rank_decay))
    min_rank = check_int(params.pop("min_rank", HODLR_DEFAULTS.min_rank), "min_rank", 1)
    if budget_bytes is None:
        return _compress_with_params(W, method, leaf_size, seed, rank_decay, min_rank, params)
    budget = check_int(budget_bytes, "budget_bytes", 1)
    unknown = set(params) - {"iterations", "rcm_pattern", "input_gram", "zero_point"}
    if unknown:
        raise ValueError(
            f"with budget_bytes the method picks its own parameters; remove {', '.join(sorted(unknown))}"
        )
    if "zero_point" in params and method not in ("rtn", "gptq"):
        raise ValueError(f"zero_point applies to method 'rtn', not {method!r}")
    if "input_gram" in params and method not in CALIBRATED:
        raise ValueError(
            f"input_gram (activation-aware compression) applies to method "
            f"{' or '.join(map(repr, CALIBRATED))}, not {method!r}"
        )
    op = _compress_to_budget(W, method, budget, leaf_size, seed, rank_decay, min_rank, params)
    return _within_budget(op, method, budget)


def _compress_to_budget(W, method, budget, leaf_size, seed, rank_decay, min_rank, params):
    """The most accurate form of `method` that compress() finds within `budget` bytes."""
    m, n = W.shape
    s = W.dtype.itemsize
    if method == "svd":
        r = (budget - LowRankMatrix.bytes_for(m, n, 0, s)) // ((m + n) * s)
        if r < 1:
            _too_small(method, LowRankMatrix.bytes_for(m, n, 1, s), budget)
        return LowRankMatrix.from_dense(W, rank=min(r, min(m, n)), input_gram=params.get("input_gram"))
    if method == "sparse":
        nnz = _max_nnz(m, n, budget, s)
        if nnz < 1:
            _too_small(method, _csr_nbytes(m, 1, s), budget)
        if params.get("input_gram") is not None:
            return _activation.sparse_fit(W, _density_for(nnz, m, n), False, params["input_gram"])
        return CSRMatrix.from_dense(W, density=_density_for(nnz, m, n))
    if method == "hodlr":
        r = _max_hodlr_rank(m, n, budget, s, leaf_size, rank_decay, min_rank)
        if r < 1:
            _too_small(method, hodlr_nbytes(m, n, leaf_size, 1, rank_decay, min_rank, s), budget)
        return HODLRMatrix.from_dense(
            W, rank=r, rank_decay=rank_decay, min_rank=min_rank, leaf_size=leaf_size, seed=seed
        )
    if method in ("float16", "bfloat16"):
        size = QuantizedMatrix.nbytes_for((m, n), method)
        if size > budget:
            _too_small(method, size, budget)
        return QuantizedMatrix.from_dense(W, method)
    if method in ("rtn", "gptq"):
        gram = params.get("input_gram")
        if method == "gptq":
            _need_gram(gram)
        return _rtn_to_budget(W, budget, params.get("zero_point", False), method, gram)
    if method == "hss":
        op, smallest = _fit_hss(W, budget, method, leaf_size, seed)
        if op is None:
            _too_small(method, smallest, budget)
        return op

    # Split methods: part of the budget to S, the rest to the low-rank part.
    iterations = params.get("iterations", 1)
    rcm_pattern = params.get("rcm_pattern", "residual")
    rcm = method.endswith("rcm")
    gram = None if params.get("input_gram") is None else check_input_gram(params["input_gram"], n)
    perm_bytes = (m + n) * PERMUTATION_DTYPE.itemsize if rcm else 0  # row and column orders

    def split(nnz):
        """Split the budget with `nnz` sparse entries.

        Returns the split with the largest low-rank part that fits (or None),
        and the bytes of the smallest split with `nnz` sparse entries.
        """
        density = _density_for(nnz, m, n)
        sparse = _csr_nbytes(m, nnz, s)
        rest = budget - sparse
        if method == "sparse+svd":
            r = (rest - LowRankMatrix.bytes_for(m, n, 0, s)) // ((m + n) * s)
            smallest = sparse + LowRankMatrix.bytes_for(m, n, 1, s)
            if r < 1:
                return None, smallest
            r = min(r, min(m, n))
            if gram is not None:
                op = _activation.sparse_plus_svd_fit(W, density, r, iterations, False, gram)
            else:
                op = SparsePlusLowRank.from_dense(W, density=density, rank=r, iterations=iterations)
            return op, smallest
        if method in ("sparse+hodlr", "sparse+hodlr+rcm"):
            r = _max_hodlr_rank(m, n, rest - perm_bytes, s, leaf_size, rank_decay, min_rank)
            smallest = sparse + perm_bytes + hodlr_nbytes(m, n, leaf_size, 1, rank_decay, min_rank, s)
            if r < 1:
                return None, smallest
            op = SparsePlusHSS.from_dense(
                W,
                density=density,
                rank=r,
                rank_decay=rank_decay,
                min_rank=min_rank,
                leaf_size=leaf_size,
                permutation="rcm" if rcm else None,
                rcm_pattern=rcm_pattern,
                seed=seed,
            )
            return op, smallest
        return _fit_hss(
            W, budget, method, leaf_size, seed, sparse_part=density, rcm=True, rcm_pattern=rcm_pattern
        )

    shares = sorted({_max_nnz(m, n, int(budget * share), s) for share in _SPLITS} - {0})
    built = [op for op, _ in map(split, shares) if op is not None]
    if not built:
        # The smallest split: one sparse entry, all the rest to the low-rank part. A
        # budget of its size makes every share fail and this one fit, so its size is
        # the honest minimum.
        op, smallest = split(1)
        if op is None:
            _too_small(method, smallest, budget)
        built = [op]
    return _best([_within_budget(op, method, budget) for op in built], W, method, gram)


def _need_gram(gram):
    if gram is None:
        raise ValueError(
            "method 'gptq' needs input_gram (X^T X of calibration inputs); without calibration "
            "GPTQ is round to nearest: use method 'rtn'"
        )


def _rtn_to_budget(W, budget, zero_point, method="rtn", gram=None):
    """RTN or GPTQ at the most bits, then the finest grouping, whose bytes fit `budget`."""
    m, n = W.shape
    sizes = [
        (bits, g, QuantizedMatrix.nbytes_for((m, n), f"int{bits}", group_size=g, zero_point=zero_point))
        for bits in sorted(RTN_BITS, reverse=True)
        for g in _RTN_GROUPS
        if g is None or n % g == 0
    ]
    for bits, g, size in sizes:
        if size <= budget:
            if method == "gptq":
                return _gptq.gptq(W, bits, g, zero_point, gram)
            return QuantizedMatrix.from_dense(W, f"int{bits}", group_size=g, zero_point=zero_point)
    _too_small(method, min(size for _, _, size in sizes), budget)


def _rtn(W, bits, group_size=64, zero_point=False):
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an integer, got {type(bits).__name__}")
    if bits not in RTN_BITS:
        raise ValueError(f"bits must be in 2..8, got {bits}")
    return QuantizedMatrix.from_dense(W, f"int{int(bits)}", group_size=group_size, zero_point=zero_point)


def _compress_with_params(W, method, leaf_size, seed, rank_decay, min_rank, params):
    def need(*names):
        missing = [k for k in names if k not in params]
        if missing:
            raise ValueError(f"method {method!r} needs {', '.join(missing)} (or pass budget_bytes)")

    allowed = {
        "svd": {"rank", "input_gram"},
        "sparse": {"density", "per_row", "input_gram"},
        "sparse+svd": {"density", "rank", "iterations", "per_row", "input_gram"},
        "hodlr": {"rank", "tol", "max_rank", "power_iterations"},
        "hss": {"tol", "max_rank"},
        "sparse+hodlr": {"density", "rank", "tol", "max_rank"},
        "sparse+hodlr+rcm": {"density", "rank", "tol", "max_rank", "rcm_pattern"},
        "sparse+hss+rcm": {"density", "tol", "max_rank", "rcm_pattern"},
        "rtn": {"bits", "group_size", "zero_point"},
        "gptq": {"bits", "group_size", "zero_point", "input_gram"},
        "float16": set(),
        "bfloat16": set(),
    }[method]
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"method {method!r} does not take {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(allowed)) or 'no parameters'}"
        )
    if method == "svd":
        need("rank")
        return LowRankMatrix.from_dense(W, **params)
    if method == "rtn":
        need("bits")
        return _rtn(W, **params)
    if method == "gptq":
        need("bits")
        _need_gram(params.get("input_gram"))
        bits = params["bits"]
        if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
            raise TypeError(f"bits must be an integer, got {type(bits).__name__}")
        if bits not in RTN_BITS:
            raise ValueError(f"bits must be in 2..8, got {bits}")
        return _gptq.gptq(
            W,
            int(bits),
            params.get("group_size", 64),
            bool(params.get("zero_point", False)),
            params["input_gram"],
        )
    if method in ("float16", "bfloat16"):
        return QuantizedMatrix.from_dense(W, method)
    if method == "sparse":
        need("density")
        gram = params.pop("input_gram", None)
        if gram is not None:
            return _activation.sparse_fit(
                W, check_density(params["density"]), bool(params.get("per_row", False)), gram
            )
        return CSRMatrix.from_dense(W, **params)
    if method == "sparse+svd":
        need("density", "rank")
        gram = params.pop("input_gram", None)
        if gram is not None:
            return _activation.sparse_plus_svd_fit(
                W,
                check_density(params["density"]),
                min(check_int(params["rank"], "rank", 1), min(W.shape)),
                check_int(params.get("iterations", 1), "iterations", 1),
                bool(params.get("per_row", False)),
                gram,
            )
        return SparsePlusLowRank.from_dense(W, **params)
    if method == "hodlr":
        return HODLRMatrix.from_dense(
            W, rank_decay=rank_decay, min_rank=min_rank, leaf_size=leaf_size, seed=seed, **params
        )
    if method == "hss":
        return HSSMatrix.from_dense(W, leaf_size=leaf_size, seed=seed, **params)
    need("density")
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
