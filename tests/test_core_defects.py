"""Regression tests for the C++ defects of issue 10.

Scales, files, RCM, threads, borrowed CSR arrays, integer options, misaligned
arrays, the float64 copy of a float32 HSS matrix, and the size queries.

Each test failed on the main branch the issue was filed against; the comment
on each says how.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import hsslin
from conftest import (
    assert_product_close,
    hodlr_error_bound,
    hss_error_bound,
    make_matrix,
    rel_fro_error,
    rounding_floor,
    run_python,
)
from hsslin import _core

HEADER = 40  # magic, version, kind, scalar size, reserved, length, checksum


# -- 2: tiny and huge magnitudes ---------------------------------------------------
# main: float32 * 1e-25 and float64 * 1e-170 at tol 1e-4 had a true error of
# 0.5-0.7 with error_estimate 0; float32 * 1e19 gave HODLR non-finite entries.


def _scaled_error(D, A, k):
    """||D - A|| / ||A|| after multiplying both by 2^-k (exact), in float64."""
    return rel_fro_error(np.ldexp(A.astype(np.float64), -k), np.ldexp(D.astype(np.float64), -k))


def _exact_scales(A):
    """Exponents k for which 2^k A is exact and its dense form can be multiplied out.

    Exact: no entry falls below the normal range. Multiplied out: an entry is a
    sum of up to max(m, n) products of factors, each at most a few times the
    largest entry, so log2(max(m, n)) + 4 bits of headroom stay below overflow.
    The range reaches far outside the one where sums of squares are safe
    (float32: |k| > 32, float64: |k| > 256).
    """
    info = np.finfo(A.dtype)
    smallest = np.frexp(np.abs(A[A != 0]).min())[1]  # |a| in [2^(e-1), 2^e)
    largest = np.frexp(np.abs(A).max())[1]
    headroom = int(np.ceil(np.log2(max(A.shape)))) + 4
    return st.integers(int(info.minexp - smallest + 1), int(info.maxexp - largest - headroom))


@settings(max_examples=25, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_power_of_two_scale_changes_nothing(data, dtype):
    # Scaling by a power of two is exact, so the HSS form of 2^k A is 2^k
    # times that of A (sampling, pivoted QR and the least-squares couplings
    # commute with it): the same ranks and error estimate, bit for bit. Its
    # dense form agrees to rounding only: multiplying the factors out can
    # pass through subnormal numbers at tiny scales. HODLR's SVDs divide by
    # the block's largest entry (Eigen's BDCSVD), not a power of two: there
    # the two forms agree to rounding, and so do their (exact) errors, which
    # differ by at most the forms' difference.
    A = make_matrix("laplace", 150, 130, dtype)
    k = data.draw(_exact_scales(A), label="k")
    As = np.ldexp(A, k).astype(dtype)
    assert np.array_equal(np.ldexp(As, -k), A)
    tol = 1e-4
    floor = 2 * rounding_floor(dtype, *A.shape)
    H, Hs = (hsslin.HSSMatrix.from_dense(M, tol=tol, leaf_size=32) for M in (A, As))
    assert Hs.error_estimate == H.error_estimate and Hs.samples == H.samples
    assert [list(r) for r in Hs.ranks] == [list(r) for r in H.ranks]
    assert _scaled_error(Hs.to_dense(), np.ldexp(H.to_dense().astype(np.float64), k), k) <= floor
    for kwargs in ({"rank": 8}, {"tol": tol}):
        G, Gs = (hsslin.HODLRMatrix.from_dense(M, leaf_size=32, **kwargs) for M in (A, As))
        assert np.isfinite(Gs.to_dense()).all()
        assert _scaled_error(Gs.to_dense(), np.ldexp(G.to_dense().astype(np.float64), k), k) <= floor
        assert abs(Gs.error - G.error) <= floor


@pytest.mark.parametrize(
    "dtype,scale", [(np.float32, 1e-25), (np.float64, 1e-170), (np.float32, 1e19), (np.float64, 1e300)]
)
def test_tiny_and_huge_scales(dtype, scale):
    A = (make_matrix("laplace", 400, 400, np.float64) * scale).astype(dtype)
    k = int(np.frexp(scale)[1])
    tol = 1e-4
    H = hsslin.HSSMatrix.from_dense(A, tol=tol)
    err = _scaled_error(H.to_dense(), A, k)
    assert err <= hss_error_bound(tol, dtype, *A.shape)
    assert np.isfinite(H.error_estimate) and H.error_estimate <= hss_error_bound(tol, dtype, *A.shape)
    T = hsslin.HODLRMatrix.from_dense(A, tol=tol)
    assert _scaled_error(T.to_dense(), A, k) <= hodlr_error_bound(tol, dtype, *A.shape)
    G = hsslin.HODLRMatrix.from_dense(A, rank=8)
    D = G.to_dense()
    assert np.isfinite(D).all()
    # The HODLR error is exact (summed block by block): it must be the true one.
    true = _scaled_error(D, A, k)
    assert G.error == pytest.approx(true, rel=1e-3)


# -- 3: every size field is checked before an allocation --------------------------
# main: a `levels` field set to 26 in a 1 kB HSS file allocated gigabytes
# (under a 1.5 GB address-space limit: MemoryError instead of ValueError).

_FUZZ = r"""
import resource, struct, sys, time
import numpy as np
import hsslin
from hsslin import _core

blobs = {}
A = np.add.outer(np.arange(40.0), np.arange(40.0)) / 80 + np.eye(40)
blobs["hss"] = hsslin.HSSMatrix.from_dense(A, tol=1e-6, leaf_size=8).to_bytes()
blobs["hss32"] = hsslin.HSSMatrix.from_dense(A.astype(np.float32), tol=1e-4, leaf_size=8).to_bytes()
blobs["hodlr"] = hsslin.HODLRMatrix.from_dense(A, rank=3, leaf_size=8).to_bytes()
blobs["csr"] = hsslin.CSRMatrix.from_dense(A, density=0.1).to_bytes()
loaders = {"hss": _core.HSSMatrix64, "hss32": _core.HSSMatrix32, "hodlr": _core.HODLRMatrix64,
           "csr": _core.CSRMatrix64}

# From here on the process may take at most 1 GiB more address space.
with open("/proc/self/status") as f:
    vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))

values = [-1, 0, 1, 7, 26, 40, 41, 2**31 - 1, 2**32, 2**40, 2**62, 2**63 - 1, -2**63]
bad = []
for name, blob in blobs.items():
    positions = list(range(40, min(len(blob), 40 + 160), 4))
    for at in positions:
        for v in values:
            for width in (4, 8):
                if at + width > len(blob):
                    continue
                data = bytearray(blob)
                try:
                    data[at:at + width] = v.to_bytes(width, "little", signed=True)
                except OverflowError:
                    continue
                data[32:40] = _core.checksum(bytes(data[40:])).to_bytes(8, "little")
                t = time.perf_counter()
                try:
                    loaders[name].deserialize(bytes(data))
                except ValueError:
                    pass
                except BaseException as exc:  # MemoryError above all
                    bad.append(f"{name} @{at} w{width} = {v}: {type(exc).__name__}: {exc}")
                if time.perf_counter() - t > 1.0:
                    bad.append(f"{name} @{at} w{width} = {v}: took {time.perf_counter() - t:.1f} s")
print("\n".join(bad) if bad else "OK")
"""


def test_corrupted_size_fields_raise_before_allocating():
    proc = run_python(_FUZZ, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "OK", proc.stdout[-3000:]


def test_checksum_matches_header():
    H = hsslin.HSSMatrix.from_dense(np.eye(30) + 0.1)
    blob = H.to_bytes()
    assert struct.unpack_from("<Q", blob, 32)[0] == _core.checksum(blob[HEADER:])


def test_levels_field_beyond_the_shape():
    # A tree deeper than the shape allows (leaves of less than one index) is refused.
    H = hsslin.HSSMatrix.from_dense(np.eye(40) + 0.01, leaf_size=16)
    data = bytearray(H.to_bytes())
    assert struct.unpack_from("<qqi", data, HEADER) == (40, 40, H.levels)
    struct.pack_into("<i", data, HEADER + 16, 7)  # 40 rows: at most 6 levels
    data[32:40] = _core.checksum(bytes(data[HEADER:])).to_bytes(8, "little")
    with pytest.raises(ValueError, match="levels"):
        _core.HSSMatrix64.deserialize(bytes(data))


# -- 4 and 16: RCM in symmetric mode on a non-symmetric pattern --------------------
# main: 107-128 of 300 random cases gave a non-permutation, and AddressSanitizer
# reported a write past the end of a vector in rcm.cpp.


def test_rcm_symmetric_mode_on_nonsymmetric_pattern_is_a_permutation():
    for seed in range(300):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 60))
        P = sp.random(n, n, density=float(rng.uniform(0.02, 0.3)), random_state=seed, format="csr")
        p = hsslin.reverse_cuthill_mckee(P, symmetric_mode=True)
        np.testing.assert_array_equal(np.sort(p), np.arange(n))
        # Not symmetric: ordered on S + S^T, as without symmetric_mode.
        if (P != P.T).nnz:
            np.testing.assert_array_equal(p, hsslin.reverse_cuthill_mckee(P))


def test_rcm_symmetric_mode_keeps_symmetric_patterns():
    rng = np.random.default_rng(3)
    B = sp.random(80, 80, density=0.05, random_state=3, format="csr")
    S = ((B + B.T) != 0).astype(np.float64).tocsr()
    p = hsslin.reverse_cuthill_mckee(S, symmetric_mode=True)
    np.testing.assert_array_equal(np.sort(p), np.arange(80))
    assert hsslin.bandwidth(S, p) <= hsslin.bandwidth(S)
    del rng


# -- 9: thread counts are bounded, and lowering one releases the threads ----------
# main: set_num_threads(100000) was accepted (about 1000 OS threads started,
# then products failed), and no count ever stopped a worker.

_THREADS = r"""
import os
import numpy as np
import hsslin
from hsslin import _core

def tasks():
    return len(os.listdir("/proc/self/task"))

x = np.linspace(0, 1, 2048)
H = hsslin.HSSMatrix.from_dense(np.exp(-np.abs(x[:, None] - x[None, :])), tol=1e-6)
X = np.ones((2048, 32))
hsslin.set_num_threads(1)
H @ X
base = tasks()
top = _core.max_num_threads()
hsslin.set_num_threads(top)
for _ in range(20):
    H @ X
high = tasks()
hsslin.set_num_threads(1)
low = tasks()
hsslin.set_num_threads(2)
H @ X
print(base, top, high, low)
"""


def test_thread_count_bounded_and_released():
    with pytest.raises(ValueError, match="num_threads must be in"):
        hsslin.set_num_threads(100000)
    with pytest.raises(ValueError, match="num_threads"):
        hsslin.set_num_threads(_core.max_num_threads() + 1)
    proc = run_python(_THREADS, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    base, top, high, low = map(int, proc.stdout.split())
    assert top == 4 * os.cpu_count()
    assert base < high <= base + top - 1  # the workers the loops asked for, no more
    assert low == base  # lowering the count joined them


def test_environment_thread_count_is_clamped():
    proc = run_python(
        "import hsslin; from hsslin import _core; print(hsslin.get_num_threads(), _core.max_num_threads())",
        HSSLIN_NUM_THREADS="100000",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got, top = map(int, proc.stdout.split())
    assert got == top


# -- 12: arrays lent to a CSRMatrix cannot be changed under it --------------------
# main: from_scipy borrowed scipy's indices; setting one out of range made the
# next product segfault.

_MUTATE = r"""
import numpy as np, scipy.sparse as sp
from hsslin import CSRMatrix
rng = np.random.default_rng(0)
A = sp.random(300, 200, density=0.1, random_state=0, format="csr", dtype=np.float64)
x = rng.standard_normal(200)
want = A @ x
S = CSRMatrix.from_scipy(A)
T = CSRMatrix((A.data, A.indices, A.indptr), shape=A.shape)
A.indices[:] = 10**6
for M in (S, T):
    got = M @ x
    assert np.allclose(got, want), "product changed"
print("OK")
"""


def test_mutating_borrowed_indices_cannot_crash():
    proc = run_python(_MUTATE, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "OK"


def test_values_still_shared_and_own_indices_still_borrowed():
    A = sp.random(50, 40, density=0.2, random_state=1, format="csr", dtype=np.float64)
    S = hsslin.CSRMatrix.from_scipy(A)
    assert np.shares_memory(S.data, A.data)  # zero copy of the values
    assert not np.shares_memory(S.indices, A.indices)  # the indices are S's own
    B = S.to_scipy()
    R = hsslin.CSRMatrix.from_scipy(B)  # indices owned by an hsslin matrix: shared
    assert np.shares_memory(R.indices, S.indices)
    np.testing.assert_array_equal(R.to_dense(), A.toarray())


# -- 15: integer options are bounded -------------------------------------------------
# main: rank=2**63-1 overflowed llround and built rank-1 blocks silently;
# max_rank=2**63-1 was a signed overflow in hss_compress.cpp.


@pytest.mark.parametrize(
    "cls,kwargs,name",
    [
        (hsslin.HODLRMatrix, {"rank": 2**63 - 1}, "rank"),
        (hsslin.HODLRMatrix, {"rank": 2**41}, "rank"),
        (hsslin.HODLRMatrix, {"rank": 4, "min_rank": 2**63 - 1}, "min_rank"),
        (hsslin.HODLRMatrix, {"tol": 1e-3, "max_rank": 2**63 - 1}, "max_rank"),
        (hsslin.HODLRMatrix, {"rank": 4, "leaf_size": 2**63 - 1}, "leaf_size"),
        (hsslin.HODLRMatrix, {"rank": 4, "power_iterations": 2**40}, "power_iterations"),
        (hsslin.HODLRMatrix, {"rank": 2**64}, "rank"),
        (hsslin.HSSMatrix, {"max_rank": 2**63 - 1}, "max_rank"),
        (hsslin.HSSMatrix, {"leaf_size": 2**64}, "leaf_size"),
        (hsslin.HSSMatrix, {"oversampling": 2**63}, "oversampling"),
        (hsslin.HSSMatrix, {"initial_samples": 2**62}, "initial_samples"),
    ],
)
def test_huge_integer_options_raise(cls, kwargs, name):
    A = make_matrix("cauchy", 100, 100)
    with pytest.raises(ValueError, match=name):
        cls.from_dense(A, **kwargs)


def test_large_rank_means_full_rank():
    A = make_matrix("random", 200, 200)
    for rank in (10**6, 2**40):
        H = hsslin.HODLRMatrix.from_dense(A, rank=rank, leaf_size=32)
        assert H.relative_error(A) <= 1e-12


# -- 18: misaligned arrays never reach the kernels --------------------------------
# main: the core read them as they were (UBSan: misaligned loads in csr.cpp,
# sparse_select.cpp, hodlr_apply.cpp and the sparse-plus product).


def _misaligned(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def test_core_refuses_misaligned_arrays():
    A = make_matrix("cauchy", 64, 64)
    x = np.ones(64)
    H = hsslin.HODLRMatrix.from_dense(A, rank=4, leaf_size=16)
    S = hsslin.CSRMatrix.from_dense(A, density=0.1)
    P = hsslin.SparsePlusHSS.from_dense(A, density=0.1, rank=4, leaf_size=16)
    calls = [
        lambda: H._impl.apply(_misaligned(x), False),
        lambda: _core.HSSMatrix64.compress(_misaligned(A), _core.HSSOptions()),
        lambda: _core.HODLRMatrix64.compress(_misaligned(A), _core.HODLROptions()),
        lambda: S._impl.apply(_misaligned(x), False),
        lambda: _core.top_magnitude(_misaligned(A), 0.1, False),
        lambda: _core.CSRMatrix64(_misaligned(S.data), np.array(S.indices), np.array(S.indptr), S.shape),
        lambda: _core.CSRMatrix64(np.array(S.data), _misaligned(S.indices), np.array(S.indptr), S.shape),
        lambda: _core.CSRMatrix64(np.array(S.data), np.array(S.indices), _misaligned(S.indptr), S.shape),
        lambda: _core.sparse_plus_apply(S._impl, P.H._impl, None, None, _misaligned(x), False),
        lambda: _core.sparse_plus_apply(
            S._impl, P.H._impl, _misaligned(np.arange(64, dtype=np.int32)), None, x, False
        ),
        lambda: _core.reverse_cuthill_mckee(
            _misaligned(np.asarray(S.indptr)), np.array(S.indices), S.shape, False
        ),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="aligned"):
            call()


# -- the float32 HSS tree applies float64 operands through an exact float64 copy ----
# main: TypeError ("cannot yet apply float64 operands") for any float32 HSS with a tree.


@pytest.mark.parametrize("family,shape", [("cauchy", (100, 77)), ("laplace", (130, 130))])
def test_hss_float32_to_float64_is_exact(family, shape):
    K = make_matrix(family, *shape, np.float32)
    H = hsslin.HSSMatrix.from_dense(K, tol=1e-5, leaf_size=16)
    assert H.levels > 0
    W = H._impl.to_float64()
    assert (W.rows, W.cols, W.levels) == (H._impl.rows, H._impl.cols, H._impl.levels)
    for name in ("error_estimate", "samples", "symmetric", "is_dense_fallback", "tol", "leaf_size", "seed"):
        assert getattr(W, name) == getattr(H._impl, name), name
    assert W.level_ranks(False) == H._impl.level_ranks(False)
    assert W.level_ranks(True) == H._impl.level_ranks(True)
    # The stored values are the same numbers; the float32 form multiplies them
    # out in float32, the copy in float64, so the dense forms differ by
    # float32 rounding only.
    D64 = W.to_dense(False)
    assert rel_fro_error(D64, H.to_dense().astype(np.float64)) <= rounding_floor(np.float32, *shape)
    # A float64 operand goes through the copy: float64 accuracy, not float32.
    x = np.random.default_rng(0).standard_normal(shape[1])
    y = H @ x
    assert y.dtype == np.float64
    assert_product_close(y, D64, x, np.float64)


# -- sizes and trees come from the C++ core --------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 300),
    n=st.integers(1, 300),
    leaf=st.integers(1, 400),
    rank=st.integers(1, 80),
    decay=st.sampled_from([0.25, 0.5, 1.0]),
    min_rank=st.integers(1, 6),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_hodlr_nbytes_for_is_what_gets_built(m, n, leaf, rank, decay, min_rank, dtype):
    A = make_matrix("random", m, n, dtype)
    H = hsslin.HODLRMatrix.from_dense(A, rank=rank, rank_decay=decay, min_rank=min_rank, leaf_size=leaf)
    assert hsslin.HODLRMatrix.nbytes_for((m, n), dtype, rank, decay, min_rank, leaf) == H.nbytes


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 200),
    n=st.integers(1, 200),
    rho=st.floats(0, 1, exclude_max=True),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_csr_nbytes_for_is_what_gets_built(m, n, rho, dtype):
    A = make_matrix("random", m, n, dtype)
    S = hsslin.CSRMatrix.from_dense(A, density=rho)
    assert hsslin.CSRMatrix.nbytes_for(m, S.nnz, dtype) == S.nbytes


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 500), n=st.integers(1, 500), leaf=st.integers(1, 600))
def test_cluster_tree_ranges(m, n, leaf):
    levels, ranges = _core.cluster_tree(m, n, leaf)
    A = make_matrix("random", min(m, 60), min(n, 60))
    assert len(ranges) == 2 ** (levels + 1) - 1
    assert ranges[0] == (0, m, 0, n)
    for i in range(2**levels - 1):  # children split their parent, the extra index to the left
        r0, r1, c0, c1 = ranges[i]
        (a0, a1, b0, b1), (d0, d1, e0, e1) = ranges[2 * i + 1], ranges[2 * i + 2]
        assert (a0, d1, b0, e1) == (r0, r1, c0, c1) and a1 == d0 and b1 == e0
        assert a1 - a0 == (r1 - r0 + 1) // 2 and b1 - b0 == (c1 - c0 + 1) // 2

    def largest(nodes):
        return max(max(r1 - r0, c1 - c0) for r0, r1, c0, c1 in nodes)

    assert largest(ranges[2**levels - 1 :]) <= leaf
    if levels:  # the shallowest such tree
        assert largest(ranges[2 ** (levels - 1) - 1 : 2**levels - 1]) > leaf
    if m == A.shape[0] and n == A.shape[1]:  # the tree a matrix is built on
        assert hsslin.HODLRMatrix.from_dense(A, rank=1, leaf_size=leaf).levels == levels


def test_size_queries_refuse_bad_arguments():
    with pytest.raises(ValueError, match="rows and cols"):
        _core.cluster_tree(2**40, 2, 1)
    with pytest.raises(ValueError, match="leaf_size"):
        _core.cluster_tree(10, 10, 0)
    with pytest.raises(ValueError, match="rank"):
        hsslin.HODLRMatrix.nbytes_for((10, 10), np.float64, 0, 0.5, 1, 4)
    with pytest.raises(ValueError, match="nbytes_for"):
        _core.CSRMatrix64.nbytes_for(-1, 3)
