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


#: "Not given": the option keeps the core's default. (None is a value: it
#: means "none" where an option allows it, such as ``max_rank``, and is a
#: TypeError where a number is needed.)
DEFAULT = object()


def given(value):
    """`value`, or :data:`DEFAULT` for None (for parameters whose None means "the default")."""
    return DEFAULT if value is None else value


def _checked(value, check, *args, **kwargs):
    return DEFAULT if value is DEFAULT else check(value, *args, **kwargs)


def _filled(options, values: dict):
    for name, value in values.items():
        if value is not DEFAULT and value is not None:
            setattr(options, name, value)
    return options


def hss_options(
    tol=DEFAULT,
    max_rank=DEFAULT,
    leaf_size=DEFAULT,
    oversampling=DEFAULT,
    initial_samples=DEFAULT,
    seed=DEFAULT,
) -> _core.HSSOptions:
    """HSSOptions with the given values set (:data:`DEFAULT` keeps the default; max_rank=None: no cap)."""
    return _filled(
        _core.HSSOptions(),
        {
            "tol": _checked(tol, check_tol),
            "max_rank": _checked(max_rank, check_int, "max_rank", 1, allow_none=True),
            "leaf_size": _checked(leaf_size, check_int, "leaf_size", 1),
            "oversampling": _checked(oversampling, check_int, "oversampling", 2),
            "initial_samples": _checked(initial_samples, check_int, "initial_samples", 1),
            "seed": _checked(seed, check_seed),
        },
    )


def hodlr_options(
    tol=None,
    rank=None,
    rank_decay=DEFAULT,
    min_rank=DEFAULT,
    max_rank=DEFAULT,
    leaf_size=DEFAULT,
    power_iterations=DEFAULT,
    seed=DEFAULT,
) -> _core.HODLROptions:
    """HODLROptions with the given values set (:data:`DEFAULT` keeps the default).

    A tolerance and a rank schedule exclude each other; with neither (both
    None), the core builds to ``HODLR_DEFAULTS.default_tol``. max_rank=None:
    no cap.
    """
    if tol is not None and rank is not None:
        raise ValueError("give either tol or rank (a rank schedule), not both")
    return _filled(
        _core.HODLROptions(),
        {
            "tol": None if tol is None else check_tol(tol),
            "rank": check_int(rank, "rank", 1, allow_none=True),
            "rank_decay": _checked(rank_decay, check_rank_decay),
            "min_rank": _checked(min_rank, check_int, "min_rank", 1),
            "max_rank": _checked(max_rank, check_int, "max_rank", 1, allow_none=True),
            "leaf_size": _checked(leaf_size, check_int, "leaf_size", 1),
            "power_iterations": _checked(power_iterations, check_int, "power_iterations", 0),
            "seed": _checked(seed, check_seed),
        },
    )
