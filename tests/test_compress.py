"""``hsslin.compress``: byte budgets, explicit parameters and error messages.

Budgets: every method must return ``nbytes <= budget_bytes`` or, when nothing
fits, raise a ValueError that states the minimum number of bytes (and that
minimum must then be enough). Errors must not grow with the budget for the
deterministic methods (svd, sparse).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hsslin
from conftest import dtypes, hodlr_error_bound, hss_error_bound, rounding_floor, weight_like

SHAPES = [(33, 70), (70, 33), (128, 128), (200, 90), (90, 200), (64, 64), (17, 129)]
FRACTIONS = (0.25, 0.5, 0.75)
SPLIT_METHODS = ("sparse+svd", "sparse+hodlr", "sparse+hodlr+rcm", "sparse+hss+rcm")
MINIMUM = re.compile(r"at least (\d+) bytes")


def stated_minimum(err: ValueError, budget: int) -> int:
    """The minimum a too-small-budget ValueError states; it must exceed the budget."""
    match = MINIMUM.search(str(err))
    assert match, f"message does not state the minimum bytes: {err}"
    minimum = int(match.group(1))
    assert minimum > budget, f"stated minimum {minimum} <= budget {budget}: {err}"
    return minimum


@st.composite
def budget_cases(draw, methods=hsslin.METHODS):
    m, n = draw(st.sampled_from(SHAPES))
    dtype = draw(dtypes)
    W = weight_like(m, n, dtype, draw(st.integers(0, 2**16)))
    return W, draw(st.sampled_from(methods)), draw(st.integers(16, 64))


def calibration_of(method, W):
    """input_gram for the methods that need one (gptq): the Gram of W's own rows, n x n."""
    W64 = np.asarray(W, dtype=np.float64)
    return {"input_gram": W64.T @ W64} if method == "gptq" else {}


def compress_or_minimum(W, method, budget, leaf_size):
    """Compress at `budget`; when it refuses, retry at the minimum it states."""
    extra = calibration_of(method, W)
    try:
        return hsslin.compress(W, method, budget_bytes=budget, leaf_size=leaf_size, **extra), budget
    except ValueError as err:
        assert "too small" in str(err), err
        minimum = stated_minimum(err, budget)
        return hsslin.compress(W, method, budget_bytes=minimum, leaf_size=leaf_size, **extra), minimum


@given(case=budget_cases(), fraction=st.sampled_from(FRACTIONS))
@settings(max_examples=150)
def test_budget_is_respected(case, fraction):
    W, method, leaf_size = case
    budget = int(fraction * W.nbytes)
    A, used = compress_or_minimum(W, method, budget, leaf_size)
    assert A.nbytes <= used, f"{method}: nbytes {A.nbytes} > budget {used}"
    assert A.shape == W.shape and A.dtype == W.dtype
    assert np.isfinite(A.relative_error(W))


@pytest.mark.parametrize("method", [m for m in hsslin.METHODS if m not in SPLIT_METHODS])
@pytest.mark.parametrize("shape", [(33, 70), (128, 128)])
def test_stated_minimum_is_honest(method, shape):
    # The minimum in the message must be enough: compress at exactly that many bytes.
    W = weight_like(*shape, np.float32, 0)
    with pytest.raises(ValueError, match="too small") as info:
        hsslin.compress(W, method, budget_bytes=16, leaf_size=16, **calibration_of(method, W))
    minimum = stated_minimum(info.value, 16)
    A = hsslin.compress(W, method, budget_bytes=minimum, leaf_size=16, **calibration_of(method, W))
    assert A.nbytes <= minimum


@pytest.mark.parametrize("method", SPLIT_METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_methods_state_minimum(method, dtype):
    """The stated minimum is enough.

    Where sizes follow from formulas (svd, HODLR
    schedules), one byte less is refused, so it is the minimum. HSS sizes depend
    on the ranks found in the data, so there it is a sufficient size only.
    """
    W = weight_like(33, 70, dtype, 0)
    with pytest.raises(ValueError) as info:
        hsslin.compress(W, method, budget_bytes=16, leaf_size=16, **calibration_of(method, W))
    minimum = stated_minimum(info.value, 16)
    A = hsslin.compress(W, method, budget_bytes=minimum, leaf_size=16, **calibration_of(method, W))
    assert A.nbytes <= minimum
    if "hss" not in method:
        with pytest.raises(ValueError, match="too small"):
            hsslin.compress(W, method, budget_bytes=minimum - 1, leaf_size=16)


# svd: rank grows with the budget and the truncated SVD is deterministic, so
# the exact error (the tail of the singular values) cannot grow. The
# factors are rounded to the working dtype and multiplied out by to_dense(),
# which can move the measured error by rounding only: rounding_floor.
# sparse: nnz grows with the budget and the kept entries are exact copies,
# so the dropped entries of the smaller budget are a superset; the float64
# norm of that superset is a sum of the same terms in the same tree with
# some set to zero, and rounding is monotone: no slack at all.
# The other methods are randomized (sketches) and pick their split / rank
# cap from a small grid, so a larger budget can land on a slightly worse
# point; they are not checked here.
@given(case=budget_cases(methods=("svd", "sparse")))
@settings(max_examples=40)
def test_error_does_not_grow_with_budget_for_deterministic_methods(case):
    W, method, _ = case
    errors = [hsslin.compress(W, method, budget_bytes=int(f * W.nbytes)).relative_error(W) for f in FRACTIONS]
    slack = rounding_floor(W.dtype, *W.shape) if method == "svd" else 0.0
    for smaller, larger in zip(errors, errors[1:]):
        assert larger <= smaller + slack, f"{method}: errors {errors}"


# -- explicit parameters -------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_explicit_svd_and_sparse(dtype):
    W = weight_like(90, 60, dtype, 3)
    A = hsslin.compress(W, "svd", rank=7)
    assert isinstance(A, hsslin.LowRankMatrix) and A.rank == 7 and A.dtype == dtype
    s = np.linalg.svd(W.astype(np.float64), compute_uv=False)
    tail = np.sqrt(np.sum(s[7:] ** 2) / np.sum(s**2))
    assert abs(A.relative_error(W) - tail) <= rounding_floor(dtype, *W.shape)

    S = hsslin.compress(W, "sparse", density=0.1)
    assert isinstance(S, hsslin.CSRMatrix) and S.nnz == 540 and S.dtype == dtype
    kept = S.to_dense() != 0
    assert np.abs(W[~kept]).max() <= np.abs(W[kept]).min()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_explicit_sparse_plus_svd(dtype):
    W = weight_like(90, 60, dtype, 4)
    A = hsslin.compress(W, "sparse+svd", density=0.05, rank=5)
    B = hsslin.compress(W, "sparse+svd", density=0.05, rank=5, iterations=3)
    assert isinstance(A, hsslin.SparsePlusLowRank) and A.S.nnz == 270 and A.L.rank == 5
    assert B.relative_error(W) <= A.relative_error(W) + rounding_floor(dtype, *W.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_explicit_hierarchical(dtype):
    W = weight_like(128, 96, dtype, 5)
    tol = 1e-2 if dtype == np.float64 else 1e-3
    H = hsslin.compress(W, "hodlr", tol=tol, leaf_size=16)
    assert isinstance(H, hsslin.HODLRMatrix)
    assert H.relative_error(W) <= hodlr_error_bound(tol, dtype, *W.shape)
    R = hsslin.compress(W, "hodlr", rank=8, leaf_size=16)
    assert isinstance(R, hsslin.HODLRMatrix) and R.nbytes < H.nbytes
    S = hsslin.compress(W, "hss", tol=tol, leaf_size=16)
    assert isinstance(S, hsslin.HSSMatrix)
    assert S.relative_error(W) <= hss_error_bound(tol, dtype, *W.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["sparse+hodlr", "sparse+hodlr+rcm", "sparse+hss+rcm"])
def test_explicit_sparse_plus_hierarchical(method, dtype):
    # H approximates R = W - S to relative tol and ||R|| <= ||W||.
    W = weight_like(128, 96, dtype, 6)
    tol = 1e-2
    A = hsslin.compress(W, method, density=0.05, tol=tol, leaf_size=16)
    assert isinstance(A, hsslin.SparsePlusHSS) and A.S.nnz == 615
    assert (A.row_perm is not None) == method.endswith("rcm")
    assert A.meta["hierarchy"] == ("hss" if "hss" in method else "hodlr")
    bound = (hss_error_bound if "hss" in method else hodlr_error_bound)(tol, dtype, *W.shape)
    assert A.relative_error(W) <= bound
    if method != "sparse+hss+rcm":
        B = hsslin.compress(W, method, density=0.05, rank=6, leaf_size=16)
        assert B.meta["rank"] == 6
    if method.endswith("rcm"):
        C = hsslin.compress(W, method, density=0.05, tol=tol, leaf_size=16, rcm_pattern="sparse")
        assert C.meta["rcm_pattern"] == "sparse"


# -- bad inputs ------------------------------------------------------------------
W0 = weight_like(40, 30, np.float64, 0)


def test_unknown_method_lists_methods():
    with pytest.raises(ValueError) as info:
        hsslin.compress(W0, "pca")
    for method in hsslin.METHODS:
        assert method in str(info.value)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 2.0])
@pytest.mark.parametrize(
    "method,extra",
    [
        ("sparse", {}),
        ("sparse+svd", {"rank": 2}),
        ("sparse+hodlr", {"rank": 2}),
        ("sparse+hodlr+rcm", {"rank": 2}),
        ("sparse+hss+rcm", {"tol": 1e-2}),
    ],
)
def test_sparsity_outside_unit_interval(method, extra, sparsity):
    with pytest.raises(ValueError, match="density"):
        hsslin.compress(W0, method, density=sparsity, **extra)


@pytest.mark.parametrize(
    "method,extra",
    [
        ("svd", {}),
        ("sparse+svd", {"density": 0.1}),
        ("hodlr", {}),
        ("sparse+hodlr", {"density": 0.1}),
        ("sparse+hodlr+rcm", {"density": 0.1}),
    ],
)
@pytest.mark.parametrize("rank", [0, -1])
def test_rank_below_one(method, extra, rank):
    with pytest.raises(ValueError, match="rank"):
        hsslin.compress(W0, method, rank=rank, **extra)


@pytest.mark.parametrize(
    "method,extra",
    [("hodlr", {}), ("sparse+hodlr", {"density": 0.1}), ("sparse+hodlr+rcm", {"density": 0.1})],
)
def test_rank_and_tol_together(method, extra):
    with pytest.raises(ValueError, match="tol"):
        hsslin.compress(W0, method, rank=3, tol=1e-3, **extra)


@pytest.mark.parametrize(
    "method,params",
    [
        ("svd", {"rank": 2, "density": 0.1}),
        ("svd", {"rank": 2, "tol": 1e-3}),
        ("sparse", {"density": 0.1, "rank": 2}),
        ("hss", {"rank": 3}),
        ("sparse+hss+rcm", {"density": 0.1, "rank": 3}),
        ("hodlr", {"rank": 2, "rcm_pattern": "sparse"}),
        ("sparse+svd", {"density": 0.1, "rank": 2, "bogus": 1}),
    ],
)
def test_params_not_accepted_by_method(method, params):
    with pytest.raises(ValueError, match="does not take"):
        hsslin.compress(W0, method, **params)


@pytest.mark.parametrize("method", hsslin.METHODS)
def test_budget_mode_rejects_explicit_parameters(method):
    with pytest.raises(ValueError, match="remove rank"):
        hsslin.compress(W0, method, budget_bytes=W0.nbytes // 2, rank=3)


@pytest.mark.parametrize("method", hsslin.METHODS)
def test_budget_too_small(method):
    with pytest.raises(ValueError, match="too small"):
        hsslin.compress(W0, method, budget_bytes=8, **calibration_of(method, W0))


@pytest.mark.parametrize("budget", [0, -5])
def test_budget_must_be_positive(budget):
    with pytest.raises(ValueError, match="budget_bytes"):
        hsslin.compress(W0, "svd", budget_bytes=budget)


@pytest.mark.parametrize("pattern", ["residual", "sparse"])
def test_sparse_hss_rcm_budget_honours_rcm_pattern(pattern):
    """Under a budget, rcm_pattern reaches the split (it once discarded every 'sparse' candidate)."""
    W = np.random.default_rng(0).standard_normal((128, 128)).astype(np.float32)
    budget = W.nbytes // 2
    A = hsslin.compress(W, "sparse+hss+rcm", budget_bytes=budget, rcm_pattern=pattern, leaf_size=16)
    assert A.nbytes <= budget
    assert A.meta["rcm_pattern"] == pattern


def test_hss_budget_keeps_the_most_accurate_cap():
    """Hss under a budget: the error is no worse than that of the largest cap that fits."""
    W = np.random.default_rng(1).standard_normal((96, 80))
    budget = W.nbytes // 2
    A = hsslin.compress(W, "hss", budget_bytes=budget, leaf_size=16)
    assert A.nbytes <= budget
    caps = [
        r
        for r in range(1, 41)
        if hsslin.HSSMatrix.from_dense(W, tol=1e-6, max_rank=r, leaf_size=16).nbytes <= budget
    ]
    largest = hsslin.HSSMatrix.from_dense(W, tol=1e-6, max_rank=max(caps), leaf_size=16)
    assert A.relative_error(W) <= largest.relative_error(W)


# -- activation-aware SVD (input_gram) -------------------------------------------------------
# Eckart-Young on the whitened matrix W S (S S^T = X^T X) says the best rank-r
# output error ||(W - A) X^T||_F over all rank-r A is the tail sqrt(sum_{k>r} s_k^2)
# of W S's singular values. The factors are rounded to the working dtype, which
# moves the output by about eps * ||W X^T|| * sqrt(r): 8 eps sqrt(min(m,n)) relative
# to ||W X^T|| covers it.
@given(
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    tokens=st.integers(1, 80),
    rank=st.integers(1, 45),
    dtype=dtypes,
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_input_gram_svd_is_optimal_in_the_output_norm(m, n, tokens, rank, dtype, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n)).astype(dtype)
    X = rng.standard_normal((tokens, n)) * rng.uniform(0, 3, n)  # rows: inputs; may be rank-deficient
    G = X.T @ X
    aware = hsslin.compress(W, "svd", rank=rank, input_gram=G)
    plain = hsslin.compress(W, "svd", rank=rank)
    assert aware.dtype == W.dtype and aware.shape == W.shape
    Wd = W.astype(np.float64)
    out = lambda A: np.linalg.norm((Wd - A.to_dense().astype(np.float64)) @ X.T)  # noqa: E731
    lam, E = np.linalg.eigh(G)
    s = np.linalg.svd(Wd @ (E * np.sqrt(np.clip(lam, 0, None))), compute_uv=False)
    best = np.sqrt(np.sum(s[min(rank, m, n) :] ** 2))
    slack = 8 * np.finfo(dtype).eps * np.sqrt(min(m, n)) * np.linalg.norm(Wd @ X.T)
    assert out(aware) <= best + slack
    assert out(aware) <= out(plain) + slack


def test_input_gram_identity_is_plain_svd():
    W = np.random.default_rng(3).standard_normal((30, 20))
    a = hsslin.compress(W, "svd", rank=6, input_gram=np.eye(20))
    b = hsslin.compress(W, "svd", rank=6)
    np.testing.assert_allclose(a.to_dense(), b.to_dense(), atol=1e-12 * np.linalg.norm(W))


def test_input_gram_under_a_budget():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((64, 48)).astype(np.float32)
    X = rng.standard_normal((100, 48))
    A = hsslin.compress(W, "svd", budget_bytes=W.nbytes // 2, input_gram=X.T @ X)
    assert A.nbytes <= W.nbytes // 2


@pytest.mark.parametrize(
    "gram, exc, match",
    [
        (np.eye(5), ValueError, "must be 8x8"),
        (np.full((8, 8), np.nan), ValueError, "NaN"),
        (np.triu(np.ones((8, 8))), ValueError, "symmetric"),
        (np.eye(8, dtype=complex), TypeError, "real"),
    ],
)
def test_input_gram_bad_input(gram, exc, match):
    W = np.ones((6, 8))
    with pytest.raises(exc, match=match):
        hsslin.compress(W, "svd", rank=2, input_gram=gram)


def test_input_gram_only_for_svd():
    W = np.ones((6, 8))
    with pytest.raises(ValueError, match="input_gram"):
        hsslin.compress(W, "hodlr", budget_bytes=200, input_gram=np.eye(8))
    with pytest.raises(ValueError, match="does not take input_gram"):
        hsslin.compress(W, "hodlr", rank=2, input_gram=np.eye(8))
