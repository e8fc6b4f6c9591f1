"""Kernel matrices from points, against the dense kernel at small N.

Built-in kernels, the geometric order, and HSS/HODLR forms built from
entries (from_kernel) or from callables (from_operator).

Compression bounds come from conftest.hss_error_bound (the estimate drives
the construction, as for from_dense); HODLR from a kernel adds its own
recompression, which is at most tol by construction (hodlr_error_bound).
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

import hsslin
from conftest import (
    condition_number,
    dtypes,
    eps,
    hodlr_error_bound,
    hss_error_bound,
    logdet_error_bound,
    rel_fro_error,
    solve_error_bound,
)


def dense_kernel(points, kernel, lengthscale, nugget):
    """The kernel matrix by its formula, in float64."""
    x = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    r = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1))
    s = r / lengthscale
    with np.errstate(divide="ignore"):
        K = {
            "gaussian": lambda: np.exp(-0.5 * s**2),
            "exponential": lambda: np.exp(-s),
            "laplace": lambda: np.exp(-s),
            "matern32": lambda: (1 + np.sqrt(3) * s) * np.exp(-np.sqrt(3) * s),
            "matern52": lambda: (1 + np.sqrt(5) * s + 5 * s**2 / 3) * np.exp(-np.sqrt(5) * s),
            "inverse_multiquadric": lambda: 1 / np.sqrt(1 + s**2),
            "inverse_distance": lambda: np.where(r > 0, 1 / np.where(r > 0, s, 1), 0.0),
        }[kernel]()
    return K + nugget * np.eye(len(x))


def uniform_points(n, d, seed):
    return np.random.default_rng(seed).uniform(size=(n, d))


@st.composite
def kernel_cases(draw, kernels=hsslin.KERNELS, max_n=900):
    n = draw(st.one_of(st.integers(1, 8), st.integers(9, max_n), st.sampled_from([63, 65, 129, 257])))
    d = draw(st.sampled_from([1, 2, 3]))
    kernel = draw(st.sampled_from(kernels))
    lengthscale = draw(st.sampled_from([0.05, 0.2, 1.0]))
    nugget = draw(st.sampled_from([0.0, 1e-2, 1.0])) if kernel != "inverse_distance" else 1.0
    return uniform_points(n, d, draw(st.integers(0, 3))), kernel, lengthscale, nugget


# -- built-in kernels -------------------------------------------------------------------
@given(case=kernel_cases(max_n=200), dtype=dtypes)
def test_kernel_entries_match_the_formulas(case, dtype):
    x, kernel, lengthscale, nugget = case
    K = hsslin.KernelMatrix(x, kernel, lengthscale, nugget, dtype=dtype)
    ref = dense_kernel(x, kernel, lengthscale, nugget)
    got = K.to_dense()
    assert got.dtype == np.dtype(dtype) and got.shape == ref.shape
    assert np.allclose(got, ref, rtol=4 * eps(dtype), atol=4 * eps(dtype) * np.abs(ref).max())
    rows = np.arange(len(x))[::3]
    # The same entries from another block: equal up to rounding, not bitwise (the
    # kernel is evaluated a vectorised chunk at a time, and an entry's position in
    # its chunk decides whether it takes the SIMD or the scalar path of exp).
    sub = got[np.ix_(rows, rows[::-1])]
    assert np.allclose(
        K.entries(rows, rows[::-1]), sub, rtol=4 * eps(dtype), atol=4 * eps(dtype) * np.abs(sub).max()
    )


@given(case=kernel_cases(max_n=300), k=st.sampled_from([None, 1, 5]))
def test_kernel_products_are_exact(case, k):
    x, kernel, lengthscale, nugget = case
    K = hsslin.KernelMatrix(x, kernel, lengthscale, nugget)
    X = np.random.default_rng(0).standard_normal((len(x),) if k is None else (len(x), k))
    ref = dense_kernel(x, kernel, lengthscale, nugget) @ X
    assert np.allclose(K @ X, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_kernel_names():
    assert set(hsslin.KERNELS) == {
        "gaussian",
        "exponential",
        "laplace",
        "matern32",
        "matern52",
        "inverse_multiquadric",
        "inverse_distance",
    }


# -- from_kernel ------------------------------------------------------------------------
@given(
    case=kernel_cases(),
    tol_exp=st.floats(-10, -2),
    leaf=st.sampled_from([8, 32, 64, 1000]),
    clustering=st.sampled_from(["kd", "pca"]),
    dtype=dtypes,
)
def test_from_kernel_matches_the_dense_kernel(case, tol_exp, leaf, clustering, dtype):
    x, kernel, lengthscale, nugget = case
    tol = 10.0**tol_exp if dtype == np.float64 else max(10.0**tol_exp, 1e-5)
    H = hsslin.HSSMatrix.from_kernel(
        x, kernel, lengthscale, nugget, tol=tol, leaf_size=leaf, clustering=clustering, dtype=dtype
    )
    assert H.dtype == np.dtype(dtype) and H.symmetric
    ref = dense_kernel(x, kernel, lengthscale, nugget)
    n = len(x)
    assert rel_fro_error(ref, H.to_dense()) <= hss_error_bound(tol, dtype, n, n)
    assert H.error_estimate <= hss_error_bound(tol, dtype, n, n)


@pytest.mark.parametrize("kernel", hsslin.KERNELS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_from_kernel_2000_points(kernel, d):
    # Deep enough (five levels) for near fields, far-field samples and the
    # probe rows to matter.
    # In 3-D, 2000 points are few for the ranks a kernel needs (they grow with
    # the number of points a box touches): a longer lengthscale, and the
    # kernels that are not smooth at r = 0 may be stored dense, exactly.
    x = uniform_points(2000, d, 1)
    lengthscale, nugget = (0.2 if d < 3 else 1.0), 0.5
    H = hsslin.HSSMatrix.from_kernel(x, kernel, lengthscale, nugget, tol=1e-7, leaf_size=64)
    ref = dense_kernel(x, kernel, lengthscale, nugget)
    assert rel_fro_error(ref, H.to_dense()) <= hss_error_bound(1e-7, np.float64, 2000, 2000)
    if d < 3 or kernel in ("gaussian", "inverse_multiquadric", "matern52"):  # analytic, or nearly
        assert H.levels == 5 and H.compression_ratio > 1
    else:
        assert H.levels == 5 or H.is_dense


@given(case=kernel_cases(kernels=("gaussian", "exponential", "matern52", "inverse_distance"), max_n=600))
def test_hodlr_from_kernel_matches_the_dense_kernel(case):
    x, kernel, lengthscale, nugget = case
    tol = 1e-7
    H = hsslin.HODLRMatrix.from_kernel(x, kernel, lengthscale, nugget, tol=tol, leaf_size=32)
    ref = dense_kernel(x, kernel, lengthscale, nugget)
    n = len(x)
    # The HSS stage within hss_error_bound, then a recompression that adds at most tol.
    bound = hss_error_bound(tol, np.float64, n, n) + hodlr_error_bound(tol, np.float64, n, n)
    assert rel_fro_error(ref, H.to_dense()) <= bound
    assert H.error <= bound


# -- the permutation is internal --------------------------------------------------------
@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
def test_permutation_is_transparent(cls):
    n = 800
    x = uniform_points(n, 2, 3)
    H = cls.from_kernel(x, "matern32", lengthscale=0.3, nugget=0.1, tol=1e-9, leaf_size=32)
    K = dense_kernel(x, "matern32", 0.3, 0.1)
    p = H.permutation
    assert p is not None and not p.flags.writeable
    assert np.array_equal(np.sort(p), np.arange(n)) and not np.array_equal(p, np.arange(n))
    X = np.random.default_rng(0).standard_normal((n, 3))
    bound = 10 * 1e-9 * np.linalg.norm(K) * np.linalg.norm(X)
    assert np.linalg.norm(H @ X - K @ X) <= bound
    assert np.linalg.norm(H.T @ X - K @ X) <= bound
    assert np.linalg.norm(H @ X[:, 0] - K @ X[:, 0]) <= bound
    assert rel_fro_error(K, H.to_dense()) <= hss_error_bound(1e-9, np.float64, n, n) + 1e-9
    for symmetric in (False, True):
        F = H.factor(symmetric=symmetric)
        assert np.array_equal(F.permutation, p)
        Hd = H.to_dense()
        cond = condition_number(Hd)
        ref = np.linalg.solve(Hd, X)
        assert np.linalg.norm(F.solve(X) - ref) <= solve_error_bound(
            np.float64, n, cond, H.levels
        ) * np.linalg.norm(ref)
        assert np.linalg.norm(F.solve(X[:, 1]) - ref[:, 1]) <= solve_error_bound(
            np.float64, n, cond, H.levels
        ) * np.linalg.norm(ref)
        sign, logabs = F.logdet()
        ref_sign, ref_logabs = np.linalg.slogdet(Hd)
        assert sign == ref_sign == 1.0
        assert abs(logabs - ref_logabs) <= logdet_error_bound(np.float64, n, cond, H.levels)


@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
def test_permuted_matrix_save_load_copy(tmp_path, cls):
    x = uniform_points(700, 3, 0)
    H = cls.from_kernel(x, "gaussian", lengthscale=0.3, nugget=0.1, tol=1e-6, leaf_size=32)
    b = np.random.default_rng(1).standard_normal(700)
    H.save(tmp_path / "k.hsslin")
    for G in (hsslin.load(tmp_path / "k.hsslin"), pickle.loads(pickle.dumps(H)), copy.deepcopy(H), H.copy()):
        assert isinstance(G, cls) and type(G) is type(H)
        assert np.array_equal(G.permutation, H.permutation)
        assert np.array_equal(G @ b, H @ b)
        assert np.array_equal(G.factor().solve(b), H.factor().solve(b))
    F = H.factor()
    F.save(tmp_path / "f.hsslin")
    assert np.array_equal(hsslin.load(tmp_path / "f.hsslin").solve(b), F.solve(b))
    assert H.nbytes > 0 and F.nbytes > H.permutation.nbytes


def test_one_leaf_kernel_matrix():
    x = uniform_points(50, 2, 0)
    H = hsslin.HSSMatrix.from_kernel(x, "gaussian", lengthscale=0.5, nugget=1e-3, tol=1e-8)
    K = dense_kernel(x, "gaussian", 0.5, 1e-3)
    assert H.levels == 0
    assert np.allclose(H.to_dense(), K, rtol=1e-14, atol=1e-14)
    b = np.ones(50)
    F = H.factor(symmetric=True)
    assert F.method == "dense-cholesky"
    assert np.linalg.norm(K @ F.solve(b) - b) <= 1e-12 * condition_number(K) * np.linalg.norm(b)


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
def test_bad_kernel_input(cls):
    x = uniform_points(100, 2, 0)
    bad = x.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match="points has a non-finite coordinate .* point 17"):
        cls.from_kernel(bad, "gaussian", 0.1)
    with pytest.raises(ValueError, match="unknown kernel 'rbf'; the built-in kernels are gaussian"):
        cls.from_kernel(x, "rbf", 0.1)
    with pytest.raises(TypeError, match="kernel must be a string"):
        cls.from_kernel(x, None, 0.1)
    for ls in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match="lengthscale must be > 0"):
            cls.from_kernel(x, "gaussian", ls)
    with pytest.raises(ValueError, match="nugget must be >= 0"):
        cls.from_kernel(x, "gaussian", 0.1, nugget=-1.0)
    with pytest.raises(ValueError, match="inverse_distance needs distinct points"):
        cls.from_kernel(np.vstack([x, x[:1]]), "inverse_distance", 0.1, nugget=1.0)
    with pytest.raises(ValueError, match="clustering must be one of"):
        cls.from_kernel(x, "gaussian", 0.1, clustering="random")
    with pytest.raises(ValueError, match="points must be a non-empty"):
        cls.from_kernel(np.zeros((0, 2)), "gaussian", 0.1)
    with pytest.raises(ValueError, match="points must be a non-empty"):
        cls.from_kernel(np.zeros((4, 2, 2)), "gaussian", 0.1)
    with pytest.raises(ValueError, match="tol must be in"):
        cls.from_kernel(x, "gaussian", 0.1, tol=0.0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        cls.from_kernel(x, "gaussian", 0.1, dtype=np.int32)
    with pytest.raises(ValueError, match="lengthscale must be > 0"):
        hsslin.KernelMatrix(x, "gaussian", 0.0)


# -- from_operator ----------------------------------------------------------------------
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_operator_matches_from_dense(symmetric, dtype):
    n = 900
    x = np.sort(np.random.default_rng(0).uniform(size=n))
    A = np.exp(-np.abs(x[:, None] - x[None, :]) / 0.2)
    if not symmetric:
        A = A + np.tril(0.3 * np.exp(-np.abs(x[:, None] - x[None, :]) / 0.1), -1)
    A = A.astype(dtype)
    calls = {"matvec": 0, "rmatvec": 0}

    def matvec(X):
        calls["matvec"] += 1
        return A @ X

    def rmatvec(X):
        calls["rmatvec"] += 1
        return A.T @ X

    tol = 1e-4 if dtype == np.float32 else 1e-9
    H = hsslin.HSSMatrix.from_operator(
        A.shape,
        matvec,
        None if symmetric else rmatvec,
        entries=lambda i, j: A[np.ix_(i, j)],
        symmetric=symmetric,
        tol=tol,
        leaf_size=48,
        dtype=dtype,
    )
    assert H.symmetric == symmetric and H.dtype == np.dtype(dtype)
    assert rel_fro_error(A, H.to_dense()) <= hss_error_bound(tol, dtype, n, n)
    D = hsslin.HSSMatrix.from_dense(A, tol=tol, leaf_size=48)
    # The same algorithm on the same random samples: the two differ only by how
    # the products are rounded (numpy's BLAS here, the core's GEMM there), which
    # can move a rank decision at the threshold; both meet the bound, and the
    # trees and rank profiles agree but for such moves.
    assert rel_fro_error(A, D.to_dense()) <= hss_error_bound(tol, dtype, n, n)
    assert H.levels == D.levels
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 2 for a, b in zip(H.ranks, D.ranks))
    assert 1 <= calls["matvec"] <= 6 and calls["rmatvec"] <= (0 if symmetric else 6)


def test_from_operator_rectangular_and_capped():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 20)) @ rng.standard_normal((20, 200))
    H = hsslin.HSSMatrix.from_operator(
        A.shape, lambda X: A @ X, lambda X: A.T @ X, lambda i, j: A[np.ix_(i, j)], max_rank=8, leaf_size=40
    )
    D = hsslin.HSSMatrix.from_dense(A, max_rank=8, leaf_size=40)
    assert np.allclose(H.to_dense(), D.to_dense(), rtol=1e-12, atol=1e-12 * np.abs(A).max())
    assert max(int(r.max()) for r in H.ranks) <= 8


def test_from_operator_incompressible_falls_back_to_entries():
    A = np.random.default_rng(0).standard_normal((400, 400))
    H = hsslin.HSSMatrix.from_operator(
        A.shape, lambda X: A @ X, lambda X: A.T @ X, lambda i, j: A[np.ix_(i, j)]
    )
    assert H.is_dense and np.array_equal(H.to_dense(), A)


def test_from_operator_errors():
    A = np.eye(100)
    ok = dict(matvec=lambda X: A @ X, rmatvec=lambda X: A @ X, entries=lambda i, j: A[np.ix_(i, j)])
    with pytest.raises(TypeError, match="rmatvec must be callable"):
        hsslin.HSSMatrix.from_operator((100, 100), ok["matvec"], entries=ok["entries"])
    with pytest.raises(TypeError, match="entries must be callable"):
        hsslin.HSSMatrix.from_operator((100, 100), ok["matvec"], ok["rmatvec"], entries=None)
    with pytest.raises(ValueError, match="symmetric=True needs a square shape"):
        hsslin.HSSMatrix.from_operator((100, 90), ok["matvec"], entries=ok["entries"], symmetric=True)
    with pytest.raises(ValueError, match="matvec returned an array of shape \\(99, "):
        hsslin.HSSMatrix.from_operator(
            (100, 100), lambda X: X[1:], ok["rmatvec"], ok["entries"], leaf_size=10
        )
    with pytest.raises(ValueError, match="entries returned a non-finite value"):
        hsslin.HSSMatrix.from_operator(
            (100, 100),
            ok["matvec"],
            ok["rmatvec"],
            lambda i, j: np.full((len(i), len(j)), np.nan),
            leaf_size=10,
        )

    class UserCodeError(RuntimeError):
        pass

    def fails(X):
        raise UserCodeError("user code failed")

    with pytest.raises(UserCodeError, match="user code failed"):
        hsslin.HSSMatrix.from_operator((100, 100), fails, ok["rmatvec"], ok["entries"], leaf_size=10)


def test_sparse_plus_a_permuted_matrix_keeps_the_callers_order():
    # SparsePlusHSS's fused C++ product reads H's tree; a from_kernel H must go
    # through its own (permuting) product instead.
    x = uniform_points(600, 2, 2)
    H = hsslin.HSSMatrix.from_kernel(x, "gaussian", lengthscale=0.3, nugget=0.1, tol=1e-10, leaf_size=32)
    S = hsslin.CSRMatrix.from_scipy(scipy.sparse.eye_array(600, format="csr"))
    b = np.random.default_rng(0).standard_normal(600)
    K = dense_kernel(x, "gaussian", 0.3, 0.1)
    got = hsslin.SparsePlusHSS(S, H) @ b
    assert np.linalg.norm(got - (b + K @ b)) <= 10 * 1e-10 * np.linalg.norm(K) * np.linalg.norm(b)
