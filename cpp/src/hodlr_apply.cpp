// HODLR products. Sweep 1 projects the input onto every off-diagonal
// block's right factor (t_b = V_b^T x(J_b)); sweep 2 sets y = D x on the
// leaves and adds U_b t_b of every block above each leaf. Both sweeps are
// threaded; in each, every output row is written by exactly one work item.
#include <algorithm>
#include <cstdint>

#include "hsslin/hodlr.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {
constexpr Index kChunkRows = 256;
constexpr double kParallelEntries = 1 << 18;  // see hss_apply.cpp

bool is_aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % EIGEN_MAX_ALIGN_BYTES == 0;
}

// Eigen-aligned contiguous storage for a rows x cols operand in the layout
// (row- or column-major) of `like`; `view` is pointed at it.
template <class T>
Eigen::Matrix<T, Eigen::Dynamic, 1> aligned_like(const DenseView<const T>& like,
                                                 DenseView<T>& view) {
  Eigen::Matrix<T, Eigen::Dynamic, 1> buf(like.rows * like.cols);
  const bool rm = like.row_major();
  view = DenseView<T>{buf.data(), like.rows, like.cols, rm ? like.cols : 1, rm ? 1 : like.rows};
  return buf;
}

// Copies between two views of the same shape (any strides).
template <class T>
void copy_view(const DenseView<const T>& src, const DenseView<T>& dst) {
  for (Index i = 0; i < src.rows; ++i)
    for (Index j = 0; j < src.cols; ++j)
      dst.data[i * dst.row_stride + j * dst.col_stride] =
          src.data[i * src.row_stride + j * src.col_stride];
}

template <class T>
DenseView<const T> as_const(const DenseView<T>& v) {
  return {v.data, v.rows, v.cols, v.row_stride, v.col_stride};
}
}  // namespace

template <class T>
template <bool Transpose, class XMap, class YMap>
void HODLRMatrix<T>::apply_impl(const XMap& X, YMap& Y, const ProductHooks* hooks) const {
  const ClusterTree& tree = tree_;
  const Index k = X.cols();
  const Index inner = tree.leaf_begin();
  auto block = [&](Index task) -> const Block& {
    const Node& nd = nodes_[size_t(task / 2)];
    return task % 2 == 0 ? nd.B12 : nd.B21;
  };
  // In A, block 2i+0 maps columns of the right child to rows of the left;
  // block 2i+1 the reverse. The transpose swaps rows and columns.
  auto in_node = [&](Index task) {
    const bool lower = task % 2 == 1;
    const Index i = task / 2;
    const bool from_right = Transpose ? lower : !lower;
    return from_right ? ClusterTree::right(i) : ClusterTree::left(i);
  };
  auto in_range = [&](const ClusterNode& c) {
    return Transpose ? std::make_pair(c.row_begin, c.rows())
                     : std::make_pair(c.col_begin, c.cols());
  };
  auto out_range = [&](const ClusterNode& c) {
    return Transpose ? std::make_pair(c.col_begin, c.cols())
                     : std::make_pair(c.row_begin, c.rows());
  };
  std::vector<Index> toff(size_t(2 * inner) + 1, 0);
  for (Index b = 0; b < 2 * inner; ++b) {
    const Block& blk = block(b);
    toff[size_t(b) + 1] = toff[size_t(b)] + (blk.is_dense ? 0 : blk.U.cols());
  }
  Eigen::Matrix<T, Eigen::Dynamic, 1> tws(toff.back() * k);  // aligned: reproducible rounding
  auto t_of = [&](Index b, Index r) {
    return RowMap<T>(tws.data() + toff[size_t(b)] * k, r, k, Eigen::OuterStride<>(k));
  };
  const bool parallel = double(nbytes()) / sizeof(T) * double(k) > kParallelEntries;

  parallel_for_hooked(
      2 * inner, hooks,
      [&](Index b) {
        const Block& blk = block(b);
        if (blk.is_dense || blk.U.cols() == 0) return;
        const auto [ib, ic] = in_range(tree.node(in_node(b)));
        const Matrix<T>& W = Transpose ? blk.U : blk.V;
        t_of(b, W.cols()).noalias() = W.transpose() * X.middleRows(ib, ic);
      },
      parallel);

  struct Item {
    Index leaf, begin, count;
  };
  std::vector<Item> items;
  for (Index i = tree.leaf_begin(); i < tree.leaf_end(); ++i) {
    const auto [ob, oc] = out_range(tree.node(i));
    for (Index r = 0; r < oc; r += kChunkRows)
      items.push_back({i, ob + r, std::min(kChunkRows, oc - r)});
  }
  // Sweeps 2 and 3 in one pass over the output: a work item (a row chunk of
  // a leaf) sets y = D x and then adds U_b t_b of the block above it at each
  // level, from the leaf's parent up to the root -- for every row the order
  // in which level-by-level sweeps would add them, with one parallel region
  // instead of one per level.
  auto upper_block = [&](Index c) {  // the block of c's parent whose output rows are c's
    const Index i = (c - 1) / 2;
    const bool is_left = c == ClusterTree::left(i);
    return 2 * i + ((Transpose ? !is_left : is_left) ? 0 : 1);
  };
  parallel_for(
      0, Index(items.size()),
      [&](Index t) {
        const Item& it = items[size_t(t)];
        const ClusterNode& leaf = tree.node(it.leaf);
        auto y = Y.middleRows(it.begin, it.count);
        const auto [ib, ic] = in_range(leaf);
        const Index lo = it.begin - out_range(leaf).first;
        const Matrix<T>& D = nodes_[size_t(it.leaf)].D;
        if (ic == 0)
          y.setZero();
        else if constexpr (Transpose)
          y.noalias() = D.middleCols(lo, it.count).transpose() * X.middleRows(ib, ic);
        else
          y.noalias() = D.middleRows(lo, it.count) * X.middleRows(ib, ic);
        for (Index c = it.leaf; c > 0; c = (c - 1) / 2) {
          const Index b = upper_block(c);
          const Block& blk = block(b);
          const Index off = it.begin - out_range(tree.node(c)).first;
          if (blk.is_dense) {
            const auto [jb, jc] = in_range(tree.node(in_node(b)));
            if (jc == 0) continue;
            if constexpr (Transpose)
              y.noalias() += blk.dense.middleCols(off, it.count).transpose() * X.middleRows(jb, jc);
            else
              y.noalias() += blk.dense.middleRows(off, it.count) * X.middleRows(jb, jc);
          } else if (blk.U.cols() > 0) {
            const Matrix<T>& W = Transpose ? blk.V : blk.U;
            y.noalias() += W.middleRows(off, it.count) * t_of(b, W.cols());
          }
        }
        if (hooks && hooks->rows_done) hooks->rows_done(it.begin, it.count);
      },
      parallel);
}

template <class T>
void HODLRMatrix<T>::apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose,
                           const ProductHooks* hooks) const {
  HSSLIN_CHECK(X.rows == (transpose ? rows() : cols()) && Y.rows == (transpose ? cols() : rows()) &&
                   X.cols == Y.cols,
               "apply: operand shapes do not match the ", rows(), "x", cols(), " matrix");
  // Eigen's vectorized loops peel to the operands' alignment, and the peeled
  // part rounds differently; so that a product does not depend on where the
  // caller's buffers lie, misaligned operands go through aligned copies
  // (O(size of x and y), small beside the product itself).
  if (!is_aligned(X.data) && X.rows * X.cols > 0) {
    DenseView<T> Xa;
    const auto keep = aligned_like(X, Xa);
    copy_view(X, Xa);
    apply(as_const(Xa), Y, transpose, hooks);
    return;
  }
  if (!is_aligned(Y.data) && Y.rows * Y.cols > 0) {
    DenseView<T> Ya;  // every entry is written by the product: no copy in
    const auto keep = aligned_like(as_const(Y), Ya);
    ProductHooks tasks_only;  // rows are final only after the copy
    if (hooks) tasks_only = ProductHooks{hooks->tasks, hooks->task, {}};
    apply(X, Ya, transpose, hooks ? &tasks_only : nullptr);
    copy_view(as_const(Ya), Y);
    if (hooks && hooks->rows_done) hooks->rows_done(0, Y.rows);
    return;
  }
  auto run = [&](const auto& Xm, auto& Ym) {
    if (transpose)
      apply_impl<true>(Xm, Ym, hooks);
    else
      apply_impl<false>(Xm, Ym, hooks);
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
    ConstRowMap<T> Xm(X.data, X.rows, X.cols,
                      Eigen::OuterStride<>(std::max<Index>(X.row_stride, 1)));
    with_y(Xm);
  } else {
    ConstColMap<T> Xm(X.data, X.rows, X.cols,
                      Eigen::OuterStride<>(std::max<Index>(X.col_stride, 1)));
    with_y(Xm);
  }
}

template <class T>
void HODLRMatrix<T>::to_dense(T* out, bool transpose) const {
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
Index HODLRMatrix<T>::nbytes() const {
  Index entries = 0, matrices = 0;
  for (Index i = 0; i < tree_.size(); ++i) {
    const Node& nd = nodes_[size_t(i)];
    if (tree_.is_leaf(i)) {
      entries += nd.D.size();
      matrices += 1;
      continue;
    }
    for (const Block* b : {&nd.B12, &nd.B21}) {
      entries += b->is_dense ? b->dense.size() : b->U.size() + b->V.size();
      matrices += b->is_dense ? 1 : 2;
    }
  }
  // Tree ranges (4 per node), two extents and a dense flag per stored matrix, header.
  return entries * Index(sizeof(T)) + tree_.size() * 4 * Index(sizeof(Index)) +
         matrices * (2 * Index(sizeof(Index)) + 1) + 64;
}

#define HSSLIN_INSTANTIATE_HODLR_APPLY(T)                                                   \
  template void HODLRMatrix<T>::apply(const DenseView<const T>&, const DenseView<T>&, bool, \
                                      const ProductHooks*) const;                           \
  template void HODLRMatrix<T>::to_dense(T*, bool) const;                                   \
  template Index HODLRMatrix<T>::nbytes() const;
HSSLIN_INSTANTIATE_HODLR_APPLY(float)
HSSLIN_INSTANTIATE_HODLR_APPLY(double)

}  // namespace hsslin
