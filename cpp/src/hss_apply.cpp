// HSS products: upward pass (xhat = V^T x, transferred up), coupling
// (yhat_a = B_ab xhat_b), downward pass, leaves y = D x + U yhat. The
// transpose swaps U and V, D and D^T, B_ab and B_ba^T.
//
// The factors live in one array laid out in the order the product reads
// them (see pack()), so a product on cold caches streams memory. Leaf work
// is threaded over leaves (and row chunks of large leaves) when the operator
// is large; the thin inner levels always run serially.
#include <algorithm>

#include "hsslin/hss.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

constexpr Index kChunkRows = 256;  // rows per work item in a large leaf
// Below this many stored entries times right-hand sides the products run on
// one thread: waking a second thread costs more than it saves, and on a
// machine whose BLAS threads are still spinning it can cost milliseconds.
constexpr double kParallelEntries = 1 << 17;
constexpr Index kPrefetchItems = 2;  // items ahead whose factors are requested

template <class M>
inline void prefetch(const M& block, Index max_bytes) {
  const char* p = reinterpret_cast<const char*>(block.data());
  const Index bytes = std::min<Index>(max_bytes, block.size() * Index(sizeof(*block.data())));
  for (Index off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 0);
}

}  // namespace

template <class T>
void HSSMatrix<T>::pack(std::vector<Node>&& nodes) {
  const ClusterTree& t = tree_;
  slots_.assign(size_t(t.size()) * 5, Slot{});
  std::vector<std::pair<Index, Factor>> order;  // (node, factor) in reading order
  for (Index i = t.leaf_begin(); i < t.leaf_end(); ++i) {
    order.push_back({i, kD});
    order.push_back({i, kV});
  }
  for (int l = t.levels() - 1; l >= 1; --l)
    for (Index i = ClusterTree::level_begin(l); i < ClusterTree::level_end(l); ++i)
      order.push_back({i, kV});
  for (Index i = 0; i < t.leaf_begin(); ++i) {
    order.push_back({i, kB12});
    order.push_back({i, kB21});
    order.push_back({i, kU});
  }
  for (Index i = t.leaf_begin(); i < t.leaf_end(); ++i) order.push_back({i, kU});
  // The root of a one-level tree is its only leaf; nothing else is listed twice.
  auto factor = [&](Index i, Factor f) -> Matrix<T>& {
    Node& n = nodes[size_t(i)];
    switch (f) {
      case kD:
        return n.D;
      case kU:
        return n.U;
      case kV:
        return n.V;
      case kB12:
        return n.B12;
      default:
        return n.B21;
    }
  };
  constexpr Index kAlign = 64 / Index(sizeof(T));
  auto padded = [&](Index n) { return (n + kAlign - 1) / kAlign * kAlign; };
  Index total = 0;
  for (const auto& [i, f] : order) total += padded(factor(i, f).size());
  arena_.assign(size_t(total), T(0));
  Index offset = 0;
  for (const auto& [i, f] : order) {
    Matrix<T>& M = factor(i, f);
    slots_[size_t(i) * 5 + size_t(f)] = Slot{offset, M.rows(), M.cols()};
    if (f == kD)
      Eigen::Map<RowMatrix<T>>(arena_.data() + offset, M.rows(), M.cols()) = M;
    else
      std::copy(M.data(), M.data() + M.size(), arena_.data() + offset);
    offset += padded(M.size());
    M.resize(0, 0);
  }
}

template <class T>
template <bool Transpose, class XMap, class YMap>
void HSSMatrix<T>::apply_impl(const XMap& X, YMap& Y, const ProductHooks* hooks) const {
  const ClusterTree& tree = tree_;
  const Index k = X.cols();
  const Index num_nodes = tree.size();
  auto in_basis = [&](Index i) { return Transpose ? U(i) : V(i); };
  auto out_basis = [&](Index i) { return Transpose ? V(i) : U(i); };
  // xhat (input side) and yhat (output side) per node; siblings are adjacent
  // in heap order, so [xhat_a; xhat_b] is one contiguous row-major block.
  std::vector<Index> xoff(size_t(num_nodes) + 1, 0), yoff(size_t(num_nodes) + 1, 0);
  for (Index i = 0; i < num_nodes; ++i) {
    xoff[size_t(i) + 1] = xoff[size_t(i)] + (i == 0 ? 0 : in_basis(i).cols());
    yoff[size_t(i) + 1] = yoff[size_t(i)] + (i == 0 ? 0 : out_basis(i).cols());
  }
  // Eigen vectors: aligned like the arena, so results do not depend on where
  // the allocator put the workspace.
  Eigen::Matrix<T, Eigen::Dynamic, 1> xws(xoff.back() * k), yws(yoff.back() * k);
  auto xhat = [&](Index i, Index count) {
    return RowMap<T>(xws.data() + xoff[size_t(i)] * k, count, k, Eigen::OuterStride<>(k));
  };
  auto yhat = [&](Index i, Index count) {
    return RowMap<T>(yws.data() + yoff[size_t(i)] * k, count, k, Eigen::OuterStride<>(k));
  };
  auto in_range = [&](const ClusterNode& c) {
    return Transpose ? std::make_pair(c.row_begin, c.rows())
                     : std::make_pair(c.col_begin, c.cols());
  };
  auto out_range = [&](const ClusterNode& c) {
    return Transpose ? std::make_pair(c.col_begin, c.cols())
                     : std::make_pair(c.row_begin, c.rows());
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
  const bool parallel = double(arena_.size()) * double(k) > kParallelEntries;
  const bool has_tree = tree.levels() > 0;
  if constexpr (Transpose) {
    if (!has_tree) {  // one dense block: split its rows, sum partial products
      apply_dense_transpose(X, Y, hooks);
      return;
    }
  }

  // Inner levels: usually thin (ranks of tens), and then serial; under a
  // large rank cap they can hold most of the bytes, and a level whose
  // factors are large runs its nodes in parallel (the nodes of one level
  // touch disjoint parts of xhat and yhat).
  std::vector<double> up_entries(size_t(tree.levels()), 0.0), down_entries(up_entries);
  double inner_entries = 0.0;
  for (int l = 0; l < tree.levels(); ++l) {
    for (Index i = ClusterTree::level_begin(l); i < ClusterTree::level_end(l); ++i) {
      up_entries[size_t(l)] += double(in_basis(i).size()) * double(k);
      down_entries[size_t(l)] +=
          double(B12(i).size() + B21(i).size() + (i > 0 ? out_basis(i).size() : 0)) * double(k);
    }
    inner_entries += up_entries[size_t(l)] + down_entries[size_t(l)];
  }
  // A caller's tasks run beside sweep 1 -- or, when the inner levels hold
  // no more entries than the tasks read, beside the inner levels walked on
  // one thread: a serial chain of small products, which would otherwise
  // leave the other threads waiting.
  const bool tasks_by_levels =
      hooks && hooks->tasks > 0 && has_tree && parallel && inner_entries <= hooks->work;
  auto level_parallel = [&](int l, bool up) {
    return !tasks_by_levels && (up ? up_entries : down_entries)[size_t(l)] > kParallelEntries;
  };

  // Sweep 1: diagonal blocks, fused with the leaf's input projection in the
  // leaf's first chunk (x(J) is then still in cache).
  parallel_for_hooked(
      Index(items.size()), tasks_by_levels ? nullptr : hooks,
      [&](Index t) {
        const Item& it = items[size_t(t)];
        if (t + kPrefetchItems < Index(items.size())) {
          const Index ahead = items[size_t(t + kPrefetchItems)].leaf;
          prefetch(D(ahead), 1 << 16);
          prefetch(in_basis(ahead), 1 << 16);
        }
        const ClusterNode& c = tree.node(it.leaf);
        const auto [ib, ic] = in_range(c);
        const auto [ob, oc] = out_range(c);
        if (has_tree && it.begin == ob) {
          const auto W = in_basis(it.leaf);
          auto xi = xhat(it.leaf, W.cols());
          if (ic == 0)
            xi.setZero();
          else
            xi.noalias() = W.transpose() * X.middleRows(ib, ic);
        }
        auto yblock = Y.middleRows(it.begin, it.count);
        if (ic == 0 || it.count == 0) {
          yblock.setZero();
          return;
        }
        const auto Dl = D(it.leaf);
        if constexpr (Transpose)
          yblock.noalias() =
              Dl.middleCols(it.begin - ob, it.count).transpose() * X.middleRows(ib, ic);
        else
          yblock.noalias() = Dl.middleRows(it.begin - ob, it.count) * X.middleRows(ib, ic);
      },
      parallel);
  if (!has_tree) {
    if (hooks && hooks->rows_done) hooks->rows_done(0, Y.rows());
    return;
  }

  auto inner_levels = [&]() {
    // Upward pass through the inner levels.
    for (int l = tree.levels() - 1; l >= 1; --l) {
      const Index begin = ClusterTree::level_begin(l);
      parallel_for(
          begin, ClusterTree::level_end(l),
          [&](Index i) {
            const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
            const Index stacked = in_basis(a).cols() + in_basis(b).cols();
            const auto W = in_basis(i);
            xhat(i, W.cols()).noalias() = W.transpose() * xhat(a, stacked);
          },
          parallel && level_parallel(l, true));
    }
    // Coupling and downward pass, top-down: one task per (node, child), which
    // writes that child's yhat only -- its coupling product, then its rows of
    // the node's transfer matrix times the node's yhat.
    for (int l = 0; l < tree.levels(); ++l) {
      const Index begin = ClusterTree::level_begin(l);
      parallel_for(
          2 * begin, 2 * ClusterTree::level_end(l),
          [&](Index task) {
            const Index i = task / 2;
            const bool first = task % 2 == 0;
            const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
            const Index c = first ? a : b;  // the child whose yhat this task writes
            auto yc = yhat(c, out_basis(c).cols());
            const auto xo = xhat(first ? b : a, in_basis(first ? b : a).cols());
            if constexpr (Transpose)
              yc.noalias() = (first ? B21(i) : B12(i)).transpose() * xo;
            else
              yc.noalias() = (first ? B12(i) : B21(i)) * xo;
            if (i > 0) {
              const auto T_i = out_basis(i);
              const Index r0 = first ? 0 : out_basis(a).cols();
              yc.noalias() += T_i.middleRows(r0, yc.rows()) * yhat(i, T_i.cols());
            }
          },
          parallel && level_parallel(l, false));
    }
  };
  if (tasks_by_levels)
    parallel_for_hooked(1, hooks, [&](Index) { inner_levels(); }, parallel);
  else
    inner_levels();
  // Sweep 2: leaves add their basis times yhat.
  parallel_for(
      0, Index(items.size()),
      [&](Index t) {
        const Item& it = items[size_t(t)];
        if (t + kPrefetchItems < Index(items.size()))
          prefetch(out_basis(items[size_t(t + kPrefetchItems)].leaf), 1 << 16);
        const auto W = out_basis(it.leaf);
        if (it.count > 0 && W.cols() > 0) {
          const Index ob = out_range(tree.node(it.leaf)).first;
          Y.middleRows(it.begin, it.count).noalias() +=
              W.middleRows(it.begin - ob, it.count) * yhat(it.leaf, W.cols());
        }
        if (hooks && hooks->rows_done) hooks->rows_done(it.begin, it.count);
      },
      parallel);
}

template <class T>
template <class XMap, class YMap>
void HSSMatrix<T>::apply_dense_transpose(const XMap& X, YMap& Y, const ProductHooks* hooks) const {
  if (hooks) {  // one dense block: the tasks first, then the product
    parallel_for(0, hooks->tasks, hooks->task);
    apply_dense_transpose(X, Y, nullptr);
    if (hooks->rows_done) hooks->rows_done(0, Y.rows());
    return;
  }
  const auto A = D(0);
  const Index m = A.rows(), n = A.cols(), k = X.cols();
  const bool parallel = double(A.size()) * double(k) > kParallelEntries;
  const Index parts =
      parallel ? std::min<Index>((m + kChunkRows - 1) / kChunkRows, 2 * Index(get_num_threads()))
               : 1;
  if (parts <= 1) {
    Y.noalias() = A.transpose() * X;
    return;
  }
  std::vector<Matrix<T>> partial(size_t(parts), Matrix<T>(n, k));
  parallel_for(0, parts, [&](Index p) {
    const Index r0 = m * p / parts, r1 = m * (p + 1) / parts;
    partial[size_t(p)].noalias() =
        A.middleRows(r0, r1 - r0).transpose() * X.middleRows(r0, r1 - r0);
  });
  Y = partial[0];
  for (Index p = 1; p < parts; ++p) Y += partial[size_t(p)];
}

template <class T>
void HSSMatrix<T>::apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose,
                         const ProductHooks* hooks) const {
  HSSLIN_CHECK(X.rows == (transpose ? rows() : cols()) && Y.rows == (transpose ? cols() : rows()) &&
                   X.cols == Y.cols,
               "apply: operand shapes do not match the ", rows(), "x", cols(), " matrix");
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
  // Values, the tree's four range bounds per node, one (offset, rows, cols)
  // slot per stored factor, and a fixed header (shape, levels, options, flags).
  return Index(arena_.size()) * Index(sizeof(T)) + tree_.size() * 4 * Index(sizeof(Index)) +
         Index(slots_.size()) * Index(sizeof(Slot)) + 64;
}

template <class T>
Index HSSMatrix<T>::row_rank(Index i) const {
  return i == 0 ? -1 : U(i).cols();
}

template <class T>
Index HSSMatrix<T>::col_rank(Index i) const {
  return i == 0 ? -1 : V(i).cols();
}

#define HSSLIN_INSTANTIATE_HSS_APPLY(T)                                                   \
  template void HSSMatrix<T>::pack(std::vector<Node>&&);                                  \
  template void HSSMatrix<T>::apply(const DenseView<const T>&, const DenseView<T>&, bool, \
                                    const ProductHooks*) const;                           \
  template void HSSMatrix<T>::to_dense(T*, bool) const;                                   \
  template Index HSSMatrix<T>::nbytes() const;                                            \
  template Index HSSMatrix<T>::row_rank(Index) const;                                     \
  template Index HSSMatrix<T>::col_rank(Index) const;
HSSLIN_INSTANTIATE_HSS_APPLY(float)
HSSLIN_INSTANTIATE_HSS_APPLY(double)

}  // namespace hsslin
