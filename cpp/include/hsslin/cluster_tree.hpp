#pragma once
/// \file cluster_tree.hpp
/// \brief Complete binary cluster tree over the rows and the columns of an m x n matrix.

#include <vector>

#include "hsslin/config.hpp"

namespace hsslin {

/// \brief One node: a contiguous row range and a contiguous column range.
struct ClusterNode {
  Index row_begin = 0, row_end = 0;
  Index col_begin = 0, col_end = 0;
  Index rows() const { return row_end - row_begin; }
  Index cols() const { return col_end - col_begin; }
};

/// \brief Complete binary tree in heap order (children of i are 2i+1, 2i+2).
///
/// Rows and columns are split together, so every level has 2^l nodes and a
/// rectangular matrix gets the same topology on both sides. The depth is the
/// smallest one at which every leaf holds at most `leaf_size` rows and
/// columns; ranges split as evenly as possible (left half gets the extra
/// index), so sizes need not be powers of two. A very thin matrix can have
/// leaves with empty column (or row) ranges; every kernel accepts them.
class ClusterTree {
 public:
  ClusterTree() = default;
  ClusterTree(Index rows, Index cols, Index leaf_size);
  /// Rebuilds a tree of given depth (used by load); checks that the depth is
  /// at most depth(rows, cols, 1), the depth at which every leaf holds one index.
  static ClusterTree with_levels(Index rows, Index cols, Index levels);
  /// Levels below the root of the tree ClusterTree(rows, cols, leaf_size) builds.
  static int depth(Index rows, Index cols, Index leaf_size);
  /// Nodes of with_levels(rows, cols, levels), after checking the depth as it does.
  static Index node_count(Index rows, Index cols, Index levels);

  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  /// Number of levels below the root (0: the root is the only leaf).
  int levels() const { return levels_; }
  Index size() const { return static_cast<Index>(nodes_.size()); }
  const ClusterNode& node(Index i) const { return nodes_[static_cast<size_t>(i)]; }
  /// First node index of level l (root level is 0).
  static Index level_begin(int l) { return (Index(1) << l) - 1; }
  static Index level_end(int l) { return (Index(1) << (l + 1)) - 1; }
  static Index left(Index i) { return 2 * i + 1; }
  static Index right(Index i) { return 2 * i + 2; }
  bool is_leaf(Index i) const { return i >= level_begin(levels_); }
  Index leaf_begin() const { return level_begin(levels_); }
  Index leaf_end() const { return level_end(levels_); }
  /// Level of node i.
  static int level_of(Index i);

 private:
  void build();
  Index rows_ = 0, cols_ = 0;
  int levels_ = 0;
  std::vector<ClusterNode> nodes_;
};

}  // namespace hsslin
