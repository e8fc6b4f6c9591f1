#pragma once
/// \file kernel_matrix.hpp
/// \brief Built-in radial kernels and the kernel matrix K(x_i, x_j) + nugget [i = j] of a point
/// set.

#include <string>
#include <vector>

#include "hsslin/low_rank.hpp"
#include "hsslin/matrix_source.hpp"

namespace hsslin {

/// \brief A radial kernel k(r) with a lengthscale l, plus a nugget on the diagonal.
///
///  * gaussian:              exp(-r^2 / (2 l^2))
///  * exponential (laplace): exp(-r / l)
///  * matern32:              (1 + s) exp(-s),           s = sqrt(3) r / l
///  * matern52:              (1 + s + s^2 / 3) exp(-s), s = sqrt(5) r / l
///  * inverse_multiquadric:  1 / sqrt(1 + r^2 / l^2)
///  * inverse_distance:      l / r off the diagonal; the singular self-term
///    is regularised to 0, so the diagonal is the nugget alone (points must
///    be distinct).
/// Entry (i, j) of the kernel matrix is k(|x_i - x_j|) + nugget [i = j]:
/// the nugget goes by index, not by distance.
class Kernel {
 public:
  enum class Kind {
    Gaussian,
    Exponential,
    Matern32,
    Matern52,
    InverseMultiquadric,
    InverseDistance
  };

  /// Throws std::invalid_argument for an unknown name, lengthscale <= 0, a
  /// negative or non-finite nugget.
  Kernel(const std::string& name, double lengthscale, double nugget);

  Kind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  double lengthscale() const { return lengthscale_; }
  double nugget() const { return nugget_; }
  /// k at squared distances r2 (in place), vectorized.
  void evaluate(Eigen::Ref<Eigen::ArrayXd> r2) const;
  /// The names the constructor accepts, for error messages and the bindings.
  static std::vector<std::string> names();

 private:
  Kind kind_;
  std::string name_;
  double lengthscale_, nugget_;
};

/// \brief The N x N kernel matrix of N points in d dimensions, never formed:
/// entries and products are computed on demand. As a MatrixSource its
/// products are exact (O(N^2) kernel evaluations each).
template <class T>
class KernelMatrix final : public MatrixSource<T> {
 public:
  /// `points` is N x d, row-major.
  KernelMatrix(std::vector<double> points, Index n, Index d, Kernel kernel);

  Index size() const { return n_; }
  Index dim() const { return d_; }
  const Kernel& kernel() const { return kernel_; }
  const double* point(Index i) const { return points_.data() + i * d_; }

  /// out = K(rows, cols), column-major with leading dimension ld >= rows.size().
  void entries(const Index* rows, Index nr, const Index* cols, Index nc, T* out, Index ld) const;
  Matrix<T> entries(const std::vector<Index>& rows, const std::vector<Index>& cols) const;
  /// Y = K X, exact (O(N^2 k), in row blocks on every thread, O(N) memory per thread).
  void apply(const DenseView<const T>& X, const DenseView<T>& Y) const;

  // MatrixSource: the matrix is symmetric, so both products are K X.
  Index rows() const override { return n_; }
  Index cols() const override { return n_; }
  void multiply(const Matrix<T>& X, Matrix<T>& Y) const override;
  void multiply_transpose(const Matrix<T>& X, Matrix<T>& Y) const override { multiply(X, Y); }
  Matrix<T> gather(const std::vector<Index>& r, const std::vector<Index>& c) const override {
    return entries(r, c);
  }
  bool symmetric() const override { return true; }

 private:
  std::vector<double> points_;
  Index n_, d_;
  Kernel kernel_;
};

}  // namespace hsslin
