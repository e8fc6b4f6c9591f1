"""The operator protocol, checked the same way on every class and every transpose.

Every hsslin operator inherits one mixin (hsslin/_operator.py) and one
operand validator (hsslin/_validation.as_operand), so each behaviour below
(products on both sides, scipy's matvec contract, dtype promotion, operand
layouts, error types, pickling) must hold for HSS, HODLR, CSR, low rank,
sparse plus low rank, sparse plus HODLR/HSS with every combination of
permutations, and for each one's ``.T``.

References are the dense matrix the object represents (``to_dense()``)
multiplied in float64; bounds come from tests/conftest.py.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import scipy.sparse

import hsslin
from conftest import (
    OPERATOR_MAKERS,
    SPIKED_SHAPE,
    assert_product_close,
    rel_fro_error,
    rounding_floor,
    spiked_cauchy,
)

M, N = SPIKED_SHAPE
# Every class of the shared makers, plus the quantized storage (which has no device form yet,
# so it stays out of OPERATOR_MAKERS, whose classes test_cuda also moves to the GPU).
FACTORIES = {
    **OPERATOR_MAKERS,
    "quantized-int8": lambda W: hsslin.QuantizedMatrix.from_dense(W, "int8", group_size=None),
    "quantized-float16": lambda W: hsslin.QuantizedMatrix.from_dense(W, "float16"),
}

_cache: dict = {}


def _operator(name, dtype, transposed):
    key = (name, np.dtype(dtype).name)
    if key not in _cache:
        _cache[key] = FACTORIES[name](spiked_cauchy(dtype))
    A = _cache[key]
    return A.T if transposed else A


@pytest.fixture(
    params=[(name, d, t) for name in FACTORIES for d in (np.float32, np.float64) for t in (False, True)],
    ids=lambda p: f"{p[0]}-{np.dtype(p[1]).name}{'-T' if p[2] else ''}",
)
def op(request):
    """(name, operator, its dense matrix in float64)."""
    name, dtype, transposed = request.param
    A = _operator(name, dtype, transposed)
    return name, A, A.to_dense().astype(np.float64)


def test_attributes(op):
    _, A, D = op
    assert A.shape == D.shape and A.ndim == 2
    assert A.dtype in (np.float32, np.float64)
    assert isinstance(A.nbytes, int) and A.nbytes > 0
    assert A.T.T is A or (isinstance(A, hsslin.TransposedOperator) and A.T.T.T is A.T)
    assert A.T.shape == A.shape[::-1]
    # The transposed reconstruction may sum the same products in another order.
    assert rel_fro_error(A.to_dense().T, A.T.to_dense()) <= rounding_floor(A.dtype, *A.shape)
    np.testing.assert_array_equal(A.toarray(), A.to_dense())
    assert isinstance(A.T, hsslin.TransposedOperator) or isinstance(A, hsslin.TransposedOperator)


def test_products_every_way(op):
    _, A, D = op
    m, n = A.shape
    rng = np.random.default_rng(1)
    dt = A.dtype
    x, y = rng.standard_normal(n).astype(dt), rng.standard_normal(m).astype(dt)
    X, Y = rng.standard_normal((n, 3)).astype(dt), rng.standard_normal((m, 2)).astype(dt)
    assert_product_close(A @ x, D, x, dt, "A @ x")
    assert_product_close(A @ X, D, X, dt, "A @ X")
    assert_product_close(A @ np.asfortranarray(X), D, X, dt, "A @ X (F order)")
    assert_product_close(A.dot(x), D, x, dt, "A.dot(x)")
    assert_product_close(A.dot(X), D, X, dt, "A.dot(X)")
    assert_product_close(A.matvec(x), D, x, dt, "matvec")
    assert_product_close(A.matvec(x[:, None]), D, x[:, None], dt, "matvec (n, 1)")
    assert_product_close(A.matmat(X), D, X, dt, "matmat")
    assert_product_close(A.rmatvec(y), D.T, y, dt, "rmatvec")
    assert_product_close(A.rmatvec(y[:, None]), D.T, y[:, None], dt, "rmatvec (m, 1)")
    assert_product_close(A.rmatmat(Y), D.T, Y, dt, "rmatmat")
    assert_product_close(A.T @ y, D.T, y, dt, "A.T @ y")
    assert_product_close(y @ A, D.T, y, dt, "y @ A")
    assert_product_close((Y.T @ A).T, D.T, Y, dt, "Y.T @ A")


def test_scipy_linear_operator(op):
    _, A, D = op
    m, n = A.shape
    L = A.aslinearoperator()
    assert L.shape == A.shape and L.dtype == A.dtype
    x = np.linspace(-1, 1, n).astype(A.dtype)
    y = np.linspace(-1, 1, m).astype(A.dtype)
    assert_product_close(L.matvec(x), D, x, A.dtype, "L.matvec")
    assert_product_close(L.rmatvec(y), D.T, y, A.dtype, "L.rmatvec")
    assert_product_close(L.matmat(np.eye(n, 2, dtype=A.dtype)), D, np.eye(n, 2), A.dtype, "L.matmat")
    assert_product_close(L.H.matvec(y), D.T, y, A.dtype, "L.H.matvec")
    assert_product_close(scipy.sparse.linalg.aslinearoperator(A).matvec(x), D, x, A.dtype, "aslinearoperator")


@pytest.mark.parametrize("method", ["matvec", "rmatvec"])
def test_matvec_takes_one_column_only(op, method):
    # scipy's contract: (n,) or (n, 1); anything wider is a mistake, never (k*m, 1).
    _, A, _ = op
    rows = A.shape[1] if method == "matvec" else A.shape[0]
    with pytest.raises(ValueError, match=r"use matmat"):
        getattr(A, method)(np.ones((rows, 2), A.dtype))


@pytest.mark.parametrize("method", ["matmat", "rmatmat"])
def test_matmat_takes_two_dimensions(op, method):
    _, A, _ = op
    rows = A.shape[1] if method == "matmat" else A.shape[0]
    with pytest.raises(ValueError, match=rf"X has shape \({rows},\)"):
        getattr(A, method)(np.ones(rows, A.dtype))


@pytest.mark.parametrize("shape", ["short", "long", "scalar", "3d", "row"])
def test_wrong_shape_is_value_error(op, shape):
    _, A, _ = op
    n = A.shape[1]
    bad = {"short": (n - 1,), "long": (n + 1,), "scalar": (), "3d": (n, 2, 2), "row": (1, n)}[shape]
    with pytest.raises(ValueError, match="x has shape"):
        A @ np.ones(bad, A.dtype)
    with pytest.raises(ValueError):
        np.ones(bad[::-1] if len(bad) == 2 else bad, A.dtype) @ A.T


NON_NUMERIC = {
    "str": lambda n: np.array(["a"] * n),
    "object": lambda n: np.array([object()] * n),
    "None": lambda n: None,
    "text": lambda n: "abc",
    "longdouble": lambda n: np.ones(n, np.longdouble),
    "datetime": lambda n: np.ones(n, "datetime64[s]"),
    "sparse": lambda n: scipy.sparse.csr_array(np.ones((n, 1))),
}


@pytest.mark.parametrize("kind", NON_NUMERIC)
def test_non_numeric_operand_is_type_error(op, kind):
    _, A, _ = op
    bad = NON_NUMERIC[kind](A.shape[1])
    with pytest.raises(TypeError):
        A @ bad
    with pytest.raises(TypeError):
        A.matvec(bad)
    with pytest.raises(TypeError):
        A.T.rmatmat(bad)


def test_operator_times_operator_is_type_error(op):
    _, A, _ = op
    with pytest.raises(TypeError):
        A @ A.T


def _exact_dense(A):
    """The matrix A stores, in float64.

    For a float32 operator: its float64 copy, whose products are formed in
    float64 (a float32 ``to_dense`` rounds each reconstructed entry to float32).
    """
    return A.to_dense() if A.dtype == np.float64 else A._widened().to_dense()


def test_numpy_promotion(op):
    name, A, D = op
    n = A.shape[1]
    x64 = np.random.default_rng(2).standard_normal(n)
    for x in (x64, np.arange(n), np.arange(n, dtype=np.int8), np.ones(n, bool), x64.astype(np.float16)):
        expected = np.result_type(A.dtype, x.dtype)
        y = A @ x
        assert y.dtype == expected, (x.dtype, y.dtype, expected)
        if expected == A.dtype:
            assert_product_close(y, D, x, expected, f"{x.dtype} operand")
        else:
            # float64 from a float32 operator: the stored values applied in float64,
            # with float64 rounding only; rounding x to float32 would be 2**29 times off.
            assert_product_close(y, _exact_dense(A), x, expected, f"{x.dtype} operand")


@pytest.mark.parametrize("ctype", [np.complex64, np.complex128])
def test_complex_operand_applies_both_parts(op, ctype):
    name, A, D = op
    m, n = A.shape
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((n, 2)) + 1j * rng.standard_normal((n, 2))).astype(ctype)
    expected = np.result_type(A.dtype, ctype)
    w = A @ z
    assert w.dtype == expected and w.shape == (m, 2)
    real = np.dtype(np.float32 if expected == np.complex64 else np.float64)
    ref = D if real == A.dtype else _exact_dense(A)
    for part, got in ((z.real, w.real), (z.imag, w.imag)):
        assert_product_close(np.ascontiguousarray(got), ref, part, real, "complex operand")
    assert (z[:, 0] @ A.T).dtype == expected


@pytest.mark.parametrize("layout", ["byteswapped", "unaligned", "strided", "fortran", "negative"])
def test_operand_layouts_give_the_same_numbers(op, layout):
    _, A, _ = op
    n = A.shape[1]
    rng = np.random.default_rng(4)
    X = rng.standard_normal((n, 3)).astype(A.dtype)
    if layout == "byteswapped":
        V = X.astype(X.dtype.newbyteorder(">" if X.dtype.byteorder in "=<" else "<"))
        assert not V.dtype.isnative
    elif layout == "unaligned":
        buf = np.zeros(X.nbytes + 1, np.uint8)
        V = np.ndarray(X.shape, X.dtype, buf, offset=1)
        V[...] = X
        assert not V.flags.aligned
    elif layout == "strided":
        V = np.repeat(X, 2, axis=0)[::2]
    elif layout == "fortran":
        V = np.asfortranarray(X)
    else:
        V = np.ascontiguousarray(X[::-1])[::-1]
    np.testing.assert_array_equal(V, X)
    # Bit for bit what the array the validator hands on gives: kept in Fortran
    # order, copied into C order otherwise (so each kernel sees one layout).
    ref = np.asfortranarray(X) if layout == "fortran" else np.ascontiguousarray(X)
    np.testing.assert_array_equal(A @ V, A @ ref)
    np.testing.assert_array_equal(A @ V[:, 1], A @ np.ascontiguousarray(X[:, 1]))


def test_non_finite_operand_propagates(op):
    _, A, _ = op
    x = np.ones(A.shape[1], A.dtype)
    x[0] = np.nan
    assert np.isnan(A @ x).any()


def test_pickle_and_deepcopy(op):
    _, A, D = op
    for B in (pickle.loads(pickle.dumps(A)), copy.deepcopy(A), copy.copy(A)):
        assert type(B) is type(A) and B.dtype == A.dtype
        np.testing.assert_array_equal(B.to_dense(), A.to_dense())
        x = np.ones(A.shape[1], A.dtype)
        np.testing.assert_array_equal(B @ x, A @ x)


def test_save_and_load(op, tmp_path):
    _, A, D = op
    if isinstance(A, hsslin.TransposedOperator):
        with pytest.raises(TypeError, match="no file format"):
            hsslin._io.to_bytes(A)  # a view: save the operator it transposes
        return
    A.save(tmp_path / "a.hsslin")
    B = hsslin.load(tmp_path / "a.hsslin")
    assert type(B) is type(A)
    np.testing.assert_array_equal(B.to_dense(), A.to_dense())
    assert type(A).load(tmp_path / "a.hsslin").nbytes == A.nbytes
    assert B.to_bytes() == A.to_bytes()
