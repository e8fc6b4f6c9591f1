// HSS products: upward pass (xhat = V^T x, transferred up), coupling
// (yhat_a = B_ab xhat_b), downward pass, leaves y = D x + U yhat. The
// transpose swaps U and V, D and D^T, B_ab and B_ba^T.
//
// The factors live in one array laid out in the order the product reads
// them (see pack()), so a product on cold caches streams memory. Leaf work
// is threaded over leaves (and row chunks of large leaves) when the operator
// is large; the thin inner levels run serially unless a level is large.
#include <algorithm>

#include "hsslin/hss.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

constexpr Index kChunkRows = 256;    // rows per work item in a large leaf
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

/// One product Y = op(H) X (op = identity, or the transpose), in named sweeps
/// as STRUMPACK's apply_fwd / apply_bwd: leaf_forward (y = D x and the
/// leaves' xhat = V^T x), upward (xhat through the inner levels), downward
/// (couplings and transfers give every node's yhat), leaf_backward
/// (y += U yhat). The transpose swaps U and V, D and D^T, B_ab and B_ba^T.
template <class T>
template <bool Transpose>
class HSSMatrix<T>::Product {
 public:
  Product(const HSSMatrix& H, Index k, const ProductHooks* hooks);

  template <class XMap, class YMap>
  void run(const XMap& X, YMap& Y) {
    const bool has_tree = tree_.levels() > 0;
    leaf_forward(X, Y, tasks_by_levels_ ? nullptr : hooks_);
    if (!has_tree) {
      if (hooks_ && hooks_->rows_done) hooks_->rows_done(0, Y.rows());
      return;
    }
    if (tasks_by_levels_)
      parallel_for_hooked(1, hooks_, [&](Index) { inner_levels(); }, parallel_);
    else
      inner_levels();
    leaf_backward(Y);
  }

 private:
  /// A work item of the leaf sweeps: (leaf, first output row, row count).
  struct Item {
    Index leaf, begin, count;
  };

  ConstMap in_basis(Index i) const { return Transpose ? H_.U(i) : H_.V(i); }
  ConstMap out_basis(Index i) const { return Transpose ? H_.V(i) : H_.U(i); }
  std::pair<Index, Index> in_range(const ClusterNode& c) const {
    return Transpose ? std::make_pair(c.row_begin, c.rows())
                     : std::make_pair(c.col_begin, c.cols());
  }
  std::pair<Index, Index> out_range(const ClusterNode& c) const {
    return Transpose ? std::make_pair(c.col_begin, c.cols())
                     : std::make_pair(c.row_begin, c.rows());
  }
  // xhat (input side) and yhat (output side) of node i; siblings are
  // adjacent in heap order, so [xhat_a; xhat_b] is one contiguous block.
  RowMap<T> xhat(Index i, Index count) {
    return RowMap<T>(xws_.data() + xoff_[size_t(i)] * k_, count, k_, Eigen::OuterStride<>(k_));
  }
  RowMap<T> yhat(Index i, Index count) {
    return RowMap<T>(yws_.data() + yoff_[size_t(i)] * k_, count, k_, Eigen::OuterStride<>(k_));
  }
  bool level_parallel(int l, bool up) const {
    return parallel_ && !tasks_by_levels_ &&
           worth_threading((up ? up_entries_ : down_entries_)[size_t(l)]);
  }

  /// Diagonal blocks, fused with the leaf's input projection in the leaf's
  /// first chunk (x(J) is then still in cache); `tasks` run beside it.
  template <class XMap, class YMap>
  void leaf_forward(const XMap& X, YMap& Y, const ProductHooks* tasks);
  /// Upward pass through the inner levels: xhat_i = W_i^T [xhat_a; xhat_b].
  void upward();
  /// Coupling and downward pass, top-down: one task per (node, child), which
  /// writes that child's yhat only -- its coupling product, then its rows of
  /// the node's transfer matrix times the node's yhat.
  void downward();
  void inner_levels() {
    upward();
    downward();
  }
  /// Leaves add their basis times yhat; rows are final after it.
  template <class YMap>
  void leaf_backward(YMap& Y);

  const HSSMatrix& H_;
  const ClusterTree& tree_;
  const Index k_;
  const ProductHooks* hooks_;
  std::vector<Index> xoff_, yoff_;
  // Eigen vectors: aligned like the arena, so results do not depend on where
  // the allocator put the workspace.
  Eigen::Matrix<T, Eigen::Dynamic, 1> xws_, yws_;
  std::vector<Item> items_;
  bool parallel_ = false;
  // Inner levels: usually thin (ranks of tens), and then serial; under a
  // large rank cap they can hold most of the bytes, and a level whose
  // factors are large runs its nodes in parallel (the nodes of one level
  // touch disjoint parts of xhat and yhat).
  std::vector<double> up_entries_, down_entries_;
  // A caller's tasks run beside leaf_forward -- or, when the inner levels
  // hold no more entries than the tasks read, beside the inner levels
  // walked on one thread: a serial chain of small products, which would
  // otherwise leave the other threads waiting.
  bool tasks_by_levels_ = false;
};

template <class T>
template <bool Transpose>
HSSMatrix<T>::Product<Transpose>::Product(const HSSMatrix& H, Index k, const ProductHooks* hooks)
    : H_(H), tree_(H.tree_), k_(k), hooks_(hooks) {
  const Index num_nodes = tree_.size();
  xoff_.assign(size_t(num_nodes) + 1, 0);
  yoff_.assign(size_t(num_nodes) + 1, 0);
  for (Index i = 0; i < num_nodes; ++i) {
    xoff_[size_t(i) + 1] = xoff_[size_t(i)] + (i == 0 ? 0 : in_basis(i).cols());
    yoff_[size_t(i) + 1] = yoff_[size_t(i)] + (i == 0 ? 0 : out_basis(i).cols());
  }
  xws_.resize(xoff_.back() * k);
  yws_.resize(yoff_.back() * k);
  for (Index i = tree_.leaf_begin(); i < tree_.leaf_end(); ++i) {
    const auto [ob, oc] = out_range(tree_.node(i));
    for (Index r = 0; r < oc || (r == 0 && oc == 0); r += kChunkRows)
      items_.push_back({i, ob + r, std::min(kChunkRows, oc - r)});
  }
  parallel_ = worth_threading(double(H.arena_.size()) * double(k));
  up_entries_.assign(size_t(tree_.levels()), 0.0);
  down_entries_ = up_entries_;
  double inner_entries = 0.0;
  for (int l = 0; l < tree_.levels(); ++l) {
    for (Index i = ClusterTree::level_begin(l); i < ClusterTree::level_end(l); ++i) {
      up_entries_[size_t(l)] += double(in_basis(i).size()) * double(k);
      down_entries_[size_t(l)] +=
          double(H.B12(i).size() + H.B21(i).size() + (i > 0 ? out_basis(i).size() : 0)) * double(k);
    }
    inner_entries += up_entries_[size_t(l)] + down_entries_[size_t(l)];
  }
  tasks_by_levels_ =
      hooks && hooks->tasks > 0 && tree_.levels() > 0 && parallel_ && inner_entries <= hooks->work;
}

template <class T>
template <bool Transpose>
template <class XMap, class YMap>
void HSSMatrix<T>::Product<Transpose>::leaf_forward(const XMap& X, YMap& Y,
                                                    const ProductHooks* tasks) {
  const bool has_tree = tree_.levels() > 0;
  parallel_for_hooked(
      Index(items_.size()), tasks,
      [&](Index t) {
        const Item& it = items_[size_t(t)];
        if (t + kPrefetchItems < Index(items_.size())) {
          const Index ahead = items_[size_t(t + kPrefetchItems)].leaf;
          prefetch(H_.D(ahead), 1 << 16);
          prefetch(in_basis(ahead), 1 << 16);
        }
        const ClusterNode& c = tree_.node(it.leaf);
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
        const auto Dl = H_.D(it.leaf);
        if constexpr (Transpose)
          yblock.noalias() =
              Dl.middleCols(it.begin - ob, it.count).transpose() * X.middleRows(ib, ic);
        else
          yblock.noalias() = Dl.middleRows(it.begin - ob, it.count) * X.middleRows(ib, ic);
      },
      parallel_);
}

template <class T>
template <bool Transpose>
void HSSMatrix<T>::Product<Transpose>::upward() {
  for (int l = tree_.levels() - 1; l >= 1; --l) {
    parallel_for(
        ClusterTree::level_begin(l), ClusterTree::level_end(l),
        [&](Index i) {
          const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
          const Index stacked = in_basis(a).cols() + in_basis(b).cols();
          const auto W = in_basis(i);
          xhat(i, W.cols()).noalias() = W.transpose() * xhat(a, stacked);
        },
        level_parallel(l, true));
  }
}

template <class T>
template <bool Transpose>
void HSSMatrix<T>::Product<Transpose>::downward() {
  for (int l = 0; l < tree_.levels(); ++l) {
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
            yc.noalias() = (first ? H_.B21(i) : H_.B12(i)).transpose() * xo;
          else
            yc.noalias() = (first ? H_.B12(i) : H_.B21(i)) * xo;
          if (i > 0) {
            const auto T_i = out_basis(i);
            const Index r0 = first ? 0 : out_basis(a).cols();
            yc.noalias() += T_i.middleRows(r0, yc.rows()) * yhat(i, T_i.cols());
          }
        },
        level_parallel(l, false));
  }
}

template <class T>
template <bool Transpose>
template <class YMap>
void HSSMatrix<T>::Product<Transpose>::leaf_backward(YMap& Y) {
  parallel_for(
      0, Index(items_.size()),
      [&](Index t) {
        const Item& it = items_[size_t(t)];
        if (t + kPrefetchItems < Index(items_.size()))
          prefetch(out_basis(items_[size_t(t + kPrefetchItems)].leaf), 1 << 16);
        const auto W = out_basis(it.leaf);
        if (it.count > 0 && W.cols() > 0) {
          const Index ob = out_range(tree_.node(it.leaf)).first;
          Y.middleRows(it.begin, it.count).noalias() +=
              W.middleRows(it.begin - ob, it.count) * yhat(it.leaf, W.cols());
        }
        if (hooks_ && hooks_->rows_done) hooks_->rows_done(it.begin, it.count);
      },
      parallel_);
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
  const bool parallel = worth_threading(double(A.size()) * double(k));
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
  with_maps(X, Y, [&](const auto& Xm, auto& Ym) {
    if (!transpose) {
      Product<false>(*this, X.cols, hooks).run(Xm, Ym);
    } else if (tree_.levels() == 0) {
      apply_dense_transpose(Xm, Ym,
                            hooks);  // one dense block: split its rows, sum partial products
    } else {
      Product<true>(*this, X.cols, hooks).run(Xm, Ym);
    }
  });
}

template <class T>
void HSSMatrix<T>::to_dense(T* out, bool transpose) const {
  dense_by_columns<T>(
      transpose ? cols() : rows(), transpose ? rows() : cols(), out,
      [&](const DenseView<const T>& x, const DenseView<T>& y) { apply(x, y, transpose); });
}

template <class T>
Index HSSMatrix<T>::storage_bytes(Index arena_entries, Index nodes) {
  // Values, the tree's four range bounds per node, one (offset, rows, cols)
  // slot per stored factor, and a fixed header (shape, levels, options, flags).
  return arena_entries * Index(sizeof(T)) + nodes * 4 * Index(sizeof(Index)) +
         nodes * 5 * Index(sizeof(Slot)) + 64;
}

template <class T>
Index HSSMatrix<T>::nbytes() const {
  return storage_bytes(Index(arena_.size()), tree_.size());
}

template <class T>
Index HSSMatrix<T>::nbytes_bound(Index rows, Index cols, const HSSOptions& options) {
  const ClusterTree tree(rows, cols, options.leaf_size());
  if (tree.levels() == 0) return storage_bytes(padded(rows * cols), 1);
  const Index cap = options.max_rank() > 0 ? options.max_rank() : std::max(rows, cols);
  // Largest row and column ranks: a basis has at most as many columns as its
  // candidate rows (a leaf's rows; above, the children's skeletons) and the cap.
  std::vector<Index> ru(size_t(tree.size()), 0), rv(ru);
  Index entries = 0;
  for (Index i = tree.size() - 1; i >= 1; --i) {
    const ClusterNode& c = tree.node(i);
    Index from_rows = c.rows(), from_cols = c.cols();
    if (tree.is_leaf(i)) {
      entries += padded(c.rows() * c.cols());
    } else {
      from_rows = ru[size_t(ClusterTree::left(i))] + ru[size_t(ClusterTree::right(i))];
      from_cols = rv[size_t(ClusterTree::left(i))] + rv[size_t(ClusterTree::right(i))];
    }
    ru[size_t(i)] = std::min(cap, from_rows);
    rv[size_t(i)] = std::min(cap, from_cols);
    entries += padded(from_rows * ru[size_t(i)]) + padded(from_cols * rv[size_t(i)]);
  }
  for (Index i = 0; i < tree.leaf_begin(); ++i) {
    const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
    entries += padded(ru[size_t(a)] * rv[size_t(b)]) + padded(ru[size_t(b)] * rv[size_t(a)]);
  }
  return storage_bytes(entries, tree.size());
}

template <class T>
Index HSSMatrix<T>::row_rank(Index i) const {
  return i == 0 ? -1 : U(i).cols();
}

template <class T>
Index HSSMatrix<T>::col_rank(Index i) const {
  return i == 0 ? -1 : V(i).cols();
}

template class HSSMatrix<float>;
template class HSSMatrix<double>;

}  // namespace hsslin
