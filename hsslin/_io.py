r"""hsslin's file format: the header, the kind table, the container layout, save and load.

Every file (and every pickle, which holds the same bytes) starts with one
40-byte little-endian header::

    offset  size  field
         0     8  magic b"HSSLIN\0\n"
         8     4  format version (1)
        12     4  object kind (the Kind table below)
        16     4  scalar size: 4 (float32) or 8 (float64)
        20     4  reserved, 0
        24     8  payload length in bytes
        32     8  checksum of the payload

then the payload. Two codecs fill it:

- **core** kinds (HSS, HODLR, CSR, QuantizedMatrix): the C++ core writes and reads the
  payload itself (``serialize``/``deserialize``), with an FNV-1a checksum,
  bounds-checking every count it reads;
- **container** kinds (every class assembled in Python): a CRC-32
  checksum, then a u64 table-of-contents length, a JSON table of contents
  ``{"arrays": [...], "blobs": [...], "meta": {...}}`` and the raw bytes of
  the arrays and nested objects it lists, back to back in that order. A
  nested object is a complete file of its own (header included).

A class joins the format by inheriting :class:`Persistent` and calling
:func:`register_core` or :func:`register_container` once, with a member of
:class:`Kind`. :func:`from_bytes` checks the header, then (containers) the
checksum, the table of contents against the file's length and the class's
schema, before allocating anything, so a damaged file raises ValueError.
"""

from __future__ import annotations

import enum
import json
import math
import os
import secrets
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"HSSLIN\x00\n"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sIIIIQQ")  # magic, version, kind, scalar size, reserved, length, checksum
_TOC_LENGTH = struct.Struct("<Q")
_SCALAR_DTYPES = {4: np.dtype(np.float32), 8: np.dtype(np.float64)}
# Array dtypes a container may hold (factors and int32/int64 index arrays), little-endian.
_ARRAY_DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8"})
_MAX_NESTING = 8  # objects inside objects; hsslin's own composites nest 1 deep


class Kind(enum.IntEnum):
    """The object kinds a file can hold (the number in the header's kind field).

    1-3 are written by the C++ core (``ObjectKind`` in cpp/include/hsslin/io.hpp
    holds the same numbers); 4 is reserved there and never written; 5 on are
    Python containers, except 10 and 11, the core's factorizations, and 14,
    the core's quantized matrices.
    """

    HSS = 1
    HODLR = 2
    CSR = 3
    LOW_RANK = 5
    SPARSE_PLUS_LOW_RANK = 6
    SPARSE_PLUS_HSS = 7
    PERMUTED_HSS = 8  # an HSSMatrix on a geometric order, with its permutation (from_kernel)
    FACTORIZATION = 9  # a Factorization: its factors and, for a permuted matrix, the permutation
    HSS_FACTOR = 10  # C++ (ObjectKind::HSSFactor): a ULV factorization
    HODLR_FACTOR = 11  # C++ (ObjectKind::HODLRFactor): a Sherman-Morrison-Woodbury factorization
    DENSE_FACTOR = 12  # LAPACK's LU or Cholesky factors of one dense block
    PERMUTED_HODLR = 13  # as PERMUTED_HSS, for a HODLRMatrix
    QUANTIZED = 14  # C++ (ObjectKind::Quantized): a QuantizedMatrix (codes, float16 scales, zero points)


@dataclass(frozen=True)
class _Codec:
    kind: Kind
    cls: type
    impls: dict = field(default_factory=dict)  # core kinds: dtype -> C++ class
    arrays: frozenset = frozenset()  # container kinds: array names always present
    optional_arrays: frozenset = frozenset()
    parts: dict = field(default_factory=dict)  # container kinds: part name -> allowed classes

    @property
    def is_core(self) -> bool:
        return bool(self.impls)


_BY_KIND: dict[int, _Codec] = {}
_BY_TYPE: dict[type, _Codec] = {}


def _register(codec: _Codec) -> None:
    if codec.kind in _BY_KIND or codec.cls in _BY_TYPE:
        raise RuntimeError(f"file kind {codec.kind!r} or class {codec.cls.__name__} registered twice")
    _BY_KIND[codec.kind] = codec
    _BY_TYPE[codec.cls] = codec


def register_core(kind: Kind, cls: type, impls: dict) -> None:
    """Register a class whose payload the C++ core writes.

    `cls` wraps a C++ object (``op._impl``, with ``serialize()``) and has a
    classmethod ``_from_impl(impl)`` (as every :class:`CorePersistent` does);
    `impls` maps each dtype to the C++ class whose ``deserialize(bytes)``
    reads it.
    """
    _register(_Codec(kind, cls, impls={np.dtype(k): v for k, v in impls.items()}))


def register_container(
    kind: Kind, cls: type, *, arrays=(), optional_arrays=(), parts: dict | None = None
) -> None:
    """Register a class stored as a container of arrays and nested objects.

    `cls` implements ``_container_parts() -> (arrays, parts, meta)`` (dicts of
    ndarrays, of hsslin objects, and a JSON-able dict) and a classmethod
    ``_from_container(arrays, parts, meta)``. The schema given here (array
    names, part names with the classes each may hold) is checked on load
    before anything is decoded.
    """
    parts = {name: tuple(types) for name, types in (parts or {}).items()}
    _register(
        _Codec(kind, cls, arrays=frozenset(arrays), optional_arrays=frozenset(optional_arrays), parts=parts)
    )


def _codec_of(obj) -> _Codec:
    for t in type(obj).__mro__:
        codec = _BY_TYPE.get(t)
        if codec is not None:
            return codec
    raise TypeError(f"{type(obj).__name__} has no file format")


# -- writing ---------------------------------------------------------------------


def to_bytes(obj) -> bytes:
    """The versioned, checksummed bytes that `save` writes for `obj`."""
    return _encode(obj, 0)


def _encode(obj, depth: int) -> bytes:
    codec = _codec_of(obj)
    if codec.is_core:
        return obj._impl.serialize()
    if depth >= _MAX_NESTING:
        raise ValueError(f"objects nested more than {_MAX_NESTING} deep cannot be saved (nor loaded)")
    arrays, parts, meta = obj._container_parts()
    toc: dict = {"arrays": [], "blobs": [], "meta": meta}
    chunks, offset = [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr, dtype=np.asarray(arr).dtype.newbyteorder("<"))
        entry = {"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape)}
        toc["arrays"].append({**entry, "offset": offset, "nbytes": arr.nbytes})
        chunks.append(arr.tobytes())
        offset += arr.nbytes
    for name, part in parts.items():
        blob = _encode(part, depth + 1)
        toc["blobs"].append({"name": name, "offset": offset, "nbytes": len(blob)})
        chunks.append(blob)
        offset += len(blob)
    toc_bytes = json.dumps(toc).encode()
    payload = _TOC_LENGTH.pack(len(toc_bytes)) + toc_bytes + b"".join(chunks)
    itemsize = obj.dtype.itemsize
    return (
        HEADER.pack(MAGIC, FORMAT_VERSION, codec.kind, itemsize, 0, len(payload), zlib.crc32(payload))
        + payload
    )


def save(obj, path) -> None:
    """Write `obj` to `path` atomically: a temporary file in the same directory, then a rename.

    A reader never sees a half-written file, and a failed write leaves an
    existing file at `path` as it was.
    """
    data = to_bytes(obj)
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb") as f:  # created with the usual permissions (umask), unlike mkstemp's 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Persistent:
    """Mixin for every class with a file kind: ``to_bytes``, ``save``, ``load``, pickling.

    ``copy.deepcopy`` and ``pickle`` go through the same bytes as ``save``,
    so anything that can be saved can be pickled and copied.

    Examples
    --------
    >>> import copy, os, pickle, tempfile, numpy as np, hsslin
    >>> S = hsslin.CSRMatrix.from_dense([[0.0, 2.0], [3.0, 0.0]], density=0.5)
    >>> path = os.path.join(tempfile.mkdtemp(), "S.hsslin")
    >>> S.save(path)
    >>> hsslin.CSRMatrix.load(path).to_dense()
    array([[0., 2.],
           [3., 0.]])
    >>> pickle.loads(pickle.dumps(S)).nnz, copy.deepcopy(S).nnz
    (2, 2)
    """

    def to_bytes(self) -> bytes:
        """The versioned, checksummed binary form that :meth:`save` writes."""
        return to_bytes(self)

    def save(self, path) -> None:
        """Write this object to `path` (atomically; read it back with ``hsslin.load``)."""
        save(self, path)

    @classmethod
    def load(cls, path):
        """Read an object written by :meth:`save`; ValueError unless `path` holds one of this class."""
        obj = load(path)
        if not isinstance(obj, cls):
            raise ValueError(f"{os.fspath(path)} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj

    def __reduce__(self):
        return (from_bytes, (to_bytes(self),))


class CorePersistent(Persistent):
    """Persistent for a wrapper of one C++ object, ``self._impl``, whose payload the core writes.

    Its class is registered with :func:`register_core`; loading rebuilds it
    by ``cls(impl)``.
    """

    @classmethod
    def _from_impl(cls, impl):
        return cls(impl)


# -- reading ---------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """The checked fields of a file's header."""

    kind: Kind
    dtype: np.dtype
    length: int
    checksum: int


def read_header(data) -> Header:
    """Check every header field of `data` (not the payload); ValueError on any inconsistency."""
    if len(data) < HEADER.size or bytes(data[:8]) != MAGIC:
        raise ValueError("not an hsslin file (bad magic number or shorter than the header)")
    _, version, kind, scalar, reserved, length, checksum = HEADER.unpack_from(data)
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"file format version {version} is not supported: this build of hsslin reads "
            f"versions 1 to {FORMAT_VERSION} (was it written by a newer hsslin?)"
        )
    if kind not in _BY_KIND:
        raise ValueError(
            f"corrupted file or newer hsslin: unknown object kind {kind} "
            f"(known: {', '.join(f'{k.value} {_BY_KIND[k].cls.__name__}' for k in sorted(_BY_KIND))})"
        )
    if scalar not in _SCALAR_DTYPES:
        raise ValueError(f"corrupted file: scalar size {scalar}, expected 4 or 8")
    if reserved != 0:
        raise ValueError(f"corrupted file: reserved header field is {reserved}, expected 0")
    if length != len(data) - HEADER.size:
        raise ValueError(
            f"truncated or padded file: header says {length} payload bytes, found {len(data) - HEADER.size}"
        )
    return Header(Kind(kind), _SCALAR_DTYPES[scalar], length, checksum)


def from_bytes(data):
    """Decode the bytes of :func:`to_bytes` (or a file's contents); ValueError if damaged.

    Examples
    --------
    >>> import numpy as np, hsslin
    >>> from hsslin._io import from_bytes
    >>> L = hsslin.LowRankMatrix(np.ones((3, 1)), np.ones((2, 1)))
    >>> from_bytes(L.to_bytes()).to_dense()
    array([[1., 1.],
           [1., 1.],
           [1., 1.]])
    """
    return _decode(data, 0)


def _decode(data, depth: int):
    header = read_header(data)
    codec = _BY_KIND[header.kind]
    if codec.is_core:
        # The C++ reader checks the checksum and bounds every count it reads.
        obj = codec.cls._from_impl(codec.impls[header.dtype].deserialize(bytes(data)))
    else:
        obj = _read_container(memoryview(data)[HEADER.size :], header, codec, depth)
    if obj.dtype != header.dtype:
        raise ValueError(
            f"corrupted file: header says {header.dtype} values, the {codec.cls.__name__} holds {obj.dtype}"
        )
    return obj


def load(path):
    """Read any object written by ``save`` and checks its version, checksum and layout.

    Raises ValueError for a file that is not an hsslin file, is truncated or
    corrupted, or was written by a newer format version.

    Examples
    --------
    >>> import numpy as np, hsslin, tempfile, os
    >>> H = hsslin.HSSMatrix.from_dense(np.eye(100) + 0.01)
    >>> path = os.path.join(tempfile.mkdtemp(), "eye.hss")
    >>> H.save(path)
    >>> H2 = hsslin.load(path)
    >>> bool(np.array_equal(H2.to_dense(), H.to_dense()))
    True
    """
    with open(path, "rb") as f:
        data = f.read()
    return from_bytes(data)


def _corrupted(what: str) -> ValueError:
    return ValueError(f"corrupted file: {what}")


def _is_count(value) -> bool:
    return type(value) is int and value >= 0


def _read_container(payload: memoryview, header: Header, codec: _Codec, depth: int):
    if zlib.crc32(payload) != header.checksum:
        raise _corrupted("checksum mismatch")
    if len(payload) < _TOC_LENGTH.size:
        raise _corrupted("no table of contents")
    (toc_len,) = _TOC_LENGTH.unpack_from(payload)
    if toc_len > len(payload) - _TOC_LENGTH.size:
        raise _corrupted(f"table of contents of {toc_len} bytes in a payload of {len(payload)}")
    body = payload[_TOC_LENGTH.size + toc_len :]
    try:
        toc = json.loads(bytes(payload[_TOC_LENGTH.size : _TOC_LENGTH.size + toc_len]))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _corrupted(f"unreadable table of contents ({exc})") from exc
    arrays_toc, blobs_toc, meta = _check_toc(toc, codec, len(body))
    arrays = {}
    for e in arrays_toc:
        raw = body[e["offset"] : e["offset"] + e["nbytes"]]
        dtype = np.dtype(e["dtype"])
        arrays[e["name"]] = (
            np.frombuffer(raw, dtype=dtype).reshape(e["shape"]).astype(dtype.newbyteorder("="))
        )
    parts = {}
    for e in blobs_toc:
        blob = body[e["offset"] : e["offset"] + e["nbytes"]]
        allowed = codec.parts[e["name"]]
        inner = _BY_KIND[read_header(blob).kind].cls
        if not any(issubclass(inner, t) for t in allowed):
            names = " or ".join(t.__name__ for t in allowed)
            raise _corrupted(f"part {e['name']!r} holds a {inner.__name__}, expected {names}")
        if depth >= _MAX_NESTING:  # a crafted file could otherwise nest until the stack runs out
            raise _corrupted(f"objects nested more than {_MAX_NESTING} deep")
        parts[e["name"]] = _decode(blob, depth + 1)
    try:
        return codec.cls._from_container(arrays, parts, meta)
    except (TypeError, ValueError) as exc:
        raise _corrupted(f"inconsistent {codec.cls.__name__} ({exc})") from exc


def _check_toc(toc, codec: _Codec, body_len: int):
    """The table of contents' array and blob entries, checked against the schema and the body length."""
    if not isinstance(toc, dict) or set(toc) != {"arrays", "blobs", "meta"}:
        raise _corrupted("the table of contents needs exactly the keys arrays, blobs and meta")
    arrays, blobs, meta = toc["arrays"], toc["blobs"], toc["meta"]
    if not isinstance(arrays, list) or not isinstance(blobs, list) or not isinstance(meta, dict):
        raise _corrupted("arrays and blobs must be lists and meta an object")
    offset = 0  # entries are written back to back, arrays first: check exactly that
    for e in arrays:
        _check_entry(e, {"name", "dtype", "shape", "offset", "nbytes"}, "array")
        shape, dtype = e["shape"], e["dtype"]
        if not isinstance(dtype, str) or dtype not in _ARRAY_DTYPES:
            raise _corrupted(f"array {e['name']!r} has dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > 2 or not all(_is_count(s) for s in shape):
            raise _corrupted(f"array {e['name']!r} has shape {shape!r}")
        if e["nbytes"] != math.prod(shape) * int(dtype[2]):
            raise _corrupted(f"array {e['name']!r} of shape {shape} cannot take {e['nbytes']} bytes")
        offset = _check_span(e, offset, body_len)
    for e in blobs:
        _check_entry(e, {"name", "offset", "nbytes"}, "blob")
        offset = _check_span(e, offset, body_len)
    if offset != body_len:
        raise _corrupted(f"the table of contents lists {offset} bytes, the body holds {body_len}")
    names = [e["name"] for e in arrays]
    if (
        len(set(names)) != len(names)
        or not codec.arrays <= set(names) <= codec.arrays | codec.optional_arrays
    ):
        raise _corrupted(f"a {codec.cls.__name__} cannot hold arrays {sorted(names)}")
    parts = [e["name"] for e in blobs]
    if sorted(parts) != sorted(codec.parts):
        raise _corrupted(f"a {codec.cls.__name__} holds parts {sorted(codec.parts)}, the file lists {parts}")
    return arrays, blobs, meta


def _check_entry(entry, keys: set, what: str) -> None:
    """An entry is an object with exactly `keys`, a string name, and counts for offset and size."""
    if (
        not isinstance(entry, dict)
        or set(entry) != keys
        or not isinstance(entry["name"], str)
        or not _is_count(entry["offset"])
        or not _is_count(entry["nbytes"])
    ):
        raise _corrupted(f"bad {what} entry {entry!r}")


def _check_span(entry: dict, offset: int, body_len: int) -> int:
    if entry["offset"] != offset or offset + entry["nbytes"] > body_len:
        raise _corrupted(
            f"{entry['name']!r} at offset {entry['offset']!r} with {entry['nbytes']} bytes does not fit "
            f"the body of {body_len} bytes after offset {offset}"
        )
    return offset + entry["nbytes"]
