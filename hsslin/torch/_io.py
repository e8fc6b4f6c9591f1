"""The compressed-model folder: ``factors.safetensors`` plus ``manifest.json``, written and read back.

Every field of the manifest is checked before anything is loaded, and the
factors file must match the manifest's SHA-256; anything else raises one
ValueError that names the folder and the bad field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

import torch
from torch import nn

from .._io import from_bytes as _operator_from_bytes
from ._layer import HSSLinear, compressed_layers
from ._report import operator_kind
from ._targets import replace_module
from ._weights import is_replaceable, weight_matrix

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FACTORS_FILE = "factors.safetensors"
_FORMAT_NAME = "hsslin-torch"
# A manifest holds a few hundred bytes per layer; anything far larger is not one.
_MANIFEST_MAX_BYTES = 64 << 20
_SOURCES = ("Linear", "Conv1D")
_OPERATOR_DTYPES = ("float32", "float64")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Every key save_compressed writes; each is required on reading.
_MANIFEST_KEYS = ("format", "format_version", "hsslin_version", "torch_version", "method")
_MANIFEST_KEYS += ("modules", "files", "factor_bytes", "factor_bytes_on_disk")
_MODULE_KEYS = ("name", "source", "shape", "weight_dtype", "operator", "operator_dtype")
_MODULE_KEYS += ("method", "params", "has_bias", "nbytes", "blob_bytes")


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _float_dtype(name: str) -> torch.dtype | None:
    """The torch floating-point dtype called `name` (``"bfloat16"``), or None."""
    dtype = getattr(torch, name, None) if isinstance(name, str) and name.isidentifier() else None
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else None


def weight_itemsize(entry: dict) -> int:
    """Bytes per entry of the dense weight a manifest entry replaced."""
    return torch.empty((), dtype=_float_dtype(entry["weight_dtype"])).element_size()


# -- save ------------------------------------------------------------------------------
def save_compressed(model: nn.Module, directory) -> dict:
    """Writes every HSSLinear of `model` to `directory`: factors + ``manifest.json``.

    ``factors.safetensors`` holds, per layer, the operator's versioned,
    checksummed hsslin blob as a uint8 tensor (``<name>.operator``) and the
    bias (``<name>.bias``). The manifest records the format version, hsslin
    and torch versions, per layer the method, parameters, shape, dtypes and
    bytes, and the file's SHA-256. Returns the manifest; its
    ``factor_bytes_on_disk`` (blob bytes) sits next to ``factor_bytes``
    (operators' ``nbytes``, what the report counts). Both files are written
    to temporary names first and renamed, so a failed write leaves no
    half-written folder behind.
    """
    from safetensors.torch import save_file

    from .. import __version__

    layers = compressed_layers(model)
    if not layers:
        raise ValueError("model has no HSSLinear layers; run compress_model first")
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{directory} is a file, not a folder: choose another output folder")
    os.makedirs(directory, exist_ok=True)
    tensors, entries = {}, []
    for name, layer in layers:
        op = layer.get_operator()
        blob = op.to_bytes()
        tensors[f"{name}.operator"] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
        if layer.bias is not None:
            tensors[f"{name}.bias"] = layer.bias.detach().cpu().contiguous()
        entries.append(
            {
                "name": name,
                "source": layer.source,
                "shape": [layer.out_features, layer.in_features],
                "weight_dtype": _dtype_name(layer.weight_dtype),
                "operator": operator_kind(op),
                "operator_dtype": str(op.dtype),
                "method": layer.method,
                "params": layer.params,
                "has_bias": layer.bias is not None,
                "nbytes": int(op.nbytes),
                "blob_bytes": len(blob),
            }
        )
    path = os.path.join(directory, FACTORS_FILE)
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata={"format": _FORMAT_NAME})
    os.replace(tmp, path)
    methods = sorted({e["method"] or "?" for e in entries})
    manifest = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "hsslin_version": __version__,
        "torch_version": torch.__version__,
        "method": methods[0] if len(methods) == 1 else methods,
        "modules": entries,
        "files": {FACTORS_FILE: {"sha256": _sha256(path), "bytes": os.path.getsize(path)}},
        "factor_bytes": sum(e["nbytes"] for e in entries),
        "factor_bytes_on_disk": sum(e["blob_bytes"] for e in entries),
    }
    tmp = os.path.join(directory, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, os.path.join(directory, MANIFEST))
    return manifest


# -- the manifest's schema -----------------------------------------------------------------
class _CorruptedError(ValueError):
    pass


def _is_int(value, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _require(ok: bool, field: str, expected: str, value) -> None:
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise _CorruptedError(f"'{field}' must be {expected}, got {shown}")


def _check_module(i: int, e) -> None:
    at = f"modules[{i}]"
    _require(isinstance(e, dict), at, "an object", e)
    for key in _MODULE_KEYS:
        if key not in e:
            raise _CorruptedError(f"'{at}' has no '{key}'")
    _require(isinstance(e["name"], str) and e["name"] != "", f"{at}.name", "a module name", e["name"])
    _require(e["source"] in _SOURCES, f"{at}.source", " or ".join(map(repr, _SOURCES)), e["source"])
    shape = e["shape"]
    _require(
        isinstance(shape, list) and len(shape) == 2 and all(_is_int(s, 1) for s in shape),
        f"{at}.shape",
        "[rows, columns] (positive integers)",
        shape,
    )
    _require(
        _float_dtype(e["weight_dtype"]) is not None,
        f"{at}.weight_dtype",
        "a torch floating-point dtype",
        e["weight_dtype"],
    )
    operator = e["operator"]
    _require(isinstance(operator, str) and operator != "", f"{at}.operator", "a class name", operator)
    _require(
        e["operator_dtype"] in _OPERATOR_DTYPES,
        f"{at}.operator_dtype",
        "'float32' or 'float64'",
        e["operator_dtype"],
    )
    method = e["method"]
    _require(method is None or isinstance(method, str), f"{at}.method", "a string or null", method)
    _require(isinstance(e["params"], dict), f"{at}.params", "an object", e["params"])
    _require(isinstance(e["has_bias"], bool), f"{at}.has_bias", "true or false", e["has_bias"])
    for key in ("nbytes", "blob_bytes"):
        _require(_is_int(e[key], 1), f"{at}.{key}", "a positive integer", e[key])


def _check_manifest(manifest) -> None:
    """Raises _CorruptedError naming the first field that is missing or malformed."""
    for key in _MANIFEST_KEYS:
        if key not in manifest:
            raise _CorruptedError(f"it has no '{key}'")
    for key in ("hsslin_version", "torch_version"):
        _require(isinstance(manifest[key], str), key, "a string", manifest[key])
    method = manifest["method"]
    names = method if isinstance(method, list) and method else [method]
    _require(
        all(isinstance(m, str) for m in names),
        "method",
        "a string or a list of strings",
        method,
    )
    modules = manifest["modules"]
    _require(isinstance(modules, list) and modules, "modules", "a non-empty list", modules)
    for i, entry in enumerate(modules):
        _check_module(i, entry)
    names = [e["name"] for e in modules]
    if len(set(names)) != len(names):
        raise _CorruptedError("'modules' lists a module twice")
    files = manifest["files"]
    _require(
        isinstance(files, dict) and set(files) == {FACTORS_FILE},
        "files",
        f"an object with exactly the entry {FACTORS_FILE!r}",
        files,
    )
    record = files[FACTORS_FILE]
    at = f"files.{FACTORS_FILE}"
    _require(isinstance(record, dict), at, "an object", record)
    _require(
        isinstance(record.get("sha256"), str) and _SHA256.fullmatch(record["sha256"]) is not None,
        f"{at}.sha256",
        "64 lowercase hex digits",
        record.get("sha256"),
    )
    _require(_is_int(record.get("bytes"), 1), f"{at}.bytes", "a positive integer", record.get("bytes"))
    for key, field in (("factor_bytes", "nbytes"), ("factor_bytes_on_disk", "blob_bytes")):
        total = sum(e[field] for e in modules)
        value = manifest[key]
        _require(_is_int(value) and value == total, key, f"the sum of the modules' {field} ({total})", value)


def read_manifest(directory) -> dict:
    """Reads and checks ``manifest.json`` of a folder written by :func:`save_compressed`.

    Raises FileNotFoundError for a missing folder or manifest, ValueError
    for a corrupted manifest (any missing or malformed field) or an
    unsupported format version.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise FileNotFoundError(f"{directory} is a file, not a folder written by hsslin compress")
        raise FileNotFoundError(f"{directory}: no such folder")
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory} has no {MANIFEST}: not written by hsslin.torch.save_compressed")
    if os.path.getsize(path) > _MANIFEST_MAX_BYTES:
        raise ValueError(f"{path} is corrupted: {os.path.getsize(path):,} bytes is no hsslin manifest")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path} is corrupted (not valid JSON: {reason})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT_NAME:
        raise ValueError(f"{path} is not an hsslin.torch manifest")
    version = manifest.get("format_version")
    if not _is_int(version, 1) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version!r}; this hsslin reads version "
            f"{FORMAT_VERSION} (was it written by a newer hsslin?)"
        )
    try:
        _check_manifest(manifest)
    except _CorruptedError as exc:
        raise ValueError(f"{path} is corrupted: {exc}") from None
    return manifest


# -- load ------------------------------------------------------------------------------
def _resolve_name(model: nn.Module, name: str) -> str:
    """`name` in `model`, allowing for Hugging Face's base-model prefix.

    A folder saved from ``AutoModel`` (names ``layers.0...``) loads into the
    ``AutoModelForCausalLM`` of the same checkpoint (``model.layers.0...``)
    and the reverse.
    """
    prefix = getattr(model, "base_model_prefix", "") or ""
    candidates = [name]
    if prefix:
        candidates += [f"{prefix}.{name}", name[len(prefix) + 1 :] if name.startswith(prefix + ".") else None]
    for candidate in candidates:
        if candidate:
            try:
                model.get_submodule(candidate)
                return candidate
            except AttributeError:
                continue
    raise ValueError(
        f"model {type(model).__name__} has no module {name!r} (saved from another architecture?)"
    )


def _read_factors(directory: str, manifest: dict) -> dict:
    """The factors file's tensors, after its size and SHA-256 matched the manifest."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = os.path.join(directory, FACTORS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing")
    record = manifest["files"][FACTORS_FILE]
    if os.path.getsize(path) != record["bytes"] or _sha256(path) != record["sha256"]:
        raise ValueError(f"{path} is corrupted: its SHA-256 does not match the manifest")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is corrupted: {exc}") from exc


def _operator_of(entry: dict, tensors: dict, where: str):
    """The operator saved for `entry`, checked against everything the manifest says of it."""
    key = f"{entry['name']}.operator"
    blob = tensors.get(key)
    if blob is None or blob.dtype != torch.uint8 or blob.dim() != 1 or blob.numel() != entry["blob_bytes"]:
        raise ValueError(f"{where} is corrupted: no {entry['blob_bytes']}-byte tensor {key!r}")
    try:
        op = _operator_from_bytes(blob.numpy().tobytes())
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{where} is corrupted: {key}: {exc}") from None
    found = (operator_kind(op), str(op.dtype), list(op.shape), int(op.nbytes))
    expected = (entry["operator"], entry["operator_dtype"], entry["shape"], entry["nbytes"])
    if found != expected:
        raise ValueError(
            f"{where} is corrupted: {key} holds a {found[1]} {found[0]} of shape {tuple(found[2])} "
            f"and {found[3]:,} bytes; the manifest says {expected[1]} {expected[0]} "
            f"{tuple(expected[2])}, {expected[3]:,} bytes"
        )
    return op


def load_compressed(model: nn.Module, directory, trainable: bool = False) -> nn.Module:
    """Restores the compressed layers saved by :func:`save_compressed` into `model`.

    `model` has the original (uncompressed) architecture, e.g. the same
    ``AutoModel.from_pretrained(folder)``; each saved layer replaces the
    module of the same name (which must be an nn.Linear/Conv1D of the same
    shape). The model changes only once every layer has loaded. Returns
    `model`.
    """
    directory = os.fspath(directory)
    manifest = read_manifest(directory)
    tensors = _read_factors(directory, manifest)
    where = os.path.join(directory, FACTORS_FILE)
    replacements = []
    for entry in manifest["modules"]:
        name = _resolve_name(model, entry["name"])
        module = model.get_submodule(name)
        if isinstance(module, HSSLinear):
            raise ValueError(f"module {name!r} is already compressed; load into the original model")
        has_bias = getattr(module, "bias", None) is not None
        if not is_replaceable(module) or list(weight_matrix(module).shape) != entry["shape"]:
            raise ValueError(
                f"module {name!r} is {type(module).__name__} of shape "
                f"{tuple(getattr(module, 'weight', torch.empty(0)).shape)}, saved "
                f"layer is {entry['source']} {tuple(entry['shape'])} (out x in)"
            )
        if has_bias != entry["has_bias"]:
            raise ValueError(
                f"module {name!r} {'has' if has_bias else 'has no'} bias, the saved layer "
                f"{'has' if entry['has_bias'] else 'has none'} (saved from another architecture?)"
            )
        layer = HSSLinear(module, _operator_of(entry, tensors, where), trainable=trainable)
        layer.method, layer.params = entry["method"], entry["params"]
        if has_bias:
            bias = tensors.get(f"{entry['name']}.bias")
            if bias is None or tuple(bias.shape) != tuple(layer.bias.shape):
                shape = tuple(layer.bias.shape)
                raise ValueError(f"{where} is corrupted: no bias of shape {shape} for {name!r}")
            layer.bias.data.copy_(bias)
        replacements.append((name, layer))
    for name, layer in replacements:
        replace_module(model, name, layer)
    return model
