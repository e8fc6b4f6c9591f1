"""GPTQ (Frantar et al. 2022): round to nearest with error feedback through the calibration Hessian.

A layer's output error over calibration inputs x (rows of X, G = X^T X) is
``tr((W - Q) G (W - Q)^T)``. GPTQ quantizes W's columns (the input
dimension, the Gram matrix's) in order; after column j is rounded, its
error is spread over the columns not yet rounded so that, for the
quadratic form H = G + lambda I, the rounding of column j is compensated as
well as a linear update can. With U the upper Cholesky factor of H^-1
(H^-1 = U^T U) the update after column j is
``W[:, j+1:] -= (w_j - q_j) / U_jj * U[j, j+1:]``.

Choices made here:

* dampening lambda = 1% of the mean of diag(G) (the paper's); G = 0 (no
  calibration signal) falls back to H = I, where GPTQ is exactly RTN;
* the storage is RTN's: the same formats, groups along each row (input
  columns), scales rounded up to float16 by the same rule (symmetric
  ``max |w| / (2^(b-1) - 1)``, or the group's range with a zero point);
  each group's scale is computed when its first column is reached, from
  the weights as updated by then (per-row scales: from W itself);
* codes are clipped to the whole code range [0, 2^b - 1] (updated weights
  may exceed the group's scale range; symmetric codes may then use the
  extra negative level -2^(b-1), which RTN never needs);
* lazy blocked updates over 128 columns (a multiple of every group size,
  so a group's columns are all updated when its scale is set);
* the codes and scales are stored exactly as computed, through
  :meth:`QuantizedMatrix.from_codes`.
"""

from __future__ import annotations

import numpy as np

from ._lowrank import check_input_gram
from ._quantized import QuantizedMatrix

_BLOCK = 128
_DAMP = 0.01


def _half_up(s: np.ndarray) -> np.ndarray:
    """Each step rounded up to a float16 value (as the core's encoder does); ValueError beyond 65504."""
    h = s.astype(np.float16)
    low = h.astype(np.float64) < s
    h[low] = np.nextafter(h[low], np.float16(np.inf))
    if not np.all(np.isfinite(h)):
        raise ValueError("a group's scale exceeds float16's largest finite value 65504; scale W first")
    return h.astype(np.float64)


def _group_params(Wg: np.ndarray, bits: int, zero_point: bool):
    """(step, zero) per row of the group's current weights, RTN's rule."""
    levels = (1 << bits) - 1
    if zero_point:
        lo = np.minimum(Wg.min(axis=1), 0.0)
        hi = np.maximum(Wg.max(axis=1), 0.0)
        step = _half_up((hi - lo) / levels)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(step == 0, 0.0, np.minimum(levels, np.rint(-lo / np.where(step == 0, 1, step))))
        return step, z
    step = _half_up(np.abs(Wg).max(axis=1) / ((1 << (bits - 1)) - 1))
    return step, np.full(Wg.shape[0], float(1 << (bits - 1)))


def _hessian_factor(G: np.ndarray) -> np.ndarray:
    """Upper U with (G + lambda I)^-1 = U^T U, lambda = 1% of mean diag(G)."""
    n = G.shape[0]
    damp = _DAMP * float(np.mean(np.diag(G)))
    H = G + damp * np.eye(n) if damp > 0 else np.eye(n)
    Hinv = np.linalg.inv(np.linalg.cholesky(H))  # L^-1, H^-1 = L^-T L^-1
    return np.linalg.cholesky(Hinv.T @ Hinv).T


def gptq(W, bits: int, group_size, zero_point: bool, input_gram) -> QuantizedMatrix:
    """GPTQ-quantized W (m x n) in QuantizedMatrix's ``int<bits>`` format, for calibration Gram G (n x n)."""
    m, n = W.shape
    G = check_input_gram(input_gram, n)
    # Checks format, group size and divisibility before any work.
    QuantizedMatrix.nbytes_for((m, n), f"int{bits}", group_size=group_size, zero_point=zero_point)
    U = _hessian_factor(np.asarray(G, dtype=np.float64))
    Gs = n if group_size is None else group_size
    levels = (1 << bits) - 1
    R = np.array(W, dtype=np.float64)
    codes = np.empty((m, n), dtype=np.int64)
    scales = np.empty((m, n // Gs))
    zeros = np.empty((m, n // Gs))
    step = zero = None
    for b0 in range(0, n, _BLOCK):
        b1 = min(b0 + _BLOCK, n)
        E = np.empty((m, b1 - b0))
        for j in range(b0, b1):
            if j % Gs == 0:
                step, zero = _group_params(R[:, j : j + Gs], bits, zero_point)
                scales[:, j // Gs], zeros[:, j // Gs] = step, zero
            w = R[:, j]
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.where(
                    step == 0, zero, np.clip(np.rint(w / np.where(step == 0, 1, step)) + zero, 0, levels)
                )
            codes[:, j] = q
            e = (w - step * (q - zero)) / U[j, j]
            R[:, j:b1] -= np.outer(e, U[j, j:b1])
            E[:, j - b0] = e
        R[:, b1:] -= E @ U[b0:b1, b1:]
    return QuantizedMatrix.from_codes(
        codes,
        scales,
        zeros.astype(np.int64) if zero_point else None,
        format=f"int{bits}",
        group_size=group_size,
        dtype=W.dtype,
    )
