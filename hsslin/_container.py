"""File container for objects assembled in Python from core objects.

Same 40-byte header as the C++ format (magic, version, kind, scalar size,
payload length, checksum), with a CRC-32 of the payload in the checksum
field, then a JSON table of contents and the raw arrays and nested blobs it
lists. Everything is checked on load.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

MAGIC = b"HSSLIN\x00\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIIIQQ")


def write_container(
    kind: int, dtype, arrays: dict, blobs: dict | None = None, meta: dict | None = None
) -> bytes:
    blobs = blobs or {}
    toc = {"arrays": [], "blobs": [], "meta": meta or {}}
    chunks = []
    offset = 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        toc["arrays"].append(
            {
                "name": name,
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "offset": offset,
                "nbytes": arr.nbytes,
            }
        )
        chunks.append(arr.tobytes())
        offset += arr.nbytes
    for name, blob in blobs.items():
        toc["blobs"].append({"name": name, "offset": offset, "nbytes": len(blob)})
        chunks.append(blob)
        offset += len(blob)
    toc_bytes = json.dumps(toc).encode()
    payload = struct.pack("<Q", len(toc_bytes)) + toc_bytes + b"".join(chunks)
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, kind, np.dtype(dtype).itemsize, 0, len(payload), zlib.crc32(payload)
    )
    return header + payload


def read_container(data: bytes, kind: int):
    """Returns (arrays, blobs, meta); raises ValueError on any inconsistency."""
    if len(data) < _HEADER.size or data[:8] != MAGIC:
        raise ValueError("not an hsslin file (bad magic number or shorter than the header)")
    _, version, file_kind, _, _, length, checksum = _HEADER.unpack_from(data)
    if version > FORMAT_VERSION or version < 1:
        raise ValueError(
            f"file format version {version} is not supported: this build of hsslin "
            f"reads versions 1 to {FORMAT_VERSION} (was it written by a newer "
            "hsslin?)"
        )
    if file_kind != kind:
        raise ValueError(f"file holds object kind {file_kind}, expected {kind}")
    payload = data[_HEADER.size :]
    if len(payload) != length:
        raise ValueError(
            f"truncated or padded file: header says {length} payload bytes, found {len(payload)}"
        )
    if zlib.crc32(payload) != checksum:
        raise ValueError("corrupted file: checksum mismatch")
    try:
        (toc_len,) = struct.unpack_from("<Q", payload)
        toc = json.loads(payload[8 : 8 + toc_len])
        body = memoryview(payload)[8 + toc_len :]
        arrays = {}
        for entry in toc["arrays"]:
            start, size = int(entry["offset"]), int(entry["nbytes"])
            if start < 0 or start + size > len(body):
                raise ValueError("array outside the payload")
            arr = np.frombuffer(body[start : start + size], dtype=np.dtype(entry["dtype"]))
            arrays[entry["name"]] = arr.reshape(entry["shape"]).copy()
        blobs = {}
        for entry in toc["blobs"]:
            start, size = int(entry["offset"]), int(entry["nbytes"])
            if start < 0 or start + size > len(body):
                raise ValueError("blob outside the payload")
            blobs[entry["name"]] = bytes(body[start : start + size])
        return arrays, blobs, toc.get("meta", {})
    except (KeyError, TypeError, struct.error, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupted file: bad table of contents ({exc})") from exc
