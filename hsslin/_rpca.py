"""Robust PCA: W = L + S by principal component pursuit (the C++ core's inexact ALM)."""

from __future__ import annotations

import numbers

import numpy as np

from ._loader import core as _core
from ._lowrank import LowRankMatrix, SparsePlusLowRank
from ._sparse import CSRMatrix
from ._validation import as_float_matrix, check_int, check_seed, check_tol

__all__ = ["rpca", "RPCAResult"]

# The defaults live in the C++ options type; the signature shows them.
_DEFAULTS = _core.RPCAOptions()


class RPCAResult(tuple):
    """The pair ``(L, S)`` of :func:`rpca`, with the convergence record as attributes.

    It unpacks as ``L, S = hsslin.rpca(W)`` (a tuple of length 2, like the
    results of ``scipy.stats`` tests that carry extra attributes beyond the
    unpacked pair); the record is read from the object.

    Attributes
    ----------
    L : LowRankMatrix
        ``L = U @ V.T`` with the kept singular triplets in descending order:
        ``U[:, k] = u_k sqrt(s_k)`` and ``V[:, k] = v_k sqrt(s_k)``, so
        column k of both is one singular direction of L.
    S : CSRMatrix
        The sparse part; only its nonzeros are stored.
    singular_values : ndarray (float64)
        ``s_k``, the singular values of L, descending.
    iterations : int
        Iterations run.
    residual : float
        ``||W - L - S||_F / ||W||_F`` after the last iteration.
    converged : bool
        Whether ``residual <= tol`` and the last ``dual_residual <= tol``
        were reached within ``max_iter`` iterations. A stop at ``max_iter`` is not an error: a few
        iterations are a legitimate, cheaper split.
    lam : float
        The lambda used.
    history : list of dict
        Per iteration: ``rank`` (of L), ``nnz`` (of S), ``residual``,
        ``dual_residual`` (``mu ||S - S_previous||_F / ||W||_F``), ``mu``
        (the penalty it used), ``sketch`` (width of its last partial SVD)
        ``sketches`` (partial SVDs it ran: 1 + times the width grew) and
        ``seconds`` (its wall-clock time).
    """

    def __new__(cls, L, S, *, singular_values, history, lam, converged):
        self = super().__new__(cls, (L, S))
        self.singular_values = singular_values
        self.history = history
        self.lam = lam
        self.converged = converged
        return self

    @property
    def L(self) -> LowRankMatrix:
        return self[0]

    @property
    def S(self) -> CSRMatrix:
        return self[1]

    @property
    def iterations(self) -> int:
        return len(self.history)

    @property
    def residual(self) -> float:
        return float(self.history[-1]["residual"]) if self.history else 0.0

    def to_operator(self) -> SparsePlusLowRank:
        """``S + L`` as one operator (products, ``nbytes``, ``save``)."""
        return SparsePlusLowRank(self.S, self.L)

    def __repr__(self) -> str:
        m, n = self.L.shape
        return (
            f"RPCAResult(shape=({m}, {n}), rank={self.L.rank}, nnz={self.S.nnz}, "
            f"iterations={self.iterations}, residual={self.residual:.3e}, converged={self.converged})"
        )


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def rpca(
    W,
    lam=None,
    *,
    max_iter: int = _DEFAULTS.max_iter,
    tol: float | None = None,
    rho: float = _DEFAULTS.rho,
    mu_scale: float = _DEFAULTS.mu_scale,
    mu_growth_limit: float = _DEFAULTS.mu_growth_limit,
    oversampling: int = _DEFAULTS.oversampling,
    power_iterations: int = _DEFAULTS.power_iterations,
    initial_rank: int = _DEFAULTS.initial_rank,
    seed: int = _DEFAULTS.seed,
) -> RPCAResult:
    """Robust PCA: splits W into a low-rank L and a sparse S (principal component pursuit).

    Solves ``min ||L||_* + lam ||S||_1`` subject to ``L + S = W`` (Candes,
    Li, Ma, Wright 2011) by the inexact augmented Lagrangian method (Lin,
    Chen, Ma 2010)::

        L <- SVT(W - S + Y/mu, 1/mu)      singular value thresholding
        S <- soft(W - L + Y/mu, lam/mu)   elementwise soft thresholding
        Y <- Y + mu (W - L - S)           dual update
        mu <- min(rho mu, mu_0 mu_growth_limit)

    from ``mu_0 = mu_scale / ||W||_2``, until both the primal residual
    ``||W - L - S||_F / ||W||_F`` and the dual residual ``mu ||S_k -
    S_{k-1}||_F / ||W||_F`` are ``<= tol`` (feasible and optimal: the KKT
    conditions of the splitting) or ``max_iter`` iterations. mu grows by
    `rho` only after an iteration whose primal residual exceeded its dual
    residual (residual balancing): growing it regardless freezes the
    iterates wherever they first became feasible, short of the optimum. The SVT computes only the singular
    values above ``1/mu``, by a randomized partial SVD warm-started from the
    previous iteration: its width is predicted from the previous count and
    grows (by 5% of min(m, n)) while fewer than `oversampling` of the
    computed values fall below the threshold. Runs in hsslin's threads with
    the GIL released; see docs/rpca.md.

    When L has rank r and S's support is a random set of m n rho entries
    with random signs, with r and rho small enough for the matrix sizes and
    L's singular vectors incoherent, the solution is exactly the planted
    pair (Candes et al., Theorem 1.1) and the iteration converges to it.

    Parameters
    ----------
    W : array_like (m, n)
        Real, finite. float32 and float64 are computed in their own
        precision; integers become float64, float16 becomes float32.
    lam : float > 0, optional
        Weight of ``||S||_1``; default ``1 / sqrt(max(m, n))``. Larger
        values give a sparser S and a higher-rank L.
    max_iter : int >= 1
        Iteration limit. Stopping there is not an error (see
        ``RPCAResult.converged``): a few iterations give a cheap split.
    tol : float in (0, 1), optional
        Target relative residual ``||W - L - S||_F / ||W||_F``; default
        {tol64:g} for float64 and {tol32:g} for float32. A float32 residual
        much below 1e-6 is rounding noise, which S then absorbs (its
        nonzeros grow toward m n).
    rho : float in (1, 100]
        Growth factor of the penalty mu per iteration (when it grows).
    mu_scale : float > 0
        ``mu_0 = mu_scale / ||W||_2``.
    mu_growth_limit : float >= 1
        mu stops growing at ``mu_0 * mu_growth_limit``.
    oversampling : int in [2, 1000]
        Extra columns of each partial SVD beyond the predicted count.
    power_iterations : int in [0, 20]
        Subspace iterations of each partial SVD.
    initial_rank : int >= 1
        Predicted count of the first iteration.
    seed : int >= 0
        Seed of the Gaussian sketches; results are reproducible.

    Returns
    -------
    RPCAResult
        Unpacks as ``(L, S)``: L a :class:`LowRankMatrix` holding the kept
        singular triplets in descending order, S a :class:`CSRMatrix`;
        ``iterations``, ``residual``, ``converged``, ``singular_values``,
        ``lam`` and a per-iteration ``history`` are attributes.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> rng = np.random.default_rng(0)
    >>> L0 = rng.standard_normal((80, 2)) @ rng.standard_normal((2, 60))
    >>> S0 = np.zeros((80, 60))
    >>> hit = rng.random((80, 60)) < 0.05
    >>> S0[hit] = 10 * rng.choice([-1.0, 1.0], hit.sum())
    >>> L, S = result = hsslin.rpca(L0 + S0, tol=1e-9)
    >>> L.rank, result.converged
    (2, True)
    >>> bool(np.linalg.norm(L.to_dense() - L0) <= 1e-6 * np.linalg.norm(L0))
    True
    >>> bool(np.array_equal(S.to_dense() != 0, hit))
    True
    """
    W = as_float_matrix(W, "W")
    options = _core.RPCAOptions()
    if lam is not None:
        options.lam = _check_real(lam, "lam")
    options.max_iter = check_int(max_iter, "max_iter", 1)
    if tol is not None:
        options.tol = check_tol(tol, "tol")
    options.rho = _check_real(rho, "rho")
    options.mu_scale = _check_real(mu_scale, "mu_scale")
    options.mu_growth_limit = _check_real(mu_growth_limit, "mu_growth_limit")
    options.oversampling = check_int(oversampling, "oversampling", 2)
    options.power_iterations = check_int(power_iterations, "power_iterations", 0)
    options.initial_rank = check_int(initial_rank, "initial_rank", 1)
    options.seed = check_seed(seed)
    out = _core.robust_pca(W, options)
    L = LowRankMatrix(out["U"], out["V"])
    S = CSRMatrix(out["S"])
    return RPCAResult(
        L,
        S,
        singular_values=np.asarray(out["sigma"]),
        history=list(out["history"]),
        lam=float(out["lam"]),
        converged=bool(out["converged"]),
    )


# The dtype-dependent default tolerances are the C++ options' (one owner).
if rpca.__doc__:  # None under python -OO
    rpca.__doc__ = rpca.__doc__.replace("{tol64:g}", f"{_DEFAULTS.tol_for('float64'):g}").replace(
        "{tol32:g}", f"{_DEFAULTS.tol_for('float32'):g}"
    )
