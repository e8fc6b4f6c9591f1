#pragma once
/// \file rcm.hpp
/// \brief Reverse Cuthill-McKee ordering of a sparse pattern, and bandwidth.

#include <cstdint>
#include <vector>

#include "hsslin/config.hpp"

namespace hsslin {

/// \brief Read-only view of a CSR sparsity pattern (values are not needed).
struct SparsePattern {
  Index rows = 0, cols = 0;
  const std::int64_t* indptr = nullptr;   ///< rows + 1 entries
  const std::int32_t* indices = nullptr;  ///< indptr[rows] entries
  Index nnz() const { return indptr[rows]; }
};

/// Throws std::invalid_argument unless the pattern is well formed (same
/// rules as CSRMatrix::validate).
void validate_pattern(const SparsePattern& pattern);

/// \brief A row order and a column order: position p holds the old index.
struct Ordering {
  std::vector<Index> rows, cols;  ///< for a square pattern cols == rows
};

/// Reverse Cuthill-McKee ordering.
///
/// Square patterns are ordered on the graph of S + S^T, or of S itself when
/// `symmetric_mode` is true and S is symmetric (a pass over the entries
/// checks it; a pattern that is not is ordered on S + S^T as without
/// `symmetric_mode`, so the result is always a permutation);
/// self-loops and duplicate entries are ignored. Rectangular m x n patterns
/// are ordered on the bipartite graph of rows and columns (m + n nodes) and
/// give separate row and column orders. Each connected component is
/// numbered from its lowest-degree node and from every node the George-Liu
/// search for a pseudo-peripheral node probes (the pseudo-peripheral node
/// among them), keeping the order of smallest bandwidth (RCM is a
/// heuristic; no start wins on every graph). The breadth-first search visits
/// unnumbered neighbours by increasing degree (ties: lower index), and the
/// whole order is reversed at the end. Isolated nodes (empty rows) are
/// components of one node.
Ordering reverse_cuthill_mckee(const SparsePattern& pattern, bool symmetric_mode);

/// max |p_row(i) - p_col(j)| over the stored entries (i, j), where p_row and
/// p_col are the new positions under the orders (position -> old index) in
/// `row_perm` (rows entries) and `col_perm` (cols entries); 0 when empty.
Index bandwidth(const SparsePattern& pattern, const Index* row_perm, const Index* col_perm);

}  // namespace hsslin
