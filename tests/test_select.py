"""Top-magnitude extraction (CSRMatrix.from_dense) against a NumPy reference."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsslin import _core
from hsslin._sparse import CSRMatrix, _expected_top_count


def reference_top(W, k):
    """Indices (flat, row-major) of the k largest |w|; ties to the earlier position."""
    flat = np.abs(W).ravel()
    order = np.lexsort((np.arange(flat.size), -flat))  # by -|w|, then position
    return np.sort(order[:k])


def kept_flat(S):
    rows = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
    return rows * S.shape[1] + S.indices


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 33), (200, 300)])
@pytest.mark.parametrize("rho", [0.0, 0.01, 0.1, 0.3, 0.5, 0.99])
def test_per_matrix_matches_reference(dtype, shape, rho):
    rng = np.random.default_rng(shape[0])
    W = rng.standard_normal(shape).astype(dtype)
    S = CSRMatrix.from_dense(W, density=rho)
    k = _expected_top_count(rho, W.size)
    assert S.nnz == k and S.dtype == dtype
    np.testing.assert_array_equal(kept_flat(S), reference_top(W, k))
    np.testing.assert_array_equal(S.data, W.ravel()[kept_flat(S)])


def test_count_rule():
    assert _core.top_count(0.1, 2000) == 200  # 0.1 * 2000 rounds to 200.00000000000003
    assert _core.top_count(0.3, 10) == 3
    assert _core.top_count(0.05, 4096 * 4096) == math.ceil(0.05 * 4096 * 4096)
    assert _core.top_count(0.001, 10) == 1
    assert _core.top_count(0.0, 10) == 0
    for rho in np.linspace(0, 0.999, 50):
        for total in (1, 7, 100, 12345):
            assert _core.top_count(rho, total) == _expected_top_count(rho, total)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 30),
    n=st.integers(1, 30),
    rho=st.floats(0, 0.999),
    levels=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    per_row=st.booleans(),
)
def test_ties_are_deterministic(m, n, rho, levels, seed, per_row):
    # Few distinct magnitudes, both signs: many ties at the threshold.
    rng = np.random.default_rng(seed)
    W = rng.integers(-levels, levels + 1, size=(m, n)).astype(np.float64)
    S = CSRMatrix.from_dense(W, density=rho, per_row=per_row)
    if per_row:
        kr = _expected_top_count(rho, n)
        expected = np.concatenate([i * n + reference_top(W[i : i + 1], kr) for i in range(m)])
    else:
        expected = reference_top(W, _expected_top_count(rho, W.size))
    np.testing.assert_array_equal(kept_flat(S), expected)
    S2 = CSRMatrix.from_dense(W, density=rho, per_row=per_row)
    np.testing.assert_array_equal(S2.indices, S.indices)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_row(dtype):
    rng = np.random.default_rng(4)
    W = rng.standard_normal((1500, 700)).astype(dtype)  # large enough to thread
    rho = 0.05
    S = CSRMatrix.from_dense(W, density=rho, per_row=True)
    kr = _expected_top_count(rho, 700)
    np.testing.assert_array_equal(np.diff(S.indptr), kr)
    for i in (0, 1, 777, 1499):
        cols = S.indices[S.indptr[i] : S.indptr[i + 1]]
        np.testing.assert_array_equal(cols, reference_top(W[i : i + 1], kr))
    # Column indices sorted within rows, values exact.
    dense = S.to_dense()
    assert np.all((dense == 0) | (dense == W))


def test_result_is_largest():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((300, 200))
    S = CSRMatrix.from_dense(W, density=0.2)
    kept = np.abs(S.data).min()
    residual = W - S.to_dense()
    assert np.abs(residual).max() <= kept


def test_validation():
    W = np.ones((3, 3))
    for bad in (-0.1, 1.0, 1.5, np.nan):
        with pytest.raises(ValueError, match="density"):
            CSRMatrix.from_dense(W, density=bad)
    with pytest.raises(ValueError, match="2-D"):
        CSRMatrix.from_dense(np.ones(3), density=0.5)
    with pytest.raises(ValueError, match="non-finite"):
        CSRMatrix.from_dense(np.array([[1.0, np.inf]]), density=0.5)
    with pytest.raises(TypeError, match="complex"):
        CSRMatrix.from_dense(np.ones((2, 2), complex), density=0.5)
    S = CSRMatrix.from_dense(np.arange(6).reshape(2, 3), density=0.5)
    assert S.dtype == np.float64
    np.testing.assert_array_equal(S.to_dense(), [[0, 0, 0], [3, 4, 5]])
    S = CSRMatrix.from_dense(np.asfortranarray(np.arange(6.0).reshape(2, 3)), density=0.5)
    np.testing.assert_array_equal(S.to_dense(), [[0, 0, 0], [3, 4, 5]])
    with pytest.raises(ValueError):  # the C++ layer checks too
        _core.top_magnitude(np.array([[np.nan]]), 0.5, False)
    S = CSRMatrix.from_dense(np.zeros((0, 4)), density=0.5)
    assert S.shape == (0, 4) and S.nnz == 0
