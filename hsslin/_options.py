"""The core's construction options, built from keyword arguments.

The options of HSS and HODLR compression, their ranges and their defaults
are written once, in ``cpp/include/hsslin/options.hpp``; the bindings
expose them as ``_core.HSSOptions`` and ``_core.HODLROptions``, whose
attributes call the validating C++ setters and whose fresh instances hold
the defaults. The public signatures take their defaults from
:data:`HSS_DEFAULTS` and :data:`HODLR_DEFAULTS`, and the functions below
turn keyword arguments into option objects: Python checks the kind of each
value (an integer, a real number, NumPy scalars included) so that the
same mistake raises the same exception type everywhere, and the setters
check the range.
"""

from __future__ import annotations

from ._loader import core as _core
from ._validation import check_int, check_rank_decay, check_seed, check_tol

#: A fresh HSSOptions: the defaults of every HSS construction.
HSS_DEFAULTS = _core.HSSOptions()
#: A fresh HODLROptions: the defaults of every HODLR construction.
HODLR_DEFAULTS = _core.HODLROptions()


def _filled(options, values: dict):
    for name, value in values.items():
        if value is not None:
            setattr(options, name, value)
    return options


def hss_options(
    tol=None, max_rank=None, leaf_size=None, oversampling=None, initial_samples=None, seed=None
) -> _core.HSSOptions:
    """HSSOptions with the given values set (None keeps the default)."""
    return _filled(
        _core.HSSOptions(),
        {
            "tol": None if tol is None else check_tol(tol),
            "max_rank": check_int(max_rank, "max_rank", 1, allow_none=True),
            "leaf_size": check_int(leaf_size, "leaf_size", 1, allow_none=True),
            "oversampling": check_int(oversampling, "oversampling", 2, allow_none=True),
            "initial_samples": check_int(initial_samples, "initial_samples", 1, allow_none=True),
            "seed": None if seed is None else check_seed(seed),
        },
    )


def hodlr_options(
    tol=None,
    rank=None,
    rank_decay=None,
    min_rank=None,
    max_rank=None,
    leaf_size=None,
    power_iterations=None,
    seed=None,
) -> _core.HODLROptions:
    """HODLROptions with the given values set (None keeps the default).

    A tolerance and a rank schedule exclude each other; with neither, the
    core builds to ``HODLR_DEFAULTS.default_tol``.
    """
    if tol is not None and rank is not None:
        raise ValueError("give either tol or rank (a rank schedule), not both")
    return _filled(
        _core.HODLROptions(),
        {
            "tol": None if tol is None else check_tol(tol),
            "rank": check_int(rank, "rank", 1, allow_none=True),
            "rank_decay": None if rank_decay is None else check_rank_decay(rank_decay),
            "min_rank": check_int(min_rank, "min_rank", 1, allow_none=True),
            "max_rank": check_int(max_rank, "max_rank", 1, allow_none=True),
            "leaf_size": check_int(leaf_size, "leaf_size", 1, allow_none=True),
            "power_iterations": check_int(power_iterations, "power_iterations", 0, allow_none=True),
            "seed": None if seed is None else check_seed(seed),
        },
    )
