"""hsslin: hierarchical structured matrices with a C++/Eigen core.

Compress a dense matrix into a hierarchical form and apply it fast:

>>> import numpy as np, hsslin
>>> x = np.linspace(0, 1, 512)
>>> K = np.exp(-np.abs(x[:, None] - x[None, :]))
>>> H = hsslin.HSSMatrix.from_dense(K, tol=1e-8)
>>> bool(np.allclose(H @ np.ones(512), K.sum(axis=1)))
True
"""

from . import cuda  # pure Python; the CUDA extension loads on first use
from ._compress import METHODS, compress
from ._factor import Factorization, FactorizationError
from ._hierarchical import HODLRMatrix, HSSMatrix
from ._io import load
from ._kernels import KERNELS, KernelMatrix
from ._loader import core as _core
from ._lowrank import LowRankMatrix, SparsePlusLowRank
from ._operator import TransposedOperator
from ._quantized import QuantizedMatrix
from ._rpca import RPCAResult, rpca
from ._sparse import CSRMatrix, bandwidth, reverse_cuthill_mckee
from ._sparse_plus import SparsePlusHSS
from ._validation import check_int

__version__ = "0.1.0"

__all__ = [
    "HSSMatrix",
    "HODLRMatrix",
    "CSRMatrix",
    "SparsePlusHSS",
    "LowRankMatrix",
    "SparsePlusLowRank",
    "QuantizedMatrix",
    "TransposedOperator",
    "Factorization",
    "FactorizationError",
    "KernelMatrix",
    "KERNELS",
    "compress",
    "rpca",
    "RPCAResult",
    "METHODS",
    "reverse_cuthill_mckee",
    "bandwidth",
    "load",
    "set_num_threads",
    "get_num_threads",
    "simd_path",
    "cuda",
]


def set_num_threads(n: int) -> None:
    """Set the number of threads hsslin's kernels use.

    The initial value comes from the environment variable
    ``HSSLIN_NUM_THREADS``, else the number of CPUs. Small products run on
    one thread whatever the setting (waking threads would cost more).

    Examples
    --------
    >>> import hsslin
    >>> old = hsslin.get_num_threads()
    >>> hsslin.set_num_threads(1)
    >>> hsslin.get_num_threads()
    1
    >>> hsslin.set_num_threads(old)
    """
    _core.set_num_threads(check_int(n, "n", 1))


def get_num_threads() -> int:
    """Return the number of threads hsslin's kernels use."""
    return int(_core.get_num_threads())


def simd_path() -> str:
    """Which build of the C++ core is loaded: ``"avx2"`` or ``"generic"``."""
    return str(_core.simd)
