"""Gaussian-process regression through hsslin: log marginal likelihood and predictive mean.

Data: N points uniform in the unit square, y = f(x) + noise with
f(x) = sin(6 x1) cos(4 x2) + 0.5 sin(10 (x1 + x2)) and noise variance
sigma^2 = 1e-2. Model: a zero-mean GP with the Gaussian kernel
k(r) = exp(-r^2 / (2 l^2)) and the noise as the nugget, so the covariance
of y is C = K + sigma^2 I. With C = H (hsslin.HSSMatrix.from_kernel) and
F = H.factor(symmetric=True):

    log p(y) = -1/2 y^T C^{-1} y - 1/2 log det C - N/2 log(2 pi)
    mean(x*)  = K(x*, X) C^{-1} y

The log marginal likelihood is evaluated for several lengthscales (model
selection); the predictive mean at the best one on a grid of test points.
At N = 8192 every number is checked against the dense computation (numpy
Cholesky of C). Writes gp_example.md and gp_example.png to --out.

    python benchmarks/gp_example.py              # N = 8192 check, then N = 100 000
    python benchmarks/gp_example.py --quick      # N = 2048 check, then N = 20 000
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import numpy as np
import scipy.linalg as sl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing as T  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = 1e-2
TOL = 1e-6
LENGTHSCALES = [0.05, 0.07, 0.1, 0.14, 0.2]
GRID = 100  # test points per side


def truth(x):
    return np.sin(6 * x[:, 0]) * np.cos(4 * x[:, 1]) + 0.5 * np.sin(10 * (x[:, 0] + x[:, 1]))


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 2))
    return x, truth(x) + np.sqrt(NOISE) * rng.standard_normal(n)


def cross_kernel(xs, x, lengthscale, v, chunk=512):
    """K(xs, x) @ v in row chunks (numpy; the test points are few)."""
    out = np.empty(len(xs))
    for a in range(0, len(xs), chunk):
        d2 = ((xs[a : a + chunk, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
        out[a : a + chunk] = np.exp(-0.5 * d2 / lengthscale**2) @ v
    return out


def gp_hsslin(hsslin, x, y, lengthscale):
    t0 = time.perf_counter()
    H = hsslin.HSSMatrix.from_kernel(x, "gaussian", lengthscale=lengthscale, nugget=NOISE, tol=TOL)
    F = H.factor(symmetric=True)
    alpha = F.solve(y)
    sign, logdet = F.logdet()
    assert sign == 1.0
    loglik = -0.5 * y @ alpha - 0.5 * logdet - 0.5 * len(y) * np.log(2 * np.pi)
    return loglik, alpha, time.perf_counter() - t0, H


def gp_dense(x, y, lengthscale):
    t0 = time.perf_counter()
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    C = np.exp(-0.5 * d2 / lengthscale**2)
    del d2
    C.flat[:: len(y) + 1] += NOISE
    c, low = sl.cho_factor(C, lower=True, overwrite_a=True, check_finite=False)
    alpha = sl.cho_solve((c, low), y, check_finite=False)
    logdet = 2 * np.sum(np.log(np.diag(c)))
    loglik = -0.5 * y @ alpha - 0.5 * logdet - 0.5 * len(y) * np.log(2 * np.pi)
    return loglik, alpha, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join(REPO, "docs"))
    args = p.parse_args(argv)
    import hsslin

    n_check, n_big = (2048, 20_000) if args.quick else (8192, 100_000)
    g = (np.arange(GRID) + 0.5) / GRID
    xs = np.column_stack([np.repeat(g, GRID), np.tile(g, GRID)])
    lines = []

    # -- check against dense at n_check
    x, y = data(n_check)
    check_rows = []
    for ls in LENGTHSCALES:
        ll_h, a_h, t_h, _ = gp_hsslin(hsslin, x, y, ls)
        ll_d, a_d, t_d = gp_dense(x, y, ls)
        m_h, m_d = cross_kernel(xs, x, ls, a_h), cross_kernel(xs, x, ls, a_d)
        check_rows.append(
            [
                f"{ls:g}",
                f"{ll_h:.6f}",
                f"{ll_d:.6f}",
                f"{abs(ll_h - ll_d) / abs(ll_d):.1e}",
                f"{np.linalg.norm(m_h - m_d) / np.linalg.norm(m_d):.1e}",
                T.fmt_time(t_h),
                T.fmt_time(t_d),
            ]
        )
        print(check_rows[-1], flush=True)

    # -- the large problem
    x, y = data(n_big)
    big_rows, best = [], None
    for ls in LENGTHSCALES:
        ll, alpha, t, H = gp_hsslin(hsslin, x, y, ls)
        big_rows.append(
            [f"{ls:g}", f"{ll:.3f}", f"{H.error_estimate:.1e}", f"{H.nbytes / 2**20:.0f}", T.fmt_time(t)]
        )
        print(big_rows[-1], flush=True)
        if best is None or ll > best[0]:
            best = (ll, ls, alpha)
    _, ls_best, alpha = best
    t0 = time.perf_counter()
    mean = cross_kernel(xs, x, ls_best, alpha)
    t_mean = time.perf_counter() - t0
    err = np.sqrt(np.mean((mean - truth(xs)) ** 2))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13, 4))
        sub = np.random.default_rng(1).choice(n_big, 4000, replace=False)
        axes[0].scatter(x[sub, 0], x[sub, 1], c=y[sub], s=3, cmap="viridis")
        axes[0].set_title(f"4000 of the N = {n_big} noisy observations")
        im = axes[1].imshow(mean.reshape(GRID, GRID).T, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
        axes[1].set_title(f"predictive mean (l = {ls_best:g}); RMS error vs f: {err:.3f}")
        fig.colorbar(im, ax=axes[1])
        lls = [float(r[1]) for r in big_rows]
        axes[2].plot(LENGTHSCALES, lls, "o-")
        axes[2].set_xscale("log")
        axes[2].set_xlabel("lengthscale")
        axes[2].set_title("log marginal likelihood (hsslin)")
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "gp_example.png"), dpi=110)
    except ImportError:
        print("matplotlib not installed: no plot")

    command = f"{sys.executable} {shlex.join(sys.argv)}   # cwd: {os.getcwd()}"
    info = T.machine_info(REPO)
    lines += [
        "# Gaussian-process regression with hsslin",
        "",
        "Produced by `benchmarks/gp_example.py`; do not edit by hand, rerun it.",
        "",
        "```",
        command,
        "```",
        "",
        f"Machine: {info.get('CPU', '')}, {info.get('cores', '')}; "
        f"hsslin {hsslin.get_num_threads()} threads, "
        f"SIMD {hsslin.simd_path()}; load average at start {info.get('load average at start', '')}.",
        "",
        "## Model",
        "",
        __doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(),
        "",
        "The whole computation through hsslin, for one lengthscale:",
        "",
        "<!-- skip: an outline of the script's loop (x, y, l, noise and K come from the script) -->",
        "```python",
        "H = hsslin.HSSMatrix.from_kernel(x, 'gaussian', lengthscale=l, nugget=noise, tol=1e-6)",
        "F = H.factor(symmetric=True)           # Cholesky-type ULV",
        "alpha = F.solve(y)                      # C^{-1} y",
        "sign, logdet = F.logdet()               # log det C",
        "loglik = -0.5 * y @ alpha - 0.5 * logdet - 0.5 * len(y) * np.log(2 * np.pi)",
        "mean = K(x_test, x) @ alpha             # here: numpy in row chunks",
        "```",
        "",
        f"## Check against the dense computation (N = {n_check})",
        "",
        T.render_table(
            [
                "lengthscale",
                "log p(y), hsslin",
                "log p(y), dense",
                "rel. diff.",
                "mean: rel. diff.",
                "hsslin",
                "dense",
            ],
            check_rows,
            markdown=True,
        ),
        "",
        "Times: hsslin = from_kernel + factor + solve + logdet; dense = forming C + Cholesky + solve.",
        "",
        f"## N = {n_big}",
        "",
        T.render_table(
            ["lengthscale", "log p(y)", "HSS error estimate", "HSS MiB", "time (build + factor + solve)"],
            big_rows,
            markdown=True,
        ),
        "",
        f"Predictive mean on a {GRID}x{GRID} grid at the most likely lengthscale ({ls_best:g}): "
        f"RMS error against the noise-free f = {err:.4f} (noise standard deviation {np.sqrt(NOISE):.2f}); "
        f"{T.fmt_time(t_mean)} for K(x*, X) alpha in numpy.",
        "",
        "![GP example](gp_example.png)",
        "",
    ]
    with open(os.path.join(args.out, "gp_example.md"), "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.out}/gp_example.md and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
