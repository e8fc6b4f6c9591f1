// Bindings of the direct factorizations (HSS ULV, HODLR SMW) for float and
// double, and of FactorizationError (a numpy.linalg.LinAlgError).
#include "common.hpp"
#include "hsslin/hodlr_factor.hpp"
#include "hsslin/hss_ulv.hpp"

namespace hsslin::bindings {
namespace {

// Solves into a fresh array of b's layout; b was validated in Python.
template <class F, class T>
py::array solve_into(const F& f, const py::array& b, bool transpose) {
  DenseView<T> out;
  auto [in, result] = operand_and_result<T>(b, f.size(), f.size(), out, "b");
  {
    py::gil_scoped_release release;
    for (Index j = 0; j < in.cols; ++j)
      for (Index i = 0; i < in.rows; ++i)
        out.data[i * out.row_stride + j * out.col_stride] =
            in.data[i * in.row_stride + j * in.col_stride];
    f.solve(out, transpose);
  }
  return result;
}

template <class F, class H, class T>
void register_factor(py::module_& m, const char* name) {
  py::class_<F> cls(m, name, py::module_local());
  def_serialization(cls);
  cls.def_static(
         "factor",
         [](const H& h, bool spd) {
           py::gil_scoped_release release;
           return F::factor(h, spd);
         },
         py::arg("H"), py::arg("spd"))
      .def("solve", &solve_into<F, T>, py::arg("b"), py::arg("transpose"))
      .def("logdet",
           [](const F& f) {
             const LogDet d = f.logdet();
             return py::make_tuple(d.sign, d.log_abs);
           })
      .def_property_readonly("size", &F::size)
      .def_property_readonly("spd", &F::spd)
      .def_property_readonly("nbytes", &F::nbytes);
}

}  // namespace

void register_factor(py::module_& m) {
  const py::object base = py::module_::import("numpy.linalg").attr("LinAlgError");
  py::register_exception<FactorizationError>(m, "FactorizationError", base);
  register_factor<HSSULV<float>, HSSMatrix<float>, float>(m, "HSSULV32");
  register_factor<HSSULV<double>, HSSMatrix<double>, double>(m, "HSSULV64");
  register_factor<HODLRFactor<float>, HODLRMatrix<float>, float>(m, "HODLRFactor32");
  register_factor<HODLRFactor<double>, HODLRMatrix<double>, double>(m, "HODLRFactor64");
}

}  // namespace hsslin::bindings
