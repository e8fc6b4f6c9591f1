"""Healing: a short fine-tune of the compressed layers' factors on calibration text, then write-back.

The sHSS-RCM paper notes that its factors train with standard optimisers;
this module does so end to end. Only the factors of the :class:`HSSLinear`
layers train (low-rank ``U``, ``V``, HODLR leaves and blocks, the values of
sparse parts on their fixed patterns); every other parameter, the layers'
biases included, stays frozen. The loss is the next-token NLL for a causal
LM (an output with ``logits`` of the batch's length) and, for any other
model (an encoder), the relative squared error of the last hidden state
against the uncompressed model's (distillation). After the last step the
trained factors are written back into C++ operators: the sparse patterns,
ranks and tree are fixed, so every layer's ``nbytes`` is what it was and the
budget still holds.
"""

from __future__ import annotations

import math
import sys
import time
from typing import NamedTuple

import torch

from ._cap import _forward, _hidden, _ids_mask, _is_causal
from ._layer import compressed_layers


class HealReport(NamedTuple):
    """What :func:`heal` did: the loss at every step (before its update), and the seconds taken."""

    steps: int
    losses: list
    seconds: float


def _check(steps, lr) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def _batches(calibration) -> list:
    if calibration is None:
        raise ValueError("calibration is None: healing trains on calibration batches")
    batches = list(calibration) if not isinstance(calibration, (list, tuple)) else list(calibration)
    if not batches:
        raise ValueError("calibration is empty: pass at least one batch")
    for batch in batches:
        if not isinstance(batch, (dict, torch.Tensor)):
            raise TypeError(
                "calibration batches must be dicts of model inputs or tensors of input ids, "
                f"got {type(batch).__name__}"
            )
    return batches


@torch.no_grad()
def reference_outputs(model, batches) -> list:
    """Per batch: None where `model` is a causal LM (scored by NLL), else its last hidden state.

    What :func:`heal` distils against; compute it from the uncompressed
    model (``compress_model(..., heal=...)`` does so before compressing).
    """
    was_training = model.training
    model.eval()
    try:
        out = []
        for batch in batches:
            result = _forward(model, batch)
            out.append(None if _is_causal(result, batch) else _hidden(result).detach().clone())
        return out
    finally:
        model.train(was_training)


def healing_loss(model, batch, reference) -> torch.Tensor:
    """The differentiable healing loss of `model` on one batch (see the module's docstring)."""
    result = _forward(model, batch)
    if reference is None:
        if not _is_causal(result, batch):
            raise ValueError(
                "the model's output has no logits of the batch's length (not a causal LM): "
                "pass teacher=<the uncompressed model> to distil its hidden states"
            )
        ids, mask = _ids_mask(batch)
        logits = result.logits[:, :-1].float()
        targets = ids[:, 1:]
        if mask is not None:
            targets = targets.masked_fill(~mask[:, 1:].to(torch.bool), -100)
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
        )
    hidden = _hidden(result).float()
    ref = reference.float()
    _, mask = _ids_mask(batch)
    if mask is not None and tuple(mask.shape) == tuple(hidden.shape[:2]):
        keep = mask.to(hidden.dtype).unsqueeze(-1)
        hidden, ref = hidden * keep, ref * keep
    return ((hidden - ref) ** 2).sum() / (ref**2).sum().clamp(min=torch.finfo(torch.float32).tiny)


class _Bar:
    """tqdm when installed, else a line on stderr every tenth of the steps; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.bar = total, enabled and total > 0, None
        if self.enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="hsslin heal", unit="step")
            except ImportError:
                pass

    def step(self, i: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
            self.bar.update(1)
        elif self.enabled and (i + 1 == self.total or (i + 1) % max(1, self.total // 10) == 0):
            sys.stderr.write(f"hsslin heal: step {i + 1}/{self.total} loss {loss:.4f}\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def heal(
    model,
    calibration,
    steps: int = 100,
    lr: float = 1e-4,
    teacher=None,
    seed: int = 0,
    progress: bool = True,
    references=None,
) -> HealReport:
    """Fine-tune the factors of `model`'s compressed layers on `calibration`, then write them back.

    Parameters
    ----------
    model : nn.Module
        A model compressed by :func:`compress_model` (it must hold at least
        one :class:`HSSLinear`). Changed in place.
    calibration : iterable of batches
        Dicts of model inputs (e.g. :func:`causal_lm_batches`,
        :func:`calibration_batches`) or tensors of input ids; step i trains on
        batch ``i mod len(calibration)``. Keep it disjoint from the text you
        evaluate on.
    steps : int >= 0
        Optimizer steps (0: nothing trains; the layers are left as they were).
    lr : float > 0
        Adam's learning rate.
    teacher : nn.Module, optional
        The uncompressed model (a copy kept before compressing), needed for
        a model that is not a causal LM: the loss is then the relative
        squared error of `model`'s last hidden state against the teacher's
        (computed once, before the first step). A causal LM trains on the
        next-token NLL and ignores it.
    seed : int
        Seeds torch's generator for the run (the caller's generator state is
        restored), so a run is reproducible.
    progress : bool
        A tqdm bar (or lines on stderr) with the loss.
    references : list, optional
        Precomputed :func:`reference_outputs` of the uncompressed model on
        `calibration` (what ``compress_model(..., heal=...)`` passes);
        replaces `teacher`.

    Returns
    -------
    HealReport
        The loss at each step, measured before that step's update, and the
        wall time.

    Notes
    -----
    Every parameter outside the compressed layers' factors is frozen (their
    ``requires_grad`` is restored afterwards), and the model runs in eval
    mode (no dropout). Layers that were in inference mode train in their
    trainable form and are written back to C++ operators at the end (same
    type, shapes, sparsity pattern and ``nbytes``; new values); layers that
    were trainable stay trainable.

    Examples
    --------
    >>> import torch, transformers, hsslin.torch as ht
    >>> config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
    ...     num_attention_heads=4, num_key_value_heads=2, vocab_size=128, max_position_embeddings=64)
    >>> torch.manual_seed(0) and None
    >>> model = transformers.LlamaForCausalLM(config).eval()
    >>> batches = [{"input_ids": torch.randint(0, 128, (2, 32))}]
    >>> _ = ht.compress_model(model, method="svd", budget=0.5, calibration=batches, progress=False)
    >>> report = ht.heal(model, batches, steps=5, lr=1e-3, progress=False)
    >>> report.losses[-1] < report.losses[0]
    True
    """
    _check(steps, lr)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    layers = [layer for _, layer in compressed_layers(model)]
    if not layers:
        raise ValueError(
            f"model {type(model).__name__} has no compressed layers (HSSLinear): "
            "run compress_model on it before healing"
        )
    batches = _batches(calibration)
    if references is None:
        references = [None] * len(batches) if teacher is None else reference_outputs(teacher, batches)
    elif len(references) != len(batches):
        raise ValueError(f"references has {len(references)} entries for {len(batches)} batches")
    t0 = time.perf_counter()
    if steps == 0:
        return HealReport(0, [], time.perf_counter() - t0)
    was_inference = [not layer.trainable for layer in layers]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    losses = []
    bar = _Bar(steps, progress)
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        factors = []
        for layer in layers:
            layer.to_trainable()
            for p in layer.factors.parameters():
                p.requires_grad_(True)
                factors.append(p)
        model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            optimizer = torch.optim.Adam(factors, lr=lr)
            for i in range(steps):
                k = i % len(batches)
                optimizer.zero_grad(set_to_none=True)
                loss = healing_loss(model, batches[k], references[k])
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"healing loss became {float(loss.detach())} at step {i}: lower lr"
                    )
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.step(i, losses[-1])
    finally:
        bar.close()
        for layer, back in zip(layers, was_inference):
            if layer.trainable:
                for p in layer.factors.parameters():
                    p.requires_grad_(True)
            if back:
                layer.to_inference()
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    return HealReport(steps, losses, time.perf_counter() - t0)
