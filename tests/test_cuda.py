"""CUDA products (hsslin.cuda): the device layout everywhere, the device itself where there is one.

Without a GPU (or without the compiled extension) the tests of the device
are skipped and say why; what runs everywhere is the part that decides what
the device computes: the packing of every format into the device layout,
applied by the layout's NumPy specification (hsslin._cuda_layout.apply_layout)
and compared with the CPU products; the plans' race-freedom rules
(check_plan); and every argument check made before a device call.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hsslin
import hsslin.cuda as hc
from conftest import (
    OPERATOR_MAKERS,
    SPIKED_SHAPE,
    assert_product_close,
    dims,
    dtypes,
    leaf_sizes,
    make_matrix,
    spiked_cauchy,
    weight_like,
)
from hsslin import _cuda_layout as layout

M, N = SPIKED_SHAPE
FORMATS = {
    **OPERATOR_MAKERS,
    # A schedule whose ranks exceed what deep blocks can hold: those are kept dense.
    "hodlr-dense-blocks": lambda W: hsslin.HODLRMatrix.from_dense(W, rank=40, rank_decay=1.0, leaf_size=16),
    "sparse+lowrank-H": lambda W: hsslin.SparsePlusHSS(
        hsslin.CSRMatrix.from_dense(W, density=0.05),
        hsslin.LowRankMatrix.from_dense(W, rank=3),
        np.random.default_rng(2).permutation(W.shape[0]),
        None,
    ),
}

_cache: dict = {}


def _operator(name, dtype):
    key = (name, np.dtype(dtype).name)
    if key not in _cache:
        _cache[key] = FORMATS[name](spiked_cauchy(dtype))
    return _cache[key]


def _check_layout(A, rng, columns=(None, 1, 3)):
    """apply_layout(pack(A)) against A's dense matrix, both directions, vectors and blocks."""
    L = layout.pack(A)
    if L.plans is not None:
        for plan in L.plans.values():
            layout.check_plan(plan, L.arena_size)
    D = A.to_dense().astype(np.float64)
    for transpose, G in ((False, D), (True, D.T)):
        for k in columns:
            shape = (G.shape[1],) if k is None else (G.shape[1], k)
            x = rng.standard_normal(shape).astype(A.dtype)
            got = layout.apply_layout(L, x, transpose)
            assert_product_close(got, G, x, A.dtype, f"layout{' transposed' if transpose else ''}, k={k}")


# -- the layout, on every machine --------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FORMATS))
def test_layout_matches_cpu_product(name, dtype, rng):
    _check_layout(_operator(name, dtype), rng)


@given(m=dims(160), n=dims(160), leaf=leaf_sizes(), dtype=dtypes, hss=st.booleans(), seed=st.integers(0, 3))
def test_layout_hierarchical_shapes(m, n, leaf, dtype, hss, seed):
    # Square, rectangular, tiny, not powers of two, leaf larger than the matrix.
    W = make_matrix("laplace", m, n, dtype, seed=seed)
    if hss:
        A = hsslin.HSSMatrix.from_dense(W, tol=1e-4, leaf_size=leaf, seed=seed)
    else:
        A = hsslin.HODLRMatrix.from_dense(W, rank=3, leaf_size=leaf, seed=seed)
    _check_layout(A, np.random.default_rng(seed), columns=(None, 2))


@given(
    m=dims(90), n=dims(90), dtype=dtypes, density=st.sampled_from([0.0, 0.03, 0.3]), seed=st.integers(0, 3)
)
def test_layout_sparse_plus_shapes(m, n, dtype, density, seed):
    W = weight_like(m, n, dtype, seed)
    A = hsslin.SparsePlusHSS.from_dense(W, density=density, rank=2, leaf_size=8, seed=seed)
    _check_layout(A, np.random.default_rng(seed), columns=(None, 2))


def test_layout_stores_each_factor_once():
    A = _operator("hss", np.float64)
    L = layout.pack(A)
    stored = sum(F.size for _, F in L.arena_parts)
    assert stored == sum(F.size for node in A.parts() for F in node.values())
    offsets = [off for off, _ in L.arena_parts]
    assert all(off % (layout.ALIGN_BYTES // 8) == 0 for off in offsets)
    ends = sorted((off, off + F.size) for off, F in L.arena_parts)
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:]))
    assert L.nbytes >= stored * 8


def test_hss_parts_rebuild_the_matrix():
    # The accessor the layout reads: D at leaves, nested bases and couplings above.
    A = _operator("hss", np.float64)
    parts = A.parts()
    assert len(parts) == 2 ** (A.levels + 1) - 1
    first = 2**A.levels - 1
    assert all(p["D"].size == 0 for p in parts[:first]) and all(p["B12"].size == 0 for p in parts[first:])
    assert parts[0]["U"].size == 0 and parts[0]["V"].size == 0


def test_check_plan_finds_a_race():
    L = layout.pack(_operator("hss", np.float64))
    plan = L.plans[False]
    # Make the first stage's first term read the rows its own segment writes.
    bad = layout.Plan(**{**plan.__dict__, "term_buf": plan.term_buf.copy(), "term_off": plan.term_off.copy()})
    s = int(plan.stage_ptr[0])
    j = int(plan.seg_term[s])
    bad.term_buf[j] = plan.seg_buf[s]
    bad.term_off[j] = plan.seg_off[s]
    bad.term_w[j] = 1
    with pytest.raises(AssertionError):
        layout.check_plan(bad, L.arena_size)


def test_pack_rejects_what_the_device_cannot_run():
    W = spiked_cauchy(np.float64)
    S = hsslin.CSRMatrix.from_dense(W, density=0.1)
    with pytest.raises(TypeError, match="CSRMatrix"):
        layout.pack(hsslin.SparsePlusHSS(S, hsslin.CSRMatrix.from_dense(W, density=0.2)))
    with pytest.raises(TypeError, match="base operator"):
        layout.pack(S.T)
    with pytest.raises(TypeError):
        layout.pack(np.eye(3))


# -- availability and argument checks, on every machine -----------------------------------
def test_availability_is_consistent():
    info = hc.runtime_info()
    assert hc.is_available() == (hc.unavailable_reason() is None)
    if not info["built"]:
        assert "built without" in hc.unavailable_reason()
        assert hc.device_count() == 0
    elif info["error"] or info["count"] == 0:
        assert not hc.is_available() and hc.device_count() == 0
        assert info["message"] in hc.unavailable_reason() or info["count"] == 0
    else:
        assert hc.is_available() and hc.device_count() == info["count"]


def test_import_without_the_extension():
    # `import hsslin` never needs CUDA: with hsslin._cuda unimportable the
    # package imports and reports why products cannot run.
    code = (
        "import sys; sys.modules['hsslin._cuda'] = None\n"
        "import hsslin, numpy as np\n"
        "assert not hsslin.cuda.is_available()\n"
        "print(hsslin.cuda.unavailable_reason())\n"
        "L = hsslin.LowRankMatrix(np.ones((3, 1)), np.ones((2, 1)))\n"
        "try:\n"
        "    L.to('cuda')\n"
        "except RuntimeError as e:\n"
        "    print('RuntimeError', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "built without its CUDA extension" in out and "RuntimeError CUDA products are not available" in out


@pytest.mark.skipif(hc.is_available(), reason="checks the no-device state; this machine has a device")
def test_no_device_gives_a_clear_error():
    A = _operator("lowrank", np.float32)
    with pytest.raises(RuntimeError, match="not available: " + hc.unavailable_reason()[:20]):
        A.to("cuda")
    with pytest.raises(RuntimeError, match="not available"):
        hc.DeviceOperator(A.T)


def test_arguments_checked_before_the_device():
    A = _operator("lowrank", np.float32)
    with pytest.raises(TypeError, match="hsslin operator"):
        hc.DeviceOperator(np.eye(3))
    with pytest.raises(ValueError, match="device must be"):
        hc.DeviceOperator(A, device="tpu")
    with pytest.raises(ValueError, match="device must be"):
        A.to("tpu:0")
    with pytest.raises(ValueError, match="non-negative"):
        hc.DeviceOperator(A, device=-1)
    with pytest.raises(ValueError, match="path must be"):
        hc.DeviceOperator(A, path="fast")
    with pytest.raises(TypeError, match="CSRMatrix"):
        W = spiked_cauchy(np.float32)
        hc.DeviceOperator(
            hsslin.SparsePlusHSS(hsslin.CSRMatrix.from_dense(W, 0.1), hsslin.CSRMatrix.from_dense(W, 0.2))
        )
    assert A.to("cpu") is A and A.T.to("cpu").T is A


def test_device_index():
    assert (
        hc.device_index("cuda") == 0 and hc.device_index("cuda:3") == 3 and hc.device_index(np.int64(2)) == 2
    )
    for bad in ("cpu", "cuda:x", "cuda:-1", True, 1.5):
        with pytest.raises(ValueError):
            hc.device_index(bad)


F32 = np.dtype(np.float32)


@pytest.mark.parametrize(
    "info, error, words",
    [
        (hc.OperandInfo("ndarray", "cpu", None, F32, (4,)), TypeError, "torch tensor or a CuPy array"),
        (hc.OperandInfo("torch", "cpu", None, F32, (4,)), TypeError, "torch array on cpu"),
        (
            hc.OperandInfo("torch", "cuda", 1, F32, (4,)),
            ValueError,
            "on cuda:1, but the operator is on cuda:0",
        ),
        (hc.OperandInfo("cupy", "cuda", 0, np.dtype(np.float64), (4,)), TypeError, "dtype float64"),
        (hc.OperandInfo("torch", "cuda", 0, "torch.float16", (4,)), TypeError, "dtype torch.float16"),
        (hc.OperandInfo("torch", "cuda", 0, F32, (5,)), ValueError, r"shape \(5,\), expected \(4,\)"),
        (hc.OperandInfo("torch", "cuda", 0, F32, (4, 2, 1)), ValueError, "shape"),
    ],
)
def test_operand_errors(info, error, words):
    with pytest.raises(error, match=words):
        hc.check_operand(info, 4, F32, 0)


def test_operand_info_of_a_cpu_tensor():
    torch = pytest.importorskip("torch")
    lib, info = hc.operand_info(torch.ones(4))
    assert lib is not None and info == hc.OperandInfo("torch", "cpu", None, F32, (4,))
    with pytest.raises(TypeError, match="torch array on cpu"):
        hc.check_operand(info, 4, F32, 0)
    _, info = hc.operand_info(np.ones(4))
    assert info.library == "ndarray"


# -- the device ---------------------------------------------------------------------------
requires_gpu = pytest.mark.skipif(not hc.is_available(), reason=f"no CUDA device: {hc.unavailable_reason()}")


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch has no CUDA support")
    return torch


def _to_host(y):
    return y.cpu().numpy() if hasattr(y, "cpu") else y.get()


@requires_gpu
@pytest.mark.parametrize("path", ["fused", "cublas"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FORMATS))
def test_device_matches_cpu(name, dtype, path):
    torch = _torch_cuda()
    A = _operator(name, dtype)
    D = A.to_dense().astype(np.float64)
    dev = hc.DeviceOperator(A, path=path)
    rng = np.random.default_rng(3)
    for op, G in ((dev, D), (dev.T, D.T)):
        for shape in ((G.shape[1],), (G.shape[1], 1), (G.shape[1], 5), (G.shape[1], 33)):
            x = rng.standard_normal(shape).astype(dtype)
            xt = torch.from_numpy(x).cuda()
            for operand in (xt,) if xt.dim() == 1 else (xt, xt.T.contiguous().T):  # row-, column-major
                y = op @ operand
                assert isinstance(y, torch.Tensor) and y.device == xt.device and y.dtype == xt.dtype
                assert_product_close(_to_host(y), G, x, dtype, f"{name} {path} {shape}")
        X = rng.standard_normal((4, G.shape[0])).astype(dtype)
        assert_product_close(_to_host(torch.from_numpy(X).cuda() @ op).T, G.T, X.T, dtype, "x @ D")


@requires_gpu
def test_device_strided_operand_and_matvec_contract():
    torch = _torch_cuda()
    A = _operator("sparse+hss-both", np.float32)
    dev = A.to("cuda")
    D = A.to_dense().astype(np.float64)
    big = torch.randn(N, 12, device="cuda")
    x = big[:, ::3]  # strided, neither row- nor column-major
    assert_product_close(_to_host(dev @ x), D, x.cpu().numpy(), np.float32, "strided")
    with pytest.raises(ValueError, match="matmat"):
        dev.matvec(big)
    assert_product_close(_to_host(dev.rmatvec(torch.ones(M, device="cuda"))), D.T, np.ones(M), np.float32)


@requires_gpu
def test_device_cupy():
    cupy = pytest.importorskip("cupy")
    A = _operator("hodlr", np.float64)
    dev = hc.DeviceOperator(A)
    x = np.random.default_rng(0).standard_normal((N, 3))
    y = dev @ cupy.asarray(x)
    assert isinstance(y, cupy.ndarray)
    assert_product_close(y.get(), A.to_dense(), x, np.float64, "cupy")


@requires_gpu
def test_device_streams():
    torch = _torch_cuda()
    A = _operator("sparse+hodlr+rcm", np.float32)
    dev = A.to("cuda")
    D = A.to_dense().astype(np.float64)
    streams = [torch.cuda.Stream() for _ in range(4)]
    xs = [torch.randn(N, 64 * (i % 2) + 1, device="cuda") for i in range(len(streams))]
    torch.cuda.synchronize()
    ys = []
    for _ in range(20):  # many products in flight on every stream at once
        for s, x in zip(streams, xs):
            with torch.cuda.stream(s):
                ys.append((s, x, dev @ x))
    torch.cuda.synchronize()
    for _, x, y in ys:
        assert_product_close(_to_host(y), D, x.cpu().numpy(), np.float32, "streams")


@requires_gpu
def test_device_bad_inputs():
    torch = _torch_cuda()
    dev = _operator("hss", np.float32).to("cuda")
    with pytest.raises(TypeError, match="on cpu"):
        dev @ torch.ones(N)
    with pytest.raises(TypeError, match="NumPy|torch tensor or a CuPy"):
        dev @ np.ones(N, np.float32)
    with pytest.raises(TypeError, match="dtype"):
        dev @ torch.ones(N, dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match="shape"):
        dev @ torch.ones(N + 1, device="cuda")
    with pytest.raises(ValueError, match="does not exist"):
        hc.DeviceOperator(_operator("hss", np.float32), device=hc.device_count())
    if hc.device_count() > 1:
        with pytest.raises(ValueError, match="cuda:1"):
            dev @ torch.ones(N, device="cuda:1")


@requires_gpu
def test_device_upload_over_4_gib():
    # 9.7 GB of float32 factors: arena offsets beyond 2^31 elements.
    torch = _torch_cuda()
    m, r, n = (1 << 22) + 3, 576, 1000
    need = m * r * 4 + (1 << 30)
    if torch.cuda.mem_get_info()[0] < need:
        pytest.skip(f"needs {need / 2**30:.1f} GiB of free device memory")
    rng = np.random.default_rng(0)
    U = np.empty((m, r), np.float32)
    for i in range(0, m, 1 << 18):  # filled in chunks: no float64 temporary of 19 GB
        U[i : i + (1 << 18)] = rng.standard_normal((min(1 << 18, m - i), r), dtype=np.float32)
    V = rng.standard_normal((n, r)).astype(np.float32)
    A = hsslin.LowRankMatrix(U, V)
    x = rng.standard_normal(n).astype(np.float32)
    t = V.T.astype(np.float64) @ x
    t_abs = np.abs(V.T.astype(np.float64)) @ np.abs(x)
    rows = np.r_[0:5, m // 2 : m // 2 + 5, m - 5 : m]  # the last ones lie past 2^31 elements
    Ur = U[rows].astype(np.float64)
    ref = Ur @ t
    # Componentwise: the rounding of t = V^T x (n terms) carried through U,
    # and that of U t (r terms), each within 8 eps sqrt(terms) (conftest.product_bound's model).
    eps = np.finfo(np.float32).eps
    bound = 8 * eps * (np.sqrt(r) * np.abs(Ur) @ np.abs(t) + np.sqrt(n) * np.abs(Ur) @ t_abs)
    for path in ("fused", "cublas"):
        dev = hc.DeviceOperator(A, path=path)
        assert dev.nbytes >= U.nbytes
        y = _to_host(dev @ torch.from_numpy(x).cuda())
        assert np.all(np.abs(y[rows].astype(np.float64) - ref) <= bound), path
        del dev


# -- the torch adapter: HSSLinear on a CUDA input ----------------------------------------------
def _compressed_layer():
    torch = pytest.importorskip("torch")
    from hsslin.torch import HSSLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(N, M)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(spiked_cauchy(np.float32)))
    return torch, HSSLinear.from_linear(linear, "hodlr", rank=4, leaf_size=16)


def test_layer_without_device_products_keeps_the_host_path():
    torch, layer = _compressed_layer()
    if hc.is_available():
        pytest.skip("checks the no-device state; this machine has a device")
    # No extension or no device: nothing is uploaded, and the answer is cached per operator.
    assert layer._on_device(layer.operator, torch.device("cuda:0")) is None
    assert layer._device_cache[("cuda:0", layer.operator.dtype)][0] is layer.operator
    layer.to_trainable().to_inference()
    assert layer._device_cache == {}


@requires_gpu
def test_layer_on_cuda_runs_the_device_kernels():
    torch = _torch_cuda()
    _, layer = _compressed_layer()
    x = torch.randn(2, 7, N)
    with torch.no_grad():
        layer.cuda()
        y = layer(x.cuda())
    assert y.device.type == "cuda" and y.dtype == x.dtype
    D = layer._device_cache[("cuda:0", layer.operator.dtype)][1]
    assert isinstance(D, hc.DeviceOperator)
    W = layer.operator.to_dense().astype(np.float64)
    Y = _to_host(y - layer.bias).reshape(-1, M).T  # W x within the device product's rounding
    assert_product_close(Y, W, x.reshape(-1, N).numpy().T, np.float32, "HSSLinear on CUDA")
