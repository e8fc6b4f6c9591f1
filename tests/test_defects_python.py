"""Regression tests for the Python-side defects of issue 10, each as it was reproduced on main.

The numbers are the issue's. Broader contracts live in test_protocol.py
(every class, every transpose) and test_io.py (the file format); these
tests pin the exact reports.
"""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.linalg as spla

import hsslin
from conftest import eps, make_matrix, product_bound, weight_like


# -- 1: matvec with several columns ----------------------------------------------
@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
def test_1_matvec_with_several_columns_raises(cls):
    A = make_matrix("cauchy", 90, 70)
    H = cls.from_dense(A, tol=1e-6, leaf_size=16)
    X = np.ones((70, 3))
    with pytest.raises(ValueError, match=r"expected \(70,\) or \(70, 1\); use matmat"):
        H.matvec(X)  # main returned shape (270, 1)
    with pytest.raises(ValueError, match="use matmat"):
        H.rmatvec(np.ones((90, 2)))
    assert H.matmat(X).shape == (90, 3)


# -- 5: copy and pickle of operators with a CSR part ---------------------------------
@pytest.mark.parametrize("method", ["sparse", "sparse+svd", "sparse+hodlr+rcm", "sparse+hss+rcm"])
def test_5_deepcopy_and_pickle_with_a_csr_part(method):
    W = weight_like(64, 48, np.float32, 0)
    A = hsslin.compress(W, method, budget_bytes=W.nbytes, leaf_size=16)
    for B in (copy.deepcopy(A), pickle.loads(pickle.dumps(A)), copy.copy(A)):
        assert type(B) is type(A)
        np.testing.assert_array_equal(B.to_dense(), A.to_dense())


# -- 6: SparsePlusHSS with one permutation ----------------------------------------------
@pytest.mark.parametrize("which", ["rows", "cols", "both", "none"])
def test_6_any_combination_of_permutations_works_end_to_end(which, tmp_path):
    rng = np.random.default_rng(0)
    m, n = 40, 30
    W = weight_like(m, n, np.float64, 2)
    S = hsslin.CSRMatrix.from_dense(W, sparsity=0.1)
    H = hsslin.HODLRMatrix.from_dense(W - S.to_dense(), rank=3, leaf_size=8)
    rp = rng.permutation(m) if which in ("rows", "both") else None
    cp = rng.permutation(n) if which in ("cols", "both") else None
    A = hsslin.SparsePlusHSS(S, H, rp, cp)
    D = S.to_dense()
    D[np.ix_(np.arange(m) if rp is None else rp, np.arange(n) if cp is None else cp)] += H.to_dense()
    np.testing.assert_allclose(A.to_dense(), D, rtol=0, atol=0)  # main: to_dense failed
    x = rng.standard_normal(n)
    assert np.linalg.norm(A @ x - D @ x) <= product_bound(D, x, np.float64)
    A.save(tmp_path / "A.hsslin")
    B = hsslin.load(tmp_path / "A.hsslin")  # main: could not read what it wrote
    np.testing.assert_array_equal(B.to_dense(), A.to_dense())
    for got, want in ((B.row_perm, rp), (B.col_perm, cp)):
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "perm, match",
    [
        ([0, 0, 1, 2], "repeats"),
        ([0, 1, 2, 4], "holds 0..4"),
        ([-1, 0, 1, 2], "holds -1..2"),
        ([0, 1, 2], "shape"),
        ([0.0, 1.0, 2.0, 3.0], "permutation"),
        ([[0, 1, 2, 3]], "shape"),
    ],
)
def test_6_permutations_must_be_bijections(perm, match):
    W = weight_like(4, 4, np.float64, 0)
    S = hsslin.CSRMatrix.from_dense(W, sparsity=0.2)
    H = hsslin.HODLRMatrix.from_dense(W - S.to_dense(), leaf_size=64)
    for kw in (dict(row_perm=perm), dict(col_perm=perm)):
        with pytest.raises(ValueError, match=match):
            hsslin.SparsePlusHSS(S, H, **kw)


def test_6_permutations_are_read_only():
    W = weight_like(32, 32, np.float32, 0)
    A = hsslin.SparsePlusHSS.from_dense(W, sparsity=0.1, rank=4, leaf_size=8)
    with pytest.raises(ValueError, match="read-only"):
        A.row_perm[0] = 5
    with pytest.raises(AttributeError):
        A.row_perm = None
    with pytest.raises(AttributeError):
        A.S = None
    # The caller's array is copied: changing it later changes nothing.
    p = np.arange(32)[::-1].copy()
    B = hsslin.SparsePlusHSS(A.S, A.H, p, None)
    before = B.to_dense()
    p[:] = 0
    np.testing.assert_array_equal(B.to_dense(), before)


# -- 7: LowRankMatrix with integer or NaN factors ------------------------------------------
def test_7_integer_factors_compute_in_float():
    L = hsslin.LowRankMatrix(np.ones((2, 1), dtype=np.int64), np.full((3, 1), 2, dtype=np.int64))
    assert L.dtype == np.float64
    np.testing.assert_array_equal(L @ [0.5, 0.5, 0.5], [3.0, 3.0])  # main: [0, 0]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_7_non_finite_factors_raise(bad):
    U = np.ones((3, 2))
    U[1, 1] = bad
    with pytest.raises(ValueError, match=r"U has a non-finite entry .*\(1, 1\)"):
        hsslin.LowRankMatrix(U, np.ones((4, 2)))
    with pytest.raises(ValueError, match="V has a non-finite"):
        hsslin.LowRankMatrix(np.ones((4, 2)), U)


def test_7_factor_shapes():
    with pytest.raises(ValueError, match="column counts"):
        hsslin.LowRankMatrix(np.ones((3, 2)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="2-D"):
        hsslin.LowRankMatrix(np.ones(3), np.ones((4, 1)))
    with pytest.raises(TypeError, match="complex"):
        hsslin.LowRankMatrix(np.ones((3, 1), complex), np.ones((4, 1)))


# -- 8: CSRMatrix.T -------------------------------------------------------------------------
def test_8_csr_transpose_is_a_full_operator():
    W = weight_like(20, 12, np.float64, 0)
    S = hsslin.CSRMatrix.from_dense(W, sparsity=0.3)
    D = S.to_dense()
    Y = np.random.default_rng(0).standard_normal((20, 3))
    np.testing.assert_allclose(S.T.rmatmat(np.ones((12, 2))), D @ np.ones((12, 2)), rtol=1e-14)
    np.testing.assert_allclose(S.T.dot(Y), D.T @ Y, rtol=1e-14)
    np.testing.assert_allclose(np.ones(12) @ S.T, D @ np.ones(12), rtol=1e-14)  # main: TypeError
    np.testing.assert_allclose(Y.T @ S, Y.T @ D, rtol=1e-14)
    assert S.T.T is S and isinstance(S.T, hsslin.TransposedOperator)


# -- 10: a budget that allows every entry ----------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (2, 3)])
def test_10_sparse_budget_that_fits_every_entry(shape):
    W = np.ones(shape)
    S = hsslin.compress(W, "sparse", budget_bytes=10**6)  # main: "too small ... needs at least 52 bytes"
    assert S.nnz == W.size and S.nbytes <= 10**6
    np.testing.assert_array_equal(S.to_dense(), W)


# -- 13: NumPy scalars are numbers ------------------------------------------------------------
W13 = weight_like(40, 32, np.float64, 0)


@pytest.mark.parametrize(
    "real, integer", [(np.float32, np.int32), (np.float64, np.int64), (np.float16, np.uint16)]
)
def test_13_numpy_scalars_everywhere(real, integer):
    """Every numeric option of every entry point takes NumPy scalars (main refused np.float32)."""
    i, r = integer, real
    hsslin.HSSMatrix.from_dense(
        W13, tol=r(1e-3), max_rank=i(30), leaf_size=i(8), seed=i(3), oversampling=i(5), initial_samples=i(20)
    )
    hsslin.HODLRMatrix.from_dense(
        W13, rank=i(4), rank_decay=r(0.5), min_rank=i(1), leaf_size=i(8), power_iterations=i(1), seed=i(3)
    )
    hsslin.HODLRMatrix.from_dense(W13, tol=r(1e-3), max_rank=i(30))
    hsslin.CSRMatrix.from_dense(W13, sparsity=r(0.1))
    hsslin.LowRankMatrix.from_dense(W13, rank=i(4))
    hsslin.SparsePlusLowRank.from_dense(W13, sparsity=r(0.1), rank=i(4), iterations=i(2))
    A = hsslin.SparsePlusHSS.from_dense(
        W13, sparsity=r(0.1), rank=i(4), rank_decay=r(0.5), leaf_size=i(8), min_rank=i(1), seed=i(3)
    )
    A.to_bytes()  # the options it records stay JSON numbers
    hsslin.SparsePlusHSS.from_dense(
        W13, sparsity=r(0.1), tol=r(1e-3), hierarchy="hss", max_rank=i(30), leaf_size=i(8)
    )
    for method in ("svd", "sparse", "hodlr", "sparse+hodlr+rcm"):
        hsslin.compress(
            W13, method, budget_bytes=i(W13.nbytes // 2), leaf_size=i(8), rank_decay=r(0.5), min_rank=i(1)
        )
    hsslin.compress(W13, "hodlr", rank=i(4), rank_decay=r(0.5), seed=i(2))
    old = hsslin.get_num_threads()
    hsslin.set_num_threads(i(1))
    hsslin.set_num_threads(old)


def test_13_rank_decay_float32():
    H = hsslin.HODLRMatrix.from_dense(W13, rank=8, rank_decay=np.float32(0.5), leaf_size=8)
    assert H.rank_schedule == (8, 0.5, 1)


@pytest.mark.parametrize("bad", [np.bool_(True), True, "0.5", None, np.array([0.5])])
def test_13_non_numbers_are_type_errors(bad):
    with pytest.raises(TypeError, match="rank_decay"):
        hsslin.HODLRMatrix.from_dense(W13, rank=4, rank_decay=bad)
    with pytest.raises(TypeError, match="tol"):
        hsslin.HSSMatrix.from_dense(W13, tol=bad)
    with pytest.raises(TypeError, match="sparsity"):
        hsslin.CSRMatrix.from_dense(W13, sparsity=bad)


# -- 14: a float32 operator as a drop-in LinearOperator ----------------------------------------
def _square32(name):
    """A well-conditioned float32 operator of each class (64 x 64) and its stored matrix in float64."""
    n = 64
    x = np.linspace(0, 1, n)
    K = (np.exp(-np.abs(x[:, None] - x[None, :]) / 0.1) + 2 * np.eye(n)).astype(np.float32)
    K[5, 40] += 3.0
    A = {
        "hss-dense": lambda: hsslin.HSSMatrix.from_dense(K, leaf_size=64),
        "hodlr": lambda: hsslin.HODLRMatrix.from_dense(K, tol=1e-6, leaf_size=16),
        "csr": lambda: hsslin.CSRMatrix.from_dense(K, sparsity=0.5),
        "lowrank": lambda: hsslin.LowRankMatrix.from_dense(K, rank=20),
        "sparse+svd": lambda: hsslin.SparsePlusLowRank.from_dense(K, sparsity=0.05, rank=10),
        "sparse+hodlr+rcm": lambda: hsslin.SparsePlusHSS.from_dense(K, sparsity=0.05, rank=8, leaf_size=16),
    }[name]()
    assert A.dtype == np.float32
    return A, A._widened().to_dense()


DROP_IN = ["hss-dense", "hodlr", "csr", "lowrank", "sparse+svd", "sparse+hodlr+rcm"]


@pytest.mark.parametrize("name", DROP_IN)
@pytest.mark.parametrize("solver", [spla.lsqr, spla.lsmr])
def test_14_least_squares_solvers(name, solver):
    A, D = _square32(name)
    b = np.linspace(1, 2, A.shape[0])
    x = solver(
        A, b, atol=1e-10, btol=1e-10, **({"iter_lim": 500} if solver is spla.lsqr else {"maxiter": 500})
    )[0]
    assert x.dtype == np.float64
    # The solvers' own stopping test, evaluated in float64 on the stored matrix:
    # ||D^T r|| <= atol ||D|| ||r||, or ||r|| <= btol ||b|| + atol ||D|| ||x||.
    r = b - D @ x
    normD = np.linalg.norm(D)
    slack = 10  # the solvers estimate ||D|| and ||r|| from their recurrences
    assert np.linalg.norm(D.T @ r) <= slack * 1e-10 * normD * np.linalg.norm(r) or np.linalg.norm(
        r
    ) <= slack * (1e-10 * np.linalg.norm(b) + 1e-10 * normD * np.linalg.norm(x))


@pytest.mark.parametrize("name", DROP_IN)
def test_14_onenormest(name):
    A, D = _square32(name)
    est, v, w = spla.onenormest(A, compute_v=True, compute_w=True)
    # w = A v, computed by our products in float64; the estimate is a lower bound.
    assert np.linalg.norm(w - D @ v) <= product_bound(D, v, np.float64)
    assert est <= np.abs(D).sum(axis=0).max() * (1 + 8 * eps(np.float64))
    assert est == pytest.approx(np.abs(w).sum() / np.abs(v).sum(), rel=8 * eps(np.float64))


@pytest.mark.parametrize("name", DROP_IN)
def test_14_expm_multiply(name):
    A, D = _square32(name)
    scale = 1.0 / np.abs(D).sum(axis=0).max()  # ||A||_1 = 1
    v = np.linspace(-1, 1, A.shape[0])
    with pytest.warns(UserWarning, match="Trace of LinearOperator"):
        y = spla.expm_multiply(spla.aslinearoperator(A) * scale, v)
    ref = scipy.linalg.expm(D * scale) @ v
    # Truncated Taylor steps at double precision (tol 2**-53): a few dozen float64
    # products of norm <= 1, each within product_bound.
    assert np.linalg.norm(y - ref) <= 1e3 * eps(np.float64) * np.sqrt(A.shape[0]) * np.linalg.norm(v) * np.e


@pytest.mark.parametrize("name", DROP_IN)
def test_14_svds_lobpcg(name):
    A, D = _square32(name)
    s = spla.svds(
        A, k=3, solver="lobpcg", return_singular_vectors=False, random_state=0, tol=1e-6, maxiter=200
    )
    ref = np.linalg.svd(D, compute_uv=False)[:3]
    # svds runs lobpcg on A^T A to tol**2 = 1e-12 on the residuals; the Rayleigh
    # quotient's error is quadratic in the residual, so the values are far inside 1e-9.
    np.testing.assert_allclose(np.sort(s)[::-1], ref, rtol=1e-9)


def test_14_result_dtype_follows_numpy():
    A, D = _square32("hodlr")
    n = A.shape[1]
    for x in (
        np.ones(n),
        np.ones(n, np.float32),
        np.arange(n),
        np.ones(n, np.int16),
        np.ones(n, np.complex64),
    ):
        assert (A @ x).dtype == np.result_type(np.float32, x.dtype) == (D.astype(np.float32) @ x).dtype


@pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason="a float32 HSSMatrix with a tree needs a float64 copy of its C++ object (core: HSSMatrix cast)",
)
def test_14_hss_tree_float64_operand():
    K = make_matrix("cauchy", 100, 77, np.float32)
    H = hsslin.HSSMatrix.from_dense(K, tol=1e-5, leaf_size=16)
    assert H.levels > 0
    y = spla.lsqr(H, np.ones(100))[0]
    assert y.dtype == np.float64


# -- 18, 19: misaligned and byte-swapped arrays --------------------------------------------------
def _unaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)
    v = np.ndarray(a.shape, a.dtype, buf, offset=1)
    v[...] = a
    assert not v.flags.aligned
    return v


def _swapped(a):
    return a.astype(a.dtype.newbyteorder("S"))


@pytest.mark.parametrize("convert", [_unaligned, _swapped], ids=["unaligned", "byteswapped"])
def test_18_19_every_array_input(convert):
    W = weight_like(40, 30, np.float64, 3)
    G = W.T @ W + np.eye(30)
    Wc = convert(W)
    np.testing.assert_array_equal(Wc, W)
    for build in (
        lambda A, G: hsslin.HSSMatrix.from_dense(A, tol=1e-6, leaf_size=8),
        lambda A, G: hsslin.HODLRMatrix.from_dense(A, rank=4, leaf_size=8),
        lambda A, G: hsslin.CSRMatrix.from_dense(A, sparsity=0.2),
        lambda A, G: hsslin.LowRankMatrix.from_dense(A, rank=3, input_gram=G),
        lambda A, G: hsslin.SparsePlusHSS.from_dense(A, sparsity=0.1, rank=4, leaf_size=8),
        lambda A, G: hsslin.compress(A, "sparse+svd", budget_bytes=W.nbytes // 2),
    ):
        np.testing.assert_array_equal(build(Wc, convert(G)).to_dense(), build(W, G).to_dense())
    S = hsslin.CSRMatrix.from_dense(W, sparsity=0.2)
    T = hsslin.CSRMatrix(
        (convert(S.data.copy()), convert(S.indices.copy()), convert(S.indptr.copy())), shape=S.shape
    )
    np.testing.assert_array_equal(T.to_dense(), S.to_dense())
    L = hsslin.LowRankMatrix(convert(np.ones((40, 2))), convert(np.ones((30, 2))))
    np.testing.assert_array_equal(L.to_dense(), np.full((40, 30), 2.0))
    H = hsslin.HODLRMatrix.from_dense(W - S.to_dense(), rank=4, leaf_size=8)
    p = np.arange(40)[::-1].astype(np.int32)
    A = hsslin.SparsePlusHSS(S, H, convert(p), None)
    np.testing.assert_array_equal(A.to_dense(), hsslin.SparsePlusHSS(S, H, p, None).to_dense())
    x = np.linspace(0, 1, 30)
    np.testing.assert_array_equal(A @ convert(x), A @ x)
    assert hsslin.bandwidth(convert(np.eye(5)), convert(np.arange(5))) == 0
    assert hsslin.reverse_cuthill_mckee(convert(np.eye(4))).shape == (4,)


# -- 20: the HSS budget search on values near 1e19 ---------------------------------------------------
def test_20_never_claims_a_minimum_below_the_budget():
    M = (np.random.default_rng(0).standard_normal((100, 80)) * 1e19).astype(np.float32)
    try:
        A = hsslin.compress(M, "hss", budget_bytes=20000)
    except ValueError as exc:  # main: "too small: it needs at least 17544 bytes"
        assert int(re.search(r"at least (\d+) bytes", str(exc)).group(1)) > 20000
    except RuntimeError as exc:  # the core does not yet compress such values finitely (issue 10, item 2)
        assert "non-finite" in str(exc)
    else:
        assert A.nbytes <= 20000 and np.isfinite(A.relative_error(M))
