// HSS products: upward pass (xhat = V^T x, transferred up), coupling
// (yhat_a = B_ab xhat_b), downward pass, leaves y = D x + U yhat. The
// transpose swaps U and V, D and D^T, B_ab and B_ba^T. Leaf work is threaded
// over leaves (and over row chunks of large leaves); the thin inner levels
// run serially, where a parallel region would cost more than it saves.
#include <algorithm>

#include "hsslin/hss.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

constexpr Index kChunkRows = 256;  // rows per work item in a large leaf
// Below this many stored entries times right-hand sides the products run on
// one thread: waking a second thread costs more than it saves, and on a
// machine whose BLAS threads are still spinning it can cost milliseconds.
constexpr double kParallelEntries = 1 << 22;

template <class T>
inline void prefetch(const Matrix<T>& M) {
  const char* p = reinterpret_cast<const char*>(M.data());
  const Index bytes = M.size() * Index(sizeof(T));
  for (Index off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 0);
}

template <class T, class XMap>
auto rows_of(const XMap& X, Index begin, Index count) {
  return X.middleRows(begin, count);
}

}  // namespace

template <class T>
template <bool Transpose, class XMap, class YMap>
void HSSMatrix<T>::apply_impl(const XMap& X, YMap& Y) const {
  const ClusterTree& tree = tree_;
  const Index k = X.cols();
  const Index num_nodes = tree.size();
  // Sizes of xhat (input side) and yhat (output side) per node; siblings are
  // adjacent in heap order, so [xhat_a; xhat_b] is one contiguous row-major block.
  auto in_basis = [&](Index i) -> const Matrix<T>& {
    return Transpose ? nodes_[size_t(i)].U : nodes_[size_t(i)].V;
  };
  auto out_basis = [&](Index i) -> const Matrix<T>& {
    return Transpose ? nodes_[size_t(i)].V : nodes_[size_t(i)].U;
  };
  std::vector<Index> xoff(size_t(num_nodes) + 1, 0), yoff(size_t(num_nodes) + 1, 0);
  for (Index i = 0; i < num_nodes; ++i) {
    xoff[size_t(i) + 1] = xoff[size_t(i)] + (i == 0 ? 0 : in_basis(i).cols());
    yoff[size_t(i) + 1] = yoff[size_t(i)] + (i == 0 ? 0 : out_basis(i).cols());
  }
  std::vector<T> xws(size_t(xoff.back() * k)), yws(size_t(yoff.back() * k));
  auto xhat = [&](Index i, Index count) {
    return RowMap<T>(xws.data() + xoff[size_t(i)] * k, count, k, Eigen::OuterStride<>(k));
  };
  auto yhat = [&](Index i, Index count) {
    return RowMap<T>(yws.data() + yoff[size_t(i)] * k, count, k, Eigen::OuterStride<>(k));
  };
  auto in_range = [&](const ClusterNode& c) {
    return Transpose ? std::make_pair(c.row_begin, c.rows()) : std::make_pair(c.col_begin, c.cols());
  };
  auto out_range = [&](const ClusterNode& c) {
    return Transpose ? std::make_pair(c.col_begin, c.cols()) : std::make_pair(c.row_begin, c.rows());
  };

  // Work items of the leaf sweeps: (leaf, first output row, row count).
  struct Item {
    Index leaf, begin, count;
  };
  std::vector<Item> items;
  for (Index i = tree.leaf_begin(); i < tree.leaf_end(); ++i) {
    const auto [ob, oc] = out_range(tree.node(i));
    for (Index r = 0; r < oc || (r == 0 && oc == 0); r += kChunkRows)
      items.push_back({i, ob + r, std::min(kChunkRows, oc - r)});
  }
  const bool parallel = double(nbytes()) / sizeof(T) * double(k) > kParallelEntries;
  const bool has_tree = tree.levels() > 0;
  // The inner levels' small factors are needed right after the leaf sweep;
  // each leaf item prefetches its share of them so they arrive in time.
  std::vector<const Matrix<T>*> inner;
  for (Index i = 0; i < tree.leaf_begin(); ++i) {
    const Node& nd = nodes_[size_t(i)];
    for (const Matrix<T>* M : {&nd.B12, &nd.B21, &nd.U, &nd.V})
      if (M->size() > 0) inner.push_back(M);
  }
  const Index per_item = (Index(inner.size()) + Index(items.size()) - 1) / std::max<Index>(1, Index(items.size()));

  // Sweep 1: diagonal blocks, fused with the leaf's input projection in the
  // leaf's first chunk (x(J) is then still in cache). The next item's blocks
  // are prefetched: after a large dense product has flushed the caches, the
  // many small blocks are otherwise fetched at latency, not bandwidth.
  parallel_for(0, Index(items.size()), [&](Index t) {
    const Item& it = items[size_t(t)];
    if (t + 1 < Index(items.size())) {
      const Index next = items[size_t(t) + 1].leaf;
      prefetch(nodes_[size_t(next)].D);
      prefetch(in_basis(next));
    }
    for (Index j = t * per_item; j < std::min<Index>(Index(inner.size()), (t + 1) * per_item); ++j)
      prefetch(*inner[size_t(j)]);
    const ClusterNode& c = tree.node(it.leaf);
    const auto [ib, ic] = in_range(c);
    const auto [ob, oc] = out_range(c);
    if (has_tree && it.begin == ob) {
      const Matrix<T>& W = in_basis(it.leaf);
      auto xi = xhat(it.leaf, W.cols());
      if (ic == 0) xi.setZero();
      else xi.noalias() = W.transpose() * rows_of<T>(X, ib, ic);
    }
    auto yblock = Y.middleRows(it.begin, it.count);
    if (ic == 0 || it.count == 0) {
      yblock.setZero();
      return;
    }
    const Matrix<T>& D = nodes_[size_t(it.leaf)].D;
    if constexpr (Transpose)
      yblock.noalias() = D.middleCols(it.begin - ob, it.count).transpose() * rows_of<T>(X, ib, ic);
    else
      yblock.noalias() = D.middleRows(it.begin - ob, it.count) * rows_of<T>(X, ib, ic);
  }, parallel);
  if (!has_tree) return;

  // Upward pass through the inner levels.
  for (int l = tree.levels() - 1; l >= 1; --l) {
    for (Index i = ClusterTree::level_begin(l); i < ClusterTree::level_end(l); ++i) {
      const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
      const Index stacked = in_basis(a).cols() + in_basis(b).cols();
      xhat(i, in_basis(i).cols()).noalias() = in_basis(i).transpose() * xhat(a, stacked);
    }
  }
  // Coupling and downward pass, top-down.
  for (int l = 0; l < tree.levels(); ++l) {
    for (Index i = ClusterTree::level_begin(l); i < ClusterTree::level_end(l); ++i) {
      const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
      const Node& nd = nodes_[size_t(i)];
      auto ya = yhat(a, out_basis(a).cols());
      auto yb = yhat(b, out_basis(b).cols());
      const auto xa = xhat(a, in_basis(a).cols());
      const auto xb = xhat(b, in_basis(b).cols());
      if constexpr (Transpose) {
        ya.noalias() = nd.B21.transpose() * xb;
        yb.noalias() = nd.B12.transpose() * xa;
      } else {
        ya.noalias() = nd.B12 * xb;
        yb.noalias() = nd.B21 * xa;
      }
      if (i > 0) {
        const Index stacked = out_basis(a).cols() + out_basis(b).cols();
        yhat(a, stacked).noalias() += out_basis(i) * yhat(i, out_basis(i).cols());
      }
    }
  }
  // Sweep 2: leaves add their basis times yhat.
  parallel_for(0, Index(items.size()), [&](Index t) {
    const Item& it = items[size_t(t)];
    if (t + 1 < Index(items.size())) prefetch(out_basis(items[size_t(t) + 1].leaf));
    const Matrix<T>& W = out_basis(it.leaf);
    if (it.count == 0 || W.cols() == 0) return;
    const Index ob = out_range(tree.node(it.leaf)).first;
    Y.middleRows(it.begin, it.count).noalias() +=
        W.middleRows(it.begin - ob, it.count) * yhat(it.leaf, W.cols());
  }, parallel);
}

template <class T>
void HSSMatrix<T>::apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose) const {
  HSSLIN_CHECK(X.rows == (transpose ? rows() : cols()) && Y.rows == (transpose ? cols() : rows()) &&
                   X.cols == Y.cols,
               "apply: operand shapes do not match the ", rows(), "x", cols(), " matrix");
  auto run = [&](const auto& Xm, auto& Ym) {
    if (transpose) apply_impl<true>(Xm, Ym);
    else apply_impl<false>(Xm, Ym);
  };
  auto with_y = [&](const auto& Xm) {
    if (Y.row_major()) {
      RowMap<T> Ym(Y.data, Y.rows, Y.cols, Eigen::OuterStride<>(std::max<Index>(Y.row_stride, 1)));
      run(Xm, Ym);
    } else {
      ColMap<T> Ym(Y.data, Y.rows, Y.cols, Eigen::OuterStride<>(std::max<Index>(Y.col_stride, 1)));
      run(Xm, Ym);
    }
  };
  if (X.row_major()) {
    ConstRowMap<T> Xm(X.data, X.rows, X.cols, Eigen::OuterStride<>(std::max<Index>(X.row_stride, 1)));
    with_y(Xm);
  } else {
    ConstColMap<T> Xm(X.data, X.rows, X.cols, Eigen::OuterStride<>(std::max<Index>(X.col_stride, 1)));
    with_y(Xm);
  }
}

template <class T>
void HSSMatrix<T>::to_dense(T* out, bool transpose) const {
  const Index m = transpose ? cols() : rows(), n = transpose ? rows() : cols();
  constexpr Index kBlock = 256;
  for (Index c0 = 0; c0 < n; c0 += kBlock) {
    const Index b = std::min(kBlock, n - c0);
    Matrix<T> E = Matrix<T>::Zero(n, b);
    for (Index j = 0; j < b; ++j) E(c0 + j, j) = T(1);
    DenseView<const T> x{E.data(), n, b, 1, n};
    DenseView<T> y{out + c0, m, b, n, 1};
    apply(x, y, transpose);
  }
}

template <class T>
Index HSSMatrix<T>::nbytes() const {
  Index entries = 0;
  for (const Node& nd : nodes_)
    entries += nd.D.size() + nd.U.size() + nd.V.size() + nd.B12.size() + nd.B21.size();
  // Tree: four range bounds per node; factors: two extents per stored matrix;
  // header: shape, levels, options and flags.
  const Index metadata = tree_.size() * (4 + 5 * 2) * Index(sizeof(Index)) + 64;
  return entries * Index(sizeof(T)) + metadata;
}

template <class T>
Index HSSMatrix<T>::row_rank(Index i) const {
  return i == 0 ? -1 : nodes_[size_t(i)].U.cols();
}

template <class T>
Index HSSMatrix<T>::col_rank(Index i) const {
  return i == 0 ? -1 : nodes_[size_t(i)].V.cols();
}

#define HSSLIN_INSTANTIATE_HSS_APPLY(T)                                                   \
  template void HSSMatrix<T>::apply(const DenseView<const T>&, const DenseView<T>&, bool) const; \
  template void HSSMatrix<T>::to_dense(T*, bool) const;                                   \
  template Index HSSMatrix<T>::nbytes() const;                                            \
  template Index HSSMatrix<T>::row_rank(Index) const;                                     \
  template Index HSSMatrix<T>::col_rank(Index) const;
HSSLIN_INSTANTIATE_HSS_APPLY(float)
HSSLIN_INSTANTIATE_HSS_APPLY(double)

}  // namespace hsslin
