"""Calibration for activation-aware compression: tokenized batches, input Gram matrices, global ranks."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import LowRankMatrix
from .._lowrank import whitened_spectrum
from ._sentences import CALIBRATION_SENTENCES
from ._weights import weight_matrix


def calibration_batches(tokenizer, sentences=None, batch_size: int = 16, max_length: int = 256) -> list:
    """Tokenized batches for :func:`hsslin.torch.compress_model`'s `calibration`.

    `sentences` defaults to :data:`CALIBRATION_SENTENCES` (disjoint from the
    evaluation sentences :data:`SAMPLE_SENTENCES`). Each batch is the
    tokenizer's output (``input_ids``, ``attention_mask``, ...); padded
    positions are left out of the statistics.
    """
    sentences = list(CALIBRATION_SENTENCES if sentences is None else sentences)
    if not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError("sentences must be a non-empty list of strings")
    return [
        dict(
            tokenizer(
                sentences[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
        )
        for i in range(0, len(sentences), batch_size)
    ]


@torch.no_grad()
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
        n = weight_matrix(module).shape[1]
        grams[name] = torch.zeros(n, n, dtype=torch.float64)

        def record(mod, inputs, name=name):
            x = inputs[0]
            mask = state["mask"]
            if mask is not None and x.dim() == 3 and tuple(mask.shape) == tuple(x.shape[:2]):
                x = x[mask.to(torch.bool)]
            x = x.reshape(-1, x.shape[-1]).to(torch.float64).cpu()
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
            if isinstance(batch, torch.Tensor):
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


def global_svd_ranks(weights: dict, grams: dict, budget: float) -> dict:
    """Ranks per layer for method 'svd' under one budget for all layers together.

    Each layer starts at rank 1; then singular values are taken across layers
    in order of (relative output energy s_k^2 / sum s^2) per byte, while the
    total fits ``floor(budget * dense bytes of all layers)``. This spends the
    bytes where they remove the most relative output error (plain weight
    error when there is no calibration).
    """
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
        rank1 = LowRankMatrix.bytes_for(m, n, 1, W.dtype.itemsize)
        per_rank = LowRankMatrix.bytes_for(m, n, 2, W.dtype.itemsize) - rank1
        ranks[name] = 1
        spent += rank1
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
