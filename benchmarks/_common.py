"""Test matrices shared by hsslin's benchmarks (built in place: N=16384 is 2 GiB per dense copy)."""

from __future__ import annotations

import numpy as np


def gaussian_kernel(n: int, seed: int = 0, h: float = 0.05, shift: float = 1e-2) -> np.ndarray:
    """exp(-(xi - xj)^2 / (2 h^2)) + shift I on n sorted uniform points of [0, 1]."""
    x = np.sort(np.random.default_rng(seed).uniform(0.0, 1.0, n))
    A = np.subtract.outer(x, x)
    np.square(A, out=A)
    A *= -1.0 / (2.0 * h * h)
    np.exp(A, out=A)
    A.flat[:: n + 1] += shift
    return A


def cauchy(n: int, seed: int = 0) -> np.ndarray:
    """1 / (xi - yj) with xi = (i + 0.5) / n, yj = j / n (deterministic: ``seed`` is unused)."""
    i = np.arange(n, dtype=np.float64)
    A = np.subtract.outer((i + 0.5) / n, i / n)  # never zero: (i - j + 0.5) / n
    np.reciprocal(A, out=A)
    return A
