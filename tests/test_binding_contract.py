"""The binding contract.

Dtypes, strides, shapes, error types and messages, file integrity, the raw C++
classes, and the two SIMD builds.

Every public entry point validates at the boundary and raises ValueError or
TypeError naming the argument and the shapes; C++ never crashes on user input.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.sparse

import hsslin
from conftest import assert_product_close, make_matrix, rel_fro_error, rounding_floor, run_python

CLASSES = [hsslin.HSSMatrix, hsslin.HODLRMatrix]
DTYPES = [np.float32, np.float64]
HEADER = 40  # magic 8, version 4, kind 4, scalar size 4, reserved 4, length 8, checksum 8


def build(cls, A, **kw):
    return cls.from_dense(A, leaf_size=kw.pop("leaf_size", 16), **kw)


@pytest.fixture(
    params=[(c, d) for c in CLASSES for d in DTYPES],
    ids=lambda p: f"{p[0].__name__}-{np.dtype(p[1]).name}",
)
def operator(request):
    """(H, dense) for a 90 x 70 Cauchy matrix, compressed to tol 1e-5."""
    cls, dtype = request.param
    A = make_matrix("cauchy", 90, 70, dtype)
    H = build(cls, A, tol=1e-5)
    return H, H.to_dense()


# -- input dtypes ---------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "src,expected",
    [
        (np.int64, np.float64),
        (np.int32, np.float64),
        (np.uint8, np.float64),
        (np.bool_, np.float64),
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.float64, np.float64),
    ],
)
def test_matrix_dtype_conversion(cls, src, expected):
    A = np.random.default_rng(0).integers(0, 2, (20, 30)).astype(src)
    H = build(cls, A, leaf_size=64)  # one leaf: stored exactly
    assert H.dtype == np.dtype(expected)
    assert np.array_equal(H.to_dense(), A.astype(expected))


@pytest.mark.parametrize("cls", CLASSES)
def test_integer_matrix_compressed_as_float64(cls):
    A = np.rint(100 * make_matrix("gaussian", 150, 150)).astype(np.int64)
    H = build(cls, A, tol=1e-8)
    assert H.dtype == np.float64
    # Compressed from the float64 copy: same bound as for float64 input.
    assert rel_fro_error(A, H.to_dense()) <= 3 * max(1e-8, rounding_floor(np.float64, 150, 150))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "bad",
    [
        np.ones((4, 4), np.complex128),
        np.ones((4, 4), np.complex64),
        np.array([[1, "a"], [2, 3]], dtype=object),
        np.array([["a", "b"], ["c", "d"]]),
        scipy.sparse.eye(4, format="csr"),
    ],
    ids=["complex128", "complex64", "object", "str", "sparse"],
)
def test_matrix_bad_dtype_raises_type_error(cls, bad):
    with pytest.raises(TypeError, match="A"):
        cls.from_dense(bad)


@pytest.mark.skipif(np.dtype(np.longdouble) == np.float64, reason="longdouble is float64 here")
@pytest.mark.parametrize("cls", CLASSES)
def test_longdouble_refused(cls):
    with pytest.raises(TypeError, match="longdouble|float128|use float32 or float64"):
        cls.from_dense(np.ones((4, 4), np.longdouble))


# -- input values and shapes ----------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_matrix(cls, value, dtype):
    A = np.ones((30, 20), dtype)
    A[17, 3] = value
    with pytest.raises(ValueError, match=r"A has a non-finite entry .*17.*3"):
        cls.from_dense(A)


def test_non_finite_message_shows_plain_index():
    A = np.ones((30, 20))
    A[17, 3] = np.nan
    with pytest.raises(ValueError) as info:
        hsslin.HSSMatrix.from_dense(A)
    assert str(info.value).endswith("at index (17, 3)"), str(info.value)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (), (0, 5), (5, 0), (0, 0)])
def test_matrix_shape_errors(cls, shape):
    A = np.ones(shape)
    with pytest.raises(ValueError) as info:
        cls.from_dense(A)
    msg = str(info.value)
    assert "A" in msg and str(shape) in msg, msg


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("tol", [0.0, 1.0, -1e-3, 1.5, float("nan"), float("inf")])
def test_tol_out_of_range(cls, tol):
    with pytest.raises(ValueError, match="tol"):
        cls.from_dense(np.eye(8), tol=tol)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("tol", ["1e-3", True, [1e-3]])
def test_tol_wrong_type(cls, tol):
    with pytest.raises(TypeError, match="tol"):
        cls.from_dense(np.eye(8), tol=tol)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(leaf_size=0), "leaf_size"),
        (dict(leaf_size=-4), "leaf_size"),
        (dict(max_rank=0), "max_rank"),
        (dict(seed=-1), "seed"),
    ],
)
def test_integer_options_out_of_range(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls.from_dense(np.eye(8), **kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [(dict(oversampling=1), "oversampling"), (dict(initial_samples=0), "initial_samples")],
)
def test_hss_sampling_options(kwargs, name):
    with pytest.raises(ValueError, match=name):
        hsslin.HSSMatrix.from_dense(np.eye(8), **kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [(dict(rank=0), "rank"), (dict(rank=-2), "rank"), (dict(rank=3, min_rank=0), "min_rank")],
)
def test_hodlr_rank_options(kwargs, name):
    with pytest.raises(ValueError, match=name):
        hsslin.HODLRMatrix.from_dense(np.eye(8), **kwargs)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("kwargs", [dict(leaf_size=2.5), dict(leaf_size="8"), dict(leaf_size=True)])
def test_integer_options_wrong_type(cls, kwargs):
    with pytest.raises(TypeError, match="leaf_size"):
        cls.from_dense(np.eye(8), **kwargs)


@pytest.mark.parametrize("cls", CLASSES)
def test_input_matrix_not_modified(cls):
    A = make_matrix("cauchy", 100, 80)
    before = A.copy()
    build(cls, A, tol=1e-4)
    assert np.array_equal(A, before)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["fortran", "transposed", "strided", "negative", "mixed"])
def test_strided_matrix_input(cls, dtype, layout):
    base = make_matrix("cauchy", 240, 200, dtype)
    A = {
        "fortran": np.asfortranarray(base),
        "transposed": np.ascontiguousarray(base.T).T,  # F-ordered view of base
        "strided": make_matrix("cauchy", 480, 600, dtype)[::2, ::3],
        "negative": base[::-1, ::-1],
        "mixed": make_matrix("cauchy", 480, 200, dtype)[::-2, :],
    }[layout]
    assert not A.flags.c_contiguous
    H = build(cls, A, tol=1e-5, seed=3)
    # Compression is deterministic for a given seed, so a strided input must
    # give exactly what its contiguous copy gives.
    ref = build(cls, np.ascontiguousarray(A), tol=1e-5, seed=3)
    assert np.array_equal(H.to_dense(), ref.to_dense())


# -- operand dtypes, shapes, strides -------------------------------------------
def test_operand_wrong_length_message(operator):
    H, _ = operator
    m, n = H.shape
    with pytest.raises(ValueError) as info:
        H @ np.ones(n + 1, H.dtype)
    assert str(info.value) == f"x has shape ({n + 1},), expected ({n},) or ({n}, k)"
    with pytest.raises(ValueError) as info:
        H.matmat(np.ones((n - 1, 3), H.dtype))
    msg = str(info.value)
    assert "X" in msg and f"({n - 1}, 3)" in msg and f"({n}," in msg, msg
    with pytest.raises(ValueError) as info:
        H.T @ np.ones(n, H.dtype)  # the transpose needs m entries
    msg = str(info.value)
    assert f"({n},)" in msg and f"({m},)" in msg, msg
    with pytest.raises(ValueError) as info:
        H.rmatvec(np.ones(n, H.dtype))
    assert f"({m},)" in str(info.value)


@pytest.mark.parametrize("shape", [(), (70, 2, 2), (1, 70)])
def test_operand_bad_rank(operator, shape):
    H, _ = operator
    with pytest.raises(ValueError, match="x has shape"):
        H @ np.ones(shape, H.dtype)


def test_matmat_needs_2d(operator):
    H, _ = operator
    with pytest.raises(ValueError, match=r"X has shape \(70,\)"):
        H.matmat(np.ones(70, H.dtype))
    with pytest.raises(ValueError, match=r"X has shape \(90,\)"):
        H.rmatmat(np.ones(90, H.dtype))


def test_float64_operand_for_float32_operator_promotes():
    # NumPy's rule: float32 operator, float64 operand -> a float64 result, computed
    # from a float64 copy of the stored values (tests/test_protocol.py checks the
    # accuracy for every class), HSS with a tree included.
    x, y = np.ones(70), np.ones(90)
    calls = (
        lambda o: o @ x,
        lambda o: o.matvec(x),
        lambda o: o.matmat(x[:, None]),
        lambda o: o.T @ y,
        lambda o: o.rmatvec(y),
        lambda o: o.__rmatmul__(y),
    )
    for cls in (hsslin.HODLRMatrix, hsslin.HSSMatrix):
        G = build(cls, make_matrix("cauchy", 90, 70, np.float32), tol=1e-4)
        assert cls is hsslin.HODLRMatrix or G.levels > 0
        for call in calls:
            assert call(G).dtype == np.float64


@pytest.mark.parametrize("cls", CLASSES)
def test_float32_operand_upcast_for_float64_operator(cls):
    H = build(cls, make_matrix("cauchy", 90, 70), tol=1e-8)
    x = np.random.default_rng(0).standard_normal(70).astype(np.float32)
    X = np.random.default_rng(1).standard_normal((70, 4)).astype(np.float32)
    y = H @ x
    assert y.dtype == np.float64
    assert np.array_equal(y, H @ x.astype(np.float64))
    assert np.array_equal(H @ X, H @ X.astype(np.float64))
    assert np.array_equal(H @ np.arange(70), H @ np.arange(70.0))  # integers convert


@pytest.mark.parametrize(
    "bad", [np.array(["a"] * 70), np.array([object()] * 70), np.ones(70, np.longdouble), None]
)
def test_operand_bad_dtype_type_error(operator, bad):
    H, _ = operator
    with pytest.raises(TypeError, match="x"):
        H @ bad


def _layouts(v: np.ndarray, rows: int, k: int, rng):
    """Views with the values of a fresh operand but other memory layouts."""
    base1 = rng.standard_normal(2 * rows).astype(v.dtype)
    base2 = rng.standard_normal((2 * rows, 3 * k)).astype(v.dtype)
    c = rng.standard_normal((k, rows)).astype(v.dtype)
    return {
        "1d step 2": base1[::2],
        "1d negative": base1[rows:][::-1],
        "1d step -2": base1[::-2],
        "fortran": np.asfortranarray(base2[:rows, :k]),
        "transposed C": c.T,  # F-contiguous view
        "2d strided": base2[::2, ::3],
        "2d negative": base2[:rows][::-1, :k],
        "column of C": np.ascontiguousarray(base2[:rows, :k])[:, 1:2],  # (rows, 1), strided
        "row-major slice": base2[:rows, k : 2 * k],
    }


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_operands(cls, dtype):
    A = make_matrix("cauchy", 90, 70, dtype)
    H = build(cls, A, tol=1e-5)
    D = H.to_dense()
    rng = np.random.default_rng(5)
    for transpose, rows in ((False, 70), (True, 90)):
        op, ref = (H.T, D.T) if transpose else (H, D)
        for name, x in _layouts(np.empty(0, dtype), rows, 4, rng).items():
            before = x.copy()
            got = op @ x
            assert_product_close(got, ref, np.array(x), dtype, f"{name} transpose={transpose}")
            assert np.array_equal(x, before), f"{name}: operand modified"
            if x.ndim == 2:
                assert_product_close(op.matmat(x), ref, np.array(x), dtype, f"matmat {name}")
            else:
                assert_product_close(op.matvec(x), ref, np.array(x), dtype, f"matvec {name}")


def test_matvec_keeps_column_shape(operator):
    H, D = operator
    x = np.ones((70, 1), H.dtype)
    assert H.matvec(x).shape == (90, 1)
    assert H.rmatvec(np.ones((90, 1), H.dtype)).shape == (70, 1)
    assert (H @ np.ones((70, 0), H.dtype)).shape == (90, 0)


def test_operator_times_operator_is_type_error(operator):
    H, _ = operator
    with pytest.raises(TypeError):
        H @ H.T


def test_relative_error_shape_mismatch(operator):
    H, D = operator
    with pytest.raises(ValueError, match=r"A has shape \(70, 90\), expected \(90, 70\)"):
        H.relative_error(D.T)


@pytest.mark.parametrize("cls", CLASSES)
def test_direct_construction_refused(cls):
    with pytest.raises(TypeError, match="from_dense"):
        cls(object())


# -- threads --------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad,exc",
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)],
)
def test_set_num_threads_validation(bad, exc, restore_threads):
    with pytest.raises(exc, match="n"):
        hsslin.set_num_threads(bad)


@pytest.mark.parametrize("value,expected", [("1", 1), ("3", 3), ("junk", None), ("0", None)])
def test_num_threads_environment(value, expected):
    proc = run_python(
        "import hsslin, os; print(hsslin.get_num_threads(), os.cpu_count())",
        HSSLIN_NUM_THREADS=value,
    )
    assert proc.returncode == 0, proc.stderr
    got, cpus = map(int, proc.stdout.split())
    # Unparseable or < 1: ignored, the default (number of CPUs) applies.
    assert got == (expected if expected is not None else cpus)


# -- files ----------------------------------------------------------------------
def _fnv_lanes(payload: bytes) -> int:
    """Hsslin's checksum: FNV-1a over 8 interleaved lanes, folded (cpp/src/io.cpp)."""
    prime, mask = 1099511628211, (1 << 64) - 1
    h = 1469598103934665603
    full = len(payload) // 8 * 8
    lanes = np.array([h ^ k for k in range(8)], dtype=np.uint64)
    if full:
        block = np.frombuffer(payload[:full], dtype=np.uint8).reshape(-1, 8).astype(np.uint64)
        p = np.uint64(prime)
        with np.errstate(over="ignore"):
            for row in block:
                lanes = (lanes ^ row) * p
    for k in range(8):
        h = ((h ^ int(lanes[k])) * prime) & mask
    for byte in payload[full:]:
        h = ((h ^ byte) * prime) & mask
    return h


def _with_checksum(blob: bytearray) -> bytes:
    """Rewrites length and checksum so a tampered payload passes the header checks."""
    payload = bytes(blob[HEADER:])
    blob[24:32] = len(payload).to_bytes(8, "little")
    blob[32:40] = _fnv_lanes(payload).to_bytes(8, "little")
    return bytes(blob)


@pytest.fixture(
    params=[(c, d) for c in CLASSES for d in DTYPES],
    ids=lambda p: f"{p[0].__name__}-{np.dtype(p[1]).name}",
)
def saved(request, tmp_path):
    cls, dtype = request.param
    H = build(cls, make_matrix("cauchy", 70, 50, dtype), tol=1e-4)
    return H, bytearray(H.to_bytes()), tmp_path / "m.bin"


def _load_bytes(path, data):
    path.write_bytes(bytes(data))
    return hsslin.load(path)


def test_header_layout(saved):
    H, blob, _ = saved
    assert blob[:8] == b"HSSLIN\x00\n"
    assert int.from_bytes(blob[8:12], "little") == 1
    assert int.from_bytes(blob[12:16], "little") == (1 if isinstance(H, hsslin.HSSMatrix) else 2)
    assert int.from_bytes(blob[16:20], "little") == H.dtype.itemsize
    assert int.from_bytes(blob[24:32], "little") == len(blob) - HEADER
    assert int.from_bytes(blob[32:40], "little") == _fnv_lanes(bytes(blob[HEADER:]))
    assert _with_checksum(bytearray(blob)) == bytes(blob)


def test_flipped_payload_byte(saved):
    H, blob, path = saved
    for at in (HEADER, HEADER + (len(blob) - HEADER) // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[at] ^= 0x10
        with pytest.raises(ValueError, match="checksum"):
            _load_bytes(path, bad)


def test_truncated_and_padded(saved):
    H, blob, path = saved
    for bad in (
        blob[:-1],
        blob[: len(blob) // 2],
        blob[:HEADER],
        blob[: HEADER - 1],
        blob[:10],
        b"",
        blob + b"\x00",
    ):
        with pytest.raises(ValueError):
            _load_bytes(path, bad)


# Header fields (offset of the 4-byte little-endian value, what the error names).
HEADER_FIELDS = {"version": (8, "version"), "kind": (12, None), "scalar size": (16, "scalar size")}


@pytest.mark.parametrize(
    "field,value",
    [("version", v) for v in (99, 2, 0)]
    + [("kind", k) for k in (0, 3, 77)]
    + [("scalar size", z) for z in (0, 2, 16)],
)
def test_bad_header_field(saved, field, value):
    H, blob, path = saved
    offset, match = HEADER_FIELDS[field]
    blob[offset : offset + 4] = value.to_bytes(4, "little")
    with pytest.raises(ValueError, match=match):
        _load_bytes(path, blob)


def test_wrong_magic(saved):
    H, blob, path = saved
    blob[0:1] = b"X"
    with pytest.raises(ValueError, match="magic"):
        _load_bytes(path, blob)
    with pytest.raises(ValueError, match="magic"):
        _load_bytes(path, b"PK\x03\x04" + bytes(100))


def test_swapped_scalar_size(saved):
    # A float64 payload read as float32 (and back) must be refused, not misread.
    H, blob, path = saved
    blob[16:20] = (12 - H.dtype.itemsize).to_bytes(4, "little")
    with pytest.raises(ValueError, match="corrupted"):
        _load_bytes(path, blob)


def test_kind_mismatch(saved):
    H, blob, path = saved
    hss = isinstance(H, hsslin.HSSMatrix)
    impls = hsslin._hierarchical._HODLR if hss else hsslin._hierarchical._HSS
    with pytest.raises(ValueError, match="expected a " + ("HODLRMatrix" if hss else "HSSMatrix")):
        impls[H.dtype].deserialize(bytes(blob))
    # The header's kind field is outside the checksum: a file relabelled as the
    # other kind reaches the other parser, which must refuse its payload.
    blob[12:16] = (2 if hss else 1).to_bytes(4, "little")
    with pytest.raises(ValueError):
        _load_bytes(path, blob)


def test_pickle_of_corrupted_bytes_raises(saved):
    H, blob, _ = saved
    blob[HEADER + 3] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        hsslin._hierarchical._from_bytes(bytes(blob))


_FUZZ = r"""
import sys, random, numpy as np, hsslin
sys.path.insert(0, {tests!r})
from test_binding_contract import _with_checksum, HEADER, build, CLASSES
from conftest import make_matrix
rng = random.Random(0)
outcomes = {{"ValueError": 0, "loaded": 0}}
for cls in CLASSES:
    for dtype in (np.float32, np.float64):
        H = build(cls, make_matrix("cauchy", 60, 45, dtype), tol=1e-4)
        good = H.to_bytes()
        for trial in range({trials}):
            blob = bytearray(good)
            how = trial % 3
            if how == 0:  # overwrite a few payload bytes (hits shapes and counts)
                for _ in range(rng.randint(1, 4)):
                    blob[rng.randrange(HEADER, len(blob))] = rng.randrange(256)
            elif how == 1:  # cut the payload short
                del blob[rng.randrange(HEADER, len(blob)):]
            else:  # set one 8-byte field to a huge or negative count
                at = HEADER + 8 * rng.randrange((len(blob) - HEADER) // 8)
                blob[at:at + 8] = rng.choice([2**62, 2**63 - 1, -1 & (2**64 - 1), 10**6]
                                             ).to_bytes(8, "little")
            try:
                G = hsslin._hierarchical._from_bytes(_with_checksum(blob))
            except ValueError:
                outcomes["ValueError"] += 1
                continue
            # Accepted: then it must be a consistent object.
            G.to_dense(); G @ np.ones(G.shape[1], G.dtype)
            outcomes["loaded"] += 1
print(outcomes)
"""


def test_fuzzed_payloads_never_crash():
    """Payloads with valid checksums but corrupted contents raise ValueError or load.

    Runs in a subprocess so that a crash (segfault, abort, bad_alloc) is a test
    failure with its signal, not the end of the test session.
    """
    tests = os.path.dirname(os.path.abspath(__file__))
    proc = run_python(_FUZZ.format(tests=tests, trials=60))
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "ValueError" in proc.stdout


# -- raw C++ classes ------------------------------------------------------------
def _hss_args(A):
    return (A, hsslin._core.HSSOptions())


def _hodlr_args(A):
    options = hsslin._core.HODLROptions()
    options.tol = 1e-6
    return (A, options)


CORE = [("HSSMatrix", _hss_args), ("HODLRMatrix", _hodlr_args)]


@pytest.mark.parametrize("name,args", CORE)
def test_core_rejects_wrong_dtype(name, args):
    A = make_matrix("cauchy", 50, 40)
    with pytest.raises(TypeError, match="float64"):
        getattr(hsslin._core, name + "64").compress(*args(A.astype(np.float32)))
    with pytest.raises(TypeError, match="float32"):
        getattr(hsslin._core, name + "32").compress(*args(A))
    with pytest.raises(TypeError):
        getattr(hsslin._core, name + "64").compress(*args(A.astype(np.int64)))


@pytest.mark.parametrize("name,args", CORE)
@pytest.mark.parametrize("layout", ["fortran", "strided", "1d", "3d"])
def test_core_rejects_bad_layout(name, args, layout):
    A = make_matrix("cauchy", 50, 40)
    bad = {
        "fortran": np.asfortranarray(A),
        "strided": A[::2, ::2],
        "1d": A.ravel(),
        "3d": A[None],
    }[layout]
    with pytest.raises(ValueError, match="A"):
        getattr(hsslin._core, name + "64").compress(*args(bad))


_BAD_HSS_OPTIONS = [
    ("tol", 0.0),
    ("tol", float("nan")),
    ("tol", 1.0),
    ("leaf_size", 0),
    ("oversampling", 1),
    ("initial_samples", 0),
    ("max_rank", -1),
]
_BAD_HODLR_OPTIONS = [
    ("tol", 0.0),
    ("rank_decay", 0.0),
    ("rank_decay", float("nan")),
    ("min_rank", 0),
    ("power_iterations", 21),
    ("rank", -3),
]


@pytest.mark.parametrize(
    "options_class,name,value",
    [("HSSOptions", *bad) for bad in _BAD_HSS_OPTIONS]
    + [("HODLROptions", *bad) for bad in _BAD_HODLR_OPTIONS],
)
def test_core_options_checked(options_class, name, value):
    options = getattr(hsslin._core, options_class)()
    with pytest.raises(ValueError, match=name):
        setattr(options, name, value)


def test_core_hodlr_options_take_a_tolerance_or_a_schedule():
    options = hsslin._core.HODLROptions()
    options.tol = 1e-6
    with pytest.raises(ValueError, match="rank"):
        options.rank = 4
    options = hsslin._core.HODLROptions()
    assert options.tol is None and options.rank is None
    H = hsslin._core.HODLRMatrix64.compress(make_matrix("cauchy", 50, 40), options)
    assert H.tol == hsslin._core.HODLROptions.default_tol


@pytest.mark.parametrize(
    "method,options",
    [
        (hsslin.HSSMatrix.from_dense, hsslin._core.HSSOptions()),
        (hsslin.HODLRMatrix.from_dense, hsslin._core.HODLROptions()),
    ],
)
def test_signature_defaults_are_the_cores(method, options):
    # The options, their ranges and defaults are written once, in options.hpp.
    import inspect

    for name, parameter in inspect.signature(method).parameters.items():
        if parameter.default is not inspect.Parameter.empty and hasattr(options, name):
            assert parameter.default == getattr(options, name), name


def test_core_apply_checks(operator):
    H, _ = operator
    impl = H._impl
    other = np.float64 if H.dtype == np.float32 else np.float32
    with pytest.raises(TypeError):
        impl.apply(np.ones(70, other), False)
    with pytest.raises(ValueError):
        impl.apply(np.ones(71, H.dtype), False)
    with pytest.raises(ValueError):
        impl.apply(np.ones(140, H.dtype)[::2], False)
    with pytest.raises(ValueError):
        impl.apply(np.ones((140, 6), H.dtype)[::2, ::2], False)
    with pytest.raises(ValueError):
        impl.apply(np.ones((70, 2, 2), H.dtype), False)
    with pytest.raises(ValueError):
        impl.apply(np.ones(70, H.dtype), True)  # transpose needs 90 rows


def test_core_hodlr_from_parts_checks():
    H = build(hsslin.HODLRMatrix, make_matrix("cauchy", 70, 50), rank=5)
    core = hsslin._core.HODLRMatrix64
    parts = H.parts()
    args = dict(rows=70, cols=50, levels=H.levels, rank_decay=0.5, leaf_size=16, error=0.0)
    rebuilt = core.from_parts(parts=parts, **args)
    assert np.array_equal(rebuilt.to_dense(False), H.to_dense())
    with pytest.raises(ValueError, match="nodes"):
        core.from_parts(parts=parts[:-1], **args)
    bad = [dict(p) for p in parts]
    bad[-1]["D"] = bad[-1]["D"][:, :-1]
    with pytest.raises(ValueError, match="diagonal block"):
        core.from_parts(parts=bad, **args)
    bad = [dict(p) for p in parts]
    blk = dict(bad[0]["B12"])
    blk["U"] = blk["U"][:-1]
    bad[0]["B12"] = blk
    with pytest.raises(ValueError, match="B12"):
        core.from_parts(parts=bad, **args)
    with pytest.raises(TypeError):
        core.from_parts(
            parts=[
                {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v for k, v in p.items()}
                for p in parts
            ],
            **args,
        )


# -- SIMD builds ----------------------------------------------------------------
_SIMD_SCRIPT = r"""
import sys, json, numpy as np, hsslin
sys.path.insert(0, {tests!r})
from conftest import make_matrix
out = {{"simd": hsslin.simd_path(), "results": {{}}}}
x = np.random.default_rng(0).standard_normal(257)
for cls in (hsslin.HSSMatrix, hsslin.HODLRMatrix):
    for dtype in ("float32", "float64"):
        A = make_matrix("gaussian", 300, 257, dtype)
        H = cls.from_dense(A, tol=1e-4 if dtype == "float32" else 1e-8, leaf_size=32)
        key = cls.__name__ + "-" + dtype
        np.save({outdir!r} + "/" + key + "-dense.npy", H.to_dense())
        np.save({outdir!r} + "/" + key + "-y.npy", H @ x.astype(dtype))
        out["results"][key] = [r.tolist() for r in H.ranks]
print(json.dumps(out))
"""


def _simd_run(path: str, outdir) -> dict:
    tests = os.path.dirname(os.path.abspath(__file__))
    proc = run_python(_SIMD_SCRIPT.format(tests=tests, outdir=str(outdir)), HSSLIN_SIMD=path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_simd_generic_selected(tmp_path):
    out = _simd_run("generic", tmp_path)
    assert out["simd"] == "generic"


def test_simd_invalid_value_refused():
    proc = run_python("import hsslin", HSSLIN_SIMD="sse9")
    assert proc.returncode != 0 and "HSSLIN_SIMD" in proc.stderr


def test_simd_builds_agree(tmp_path):
    import importlib.util

    from hsslin._loader import _cpu_has_avx2

    # Skip only when the AVX2 build cannot run here; if it is built and the CPU
    # supports it, any failure to import it is a test failure.
    if importlib.util.find_spec("hsslin._core_avx2") is None:
        pytest.skip("hsslin._core_avx2 is not built")
    if not _cpu_has_avx2():
        pytest.skip("this CPU lacks AVX2/FMA/F16C")
    (tmp_path / "generic").mkdir()
    (tmp_path / "avx2").mkdir()
    gen = _simd_run("generic", tmp_path / "generic")
    avx = _simd_run("avx2", tmp_path / "avx2")
    assert gen["simd"] == "generic" and avx["simd"] == "avx2"
    for key, ranks in gen["results"].items():
        dtype = np.float32 if "float32" in key else np.float64
        # Same inputs, same algorithm: only FMA/vector rounding differs. A rank
        # decided differently would show up here first, with its level.
        assert avx["results"][key] == ranks, key
        Dg = np.load(tmp_path / "generic" / f"{key}-dense.npy")
        Da = np.load(tmp_path / "avx2" / f"{key}-dense.npy")
        assert rel_fro_error(Dg, Da) <= rounding_floor(dtype, *Dg.shape), key
        yg = np.load(tmp_path / "generic" / f"{key}-y.npy")
        ya = np.load(tmp_path / "avx2" / f"{key}-y.npy")
        x = np.random.default_rng(0).standard_normal(257).astype(dtype)
        assert_product_close(ya, Dg, x, dtype, key)
        assert_product_close(yg, Dg, x, dtype, key)
