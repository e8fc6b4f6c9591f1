"""CUDA products against the device's copy bandwidth, torch's dense matmul and torch.sparse, in one run.

    python benchmarks/bench_cuda.py [--quick] [--hss-n 65536] [--out docs/bench_cuda.md]

Needs a CUDA build of torch and hsslin built with its CUDA extension
(docs/cuda.md); prints why and exits with status 2 otherwise.

Rows, all timed on one device in one run (CUDA events, medians of
`--trials` trials of `--reps` back-to-back products, the sides interleaved
trial by trial):

1. Copy floor: a device-to-device copy of as many bytes as the operator
   stores (``copy``), and one kernel launch (``launch``: a one-element add),
   so that the target "apply <= 1.5 x copy + launch" is checked in the same run.
2. 4096 x 4096 float32 weights (power-law spectrum, s_k = (1+k)^-0.6) at 25%
   and 50% of the dense bytes, for svd, hodlr and sparse+hodlr+rcm (built by
   hsslin.compress to that budget), with 1 and 128 columns, against torch's
   dense float32 matmul (TF32 off) and torch.sparse CSR at the same bytes
   (the largest-magnitude entries that fit), both paths (fused, cublas).
3. Gaussian-kernel HSS (h = 0.05, + 1e-2 I) at N = --hss-n, tol 1e-6, in
   float64, against cuBLAS's dense gemv (torch.mv) when the dense matrix fits
   in device memory; otherwise the row says what was compared.
4. A whole SmolLM2 forward (compressed vs dense) when hsslin.torch can load
   SmolLM2 (not yet on main: the row says so).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hsslin  # noqa: E402
import hsslin.cuda as hc  # noqa: E402


def _need_gpu():
    try:
        import torch
    except ImportError:
        sys.exit("bench_cuda: needs torch with CUDA")
    if not torch.cuda.is_available():
        print("bench_cuda: this torch sees no CUDA device", file=sys.stderr)
        sys.exit(2)
    if not hc.is_available():
        print(f"bench_cuda: {hc.unavailable_reason()}", file=sys.stderr)
        sys.exit(2)
    return torch


def time_interleaved(torch, fns: dict, reps: int, trials: int) -> dict:
    """Median seconds per call of each callable; one trial = `reps` calls between two events."""
    for fn in fns.values():  # warm-up: allocations, cuBLAS handles, caches
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    samples = {name: [] for name in fns}
    for _ in range(trials):
        for name, fn in fns.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps):
                fn()
            end.record()
            end.synchronize()
            samples[name].append(start.elapsed_time(end) / 1e3 / reps)
    return {name: statistics.median(s) for name, s in samples.items()}


def floors(torch, nbytes: int, reps: int, trials: int) -> dict:
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    one = torch.zeros(1, device="cuda")
    return time_interleaved(
        torch, {"copy": lambda: dst.copy_(src), "launch": lambda: one.add_(0.0)}, reps, trials
    )


def power_law_weight(n: int, alpha: float = 0.6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = (1.0 + np.arange(n)) ** -alpha
    return np.ascontiguousarray((U * s) @ V.T, dtype=np.float32)


def torch_sparse_at(torch, W: np.ndarray, nbytes: int):
    """torch CSR of W's largest entries that fit in nbytes (values 4 B, int64 indices 8 B each)."""
    m = W.shape[0]
    nnz = max(1, (nbytes - 8 * (m + 1)) // 12)
    S = hsslin.CSRMatrix.from_dense(W, sparsity=min(1.0, nnz / W.size) * 0.999999).to_scipy()
    return torch.sparse_csr_tensor(
        torch.from_numpy(S.indptr.astype(np.int64)),
        torch.from_numpy(S.indices.astype(np.int64)),
        torch.from_numpy(S.data),
        size=S.shape,
    ).cuda()


def weight_rows(torch, args) -> list[dict]:
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 1024 if args.quick else 4096
    W = power_law_weight(n)
    Wd = torch.from_numpy(W).cuda()
    rows = []
    for share in (0.25, 0.5):
        budget = int(share * W.nbytes)
        Ssp = torch_sparse_at(torch, W, budget)
        for method in ("svd", "hodlr", "sparse+hodlr+rcm"):
            A = hsslin.compress(W, method, budget_bytes=budget)
            devs = {p: hc.DeviceOperator(A, path=p) for p in ("fused", "cublas")}
            fl = floors(torch, A.nbytes, args.reps, args.trials)
            for k in (1, 128):
                x = torch.randn(n, k, device="cuda")
                fns = {
                    "dense": lambda: Wd @ x,
                    "torch.sparse": lambda: Ssp @ x,
                    **{p: (lambda d=d: d @ x) for p, d in devs.items()},
                }
                t = time_interleaved(torch, fns, args.reps, args.trials)
                for p in devs:
                    rows.append(
                        {
                            "operator": f"{n}² {method} {int(share * 100)}%",
                            "k": k,
                            "path": p,
                            "bytes": A.nbytes,
                            "apply µs": t[p] * 1e6,
                            "copy µs": fl["copy"] * 1e6,
                            "launch µs": fl["launch"] * 1e6,
                            "apply / (1.5 copy + launch)": t[p] / (1.5 * fl["copy"] + fl["launch"]),
                            "apply / dense": t[p] / t["dense"],
                            "apply / torch.sparse": t[p] / t["torch.sparse"],
                            "rel. error": A.relative_error(W),
                        }
                    )
    return rows


def gaussian_hss_row(torch, args) -> list[dict]:
    N = 4096 if args.quick else args.hss_n
    x = np.linspace(0.0, 1.0, N)
    K = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * 0.05**2))
    K[np.diag_indices(N)] += 1e-2
    H = hsslin.HSSMatrix.from_dense(K, tol=1e-6, leaf_size=128)
    dev = hc.DeviceOperator(H)
    v = torch.randn(N, dtype=torch.float64, device="cuda")
    fns = {"hss": lambda: dev @ v}
    free = torch.cuda.mem_get_info()[0]
    compared = "cuBLAS dense gemv (torch.mv, float64)"
    if K.nbytes < 0.8 * free:
        Kd = torch.from_numpy(K).cuda()
        fns["dense"] = lambda: torch.mv(Kd, v)
    else:
        compared = f"nothing: the dense matrix ({K.nbytes / 2**30:.0f} GiB) does not fit in device memory"
    del K
    fl = floors(torch, H.nbytes, args.reps, args.trials)
    t = time_interleaved(torch, fns, args.reps, args.trials)
    return [
        {
            "operator": f"Gaussian HSS N={N}, tol 1e-6 (float64)",
            "k": 1,
            "path": "auto",
            "bytes": H.nbytes,
            "apply µs": t["hss"] * 1e6,
            "copy µs": fl["copy"] * 1e6,
            "launch µs": fl["launch"] * 1e6,
            "apply / (1.5 copy + launch)": t["hss"] / (1.5 * fl["copy"] + fl["launch"]),
            "dense / apply": t["dense"] / t["hss"] if "dense" in t else float("nan"),
            "compared with": compared,
        }
    ]


def smollm2_row(torch, args) -> list[dict]:
    import hsslin.torch as ht

    loader = getattr(ht, "load_smollm2", None)
    if loader is None:
        return [
            {
                "operator": "SmolLM2 forward",
                "compared with": "skipped: hsslin.torch has no SmolLM2 loader yet",
            }
        ]
    model = loader().eval().cuda()  # pragma: no cover - runs once the loader lands
    ids = torch.randint(0, model.config.vocab_size, (1, 128), device="cuda")
    dense = {"dense": lambda: model(ids)}
    compressed = ht.compress_model(model, budget=0.5).eval().cuda()
    with torch.inference_mode():
        t = time_interleaved(torch, {**dense, "compressed": lambda: compressed(ids)}, 3, args.trials)
    return [{"operator": "SmolLM2 forward, 128 tokens", "compressed / dense": t["compressed"] / t["dense"]}]


def markdown(rows: list[dict]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]

    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not for the table)")
    p.add_argument("--hss-n", type=int, default=65536)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--trials", type=int, default=7)
    p.add_argument("--out", help="also write the Markdown table to this file")
    args = p.parse_args(argv)
    torch = _need_gpu()
    info = hc.runtime_info()
    header = (
        f"Device: {torch.cuda.get_device_name(0)}; CUDA runtime {info['runtime_version']}, "
        f"driver {info['driver_version']}; torch {torch.__version__}, hsslin {hsslin.__version__}.\n"
        f"Command: python benchmarks/bench_cuda.py {' '.join(argv if argv is not None else sys.argv[1:])}\n"
    )
    rows = weight_rows(torch, args) + gaussian_hss_row(torch, args) + smollm2_row(torch, args)
    text = header + "\n" + markdown(rows) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
