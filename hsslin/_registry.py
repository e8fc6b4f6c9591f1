"""Loaders for file kinds defined outside _hierarchical.

Kinds 1-4 are written by the C++ core (HSS, HODLR, CSR, reserved); kinds
from 5 on are Python containers (see _container.py).
"""

from __future__ import annotations

_LOADERS: dict[int, tuple] = {}
_CONTAINERS: dict[int, type] = {}


def register(kind: int, cls, impls: dict) -> None:
    _LOADERS[kind] = (cls, impls)


def register_container(kind: int, cls) -> None:
    _CONTAINERS[kind] = cls


def lookup(kind: int):
    if kind not in _LOADERS:
        raise ValueError(f"file holds an object of unknown kind {kind}; was it written by a newer hsslin?")
    return _LOADERS[kind]
