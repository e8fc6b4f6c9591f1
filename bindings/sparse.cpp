// Bindings of CSRMatrix (float and double), reverse Cuthill-McKee, bandwidth
// and top-magnitude extraction. The CSR arrays are shared with numpy in both
// directions: a matrix built from numpy arrays borrows the values' buffer (the
// C++ object holds a reference to it; indices are copied unless an hsslin
// matrix owns them, see csr_from_arrays), and the data/indices/indptr
// properties are read-only views whose base is the matrix object.
#include <pybind11/stl.h>

#include <utility>

#include "common.hpp"
#include "hsslin/csr.hpp"
#include "hsslin/rcm.hpp"
#include "hsslin/sparse_select.hpp"

namespace hsslin::bindings {
namespace {

/// A 1-D C-contiguous array of exactly dtype V.
template <class V>
void require_vector(const py::array& a, const char* name, const char* dtype) {
  if (!a.dtype().is(py::dtype::of<V>()))
    throw py::type_error(std::string(name) + " must have dtype " + dtype + ", got " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 1) throw py::value_error(std::string(name) + " must be 1-D");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be contiguous");
  require_aligned(a, name);
}

/// Row pointers as int64, from an int32 or int64 1-D array.
std::vector<std::int64_t> indptr_from(const py::array& a) {
  if (a.ndim() != 1) throw py::value_error("indptr must be 1-D");
  require_aligned(a, "indptr");
  if (a.dtype().is(py::dtype::of<std::int64_t>())) {
    auto r = a.unchecked<std::int64_t, 1>();
    std::vector<std::int64_t> out(size_t(r.shape(0)));
    for (Index i = 0; i < r.shape(0); ++i) out[size_t(i)] = r(i);
    return out;
  }
  if (a.dtype().is(py::dtype::of<std::int32_t>())) {
    auto r = a.unchecked<std::int32_t, 1>();
    std::vector<std::int64_t> out(size_t(r.shape(0)));
    for (Index i = 0; i < r.shape(0); ++i) out[size_t(i)] = r(i);
    return out;
  }
  throw py::type_error("indptr must have dtype int32 or int64, got " +
                       std::string(py::str(a.dtype())));
}

/// What a CSR matrix built from numpy arrays holds on to: the values array
/// (borrowed), and the column indices, borrowed or copied (see csr_from_arrays).
/// Released with the GIL held.
struct HeldArrays {
  py::object values, indices;
  std::vector<std::int32_t> indices_copy;
};

std::shared_ptr<HeldArrays> hold(py::object values) {
  auto* held = new HeldArrays{std::move(values), py::none(), {}};
  return std::shared_ptr<HeldArrays>(held, [](HeldArrays* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
}

/// True when the array's memory belongs to an hsslin CSR matrix (the end of
/// its chain of bases): memory nobody can write, so it is safe to share.
bool owned_by_csr(const py::array& a) {
  py::object base = a;
  while (py::isinstance<py::array>(base)) {
    py::object next = base.attr("base");
    if (next.is_none()) return false;
    base = next;
  }
  return py::isinstance<CSRMatrix<float>>(base) || py::isinstance<CSRMatrix<double>>(base);
}

/// Read-only 1-D view of C++ memory owned by `owner`.
template <class V>
py::array view_of(const V* data, Index count, py::object owner) {
  py::array out(py::dtype::of<V>(), {count}, {Index(sizeof(V))}, data, owner);
  out.attr("flags").attr("writeable") = false;
  return out;
}

template <class T>
CSRMatrix<T> csr_from_arrays(const py::array& data, const py::array& indices,
                             const py::array& indptr, std::pair<Index, Index> shape) {
  require_vector<T>(data, "data", dtype_name<T>());
  require_vector<std::int32_t>(indices, "indices", "int32");
  std::vector<std::int64_t> ptr = indptr_from(indptr);
  const auto [rows, cols] = shape;
  if (rows < 0 || cols < 0)
    throw py::value_error("shape must be non-negative, got (" + std::to_string(rows) + ", " +
                          std::to_string(cols) + ")");
  if (Index(ptr.size()) != rows + 1)
    throw py::value_error("indptr has " + std::to_string(ptr.size()) +
                          " entries, expected shape[0] + 1 = " + std::to_string(rows + 1));
  if (data.shape(0) != indices.shape(0))
    throw py::value_error("data has " + std::to_string(data.shape(0)) +
                          " entries but indices has " + std::to_string(indices.shape(0)));
  if (ptr.back() != indices.shape(0))
    throw py::value_error("indptr[-1] = " + std::to_string(ptr.back()) + " but indices has " +
                          std::to_string(indices.shape(0)) + " entries");
  // The values are borrowed (zero copy: writing them changes the matrix, and
  // cannot make a product misbehave). The column indices are copied unless
  // they already belong to an hsslin CSR matrix: the caller may write to an
  // array it lent us (scipy's in-place methods do), and one index written
  // out of range afterwards would make the next product read outside x.
  const T* values = static_cast<const T*>(data.data());
  const auto* idx = static_cast<const std::int32_t*>(indices.data());
  const Index nnz = indices.shape(0);
  auto held = hold(data);
  if (owned_by_csr(indices)) {
    held->indices = indices;
  } else {
    held->indices_copy.assign(idx, idx + nnz);
    idx = held->indices_copy.data();
  }
  py::gil_scoped_release release;
  return CSRMatrix<T>::borrow(rows, cols, values, idx, std::move(ptr), std::move(held));
}

template <class T>
void register_csr(py::module_& m, const char* name) {
  using S = CSRMatrix<T>;
  py::class_<S> cls(m, name, py::module_local());
  def_serialization(cls);
  cls.def(py::init(&csr_from_arrays<T>), py::arg("data"), py::arg("indices"), py::arg("indptr"),
          py::arg("shape"))
      .def("apply", &apply_operator<S, T>, py::arg("x"), py::arg("transpose"))
      .def(
          "to_dense",
          [](const S& s, bool transpose) {
            const Index m = transpose ? s.cols() : s.rows();
            const Index n = transpose ? s.rows() : s.cols();
            py::array_t<T, py::array::c_style> out({m, n});
            T* data = out.mutable_data();
            py::gil_scoped_release release;
            s.to_dense(data, transpose);
            return out;
          },
          py::arg("transpose"))
      .def_property_readonly("rows", &S::rows)
      .def_property_readonly("cols", &S::cols)
      .def_property_readonly("nnz", &S::nnz)
      .def_property_readonly("nbytes", &S::nbytes)
      .def_static("nbytes_for", &S::nbytes_for, py::arg("rows"), py::arg("nnz"),
                  "nbytes of a CSR matrix with `rows` rows and `nnz` stored entries")
      .def_property_readonly("data",
                             [](py::object self) {
                               const S& s = self.cast<const S&>();
                               return view_of(s.values(), s.nnz(), self);
                             })
      .def_property_readonly("indices",
                             [](py::object self) {
                               const S& s = self.cast<const S&>();
                               return view_of(s.indices(), s.nnz(), self);
                             })
      .def_property_readonly("indptr", [](py::object self) {
        const S& s = self.cast<const S&>();
        return view_of(s.indptr(), s.rows() + 1, self);
      });
}

/// Pattern view of int64 indptr / int32 indices arrays (checked here).
SparsePattern pattern_of(const py::array& indptr, const py::array& indices,
                         std::pair<Index, Index> shape) {
  require_vector<std::int64_t>(indptr, "indptr", "int64");
  require_vector<std::int32_t>(indices, "indices", "int32");
  SparsePattern p;
  p.rows = shape.first;
  p.cols = shape.second;
  if (p.rows < 0 || p.cols < 0) throw py::value_error("shape must be non-negative");
  if (indptr.shape(0) != p.rows + 1)
    throw py::value_error("indptr has " + std::to_string(indptr.shape(0)) +
                          " entries, expected shape[0] + 1 = " + std::to_string(p.rows + 1));
  p.indptr = static_cast<const std::int64_t*>(indptr.data());
  p.indices = static_cast<const std::int32_t*>(indices.data());
  if (p.indptr[p.rows] != indices.shape(0))
    throw py::value_error("indptr[-1] = " + std::to_string(p.indptr[p.rows]) + " but indices has " +
                          std::to_string(indices.shape(0)) + " entries");
  return p;
}

py::array_t<std::int64_t> to_int_array(const std::vector<Index>& v) {
  py::array_t<std::int64_t> out(Index(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

std::vector<Index> perm_from(const py::array& a, Index n, const char* name) {
  require_vector<std::int64_t>(a, name, "int64");
  if (a.shape(0) != n)
    throw py::value_error(std::string(name) + " has " + std::to_string(a.shape(0)) +
                          " entries, expected " + std::to_string(n));
  const auto* p = static_cast<const std::int64_t*>(a.data());
  return std::vector<Index>(p, p + n);
}

template <class T>
CSRMatrix<T> top_magnitude_of(const py::array& W, double rho, bool per_row) {
  const ConstRowMap<T> map = as_row_map<T>(W, "W");
  py::gil_scoped_release release;
  return top_magnitude<T>(map, rho, per_row);
}

}  // namespace

void register_sparse(py::module_& m) {
  register_csr<float>(m, "CSRMatrix32");
  register_csr<double>(m, "CSRMatrix64");
  m.def(
      "reverse_cuthill_mckee",
      [](const py::array& indptr, const py::array& indices, std::pair<Index, Index> shape,
         bool symmetric_mode) {
        const SparsePattern p = pattern_of(indptr, indices, shape);
        Ordering o;
        {
          py::gil_scoped_release release;
          o = reverse_cuthill_mckee(p, symmetric_mode);
        }
        return py::make_tuple(to_int_array(o.rows), to_int_array(o.cols));
      },
      py::arg("indptr"), py::arg("indices"), py::arg("shape"), py::arg("symmetric_mode"));
  m.def(
      "bandwidth",
      [](const py::array& indptr, const py::array& indices, std::pair<Index, Index> shape,
         const py::array& row_perm, const py::array& col_perm) {
        const SparsePattern p = pattern_of(indptr, indices, shape);
        const std::vector<Index> rp = perm_from(row_perm, p.rows, "row_perm");
        const std::vector<Index> cp = perm_from(col_perm, p.cols, "col_perm");
        py::gil_scoped_release release;
        return bandwidth(p, rp.data(), cp.data());
      },
      py::arg("indptr"), py::arg("indices"), py::arg("shape"), py::arg("row_perm"),
      py::arg("col_perm"));
  m.def("top_count", &top_count, py::arg("rho"), py::arg("total"));
  m.def(
      "top_magnitude",
      [](const py::array& W, double rho, bool per_row) -> py::object {
        if (W.dtype().is(py::dtype::of<float>()))
          return py::cast(top_magnitude_of<float>(W, rho, per_row));
        if (W.dtype().is(py::dtype::of<double>()))
          return py::cast(top_magnitude_of<double>(W, rho, per_row));
        throw py::type_error("W must have dtype float32 or float64, got " +
                             std::string(py::str(W.dtype())));
      },
      py::arg("W"), py::arg("rho"), py::arg("per_row"));
}

}  // namespace hsslin::bindings
