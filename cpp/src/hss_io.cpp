#include "hsslin/hss.hpp"
#include "hsslin/io.hpp"

namespace hsslin {

template <class T>
std::string HSSMatrix<T>::serialize() const {
  ByteWriter w;
  w.put<std::int64_t>(rows());
  w.put<std::int64_t>(cols());
  w.put<std::int32_t>(tree_.levels());
  w.put<double>(options_.tol());
  w.put<std::int64_t>(options_.max_rank());
  w.put<std::int64_t>(options_.leaf_size());
  w.put<std::int64_t>(options_.oversampling());
  w.put<std::int64_t>(options_.initial_samples());
  w.put<std::uint64_t>(options_.seed());
  w.put<double>(error_estimate_);
  w.put<std::int64_t>(samples_);
  w.put<std::uint8_t>(symmetric_ ? 1 : 0);
  w.put<std::uint8_t>(dense_fallback_ ? 1 : 0);
  for (Index i = 0; i < tree_.size(); ++i) {
    w.put_matrix(Matrix<T>(D(i)));
    w.put_matrix(Matrix<T>(U(i)));
    w.put_matrix(Matrix<T>(V(i)));
    w.put_matrix(Matrix<T>(B12(i)));
    w.put_matrix(Matrix<T>(B21(i)));
  }
  return w.finish(ObjectKind::HSS, sizeof(T));
}

template <class T>
HSSMatrix<T> HSSMatrix<T>::deserialize(const std::string& blob) {
  ByteReader r(blob, ObjectKind::HSS);
  HSSLIN_CHECK(r.scalar_size() == sizeof(T), "file holds ",
               r.scalar_size() == 4 ? "float32" : "float64", " values");
  HSSMatrix H;
  const auto m = r.get<std::int64_t>();
  const auto n = r.get<std::int64_t>();
  const auto levels = r.get<std::int32_t>();
  HSSLIN_CHECK(m >= 1 && n >= 1 && m < (Index(1) << 40) && n < (Index(1) << 40),
               "corrupted file: shape ", m, "x", n);
  // Every node stores five factor shapes (two 8-byte extents each): the
  // tree is allocated only when the rest of the file can hold it.
  r.require(ClusterTree::node_count(m, n, levels), 5 * 2 * sizeof(std::int64_t), "HSS tree node");
  H.tree_ = ClusterTree::with_levels(m, n, levels);
  H.options_.set_tol(r.get<double>());
  H.options_.set_max_rank(r.get<std::int64_t>());
  H.options_.set_leaf_size(r.get<std::int64_t>());
  H.options_.set_oversampling(r.get<std::int64_t>());
  H.options_.set_initial_samples(r.get<std::int64_t>());
  H.options_.set_seed(r.get<std::uint64_t>());
  H.error_estimate_ = r.get<double>();
  H.samples_ = r.get<std::int64_t>();
  H.symmetric_ = r.get<std::uint8_t>() != 0;
  H.dense_fallback_ = r.get<std::uint8_t>() != 0;
  std::vector<Node> nodes(size_t(H.tree_.size()));
  const Index big = std::max(m, n);
  for (Node& nd : nodes) {
    nd.D = r.get_matrix_bounded<T>(big, big);
    nd.U = r.get_matrix_bounded<T>(big, big);
    nd.V = r.get_matrix_bounded<T>(big, big);
    nd.B12 = r.get_matrix_bounded<T>(big, big);
    nd.B21 = r.get_matrix_bounded<T>(big, big);
  }
  r.expect_end();
  H.pack(std::move(nodes));
  H.check_structure();
  return H;
}

template <class T>
template <class S>
HSSMatrix<S> HSSMatrix<T>::cast() const {
  HSSMatrix<S> H;
  H.tree_ = tree_;
  H.options_ = options_;
  H.error_estimate_ = error_estimate_;
  H.samples_ = samples_;
  H.symmetric_ = symmetric_;
  H.dense_fallback_ = dense_fallback_;
  std::vector<typename HSSMatrix<S>::Node> nodes(size_t(tree_.size()));
  for (Index i = 0; i < tree_.size(); ++i) {
    typename HSSMatrix<S>::Node& nd = nodes[size_t(i)];
    nd.D = D(i).template cast<S>();
    nd.U = U(i).template cast<S>();
    nd.V = V(i).template cast<S>();
    nd.B12 = B12(i).template cast<S>();
    nd.B21 = B21(i).template cast<S>();
  }
  H.pack(std::move(nodes));
  return H;
}

// Every extent must fit its neighbours, or apply would read out of bounds.
template <class T>
void HSSMatrix<T>::check_structure() const {
  const ClusterTree& t = tree_;
  auto fail = [](Index i, const char* what) {
    return detail::concat("corrupted file: node ", i, " has an inconsistent ", what);
  };
  for (Index i = 0; i < t.size(); ++i) {
    const ClusterNode& c = t.node(i);
    if (t.is_leaf(i)) {
      HSSLIN_CHECK(D(i).rows() == c.rows() && D(i).cols() == c.cols(), fail(i, "diagonal block"));
      if (i > 0) {
        HSSLIN_CHECK(U(i).rows() == c.rows(), fail(i, "row basis"));
        HSSLIN_CHECK(V(i).rows() == c.cols(), fail(i, "column basis"));
      }
    } else {
      HSSLIN_CHECK(D(i).size() == 0, fail(i, "diagonal block"));
      const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
      HSSLIN_CHECK(B12(i).rows() == U(a).cols() && B12(i).cols() == V(b).cols(),
                   fail(i, "coupling B12"));
      HSSLIN_CHECK(B21(i).rows() == U(b).cols() && B21(i).cols() == V(a).cols(),
                   fail(i, "coupling B21"));
      if (i > 0) {
        HSSLIN_CHECK(U(i).rows() == U(a).cols() + U(b).cols(), fail(i, "row transfer"));
        HSSLIN_CHECK(V(i).rows() == V(a).cols() + V(b).cols(), fail(i, "column transfer"));
      }
    }
    if (i == 0) HSSLIN_CHECK(U(i).size() == 0 && V(i).size() == 0, fail(i, "root basis"));
  }
}

template class HSSMatrix<float>;
template class HSSMatrix<double>;
template HSSMatrix<double> HSSMatrix<float>::cast<double>() const;

}  // namespace hsslin
