"""Activation-aware (calibrated) sparse and sparse-plus-low-rank fits: Wanda's score and OATS' scaling.

With calibration inputs x (rows of X) and G = X^T X, a layer's output error
is ``||(W - A) X^T||_F^2 = tr((W - A) G (W - A)^T)``. Its diagonal part
weights column j of the error by ``d_j^2 = G_jj = ||X_j||^2``:

* ``sparse``: keep the entries of largest ``|W_ij| d_j`` (Wanda's score,
  Sun et al. 2023), with W's values;
* ``sparse+svd``: fit W D (D = diag(d)) by the alternating sparse/low-rank
  thresholding, then undo the scaling, ``S = S' D^{-1}``, ``L = L' D^{-1}``
  (OATS, Zhang and Papyan 2024).

Both minimise the diagonal (per-column) part of the output error exactly as
the data-free fits minimise the weight error; the split between the parts
within a budget is then chosen by the full output error (:func:`output_error`).
"""

from __future__ import annotations

import numpy as np

from ._lowrank import LowRankMatrix, SparsePlusLowRank, check_input_gram
from ._sparse import CSRMatrix


def column_scales(G: np.ndarray, dtype) -> np.ndarray:
    """``d_j = sqrt(G_jj)`` (the input norms), floored at ``eps * max d``; in `dtype`.

    The floor only matters for inputs the calibration never excited
    (``d_j = 0``): their columns cost nothing in the output error, and a
    positive scale keeps the unscaling finite.
    """
    d = np.sqrt(np.clip(np.diag(G), 0.0, None))
    top = float(d.max()) if d.size else 0.0
    if top == 0.0:
        return np.ones(G.shape[0], dtype=dtype)
    return np.maximum(d, np.finfo(dtype).eps * top).astype(dtype)


def sparse_fit(W: np.ndarray, density: float, per_row: bool, input_gram) -> CSRMatrix:
    """The entries of W with the largest Wanda scores ``|W_ij| sqrt(G_jj)``, at W's values."""
    G = check_input_gram(input_gram, W.shape[1])
    d = column_scales(G, W.dtype)
    chosen = CSRMatrix.from_dense(W * d, density=density, per_row=per_row)
    indices, indptr = np.asarray(chosen.indices), np.asarray(chosen.indptr)
    rows = np.repeat(np.arange(W.shape[0]), np.diff(indptr))
    return CSRMatrix((W[rows, indices], indices, indptr), shape=W.shape)


def sparse_plus_svd_fit(W, density, rank, iterations, per_row, input_gram) -> SparsePlusLowRank:
    """OATS: the sparse-plus-low-rank fit of ``W D``, unscaled by ``D^{-1}``."""
    G = check_input_gram(input_gram, W.shape[1])
    d = column_scales(G, W.dtype)
    scaled = SparsePlusLowRank.from_dense(
        W * d, density=density, rank=rank, iterations=iterations, per_row=per_row
    )
    S, L = scaled.S, scaled.L
    indices = np.asarray(S.indices)
    S = CSRMatrix((np.asarray(S.data) / d[indices], indices, np.asarray(S.indptr)), shape=W.shape)
    return SparsePlusLowRank(S, LowRankMatrix(L.U, L.V / d[:, None]))


def output_error(op, W: np.ndarray, G: np.ndarray) -> float:
    """``||(W - A) X^T||_F / ||W X^T||_F`` for ``G = X^T X``; NaN when A is not finite.

    The absolute error when ``W X^T = 0``.
    """
    E = W.astype(np.float64) - op.to_dense().astype(np.float64)
    W64 = W.astype(np.float64)
    num = float(np.sum((E @ G) * E))
    den = float(np.sum((W64 @ G) * W64))
    if not np.isfinite(num):
        return float("nan")
    return float(np.sqrt(max(num, 0.0) / den)) if den > 0 else float(np.sqrt(max(num, 0.0)))
