// Randomized low-rank approximation of a block (see low_rank.hpp): a
// randomized SVD at a fixed rank, or a blocked randomized QB to a tolerance.
#include <algorithm>
#include <cmath>

#include "hsslin/low_rank.hpp"
#include "hsslin/random.hpp"

namespace hsslin {
namespace {

template <class T>
Matrix<T> orthonormal_basis(const Matrix<T>& Y) {
  Eigen::HouseholderQR<Matrix<T>> qr(Y);
  return qr.householderQ() * Matrix<T>::Identity(Y.rows(), std::min(Y.rows(), Y.cols()));
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
  rank = fixed_rank_layout(rank, m, n);
  if (rank < 0) return keep_dense(A);
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
    if (factors_cost_more(Q.cols(), m, n)) return keep_dense(A);
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
  if (factors_cost_more(rank, m, n)) return keep_dense(A);
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

#define HSSLIN_INSTANTIATE(T)                                                                     \
  template LowRankBlock<T> low_rank_approximation<T>(const ConstRowMap<T>&, Index, double, Index, \
                                                     int, std::uint64_t);
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
