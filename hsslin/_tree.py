"""The cluster tree's index ranges, mirrored from cpp/src/cluster_tree.cpp.

Used to predict a HODLR matrix's bytes for a rank schedule without building
it, and by adapters that rebuild the structure from factors.
"""

from __future__ import annotations

INDEX_BYTES = 8


def tree_levels(m: int, n: int, leaf_size: int) -> int:
    largest, levels = max(m, n), 0
    while largest > leaf_size and levels < 40:
        largest = (largest + 1) // 2
        levels += 1
    return levels


def tree_nodes(m: int, n: int, levels: int) -> list[tuple[int, int, int, int]]:
    """(row_begin, row_end, col_begin, col_end) per node in heap order."""
    nodes = [(0, m, 0, n)]
    for i in range((1 << levels) - 1):
        r0, r1, c0, c1 = nodes[i]
        rm = r0 + (r1 - r0 + 1) // 2
        cm = c0 + (c1 - c0 + 1) // 2
        nodes.append((r0, rm, c0, cm))
        nodes.append((rm, r1, cm, c1))
    return nodes


def scheduled_rank(rank: int, rank_decay: float, min_rank: int, level: int) -> int:
    """Rank of the off-diagonal blocks at `level` (1 = the root's children)."""
    import math

    r = rank * rank_decay ** (level - 1)
    # llround in C++: halves away from zero
    return max(min_rank, int(math.floor(r + 0.5)))


def hodlr_nbytes(
    m: int, n: int, leaf_size: int, rank: int, rank_decay: float, min_rank: int, itemsize: int
) -> int:
    """Bytes a HODLRMatrix built with this schedule stores (same count as nbytes)."""
    levels = tree_levels(m, n, leaf_size)
    nodes = tree_nodes(m, n, levels)
    first_leaf = (1 << levels) - 1
    entries = matrices = 0
    for i, (r0, r1, c0, c1) in enumerate(nodes):
        if i >= first_leaf:
            entries += (r1 - r0) * (c1 - c0)
            matrices += 1
            continue
        level = (i + 1).bit_length()  # node i sits at floor(log2(i+1)); its blocks one deeper
        a, b = nodes[2 * i + 1], nodes[2 * i + 2]
        for rows, cols in ((a[1] - a[0], b[3] - b[2]), (b[1] - b[0], a[3] - a[2])):
            if rows == 0 or cols == 0:
                matrices += 2
                continue
            r = min(scheduled_rank(rank, rank_decay, min_rank, level), rows, cols)
            if r * (rows + cols) >= rows * cols:
                entries += rows * cols
                matrices += 1
            else:
                entries += r * (rows + cols)
                matrices += 2
    metadata = len(nodes) * 4 * INDEX_BYTES + matrices * (2 * INDEX_BYTES + 1) + 64
    return entries * itemsize + metadata
