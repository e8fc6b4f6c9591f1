"""Torch adapter: compressed linear layers for transformers, on the CPU.

``import hsslin`` never imports torch; ``import hsslin.torch`` does. The
package replaces the attention projections (Q, K, V) of a Hugging Face
model by :class:`HSSLinear` layers that hold an hsslin operator (``W ~= S +
P^T H P`` and the other forms of :func:`hsslin.compress`) and apply it with
the C++ kernels, saves and loads the result, and fine-tunes the factors with
any ``torch.optim`` optimizer.

One concept per module: ``_weights`` (the layers replaced), ``_factors``
(trainable forms), ``_layer`` (:class:`HSSLinear`), ``_targets`` (choosing
layers), ``_calibration``, ``_report``, ``_compress_model``, ``_heal``, ``_io`` (the
folder format), ``_eval`` (perplexity, embedding fidelity), ``_models`` (SmolLM2 and
the licence texts), ``_sentences``
and ``_cli`` (the command handlers).

Examples
--------
>>> import torch, hsslin.torch as ht
>>> lin = torch.nn.Linear(96, 64)
>>> layer = ht.HSSLinear.from_linear(lin, "hodlr", tol=1e-7, leaf_size=32)
>>> x = torch.randn(2, 5, 96)
>>> bool(torch.allclose(layer(x), lin(x), atol=1e-5))
True
"""

from __future__ import annotations

from ._calibration import calibration_batches, input_grams
from ._compress_model import compress_model
from ._eval import (
    EmbeddingFidelity,
    Perplexity,
    embedding_fidelity,
    minilm_path,
    perplexity,
    sentence_embeddings,
)
from ._heal import HealReport, heal, healing_loss, reference_outputs
from ._io import FACTORS_FILE, FORMAT_VERSION, MANIFEST, load_compressed, read_manifest, save_compressed
from ._layer import HSSLinear, compressed_layers
from ._models import (
    calibration_text,
    causal_lm_batches,
    evaluation_text,
    load_smollm2,
    rounded_qkv,
    smollm2_folder,
    smollm2_path,
)
from ._report import CompressionReport, LayerReport, describe_operator
from ._sentences import CALIBRATION_SENTENCES, SAMPLE_SENTENCES
from ._targets import QKV_NAMES, find_targets

__all__ = [
    "HSSLinear",
    "CompressionReport",
    "LayerReport",
    "compress_model",
    "heal",
    "HealReport",
    "healing_loss",
    "reference_outputs",
    "save_compressed",
    "load_compressed",
    "read_manifest",
    "compressed_layers",
    "find_targets",
    "describe_operator",
    "QKV_NAMES",
    "perplexity",
    "embedding_fidelity",
    "sentence_embeddings",
    "minilm_path",
    "smollm2_path",
    "smollm2_folder",
    "load_smollm2",
    "evaluation_text",
    "calibration_text",
    "causal_lm_batches",
    "rounded_qkv",
    "SAMPLE_SENTENCES",
    "CALIBRATION_SENTENCES",
    "calibration_batches",
    "input_grams",
    "Perplexity",
    "EmbeddingFidelity",
    "FORMAT_VERSION",
    "MANIFEST",
    "FACTORS_FILE",
]
