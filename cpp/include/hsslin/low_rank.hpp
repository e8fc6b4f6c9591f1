#pragma once
/// \file low_rank.hpp
/// \brief Low-rank algorithms: interpolative decomposition and randomized
/// low-rank approximation of a block, and the rule that keeps a block dense.

#include <cstdint>
#include <vector>

#include "hsslin/dense.hpp"

namespace hsslin {

/// \brief Row interpolative decomposition Y ~= U * Y(skeleton, :).
template <class T>
struct RowID {
  std::vector<Index> skeleton;  ///< local row indices, in pivot order
  Matrix<T> U;                  ///< rows x rank, identity on the skeleton rows
  bool saturated = false;       ///< the sample ran out before the tolerance was met
  Index rank_estimate = 0;      ///< extrapolated rank when saturated, else the rank
};

/// Computes a row ID of Y by column-pivoted QR of Y^T, truncated at the
/// smallest rank whose residual ||Y - U Y(skel,:)||_F <= abs_tol, capped at
/// max_rank. `sample_limit` is the largest rank the sample can certify
/// (columns minus oversampling); a larger rank marks the result saturated
/// unless `can_saturate` is false (the sample already spans everything).
template <class T>
RowID<T> row_interpolative(const Matrix<T>& Y, double abs_tol, Index max_rank, Index sample_limit,
                           bool can_saturate);

/// True when rank-`rank` factors of a rows x cols block would store at
/// least as many entries as the block: the block is then kept dense.
inline bool factors_cost_more(Index rank, Index rows, Index cols) {
  return rank * (rows + cols) >= rows * cols;
}

/// \brief Low-rank factors of a block, block ~= U * V^T, or the block itself.
template <class T>
struct LowRankBlock {
  Matrix<T> U, V;   ///< rows x r, cols x r
  Matrix<T> dense;  ///< set instead of U, V when a factorization would not save bytes
  bool is_dense = false;
  double error = 0.0;  ///< ||block - U V^T||_F (exact, 0 when dense)
  Index rank() const { return is_dense ? -1 : U.cols(); }
};

/// Rank a fixed-rank approximation of a rows x cols block stores (-1: the
/// block is kept dense); low_rank_approximation keeps to it, and byte
/// counts of HODLR matrices not yet built come from it.
inline Index fixed_rank_layout(Index rank, Index rows, Index cols) {
  if (rows == 0 || cols == 0) return 0;
  rank = std::min(rank, std::min(rows, cols));
  return factors_cost_more(rank, rows, cols) ? -1 : rank;
}

/// Randomized low-rank approximation of `block` (rows x cols, row-major).
/// With rank > 0: best rank-`rank` approximation by a randomized SVD with
/// `power_iterations` subspace iterations, stored as fixed_rank_layout says.
/// With rank <= 0: the smallest rank whose Frobenius error is <= abs_tol
/// (blocked randomized QB, with the residual verified explicitly), capped at
/// max_rank, kept dense when factors_cost_more.
template <class T>
LowRankBlock<T> low_rank_approximation(const ConstRowMap<T>& block, Index rank, double abs_tol,
                                       Index max_rank, int power_iterations, std::uint64_t seed);

}  // namespace hsslin
