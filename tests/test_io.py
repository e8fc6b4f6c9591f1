"""The file format (hsslin/_io.py).

Files from main still load, damage is always a ValueError, saves are atomic,
and every class registers one kind.

The header is outside every checksum, and a container's table of contents
is parsed from the file, so both are fuzzed here; the C++ payloads (HSS,
HODLR, CSR) are fuzzed with valid checksums in test_binding_contract.py.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hsslin
from conftest import make_matrix
from hsslin import _io

DATA = Path(__file__).parent / "data"
MAIN_FILES = {
    "hss_f64": (hsslin.HSSMatrix, np.float64),
    "hss_f32": (hsslin.HSSMatrix, np.float32),
    "hodlr_f32": (hsslin.HODLRMatrix, np.float32),
    "csr_f64": (hsslin.CSRMatrix, np.float64),
    "lowrank_f32": (hsslin.LowRankMatrix, np.float32),
    "sparse_svd_f64": (hsslin.SparsePlusLowRank, np.float64),
    "sparse_hodlr_rcm_f32": (hsslin.SparsePlusHSS, np.float32),
    "sparse_hss_f64": (hsslin.SparsePlusHSS, np.float64),
}


# -- files written by main (tests/data/make_main_fixtures.py) ---------------------
@pytest.mark.parametrize("name", MAIN_FILES)
def test_files_written_by_main_load(name):
    cls, dtype = MAIN_FILES[name]
    blob = (DATA / f"{name}.hsslin").read_bytes()
    A = hsslin.load(DATA / f"{name}.hsslin")
    assert type(A) is cls and A.dtype == dtype
    with np.load(DATA / "main_dense.npz") as dense:
        np.testing.assert_array_equal(A.to_dense(), dense[name])
    # Writing it again gives main's bytes: the format did not change.
    assert A.to_bytes() == blob


@pytest.mark.parametrize("name", ["hss_f64", "hodlr_f32", "lowrank_f32"])
def test_pickles_written_by_main_load(name):
    with open(DATA / f"{name}.pickle", "rb") as f:
        A = pickle.load(f)  # a file of our own test suite, written by main
    with np.load(DATA / "main_dense.npz") as dense:
        np.testing.assert_array_equal(A.to_dense(), dense[name])


# -- one small object of every kind -------------------------------------------------
def _objects():
    W32 = make_matrix("cauchy", 20, 15, np.float32)
    W64 = W32.astype(np.float64)
    S = hsslin.CSRMatrix.from_dense(W32, density=0.1)
    H = hsslin.HODLRMatrix.from_dense(W32 - S.to_dense(), rank=2, leaf_size=5)
    return {
        "hss": hsslin.HSSMatrix.from_dense(W64, tol=1e-4, leaf_size=5),
        "hodlr": hsslin.HODLRMatrix.from_dense(W32, rank=2, leaf_size=5),
        "csr": hsslin.CSRMatrix.from_dense(W64, density=0.2),
        "lowrank": hsslin.LowRankMatrix.from_dense(W32, rank=2),
        "sparse+svd": hsslin.SparsePlusLowRank.from_dense(W64, density=0.1, rank=2),
        "sparse+hodlr-rows": hsslin.SparsePlusHSS(S, H, row_perm=np.arange(20)[::-1]),
        "sparse+hss-both": hsslin.SparsePlusHSS.from_dense(
            W64, density=0.1, tol=1e-3, hierarchy="hss", leaf_size=5
        ),
        "quantized-int4": hsslin.QuantizedMatrix.from_dense(W32, "int4", group_size=None, zero_point=True),
        "quantized-bfloat16": hsslin.QuantizedMatrix.from_dense(W64[:4], "bfloat16"),
    }


OBJECTS = _objects()


@pytest.mark.parametrize("name", OBJECTS)
def test_header_fields(name):
    A = OBJECTS[name]
    blob = A.to_bytes()
    magic, version, kind, scalar, reserved, length, checksum = _io.HEADER.unpack_from(blob)
    assert (magic, version, reserved) == (b"HSSLIN\x00\n", 1, 0)
    assert _io._BY_KIND[kind].cls is type(A)
    assert scalar == A.dtype.itemsize and length == len(blob) - _io.HEADER.size
    if not _io._BY_KIND[kind].is_core:
        assert checksum == zlib.crc32(blob[_io.HEADER.size :])


@pytest.mark.parametrize("name", OBJECTS)
def test_every_single_byte_corruption_is_a_value_error(name):
    """Each byte of the file changed to other values: ValueError, never a load, never another error.

    Header bytes (outside the checksum) take every other value; payload
    bytes one (the checksum catches any change to a single byte: CRC-32
    always, and FNV-1a's per-byte step is a bijection).
    """
    good = OBJECTS[name].to_bytes()
    for at in range(len(good)):
        values = range(256) if at < _io.HEADER.size else (good[at] ^ 0xA5,)
        for value in values:
            if value == good[at]:
                continue
            bad = bytearray(good)
            bad[at] = value
            try:
                _io.from_bytes(bytes(bad))
            except ValueError:
                continue
            pytest.fail(f"byte {at} set to {value} (was {good[at]}) loaded without error")


def _container(kind, toc, body: bytes, scalar=8) -> bytes:
    toc_bytes = json.dumps(toc).encode()
    payload = struct.pack("<Q", len(toc_bytes)) + toc_bytes + body
    return _io.HEADER.pack(_io.MAGIC, 1, kind, scalar, 0, len(payload), zlib.crc32(payload)) + payload


def _lowrank_toc(u_shape, u_nbytes, v_offset):
    return {
        "arrays": [
            {"name": "U", "dtype": "<f8", "shape": u_shape, "offset": 0, "nbytes": u_nbytes},
            {"name": "V", "dtype": "<f8", "shape": [2, 1], "offset": v_offset, "nbytes": 16},
        ],
        "blobs": [],
        "meta": {},
    }


@pytest.mark.parametrize(
    "toc, body, match",
    [
        # a size field far beyond the file: refused before anything is allocated
        (_lowrank_toc([10**12, 1], 8 * 10**12, 8 * 10**12), bytes(40), "does not fit"),
        (_lowrank_toc([10**6, 10**6], 16, 16), bytes(32), "cannot take"),
        (_lowrank_toc([3, 1], 24, 24), bytes(48), "lists 40 bytes"),
        (_lowrank_toc([3, -1], 24, 24), bytes(40), "shape"),
        (_lowrank_toc([3, 1.5], 24, 24), bytes(40), "shape"),
        (_lowrank_toc([3, 1], 24, 20), bytes(40), "offset"),
        ({**_lowrank_toc([3, 1], 24, 24), "arrays": [{"name": "U"}]}, bytes(40), "bad array entry"),
        ({**_lowrank_toc([3, 1], 24, 24), "extra": 1}, bytes(40), "exactly the keys"),
        ({**_lowrank_toc([3, 1], 24, 24), "meta": []}, bytes(40), "meta an object"),
        ([1, 2], bytes(40), "exactly the keys"),
        (_lowrank_toc([3, 2], 48, 48), bytes(64), "inconsistent LowRankMatrix"),
        (
            {**_lowrank_toc([3, 1], 24, 24), "blobs": [{"name": "L", "offset": 40, "nbytes": 0}]},
            bytes(40),
            "parts",
        ),
    ],
)
def test_crafted_tables_of_contents(toc, body, match):
    """Checksums recomputed: the table of contents itself must be checked, not trusted."""
    with pytest.raises(ValueError, match=match):
        _io.from_bytes(_container(_io.Kind.LOW_RANK, toc, body))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(["name", "dtype", "shape", "offset", "nbytes"])


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, 1), field=FIELDS, value=JSON, where=st.sampled_from(["array", "toc", "meta"]))
def test_fuzzed_tables_of_contents_are_value_errors(which, field, value, where):
    """Any JSON in any field of the table of contents: a ValueError, or (still valid) a load."""
    toc = _lowrank_toc([3, 1], 24, 24)
    if where == "array":
        toc["arrays"][which][field] = value
    elif where == "toc":
        toc[["arrays", "blobs"][which]] = value
    else:
        toc["meta"] = value
    body = np.arange(5, dtype="<f8").tobytes()
    try:
        A = _io.from_bytes(_container(_io.Kind.LOW_RANK, toc, body))
    except ValueError:
        return
    assert A.shape == (3, 2)


def test_crafted_dtype_and_names():
    for dtype in ("|O", "<c16", ">f8", "<U3", 7, ["<f8"]):
        toc = _lowrank_toc([3, 1], 24, 24)
        toc["arrays"][0]["dtype"] = dtype
        with pytest.raises(ValueError, match="dtype"):
            _io.from_bytes(_container(_io.Kind.LOW_RANK, toc, bytes(40)))
    toc = _lowrank_toc([3, 1], 24, 24)
    toc["arrays"][1]["name"] = "W"
    with pytest.raises(ValueError, match="cannot hold arrays"):
        _io.from_bytes(_container(_io.Kind.LOW_RANK, toc, bytes(40)))


def test_unreadable_table_of_contents():
    payload_toc = b"[" * 100000  # deep enough to exhaust the JSON parser's recursion
    payload = struct.pack("<Q", len(payload_toc)) + payload_toc
    blob = _io.HEADER.pack(_io.MAGIC, 1, _io.Kind.LOW_RANK, 8, 0, len(payload), zlib.crc32(payload)) + payload
    with pytest.raises(ValueError, match="unreadable"):
        _io.from_bytes(blob)
    for toc_len in (2**63, len(payload)):
        bad = struct.pack("<Q", toc_len) + payload[8:]
        blob = _io.HEADER.pack(_io.MAGIC, 1, _io.Kind.LOW_RANK, 8, 0, len(bad), zlib.crc32(bad)) + bad
        with pytest.raises(ValueError):
            _io.from_bytes(blob)


def test_nested_part_of_the_wrong_kind():
    A = OBJECTS["sparse+svd"]
    # The L part replaced by a CSR matrix (a valid file of another kind).
    blobs = [A.S.to_bytes(), A.S.to_bytes()]
    toc = {
        "arrays": [],
        "blobs": [
            {"name": "S", "offset": 0, "nbytes": len(blobs[0])},
            {"name": "L", "offset": len(blobs[0]), "nbytes": len(blobs[1])},
        ],
        "meta": {},
    }
    with pytest.raises(ValueError, match="part 'L' holds a CSRMatrix, expected LowRankMatrix"):
        _io.from_bytes(_container(_io.Kind.SPARSE_PLUS_LOW_RANK, toc, b"".join(blobs)))


def test_nesting_is_bounded_both_ways():
    A = OBJECTS["sparse+hodlr-rows"]
    for _ in range(_io._MAX_NESTING):
        A = hsslin.SparsePlusHSS(A.S, A)
    with pytest.raises(ValueError, match="nested"):
        A.to_bytes()
    with pytest.raises(ValueError, match="nested"):
        pickle.dumps(A)


def test_header_scalar_size_must_match_the_object():
    for name in ("lowrank", "sparse+svd", "sparse+hodlr-rows"):
        blob = bytearray(OBJECTS[name].to_bytes())
        blob[16] = 12 - blob[16]  # 4 <-> 8
        with pytest.raises(ValueError, match="header says"):
            _io.from_bytes(bytes(blob))


# -- saving ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OBJECTS)
def test_save_is_atomic(name, tmp_path, monkeypatch):
    A = OBJECTS[name]
    path = tmp_path / "A.hsslin"
    path.write_bytes(b"the previous file")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(_io.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        A.save(path)
    assert path.read_bytes() == b"the previous file"
    assert sorted(os.listdir(tmp_path)) == ["A.hsslin"]  # no temporary file left behind
    monkeypatch.undo()
    A.save(path)
    assert path.read_bytes() == A.to_bytes()
    assert sorted(os.listdir(tmp_path)) == ["A.hsslin"]
    B = type(A).load(str(path))
    assert B.to_bytes() == A.to_bytes()


def test_save_into_a_directory_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        OBJECTS["csr"].save(tmp_path)
    assert os.listdir(tmp_path) == []


def test_class_load_checks_the_class(tmp_path):
    OBJECTS["csr"].save(tmp_path / "S.hsslin")
    with pytest.raises(ValueError, match="holds a CSRMatrix, not a HSSMatrix"):
        hsslin.HSSMatrix.load(tmp_path / "S.hsslin")


# -- the kind table --------------------------------------------------------------------
def test_every_operator_class_has_one_kind():
    public = {
        hsslin.HSSMatrix,
        hsslin.HODLRMatrix,
        hsslin.CSRMatrix,
        hsslin.LowRankMatrix,
        hsslin.SparsePlusLowRank,
        hsslin.SparsePlusHSS,
        hsslin.QuantizedMatrix,
        hsslin.Factorization,
        # from_kernel's matrices keep their geometric order; a factorization's factors are parts.
        hsslin._hierarchical.PermutedHSSMatrix,
        hsslin._hierarchical.PermutedHODLRMatrix,
        hsslin._factor._HSSFactor,
        hsslin._factor._HODLRFactor,
        hsslin._factor._DenseFactor,
    }
    assert {c.cls for c in _io._BY_KIND.values()} == public
    assert set(_io._BY_KIND) == {k.value for k in _io.Kind}
    with pytest.raises(RuntimeError, match="twice"):
        _io.register_container(_io.Kind.LOW_RANK, hsslin.LowRankMatrix)
    with pytest.raises(TypeError, match="no file format"):
        _io.to_bytes(hsslin.HSSMatrix.from_dense(np.eye(3)).T)
