"""Direct factorizations (HSS ULV, HODLR SMW, dense LAPACK) against dense LAPACK.

Two references for every solve: LAPACK on the represented matrix H (what the
factorization factors; bounds from conftest.solve_error_bound, which scales
with cond(H)), and the original A, whose residual adds the compression error
(hss_error_bound / hodlr_error_bound times ||A||_F ||x||).
"""

from __future__ import annotations

import pickle
import sys
import threading
import time

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import hsslin
from conftest import (
    condition_number,
    dtypes,
    eps,
    hodlr_error_bound,
    hss_error_bound,
    leaf_sizes,
    logdet_error_bound,
    make_matrix,
    solve_error_bound,
    tolerances,
)

# Each example compresses, factors and densifies: half the profile's examples
# keep the module within a few seconds of the rest of the suite.
FEWER = settings(max_examples=max(5, settings.default.max_examples // 2))

# Square families that are nonsingular: the Gaussian kernel with a nugget,
# the exponential (Laplace) kernel, low rank plus a positive diagonal (all
# symmetric positive definite), and the non-symmetric Cauchy matrix.
SOLVE_FAMILIES = ("gaussian_nugget", "laplace", "lowrank_diag", "cauchy")
SPD_FAMILIES = ("gaussian_nugget", "laplace", "lowrank_diag")


def solve_matrix(family: str, n: int, dtype, seed: int = 0) -> np.ndarray:
    if family == "gaussian_nugget":
        A = make_matrix("gaussian", n, n, np.float64, seed) + 1e-2 * np.eye(n)
        return np.ascontiguousarray(A, dtype=dtype)
    return make_matrix(family, n, n, dtype, seed)


def compression_bound(cls, tol, dtype, n):
    return (hss_error_bound if cls is hsslin.HSSMatrix else hodlr_error_bound)(tol, dtype, n, n)


@st.composite
def solve_cases(draw, families=SOLVE_FAMILIES):
    dtype = draw(dtypes)
    family = draw(st.sampled_from(families))
    n = draw(st.one_of(st.integers(1, 8), st.integers(9, 260), st.sampled_from([63, 65, 127, 129, 257])))
    A = solve_matrix(family, n, dtype, seed=draw(st.integers(0, 3)))
    k = draw(st.sampled_from([None, 1, 3]))
    return A, draw(tolerances(dtype)), draw(leaf_sizes()), k, draw(st.integers(0, 2**32))


def rhs(n, k, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (n,) if k is None else (n, k)
    return rng.standard_normal(shape).astype(dtype)


def well_conditioned_compression(cls, A, tol, leaf):
    """(H, its dense form in float64, its condition number) for H = cls.from_dense(A).

    Hypothesis discards (``assume``) an H too ill-conditioned for a
    meaningful forward error, which needs cond * eps << 1.
    """
    H = cls.from_dense(A, tol=tol, leaf_size=leaf)
    Hd = H.to_dense().astype(np.float64)
    cond = condition_number(Hd)
    assume(cond * eps(A.dtype) < 1e-3)
    return H, Hd, cond


def check_against_dense(H, F, A, b, x, transpose, tol_bound, cond=None):
    """Check x (from F) against LAPACK on H, and its residual against the original A."""
    Hd = H.to_dense().astype(np.float64)
    n = Hd.shape[0]
    M = Hd.T if transpose else Hd
    cond = condition_number(Hd) if cond is None else cond
    assert cond * eps(F.dtype) < 1e-3, "a meaningful forward error needs cond * eps << 1"
    ref = np.linalg.solve(M, b.astype(np.float64))
    err = np.linalg.norm(x - ref) / max(np.linalg.norm(ref), 1e-300)
    assert err <= solve_error_bound(F.dtype, n, cond, H.levels), (err, cond)
    # Against A: A x - b = (A - H) x + (H x - b), and ||A - H||_2 <= ||A - H||_F.
    A64 = A.astype(np.float64).T if transpose else A.astype(np.float64)
    res = np.linalg.norm(A64 @ x - b)
    bound = tol_bound * np.linalg.norm(A64) * np.linalg.norm(x) + np.linalg.norm(M) * np.linalg.norm(
        x
    ) * solve_error_bound(F.dtype, n, cond, H.levels)
    assert res <= bound, (res, bound)


# -- accuracy ---------------------------------------------------------------------
@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
@FEWER
@given(case=solve_cases(), transpose=st.booleans())
def test_solve_matches_lapack(cls, case, transpose):
    A, tol, leaf, k, seed = case
    n = A.shape[0]
    H = cls.from_dense(A, tol=tol, leaf_size=leaf)
    cond = condition_number(H.to_dense().astype(np.float64))
    try:
        F = H.factor()
    except hsslin.FactorizationError:
        # Only a matrix singular to working precision may be refused.
        assert cond * eps(A.dtype) * n > 1e-3
        return
    assume(cond * eps(A.dtype) < 1e-3)
    b = rhs(n, k, A.dtype, seed)
    x = F.solve(b, transpose=transpose)
    assert x.shape == b.shape and x.dtype == A.dtype
    check_against_dense(
        H, F, A, b, x.astype(np.float64), transpose, compression_bound(cls, tol, A.dtype, n), cond
    )


@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
@FEWER
@given(case=solve_cases())
def test_logdet_matches_slogdet(cls, case):
    A, tol, leaf, _, _ = case
    n = A.shape[0]
    H, Hd, cond = well_conditioned_compression(cls, A, tol, leaf)
    sign, logabs = H.factor().logdet()
    ref_sign, ref_logabs = np.linalg.slogdet(Hd)
    assert sign == ref_sign
    assert abs(logabs - ref_logabs) <= logdet_error_bound(A.dtype, n, cond, H.levels) + 1e-12 * abs(
        ref_logabs
    )


@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
@FEWER
@given(case=solve_cases(families=SPD_FAMILIES))
def test_spd_variant_matches_cholesky(cls, case):
    A, tol, leaf, k, seed = case
    n = A.shape[0]
    H, Hd, cond = well_conditioned_compression(cls, A, tol, leaf)
    # Compression can make a nearly singular SPD matrix indefinite; the
    # Cholesky variant must then refuse, never return NaNs.
    if np.linalg.eigvalsh(0.5 * (Hd + Hd.T)).min() <= cond * eps(A.dtype) * np.linalg.norm(Hd, 2):
        return
    F = H.factor(symmetric=True)
    assert F.symmetric and F.method.endswith(("cholesky", "spd"))
    b = rhs(n, k, A.dtype, seed)
    x = F.solve(b).astype(np.float64)
    check_against_dense(H, F, A, b, x, False, compression_bound(cls, tol, A.dtype, n), cond)
    sign, logabs = F.logdet()
    assert sign == 1.0
    assert abs(logabs - np.linalg.slogdet(Hd)[1]) <= logdet_error_bound(
        A.dtype, n, cond, H.levels
    ) + 1e-12 * abs(logabs)


@pytest.mark.parametrize(
    "family, dtype",
    # float32 with the families whose condition number at n = 600 keeps cond * eps << 1.
    [(f, np.float64) for f in SOLVE_FAMILIES] + [(f, np.float32) for f in ("lowrank_diag", "cauchy")],
)
def test_ulv_on_a_deep_tree(family, dtype):
    # n = 600 with leaves of 16: six levels of elimination.
    n = 600
    A = solve_matrix(family, n, dtype)
    H = hsslin.HSSMatrix.from_dense(A, tol=1e-4 if dtype == np.float32 else 1e-10, leaf_size=16)
    assert H.levels == 6
    F = H.factor()
    b = rhs(n, 2, dtype, 1)
    cond = condition_number(H.to_dense().astype(np.float64))
    bound = hss_error_bound(H.tol, dtype, n, n)
    check_against_dense(H, F, A, b, F.solve(b).astype(np.float64), False, bound, cond)
    check_against_dense(H, F, A, b, F.solve(b, transpose=True).astype(np.float64), True, bound, cond)


# -- layouts, dtypes, threads -----------------------------------------------------------
def test_solve_layouts_and_dtypes():
    A = solve_matrix("laplace", 300, np.float64)
    F = hsslin.HSSMatrix.from_dense(A, tol=1e-10, leaf_size=32).factor()
    B = np.random.default_rng(0).standard_normal((300, 4))
    X = F.solve(B)
    assert np.array_equal(F.solve(np.asfortranarray(B)), X)
    assert F.solve(np.asfortranarray(B)).flags.f_contiguous
    # One column at a time runs matrix-vector kernels instead of matrix-matrix
    # ones: the same solve up to rounding.
    cond = condition_number(A)
    single = np.column_stack([F.solve(B[:, j]) for j in range(4)])
    assert np.linalg.norm(single - X) <= 2 * solve_error_bound(np.float64, 300, cond, 4) * np.linalg.norm(X)
    strided = F.solve(B[:, ::2])  # copied to a contiguous block first
    assert np.linalg.norm(strided - X[:, ::2]) <= 2 * solve_error_bound(
        np.float64, 300, cond, 4
    ) * np.linalg.norm(X)
    assert F.solve(B.astype(np.float32)).dtype == np.float64  # upcast
    F32 = hsslin.HSSMatrix.from_dense(
        solve_matrix("cauchy", 300, np.float32), tol=1e-5, leaf_size=32
    ).factor()
    with pytest.raises(ValueError, match="float64"):
        F32.solve(B)
    with pytest.raises(ValueError, match=r"expected \(300,\) or \(300, k\)"):
        F.solve(np.ones(299))
    assert F.solve(np.ones((300, 0))).shape == (300, 0)


@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
def test_thread_count_does_not_change_results(cls, restore_threads):
    A = solve_matrix("gaussian_nugget", 2000, np.float64)
    H = cls.from_dense(A, tol=1e-8, leaf_size=32)
    b = np.random.default_rng(0).standard_normal((2000, 8))
    out = []
    for threads in (1, 2):
        hsslin.set_num_threads(threads)
        F = H.factor()
        out.append((F.solve(b), F.solve(b, transpose=True), F.logdet()))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])
    assert out[0][2] == out[1][2]


# -- dense fallback and one-leaf matrices ------------------------------------------------
@pytest.mark.parametrize("symmetric", [False, True])
def test_incompressible_input_goes_to_lapack(symmetric):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((500, 500))
    if symmetric:
        A = A @ A.T + 500 * np.eye(500)
    H = hsslin.HSSMatrix.from_dense(A, tol=1e-8)
    assert H.is_dense
    F = H.factor(symmetric=symmetric)
    assert F.method == ("dense-cholesky" if symmetric else "dense-lu")
    b = rng.standard_normal(500)
    ref = np.linalg.solve(A, b)
    cond = condition_number(A)
    assert np.linalg.norm(F.solve(b) - ref) <= solve_error_bound(np.float64, 500, cond, 0) * np.linalg.norm(
        ref
    )
    assert np.linalg.norm(F.solve(b, transpose=True) - np.linalg.solve(A.T, b)) <= solve_error_bound(
        np.float64, 500, cond, 0
    ) * np.linalg.norm(ref)
    sign, logabs = F.logdet()
    ref_sign, ref_logabs = np.linalg.slogdet(A)
    assert sign == ref_sign and abs(logabs - ref_logabs) <= logdet_error_bound(np.float64, 500, cond, 0)
    assert F.nbytes >= A.nbytes


# -- errors ---------------------------------------------------------------------------
def test_factorization_error_is_a_linalg_error():
    assert issubclass(hsslin.FactorizationError, np.linalg.LinAlgError)
    assert issubclass(hsslin.FactorizationError, ValueError)


@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
@pytest.mark.parametrize("n", [40, 600])  # one dense block, and a tree
def test_singular_matrix_raises(cls, n):
    rng = np.random.default_rng(0)
    L = rng.standard_normal((n, 5))
    A = L @ L.T  # rank 5
    H = cls.from_dense(A, tol=1e-12, leaf_size=64)
    for symmetric in (False, True):
        if symmetric and cls is hsslin.HSSMatrix and not H.symmetric:
            continue
        with pytest.raises(hsslin.FactorizationError, match="singular|positive definite"):
            H.factor(symmetric=symmetric)


@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
@pytest.mark.parametrize("n", [40, 600])
def test_indefinite_matrix_refused_by_spd_variant(cls, n):
    A = solve_matrix("gaussian_nugget", n, np.float64) - 0.5 * np.eye(n)  # eigenvalues of both signs
    H = cls.from_dense(A, tol=1e-10, leaf_size=64)
    with pytest.raises(hsslin.FactorizationError, match="not positive definite"):
        H.factor(symmetric=True)
    F = H.factor()  # the general variant handles it
    b = np.ones(n)
    assert np.linalg.norm(A @ F.solve(b) - b) <= 1e-6 * condition_number(A) * np.linalg.norm(b)
    assert F.logdet()[0] == np.linalg.slogdet(A)[0]


def test_spd_variant_needs_a_symmetric_hss():
    A = solve_matrix("cauchy", 300, np.float64)
    H = hsslin.HSSMatrix.from_dense(A, tol=1e-8, leaf_size=32)
    with pytest.raises(ValueError, match="symmetric=True needs a symmetric"):
        H.factor(symmetric=True)
    with pytest.raises(TypeError, match="symmetric must be a bool"):
        H.factor(symmetric="yes")


@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
def test_non_square_refused(cls):
    H = cls.from_dense(make_matrix("gaussian", 200, 150), tol=1e-6)
    with pytest.raises(ValueError, match=r"factor needs a square matrix, got shape \(200, 150\)"):
        H.factor()


def test_factorization_not_constructible_directly():
    with pytest.raises(TypeError, match="H.factor"):
        hsslin.Factorization(object(), "hss-ulv", np.float64)


# -- preconditioning ------------------------------------------------------------------
@pytest.mark.parametrize("cls", [hsslin.HSSMatrix, hsslin.HODLRMatrix])
def test_gmres_converges_faster_with_the_preconditioner(cls):
    # An ill-conditioned kernel matrix (exponential kernel, nugget 1e-2):
    # GMRES alone needs hundreds of iterations; a loose factorization as M a few.
    n = 800
    A = solve_matrix("laplace", n, np.float64) + 1e-2 * np.eye(n)
    b = np.random.default_rng(0).standard_normal(n)
    counts = {}
    for name, M in (("plain", None), ("hss", cls.from_dense(A, tol=1e-3).factor().inverse_operator())):
        it = []
        x, info = spla.gmres(
            A, b, M=M, rtol=1e-8, restart=50, maxiter=100, callback=it.append, callback_type="pr_norm"
        )
        assert info == 0
        assert np.linalg.norm(A @ x - b) <= 1e-7 * np.linalg.norm(b)
        counts[name] = len(it)
    assert counts["hss"] * 5 < counts["plain"], counts


def test_cg_with_the_spd_preconditioner():
    n = 800
    A = solve_matrix("laplace", n, np.float64) + 1e-2 * np.eye(n)
    b = np.ones(n)
    M = hsslin.HSSMatrix.from_dense(A, tol=1e-3).factor(symmetric=True).inverse_operator()
    it_plain, it_prec = [], []
    spla.cg(A, b, rtol=1e-8, maxiter=3000, callback=it_plain.append)
    x, info = spla.cg(A, b, M=M, rtol=1e-8, maxiter=3000, callback=it_prec.append)
    assert info == 0 and len(it_prec) * 5 < len(it_plain)
    op = M @ np.eye(n)[:, :3]  # matmat works too
    assert op.shape == (n, 3)


# -- files ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda A: hsslin.HSSMatrix.from_dense(A, tol=1e-8, leaf_size=32).factor(),
        lambda A: hsslin.HSSMatrix.from_dense(A, tol=1e-8, leaf_size=32).factor(symmetric=True),
        lambda A: hsslin.HODLRMatrix.from_dense(A, tol=1e-8, leaf_size=32).factor(),
        lambda A: hsslin.HSSMatrix.from_dense(A[:50, :50], tol=1e-8).factor(),
        lambda A: hsslin.HSSMatrix.from_dense(A[:50, :50], tol=1e-8).factor(symmetric=True),
    ],
    ids=["hss-ulv", "hss-cholesky", "hodlr", "dense-lu", "dense-cholesky"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trip(tmp_path, make, dtype):
    A = solve_matrix("gaussian_nugget", 400, dtype)
    F = make(A)
    path = tmp_path / "f.hsslin"
    F.save(path)
    G = hsslin.load(path)
    assert isinstance(G, hsslin.Factorization) and G.method == F.method and G.dtype == F.dtype
    b = np.random.default_rng(0).standard_normal(F.shape[0]).astype(dtype)
    assert np.array_equal(G.solve(b), F.solve(b))
    assert np.array_equal(G.solve(b, transpose=True), F.solve(b, transpose=True))
    assert G.logdet() == F.logdet() and G.nbytes == F.nbytes
    P = pickle.loads(pickle.dumps(F))
    assert np.array_equal(P.solve(b), F.solve(b))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.hsslin"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted|checksum"):
        hsslin.load(bad)


def test_nbytes_counts_the_factors():
    A = solve_matrix("gaussian_nugget", 1000, np.float64)
    H = hsslin.HSSMatrix.from_dense(A, tol=1e-8, leaf_size=32)
    F = H.factor()
    # Each node stores an m x m forward transform and an m x m column
    # transform: at least the leaves' squares twice over.
    leaves = 2**H.levels
    assert F.nbytes >= 2 * 8 * (1000 // leaves) ** 2 * leaves * 0.5
    assert F.nbytes < A.nbytes
    # The file holds the same values plus shapes and a header: within a few percent.
    assert abs(len(F.to_bytes()) - F.nbytes) < 0.05 * F.nbytes


# -- the GIL -----------------------------------------------------------------------
def python_runs_during(call, tries: int = 5) -> bool:
    """True when the main thread executes Python while `call` runs in another thread.

    The worker stamps the start and end of `call`; the main thread stamps
    every turn of a Python loop. A call that holds the GIL throughout leaves
    no stamp in the middle half of its window, however often it is tried: the
    main thread cannot run Python without the GIL. A call that releases it
    can still miss by scheduling alone (CI's first failure: the core's
    threads filled every CPU, so the main thread was not scheduled during a
    short call), so the call runs on one core thread, GIL hand-overs are made
    quick (switch interval 0.1 ms), and it is tried up to `tries` times.
    """
    threads, interval = hsslin.get_num_threads(), sys.getswitchinterval()
    hsslin.set_num_threads(1)
    sys.setswitchinterval(1e-4)
    try:
        for _ in range(tries):
            window = []

            def work(window=window):
                t0 = time.perf_counter()
                call()
                window.extend((t0, time.perf_counter()))

            stamps = []
            worker = threading.Thread(target=work)
            worker.start()
            while worker.is_alive():
                stamps.append(time.perf_counter())
            worker.join()
            t0, t1 = window
            quarter = 0.25 * (t1 - t0)
            if any(t0 + quarter < s < t1 - quarter for s in stamps):
                return True
        return False
    finally:
        hsslin.set_num_threads(threads)
        sys.setswitchinterval(interval)


@pytest.fixture(scope="module")
def long_calls():
    """Core calls of tens of milliseconds or more, by name."""
    A = solve_matrix("gaussian_nugget", 3000, np.float64)
    H = hsslin.HSSMatrix.from_dense(A, tol=1e-10, leaf_size=32)
    L = hsslin.HODLRMatrix.from_dense(A, tol=1e-10, leaf_size=32)
    F, G = H.factor(), L.factor()
    B = np.random.default_rng(0).standard_normal((3000, 200))
    x = np.random.default_rng(0).uniform(size=(2000, 2))
    K = hsslin.KernelMatrix(x, "gaussian", lengthscale=0.1, nugget=1e-2)
    return {
        "hss-factor": H.factor,
        "hss-solve": lambda: F.solve(B),
        "hodlr-factor": L.factor,
        "hodlr-solve": lambda: G.solve(B, transpose=True),
        "from-kernel": lambda: hsslin.HSSMatrix.from_kernel(
            x, "gaussian", lengthscale=0.1, nugget=1e-2, tol=1e-8
        ),
        "kernel-product": lambda: K @ np.ones((2000, 4)),
    }


@pytest.mark.parametrize(
    "name", ["hss-factor", "hss-solve", "hodlr-factor", "hodlr-solve", "from-kernel", "kernel-product"]
)
def test_long_calls_release_the_gil(long_calls, name):
    assert python_runs_during(long_calls[name])
