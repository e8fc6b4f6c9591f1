"""Where the MiniLM demo's time goes, and how thread counts change it, on a quiet and a loaded machine.

Each configuration runs in a fresh process (thread pools are fixed at
start): torch's intra-op threads (``torch.set_num_threads``), OpenBLAS's
threads (numpy's BLAS, ``OPENBLAS_NUM_THREADS``) and hsslin's threads
(``HSSLIN_NUM_THREADS``). The process runs the demo's stages: imports,
loading all-MiniLM-L6-v2, activation-aware svd at half the Q/K/V bytes
(calibration, global rank allocation, per-layer compression), then
encoding the 64 SAMPLE_SENTENCES with the original and the compressed
model (medians of 3 after a warm-up, interleaved). "as found" runs on the
machine as it is (its load average is printed); "+N busy" runs next to N
processes that spin on the CPU (default: one per CPU), the situation of a
shared machine. ``--busy-configs`` limits the busy runs to some settings.

    python benchmarks/bench_threads.py                 # table on stdout
    python benchmarks/bench_threads.py --md docs/bench_threads.md

Every figure is a wall time of the same stage in the same run; the table
also gives each configuration's total against the default configuration
(all pools at their defaults) under the same load.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import torch
torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))
import copy, transformers
import hsslin, hsslin.torch as ht
from hsslin.torch._calibration import global_svd_ranks, input_grams
from hsslin.torch._weights import weight_numpy
transformers.utils.logging.set_verbosity_error()
times = {"import": time.perf_counter() - t0}

def stage(name, f):
    t = time.perf_counter()
    out = f()
    times[name] = time.perf_counter() - t
    return out

path = ht.minilm_path()
tok, model = stage("load", lambda: (transformers.AutoTokenizer.from_pretrained(path),
                                    transformers.AutoModel.from_pretrained(path).eval()))
small = stage("copy", lambda: copy.deepcopy(model))
names = ht.find_targets(small, "qkv")
grams = stage("calibrate", lambda: input_grams(small, names, ht.calibration_batches(tok)))
weights = {n: weight_numpy(small.get_submodule(n)) for n in names}
ranks = stage("allocate", lambda: global_svd_ranks(weights, grams, 0.5))
def compress_all():
    for n in names:
        op = hsslin.compress(weights[n], "svd", rank=ranks[n], input_gram=grams[n])
        parent, _, child = n.rpartition(".")
        setattr(small.get_submodule(parent), child, ht.HSSLinear(small.get_submodule(n), op))
stage("compress", compress_all)
sents = list(ht.SAMPLE_SENTENCES)
enc = lambda m: ht.sentence_embeddings(m, tok, sents)
stage("warm-up", lambda: (enc(model), enc(small)))
ref, ours = [], []
for _ in range(3):
    t = time.perf_counter(); enc(model); ref.append(time.perf_counter() - t)
    t = time.perf_counter(); enc(small); ours.append(time.perf_counter() - t)
times["encode original"] = sorted(ref)[1]
times["encode compressed"] = sorted(ours)[1]
times["total"] = time.perf_counter() - t0
print(json.dumps(times))
"""

STAGES = ("import", "load", "copy", "calibrate", "allocate", "compress", "warm-up")
STAGES += ("encode original", "encode compressed", "total")


def run_child(torch_threads: int, blas_threads: int, hsslin_threads: int) -> dict:
    env = dict(os.environ)
    env.update(
        BENCH_TORCH_THREADS=str(torch_threads),
        OMP_NUM_THREADS=str(torch_threads),
        OPENBLAS_NUM_THREADS=str(blas_threads),
        HSSLIN_NUM_THREADS=str(hsslin_threads),
        HF_HUB_OFFLINE="1",
    )
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        config = (torch_threads, blas_threads, hsslin_threads)
        raise RuntimeError(f"configuration {config} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def busy(n: int) -> list:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=os.cpu_count(), help="spinning processes for 'loaded'")
    parser.add_argument("--threads", default="1,2", help="thread counts to try for each pool")
    parser.add_argument("--loads", default="found,busy", help="which of found,busy to run")
    parser.add_argument(
        "--busy-configs",
        default=None,
        help="settings to run busy, as torch/OpenBLAS/hsslin triples: '2/2/2,1/1/1' (default: all)",
    )
    parser.add_argument("--md", help="also write the table to this Markdown file")
    args = parser.parse_args()
    counts = [int(c) for c in args.threads.split(",")]
    default = os.cpu_count()
    configs = list(itertools.product(counts, counts, counts))
    rows = []
    load_before = os.getloadavg()
    busy_configs = configs
    if args.busy_configs:
        busy_configs = [tuple(int(x) for x in c.split("/")) for c in args.busy_configs.split(",")]
    for which in args.loads.split(","):
        load = "as found" if which == "found" else f"+{args.busy} busy"
        spinners = busy(args.busy) if which == "busy" else []
        try:
            time.sleep(1.0 if spinners else 0.0)
            for t, b, h in configs if which == "found" else busy_configs:
                times = run_child(t, b, h)
                rows.append((load, t, b, h, times))
                print(load, t, b, h, {k: round(v, 2) for k, v in times.items()}, file=sys.stderr)
        finally:
            for p in spinners:
                p.kill()
                p.wait()
    lines = table(rows, default)
    command = " ".join(["python", "benchmarks/bench_threads.py", *sys.argv[1:]])
    header = (
        f"`{command}` on {os.cpu_count()} CPUs; load average (1 min) before the run "
        f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}. Seconds per stage; the last column "
        f"is the total against the default (every pool at {default} threads) under the same load."
    )
    text = "\n".join([header, "", *lines])
    print(text)
    if args.md:
        with open(args.md, "w", encoding="utf-8") as f:
            f.write("# Threads and the MiniLM demo\n\n" + __doc__.split("\n\n", 1)[1] + "\n" + text + "\n")
    return 0


def table(rows, default: int) -> list:
    head = "| load | torch | OpenBLAS | hsslin | " + " | ".join(STAGES) + " | total vs default |"
    lines = [head, "|" + "---|" * (5 + len(STAGES))]
    base = {load: tm["total"] for load, t, b, h, tm in rows if (t, b, h) == (default,) * 3}
    for load, t, b, h, tm in rows:
        ratio = f"{tm['total'] / base[load]:.2f}" if load in base else "-"
        cells = " | ".join(f"{tm[s]:.2f}" for s in STAGES)
        lines.append(f"| {load} | {t} | {b} | {h} | {cells} | {ratio} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
