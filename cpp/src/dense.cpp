// Dense helpers shared by the formats (see dense.hpp).
#include "hsslin/dense.hpp"

#include <limits>

#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {
constexpr Index kSampleChunk = 256;  // rows (columns) of A per work item of a sampling product
}  // namespace

template <class T>
void sample_columns(const ConstRowMap<T>& A, const Matrix<T>& Omega, Matrix<T>& Y) {
  Y.resize(A.rows(), Omega.cols());
  const Index chunks = (A.rows() + kSampleChunk - 1) / kSampleChunk;
  parallel_for(
      0, chunks,
      [&](Index c) {
        const Index r0 = c * kSampleChunk, r1 = std::min(A.rows(), r0 + kSampleChunk);
        Y.middleRows(r0, r1 - r0).noalias() = A.middleRows(r0, r1 - r0) * Omega;
      },
      worth_threading(double(A.size()) * double(Omega.cols())));
}

template <class T>
void sample_rows(const ConstRowMap<T>& A, const Matrix<T>& Psi, Matrix<T>& Z) {
  Z.resize(A.cols(), Psi.cols());
  const Index chunks = (A.cols() + kSampleChunk - 1) / kSampleChunk;
  parallel_for(
      0, chunks,
      [&](Index c) {
        const Index c0 = c * kSampleChunk, c1 = std::min(A.cols(), c0 + kSampleChunk);
        Z.middleRows(c0, c1 - c0).noalias() = A.middleCols(c0, c1 - c0).transpose() * Psi;
      },
      worth_threading(double(A.size()) * double(Psi.cols())));
}

template <class T>
bool is_symmetric(const ConstRowMap<T>& A) {
  if (A.rows() != A.cols()) return false;
  for (Index i = 0; i < A.rows(); ++i)
    for (Index j = 0; j < i; ++j)
      if (A(i, j) != A(j, i)) return false;
  return true;
}

template <class T>
int scale_exponent(const ConstRowMap<T>& A) {
  T largest = 0;
  for (Index i = 0; i < A.rows(); ++i) largest = std::max(largest, A.row(i).cwiseAbs().maxCoeff());
  if (!(largest > 0)) return 0;  // zero (or empty): nothing to scale
  const int quarter = std::numeric_limits<T>::max_exponent / 4;
  int e = 0;
  std::frexp(largest, &e);  // largest = f * 2^e, f in [1/2, 1)
  return e >= -quarter && e <= quarter ? 0 : e;
}

template <class T>
RowMatrix<T> scaled_copy(const ConstRowMap<T>& A, int e) {
  RowMatrix<T> out = A;
  scale_by_power_of_two(out, -e);
  return out;
}

template <class T>
Matrix<T> gather(const ConstRowMap<T>& A, const std::vector<Index>& rows,
                 const std::vector<Index>& cols) {
  Matrix<T> out(static_cast<Index>(rows.size()), static_cast<Index>(cols.size()));
  for (size_t j = 0; j < cols.size(); ++j)
    for (size_t i = 0; i < rows.size(); ++i) out(Index(i), Index(j)) = A(rows[i], cols[j]);
  return out;
}

#define HSSLIN_INSTANTIATE(T)                                                           \
  template void sample_columns<T>(const ConstRowMap<T>&, const Matrix<T>&, Matrix<T>&); \
  template void sample_rows<T>(const ConstRowMap<T>&, const Matrix<T>&, Matrix<T>&);    \
  template bool is_symmetric<T>(const ConstRowMap<T>&);                                 \
  template int scale_exponent<T>(const ConstRowMap<T>&);                                \
  template RowMatrix<T> scaled_copy<T>(const ConstRowMap<T>&, int);                     \
  template Matrix<T> gather<T>(const ConstRowMap<T>&, const std::vector<Index>&,        \
                               const std::vector<Index>&);
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
