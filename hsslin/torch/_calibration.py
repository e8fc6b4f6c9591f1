"""Calibration for activation-aware compression: tokenized batches, input Gram matrices, global ranks."""

from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from .. import LowRankMatrix, get_num_threads
from .._lowrank import check_input_gram, whitened_spectrum, whitening_basis
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


class _ForwardDoneError(Exception):
    """Raised by the last target's hook: nothing after it changes a Gram matrix."""


@torch.no_grad()
def input_grams(model: nn.Module, names, calibration) -> dict:
    """``X^T X`` (float64, in x in) of the inputs each named layer sees over `calibration`.

    One pass over the batches. Layers that receive the same input tensor in a
    forward pass (a transformer's Q, K and V) share its product, and where
    they did so in every batch they share one Gram array (so its whitening is
    computed once, see :func:`whitened_svds`). When every named layer ran
    exactly once in the first batch, later batches stop right after the last
    of them has recorded its input (the rest of the model, its head included,
    cannot change a Gram matrix).

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
    grams, hooks = {}, []
    # Per batch: the products computed so far, keyed by the input tensor's id
    # (the tensor is kept alive with it, so the id is not reused), the
    # layers recorded in order, and the count of calls per layer.
    state = {"mask": None, "tokens": 0, "products": {}, "order": [], "stop_after": None, "made": 0}
    keys = {name: [] for name in names}  # which product each call of each layer added
    for name in names:
        module = model.get_submodule(name)
        n = weight_matrix(module).shape[1]
        grams[name] = torch.zeros(n, n, dtype=torch.float64)

        def record(mod, inputs, name=name):
            x = inputs[0]
            products = state["products"]
            if id(x) not in products:
                mask = state["mask"]
                rows = x
                if mask is not None and x.dim() == 3 and tuple(mask.shape) == tuple(x.shape[:2]):
                    rows = x[mask.to(torch.bool)]
                rows = rows.reshape(-1, rows.shape[-1]).to(torch.float64).cpu()
                products[id(x)] = (x, rows.T @ rows, state["made"], rows.shape[0])
                state["made"] += 1
            _, product, key, count = products[id(x)]
            if name == names[0]:
                state["tokens"] += count  # rows recorded, padding left out
            grams[name] += product
            keys[name].append(key)
            state["order"].append(name)
            if name == state["stop_after"] and len(set(state["order"])) == len(names):
                raise _ForwardDoneError

        hooks.append(module.register_forward_pre_hook(record))
    was_training = model.training
    model.eval()
    try:
        batches = 0
        for batch in calibration:
            batches += 1
            state["products"], state["order"] = {}, []
            try:
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
            except _ForwardDoneError:
                pass
            order = state["order"]
            if batches == 1 and sorted(order) == sorted(names):  # each target ran once
                state["stop_after"] = order[-1]
        if batches == 0:
            raise ValueError("calibration is empty: pass at least one batch")
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out, shared = {}, {}
    for name in names:  # layers fed the same tensors throughout share one array
        signature = (tuple(keys[name]), grams[name].shape[0])
        out[name] = shared.setdefault(signature, grams[name].numpy())
    out["__tokens__"] = state["tokens"]
    return out


def _single_threaded_blas():
    """A context in which BLAS/LAPACK run on one thread (threadpoolctl), or a no-op without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the torch extra installs it; without it BLAS keeps its own threads
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def whitened_svds(weights: dict, grams: dict, workers: int | None = None) -> dict:
    """Per calibrated layer, ``(U, s)``: the SVD ``W B = U diag(s) Z^T`` with B = :func:`whitening_basis`.

    What both the global allocation (the squared tails of s are the output
    errors) and the fit (U's leading columns, see
    :meth:`LowRankMatrix.from_dense` with `input_gram`) need, computed once
    per layer; each distinct Gram array (:func:`input_grams` shares one
    between the layers fed the same inputs) is checked and eigendecomposed
    once. Layers without a Gram matrix are left out.

    The decompositions run `workers` at a time (default: hsslin's thread
    count), each on single-threaded BLAS: on matrices of a few hundred rows,
    LAPACK's own threads gain little and, on a loaded machine, lose up to
    ten times (measured on a 576 x 576 eigh). Each task is independent, so
    the result does not depend on the number of workers.
    """
    workers = get_num_threads() if workers is None else max(1, int(workers))
    distinct = {}
    for name, W in weights.items():
        G = grams.get(name)
        if G is not None:
            distinct.setdefault(id(G), (G, W.shape[1]))

    def basis(item):
        G, n = item
        return whitening_basis(check_input_gram(G, n))

    def svd(name):
        B = bases[id(grams[name])]
        U, s, _ = np.linalg.svd(weights[name].astype(np.float64, copy=False) @ B, full_matrices=False)
        return U, s

    calibrated = [name for name in weights if grams.get(name) is not None]
    with _single_threaded_blas(), ThreadPoolExecutor(max_workers=workers) as pool:
        bases = dict(zip(distinct, pool.map(basis, distinct.values())))
        return dict(zip(calibrated, pool.map(svd, calibrated)))


def global_svd_ranks(weights: dict, grams: dict, budget: float, spectra: dict | None = None) -> dict:
    """Ranks per layer for method 'svd' under one budget for all layers together.

    Each layer starts at rank 1; then singular values are taken across layers
    in order of (relative output energy s_k^2 / sum s^2) per byte, while the
    total fits ``floor(budget * dense bytes of all layers)``. This spends the
    bytes where they remove the most relative output error (plain weight
    error when there is no calibration). `spectra` (name -> whitened singular
    values, from :func:`whitened_svds`) skips recomputing them.
    """
    total_dense = sum(W.size * W.dtype.itemsize for W in weights.values())
    cap = math.floor(budget * total_dense)
    ranks, candidates, spent = {}, [], 0
    spectra = {} if spectra is None else spectra
    for name, W in weights.items():
        m, n = W.shape
        G = grams.get(name)
        if name in spectra:
            s = spectra[name]
        elif G is None:
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
