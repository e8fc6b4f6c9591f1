"""Choosing the layers to compress, and swapping modules in a model."""

from __future__ import annotations

import fnmatch
import re

from torch import nn

from ._weights import is_replaceable

#: Last name components of attention projections recognised by ``targets="qkv"``:
#: LLaMA/Mistral/Qwen (``q_proj``...), BERT (``query``...), GPT-2 (fused ``c_attn``).
QKV_NAMES = ("q_proj", "k_proj", "v_proj", "query", "key", "value", "c_attn")


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

    Examples
    --------
    >>> import torch, hsslin.torch as ht
    >>> model = torch.nn.Sequential()
    >>> model.add_module("query", torch.nn.Linear(4, 4))
    >>> model.add_module("out", torch.nn.Linear(4, 4))
    >>> ht.find_targets(model), ht.find_targets(model, ["o*"])
    (['query'], ['out'])
    """
    linear = [name for name, mod in model.named_modules() if is_replaceable(mod)]
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


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Puts `new` where the submodule `name` of `model` was."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
