"""CSR products and reverse Cuthill-McKee: hsslin vs scipy.sparse, same process.

Every pair is timed interleaved (scipy, hsslin, scipy, hsslin, ...) after a
warm-up, and medians are compared. Writes docs/bench_sparse.md.

    python benchmarks/bench_sparse.py [--reps 21] [--out docs/bench_sparse.md]

(`HSSLIN_SIMD=generic|avx2` in front picks the core build; the report names it.)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import scipy
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee as scipy_rcm
from scipy.spatial import cKDTree
from threadpoolctl import threadpool_limits

from hsslin import _core
from hsslin._sparse import CSRMatrix, bandwidth, reverse_cuthill_mckee


def interleaved(*fns, reps):
    """Median seconds of callables timed in turn (a, b, c, a, b, c, ...) after a warm-up."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    for _ in range(reps):
        for f, ts in zip(fns, times):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
    return [float(np.median(ts)) for ts in times]


def single_threaded(f):
    """F run with hsslin limited to one thread."""

    def run():
        threads = _core.get_num_threads()
        _core.set_num_threads(1)
        try:
            f()
        finally:
            _core.set_num_threads(threads)

    return run


def csr_rows(reps, rng):
    rows = []
    n = 4096
    for density in (0.05, 0.3):
        A = sp.random_array((n, n), density=density, format="csr", dtype=np.float32, rng=rng)
        S = CSRMatrix.from_scipy(A)
        x = rng.standard_normal(n).astype(np.float32)
        X = rng.standard_normal((n, 16)).astype(np.float32)
        cases = [
            ("SpMV  S @ x", lambda: A @ x, lambda: S @ x),
            ("SpMM  S @ X (16 cols)", lambda: A @ X, lambda: S @ X),
            ("SpMV  S.T @ x", lambda: A.T @ x, lambda: S.T @ x),
            ("SpMM  S.T @ X (16 cols)", lambda: A.T @ X, lambda: S.T @ X),
        ]
        for name, ref, ours in cases:
            t_ref, t_ours, t_one = interleaved(ref, ours, single_threaded(ours), reps=reps)
            note = f"hsslin 1 thread: {t_one * 1e3:.3f} ms, ratio {t_ref / t_one:.2f}"
            rows.append((f"{name}, {n}x{n} float32, {density:.0%} ({A.nnz} nnz)", t_ref, t_ours, note))
            print(
                rows[-1][0],
                f"scipy {t_ref * 1e3:.3f} ms  hsslin {t_ours * 1e3:.3f} ms  "
                f"ratio {t_ref / t_ours:.2f}  {note}",
                flush=True,
            )
    return rows


def geometric_graph(n, neighbours, rng):
    """Random geometric graph: n points in the unit square, ~`neighbours` per node."""
    pts = rng.random((n, 2))
    radius = np.sqrt(neighbours / (np.pi * n))
    pairs = cKDTree(pts).query_pairs(radius, output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    A = sp.csr_array((np.ones(i.size), (i, j)), shape=(n, n))
    A.sort_indices()
    return A


def rcm_rows(reps, rng):
    rows = []
    A = geometric_graph(200_000, 10, rng)
    A.indices = A.indices.astype(np.int32)
    A.indptr = A.indptr.astype(np.int32)
    for symmetric_mode in (True, False):
        holder = {}

        def ref(sm=symmetric_mode):
            holder["scipy"] = scipy_rcm(A, symmetric_mode=sm)

        def ours(sm=symmetric_mode):
            holder["ours"] = reverse_cuthill_mckee(A, symmetric_mode=sm)

        t_ref, t_ours = interleaved(ref, ours, reps=reps)
        bw_ref = bandwidth(A, holder["scipy"].astype(np.int64))
        bw_ours = bandwidth(A, holder["ours"])
        name = f"RCM, random geometric graph, 200000 nodes, {A.nnz} nnz, symmetric_mode={symmetric_mode}"
        note = f"bandwidth {bw_ours} vs scipy {bw_ref} ({bw_ours / bw_ref:.3f}x); original {bandwidth(A)}"
        rows.append((name, t_ref, t_ours, note))
        print(
            name,
            f"scipy {t_ref * 1e3:.1f} ms  hsslin {t_ours * 1e3:.1f} ms  ratio {t_ref / t_ours:.2f}  {note}",
            flush=True,
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--rcm-reps", type=int, default=7)
    parser.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "bench_sparse.md")
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    # scipy.sparse kernels are single-threaded; pinning BLAS keeps numpy's
    # pool from competing with hsslin's threads.
    with threadpool_limits(limits=1):
        rows = csr_rows(args.reps, rng) + rcm_rows(args.rcm_reps, rng)
    load_after = os.getloadavg()[0]
    lines = [
        "# Sparse building blocks: hsslin vs scipy.sparse",
        "",
        "Made by (from the repository root):",
        "",
        "```",
        (f"HSSLIN_SIMD={os.environ['HSSLIN_SIMD']} " if os.environ.get("HSSLIN_SIMD") else "")
        + "python benchmarks/bench_sparse.py"
        + (f" --reps {args.reps}" if args.reps != 21 else ""),
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}, hsslin core `{_core.simd}`.",
        f"Threads: hsslin {_core.get_num_threads()}; scipy.sparse single-threaded; BLAS pinned "
        f"to 1 thread with threadpoolctl. Load average before/after: {load_before:.2f} / "
        f"{load_after:.2f}.",
        f"Timings: medians of {args.reps} (RCM: {args.rcm_reps}) interleaved runs after a "
        "warm-up; ratio = scipy time / hsslin time (> 1: hsslin faster). The notes give "
        "hsslin limited to one thread, timed in the same interleaved loop: on a machine "
        "whose other jobs keep the load average above the core count, a parallel region "
        "waits for its slowest (descheduled) thread, and one thread can be faster.",
        "",
        "| case | scipy | hsslin | ratio | notes |",
        "|---|---|---|---|---|",
    ]
    for name, t_ref, t_ours, note in rows:
        lines.append(
            f"| {name} | {t_ref * 1e3:.3f} ms | {t_ours * 1e3:.3f} ms | {t_ref / t_ours:.2f} | {note} |"
        )
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
