#pragma once
/// \file kernels.hpp
/// \brief Dense building blocks: matrix views, interpolative decomposition,
/// randomized low-rank approximation and threaded sampling products.

#include <Eigen/Dense>
#include <vector>

#include "hsslin/config.hpp"

namespace hsslin {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstRowMap = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstColMap = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using RowMap = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ColMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;

/// \brief A dense block of right-hand sides or results, row- or column-major.
///
/// Exactly one of the strides is 1 (the other is the leading dimension), or
/// both are 1 for a single vector.
template <class T>
struct DenseView {
  T* data = nullptr;
  Index rows = 0, cols = 0;
  Index row_stride = 1, col_stride = 1;
  bool row_major() const { return col_stride == 1 && (row_stride >= cols || rows <= 1); }
};

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

/// \brief Low-rank factors of a block, block ~= U * V^T, or the block itself.
template <class T>
struct LowRankBlock {
  Matrix<T> U, V;   ///< rows x r, cols x r
  Matrix<T> dense;  ///< set instead of U, V when a factorization would not save bytes
  bool is_dense = false;
  double error = 0.0;  ///< ||block - U V^T||_F (exact, 0 when dense)
  Index rank() const { return is_dense ? -1 : U.cols(); }
};

/// Randomized low-rank approximation of `block` (rows x cols, row-major).
/// With rank > 0: best rank-`rank` approximation by a randomized SVD with
/// `power_iterations` subspace iterations. With rank <= 0: the smallest rank
/// whose Frobenius error is <= abs_tol (blocked randomized QB, with the
/// residual verified explicitly), capped at max_rank. Either way the block is
/// kept dense when r * (rows + cols) >= rows * cols.
template <class T>
LowRankBlock<T> low_rank_approximation(const ConstRowMap<T>& block, Index rank, double abs_tol,
                                       Index max_rank, int power_iterations, std::uint64_t seed);

/// Y = A * Omega with A row-major (m x n), threaded over row chunks of A.
template <class T>
void sample_columns(const ConstRowMap<T>& A, const Matrix<T>& Omega, Matrix<T>& Y);
/// Z = A^T * Psi, threaded over column chunks of A.
template <class T>
void sample_rows(const ConstRowMap<T>& A, const Matrix<T>& Psi, Matrix<T>& Z);
/// Exact symmetry test (square A only), stops at the first mismatch.
template <class T>
bool is_symmetric(const ConstRowMap<T>& A);
/// A(rows, cols) gathered into a dense matrix.
template <class T>
Matrix<T> gather(const ConstRowMap<T>& A, const std::vector<Index>& rows,
                 const std::vector<Index>& cols);

}  // namespace hsslin
