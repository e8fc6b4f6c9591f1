"""Torch adapter: compressed linear layers for transformers, on the CPU.

``import hsslin`` never imports torch; ``import hsslin.torch`` does. The
module replaces the attention projections (Q, K, V) of a Hugging Face model
by :class:`HSSLinear` layers that hold an hsslin operator (``W ~= S +
P^T H P`` and the other forms of :func:`hsslin.compress`) and apply it with
the C++ kernels, saves and loads the result, and fine-tunes the factors with
any ``torch.optim`` optimizer.

Examples
--------
>>> import torch, hsslin.torch as ht
>>> lin = torch.nn.Linear(96, 64)
>>> layer = ht.HSSLinear.from_linear(lin, "hodlr", tol=1e-7, leaf_size=32)
>>> x = torch.randn(2, 5, 96)
>>> bool(torch.allclose(layer(x), lin(x), atol=1e-5))
True
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch as _torch
from torch import nn

from ._torch_eval import (
    CALIBRATION_SENTENCES,
    SAMPLE_SENTENCES,
    EmbeddingFidelity,
    Perplexity,
    calibration_batches,
    embedding_fidelity,
    minilm_path,
    perplexity,
    sentence_embeddings,
)

__all__ = [
    "HSSLinear",
    "CompressionReport",
    "LayerReport",
    "compress_model",
    "save_compressed",
    "load_compressed",
    "read_manifest",
    "compressed_layers",
    "find_targets",
    "QKV_NAMES",
    "perplexity",
    "embedding_fidelity",
    "sentence_embeddings",
    "minilm_path",
    "SAMPLE_SENTENCES",
    "CALIBRATION_SENTENCES",
    "calibration_batches",
    "input_grams",
    "Perplexity",
    "EmbeddingFidelity",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FACTORS_FILE = "factors.safetensors"
_FORMAT_NAME = "hsslin-torch"

#: Last name components of attention projections recognised by ``targets="qkv"``:
#: LLaMA/Mistral/Qwen (``q_proj``...), BERT (``query``...), GPT-2 (fused ``c_attn``).
QKV_NAMES = ("q_proj", "k_proj", "v_proj", "query", "key", "value", "c_attn")

_NP_TO_TORCH = {np.dtype(np.float32): _torch.float32, np.dtype(np.float64): _torch.float64}
_TORCH_TO_NP = {v: k for k, v in _NP_TO_TORCH.items()}


# -- weights of the layers we replace ------------------------------------------------
def _is_conv1d(module) -> bool:
    """GPT-2's ``Conv1D`` (weight stored in x out); matched by name to keep transformers optional."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def _is_replaceable(module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _weight_matrix(module) -> _torch.Tensor:
    """The layer's weight as the out x in matrix that ``y = W x + b`` applies."""
    if isinstance(module, nn.Linear):
        return module.weight.detach()
    if _is_conv1d(module):
        return module.weight.detach().T
    raise TypeError(f"expected nn.Linear or GPT-2 Conv1D, got {type(module).__name__}")


def _weight_numpy(module) -> np.ndarray:
    """The weight as a C-contiguous float32/float64 numpy array (bf16/fp16 become float32)."""
    W = _weight_matrix(module).cpu()
    if W.dtype not in _TORCH_TO_NP:
        W = W.float()
    return np.ascontiguousarray(W.numpy())


def _kind_of(op) -> str:
    return type(op).__name__


# -- trainable factors (torch ops, autograd) -----------------------------------------
class _LowRankFactors(nn.Module):
    """``W = U V^T``; y = (x V) U^T."""

    def __init__(self, U: np.ndarray, V: np.ndarray):
        super().__init__()
        self.U = nn.Parameter(_torch.from_numpy(np.array(U)))
        self.V = nn.Parameter(_torch.from_numpy(np.array(V)))

    @property
    def shape(self):
        return (self.U.shape[0], self.V.shape[0])

    def forward(self, x):
        return (x @ self.V.to(x.dtype)) @ self.U.to(x.dtype).T

    def to_operator(self):
        from ._lowrank import LowRankMatrix

        return LowRankMatrix(_np(self.U), _np(self.V))


class _CSRFactors(nn.Module):
    """Sparse values on a fixed CSR pattern; y[:, i] += v * x[:, j] via gather + index_add."""

    def __init__(self, S):
        super().__init__()
        self.shape = tuple(int(s) for s in S.shape)
        indptr = np.asarray(S.indptr)
        self.values = nn.Parameter(_torch.from_numpy(np.array(S.data)))
        self.register_buffer("indices", _torch.from_numpy(np.array(S.indices, dtype=np.int32)))
        self.register_buffer("indptr", _torch.from_numpy(np.array(indptr)))
        rows = np.repeat(np.arange(self.shape[0], dtype=np.int32), np.diff(indptr))
        self.register_buffer("rows", _torch.from_numpy(rows), persistent=False)

    def forward(self, x):
        y = x.new_zeros(x.shape[0], self.shape[0])
        contrib = x.index_select(1, self.indices) * self.values.to(x.dtype)
        return y.index_add(1, self.rows, contrib)

    def to_operator(self):
        return _make_csr(_np(self.values), self.indices.cpu().numpy(), self.indptr.cpu().numpy(), self.shape)


def _make_csr(data, indices, indptr, shape):
    from ._sparse import CSRMatrix

    return CSRMatrix(
        (np.ascontiguousarray(data), np.ascontiguousarray(indices, np.int32), np.ascontiguousarray(indptr)),
        shape=tuple(shape),
    )


class _HODLRFactors(nn.Module):
    """Dense leaves and per-block factors of a HODLR matrix, applied recursively over the tree.

    Node i (heap order) covers rows/cols ``tree_nodes(...)[i]``; an inner node's
    B12 maps the right child's columns to the left child's rows, B21 the reverse.
    """

    def __init__(self, H):
        from ._tree import tree_nodes

        super().__init__()
        self.shape = tuple(H.shape)
        self.levels = H.levels
        self.leaf_size = H.leaf_size
        self.rank_decay = float(H._impl.rank_decay)
        self.error = float(H.error_estimate)
        self.nodes = tree_nodes(self.shape[0], self.shape[1], self.levels)
        self.first_leaf = (1 << self.levels) - 1
        self.factors = nn.ParameterList()
        self.layout = []  # per node: ("D", k) or (block12, block21) with ("dense", k) / ("uv", k, k+1)
        for i, part in enumerate(H.parts()):
            if i >= self.first_leaf:
                self.layout.append(("D", self._add(part["D"])))
                continue
            blocks = []
            for key in ("B12", "B21"):
                b = part[key]
                if b["is_dense"]:
                    blocks.append(("dense", self._add(b["dense"])))
                else:
                    blocks.append(("uv", self._add(b["U"]), self._add(b["V"])))
            self.layout.append(tuple(blocks))

    def _add(self, arr) -> int:
        self.factors.append(nn.Parameter(_torch.from_numpy(np.array(arr))))
        return len(self.factors) - 1

    def _block(self, spec, x):
        if spec[0] == "dense":
            return x @ self.factors[spec[1]].to(x.dtype).T
        return (x @ self.factors[spec[2]].to(x.dtype)) @ self.factors[spec[1]].to(x.dtype).T

    def _apply_node(self, i, x):
        if i >= self.first_leaf:
            return x @ self.factors[self.layout[i][1]].to(x.dtype).T
        a, b = 2 * i + 1, 2 * i + 2
        split = self.nodes[a][3] - self.nodes[a][2]
        xa, xb = x[:, :split], x[:, split:]
        b12, b21 = self.layout[i]
        ya = self._apply_node(a, xa) + self._block(b12, xb)
        yb = self._apply_node(b, xb) + self._block(b21, xa)
        return _torch.cat([ya, yb], dim=1)

    def forward(self, x):
        return self._apply_node(0, x)

    def to_operator(self):
        from ._hierarchical import _HODLR, HODLRMatrix

        parts = []
        for i, spec in enumerate(self.layout):
            if i >= self.first_leaf:
                parts.append({"D": _np(self.factors[spec[1]])})
                continue
            node = {}
            for key, b in zip(("B12", "B21"), spec):
                if b[0] == "dense":
                    node[key] = {"is_dense": True, "dense": _np(self.factors[b[1]])}
                else:
                    node[key] = {
                        "is_dense": False,
                        "U": _np(self.factors[b[1]]),
                        "V": _np(self.factors[b[2]]),
                    }
            parts.append(node)
        dtype = np.dtype(_TORCH_TO_NP[self.factors[0].dtype])
        impl = _HODLR[dtype].from_parts(
            self.shape[0], self.shape[1], self.levels, parts, self.rank_decay, self.leaf_size, self.error
        )
        return HODLRMatrix(impl)


class _SumFactors(nn.Module):
    """``S + U V^T`` (SparsePlusLowRank)."""

    def __init__(self, op):
        super().__init__()
        self.S = _factors_of(op.S)
        self.L = _factors_of(op.L)

    def forward(self, x):
        return self.S(x) + self.L(x)

    def to_operator(self):
        from ._lowrank import SparsePlusLowRank

        return SparsePlusLowRank(self.S.to_operator(), self.L.to_operator())


class _SparsePlusHierFactors(nn.Module):
    """``S + P_r^T H P_c``: y = S x; y[row_perm] += H x[col_perm]."""

    def __init__(self, op):
        super().__init__()
        self.S = _factors_of(op.S)
        self.H = _factors_of(op.H)
        self.meta = dict(op.meta)
        self.permuted = op.row_perm is not None
        if self.permuted:
            self.register_buffer("row_perm", _torch.from_numpy(np.array(op.row_perm)))
            self.register_buffer("col_perm", _torch.from_numpy(np.array(op.col_perm)))

    def forward(self, x):
        y = self.S(x)
        if not self.permuted:
            return y + self.H(x)
        z = self.H(x.index_select(1, self.col_perm))
        return y.index_add(1, self.row_perm, z)

    def to_operator(self):
        from ._sparse_plus import SparsePlusHSS

        rp = self.row_perm.cpu().numpy() if self.permuted else None
        cp = self.col_perm.cpu().numpy() if self.permuted else None
        return SparsePlusHSS(self.S.to_operator(), self.H.to_operator(), rp, cp, self.meta)


def _np(p: _torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(p.detach().cpu().numpy())


def _factors_of(op) -> nn.Module:
    kind = _kind_of(op)
    if kind == "LowRankMatrix":
        return _LowRankFactors(op.U, op.V)
    if kind == "CSRMatrix":
        return _CSRFactors(op)
    if kind == "HODLRMatrix":
        return _HODLRFactors(op)
    if kind == "SparsePlusLowRank":
        return _SumFactors(op)
    if kind == "SparsePlusHSS":
        if _kind_of(op.H) == "HSSMatrix":
            raise ValueError(
                "SparsePlusHSS with an HSS part (method 'sparse+hss+rcm') has no "
                "trainable form (nested bases); use method 'sparse+hodlr+rcm'"
            )
        return _SparsePlusHierFactors(op)
    if kind == "HSSMatrix":
        raise ValueError(
            "HSSMatrix (method 'hss') has no trainable form (nested bases); use "
            "method 'hodlr', 'sparse+hodlr' or 'sparse+hodlr+rcm'"
        )
    raise TypeError(f"no trainable form for operator {kind}")


def _cast_operator(op, dtype: np.dtype):
    """The same operator in another float dtype (via its factors); None when impossible."""
    try:
        factors = _factors_of(op)
    except (ValueError, TypeError):
        return None
    return factors.to(_NP_TO_TORCH[np.dtype(dtype)]).to_operator()


# -- the C++ product with autograd for the input ----------------------------------------
def _operator_product(op, x2d: _torch.Tensor, transpose: bool = False) -> _torch.Tensor:
    """``(op @ x2d.T).T`` through the C++ kernel without copies.

    x2d (tokens, n) C-contiguous -> its numpy transpose is an F-ordered (n, tokens)
    view; the kernel writes (m, tokens) in F order, whose transpose is the
    C-contiguous (tokens, m) result handed to torch without a copy.
    """
    if type(op).__name__ == "LowRankMatrix":
        # numpy's matmul here would run OpenBLAS's pool next to torch's OpenMP
        # pool (oversubscription); torch's own GEMM on zero-copy views is faster.
        U, V = _torch.from_numpy(op.U), _torch.from_numpy(op.V)
        x = x2d.detach()
        return (x @ U) @ V.T if transpose else (x @ V) @ U.T
    X = x2d.detach().contiguous().numpy().T
    m = op.shape[1] if transpose else op.shape[0]
    if X.shape[1] == 0:
        return x2d.new_zeros(0, m)
    Y = op._apply(X, transpose)
    return _torch.from_numpy(Y.T)


class _OperatorProduct(_torch.autograd.Function):
    """y = x W^T with W an hsslin operator; backward gives dL/dx = dL/dy W (the C++ transpose)."""

    @staticmethod
    def forward(ctx, x2d, op):
        ctx.op = op
        return _operator_product(op, x2d)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.needs_input_grad[0]:
            return None, None
        g = grad.to(_NP_TO_TORCH[ctx.op.dtype])
        return _operator_product(ctx.op, g, transpose=True).to(grad.dtype), None


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
        if not _is_replaceable(linear):
            raise TypeError(f"linear must be nn.Linear or GPT-2 Conv1D, got {type(linear).__name__}")
        W = _weight_matrix(linear)
        out_features, in_features = W.shape
        if tuple(operator.shape) != (out_features, in_features):
            raise ValueError(
                f"operator has shape {tuple(operator.shape)}, expected "
                f"{(out_features, in_features)} (out x in of the layer's weight)"
            )
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight_dtype = W.dtype
        self.source = "Conv1D" if _is_conv1d(linear) else "Linear"
        bias = getattr(linear, "bias", None)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.method = None  # set by compress_model / load_compressed
        self.params: dict = {}
        self.operator = None
        self.factors = None
        self._cast_cache: dict = {}
        if trainable:
            self.factors = _factors_of(operator)
        else:
            self.operator = operator

    @classmethod
    def from_linear(
        cls,
        linear,
        method: str = "sparse+hodlr+rcm",
        budget_bytes: int | None = None,
        trainable: bool = False,
        **params,
    ) -> HSSLinear:
        """Compresses `linear`'s weight with :func:`hsslin.compress` and wraps it."""
        from ._compress import compress

        op = compress(_weight_numpy(linear), method, budget_bytes=budget_bytes, **params)
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
            self.factors = _factors_of(self.operator)
            self.operator = None
            self._cast_cache = {}
        return self

    def extra_repr(self) -> str:
        mode = "trainable" if self.trainable else "inference"
        kind = type(self.factors).__name__ if self.trainable else _kind_of(self.operator)
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
            cast = _cast_operator(op, dtype)
            self._cast_cache[dtype] = op if cast is None else cast
        return self._cast_cache[dtype]

    def forward(self, x: _torch.Tensor) -> _torch.Tensor:
        if not isinstance(x, _torch.Tensor) or not x.is_floating_point():
            raise TypeError(
                f"HSSLinear expects a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}"
            )
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"input has shape {tuple(x.shape)}, expected (..., {self.in_features})")
        lead = x.shape[:-1]
        compute = _torch.float64 if x.dtype == _torch.float64 else _torch.float32
        x2d = x.reshape(-1, self.in_features).to(compute)
        if self.factors is not None:
            y = self.factors(x2d)
            if self.bias is not None:
                y = y + self.bias.to(compute)
        else:
            y = self._inference(x2d, compute)
        return y.reshape(*lead, self.out_features).to(x.dtype)

    def _inference(self, x2d, compute):
        op = self._operator_for(np.dtype(_TORCH_TO_NP[compute]))
        device = x2d.device
        xin = x2d.to(device="cpu", dtype=_NP_TO_TORCH[op.dtype])
        bias = self.bias
        need_grad = _torch.is_grad_enabled() and (
            x2d.requires_grad or (bias is not None and bias.requires_grad)
        )
        if need_grad:
            y = _OperatorProduct.apply(xin, op).to(device=device, dtype=compute)
            return y if bias is None else y + bias.to(compute)
        y = _operator_product(op, xin).to(device=device, dtype=compute)
        if bias is not None:
            y.add_(bias.detach().to(device=device, dtype=compute))
        return y


def describe_operator(op) -> dict:
    """The parameters an operator ended up with (for reports and manifests)."""
    kind = _kind_of(op)
    m, n = op.shape
    d: dict = {"operator": kind}
    if kind == "LowRankMatrix":
        d["rank"] = int(op.rank)
    elif kind == "CSRMatrix":
        d["nnz"] = int(len(op.data))
        d["sparsity"] = round(len(op.data) / (m * n), 4)
    elif kind == "HODLRMatrix":
        ranks = [int(r.max()) for r in op.ranks if len(r)]
        d["rank"] = ranks[0] if ranks else 0
        d["levels"] = int(op.levels)
        d["leaf_size"] = int(op.leaf_size)
    elif kind == "HSSMatrix":
        d["tol"] = op.tol
        d["levels"] = int(op.levels)
        d["dense"] = op.is_dense
    elif kind in ("SparsePlusLowRank", "SparsePlusHSS"):
        sub = op.L if kind == "SparsePlusLowRank" else op.H
        d.update({"S_" + k: v for k, v in describe_operator(op.S).items() if k != "operator"})
        d.update(
            {
                ("L_" if kind == "SparsePlusLowRank" else "H_") + k: v
                for k, v in describe_operator(sub).items()
            }
        )
        if kind == "SparsePlusHSS":
            d["rcm"] = op.row_perm is not None
    return d


# -- choosing targets -----------------------------------------------------------------
def _matches(pattern: str, name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(last, pattern):
        return True
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def find_targets(model: nn.Module, targets="qkv") -> list[str]:
    """Names of the nn.Linear / Conv1D modules that `targets` selects.

    `targets` is ``"qkv"`` (the attention projections named in
    :data:`QKV_NAMES`), or a pattern or list of patterns, each a glob
    (``"*.attention.self.query"``, matched against the full name or its last
    component) or a regular expression matched against the full name.
    Raises ValueError naming a pattern that selects nothing.
    """
    linear = [name for name, mod in model.named_modules() if _is_replaceable(mod)]
    if isinstance(targets, str) and targets == "qkv":
        found = [n for n in linear if n.rsplit(".", 1)[-1] in QKV_NAMES]
        if not found:
            raise ValueError(
                f"model {type(model).__name__} has no attention projections named "
                f"{', '.join(QKV_NAMES)}; pass targets=[patterns] (its linear "
                f"layers include: {', '.join(linear[:6]) or 'none'})"
            )
        return found
    patterns = [targets] if isinstance(targets, str) else list(targets)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(f"targets must be 'qkv' or non-empty patterns, got {targets!r}")
    found = []
    for p in patterns:
        hits = [n for n in linear if _matches(p, n)]
        if not hits:
            raise ValueError(
                f"target pattern {p!r} matches no nn.Linear/Conv1D module of "
                f"{type(model).__name__} (its linear layers include: "
                f"{', '.join(linear[:6]) or 'none'})"
            )
        found.extend(h for h in hits if h not in found)
    return [n for n in linear if n in found]


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def compressed_layers(model: nn.Module) -> list[tuple[str, HSSLinear]]:
    """(name, layer) of every HSSLinear in `model`."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, HSSLinear)]


# -- calibration (activation-aware compression) ---------------------------------------
@_torch.no_grad()
def input_grams(model: nn.Module, names, calibration) -> dict:
    """``X^T X`` (float64, in x in) of the inputs each named layer sees over `calibration`.

    Parameters
    ----------
    model : nn.Module
    names : list of str
        Modules (nn.Linear / Conv1D) whose inputs are recorded.
    calibration : iterable
        Batches the model is run on: each a dict of keyword arguments (a
        tokenizer's output, see :func:`calibration_batches`) or a tensor of
        input ids. Where a batch has an ``attention_mask`` of shape (B, T)
        and a layer's input is (B, T, in), padded positions are left out.

    Returns
    -------
    dict name -> numpy array (in x in); also the token count under ``"__tokens__"``.
    """
    names = list(names)
    grams, hooks, state = {}, [], {"mask": None, "tokens": 0}
    for name in names:
        module = model.get_submodule(name)
        n = _weight_matrix(module).shape[1]
        grams[name] = _torch.zeros(n, n, dtype=_torch.float64)

        def record(mod, inputs, name=name):
            x = inputs[0]
            mask = state["mask"]
            if mask is not None and x.dim() == 3 and tuple(mask.shape) == tuple(x.shape[:2]):
                x = x[mask.to(_torch.bool)]
            x = x.reshape(-1, x.shape[-1]).to(_torch.float64).cpu()
            grams[name] += x.T @ x
            if name == names[0]:
                state["tokens"] += x.shape[0]  # rows recorded, padding left out

        hooks.append(module.register_forward_pre_hook(record))
    was_training = model.training
    model.eval()
    try:
        batches = 0
        for batch in calibration:
            batches += 1
            if isinstance(batch, _torch.Tensor):
                state["mask"] = None
                model(batch)
            elif isinstance(batch, dict):
                state["mask"] = batch.get("attention_mask")
                model(**batch)
            else:
                raise TypeError(
                    f"calibration batches must be dicts of model inputs or tensors of input ids, "
                    f"got {type(batch).__name__}"
                )
        if batches == 0:
            raise ValueError("calibration is empty: pass at least one batch")
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out = {k: v.numpy() for k, v in grams.items()}
    out["__tokens__"] = state["tokens"]
    return out


def _global_svd_ranks(weights: dict, grams: dict, budget: float) -> dict:
    """Ranks per layer for method 'svd' under one budget for all layers together.

    Each layer starts at rank 1; then singular values are taken across layers
    in order of (relative output energy s_k^2 / sum s^2) per byte, while the
    total fits ``floor(budget * dense bytes of all layers)``. This spends the
    bytes where they remove the most relative output error (plain weight
    error when there is no calibration).
    """
    from ._lowrank import LowRankMatrix, whitened_spectrum

    total_dense = sum(W.size * W.dtype.itemsize for W in weights.values())
    cap = math.floor(budget * total_dense)
    ranks, candidates, spent = {}, [], 0
    for name, W in weights.items():
        m, n = W.shape
        G = grams.get(name)
        if G is None:
            s = np.linalg.svd(W.astype(np.float64), compute_uv=False)
        else:
            s = whitened_spectrum(W, G)
        energy = float((s**2).sum()) or 1.0
        per_rank = (m + n) * W.dtype.itemsize
        ranks[name] = 1
        spent += LowRankMatrix.bytes_for(m, n, 1, W.dtype.itemsize)
        candidates += [(float(s[k] ** 2) / energy / per_rank, name, per_rank) for k in range(1, len(s))]
    if spent > cap:
        raise ValueError(
            f"budget={budget} is too small for method 'svd': rank 1 in every layer needs {spent:,} "
            f"bytes, the budget allows {cap:,}"
        )
    for _, name, cost in sorted(candidates, key=lambda c: -c[0]):
        if spent + cost <= cap:
            ranks[name] += 1
            spent += cost
    return ranks


# -- the report -----------------------------------------------------------------------
@dataclasses.dataclass
class LayerReport:
    """One compressed layer: bytes are the weight's (bias excluded on both sides)."""

    name: str
    shape: tuple
    method: str
    params: dict
    bytes_before: int
    bytes_after: int
    relative_error: float
    seconds: float

    @property
    def ratio(self) -> float:
        return self.bytes_after / self.bytes_before


@dataclasses.dataclass
class CompressionReport:
    """What :func:`compress_model` did: per-layer rows and totals.

    ``targets_bytes_*`` count the replaced weights (dense, in their own
    dtype) and the operators that replace them (every stored byte: values,
    indices, row pointers, permutations, tree metadata); biases are kept
    unchanged and counted on neither side. ``model_bytes_*`` count every
    parameter of the model (biases included) before and after.
    """

    layers: list
    model_bytes_before: int
    model_bytes_after: int
    budget: float | None = None

    @property
    def targets_bytes_before(self) -> int:
        return sum(r.bytes_before for r in self.layers)

    @property
    def targets_bytes_after(self) -> int:
        return sum(r.bytes_after for r in self.layers)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.layers)

    def to_dict(self) -> dict:
        return {
            "layers": [dict(dataclasses.asdict(r), shape=list(r.shape)) for r in self.layers],
            "targets_bytes_before": self.targets_bytes_before,
            "targets_bytes_after": self.targets_bytes_after,
            "model_bytes_before": self.model_bytes_before,
            "model_bytes_after": self.model_bytes_after,
            "budget": self.budget,
            "seconds": self.seconds,
        }

    def __str__(self) -> str:
        width = max([len(r.name) for r in self.layers] + [5])
        head = (
            f"{'layer':<{width}}  {'shape':>11}  {'method':<16}  {'bytes before':>12}  "
            f"{'bytes after':>11}  {'ratio':>6}  {'rel.err':>8}  {'sec':>6}  params"
        )
        lines = [head, "-" * len(head)]
        for r in self.layers:
            params = ", ".join(f"{k}={v}" for k, v in r.params.items() if k != "operator")
            lines.append(
                f"{r.name:<{width}}  {r.shape[0]:>5}x{r.shape[1]:<5}  {r.method:<16}  "
                f"{r.bytes_before:>12,}  {r.bytes_after:>11,}  {r.ratio:>6.1%}  "
                f"{r.relative_error:>8.2e}  {r.seconds:>6.2f}  {params}"
            )
        tb, ta = self.targets_bytes_before, self.targets_bytes_after
        mb, ma = self.model_bytes_before, self.model_bytes_after
        lines.append("-" * len(head))
        lines.append(
            f"targeted weights ({len(self.layers)} layers, biases not counted): "
            f"{tb:,} -> {ta:,} bytes ({ta / max(tb, 1):.1%})"
        )
        lines.append(
            f"whole model (all parameters): {mb:,} -> {ma:,} bytes "
            f"({ma / max(mb, 1):.1%}); compression took {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def _param_bytes(model: nn.Module) -> int:
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    total += sum(m.nbytes for _, m in compressed_layers(model) if not m.trainable)
    return int(total)


class _Progress:
    """tqdm when installed, else one rewritten stderr line; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        self.enabled, self.total, self.done = enabled, total, 0
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="hsslin compress", unit="layer")
            except ImportError:
                pass

    def step(self, name: str):
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=False)
            self.bar.update(1)
        elif self.enabled:
            sys.stderr.write(f"\rhsslin compress {self.done}/{self.total} {name[-40:]:<40}")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


_DEFAULT_BUDGET = 0.5
_EXPLICIT = ("sparsity", "rank", "tol")


def compress_model(
    model: nn.Module,
    targets="qkv",
    method: str = "sparse+hodlr+rcm",
    budget: float | None = None,
    progress: bool = True,
    trainable: bool = False,
    calibration=None,
    allocation: str = "uniform",
    **params,
) -> CompressionReport:
    """Replaces the selected linear layers of `model` by :class:`HSSLinear`, in place.

    Parameters
    ----------
    model : nn.Module
    targets : "qkv", str or list of str
        See :func:`find_targets`. ``"qkv"`` recognises LLaMA/Mistral/Qwen
        (q_proj, k_proj, v_proj; grouped-query K/V are rectangular), BERT
        (query, key, value) and GPT-2 (c_attn, the fused QKV Conv1D).
    method : str
        A method of :func:`hsslin.compress`.
    budget : float in (0, 1], optional
        Each target's operator stores at most ``floor(budget * weight bytes)``
        bytes (the dense weight in its own dtype; every stored byte counted),
        so the targets together store at most `budget` of their dense bytes.
        Default 0.5 unless explicit parameters (`sparsity`, `rank`, `tol`)
        are given, which replace the budget.
    progress : bool
        A progress bar over layers (tqdm if installed) on stderr.
    trainable : bool
        Make the new layers trainable (see :class:`HSSLinear`).
    calibration : iterable of batches, optional
        Method ``"svd"`` only: run the model on these batches (see
        :func:`calibration_batches`), record each target's input Gram matrix
        ``X^T X`` and compress activation-aware, minimising the layer's output
        error ``||(W - A) X^T||_F`` rather than its weight error.
    allocation : "uniform" or "global"
        ``"uniform"``: every target gets `budget` of its own bytes.
        ``"global"`` (method ``"svd"`` with a budget): the targets together
        get `budget` of their bytes, and ranks go where they remove the most
        relative (output, with `calibration`) error; single layers may then
        exceed `budget`.
    **params
        Passed to :func:`hsslin.compress` (`leaf_size`, `rank_decay`, `seed`,
        and with no budget `sparsity`, `rank`, `tol`).

    Returns
    -------
    CompressionReport

    Examples
    --------
    >>> import torch, hsslin.torch as ht
    >>> model = torch.nn.Sequential()
    >>> model.add_module("query", torch.nn.Linear(64, 64))
    >>> model.add_module("key", torch.nn.Linear(64, 64))
    >>> report = ht.compress_model(model, method="svd", progress=False)
    >>> report.targets_bytes_after <= report.targets_bytes_before // 2
    True
    >>> type(model.query).__name__
    'HSSLinear'
    """
    from ._compress import METHODS, compress

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if budget is None and not any(k in params for k in _EXPLICIT):
        budget = _DEFAULT_BUDGET
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not (0.0 < budget <= 1.0):
            raise ValueError(f"budget must be a fraction in (0, 1], got {budget!r}")
        clash = [k for k in _EXPLICIT if k in params]
        if clash:
            raise ValueError(f"give either budget or explicit {', '.join(clash)}, not both")
    if allocation not in ("uniform", "global"):
        raise ValueError(f"allocation must be 'uniform' or 'global', got {allocation!r}")
    if (calibration is not None or allocation == "global") and method != "svd":
        raise ValueError(f"calibration and allocation='global' apply to method 'svd', not {method!r}")
    if allocation == "global" and budget is None:
        raise ValueError("allocation='global' shares a budget: pass budget, not explicit parameters")
    names = find_targets(model, targets)
    grams = input_grams(model, names, calibration) if calibration is not None else {}
    ranks = None
    if allocation == "global":
        ranks = _global_svd_ranks({n: _weight_numpy(model.get_submodule(n)) for n in names}, grams, budget)
    before = _param_bytes(model)
    rows, replacements = [], []  # the model changes only once every layer compressed
    bar = _Progress(len(names), progress)
    try:
        for name in names:
            module = model.get_submodule(name)
            W = _weight_numpy(module)
            dense_bytes = _weight_matrix(module).numel() * _weight_matrix(module).element_size()
            budget_bytes = None if budget is None else int(math.floor(budget * dense_bytes))
            layer_params = dict(params)
            if name in grams:
                layer_params["input_gram"] = grams[name]
            if ranks is not None:
                budget_bytes, layer_params["rank"] = None, ranks[name]
            t0 = time.perf_counter()
            try:
                op = compress(W, method, budget_bytes=budget_bytes, **layer_params)
            except ValueError as exc:
                raise ValueError(f"layer {name} ({W.shape[0]}x{W.shape[1]}): {exc}") from exc
            seconds = time.perf_counter() - t0
            layer = HSSLinear(module, op, trainable=trainable)
            layer.method = method
            layer.params = describe_operator(op)
            replacements.append((name, layer))
            rows.append(
                LayerReport(
                    name,
                    tuple(W.shape),
                    method,
                    layer.params,
                    int(dense_bytes),
                    int(op.nbytes),
                    float(op.relative_error(W)),
                    seconds,
                )
            )
            bar.step(name)
    finally:
        bar.close()
    for name, layer in replacements:
        _replace(model, name, layer)
    after = before - sum(r.bytes_before for r in rows) + sum(r.bytes_after for r in rows)
    return CompressionReport(rows, before, after, budget)


# -- save and load -----------------------------------------------------------------------
def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_compressed(model: nn.Module, directory) -> dict:
    """Writes every HSSLinear of `model` to `directory`: factors + ``manifest.json``.

    ``factors.safetensors`` holds, per layer, the operator's versioned,
    checksummed hsslin blob as a uint8 tensor (``<name>.operator``) and the
    bias (``<name>.bias``). The manifest records the format version, hsslin
    and torch versions, per layer the method, parameters, shape, dtypes and
    bytes, and the file's SHA-256. Returns the manifest; its
    ``factor_bytes_on_disk`` (blob bytes) sits next to ``factor_bytes``
    (operators' ``nbytes``, what the report counts).
    """
    from safetensors.torch import save_file

    from . import __version__

    layers = compressed_layers(model)
    if not layers:
        raise ValueError("model has no HSSLinear layers; run compress_model first")
    os.makedirs(directory, exist_ok=True)
    tensors, entries = {}, []
    for name, layer in layers:
        op = layer.get_operator()
        blob = op.to_bytes()
        tensors[f"{name}.operator"] = _torch.frombuffer(bytearray(blob), dtype=_torch.uint8)
        if layer.bias is not None:
            tensors[f"{name}.bias"] = layer.bias.detach().cpu().contiguous()
        entries.append(
            {
                "name": name,
                "source": layer.source,
                "shape": [layer.out_features, layer.in_features],
                "weight_dtype": str(layer.weight_dtype).replace("torch.", ""),
                "operator": _kind_of(op),
                "operator_dtype": str(op.dtype),
                "method": layer.method,
                "params": layer.params,
                "has_bias": layer.bias is not None,
                "nbytes": int(op.nbytes),
                "blob_bytes": len(blob),
            }
        )
    path = os.path.join(directory, FACTORS_FILE)
    save_file(tensors, path, metadata={"format": _FORMAT_NAME})
    methods = sorted({e["method"] or "?" for e in entries})
    manifest = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "hsslin_version": __version__,
        "torch_version": _torch.__version__,
        "method": methods[0] if len(methods) == 1 else methods,
        "modules": entries,
        "files": {FACTORS_FILE: {"sha256": _sha256(path), "bytes": os.path.getsize(path)}},
        "factor_bytes": sum(e["nbytes"] for e in entries),
        "factor_bytes_on_disk": sum(e["blob_bytes"] for e in entries),
    }
    tmp = os.path.join(directory, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, os.path.join(directory, MANIFEST))
    return manifest


def read_manifest(directory) -> dict:
    """Reads and checks ``manifest.json`` of a folder written by :func:`save_compressed`.

    Raises FileNotFoundError for a missing folder or manifest, ValueError
    for a corrupted manifest or an unsupported format version.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such folder")
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory} has no {MANIFEST}: not written by hsslin.torch.save_compressed")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is corrupted (not valid JSON: {exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT_NAME:
        raise ValueError(f"{path} is not an hsslin.torch manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or not (1 <= version <= FORMAT_VERSION):
        raise ValueError(
            f"{path} has format_version {version!r}; this hsslin reads version "
            f"{FORMAT_VERSION} (was it written by a newer hsslin?)"
        )
    modules = manifest.get("modules")
    if not isinstance(modules, list) or not all(
        isinstance(e, dict) and {"name", "shape", "source"} <= set(e) for e in modules
    ):
        raise ValueError(f"{path} is corrupted: bad 'modules' list")
    return manifest


def _resolve_name(model: nn.Module, name: str) -> str:
    """`name` in `model`, allowing for Hugging Face's base-model prefix.

    A folder saved from ``AutoModel`` (names ``layers.0...``) loads into the
    ``AutoModelForCausalLM`` of the same checkpoint (``model.layers.0...``)
    and the reverse.
    """
    prefix = getattr(model, "base_model_prefix", "") or ""
    candidates = [name]
    if prefix:
        candidates += [f"{prefix}.{name}", name[len(prefix) + 1 :] if name.startswith(prefix + ".") else None]
    for candidate in candidates:
        if candidate:
            try:
                model.get_submodule(candidate)
                return candidate
            except AttributeError:
                continue
    raise ValueError(
        f"model {type(model).__name__} has no module {name!r} (saved from another architecture?)"
    )


def load_compressed(model: nn.Module, directory, trainable: bool = False) -> nn.Module:
    """Restores the compressed layers saved by :func:`save_compressed` into `model`.

    `model` has the original (uncompressed) architecture, e.g. the same
    ``AutoModel.from_pretrained(folder)``; each saved layer replaces the
    module of the same name (which must be an nn.Linear/Conv1D of the same
    shape). Returns `model`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ._hierarchical import _from_bytes

    manifest = read_manifest(directory)
    path = os.path.join(os.fspath(directory), FACTORS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing")
    expected = manifest.get("files", {}).get(FACTORS_FILE, {}).get("sha256")
    if expected is not None and _sha256(path) != expected:
        raise ValueError(f"{path} is corrupted: its SHA-256 does not match the manifest")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is corrupted: {exc}") from exc
    for entry in manifest["modules"]:
        name = _resolve_name(model, entry["name"])
        module = model.get_submodule(name)
        if isinstance(module, HSSLinear):
            raise ValueError(f"module {name!r} is already compressed; load into the original model")
        if not _is_replaceable(module) or list(_weight_matrix(module).shape) != entry["shape"]:
            raise ValueError(
                f"module {name!r} is {type(module).__name__} of shape "
                f"{tuple(getattr(module, 'weight', _torch.empty(0)).shape)}, saved "
                f"layer is {entry['source']} {tuple(entry['shape'])} (out x in)"
            )
        key = f"{entry['name']}.operator"
        if key not in tensors:
            raise ValueError(f"{path} is corrupted: no tensor {key!r}")
        op = _from_bytes(tensors[key].numpy().tobytes())
        layer = HSSLinear(module, op, trainable=trainable)
        layer.method, layer.params = entry.get("method"), entry.get("params", {})
        if entry.get("has_bias") and layer.bias is not None:
            layer.bias.data.copy_(tensors[f"{entry['name']}.bias"])
        _replace(model, name, layer)
    return model
