#pragma once
/// \file dense.hpp
/// \brief Dense views and the dense helpers every format shares: Eigen
/// matrix and map types, operand views and their layout dispatch, products
/// written out as dense arrays, sampling products, exact power-of-two scaling.

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <vector>

#include "hsslin/config.hpp"

namespace hsslin {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstRowMap = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstColMap = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using RowMap = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ColMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;

/// \brief A dense block of right-hand sides or results, row- or column-major.
///
/// Exactly one of the strides is 1 (the other is the leading dimension), or
/// both are 1 for a single vector.
template <class T>
struct DenseView {
  T* data = nullptr;
  Index rows = 0, cols = 0;
  Index row_stride = 1, col_stride = 1;
  bool row_major() const { return col_stride == 1 && (row_stride >= cols || rows <= 1); }
};

/// Calls f(Xm, Ym) with Eigen maps of X and Y: both row-major (ConstRowMap,
/// RowMap) or both column-major (ConstColMap, ColMap). A result takes its
/// operand's layout (see the bindings' make_result), so these two are the
/// ones products meet, and compiling only them halves the products'
/// instantiations. Y in the other layout is computed in X's and copied.
template <class T, class F>
void with_maps(const DenseView<const T>& X, const DenseView<T>& Y, F&& f) {
  const Index ldy = std::max<Index>(Y.row_major() ? Y.row_stride : Y.col_stride, 1);
  if (X.row_major()) {
    const ConstRowMap<T> Xm(X.data, X.rows, X.cols,
                            Eigen::OuterStride<>(std::max<Index>(X.row_stride, 1)));
    if (Y.row_major()) {
      RowMap<T> Ym(Y.data, Y.rows, Y.cols, Eigen::OuterStride<>(ldy));
      f(Xm, Ym);
    } else {
      RowMatrix<T> Z(Y.rows, Y.cols);
      RowMap<T> Zm(Z.data(), Y.rows, Y.cols, Eigen::OuterStride<>(std::max<Index>(Y.cols, 1)));
      f(Xm, Zm);
      ColMap<T>(Y.data, Y.rows, Y.cols, Eigen::OuterStride<>(ldy)) = Z;
    }
  } else {
    const ConstColMap<T> Xm(X.data, X.rows, X.cols,
                            Eigen::OuterStride<>(std::max<Index>(X.col_stride, 1)));
    if (!Y.row_major()) {
      ColMap<T> Ym(Y.data, Y.rows, Y.cols, Eigen::OuterStride<>(ldy));
      f(Xm, Ym);
    } else {
      Matrix<T> Z(Y.rows, Y.cols);
      ColMap<T> Zm(Z.data(), Y.rows, Y.cols, Eigen::OuterStride<>(std::max<Index>(Y.rows, 1)));
      f(Xm, Zm);
      RowMap<T>(Y.data, Y.rows, Y.cols, Eigen::OuterStride<>(ldy)) = Z;
    }
  }
}

/// Writes the m x n operator that `apply(x, y)` applies (y = op x) into
/// `out`, row-major, by applying it to blocks of identity columns (row-major
/// too, so both operands share a layout).
template <class T, class Apply>
void dense_by_columns(Index m, Index n, T* out, Apply&& apply) {
  constexpr Index kBlock = 256;
  for (Index c0 = 0; c0 < n; c0 += kBlock) {
    const Index b = std::min(kBlock, n - c0);
    RowMatrix<T> E = RowMatrix<T>::Zero(n, b);
    for (Index j = 0; j < b; ++j) E(c0 + j, j) = T(1);
    const DenseView<const T> x{E.data(), n, b, b, 1};
    const DenseView<T> y{out + c0, m, b, n, 1};
    apply(x, y);
  }
}

/// Y = A * Omega with A row-major (m x n), threaded over row chunks of A.
template <class T>
void sample_columns(const ConstRowMap<T>& A, const Matrix<T>& Omega, Matrix<T>& Y);
/// Z = A^T * Psi, threaded over column chunks of A.
template <class T>
void sample_rows(const ConstRowMap<T>& A, const Matrix<T>& Psi, Matrix<T>& Z);
/// Exact symmetry test (square A only), stops at the first mismatch.
template <class T>
bool is_symmetric(const ConstRowMap<T>& A);
/// A(rows, cols) gathered into a dense matrix.
template <class T>
Matrix<T> gather(const ConstRowMap<T>& A, const std::vector<Index>& rows,
                 const std::vector<Index>& cols);

/// 0 when max |A| lies in [2^-L, 2^L], L a quarter of T's exponent range
/// (2^32 for float, 2^256 for double), else the exponent e with
/// max |A| * 2^-e in [1/2, 1). Inside that range the compressions' sums of
/// squares (norms of A, of its samples, of tolerance targets) neither
/// overflow nor underflow; outside it they run on A * 2^-e, exact because it
/// is a power of two, and scale their factors back by 2^e.
template <class T>
int scale_exponent(const ConstRowMap<T>& A);
/// A * 2^-e (exact, row-major).
template <class T>
RowMatrix<T> scaled_copy(const ConstRowMap<T>& A, int e);

/// M *= 2^e, exactly: two steps keep each factor representable in T.
template <class Derived>
void scale_by_power_of_two(Eigen::DenseBase<Derived>& M, int e) {
  using T = typename Derived::Scalar;
  if (e == 0) return;
  const int half = e / 2;
  M *= std::ldexp(T(1), half);
  M *= std::ldexp(T(1), e - half);
}
template <class Derived>
void scale_by_power_of_two(Eigen::DenseBase<Derived>&& M, int e) {
  scale_by_power_of_two(M, e);
}

}  // namespace hsslin
