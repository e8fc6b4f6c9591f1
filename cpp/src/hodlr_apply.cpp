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

template <class T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

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

// y[0, count) (=, or += when `add`) M(rows [r, r + count), :) t, the rows a
// stretch of M's panels: 8-row panels are summed in four independent
// column streams and read front to back.
template <class T>
void panels_times_vector(const RowPanels<T>& M, Index r, Index count, const T* t, T* y, bool add) {
  static_assert(RowPanels<T>::kRows == 8, "the kernel is written for 8-row panels");
  using V8 = Eigen::Matrix<T, 8, 1>;
  using P8 = Eigen::Map<const V8>;
  const Index n = M.cols;
  const T* p = M.at_row(r);
  Index a = 0;
  for (; a + 8 <= count; a += 8, p += 8 * n) {
    V8 s0 = V8::Zero(), s1 = V8::Zero(), s2 = V8::Zero(), s3 = V8::Zero();
    Index j = 0;
    for (; j + 4 <= n; j += 4) {
      s0 += P8(p + 8 * j) * t[j];
      s1 += P8(p + 8 * j + 8) * t[j + 1];
      s2 += P8(p + 8 * j + 16) * t[j + 2];
      s3 += P8(p + 8 * j + 24) * t[j + 3];
    }
    for (; j < n; ++j) s0 += P8(p + 8 * j) * t[j];
    Eigen::Map<V8> out(y + a);
    if (add)
      out += (s0 + s1) + (s2 + s3);
    else
      out = (s0 + s1) + (s2 + s3);
  }
  if (a < count) {
    Eigen::Map<const Matrix<T>> P(p, count - a, n);
    Eigen::Map<const Vector<T>> tv(t, n);
    Eigen::Map<Vector<T>> out(y + a, count - a);
    if (add)
      out.noalias() += P * tv;
    else
      out.noalias() = P * tv;
  }
}

// out[0, c1 - c0) += M(rows [r, r + count), c0 : c1)^T x[0, count), the rows
// a stretch of M's panels. Over the 8-row panels each column keeps 8 partial
// sums, reduced once at the end.
template <class T>
void panels_transpose_times_vector(const RowPanels<T>& M, Index r, Index count, Index c0, Index c1,
                                   const T* x, T* out) {
  static_assert(RowPanels<T>::kRows == 8, "the kernel is written for 8-row panels");
  const Index w = c1 - c0;
  Eigen::Matrix<T, 8, Eigen::Dynamic> partial = Eigen::Matrix<T, 8, Eigen::Dynamic>::Zero(8, w);
  const T* p = M.at_row(r);
  Index a = 0;
  for (; a + 8 <= count; a += 8, p += 8 * M.cols) {
    Eigen::Map<const Eigen::Matrix<T, 8, Eigen::Dynamic>> P(p + 8 * c0, 8, w);
    partial.array() += P.array().colwise() * Eigen::Map<const Eigen::Array<T, 8, 1>>(x + a);
  }
  Eigen::Map<Vector<T>> o(out, w);
  o += partial.colwise().sum().transpose();
  if (a < count) {
    Eigen::Map<const Matrix<T>> P(p, count - a, M.cols);
    o.noalias() += P.middleCols(c0, w).transpose() * Eigen::Map<const Vector<T>>(x + a, count - a);
  }
}
// One contiguous column: the panel kernels above apply.
template <class XB, class YB>
bool one_contiguous_column(const XB& X, const YB& Y) {
  return X.cols() == 1 && (X.rows() < 2 || X.rowStride() == 1) &&
         (Y.rows() < 2 || Y.rowStride() == 1);
}

// Y (=, or += when `add`) M(rows [r, r + count), :) X, the rows a stretch of
// M's panels. Several columns (or strided ones) multiply the stretch copied
// out of its panels.
template <class T, class XB, class YB>
void panels_times(const RowPanels<T>& M, Index r, Index count, const XB& X, YB&& Y, bool add) {
  if (one_contiguous_column(X, Y))
    panels_times_vector(M, r, count, X.data(), Y.data(), add);
  else if (add)
    Y.noalias() += M.rows_of(r, count) * X;
  else
    Y.noalias() = M.rows_of(r, count) * X;
}

// Y += M(rows [r, r + count), c0 : c1)^T X, the rows a stretch of M's panels
// and X their count rows. Several columns (or strided ones) take the panels
// one at a time.
template <class T, class XB, class YB>
void panels_transpose_times(const RowPanels<T>& M, Index r, Index count, Index c0, Index c1,
                            const XB& X, YB&& Y) {
  if (one_contiguous_column(X, Y)) {
    panels_transpose_times_vector(M, r, count, c0, c1, X.data(), Y.data());
    return;
  }
  for (Index a = 0; a < count; a += RowPanels<T>::kRows) {
    const Index h = std::min(RowPanels<T>::kRows, count - a);
    const Eigen::Map<const Matrix<T>> P(M.at_row(r + a) + c0 * h, h, c1 - c0);
    Y.noalias() += P.transpose() * X.middleRows(a, h);
  }
}
}  // namespace

template <class T>
template <bool Transpose, class XMap, class YMap>
void HODLRMatrix<T>::apply_impl(const XMap& X, YMap& Y, const ProductHooks* hooks) const {
  const ClusterTree& tree = tree_;
  const Index k = X.cols();
  const Index inner = tree.leaf_begin();
  // In A, block 2i+0 maps columns of the right child to rows of the left;
  // block 2i+1 the reverse. The transpose swaps rows and columns.
  auto in_node = [&](Index b) {
    const bool lower = b % 2 == 1;
    const Index i = b / 2;
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
    const StoredBlock& blk = block(b);
    toff[size_t(b) + 1] = toff[size_t(b)] + (blk.is_dense ? 0 : blk.Vt.rows);
  }
  Eigen::Matrix<T, Eigen::Dynamic, 1> tws(toff.back() * k);  // aligned: reproducible rounding
  auto t_of = [&](Index b, Index r) {
    return RowMap<T>(tws.data() + toff[size_t(b)] * k, r, k, Eigen::OuterStride<>(k));
  };
  Index stored = 0;  // values the product reads
  for (const RowPanels<T>& D : leaves_) stored += D.data.size();
  for (const StoredBlock& b : blocks_)
    stored += b.dense.data.size() + b.U.data.size() + b.Vt.data.size();
  const bool parallel = worth_threading(double(stored) * double(k));

  // Sweep 1: t_b = V_b^T x (the transpose: U_b^T x, U_b's panels taken leaf by leaf).
  parallel_for_hooked(
      2 * inner, hooks,
      [&](Index b) {
        const StoredBlock& blk = block(b);
        const Index r = blk.Vt.rows;
        if (blk.is_dense || r == 0) return;
        const Index src = in_node(b);
        const auto [ib, ic] = in_range(tree.node(src));
        auto t = t_of(b, r);
        if constexpr (!Transpose) {
          panels_times(blk.Vt, 0, r, X.middleRows(ib, ic), t, false);
        } else {
          t.setZero();
          Index off = 0;
          for (Index len : segments(src, true)) {
            panels_transpose_times(blk.U, off, len, 0, r, X.middleRows(ib + off, len), t);
            off += len;
          }
        }
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
  // instead of one per level. A chunk starts kChunkRows-aligned within its
  // leaf, so it covers whole row panels of D and of every U above it.
  static_assert(kChunkRows % RowPanels<T>::kRows == 0, "chunks must cover whole panels");
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
        const RowPanels<T>& D = leaves_[size_t(it.leaf - inner)];
        if (ic == 0) {
          y.setZero();
        } else if constexpr (Transpose) {
          y.setZero();
          panels_transpose_times(D, 0, D.rows, lo, lo + it.count, X.middleRows(ib, ic), y);
        } else {
          panels_times(D, lo, it.count, X.middleRows(ib, ic), y, false);
        }
        for (Index c = it.leaf; c > 0; c = (c - 1) / 2) {
          const Index b = upper_block(c);
          const StoredBlock& blk = block(b);
          const Index off = it.begin - out_range(tree.node(c)).first;
          if (blk.is_dense) {
            const Index src = in_node(b);
            const auto [jb, jc] = in_range(tree.node(src));
            if (jc == 0) continue;
            if constexpr (Transpose) {
              // The block's rows are the input here, held in panels leaf by leaf.
              Index so = 0;
              for (Index len : segments(src, true)) {
                panels_transpose_times(blk.dense, so, len, off, off + it.count,
                                       X.middleRows(jb + so, len), y);
                so += len;
              }
            } else {
              panels_times(blk.dense, off, it.count, X.middleRows(jb, jc), y, true);
            }
          } else if (const Index r = blk.Vt.rows; r > 0) {
            if constexpr (Transpose)
              panels_transpose_times(blk.Vt, 0, r, off, off + it.count, t_of(b, r), y);
            else
              panels_times(blk.U, off, it.count, t_of(b, r), y, true);
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
    if (hooks) tasks_only = ProductHooks{hooks->tasks, hooks->task, {}, hooks->work};
    apply(X, Ya, transpose, hooks ? &tasks_only : nullptr);
    copy_view(as_const(Ya), Y);
    if (hooks && hooks->rows_done) hooks->rows_done(0, Y.rows);
    return;
  }
  with_maps(X, Y, [&](const auto& Xm, auto& Ym) {
    if (transpose)
      apply_impl<true>(Xm, Ym, hooks);
    else
      apply_impl<false>(Xm, Ym, hooks);
  });
}

template <class T>
void HODLRMatrix<T>::to_dense(T* out, bool transpose) const {
  dense_by_columns<T>(
      transpose ? cols() : rows(), transpose ? rows() : cols(), out,
      [&](const DenseView<const T>& x, const DenseView<T>& y) { apply(x, y, transpose); });
}

template class HODLRMatrix<float>;
template class HODLRMatrix<double>;

}  // namespace hsslin
