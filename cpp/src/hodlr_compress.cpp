#include <cmath>

#include "hsslin/hodlr.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {

template <class T>
HODLRMatrix<T> HODLRMatrix<T>::compress(const ConstRowMap<T>& A, const HODLROptions& options) {
  HSSLIN_CHECK(A.rows() >= 1 && A.cols() >= 1, "matrix must be non-empty, got ", A.rows(), "x",
               A.cols());
  HSSLIN_CHECK(options.rank() > 0 || options.tol() > 0,
               "HODLR compression needs a rank schedule (rank) or a tolerance (tol)");
  HODLRMatrix H;
  H.options_ = options;
  H.tree_ = ClusterTree(A.rows(), A.cols(), options.leaf_size());
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
        const Index rank = options.rank() > 0 ? options.scheduled_rank(level) : 0;
        const double share = double(rows.rows()) * double(cols.cols()) / offdiag_entries;
        const double abs_tol = options.tol() * std::sqrt(norm2 * share);
        Block blk = low_rank_approximation<T>(block, rank, abs_tol, options.max_rank(),
                                              options.power_iterations(),
                                              options.seed() * 1000003ULL + std::uint64_t(task));
        errors[size_t(task)] = blk.error;
        (lower ? nodes[size_t(i)].B21 : nodes[size_t(i)].B12) = std::move(blk);
      },
      inner >= 1 && A.rows() * A.cols() >= 4096);
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

#define HSSLIN_INSTANTIATE_HODLR_COMPRESS(T)                                                       \
  template HODLRMatrix<T> HODLRMatrix<T>::compress(const ConstRowMap<T>&, const HODLROptions&);    \
  template HODLRMatrix<T> HODLRMatrix<T>::from_parts(ClusterTree, std::vector<Node>, HODLROptions, \
                                                     double);
HSSLIN_INSTANTIATE_HODLR_COMPRESS(float)
HSSLIN_INSTANTIATE_HODLR_COMPRESS(double)

}  // namespace hsslin
