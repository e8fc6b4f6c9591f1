"""The type stubs of the compiled core (hsslin/_core.pyi) list exactly what it binds.

Regenerate them after changing a binding (docs/architecture.md)::

    pip install pybind11-stubgen && pybind11-stubgen hsslin._core -o . && ruff format hsslin/_core.pyi
"""

from __future__ import annotations

import ast
from pathlib import Path

from hsslin import _core

STUB = Path(__file__).parent.parent / "hsslin" / "_core.pyi"
REGENERATE = "hsslin/_core.pyi is stale: regenerate it (see tests/test_stubs.py)"


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _stub_tree():
    tree = ast.parse(STUB.read_text())
    top, classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top.add(node.name)
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            classes[node.name] = _public(members)
        elif isinstance(node, ast.FunctionDef):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
    return _public(top), classes


def test_stub_names_every_binding_and_nothing_else():
    top, classes = _stub_tree()
    runtime = _public(n for n in dir(_core) if not isinstance(getattr(_core, n), type(_core)))
    assert top == runtime, REGENERATE
    for name, members in classes.items():
        bound = _public(vars(getattr(_core, name)))
        assert members == bound, (name, REGENERATE)


def test_package_is_marked_typed():
    assert (STUB.parent / "py.typed").exists()
