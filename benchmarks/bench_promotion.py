"""Float64 operands on float32 operators: accuracy and cost of the ways to apply them.

NumPy computes ``A32 @ x64`` in float64 (a float64 copy of A32), so hsslin
must too (issue 10, defect 14). Three ways were considered, all measured here
on the same float32 operators:

* **round**: ``A @ x.astype(float32)``, a float32 product (what raising the
  old TypeError asked the user to do);
* **split**: ``x = hi + lo`` with both halves float32, ``A @ hi + A @ lo``
  summed in float64 (two float32 products);
* **copy**: what hsslin does, ``A`` applied through a float64 copy of its
  stored values, built on the first float64 product and kept.

Accuracy is ``||y - D x|| / ||D x||`` against the float64 copy's dense
matrix D (the stored float32 values, products formed in float64). Times are
medians of interleaved rounds (float32 product, copy product, split
product, ...) after a warm-up, quoted as ratios to the float32 product of
the same run; "build" is the one-time cost of the copy in float32 products.

    python benchmarks/bench_promotion.py [--n 2048] [--reps 41] [--out docs/bench_promotion.md]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing as tm  # noqa: E402

import hsslin  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def operators(n: int):
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 1, n))
    K = np.exp(-np.abs(x[:, None] - x[None, :]) / 0.2).astype(np.float32)
    W = ((rng.standard_normal((n, n)) + 0.3 * rng.standard_t(2, (n, n))) / np.sqrt(n)).astype(np.float32)
    yield "HODLR, kernel, tol 1e-5", hsslin.HODLRMatrix.from_dense(K, tol=1e-5)
    yield "CSR, 5% of a weight matrix", hsslin.CSRMatrix.from_dense(W, sparsity=0.05)
    half = W.nbytes // 2
    yield "sparse+hodlr+rcm, weights, 50% bytes", hsslin.compress(W, "sparse+hodlr+rcm", budget_bytes=half)
    yield "low rank 64, weights", hsslin.LowRankMatrix.from_dense(W, rank=64)


def row(name, A, reps):
    assert A.dtype == np.float32, (name, A.dtype)
    n = A.shape[1]
    x = np.random.default_rng(1).standard_normal(n)
    hi = x.astype(np.float32)
    lo = (x - hi).astype(np.float32)
    t0 = tm.clock()
    D = A._widened()  # built here once; its build time is reported
    build = tm.clock() - t0
    exact = D.to_dense() @ x
    norm = np.linalg.norm(exact)

    def split():
        return (A @ hi).astype(np.float64) + (A @ lo).astype(np.float64)

    errors = {
        "round": np.linalg.norm((A @ hi).astype(np.float64) - exact) / norm,
        "split": np.linalg.norm(split() - exact) / norm,
        "copy": np.linalg.norm(A @ x - exact) / norm,
    }
    mon = tm.CpuMonitor().start()
    times = tm.time_interleaved({"f32": lambda: A @ hi, "copy": lambda: A @ x, "split": split}, repeat=reps)
    busy = mon.stop()
    f32 = tm.median(times["f32"])
    return [
        name,
        f"{errors['round']:.1e}",
        f"{errors['split']:.1e}",
        f"{errors['copy']:.1e}",
        tm.fmt_time(f32),
        f"{tm.ratio(times['copy'], times['f32']):.2f}",
        f"{tm.ratio(times['split'], times['f32']):.2f}",
        f"{build / f32:.0f}",
        f"{D.nbytes / A.nbytes:.2f}",
        f"{100 * busy:.0f}%",
    ], busy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=41)
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "bench_promotion.md"))
    args = ap.parse_args()
    headers = [
        "operator (float32)",
        "round err",
        "split err",
        "copy err",
        "f32 matvec",
        "copy / f32",
        "split / f32",
        "build (f32 matvecs)",
        "copy bytes / bytes",
        "other CPU load",
    ]
    with tm.blas_limit(1):
        rows, busy = zip(*(row(name, A, args.reps) for name, A in operators(args.n)))
    table = tm.render_table(headers, rows, markdown=True)
    if max(busy) > 0.1:  # other processes held the CPUs: the times are not to be trusted
        table += (
            f"\n\n**Preliminary**: other processes kept up to {100 * max(busy):.0f}% of the machine "
            "busy during these timings; re-run on a quiet machine. The errors do not depend on it."
        )
    print(tm.render_table(headers, rows))
    info = tm.machine_info(REPO)
    with open(args.out, "w") as f:
        f.write("# Float64 operands on float32 operators\n\n")
        f.write(f"`python benchmarks/bench_promotion.py --n {args.n} --reps {args.reps}`; ")
        f.write("numpy's BLAS on one thread, hsslin's threads as set.\n\n")
        f.write(__doc__.split("\n\n", 1)[1].split("    python benchmarks")[0])
        f.write(table + "\n\n")
        f.write("Machine:\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
