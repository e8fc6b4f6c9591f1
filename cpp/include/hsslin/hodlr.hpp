#pragma once
/// \file hodlr.hpp
/// \brief HODLRMatrix: hierarchical off-diagonal low rank, bases not nested.

#include <string>
#include <vector>

#include "hsslin/cluster_tree.hpp"
#include "hsslin/kernels.hpp"
#include "hsslin/options.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {

/// \brief HODLR matrix over a ClusterTree.
///
/// Leaf tau stores D_tau; an inner node with children a, b stores the two
/// off-diagonal blocks A(I_a, J_b) ~= U12 V12^T and A(I_b, J_a) ~= U21 V21^T,
/// each with its own factors (or kept dense when a factorization would
/// store more). Ranks follow a schedule (outer rank at the root, decaying
/// level by level) or a tolerance.
template <class T>
class HODLRMatrix {
 public:
  using Block = LowRankBlock<T>;
  struct Node {
    Matrix<T> D;     ///< leaves: dense diagonal block
    Block B12, B21;  ///< inner nodes: A(I_a, J_b) and A(I_b, J_a)
  };

  HODLRMatrix() = default;
  static HODLRMatrix compress(const ConstRowMap<T>& A, const HODLROptions& options);
  /// Assembles a HODLR matrix from given parts (used by the torch adapter and load).
  static HODLRMatrix from_parts(ClusterTree tree, std::vector<Node> nodes, HODLROptions options,
                                double error);

  Index rows() const { return tree_.rows(); }
  Index cols() const { return tree_.cols(); }
  const ClusterTree& tree() const { return tree_; }
  const Node& node(Index i) const { return nodes_[size_t(i)]; }
  const HODLROptions& options() const { return options_; }
  /// Relative Frobenius error ||A - H||_F / ||A||_F, exact (computed block by block).
  double relative_error() const { return error_; }

  /// Y = H X (or H^T X); `hooks` folds a caller's work into the product.
  void apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose,
             const ProductHooks* hooks = nullptr) const;
  void to_dense(T* out, bool transpose) const;
  Index nbytes() const;

  std::string serialize() const;
  static HODLRMatrix deserialize(const std::string& blob);

 private:
  template <bool Transpose, class XMap, class YMap>
  void apply_impl(const XMap& X, YMap& Y, const ProductHooks* hooks) const;
  void check_structure() const;

  ClusterTree tree_;
  std::vector<Node> nodes_;
  HODLROptions options_;
  double error_ = 0.0;
};

}  // namespace hsslin
