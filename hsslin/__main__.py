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
    p = sub.add_parser("demo", help="compress a built-in kernel matrix and time it")
    p.add_argument("--n", type=int, default=4096, help="matrix size (default 4096)")
    p.add_argument("--tol", type=float, default=1e-6, help="relative tolerance (default 1e-6)")
    p.add_argument("--leaf-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=30)
    p.set_defaults(func=demo)
    from ._cli_torch import add_subcommands

    add_subcommands(sub)  # compress / eval / info (torch imported only when they run)
    args = parser.parse_args(argv)
    if getattr(args, "n", 1) < 1:
        parser.error("--n must be >= 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
