"""CAP (method "cap" of compress_model): budget, reproducibility, the full-budget case, bad input.

A small random LLaMA whose Q/K/V weights are replaced by planted low-rank
plus sparse matrices, so that robust PCA has an exact split to find.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import hsslin  # noqa: E402
import hsslin.torch as ht  # noqa: E402
from conftest import tiny_llama  # noqa: E402
from hsslin.torch._cap import CAPOptions, project_to_budget  # noqa: E402


def _planted(m, n, rank, density, rng):
    L = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) / np.sqrt(n)
    S = np.zeros((m, n))
    hit = rng.random((m, n)) < density
    S[hit] = rng.choice([-1.0, 1.0], hit.sum())
    return (L + S).astype(np.float32)


def _model(seed=0):
    model = tiny_llama(seed)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name in ht.find_targets(model, "qkv"):
            w = model.get_submodule(name).weight
            w.copy_(torch.from_numpy(_planted(*w.shape, rank=2, density=0.03, rng=rng)))
    return model


def _batches(count=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, 256, (2, 32), generator=g)} for _ in range(count)]


def _cap(model, budget, **params):
    return ht.compress_model(
        model, method="cap", budget=budget, calibration=_batches(), progress=False, **params
    )


# -- the budget projection ------------------------------------------------------------------
@given(
    p=st.lists(st.floats(0, 1), min_size=1, max_size=40),
    share=st.floats(0.01, 1.5),
    seed=st.integers(0, 2**16),
)
def test_projection_meets_the_budget_and_keeps_the_order(p, share, seed):
    p = np.array(p)
    cost = np.random.default_rng(seed).uniform(1, 100, p.size)
    budget = share * cost.sum()
    q = project_to_budget(p, cost, budget)
    assert ((q >= 0) & (q <= 1)).all()
    if budget >= cost.sum():
        assert (q == 1).all()
    else:  # bisection to 100 halvings of an interval of width <= 2: exact to rounding
        assert abs(float(cost @ q) - budget) <= 1e-9 * cost.sum()
    order = np.argsort(p, kind="stable")
    assert (np.diff(q[order]) >= -1e-15).all()  # a shift then a clip preserves the order


# -- CAP on a model ---------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [0.15, 0.3])
@pytest.mark.parametrize("cost", ["bytes", "values"])
def test_cap_respects_the_budget(budget, cost):
    model = _model()
    names = ht.find_targets(model, "qkv")
    dense = sum(model.get_submodule(n).weight.numel() * 4 for n in names)
    splits = [hsslin.rpca(ht._weights.weight_numpy(model.get_submodule(n)), max_iter=3) for n in names]
    everything = sum(r.to_operator().nbytes for r in splits)
    report = _cap(model, budget, cost=cost)
    assert report.targets_bytes_after <= int(np.floor(budget * dense))
    layers = ht.compressed_layers(model)
    assert len(layers) == 6
    for _, layer in layers:
        assert isinstance(layer.operator, hsslin.SparsePlusLowRank)
    assert report.targets_bytes_after == sum(layer.operator.nbytes for _, layer in layers)
    if everything <= np.floor(budget * dense):
        assert report.targets_bytes_after == everything  # every candidate fits: all kept
    else:  # the greedy fill leaves less than one direction's bytes (the largest candidate) unspent
        largest = max((m + n) * 4 for m, n in (r.shape for r in report.layers))
        assert report.targets_bytes_after > np.floor(budget * dense) - largest


def test_cap_is_reproducible_with_a_seed():
    x = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(5))
    outs = []
    for seed in (3, 3):
        model = _model()
        _cap(model, 0.4, seed=seed, rpca_iterations=2)
        with torch.no_grad():
            outs.append(model(x).logits)
    assert torch.equal(outs[0], outs[1])


def test_cap_policy_changes_the_selection():
    # REINFORCE with a large learning rate moves the probabilities away from
    # their initialisation (learning_rate=0 is the initialisation itself).
    # At 0.15 not every candidate fits (test_cap_respects_the_budget), so the
    # selection follows the probabilities.
    chosen = []
    for rate in (0.0, 50.0):
        model = _model()
        _cap(model, 0.15, learning_rate=rate, rpca_iterations=2)
        chosen.append([layer.operator.to_dense() for _, layer in ht.compressed_layers(model)])
    assert any(not np.array_equal(a, b) for a, b in zip(*chosen))


def test_cap_full_budget_keeps_the_rpca_split():
    # With the budget covering every candidate, each layer is exactly RPCA's
    # L + S; converged RPCA (residual <= tol) then reproduces the weight to tol.
    model = _model()
    weights = {n: ht._weights.weight_numpy(model.get_submodule(n)) for n in ht.find_targets(model, "qkv")}
    _cap(model, 1.0, rpca_iterations=200)
    eps = np.finfo(np.float32).eps
    for name, layer in ht.compressed_layers(model):
        W = weights[name]
        result = hsslin.rpca(W, max_iter=200, seed=0)
        assert result.converged
        split = result.L.to_dense() + result.S.to_dense()
        np.testing.assert_allclose(layer.operator.to_dense(), split, rtol=0, atol=8 * eps * np.abs(W).max())
        # residual <= tol, plus float32 rounding of the reconstruction
        bound = result.residual + 8 * eps * np.sqrt(W.size)
        assert layer.operator.relative_error(W) <= bound


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"budget": 0.0}, ValueError, "budget"),
        ({"budget": 1.5}, ValueError, "budget"),
        ({"calibration": None}, ValueError, "calibration"),
        ({"calibration": []}, ValueError, "calibration is empty"),
        ({"allocation": "uniform"}, ValueError, "allocation"),
        ({"lam": 0.0}, ValueError, "lam"),
        ({"lam": -1.0}, ValueError, "lam"),
        ({"policy_iterations": -1}, ValueError, "policy_iterations"),
        ({"cost": "flops"}, ValueError, "cost"),
        ({"leaf_size": 8}, TypeError, "leaf_size"),
        ({"budget": 0.01}, ValueError, "too small"),
        ({"budget": None, "density": 0.1}, ValueError, "budget"),
    ],
)
def test_cap_bad_input(kwargs, error, match):
    model = _model()
    args = {"method": "cap", "budget": 0.5, "calibration": _batches(1), "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        ht.compress_model(model, **args)
    assert not ht.compressed_layers(model)  # nothing replaced


def test_cap_model_without_targets():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    with pytest.raises(ValueError, match="target"):
        ht.compress_model(model, method="cap", budget=0.5, calibration=_batches(1), progress=False)


def test_cap_options_defaults_are_the_papers():
    options = CAPOptions()
    assert (options.policy_iterations, options.baseline_window, options.learning_rate) == (3, 5, 0.05)
    with pytest.raises(TypeError, match="unexpected"):
        CAPOptions.from_params({"rank": 3})
