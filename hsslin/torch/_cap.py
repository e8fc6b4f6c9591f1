"""CAP: robust PCA per layer, then one probabilistic choice of ranks and sparse entries for all layers.

Zhou et al., "Large Language Model Compression with Global Rank and Sparsity
Optimization" (arXiv 2505.03801). Stage one splits every target ``W ~= L + S``
by robust PCA (:func:`hsslin.rpca`, a few iterations). Stage two treats each
singular direction of every L and each nonzero of every S as a candidate with
a Bernoulli retention probability, and trains the probabilities by REINFORCE
on the calibration loss of the sampled, masked model, projecting them onto
the byte budget after every step. The result is the deterministic top-budget
selection.

Where the paper leaves a choice open, this module makes it as follows (see
docs/cap.md for the measurements behind them):

* **Cost of a candidate.** ``cost="bytes"`` (default): a direction of an
  m x n layer costs ``(m + n) * itemsize`` bytes (a column of each thin
  factor), a sparse entry ``itemsize + 4`` (its value and int32 column
  index), which is what the built operators store. ``cost="values"``
  counts stored values only (``m + n`` against 1), as parameter-count
  budgets do; the final selection is checked in bytes either way.
* **Initial probabilities.** Each candidate's calibrated output energy per
  unit cost: ``s_k^2 v_k^T G v_k`` for a direction, ``S_ij^2 G_jj`` for an
  entry (G the layer's input Gram matrix ``X^T X``; the diagonal term is
  Wanda's score), divided by the layer's ``tr(W G W^T)`` so layers compare
  by relative output error. Candidates are ranked by it and the rank's
  percentile is projected onto the budget. Three policy steps with the
  paper's learning rate move probabilities by far less than this
  initialisation separates them, so without it the result would be a
  random selection.
* **Policy gradient.** Probabilities are the sigmoid of logits; a step
  samples a mask, scores the masked model on one calibration batch, and
  moves the logits by ``-lr * (loss - baseline) * (mask - p)`` (the score
  function of a Bernoulli in its logit); the baseline is the mean of the
  last `baseline_window` losses (the first loss starts it). One policy
  iteration is one pass over the calibration batches.
* **Projection.** Onto ``{p in [0, 1] : sum cost_i p_i = budget}`` in the
  metric that weighs each candidate by its cost, ``p <- clip(p - tau, 0,
  1)``, so that every byte of the budget counts alike; tau by bisection.
* **Every layer keeps its first singular direction**, so each target stays
  a sparse-plus-low-rank operator of rank at least 1 (as in
  ``allocation="global"`` for svd).
* **Loss.** Next-token NLL when the model's output carries ``logits`` of
  the batch's length (causal LMs); otherwise the relative squared error of
  the last hidden state against the uncompressed model's (distillation, for
  encoders).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .. import CSRMatrix, LowRankMatrix, SparsePlusLowRank, rpca
from ._weights import is_conv1d, weight_numpy

#: The candidate costs :func:`cap_operators` understands.
COSTS = ("bytes", "values")


@dataclasses.dataclass(frozen=True)
class CAPOptions:
    """CAP's settings; the defaults are the paper's (a few RPCA iterations, 3 policy iterations, ...)."""

    rpca_iterations: int = 3
    lam: float | None = None
    policy_iterations: int = 3
    baseline_window: int = 5
    learning_rate: float = 0.05
    cost: str = "bytes"
    seed: int = 0

    def __post_init__(self):
        for name, low in (("rpca_iterations", 1), ("policy_iterations", 0), ("baseline_window", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate >= 0):
            raise ValueError(f"learning_rate must be a number >= 0, got {self.learning_rate!r}")
        if self.lam is not None and not (isinstance(self.lam, (int, float)) and self.lam > 0):
            raise ValueError(f"lam must be a number > 0, got {self.lam!r}")
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(map(repr, COSTS))}, got {self.cost!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    @classmethod
    def from_params(cls, params: dict) -> CAPOptions:
        """The options named in `params` (compress_model's keywords); unknown names raise TypeError."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise TypeError(
                f"method 'cap' takes {', '.join(sorted(fields))}; got unexpected {', '.join(unknown)}"
            )
        return cls(**params)


@dataclasses.dataclass
class _Split:
    """One target's RPCA split and its candidates' scores (directions first, then entries)."""

    name: str
    W: np.ndarray
    U: np.ndarray  # m x r, columns u_k sqrt(s_k)
    V: np.ndarray  # n x r
    rows: np.ndarray  # S's entries in CSR order: row, column, value
    cols: np.ndarray
    vals: np.ndarray
    score: np.ndarray  # relative calibrated output energy per candidate
    rpca: object


def _split(name: str, W: np.ndarray, G, options: CAPOptions) -> _Split:
    result = rpca(W, options.lam, max_iter=options.rpca_iterations, seed=options.seed)
    L, S = result
    U, V = np.asarray(L.U), np.asarray(L.V)
    indptr = np.asarray(S.indptr)
    rows = np.repeat(np.arange(W.shape[0]), np.diff(indptr))
    cols, vals = np.asarray(S.indices).astype(np.int64), np.asarray(S.data)
    G = np.eye(W.shape[1]) if G is None else G
    W64 = W.astype(np.float64)
    total = float(np.einsum("ij,ij->", W64 @ G, W64)) or 1.0
    V64 = V.astype(np.float64)
    direction = (U.astype(np.float64) ** 2).sum(0) * np.einsum("jk,jk->k", G @ V64, V64)
    entry = vals.astype(np.float64) ** 2 * np.diag(G)[cols]
    return _Split(name, W, U, V, rows, cols, vals, np.concatenate([direction, entry]) / total, result)


def _costs(split: _Split, cost: str) -> np.ndarray:
    m, n = split.W.shape
    itemsize = split.W.dtype.itemsize
    r, nnz = split.U.shape[1], split.vals.size
    if cost == "bytes":
        direction = LowRankMatrix.bytes_for(m, n, 2, itemsize) - LowRankMatrix.bytes_for(m, n, 1, itemsize)
        entry = CSRMatrix.nbytes_for(m, 1, split.W.dtype) - CSRMatrix.nbytes_for(m, 0, split.W.dtype)
    else:
        direction, entry = m + n, 1
    return np.concatenate([np.full(r, float(direction)), np.full(nnz, float(entry))])


def _fixed_bytes(split: _Split) -> int:
    """Bytes a layer stores whatever is chosen: an empty CSR part and L's first direction."""
    m, n = split.W.shape
    itemsize = split.W.dtype.itemsize
    return CSRMatrix.nbytes_for(m, 0, split.W.dtype) + LowRankMatrix.bytes_for(m, n, 1, itemsize)


def project_to_budget(p: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """``clip(p - tau, 0, 1)`` with ``sum(cost * result) == budget`` (tau by bisection).

    The projection of `p` onto the budget's hyperplane inside the unit box
    in the metric weighted by `cost`. A budget of at least ``cost.sum()``
    gives all ones; a budget <= 0 all zeros.

    Examples
    --------
    >>> import numpy as np
    >>> from hsslin.torch._cap import project_to_budget
    >>> q = project_to_budget(np.array([0.9, 0.5, 0.1]), np.array([1.0, 1.0, 2.0]), 1.0)
    >>> [round(float(v), 6) for v in q]
    [0.7, 0.3, 0.0]
    """
    total = float(cost.sum())
    if budget >= total:
        return np.ones_like(p)
    if budget <= 0:
        return np.zeros_like(p)
    lo, hi = float(p.min()) - 1.0, float(p.max())  # spend(lo) >= total > budget >= spend(hi) = 0
    for _ in range(100):
        tau = 0.5 * (lo + hi)
        if float(cost @ np.clip(p - tau, 0.0, 1.0)) > budget:
            lo = tau
        else:
            hi = tau
    return np.clip(p - hi, 0.0, 1.0)


class _Masker:
    """Writes masked reconstructions ``U diag(m_r) V^T + S * m_s`` into the model's layers."""

    def __init__(self, model, splits, offsets):
        self.model, self.splits, self.offsets = model, splits, offsets
        self.originals = {s.name: model.get_submodule(s.name).weight.detach().clone() for s in splits}

    def apply(self, mask: np.ndarray) -> None:
        with torch.no_grad():
            for split, start in zip(self.splits, self.offsets):
                r = split.U.shape[1]
                keep_r = mask[start : start + r].astype(split.W.dtype)
                keep_s = mask[start + r : start + r + split.vals.size].astype(bool)
                W = (split.U * keep_r) @ split.V.T
                W[split.rows[keep_s], split.cols[keep_s]] += split.vals[keep_s]
                module = self.model.get_submodule(split.name)
                value = torch.from_numpy(np.ascontiguousarray(W.T if is_conv1d(module) else W))
                module.weight.copy_(value.to(module.weight.dtype))

    def restore(self) -> None:
        with torch.no_grad():
            for name, W in self.originals.items():
                self.model.get_submodule(name).weight.copy_(W)


def _reference_outputs(model, batches) -> list:
    """Per batch: None for a causal LM (scored by NLL), else the last hidden state to distil."""
    out = []
    with torch.no_grad():
        for batch in batches:
            result = _forward(model, batch)
            out.append(None if _is_causal(result, batch) else _hidden(result).detach())
    return out


def _forward(model, batch):
    return model(batch) if isinstance(batch, torch.Tensor) else model(**batch)


def _ids_mask(batch):
    if isinstance(batch, torch.Tensor):
        return batch, None
    return batch.get("input_ids"), batch.get("attention_mask")


def _is_causal(result, batch) -> bool:
    ids, _ = _ids_mask(batch)
    logits = getattr(result, "logits", None)
    return logits is not None and ids is not None and tuple(logits.shape[:2]) == tuple(ids.shape)


def _hidden(result):
    hidden = getattr(result, "last_hidden_state", None)
    return hidden if hidden is not None else result[0]


def _loss(model, batch, reference) -> float:
    with torch.no_grad():
        result = _forward(model, batch)
        if reference is None:
            ids, mask = _ids_mask(batch)
            logp = torch.log_softmax(result.logits[:, :-1].double(), dim=-1)
            nll = -logp.gather(2, ids[:, 1:, None]).squeeze(2)
            if mask is not None:
                keep = mask[:, 1:].to(torch.bool)
                return float(nll[keep].mean())
            return float(nll.mean())
        hidden = _hidden(result).double()
        ref = reference.double()
        return float(((hidden - ref) ** 2).sum() / (ref**2).sum().clamp(min=1e-300))


def _operator(split: _Split, keep: np.ndarray) -> SparsePlusLowRank:
    r = split.U.shape[1]
    directions = keep[:r].copy()
    directions[0] = True
    U = np.ascontiguousarray(split.U[:, directions])
    V = np.ascontiguousarray(split.V[:, directions])
    entries = keep[r:]
    m, n = split.W.shape
    rows = split.rows[entries]
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    S = CSRMatrix(
        (split.vals[entries].copy(), split.cols[entries].astype(np.int32), np.cumsum(indptr)),
        shape=(m, n),
    )
    return SparsePlusLowRank(S, LowRankMatrix(U, V))


def cap_operators(model, names, grams, batches, budget: float, options: CAPOptions, log=None) -> dict:
    """CAP's operators for the named layers of `model` under one byte budget for all of them.

    Parameters
    ----------
    model : nn.Module
        Left as it was (the policy writes sampled weights into the layers and
        restores them).
    names : list of str
    grams : dict name -> X^T X
        The layers' input Gram matrices (:func:`input_grams`).
    batches : list
        Calibration batches the policy is scored on.
    budget : float in (0, 1]
        The operators together store at most ``floor(budget * dense bytes)``.
    options : CAPOptions

    Returns
    -------
    dict name -> SparsePlusLowRank, plus ``"__info__"``: the RPCA results
    and the final probabilities.
    """
    log = log or (lambda message: None)
    splits = []
    for name in names:
        W = weight_numpy(model.get_submodule(name))
        splits.append(_split(name, W, grams.get(name), options))
    dense = sum(s.W.size * s.W.dtype.itemsize for s in splits)
    cap_bytes = math.floor(budget * dense)
    fixed = sum(_fixed_bytes(s) for s in splits)
    if fixed > cap_bytes:
        raise ValueError(
            f"budget={budget} is too small for method 'cap': rank 1 in every layer needs {fixed:,} "
            f"bytes, the budget allows {cap_bytes:,}"
        )
    # Each layer's first direction is paid for in `fixed`: it is no candidate.
    scores = np.concatenate([s.score for s in splits])
    cost = np.concatenate([_costs(s, options.cost) for s in splits])
    first = np.cumsum([0] + [s.U.shape[1] + s.vals.size for s in splits[:-1]])
    free = np.ones(scores.size, dtype=bool)
    free[first] = False
    true_cost = np.concatenate([_costs(s, "bytes") for s in splits])
    # The policy's budget in its own cost unit: the bytes left, at the free candidates' mean exchange rate.
    rate = float(cost[free].sum()) / max(float(true_cost[free].sum()), 1.0)
    log(f"CAP: {int(free.sum()):,} candidates over {len(splits)} layers")
    p_free = _policy(model, splits, batches, scores, cost, free, (cap_bytes - fixed) * rate, options, log)
    p = np.ones(scores.size)
    p[free] = p_free
    keep = np.ones(scores.size, dtype=bool)
    keep[free] = _select(p_free, scores[free], cost[free], true_cost[free], cap_bytes - fixed)
    ops, start = {}, 0
    for split in splits:
        count = split.U.shape[1] + split.vals.size
        ops[split.name] = _operator(split, keep[start : start + count])
        start += count
    built = sum(op.nbytes for op in ops.values())
    if built > cap_bytes:  # the promise, checked on what was built
        raise RuntimeError(f"CAP built {built:,} bytes over the budget of {cap_bytes:,}")
    ops["__info__"] = {"rpca": {s.name: s.rpca for s in splits}, "probabilities": p}
    return ops


def _policy(model, splits, batches, scores, cost, free, budget, options, log) -> np.ndarray:
    """REINFORCE over the free candidates' retention probabilities; returns them, projected."""
    rng = np.random.default_rng(options.seed)
    s, c = scores[free], cost[free]
    order = np.argsort(-(s / c), kind="stable")
    percentile = np.empty_like(s)
    percentile[order] = 1.0 - np.arange(s.size) / max(s.size, 1)
    p = project_to_budget(percentile, c, budget)
    if options.policy_iterations == 0 or options.learning_rate == 0 or not batches:
        return p
    offsets = np.cumsum([0] + [sp.U.shape[1] + sp.vals.size for sp in splits[:-1]])
    masker = _Masker(model, splits, offsets)
    references = _reference_outputs(model, batches)
    losses, eps = [], 1e-6
    full = np.ones(scores.size, dtype=bool)
    try:
        for iteration in range(options.policy_iterations):
            for batch, reference in zip(batches, references):
                mask = rng.random(p.size) < p
                full[free] = mask
                masker.apply(full)
                loss = _loss(model, batch, reference)
                window = losses[-options.baseline_window :]
                baseline = float(np.mean(window)) if window else loss
                losses.append(loss)
                q = np.clip(p, eps, 1 - eps)
                logit = np.log(q) - np.log1p(-q)
                logit -= options.learning_rate * (loss - baseline) * (mask - q)
                p = project_to_budget(1.0 / (1.0 + np.exp(-logit)), c, budget)
            log(f"policy iteration {iteration + 1}: mean sampled loss {np.mean(losses[-len(batches) :]):.4f}")
    finally:
        masker.restore()
    return p


def _select(p, scores, cost, true_cost, cap_bytes) -> np.ndarray:
    """Deterministic top-budget choice: by probability (ties: score per cost) while the bytes fit."""
    order = np.lexsort((-(scores / cost), -p))
    fits = np.cumsum(true_cost[order]) <= cap_bytes
    # Greedy in this order: after the first candidate that does not fit, cheaper later ones may.
    keep = np.zeros(p.size, dtype=bool)
    if fits.all():
        keep[order] = True
        return keep
    prefix = int(np.argmin(fits))
    keep[order[:prefix]] = True
    spent = float(true_cost[order[:prefix]].sum())
    for i in order[prefix:]:
        if spent + true_cost[i] <= cap_bytes:
            keep[i] = True
            spent += true_cost[i]
    return keep
