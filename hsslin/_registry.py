"""Loaders for file kinds defined outside _hierarchical (CSR, sparse plus hierarchical)."""

from __future__ import annotations

_LOADERS: dict[int, tuple] = {}


def register(kind: int, cls, impls: dict) -> None:
    _LOADERS[kind] = (cls, impls)


def lookup(kind: int):
    if kind not in _LOADERS:
        raise ValueError(f"file holds an object of unknown kind {kind}; "
                         "was it written by a newer hsslin?")
    return _LOADERS[kind]
