"""The command handlers that need torch: ``hsslin demo`` (MiniLM), ``compress``, ``eval``, ``info``.

The parser lives in :mod:`hsslin._cli`, which needs no torch and has
checked every option by the time a handler runs; it imports this module
only when one of these commands runs. Each handler returns an exit code
and raises :class:`hsslin._cli.UsageError` (one line, exit 2) for a
mistake only the model can reveal (no tokenizer, no language-model head).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import time

import torch

from .. import __version__, _defaults, set_num_threads, simd_path
from .._cli import BUNDLED_MODELS, UsageError, progress, speed_words
from ._calibration import calibration_batches
from ._compress_model import compress_model
from ._eval import embedding_fidelity, minilm_path, perplexity, sentence_embeddings
from ._io import load_compressed, read_manifest, save_compressed, weight_itemsize
from ._sentences import CALIBRATION_SENTENCES, SAMPLE_SENTENCES


def configure_threads(threads) -> int:
    """Give torch's, OpenBLAS's and hsslin's pools `threads` threads ("auto": the idle CPUs)."""
    n = _defaults.idle_cpus() if threads == "auto" else int(threads)
    torch.set_num_threads(n)
    set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an install without the torch extras' threadpoolctl: OpenBLAS keeps its own
        return n
    threadpool_limits(n, user_api="blas")
    return n


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def _load_tokenizer(path: str, why: str):
    try:
        return _transformers().AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot load a tokenizer from {path!r} ({why}): {reason}") from None


def _load_model(path: str, causal: bool = False):
    transformers = _transformers()
    cls = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
    model, info = cls.from_pretrained(path, output_loading_info=True)
    if causal and info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise UsageError(
            f"{path!r} has no language-model head: {len(missing)} weights of a causal LM are not in "
            f"the checkpoint (e.g. {missing[0]}), so perplexity would be that of random weights"
        )
    return model.eval()


def _check_causal(path: str) -> None:
    """Refuses, before loading, a checkpoint whose config names no causal-LM architecture."""
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        architectures = json.load(f).get("architectures") or []
    if not architectures:
        return  # decided after loading, from the weights the checkpoint lacks
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if not causal & set(architectures):
        raise UsageError(
            f"{path!r} holds a {', '.join(architectures)}, which has no language-model head: "
            "perplexity needs a causal LM (use --sentences for an encoder)"
        )


def _resolve_model_dir(args: argparse.Namespace) -> None:
    """Replaces a bundled model's name (``smollm2``, ``minilm``) in `args` by its folder."""
    if args.model_dir not in BUNDLED_MODELS or os.path.exists(args.model_dir):
        return
    folder = getattr(importlib.import_module("hsslin.torch"), BUNDLED_MODELS[args.model_dir])
    try:
        args.model_dir = folder()
    except (ImportError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None


def _timed(message: str, f):
    progress(message)
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def demo_cmd(args: argparse.Namespace) -> int:
    """Compresses all-MiniLM-L6-v2's attention projections; prints the report, fidelity and speed."""
    try:
        path = minilm_path()
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    threads = configure_threads(args.threads)
    print(
        f"hsslin {__version__} ({simd_path()} build), torch {torch.__version__}, "
        f"{threads} thread{'s' if threads > 1 else ''} (torch, OpenBLAS and hsslin)"
    )
    print(f"all-MiniLM-L6-v2 from {path}")
    (tokenizer, original), seconds = _timed(
        "loading all-MiniLM-L6-v2", lambda: (_load_tokenizer(path, "the demo"), _load_model(path))
    )
    progress(f"loaded in {seconds:.1f} s")
    compressed = copy.deepcopy(original)
    if args.calibration == "builtin":
        spread = (
            "ranks allocated across layers" if args.allocation == "global" else "every layer at the budget"
        )
        how = (
            f"activation-aware {args.method} (calibrated on {len(CALIBRATION_SENTENCES)} sentences, {spread})"
        )
    else:
        how = f"{args.method}, uncalibrated, every layer at the budget"
    print(f"compressing the 18 Q/K/V projections with {how} to {args.budget:g} of their dense bytes")
    report = compress_model(
        compressed,
        targets="qkv",
        method=args.method,
        budget=args.budget,
        calibration=args.calibration,
        allocation=args.allocation,
        tokenizer=tokenizer,
    )
    print(report)
    sentences = list(SAMPLE_SENTENCES)
    progress(
        f"encoding {len(sentences)} held-out sentences with both models (a warm-up, then 3 each, interleaved)"
    )
    runs = {"original": [], "compressed": []}
    embeddings = {}
    for repeat in range(4):
        for name, model in (("original", original), ("compressed", compressed)):
            t0 = time.perf_counter()
            embeddings[name] = sentence_embeddings(model, tokenizer, sentences)
            if repeat:  # the first round warms caches and thread pools up
                runs[name].append(time.perf_counter() - t0)
    cos = torch.nn.functional.cosine_similarity(
        embeddings["original"].double(), embeddings["compressed"].double(), dim=1
    )
    t_ref, t_ours = (sorted(runs[k])[1] for k in ("original", "compressed"))
    print(
        f"embedding fidelity over {len(sentences)} held-out sentences (cosine of mean-pooled "
        f"embeddings, original vs compressed; 1 = same direction): mean {float(cos.mean()):.4f}, "
        f"min {float(cos.min()):.4f}"
    )
    print(
        f"encoding {len(sentences)} sentences: original {t_ref:.3f} s, compressed {t_ours:.3f} s; "
        f"the compressed model is {speed_words(t_ref, t_ours, 'the original')} (medians of 3, interleaved)"
    )
    return 0


def compress_cmd(args: argparse.Namespace) -> int:
    """Compresses a model folder's targets and writes OUT (factors + manifest)."""
    params = {k: getattr(args, k) for k in (*_defaults.EXPLICIT, "leaf_size") if getattr(args, k) is not None}
    _resolve_model_dir(args)
    configure_threads(args.threads)
    quiet = args.quiet
    tokenizer, calibration = None, args.calibration
    if calibration is not None:
        tokenizer = _load_tokenizer(args.model_dir, "calibration needs it; or pass --calibration none")
        if calibration != "builtin":
            with open(calibration, encoding="utf-8") as f:
                sentences = [line.strip() for line in f if line.strip()]
            if not sentences:
                raise UsageError(f"{calibration!r} has no sentences (one per line)")
            calibration = calibration_batches(tokenizer, sentences)
    if not quiet:
        progress(f"loading {args.model_dir}")
    t0 = time.perf_counter()
    model = _load_model(args.model_dir)
    if not quiet:
        progress(f"loaded in {time.perf_counter() - t0:.1f} s")
    report = compress_model(
        model,
        targets=args.targets,
        method=args.method,
        budget=args.budget,
        progress=not quiet,
        calibration=calibration,
        allocation=args.allocation,
        tokenizer=tokenizer,
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
    """Evaluate a model (optionally with compressed layers): perplexity or embedding fidelity."""
    if args.compressed:
        read_manifest(args.compressed)  # a damaged folder is reported before the model loads
    _resolve_model_dir(args)
    configure_threads(args.threads)
    source = args.text or args.sentences
    with open(source, encoding="utf-8") as f:
        content = f.read()
    if args.text:
        if not content.strip():
            raise UsageError(f"{source!r} is empty")
        _check_causal(args.model_dir)
        tokenizer = _load_tokenizer(args.model_dir, "perplexity needs it")
        progress(f"loading {args.model_dir}")
        model = _load_model(args.model_dir, causal=True)
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
    tokenizer = _load_tokenizer(args.model_dir, "embeddings need it")
    progress(f"loading {args.model_dir}")
    model = _load_model(args.model_dir)
    if not args.compressed:
        emb = sentence_embeddings(model, tokenizer, sentences)
        print(
            f"{len(sentences)} sentences embedded, dimension {emb.shape[1]} "
            "(pass --compressed OUT_DIR to compare against a compressed model)"
        )
        return 0
    compressed = load_compressed(copy.deepcopy(model), args.compressed)
    fid = embedding_fidelity(model, compressed, tokenizer, sentences)
    print(
        f"embedding cosine vs original over {len(sentences)} sentences: mean {fid.mean:.5f}, "
        f"min {fid.min:.5f}"
    )
    return 0


def info_cmd(args: argparse.Namespace) -> int:
    """Print what a folder written by ``hsslin compress`` holds."""
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
