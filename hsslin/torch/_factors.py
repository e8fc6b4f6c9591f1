"""Trainable forms of hsslin operators: their factors as ``nn.Parameter`` s, applied with torch ops.

Each form is built from an operator (``factors_of``), computes ``y = x W^T``
for x of shape (tokens, in) with autograd, and rebuilds the C++ operator
from its current values (``to_operator``). The forms are chosen by the
operator's type in :data:`TRAINABLE_FORMS`; a type listed in
:data:`NO_TRAINABLE_FORM` gets its reason as a ValueError.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import (
    CSRMatrix,
    HODLRMatrix,
    HSSMatrix,
    LowRankMatrix,
    QuantizedMatrix,
    SparsePlusHSS,
    SparsePlusLowRank,
)
from ._weights import NP_TO_TORCH, to_numpy


def _parameter(arr) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.array(arr)))


class _LowRankFactors(nn.Module):
    """``W = U V^T``; y = (x V) U^T."""

    def __init__(self, op: LowRankMatrix):
        super().__init__()
        self.U = _parameter(op.U)
        self.V = _parameter(op.V)

    def forward(self, x):
        return (x @ self.V.to(x.dtype)) @ self.U.to(x.dtype).T

    def to_operator(self) -> LowRankMatrix:
        return LowRankMatrix(to_numpy(self.U), to_numpy(self.V))


class _CSRFactors(nn.Module):
    """Sparse values on a fixed CSR pattern; y[:, i] += v * x[:, j] via gather + index_add."""

    def __init__(self, S: CSRMatrix):
        super().__init__()
        self.shape = tuple(int(s) for s in S.shape)
        indptr = np.asarray(S.indptr)
        self.values = _parameter(S.data)
        self.register_buffer("indices", torch.from_numpy(np.array(S.indices, dtype=np.int32)))
        self.register_buffer("indptr", torch.from_numpy(np.array(indptr)))
        rows = np.repeat(np.arange(self.shape[0], dtype=np.int32), np.diff(indptr))
        self.register_buffer("rows", torch.from_numpy(rows), persistent=False)

    def forward(self, x):
        y = x.new_zeros(x.shape[0], self.shape[0])
        contrib = x.index_select(1, self.indices) * self.values.to(x.dtype)
        return y.index_add(1, self.rows, contrib)

    def to_operator(self) -> CSRMatrix:
        arrays = (to_numpy(self.values), to_numpy(self.indices), to_numpy(self.indptr))
        return CSRMatrix(arrays, shape=self.shape)


def _left_columns(inner_part: dict) -> int:
    """Columns of an inner node's left child: B21 maps them to the right child's rows.

    Read from the stored factors, so the adapter needs no copy of the
    cluster tree's splitting rule.
    """
    b = inner_part["B21"]
    return int(b["dense"].shape[1] if b["is_dense"] else b["V"].shape[0])


class _HODLRFactors(nn.Module):
    """Dense leaves and per-block factors of a HODLR matrix, applied recursively over the tree.

    Nodes are in heap order (children of i: 2i+1, 2i+2), as
    :meth:`hsslin.HODLRMatrix.parts` lists them; an inner node's B12 maps
    the right child's columns to the left child's rows, B21 the reverse.
    """

    def __init__(self, H: HODLRMatrix):
        super().__init__()
        self.shape = tuple(H.shape)
        self.levels = H.levels
        self.leaf_size = H.leaf_size
        self.rank_decay = H.rank_decay
        self.error = H.error
        self.factors = nn.ParameterList()
        # per node: ("D", k) for a leaf; for an inner node (split, B12, B21) with
        # each block ("dense", k) or ("uv", k_U, k_V), k indexing self.factors
        self.layout: list = []
        for part in H.parts():
            if "D" in part:
                self.layout.append(("D", self._add(part["D"])))
                continue
            blocks = []
            for key in ("B12", "B21"):
                b = part[key]
                if b["is_dense"]:
                    blocks.append(("dense", self._add(b["dense"])))
                else:
                    blocks.append(("uv", self._add(b["U"]), self._add(b["V"])))
            self.layout.append((_left_columns(part), *blocks))

    def _add(self, arr) -> int:
        self.factors.append(_parameter(arr))
        return len(self.factors) - 1

    def _block(self, spec, x):
        if spec[0] == "dense":
            return x @ self.factors[spec[1]].to(x.dtype).T
        return (x @ self.factors[spec[2]].to(x.dtype)) @ self.factors[spec[1]].to(x.dtype).T

    def _apply_node(self, i, x):
        spec = self.layout[i]
        if spec[0] == "D":
            return x @ self.factors[spec[1]].to(x.dtype).T
        split, b12, b21 = spec
        xa, xb = x[:, :split], x[:, split:]
        ya = self._apply_node(2 * i + 1, xa) + self._block(b12, xb)
        yb = self._apply_node(2 * i + 2, xb) + self._block(b21, xa)
        return torch.cat([ya, yb], dim=1)

    def forward(self, x):
        return self._apply_node(0, x)

    def _block_part(self, spec) -> dict:
        if spec[0] == "dense":
            return {"is_dense": True, "dense": to_numpy(self.factors[spec[1]])}
        return {"is_dense": False, "U": to_numpy(self.factors[spec[1]]), "V": to_numpy(self.factors[spec[2]])}

    def to_operator(self) -> HODLRMatrix:
        parts = []
        for spec in self.layout:
            if spec[0] == "D":
                parts.append({"D": to_numpy(self.factors[spec[1]])})
            else:
                parts.append({"B12": self._block_part(spec[1]), "B21": self._block_part(spec[2])})
        return HODLRMatrix.from_parts(
            parts, self.shape, self.levels, self.leaf_size, self.rank_decay, self.error
        )


class _SparsePlusLowRankFactors(nn.Module):
    """``S + U V^T`` (SparsePlusLowRank)."""

    def __init__(self, op: SparsePlusLowRank):
        super().__init__()
        self.S = factors_of(op.S)
        self.L = factors_of(op.L)

    def forward(self, x):
        return self.S(x) + self.L(x)

    def to_operator(self) -> SparsePlusLowRank:
        return SparsePlusLowRank(self.S.to_operator(), self.L.to_operator())


class _SparsePlusHierarchicalFactors(nn.Module):
    """``S + P_r^T H P_c``: y = S x; y[row_perm] += H x[col_perm]."""

    def __init__(self, op: SparsePlusHSS):
        if isinstance(op.H, HSSMatrix):
            raise ValueError(
                "SparsePlusHSS with an HSS part (method 'sparse+hss+rcm') has no "
                "trainable form (nested bases); use method 'sparse+hodlr+rcm'"
            )
        super().__init__()
        self.S = factors_of(op.S)
        self.H = factors_of(op.H)
        self.meta = dict(op.meta)
        self.permuted = op.row_perm is not None
        if self.permuted:
            self.register_buffer("row_perm", torch.from_numpy(np.array(op.row_perm)))
            self.register_buffer("col_perm", torch.from_numpy(np.array(op.col_perm)))

    def forward(self, x):
        y = self.S(x)
        if not self.permuted:
            return y + self.H(x)
        z = self.H(x.index_select(1, self.col_perm))
        return y.index_add(1, self.row_perm, z)

    def to_operator(self) -> SparsePlusHSS:
        rp = to_numpy(self.row_perm) if self.permuted else None
        cp = to_numpy(self.col_perm) if self.permuted else None
        return SparsePlusHSS(self.S.to_operator(), self.H.to_operator(), rp, cp, self.meta)


#: Operator type -> its trainable form.
TRAINABLE_FORMS: dict = {
    LowRankMatrix: _LowRankFactors,
    CSRMatrix: _CSRFactors,
    HODLRMatrix: _HODLRFactors,
    SparsePlusLowRank: _SparsePlusLowRankFactors,
    SparsePlusHSS: _SparsePlusHierarchicalFactors,
}

#: Operator type -> why it has no trainable form.
NO_TRAINABLE_FORM: dict = {
    HSSMatrix: (
        "HSSMatrix (method 'hss') has no trainable form (nested bases); use "
        "method 'hodlr', 'sparse+hodlr' or 'sparse+hodlr+rcm'"
    ),
    QuantizedMatrix: (
        "QuantizedMatrix (methods 'rtn', 'float16', 'bfloat16') has no trainable form "
        "(its codes are rounded, not parameters); fine-tune before quantizing"
    ),
}


def factors_of(op) -> nn.Module:
    """The trainable form of `op`; ValueError or TypeError for an operator that has none."""
    form = TRAINABLE_FORMS.get(type(op))
    if form is not None:
        return form(op)
    reason = NO_TRAINABLE_FORM.get(type(op))
    if reason is not None:
        raise ValueError(reason)
    raise TypeError(f"no trainable form for operator {type(op).__name__}")


def cast_operator(op, dtype: np.dtype):
    """The same operator in another float dtype (via its factors); None when impossible."""
    try:
        factors = factors_of(op)
    except (ValueError, TypeError):
        return None
    return factors.to(NP_TO_TORCH[np.dtype(dtype)]).to_operator()
