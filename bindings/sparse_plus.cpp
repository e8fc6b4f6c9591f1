// S + Pr^T H Pc products in one call: the sparse product, the gather of the
// input, the hierarchical product and the scatter-add of its result, with
// the GIL released once and no Python temporaries.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "hsslin/csr.hpp"
#include "hsslin/hodlr.hpp"
#include "hsslin/hss.hpp"

namespace hsslin::bindings {
namespace {

using Perm = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>;

// The permutation as a checked int32 array of length n, or an empty one for None.
Perm as_permutation(const py::object& p, Index n, const char* name) {
  if (p.is_none()) return Perm();
  Perm a = p.cast<Perm>();
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + " must have length " + std::to_string(n));
  const std::int32_t* d = a.data();
  for (Index i = 0; i < n; ++i)
    if (d[i] < 0 || d[i] >= n)
      throw py::value_error(std::string(name) + " has an entry outside [0, " + std::to_string(n) +
                            ")");
  return a;
}

template <class T, class Hier>
py::array sparse_plus_apply(const CSRMatrix<T>& S, const Hier& H, const py::object& row_perm,
                            const py::object& col_perm, const py::array& x, bool transpose) {
  if (S.rows() != H.rows() || S.cols() != H.cols())
    throw py::value_error("the sparse and hierarchical parts differ in shape");
  const DenseView<const T> X = as_operand<T>(x, "x");
  const Index in_rows = transpose ? S.rows() : S.cols();
  const Index out_rows = transpose ? S.cols() : S.rows();
  if (X.rows != in_rows)
    throw py::value_error("x has " + std::to_string(X.rows) + " rows, expected " +
                          std::to_string(in_rows));
  const Perm rp = as_permutation(row_perm, S.rows(), "row_perm");
  const Perm cp = as_permutation(col_perm, S.cols(), "col_perm");
  const std::int32_t* gather =
      (transpose ? rp : cp).size() ? (transpose ? rp : cp).data() : nullptr;
  const std::int32_t* scatter =
      (transpose ? cp : rp).size() ? (transpose ? cp : rp).data() : nullptr;
  DenseView<T> Y;
  py::array_t<T> out = make_result<T>(x, out_rows, Y);
  const Index k = X.cols;
  {
    py::gil_scoped_release release;
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
  return std::move(out);
}

template <class T>
void register_for(py::module_& m) {
  m.def("sparse_plus_apply", &sparse_plus_apply<T, HODLRMatrix<T>>, py::arg("S"), py::arg("H"),
        py::arg("row_perm"), py::arg("col_perm"), py::arg("x"), py::arg("transpose"));
  m.def("sparse_plus_apply", &sparse_plus_apply<T, HSSMatrix<T>>, py::arg("S"), py::arg("H"),
        py::arg("row_perm"), py::arg("col_perm"), py::arg("x"), py::arg("transpose"));
}

}  // namespace

void register_sparse_plus(py::module_& m) {
  register_for<float>(m);
  register_for<double>(m);
}

}  // namespace hsslin::bindings
