"""Command line: ``hsslin demo``, ``hsslin compress``, ``hsslin eval``, ``hsslin info``.

The parser and the matrix demo (``demo --kernel``) need only numpy and
scipy; the commands that need torch are in :mod:`hsslin.torch._cli`,
imported only when one of them runs, so ``hsslin --help`` and ``hsslin
demo --kernel`` work without torch.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

INSTALL_HINT = 'pip install torch==2.13.0 && pip install ".[torch]"'


class UsageError(Exception):
    """A user mistake reported as one line and exit code 2."""


def _fail(message: str) -> int:
    print(f"hsslin: error: {message}", file=sys.stderr)
    return 2


def _torch_command(name: str):
    """A handler that imports :mod:`hsslin.torch._cli` and runs its `name`, one line per mistake."""

    def run(args: argparse.Namespace) -> int:
        try:
            from .torch import _cli as torch_cli
        except ImportError as exc:
            return _fail(
                f"'hsslin {args.command}' needs the torch extras ({exc}): {INSTALL_HINT}"
                + ("; 'hsslin demo --kernel' needs only numpy and scipy" if args.command == "demo" else "")
            )
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
        f"{dense_t / hss_t:.1f}x faster (interleaved medians of {args.repeats})"
    )
    return 0


def _add_torch_commands(subparsers) -> None:
    """Registers ``compress``, ``eval`` and ``info``; their handlers import torch when they run."""
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
    p.set_defaults(func=_torch_command("compress_cmd"))

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
    p.set_defaults(func=_torch_command("eval_cmd"))

    p = subparsers.add_parser("info", help="describe a folder written by 'hsslin compress'")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=_torch_command("info_cmd"))


def build_parser() -> argparse.ArgumentParser:
    """The ``hsslin`` argument parser (every subcommand)."""
    parser = argparse.ArgumentParser(prog="hsslin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "demo",
        help="compress MiniLM's Q/K/V and print the report and embedding fidelity "
        "(--kernel: a built-in kernel matrix instead)",
    )
    p.add_argument(
        "--kernel",
        action="store_true",
        help="compress a built-in Gaussian kernel matrix instead (needs no torch)",
    )
    p.add_argument("--method", default="svd", help="MiniLM: a method of hsslin.compress (default svd)")
    p.add_argument(
        "--uncalibrated",
        action="store_true",
        help="MiniLM, svd: plain truncated SVD per layer instead of calibrated, globally allocated ranks",
    )
    p.add_argument(
        "--budget", type=float, default=0.5, help="MiniLM: fraction of the dense bytes kept (default 0.5)"
    )
    p.add_argument("--n", type=int, default=4096, help="--kernel: matrix size (default 4096)")
    p.add_argument("--tol", type=float, default=1e-6, help="--kernel: relative tolerance (default 1e-6)")
    p.add_argument("--leaf-size", type=int, default=64, help="--kernel: leaf size (default 64)")
    p.add_argument("--repeats", type=int, default=30, help="--kernel: timing repeats (default 30)")
    p.set_defaults(func=demo)
    _add_torch_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the ``hsslin`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "n", 1) < 1:
        parser.error("--n must be >= 1")
    return args.func(args)
