"""What a compression did: the parameters each operator ended up with, per-layer rows, totals."""

from __future__ import annotations

import dataclasses

from .. import (
    CSRMatrix,
    HODLRMatrix,
    HSSMatrix,
    LowRankMatrix,
    QuantizedMatrix,
    SparsePlusHSS,
    SparsePlusLowRank,
)


def operator_kind(op) -> str:
    """The operator's class name, as manifests and reports record it."""
    return type(op).__name__


def _low_rank(op: LowRankMatrix) -> dict:
    return {"rank": int(op.rank)}


def _csr(op: CSRMatrix) -> dict:
    m, n = op.shape
    return {"nnz": int(op.nnz), "density": round(int(op.nnz) / (m * n), 4)}


def _hodlr(op: HODLRMatrix) -> dict:
    ranks = [int(r.max()) for r in op.ranks if len(r)]
    return {"rank": ranks[0] if ranks else 0, "levels": int(op.levels), "leaf_size": int(op.leaf_size)}


def _hss(op: HSSMatrix) -> dict:
    return {"tol": op.tol, "levels": int(op.levels), "dense": op.is_dense}


def _quantized(op: QuantizedMatrix) -> dict:
    return {"format": op.format, "group_size": op.group_size, "zero_point": op.zero_point}


def _parts(prefix: str, op) -> dict:
    return {prefix + k: v for k, v in describe_operator(op).items() if k != "operator"}


def _sparse_plus_low_rank(op: SparsePlusLowRank) -> dict:
    return {**_parts("S_", op.S), "L_operator": operator_kind(op.L), **_parts("L_", op.L)}


def _sparse_plus_hierarchical(op: SparsePlusHSS) -> dict:
    return {
        **_parts("S_", op.S),
        "H_operator": operator_kind(op.H),
        **_parts("H_", op.H),
        "rcm": op.row_perm is not None,
    }


#: Operator type -> the parameters worth reporting.
_DESCRIBERS = {
    LowRankMatrix: _low_rank,
    CSRMatrix: _csr,
    HODLRMatrix: _hodlr,
    HSSMatrix: _hss,
    QuantizedMatrix: _quantized,
    SparsePlusLowRank: _sparse_plus_low_rank,
    SparsePlusHSS: _sparse_plus_hierarchical,
}


def describe_operator(op) -> dict:
    """The parameters an operator ended up with (for reports and manifests).

    Examples
    --------
    >>> import numpy as np, hsslin, hsslin.torch as ht
    >>> ht.describe_operator(hsslin.compress(np.eye(8), "svd", rank=2))
    {'operator': 'LowRankMatrix', 'rank': 2}
    """
    describe = _DESCRIBERS.get(type(op))
    if describe is None:
        raise TypeError(f"describe_operator does not know operator type {type(op).__name__}")
    return {"operator": operator_kind(op), **describe(op)}


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
    heal: object = None  # the HealReport of compress_model(..., heal=...)

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
            f"{'bytes after':>11}  {'ratio':>6}  {'weight rel. err':>15}  {'sec':>6}  params"
        )
        lines = [head, "-" * len(head)]
        for r in self.layers:
            params = ", ".join(f"{k}={v}" for k, v in r.params.items() if k != "operator")
            lines.append(
                f"{r.name:<{width}}  {r.shape[0]:>5}x{r.shape[1]:<5}  {r.method:<16}  "
                f"{r.bytes_before:>12,}  {r.bytes_after:>11,}  {r.ratio:>6.1%}  "
                f"{r.relative_error:>15.2e}  {r.seconds:>6.2f}  {params}"
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
        lines.append(
            "weight rel. err = ||W - A||_F / ||W||_F of each layer's weight W and its replacement A "
            "(not the model's fidelity, which is measured on its outputs)"
        )
        return "\n".join(lines)
