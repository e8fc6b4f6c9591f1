"""Product speed of two builds of the C++ core, interleaved in one process.

    python benchmarks/ab_core.py DIR_A DIR_B [--n 2048] [--repeat 30]

DIR_A and DIR_B each hold a built ``_core_avx2*.so`` (or ``_core*.so``), for
example two of the folders ``benchmarks/time_build.sh`` keeps with
``HSSLIN_KEEP_BUILDS``. Both are loaded side by side (their classes are
module-local, so they do not clash), the same matrices are compressed by
each, and their products are timed round-robin (A, B, A, B, ...), so a
change in the machine's load falls on both. Prints the median time of each
and the ratio B / A per product: HSS and HODLR matrix-vector and 16-column
products and a CSR matrix-vector product. Uses the raw ``_core`` calls that
every build since the HODLR rank schedule shares.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import CpuMonitor, blas_limit, median, spread, time_interleaved  # noqa: E402


def load_core(folder: str, tag: str):
    paths = sorted(glob.glob(os.path.join(folder, "_core_avx2*.so"))) or sorted(
        glob.glob(os.path.join(folder, "_core*.so"))
    )
    if not paths:
        raise SystemExit(f"{folder}: no _core*.so")
    name = os.path.basename(paths[0]).split(".")[0]
    spec = importlib.util.spec_from_file_location(f"{tag}.{name}", paths[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.set_num_threads(1)
    return module


def compress_both(core, K, W):
    """HSS of K at tol 1e-8 and HODLR of W at rank 64, through either build's calls."""
    if not hasattr(core, "HSSOptions"):  # a build from before the options classes
        return (
            core.HSSMatrix64.compress(K, 1e-8, 0, 64, 10, 64, 0),
            core.HODLRMatrix64.compress(W, 0.0, 64, 0.5, 1, 0, 64, 1, 0),
        )
    hss, hodlr = core.HSSOptions(), core.HODLROptions()
    hss.tol, hss.initial_samples = 1e-8, 64
    hodlr.rank, hodlr.power_iterations = 64, 1
    return core.HSSMatrix64.compress(K, hss), core.HODLRMatrix64.compress(W, hodlr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir_a")
    parser.add_argument("dir_b")
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    cores = {"A": load_core(args.dir_a, "core_a"), "B": load_core(args.dir_b, "core_b")}
    n = args.n
    x = np.linspace(0.0, 1.0, n)
    K = np.exp(-np.abs(x[:, None] - x[None, :]) / 0.2)  # Laplace kernel: HSS-friendly
    W = np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n)  # weight-like
    v = np.random.default_rng(1).standard_normal(n)
    V16 = np.random.default_rng(2).standard_normal((n, 16))
    ops = {}
    for tag, core in cores.items():
        H, G = compress_both(core, K, W)
        mask = np.abs(W) >= np.quantile(np.abs(W), 0.9)
        rows, cols = np.nonzero(mask)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)
        S = core.CSRMatrix64(np.ascontiguousarray(W[rows, cols]), cols.astype(np.int32), indptr, (n, n))
        ops[tag] = {"hss": H, "hodlr": G, "csr": S}
    cases = [
        ("HSS x vector", "hss", v),
        ("HSS x 16 columns", "hss", V16),
        ("HODLR x vector", "hodlr", v),
        ("HODLR x 16 columns", "hodlr", V16),
        ("CSR x vector", "csr", v),
    ]
    print(f"n = {n}, one hsslin thread, BLAS limited to 1; A = {args.dir_a}, B = {args.dir_b}")
    print(f"{'product':<20} {'A ms':>9} {'B ms':>9} {'B / A':>7}  spread A, B   busy")
    with blas_limit(1):
        for label, key, X in cases:
            a, b = ops["A"][key], ops["B"][key]
            np.testing.assert_allclose(b.apply(X, False), a.apply(X, False), rtol=1e-10, atol=1e-10)
            monitor = CpuMonitor().start()
            t = time_interleaved(
                {"A": lambda a=a, X=X: a.apply(X, False), "B": lambda b=b, X=X: b.apply(X, False)},
                repeat=args.repeat,
            )
            busy = monitor.stop()
            ta, tb = median(t["A"]), median(t["B"])
            print(
                f"{label:<20} {1e3 * ta:9.3f} {1e3 * tb:9.3f} {tb / ta:7.3f}  "
                f"{spread(t['A']):.2f}, {spread(t['B']):.2f}   {busy:.0%}"
            )


if __name__ == "__main__":
    main()
