"""Benchmark of hsslin's HSS core against numpy/OpenBLAS dense on the same matrices.

For three matrix families (a 1-D Gaussian kernel, a Cauchy matrix and an
incompressible iid Gaussian matrix) and a range of sizes N it measures, in
float64:

* construction time of ``HSSMatrix.from_dense`` (median of a few runs for
  small N, one run for large N) against dense LU (``scipy.linalg.lu_factor``,
  the construction reference, for N <= 8192);
* stored bytes (``H.nbytes``) and their share of the dense matrix;
* relative Frobenius error: exact (``H.relative_error(A)``) for N <= 8192,
  otherwise the library's held-out-probe estimate; both are labelled;
* matvec and 16-column matmat: HSS and numpy's dense product timed
  *interleaved* (dense, HSS, dense, HSS, ...) after warm-up, medians and
  their ratio; plus a separate "HSS warm" column where the HSS product runs
  back-to-back (interleaving with a large dense product evicts HSS's
  factors from cache, so the interleaved number is the pessimistic one).

It prints tables, checks the performance targets (PASS/FAIL/NOT RUN), and
writes ``bench_hss.md``, ``bench_hss.png`` and ``bench_hss.json`` to --out.

    python benchmarks/bench_hss.py --quick     # smoke run, < 1 minute
    python benchmarks/bench_hss.py             # full run, several minutes
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field

# OpenBLAS's worker threads keep spinning for about 0.1 s after each call
# (2**28 cycles) and so hold the core that hsslin's second thread needs right
# after every dense reference product; with a short timeout they sleep at
# once. It must be set before numpy loads OpenBLAS; an explicit setting wins.
# The dense products themselves are not slower for it at N >= 2048 (see
# docs/guide.md, "Threads and numpy's BLAS").
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing as T  # noqa: E402
from _common import cauchy, gaussian_kernel  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAMILIES = ("gaussian", "cauchy", "random")
LABELS = {
    "gaussian": "Gaussian kernel exp(-(xi-xj)^2/(2h^2)), h=0.05, + 1e-2 I",
    "cauchy": "Cauchy 1/(xi - yj), xi=(i+0.5)/N, yj=j/N",
    "random": "iid Gaussian entries (incompressible)",
}
SHORT = {"gaussian": "Gaussian", "cauchy": "Cauchy", "random": "random"}
FULL_SIZES = [1024, 2048, 4096, 8192, 16384]
QUICK_SIZES = [1024, 2048]
LU_MAX_N = 8192  # dense LU reference up to this size
EXACT_ERR_MAX_N = 8192  # exact relative error (needs two more dense copies) up to this size
MATMAT_COLS = 16
TARGET_TOL = 1e-6  # the targets are defined at this tolerance


# ---------------------------------------------------------------------------
# matrices (built in place: N=16384 is 2 GiB per dense copy)
# ---------------------------------------------------------------------------


def iid_gaussian(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, n))


MAKERS = {"gaussian": gaussian_kernel, "cauchy": cauchy, "random": iid_gaussian}


# ---------------------------------------------------------------------------
# one measurement
# ---------------------------------------------------------------------------


@dataclass
class Case:
    family: str
    n: int
    dense_bytes: int = 0
    build_times: list = field(default_factory=list)
    lu_times: list = field(default_factory=list)
    nbytes: int = 0
    is_dense: bool = False
    max_rank: int = 0
    levels: int = 0
    samples: int = 0
    err_exact: float | None = None
    err_estimate: float = float("nan")
    product_check: float = float("nan")  # ||A X - H X||_F / ||A X||_F, 16 random columns
    # product timings (seconds): interleaved dense / hss, back-to-back hss
    mv_dense: list = field(default_factory=list)
    mv_hss: list = field(default_factory=list)
    mv_hss_warm: list = field(default_factory=list)
    mm_dense: list = field(default_factory=list)
    mm_hss: list = field(default_factory=list)
    mm_hss_warm: list = field(default_factory=list)
    other_cpu: float = float("nan")  # share of the machine other processes used meanwhile
    waited_s: float = 0.0  # waited for a quiet machine before this case
    wall_s: float = 0.0
    error: str | None = None

    # derived -------------------------------------------------------------
    @property
    def build(self) -> float:
        return T.median(self.build_times)

    @property
    def lu(self) -> float | None:
        return T.median(self.lu_times) if self.lu_times else None

    @property
    def pct_dense(self) -> float:
        return 100.0 * self.nbytes / self.dense_bytes

    @property
    def err(self) -> float:
        return self.err_exact if self.err_exact is not None else self.err_estimate

    def speedup(self, kind: str, warm: bool = False) -> float:
        """Median dense time / median HSS time (interleaved or warm)."""
        dense = getattr(self, f"{kind}_dense")
        ours = getattr(self, f"{kind}_hss_warm" if warm else f"{kind}_hss")
        return T.ratio(dense, ours)


def build_repeats(n: int, quick: bool) -> int:
    if quick:
        return 3 if n <= 2048 else 1
    return 5 if n <= 2048 else 3 if n <= 4096 else 1


def run_case(family: str, n: int, args, hsslin) -> Case:
    from scipy.linalg import lu_factor

    case = Case(family, n)
    if args.wait_quiet > 0:
        case.waited_s, share = T.wait_for_quiet(0.10, 2.0, args.wait_quiet)
        if case.waited_s > 2.5:
            print(
                f"    waited {case.waited_s:.0f} s for other processes to go quiet "
                f"(last 2 s: {100 * share:.0f}% of the CPUs busy elsewhere)",
                flush=True,
            )
    mon = T.CpuMonitor().start()
    t_start = time.perf_counter()
    A = MAKERS[family](n, args.seed)
    case.dense_bytes = A.nbytes

    # --- construction -----------------------------------------------------
    H = None
    for _ in range(build_repeats(n, args.quick)):
        H = None
        gc.collect()
        t0 = T.clock()
        H = hsslin.HSSMatrix.from_dense(A, tol=args.tol, leaf_size=args.leaf_size, seed=args.seed)
        case.build_times.append(T.clock() - t0)
    case.nbytes = H.nbytes
    case.is_dense = H.is_dense
    ranks = H.ranks
    case.max_rank = int(max((int(r.max()) for r in ranks if r.size), default=0))
    case.levels = H.levels
    case.samples = H.samples
    case.err_estimate = H.error_estimate
    print(
        f"    build {T.fmt_time(case.build)}  ({len(case.build_times)} run(s)), "
        f"{case.pct_dense:.2f}% of dense, max rank {case.max_rank}"
        f"{', dense fallback' if case.is_dense else ''}",
        flush=True,
    )

    # --- dense LU reference ----------------------------------------------
    if n <= LU_MAX_N:
        for _ in range(build_repeats(n, args.quick)):
            Af = np.array(A, order="F")  # copy outside the clock; getrf works in place
            t0 = T.clock()
            lu_factor(Af, overwrite_a=True, check_finite=False)
            case.lu_times.append(T.clock() - t0)
            del Af
        print(f"    LU {T.fmt_time(case.lu)}", flush=True)

    # --- accuracy -----------------------------------------------------------
    if n <= EXACT_ERR_MAX_N:
        case.err_exact = H.relative_error(A)
        gc.collect()

    # --- products -------------------------------------------------------------
    rng = np.random.default_rng(args.seed + 1)
    v = rng.standard_normal(n)
    X = rng.standard_normal((n, MATMAT_COLS))
    Y = A @ X
    case.product_check = float(np.linalg.norm(Y - H @ X) / np.linalg.norm(Y))
    del Y
    budget = 1.0 if args.quick else 4.0
    lo, hi = (5, 40) if args.quick else (9, 300)
    for kind, operand in (("mv", v), ("mm", X)):

        def dense(operand=operand):
            return A @ operand

        def ours(operand=operand):
            return H @ operand

        dense(), ours()  # first touch
        per_round = T.time_once(dense) + T.time_once(ours)
        rounds = T.repeats_for(per_round, budget, lo, hi)
        res = T.time_interleaved({"dense": dense, "hss": ours}, rounds, warmup=3)
        setattr(case, f"{kind}_dense", res["dense"].tolist())
        setattr(case, f"{kind}_hss", res["hss"].tolist())
        warm_rounds = T.repeats_for(T.median(res["hss"]), budget / 4, rounds, 4 * hi)
        setattr(case, f"{kind}_hss_warm", T.time_back_to_back(ours, warm_rounds, warmup=3).tolist())
        print(
            f"    {'matvec' if kind == 'mv' else 'matmat16'}: dense "
            f"{T.fmt_time(T.median(res['dense']))}, HSS {T.fmt_time(T.median(res['hss']))} "
            f"(x{case.speedup(kind):.1f}), HSS warm "
            f"{T.fmt_time(T.median(getattr(case, f'{kind}_hss_warm')))} "
            f"(x{case.speedup(kind, warm=True):.1f}); {rounds} interleaved rounds",
            flush=True,
        )

    case.other_cpu = mon.stop()
    case.wall_s = time.perf_counter() - t_start
    del A, H
    gc.collect()
    return case


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------


def _sci(x: float | None) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.2e}"


def _x(x: float | None) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.1f}×" if x >= 10 else f"{x:.2f}×"


def table_build(cases: list[Case]):
    headers = [
        "matrix",
        "N",
        "build (HSS)",
        "runs",
        "dense LU",
        "build ÷ LU",
        "HSS MiB",
        "% of dense",
        "rel. error",
        "error is",
        "estimate",
        "HX check",
        "max rank",
        "other CPU",
    ]
    rows = []
    for c in cases:
        if c.error:
            rows.append([SHORT[c.family], c.n, f"FAILED: {c.error}"] + [""] * (len(headers) - 3))
            continue
        lu = c.lu
        rows.append(
            [
                SHORT[c.family],
                c.n,
                T.fmt_time(c.build),
                len(c.build_times),
                T.fmt_time(lu),
                _x(c.build / lu) if lu else "—",
                f"{c.nbytes / 2**20:.2f}",
                f"{c.pct_dense:.2f}%",
                _sci(c.err),
                "exact" if c.err_exact is not None else "estimate",
                _sci(c.err_estimate),
                _sci(c.product_check),
                "dense" if c.is_dense else c.max_rank,
                f"{100 * c.other_cpu:.0f}%",
            ]
        )
    return headers, rows


def table_products(cases: list[Case]):
    headers = [
        "matrix",
        "N",
        "matvec dense",
        "matvec HSS",
        "dense ÷ HSS",
        "HSS warm",
        "dense ÷ warm",
        "dense GB/s",
        "HSS warm GB/s",
        "matmat16 dense",
        "matmat16 HSS",
        "dense ÷ HSS",
        "HSS warm",
        "dense ÷ warm",
    ]
    rows = []
    for c in cases:
        if c.error:
            continue
        mvd, mvw = T.median(c.mv_dense), T.median(c.mv_hss_warm)
        rows.append(
            [
                SHORT[c.family],
                c.n,
                T.fmt_time(mvd),
                T.fmt_time(T.median(c.mv_hss)),
                _x(c.speedup("mv")),
                T.fmt_time(mvw),
                _x(c.speedup("mv", warm=True)),
                f"{c.dense_bytes / mvd / 1e9:.1f}",
                f"{c.nbytes / mvw / 1e9:.1f}",
                T.fmt_time(T.median(c.mm_dense)),
                T.fmt_time(T.median(c.mm_hss)),
                _x(c.speedup("mm")),
                T.fmt_time(T.median(c.mm_hss_warm)),
                _x(c.speedup("mm", warm=True)),
            ]
        )
    return headers, rows


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------


def evaluate_targets(cases: list[Case], tol: float):
    """[(target, measured, verdict)]; verdict PASS, FAIL, NOT RUN or N/A. Never guessed."""
    found = {(c.family, c.n): c for c in cases if not c.error}
    out = []
    wrong_tol = not np.isclose(tol, TARGET_TOL, rtol=0, atol=0)

    def add(name, family, n, value, ok, shown):
        c = found.get((family, n))
        if c is None:
            out.append((name, "—", "NOT RUN"))
        elif wrong_tol:
            out.append((name, shown(c), f"N/A (targets assume tol={TARGET_TOL:g})"))
        else:
            out.append((name, shown(c), "PASS" if ok(value(c)) else "FAIL"))

    for fam in ("gaussian", "cauchy"):
        s = SHORT[fam]
        add(
            f"{s} N=4096: rel. error ≤ 1e-6 (exact)",
            fam,
            4096,
            lambda c: c.err_exact,
            lambda v: v is not None and v <= 1e-6,
            lambda c: _sci(c.err_exact),
        )
        add(
            f"{s} N=4096: nbytes ≤ 3.5% of dense",
            fam,
            4096,
            lambda c: c.pct_dense,
            lambda v: v <= 3.5,
            lambda c: f"{c.pct_dense:.2f}%",
        )
        add(
            f"{s} N=4096: construction ≤ 0.4 s",
            fam,
            4096,
            lambda c: c.build,
            lambda v: v <= 0.4,
            lambda c: f"{c.build:.3f} s (median of {len(c.build_times)})",
        )
        for n, target in ((4096, 25), (8192, 45)):
            for warm, how in ((True, "repeated products, HSS warm"), (False, "cold caches, interleaved")):
                add(
                    f"{s} N={n}: matvec ≥ {target}× faster than dense ({how})",
                    fam,
                    n,
                    lambda c, w=warm: c.speedup("mv", warm=w),
                    lambda v, t=target: v >= t,
                    lambda c, w=warm: _x(c.speedup("mv", warm=w)),
                )
    randoms = sorted(n for f, n in found if f == "random") or [4096]
    for n in randoms:
        add(
            f"random N={n}: nbytes ≤ 1.05× dense",
            "random",
            n,
            lambda c: c.nbytes / c.dense_bytes,
            lambda v: v <= 1.05,
            lambda c: f"{c.nbytes / c.dense_bytes:.4f}×",
        )
        add(
            f"random N={n}: construction ≤ 3× dense LU",
            "random",
            n,
            lambda c: c.build / c.lu if c.lu else None,
            lambda v: v is not None and v <= 3,
            lambda c: f"{c.build / c.lu:.2f}×" if c.lu else "no LU",
        )
        for kind, label in (("mv", "matvec"), ("mm", "matmat16")):
            add(
                f"random N={n}: {label} time ≤ 1.2× dense (interleaved)",
                "random",
                n,
                lambda c, k=kind: 1.0 / c.speedup(k),
                lambda v: v <= 1.2,
                lambda c, k=kind: f"{1.0 / c.speedup(k):.2f}×",
            )
    return out


# ---------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------


def plot(cases: list[Case], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = [f for f in FAMILIES if any(c.family == f and not c.error for c in cases)]
    fig, axes = plt.subplots(1, len(fams), figsize=(5.4 * len(fams), 5.0), squeeze=False)
    for ax, fam in zip(axes[0], fams):
        cs = sorted((c for c in cases if c.family == fam and not c.error), key=lambda c: c.n)
        n = np.array([c.n for c in cs], dtype=float)
        series = [
            ("HSS construction", [c.build for c in cs], "C3", "s-"),
            ("dense LU (scipy)", [c.lu if c.lu else np.nan for c in cs], "0.55", "x:"),
            ("dense matvec (numpy)", [T.median(c.mv_dense) for c in cs], "C0", "o-"),
            ("HSS matvec, interleaved", [T.median(c.mv_hss) for c in cs], "C2", "^-"),
            ("HSS matvec, warm", [T.median(c.mv_hss_warm) for c in cs], "C2", "v--"),
        ]
        for label, y, color, style in series:
            y = np.array(y, dtype=float)
            if np.all(np.isnan(y)):
                continue
            ax.plot(n, y, style, color=color, label=label, lw=1.6, ms=5)
        # reference slopes anchored at the smallest N
        y0 = T.median(cs[0].mv_hss_warm)
        ax.plot(n, 0.5 * y0 * n / n[0], "k-", lw=0.8, alpha=0.6, label="slope 1 (∝ N)")
        y0d = T.median(cs[0].mv_dense)
        ax.plot(n, 2.0 * y0d * (n / n[0]) ** 2, "k:", lw=0.8, alpha=0.6, label="slope 2 (∝ N²)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(n)
        ax.set_xticklabels([str(int(v)) for v in n])
        ax.minorticks_off()
        ax.set_xlabel("N")
        ax.set_ylabel("time [s]")
        ax.set_title(LABELS[fam].split(",")[0] if fam != "random" else LABELS[fam], fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8.5, frameon=False)
    fig.suptitle(title, fontsize=9.5)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------


def write_markdown(path, cases, targets, info, settings, command, png_name, elapsed):
    hb, rb = table_build(cases)
    hp, rp = table_products(cases)
    ht = ["target", "measured", "verdict"]
    lines = [
        "# hsslin HSS benchmark",
        "",
        "Produced by `benchmarks/bench_hss.py`; do not edit by hand, rerun it.",
        "",
        "```",
        command,
        "```",
        "",
        f"Run took {elapsed / 60:.1f} min. Raw per-call times: `bench_hss.json`. Plot: `{png_name}`.",
        "",
        "## Machine and settings",
        "",
        T.render_table(["", ""], list(info.items()) + list(settings.items()), markdown=True),
        "",
        "## Method",
        "",
        "- Matrices (float64): "
        + "; ".join(f"**{SHORT[f]}**: {LABELS[f]}" for f in FAMILIES)
        + f". Gaussian points: sorted uniform on [0, 1], seed {settings['seed']}.",
        f"- `HSSMatrix.from_dense(A, tol={settings['tol']}, leaf_size={settings['leaf_size']}, "
        f"seed={settings['seed']})`. Construction time: median of 5 runs for N ≤ 2048, "
        "3 for N = 4096, a single run above (--quick: 3 runs for N ≤ 2048). "
        "Dense LU: `scipy.linalg.lu_factor` on a Fortran-ordered copy made outside the clock, "
        f"same number of runs, N ≤ {LU_MAX_N}.",
        f"- **rel. error** = ‖A − H‖_F / ‖A‖_F: *exact* (`H.relative_error(A)`) for "
        f"N ≤ {EXACT_ERR_MAX_N}; above that the library's *estimate* (`H.error_estimate`, "
        "8 held-out random probes at build time). **estimate** is always that estimate. "
        "**HX check** = ‖AX − HX‖_F / ‖AX‖_F for 16 random columns (an independent "
        "sanity check of the products).",
        "- Products: `A @ x` (numpy → OpenBLAS dgemv/dgemm) and `H @ x`, x a vector "
        f"(matvec) or {MATMAT_COLS} columns (matmat16), same operand. **Interleaved**: "
        "dense, HSS, dense, HSS, … after 3 warm-up rounds, medians of each side; "
        '"dense ÷ HSS" is the ratio of those medians. '
        "**HSS warm**: the HSS product alone, back-to-back (its factors stay in cache; "
        "in the interleaved runs the dense product evicts them), median; "
        '"dense ÷ warm" divides the same dense median by it. The matvec speed targets are '
        "read both ways (the issue does not say how its STRUMPACK figures were timed). "
        "*Repeated products* is how an iterative solver uses H. *Cold caches* is the "
        "stricter reading: every product pays DRAM latency for its factors and for the "
        "interpreter's and the extension's own code and data (a 64×64 product costs 2 µs "
        "warm and about 40 µs after a 128 MB dense product). "
        "GB/s = bytes stored ÷ matvec time (the performance model in DESIGN.md: a matvec "
        "reads every stored byte once).",
        "- **other CPU**: share of the machine's CPU time that *other* processes used while "
        "that row was measured (/proc/stat minus this process). Above a few percent the "
        "row's timings are disturbed (e.g. a concurrent compile). Before each row the "
        f"benchmark waited up to {settings['wait for quiet (s)']} s for other processes to "
        "use < 10% of the CPUs.",
        "",
        "## Construction, size, accuracy",
        "",
        T.render_table(hb, rb, markdown=True),
        "",
        "## Products (matvec, 16-column matmat)",
        "",
        T.render_table(hp, rp, markdown=True),
        "",
        f"## Targets (tol = {TARGET_TOL:g}, leaf 64)",
        "",
        T.render_table(ht, targets, markdown=True),
        "",
        f"![time vs N]({png_name})",
        "",
    ]
    notes = notes_for(cases, info, settings)
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def notes_for(cases, info, settings) -> list[str]:
    notes = []
    if settings["hsslin SIMD path"] != "avx2" and "avx2" in info.get("CPU flags (of interest)", ""):
        notes.append(
            "The CPU has AVX2/FMA but hsslin loaded its *generic* core "
            f"(`simd_path()` = {settings['hsslin SIMD path']!r}): the AVX2 build was "
            "not importable in this install, so the HSS kernels ran without AVX2."
        )
    busy = [c for c in cases if not c.error and c.other_cpu > 0.05]
    if busy:
        notes.append(
            "Other processes used > 5% of the CPU during: "
            + ", ".join(f"{SHORT[c.family]} {c.n} ({100 * c.other_cpu:.0f}%)" for c in busy)
            + "; treat those timings with care."
        )
    return notes


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run (N = 1024, 2048; fewer repeats; < 1 minute)"
    )
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        help=f"N values (default {FULL_SIZES}; the random family only uses those ≤ --random-max-n)",
    )
    p.add_argument(
        "--random-max-n",
        type=int,
        default=4096,
        help="largest N for the incompressible random family (default 4096)",
    )
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    p.add_argument("--leaf-size", type=int, default=64)
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--hss-threads",
        type=int,
        default=None,
        help="hsslin.set_num_threads(n) (default: leave hsslin's default)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="numpy BLAS threads via threadpoolctl (default: leave numpy's default)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        metavar="S",
        help="before each case wait up to S seconds until other processes use "
        "< 10%% of the CPUs (default 90, --quick 0; 0 disables)",
    )
    p.add_argument(
        "--out",
        default=os.path.join(REPO, "docs"),
        help="output folder for bench_hss.md/.png/.json (default: docs/)",
    )
    return p.parse_args(argv)


def import_hsslin(retries: int = 6, wait_s: float = 20.0):
    """Imports hsslin, retrying for a while (an editable rebuild may be in progress)."""
    for attempt in range(retries):
        try:
            import hsslin

            return hsslin
        except ImportError as exc:
            if attempt == retries - 1:
                raise
            print(f"import hsslin failed ({exc}); retrying in {wait_s:.0f} s", flush=True)
            time.sleep(wait_s)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if args.quick else 90.0
    hsslin = import_hsslin()
    t_begin = time.perf_counter()
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    if args.hss_threads is not None:
        hsslin.set_num_threads(args.hss_threads)
    os.makedirs(args.out, exist_ok=True)

    command = f"{sys.executable} {shlex.join(sys.argv)}   # cwd: {os.getcwd()}"
    info = T.machine_info(REPO)
    cases: list[Case] = []
    with T.blas_limit(args.blas_threads):
        settings = {
            "numpy BLAS threads (dense side)": str(T.blas_threads()),
            "hsslin threads (HSS side)": str(hsslin.get_num_threads()),
            "hsslin SIMD path": hsslin.simd_path(),
            "hsslin version": hsslin.__version__,
            "tol": f"{args.tol:g}",
            "leaf_size": str(args.leaf_size),
            "seed": str(args.seed),
            "wait for quiet (s)": f"{args.wait_quiet:g}",
            "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset"),
        }
        print("hsslin HSS benchmark")
        for k, v in list(info.items()) + list(settings.items()):
            print(f"  {k}: {v}")
        print(flush=True)

        # warm-up: thread pools, first-call costs, page faults of the allocator
        W = gaussian_kernel(512, args.seed)
        hsslin.HSSMatrix.from_dense(W, tol=args.tol, leaf_size=args.leaf_size) @ np.ones(512)
        del W

        for fam in args.families:
            for n in sizes:
                if fam == "random" and n > args.random_max_n:
                    continue
                print(f"[{SHORT[fam]} N={n}]", flush=True)
                try:
                    cases.append(run_case(fam, n, args, hsslin))
                except MemoryError as exc:  # record it, keep going
                    print(f"    FAILED: {exc!r}", flush=True)
                    cases.append(Case(fam, n, error=f"MemoryError {exc}"))
                    gc.collect()
                with open(os.path.join(args.out, "bench_hss.json"), "w") as f:
                    json.dump(
                        {
                            "command": command,
                            "machine": info,
                            "settings": settings,
                            "cases": [asdict(c) for c in cases],
                        },
                        f,
                        indent=1,
                    )
        info["load average at end"] = " ".join(f"{v:.2f}" for v in (T.loadavg() or ()))

    elapsed = time.perf_counter() - t_begin
    targets = evaluate_targets(cases, args.tol)
    hb, rb = table_build(cases)
    hp, rp = table_products(cases)
    threads = (
        f"numpy BLAS: {settings['numpy BLAS threads (dense side)']} thread(s); "
        f"hsslin: {settings['hsslin threads (HSS side)']} thread(s); "
        f"SIMD path: {settings['hsslin SIMD path']}"
    )
    print()
    print(f"Construction, size, accuracy  (tol={args.tol:g}, leaf={args.leaf_size}; {threads})")
    print(T.render_table(hb, rb))
    print()
    print("Products: interleaved dense/HSS medians; 'HSS warm' = HSS alone, back-to-back")
    print(T.render_table(hp, rp))
    print()
    print("Targets")
    print(T.render_table(["target", "measured", "verdict"], targets))
    for note in notes_for(cases, info, settings):
        print(f"NOTE: {note}")

    png = os.path.join(args.out, "bench_hss.png")
    plot(
        cases,
        png,
        f"hsslin HSS vs numpy dense, tol={args.tol:g}, leaf={args.leaf_size}; {threads}; {info['CPU']}",
    )
    md = os.path.join(args.out, "bench_hss.md")
    write_markdown(md, cases, targets, info, settings, command, os.path.basename(png), elapsed)
    print(f"\nwrote {md}, {png}, {os.path.join(args.out, 'bench_hss.json')} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
