#include "hsslin/kernels.hpp"

#include <algorithm>
#include <cmath>

#include "hsslin/parallel.hpp"
#include "hsslin/random.hpp"

namespace hsslin {
namespace {

constexpr Index kSampleChunk = 256;

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

template <class T>
Matrix<T> orthonormal_basis(const Matrix<T>& Y) {
  Eigen::HouseholderQR<Matrix<T>> qr(Y);
  return qr.householderQ() * Matrix<T>::Identity(Y.rows(), std::min(Y.rows(), Y.cols()));
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

namespace {

template <class T>
bool dense_is_cheaper(Index rank, Index rows, Index cols) {
  return rank * (rows + cols) >= rows * cols;
}

template <class T>
LowRankBlock<T> keep_dense(const ConstRowMap<T>& block) {
  LowRankBlock<T> out;
  out.is_dense = true;
  out.dense = block;
  return out;
}

// Splits the singular values evenly between the factors (balanced factors
// train better and have the same product).
template <class T>
void factors_from_svd(const Matrix<T>& Q, const Matrix<T>& B, Index rank, LowRankBlock<T>& out) {
  Eigen::BDCSVD<Matrix<T>> svd(B, Eigen::ComputeThinU | Eigen::ComputeThinV);
  rank = std::min<Index>(rank, svd.singularValues().size());
  const auto root = svd.singularValues().head(rank).cwiseSqrt().asDiagonal();
  out.U = Q * (svd.matrixU().leftCols(rank) * root);
  out.V = svd.matrixV().leftCols(rank) * root;
}

template <class T>
LowRankBlock<T> fixed_rank(const ConstRowMap<T>& A, Index rank, int power_iterations,
                           std::uint64_t seed) {
  const Index m = A.rows(), n = A.cols();
  LowRankBlock<T> out;
  rank = std::min(rank, std::min(m, n));
  if (dense_is_cheaper<T>(rank, m, n)) return keep_dense(A);
  const Index width = std::min(std::min(m, n), rank + 10);
  Matrix<T> Q;
  if (width >= std::min(m, n)) {
    Q = Matrix<T>::Identity(m, m);
    if (m > n) Q = orthonormal_basis<T>(Matrix<T>(A));
  } else {
    Matrix<T> Omega(n, width);
    GaussianStream(seed).fill(Omega);
    Q = orthonormal_basis<T>(Matrix<T>(A * Omega));
    for (int it = 0; it < power_iterations; ++it) {
      const Matrix<T> W = orthonormal_basis<T>(Matrix<T>(A.transpose() * Q));
      Q = orthonormal_basis<T>(Matrix<T>(A * W));
    }
  }
  const Matrix<T> B = Q.transpose() * A;
  factors_from_svd(Q, B, rank, out);
  out.error = static_cast<double>((Matrix<T>(A) - out.U * out.V.transpose()).norm());
  return out;
}

template <class T>
LowRankBlock<T> tolerance_rank(const ConstRowMap<T>& A, double abs_tol, Index max_rank,
                               std::uint64_t seed) {
  const Index m = A.rows(), n = A.cols();
  const Index full = std::min(m, n);
  const Index cap = max_rank > 0 ? std::min(max_rank, full) : full;
  const double tol2 = abs_tol * abs_tol;
  const Index block = std::max<Index>(8, std::min<Index>(32, full / 4 + 1));
  Matrix<T> Q(m, 0), B(0, n);
  Matrix<T> residual = A;  // explicit residual: exact error, no cancellation
  GaussianStream stream(seed);
  while (true) {
    const double err2 = static_cast<double>(residual.squaredNorm());
    if (err2 <= tol2 || Q.cols() >= cap) break;
    if (dense_is_cheaper<T>(Q.cols(), m, n)) return keep_dense(A);
    const Index b = std::min(block, cap - Q.cols());
    Matrix<T> Omega(n, b);
    stream.fill(Omega, Q.cols());
    Matrix<T> Yi = residual * Omega;
    if (Q.cols() > 0) Yi -= Q * (Q.transpose() * Yi);  // re-orthogonalize
    Matrix<T> Qi = orthonormal_basis<T>(Yi);
    if (Q.cols() > 0) {
      Qi -= Q * (Q.transpose() * Qi);
      Qi = orthonormal_basis<T>(Qi);
    }
    const Matrix<T> Bi = Qi.transpose() * residual;
    residual.noalias() -= Qi * Bi;
    Q.conservativeResize(m, Q.cols() + Qi.cols());
    Q.rightCols(Qi.cols()) = Qi;
    B.conservativeResize(B.rows() + Bi.rows(), n);
    B.bottomRows(Bi.rows()) = Bi;
  }
  // Recompress Q*B by SVD: keep the fewest singular values that still meet
  // the tolerance together with the residual already left out.
  LowRankBlock<T> out;
  if (Q.cols() == 0) {
    out.U = Matrix<T>::Zero(m, 0);
    out.V = Matrix<T>::Zero(n, 0);
    out.error = std::sqrt(static_cast<double>(residual.squaredNorm()));
    return out;
  }
  Eigen::BDCSVD<Matrix<T>> svd(B, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const auto& s = svd.singularValues();
  double dropped = static_cast<double>(residual.squaredNorm());
  Index rank = s.size();
  while (rank > 0) {
    const double next =
        dropped + static_cast<double>(s(rank - 1)) * static_cast<double>(s(rank - 1));
    if (next > tol2) break;
    dropped = next;
    --rank;
  }
  if (dense_is_cheaper<T>(rank, m, n)) return keep_dense(A);
  const auto root = s.head(rank).cwiseSqrt().asDiagonal();
  out.U = Q * (svd.matrixU().leftCols(rank) * root);
  out.V = svd.matrixV().leftCols(rank) * root;
  out.error = std::sqrt(dropped);
  return out;
}

}  // namespace

template <class T>
LowRankBlock<T> low_rank_approximation(const ConstRowMap<T>& block, Index rank, double abs_tol,
                                       Index max_rank, int power_iterations, std::uint64_t seed) {
  if (block.rows() == 0 || block.cols() == 0) {
    LowRankBlock<T> out;
    out.U = Matrix<T>::Zero(block.rows(), 0);
    out.V = Matrix<T>::Zero(block.cols(), 0);
    return out;
  }
  if (rank > 0) return fixed_rank(block, rank, power_iterations, seed);
  return tolerance_rank(block, abs_tol, max_rank, seed);
}

template <class T>
void sample_columns(const ConstRowMap<T>& A, const Matrix<T>& Omega, Matrix<T>& Y) {
  Y.resize(A.rows(), Omega.cols());
  const Index chunks = (A.rows() + kSampleChunk - 1) / kSampleChunk;
  parallel_for(0, chunks, [&](Index c) {
    const Index r0 = c * kSampleChunk, r1 = std::min(A.rows(), r0 + kSampleChunk);
    Y.middleRows(r0, r1 - r0).noalias() = A.middleRows(r0, r1 - r0) * Omega;
  });
}

template <class T>
void sample_rows(const ConstRowMap<T>& A, const Matrix<T>& Psi, Matrix<T>& Z) {
  Z.resize(A.cols(), Psi.cols());
  const Index chunks = (A.cols() + kSampleChunk - 1) / kSampleChunk;
  parallel_for(0, chunks, [&](Index c) {
    const Index c0 = c * kSampleChunk, c1 = std::min(A.cols(), c0 + kSampleChunk);
    Z.middleRows(c0, c1 - c0).noalias() = A.middleCols(c0, c1 - c0).transpose() * Psi;
  });
}

template <class T>
bool is_symmetric(const ConstRowMap<T>& A) {
  if (A.rows() != A.cols()) return false;
  for (Index i = 0; i < A.rows(); ++i)
    for (Index j = 0; j < i; ++j)
      if (A(i, j) != A(j, i)) return false;
  return true;
}

template <class T>
Matrix<T> gather(const ConstRowMap<T>& A, const std::vector<Index>& rows,
                 const std::vector<Index>& cols) {
  Matrix<T> out(static_cast<Index>(rows.size()), static_cast<Index>(cols.size()));
  for (size_t j = 0; j < cols.size(); ++j)
    for (size_t i = 0; i < rows.size(); ++i) out(Index(i), Index(j)) = A(rows[i], cols[j]);
  return out;
}

#define HSSLIN_INSTANTIATE_KERNELS(T)                                                             \
  template RowID<T> row_interpolative<T>(const Matrix<T>&, double, Index, Index, bool);           \
  template LowRankBlock<T> low_rank_approximation<T>(const ConstRowMap<T>&, Index, double, Index, \
                                                     int, std::uint64_t);                         \
  template void sample_columns<T>(const ConstRowMap<T>&, const Matrix<T>&, Matrix<T>&);           \
  template void sample_rows<T>(const ConstRowMap<T>&, const Matrix<T>&, Matrix<T>&);              \
  template bool is_symmetric<T>(const ConstRowMap<T>&);                                           \
  template Matrix<T> gather<T>(const ConstRowMap<T>&, const std::vector<Index>&,                  \
                               const std::vector<Index>&);
HSSLIN_INSTANTIATE_KERNELS(float)
HSSLIN_INSTANTIATE_KERNELS(double)

}  // namespace hsslin
