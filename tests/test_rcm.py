"""Reverse Cuthill-McKee against scipy.sparse.csgraph and structural checks."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components
from scipy.sparse.csgraph import reverse_cuthill_mckee as scipy_rcm

from hsslin._sparse import CSRMatrix, bandwidth, reverse_cuthill_mckee


def reference_bandwidth(A, rows=None, cols=None):
    A = sp.coo_array(A)
    m, n = A.shape
    rows = np.arange(m) if rows is None else rows
    cols = np.arange(n) if cols is None else cols
    rpos = np.empty(m, np.int64)
    rpos[rows] = np.arange(m)
    cpos = np.empty(n, np.int64)
    cpos[cols] = np.arange(n)
    if A.nnz == 0:
        return 0
    return int(np.abs(rpos[A.row] - cpos[A.col]).max())


def assert_permutation(p, n):
    assert p.dtype == np.int64 and p.shape == (n,)
    np.testing.assert_array_equal(np.sort(p), np.arange(n))


def random_symmetric(n, density, seed):
    A = sp.random_array((n, n), density=density, format="csr", rng=np.random.default_rng(seed))
    return ((A + A.T) != 0).astype(np.float64).tocsr()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), degree=st.floats(0.5, 8), seed=st.integers(0, 2**32 - 1))
def test_valid_permutation_and_bandwidth(n, degree, seed):
    A = random_symmetric(n, min(1.0, degree / n), seed)
    perm = reverse_cuthill_mckee(A)
    assert_permutation(perm, n)
    assert bandwidth(A, perm) == reference_bandwidth(A, perm, perm)


def test_bandwidth_close_to_scipy_over_ensemble():
    # RCM is a heuristic: on a small random graph either start node can win
    # by a few rows. Over 200 random graphs our bandwidth is no worse than
    # scipy's on (geometric) average, and rarely more than 10% worse: measured
    # max 1.12, 1% of graphs above 1.1 (see the report in the commit).
    ratios = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(50, 400))
        A = random_symmetric(n, min(1.0, rng.uniform(1, 8) / n), seed)
        ours = bandwidth(A, reverse_cuthill_mckee(A))
        theirs = reference_bandwidth(A, *(2 * [scipy_rcm(A, symmetric_mode=True)]))
        ratios.append(ours / max(theirs, 1))
    ratios = np.array(ratios)
    assert np.exp(np.log(ratios).mean()) <= 1.0
    assert np.mean(ratios > 1.1) <= 0.02
    assert ratios.max() <= 1.15


def test_random_symmetric_large_within_ten_percent():
    for seed in range(5):
        A = random_symmetric(3000, 4 / 3000, seed)
        ours = bandwidth(A, reverse_cuthill_mckee(A))
        theirs = reference_bandwidth(A, *(2 * [scipy_rcm(A, symmetric_mode=True)]))
        assert ours <= 1.1 * theirs


@pytest.mark.parametrize("n, half_band", [(500, 3), (2000, 10), (1000, 1)])
def test_recovers_shuffled_band(n, half_band):
    rng = np.random.default_rng(n)
    A = sp.diags_array(
        [np.ones(n - abs(k)) for k in range(-half_band, half_band + 1)],
        offsets=range(-half_band, half_band + 1),
        format="csr",
    )
    shuffle = rng.permutation(n)
    B = A[shuffle][:, shuffle]
    assert bandwidth(B) > 10 * half_band
    perm = reverse_cuthill_mckee(B)
    assert bandwidth(B, perm) <= 2 * half_band


def test_nonsymmetric_pattern_uses_s_plus_st():
    A = sp.csr_array(np.triu(np.ones((6, 6))) * (np.arange(6)[None, :] % 2))
    perm = reverse_cuthill_mckee(A)
    assert_permutation(perm, 6)
    sym = ((A + A.T) != 0).astype(float)
    assert bandwidth(A, perm) <= bandwidth(sym, perm)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 200),
    density=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**32 - 1),
    dup=st.booleans(),
)
def test_graph_of_s_plus_st_independent_of_row_order(n, density, seed, dup):
    # The order must not depend on the order of entries within a row nor on
    # repeated entries: the graph of S + S^T is built the same way for each,
    # and it is also the graph of the explicitly symmetrized pattern.
    rng = np.random.default_rng(seed)
    A = sp.random_array((n, n), density=density, format="csr", rng=rng)
    A.sort_indices()
    indptr, indices = A.indptr.copy(), A.indices.copy()
    if dup and indices.size:  # repeat every nonempty row's first entry
        counts = np.diff(indptr)
        firsts = indptr[:-1][counts > 0]
        indices = np.insert(indices, firsts + 1, indices[firsts])
        indptr = np.r_[0, np.cumsum(counts + (counts > 0))]
    sorted_rows = sp.csr_array((np.ones(indices.size), indices, indptr), shape=(n, n))
    shuffled = indices.copy()
    for i in range(n):
        rng.shuffle(shuffled[indptr[i] : indptr[i + 1]])
    unsorted_rows = sp.csr_array((np.ones(indices.size), shuffled, indptr), shape=(n, n))
    within_rows = np.diff(indices)[np.diff(np.repeat(np.arange(n), np.diff(indptr))) == 0]
    assert np.all(within_rows >= 0)
    perm = reverse_cuthill_mckee(sorted_rows)
    assert_permutation(perm, n)
    np.testing.assert_array_equal(perm, reverse_cuthill_mckee(unsorted_rows))
    sym = sp.csr_array(((sorted_rows + sorted_rows.T) != 0).astype(np.float64))
    sym.setdiag(0)
    sym.eliminate_zeros()
    sym.sort_indices()
    np.testing.assert_array_equal(perm, reverse_cuthill_mckee(sym, symmetric_mode=True))


def test_disconnected_self_loops_empty_rows():
    blocks = [random_symmetric(40, 0.1, s) for s in range(3)]
    A = sp.block_diag(blocks + [sp.csr_array((5, 5))], format="csr")
    A = (A + sp.eye_array(A.shape[0])).tolil()  # self-loops everywhere
    A[[3, 50], :] = 0  # empty rows (and columns)
    A[:, [3, 50]] = 0
    A = A.tocsr()
    A.eliminate_zeros()
    n = A.shape[0]
    perm = reverse_cuthill_mckee(A)
    assert_permutation(perm, n)
    # Each component is numbered contiguously.
    _, labels = connected_components(A, directed=False)
    relabeled = labels[perm]
    assert np.count_nonzero(np.diff(relabeled)) == len(np.unique(labels)) - 1
    assert bandwidth(A, perm) <= reference_bandwidth(A, *(2 * [scipy_rcm(A, True)]))


def test_inputs_dense_csrmatrix_and_empty():
    A = random_symmetric(50, 0.1, 1)
    p1 = reverse_cuthill_mckee(A)
    np.testing.assert_array_equal(p1, reverse_cuthill_mckee(A.toarray()))
    np.testing.assert_array_equal(p1, reverse_cuthill_mckee(CSRMatrix.from_scipy(A)))
    np.testing.assert_array_equal(p1, reverse_cuthill_mckee(sp.coo_matrix(A)))
    np.testing.assert_array_equal(p1, reverse_cuthill_mckee(A, symmetric_mode=True))
    assert reverse_cuthill_mckee(np.zeros((0, 0))).shape == (0,)
    assert_permutation(reverse_cuthill_mckee(np.zeros((4, 4))), 4)
    assert bandwidth(np.zeros((3, 3))) == 0


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 60), n=st.integers(1, 60), density=st.floats(0, 0.3), seed=st.integers(0, 2**32 - 1))
def test_rectangular_bipartite(m, n, density, seed):
    if m == n:
        n += 1
    A = sp.random_array((m, n), density=density, format="csr", rng=np.random.default_rng(seed))
    rows, cols = reverse_cuthill_mckee(A)
    assert_permutation(rows, m)
    assert_permutation(cols, n)
    assert bandwidth(A, (rows, cols)) == reference_bandwidth(A, rows, cols)


def test_rectangular_shuffled_band():
    rng = np.random.default_rng(0)
    m, n = 300, 600
    A = sp.lil_array((m, n))
    for i in range(m):
        A[i, 2 * i : 2 * i + 4] = 1.0
    A = A.tocsr()
    r, c = rng.permutation(m), rng.permutation(n)
    B = A[r][:, c]
    rows, cols = reverse_cuthill_mckee(B)
    reordered = B[rows][:, cols]
    # A banded bipartite pattern comes back as a band of width about 2 * 4.
    coo = reordered.tocoo()
    assert np.abs(coo.col - 2 * coo.row).max() <= 8


def test_bandwidth_validation():
    A = random_symmetric(10, 0.3, 2)
    with pytest.raises(ValueError, match="not a permutation"):
        bandwidth(A, np.zeros(10, dtype=np.int64))
    with pytest.raises(ValueError, match="perm has shape"):
        bandwidth(A, np.arange(9))
    with pytest.raises(ValueError, match="row_perm, col_perm"):
        bandwidth(np.ones((2, 3)), np.arange(2))
    with pytest.raises(ValueError, match="2-D"):
        reverse_cuthill_mckee(np.ones(3))
    with pytest.raises(TypeError):
        reverse_cuthill_mckee(np.array([["a"]]))
