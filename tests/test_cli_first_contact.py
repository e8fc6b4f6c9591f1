"""The command line as a new user meets it (issue 15, items 1-5 and 7): defaults, checks, report, help.

Each test pins one point of the issue; the cases that need a model use the
installed all-MiniLM-L6-v2 and skip without the torch extras.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hsslin import _defaults
from hsslin._cli import INSTALL_HINT, build_parser, main


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def _one_line(err: str) -> str:
    err = err.strip()
    assert err.startswith("hsslin: error: ") and "\n" not in err, err
    return err


@pytest.fixture()
def no_model_loads(monkeypatch):
    """Fails the test if a command gets as far as loading a model or a tokenizer."""
    pytest.importorskip("torch")
    from hsslin.torch import _cli as torch_cli

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(torch_cli, "_load_model", refuse)
    monkeypatch.setattr(torch_cli, "_load_tokenizer", refuse)


# -- item 1: one set of defaults, the best measured -------------------------------------------
def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_cli_and_python_defaults_are_the_defaults_module():
    pytest.importorskip("torch")
    import hsslin.torch as ht

    signature = inspect.signature(ht.compress_model).parameters
    assert signature["method"].default == _defaults.METHOD
    assert signature["targets"].default == _defaults.TARGETS
    assert signature["calibration"].default == signature["allocation"].default == _defaults.AUTO
    for command in ("compress", "demo"):
        defaults = {a.dest: a.default for a in _subparser(command)._actions}
        assert defaults["method"] == _defaults.METHOD
        assert defaults["allocation"] == _defaults.AUTO
        assert defaults.get("calibration", _defaults.AUTO) == _defaults.AUTO
    assert _defaults.resolve(_defaults.METHOD, None, "auto", "auto", []) == (
        _defaults.BUDGET,
        _defaults.calibration_for(_defaults.METHOD),
        _defaults.allocation_for(_defaults.METHOD),
    )
    for method, tuned in _defaults.TUNED.items():  # every tuned default can run
        assert tuned.get("calibration") is None or method in _defaults.CALIBRATED_METHODS
        assert tuned.get("allocation", "uniform") == "uniform" or method in _defaults.GLOBAL_METHODS


def test_compress_with_no_options_is_the_python_default(minilm_dir, tmp_path, capsys):
    import copy

    import transformers

    import hsslin.torch as ht

    status, out, err = _run(["compress", minilm_dir, "--out", tmp_path / "out", "--threads", "1"], capsys)
    assert status == 0, err
    assert "loading" in err and "calibrating" in err and "allocating ranks" in err  # progress lines
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["method"] == _defaults.METHOD
    model = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    report = ht.compress_model(copy.deepcopy(model), tokenizer=tokenizer, progress=False)
    assert [e["params"] for e in manifest["modules"]] == [r.params for r in report.layers]
    assert len({e["params"]["rank"] for e in manifest["modules"]}) > 1  # global allocation
    assert manifest["factor_bytes"] <= _defaults.BUDGET * 18 * 384 * 384 * 4
    assert "weight rel. err" in out  # item 4: the column says what it measures


# -- item 2: perplexity needs a language-model head ----------------------------------------------
def test_eval_refuses_perplexity_of_a_model_without_lm_head(minilm_dir, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("The cat sat on the warm windowsill. It watched the birds.", encoding="utf-8")
    status, out, err = _run(["eval", minilm_dir, "--text", text], capsys)
    assert status == 2 and "perplexity" not in out
    assert "no language-model head" in _one_line(err)
    # a config that does not name its architecture: refused from the weights the checkpoint lacks
    folder = tmp_path / "anonymous"
    folder.mkdir()
    for name in os.listdir(minilm_dir):
        if name != "config.json" and os.path.isfile(os.path.join(minilm_dir, name)):
            os.symlink(os.path.join(minilm_dir, name), folder / name)
    config = json.loads(Path(minilm_dir, "config.json").read_text(encoding="utf-8"))
    config.pop("architectures", None)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    status, out, err = _run(["eval", folder, "--text", text], capsys)
    assert status == 2 and "no language-model head" in err.strip().splitlines()[-1]


# -- item 3: every option checked before the long work ------------------------------------------
def test_bad_options_are_one_line_before_any_model_loads(minilm_dir, tmp_path, capsys, no_model_loads):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    text = tmp_path / "t.txt"
    text.write_text("some text")
    out = ["--out", tmp_path / "new"]
    cases = [
        (["compress", minilm_dir, "--budget", "0", *out], "--budget: must be a fraction in (0, 1]"),
        (["compress", minilm_dir, "--budget", "2", *out], "--budget: must be a fraction in (0, 1]"),
        (["compress", minilm_dir, "--budget", "nan", *out], "--budget: expected a finite number"),
        (["compress", minilm_dir, "--method", "foo", *out], "--method: invalid choice: 'foo'"),
        (["compress", minilm_dir, "--out", a_file], "is a file, not a folder"),
        (["compress", minilm_dir, "--out", foreign], "did not write"),
        (["compress", minilm_dir, "--density", "1.5", *out], "--density: must be a share in [0, 1)"),
        (["compress", minilm_dir, "--rank", "0", *out], "--rank: must be >= 1"),
        (["compress", minilm_dir, "--tol", "2", *out], "--tol: must be in (0, 1)"),
        (["compress", minilm_dir, "--leaf-size", "0", *out], "--leaf-size: must be >= 1"),
        (["compress", minilm_dir, "--threads", "0", *out], "--threads: must be >= 1"),
        (["compress", minilm_dir, "--calibration", tmp_path / "missing.txt", *out], "does not exist"),
        (["compress", minilm_dir, "--method", "hodlr", "--calibration", "builtin", *out], "method 'svd'"),
        (["compress", minilm_dir, "--method", "hodlr", "--allocation", "global", *out], "method 'svd'"),
        (["compress", minilm_dir, "--budget", "0.5", "--rank", "4", *out], "not both"),
        (["compress", minilm_dir, "--rank", "4", "--allocation", "global", *out], "shares a budget"),
        (["compress", a_file, *out], "is a file, not a model folder"),
        (["demo", "--method", "foo"], "--method: invalid choice"),
        (["demo", "--budget", "2"], "--budget: must be a fraction"),
        (["demo", "--kernel", "--tol", "2"], "--tol: must be in (0, 1)"),
        (["demo", "--kernel", "--leaf-size", "0"], "--leaf-size: must be >= 1"),
        (["demo", "--kernel", "--repeats", "0"], "--repeats: must be >= 1"),
        (["eval", minilm_dir, "--text", text, "--max-length", "1"], "--max-length: must be >= 2"),
        (["eval", minilm_dir, "--text", text, "--stride", "0"], "--stride: must be >= 1"),
        (["eval", minilm_dir, "--text", text, "--max-length", "8", "--stride", "9"], "exceeds --max-length"),
        (["eval", minilm_dir, "--text", tmp_path / "missing.txt"], "does not exist"),
        (["eval", minilm_dir, "--sentences", text, "--compressed", foreign], "no manifest.json"),
        (["info", a_file], "is a file"),
    ]
    for argv, message in cases:
        status, _, err = _run(argv, capsys)
        assert status == 2, argv
        assert message in _one_line(err), (argv, err)
    assert not (tmp_path / "new").exists()


def test_damaged_compressed_folder_is_reported_before_the_model_loads(
    minilm_dir, tmp_path, capsys, no_model_loads
):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "manifest.json").write_text("{")
    sentences = tmp_path / "s.txt"
    sentences.write_text("One sentence.\n")
    status, _, err = _run(["eval", minilm_dir, "--sentences", sentences, "--compressed", folder], capsys)
    assert status == 2 and "not valid JSON" in _one_line(err)


# -- item 4: a readable report ------------------------------------------------------------------
def test_speed_in_words():
    from hsslin._cli import speed_words

    assert speed_words(1.0, 0.5, "dense") == "2.00x faster than dense"
    assert speed_words(0.69, 1.0, "the original") == "1.45x slower than the original"


# -- item 5: the small things -------------------------------------------------------------------
def test_help_is_plain_text_and_every_option_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in [("hsslin", parser), *sub.choices.items()]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if action.option_strings == ["--sparsity"]:  # deprecated alias of --density, unlisted
                assert any(a.dest == "density" and a.help != argparse.SUPPRESS for a in p._actions)
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
        text = p.format_help()
        assert "``" not in text and ":func:" not in text and ":class:" not in text, name
    assert main(["--help"]) == 0
    assert "hsslin demo" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["demo", "compress", "eval", "info"])
def test_missing_torch_gives_the_same_install_hint(command, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    compressed = tmp_path / "compressed"
    compressed.mkdir()
    (compressed / "manifest.json").write_text("{}")
    text = tmp_path / "t.txt"
    text.write_text("text")
    argv = {
        "demo": ["demo"],
        "compress": ["compress", str(model), "--out", str(tmp_path / "out")],
        "eval": ["eval", str(model), "--text", str(text)],
        "info": ["info", str(compressed)],
    }[command]
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "from hsslin._cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    err = _one_line(done.stderr)
    assert INSTALL_HINT in err and f"'hsslin {command}' needs the torch extras" in err


# -- item 7: threads set for the machine's load ---------------------------------------------------
def test_threads_follow_the_idle_cpus(monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert _defaults.idle_cpus() == cpus
    monkeypatch.setattr(os, "getloadavg", lambda: (10.0 * cpus, 0.0, 0.0))
    assert _defaults.idle_cpus() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cpus - 1.0, 0.0, 0.0))
    assert _defaults.idle_cpus() == 1
    torch = pytest.importorskip("torch")
    import hsslin
    from hsslin.torch._cli import configure_threads

    old = (torch.get_num_threads(), hsslin.get_num_threads())
    try:
        assert configure_threads("auto") == 1
        assert torch.get_num_threads() == 1 and hsslin.get_num_threads() == 1
    finally:
        torch.set_num_threads(old[0])
        hsslin.set_num_threads(old[1])


def test_kernel_demo_report_in_words(capsys):
    status, out, _ = _run(["demo", "--kernel", "--n", "300", "--repeats", "2"], capsys)
    assert status == 0
    assert re.search(r"\d+\.\d\dx (faster|slower) than dense", out)
