#include <cmath>

#include "hsslin/hodlr.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {

template <class T>
HODLRMatrix<T> HODLRMatrix<T>::compress(const ConstRowMap<T>& A, const HODLROptions& options) {
  HSSLIN_CHECK(A.rows() >= 1 && A.cols() >= 1, "matrix must be non-empty, got ", A.rows(), "x",
               A.cols());
  if (const int e = scale_exponent(A); e != 0) {
    // Tiny or huge magnitudes: compress A * 2^-e, whose norms stay in range
    // (relative errors and ranks are those of A), then scale back exactly.
    const RowMatrix<T> As = scaled_copy(A, e);
    HODLRMatrix H = compress(
        ConstRowMap<T>(As.data(), As.rows(), As.cols(), Eigen::OuterStride<>(As.cols())), options);
    H.scale_values(e);
    return H;
  }
  HODLRMatrix H;
  H.options_ = options.resolved();
  const HODLROptions& o = H.options_;
  H.tree_ = ClusterTree(A.rows(), A.cols(), o.leaf_size());
  const ClusterTree& tree = H.tree_;
  std::vector<Node> nodes(size_t(tree.size()));

  // Squared norm in double: float32 sums of 10^7 squares lose digits.
  double norm2 = 0.0;
  for (Index i = 0; i < A.rows(); ++i) norm2 += A.row(i).template cast<double>().squaredNorm();
  const double offdiag_entries = [&] {
    double total = double(A.rows()) * double(A.cols());
    for (Index i = tree.leaf_begin(); i < tree.leaf_end(); ++i)
      total -= double(tree.node(i).rows()) * double(tree.node(i).cols());
    return std::max(total, 1.0);
  }();

  // One task per off-diagonal block: 2 * (inner node) + (0: B12, 1: B21).
  const Index inner = tree.leaf_begin();
  std::vector<double> errors(size_t(2 * inner), 0.0);
  parallel_for(
      0, 2 * inner,
      [&](Index task) {
        const Index i = task / 2;
        const bool lower = task % 2 == 1;
        const ClusterNode& a = tree.node(ClusterTree::left(i));
        const ClusterNode& b = tree.node(ClusterTree::right(i));
        const ClusterNode& rows = lower ? b : a;
        const ClusterNode& cols = lower ? a : b;
        const T* origin = rows.rows() > 0 && cols.cols() > 0
                              ? A.data() + rows.row_begin * A.outerStride() + cols.col_begin
                              : A.data();
        ConstRowMap<T> block(origin, rows.rows(), cols.cols(),
                             Eigen::OuterStride<>(A.outerStride()));
        const int level = ClusterTree::level_of(i) + 1;
        const Index rank = o.rank() > 0 ? o.scheduled_rank(level) : 0;
        const double share = double(rows.rows()) * double(cols.cols()) / offdiag_entries;
        const double abs_tol = o.tol() * std::sqrt(norm2 * share);
        Block blk =
            low_rank_approximation<T>(block, rank, abs_tol, o.max_rank(), o.power_iterations(),
                                      o.seed() * 1000003ULL + std::uint64_t(task));
        errors[size_t(task)] = blk.error;
        (lower ? nodes[size_t(i)].B21 : nodes[size_t(i)].B12) = std::move(blk);
      },
      // Every block is sampled with at least 8 columns (tolerance_rank's
      // smallest block; a schedule's rank + 10): 8 multiply-adds per entry.
      worth_threading(8.0 * double(A.rows()) * double(A.cols())));
  for (Index i = tree.leaf_begin(); i < tree.leaf_end(); ++i) {
    const ClusterNode& c = tree.node(i);
    nodes[size_t(i)].D = A.block(c.row_begin, c.col_begin, c.rows(), c.cols());
  }
  double err2 = 0.0;
  for (double e : errors) err2 += e * e;
  H.error_ = norm2 > 0 ? std::sqrt(err2 / norm2) : 0.0;
  H.pack(std::move(nodes));
  return H;
}

template <class T>
void HODLRMatrix<T>::scale_values(int e) {
  // Values of A scale by 2^e; a low-rank block's two factors share it, as
  // the singular values are split evenly between them.
  for (RowPanels<T>& D : leaves_) scale_by_power_of_two(D.data, e);
  for (StoredBlock& b : blocks_) {
    scale_by_power_of_two(b.dense.data, e);
    scale_by_power_of_two(b.U.data, e - e / 2);
    scale_by_power_of_two(b.Vt.data, e / 2);
    b.error = std::ldexp(b.error, e);
  }
}

template <class T>
HODLRMatrix<T> HODLRMatrix<T>::from_parts(ClusterTree tree, std::vector<Node> nodes,
                                          HODLROptions options, double error) {
  HODLRMatrix H;
  H.tree_ = std::move(tree);
  H.options_ = options;
  H.error_ = error;
  HSSLIN_CHECK(Index(nodes.size()) == H.tree_.size(), "HODLR parts: expected ", H.tree_.size(),
               " nodes, got ", nodes.size());
  check_structure(H.tree_, nodes);
  H.pack(std::move(nodes));
  return H;
}

template class HODLRMatrix<float>;
template class HODLRMatrix<double>;

}  // namespace hsslin
