#pragma once
/// \file sparse_select.hpp
/// \brief Top-magnitude extraction: the largest |w| of a dense matrix as CSR.

#include "hsslin/config.hpp"
#include "hsslin/csr.hpp"
#include "hsslin/dense.hpp"

namespace hsslin {

/// ceil(rho * total), except that a product within 8 ulps (relative) of an
/// integer counts as that integer: rho = 0.1 of 2000 entries keeps 200, not
/// the 201 that 0.1's binary value would give. rho must lie in [0, 1).
Index top_count(double rho, Index total);

/// Keeps the k = top_count(rho, m * n) entries of W with the largest
/// magnitudes (per_row: top_count(rho, n) in every row) and returns them as
/// CSR with sorted column indices. Selection is by std::nth_element on the
/// magnitudes (expected O(m n)), not a sort. Ties at the threshold are broken
/// deterministically by position: earlier entries in row-major order win.
/// Non-finite entries throw std::invalid_argument.
template <class T>
CSRMatrix<T> top_magnitude(const ConstRowMap<T>& W, double rho, bool per_row);

}  // namespace hsslin
