"""The layer: :class:`HSSLinear`, a linear layer whose weight is an hsslin operator."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import LowRankMatrix, _defaults, compress
from ._factors import cast_operator, factors_of
from ._report import describe_operator, operator_kind
from ._weights import NP_TO_TORCH, TORCH_TO_NP, is_conv1d, is_replaceable, weight_matrix, weight_numpy


# -- the C++ product with autograd for the input ----------------------------------------
def operator_product(op, x2d: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``(op @ x2d.T).T`` through the C++ kernel without copies.

    x2d (tokens, n) C-contiguous -> its numpy transpose is an F-ordered (n, tokens)
    view; the kernel writes (m, tokens) in F order, whose transpose is the
    C-contiguous (tokens, m) result handed to torch without a copy.
    """
    if type(op) is LowRankMatrix:
        # numpy's matmul here would run OpenBLAS's pool next to torch's OpenMP
        # pool (oversubscription); torch's own GEMM on zero-copy views is faster.
        U, V = torch.from_numpy(op.U), torch.from_numpy(op.V)
        x = x2d.detach()
        return (x @ U) @ V.T if transpose else (x @ V) @ U.T
    X = x2d.detach().contiguous().numpy().T
    m = op.shape[1] if transpose else op.shape[0]
    if X.shape[1] == 0:
        return x2d.new_zeros(0, m)
    Y = op.T.matmat(X) if transpose else op.matmat(X)
    return torch.from_numpy(Y.T)


class _OperatorProduct(torch.autograd.Function):
    """y = x W^T with W an hsslin operator; backward gives dL/dx = dL/dy W (the C++ transpose)."""

    @staticmethod
    def forward(ctx, x2d, op):
        ctx.op = op
        return operator_product(op, x2d)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.needs_input_grad[0]:
            return None, None
        g = grad.to(NP_TO_TORCH[ctx.op.dtype])
        return operator_product(ctx.op, g, transpose=True).to(grad.dtype), None


# -- the layer ----------------------------------------------------------------------
class HSSLinear(nn.Module):
    """A linear layer whose weight is an hsslin operator (``y = W x + b``).

    Parameters
    ----------
    linear : nn.Linear or GPT-2 Conv1D
        The layer replaced; its bias is copied (kept as a Parameter), its
        weight is not kept.
    operator : hsslin operator
        Approximates the out x in weight (for Conv1D, the transpose of its
        stored weight), e.g. from :func:`hsslin.compress`.
    trainable : bool
        False (default): inference on the CPU through the C++ kernels.
        True: the factors (dense leaves, low-rank factors, sparse values on a
        fixed pattern) become ``nn.Parameter`` s applied with torch ops, so
        ``loss.backward()`` and ``torch.optim`` fine-tune them. HSS-based
        operators (nested bases) have no trainable form: ValueError.

    Notes
    -----
    Inputs may have any leading dimensions and dtype float32, bfloat16,
    float16 (computed in float32) or float64 (computed in float64; a float32
    operator is cast to float64 once and cached). The output has the
    input's dtype. Inputs on another device are moved to the CPU for the
    kernel and back (the trainable form runs on any device).

    Examples
    --------
    >>> import torch, hsslin, hsslin.torch as ht
    >>> lin = torch.nn.Linear(128, 64)
    >>> W = lin.weight.detach().numpy()
    >>> op = hsslin.compress(W, "svd", budget_bytes=W.nbytes // 2)
    >>> layer = ht.HSSLinear(lin, op)
    >>> layer(torch.randn(3, 128)).shape
    torch.Size([3, 64])
    >>> layer.nbytes <= W.nbytes // 2
    True
    """

    def __init__(self, linear, operator, trainable: bool = False):
        super().__init__()
        if not is_replaceable(linear):
            raise TypeError(f"linear must be nn.Linear or GPT-2 Conv1D, got {type(linear).__name__}")
        W = weight_matrix(linear)
        out_features, in_features = W.shape
        if tuple(operator.shape) != (out_features, in_features):
            raise ValueError(
                f"operator has shape {tuple(operator.shape)}, expected "
                f"{(out_features, in_features)} (out x in of the layer's weight)"
            )
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight_dtype = W.dtype
        self.source = "Conv1D" if is_conv1d(linear) else "Linear"
        bias = getattr(linear, "bias", None)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.method = None  # set by compress_model / load_compressed
        self.params: dict = {}
        self.operator = None
        self.factors = None
        self._cast_cache: dict = {}
        if trainable:
            self.factors = factors_of(operator)
        else:
            self.operator = operator

    @classmethod
    def from_linear(
        cls,
        linear,
        method: str = _defaults.METHOD,
        budget_bytes: int | None = None,
        trainable: bool = False,
        **params,
    ) -> HSSLinear:
        """Compresses `linear`'s weight with :func:`hsslin.compress` and wraps it."""
        op = compress(weight_numpy(linear), method, budget_bytes=budget_bytes, **params)
        layer = cls(linear, op, trainable=trainable)
        layer.method = method
        layer.params = describe_operator(op)
        return layer

    # -- state ---------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self.factors is not None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    def get_operator(self):
        """The hsslin operator (built from the current factors when trainable)."""
        if self.factors is not None:
            return self.factors.to_operator()
        return self.operator

    @property
    def nbytes(self) -> int:
        """Bytes the operator stores (the bias is not counted)."""
        return int(self.get_operator().nbytes)

    def to_inference(self) -> HSSLinear:
        """Rebuilds the C++ operator from the (trained) factors; returns self."""
        if self.factors is not None:
            self.operator = self.factors.to_operator()
            self.factors = None
            self._cast_cache = {}
        return self

    def to_trainable(self) -> HSSLinear:
        """Turns the operator's factors into Parameters (see `trainable`); returns self."""
        if self.factors is None:
            self.factors = factors_of(self.operator)
            self.operator = None
            self._cast_cache = {}
        return self

    def extra_repr(self) -> str:
        mode = "trainable" if self.trainable else "inference"
        kind = type(self.factors).__name__ if self.trainable else operator_kind(self.operator)
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, operator={kind}, method={self.method}, {mode}"
        )

    # -- forward -------------------------------------------------------------------
    def _operator_for(self, dtype: np.dtype):
        op = self.operator
        if op.dtype == dtype or (op.dtype == np.float64 and dtype == np.float32):
            return op
        if dtype not in self._cast_cache:
            cast = cast_operator(op, dtype)
            self._cast_cache[dtype] = op if cast is None else cast
        return self._cast_cache[dtype]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(
                f"HSSLinear expects a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}"
            )
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"input has shape {tuple(x.shape)}, expected (..., {self.in_features})")
        lead = x.shape[:-1]
        compute = torch.float64 if x.dtype == torch.float64 else torch.float32
        x2d = x.reshape(-1, self.in_features).to(compute)
        if self.factors is not None:
            y = self.factors(x2d)
            if self.bias is not None:
                y = y + self.bias.to(compute)
        else:
            y = self._inference(x2d, compute)
        return y.reshape(*lead, self.out_features).to(x.dtype)

    def _inference(self, x2d, compute):
        op = self._operator_for(np.dtype(TORCH_TO_NP[compute]))
        device = x2d.device
        xin = x2d.to(device="cpu", dtype=NP_TO_TORCH[op.dtype])
        bias = self.bias
        need_grad = torch.is_grad_enabled() and (
            x2d.requires_grad or (bias is not None and bias.requires_grad)
        )
        if need_grad:
            y = _OperatorProduct.apply(xin, op).to(device=device, dtype=compute)
            return y if bias is None else y + bias.to(compute)
        y = operator_product(op, xin).to(device=device, dtype=compute)
        if bias is not None:
            y.add_(bias.detach().to(device=device, dtype=compute))
        return y


def compressed_layers(model: nn.Module) -> list[tuple[str, HSSLinear]]:
    """(name, layer) of every HSSLinear in `model`."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, HSSLinear)]
