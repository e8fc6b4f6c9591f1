"""CSRMatrix against scipy.sparse / dense NumPy references."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from hsslin._sparse import CSRMatrix

DTYPES = [np.float32, np.float64]


def random_csr(m, n, density, dtype, seed, duplicates=False):
    rng = np.random.default_rng(seed)
    A = sp.random_array((m, n), density=density, format="csr", dtype=np.float64, rng=rng)
    A = A.astype(dtype)
    if duplicates and A.nnz:
        # Store every entry twice, unsorted within rows (scipy keeps them as given).
        coo = A.tocoo()
        rows = np.concatenate([coo.row, coo.row])
        order = np.argsort(rows, kind="stable")
        cols = np.concatenate([coo.col, coo.col])[order]
        data = np.concatenate([coo.data, coo.data])[order]
        indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=m))]
        A = sp.csr_array((data, cols, indptr), shape=(m, n))
    return A


def as_float64(A):
    # A private copy: scipy canonicalizes in place and shares index arrays
    # between astype copies, which would rewrite the matrix under test.
    A = sp.csr_array(A)
    return sp.csr_array((A.data.astype(np.float64), A.indices.copy(), A.indptr.copy()), shape=A.shape)


def product_bound(A, x, dtype):
    """Worst-case rounding bound of a summed product: (nnz_row + 1) * u * (|A| |x|)."""
    A64 = as_float64(A)
    row_nnz = np.diff(A64.indptr).max(initial=0)
    u = np.finfo(dtype).eps / 2
    absx = np.abs(np.asarray(x, dtype=np.float64))
    return (row_nnz + 1) * u * (abs(A64) @ absx) + np.finfo(dtype).tiny


def reference(A, x, transpose=False):
    A64 = as_float64(A)
    A64 = A64.T if transpose else A64
    return A64 @ np.asarray(x, dtype=np.float64)


def check_product(A, x, got, dtype, transpose=False):
    ref = reference(A, x, transpose)
    At = A.T if transpose else A
    bound = product_bound(sp.csr_array(At), x, dtype)
    assert got.dtype == dtype
    assert got.shape == ref.shape
    assert np.all(np.abs(got - ref) <= bound)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (3, 7), (60, 45), (300, 300)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5])
def test_products_match_scipy(dtype, shape, density):
    A = random_csr(*shape, density, dtype, seed=shape[0] * 7 + shape[1])
    S = CSRMatrix.from_scipy(A)
    rng = np.random.default_rng(1)
    m, n = shape
    x = rng.standard_normal(n).astype(dtype)
    y = rng.standard_normal(m).astype(dtype)
    check_product(A, x, S @ x, dtype)
    check_product(A, x, S.matvec(x), dtype)
    check_product(A, y, S.rmatvec(y), dtype, transpose=True)
    check_product(A, y, S.T @ y, dtype, transpose=True)
    for order in "CF":
        X = np.asarray(rng.standard_normal((n, 19)), dtype=dtype, order=order)
        Y = np.asarray(rng.standard_normal((m, 19)), dtype=dtype, order=order)
        got = S @ X
        assert got.flags[f"{order}_CONTIGUOUS"]
        check_product(A, X, got, dtype)
        check_product(A, Y, S.T @ Y, dtype, transpose=True)
        check_product(A, X[:, :1], S.matmat(X[:, :1]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_threaded_products_large(dtype):
    # Large enough to cross the parallel threshold in both directions.
    A = random_csr(3000, 2000, 0.05, dtype, seed=3)
    S = CSRMatrix.from_scipy(A)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(2000).astype(dtype)
    X = rng.standard_normal((2000, 21)).astype(dtype)
    Y = rng.standard_normal((3000, 16)).astype(dtype)
    check_product(A, x, S @ x, dtype)
    check_product(A, X, S @ X, dtype)
    check_product(A, Y, S.T @ Y, dtype, transpose=True)
    check_product(A, Y[:, 0], S.T @ Y[:, 0], dtype, transpose=True)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 40),
    n=st.integers(0, 40),
    density=st.floats(0, 1),
    k=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(DTYPES),
)
def test_products_hypothesis(m, n, density, k, seed, dtype):
    A = random_csr(m, n, density, dtype, seed, duplicates=seed % 2 == 0)
    S = CSRMatrix.from_scipy(A)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, k)).astype(dtype)
    Y = rng.standard_normal((m, k)).astype(dtype)
    check_product(A, X, S @ X, dtype)
    check_product(A, Y, S.T @ Y, dtype, transpose=True)
    np.testing.assert_array_equal(S.to_dense(), A.toarray())


def test_empty_shapes_and_rows():
    for m, n in [(0, 0), (0, 5), (5, 0), (4, 4)]:
        S = CSRMatrix((np.zeros(0), np.zeros(0, np.int32), np.zeros(m + 1, np.int64)), shape=(m, n))
        assert S.nnz == 0 and S.shape == (m, n)
        np.testing.assert_array_equal(S @ np.ones(n), np.zeros(m))
        np.testing.assert_array_equal(S.T @ np.ones(m), np.zeros(n))
        np.testing.assert_array_equal(S @ np.ones((n, 3)), np.zeros((m, 3)))
        np.testing.assert_array_equal(S.to_dense(), np.zeros((m, n)))
    # Empty rows between full ones.
    S = CSRMatrix(([1.0, 2.0], [0, 1], [0, 0, 1, 1, 2]), shape=(4, 2))
    np.testing.assert_array_equal(S @ np.ones(2), [0.0, 1.0, 0.0, 2.0])


def test_duplicates_are_summed_like_scipy():
    data, indices, indptr = [1.0, 2.0, 4.0], [1, 1, 0], [0, 2, 3]
    S = CSRMatrix((data, indices, indptr), shape=(2, 2))
    A = sp.csr_array((data, indices, indptr), shape=(2, 2))
    assert S.nnz == 3
    np.testing.assert_array_equal(S.to_dense(), A.toarray())
    np.testing.assert_array_equal(S @ np.array([1.0, 10.0]), [30.0, 4.0])
    np.testing.assert_array_equal(S.T @ np.array([1.0, 10.0]), [40.0, 3.0])


def test_unsorted_indices():
    S = CSRMatrix(([1.0, 2.0, 3.0], [2, 0, 1], [0, 3]), shape=(1, 3))
    np.testing.assert_array_equal(S.to_dense(), [[2.0, 3.0, 1.0]])


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("kind", [sp.csr_array, sp.csr_matrix])
def test_from_scipy_formats(fmt, kind):
    A = kind(random_csr(30, 20, 0.2, np.float64, seed=5)).asformat(fmt)
    S = CSRMatrix.from_scipy(A)
    np.testing.assert_array_equal(S.to_dense(), A.toarray())


def test_zero_copy_round_trip():
    A = random_csr(50, 40, 0.1, np.float32, seed=6)
    S = CSRMatrix.from_scipy(A)
    assert np.shares_memory(S.data, A.data) and np.shares_memory(S.indices, A.indices)
    B = S.to_scipy()
    assert isinstance(B, sp.csr_array)
    assert np.shares_memory(B.data, S.data) and np.shares_memory(B.indices, S.indices)
    np.testing.assert_array_equal(B.toarray(), A.toarray())
    # The views keep the C++ object (and the borrowed buffers) alive.
    data = S.data
    del S, B, A
    assert data.shape == (data.size,) and np.isfinite(data).all()
    assert not data.flags.writeable


def test_index_and_value_conversions():
    A = random_csr(20, 10, 0.3, np.float64, seed=7)
    A64 = sp.csr_array((A.data, A.indices.astype(np.int64), A.indptr.astype(np.int64)), shape=A.shape)
    S = CSRMatrix.from_scipy(A64)
    assert S.indices.dtype == np.int32 and S.indptr.dtype == np.int64
    np.testing.assert_array_equal(S.to_dense(), A.toarray())
    Si = CSRMatrix(([1, 2], [0, 1], [0, 1, 2]), shape=(2, 2))
    assert Si.dtype == np.float64
    with pytest.raises(TypeError, match="complex"):
        CSRMatrix.from_scipy(A.astype(np.complex128))
    # A float64 operand of a float32 matrix: NumPy's promotion, a float64 result.
    S32 = CSRMatrix.from_scipy(A.astype(np.float32))
    x = np.random.default_rng(1).standard_normal(10)
    np.testing.assert_allclose(S32 @ x, S32.to_dense().astype(np.float64) @ x, rtol=1e-13)


def test_nbytes_counts_everything():
    A = random_csr(100, 80, 0.1, np.float32, seed=8)
    S = CSRMatrix.from_scipy(A)
    assert S.nbytes == A.nnz * (4 + 4) + 101 * 8 + 24


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load(tmp_path, dtype):
    A = random_csr(40, 30, 0.2, dtype, seed=9)
    S = CSRMatrix.from_scipy(A)
    S.save(tmp_path / "S.bin")
    T = CSRMatrix.load(tmp_path / "S.bin")
    assert T.dtype == dtype and T.shape == S.shape
    np.testing.assert_array_equal(T.to_dense(), S.to_dense())
    blob = (tmp_path / "S.bin").read_bytes()
    (tmp_path / "bad.bin").write_bytes(blob[:-5])
    with pytest.raises(ValueError):
        CSRMatrix.load(tmp_path / "bad.bin")
    corrupted = bytearray(blob)
    corrupted[-1] ^= 0xFF
    (tmp_path / "bad2.bin").write_bytes(bytes(corrupted))
    with pytest.raises((ValueError, RuntimeError)):
        CSRMatrix.load(tmp_path / "bad2.bin")


@pytest.mark.parametrize(
    "data, indices, indptr, shape, match",
    [
        ([1.0], [5], [0, 1], (1, 3), "out of range"),
        ([1.0], [-1], [0, 1], (1, 3), "out of range"),
        ([1.0], [2**40], [0, 1], (1, 3), "out of range"),
        ([1.0, 2.0], [0, 1], [0, 2, 1], (2, 3), "non-decreasing|indptr"),
        ([1.0], [0], [1, 1], (1, 3), "indptr"),
        ([1.0], [0], [0, 1, 1], (1, 3), "indptr has 3 entries"),
        ([1.0, 2.0], [0], [0, 1], (1, 3), "data has shape"),
        ([1.0, 2.0], [0, 1], [0, 1], (1, 3), "indptr"),
        ([np.nan], [0], [0, 1], (1, 3), "non-finite"),
        ([1.0], [0], [0, 1], (1, -3), "non-negative"),
        ([[1.0]], [0], [0, 1], (1, 3), "1-D"),
    ],
)
def test_invalid_arrays_raise_value_error(data, indices, indptr, shape, match):
    with pytest.raises(ValueError, match=match):
        CSRMatrix((np.array(data), np.array(indices), np.array(indptr)), shape=shape)


@settings(max_examples=60, deadline=None)
@given(
    indices=st.lists(st.integers(-5, 10), max_size=8),
    indptr=st.lists(st.integers(-3, 10), min_size=1, max_size=6),
    cols=st.integers(0, 8),
)
def test_garbage_arrays_never_crash(indices, indptr, cols):
    rows = len(indptr) - 1
    data = np.ones(len(indices))
    try:
        S = CSRMatrix((data, np.array(indices, dtype=np.int64), np.array(indptr)), shape=(rows, cols))
    except ValueError:
        return
    A = sp.csr_array((data, np.array(indices), np.array(indptr)), shape=(rows, cols))
    np.testing.assert_array_equal(S.to_dense(), A.toarray())


def test_operand_validation():
    S = CSRMatrix(([1.0], [0], [0, 1]), shape=(1, 2))
    with pytest.raises(ValueError, match=r"x has shape \(3,\), expected \(2,\)"):
        S @ np.ones(3)
    # Non-finite operands propagate as in NumPy's products (a product has no
    # tolerance to spoil); complex ones are applied to both parts.
    assert np.isnan(S @ np.array([np.nan, 1.0])).all()
    np.testing.assert_array_equal(S @ np.array([1j, 2.0]), [1j])
    with pytest.raises(ValueError):
        S.matvec(np.ones((2, 2)))
    np.testing.assert_array_equal(S @ np.array([3, 4]), [3.0])
    X = np.ones((4, 6))[:, ::2][:2]  # strided view
    np.testing.assert_array_equal(S @ X, np.ones((1, 3)))
    np.testing.assert_array_equal(np.ones((2, 1)) @ S, [[1.0, 0.0], [1.0, 0.0]])


def test_linear_operator():
    from scipy.sparse.linalg import cg

    A = random_csr(50, 50, 0.1, np.float64, seed=11)
    A = (A @ A.T + 50 * sp.eye_array(50)).tocsr()
    S = CSRMatrix.from_scipy(A)
    b = np.ones(50)
    x, info = cg(S.aslinearoperator(), b, rtol=1e-12)
    assert info == 0
    np.testing.assert_allclose(A @ x, b, rtol=1e-9)
