"""Healing (hsslin.torch.heal, compress_model heal=): loss, frozen parameters, bytes, write-back, input."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import hsslin.torch as ht  # noqa: E402
from conftest import eps, tiny_llama  # noqa: E402


def _batches(seed=0, count=2, vocab=256):
    # A planted, learnable text: each row repeats a short random motif, so the
    # next token is predictable from context and the loss has room to fall.
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        motif = torch.randint(0, vocab, (4, 8), generator=g)
        out.append({"input_ids": motif.repeat(1, 4)})
    return out


def _compressed(method="svd", seed=0, trainable=False, **params):
    model = tiny_llama(seed)
    ht.compress_model(
        model, method=method, budget=0.5, calibration=None, progress=False, trainable=trainable, **params
    )
    return model


def _loss(model, batches):
    with torch.no_grad():
        return float(sum(ht.healing_loss(model, b, None) for b in batches) / len(batches))


def _operators(model):
    return {n: layer.get_operator() for n, layer in ht.compressed_layers(model)}


def test_healing_lowers_the_calibration_loss():
    model, batches = _compressed(), _batches()
    before = _loss(model, batches)
    report = ht.heal(model, batches, steps=20, lr=3e-3, progress=False)
    after = _loss(model, batches)
    assert report.steps == 20 and len(report.losses) == 20
    assert after < before - 0.1  # 20 Adam steps on two batches: a clear drop, not noise
    assert all(not layer.trainable for _, layer in ht.compressed_layers(model))  # written back


def test_only_the_factors_change_and_bytes_hold():
    model = _compressed("sparse+svd", seed=1)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    ops = _operators(model)
    ht.heal(model, _batches(1), steps=5, lr=1e-3, progress=False)
    for n, p in model.named_parameters():  # biases of the HSSLinear layers included
        assert torch.equal(p, frozen[n]), n
        assert p.requires_grad  # the flags are restored
    for name, op in _operators(model).items():
        old = ops[name]
        assert type(op) is type(old) and op.nbytes == old.nbytes
        np.testing.assert_array_equal(op.S.indices, old.S.indices)  # the pattern is fixed
        np.testing.assert_array_equal(op.S.indptr, old.S.indptr)
        assert op.L.U.shape == old.L.U.shape
        assert not np.array_equal(op.S.data, old.S.data)  # the values trained
        assert not np.array_equal(op.L.U, old.L.U)


def test_healing_is_reproducible_and_steps_zero_changes_nothing():
    a, b = _compressed(), _compressed()
    ra = ht.heal(a, _batches(), steps=4, lr=1e-3, seed=3, progress=False)
    rb = ht.heal(b, _batches(), steps=4, lr=1e-3, seed=3, progress=False)
    assert ra.losses == rb.losses
    for (name, x), (_, y) in zip(_operators(a).items(), _operators(b).items()):
        np.testing.assert_array_equal(x.U, y.U, err_msg=name)
        np.testing.assert_array_equal(x.V, y.V, err_msg=name)
    c = _compressed()
    ops = _operators(c)
    assert ht.heal(c, _batches(), steps=0, progress=False).losses == []
    assert all(_operators(c)[n] is op for n, op in ops.items())


def test_written_back_products_match_the_trained_factors():
    # Trainable layers stay trainable; the operator written back from them
    # gives the torch factors' products to float32 rounding.
    model = _compressed("sparse+svd", trainable=True)
    ht.heal(model, _batches(), steps=5, lr=1e-3, progress=False)
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    for name, layer in ht.compressed_layers(model):
        assert layer.trainable
        with torch.no_grad():
            y_torch = layer(x).numpy()
        inference = copy.deepcopy(layer).to_inference()
        with torch.no_grad():
            y_core = inference(x).numpy()
        op = inference.get_operator()
        D = op.to_dense().astype(np.float64)
        # Both sides sum at most (in + rank) float32 terms per entry.
        k = x.shape[1] + op.L.U.shape[1]
        bound = 4 * eps(np.float32) * k * (np.abs(x.numpy()) @ np.abs(D).T + np.abs(y_torch))
        assert np.all(np.abs(y_core - y_torch) <= bound + 1e-30), name


def test_encoder_distils_against_the_teacher():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    )
    teacher = transformers.BertModel(config).eval()
    student = copy.deepcopy(teacher)
    batches = [
        {"input_ids": torch.randint(0, 128, (4, 16)), "attention_mask": torch.ones(4, 16, dtype=torch.long)}
    ]
    ht.compress_model(student, method="svd", budget=0.5, calibration=None, progress=False)
    with pytest.raises(ValueError, match="teacher"):
        ht.heal(student, batches, steps=1, progress=False)
    refs = ht.reference_outputs(teacher, batches)

    def loss():
        with torch.no_grad():
            return float(ht.healing_loss(student, batches[0], refs[0]))

    before = loss()
    ht.heal(student, batches, steps=20, lr=3e-3, teacher=teacher, progress=False)
    assert loss() < 0.5 * before


def test_compress_model_heal_option():
    model, batches = tiny_llama(0), _batches()
    plain = copy.deepcopy(model)
    ht.compress_model(plain, method="svd", budget=0.5, calibration=batches, progress=False)
    report = ht.compress_model(
        model, method="svd", budget=0.5, calibration=batches, progress=False, heal={"steps": 10, "lr": 3e-3}
    )
    assert report.heal.steps == 10
    assert report.targets_bytes_after == sum(layer.nbytes for _, layer in ht.compressed_layers(model))
    assert _loss(model, batches) < _loss(plain, batches)
    with pytest.raises(ValueError, match="calibration"):
        ht.compress_model(tiny_llama(0), method="svd", calibration=None, heal=5, progress=False)
    with pytest.raises(TypeError, match="unexpected"):
        ht.compress_model(tiny_llama(0), method="svd", calibration=batches, heal={"step": 5}, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": -1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"lr": 0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ht.heal(_compressed(), _batches(), progress=False, **kwargs)


def test_bad_models_and_batches():
    with pytest.raises(ValueError, match="no compressed layers"):
        ht.heal(tiny_llama(0), _batches(), steps=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        ht.heal(_compressed(), [], steps=1, progress=False)
    with pytest.raises(TypeError, match="batches"):
        ht.heal(_compressed(), ["text"], steps=1, progress=False)
