#include "hsslin/hodlr.hpp"
#include "hsslin/io.hpp"

namespace hsslin {

namespace {
template <class T>
void put_block(ByteWriter& w, const LowRankBlock<T>& b) {
  w.put<std::uint8_t>(b.is_dense ? 1 : 0);
  w.put<double>(b.error);
  if (b.is_dense) {
    w.put_matrix(b.dense);
  } else {
    w.put_matrix(b.U);
    w.put_matrix(b.V);
  }
}

template <class T>
LowRankBlock<T> get_block(ByteReader& r, Index rows, Index cols) {
  LowRankBlock<T> b;
  b.is_dense = r.get<std::uint8_t>() != 0;
  b.error = r.get<double>();
  if (b.is_dense) {
    b.dense = r.get_matrix<T>(rows, cols);
  } else {
    b.U = r.get_matrix_bounded<T>(rows, std::max(rows, cols));
    b.V = r.get_matrix_bounded<T>(cols, std::max(rows, cols));
  }
  return b;
}
}  // namespace

template <class T>
std::string HODLRMatrix<T>::serialize() const {
  ByteWriter w;
  w.put<std::int64_t>(rows());
  w.put<std::int64_t>(cols());
  w.put<std::int32_t>(tree_.levels());
  w.put<double>(options_.tol());
  w.put<std::int64_t>(options_.rank());
  w.put<double>(options_.rank_decay());
  w.put<std::int64_t>(options_.min_rank());
  w.put<std::int64_t>(options_.max_rank());
  w.put<std::int64_t>(options_.leaf_size());
  w.put<std::int32_t>(options_.power_iterations());
  w.put<std::uint64_t>(options_.seed());
  w.put<double>(error_);
  for (Index i = 0; i < tree_.size(); ++i) {
    const Node nd = node(i);
    if (tree_.is_leaf(i)) {
      w.put_matrix(nd.D);
    } else {
      put_block(w, nd.B12);
      put_block(w, nd.B21);
    }
  }
  return w.finish(ObjectKind::HODLR, sizeof(T));
}

template <class T>
HODLRMatrix<T> HODLRMatrix<T>::deserialize(const std::string& blob) {
  ByteReader r(blob, ObjectKind::HODLR);
  HSSLIN_CHECK(r.scalar_size() == sizeof(T), "file holds ",
               r.scalar_size() == 4 ? "float32" : "float64", " values");
  const auto m = r.get<std::int64_t>();
  const auto n = r.get<std::int64_t>();
  const auto levels = r.get<std::int32_t>();
  HSSLIN_CHECK(m >= 1 && n >= 1 && m < (Index(1) << 40) && n < (Index(1) << 40),
               "corrupted file: shape ", m, "x", n);
  // A leaf stores at least one shape (two 8-byte extents), an inner node
  // two: the tree is allocated only when the rest of the file can hold it.
  r.require(ClusterTree::node_count(m, n, levels), 2 * sizeof(std::int64_t), "HODLR tree node");
  ClusterTree tree = ClusterTree::with_levels(m, n, levels);
  HODLROptions o;
  const double tol = r.get<double>();
  if (tol > 0) o.set_tol(tol);
  const auto rank = r.get<std::int64_t>();
  if (rank > 0) o.set_rank(rank);
  o.set_rank_decay(r.get<double>());
  o.set_min_rank(r.get<std::int64_t>());
  o.set_max_rank(r.get<std::int64_t>());
  o.set_leaf_size(r.get<std::int64_t>());
  o.set_power_iterations(r.get<std::int32_t>());
  o.set_seed(r.get<std::uint64_t>());
  const double error = r.get<double>();
  std::vector<Node> nodes(size_t(tree.size()));
  for (Index i = 0; i < tree.size(); ++i) {
    const ClusterNode& c = tree.node(i);
    if (tree.is_leaf(i)) {
      nodes[size_t(i)].D = r.get_matrix<T>(c.rows(), c.cols());
    } else {
      const ClusterNode& a = tree.node(ClusterTree::left(i));
      const ClusterNode& b = tree.node(ClusterTree::right(i));
      nodes[size_t(i)].B12 = get_block<T>(r, a.rows(), b.cols());
      nodes[size_t(i)].B21 = get_block<T>(r, b.rows(), a.cols());
    }
  }
  r.expect_end();
  return from_parts(std::move(tree), std::move(nodes), o, error);
}

template <class T>
void HODLRMatrix<T>::check_structure(const ClusterTree& t, const std::vector<Node>& nodes) {
  for (Index i = 0; i < t.size(); ++i) {
    const Node& nd = nodes[size_t(i)];
    const ClusterNode& c = t.node(i);
    if (t.is_leaf(i)) {
      HSSLIN_CHECK(nd.D.rows() == c.rows() && nd.D.cols() == c.cols(), "node ", i,
                   ": diagonal block is ", nd.D.rows(), "x", nd.D.cols(), ", expected ", c.rows(),
                   "x", c.cols());
      continue;
    }
    const ClusterNode& a = t.node(ClusterTree::left(i));
    const ClusterNode& b = t.node(ClusterTree::right(i));
    auto check = [&](const Block& blk, Index rows, Index cols, const char* name) {
      if (blk.is_dense) {
        HSSLIN_CHECK(blk.dense.rows() == rows && blk.dense.cols() == cols, "node ", i, ": dense ",
                     name, " is ", blk.dense.rows(), "x", blk.dense.cols(), ", expected ", rows,
                     "x", cols);
      } else {
        HSSLIN_CHECK(blk.U.rows() == rows && blk.V.rows() == cols && blk.U.cols() == blk.V.cols(),
                     "node ", i, ": factors of ", name, " are ", blk.U.rows(), "x", blk.U.cols(),
                     " and ", blk.V.rows(), "x", blk.V.cols(), " for a ", rows, "x", cols,
                     " block");
      }
    };
    check(nd.B12, a.rows(), b.cols(), "B12");
    check(nd.B21, b.rows(), a.cols(), "B21");
  }
}

template class HODLRMatrix<float>;
template class HODLRMatrix<double>;

}  // namespace hsslin
