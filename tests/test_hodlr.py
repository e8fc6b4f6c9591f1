"""HODLRMatrix against a dense NumPy reference: tolerance mode, rank schedules.

Accuracy bounds come from conftest (hodlr_error_bound, product_bound,
rounding_floor); each test states which and why.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hsslin
from conftest import (
    COMPRESSIBLE,
    FAMILIES,
    LOWRANK_RANK,
    assert_copies_exact,
    assert_product_close,
    assert_same_tree,
    dims,
    dtypes,
    hodlr_error_bound,
    leaf_sizes,
    make_matrix,
    rel_fro_error,
    rounding_floor,
    tolerances,
    tree_levels,
    tree_nodes,
)

# HODLRMatrix.error is the exact error summed block by block in working
# precision; recomputing it from to_dense() in float64 differs by rounding
# only: |est - err| <= 1e-6 * err + rounding floor.
ESTIMATE_RTOL = 1e-6


@st.composite
def matrices(draw, families=FAMILIES, max_size=300):
    dtype = draw(dtypes)
    family = draw(st.sampled_from(families))
    m, n = draw(dims(max_size)), draw(dims(max_size))
    return make_matrix(family, m, n, dtype, seed=draw(st.integers(0, 3)))


def off_diagonal_blocks(m: int, n: int, levels: int):
    """Yield (level, row range, column range) of B12, B21 per inner node, heap order."""
    nodes = tree_nodes(m, n, levels)
    for i in range(2**levels - 1):
        a, b = nodes[2 * i + 1], nodes[2 * i + 2]
        level = int(np.log2(i + 1)) + 1
        yield level, (a[0], a[1]), (b[2], b[3])  # B12: rows of a, columns of b
        yield level, (b[0], b[1]), (a[2], a[3])  # B21: rows of b, columns of a


def scheduled_rank(rank: int, decay: float, min_rank: int, level: int) -> int:
    """max(min_rank, round(rank * decay^(level - 1))), level 1 = the root's blocks."""
    return max(min_rank, int(np.floor(rank * decay ** (level - 1) + 0.5)))


def expected_block_rank(r: int, rows: int, cols: int) -> int:
    """The rank a block gets: capped by its sides; -1 when U V^T would not save bytes."""
    if rows == 0 or cols == 0:
        return 0
    r = min(r, rows, cols)
    return -1 if r * (rows + cols) >= rows * cols else r


def assert_estimate_exact(H, A):
    err = H.relative_error(A)
    floor = rounding_floor(A.dtype, *A.shape)
    assert abs(H.error - err) <= ESTIMATE_RTOL * err + floor, (H.error, err)
    return err


# -- tolerance mode -------------------------------------------------------------
@given(matrices(), st.data())
def test_tolerance_mode_error_is_guaranteed(A, data):
    m, n = A.shape
    tol = data.draw(tolerances(A.dtype))
    leaf = data.draw(leaf_sizes())
    H = hsslin.HODLRMatrix.from_dense(A, tol=tol, leaf_size=leaf, seed=data.draw(st.integers(0, 2**32)))
    assert H.shape == A.shape and H.dtype == A.dtype
    assert H.rank_schedule is None
    assert H.levels == tree_levels(m, n, leaf)
    # Deterministic: each block's residual is measured exactly (hodlr_error_bound).
    err = assert_estimate_exact(H, A)
    assert err <= hodlr_error_bound(tol, A.dtype, m, n)
    assert H.error <= tol * (1 + ESTIMATE_RTOL)


@given(matrices(), st.data())
def test_structure_matches_parts(A, data):
    m, n = A.shape
    leaf = data.draw(leaf_sizes())
    tol = data.draw(tolerances(A.dtype))
    H = hsslin.HODLRMatrix.from_dense(A, tol=tol, leaf_size=leaf)
    L = H.levels
    parts = H.parts()
    assert len(parts) == 2 ** (L + 1) - 1
    assert [len(r) for r in H.ranks] == [2**lv for lv in range(1, L + 1)]
    flat = [int(v) for level in H.ranks for v in level]
    nodes = tree_nodes(m, n, L)
    values = 0
    for i, (r0, r1, c0, c1) in enumerate(nodes):
        p = parts[i]
        if i >= 2**L - 1:
            # Leaves store the diagonal block exactly.
            assert np.array_equal(p["D"], A[r0:r1, c0:c1])
            values += p["D"].size
            continue
        for key, rank in (("B12", flat[2 * i]), ("B21", flat[2 * i + 1])):
            blk = p[key]
            if rank == -1:
                assert blk["is_dense"]
                values += blk["dense"].size
            else:
                assert not blk["is_dense"] and blk["U"].shape[1] == rank == blk["V"].shape[1]
                values += blk["U"].size + blk["V"].size
    # nbytes counts every stored value plus metadata (tree, shapes, header).
    assert H.nbytes > values * A.dtype.itemsize
    assert len(H.to_bytes()) > values * A.dtype.itemsize


@given(st.sampled_from([np.float32, np.float64]), st.integers(12, 64), st.data())
def test_lowrank_plus_diagonal_ranks(dtype, leaf, data):
    # Square only: see lowrank_plus_diagonal for why the bound needs m == n.
    m = n = data.draw(st.integers(4 * leaf, 400))
    tol = data.draw(tolerances(dtype))
    A = make_matrix("lowrank_diag", m, n, dtype, seed=data.draw(st.integers(0, 5)))
    H = hsslin.HODLRMatrix.from_dense(A, tol=tol, leaf_size=leaf)
    # Off-diagonal blocks of L R^T + diag have rank <= 5 exactly; the
    # tolerance is >= 100x rounding, so no block needs more (or it is dense).
    for r in H.ranks:
        assert np.all((r == -1) | ((r >= 0) & (r <= LOWRANK_RANK))), r
    assert H.relative_error(A) <= hodlr_error_bound(tol, dtype, m, n)


def test_default_is_tolerance_1e8():
    A = make_matrix("cauchy", 300, 200)
    H = hsslin.HODLRMatrix.from_dense(A, leaf_size=32)
    assert H.rank_schedule is None
    assert H.relative_error(A) <= hodlr_error_bound(1e-8, A.dtype, 300, 200)


def test_max_rank_caps_tolerance_mode():
    A = make_matrix("cauchy", 300, 300)
    H = hsslin.HODLRMatrix.from_dense(A, tol=1e-12, max_rank=3, leaf_size=32)
    assert all(np.all((r == -1) | (r <= 3)) for r in H.ranks)
    err = assert_estimate_exact(H, A)
    assert err > 1e-12  # the cap binds and the reported error says so


# -- schedule mode --------------------------------------------------------------
@st.composite
def schedules(draw):
    return (draw(st.integers(1, 80)), draw(st.floats(0.1, 1.0)), draw(st.integers(1, 8)))


@given(matrices(), schedules(), leaf_sizes(), st.integers(0, 2**32))
def test_rank_schedule(A, schedule, leaf, seed):
    rank, decay, min_rank = schedule
    m, n = A.shape
    H = hsslin.HODLRMatrix.from_dense(
        A, rank=rank, rank_decay=decay, min_rank=min_rank, leaf_size=leaf, seed=seed
    )
    assert H.rank_schedule == (rank, pytest.approx(decay), min_rank)
    assert H.levels == tree_levels(m, n, leaf)
    got = [int(v) for level in H.ranks for v in level]
    expected, optimal2 = [], 0.0
    A64 = A.astype(np.float64)
    for level, (r0, r1), (c0, c1) in off_diagonal_blocks(m, n, H.levels):
        r = expected_block_rank(scheduled_rank(rank, decay, min_rank, level), r1 - r0, c1 - c0)
        expected.append(r)
        if r > 0:
            s = np.linalg.svd(A64[r0:r1, c0:c1], compute_uv=False)
            optimal2 += float(np.sum(s[r:] ** 2))
    assert got == expected
    err = assert_estimate_exact(H, A)
    # Eckart-Young per block: no rank-r factorization beats the truncated SVD.
    # A randomized SVD with 10 oversamples and 2 power iterations is within a
    # few percent of it (Halko-Martinsson-Tropp 2011, Cor. 10.10); 1.5 leaves room.
    optimal = np.sqrt(optimal2) / np.linalg.norm(A64)
    floor = rounding_floor(A.dtype, m, n)
    assert optimal * (1 - 1e-6) - floor <= err <= 1.5 * optimal + floor


def test_schedule_docstring_example():
    W = np.random.default_rng(0).standard_normal((384, 256)).astype(np.float32)
    H = hsslin.HODLRMatrix.from_dense(W, rank=64, rank_decay=0.5, leaf_size=48)
    assert [int(r.max()) for r in H.ranks] == [64, 32, 16]
    assert [int(r.min()) for r in H.ranks] == [64, 32, 16]
    assert H.rank_schedule == (64, 0.5, 1)


def test_schedule_min_rank_floor_and_dense_blocks():
    A = make_matrix("gaussian", 512, 512)
    H = hsslin.HODLRMatrix.from_dense(A, rank=40, rank_decay=0.25, min_rank=6, leaf_size=32)
    # 40, 10, round(2.5)=2 -> 6, 6: the floor binds from level 3 on.
    assert [sorted(set(r.tolist())) for r in H.ranks] == [[40], [10], [6], [6]]
    # rank * (rows + cols) >= rows * cols: U V^T would not save bytes, kept dense (-1).
    # 256x256 blocks: 100*512 < 256^2 keeps rank 100; 128x128: 100*256 >= 128^2.
    G = hsslin.HODLRMatrix.from_dense(A, rank=100, rank_decay=1.0, leaf_size=64)
    assert [sorted(set(r.tolist())) for r in G.ranks] == [[100], [-1], [-1]]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(tol=1e-6, rank=4),
        dict(rank=4, rank_decay=0.0),
        dict(rank=4, rank_decay=1.5),
        dict(rank=0),
        dict(rank=4, min_rank=0),
        dict(rank=4, rank_decay=float("nan")),
        dict(tol=1e-6, leaf_size=0),
        dict(rank=3, power_iterations=-1),
    ],
)
def test_invalid_options(kwargs):
    with pytest.raises(ValueError):
        hsslin.HODLRMatrix.from_dense(np.eye(10), **kwargs)


@pytest.mark.parametrize("kwargs", [dict(rank=4, rank_decay=True), dict(rank=4, rank_decay="0.5")])
def test_non_numeric_options(kwargs):
    # Not a number at all: TypeError, as for every numeric option of every class.
    with pytest.raises(TypeError, match="rank_decay"):
        hsslin.HODLRMatrix.from_dense(np.eye(10), **kwargs)


# -- products -------------------------------------------------------------------
@given(matrices(), st.integers(1, 5), st.data())
def test_products_match_dense(A, k, data):
    m, n = A.shape
    dt = A.dtype
    if data.draw(st.booleans()):
        H = hsslin.HODLRMatrix.from_dense(A, tol=data.draw(tolerances(dt)), leaf_size=data.draw(leaf_sizes()))
    else:
        rank, decay, min_rank = data.draw(schedules())
        H = hsslin.HODLRMatrix.from_dense(
            A, rank=rank, rank_decay=decay, min_rank=min_rank, leaf_size=data.draw(leaf_sizes())
        )
    D = H.to_dense()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    x, y = rng.standard_normal(n).astype(dt), rng.standard_normal(m).astype(dt)
    X, Y = rng.standard_normal((n, k)).astype(dt), rng.standard_normal((m, k)).astype(dt)
    # product_bound: 8 eps sqrt(n) ||D||_F ||x|| (see conftest).
    assert_product_close(H @ x, D, x, dt, "H @ x")
    assert_product_close(H.matvec(x), D, x, dt, "matvec")
    assert_product_close(H @ X, D, X, dt, "H @ X (C)")
    assert_product_close(H @ np.asfortranarray(X), D, X, dt, "H @ X (F)")
    assert_product_close(H.matmat(X), D, X, dt, "matmat")
    assert_product_close(H.T @ y, D.T, y, dt, "H.T @ y")
    assert_product_close(H.rmatvec(y), D.T, y, dt, "rmatvec")
    assert_product_close(H.rmatmat(Y), D.T, Y, dt, "rmatmat")
    assert_product_close(H.T @ np.asfortranarray(Y), D.T, Y, dt, "H.T @ Y (F)")
    assert_product_close(H.__rmatmul__(y), D.T, y, dt, "y @ H")
    assert_product_close(H.__rmatmul__(Y.T).T, D.T, Y, dt, "Y.T @ H")
    assert rel_fro_error(D.T, H.T.to_dense()) <= rounding_floor(dt, m, n)


def dense_from_parts(H, m, n):
    """The operator assembled in float64 from H.parts() (the exchange form)."""
    L = H.levels
    parts = H.parts()
    nodes = tree_nodes(m, n, L)
    M = np.zeros((m, n))
    for i, (r0, r1, c0, c1) in enumerate(nodes):
        p = parts[i]
        if i >= 2**L - 1:
            M[r0:r1, c0:c1] = p["D"]
            continue
        a, b = nodes[2 * i + 1], nodes[2 * i + 2]
        for key, rows, cols in (("B12", a[:2], b[2:]), ("B21", b[:2], a[2:])):
            blk = p[key]
            block = blk["dense"] if blk["is_dense"] else blk["U"].astype(np.float64) @ blk["V"].T
            M[rows[0] : rows[1], cols[0] : cols[1]] = block
    return M


@given(matrices(), st.integers(2, 4), st.data())
def test_every_product_path_matches_the_parts(A, k, data):
    # The product streams D, U and V^T from row panels restarting at each
    # leaf; this checks each path (one contiguous vector: the panel kernels;
    # a strided vector and several columns: the unpacked stretches) and its
    # transpose against the factors as parts() returns them.
    m, n = A.shape
    dt = A.dtype
    rank, decay, min_rank = data.draw(schedules())
    H = hsslin.HODLRMatrix.from_dense(
        A, rank=rank, rank_decay=decay, min_rank=min_rank, leaf_size=data.draw(leaf_sizes())
    )
    M = dense_from_parts(H, m, n)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    x, y = rng.standard_normal(n).astype(dt), rng.standard_normal(m).astype(dt)
    X, Y = rng.standard_normal((n, k)).astype(dt), rng.standard_normal((m, k)).astype(dt)
    xs, ys = np.repeat(x, 2)[::2], np.repeat(y, 2)[::2]
    assert xs.strides[0] == 2 * dt.itemsize and np.array_equal(xs, x)
    assert_product_close(H @ x, M, x, dt, "H @ x")
    assert_product_close(H @ xs, M, x, dt, "H @ x (strided)")
    assert_product_close(H @ X, M, X, dt, "H @ X")
    assert_product_close(H.T @ y, M.T, y, dt, "H.T @ y")
    assert_product_close(H.T @ ys, M.T, y, dt, "H.T @ y (strided)")
    assert_product_close(H.T @ np.asfortranarray(Y), M.T, Y, dt, "H.T @ Y")


# -- reproducibility, threads ---------------------------------------------------
@given(
    matrices(families=COMPRESSIBLE, max_size=200),
    st.integers(0, 2**32),
    st.integers(0, 2**32),
    st.booleans(),
)
def test_seed_reproducible(A, seed, other, schedule):
    kw = dict(rank=12, rank_decay=0.7) if schedule else dict(tol=1e-4)
    H1 = hsslin.HODLRMatrix.from_dense(A, leaf_size=16, seed=seed, **kw)
    H2 = hsslin.HODLRMatrix.from_dense(A, leaf_size=16, seed=seed, **kw)
    assert np.array_equal(H1.to_dense(), H2.to_dense())
    assert H1.to_bytes() == H2.to_bytes()
    H3 = hsslin.HODLRMatrix.from_dense(A, leaf_size=16, seed=other, **kw)
    for H in (H1, H3):
        err = assert_estimate_exact(H, A)
        if not schedule:
            assert err <= hodlr_error_bound(1e-4, A.dtype, *A.shape)


@pytest.mark.parametrize("kw", [dict(tol=1e-8), dict(rank=30, rank_decay=0.6)])
def test_thread_count_does_not_change_results(kw, restore_threads):
    A = make_matrix("cauchy", 600, 500)
    X = np.random.default_rng(3).standard_normal((500, 128))  # large enough to run threaded
    hsslin.set_num_threads(1)
    H1 = hsslin.HODLRMatrix.from_dense(A, leaf_size=32, **kw)
    Y1 = H1 @ X
    hsslin.set_num_threads(2)
    H2 = hsslin.HODLRMatrix.from_dense(A, leaf_size=32, **kw)
    D1 = H1.to_dense()
    # Threads only partition independent blocks: same result up to rounding.
    assert rel_fro_error(D1, H2.to_dense()) <= rounding_floor(np.float64, 600, 500)
    assert_product_close(Y1, D1, X, np.float64, "1 thread")
    assert_product_close(H1 @ X, D1, X, np.float64, "2 threads")
    assert_product_close(H2 @ X, D1, X, np.float64, "2 threads, rebuilt")


# -- persistence ----------------------------------------------------------------
def _same_hodlr(H, G):
    assert_same_tree(H, G, ("error", "rank_schedule"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(tol=1e-5), dict(rank=20, rank_decay=0.5, min_rank=2)])
@pytest.mark.parametrize(
    "family,shape", [("cauchy", (300, 170)), ("random", (129, 200)), ("laplace", (3, 2))]
)
def test_save_load_round_trip(tmp_path, dtype, kw, family, shape):
    A = make_matrix(family, *shape, dtype=dtype)
    H = hsslin.HODLRMatrix.from_dense(A, leaf_size=16, **kw)
    path = tmp_path / "m.hodlr"
    H.save(path)
    assert path.read_bytes() == H.to_bytes()
    _same_hodlr(H, hsslin.load(path))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pickle_and_copy(dtype):
    A = make_matrix("gaussian", 200, 150, dtype)
    assert_copies_exact(lambda: hsslin.HODLRMatrix.from_dense(A, rank=10, leaf_size=16), _same_hodlr)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 9), (64, 64)])
def test_single_leaf_nbytes_close_to_dense(dtype, shape):
    A = make_matrix("cauchy", *shape, dtype=dtype)
    H = hsslin.HODLRMatrix.from_dense(A, leaf_size=64)
    assert H.levels == 0 and H.ranks == [] and H.error == 0.0
    assert np.array_equal(H.to_dense(), A)
    # Dense values plus a header (shape, one tree node, options): < 512 bytes.
    assert H.dense_nbytes < H.nbytes <= H.dense_nbytes + 512


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose", [False, True])
def test_products_do_not_depend_on_buffer_alignment(dtype, transpose):
    """Inputs and results at different addresses give bitwise the same product.

    (Eigen's vectorized loops peel to
    alignment, which changes rounding). Results are numpy's fresh allocations
    and are kept alive, so they land at addresses of every alignment.
    """
    rng = np.random.default_rng(7)
    for m, n, leaf in ((18, 6, 11), (37, 29, 5), (64, 40, 9)):
        W = rng.standard_normal((m, n)).astype(dtype)
        op = hsslin.HODLRMatrix.from_dense(W, rank=3, leaf_size=leaf)
        op = op.T if transpose else op
        k = op.shape[1]
        x = rng.standard_normal(k).astype(dtype)
        ref = op @ x
        results = [op @ x for _ in range(100)]
        for shift in range(1, 8):
            buf = np.empty(k + shift, dtype)
            buf[shift:] = x
            results.append(op @ buf[shift:])
        assert all(np.array_equal(r, ref) for r in results), (m, n)
