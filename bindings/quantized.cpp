// Bindings of QuantizedMatrix (float and double operators over one storage).
// Validation of user input (formats, group sizes, finiteness) is done by the
// C++ core and surfaces as ValueError; arrays arrive checked (dtype, layout).
#include <cstring>
#include <utility>

#include "common.hpp"
#include "hsslin/quantized.hpp"

namespace hsslin::bindings {
namespace {

template <class V>
py::array copy_of(const std::vector<V>& v) {
  py::array_t<V> out(Index(v.size()));
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(V));
  return out;
}

template <class T>
QuantizedMatrix<T> encode(const py::array& A, int format, int bits, Index group_size,
                          bool zero_point) {
  const ConstRowMap<T> W = as_row_map<T>(A, "W");
  const T* data = W.data();
  const Index m = W.rows(), n = W.cols();
  py::gil_scoped_release release;
  return QuantizedMatrix<T>::encode(data, m, n, static_cast<QuantFormat>(format), bits, group_size,
                                    zero_point);
}

template <class T>
QuantizedMatrix<T> from_codes(const py::array_t<std::int64_t, py::array::c_style>& codes,
                              const py::array_t<double, py::array::c_style>& scales,
                              const py::array_t<std::int64_t, py::array::c_style>& zeros, int bits,
                              Index group_size, bool zero_point) {
  HSSLIN_CHECK(codes.ndim() == 2, "codes must be a 2-D array, got ", codes.ndim(), " dimensions");
  const Index m = codes.shape(0), n = codes.shape(1);
  const std::int64_t* c = codes.data();
  const double* s = scales.data();
  const std::int64_t* z = zeros.data();
  const Index ns = scales.size(), nz = zeros.size();
  py::gil_scoped_release release;
  return QuantizedMatrix<T>::from_codes(c, m, n, s, ns, z, nz, bits, group_size, zero_point);
}

template <class T>
void register_quantized_class(py::module_& m, const char* name) {
  using Q = QuantizedMatrix<T>;
  py::class_<Q> cls(m, name, py::module_local());
  def_serialization(cls);
  cls.def_static("encode", &encode<T>, py::arg("W"), py::arg("format"), py::arg("bits"),
                 py::arg("group_size"), py::arg("zero_point"))
      .def_static("from_codes", &from_codes<T>, py::arg("codes"), py::arg("scales"),
                  py::arg("zeros"), py::arg("bits"), py::arg("group_size"), py::arg("zero_point"))
      .def("apply", &apply_operator<Q, T>, py::arg("x"), py::arg("transpose"))
      .def(
          "to_dense",
          [](const Q& q, bool transpose) {
            const Index r = transpose ? q.cols() : q.rows();
            const Index c = transpose ? q.rows() : q.cols();
            py::array_t<T, py::array::c_style> out({r, c});
            T* data = out.mutable_data();
            {
              py::gil_scoped_release release;
              q.to_dense(data, transpose);
            }
            return out;
          },
          py::arg("transpose"))
      .def("as_float32", [](const Q& q) { return QuantizedMatrix<float>(q.shared_storage()); })
      .def("as_float64", [](const Q& q) { return QuantizedMatrix<double>(q.shared_storage()); })
      .def_property_readonly("rows", &Q::rows)
      .def_property_readonly("cols", &Q::cols)
      .def_property_readonly("nbytes", &Q::nbytes)
      .def_property_readonly("format",
                             [](const Q& q) { return static_cast<int>(q.storage().format); })
      .def_property_readonly("bits", [](const Q& q) { return q.storage().bits; })
      .def_property_readonly("group_size", [](const Q& q) { return q.storage().group_size; })
      .def_property_readonly("zero_point", [](const Q& q) { return q.storage().zero_point; })
      .def_property_readonly("halves", [](const Q& q) { return copy_of(q.storage().halves); })
      .def_property_readonly("codes", [](const Q& q) { return copy_of(q.storage().codes); })
      .def_property_readonly("scales", [](const Q& q) { return copy_of(q.storage().scales); })
      .def_property_readonly("zeros", [](const Q& q) { return copy_of(q.storage().zeros); });
}

}  // namespace

void register_quantized(py::module_& m) {
  register_quantized_class<float>(m, "QuantizedMatrix32");
  register_quantized_class<double>(m, "QuantizedMatrix64");
  m.def(
      "quantized_nbytes",
      [](Index rows, Index cols, int format, int bits, Index group_size, bool zero_point) {
        return quantized_nbytes(rows, cols, static_cast<QuantFormat>(format), bits, group_size,
                                zero_point);
      },
      py::arg("rows"), py::arg("cols"), py::arg("format"), py::arg("bits"), py::arg("group_size"),
      py::arg("zero_point"),
      "nbytes of a QuantizedMatrix of that shape and format (ValueError on bad arguments)");
}

}  // namespace hsslin::bindings
