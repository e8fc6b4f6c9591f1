"""Calibrated svd on SmolLM2-135M: the one-pass, shared-whitening path against the layer-by-layer one.

Issue 11 item 5 (calibration speed). Both rows compress the 90 Q/K/V targets
with calibrated ``svd`` at `--budget` of their bytes, ``allocation="global"``,
on the same calibration batches, in the same run:

* reference (the path before this change, kept here as the reference): a
  Gram accumulation whose hooks each multiply their own input (Q, K and V
  each form X^T X of the one tensor they share) over whole forward passes;
  the allocation's whitened spectra (an eigendecomposition and a
  values-only SVD per layer); then per layer ``hsslin.compress(W, "svd",
  rank, input_gram)``, which eigendecomposes and decomposes again; BLAS with
  its default threads.
* ``hsslin.torch.compress_model``: one pass whose hooks share a product
  between the layers fed the same tensor and that stops after the last
  target, one eigendecomposition per distinct Gram matrix, one SVD per layer
  serving the allocation and the fit, the decompositions run on a thread per
  core with single-threaded BLAS.

Prints the stage times and the perplexity of both compressed models on the
held-out text (they should agree to rounding).

    python benchmarks/bench_calibration.py [--budget 0.5] [--eval-tokens 2048]
"""

from __future__ import annotations

import argparse
import copy
import time

WINDOW, SEQ_LEN, BATCH = 1024, 256, 2


def reference_grams(model, names, batches):
    """The Gram pass before this change: every hook forms its own X^T X, whole forward passes."""
    import torch

    from hsslin.torch._weights import weight_matrix

    grams, hooks, state = {}, [], {"mask": None}
    for name in names:
        module = model.get_submodule(name)
        n = weight_matrix(module).shape[1]
        grams[name] = torch.zeros(n, n, dtype=torch.float64)

        def record(mod, inputs, name=name):
            x, mask = inputs[0], state["mask"]
            if mask is not None and x.dim() == 3 and tuple(mask.shape) == tuple(x.shape[:2]):
                x = x[mask.to(torch.bool)]
            x = x.reshape(-1, x.shape[-1]).to(torch.float64)
            grams[name] += x.T @ x

        hooks.append(module.register_forward_pre_hook(record))
    with torch.no_grad():
        for batch in batches:
            state["mask"] = batch.get("attention_mask")
            model(**batch)
    for h in hooks:
        h.remove()
    return {k: v.numpy() for k, v in grams.items()}


def reference_compress(model, names, batches, budget):
    import hsslin
    from hsslin.torch import HSSLinear
    from hsslin.torch._calibration import global_svd_ranks
    from hsslin.torch._targets import replace_module
    from hsslin.torch._weights import weight_numpy

    times = {}
    t0 = time.perf_counter()
    grams = reference_grams(model, names, batches)
    times["Gram pass"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    weights = {n: weight_numpy(model.get_submodule(n)) for n in names}
    ranks = global_svd_ranks(weights, grams, budget)  # no spectra given: computed here
    times["allocation (whitened spectra)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for n in names:
        op = hsslin.compress(weights[n], "svd", rank=ranks[n], input_gram=grams[n])
        op.relative_error(weights[n])  # compress_model reports it per layer
        replace_module(model, n, HSSLinear(model.get_submodule(n), op))
    times["per-layer fits"] = time.perf_counter() - t0
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--eval-tokens", type=int, default=2048)
    ap.add_argument("--calib-tokens", type=int, default=2048)
    args = ap.parse_args(argv)

    import torch

    import hsslin
    import hsslin.torch as ht
    import hsslin.torch._compress_model as cm

    print(f"torch threads {torch.get_num_threads()}, hsslin threads {hsslin.get_num_threads()}")
    dense, tokenizer = ht.load_smollm2()
    held_out = ht.evaluation_text(tokenizer, args.eval_tokens)
    calib = ht.calibration_text()
    batches = ht.causal_lm_batches(
        tokenizer, calib.text, seq_len=SEQ_LEN, batch_size=BATCH, max_tokens=args.calib_tokens
    )
    names = ht.find_targets(dense, "qkv")
    tokens = sum(int(b["input_ids"].numel()) for b in batches)
    print(f"{len(names)} targets, {len(batches)} calibration batches ({tokens} tokens)", flush=True)

    t0 = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            dense(**b)
    forward = time.perf_counter() - t0
    print(f"one plain forward pass over the calibration batches: {forward:.1f} s", flush=True)

    ref = copy.deepcopy(dense)
    t0 = time.perf_counter()
    ref_times = reference_compress(ref, names, batches, args.budget)
    ref_total = time.perf_counter() - t0
    print(f"reference: {ref_total:.1f} s {ref_times}", flush=True)

    new = copy.deepcopy(dense)
    stages = {}

    def timed(owner, attr, label):
        original = getattr(owner, attr)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                stages[label] = stages.get(label, 0.0) + time.perf_counter() - t

        setattr(owner, attr, wrapper)
        return original

    saved = [
        (cm, "input_grams", timed(cm, "input_grams", "Gram pass")),
        (cm, "whitened_svds", timed(cm, "whitened_svds", "whitened SVDs (shared)")),
        (cm, "global_svd_ranks", timed(cm, "global_svd_ranks", "allocation")),
    ]
    t0 = time.perf_counter()
    try:
        report = ht.compress_model(
            new, method="svd", budget=args.budget, calibration=batches, allocation="global", progress=False
        )
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
    new_total = time.perf_counter() - t0
    stages["per-layer fits and report"] = new_total - sum(stages.values())
    print(f"compress_model: {new_total:.1f} s {stages}", flush=True)
    qkv_bytes = sum(dense.get_submodule(n).weight.numel() * 4 for n in names)
    assert report.targets_bytes_after <= args.budget * qkv_bytes

    rows = []
    for label, model in (("dense", dense), ("reference", ref), ("compress_model", new)):
        t0 = time.perf_counter()
        result = ht.perplexity(model, tokenizer, held_out.text, max_length=WINDOW, stride=WINDOW)
        rows.append((label, result.ppl, time.perf_counter() - t0))
        print(f"perplexity {label}: {result.ppl:.3f} ({result.tokens} tokens)", flush=True)
    print(
        f"\ncompression {ref_total:.1f} s -> {new_total:.1f} s ({ref_total / new_total:.1f}x faster); "
        f"plain forward pass {forward:.1f} s; perplexity {rows[1][1]:.3f} -> {rows[2][1]:.3f} "
        f"(dense {rows[0][1]:.3f})"
    )


if __name__ == "__main__":
    main()
