// S + Pr^T H Pc products in one call: the sparse product, the gather of the
// input, the hierarchical product and the scatter-add of its result.
#include "hsslin/sparse_plus.hpp"

#include <algorithm>
#include <vector>

#include "hsslin/hodlr.hpp"
#include "hsslin/hss.hpp"

namespace hsslin {

void check_permutation(const std::int32_t* perm, Index n, const char* name) {
  std::vector<char> seen(size_t(n), 0);
  for (Index i = 0; i < n; ++i) {
    const Index v = perm[i];
    HSSLIN_CHECK(v >= 0 && v < n && !seen[size_t(v)], name, " is not a permutation of 0..", n - 1,
                 ": entry ", i, " is ", v, v >= 0 && v < n ? " again" : ", out of range");
    seen[size_t(v)] = 1;
  }
}

template <class T, class Hierarchical>
void sparse_plus_apply(const CSRMatrix<T>& S, const Hierarchical& H, const std::int32_t* row_perm,
                       const std::int32_t* col_perm, const DenseView<const T>& X,
                       const DenseView<T>& Y, bool transpose) {
  HSSLIN_CHECK(S.rows() == H.rows() && S.cols() == H.cols(), "the sparse part is ", S.rows(), "x",
               S.cols(), " but the hierarchical part is ", H.rows(), "x", H.cols());
  const Index in_rows = transpose ? S.rows() : S.cols();
  const Index out_rows = transpose ? S.cols() : S.rows();
  HSSLIN_CHECK(X.rows == in_rows, "x has ", X.rows, " rows, expected ", in_rows);
  HSSLIN_CHECK(Y.rows == out_rows && Y.cols == X.cols, "y is ", Y.rows, "x", Y.cols, ", expected ",
               out_rows, "x", X.cols);
  if (row_perm) check_permutation(row_perm, S.rows(), "row_perm");
  if (col_perm) check_permutation(col_perm, S.cols(), "col_perm");
  const std::int32_t* gather = transpose ? row_perm : col_perm;
  const std::int32_t* scatter = transpose ? col_perm : row_perm;
  const Index k = X.cols;
  // Gathered input and hierarchical result, column-major in aligned storage.
  Matrix<T> Xp(in_rows, k), Z(out_rows, k);
  for (Index j = 0; j < k; ++j)
    for (Index i = 0; i < in_rows; ++i) {
      const Index src = gather ? Index(gather[i]) : i;
      Xp(i, j) = X.data[src * X.row_stride + j * X.col_stride];
    }
  const DenseView<const T> xp{Xp.data(), in_rows, k, 1, std::max<Index>(in_rows, 1)};
  const DenseView<T> z{Z.data(), out_rows, k, 1, std::max<Index>(out_rows, 1)};
  auto scatter_rows = [&](Index begin, Index count) {
    for (Index j = 0; j < k; ++j)
      for (Index i = begin; i < begin + count; ++i) {
        const Index dst = scatter ? Index(scatter[i]) : i;
        Y.data[dst * Y.row_stride + j * Y.col_stride] += Z(i, j);
      }
  };
  if (!transpose && k == 1 && X.row_stride == 1) {
    // A matrix-vector product in one pass: the row chunks of y = S x run
    // as tasks of one of H's parallel loops (beside HODLR's projections or
    // HSS's leaf sweep, both bound by memory, or beside HSS's inner levels
    // walked on one thread), and each row chunk of H x is added into y as
    // soon as it is final.
    const std::vector<Index> bounds = S.product_chunks(1);
    const ProductHooks hooks{
        Index(bounds.size()) - 1,
        [&](Index c) { S.multiply_rows(X.data, Y, bounds[size_t(c)], bounds[size_t(c + 1)]); },
        scatter_rows, double(S.nnz())};
    H.apply(xp, z, false, &hooks);
  } else {
    S.apply(X, Y, transpose);
    H.apply(xp, z, transpose);
    scatter_rows(0, out_rows);
  }
}

#define HSSLIN_INSTANTIATE(T)                                                                      \
  template void sparse_plus_apply(const CSRMatrix<T>&, const HODLRMatrix<T>&, const std::int32_t*, \
                                  const std::int32_t*, const DenseView<const T>&,                  \
                                  const DenseView<T>&, bool);                                      \
  template void sparse_plus_apply(const CSRMatrix<T>&, const HSSMatrix<T>&, const std::int32_t*,   \
                                  const std::int32_t*, const DenseView<const T>&,                  \
                                  const DenseView<T>&, bool);
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
