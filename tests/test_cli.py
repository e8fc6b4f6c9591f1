"""``python -m hsslin demo --kernel``: the matrix demo needs no torch."""

from __future__ import annotations

import re

import numpy as np

from conftest import hss_error_bound
from hsslin.__main__ import main


def test_kernel_demo_reports_size_error_and_speed(capsys):
    assert main(["demo", "--kernel", "--n", "700", "--tol", "1e-6", "--repeats", "3"]) == 0
    text = capsys.readouterr().out
    err = float(re.search(r"error\s+([0-9.e+-]+)", text).group(1))
    share = float(re.search(r"= ([0-9.]+)% of dense", text).group(1))
    assert err <= hss_error_bound(1e-6, np.float64, 700, 700)  # the exact error, printed to 3 digits
    assert 0 < share < 100
    assert re.search(r"\d\.\d\dx (faster|slower) than dense", text) and "build" in text


def test_kernel_demo_rejects_bad_size(capsys):
    assert main(["demo", "--kernel", "--n", "0"]) == 2
    assert capsys.readouterr().err.strip() == "hsslin: error: argument --n: must be >= 1, got 0"
