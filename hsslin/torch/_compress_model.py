"""Model compression: replace a model's selected layers by :class:`HSSLinear`, in place."""

from __future__ import annotations

import contextlib
import math
import sys
import time

from torch import nn

from .. import LowRankMatrix, _defaults, compress
from .._lowrank import projected_factors
from .._validation import check_density
from ._calibration import (
    _single_threaded_blas,
    calibration_batches,
    global_svd_ranks,
    input_grams,
    whitened_svds,
)
from ._cap import CAPOptions, cap_operators
from ._heal import _check as _check_heal
from ._heal import heal as heal_model
from ._heal import reference_outputs
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


# Parameters compress() takes and method 'svd' ignores: with only these, the
# calibrated svd fit uses the whitened SVD computed once per layer.
_SHARED_SVD_PARAMS = {"seed", "leaf_size", "rank_decay", "min_rank"}


def _shared_svd_rank(W, budget_bytes, ranks, name):
    """The rank compress(W, "svd", ...) would use for this layer, or None (then compress() runs)."""
    m, n = W.shape
    if ranks is not None:
        return min(ranks[name], min(m, n))
    if budget_bytes is None:
        return None
    r = (budget_bytes - LowRankMatrix.bytes_for(m, n, 0, W.dtype.itemsize)) // ((m + n) * W.dtype.itemsize)
    return min(r, min(m, n)) if r >= 1 else None  # None: compress() raises its too-small error


def _announce(progress: bool, message: str) -> None:
    if progress:
        sys.stderr.write(f"hsslin compress: {message}\n")
        sys.stderr.flush()


def compress_model(
    model: nn.Module,
    targets=_defaults.TARGETS,
    method: str = _defaults.METHOD,
    budget: float | None = None,
    progress: bool = True,
    trainable: bool = False,
    calibration=_defaults.AUTO,
    allocation: str = _defaults.AUTO,
    tokenizer=None,
    heal=None,
    **params,
) -> CompressionReport:
    """Replace the selected linear layers of `model` by :class:`HSSLinear`, in place.

    With no options it runs the best configuration measured (kept in
    ``hsslin._defaults``): method ``"svd"`` at half the targets' bytes,
    calibrated on hsslin's built-in sentences (pass `tokenizer`), ranks
    allocated across layers.

    Parameters
    ----------
    model : nn.Module
    targets : "qkv", str or list of str
        See :func:`find_targets`. ``"qkv"`` recognises LLaMA/Mistral/Qwen
        (q_proj, k_proj, v_proj; grouped-query K/V are rectangular), BERT
        (query, key, value) and GPT-2 (c_attn, the fused QKV Conv1D).
    method : str
        A method of :func:`hsslin.compress` (default ``"svd"``), or
        ``"cap"``: CAP (Zhou et al. 2025), robust PCA of every target, then
        REINFORCE over all targets' singular directions and sparse entries
        under the one budget (calibrated, global; see
        :mod:`hsslin.torch._cap` and docs/cap.md). Its settings come through
        `params`: ``rpca_iterations`` (3), ``lam``, ``policy_iterations``
        (3), ``baseline_window`` (5), ``learning_rate`` (0.05), ``cost``
        (``"bytes"`` or ``"values"``), ``seed``.
    budget : float in (0, 1], optional
        Each target's operator stores at most ``floor(budget * weight bytes)``
        bytes (the dense weight in its own dtype; every stored byte counted),
        so the targets together store at most `budget` of their dense bytes.
        Default 0.5 unless explicit parameters (`density`, `rank`, `tol`)
        are given, which replace the budget.
    progress : bool
        Progress on stderr: a line per stage and a bar over layers (tqdm if
        installed).
    trainable : bool
        Make the new layers trainable (see :class:`HSSLinear`).
    calibration : "auto", "builtin", iterable of batches, or None
        Activation-aware compression (methods ``"svd"``, ``"cap"``,
        ``"sparse"`` and ``"sparse+svd"``): run the model on these batches
        (see :func:`calibration_batches`) once, record each target's input
        Gram matrix ``X^T X`` and compress to minimise the layer's output
        error ``||(W - A) X^T||_F`` rather than its weight error (``sparse``:
        Wanda's score ``|W_ij| ||X_j||``; ``sparse+svd``: OATS, the fit of W
        scaled by the input norms, unscaled; see :mod:`hsslin._activation`).
        ``"builtin"``: :data:`CALIBRATION_SENTENCES` tokenized by `tokenizer`.
        ``"auto"`` (default): ``"builtin"`` for methods ``"svd"`` and
        ``"cap"``, None (no calibration) for the others.
        None: no calibration (not for ``"cap"``, whose policy is scored on
        the batches).
    allocation : "auto", "uniform" or "global"
        ``"uniform"``: every target gets `budget` of its own bytes.
        ``"global"`` (methods ``"svd"`` and ``"cap"``, with a budget): the targets together
        get `budget` of their bytes, and ranks go where they remove the most
        relative (output, with calibration) error; single layers may then
        exceed `budget`. ``"auto"`` (default): ``"global"`` for methods
        ``"svd"`` and ``"cap"`` with a budget, ``"uniform"`` otherwise.
    tokenizer : optional
        The model's tokenizer, needed by ``calibration="builtin"``.
    heal : int, dict or None
        After compressing, fine-tune the new layers' factors on the
        calibration batches (:func:`heal`): an int is the number of steps, a
        dict holds :func:`heal`'s keywords (``steps``, ``lr``, ``seed``).
        For a model that is not a causal LM the loss distils the last hidden
        state of the uncompressed model, computed on the batches before
        compressing. Needs `calibration`. The report's ``heal`` field holds
        the :class:`HealReport`; the budget still holds (only values train).
    **params
        Passed to :func:`hsslin.compress` (`leaf_size`, `rank_decay`, `seed`,
        and with no budget `density`, `rank`, `tol`), or CAP's settings
        for method ``"cap"``.

    Returns
    -------
    CompressionReport

    Examples
    --------
    >>> import torch, hsslin.torch as ht
    >>> model = torch.nn.Sequential()
    >>> model.add_module("query", torch.nn.Linear(64, 64))
    >>> model.add_module("key", torch.nn.Linear(64, 64))
    >>> report = ht.compress_model(model, calibration=None, progress=False)  # no tokenizer here
    >>> report.targets_bytes_after <= report.targets_bytes_before // 2
    True
    >>> type(model.query).__name__
    'HSSLinear'
    """
    if "sparsity" in params:  # the deprecated name of density
        params["density"] = check_density(params.pop("density", None), params.pop("sparsity"))
    budget, calibration, allocation = _defaults.resolve(method, budget, calibration, allocation, params)
    heal_options = _heal_options(heal)
    names = find_targets(model, targets)
    if isinstance(calibration, str):  # "builtin"
        if tokenizer is None:
            raise ValueError(
                f"calibration='builtin' (the default for method {method!r}) tokenizes hsslin's "
                "calibration sentences: pass tokenizer=..., your own batches as calibration=..., "
                "or calibration=None to compress without calibration"
            )
        calibration = calibration_batches(tokenizer)
    grams, batches = {}, None
    if heal_options is not None and calibration is None:
        raise ValueError("heal needs calibration batches to train on: pass calibration=...")
    if calibration is not None:
        batches = calibration if isinstance(calibration, (list, tuple)) else list(calibration)
        _announce(progress, f"calibrating: running the model on {len(batches)} batches")
        grams = input_grams(model, names, batches)
    ranks, model_ops = None, {}
    if method in _defaults.MODEL_METHODS:
        options = CAPOptions.from_params(params)
        t0 = time.perf_counter()
        model_ops = cap_operators(
            model, names, grams, batches, budget, options, log=lambda text: _announce(progress, text)
        )
        info = model_ops.pop("__info__")
        # Per-layer seconds: the layer's RPCA plus an equal share of the policy.
        rpca_seconds = {n: sum(h["seconds"] for h in r.history) for n, r in info["rpca"].items()}
        shared = (time.perf_counter() - t0 - sum(rpca_seconds.values())) / len(names)
    svds = {}  # calibrated svd: each layer's whitened SVD, shared by the allocation and the fit
    if method == "svd" and grams and not set(params) - _SHARED_SVD_PARAMS:
        _announce(progress, f"whitened SVDs of {len(names)} layers")
        svds = whitened_svds({n: weight_numpy(model.get_submodule(n)) for n in names}, grams)
    if method not in _defaults.MODEL_METHODS and allocation == "global":
        _announce(progress, f"allocating ranks across {len(names)} layers")
        weights = {n: weight_numpy(model.get_submodule(n)) for n in names}
        ranks = global_svd_ranks(weights, grams, budget, spectra={n: s for n, (_, s) in svds.items()})
    references = None
    if heal_options is not None:  # the uncompressed model's outputs, for distillation
        _announce(progress, "recording the uncompressed model's outputs for healing")
        references = reference_outputs(model, batches)
    before = _param_bytes(model)
    rows, replacements = [], []  # the model changes only once every layer compressed
    bar = _Progress(len(names), progress)
    # The shared-SVD fits are small float64 products: single-threaded BLAS (see whitened_svds).
    stack = contextlib.ExitStack()
    if svds:
        stack.enter_context(_single_threaded_blas())
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
            rank = _shared_svd_rank(W, budget_bytes, ranks, name) if name in svds else None
            if name in model_ops:
                op, seconds = model_ops[name], rpca_seconds[name] + shared
            elif rank is not None:  # what compress(W, "svd", input_gram=...) builds, from the shared SVD
                op = LowRankMatrix(*projected_factors(W, svds[name][0][:, :rank]))
                seconds = time.perf_counter() - t0
            else:
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
        stack.close()
        bar.close()
    for name, layer in replacements:
        replace_module(model, name, layer)
    after = before - sum(r.bytes_before for r in rows) + sum(r.bytes_after for r in rows)
    report = CompressionReport(rows, before, after, budget)
    if heal_options is not None:
        options = {"progress": progress, **heal_options}
        report.heal = heal_model(model, batches, references=references, **options)
        built = sum(layer.nbytes for _, layer in replacements)
        if built != sum(r.bytes_after for r in rows):  # only values train: the promise still holds
            raise RuntimeError(f"healing changed the compressed layers' bytes to {built:,}")
    return report


_HEAL_KEYS = {"steps", "lr", "seed"}


def _heal_options(heal) -> dict | None:
    """compress_model's `heal` as heal()'s keywords, or None."""
    if heal is None:
        return None
    if isinstance(heal, bool) or not isinstance(heal, (int, dict)):
        raise TypeError(f"heal must be an int (steps), a dict of heal() keywords or None, got {heal!r}")
    options = {"steps": heal} if isinstance(heal, int) else dict(heal)
    unknown = sorted(set(options) - _HEAL_KEYS)
    if unknown:
        raise TypeError(f"heal takes {', '.join(sorted(_HEAL_KEYS))}; got unexpected {', '.join(unknown)}")
    _check_heal(options.get("steps", 100), options.get("lr", 1e-4))
    return options
