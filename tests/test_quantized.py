"""QuantizedMatrix: decoding error per format, products against the decoded matrix, bytes, files, errors.

References are exact where the math allows: the decoded matrix is exact in
float32 (an 11-bit scale times a code below 2^8), and reference products are
computed in extended precision (np.longdouble), so each bound below is the
tested product's own rounding.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hsslin
from hsslin import QuantizedMatrix
from hsslin._io import from_bytes

INT_FORMATS = tuple(f"int{b}" for b in range(2, 9))
FORMATS = ("float16", "bfloat16", *INT_FORMATS)
HEADER_BYTES = 40


def _width(bits: int) -> int:
    return 2 if bits <= 2 else 4 if bits <= 4 else 8


def expected_nbytes(m, n, fmt, group_size=None, zero_point=False) -> int:
    """The storage formula of docs/quantized.md, written independently of the C++ count."""
    if fmt in ("float16", "bfloat16"):
        return HEADER_BYTES + 2 * m * n
    G = n if group_size is None else group_size
    code_bytes = math.ceil(G * _width(int(fmt[3:])) / 8)
    return HEADER_BYTES + m * (n // G) * (code_bytes + 2 + (1 if zero_point else 0))


def _weights(m, n, dtype, seed, spread=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n)) * 10.0 ** rng.integers(-spread, spread + 1, size=(m, 1))
    return W.astype(dtype)


@st.composite
def cases(draw):
    """(W, format, group_size, zero_point): shapes from 1x1 up, groups that divide n or None."""
    fmt = draw(st.sampled_from(FORMATS))
    m = draw(st.integers(1, 40))
    n = draw(st.sampled_from([1, 2, 7, 31, 32, 33, 64, 96, 100, 128, 130, 256]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    W = _weights(m, n, dtype, draw(st.integers(0, 2**16)), spread=draw(st.integers(0, 3)))
    if fmt in ("float16", "bfloat16"):
        return W, fmt, None, False
    groups = [g for g in (32, 64, 128) if n % g == 0] + [None]
    return W, fmt, draw(st.sampled_from(groups)), draw(st.booleans())


def _encode(W, fmt, group_size, zero_point):
    if fmt in ("float16", "bfloat16"):
        return QuantizedMatrix.from_dense(W, fmt)
    return QuantizedMatrix.from_dense(W, fmt, group_size=group_size, zero_point=zero_point)


def _group_scales(Q) -> np.ndarray:
    """Each entry's scale (float64), broadcast from its group's float16 scale."""
    m, n = Q.shape
    S = Q.scales.astype(np.float64)
    return np.repeat(S, n // S.shape[1], axis=1)


def assert_product_exact_to_rounding(got, D, X, dtype, inner: int, what: str):
    """|got - D X| <= (inner + 2) eps(dtype) (|D| |X|) entry by entry (deterministic worst case).

    A sum of `inner` products in dtype, each term exact (FMA) or rounded
    once, then scaled once, is within gamma_(inner+2) of the exact sum
    relative to the sum of absolute terms; the reference is extended
    precision, so its own error is negligible.
    """
    D = np.asarray(D, dtype=np.longdouble)
    X = np.asarray(X, dtype=np.longdouble)
    ref = D @ X
    bound = (inner + 2) * np.finfo(dtype).eps * (np.abs(D) @ np.abs(X))
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype}"
    assert got.shape == ref.shape
    err = np.abs(got.astype(np.longdouble) - ref)
    worst = np.max(err - bound) if err.size else 0
    assert np.all(err <= bound), f"{what}: error exceeds the bound by {float(worst):.3e}"


# -- decoding -----------------------------------------------------------------------
@given(cases())
def test_decode_error_within_the_format_step(case):
    W, fmt, group, zp = case
    Q = _encode(W, fmt, group, zp)
    D = Q.to_dense().astype(np.float64)
    err = np.abs(D - W.astype(np.float64))
    if fmt == "float16":
        assert np.all(err <= np.maximum(2.0**-11 * np.abs(W), 2.0**-25))
    elif fmt == "bfloat16":
        assert np.all(err <= np.maximum(2.0**-8 * np.abs(W), 2.0**-134))
    else:
        S = _group_scales(Q)
        assert np.all(err <= S / 2 * (1 + 1e-9))
        # The scale is the smallest float16 at or above the range's step (never clips, never wastes).
        bits = Q.bits
        levels = 2**bits - 1 if zp else 2 ** (bits - 1) - 1
        G = W.shape[1] if group is None else group
        Wg = W.astype(np.float64).reshape(W.shape[0], -1, G)
        if zp:
            step = (np.maximum(Wg.max(axis=2), 0) - np.minimum(Wg.min(axis=2), 0)) / levels
        else:
            step = np.abs(Wg).max(axis=2) / levels
        s = Q.scales.astype(np.float64)
        assert np.all(s >= step)
        assert np.all(s <= step * (1 + 2.0**-10) + 2.0**-24)


@given(cases())
def test_to_dense_and_its_transpose(case):
    W, fmt, group, zp = case
    Q = _encode(W, fmt, group, zp)
    D = Q.to_dense()
    assert D.dtype == W.dtype and D.shape == W.shape
    np.testing.assert_array_equal(Q.T.to_dense(), D.T)
    # Decoded values are exact in both dtypes: the float64 operator decodes the same matrix.
    np.testing.assert_array_equal(Q.astype(np.float64).to_dense(), D.astype(np.float64))


# -- products -----------------------------------------------------------------------
@given(cases(), st.sampled_from([1, 2, 5]), st.booleans())
def test_products_match_the_decoded_matrix(case, k, vector):
    W, fmt, group, zp = case
    Q = _encode(W, fmt, group, zp)
    m, n = Q.shape
    D = Q.to_dense()
    rng = np.random.default_rng(k)
    dt = Q.dtype
    x = rng.standard_normal(n if vector else (n, k)).astype(dt)
    y = rng.standard_normal(m if vector else (m, k)).astype(dt)
    assert_product_exact_to_rounding(Q @ x, D, x, dt, n, "A @ x")
    assert_product_exact_to_rounding(Q.T @ y, D.T, y, dt, m, "A.T @ y")
    if not vector:
        xf = np.asfortranarray(x)
        assert_product_exact_to_rounding(Q @ xf, D, xf, dt, n, "A @ x (F order)")


def test_threaded_products_match():
    """Large enough to thread (worth_threading); rows split: the same result on 1 thread or many."""
    W = _weights(700, 512, np.float32, 3)
    x = np.random.default_rng(4).standard_normal(512).astype(np.float32)
    X = np.random.default_rng(5).standard_normal((700, 3)).astype(np.float32)
    old = hsslin.get_num_threads()
    try:
        for fmt, g in (("int4", 64), ("int8", None), ("float16", None), ("bfloat16", None), ("int3", 32)):
            Q = _encode(W, fmt, g, False)
            D = Q.to_dense()
            hsslin.set_num_threads(1)
            y1, z1 = Q @ x, Q.T @ X
            hsslin.set_num_threads(max(2, old))
            y2, z2 = Q @ x, Q.T @ X
            np.testing.assert_array_equal(y1, y2)
            assert_product_exact_to_rounding(y2, D, x, np.float32, 512, fmt)
            assert_product_exact_to_rounding(z1, D.T, X, np.float32, 700, fmt + " T, 1 thread")
            assert_product_exact_to_rounding(z2, D.T, X, np.float32, 700, fmt + " T, threads")
    finally:
        hsslin.set_num_threads(old)


def test_float64_operands_promote():
    W = _weights(50, 64, np.float32, 1)
    Q = QuantizedMatrix.from_dense(W, "int4", group_size=32, zero_point=True)
    x = np.random.default_rng(2).standard_normal(64)
    y = Q @ x
    assert y.dtype == np.float64
    assert_product_exact_to_rounding(y, Q.to_dense(), x, np.float64, 64, "float64 operand")
    assert (Q @ x.astype(np.float32)).dtype == np.float32


# -- bytes ----------------------------------------------------------------------------
@given(cases())
def test_nbytes_exact(case):
    W, fmt, group, zp = case
    Q = _encode(W, fmt, group, zp)
    m, n = W.shape
    want = expected_nbytes(m, n, fmt, group, zp)
    assert Q.nbytes == want
    impl = Q._impl
    stored = 2 * impl.halves.size + impl.codes.size + 2 * impl.scales.size + impl.zeros.size
    assert stored + HEADER_BYTES == want  # every stored array counted
    kwargs = {} if fmt in ("float16", "bfloat16") else dict(group_size=group, zero_point=zp)
    assert QuantizedMatrix.nbytes_for((m, n), fmt, **kwargs) == want


def test_int4_at_4096_is_under_a_seventh_of_float32():
    size = QuantizedMatrix.nbytes_for((4096, 4096), "int4", group_size=64)
    assert size == expected_nbytes(4096, 4096, "int4", 64)
    assert size / (4096 * 4096 * 4) < 0.134


# -- compress ---------------------------------------------------------------------------
def _rtn_choices(m, n, zero_point):
    return [
        (bits, g, expected_nbytes(m, n, f"int{bits}", g, zero_point))
        for bits in range(8, 1, -1)
        for g in (32, 64, 128, None)
        if g is None or n % g == 0
    ]


@given(
    st.integers(1, 30),
    st.sampled_from([5, 32, 64, 96, 128]),
    st.floats(0.01, 0.6),
    st.booleans(),
)
def test_rtn_budget_takes_the_most_bits_that_fit(m, n, share, zero_point):
    W = _weights(m, n, np.float32, 7)
    budget = int(share * W.nbytes) + 64
    choices = _rtn_choices(m, n, zero_point)
    fitting = [c for c in choices if c[2] <= budget]
    if not fitting:
        with pytest.raises(ValueError, match="too small"):
            hsslin.compress(W, "rtn", budget_bytes=budget, zero_point=zero_point)
        return
    Q = hsslin.compress(W, "rtn", budget_bytes=budget, zero_point=zero_point)
    assert isinstance(Q, QuantizedMatrix) and Q.nbytes <= budget
    bits, g, size = fitting[0]
    assert (Q.bits, Q.group_size, Q.zero_point, Q.nbytes) == (bits, g, zero_point, size)


def test_rtn_budget_error_names_the_smallest_size():
    W = _weights(8, 64, np.float32, 0)
    smallest = min(c[2] for c in _rtn_choices(8, 64, False))
    with pytest.raises(ValueError, match=f"at least {smallest} bytes"):
        hsslin.compress(W, "rtn", budget_bytes=smallest - 1)
    assert hsslin.compress(W, "rtn", budget_bytes=smallest).nbytes == smallest


@pytest.mark.parametrize("method", ["float16", "bfloat16"])
def test_float_methods(method):
    W = _weights(20, 33, np.float64, 0)
    Q = hsslin.compress(W, method)
    assert Q.format == method and Q.dtype == np.float64
    size = expected_nbytes(20, 33, method)
    assert hsslin.compress(W, method, budget_bytes=size).nbytes == size
    with pytest.raises(ValueError, match=f"at least {size} bytes"):
        hsslin.compress(W, method, budget_bytes=size - 1)
    with pytest.raises(ValueError, match="does not take bits"):
        hsslin.compress(W, method, bits=4)


def test_rtn_parameters():
    W = _weights(10, 128, np.float32, 0)
    Q = hsslin.compress(W, "rtn", bits=3, group_size=128, zero_point=True)
    assert (Q.format, Q.bits, Q.group_size, Q.zero_point) == ("int3", 3, 128, True)
    assert hsslin.compress(W, "rtn", bits=8).group_size == 64  # the default grouping
    with pytest.raises(ValueError, match="needs bits"):
        hsslin.compress(W, "rtn")
    for bits in (1, 9, 16):
        with pytest.raises(ValueError, match="bits must be in 2..8"):
            hsslin.compress(W, "rtn", bits=bits)
    with pytest.raises(TypeError, match="bits must be an integer"):
        hsslin.compress(W, "rtn", bits=4.0)
    with pytest.raises(ValueError, match="zero_point applies to method 'rtn'"):
        hsslin.compress(W, "svd", budget_bytes=W.nbytes // 2, zero_point=True)


# -- files --------------------------------------------------------------------------------
@given(cases())
def test_save_load_round_trip_is_exact(case):
    W, fmt, group, zp = case
    Q = _encode(W, fmt, group, zp)
    blob = Q.to_bytes()
    R = from_bytes(blob)
    assert isinstance(R, QuantizedMatrix) and R.dtype == Q.dtype
    assert (R.format, R.group_size, R.zero_point, R.nbytes) == (
        Q.format,
        Q.group_size,
        Q.zero_point,
        Q.nbytes,
    )
    np.testing.assert_array_equal(R.to_dense(), Q.to_dense())
    assert R.to_bytes() == blob
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(Q)).to_dense(), Q.to_dense())
    np.testing.assert_array_equal(copy.deepcopy(Q).to_dense(), Q.to_dense())


def test_save_and_load_a_file(tmp_path):
    Q = QuantizedMatrix.from_dense(_weights(9, 64, np.float32, 0), "int4", group_size=32, zero_point=True)
    path = tmp_path / "q.hsslin"
    Q.save(path)
    for R in (hsslin.load(path), QuantizedMatrix.load(path)):
        np.testing.assert_array_equal(R.to_dense(), Q.to_dense())
    with pytest.raises(ValueError, match="holds a QuantizedMatrix, not a CSRMatrix"):
        hsslin.CSRMatrix.load(path)


def test_truncated_file_is_a_value_error():
    blob = QuantizedMatrix.from_dense(_weights(3, 32, np.float32, 0), "int8", group_size=32).to_bytes()
    for cut in (len(blob) - 1, 50, 41):
        with pytest.raises(ValueError):
            from_bytes(blob[:cut])


# -- the generic and AVX2 builds ------------------------------------------------------
_PATHS_SCRIPT = r"""
import json, numpy as np, hsslin
out = {"simd": hsslin.simd_path()}
rng = np.random.default_rng(0)
for fmt, g, zp, n in [("int4", 64, False, 256), ("int4", None, True, 77), ("int8", 32, False, 96),
                      ("int2", 128, True, 128), ("int5", None, False, 33), ("float16", None, False, 77),
                      ("bfloat16", None, False, 77)]:
    for dtype in ("float32", "float64"):
        W = rng.standard_normal((61, n)).astype(dtype)
        kw = {} if fmt.startswith(("float", "bfloat")) else dict(group_size=g, zero_point=zp)
        Q = hsslin.QuantizedMatrix.from_dense(W, fmt, **kw)
        x = rng.standard_normal(n).astype(dtype)
        X = rng.standard_normal((61, 3)).astype(dtype)
        key = f"{fmt}-{g}-{zp}-{dtype}"
        out[key] = {"bytes": Q.to_bytes().hex(), "dense": Q.to_dense().tolist(),
                    "y": (Q @ x).tolist(), "z": (Q.T @ X).tolist(), "x": x.tolist(), "X": X.tolist()}
print(json.dumps(out))
"""


def _run_path(path: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PATHS_SCRIPT)],
        env={**os.environ, "HSSLIN_SIMD": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if path == "avx2" and proc.returncode != 0 and "ImportError" in proc.stderr:
        pytest.skip("the AVX2 build does not load on this CPU")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_generic_and_avx2_paths_agree():
    generic, avx2 = _run_path("generic"), _run_path("avx2")
    assert (generic.pop("simd"), avx2.pop("simd")) == ("generic", "avx2")
    for key, g in generic.items():
        a = avx2[key]
        dtype = np.float32 if key.endswith("float32") else np.float64
        assert a["bytes"] == g["bytes"], key  # the same encoding
        assert a["dense"] == g["dense"], key  # the same decoded matrix, exactly
        D = np.array(g["dense"], dtype=dtype)
        for side in (g, a):
            y, z = np.array(side["y"], dtype=dtype), np.array(side["z"], dtype=dtype)
            x, X = np.array(g["x"], dtype=dtype), np.array(g["X"], dtype=dtype)
            assert_product_exact_to_rounding(y, D, x, dtype, D.shape[1], key + " y")
            assert_product_exact_to_rounding(z, D.T, X, dtype, D.shape[0], key + " z")


# -- bad input ------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors():
    W = _weights(4, 96, np.float32, 0)
    for fmt in ("int1", "int9", "float8", "int", 4):
        with pytest.raises(ValueError, match="format must be one of"):
            QuantizedMatrix.from_dense(W, fmt)
    for g in (16, 48, 256, 0):
        with pytest.raises(ValueError, match="group_size must be 32, 64, 128 or None"):
            QuantizedMatrix.from_dense(W, "int4", group_size=g)
    for g in ("64", 64.0, True):
        with pytest.raises(TypeError, match="group_size must be"):
            QuantizedMatrix.from_dense(W, "int4", group_size=g)
    with pytest.raises(ValueError, match="group_size=64 does not divide the row length 96"):
        QuantizedMatrix.from_dense(W, "int4", group_size=64)
    with pytest.raises(ValueError, match="group_size applies to the integer formats"):
        QuantizedMatrix.from_dense(W, "float16", group_size=32)
    with pytest.raises(ValueError, match="zero_point applies to the integer formats"):
        QuantizedMatrix.from_dense(W, "bfloat16", zero_point=True)
    with pytest.raises(TypeError, match="zero_point must be a bool"):
        QuantizedMatrix.from_dense(W, "int8", zero_point=1)
    with pytest.raises(ValueError, match="non-empty"):
        QuantizedMatrix.from_dense(np.zeros((0, 4)), "int8", group_size=None)
    with pytest.raises(ValueError, match="W must be 2-D"):
        QuantizedMatrix.from_dense(np.zeros(4), "float16")
    W[1, 2] = np.nan
    with pytest.raises(ValueError, match="W"):
        QuantizedMatrix.from_dense(W, "int8", group_size=32)
    with pytest.raises(TypeError, match="from_dense"):
        QuantizedMatrix(np.eye(2))


def test_float16_overflow_is_refused_not_stored_as_inf():
    W = np.array([[1.0, 65504.0]])
    assert QuantizedMatrix.from_dense(W, "float16").to_dense()[0, 1] == 65504.0
    W[0, 0] = 65520.0  # rounds to 65536, beyond the largest float16
    with pytest.raises(ValueError, match="beyond float16's largest finite value 65504"):
        QuantizedMatrix.from_dense(W, "float16")
    assert np.isfinite(QuantizedMatrix.from_dense(W, "bfloat16").to_dense()).all()
    # A group scale beyond float16: int8's scale is max|w| / 127.
    with pytest.raises(ValueError, match="scale of group 0 of row 0 .* exceeds float16's largest finite"):
        QuantizedMatrix.from_dense(np.full((1, 32), 1e7), "int8", group_size=32)
    with pytest.raises(ValueError, match="beyond bfloat16's largest finite value"):
        QuantizedMatrix.from_dense(np.array([[3.5e38]]), "bfloat16")


def test_zero_and_tiny_groups():
    W = np.zeros((2, 64))
    W[1, :32] = 1e-30  # far below float16's smallest scale: stored as 0 within half a scale
    for zp in (False, True):
        Q = QuantizedMatrix.from_dense(W, "int4", group_size=32, zero_point=zp)
        D = Q.to_dense()
        assert np.all(np.abs(D - W) <= _group_scales(Q) / 2)
        assert np.all(D[0] == 0)


def test_repr_and_attributes():
    Q = QuantizedMatrix.from_dense(np.ones((3, 64), np.float32), "int8", group_size=None, zero_point=True)
    assert repr(Q) == "<QuantizedMatrix 3x64 int8, group_size=None, zero_point, float32 products>"
    assert Q.scales.shape == (3, 1) and Q.scales.dtype == np.float16
    F = QuantizedMatrix.from_dense(np.ones((3, 5)), "float16")
    assert (F.bits, F.group_size, F.zero_point, F.scales.shape) == (16, None, False, (3, 0))


# -- the torch adapter ------------------------------------------------------------------
def test_torch_adapter_accepts_the_quantizers():
    torch = pytest.importorskip("torch")
    import hsslin.torch as ht

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 32))
    x = torch.randn(5, 64)
    for method, budget, fmt in (
        ("rtn", 0.2, "int4"),
        ("float16", 0.51, "float16"),
        ("bfloat16", 0.51, "bfloat16"),
    ):
        m = copy.deepcopy(model)
        report = ht.compress_model(m, targets="*", method=method, budget=budget, progress=False)
        assert len(report.layers) == 2
        for row in report.layers:
            assert row.params["operator"] == "QuantizedMatrix" and row.params["format"] == fmt
            assert row.bytes_after <= budget * row.bytes_before
        layer = m[0]
        Q = layer.get_operator()
        with torch.no_grad():
            want = x.double() @ torch.from_numpy(Q.to_dense()).double().T + layer.bias.double()
            got = layer(x)
        assert got.dtype == torch.float32
        assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="QuantizedMatrix .* has no trainable form"):
            layer.to_trainable()
