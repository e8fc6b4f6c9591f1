"""Benchmark of hsslin's direct solvers (HSS ULV, HSS Cholesky, HODLR SMW) against LAPACK.

Rows, each measured in one run:

* **dense families** (float64, the matrices of ``bench_hss.py``): the 1-D
  Gaussian kernel (h = 0.05, + 1e-2 I) and the Cauchy matrix at N = 1024 ..
  16384, compressed by ``HSSMatrix.from_dense(tol=1e-6)``; factor time
  against ``scipy.linalg.lu_factor`` (``cho_factor`` for the Cholesky rows),
  solve time against ``lu_solve`` (``cho_solve``), both timed *interleaved*
  (LAPACK, ours, LAPACK, ours, ...) after a warm-up, medians and ratios;
  residuals; the log-determinant against ``numpy.linalg.slogdet``; bytes;
* **incompressible** iid Gaussian N = 4096: detected as dense, factored by LAPACK;
* **from points** (``HSSMatrix.from_kernel``): the 2-D Gaussian kernel
  (lengthscale 0.1, nugget 1e-2) on N uniform points of the unit square,
  N = 10 000 .. 200 000, and a 3-D one (lengthscale 0.2, nugget 1e-2, unit
  cube), N = 10 000 .. 100 000. Each N runs in a fresh subprocess, so its
  peak resident memory is its own; residuals use exact products computed in
  blocks (``hsslin.KernelMatrix``, O(N^2) kernel evaluations, never the
  matrix). No dense reference exists at these sizes (N = 100 000 would be
  80 GB): times, memory and their growth with N are reported.

Residuals are ``||A x - b|| / ||b||`` for two right-hand sides: a
*manufactured* one, ``b = A x*`` with x* standard normal (the residual then
measures the relative error of the approximation, about tol), and a
*random* one, b standard normal (for ``A = K + nugget I`` the solution is
dominated by the nugget's directions, and the residual is the approximation
error amplified by about ``||A||_F / (sqrt(N) * nugget)``).

Writes ``bench_solve.md``, ``bench_solve.png`` and ``bench_solve.json`` to --out.

    python benchmarks/bench_solve.py --quick     # smoke run, ~2 minutes
    python benchmarks/bench_solve.py             # full run (~30 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time

# See bench_hss.py: OpenBLAS's spinning threads would hold the core hsslin's
# second thread needs right after every LAPACK call.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing as T  # noqa: E402
from _common import cauchy, gaussian_kernel  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-6
LEAF = 64
DENSE_SIZES = [1024, 2048, 4096, 8192, 16384]
QUICK_DENSE_SIZES = [1024, 2048, 4096]
LU_MAX_N = 8192  # LAPACK reference (and exact residuals) up to this size: 16384 needs 4 more GiB
KERNEL2D_SIZES = [10_000, 20_000, 50_000, 100_000, 200_000]
KERNEL3D_SIZES = [10_000, 20_000, 50_000, 100_000]
QUICK_KERNEL2D_SIZES = [10_000, 20_000]
QUICK_KERNEL3D_SIZES = [10_000]
KERNELS = {
    "2-D": dict(d=2, kernel="gaussian", lengthscale=0.1, nugget=1e-2),
    "3-D": dict(d=3, kernel="gaussian", lengthscale=0.2, nugget=1e-2),
}
RANDOM_N = 4096


# ---------------------------------------------------------------------------
# matrices
# ---------------------------------------------------------------------------


MAKERS = {"Gaussian": gaussian_kernel, "Cauchy": cauchy}


def rel_residual(apply, x: np.ndarray, b: np.ndarray) -> list[float]:
    """||A x_j - b_j|| / ||b_j|| per column."""
    r = apply(x) - b
    return [float(v) for v in np.linalg.norm(r, axis=0) / np.linalg.norm(b, axis=0)]


def logdet_rel_error(got: tuple[float, float], ref) -> float:
    sign, logabs = got
    if sign != float(ref[0]):
        return float("inf")
    return abs(logabs - float(ref[1])) / abs(float(ref[1]))


# ---------------------------------------------------------------------------
# dense families: interleaved against LAPACK
# ---------------------------------------------------------------------------


def dense_row(hsslin, family: str, n: int, spd: bool, quick: bool) -> dict:
    A = MAKERS[family](n)
    row = {"kind": "dense", "matrix": family, "n": n, "variant": "Cholesky" if spd else "ULV"}
    t0 = time.perf_counter()
    H = hsslin.HSSMatrix.from_dense(A, tol=TOL, leaf_size=LEAF)
    row["build_s"] = time.perf_counter() - t0
    row["hss_bytes"] = H.nbytes
    row["max_rank"] = max(int(r.max()) for r in H.ranks) if H.levels else None
    factor = (lambda: H.factor(symmetric=True)) if spd else H.factor
    with_lapack = n <= LU_MAX_N
    Af = np.asfortranarray(A) if with_lapack else None
    lapack_factor = (
        (lambda: sl.cho_factor(Af, check_finite=False))
        if spd
        else (lambda: sl.lu_factor(Af, check_finite=False))
    )
    if with_lapack:
        lapack_factor()  # warm-up (first-call costs)
        seconds = T.time_once(lapack_factor)
        reps = 3 if quick else T.repeats_for(2 * seconds, 20.0 if n <= 4096 else 40.0, lo=3, hi=15)
        times = T.time_interleaved({"lapack": lapack_factor, "ours": factor}, repeat=reps, warmup=1)
        row["lapack_factor_s"] = T.median(times["lapack"])
        row["factor_s"] = T.median(times["ours"])
        row["factor_ratio"] = T.ratio(times["lapack"], times["ours"])
    else:
        row["factor_s"] = T.median(T.time_back_to_back(factor, repeat=3, warmup=1))
    F = factor()
    row["factor_bytes"] = F.nbytes
    rng = np.random.default_rng(1)
    b = rng.standard_normal(n)
    if with_lapack:
        lu = lapack_factor()
        lapack_solve = (
            (lambda: sl.cho_solve(lu, b, check_finite=False))
            if spd
            else (lambda: sl.lu_solve(lu, b, check_finite=False))
        )
        reps = 10 if quick else 60
        times = T.time_interleaved(
            {"lapack": lapack_solve, "ours": lambda: F.solve(b)}, repeat=reps, warmup=3
        )
        row["lapack_solve_s"] = T.median(times["lapack"])
        row["solve_s"] = T.median(times["ours"])
        row["solve_ratio"] = T.ratio(times["lapack"], times["ours"])
        row["lapack_bytes"] = sum(np.asarray(f).nbytes for f in lu if isinstance(f, np.ndarray))
        del lu
    else:
        row["solve_s"] = T.median(T.time_back_to_back(lambda: F.solve(b), repeat=20, warmup=3))
    x_star = rng.standard_normal(n)
    B = np.column_stack([A @ x_star, b])
    X = F.solve(B)
    row["residual_manufactured"], row["residual_random"] = rel_residual(lambda x: A @ x, X, B)
    row["residual_transposed"] = rel_residual(lambda x: A.T @ x, F.solve(B, transpose=True), B)[0]
    if with_lapack:
        row["logdet_rel_error"] = logdet_rel_error(F.logdet(), np.linalg.slogdet(A))
    row["logdet"] = F.logdet()
    return row


def random_row(hsslin, n: int, quick: bool) -> dict:
    A = np.random.default_rng(0).standard_normal((n, n))
    H = hsslin.HSSMatrix.from_dense(A, tol=TOL, leaf_size=LEAF)
    row = {"kind": "dense", "matrix": "random", "n": n, "variant": "dense LU", "is_dense": H.is_dense}
    Af = np.asfortranarray(A)

    def lapack_factor():
        return sl.lu_factor(Af, check_finite=False)

    lapack_factor()
    reps = 3 if quick else 7
    times = T.time_interleaved({"lapack": lapack_factor, "ours": H.factor}, repeat=reps, warmup=1)
    row["lapack_factor_s"] = T.median(times["lapack"])
    row["factor_s"] = T.median(times["ours"])
    row["factor_ratio"] = T.ratio(times["lapack"], times["ours"])
    F = H.factor()
    row["method"] = F.method
    b = np.random.default_rng(1).standard_normal(n)
    lu = lapack_factor()
    times = T.time_interleaved(
        {"lapack": lambda: sl.lu_solve(lu, b, check_finite=False), "ours": lambda: F.solve(b)},
        repeat=20,
        warmup=3,
    )
    row["lapack_solve_s"] = T.median(times["lapack"])
    row["solve_s"] = T.median(times["ours"])
    row["solve_ratio"] = T.ratio(times["lapack"], times["ours"])
    row["residual_random"] = rel_residual(lambda x: A @ x, F.solve(b)[:, None], b[:, None])[0]
    row["logdet_rel_error"] = logdet_rel_error(F.logdet(), np.linalg.slogdet(A))
    row["factor_bytes"] = F.nbytes
    row["lapack_bytes"] = lu[0].nbytes + lu[1].nbytes
    return row


# ---------------------------------------------------------------------------
# from points: one subprocess per N
# ---------------------------------------------------------------------------


def kernel_row(hsslin, dim: str, n: int) -> dict:
    spec = KERNELS[dim]
    x = np.random.default_rng(0).uniform(size=(n, spec["d"]))
    kw = dict(kernel=spec["kernel"], lengthscale=spec["lengthscale"], nugget=spec["nugget"])
    row = {
        "kind": "kernel",
        "matrix": f"{dim} {spec['kernel']} l={spec['lengthscale']:g}",
        "n": n,
        "dim": dim,
    }
    t0 = time.perf_counter()
    H = hsslin.HSSMatrix.from_kernel(x, tol=TOL, leaf_size=LEAF, **kw)
    row["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    F = H.factor(symmetric=True)
    row["factor_s"] = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    b = rng.standard_normal(n)
    F.solve(b)  # first call: page faults of the workspace
    t0 = time.perf_counter()
    x_b = F.solve(b)
    row["solve_s"] = time.perf_counter() - t0
    row["total_s"] = row["build_s"] + row["factor_s"] + row["solve_s"]
    row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    row["hss_bytes"] = H.nbytes
    row["factor_bytes"] = F.nbytes
    row["error_estimate"] = H.error_estimate
    row["max_rank"] = max(int(r.max()) for r in H.ranks) if H.levels else None
    row["logdet"] = F.logdet()
    # Exact products in blocks: K x* for the manufactured right-hand side,
    # then the residuals of both solves in one two-column product.
    K = hsslin.KernelMatrix(x, **kw)
    x_star = rng.standard_normal(n)
    t0 = time.perf_counter()
    b_star = K @ x_star
    X = np.column_stack([F.solve(b_star), x_b])
    B = np.column_stack([b_star, b])
    row["residual_manufactured"], row["residual_random"] = rel_residual(lambda v: K @ v, X, B)
    row["exact_products_s"] = time.perf_counter() - t0
    return row


def run_child(args, dim: str, n: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", dim, str(n)]
    if args.hss_threads is not None:
        cmd += ["--hss-threads", str(args.hss_threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"kind": "kernel", "matrix": dim, "n": n, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# targets, tables, plot
# ---------------------------------------------------------------------------


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def verdict(ok) -> str:
    return "NOT RUN" if ok is None else ("PASS" if ok else "FAIL")


def evaluate_targets(rows) -> list[list[str]]:
    out = []
    g = find(rows, matrix="Gaussian", n=4096, variant="ULV")
    if g and "factor_ratio" in g:
        out.append(
            [
                "Gaussian 4096: factor ≥ 60× lu_factor",
                f"{g['factor_ratio']:.1f}×",
                verdict(g["factor_ratio"] >= 60),
            ]
        )
        out.append(
            [
                "Gaussian 4096: solve ≥ 20× lu_solve",
                f"{g['solve_ratio']:.1f}×",
                verdict(g["solve_ratio"] >= 20),
            ]
        )
        res = g["residual_manufactured"]
        out.append(["Gaussian 4096: residual ≤ 10·tol (b = A x*)", f"{res:.2e}", verdict(res <= 10 * TOL)])
        out.append(
            [
                "Gaussian 4096: residual ≤ 10·tol (random b)",
                f"{g['residual_random']:.2e}",
                verdict(g["residual_random"] <= 10 * TOL),
            ]
        )
        le = g["logdet_rel_error"]
        out.append(["Gaussian 4096: logdet within 1e-6 (relative)", f"{le:.2e}", verdict(le <= 1e-6)])
    else:
        out.append(["Gaussian 4096 targets", "—", verdict(None)])
    k = find(rows, kind="kernel", dim="2-D", n=100_000)
    if k and "total_s" in k:
        out.append(
            [
                "2-D kernel 100k: build + factor + solve ≤ 120 s",
                f"{k['total_s']:.1f} s",
                verdict(k["total_s"] <= 120),
            ]
        )
        out.append(
            [
                "2-D kernel 100k: peak memory ≤ 4 GiB",
                f"{k['peak_rss_gib']:.2f} GiB",
                verdict(k["peak_rss_gib"] <= 4),
            ]
        )
        out.append(
            [
                "2-D kernel 100k: residual ≤ 1e-5 (b = K x*)",
                f"{k['residual_manufactured']:.2e}",
                verdict(k["residual_manufactured"] <= 1e-5),
            ]
        )
        out.append(
            [
                "2-D kernel 100k: residual ≤ 1e-5 (random b)",
                f"{k['residual_random']:.2e}",
                verdict(k["residual_random"] <= 1e-5),
            ]
        )
    else:
        out.append(["2-D kernel 100k targets", "—", verdict(None)])
    lo, hi = find(rows, kind="kernel", dim="2-D", n=10_000), find(rows, kind="kernel", dim="2-D", n=200_000)
    if lo and hi and "build_s" in lo and "build_s" in hi:
        allowed = (hi["n"] * math.log(hi["n"]) ** 2) / (lo["n"] * math.log(lo["n"]) ** 2)
        for what in ("build_s", "factor_s"):
            grow = hi[what] / lo[what]
            out.append(
                [
                    f"2-D kernel {what[:-2]} 10k → 200k grows ≤ N log² N ({allowed:.0f}×)",
                    f"{grow:.1f}×",
                    verdict(grow <= allowed),
                ]
            )
    else:
        out.append(["2-D growth 10k → 200k", "—", verdict(None)])
    r = find(rows, matrix="random")
    if r:
        slow = r["factor_s"] / r["lapack_factor_s"]
        out.append(
            [
                "incompressible: factor ≤ 1.2× lu_factor",
                f"{slow:.2f}×",
                verdict(slow <= 1.2 and r["is_dense"]),
            ]
        )
    return out


def fmt_s(v):
    return "—" if v is None else T.fmt_time(v)


def fmt_x(v):
    return "—" if v is None else f"{v:.1f}×"


def fmt_e(v):
    return "—" if v is None else f"{v:.1e}"


def mib(v):
    return "—" if v is None else f"{v / 2**20:.1f}"


def table_dense(rows):
    head = [
        "matrix", "N", "variant", "max rank", "build", "factor", "LAPACK factor", "LAPACK ÷ ours",
        "solve", "LAPACK solve", "LAPACK ÷ ours", "res. (b = A x*)", "res. (random b)", "res. (Aᵀ)",
        "logdet rel. err.", "factor MiB", "LAPACK MiB",
    ]  # fmt: skip
    body = []
    for r in rows:
        if r["kind"] != "dense":
            continue
        body.append(
            [
                r["matrix"], r["n"], r["variant"], r.get("max_rank") or "dense", fmt_s(r.get("build_s")),
                fmt_s(r["factor_s"]), fmt_s(r.get("lapack_factor_s")), fmt_x(r.get("factor_ratio")),
                fmt_s(r["solve_s"]), fmt_s(r.get("lapack_solve_s")), fmt_x(r.get("solve_ratio")),
                fmt_e(r.get("residual_manufactured")), fmt_e(r.get("residual_random")),
                fmt_e(r.get("residual_transposed")), fmt_e(r.get("logdet_rel_error")),
                mib(r.get("factor_bytes")), mib(r.get("lapack_bytes")),
            ]
        )  # fmt: skip
    return head, body


def table_kernel(rows):
    head = [
        "kernel", "N", "max rank", "build", "factor (Cholesky)", "solve", "total", "peak RSS GiB",
        "HSS MiB", "factor MiB", "error estimate", "res. (b = K x*)", "res. (random b)",
    ]  # fmt: skip
    body = []
    for r in rows:
        if r["kind"] != "kernel":
            continue
        if "error" in r:
            body.append([r["matrix"], r["n"], f"failed: {r['error']}"] + [""] * (len(head) - 3))
            continue
        body.append(
            [
                r["matrix"], r["n"], r["max_rank"], fmt_s(r["build_s"]), fmt_s(r["factor_s"]),
                fmt_s(r["solve_s"]),
                fmt_s(r["total_s"]), f"{r['peak_rss_gib']:.2f}", mib(r["hss_bytes"]), mib(r["factor_bytes"]),
                fmt_e(r["error_estimate"]), fmt_e(r["residual_manufactured"]), fmt_e(r["residual_random"]),
            ]
        )  # fmt: skip
    return head, body


def plot(rows, path: str, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(8, 5.5))
    styles = {"build_s": ("o-", "build"), "factor_s": ("s-", "factor"), "solve_s": ("^-", "solve")}
    for dim, color in (("2-D", "C0"), ("3-D", "C1")):
        pts = sorted((r for r in rows if r.get("dim") == dim and "build_s" in r), key=lambda r: r["n"])
        for key, (style, label) in styles.items():
            if pts:
                ax.loglog(
                    [r["n"] for r in pts],
                    [r[key] for r in pts],
                    style,
                    color=color,
                    label=f"{dim} kernel: {label}",
                )
    g = sorted(
        (r for r in rows if r.get("matrix") == "Gaussian" and r.get("variant") == "ULV"), key=lambda r: r["n"]
    )
    if g:
        ax.loglog(
            [r["n"] for r in g],
            [r["factor_s"] for r in g],
            "s--",
            color="C2",
            label="1-D Gaussian: ULV factor",
        )
        lu = [r for r in g if "lapack_factor_s" in r]
        ax.loglog(
            [r["n"] for r in lu],
            [r["lapack_factor_s"] for r in lu],
            "x:",
            color="k",
            label="lu_factor (LAPACK)",
        )
    pts = sorted((r for r in rows if r.get("dim") == "2-D" and "build_s" in r), key=lambda r: r["n"])
    if pts:
        n = np.array([r["n"] for r in pts], dtype=float)
        ref = pts[0]["build_s"] * (n * np.log(n) ** 2) / (n[0] * np.log(n[0]) ** 2)
        ax.loglog(n, ref, "-", color="0.7", lw=3, alpha=0.6, label="N log² N (through the first build)")
    ax.set_xlabel("N")
    ax.set_ylabel("seconds")
    ax.set_title(title, fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_markdown(path, rows, targets, info, settings, command, png, elapsed, done=True):
    hd, bd = table_dense(rows)
    hk, bk = table_kernel(rows)
    lines = [
        "# hsslin direct-solver benchmark",
        "",
        "Produced by `benchmarks/bench_solve.py`; do not edit by hand, rerun it.",
        "",
        "```",
        command,
        "```",
        "",
        (
            f"Run took {elapsed / 60:.1f} min."
            if done
            else f"**Interrupted run**: the rows measured in its first {elapsed / 60:.1f} min."
        )
        + f" Raw results: `bench_solve.json`. Plot: `{png}`.",
        "",
        "## Machine and settings",
        "",
        "|  |  |",
        "|:---|---:|",
    ]
    lines += [f"| {k} | {v} |" for k, v in list(info.items()) + list(settings.items())]
    lines += [
        "",
        "## Method",
        "",
        __doc__.split("\n\n", 1)[1].split("Writes ``")[0].strip(),
        "",
        "## Dense families and LAPACK",
        "",
        T.render_table(hd, bd, markdown=True),
        "",
        "## Kernel matrices from points (`HSSMatrix.from_kernel`, factor(symmetric=True))",
        "",
        T.render_table(hk, bk, markdown=True),
        "",
        f"![time against N]({png})",
        "",
        "## Targets",
        "",
        T.render_table(["target", "measured", "verdict"], targets, markdown=True),
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke run (small N, few repeats)")
    p.add_argument(
        "--rows",
        nargs="+",
        choices=["dense", "random", "2-D", "3-D"],
        default=["dense", "random", "2-D", "3-D"],
    )
    p.add_argument("--max-n", type=int, default=None, help="skip from-points rows above this N")
    p.add_argument("--hss-threads", type=int, default=None, help="hsslin.set_num_threads(n)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        metavar="S",
        help="wait up to S s for a quiet machine before each row (default 60, --quick 0)",
    )
    p.add_argument("--out", default=os.path.join(REPO, "docs"))
    p.add_argument("--child", nargs=2, metavar=("DIM", "N"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import hsslin

    if args.hss_threads is not None:
        hsslin.set_num_threads(args.hss_threads)
    if args.child:
        print(json.dumps(kernel_row(hsslin, args.child[0], int(args.child[1]))))
        return 0
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if args.quick else 60.0
    t_begin = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    command = f"{sys.executable} {shlex.join(sys.argv)}   # cwd: {os.getcwd()}"
    info = T.machine_info(REPO)
    settings = {
        "numpy BLAS threads (LAPACK side)": str(T.blas_threads()),
        "hsslin threads": str(hsslin.get_num_threads()),
        "hsslin SIMD path": hsslin.simd_path(),
        "tol": f"{TOL:g}",
        "leaf_size": str(LEAF),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset"),
    }
    for k, v in list(info.items()) + list(settings.items()):
        print(f"  {k}: {v}")
    rows: list[dict] = []

    png = os.path.join(args.out, "bench_solve.png")

    def report(done: bool):
        # Rewritten after every row, so an interrupted run leaves its rows so far.
        info["load average at end" if done else "load average at the last row"] = " ".join(
            f"{v:.2f}" for v in (T.loadavg() or ())
        )
        elapsed = time.perf_counter() - t_begin
        targets = evaluate_targets(rows)
        plot(rows, png, f"hsslin direct solvers, tol={TOL:g}, leaf={LEAF}; {info.get('CPU', '')}")
        write_markdown(
            os.path.join(args.out, "bench_solve.md"),
            rows,
            targets,
            info,
            settings,
            command,
            os.path.basename(png),
            elapsed,
            done,
        )
        return targets, elapsed

    def record(row):
        row["load_average"] = T.loadavg()
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
        with open(os.path.join(args.out, "bench_solve.json"), "w") as f:
            json.dump(
                {"command": command, "machine": info, "settings": settings, "rows": rows},
                f,
                indent=1,
                default=str,
            )
        report(done=False)

    def quiet():
        if args.wait_quiet > 0:
            T.wait_for_quiet(0.10, 2.0, args.wait_quiet)

    if "dense" in args.rows:
        for family in ("Gaussian", "Cauchy"):
            for n in QUICK_DENSE_SIZES if args.quick else DENSE_SIZES:
                for spd in (False, True) if family == "Gaussian" else (False,):
                    quiet()
                    record(dense_row(hsslin, family, n, spd, args.quick))
    if "random" in args.rows:
        quiet()
        record(random_row(hsslin, 2048 if args.quick else RANDOM_N, args.quick))
    for dim, full, short in (
        ("2-D", KERNEL2D_SIZES, QUICK_KERNEL2D_SIZES),
        ("3-D", KERNEL3D_SIZES, QUICK_KERNEL3D_SIZES),
    ):
        if dim not in args.rows:
            continue
        for n in short if args.quick else full:
            if args.max_n and n > args.max_n:
                continue
            quiet()
            record(run_child(args, dim, n))
    info.pop("load average at the last row", None)
    targets, elapsed = report(done=True)
    print(T.render_table(*table_dense(rows)))
    print(T.render_table(*table_kernel(rows)))
    print(T.render_table(["target", "measured", "verdict"], targets))
    print(f"wrote {args.out}/bench_solve.md, .png, .json ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
