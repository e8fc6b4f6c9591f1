"""
hsslin C++ core (private; import hsslin instead)
"""

from __future__ import annotations
import numpy
import numpy.linalg
import numpy.typing
import typing

__all__: list[str] = [
    "CSRMatrix32",
    "CSRMatrix64",
    "FactorizationError",
    "HODLRFactor32",
    "HODLRFactor64",
    "HODLRMatrix32",
    "HODLRMatrix64",
    "HSSMatrix32",
    "HSSMatrix64",
    "HSSULV32",
    "HSSULV64",
    "KernelMatrix32",
    "KernelMatrix64",
    "RPCAOptions",
    "bandwidth",
    "checksum",
    "cluster_tree",
    "geometric_permutation",
    "get_num_threads",
    "hodlr_from_kernel32",
    "hodlr_from_kernel64",
    "hss_defaults",
    "hss_from_kernel32",
    "hss_from_kernel64",
    "hss_from_operator32",
    "hss_from_operator64",
    "kernel_names",
    "max_num_threads",
    "reverse_cuthill_mckee",
    "robust_pca",
    "set_num_threads",
    "simd",
    "sparse_plus_apply",
    "top_count",
    "top_magnitude",
]

class HSSMatrix32:
    @staticmethod
    def compress(
        A: numpy.ndarray,
        tol: typing.SupportsFloat | typing.SupportsIndex,
        max_rank: typing.SupportsInt | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        oversampling: typing.SupportsInt | typing.SupportsIndex,
        initial_samples: typing.SupportsInt | typing.SupportsIndex,
        seed: typing.SupportsInt | typing.SupportsIndex,
    ) -> HSSMatrix32: ...
    @staticmethod
    def deserialize(arg0: bytes) -> HSSMatrix32: ...
    def apply(self, x: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    def copy(self) -> HSSMatrix32: ...
    def dense_view(self) -> typing.Any:
        """
        read-only view of the dense block (one-leaf tree or dense fallback), else None
        """
    def level_ranks(self, columns: bool) -> list[list[int]]: ...
    def parts(self) -> list: ...
    def serialize(self) -> bytes: ...
    def to_dense(self, transpose: bool) -> numpy.ndarray: ...
    def to_float64(self) -> ...:
        """
        the same matrix in float64 (every stored value converted exactly)
        """
    @property
    def cols(self) -> int: ...
    @property
    def error_estimate(self) -> float: ...
    @property
    def is_dense_fallback(self) -> bool: ...
    @property
    def leaf_size(self) -> int: ...
    @property
    def levels(self) -> int: ...
    @property
    def max_rank(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def samples(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def symmetric(self) -> bool: ...
    @property
    def tol(self) -> float: ...

class HSSMatrix64:
    @staticmethod
    def compress(
        A: numpy.ndarray,
        tol: typing.SupportsFloat | typing.SupportsIndex,
        max_rank: typing.SupportsInt | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        oversampling: typing.SupportsInt | typing.SupportsIndex,
        initial_samples: typing.SupportsInt | typing.SupportsIndex,
        seed: typing.SupportsInt | typing.SupportsIndex,
    ) -> HSSMatrix64: ...
    @staticmethod
    def deserialize(arg0: bytes) -> HSSMatrix64: ...
    def apply(self, x: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    def copy(self) -> HSSMatrix64: ...
    def dense_view(self) -> typing.Any:
        """
        read-only view of the dense block (one-leaf tree or dense fallback), else None
        """
    def level_ranks(self, columns: bool) -> list[list[int]]: ...
    def parts(self) -> list: ...
    def serialize(self) -> bytes: ...
    def to_dense(self, transpose: bool) -> numpy.ndarray: ...
    @property
    def cols(self) -> int: ...
    @property
    def error_estimate(self) -> float: ...
    @property
    def is_dense_fallback(self) -> bool: ...
    @property
    def leaf_size(self) -> int: ...
    @property
    def levels(self) -> int: ...
    @property
    def max_rank(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def samples(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def symmetric(self) -> bool: ...
    @property
    def tol(self) -> float: ...

class HODLRMatrix32:
    @staticmethod
    def compress(
        A: numpy.ndarray,
        tol: typing.SupportsFloat | typing.SupportsIndex,
        rank: typing.SupportsInt | typing.SupportsIndex,
        rank_decay: typing.SupportsFloat | typing.SupportsIndex,
        min_rank: typing.SupportsInt | typing.SupportsIndex,
        max_rank: typing.SupportsInt | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        power_iterations: typing.SupportsInt | typing.SupportsIndex,
        seed: typing.SupportsInt | typing.SupportsIndex,
    ) -> HODLRMatrix32: ...
    @staticmethod
    def deserialize(arg0: bytes) -> HODLRMatrix32: ...
    @staticmethod
    def from_parts(
        rows: typing.SupportsInt | typing.SupportsIndex,
        cols: typing.SupportsInt | typing.SupportsIndex,
        levels: typing.SupportsInt | typing.SupportsIndex,
        parts: list,
        rank_decay: typing.SupportsFloat | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        error: typing.SupportsFloat | typing.SupportsIndex,
    ) -> HODLRMatrix32: ...
    @staticmethod
    def nbytes_for(
        rows: typing.SupportsInt | typing.SupportsIndex,
        cols: typing.SupportsInt | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        rank: typing.SupportsInt | typing.SupportsIndex,
        rank_decay: typing.SupportsFloat | typing.SupportsIndex,
        min_rank: typing.SupportsInt | typing.SupportsIndex,
    ) -> int:
        """
        nbytes of compress(A, rank schedule) for any rows x cols A
        """
    def apply(self, x: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    def copy(self) -> HODLRMatrix32: ...
    def level_ranks(self) -> list[list[int]]: ...
    def parts(self) -> list: ...
    def serialize(self) -> bytes: ...
    def to_dense(self, transpose: bool) -> numpy.ndarray: ...
    @property
    def cols(self) -> int: ...
    @property
    def leaf_size(self) -> int: ...
    @property
    def levels(self) -> int: ...
    @property
    def min_rank(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def rank(self) -> int: ...
    @property
    def rank_decay(self) -> float: ...
    @property
    def relative_error(self) -> float: ...
    @property
    def rows(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def tol(self) -> float: ...

class HODLRMatrix64:
    @staticmethod
    def compress(
        A: numpy.ndarray,
        tol: typing.SupportsFloat | typing.SupportsIndex,
        rank: typing.SupportsInt | typing.SupportsIndex,
        rank_decay: typing.SupportsFloat | typing.SupportsIndex,
        min_rank: typing.SupportsInt | typing.SupportsIndex,
        max_rank: typing.SupportsInt | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        power_iterations: typing.SupportsInt | typing.SupportsIndex,
        seed: typing.SupportsInt | typing.SupportsIndex,
    ) -> HODLRMatrix64: ...
    @staticmethod
    def deserialize(arg0: bytes) -> HODLRMatrix64: ...
    @staticmethod
    def from_parts(
        rows: typing.SupportsInt | typing.SupportsIndex,
        cols: typing.SupportsInt | typing.SupportsIndex,
        levels: typing.SupportsInt | typing.SupportsIndex,
        parts: list,
        rank_decay: typing.SupportsFloat | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        error: typing.SupportsFloat | typing.SupportsIndex,
    ) -> HODLRMatrix64: ...
    @staticmethod
    def nbytes_for(
        rows: typing.SupportsInt | typing.SupportsIndex,
        cols: typing.SupportsInt | typing.SupportsIndex,
        leaf_size: typing.SupportsInt | typing.SupportsIndex,
        rank: typing.SupportsInt | typing.SupportsIndex,
        rank_decay: typing.SupportsFloat | typing.SupportsIndex,
        min_rank: typing.SupportsInt | typing.SupportsIndex,
    ) -> int:
        """
        nbytes of compress(A, rank schedule) for any rows x cols A
        """
    def apply(self, x: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    def copy(self) -> HODLRMatrix64: ...
    def level_ranks(self) -> list[list[int]]: ...
    def parts(self) -> list: ...
    def serialize(self) -> bytes: ...
    def to_dense(self, transpose: bool) -> numpy.ndarray: ...
    @property
    def cols(self) -> int: ...
    @property
    def leaf_size(self) -> int: ...
    @property
    def levels(self) -> int: ...
    @property
    def min_rank(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def rank(self) -> int: ...
    @property
    def rank_decay(self) -> float: ...
    @property
    def relative_error(self) -> float: ...
    @property
    def rows(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def tol(self) -> float: ...

class CSRMatrix32:
    @staticmethod
    def deserialize(arg0: bytes) -> CSRMatrix32: ...
    @staticmethod
    def nbytes_for(
        rows: typing.SupportsInt | typing.SupportsIndex, nnz: typing.SupportsInt | typing.SupportsIndex
    ) -> int:
        """
        nbytes of a CSR matrix with `rows` rows and `nnz` stored entries
        """
    def __init__(
        self,
        data: numpy.ndarray,
        indices: numpy.ndarray,
        indptr: numpy.ndarray,
        shape: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex],
    ) -> None: ...
    def apply(self, x: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    def serialize(self) -> bytes: ...
    def to_dense(self, transpose: bool) -> numpy.typing.NDArray[numpy.float32]: ...
    @property
    def cols(self) -> int: ...
    @property
    def data(self) -> numpy.ndarray: ...
    @property
    def indices(self) -> numpy.ndarray: ...
    @property
    def indptr(self) -> numpy.ndarray: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def nnz(self) -> int: ...
    @property
    def rows(self) -> int: ...

class CSRMatrix64:
    @staticmethod
    def deserialize(arg0: bytes) -> CSRMatrix64: ...
    @staticmethod
    def nbytes_for(
        rows: typing.SupportsInt | typing.SupportsIndex, nnz: typing.SupportsInt | typing.SupportsIndex
    ) -> int:
        """
        nbytes of a CSR matrix with `rows` rows and `nnz` stored entries
        """
    def __init__(
        self,
        data: numpy.ndarray,
        indices: numpy.ndarray,
        indptr: numpy.ndarray,
        shape: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex],
    ) -> None: ...
    def apply(self, x: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    def serialize(self) -> bytes: ...
    def to_dense(self, transpose: bool) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def cols(self) -> int: ...
    @property
    def data(self) -> numpy.ndarray: ...
    @property
    def indices(self) -> numpy.ndarray: ...
    @property
    def indptr(self) -> numpy.ndarray: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def nnz(self) -> int: ...
    @property
    def rows(self) -> int: ...

class FactorizationError(numpy.linalg.LinAlgError):
    pass

class HSSULV32:
    @staticmethod
    def deserialize(arg0: bytes) -> HSSULV32: ...
    @staticmethod
    def factor(H: HSSMatrix32, spd: bool) -> HSSULV32: ...
    def logdet(self) -> tuple[float, float]: ...
    def serialize(self) -> bytes: ...
    def solve(self, b: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def spd(self) -> bool: ...

class HSSULV64:
    @staticmethod
    def deserialize(arg0: bytes) -> HSSULV64: ...
    @staticmethod
    def factor(H: HSSMatrix64, spd: bool) -> HSSULV64: ...
    def logdet(self) -> tuple[float, float]: ...
    def serialize(self) -> bytes: ...
    def solve(self, b: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def spd(self) -> bool: ...

class HODLRFactor32:
    @staticmethod
    def deserialize(arg0: bytes) -> HODLRFactor32: ...
    @staticmethod
    def factor(H: HODLRMatrix32, spd: bool) -> HODLRFactor32: ...
    def logdet(self) -> tuple[float, float]: ...
    def serialize(self) -> bytes: ...
    def solve(self, b: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def spd(self) -> bool: ...

class HODLRFactor64:
    @staticmethod
    def deserialize(arg0: bytes) -> HODLRFactor64: ...
    @staticmethod
    def factor(H: HODLRMatrix64, spd: bool) -> HODLRFactor64: ...
    def logdet(self) -> tuple[float, float]: ...
    def serialize(self) -> bytes: ...
    def solve(self, b: numpy.ndarray, transpose: bool) -> numpy.ndarray: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def spd(self) -> bool: ...

class KernelMatrix32:
    def __init__(
        self,
        points: numpy.ndarray,
        kernel: str,
        lengthscale: typing.SupportsFloat | typing.SupportsIndex,
        nugget: typing.SupportsFloat | typing.SupportsIndex,
    ) -> None: ...
    def apply(self, x: numpy.ndarray) -> numpy.ndarray: ...
    def entries(self, rows: numpy.ndarray, cols: numpy.ndarray) -> numpy.typing.NDArray[numpy.float32]: ...
    @property
    def size(self) -> int: ...

class KernelMatrix64:
    def __init__(
        self,
        points: numpy.ndarray,
        kernel: str,
        lengthscale: typing.SupportsFloat | typing.SupportsIndex,
        nugget: typing.SupportsFloat | typing.SupportsIndex,
    ) -> None: ...
    def apply(self, x: numpy.ndarray) -> numpy.ndarray: ...
    def entries(self, rows: numpy.ndarray, cols: numpy.ndarray) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def size(self) -> int: ...

class RPCAOptions:
    def __init__(self) -> None: ...
    def lambda_for(
        self, m: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex
    ) -> float: ...
    def tol_for(self, arg0: str) -> float: ...
    @property
    def initial_rank(self) -> int: ...
    @initial_rank.setter
    def initial_rank(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def lam(self) -> typing.Any: ...
    @lam.setter
    def lam(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def max_iter(self) -> int: ...
    @max_iter.setter
    def max_iter(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def mu_growth_limit(self) -> float: ...
    @mu_growth_limit.setter
    def mu_growth_limit(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def mu_scale(self) -> float: ...
    @mu_scale.setter
    def mu_scale(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def oversampling(self) -> int: ...
    @oversampling.setter
    def oversampling(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def power_iterations(self) -> int: ...
    @power_iterations.setter
    def power_iterations(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def rho(self) -> float: ...
    @rho.setter
    def rho(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def seed(self) -> int: ...
    @seed.setter
    def seed(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def tol(self) -> typing.Any: ...
    @tol.setter
    def tol(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None: ...

def bandwidth(
    indptr: numpy.ndarray,
    indices: numpy.ndarray,
    shape: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex],
    row_perm: numpy.ndarray,
    col_perm: numpy.ndarray,
) -> int: ...
def checksum(payload: bytes) -> int:
    """
    the container's checksum of a payload (the bytes after the header)
    """

def cluster_tree(
    rows: typing.SupportsInt | typing.SupportsIndex,
    cols: typing.SupportsInt | typing.SupportsIndex,
    leaf_size: typing.SupportsInt | typing.SupportsIndex,
) -> tuple[int, list[tuple[int, int, int, int]]]:
    """
    (levels, [(row_begin, row_end, col_begin, col_end) per node in heap order]) of the cluster tree HSS and HODLR matrices of this shape and leaf size are built on
    """

def geometric_permutation(
    points: numpy.ndarray, leaf_size: typing.SupportsInt | typing.SupportsIndex, clustering: str
) -> numpy.typing.NDArray[numpy.int64]: ...
def get_num_threads() -> int: ...
def hodlr_from_kernel32(
    points: numpy.ndarray,
    kernel: str,
    lengthscale: typing.SupportsFloat | typing.SupportsIndex,
    nugget: typing.SupportsFloat | typing.SupportsIndex,
    tol: typing.SupportsFloat | typing.SupportsIndex,
    leaf_size: typing.SupportsInt | typing.SupportsIndex,
    clustering: str,
    oversampling: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def hodlr_from_kernel64(
    points: numpy.ndarray,
    kernel: str,
    lengthscale: typing.SupportsFloat | typing.SupportsIndex,
    nugget: typing.SupportsFloat | typing.SupportsIndex,
    tol: typing.SupportsFloat | typing.SupportsIndex,
    leaf_size: typing.SupportsInt | typing.SupportsIndex,
    clustering: str,
    oversampling: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def hss_from_kernel32(
    points: numpy.ndarray,
    kernel: str,
    lengthscale: typing.SupportsFloat | typing.SupportsIndex,
    nugget: typing.SupportsFloat | typing.SupportsIndex,
    tol: typing.SupportsFloat | typing.SupportsIndex,
    leaf_size: typing.SupportsInt | typing.SupportsIndex,
    clustering: str,
    oversampling: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def hss_from_kernel64(
    points: numpy.ndarray,
    kernel: str,
    lengthscale: typing.SupportsFloat | typing.SupportsIndex,
    nugget: typing.SupportsFloat | typing.SupportsIndex,
    tol: typing.SupportsFloat | typing.SupportsIndex,
    leaf_size: typing.SupportsInt | typing.SupportsIndex,
    clustering: str,
    oversampling: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def hss_from_operator32(
    m: typing.SupportsInt | typing.SupportsIndex,
    n: typing.SupportsInt | typing.SupportsIndex,
    matvec: typing.Any,
    rmatvec: typing.Any,
    entries: typing.Any,
    symmetric: bool,
    tol: typing.SupportsFloat | typing.SupportsIndex,
    max_rank: typing.SupportsInt | typing.SupportsIndex,
    leaf_size: typing.SupportsInt | typing.SupportsIndex,
    oversampling: typing.SupportsInt | typing.SupportsIndex,
    initial_samples: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
) -> HSSMatrix32: ...
def hss_from_operator64(
    m: typing.SupportsInt | typing.SupportsIndex,
    n: typing.SupportsInt | typing.SupportsIndex,
    matvec: typing.Any,
    rmatvec: typing.Any,
    entries: typing.Any,
    symmetric: bool,
    tol: typing.SupportsFloat | typing.SupportsIndex,
    max_rank: typing.SupportsInt | typing.SupportsIndex,
    leaf_size: typing.SupportsInt | typing.SupportsIndex,
    oversampling: typing.SupportsInt | typing.SupportsIndex,
    initial_samples: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
) -> HSSMatrix64: ...
def kernel_names() -> list[str]: ...
def max_num_threads() -> int: ...
def reverse_cuthill_mckee(
    indptr: numpy.ndarray,
    indices: numpy.ndarray,
    shape: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex],
    symmetric_mode: bool,
) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64]]: ...
def robust_pca(W: numpy.ndarray, options: RPCAOptions) -> dict: ...
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None: ...
@typing.overload
def sparse_plus_apply(
    S: CSRMatrix32,
    H: HODLRMatrix32,
    row_perm: typing.Any,
    col_perm: typing.Any,
    x: numpy.ndarray,
    transpose: bool,
) -> numpy.ndarray: ...
@typing.overload
def sparse_plus_apply(
    S: CSRMatrix32,
    H: HSSMatrix32,
    row_perm: typing.Any,
    col_perm: typing.Any,
    x: numpy.ndarray,
    transpose: bool,
) -> numpy.ndarray: ...
@typing.overload
def sparse_plus_apply(
    S: CSRMatrix64,
    H: HODLRMatrix64,
    row_perm: typing.Any,
    col_perm: typing.Any,
    x: numpy.ndarray,
    transpose: bool,
) -> numpy.ndarray: ...
@typing.overload
def sparse_plus_apply(
    S: CSRMatrix64,
    H: HSSMatrix64,
    row_perm: typing.Any,
    col_perm: typing.Any,
    x: numpy.ndarray,
    transpose: bool,
) -> numpy.ndarray: ...
def top_count(
    rho: typing.SupportsFloat | typing.SupportsIndex, total: typing.SupportsInt | typing.SupportsIndex
) -> int: ...
def top_magnitude(
    W: numpy.ndarray, rho: typing.SupportsFloat | typing.SupportsIndex, per_row: bool
) -> typing.Any: ...

hss_defaults: dict = {"tol": 1e-08, "leaf_size": 64, "oversampling": 10, "initial_samples": 48}
simd: str = "generic"
