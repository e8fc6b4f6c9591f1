"""Matrix-vector time of quantized storage against dense float32 and torch's int8 dynamic Linear.

At 4096 x 4096 float32 (Gaussian weights), batch 1, all measured
interleaved in one run (numpy dense, hsslin int4 / int8 / float16 /
bfloat16, torch dense nn.Linear, torch ``quantize_dynamic`` int8 Linear):
medians, each as a ratio to numpy's dense float32 matvec, beside its bytes
ratio and its relative weight error ||W - Q||_F / ||W||_F. Two timings:
"rotating" (the calls round-robin, so each matrix is partly evicted from the
32 MiB L3 by the others) and "cold" (a 128 MiB pass before every call: each
product streams its bytes from DRAM, the case the bytes ratio predicts). The target of
issue 12: int4 (g=64) within 1.3 x (its bytes / dense bytes) x numpy's time,
and faster than torch's int8 dynamic Linear.

Threads: hsslin uses --threads, numpy's BLAS is pinned to the same count
(threadpoolctl), torch to the same (torch.set_num_threads).

    python benchmarks/bench_quant.py [--n 4096] [--repeat 60] [--threads 2] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing  # noqa: E402

import hsslin  # noqa: E402

FORMATS = [
    ("int4", 64, False),
    ("int4", 64, True),
    ("int8", None, False),
    ("float16", None, False),
    ("bfloat16", None, False),
]


def _cold_times(fns, repeat):
    """Each call after a pass over 128 MiB (four times the L3 of the development machines): DRAM-bound."""
    flush = np.ones(1 << 25, dtype=np.float32)
    times = {name: [] for name in fns}
    with _timing.gc_paused():
        for _ in range(repeat):
            for name, fn in fns.items():
                flush += 1.0
                times[name].append(_timing.time_once(fn))
    return {name: np.array(ts) for name, ts in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=60)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)

    import torch

    n = args.n
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    x = rng.standard_normal(n).astype(np.float32)
    hsslin.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)

    ops = {}
    for fmt, g, zp in FORMATS:
        kw = {} if fmt in ("float16", "bfloat16") else dict(group_size=g, zero_point=zp)
        name = fmt + (f" g={g}" if g else "") + (" zp" if zp else "") + (" per-row" if fmt == "int8" else "")
        ops[name] = hsslin.QuantizedMatrix.from_dense(W, fmt, **kw)

    lin = torch.nn.Linear(n, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(W))
    # quantize_dynamic swaps children, not the root: wrap the layer.
    qlin = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8
    )[0]
    xt = torch.from_numpy(x).reshape(1, n)
    # torch's packed int8 weight: n*n bytes plus one float scale and zero point per output channel.
    w_q = qlin.weight()
    torch_int8_bytes = (
        w_q.int_repr().numel() + 8 * n if w_q.qscheme() == torch.per_channel_affine else n * n + 8
    )
    torch_int8_err = float(np.linalg.norm(w_q.dequantize().numpy() - W) / np.linalg.norm(W))

    fns = {"numpy float32": lambda: W @ x}
    for name, Q in ops.items():
        fns[name] = lambda Q=Q: Q @ x
    with torch.inference_mode():
        fns["torch float32 Linear"] = lambda: lin(xt)
        fns["torch int8 dynamic"] = lambda: qlin(xt)
        for name, fn in fns.items():  # every product once, checked against the dense one
            y = np.asarray(fn().detach().numpy() if name.startswith("torch") else fn()).reshape(-1)
            rel = np.linalg.norm(y - W @ x) / np.linalg.norm(W @ x)
            assert rel < 0.2, (name, rel)
        load = _timing.loadavg()
        mon = _timing.CpuMonitor().start()
        with _timing.blas_limit(args.threads):
            times = _timing.time_interleaved(fns, repeat=args.repeat, warmup=5)
            cold = _cold_times(fns, repeat=max(5, args.repeat // 3))
        busy = mon.stop()

    base = _timing.median(times["numpy float32"])
    cold_base = _timing.median(cold["numpy float32"])
    dense_bytes = W.nbytes
    rows = []
    for name, ts in times.items():
        if name in ops:
            nbytes, err = ops[name].nbytes, ops[name].relative_error(W)
        elif name == "torch int8 dynamic":
            nbytes, err = torch_int8_bytes, torch_int8_err
        else:
            nbytes, err = dense_bytes, 0.0
        t = _timing.median(ts)
        tc = _timing.median(cold[name])
        bytes_ratio = nbytes / dense_bytes
        rows.append(
            [
                name,
                f"{bytes_ratio:.3f}",
                _timing.fmt_time(t),
                f"{t / base:.3f}",
                _timing.fmt_time(tc),
                f"{tc / cold_base:.3f}",
                f"{tc / cold_base / bytes_ratio:.2f}",
                f"{err:.2e}",
            ]
        )
    headers = [
        "storage",
        "bytes / dense",
        "matvec (rotating)",
        "/ numpy",
        "matvec (cold)",
        "/ numpy",
        "cold ratio / bytes ratio",
        "rel. weight error",
    ]
    print(f"n = {n}, threads = {args.threads} (hsslin, numpy BLAS, torch), repeat = {args.repeat}")
    print(f"load average before: {load}; CPU used by other processes during the run: {busy:.1%}")
    print(f"hsslin SIMD path: {hsslin.simd_path()}; torch {torch.__version__}")
    print(_timing.render_table(headers, rows, markdown=args.markdown))
    r4 = ops["int4 g=64"].nbytes / dense_bytes
    for label, ts, b in (("rotating", times, base), ("cold", cold, cold_base)):
        t_int4, t_tq = _timing.median(ts["int4 g=64"]), _timing.median(ts["torch int8 dynamic"])
        print(
            f"{label}: int4 g=64 takes {t_int4 / b:.3f} x numpy's time (target: at most 1.3 x {r4:.3f} = "
            f"{1.3 * r4:.3f}); torch's int8 dynamic Linear takes {t_tq / t_int4:.2f} x int4's time"
        )


if __name__ == "__main__":
    main()
