"""hsslin operators resident on an NVIDIA GPU (optional; see docs/cuda.md).

``DeviceOperator(op)`` (or ``op.to("cuda")``) uploads an operator's factors
once; its products take torch or CuPy arrays in CUDA memory, through DLPack
and without host copies, run on the array library's current stream, and
return an array of the same library. Importing this module never needs a
GPU, a driver or the compiled extension: :func:`is_available` says whether
products can run, and :func:`unavailable_reason` why not.

Examples
--------
>>> import hsslin, hsslin.cuda
>>> isinstance(hsslin.cuda.is_available(), bool)
True
>>> hsslin.cuda.is_available() or hsslin.cuda.unavailable_reason() is not None
True
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import numpy as np

from . import _operator
from ._cuda_layout import DeviceLayout, Plan, pack
from ._operator import LinearOperatorMixin, TransposedOperator

__all__ = ["DeviceOperator", "is_available", "unavailable_reason", "device_count", "runtime_info"]

PATHS = {"auto": 0, "fused": 1, "cublas": 2}  # the extension's Path values

_state: dict = {}


def _extension():
    """(the hsslin._cuda module or None, why products cannot run or None), computed once."""
    if "module" not in _state:
        try:
            module = importlib.import_module("hsslin._cuda")
        except ImportError as e:
            _state["module"], _state["query"] = None, None
            _state["reason"] = f"hsslin was built without its CUDA extension ({e}); see docs/cuda.md"
        else:
            query = module.query()
            _state["module"], _state["query"] = module, query
            if query["error"]:
                _state["reason"] = (
                    f"the CUDA runtime found no usable device: {query['message']} "
                    f"(driver version {query['driver_version']}, runtime {query['runtime_version']})"
                )
            elif query["count"] == 0:
                _state["reason"] = "the CUDA runtime reports no device"
            else:
                _state["reason"] = None
    return _state["module"], _state["reason"]


def is_available() -> bool:
    """True when the CUDA extension is built and the runtime sees at least one device."""
    return _extension()[1] is None


def unavailable_reason() -> str | None:
    """Why :func:`is_available` is False (None when it is True)."""
    return _extension()[1]


def device_count() -> int:
    """Number of CUDA devices the runtime sees (0 without the extension or a driver)."""
    module, _ = _extension()
    return 0 if module is None else int(_state["query"]["count"])


def runtime_info() -> dict:
    """What was found: ``built`` (the extension imports), and its runtime query when built.

    The query holds ``count``, ``error`` and ``message`` (cudaGetDeviceCount's),
    ``runtime_version`` and ``driver_version`` (1000 * major + 10 * minor; the
    driver's is 0 when no driver is installed).

    Examples
    --------
    >>> import hsslin.cuda
    >>> sorted(hsslin.cuda.runtime_info())[:1]
    ['built']
    """
    module, _ = _extension()
    info = {"built": module is not None}
    if module is not None:
        info.update(_state["query"])
    return info


# -- array libraries -----------------------------------------------------------------------
@dataclass(frozen=True)
class OperandInfo:
    """What validation needs to know of an operand, read without touching the device."""

    library: str  # "torch", "cupy" or the type's name
    device_type: str  # "cuda", "cpu", ...
    device_index: int | None
    dtype: object  # np.dtype for float32/float64, else the library's dtype
    shape: tuple[int, ...]


class _Torch:
    name = "torch"

    def __init__(self, torch):
        self.torch = torch
        self.dtypes = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
        self.of_numpy = {v: k for k, v in self.dtypes.items()}

    def owns(self, x) -> bool:
        return isinstance(x, self.torch.Tensor)

    def info(self, x) -> OperandInfo:
        return OperandInfo(
            "torch", x.device.type, x.device.index, self.dtypes.get(x.dtype, x.dtype), tuple(x.shape)
        )

    def empty(self, like, shape, dtype, fortran: bool = False):
        t = self.torch
        if fortran:
            return t.empty(shape[::-1], dtype=self.of_numpy[dtype], device=like.device).T
        return t.empty(shape, dtype=self.of_numpy[dtype], device=like.device)

    def workspace(self, like, nbytes: int):
        return self.torch.empty(nbytes, dtype=self.torch.uint8, device=like.device)

    def capsule(self, x):
        return self.torch.utils.dlpack.to_dlpack(x.detach())

    def strides(self, x):
        return tuple(x.stride())

    def stream(self, device: int) -> int:
        return int(self.torch.cuda.current_stream(device).cuda_stream)


class _CuPy:
    name = "cupy"

    def __init__(self, cupy):
        self.cupy = cupy

    def owns(self, x) -> bool:
        return isinstance(x, self.cupy.ndarray)

    def info(self, x) -> OperandInfo:
        dtype = np.dtype(x.dtype)
        dtype = dtype if dtype in (np.float32, np.float64) else x.dtype
        return OperandInfo("cupy", "cuda", int(x.device.id), dtype, tuple(x.shape))

    def empty(self, like, shape, dtype, fortran: bool = False):
        with self.cupy.cuda.Device(like.device.id):
            return self.cupy.empty(shape, dtype=dtype, order="F" if fortran else "C")

    def workspace(self, like, nbytes: int):
        with self.cupy.cuda.Device(like.device.id):
            return self.cupy.empty(nbytes, dtype=np.uint8)

    def capsule(self, x):
        return x.toDlpack()

    def strides(self, x):
        return tuple(s // x.itemsize for s in x.strides)

    def stream(self, device: int) -> int:
        with self.cupy.cuda.Device(device):
            return int(self.cupy.cuda.get_current_stream().ptr)


_LIBRARIES = {"torch": _Torch, "cupy": _CuPy}  # adapters by module name
_adapters: dict[str, object] = {}


def _library_of(x):
    """The adapter of x's array library, for libraries the caller has imported (never imports one)."""
    for name, cls in _LIBRARIES.items():
        module = sys.modules.get(name)
        if module is None:
            continue
        adapter = _adapters.get(name)
        if adapter is None:
            adapter = _adapters[name] = cls(module)
        if adapter.owns(x):
            return adapter
    return None


def operand_info(x) -> tuple[object | None, OperandInfo]:
    """(adapter or None, OperandInfo) of a product's operand."""
    lib = _library_of(x)
    if lib is not None:
        return lib, lib.info(x)
    shape = tuple(getattr(x, "shape", ()))
    return None, OperandInfo(type(x).__name__, "cpu", None, getattr(x, "dtype", None), shape)


def check_operand(info: OperandInfo, rows: int, dtype: np.dtype, device: int, name: str = "x") -> None:
    """Raises the exception a product raises for this operand (before any device call).

    TypeError: not a torch or CuPy array in CUDA memory, or not of the
    operator's dtype (the device path does not promote; convert first).
    ValueError: on another device, not 1-D or 2-D, or of the wrong length.

    Examples
    --------
    >>> import numpy as np
    >>> from hsslin.cuda import OperandInfo, check_operand
    >>> check_operand(OperandInfo("torch", "cuda", 1, np.dtype("float32"), (4,)), 4, np.dtype("float32"), 0)
    Traceback (most recent call last):
    ...
    ValueError: x is on cuda:1, but the operator is on cuda:0 (move one of them)
    """
    if info.library not in _LIBRARIES:
        raise TypeError(
            f"{name} must be a torch tensor or a CuPy array in CUDA memory, got {info.library}; "
            "use the CPU operator for NumPy arrays"
        )
    if info.device_type != "cuda":
        raise TypeError(
            f"{name} is a {info.library} array on {info.device_type}, but the operator is on cuda:{device} "
            f"(move it with x.to('cuda:{device}'), or use the CPU operator)"
        )
    if info.device_index != device:
        raise ValueError(
            f"{name} is on cuda:{info.device_index}, but the operator is on cuda:{device} (move one of them)"
        )
    if info.dtype != dtype:
        raise TypeError(f"{name} has dtype {info.dtype}, but the operator is {dtype}; convert {name} first")
    if len(info.shape) not in (1, 2) or info.shape[0] != rows:
        raise ValueError(f"{name} has shape {info.shape}, expected ({rows},) or ({rows}, k)")


def device_index(device) -> int:
    """The CUDA device number of ``"cuda"``, ``"cuda:N"``, N, or a ``torch.device``.

    Examples
    --------
    >>> from hsslin.cuda import device_index
    >>> device_index("cuda"), device_index("cuda:2"), device_index(1)
    (0, 2, 1)
    """
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
        index = int(device)
    else:
        text = str(device)
        kind, _, number = text.partition(":")
        if kind != "cuda" or (number and not number.isdigit()):
            raise ValueError(f"device must be 'cuda', 'cuda:N' or a device number, got {device!r}")
        index = int(number) if number else 0
    if index < 0:
        raise ValueError(f"device must be a non-negative device number, got {device!r}")
    return index


def layout_arrays(layout: DeviceLayout) -> dict:
    """The layout as the extension takes it (a dict of NumPy arrays and sizes)."""

    def plan(p: Plan) -> dict:
        return {**p.arrays(), "rows_in": p.rows_in, "rows_out": p.rows_out, "scratch": p.scratch}

    m, n = layout.shape
    return {
        "scalar": layout.dtype.name,
        "rows": m,
        "cols": n,
        "arena_size": layout.arena_size,
        "arena_parts": layout.arena_parts,
        "plans": None
        if layout.plans is None
        else {"forward": plan(layout.plans[False]), "transposed": plan(layout.plans[True])},
        "sparse": layout.sparse,
        "row_perm": layout.row_perm,
        "col_perm": layout.col_perm,
        "row_inv": layout.row_inv,
        "col_inv": layout.col_inv,
    }


class DeviceOperator:
    """An hsslin operator uploaded to a CUDA device.

    Parameters
    ----------
    op : hsslin operator
        HSSMatrix, HODLRMatrix, CSRMatrix, LowRankMatrix, SparsePlusLowRank,
        SparsePlusHSS, or the ``.T`` of one. Uploaded once; the device copy
        does not follow later changes of `op`.
    device : int or str, optional
        ``0``, ``"cuda"``, ``"cuda:1"``, or a ``torch.device``.
    path : {"auto", "fused", "cublas"}
        How products run: hsslin's fused kernels (few columns), one grouped
        cuBLAS GEMM per step of the tree (many columns), or chosen by the
        number of columns.

    Products (``D @ x``, ``x @ D``, :meth:`matvec`, :meth:`matmat`,
    :meth:`rmatvec`, :meth:`rmatmat`, and those of ``D.T``) take a torch
    tensor or a CuPy array on the operator's device, of its dtype, with shape
    (n,) or (n, k) and any strides, and return a new array of the same
    library (row-major unless x is column-major). They run on the library's
    current stream (``torch.cuda.stream(s)``, ``cupy.cuda.Stream``), so
    products on different streams overlap.

    Raises
    ------
    TypeError
        For an operator class the device cannot run.
    RuntimeError
        When :func:`is_available` is False (the message says why).
    ValueError
        For a device that does not exist, or a bad `path`.
    """

    # Array libraries must hand ``x @ D`` to __rmatmul__ instead of converting D.
    __array_ufunc__ = None

    def __init__(self, op, device=0, path: str = "auto"):
        base, transpose = (op.T, True) if isinstance(op, TransposedOperator) else (op, False)
        if isinstance(base, DeviceOperator):
            raise TypeError("op is already a DeviceOperator")
        if not isinstance(base, LinearOperatorMixin):
            raise TypeError(f"op must be an hsslin operator, got {type(op).__name__}")
        index = device_index(device)
        if path not in PATHS:
            raise ValueError(f"path must be one of {sorted(PATHS)}, got {path!r}")
        layout = pack(base)  # TypeError for classes without a device layout
        module, reason = _extension()
        if reason is not None:
            raise RuntimeError(f"CUDA products are not available: {reason}")
        if index >= device_count():
            raise ValueError(f"device cuda:{index} does not exist ({device_count()} CUDA devices)")
        self._impl = module.DeviceOperator(layout_arrays(layout), index)
        self._host = base
        self._shape = tuple(int(s) for s in base.shape)
        self._dtype = np.dtype(base.dtype)
        self._transpose = transpose
        self._path = path

    @classmethod
    def _view(cls, other: DeviceOperator, transpose: bool) -> DeviceOperator:
        view = cls.__new__(cls)
        view.__dict__.update(other.__dict__)
        view._transpose = transpose
        return view

    # -- properties ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        m, n = self._shape
        return (n, m) if self._transpose else (m, n)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def device(self) -> str:
        return f"cuda:{self._impl.device}"

    @property
    def nbytes(self) -> int:
        """Device bytes held: factors, plans and their work lists, S, permutations."""
        return int(self._impl.nbytes)

    @property
    def T(self) -> DeviceOperator:
        """The transpose, sharing the device storage."""
        return DeviceOperator._view(self, not self._transpose)

    def to(self, device):
        """``"cpu"``: the host operator this was uploaded from (its ``.T`` for a transposed view);
        the same device: self; another device: a new upload."""
        if str(device) == "cpu":
            return self._host.T if self._transpose else self._host
        if device_index(device) == self._impl.device:
            return self
        return DeviceOperator(self.to("cpu"), device, self._path)

    def __repr__(self) -> str:
        m, n = self.shape
        return f"<{m}x{n} DeviceOperator of dtype {self.dtype} on {self.device}, {self.nbytes} device bytes>"

    # -- products --------------------------------------------------------------------------
    def _product(self, x, transpose: bool, name: str = "x"):
        m, n = self._shape
        lib, info = operand_info(x)
        check_operand(info, m if transpose else n, self._dtype, self._impl.device, name)
        rows_out = n if transpose else m
        if len(info.shape) == 1:
            y = lib.empty(x, (rows_out,), self._dtype)
        else:
            rs, cs = lib.strides(x)
            fortran = info.shape[1] > 1 and rs == 1 and cs >= info.shape[0]
            y = lib.empty(x, (rows_out, info.shape[1]), self._dtype, fortran)
        k = 1 if len(info.shape) == 1 else info.shape[1]
        path = PATHS[self._path]
        nbytes = int(self._impl.workspace_bytes(k, transpose, path))
        ws = lib.workspace(x, nbytes) if nbytes else None
        self._impl.apply(
            lib.capsule(x),
            lib.capsule(y),
            None if ws is None else lib.capsule(ws),
            transpose,
            path,
            lib.stream(self._impl.device),
        )
        return y

    def __matmul__(self, x):
        return self._product(x, self._transpose)

    def __rmatmul__(self, x):
        # x @ A == (A.T @ x.T).T
        lib, info = operand_info(x)
        if len(info.shape) == 2:
            return self._product(x.T, not self._transpose).T
        return self._product(x, not self._transpose)

    def matvec(self, x):
        """``A @ x`` for x of shape (n,) or (n, 1)."""
        self._require_vector(x)
        return self @ x

    def rmatvec(self, x):
        """``A.T @ x`` for x of shape (m,) or (m, 1)."""
        self._require_vector(x)
        return self.T @ x

    def matmat(self, X):
        """``A @ X`` for X of shape (n, k)."""
        self._require_matrix(X)
        return self._product(X, self._transpose, "X")

    def rmatmat(self, X):
        """``A.T @ X`` for X of shape (m, k)."""
        self._require_matrix(X)
        return self._product(X, not self._transpose, "X")

    @staticmethod
    def _require_vector(x):
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) == 2 and shape[1] != 1:
            raise ValueError(f"x has shape {shape}; use matmat for several columns")

    @staticmethod
    def _require_matrix(X):
        shape = tuple(getattr(X, "shape", ()))
        if len(shape) != 2:
            raise ValueError(f"X has shape {shape}, expected a 2-D array")


# op.to("cuda") on every hsslin operator (hsslin/_operator.py looks the kind up here).
_operator.DEVICE_BACKENDS["cuda"] = DeviceOperator
