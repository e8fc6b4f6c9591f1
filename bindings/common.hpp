#pragma once
// Conversion helpers shared by the binding files. Arrays arrive as plain
// py::array and are checked here (dtype, dimensions, contiguity), so a
// strided view is never read as if it were dense.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "hsslin/dense.hpp"
#include "register.hpp"

namespace hsslin::bindings {
namespace py = pybind11;

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

/// The last line of defence against misaligned memory: a numpy array can
/// start at any byte (a view into a byte buffer), and the kernels load its
/// elements as T, which must sit on sizeof(T) boundaries. Python copies such
/// arrays before they get here; anything that slips through is refused.
inline void require_aligned(const py::array& a, const char* name) {
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(name) +
                          " is not aligned to its dtype's size; copy it first "
                          "(np.require(" +
                          name + ", requirements='CA'))");
}

template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(a.dtype())));
  require_aligned(a, name);
}

/// Row-major read-only view of a C-contiguous 2-D array.
template <class T>
ConstRowMap<T> as_row_map(const py::array& a, const char* name) {
  require_dtype<T>(a, name);
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  return ConstRowMap<T>(static_cast<const T*>(a.data()), a.shape(0), a.shape(1),
                        Eigen::OuterStride<>(a.shape(1)));
}

/// View of a 1-D or contiguous 2-D (C or Fortran order) operand.
template <class T>
DenseView<const T> as_operand(const py::array& a, const char* name) {
  require_dtype<T>(a, name);
  DenseView<const T> v;
  v.data = static_cast<const T*>(a.data());
  if (a.ndim() == 1) {
    if (a.strides(0) != Index(sizeof(T)) && a.shape(0) > 1)
      throw py::value_error(std::string(name) + " must be contiguous");
    v.rows = a.shape(0);
    v.cols = 1;
    v.row_stride = 1;
    v.col_stride = std::max<Index>(v.rows, 1);
    return v;
  }
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 1-D or 2-D");
  v.rows = a.shape(0);
  v.cols = a.shape(1);
  if (a.flags() & py::array::c_style) {
    v.row_stride = std::max<Index>(v.cols, 1);
    v.col_stride = 1;
  } else if (a.flags() & py::array::f_style) {
    v.row_stride = 1;
    v.col_stride = std::max<Index>(v.rows, 1);
  } else {
    throw py::value_error(std::string(name) + " must be C- or Fortran-contiguous");
  }
  return v;
}

/// A fresh result array shaped like the operand (same order) with `rows` rows.
template <class T>
py::array_t<T> make_result(const py::array& like, Index rows, DenseView<T>& view) {
  const Index cols = like.ndim() == 1 ? 1 : like.shape(1);
  const bool fortran = like.ndim() == 2 && !(like.flags() & py::array::c_style);
  py::array_t<T> out;
  if (like.ndim() == 1) {
    out = py::array_t<T>({rows});
  } else if (fortran) {
    out = py::array_t<T, py::array::f_style>({rows, cols});
  } else {
    out = py::array_t<T, py::array::c_style>({rows, cols});
  }
  view.data = out.mutable_data();
  view.rows = rows;
  view.cols = cols;
  if (fortran || like.ndim() == 1) {
    view.row_stride = 1;
    view.col_stride = std::max<Index>(rows, 1);
  } else {
    view.row_stride = std::max<Index>(cols, 1);
    view.col_stride = 1;
  }
  return out;
}

/// The operand `x` of a product or solve (called `name` in errors), checked
/// to have `expected` rows, and a fresh result of `result_rows` rows in x's
/// layout (see make_result).
template <class T>
std::pair<DenseView<const T>, py::array> operand_and_result(const py::array& x, Index expected,
                                                            Index result_rows, DenseView<T>& out,
                                                            const char* name = "x") {
  const DenseView<const T> in = as_operand<T>(x, name);
  if (in.rows != expected)
    throw py::value_error(std::string(name) + " has " + std::to_string(in.rows) +
                          " rows, expected " + std::to_string(expected));
  py::array result = make_result<T>(x, result_rows, out);
  return {in, std::move(result)};
}

/// y = op(A) x for any operator with rows(), cols() and apply(in, out,
/// transpose), with the GIL released during the product.
template <class A, class T>
py::array apply_operator(const A& self, const py::array& x, bool transpose) {
  DenseView<T> out;
  auto [in, result] = operand_and_result<T>(x, transpose ? self.rows() : self.cols(),
                                            transpose ? self.cols() : self.rows(), out);
  {
    py::gil_scoped_release release;
    self.apply(in, out, transpose);
  }
  return result;
}

/// serialize() / deserialize(bytes) of a class with serialize() const and a
/// static deserialize(std::string), both with the GIL released.
template <class C, class... Extra>
void def_serialization(py::class_<C, Extra...>& cls) {
  cls.def("serialize",
          [](const C& c) {
            std::string blob;
            {
              py::gil_scoped_release release;
              blob = c.serialize();
            }
            return py::bytes(blob);
          })
      .def_static("deserialize", [](const py::bytes& b) {
        const std::string blob = b;
        py::gil_scoped_release release;
        return C::deserialize(blob);
      });
}

/// Copies an Eigen matrix into a new C-ordered numpy array.
template <class T>
py::array_t<T> to_numpy(const Matrix<T>& M) {
  py::array_t<T, py::array::c_style> out({M.rows(), M.cols()});
  RowMap<T>(out.mutable_data(), M.rows(), M.cols(),
            Eigen::OuterStride<>(std::max<Index>(M.cols(), 1))) = M;
  return out;
}

/// Copies a 2-D numpy array of dtype T (any strides) into an Eigen matrix.
template <class T>
Matrix<T> from_numpy(const py::array& a, const char* name) {
  require_dtype<T>(a, name);
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  auto r = a.unchecked<T, 2>();
  Matrix<T> M(r.shape(0), r.shape(1));
  for (Index i = 0; i < M.rows(); ++i)
    for (Index j = 0; j < M.cols(); ++j) M(i, j) = r(i, j);
  return M;
}

}  // namespace hsslin::bindings
