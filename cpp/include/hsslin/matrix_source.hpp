#pragma once
/// \file matrix_source.hpp
/// \brief What the randomized HSS compressor needs of a matrix: products and entries.

#include <vector>

#include "hsslin/low_rank.hpp"

namespace hsslin {

/// \brief A matrix known through products with blocks of vectors and through
/// its entries (STRUMPACK's compress(Amult, Aelem)). HSSMatrix::compress
/// samples the products and reads diagonal blocks and couplings as entries.
template <class T>
class MatrixSource {
 public:
  virtual ~MatrixSource() = default;
  virtual Index rows() const = 0;
  virtual Index cols() const = 0;
  /// Y = A Omega (Y is resized to rows() x Omega.cols()).
  virtual void multiply(const Matrix<T>& Omega, Matrix<T>& Y) const = 0;
  /// Z = A^T Psi (Z is resized to cols() x Psi.cols()).
  virtual void multiply_transpose(const Matrix<T>& Psi, Matrix<T>& Z) const = 0;
  /// A(rows, cols).
  virtual Matrix<T> gather(const std::vector<Index>& rows,
                           const std::vector<Index>& cols) const = 0;
  /// True when A is exactly symmetric: the compressor then samples one side.
  virtual bool symmetric() const = 0;
  /// The contiguous block A(r0 : r0 + nr, c0 : c0 + nc).
  virtual Matrix<T> block(Index r0, Index c0, Index nr, Index nc) const {
    std::vector<Index> r(static_cast<size_t>(nr)), c(static_cast<size_t>(nc));
    for (Index i = 0; i < nr; ++i) r[size_t(i)] = r0 + i;
    for (Index j = 0; j < nc; ++j) c[size_t(j)] = c0 + j;
    return gather(r, c);
  }
  /// A(r0 : r0 + nr, c0 : c0 + nc) * V, in row stretches of bounded memory.
  virtual Matrix<T> block_times(Index r0, Index c0, Index nr, Index nc, const Matrix<T>& V) const {
    constexpr Index kRows = 256;
    Matrix<T> out(nr, V.cols());
    for (Index a = 0; a < nr; a += kRows) {
      const Index h = std::min(kRows, nr - a);
      out.middleRows(a, h).noalias() = block(r0 + a, c0, h, nc) * V;
    }
    return out;
  }
};

/// \brief A dense row-major array as a MatrixSource (products threaded over row chunks).
template <class T>
class DenseSource final : public MatrixSource<T> {
 public:
  explicit DenseSource(const ConstRowMap<T>& A) : A_(A), symmetric_(is_symmetric(A)) {}
  Index rows() const override { return A_.rows(); }
  Index cols() const override { return A_.cols(); }
  void multiply(const Matrix<T>& Omega, Matrix<T>& Y) const override {
    sample_columns(A_, Omega, Y);
  }
  void multiply_transpose(const Matrix<T>& Psi, Matrix<T>& Z) const override {
    sample_rows(A_, Psi, Z);
  }
  Matrix<T> gather(const std::vector<Index>& r, const std::vector<Index>& c) const override {
    return hsslin::gather<T>(A_, r, c);
  }
  bool symmetric() const override { return symmetric_; }
  Matrix<T> block(Index r0, Index c0, Index nr, Index nc) const override {
    return A_.block(r0, c0, nr, nc);
  }
  Matrix<T> block_times(Index r0, Index c0, Index nr, Index nc, const Matrix<T>& V) const override {
    return A_.block(r0, c0, nr, nc) * V;
  }

 private:
  ConstRowMap<T> A_;  // a view: the caller keeps the array alive
  bool symmetric_;
};

}  // namespace hsslin
