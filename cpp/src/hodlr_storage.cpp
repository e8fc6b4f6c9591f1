// HODLR storage: the row panels of D, U and dense blocks (see RowPanels),
// and the exchange form (Node) they are packed from and unpacked to.
#include <algorithm>

#include "hsslin/hodlr.hpp"

namespace hsslin {

template <class T>
RowPanels<T> RowPanels<T>::pack(const Matrix<T>& M, const std::vector<Index>& segments) {
  RowPanels P;
  P.rows = M.rows();
  P.cols = M.cols();
  P.data.resize(M.size());
  Index r = 0;
  for (Index len : segments) {
    for (Index a = 0; a < len; a += kRows) {
      const Index h = std::min(kRows, len - a);
      Eigen::Map<Matrix<T>>(P.data.data() + (r + a) * P.cols, h, P.cols) = M.middleRows(r + a, h);
    }
    r += len;
  }
  HSSLIN_ENSURE(r == P.rows, "row panels: segments cover ", r, " of ", P.rows, " rows");
  return P;
}

template <class T>
Matrix<T> RowPanels<T>::unpack(const std::vector<Index>& segments) const {
  Matrix<T> M(rows, cols);
  Index r = 0;
  for (Index len : segments) {
    M.middleRows(r, len) = rows_of(r, len);
    r += len;
  }
  return M;
}

template <class T>
Matrix<T> RowPanels<T>::rows_of(Index begin, Index count) const {
  Matrix<T> M(count, cols);
  for (Index a = 0; a < count; a += kRows) {
    const Index h = std::min(kRows, count - a);
    M.middleRows(a, h) = Eigen::Map<const Matrix<T>>(at_row(begin + a), h, cols);
  }
  return M;
}

template <class T>
std::vector<Index> HODLRMatrix<T>::segments(Index i, bool row_side) const {
  const int depth = tree_.levels() - ClusterTree::level_of(i);
  const Index first = ((i + 1) << depth) - 1;
  std::vector<Index> out(size_t(Index(1) << depth));
  for (size_t l = 0; l < out.size(); ++l) {
    const ClusterNode& c = tree_.node(first + Index(l));
    out[l] = row_side ? c.rows() : c.cols();
  }
  return out;
}

template <class T>
void HODLRMatrix<T>::pack(std::vector<Node> nodes) {
  const Index inner = tree_.leaf_begin();
  leaves_.clear();
  leaves_.reserve(size_t(tree_.leaf_end() - inner));
  for (Index i = inner; i < tree_.leaf_end(); ++i) {
    Matrix<T>& D = nodes[size_t(i)].D;
    leaves_.push_back(RowPanels<T>::pack(D, {D.rows()}));
    D = Matrix<T>();
  }
  blocks_.assign(size_t(2 * inner), StoredBlock{});
  for (Index b = 0; b < 2 * inner; ++b) {
    const Index i = b / 2;
    Block& src = b % 2 == 0 ? nodes[size_t(i)].B12 : nodes[size_t(i)].B21;
    const auto rows = segments(b % 2 == 0 ? ClusterTree::left(i) : ClusterTree::right(i), true);
    StoredBlock& dst = blocks_[size_t(b)];
    dst.is_dense = src.is_dense;
    dst.error = src.error;
    if (src.is_dense) {
      dst.dense = RowPanels<T>::pack(src.dense, rows);
    } else {
      dst.U = RowPanels<T>::pack(src.U, rows);
      dst.Vt = RowPanels<T>::pack(src.V.transpose(), {src.V.cols()});
    }
    src = Block();
  }
}

template <class T>
typename HODLRMatrix<T>::Node HODLRMatrix<T>::node(Index i) const {
  HSSLIN_CHECK(i >= 0 && i < tree_.size(), "node index ", i, " out of range [0, ", tree_.size(),
               ")");
  Node nd;
  if (tree_.is_leaf(i)) {
    const RowPanels<T>& D = leaves_[size_t(i - tree_.leaf_begin())];
    nd.D = D.unpack({D.rows});
    return nd;
  }
  for (Index b = 2 * i; b < 2 * i + 2; ++b) {
    const StoredBlock& src = block(b);
    const auto rows = segments(b % 2 == 0 ? ClusterTree::left(i) : ClusterTree::right(i), true);
    Block& dst = b % 2 == 0 ? nd.B12 : nd.B21;
    dst.is_dense = src.is_dense;
    dst.error = src.error;
    if (src.is_dense) {
      dst.dense = src.dense.unpack(rows);
    } else {
      dst.U = src.U.unpack(rows);
      dst.V = src.Vt.unpack({src.Vt.rows}).transpose();
    }
  }
  return nd;
}

template <class T>
Index HODLRMatrix<T>::block_rank(Index i, bool lower) const {
  HSSLIN_CHECK(i >= 0 && i < tree_.leaf_begin(), "inner node index ", i, " out of range [0, ",
               tree_.leaf_begin(), ")");
  const StoredBlock& b = block(2 * i + (lower ? 1 : 0));
  return b.is_dense ? -1 : b.Vt.rows;
}

Index hodlr_nbytes(const ClusterTree& tree, const std::vector<Index>& block_ranks,
                   Index scalar_size) {
  const Index inner = tree.leaf_begin();
  HSSLIN_CHECK(Index(block_ranks.size()) == 2 * inner, "hodlr_nbytes: ", block_ranks.size(),
               " block ranks for a tree with ", 2 * inner, " blocks");
  Index entries = 0, matrices = 0;
  for (Index i = tree.leaf_begin(); i < tree.leaf_end(); ++i) {
    entries += tree.node(i).rows() * tree.node(i).cols();
    matrices += 1;
  }
  for (Index b = 0; b < 2 * inner; ++b) {
    const Index i = b / 2;
    const ClusterNode& a = tree.node(ClusterTree::left(i));
    const ClusterNode& c = tree.node(ClusterTree::right(i));
    const Index rows = b % 2 == 0 ? a.rows() : c.rows();
    const Index cols = b % 2 == 0 ? c.cols() : a.cols();
    const Index r = block_ranks[size_t(b)];
    entries += r < 0 ? rows * cols : r * (rows + cols);
    matrices += r < 0 ? 1 : 2;
  }
  return entries * scalar_size + tree.size() * 4 * Index(sizeof(Index)) +
         matrices * (2 * Index(sizeof(Index)) + 1) + 64;
}

std::vector<Index> hodlr_schedule_ranks(const ClusterTree& tree, const HODLROptions& options) {
  HSSLIN_CHECK(options.rank() > 0, "a rank schedule needs rank >= 1");
  std::vector<Index> ranks(size_t(2 * tree.leaf_begin()));
  for (Index b = 0; b < Index(ranks.size()); ++b) {
    const Index i = b / 2;
    const ClusterNode& a = tree.node(ClusterTree::left(i));
    const ClusterNode& c = tree.node(ClusterTree::right(i));
    const Index rows = b % 2 == 0 ? a.rows() : c.rows();
    const Index cols = b % 2 == 0 ? c.cols() : a.cols();
    ranks[size_t(b)] =
        fixed_rank_layout(options.scheduled_rank(ClusterTree::level_of(i) + 1), rows, cols);
  }
  return ranks;
}

template <class T>
Index HODLRMatrix<T>::nbytes() const {
  std::vector<Index> ranks(blocks_.size());
  for (size_t b = 0; b < blocks_.size(); ++b)
    ranks[b] = blocks_[b].is_dense ? -1 : blocks_[b].Vt.rows;
  return hodlr_nbytes(tree_, ranks, Index(sizeof(T)));
}

template struct RowPanels<float>;
template struct RowPanels<double>;
template class HODLRMatrix<float>;
template class HODLRMatrix<double>;

}  // namespace hsslin
