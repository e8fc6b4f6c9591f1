"""Low-rank and sparse-plus-low-rank baselines (truncated SVD, OATS-style refinement)."""

from __future__ import annotations

import numpy as np

from ._io import Kind, Persistent, register_container
from ._operator import LinearOperatorMixin
from ._sparse import CSRMatrix
from ._validation import as_float_matrix, check_density, check_int, float_dtype_of

_HEADER_BYTES = 64  # shape, rank, dtype and format header of a saved LowRankMatrix


def truncated_svd(W: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Best rank-`rank` factors (Eckart-Young) with the singular values split evenly."""
    U, s, Vt = np.linalg.svd(W.astype(np.float64, copy=False), full_matrices=False)
    root = np.sqrt(s[:rank])
    return (U[:, :rank] * root).astype(W.dtype), (Vt[:rank].T * root).astype(W.dtype)


def check_input_gram(G, n: int) -> np.ndarray:
    """Validate an input Gram matrix ``X^T X`` (n x n, finite, symmetric); float64 copy."""
    G = np.asarray(G)
    if G.dtype.kind not in "fiu":
        raise TypeError(f"input_gram must be a real matrix, got dtype {G.dtype}")
    if G.shape != (n, n):
        raise ValueError(f"input_gram must be {n}x{n} (W's column count), got shape {G.shape}")
    G = G.astype(np.float64)
    if not np.all(np.isfinite(G)):
        raise ValueError("input_gram contains NaN or Inf")
    scale = max(float(np.abs(G).max()), np.finfo(np.float64).tiny)
    if float(np.abs(G - G.T).max()) > 1e-6 * scale:
        raise ValueError("input_gram must be symmetric (it is X^T X of the layer's inputs)")
    return G


def whitened_projector(W: np.ndarray, rank: int, input_gram: np.ndarray) -> np.ndarray:
    """Orthonormal Q (m x rank) minimising ``||(W - Q Q^T W) X^T||_F`` where ``X^T X = input_gram``.

    With G = X^T X = E diag(lam) E^T, ``||A X^T||_F = ||A E diag(sqrt(lam))||_F``
    for any A, and ``W - Q Q^T W`` with Q the leading left singular vectors of
    ``W E diag(sqrt(lam))`` is the best rank-r approximation of W in that
    norm among all rank-r matrices (Eckart-Young on the whitened matrix: the
    best approximation of ``W S`` is ``Q Q^T W S``, and every ``B S`` with
    rank(B) <= r has rank <= r). The result is a projection of W, so inputs
    the calibration never excited (lam = 0) cannot blow anything up.
    """
    U = np.linalg.svd(_whitened(W, input_gram), full_matrices=False)[0]
    return U[:, :rank]


def whitened_spectrum(W: np.ndarray, input_gram: np.ndarray) -> np.ndarray:
    """Singular values of ``W E diag(sqrt(lam))``: their squared tails are the output errors."""
    return np.linalg.svd(_whitened(W, input_gram), compute_uv=False)


def whitening_basis(G: np.ndarray) -> np.ndarray:
    """``E diag(sqrt(lam))`` (float64) for the symmetric G = E diag(lam) E^T, negative lam clipped to 0.

    ``||A X^T||_F = ||A B||_F`` for this B and any A when G = X^T X: one
    eigendecomposition per Gram matrix serves every layer that sees those inputs.
    """
    lam, E = np.linalg.eigh(G)
    return E * np.sqrt(np.clip(lam, 0.0, None))


def _whitened(W: np.ndarray, G: np.ndarray) -> np.ndarray:
    """``W E diag(sqrt(lam))`` in float64, for the (symmetric) G = E diag(lam) E^T."""
    return W.astype(np.float64, copy=False) @ whitening_basis(G)


def projected_factors(W: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The factors ``U = Q``, ``V = W^T Q`` (W's dtype) of the projection ``Q Q^T W``."""
    V = W.astype(np.float64, copy=False).T @ Q
    return Q.astype(W.dtype), V.astype(W.dtype)


def _factor(A, name: str) -> np.ndarray:
    """A factor as as_float_matrix checks it, except that rank 0 (m x 0, m >= 1) is allowed.

    Rank 0 is the zero matrix: the L of a robust PCA that put all of W into S.
    """
    arr = np.asarray(A)
    if arr.ndim == 2 and arr.shape[0] > 0 and arr.shape[1] == 0:
        return np.zeros(arr.shape, dtype=float_dtype_of(arr.dtype, name))
    return as_float_matrix(A, name)


class LowRankMatrix(LinearOperatorMixin, Persistent):
    """``W ~= U @ V.T`` with U (m x r), V (n x r).

    Parameters
    ----------
    U, V : array_like, shapes (m, r) and (n, r)
        Finite, non-empty real factors. Integer and boolean factors become
        float64, float16 float32; a float32 and a float64 factor are both
        kept in float64 (NumPy's promotion).

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> W = np.outer(np.arange(1.0, 5.0), np.ones(3))
    >>> L = hsslin.LowRankMatrix.from_dense(W, rank=1)
    >>> bool(np.allclose(L.to_dense(), W))
    True
    >>> hsslin.LowRankMatrix(np.ones((2, 1), int), np.ones((3, 1), int)) @ [0.5, 0.5, 0.5]
    array([1.5, 1.5])
    """

    def __init__(self, U, V):
        U, V = _factor(U, "U"), _factor(V, "V")
        if U.shape[1] != V.shape[1]:
            raise ValueError(f"U and V must have equal column counts (the rank), got {U.shape} and {V.shape}")
        dtype = np.result_type(U, V)
        self._U, self._V = U.astype(dtype, copy=False), V.astype(dtype, copy=False)

    def __setstate__(self, state):
        # Pickles made before the file format pickled this class held its __dict__, {U, V}.
        self.__init__(state["U"], state["V"])

    @property
    def U(self) -> np.ndarray:
        """The (m, r) factor: the object's own storage (changing it in place is not supported)."""
        return self._U

    @property
    def V(self) -> np.ndarray:
        """The (n, r) factor (see :attr:`U`)."""
        return self._V

    @classmethod
    def from_dense(cls, W, rank: int, input_gram=None) -> LowRankMatrix:
        """Truncated SVD of W; with `input_gram`, the activation-aware version.

        Parameters
        ----------
        W : array_like (m, n)
        rank : int >= 1 (at most min(m, n) is used)
        input_gram : array_like (n, n), optional
            ``X^T X`` summed over calibration inputs x (the rows of X) that
            the layer ``y = W x`` sees. Then the factors minimise the output
            error ``||(W - U V^T) X^T||_F`` instead of ``||W - U V^T||_F``:
            ``U = Q``, ``V = W^T Q`` with Q from :func:`whitened_projector`.
            ``input_gram = I`` gives the plain truncated SVD.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> rng = np.random.default_rng(0)
        >>> W, X = rng.standard_normal((20, 30)), rng.standard_normal((200, 30)) * np.linspace(0, 3, 30)
        >>> plain = hsslin.LowRankMatrix.from_dense(W, rank=5)
        >>> aware = hsslin.LowRankMatrix.from_dense(W, rank=5, input_gram=X.T @ X)
        >>> out = lambda L: np.linalg.norm((W - L.to_dense()) @ X.T)
        >>> bool(out(aware) < out(plain))
        True
        """
        W = as_float_matrix(W, "W")
        rank = min(check_int(rank, "rank", 1), min(W.shape))
        if input_gram is None:
            return cls(*truncated_svd(W, rank))
        G = check_input_gram(input_gram, W.shape[1])
        return cls(*projected_factors(W, whitened_projector(W, rank, G)))

    @property
    def shape(self):
        return (self.U.shape[0], self.V.shape[0])

    @property
    def dtype(self):
        return self.U.dtype

    @property
    def rank(self) -> int:
        return int(self.U.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.U.nbytes + self.V.nbytes + _HEADER_BYTES)

    @staticmethod
    def bytes_for(m: int, n: int, rank: int, itemsize: int) -> int:
        return (m + n) * rank * itemsize + _HEADER_BYTES

    def _apply(self, x, transpose):
        if transpose:
            return self.V @ (self.U.T @ x)
        return self.U @ (self.V.T @ x)

    def _as_float64(self):
        return LowRankMatrix(self.U.astype(np.float64), self.V.astype(np.float64))

    def _dense(self, transpose):
        D = self.U @ self.V.T
        return np.ascontiguousarray(D.T if transpose else D)

    def _container_parts(self):
        return {"U": self.U, "V": self.V}, {}, {}

    @classmethod
    def _from_container(cls, arrays, parts, meta):
        return cls(arrays["U"], arrays["V"])


class SparsePlusLowRank(LinearOperatorMixin, Persistent):
    """``W ~= S + U V^T``: the classical sparse-plus-low-rank split.

    Built by alternating projections in the style of OATS: L = best rank-r
    approximation of W - S, S = largest-magnitude entries of W - L.

    Parameters
    ----------
    S : CSRMatrix
    L : LowRankMatrix
        Of S's shape and dtype.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> rng = np.random.default_rng(0)
    >>> W = np.outer(rng.standard_normal(50), rng.standard_normal(40))
    >>> W[3, 7] += 100.0
    >>> A = hsslin.SparsePlusLowRank.from_dense(W, density=0.0005, rank=1, iterations=6)
    >>> bool(A.relative_error(W) < 1e-10)
    True
    """

    def __init__(self, S, L: LowRankMatrix):
        if not isinstance(S, CSRMatrix) or not isinstance(L, LowRankMatrix):
            raise TypeError(
                f"S must be a CSRMatrix and L a LowRankMatrix, got {type(S).__name__} and {type(L).__name__}"
            )
        if S.shape != L.shape or S.dtype != L.dtype:
            raise ValueError(f"S is {S.shape} {S.dtype} but L is {L.shape} {L.dtype}")
        self._S, self._L = S, L

    @property
    def S(self) -> CSRMatrix:
        """The sparse part."""
        return self._S

    @property
    def L(self) -> LowRankMatrix:
        """The low-rank part."""
        return self._L

    @classmethod
    def from_dense(
        cls,
        W,
        density: float | None = None,
        rank: int | None = None,
        iterations: int = 1,
        per_row: bool = False,
        *,
        sparsity: float | None = None,
    ) -> SparsePlusLowRank:
        """Alternating projections: `iterations` rounds of top-magnitude S and rank-`rank` SVD of W - S.

        Parameters
        ----------
        W : array_like (m, n)
        density : float in [0, 1)
            Share of entries kept in S (``ceil(density * m * n)``); formerly
            ``sparsity=``, still accepted with a DeprecationWarning.
        rank : int >= 1 (at most min(m, n) is used)
        iterations : int >= 1
        per_row : bool
            Select S's entries within each row.

        Examples
        --------
        >>> import numpy as np, hsslin
        >>> W = np.diag([10.0, 1, 1, 1]) + 1.0
        >>> A = hsslin.SparsePlusLowRank.from_dense(W, density=0.25, rank=1, iterations=3)
        >>> A.S.nnz, A.L.rank
        (4, 1)
        """
        W = as_float_matrix(W, "W")
        density = check_density(density, sparsity)
        if rank is None:
            raise TypeError("rank (of the low-rank part, >= 1) is required")
        rank = min(check_int(rank, "rank", 1), min(W.shape))
        iterations = check_int(iterations, "iterations", 1)
        S = CSRMatrix.from_dense(W, density=density, per_row=per_row)
        L = LowRankMatrix(*truncated_svd(W - S.to_dense(), rank))
        for _ in range(iterations - 1):
            S = CSRMatrix.from_dense(W - L.to_dense(), density=density, per_row=per_row)
            L = LowRankMatrix(*truncated_svd(W - S.to_dense(), rank))
        return cls(S, L)

    @property
    def shape(self):
        """(rows, columns)."""
        return self._S.shape

    @property
    def dtype(self):
        """float32 or float64 (both parts')."""
        return self._L.dtype

    @property
    def nbytes(self) -> int:
        """Both parts' bytes."""
        return int(self._S.nbytes + self._L.nbytes)

    def _apply(self, x, transpose):
        return self._S._apply(x, transpose) + self._L._apply(x, transpose)

    def _as_float64(self):
        return SparsePlusLowRank(self._S._widened(), self._L._as_float64())

    def _dense(self, transpose):
        return self._S._dense(transpose) + self._L._dense(transpose)

    def _container_parts(self):
        return {}, {"S": self._S, "L": self._L}, {}

    @classmethod
    def _from_container(cls, arrays, parts, meta):
        return cls(parts["S"], parts["L"])


register_container(Kind.LOW_RANK, LowRankMatrix, arrays=("U", "V"))
register_container(
    Kind.SPARSE_PLUS_LOW_RANK, SparsePlusLowRank, parts={"S": (CSRMatrix,), "L": (LowRankMatrix,)}
)
