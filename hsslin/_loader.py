"""Picks the build of the C++ core that matches this CPU.

The extension is compiled twice (see CMakeLists.txt): ``_core`` runs on any
x86-64, ``_core_avx2`` needs AVX2 and FMA. ``HSSLIN_SIMD=generic`` or
``HSSLIN_SIMD=avx2`` forces one (tests use this to exercise both paths).
"""

from __future__ import annotations

import importlib
import os
import platform


def _cpu_has_avx2() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"avx2", "fma", "f16c"} <= flags
    except OSError:
        pass
    return False


def _load():
    requested = os.environ.get("HSSLIN_SIMD", "").strip().lower()
    if requested not in ("", "auto", "generic", "avx2"):
        raise ImportError(f"HSSLIN_SIMD must be 'generic', 'avx2' or 'auto', got {requested!r}")
    want_avx2 = requested == "avx2" or (requested in ("", "auto") and _cpu_has_avx2())
    if want_avx2:
        try:
            return importlib.import_module("hsslin._core_avx2")
        except ImportError:
            if requested == "avx2":
                raise
    return importlib.import_module("hsslin._core")


core = _load()
