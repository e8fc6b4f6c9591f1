"""The configuration a model is compressed with when the user names none: the best measured.

One place for these facts. :func:`hsslin.torch.compress_model` takes its
defaults from here, the command line (``hsslin compress``, ``hsslin
demo``) too, and ``tests/test_docs.py`` checks that README.md and docs/
state the same. The module needs no torch, so the command line reads it
before anything heavy loads.

How to change a default (for example when a new method measures better):
add the method to :data:`hsslin.METHODS`; list what it accepts in
:data:`CALIBRATED_METHODS` / :data:`GLOBAL_METHODS`; give its best
calibration and allocation in :data:`TUNED`; set :data:`METHOD` and
:data:`MEASURED` from the run of ``benchmarks/bench_torch.py`` that shows it
best; then update the sentence in README.md and docs/first-steps.md that
the docs test compares with :data:`MEASURED`.
"""

from __future__ import annotations

import numbers
import os

from . import METHODS

#: The method of :func:`hsslin.compress` used when none is given.
METHOD = "svd"
#: Share of the targets' dense bytes kept when neither a budget nor explicit
#: parameters (density, rank, tol) are given.
BUDGET = 0.5
#: Which layers are compressed: the attention projections (see ``QKV_NAMES``).
TARGETS = "qkv"

#: Methods that compress a model's targets together rather than one matrix at a
#: time through hsslin.compress: CAP (robust PCA, then a policy over all
#: layers' singular directions and sparse entries; hsslin.torch._cap). They
#: need calibration and a budget, and allocate globally.
MODEL_METHODS = ("cap",)
#: Every method compress_model and the command line accept.
ALL_METHODS = (*METHODS, *MODEL_METHODS)

#: Methods that accept calibration batches (activation-aware compression).
CALIBRATED_METHODS = ("svd", "cap", "sparse", "sparse+svd", "gptq")
#: Methods whose ranks can be allocated across layers under one shared budget.
GLOBAL_METHODS = ("svd", "cap")
#: The best measured calibration and allocation of each method; a method not
#: listed is compressed without calibration, each layer at the budget.
TUNED = {
    "svd": {"calibration": "builtin", "allocation": "global"},
    "cap": {"calibration": "builtin", "allocation": "global"},
    "gptq": {"calibration": "builtin", "allocation": "uniform"},
}

#: What the default configuration measured, as the README and docs quote it
#: (docs/bench_torch.md, all-MiniLM-L6-v2, 64 held-out sentences).
MEASURED = {"model": "all-MiniLM-L6-v2", "budget": 0.5, "mean_cosine": 0.950, "min_cosine": 0.884}

#: ``calibration`` / ``allocation`` value meaning "the method's entry in TUNED".
AUTO = "auto"
ALLOCATIONS = ("uniform", "global")
#: Keyword parameters that replace a budget.
EXPLICIT = ("density", "rank", "tol")


def calibration_for(method: str) -> str | None:
    """The default calibration of `method`: ``"builtin"`` or None."""
    return TUNED.get(method, {}).get("calibration")


def allocation_for(method: str) -> str:
    """The default allocation of `method` under a budget: ``"global"`` or ``"uniform"``."""
    return TUNED.get(method, {}).get("allocation", "uniform")


def _methods(names) -> str:
    return " or ".join(repr(m) for m in names)


def check_budget(budget) -> float:
    """`budget` as a float in (0, 1]; ValueError otherwise."""
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not (0.0 < float(budget) <= 1.0):
        raise ValueError(f"budget must be a fraction in (0, 1], got {budget!r}")
    return float(budget)


def resolve(method: str, budget, calibration, allocation, explicit) -> tuple:
    """The (budget, calibration, allocation) a call means, with AUTO and None budgets resolved.

    `calibration` is AUTO, None, ``"builtin"`` or the caller's own batches
    (passed through); `explicit` lists the explicit parameters given.
    Raises ValueError, naming the option, for any combination that cannot
    be run, so that the command line can refuse it before a model loads.

    Examples
    --------
    >>> from hsslin import _defaults
    >>> _defaults.resolve("svd", None, "auto", "auto", [])
    (0.5, 'builtin', 'global')
    >>> _defaults.resolve("hodlr", None, "auto", "auto", ["tol"])
    (None, None, 'uniform')
    """
    if method not in ALL_METHODS:
        raise ValueError(f"method must be one of {', '.join(ALL_METHODS)}; got {method!r}")
    explicit = [k for k in EXPLICIT if k in explicit]
    if budget is None and not explicit:
        budget = BUDGET
    if budget is not None:
        budget = check_budget(budget)
        if explicit:
            raise ValueError(f"give either budget or explicit {', '.join(explicit)}, not both")
    if isinstance(calibration, str) and calibration == AUTO:
        calibration = calibration_for(method)
    if isinstance(calibration, str) and calibration != "builtin":
        raise ValueError(f"calibration must be 'auto', 'builtin', None or batches, got {calibration!r}")
    if allocation == AUTO:
        allocation = allocation_for(method) if budget is not None else "uniform"
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be 'uniform' or 'global', got {allocation!r}")
    if calibration is not None and method not in CALIBRATED_METHODS:
        raise ValueError(f"calibration applies to method {_methods(CALIBRATED_METHODS)}, not {method!r}")
    if allocation == "global" and method not in GLOBAL_METHODS:
        raise ValueError(f"allocation='global' applies to method {_methods(GLOBAL_METHODS)}, not {method!r}")
    if allocation == "global" and budget is None:
        raise ValueError("allocation='global' shares a budget: pass budget, not explicit parameters")
    if method in MODEL_METHODS:
        if budget is None:
            raise ValueError(f"method {method!r} allocates a budget: pass budget, not explicit parameters")
        if calibration is None:
            raise ValueError(f"method {method!r} scores its choices on calibration batches: pass calibration")
        if allocation != "global":
            raise ValueError(f"method {method!r} allocates across layers: allocation must be 'global'")
    if method == "gptq" and calibration is None:
        raise ValueError(
            "method 'gptq' feeds its rounding errors back through the inputs' Gram matrix: "
            "pass calibration, or use 'rtn' to quantize without data"
        )
    return budget, calibration, allocation


def idle_cpus() -> int:
    """CPUs this process may use that the 1-minute load average leaves idle (at least 1).

    The command line gives torch's, OpenBLAS's and hsslin's thread pools
    this many threads. On a busy machine a pool of one thread per CPU waits
    for descheduled threads at every parallel step: beside two spinning
    processes on 2 CPUs the MiniLM demo ran 4-5x slower with every pool at
    2 threads than at 1 (docs/bench_threads.md); on an idle machine every
    CPU is used.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cpus, int(cpus - load + 0.5)))
