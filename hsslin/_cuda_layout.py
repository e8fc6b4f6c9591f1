"""The device layout of an hsslin operator: what :mod:`hsslin.cuda` uploads (no CUDA here).

An operator becomes ``y = S x + P_r^T H P_c x`` with every part optional:

- **arena**: every dense factor of H stored once, as the C-ordered array its
  public accessor returns (HODLR and HSS ``parts()``, LowRankMatrix ``U`` and
  ``V``), each starting on a 256-byte boundary;
- **plans**, one for ``H @ x`` and one for ``H.T @ x``: a list of *stages* run
  in order. A stage is a set of *segments* that may run at once. A segment
  adds the sum of its *terms* to ``out[o : o + len]`` (all k columns), where
  out is the plan's OUTPUT or its SCRATCH buffer; a term is one small dense
  product ``G @ inp[s : s + w]`` with G a ``len x w`` block of one factor F or
  of its transpose, read straight from the arena::

      G[i, j] = arena[a + i * ld + j]     (trans = 0: a block of F)
      G[i, j] = arena[a + j * ld + i]     (trans = 1: a block of F^T)

  OUTPUT and SCRATCH start at zero; no stage reads rows that it writes, and
  the segments of one stage write disjoint rows (:func:`check_plan` checks
  both), so a device may run a stage's terms in any order, split them, and
  add partial sums atomically, or run one batched GEMM per term position;
- **S**: CSR values, int32 column indices, int64 row pointers, as
  :class:`CSRMatrix` exposes them;
- **row_perm, col_perm** (int32) and their inverses: the plan's operand is
  ``x[col_perm]`` and its result lands at ``y[row_perm]`` (transposed: the
  roles swap).

:func:`apply_layout` is the executable specification of that layout: NumPy,
reading the same arrays in the same order of stages as the device does.
tests/test_cuda.py checks it against the CPU products of every format, so the
packing is verified on machines without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._hierarchical import HODLRMatrix, HSSMatrix
from ._lowrank import LowRankMatrix, SparsePlusLowRank
from ._operator import TransposedOperator
from ._sparse import CSRMatrix
from ._sparse_plus import PERMUTATION_DTYPE, SparsePlusHSS

INPUT, OUTPUT, SCRATCH = 0, 1, 2  # buffer numbers a plan names
ALIGN_BYTES = 256  # every factor starts on this boundary in the arena


@dataclass
class Plan:
    """One product (``H @ x`` or ``H.T @ x``) as stages of segments of terms (see the module docstring).

    Every array is int64 except the int32 buffer numbers and the int8
    transpose flags; segment s of stage t is ``stage_ptr[t] <= s <
    stage_ptr[t + 1]`` and owns terms ``seg_term[s] <= j < seg_term[s + 1]``.
    """

    rows_in: int
    rows_out: int
    scratch: int  # SCRATCH rows per column
    stage_ptr: np.ndarray
    seg_buf: np.ndarray
    seg_off: np.ndarray
    seg_len: np.ndarray
    seg_term: np.ndarray
    term_a: np.ndarray
    term_ld: np.ndarray
    term_trans: np.ndarray
    term_w: np.ndarray
    term_buf: np.ndarray
    term_off: np.ndarray

    @property
    def stages(self) -> int:
        return len(self.stage_ptr) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        """The plan's arrays by name (what the device module uploads)."""
        return {name: getattr(self, name) for name in _PLAN_ARRAYS}

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays().values()))


_PLAN_ARRAYS = (
    "stage_ptr",
    "seg_buf",
    "seg_off",
    "seg_len",
    "seg_term",
    "term_a",
    "term_ld",
    "term_trans",
    "term_w",
    "term_buf",
    "term_off",
)


class _PlanBuilder:
    def __init__(self, rows_in: int, rows_out: int, scratch: int):
        self.rows_in, self.rows_out, self.scratch = rows_in, rows_out, scratch
        self.stage_ptr = [0]
        self.segs: list[tuple[int, int, int, int]] = []  # buf, off, len, first term
        self.terms: list[tuple[int, int, int, int, int, int]] = []  # a, ld, trans, w, buf, off

    def segment(self, buf: int, off: int, length: int, terms) -> None:
        """Adds a segment with the terms (a, ld, trans, w, in_buf, in_off) whose w > 0."""
        terms = [t for t in terms if t[3] > 0]
        if length == 0 or not terms:  # nothing to add to rows that start at zero
            return
        self.segs.append((buf, off, length, len(self.terms)))
        self.terms.extend(terms)

    def end_stage(self) -> None:
        if len(self.segs) > self.stage_ptr[-1]:
            self.stage_ptr.append(len(self.segs))

    def build(self) -> Plan:
        self.end_stage()
        segs = np.array(self.segs, dtype=np.int64).reshape(-1, 4)
        terms = np.array(self.terms, dtype=np.int64).reshape(-1, 6)
        return Plan(
            rows_in=self.rows_in,
            rows_out=self.rows_out,
            scratch=self.scratch,
            stage_ptr=np.array(self.stage_ptr, dtype=np.int64),
            seg_buf=segs[:, 0].astype(np.int32),
            seg_off=segs[:, 1].copy(),
            seg_len=segs[:, 2].copy(),
            seg_term=np.append(segs[:, 3], len(self.terms)).astype(np.int64),
            term_a=terms[:, 0].copy(),
            term_ld=terms[:, 1].copy(),
            term_trans=terms[:, 2].astype(np.int8),
            term_w=terms[:, 3].copy(),
            term_buf=terms[:, 4].astype(np.int32),
            term_off=terms[:, 5].copy(),
        )


class _Arena:
    """Factors placed at aligned offsets (in elements); the host arrays are kept, not copied."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.align = max(1, ALIGN_BYTES // self.dtype.itemsize)
        self.parts: list[tuple[int, np.ndarray]] = []
        self.size = 0

    def add(self, F: np.ndarray) -> int:
        F = np.ascontiguousarray(F, dtype=self.dtype)
        offset = self.size
        if F.size:
            self.parts.append((offset, F))
            self.size += -(-F.size // self.align) * self.align
        return offset


# -- term helpers: G as a block of a C-ordered factor F at arena offset `base` ------------
def _block(base: int, F: np.ndarray, row0: int, col0: int, w: int, buf: int, off: int):
    """G = F[row0 : row0 + len, col0 : col0 + w] (len set by the segment)."""
    ld = F.shape[1]
    return (base + row0 * ld + col0, ld, 0, w, buf, off)


def _block_t(base: int, F: np.ndarray, row0: int, col0: int, w: int, buf: int, off: int):
    """G = F[row0 : row0 + w, col0 : col0 + len]^T."""
    ld = F.shape[1]
    return (base + row0 * ld + col0, ld, 1, w, buf, off)


def _tree_ranges(leaf_shapes: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """(row_begin, row_end, col_begin, col_end) per heap-ordered node, from the leaves' block shapes.

    The tree is complete, so the leaves are the last len(leaf_shapes) nodes and
    an inner node spans its two children: the ranges follow from the stored
    factors' shapes alone (the core owns the splitting rule).
    """
    leaves = len(leaf_shapes)
    first = leaves - 1
    ranges = [(0, 0, 0, 0)] * (2 * leaves - 1)
    r = c = 0
    for t, (rows, cols) in enumerate(leaf_shapes):
        ranges[first + t] = (r, r + rows, c, c + cols)
        r, c = r + rows, c + cols
    for i in range(first - 1, -1, -1):
        a, b = ranges[2 * i + 1], ranges[2 * i + 2]
        ranges[i] = (a[0], b[1], a[2], b[3])
    return ranges


def _levels_of(count: int) -> int:
    levels = (count + 1).bit_length() - 2
    if count != 2 ** (levels + 1) - 1:
        raise ValueError(f"parts: {count} nodes do not form a complete binary tree")
    return levels


def _ancestors_blocks(leaf: int, transpose: bool):
    """(inner node, 'B12' or 'B21') of every block whose rows (transposed: columns) hold the leaf's.

    B12 of node p spans the rows of its left child and the columns of its right one.
    """
    i = leaf
    while i > 0:
        parent = (i - 1) // 2
        left = i == 2 * parent + 1
        yield parent, ("B12" if left != transpose else "B21")
        i = parent


# -- HODLR ---------------------------------------------------------------------------------
def _pack_hodlr(H: HODLRMatrix, arena: _Arena) -> dict[bool, Plan]:
    parts = H.parts()
    levels = _levels_of(len(parts))
    first = 2**levels - 1
    ranges = _tree_ranges([p["D"].shape for p in parts[first:]])
    D = {i: arena.add(parts[i]["D"]) for i in range(first, len(parts))}
    blocks = {}  # (node, name) -> (kind, rows range, cols range, factors and offsets)
    for i in range(first):
        a, b = ranges[2 * i + 1], ranges[2 * i + 2]
        for name, rows, cols in (("B12", a[0:2], b[2:4]), ("B21", b[0:2], a[2:4])):
            blk = parts[i][name]
            if blk["is_dense"]:
                blocks[i, name] = ("dense", rows, cols, blk["dense"], arena.add(blk["dense"]))
            else:
                U, V = blk["U"], blk["V"]
                blocks[i, name] = ("lowrank", rows, cols, (U, V), (arena.add(U), arena.add(V)))
    m, n = H.shape
    return {t: _hodlr_plan(parts, ranges, first, D, blocks, m, n, t) for t in (False, True)}


def _hodlr_plan(parts, ranges, first, D, blocks, m, n, transpose) -> Plan:
    # Transposed, rows and columns swap: a block's input side is its rows and
    # U takes V's place.
    inp = (lambda r: r[0:2]) if transpose else (lambda r: r[2:4])
    out = (lambda r: r[2:4]) if transpose else (lambda r: r[0:2])
    t_off, scratch = {}, 0
    for key, (kind, _rows, _cols, F, _off) in blocks.items():
        if kind == "lowrank":
            t_off[key] = scratch
            scratch += F[0].shape[1]
    P = _PlanBuilder(m if transpose else n, n if transpose else m, scratch)
    # Stage 1: t = V^T x[cols] for every low-rank block (U^T x[rows] transposed),
    # beside the leaves' D x, so that the stage that reads most bytes runs alone
    # and in parallel.
    for key, (kind, rows, cols, F, off) in blocks.items():
        if kind != "lowrank":
            continue
        (U, V), (u_off, v_off) = F, off
        Fin, fin_off, span = (U, u_off, rows) if transpose else (V, v_off, cols)
        P.segment(
            SCRATCH,
            t_off[key],
            Fin.shape[1],
            [_block_t(fin_off, Fin, 0, 0, span[1] - span[0], INPUT, span[0])],
        )
    for i in range(first, len(parts)):
        Dl = parts[i]["D"]
        (o0, o1), (i0, i1) = out(ranges[i]), inp(ranges[i])
        G = _block_t if transpose else _block
        P.segment(OUTPUT, o0, o1 - o0, [G(D[i], Dl, 0, 0, i1 - i0, INPUT, i0)])
    P.end_stage()
    # Stage 2: each leaf's output rows add U t (V t transposed) or a dense
    # block's product, one term per level above the leaf.
    for i in range(first, len(parts)):
        o0, o1 = out(ranges[i])
        terms = []
        for node, name in _ancestors_blocks(i, transpose):
            kind, rows, cols, F, off = blocks[node, name]
            b_out, b_in = (cols, rows) if transpose else (rows, cols)
            if kind == "lowrank":
                (U, V), (u_off, v_off) = F, off
                Fout, fout_off = (V, v_off) if transpose else (U, u_off)
                terms.append(
                    _block(fout_off, Fout, o0 - b_out[0], 0, Fout.shape[1], SCRATCH, t_off[node, name])
                )
            elif transpose:  # G = dense[:, cols of the leaf]^T
                terms.append(_block_t(off, F, 0, o0 - b_out[0], b_in[1] - b_in[0], INPUT, b_in[0]))
            else:
                terms.append(_block(off, F, o0 - b_out[0], 0, b_in[1] - b_in[0], INPUT, b_in[0]))
        P.segment(OUTPUT, o0, o1 - o0, terms)
    return P.build()


# -- HSS -----------------------------------------------------------------------------------
def _pack_hss(H: HSSMatrix, arena: _Arena) -> dict[bool, Plan]:
    parts = H.parts()
    levels = _levels_of(len(parts))
    first = 2**levels - 1
    ranges = _tree_ranges([p["D"].shape for p in parts[first:]])
    offsets = [{name: arena.add(F) for name, F in node.items()} for node in parts]
    m, n = H.shape
    return {t: _hss_plan(parts, offsets, ranges, levels, m, n, t) for t in (False, True)}


def _hss_plan(parts, offsets, ranges, levels, m, n, transpose) -> Plan:
    # Forward: input basis V, output basis U, couplings B12 (a <- b), B21 (b <- a).
    # Transposed: U and V swap, and the coupling into a is B21^T (into b: B12^T).
    bin_, bout = ("U", "V") if transpose else ("V", "U")
    first = 2**levels - 1
    count = len(parts)
    inp = (lambda r: r[0:2]) if transpose else (lambda r: r[2:4])
    out = (lambda r: r[2:4]) if transpose else (lambda r: r[0:2])
    xo, yo = [0] * count, [0] * count  # xhat and yhat offsets in SCRATCH (heap order: siblings adjacent)
    size = 0
    for i in range(1, count):
        xo[i], size = size, size + parts[i][bin_].shape[1]
    for i in range(1, count):
        yo[i], size = size, size + parts[i][bout].shape[1]
    P = _PlanBuilder(m if transpose else n, n if transpose else m, size)
    G = _block_t if transpose else _block
    # Stage 1: leaves' D x and xhat = V^T x.
    for i in range(first, count):
        (o0, o1), (i0, i1) = out(ranges[i]), inp(ranges[i])
        D, W = parts[i]["D"], parts[i][bin_]
        P.segment(OUTPUT, o0, o1 - o0, [G(offsets[i]["D"], D, 0, 0, i1 - i0, INPUT, i0)])
        if levels > 0:
            P.segment(SCRATCH, xo[i], W.shape[1], [_block_t(offsets[i][bin_], W, 0, 0, i1 - i0, INPUT, i0)])
    P.end_stage()
    if levels == 0:
        return P.build()
    # Upward through the inner levels: xhat_i = W_i^T [xhat_a; xhat_b].
    for level in range(levels - 1, 0, -1):
        for i in range(2**level - 1, 2 ** (level + 1) - 1):
            W, a = parts[i][bin_], 2 * i + 1
            P.segment(
                SCRATCH, xo[i], W.shape[1], [_block_t(offsets[i][bin_], W, 0, 0, W.shape[0], SCRATCH, xo[a])]
            )
        P.end_stage()
    # Coupling and downward pass: yhat_c = B x_other + (rows of c in W_i) yhat_i.
    for level in range(levels):
        for i in range(2**level - 1, 2 ** (level + 1) - 1):
            a, b = 2 * i + 1, 2 * i + 2
            ra = parts[a][bout].shape[1]
            for c, other, row0 in ((a, b, 0), (b, a, ra)):
                if transpose:
                    B = parts[i]["B21" if c == a else "B12"]
                    coupling = _block_t(
                        offsets[i]["B21" if c == a else "B12"], B, 0, 0, B.shape[0], SCRATCH, xo[other]
                    )
                else:
                    B = parts[i]["B12" if c == a else "B21"]
                    coupling = _block(
                        offsets[i]["B12" if c == a else "B21"], B, 0, 0, B.shape[1], SCRATCH, xo[other]
                    )
                terms = [coupling]
                if i > 0:
                    W = parts[i][bout]
                    terms.append(_block(offsets[i][bout], W, row0, 0, W.shape[1], SCRATCH, yo[i]))
                P.segment(SCRATCH, yo[c], parts[c][bout].shape[1], terms)
        P.end_stage()
    # Leaves: y += W_out yhat.
    for i in range(first, count):
        o0, o1 = out(ranges[i])
        W = parts[i][bout]
        P.segment(OUTPUT, o0, o1 - o0, [_block(offsets[i][bout], W, 0, 0, W.shape[1], SCRATCH, yo[i])])
    return P.build()


# -- low rank ------------------------------------------------------------------------------
def _pack_lowrank(L: LowRankMatrix, arena: _Arena) -> dict[bool, Plan]:
    U, V = L.U, L.V
    u_off, v_off = arena.add(U), arena.add(V)
    m, n = L.shape
    plans = {}
    for transpose in (False, True):
        (Fin, fin_off), (Fout, fout_off) = ((U, u_off), (V, v_off)) if transpose else ((V, v_off), (U, u_off))
        r = U.shape[1]
        P = _PlanBuilder(Fin.shape[0], Fout.shape[0], r)
        P.segment(SCRATCH, 0, r, [_block_t(fin_off, Fin, 0, 0, Fin.shape[0], INPUT, 0)])
        P.end_stage()
        P.segment(OUTPUT, 0, Fout.shape[0], [_block(fout_off, Fout, 0, 0, r, SCRATCH, 0)])
        plans[transpose] = P.build()
    return plans


# -- the whole operator --------------------------------------------------------------------
@dataclass
class DeviceLayout:
    """``y = S x + P_r^T H P_c x`` in device form (see the module docstring)."""

    shape: tuple[int, int]
    dtype: np.dtype
    arena_size: int  # elements
    arena_parts: list[tuple[int, np.ndarray]] = field(default_factory=list)
    plans: dict[bool, Plan] | None = None  # H's products; None: no H part
    sparse: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # data, int32 indices, int64 indptr
    row_perm: np.ndarray | None = None
    col_perm: np.ndarray | None = None
    row_inv: np.ndarray | None = None
    col_inv: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Device bytes: arena, both plans, S's arrays, permutations and their inverses."""
        total = self.arena_size * self.dtype.itemsize
        if self.plans is not None:
            total += sum(p.nbytes for p in self.plans.values())
        if self.sparse is not None:
            total += sum(a.nbytes for a in self.sparse)
        for p in (self.row_perm, self.col_perm, self.row_inv, self.col_inv):
            total += 0 if p is None else p.nbytes
        return int(total)

    def arena(self) -> np.ndarray:
        """The arena as one host array (for tests and the reference; the device copies parts)."""
        A = np.zeros(self.arena_size, dtype=self.dtype)
        for offset, F in self.arena_parts:
            A[offset : offset + F.size] = F.ravel()
        return A


def _inverse(perm: np.ndarray | None) -> np.ndarray | None:
    if perm is None:
        return None
    inv = np.empty_like(perm, dtype=PERMUTATION_DTYPE)
    inv[perm] = np.arange(perm.size, dtype=PERMUTATION_DTYPE)
    return inv


def _sparse_arrays(S: CSRMatrix):
    return (np.asarray(S.data), np.asarray(S.indices, dtype=np.int32), np.asarray(S.indptr, dtype=np.int64))


_HIERARCHY_PACKERS = {HODLRMatrix: _pack_hodlr, HSSMatrix: _pack_hss, LowRankMatrix: _pack_lowrank}


def pack(op) -> DeviceLayout:
    """The device layout of an hsslin operator (its transpose: pack ``op.T`` s base and swap plans).

    Raises TypeError for classes (or parts of SparsePlusHSS) the device module
    cannot run.
    """
    if isinstance(op, TransposedOperator):
        raise TypeError("pack the base operator (op.T) and run its transposed plan")
    arena = _Arena(op.dtype)
    S = H = row_perm = col_perm = None
    if type(op) in _HIERARCHY_PACKERS:
        H = op
    elif type(op) is CSRMatrix:
        S = op
    elif type(op) is SparsePlusLowRank:
        S, H = op.S, op.L
    elif type(op) is SparsePlusHSS:
        S, H, row_perm, col_perm = op.S, op.H, op.row_perm, op.col_perm
        if type(H) not in _HIERARCHY_PACKERS:
            raise TypeError(
                f"SparsePlusHSS with an H of type {type(H).__name__} cannot run on the device "
                f"(supported: {', '.join(c.__name__ for c in _HIERARCHY_PACKERS)})"
            )
    else:
        raise TypeError(f"{type(op).__name__} cannot run on the device")
    plans = _HIERARCHY_PACKERS[type(H)](H, arena) if H is not None else None
    return DeviceLayout(
        shape=tuple(int(s) for s in op.shape),
        dtype=np.dtype(op.dtype),
        arena_size=arena.size,
        arena_parts=arena.parts,
        plans=plans,
        sparse=None if S is None else _sparse_arrays(S),
        row_perm=row_perm,
        col_perm=col_perm,
        row_inv=_inverse(row_perm),
        col_inv=_inverse(col_perm),
    )


# -- checks and the reference executor ----------------------------------------------------
def check_plan(plan: Plan, arena_size: int) -> None:
    """Raises AssertionError unless the plan keeps the layout's rules (module docstring)."""
    rows = {INPUT: plan.rows_in, OUTPUT: plan.rows_out, SCRATCH: plan.scratch}
    for t in range(plan.stages):
        written: dict[int, list[tuple[int, int]]] = {OUTPUT: [], SCRATCH: []}
        read: dict[int, list[tuple[int, int]]] = {INPUT: [], OUTPUT: [], SCRATCH: []}
        for s in range(plan.stage_ptr[t], plan.stage_ptr[t + 1]):
            buf, off, length = int(plan.seg_buf[s]), int(plan.seg_off[s]), int(plan.seg_len[s])
            assert buf in (OUTPUT, SCRATCH) and 0 <= off and off + length <= rows[buf] and length > 0
            written[buf].append((off, off + length))
            for j in range(plan.seg_term[s], plan.seg_term[s + 1]):
                a, ld, w = int(plan.term_a[j]), int(plan.term_ld[j]), int(plan.term_w[j])
                ib, io = int(plan.term_buf[j]), int(plan.term_off[j])
                assert w > 0 and 0 <= io and io + w <= rows[ib]
                assert ld >= (w if plan.term_trans[j] == 0 else length)
                last = (
                    a + (length - 1) * ld + w - 1
                    if plan.term_trans[j] == 0
                    else a + (w - 1) * ld + length - 1
                )
                assert 0 <= a and last < arena_size
                read[ib].append((io, io + w))
        for buf, spans in written.items():
            spans.sort()
            assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), "segments overlap"
            for r0, r1 in read[buf]:
                assert all(r1 <= w0 or w1 <= r0 for w0, w1 in spans), "a stage reads rows it writes"


def run_plan(plan: Plan, arena: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Applies a plan to X (rows_in x k) in NumPy: the stages' arithmetic, in the device's order."""
    k = X.shape[1]
    bufs = {
        INPUT: X,
        OUTPUT: np.zeros((plan.rows_out, k), arena.dtype),
        SCRATCH: np.zeros((plan.scratch, k), arena.dtype),
    }
    for t in range(plan.stages):
        for s in range(plan.stage_ptr[t], plan.stage_ptr[t + 1]):
            out = bufs[int(plan.seg_buf[s])]
            off, length = int(plan.seg_off[s]), int(plan.seg_len[s])
            for j in range(plan.seg_term[s], plan.seg_term[s + 1]):
                a, ld, w = int(plan.term_a[j]), int(plan.term_ld[j]), int(plan.term_w[j])
                src = bufs[int(plan.term_buf[j])][int(plan.term_off[j]) : int(plan.term_off[j]) + w]
                if plan.term_trans[j] == 0:
                    G = np.lib.stride_tricks.as_strided(
                        arena[a:], (length, w), (ld * arena.itemsize, arena.itemsize), writeable=False
                    )
                else:
                    G = np.lib.stride_tricks.as_strided(
                        arena[a:], (length, w), (arena.itemsize, ld * arena.itemsize), writeable=False
                    )
                out[off : off + length] += G @ src
    return bufs[OUTPUT]


def apply_layout(layout: DeviceLayout, x: np.ndarray, transpose: bool = False) -> np.ndarray:
    """``A @ x`` (``A.T @ x``) from the layout alone, in NumPy: the device's specification.

    The device runs the same steps: gather the operand through the
    permutation, run the plan, add S's product and the plan's result
    scattered back through the other permutation.
    """
    m, n = layout.shape
    X = np.asarray(x, dtype=layout.dtype)
    vector = X.ndim == 1
    X = X.reshape(X.shape[0], -1)
    gather = layout.row_perm if transpose else layout.col_perm
    scatter_inv = layout.col_inv if transpose else layout.row_inv
    Y = np.zeros((n if transpose else m, X.shape[1]), layout.dtype)
    if layout.plans is not None:
        Yh = run_plan(layout.plans[transpose], layout.arena(), X if gather is None else X[gather])
        Y += Yh if scatter_inv is None else Yh[scatter_inv]
    if layout.sparse is not None:
        data, indices, indptr = layout.sparse
        rows = np.repeat(np.arange(m), np.diff(indptr))
        if transpose:
            np.add.at(Y, indices, data[:, None] * X[rows])
        else:
            np.add.at(Y, rows, data[:, None] * X[indices])
    return Y[:, 0] if vector else Y
