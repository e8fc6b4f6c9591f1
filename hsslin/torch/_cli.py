"""The command handlers that need torch: ``hsslin demo`` (MiniLM), ``compress``, ``eval``, ``info``.

The parser lives in :mod:`hsslin._cli`, which needs no torch; it imports
this module only when one of these commands runs. Each handler returns an
exit code and raises :class:`hsslin._cli.UsageError` (one line, exit 2)
for bad input.
"""

from __future__ import annotations

import argparse
import copy
import json
import os

import torch

from .. import __version__, get_num_threads, simd_path
from .._cli import UsageError, median_pair
from ._calibration import calibration_batches
from ._compress_model import compress_model
from ._eval import embedding_fidelity, minilm_path, perplexity, sentence_embeddings
from ._io import load_compressed, read_manifest, save_compressed, weight_itemsize
from ._sentences import CALIBRATION_SENTENCES, SAMPLE_SENTENCES


def _model_dir(path: str) -> str:
    if not os.path.isdir(path):
        raise UsageError(f"model folder {path!r} does not exist")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise UsageError(f"{path!r} has no config.json: not a Hugging Face model folder")
    return path


def _load_model(path: str, causal: bool, tokenizer: bool = True):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise UsageError("transformers is not installed (pip install transformers)") from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    cls = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
    model = cls.from_pretrained(path)
    model.eval()
    if not tokenizer:
        return model, None
    return model, transformers.AutoTokenizer.from_pretrained(path)


def _targets(value: str):
    if value == "qkv":
        return "qkv"
    return [p.strip() for p in value.split(",") if p.strip()]


def demo_cmd(args: argparse.Namespace) -> int:
    """Compresses all-MiniLM-L6-v2's attention projections; prints the report and embedding fidelity."""
    if not 0.0 < args.budget <= 1.0:
        raise UsageError(f"--budget must be in (0, 1], got {args.budget}")
    try:
        path = minilm_path()
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    original, tokenizer = _load_model(path, causal=False)  # offline, quiet, eval mode
    compressed = copy.deepcopy(original)
    print(
        f"hsslin {__version__} ({simd_path()} build, {get_num_threads()} threads), torch {torch.__version__}"
    )
    print(f"all-MiniLM-L6-v2 from {path}")
    calibrated = args.method == "svd" and not args.uncalibrated
    extra = {}
    if calibrated:
        extra = dict(calibration=calibration_batches(tokenizer), allocation="global")
        how = (
            f"activation-aware svd (calibrated on {len(CALIBRATION_SENTENCES)} sentences, ranks "
            f"allocated across layers)"
        )
    else:
        how = repr(args.method)
    print(f"compressing the Q/K/V projections with {how} to {args.budget:g} of their dense bytes")
    report = compress_model(compressed, targets="qkv", method=args.method, budget=args.budget, **extra)
    print(report)
    sentences = list(SAMPLE_SENTENCES)
    fid = embedding_fidelity(original, compressed, tokenizer, sentences)
    t_ref, t_ours = median_pair(
        lambda: sentence_embeddings(original, tokenizer, sentences),
        lambda: sentence_embeddings(compressed, tokenizer, sentences),
        3,
    )
    print(
        f"embedding fidelity over {len(sentences)} held-out sentences (cosine of mean-pooled "
        f"embeddings, original vs compressed): mean {fid.mean:.4f}, min {fid.min:.4f}"
    )
    print(
        f"encoding {len(sentences)} sentences: original {t_ref:.3f} s, compressed {t_ours:.3f} s "
        f"({t_ref / t_ours:.2f}x; medians of 3, interleaved)"
    )
    return 0


def compress_cmd(args: argparse.Namespace) -> int:
    """Compresses a model folder's targets and writes OUT (factors + manifest)."""
    _model_dir(args.model_dir)
    params = {
        k: getattr(args, k) for k in ("sparsity", "rank", "tol", "leaf_size") if getattr(args, k) is not None
    }
    if args.budget is not None and any(k in params for k in ("sparsity", "rank", "tol")):
        raise UsageError("give either --budget or --sparsity/--rank/--tol, not both")
    model, tokenizer = _load_model(args.model_dir, causal=False, tokenizer=args.calibration is not None)
    if args.calibration is not None:
        if args.calibration == "builtin":
            sentences = None  # CALIBRATION_SENTENCES
        else:
            if not os.path.isfile(args.calibration):
                raise UsageError(f"calibration file {args.calibration!r} does not exist")
            with open(args.calibration, encoding="utf-8") as f:
                sentences = [line.strip() for line in f if line.strip()]
            if not sentences:
                raise UsageError(f"{args.calibration!r} has no sentences (one per line)")
        params["calibration"] = calibration_batches(tokenizer, sentences)
    report = compress_model(
        model,
        targets=_targets(args.targets),
        method=args.method,
        budget=args.budget,
        progress=not args.quiet,
        allocation=args.allocation,
        **params,
    )
    manifest = save_compressed(model, args.out)
    print(report)
    print(
        f"wrote {args.out}: factors {manifest['factor_bytes_on_disk']:,} bytes on disk "
        f"(operators count {manifest['factor_bytes']:,} bytes)"
    )
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    """Evaluates a model (optionally with compressed layers): perplexity or embedding fidelity."""
    _model_dir(args.model_dir)
    source = args.text or args.sentences
    if not os.path.isfile(source):
        raise UsageError(f"input file {source!r} does not exist")
    with open(source, encoding="utf-8") as f:
        content = f.read()
    if args.text:
        model, tokenizer = _load_model(args.model_dir, causal=True)
        if args.compressed:
            load_compressed(model, args.compressed)
        nll, ppl, tokens = perplexity(
            model, tokenizer, content, max_length=args.max_length, stride=args.stride
        )
        print(f"perplexity {ppl:.4f}  (mean NLL {nll:.4f} nats over {tokens} tokens)")
        return 0
    sentences = [s.strip() for s in content.splitlines() if s.strip()]
    if not sentences:
        raise UsageError(f"{source!r} has no sentences (one per line)")
    model, tokenizer = _load_model(args.model_dir, causal=False)
    if not args.compressed:
        emb = sentence_embeddings(model, tokenizer, sentences)
        print(
            f"{len(sentences)} sentences embedded, dimension {emb.shape[1]} "
            "(pass --compressed OUT_DIR to compare against a compressed model)"
        )
        return 0
    compressed, _ = _load_model(args.model_dir, causal=False, tokenizer=False)
    load_compressed(compressed, args.compressed)
    fid = embedding_fidelity(model, compressed, tokenizer, sentences)
    print(
        f"embedding cosine vs original over {len(sentences)} sentences: mean {fid.mean:.5f}, "
        f"min {fid.min:.5f}"
    )
    return 0


def info_cmd(args: argparse.Namespace) -> int:
    """Prints what a folder written by ``hsslin compress`` holds."""
    manifest = read_manifest(args.out_dir)  # every field checked
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    mods = manifest["modules"]
    print(
        f"{args.out_dir}: hsslin-torch format {manifest['format_version']}, written by hsslin "
        f"{manifest['hsslin_version']}, method {manifest['method']}"
    )
    width = max(len(e["name"]) for e in mods)
    dense = 0
    for e in mods:
        d = e["shape"][0] * e["shape"][1] * weight_itemsize(e)
        dense += d
        print(
            f"  {e['name']:<{width}}  {e['shape'][0]:>5}x{e['shape'][1]:<5}  "
            f"{e['operator']:<17}  {e['nbytes']:>10,} bytes ({e['nbytes'] / d:.1%} of dense)"
        )
    print(
        f"{len(mods)} layers: {manifest['factor_bytes']:,} bytes "
        f"({manifest['factor_bytes'] / dense:.1%} of {dense:,} dense), "
        f"{manifest['factor_bytes_on_disk']:,} on disk"
    )
    return 0
