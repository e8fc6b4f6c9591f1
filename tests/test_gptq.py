"""GPTQ (hsslin.compress method "gptq") and QuantizedMatrix.from_codes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hsslin
from hsslin import _defaults
from hsslin._activation import output_error


def _correlated(seed, m=32, n=128, N=800, r=8):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, r)) @ rng.standard_normal((r, n)) + 0.1 * rng.standard_normal((N, n))
    return rng.standard_normal((m, n)).astype(np.float32), X.T @ X


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from([(4, 64), (3, 32), (2, 64)]), st.booleans())
def test_gptq_output_error_at_most_rtn(seed, fmt, zp):
    W, G = _correlated(seed)
    bits, g = fmt
    R = hsslin.compress(W, "rtn", bits=bits, group_size=g, zero_point=zp)
    Q = hsslin.compress(W, "gptq", bits=bits, group_size=g, zero_point=zp, input_gram=G)
    assert (Q.format, Q.group_size, Q.zero_point, Q.nbytes) == (
        R.format,
        R.group_size,
        R.zero_point,
        R.nbytes,
    )
    assert output_error(Q, W, G) <= output_error(R, W, G)


def test_gptq_with_identity_gram_is_rtn():
    W, _ = _correlated(1)
    Q = hsslin.compress(W, "gptq", bits=4, group_size=32, input_gram=np.eye(W.shape[1]))
    R = hsslin.compress(W, "rtn", bits=4, group_size=32)
    assert np.array_equal(Q.codes, R.codes) and np.array_equal(Q.scales, R.scales)


def test_gptq_needs_gram_and_budget_holds(tmp_path):
    W, G = _correlated(2)
    with pytest.raises(ValueError, match="input_gram"):
        hsslin.compress(W, "gptq", bits=4)
    budget = W.nbytes // 6
    Q = hsslin.compress(W, "gptq", budget_bytes=budget, input_gram=G)
    assert Q.nbytes <= budget
    Q.save(tmp_path / "q.hss")
    L = hsslin.load(tmp_path / "q.hss")
    assert np.array_equal(L.codes, Q.codes) and np.array_equal(L.to_dense(), Q.to_dense())


@pytest.mark.parametrize(
    "fmt,g,zp", [("int4", 32, False), ("int3", None, True), ("int2", 64, False), ("int8", 32, True)]
)
def test_from_codes_round_trip(fmt, g, zp):
    W = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    R = hsslin.QuantizedMatrix.from_dense(W, fmt, group_size=g, zero_point=zp)
    Q = hsslin.QuantizedMatrix.from_codes(R.codes, R.scales, R.zeros, format=fmt, group_size=g)
    assert np.array_equal(Q.codes, R.codes) and np.array_equal(Q.to_dense(), R.to_dense())
    assert Q.nbytes == R.nbytes


@pytest.mark.parametrize(
    "codes,scales,zeros,name",
    [
        ([[0, 16]], [[0.5]], None, "codes"),
        ([[0, -1]], [[0.5]], None, "codes"),
        ([[0, 1]], [[-0.5]], None, "scales"),
        ([[0, 1]], [[0.1]], None, "scales"),
        ([[0, 1]], [[np.inf]], None, "scales"),
        ([[0, 1]], [[0.5, 0.5]], None, "scales"),
        ([[0, 1]], [[0.5]], [[16]], "zeros"),
        ([[0.5, 1]], [[0.5]], None, "codes"),
    ],
)
def test_from_codes_bad_input(codes, scales, zeros, name):
    with pytest.raises(ValueError, match=name):
        hsslin.QuantizedMatrix.from_codes(codes, scales, zeros, format="int4", group_size=None)


def test_gptq_without_calibration_is_refused_before_any_model_loads():
    with pytest.raises(ValueError, match="calibration"):
        _defaults.resolve("gptq", 0.25, None, "auto", [])
    assert _defaults.resolve("gptq", 0.25, "auto", "auto", [])[1] == "builtin"
