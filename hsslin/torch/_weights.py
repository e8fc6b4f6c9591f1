"""The weights of the layers the adapter replaces: ``nn.Linear`` and GPT-2's ``Conv1D``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

NP_TO_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
TORCH_TO_NP = {v: k for k, v in NP_TO_TORCH.items()}


def is_conv1d(module) -> bool:
    """GPT-2's ``Conv1D`` (weight stored in x out); matched by name to keep transformers optional."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def is_replaceable(module) -> bool:
    """Whether `module` is a layer :class:`HSSLinear` can replace."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def weight_matrix(module) -> torch.Tensor:
    """The layer's weight as the out x in matrix that ``y = W x + b`` applies."""
    if isinstance(module, nn.Linear):
        return module.weight.detach()
    if is_conv1d(module):
        return module.weight.detach().T
    raise TypeError(f"expected nn.Linear or GPT-2 Conv1D, got {type(module).__name__}")


def weight_numpy(module) -> np.ndarray:
    """The weight as a C-contiguous float32/float64 numpy array (bf16/fp16 become float32)."""
    W = weight_matrix(module).cpu()
    if W.dtype not in TORCH_TO_NP:
        W = W.float()
    return np.ascontiguousarray(W.numpy())


def weight_bytes(module) -> int:
    """Bytes of the dense weight in its own dtype (what a budget is a share of)."""
    W = weight_matrix(module)
    return int(W.numel() * W.element_size())


def to_numpy(p: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy copy of a tensor's values.

    A copy, so that an operator built from a parameter does not change when
    an optimizer later updates the parameter in place.
    """
    return np.array(p.detach().cpu().numpy(), order="C")
