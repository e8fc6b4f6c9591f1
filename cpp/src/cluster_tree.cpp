#include "hsslin/cluster_tree.hpp"

#include <algorithm>

namespace hsslin {

namespace {
constexpr int kMaxLevels = 40;  // matrix sides are below 2^40
}

ClusterTree::ClusterTree(Index rows, Index cols, Index leaf_size)
    : rows_(rows), cols_(cols), levels_(depth(rows, cols, leaf_size)) {
  build();
}

int ClusterTree::depth(Index rows, Index cols, Index leaf_size) {
  HSSLIN_CHECK(rows >= 0 && cols >= 0, "matrix dimensions must be non-negative, got ", rows, "x",
               cols);
  HSSLIN_CHECK(leaf_size >= 1, "leaf_size must be >= 1, got ", leaf_size);
  // Ceil-halving: after l splits the largest range holds ceil(size / 2^l).
  Index largest = std::max(rows, cols);
  int levels = 0;
  while (largest > leaf_size && levels < kMaxLevels) {
    largest = (largest + 1) / 2;
    ++levels;
  }
  return levels;
}

Index ClusterTree::node_count(Index rows, Index cols, Index levels) {
  HSSLIN_CHECK(rows >= 0 && cols >= 0 && levels >= 0 && levels <= depth(rows, cols, 1),
               "invalid cluster tree: ", rows, "x", cols, " with ", levels, " levels (at most ",
               depth(std::max<Index>(rows, 0), std::max<Index>(cols, 0), 1), " fit that shape)");
  return level_end(int(levels));
}

ClusterTree ClusterTree::with_levels(Index rows, Index cols, Index levels) {
  node_count(rows, cols, levels);
  ClusterTree tree;
  tree.rows_ = rows;
  tree.cols_ = cols;
  tree.levels_ = int(levels);
  tree.build();
  return tree;
}

int ClusterTree::level_of(Index i) {
  int l = 0;
  while (level_end(l) <= i) ++l;
  return l;
}

void ClusterTree::build() {
  nodes_.assign(static_cast<size_t>(level_end(levels_)), ClusterNode{});
  nodes_[0] = ClusterNode{0, rows_, 0, cols_};
  for (Index i = 0; i < level_begin(levels_); ++i) {
    const ClusterNode& p = nodes_[static_cast<size_t>(i)];
    const Index row_mid = p.row_begin + (p.rows() + 1) / 2;
    const Index col_mid = p.col_begin + (p.cols() + 1) / 2;
    nodes_[static_cast<size_t>(left(i))] = ClusterNode{p.row_begin, row_mid, p.col_begin, col_mid};
    nodes_[static_cast<size_t>(right(i))] = ClusterNode{row_mid, p.row_end, col_mid, p.col_end};
  }
}

}  // namespace hsslin
