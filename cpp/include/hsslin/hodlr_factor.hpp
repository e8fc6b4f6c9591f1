#pragma once
/// \file hodlr_factor.hpp
/// \brief Factorization of a square HODLR matrix by recursive Sherman-Morrison-Woodbury.

#include <string>
#include <vector>

#include "hsslin/factor_io.hpp"
#include "hsslin/hodlr.hpp"

namespace hsslin {

/// \brief A = D F_{L-1} ... F_1 F_0 for a square HODLRMatrix (Ambikasaran and
/// Darve 2013).
///
/// D is block diagonal in the leaves; F_l is block diagonal in the nodes of
/// level l, the block of node p being I + U_p V_p^T with
/// U_p = diag(A_a^{-1} U12, A_b^{-1} U21) and V_p = [0 V21; V12 0] for the
/// off-diagonal blocks A(a, b) = U12 V12^T, A(b, a) = U21 V21^T of p's
/// children a, b. Each factor is inverted by Sherman-Morrison-Woodbury,
/// (I + U V^T)^{-1} = I - U K^{-1} V^T with the capacitance K = I + V^T U,
/// and det(I + U V^T) = det(K). Factoring applies every inverse to the U of
/// the blocks above it: O(N r^2 log^2 N); a solve is O(N r log N).
/// Blocks the HODLR matrix keeps dense enter as U = block, V = I (or
/// U = I, V = block^T, whichever is thinner).
template <class T>
class HODLRFactor : public TreeFactorization {
 public:
  HODLRFactor() = default;
  /// Factors H (square). With spd, leaves are factored by Cholesky and every
  /// capacitance matrix must have positive eigenvalues (which, given SPD
  /// leaves, is what a symmetric H being positive definite means).
  static HODLRFactor factor(const HODLRMatrix<T>& H, bool spd);

  /// X <- H^{-1} X, or H^{-T} X (X is size() x k, row- or column-major).
  void solve(const DenseView<T>& X, bool transpose) const;
  Index nbytes() const;

  std::string serialize() const;
  static HODLRFactor deserialize(const std::string& blob);

 private:
  struct Inner {
    Matrix<T> U12, U21;  ///< A_a^{-1} U12 (n_a x r12) and A_b^{-1} U21 (n_b x r21)
    Matrix<T> V12, V21;  ///< n_b x r12 and n_a x r21
    DenseFactor<T> K;    ///< LU of I + V_p^T U_p
  };
  /// Y (the rows of inner node p) <- (I + U_p V_p^T)^{-1} Y, or its transpose.
  void apply_inverse(Index p, Eigen::Ref<Matrix<T>> Y, bool transpose) const;
  /// The rows of node i inside the U factor of ancestor q's block.
  Eigen::Block<Matrix<T>> rows_in(Index q, Index i);
  bool parallel(Index k) const;
  void check_structure() const;

  std::vector<DenseFactor<T>> leaves_;  ///< leaf leaf_begin() + j
  std::vector<Inner> inner_;            ///< inner node p
};

}  // namespace hsslin
