#pragma once
// Conversion helpers shared by the binding files. Arrays arrive as plain
// py::array and are checked here (dtype, dimensions, contiguity), so a
// strided view is never read as if it were dense.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "hsslin/kernels.hpp"

namespace hsslin::bindings {
namespace py = pybind11;

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(a.dtype())));
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

void register_hierarchical(py::module_& m);
void register_sparse(py::module_& m);
void register_sparse_plus(py::module_& m);
void register_rpca(py::module_& m);

}  // namespace hsslin::bindings
