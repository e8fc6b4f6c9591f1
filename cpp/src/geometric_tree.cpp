// Geometric cluster tree: recursive bisection at ClusterTree's split sizes,
// then tight bounding boxes and near-field lists per node.
#include "hsslin/geometric_tree.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>

#include "hsslin/low_rank.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {

double GeometricTree::Box::diameter() const {
  double s = 0;
  for (size_t k = 0; k < lo.size(); ++k) s += (hi[k] - lo[k]) * (hi[k] - lo[k]);
  return std::sqrt(s);
}

double GeometricTree::Box::distance(const Box& o) const {
  double s = 0;
  for (size_t k = 0; k < lo.size(); ++k) {
    const double gap = std::max({0.0, o.lo[k] - hi[k], lo[k] - o.hi[k]});
    s += gap * gap;
  }
  return std::sqrt(s);
}

GeometricTree::GeometricTree(const std::vector<double>& points, Index n, Index d, Index leaf_size,
                             const std::string& method, double eta)
    : tree_(n, n, leaf_size), d_(d) {
  HSSLIN_CHECK(n >= 1 && d >= 1 && Index(points.size()) == n * d, "points: expected ", n, "x", d,
               " coordinates, got ", points.size());
  HSSLIN_CHECK(method == "kd" || method == "pca", "clustering must be 'kd' or 'pca', got '", method,
               "'");
  perm_.resize(size_t(n));
  for (Index i = 0; i < n; ++i) perm_[size_t(i)] = i;
  boxes_.assign(size_t(tree_.size()), Box{});
  // Levels top-down; the nodes of a level own disjoint stretches of perm_.
  for (int l = 0; l <= tree_.levels(); ++l)
    parallel_for(ClusterTree::level_begin(l), ClusterTree::level_end(l),
                 [&](Index i) { split(points, i, method == "pca"); });
  build_near(eta);
}

void GeometricTree::split(const std::vector<double>& points, Index i, bool pca) {
  const ClusterNode& c = tree_.node(i);
  auto x = [&](Index t, Index k) { return points[size_t(perm_[size_t(t)] * d_ + k)]; };
  Box& box = boxes_[size_t(i)];
  box.lo.assign(size_t(d_), 0.0);
  box.hi.assign(size_t(d_), 0.0);
  if (c.rows() > 0) {
    for (Index k = 0; k < d_; ++k) box.lo[size_t(k)] = box.hi[size_t(k)] = x(c.row_begin, k);
    for (Index t = c.row_begin; t < c.row_end; ++t)
      for (Index k = 0; k < d_; ++k) {
        box.lo[size_t(k)] = std::min(box.lo[size_t(k)], x(t, k));
        box.hi[size_t(k)] = std::max(box.hi[size_t(k)], x(t, k));
      }
  }
  if (tree_.is_leaf(i)) return;
  const Index mid = tree_.node(ClusterTree::left(i)).row_end;
  Eigen::VectorXd axis = Eigen::VectorXd::Zero(d_);
  if (pca && c.rows() > 1) {
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(d_);
    for (Index t = c.row_begin; t < c.row_end; ++t)
      for (Index k = 0; k < d_; ++k) mean(k) += x(t, k);
    mean /= double(c.rows());
    Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(d_, d_);
    Eigen::VectorXd v(d_);
    for (Index t = c.row_begin; t < c.row_end; ++t) {
      for (Index k = 0; k < d_; ++k) v(k) = x(t, k) - mean(k);
      cov.noalias() += v * v.transpose();
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(cov);
    axis = es.eigenvectors().col(d_ - 1);
  } else {
    Index widest = 0;
    for (Index k = 1; k < d_; ++k)
      if (box.hi[size_t(k)] - box.lo[size_t(k)] > box.hi[size_t(widest)] - box.lo[size_t(widest)])
        widest = k;
    axis(widest) = 1.0;
  }
  auto key = [&](Index p) {
    double s = 0;
    for (Index k = 0; k < d_; ++k) s += points[size_t(p * d_ + k)] * axis(k);
    return s;
  };
  // Ties broken by index, so the order does not depend on the library's nth_element.
  std::nth_element(perm_.begin() + c.row_begin, perm_.begin() + mid, perm_.begin() + c.row_end,
                   [&](Index a, Index b) {
                     const double ka = key(a), kb = key(b);
                     return ka < kb || (ka == kb && a < b);
                   });
}

void GeometricTree::build_near(double eta) {
  near_.assign(size_t(tree_.size()), {});
  for (int l = 1; l <= tree_.levels(); ++l) {
    parallel_for(ClusterTree::level_begin(l), ClusterTree::level_end(l), [&](Index i) {
      const Index p = (i - 1) / 2;
      std::vector<Index> candidates = near_[size_t(p)];
      candidates.push_back(p);
      const double reach = eta * boxes_[size_t(i)].diameter();
      for (Index q : candidates)
        for (Index c : {ClusterTree::left(q), ClusterTree::right(q)})
          if (c != i && boxes_[size_t(i)].distance(boxes_[size_t(c)]) <= reach)
            near_[size_t(i)].push_back(c);
      std::sort(near_[size_t(i)].begin(), near_[size_t(i)].end());
    });
  }
}

std::vector<double> GeometricTree::permuted_points(const std::vector<double>& points) const {
  std::vector<double> out(points.size());
  for (size_t t = 0; t < perm_.size(); ++t)
    for (Index k = 0; k < d_; ++k)
      out[t * size_t(d_) + size_t(k)] = points[size_t(perm_[t] * d_ + k)];
  return out;
}

}  // namespace hsslin
