"""Command line: ``hsslin demo``, ``hsslin compress``, ``hsslin eval``, ``hsslin info``."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def gaussian_kernel(n: int, h: float = 0.05, diagonal: float = 1e-2, seed: int = 0) -> np.ndarray:
    """The demo's matrix: exp(-(xi-xj)^2 / (2 h^2)) + diagonal*I on sorted uniform points."""
    x = np.sort(np.random.default_rng(seed).uniform(0.0, 1.0, n))
    K = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2.0 * h * h))
    K[np.diag_indices(n)] += diagonal
    return K


def _median_pair(f_ref, f_ours, repeats: int) -> tuple[float, float]:
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


def demo(args: argparse.Namespace) -> int:
    """The main job: MiniLM's Q/K/V compressed at a budget (default), or the kernel matrix (--kernel)."""
    if args.kernel:
        return kernel_demo(args)
    return minilm_demo(args)


def minilm_demo(args: argparse.Namespace) -> int:
    """Compresses all-MiniLM-L6-v2's attention projections; prints the report and embedding fidelity."""
    import copy

    try:
        import hsslin.torch as ht
    except ImportError as exc:
        print(
            f"hsslin: error: the MiniLM demo needs the torch extras ({exc}).\n"
            '  pip install torch==2.13.0 && pip install ".[torch]"\n'
            "or run the matrix demo, which needs only numpy and scipy: hsslin demo --kernel",
            file=sys.stderr,
        )
        return 2
    import torch

    import hsslin

    from ._cli_torch import _load_model

    if not 0.0 < args.budget <= 1.0:
        print(f"hsslin: error: --budget must be in (0, 1], got {args.budget}", file=sys.stderr)
        return 2
    try:
        path = ht.minilm_path()
    except ImportError as exc:
        print(f"hsslin: error: {exc}", file=sys.stderr)
        return 2
    original, tokenizer = _load_model(path, causal=False)  # offline, quiet, eval mode
    compressed = copy.deepcopy(original)
    print(
        f"hsslin {hsslin.__version__} ({hsslin.simd_path()} build, {hsslin.get_num_threads()} threads), "
        f"torch {torch.__version__}"
    )
    print(f"all-MiniLM-L6-v2 from {path}")
    calibrated = args.method == "svd" and not args.uncalibrated
    extra = {}
    if calibrated:
        extra = dict(calibration=ht.calibration_batches(tokenizer), allocation="global")
        how = (
            f"activation-aware svd (calibrated on {len(ht.CALIBRATION_SENTENCES)} sentences, ranks "
            f"allocated across layers)"
        )
    else:
        how = repr(args.method)
    print(f"compressing the Q/K/V projections with {how} to {args.budget:g} of their dense bytes")
    report = ht.compress_model(compressed, targets="qkv", method=args.method, budget=args.budget, **extra)
    print(report)
    sentences = list(ht.SAMPLE_SENTENCES)
    fid = ht.embedding_fidelity(original, compressed, tokenizer, sentences)
    t_ref, t_ours = _median_pair(
        lambda: ht.sentence_embeddings(original, tokenizer, sentences),
        lambda: ht.sentence_embeddings(compressed, tokenizer, sentences),
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
    dense_t, hss_t = _median_pair(lambda: K @ x, lambda: H @ x, args.repeats)
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


def main(argv: list[str] | None = None) -> int:
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
    from ._cli_torch import add_subcommands

    add_subcommands(sub)  # compress / eval / info (torch imported only when they run)
    args = parser.parse_args(argv)
    if getattr(args, "n", 1) < 1:
        parser.error("--n must be >= 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
