// Row interpolative decomposition by column-pivoted QR (see low_rank.hpp).
#include <algorithm>
#include <cmath>

#include "hsslin/low_rank.hpp"

namespace hsslin {
namespace {

// Trailing Frobenius norms of an upper-trapezoidal R: tail[k] = ||R(k:, k:)||_F.
template <class T>
std::vector<double> trailing_norms(const Matrix<T>& R, Index kmax) {
  std::vector<double> tail(static_cast<size_t>(kmax) + 1, 0.0);
  double acc = 0.0;
  for (Index k = kmax - 1; k >= 0; --k) {
    acc += static_cast<double>(R.row(k).tail(R.cols() - k).squaredNorm());
    tail[static_cast<size_t>(k)] = std::sqrt(acc);
  }
  return tail;
}

// Rank needed to reach abs_tol, extrapolating the geometric decay of |R_kk|
// seen in the sample. A flat spectrum (random matrix) extrapolates to full.
template <class T>
Index extrapolate_rank(const Matrix<T>& R, Index kmax, double abs_tol, Index full) {
  const double first = std::abs(static_cast<double>(R(0, 0)));
  const double last = std::abs(static_cast<double>(R(kmax - 1, kmax - 1)));
  if (kmax < 4 || first <= 0.0) return full;
  if (last <= 0.0) return kmax;
  const double rate = std::log(last / first) / static_cast<double>(kmax - 1);
  if (rate > -1e-3) return full;
  const double needed = 1.0 + std::log(std::max(abs_tol, 1e-300) / first) / rate;
  return std::min<Index>(full, std::max<Index>(kmax + 1, static_cast<Index>(std::ceil(needed))));
}

}  // namespace

template <class T>
RowID<T> row_interpolative(const Matrix<T>& Y, double abs_tol, Index max_rank, Index sample_limit,
                           bool can_saturate) {
  RowID<T> id;
  const Index m = Y.rows();
  if (m == 0) {
    id.U.resize(0, 0);
    return id;
  }
  if (Y.cols() == 0) {  // nothing couples to the outside: rank 0
    id.U = Matrix<T>::Zero(m, 0);
    return id;
  }
  const Matrix<T> Yt = Y.transpose();
  Eigen::ColPivHouseholderQR<Matrix<T>> qr(Yt);
  const Matrix<T> R = qr.matrixQR().template triangularView<Eigen::Upper>();
  const Index kmax = std::min(Yt.rows(), m);
  const std::vector<double> tail = trailing_norms(R, kmax);
  Index rank = kmax;
  for (Index k = 0; k <= kmax; ++k) {
    if (tail[static_cast<size_t>(k)] <= abs_tol) {
      rank = k;
      break;
    }
  }
  id.rank_estimate = rank;
  if (can_saturate && rank > sample_limit && rank < m) {
    id.saturated = true;
    id.rank_estimate = extrapolate_rank(R, kmax, abs_tol, m);
  }
  if (max_rank > 0) rank = std::min(rank, max_rank);

  const auto& perm = qr.colsPermutation().indices();
  id.skeleton.resize(static_cast<size_t>(rank));
  for (Index j = 0; j < rank; ++j) id.skeleton[static_cast<size_t>(j)] = perm(j);
  id.U = Matrix<T>::Zero(m, rank);
  for (Index j = 0; j < rank; ++j) id.U(perm(j), j) = T(1);
  if (rank > 0 && rank < m) {
    // Y^T P = Q [R11 R12]  =>  the non-skeleton rows are R11^{-1} R12 times the skeleton.
    const Matrix<T> coeffs = R.topLeftCorner(rank, rank)
                                 .template triangularView<Eigen::Upper>()
                                 .solve(R.block(0, rank, rank, m - rank));
    for (Index j = rank; j < m; ++j) id.U.row(perm(j)) = coeffs.col(j - rank).transpose();
  }
  return id;
}

#define HSSLIN_INSTANTIATE(T) \
  template RowID<T> row_interpolative<T>(const Matrix<T>&, double, Index, Index, bool);
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
