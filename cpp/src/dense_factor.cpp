// Dense LU / Cholesky of the small blocks the hierarchical factorizations
// end in, with the pivot checks that turn a singular matrix into an error.
#include "hsslin/factorization.hpp"

namespace hsslin {

[[noreturn]] void fail_singular(double pivot, double floor) {
  throw FactorizationError(detail::concat(
      "matrix is singular to working precision: a pivot of size ", pivot,
      " is at or below the threshold ", floor, " (size x epsilon x norm of the local block)"));
}

[[noreturn]] void fail_not_spd() {
  throw FactorizationError(
      "matrix is not positive definite: the Cholesky variant (symmetric=True) needs a symmetric "
      "positive definite matrix; factor indefinite or non-symmetric matrices with "
      "symmetric=False");
}

template <class T>
void DenseFactor<T>::factor(const Matrix<T>& M, bool use_cholesky, LogDet& det) {
  cholesky = use_cholesky;
  const Index m = M.rows();
  perm.resize(size_t(m));
  if (m == 0) {
    LU.resize(0, 0);
    return;
  }
  const double floor = detail::pivot_floor<T>(m, double(M.norm()));
  if (cholesky) {
    Eigen::LLT<Matrix<T>> llt(M);
    if (llt.info() != Eigen::Success) fail_not_spd();
    LU = llt.matrixL();
    for (Index j = 0; j < m; ++j) {
      const double p = double(LU(j, j));
      if (!(p * p > floor)) fail_not_spd();
      det.add_pivot(p * p);
      perm[size_t(j)] = j;
    }
    return;
  }
  Eigen::PartialPivLU<Matrix<T>> lu(M);
  LU = lu.matrixLU();
  for (Index j = 0; j < m; ++j) {
    const double p = double(LU(j, j));
    if (!(std::abs(p) > floor)) fail_singular(std::abs(p), floor);
    det.add_pivot(p);
  }
  if (lu.permutationP().determinant() < 0) det.flip();
  // P M = L U with (P x)(ind(j)) = x(j): row i of L U is row j of M where ind(j) = i.
  const auto& ind = lu.permutationP().indices();
  for (Index j = 0; j < m; ++j) perm[size_t(ind(j))] = j;
}

template <class T>
void DenseFactor<T>::solve(Eigen::Ref<Matrix<T>> Y, bool transpose) const {
  const Index m = LU.rows();
  if (m == 0 || Y.cols() == 0) return;
  if (cholesky) {
    const auto L = LU.template triangularView<Eigen::Lower>();
    L.solveInPlace(Y);
    L.transpose().solveInPlace(Y);
    return;
  }
  Matrix<T> Z(m, Y.cols());
  if (!transpose) {  // L U x = P y
    for (Index i = 0; i < m; ++i) Z.row(i) = Y.row(perm[size_t(i)]);
    LU.template triangularView<Eigen::UnitLower>().solveInPlace(Z);
    LU.template triangularView<Eigen::Upper>().solveInPlace(Z);
    Y = Z;
    return;
  }
  // M^T = U^T L^T P: U^T L^T (P x) = y.
  Z = Y;
  LU.template triangularView<Eigen::Upper>().transpose().solveInPlace(Z);
  LU.template triangularView<Eigen::UnitLower>().transpose().solveInPlace(Z);
  for (Index i = 0; i < m; ++i) Y.row(perm[size_t(i)]) = Z.row(i);
}

template <class T>
void DenseFactor<T>::write(ByteWriter& w) const {
  w.put_matrix(LU);
  w.put_array(perm.data(), Index(perm.size()));
}

template <class T>
void DenseFactor<T>::read(ByteReader& r, Index max_size, bool use_cholesky) {
  cholesky = use_cholesky;
  LU = r.get_matrix_bounded<T>(max_size, max_size);
  const auto p = r.get_array<std::int64_t>(max_size);
  HSSLIN_CHECK(LU.rows() == LU.cols() && Index(p.size()) == LU.rows(),
               "corrupted file: a dense factor of shape ", LU.rows(), "x", LU.cols(), " with ",
               p.size(), " pivots");
  std::vector<bool> seen(p.size(), false);
  for (auto v : p) {
    HSSLIN_CHECK(v >= 0 && v < Index(p.size()) && !seen[size_t(v)],
                 "corrupted file: a dense factor's permutation is not one");
    seen[size_t(v)] = true;
  }
  perm.assign(p.begin(), p.end());
}

template struct DenseFactor<float>;
template struct DenseFactor<double>;

}  // namespace hsslin
