"""Calibrated sparse (Wanda's score) and sparse+svd (OATS' scaling) in hsslin.compress."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hsslin
from hsslin._activation import column_scales, output_error


def planted(m, n, seed, dtype=np.float64, spread=2.0):
    """W Gaussian; X (4n x n) with orthogonal columns of norms 10**U(-spread/2, spread/2).

    G = X^T X is then exactly diagonal, so the output error of any A is
    sum_ij (W - A)_ij^2 G_jj: the sparse fit that keeps the largest
    |W_ij| sqrt(G_jj) is the best sparse fit with W's values (an exchange
    argument), and an LLM's few high-norm input features are mimicked by
    the spread of the norms.
    """
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n)).astype(dtype)
    Q = np.linalg.qr(rng.standard_normal((4 * n, n)))[0]
    X = Q * 10.0 ** rng.uniform(-spread / 2, spread / 2, n)
    return W, X.T @ X


@settings(max_examples=20, deadline=None)
@given(
    m=st.integers(8, 40),
    n=st.integers(8, 40),
    density=st.floats(0.05, 0.6),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_wanda_sparse_is_best_on_diagonal_gram(m, n, density, seed, dtype):
    W, G = planted(m, n, seed, dtype)
    calibrated = hsslin.compress(W, "sparse", density=density, input_gram=G)
    plain = hsslin.compress(W, "sparse", density=density)
    assert calibrated.nnz == plain.nnz
    # W's own values on the kept entries (not the scaled ones).
    D = calibrated.to_dense()
    kept = D != 0
    assert np.array_equal(D[kept], W[kept])
    # Optimal for diagonal G: never worse than magnitude pruning, up to rounding of the sums.
    e_cal, e_plain = output_error(calibrated, W, G), output_error(plain, W, G)
    assert e_cal <= e_plain * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["sparse", "sparse+svd"])
def test_calibrated_lowers_output_error_at_budget(method, seed):
    W, G = planted(64, 48, seed, np.float32)
    budget = W.nbytes // 2
    extra = {} if method == "sparse" else {"iterations": 3}
    plain = hsslin.compress(W, method, budget_bytes=budget, **extra)
    calibrated = hsslin.compress(W, method, budget_bytes=budget, input_gram=G, **extra)
    assert calibrated.nbytes <= budget and plain.nbytes <= budget
    # Norms spread over two decades: the calibrated fit's output error is clearly lower
    # (measured: about half or less); the data-free fit wins on the weight error.
    assert output_error(calibrated, W, G) < 0.9 * output_error(plain, W, G)
    assert calibrated.relative_error(W) >= plain.relative_error(W) * (1 - 1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_isotropic_gram_gives_the_data_free_fit(dtype):
    # G = c I scales every column alike: Wanda's selection is magnitude
    # pruning's, and OATS fits c^(1/2) W and unscales, which is the data-free
    # fit up to rounding.
    W, _ = planted(30, 20, 5, dtype)
    G = 7.0 * np.eye(20)
    a = hsslin.compress(W, "sparse", density=0.2, input_gram=G)
    b = hsslin.compress(W, "sparse", density=0.2)
    np.testing.assert_array_equal(a.to_dense(), b.to_dense())
    a = hsslin.compress(W, "sparse+svd", density=0.1, rank=3, iterations=2, input_gram=G)
    b = hsslin.compress(W, "sparse+svd", density=0.1, rank=3, iterations=2)
    eps = float(np.finfo(dtype).eps)
    assert np.array_equal(np.asarray(a.S.indices), np.asarray(b.S.indices))
    scale = np.linalg.norm(W)
    assert np.linalg.norm(a.to_dense() - b.to_dense()) <= 100 * eps * scale


def test_unexcited_inputs_stay_finite():
    W, G = planted(10, 12, 3)
    G[:, 4] = G[4, :] = 0.0  # input 4 never seen
    assert column_scales(G, np.float64)[4] > 0
    op = hsslin.compress(W, "sparse+svd", density=0.2, rank=2, input_gram=G)
    assert np.all(np.isfinite(op.to_dense()))
    assert np.all(hsslin.compress(W, "sparse", density=0.2, input_gram=G).to_dense()[:, 4] == 0)


def test_input_gram_is_checked_and_refused_elsewhere():
    W, G = planted(10, 12, 3)
    with pytest.raises(ValueError, match="input_gram must be 12x12"):
        hsslin.compress(W, "sparse", density=0.2, input_gram=G[:5, :5])
    with pytest.raises(ValueError, match="input_gram"):
        hsslin.compress(W, "hodlr", budget_bytes=W.nbytes // 2, input_gram=G)
