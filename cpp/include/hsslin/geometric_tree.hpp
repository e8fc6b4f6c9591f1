#pragma once
/// \file geometric_tree.hpp
/// \brief A cluster tree over points: the permutation that makes ClusterTree's
/// index halves geometric clusters, with each node's bounding box and near field.

#include <string>
#include <vector>

#include "hsslin/cluster_tree.hpp"

namespace hsslin {

/// \brief Recursive bisection of N points in d dimensions (STRUMPACK's KD and
/// PCA clusterings), shaped to ClusterTree.
///
/// Every node's points are split in two at the size ClusterTree gives its
/// left child (half, rounded up), along the longest side of the node's
/// bounding box ("kd") or along the points' principal axis ("pca"), so the
/// tree of N x N matrices with `leaf_size` is unchanged and only the order of
/// the points is new: position t of the tree holds point perm[t].
class GeometricTree {
 public:
  struct Box {
    std::vector<double> lo, hi;
    double diameter() const;
    /// Distance between two boxes (0 when they touch or overlap).
    double distance(const Box& other) const;
  };

  /// `points` is N x d, row-major (finite; checked by the caller). `method`
  /// is "kd" or "pca"; `eta` sizes the near fields (see near()).
  GeometricTree(const std::vector<double>& points, Index n, Index d, Index leaf_size,
                const std::string& method, double eta);

  const ClusterTree& tree() const { return tree_; }
  const std::vector<Index>& permutation() const { return perm_; }
  /// The points in tree order (N x d, row-major).
  std::vector<double> permuted_points(const std::vector<double>& points) const;
  const Box& box(Index i) const { return boxes_[size_t(i)]; }
  /// Nodes of i's level (other than i) whose boxes lie within `eta` times
  /// i's diameter of i's box: the near field, built top-down (a child's near
  /// field lies among the children of its parent's near field and sibling).
  const std::vector<Index>& near(Index i) const { return near_[size_t(i)]; }

 private:
  void split(const std::vector<double>& points, Index i, bool pca);
  void build_near(double eta);

  ClusterTree tree_;
  Index d_ = 0;
  std::vector<Index> perm_;
  std::vector<Box> boxes_;
  std::vector<std::vector<Index>> near_;
};

}  // namespace hsslin
