"""Direct factorizations of hierarchical matrices: solves, log-determinants, preconditioners.

``H.factor()`` on an :class:`~hsslin.HSSMatrix` runs a ULV factorization
(Chandrasekaran, Gu, Pals 2006; Xia, Chandrasekaran, Gu, Li 2010), on a
:class:`~hsslin.HODLRMatrix` a recursive Sherman-Morrison-Woodbury
factorization (Ambikasaran and Darve 2013); both in the C++ core,
multithreaded, without the GIL. A matrix stored as one dense block (small,
or detected as incompressible) is factored by LAPACK through scipy.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from ._io import CorePersistent, Kind, Persistent, register_container, register_core
from ._loader import core as _core
from ._operator import ShapeAndDtype
from ._validation import as_operand

FactorizationError = _core.FactorizationError
FactorizationError.__module__ = "hsslin"
FactorizationError.__doc__ = (
    "A matrix could not be factored: it is singular to working precision, or, for "
    "``symmetric=True``, not positive definite. A subclass of numpy.linalg.LinAlgError "
    "(and so of ValueError)."
)

_CORE = {
    "hss": {np.dtype(np.float32): _core.HSSULV32, np.dtype(np.float64): _core.HSSULV64},
    "hodlr": {np.dtype(np.float32): _core.HODLRFactor32, np.dtype(np.float64): _core.HODLRFactor64},
}
_FAMILY = {
    _core.HSSMatrix32: "hss",
    _core.HSSMatrix64: "hss",
    _core.HODLRMatrix32: "hodlr",
    _core.HODLRMatrix64: "hodlr",
}


class _DenseFactor(Persistent):
    """LAPACK LU (getrf) or Cholesky (potrf) of a dense block, through scipy.

    The block is row-major: LAPACK gets its transpose, a column-major view,
    so that scipy copies it as it is instead of transposing it first (which
    cost 0.9x of getrf itself at N = 2048). The factors are those of A^T:
    an LU solve swaps ``trans``; A^T = A for the Cholesky factor.
    """

    def __init__(self, A: np.ndarray, spd: bool, factors=None):
        self.spd = spd
        self.size = A.shape[0] if A is not None else factors[0].shape[0]
        if factors is not None:
            self.factors = factors
            self.dtype = factors[0].dtype
            return
        self.dtype = A.dtype
        if spd:
            try:
                c, _ = scipy.linalg.cho_factor(A.T, lower=True, check_finite=False)
            except np.linalg.LinAlgError:
                raise FactorizationError(
                    "matrix is not positive definite: the Cholesky variant (symmetric=True) needs a "
                    "symmetric positive definite matrix; factor indefinite or non-symmetric "
                    "matrices with symmetric=False"
                ) from None
            self.factors = (c,)
        else:
            lu, piv = scipy.linalg.lu_factor(A.T, check_finite=False)
            self.factors = (lu, piv)
        self._check_pivots(A)

    def _check_pivots(self, A):
        # The same rule as the core's (factorization.hpp): a pivot at or below
        # size x epsilon x ||A||_F makes the matrix singular to working precision.
        d = np.abs(np.diagonal(self.factors[0])).astype(np.float64)
        if self.spd:
            d = d * d
        floor = np.finfo(A.dtype).eps * A.shape[0] * float(np.linalg.norm(A))
        if d.size and not d.min() > floor:
            kind = "not positive definite" if self.spd else "singular to working precision"
            raise FactorizationError(
                f"matrix is {kind}: a pivot of size {d.min():.3g} is at or below the threshold "
                f"{floor:.3g} (size x epsilon x norm of the matrix)"
            )

    @property
    def nbytes(self) -> int:
        return int(sum(f.nbytes for f in self.factors))

    def solve(self, b, transpose):
        if self.spd:
            return scipy.linalg.cho_solve((self.factors[0], True), b, check_finite=False)
        return scipy.linalg.lu_solve(self.factors, b, trans=0 if transpose else 1, check_finite=False)

    def logdet(self):
        d = np.diagonal(self.factors[0]).astype(np.float64)
        if self.spd:
            return 1.0, 2.0 * float(np.sum(np.log(d)))
        swaps = int(np.count_nonzero(self.factors[1] != np.arange(d.size)))
        sign = (-1.0) ** swaps * float(np.prod(np.sign(d)))
        return sign, float(np.sum(np.log(np.abs(d))))

    def _container_parts(self):
        arrays = {"lu": self.factors[0]} if self.spd else {"lu": self.factors[0], "piv": self.factors[1]}
        return arrays, {}, {"spd": bool(self.spd)}

    @classmethod
    def _from_container(cls, arrays, parts, meta):
        lu, piv, spd = arrays["lu"], arrays.get("piv"), meta.get("spd")
        if not isinstance(spd, bool) or lu.ndim != 2 or lu.shape[0] != lu.shape[1]:
            raise ValueError("a dense factor needs a square factor and a bool spd")
        if spd != (piv is None):
            raise ValueError("an LU needs its pivots, a Cholesky factor has none")
        n = lu.shape[0]
        if piv is not None and (piv.shape != (n,) or piv.min(initial=0) < 0 or piv.max(initial=0) >= n):
            raise ValueError("the pivots do not fit the factor")
        return cls(None, spd, (lu,) if spd else (lu, piv))


class _CoreFactor(CorePersistent):
    """A factorization the C++ core computed, wrapped so files can hold it."""

    _impls: dict = {}  # dtype -> C++ class, set by each subclass

    def __init__(self, impl):
        self.dtype = {t: d for d, t in self._impls.items()}[type(impl)]
        self._impl = impl
        self.size, self.spd = int(impl.size), bool(impl.spd)

    @property
    def nbytes(self) -> int:
        return int(self._impl.nbytes)

    def solve(self, b, transpose):
        return self._impl.solve(b, transpose)

    def logdet(self):
        return self._impl.logdet()


class _HSSFactor(_CoreFactor):
    _impls = _CORE["hss"]


class _HODLRFactor(_CoreFactor):
    _impls = _CORE["hodlr"]


class Factorization(ShapeAndDtype, Persistent):
    """A factorization of a square hierarchical matrix, made by ``H.factor()``.

    Solves ``A x = b`` (or ``A^T x = b``) for one or several right-hand
    sides, gives ``log|det A|`` with its sign, and serves as a
    preconditioner through :meth:`inverse_operator`. Vectors are in the
    caller's order even when the matrix was built on a permuted (geometric)
    order; :attr:`permutation` says which.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> x = np.linspace(0, 1, 2000)
    >>> K = np.exp(-(x[:, None] - x[None, :]) ** 2 / (2 * 0.05**2)) + 1e-2 * np.eye(2000)
    >>> F = hsslin.HSSMatrix.from_dense(K, tol=1e-10).factor(symmetric=True)
    >>> b = np.ones(2000)
    >>> bool(np.linalg.norm(K @ F.solve(b) - b) < 1e-6 * np.linalg.norm(b))
    True
    >>> sign, logabs = F.logdet()
    >>> bool(abs(logabs - np.linalg.slogdet(K)[1]) < 1e-6 * abs(logabs))
    True
    """

    def __init__(self, impl, method: str, dtype, permutation=None):
        if not isinstance(impl, (_DenseFactor, _CoreFactor)):
            raise TypeError("use H.factor() or hsslin.load(...) to create a Factorization")
        self._impl = impl
        self._method = method
        self._dtype = np.dtype(dtype)
        n = int(impl.size)
        self._shape = (n, n)
        self._perm = None
        if permutation is not None:
            self._perm = np.asarray(permutation, dtype=np.int64)
            self._perm.setflags(write=False)

    @property
    def method(self) -> str:
        """The algorithm that ran.

        One of ``"hss-ulv"``, ``"hss-cholesky"``, ``"hodlr-smw"``,
        ``"hodlr-smw-spd"``, ``"dense-lu"`` or ``"dense-cholesky"``.
        """
        return self._method

    @property
    def symmetric(self) -> bool:
        """True for the Cholesky-type (SPD) variants."""
        return bool(self._impl.spd)

    @property
    def nbytes(self) -> int:
        """Every stored byte of the factors (transforms, couplings, dense factors, tree)."""
        extra = 0 if self._perm is None else self._perm.nbytes
        return int(self._impl.nbytes) + extra

    @property
    def permutation(self) -> np.ndarray | None:
        """Read-only order of the factored matrix, or None when it is the caller's order.

        Row/column ``perm[t]`` of the caller's matrix is row/column ``t`` of
        the factored one.
        """
        return self._perm

    def solve(self, b, transpose: bool = False) -> np.ndarray:
        """Returns x with ``A x = b`` (``A^T x = b`` with `transpose`).

        Parameters
        ----------
        b : array_like, shape (n,) or (n, k)
            Right-hand side(s). float32 input to a float64 factorization is
            upcast; float64 input to a float32 one raises ValueError.
        transpose : bool
            Solve with the transpose (the same as without for ``symmetric``).

        Returns
        -------
        ndarray of the factorization's dtype, shaped like `b`.
        """
        n = self._shape[0]
        b = as_operand(b, n, self._dtype, "b")
        if b.dtype.kind == "c":  # a real factorization: the real and imaginary parts separately
            out = np.empty(b.shape, dtype=b.dtype)
            out.real = self.solve(np.ascontiguousarray(b.real), transpose)
            out.imag = self.solve(np.ascontiguousarray(b.imag), transpose)
            return out
        if b.dtype != self._dtype:
            raise ValueError(
                f"b has dtype {b.dtype}, but the factorization is {self._dtype}: a float64 solve "
                f"needs a float64 factorization (factor the matrix built from float64 data)"
            )
        if self._perm is None:
            return self._impl.solve(b, bool(transpose))
        x = np.empty_like(b)
        x[self._perm] = self._impl.solve(np.ascontiguousarray(b[self._perm]), bool(transpose))
        return x

    def logdet(self) -> tuple[float, float]:
        """(sign, log|det A|), as ``numpy.linalg.slogdet`` returns them."""
        sign, logabs = self._impl.logdet()
        return float(sign), float(logabs)

    def inverse_operator(self) -> scipy.sparse.linalg.LinearOperator:
        """``A^{-1}`` as a scipy LinearOperator (for ``M=`` of ``cg``, ``gmres``, ...).

        Examples
        --------
        >>> import numpy as np, scipy.sparse.linalg as sla, hsslin
        >>> x = np.linspace(0, 1, 1000)
        >>> A = np.exp(-np.abs(x[:, None] - x[None, :]) / 0.3) + 1e-3 * np.eye(1000)
        >>> M = hsslin.HSSMatrix.from_dense(A, tol=1e-3).factor().inverse_operator()
        >>> b = np.ones(1000)
        >>> sol, info = sla.gmres(A, b, M=M, rtol=1e-10)
        >>> info
        0
        """
        n = self._shape[0]
        return scipy.sparse.linalg.LinearOperator(
            (n, n),
            matvec=self.solve,
            rmatvec=lambda b: self.solve(b, transpose=True),
            matmat=self.solve,
            rmatmat=lambda b: self.solve(b, transpose=True),
            dtype=self._dtype,
        )

    def __repr__(self) -> str:
        n = self._shape[0]
        return f"<Factorization {self._method} {n}x{n} {self._dtype}, {self.nbytes} bytes>"

    # -- files --------------------------------------------------------------
    def _container_parts(self):
        arrays = {} if self._perm is None else {"permutation": self._perm}
        return arrays, {"factor": self._impl}, {"method": self._method}

    @classmethod
    def _from_container(cls, arrays, parts, meta):
        impl, perm = parts["factor"], arrays.get("permutation")
        method = meta.get("method")
        if method not in _METHODS or not isinstance(impl, _METHODS[method]):
            raise ValueError(f"unknown factorization method {method!r} for its factors")
        if perm is not None and (perm.shape != (impl.size,) or not _is_permutation(perm)):
            raise ValueError("the factorization's permutation is not one")
        return cls(impl, method, impl.dtype, perm)


def _is_permutation(p: np.ndarray) -> bool:
    return p.dtype.kind in "iu" and bool(np.array_equal(np.sort(p), np.arange(p.size)))


def factorize(H, symmetric: bool = False) -> Factorization:
    """Factors a square HSSMatrix or HODLRMatrix (see ``HSSMatrix.factor``)."""
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be a bool, got {type(symmetric).__name__}")
    m, n = H.shape
    if m != n:
        raise ValueError(f"factor needs a square matrix, got shape {H.shape}")
    perm = H.permutation
    family = _FAMILY[type(H._impl)]
    dense = H._impl.dense_view() if family == "hss" else None
    if dense is not None:  # one dense block: LAPACK
        # (A one-leaf HSS matrix does not record symmetry: look at the block.)
        if symmetric and not (H.symmetric or np.array_equal(dense, dense.T)):
            raise ValueError(
                "symmetric=True needs a symmetric matrix (compressed from exactly symmetric input); "
                "this one is not"
            )
        impl = _DenseFactor(dense, bool(symmetric))
        method = "dense-cholesky" if symmetric else "dense-lu"
        return Factorization(impl, method, H.dtype, perm)
    core = _CORE[family][H.dtype].factor(H._impl, bool(symmetric))
    impl = (_HSSFactor if family == "hss" else _HODLRFactor)(core)
    method = {
        ("hss", False): "hss-ulv",
        ("hss", True): "hss-cholesky",
        ("hodlr", False): "hodlr-smw",
        ("hodlr", True): "hodlr-smw-spd",
    }[family, bool(symmetric)]
    return Factorization(impl, method, H.dtype, perm)


# The factors each method writes (checked when a file is read).
_METHODS = {
    "hss-ulv": _HSSFactor,
    "hss-cholesky": _HSSFactor,
    "hodlr-smw": _HODLRFactor,
    "hodlr-smw-spd": _HODLRFactor,
    "dense-lu": _DenseFactor,
    "dense-cholesky": _DenseFactor,
}
register_core(Kind.HSS_FACTOR, _HSSFactor, _HSSFactor._impls)
register_core(Kind.HODLR_FACTOR, _HODLRFactor, _HODLRFactor._impls)
register_container(Kind.DENSE_FACTOR, _DenseFactor, arrays=("lu",), optional_arrays=("piv",))
register_container(
    Kind.FACTORIZATION,
    Factorization,
    optional_arrays=("permutation",),
    parts={"factor": (_CoreFactor, _DenseFactor)},
)
