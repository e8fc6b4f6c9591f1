"""Every fenced Python block of README.md and docs/*.md runs as written (issue 15, item 6).

Markers, on the last non-blank line before a block's opening fence:

- ``<!-- continue -->``: the block continues the previous Python block of
  the same file and runs in its namespace (so it may use the names that
  block defined). Without it a block runs alone, in a fresh namespace.
- ``<!-- skip: REASON -->``: the block is shown but not run; REASON says
  why (keep this rare: a block too slow for the suite, or one that needs a
  model that is not installed).

Blocks run in a temporary working directory (files they write land
there). Shell blocks (```bash) are not run; their install commands are
checked below against what works from a checkout.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*(continue|skip:\s*(.+?))\s*-->\s*$")
HAS_TORCH = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "safetensors"))


def _blocks(path: pathlib.Path):
    """(language, first line number, source, marker, reason) of each fenced block."""
    text = path.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        kind = reason = None
        if marker:
            kind = "continue" if marker.group(1) == "continue" else "skip"
            reason = marker.group(2)
        line = text.count("\n", 0, match.start()) + 1
        yield match.group(1), line, match.group(2), kind, reason


def _chains():
    """Python blocks grouped into chains: a block and the blocks that continue it."""
    chains = []
    for path in DOCS:
        current = None
        for lang, line, source, kind, reason in _blocks(path):
            if lang != "python":
                continue
            name = f"{path.relative_to(ROOT)}:{line}"
            if kind == "continue":
                assert current is not None, f"{name}: <!-- continue --> with no block before it"
                current["blocks"].append((name, source))
                continue
            current = {"id": name, "blocks": [(name, source)], "skip": reason if kind == "skip" else None}
            chains.append(current)
    return chains


CHAINS = _chains()


@pytest.fixture(scope="module", autouse=True)
def _one_thread_per_pool():
    """One thread for torch and OpenBLAS while the blocks run, as in tests/test_torch.py: on a
    busy 2-CPU machine their default pools made the MiniLM blocks 5-10x slower
    (docs/bench_threads.md); the blocks' results do not depend on it."""
    from threadpoolctl import threadpool_limits

    import hsslin

    torch = sys.modules.get("torch") or (importlib.import_module("torch") if HAS_TORCH else None)
    old = (torch.get_num_threads() if torch else None, hsslin.get_num_threads())
    with threadpool_limits(1, user_api="blas"):
        if torch:
            torch.set_num_threads(1)
        yield
    if torch:
        torch.set_num_threads(old[0])
    hsslin.set_num_threads(old[1])  # docs/first-steps.md sets it


@pytest.mark.parametrize("chain", CHAINS, ids=[c["id"] for c in CHAINS])
def test_python_block_runs(chain, tmp_path, monkeypatch):
    if chain["skip"]:
        pytest.skip(chain["skip"])
    source = "".join(s for _, s in chain["blocks"])
    if not HAS_TORCH and re.search(r"\b(torch|transformers)\b", source):
        pytest.skip("needs the torch extras")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace = {"__name__": "__doc_block__"}
    for name, block in chain["blocks"]:
        exec(compile(block, name, "exec"), namespace)  # noqa: S102 - the docs' own examples


def test_markers_are_well_formed():
    for path in DOCS:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("<!--") and ("continue" in line or "skip" in line):
                marker = MARKER.search(line)
                assert marker, f"{path.name}:{lineno}: malformed marker {line.strip()!r}"
                if marker.group(1) != "continue":
                    assert marker.group(2).strip(), f"{path.name}:{lineno}: skip needs a reason"


def _shell_lines():
    for path in DOCS:
        for lang, line, source, _, _ in _blocks(path):
            if lang in ("bash", "sh", "console", ""):
                for offset, text in enumerate(source.splitlines()):
                    yield f"{path.relative_to(ROOT)}:{line + 1 + offset}", text


def test_install_commands_work_from_a_checkout():
    """No PyPI package named hsslin exists: installs name the checkout (".", ".[torch]", ...).

    The test extras are installed editable: ``python -m pytest`` in the
    checkout imports the source tree, which holds the compiled core only
    after ``pip install -e``. torch is pinned to its CPU build.
    """
    seen = 0
    for where, line in _shell_lines():
        for command in re.findall(r"pip install[^&|;#]*", line):
            seen += 1
            assert "hsslin[" not in command and not re.search(r"install\s+hsslin\b", command), where
            if ".[test]" in command:
                assert re.search(r"install\s+-e\s", command), f"{where}: the test install must be editable"
            if re.search(r"\btorch\b(?![=\]])", command):
                assert "torch==" in command, f"{where}: pin torch (torch==2.13.0): {command}"
    assert seen >= 3


def _defaults_regions(path: pathlib.Path) -> list:
    text = path.read_text(encoding="utf-8")
    return [" ".join(r.split()) for r in re.findall(r"<!-- defaults -->(.*?)<!-- /defaults -->", text, re.S)]


def test_docs_state_the_defaults_module():
    """The prose between <!-- defaults --> markers says what hsslin/_defaults.py holds."""
    from hsslin import _defaults

    method = _defaults.METHOD
    expected = [f"`{method}`", f"{_defaults.BUDGET:g} of the targets' bytes"]
    expected.append(f"{_defaults.MEASURED['mean_cosine']:.3f}")
    if _defaults.calibration_for(method) == "builtin":
        expected.append("calibrated on")
    expected.append(f"allocation `{_defaults.allocation_for(method)}`")
    regions = {path.name: _defaults_regions(path) for path in DOCS}
    assert regions["README.md"] and regions["first-steps.md"]
    for name, found in regions.items():
        for region in found:
            for phrase in expected:
                assert phrase in region, f"{name}: {phrase!r} missing from {region!r}"
