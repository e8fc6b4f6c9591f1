#pragma once
/// \file hss_ulv.hpp
/// \brief ULV factorization of a square HSS matrix: solves, transposed solves, log-determinant.

#include <string>
#include <vector>

#include "hsslin/factor_io.hpp"
#include "hsslin/hss.hpp"

namespace hsslin {

/// \brief ULV factorization of a square HSSMatrix (Chandrasekaran, Gu, Pals
/// 2006; Xia, Chandrasekaran, Gu, Li 2010), general or SPD.
///
/// Bottom-up over the tree, each node holds a local system of m unknowns
/// (a leaf: its rows; an inner node: the unknowns its two children kept)
/// that meets the rest of the matrix only through a row basis U (m x r) and
/// a column basis V. An orthogonal Q with Q^T U = [R; 0] leaves k = m - r
/// rows that do not couple to the outside, and they are eliminated:
///  * general: an LQ factorization of those rows, [L 0] = Q_e^T D P, changes
///    the unknowns to z = P^T x, so that L z1 = (Q^T b)_e determines z1 and
///    the r unknowns z2 remain, with the reduced block D' = (Q^T D P)_(k, z2),
///    row basis R and column basis (P^T V)_(z2). The eliminated z1 still act
///    on the rest of the matrix through (P^T V)_(z1); the solve carries that
///    "known part" up the tree like the upward pass of a product;
///  * SPD (symmetric H, U = V): the congruence Q^T D Q, a Cholesky factor of
///    its eliminated block, and the Schur complement as the reduced block;
///    the eliminated unknowns are invisible from outside (U^T Q = [R^T 0]).
/// The children's reduced blocks and the couplings form the parent's local
/// system; the root's is factored densely (partial pivoting, or Cholesky).
///
/// Each node stores its forward transform F (m x m; rows [0, k): L^{-1}
/// Q_e^T, rows [k, m): the kept rows' update) and, in the general case, its
/// column transform P (m x m): a solve is one product with F per node going
/// up and one with P (SPD: F^T) going down; a transposed solve runs the
/// transposed products in the reverse order. Costs: O(N r^2) to factor,
/// O(N r) per right-hand side to solve, for ranks r and leaves of O(r).
template <class T>
class HSSULV : public TreeFactorization {
 public:
  HSSULV() = default;
  /// Factors H (square). `spd` needs H.symmetric() and a positive definite H.
  /// Throws FactorizationError for a singular (or, with spd, indefinite) H.
  static HSSULV factor(const HSSMatrix<T>& H, bool spd);

  /// X <- H^{-1} X, or H^{-T} X (X is size() x k, row- or column-major).
  void solve(const DenseView<T>& X, bool transpose) const;
  /// Every stored byte: the transforms, couplings, the root's factors, the tree.
  Index nbytes() const;

  std::string serialize() const;
  static HSSULV deserialize(const std::string& blob);

 private:
  struct NodeFactor {
    Index m = 0;         ///< unknowns of the node's local system
    Index k = 0;         ///< of which eliminated here (0: nothing stored but the couplings)
    Index c = 0;         ///< columns of the node's column basis (general only)
    Matrix<T> F;         ///< m x m forward transform (empty when k = 0)
    Matrix<T> P;         ///< general: m x m column transform, x = P [z1; z2] (empty when k = 0)
    Matrix<T> Vz;        ///< general: c x k, the eliminated unknowns' share of V^T x
    Matrix<T> W;         ///< general, inner non-root: column transfer matrix of H
    Matrix<T> C12, C21;  ///< general, inner: R_a B12 and R_b B21 (couple the known parts)
  };
  struct Reduced;
  struct Workspace;
  void eliminate(Index i, Matrix<T>& D, const Matrix<T>& U, const Matrix<T>& V, Reduced& out,
                 LogDet& det);
  void solve_forward(Matrix<T>& X, Workspace& ws) const;
  void solve_backward(Matrix<T>& X, Workspace& ws) const;
  void solve_transposed(Matrix<T>& X, Workspace& ws) const;
  bool parallel(Index k) const;
  void check_structure() const;

  std::vector<NodeFactor> nodes_;
  DenseFactor<T> root_;  ///< the root's local system
};

}  // namespace hsslin
