// Binding of the fused S + Pr^T H Pc product (cpp/src/sparse_plus.cpp):
// converts the operands and releases the GIL once for the whole product.
#include <cstdint>
#include <string>

#include "common.hpp"
#include "hsslin/hodlr.hpp"
#include "hsslin/hss.hpp"
#include "hsslin/sparse_plus.hpp"

namespace hsslin::bindings {
namespace {

using Perm = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>;

// The permutation as an int32 array of length n (its entries are checked in
// C++), or an empty one for None.
Perm as_permutation(const py::object& p, Index n, const char* name) {
  if (p.is_none()) return Perm();
  Perm a = p.cast<Perm>();
  require_aligned(a, name);
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + " must have length " + std::to_string(n));
  return a;
}

template <class T, class Hier>
py::array apply(const CSRMatrix<T>& S, const Hier& H, const py::object& row_perm,
                const py::object& col_perm, const py::array& x, bool transpose) {
  const DenseView<const T> X = as_operand<T>(x, "x");
  const Perm rp = as_permutation(row_perm, S.rows(), "row_perm");
  const Perm cp = as_permutation(col_perm, S.cols(), "col_perm");
  DenseView<T> Y;
  py::array_t<T> out = make_result<T>(x, transpose ? S.cols() : S.rows(), Y);
  {
    py::gil_scoped_release release;
    sparse_plus_apply(S, H, rp.size() ? rp.data() : nullptr, cp.size() ? cp.data() : nullptr, X, Y,
                      transpose);
  }
  return std::move(out);
}

template <class T>
void register_for(py::module_& m) {
  m.def("sparse_plus_apply", &apply<T, HODLRMatrix<T>>, py::arg("S"), py::arg("H"),
        py::arg("row_perm"), py::arg("col_perm"), py::arg("x"), py::arg("transpose"));
  m.def("sparse_plus_apply", &apply<T, HSSMatrix<T>>, py::arg("S"), py::arg("H"),
        py::arg("row_perm"), py::arg("col_perm"), py::arg("x"), py::arg("transpose"));
}

}  // namespace

void register_sparse_plus(py::module_& m) {
  register_for<float>(m);
  register_for<double>(m);
}

}  // namespace hsslin::bindings
