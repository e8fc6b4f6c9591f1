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
  for (const Node& nd : nodes_) {
    w.put_matrix(nd.D);
    w.put_matrix(nd.U);
    w.put_matrix(nd.V);
    w.put_matrix(nd.B12);
    w.put_matrix(nd.B21);
  }
  return w.finish(ObjectKind::HSS, sizeof(T));
}

template <class T>
HSSMatrix<T> HSSMatrix<T>::deserialize(const std::string& blob) {
  ByteReader r(blob, ObjectKind::HSS);
  HSSLIN_CHECK(r.scalar_size() == sizeof(T), "file holds ", r.scalar_size() == 4 ? "float32" : "float64",
               " values");
  HSSMatrix H;
  const auto m = r.get<std::int64_t>();
  const auto n = r.get<std::int64_t>();
  const auto levels = r.get<std::int32_t>();
  HSSLIN_CHECK(m >= 1 && n >= 1 && m < (Index(1) << 40) && n < (Index(1) << 40),
               "corrupted file: shape ", m, "x", n);
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
  H.nodes_.resize(size_t(H.tree_.size()));
  const Index big = std::max(m, n);
  for (Node& nd : H.nodes_) {
    nd.D = r.get_matrix_bounded<T>(big, big);
    nd.U = r.get_matrix_bounded<T>(big, big);
    nd.V = r.get_matrix_bounded<T>(big, big);
    nd.B12 = r.get_matrix_bounded<T>(big, big);
    nd.B21 = r.get_matrix_bounded<T>(big, big);
  }
  r.expect_end();
  H.check_structure();
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
    const Node& nd = nodes_[size_t(i)];
    const ClusterNode& c = t.node(i);
    if (t.is_leaf(i)) {
      HSSLIN_CHECK(nd.D.rows() == c.rows() && nd.D.cols() == c.cols(), fail(i, "diagonal block"));
      if (i > 0) {
        HSSLIN_CHECK(nd.U.rows() == c.rows(), fail(i, "row basis"));
        HSSLIN_CHECK(nd.V.rows() == c.cols(), fail(i, "column basis"));
      }
    } else {
      HSSLIN_CHECK(nd.D.size() == 0, fail(i, "diagonal block"));
      const Node& a = nodes_[size_t(ClusterTree::left(i))];
      const Node& b = nodes_[size_t(ClusterTree::right(i))];
      HSSLIN_CHECK(nd.B12.rows() == a.U.cols() && nd.B12.cols() == b.V.cols(), fail(i, "coupling B12"));
      HSSLIN_CHECK(nd.B21.rows() == b.U.cols() && nd.B21.cols() == a.V.cols(), fail(i, "coupling B21"));
      if (i > 0) {
        HSSLIN_CHECK(nd.U.rows() == a.U.cols() + b.U.cols(), fail(i, "row transfer"));
        HSSLIN_CHECK(nd.V.rows() == a.V.cols() + b.V.cols(), fail(i, "column transfer"));
      }
    }
    if (i == 0) HSSLIN_CHECK(nd.U.size() == 0 && nd.V.size() == 0, fail(i, "root basis"));
  }
}

#define HSSLIN_INSTANTIATE_HSS_IO(T)                                   \
  template std::string HSSMatrix<T>::serialize() const;                \
  template HSSMatrix<T> HSSMatrix<T>::deserialize(const std::string&); \
  template void HSSMatrix<T>::check_structure() const;
HSSLIN_INSTANTIATE_HSS_IO(float)
HSSLIN_INSTANTIATE_HSS_IO(double)

}  // namespace hsslin
