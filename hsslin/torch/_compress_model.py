"""Model compression: replace a model's selected layers by :class:`HSSLinear`, in place."""

from __future__ import annotations

import math
import sys
import time

from torch import nn

from .. import METHODS, compress
from ._calibration import global_svd_ranks, input_grams
from ._layer import HSSLinear, compressed_layers
from ._report import CompressionReport, LayerReport, describe_operator
from ._targets import find_targets, replace_module
from ._weights import weight_bytes, weight_numpy


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
        ranks = global_svd_ranks({n: weight_numpy(model.get_submodule(n)) for n in names}, grams, budget)
    before = _param_bytes(model)
    rows, replacements = [], []  # the model changes only once every layer compressed
    bar = _Progress(len(names), progress)
    try:
        for name in names:
            module = model.get_submodule(name)
            W = weight_numpy(module)
            dense_bytes = weight_bytes(module)
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
                    dense_bytes,
                    int(op.nbytes),
                    float(op.relative_error(W)),
                    seconds,
                )
            )
            bar.step(name)
    finally:
        bar.close()
    for name, layer in replacements:
        replace_module(model, name, layer)
    after = before - sum(r.bytes_before for r in rows) + sum(r.bytes_after for r in rows)
    return CompressionReport(rows, before, after, budget)
