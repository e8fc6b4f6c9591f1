#pragma once
/// \file factorization.hpp
/// \brief What every direct factorization shares: its error type and its log-determinant.

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "hsslin/config.hpp"
#include "hsslin/io.hpp"
#include "hsslin/low_rank.hpp"

namespace hsslin {

/// \brief A factorization met a matrix it cannot factor: singular to working
/// precision, or (for a Cholesky-type variant) not positive definite. The
/// bindings raise it as hsslin.FactorizationError, a numpy.linalg.LinAlgError.
class FactorizationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// \brief det(A) = sign * exp(log_abs), as numpy.linalg.slogdet returns it.
struct LogDet {
  double sign = 1.0;
  double log_abs = 0.0;
  /// Folds in one factor's pivot (a diagonal entry of a triangular factor).
  void add_pivot(double p) {
    if (p < 0) sign = -sign;
    log_abs += std::log(std::abs(p));
  }
  void flip() { sign = -sign; }
  /// The determinant of a product: the factors' signs multiply, logs add.
  LogDet& operator*=(const LogDet& other) {
    sign *= other.sign;
    log_abs += other.log_abs;
    return *this;
  }
};

namespace detail {
/// A pivot at or below this size makes a local block singular to working
/// precision: the size-times-epsilon rule of LAPACK's rank decisions, scaled
/// by the Frobenius norm of the local block the pivot came from.
template <class T>
double pivot_floor(Index local_size, double local_norm) {
  return double(std::numeric_limits<T>::epsilon()) * double(std::max<Index>(local_size, 1)) *
         local_norm;
}
}  // namespace detail

/// \brief Dense LU with partial pivoting, or Cholesky, of a small block (an
/// HSS root, a HODLR leaf or capacitance matrix), with checked pivots.
template <class T>
struct DenseFactor {
  Matrix<T> LU;             ///< unit lower + upper triangle, or the Cholesky factor L
  std::vector<Index> perm;  ///< LU: row i of L U is row perm[i] of the block
  bool cholesky = false;

  /// Factors M and folds its determinant into det. Throws FactorizationError
  /// when M is singular to working precision (or, with cholesky, not
  /// positive definite).
  void factor(const Matrix<T>& M, bool use_cholesky, LogDet& det);
  /// Y <- M^{-1} Y or M^{-T} Y.
  void solve(Eigen::Ref<Matrix<T>> Y, bool transpose) const;
  Index size() const { return LU.rows(); }
  Index nbytes() const {
    return LU.size() * Index(sizeof(T)) + Index(perm.size()) * Index(sizeof(Index));
  }
  void write(ByteWriter& w) const;
  /// Reads a factor of at most max_size rows; checks shapes and the permutation.
  void read(ByteReader& r, Index max_size, bool use_cholesky);
};

/// Thrown by every factorization on a singular block.
[[noreturn]] void fail_singular(double pivot, double floor);
/// Thrown by every Cholesky-type factorization on an indefinite block.
[[noreturn]] void fail_not_spd();

}  // namespace hsslin
