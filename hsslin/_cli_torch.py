"""Command line for the torch adapter: ``hsslin compress``, ``hsslin eval``, ``hsslin info``.

``add_subcommands(subparsers)`` registers the three commands on an argparse
subparsers object; each handler returns an exit code (2 with a one-line
message on stderr for bad input). torch and transformers are imported only
when a command runs, so ``hsslin --help`` works without them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


class _UsageError(Exception):
    """A user mistake reported as one line and exit code 2."""


def _fail(message: str) -> int:
    print(f"hsslin: error: {message}", file=sys.stderr)
    return 2


def _guarded(handler):
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (_UsageError, ValueError, FileNotFoundError, ImportError) as exc:
            return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _model_dir(path: str) -> str:
    if not os.path.isdir(path):
        raise _UsageError(f"model folder {path!r} does not exist")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise _UsageError(f"{path!r} has no config.json: not a Hugging Face model folder")
    return path


def _load_model(path: str, causal: bool, tokenizer: bool = True):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise _UsageError("transformers is not installed (pip install transformers)") from None
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


def compress_cmd(args: argparse.Namespace) -> int:
    """Compresses a model folder's targets and writes OUT (factors + manifest)."""
    import hsslin.torch as ht

    _model_dir(args.model_dir)
    params = {
        k: getattr(args, k) for k in ("sparsity", "rank", "tol", "leaf_size") if getattr(args, k) is not None
    }
    if args.budget is not None and any(k in params for k in ("sparsity", "rank", "tol")):
        raise _UsageError("give either --budget or --sparsity/--rank/--tol, not both")
    model, tokenizer = _load_model(args.model_dir, causal=False, tokenizer=args.calibration is not None)
    if args.calibration is not None:
        if args.calibration == "builtin":
            sentences = None  # ht.CALIBRATION_SENTENCES
        else:
            if not os.path.isfile(args.calibration):
                raise _UsageError(f"calibration file {args.calibration!r} does not exist")
            with open(args.calibration, encoding="utf-8") as f:
                sentences = [line.strip() for line in f if line.strip()]
            if not sentences:
                raise _UsageError(f"{args.calibration!r} has no sentences (one per line)")
        params["calibration"] = ht.calibration_batches(tokenizer, sentences)
    report = ht.compress_model(
        model,
        targets=_targets(args.targets),
        method=args.method,
        budget=args.budget,
        progress=not args.quiet,
        allocation=args.allocation,
        **params,
    )
    manifest = ht.save_compressed(model, args.out)
    print(report)
    print(
        f"wrote {args.out}: factors {manifest['factor_bytes_on_disk']:,} bytes on disk "
        f"(operators count {manifest['factor_bytes']:,} bytes)"
    )
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    """Evaluates a model (optionally with compressed layers): perplexity or embedding fidelity."""
    import hsslin.torch as ht

    _model_dir(args.model_dir)
    source = args.text or args.sentences
    if not os.path.isfile(source):
        raise _UsageError(f"input file {source!r} does not exist")
    with open(source, encoding="utf-8") as f:
        content = f.read()
    if args.text:
        model, tokenizer = _load_model(args.model_dir, causal=True)
        if args.compressed:
            ht.load_compressed(model, args.compressed)
        nll, ppl, tokens = ht.perplexity(
            model, tokenizer, content, max_length=args.max_length, stride=args.stride
        )
        print(f"perplexity {ppl:.4f}  (mean NLL {nll:.4f} nats over {tokens} tokens)")
        return 0
    sentences = [s.strip() for s in content.splitlines() if s.strip()]
    if not sentences:
        raise _UsageError(f"{source!r} has no sentences (one per line)")
    model, tokenizer = _load_model(args.model_dir, causal=False)
    if not args.compressed:
        emb = ht.sentence_embeddings(model, tokenizer, sentences)
        print(
            f"{len(sentences)} sentences embedded, dimension {emb.shape[1]} "
            "(pass --compressed OUT_DIR to compare against a compressed model)"
        )
        return 0
    compressed, _ = _load_model(args.model_dir, causal=False, tokenizer=False)
    ht.load_compressed(compressed, args.compressed)
    fid = ht.embedding_fidelity(model, compressed, tokenizer, sentences)
    print(
        f"embedding cosine vs original over {len(sentences)} sentences: mean {fid.mean:.5f}, "
        f"min {fid.min:.5f}"
    )
    return 0


def info_cmd(args: argparse.Namespace) -> int:
    """Prints what a folder written by ``hsslin compress`` holds."""
    from .torch import read_manifest  # imports torch; the manifest reader itself is JSON only

    manifest = read_manifest(args.out_dir)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    mods = manifest["modules"]
    print(
        f"{args.out_dir}: hsslin-torch format {manifest['format_version']}, written by hsslin "
        f"{manifest.get('hsslin_version')}, method {manifest.get('method')}"
    )
    width = max(len(e["name"]) for e in mods) if mods else 5
    dense = 0
    for e in mods:
        itemsize = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}.get(e.get("weight_dtype"), 4)
        d = e["shape"][0] * e["shape"][1] * itemsize
        dense += d
        print(
            f"  {e['name']:<{width}}  {e['shape'][0]:>5}x{e['shape'][1]:<5}  "
            f"{e.get('operator', '?'):<17}  {e.get('nbytes', 0):>10,} bytes "
            f"({e.get('nbytes', 0) / d:.1%} of dense)"
        )
    print(
        f"{len(mods)} layers: {manifest.get('factor_bytes', 0):,} bytes "
        f"({manifest.get('factor_bytes', 0) / max(dense, 1):.1%} of {dense:,} dense), "
        f"{manifest.get('factor_bytes_on_disk', 0):,} on disk"
    )
    return 0


def add_subcommands(subparsers) -> None:
    """Registers ``compress``, ``eval`` and ``info`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "compress", help="compress a Hugging Face model's attention projections (needs torch, transformers)"
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="local model folder (config.json, ...)")
    p.add_argument(
        "--targets", default="qkv", help="'qkv' (default) or comma-separated globs/regexes of module names"
    )
    p.add_argument(
        "--method", default="sparse+hodlr+rcm", help="a method of hsslin.compress (default sparse+hodlr+rcm)"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="fraction of the dense bytes each target may keep (default 0.5 when no --sparsity/--rank/--tol)",
    )
    p.add_argument("--sparsity", type=float, default=None)
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--tol", type=float, default=None)
    p.add_argument("--leaf-size", dest="leaf_size", type=int, default=None)
    p.add_argument(
        "--calibration",
        metavar="FILE",
        default=None,
        help="svd only: activation-aware compression calibrated on FILE's sentences (one per line), "
        "or 'builtin' for hsslin's 48 calibration sentences",
    )
    p.add_argument(
        "--allocation",
        choices=("uniform", "global"),
        default="uniform",
        help="svd with --budget: 'global' spreads the budget over all targets (default uniform)",
    )
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_guarded(compress_cmd))

    p = subparsers.add_parser(
        "eval",
        help="perplexity (--text) or embedding fidelity (--sentences) of a model, optionally compressed",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument(
        "--compressed", metavar="OUT_DIR", default=None, help="folder written by 'hsslin compress'"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", metavar="FILE", help="text for causal-LM perplexity")
    src.add_argument("--sentences", metavar="FILE", help="one sentence per line")
    p.add_argument("--max-length", dest="max_length", type=int, default=None)
    p.add_argument("--stride", type=int, default=None)
    p.set_defaults(func=_guarded(eval_cmd))

    p = subparsers.add_parser("info", help="describe a folder written by 'hsslin compress'")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=_guarded(info_cmd))
