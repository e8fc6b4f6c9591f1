// Built-in kernels and kernel-matrix entries. Distances and kernel values
// are computed in double whatever the matrix's type (a float32 distance
// loses digits before the kernel is even applied) and vectorized through
// Eigen's array functions, a column chunk at a time.
#include "hsslin/kernel_matrix.hpp"

#include <algorithm>
#include <cmath>

#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

struct Named {
  const char* name;
  Kernel::Kind kind;
};
constexpr Named kKernels[] = {
    {"gaussian", Kernel::Kind::Gaussian},
    {"exponential", Kernel::Kind::Exponential},
    {"laplace", Kernel::Kind::Exponential},
    {"matern32", Kernel::Kind::Matern32},
    {"matern52", Kernel::Kind::Matern52},
    {"inverse_multiquadric", Kernel::Kind::InverseMultiquadric},
    {"inverse_distance", Kernel::Kind::InverseDistance},
};

constexpr Index kChunkCols = 256;  // columns evaluated at once (r2 of a chunk stays in L2)
constexpr Index kApplyRows = 128;  // rows per work item of the exact product

}  // namespace

Kernel::Kernel(const std::string& name, double lengthscale, double nugget)
    : kind_(Kind::Gaussian), name_(name), lengthscale_(lengthscale), nugget_(nugget) {
  bool found = false;
  for (const Named& k : kKernels)
    if (name == k.name) {
      kind_ = k.kind;
      found = true;
    }
  if (!found) {
    std::string all;
    for (const std::string& n : names()) all += (all.empty() ? "" : ", ") + n;
    HSSLIN_CHECK(false, "unknown kernel '", name, "'; the built-in kernels are ", all);
  }
  HSSLIN_CHECK(std::isfinite(lengthscale) && lengthscale > 0, "lengthscale must be > 0, got ",
               lengthscale);
  HSSLIN_CHECK(std::isfinite(nugget) && nugget >= 0, "nugget must be >= 0, got ", nugget);
}

std::vector<std::string> Kernel::names() {
  std::vector<std::string> out;
  for (const Named& k : kKernels) out.push_back(k.name);
  return out;
}

void Kernel::evaluate(Eigen::Ref<Eigen::ArrayXd> r2) const {
  const double l = lengthscale_;
  switch (kind_) {
    case Kind::Gaussian:
      r2 = (r2 * (-0.5 / (l * l))).exp();
      return;
    case Kind::Exponential:
      r2 = (r2.sqrt() * (-1.0 / l)).exp();
      return;
    case Kind::Matern32: {
      const Eigen::ArrayXd s = r2.sqrt() * (std::sqrt(3.0) / l);
      r2 = (1.0 + s) * (-s).exp();
      return;
    }
    case Kind::Matern52: {
      const Eigen::ArrayXd s = r2.sqrt() * (std::sqrt(5.0) / l);
      r2 = (1.0 + s + s.square() * (1.0 / 3.0)) * (-s).exp();
      return;
    }
    case Kind::InverseMultiquadric:
      r2 = (1.0 + r2 * (1.0 / (l * l))).rsqrt();
      return;
    case Kind::InverseDistance:
      r2 = (r2 > 0.0).select(l * r2.rsqrt(), 0.0);
      return;
  }
}

template <class T>
KernelMatrix<T>::KernelMatrix(std::vector<double> points, Index n, Index d, Kernel kernel)
    : points_(std::move(points)), n_(n), d_(d), kernel_(std::move(kernel)) {
  HSSLIN_CHECK(n >= 1 && d >= 1 && Index(points_.size()) == n * d, "points: expected ", n, "x", d,
               " coordinates, got ", points_.size());
}

template <class T>
void KernelMatrix<T>::entries(const Index* rows, Index nr, const Index* cols, Index nc, T* out,
                              Index ld) const {
  if (nr == 0 || nc == 0) return;
  Eigen::ArrayXXd xr(nr, d_);
  for (Index i = 0; i < nr; ++i)
    for (Index k = 0; k < d_; ++k) xr(i, k) = point(rows[i])[k];
  Eigen::ArrayXd r2(nr * std::min(nc, kChunkCols));
  for (Index c0 = 0; c0 < nc; c0 += kChunkCols) {
    const Index w = std::min(kChunkCols, nc - c0);
    for (Index j = 0; j < w; ++j) {
      const double* y = point(cols[c0 + j]);
      auto col = r2.segment(j * nr, nr);
      col = (xr.col(0) - y[0]).square();
      for (Index k = 1; k < d_; ++k) col += (xr.col(k) - y[k]).square();
    }
    auto chunk = r2.head(nr * w);
    kernel_.evaluate(chunk);
    for (Index j = 0; j < w; ++j) {
      T* o = out + (c0 + j) * ld;
      const double* v = r2.data() + j * nr;
      for (Index i = 0; i < nr; ++i) o[i] = static_cast<T>(v[i]);
      if (kernel_.nugget() != 0.0) {
        const Index cj = cols[c0 + j];
        for (Index i = 0; i < nr; ++i)
          if (rows[i] == cj) o[i] += static_cast<T>(kernel_.nugget());
      }
    }
  }
}

template <class T>
Matrix<T> KernelMatrix<T>::entries(const std::vector<Index>& rows,
                                   const std::vector<Index>& cols) const {
  Matrix<T> out(Index(rows.size()), Index(cols.size()));
  entries(rows.data(), out.rows(), cols.data(), out.cols(), out.data(), out.rows());
  return out;
}

template <class T>
void KernelMatrix<T>::multiply(const Matrix<T>& X, Matrix<T>& Y) const {
  Y.resize(n_, X.cols());
  apply(DenseView<const T>{X.data(), X.rows(), X.cols(), 1, std::max<Index>(X.rows(), 1)},
        DenseView<T>{Y.data(), Y.rows(), Y.cols(), 1, std::max<Index>(Y.rows(), 1)});
}

template <class T>
void KernelMatrix<T>::apply(const DenseView<const T>& X, const DenseView<T>& Y) const {
  HSSLIN_CHECK(X.rows == n_ && Y.rows == n_ && X.cols == Y.cols,
               "kernel product: operands do not match the ", n_, "x", n_, " matrix");
  const Index k = X.cols;
  Matrix<T> Xc(n_, k);
  for (Index j = 0; j < k; ++j)
    for (Index i = 0; i < n_; ++i) Xc(i, j) = X.data[i * X.row_stride + j * X.col_stride];
  const Index blocks = (n_ + kApplyRows - 1) / kApplyRows;
  parallel_for(0, blocks, [&](Index b) {
    const Index r0 = b * kApplyRows, nr = std::min(kApplyRows, n_ - r0);
    std::vector<Index> rows(static_cast<size_t>(nr)), cols(static_cast<size_t>(kChunkCols));
    for (Index i = 0; i < nr; ++i) rows[size_t(i)] = r0 + i;
    Matrix<T> E(nr, kChunkCols), acc = Matrix<T>::Zero(nr, k);
    for (Index c0 = 0; c0 < n_; c0 += kChunkCols) {
      const Index w = std::min(kChunkCols, n_ - c0);
      for (Index j = 0; j < w; ++j) cols[size_t(j)] = c0 + j;
      entries(rows.data(), nr, cols.data(), w, E.data(), nr);
      acc.noalias() += E.leftCols(w) * Xc.middleRows(c0, w);
    }
    for (Index j = 0; j < k; ++j)
      for (Index i = 0; i < nr; ++i) Y.data[(r0 + i) * Y.row_stride + j * Y.col_stride] = acc(i, j);
  });
}

template class KernelMatrix<float>;
template class KernelMatrix<double>;

}  // namespace hsslin
