// Bindings of the constructions that never see a dense array: kernels and
// the geometric cluster tree (HSS and HODLR from kernel entries), and HSS
// from Python callables for products and entries (from_operator).
#include <pybind11/stl.h>

#include "common.hpp"
#include "hsslin/hss_from_entries.hpp"

namespace hsslin::bindings {
namespace {

// A matrix known through vectorised Python callables. The compressor calls
// them from its worker threads, so every call takes the GIL; results are
// checked for shape and finiteness before they are used.
template <class T>
class PythonSource final : public MatrixSource<T> {
 public:
  PythonSource(Index m, Index n, py::object matvec, py::object rmatvec, py::object entries,
               bool symmetric)
      : m_(m),
        n_(n),
        matvec_(std::move(matvec)),
        rmatvec_(std::move(rmatvec)),
        entries_(std::move(entries)),
        symmetric_(symmetric) {}
  Index rows() const override { return m_; }
  Index cols() const override { return n_; }
  void multiply(const Matrix<T>& Omega, Matrix<T>& Y) const override {
    call_product(matvec_, "matvec", Omega, m_, Y);
  }
  void multiply_transpose(const Matrix<T>& Psi, Matrix<T>& Z) const override {
    call_product(symmetric_ ? matvec_ : rmatvec_, symmetric_ ? "matvec" : "rmatvec", Psi, n_, Z);
  }
  Matrix<T> gather(const std::vector<Index>& r, const std::vector<Index>& c) const override {
    py::gil_scoped_acquire acquire;
    py::array_t<std::int64_t> ri(Index(r.size())), ci(Index(c.size()));
    std::copy(r.begin(), r.end(), ri.mutable_data());
    std::copy(c.begin(), c.end(), ci.mutable_data());
    return result_of(entries_(ri, ci), "entries", Index(r.size()), Index(c.size()));
  }
  bool symmetric() const override { return symmetric_; }

 private:
  void call_product(const py::object& f, const char* name, const Matrix<T>& X, Index out_rows,
                    Matrix<T>& Y) const {
    py::gil_scoped_acquire acquire;
    py::array_t<T, py::array::f_style> x({X.rows(), X.cols()});
    std::copy(X.data(), X.data() + X.size(), x.mutable_data());
    Y = result_of(f(x), name, out_rows, X.cols());
  }
  static Matrix<T> result_of(const py::object& value, const char* name, Index rows, Index cols) {
    const py::array a = py::module_::import("numpy").attr("asarray")(value, py::dtype::of<T>());
    if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols)
      throw py::value_error(std::string(name) + " returned an array of shape " +
                            std::string(py::str(value.attr("shape"))) + ", expected (" +
                            std::to_string(rows) + ", " + std::to_string(cols) + ")");
    Matrix<T> M = from_numpy<T>(a, name);
    if (!M.allFinite())
      throw py::value_error(std::string(name) + " returned a non-finite value (NaN or Inf)");
    return M;
  }
  Index m_, n_;
  py::object matvec_, rmatvec_, entries_;
  bool symmetric_;
};

template <class T>
HSSMatrix<T> hss_from_operator(Index m, Index n, py::object matvec, py::object rmatvec,
                               py::object entries, bool symmetric, const HSSOptions& o) {
  const PythonSource<T> source(m, n, std::move(matvec), std::move(rmatvec), std::move(entries),
                               symmetric);
  py::gil_scoped_release release;
  return HSSMatrix<T>::compress(source, o);
}

// Points as an N x d row-major double array (validated in Python).
std::vector<double> points_of(const py::array& points, Index& n, Index& d) {
  const ConstRowMap<double> P = as_row_map<double>(points, "points");
  n = P.rows();
  d = P.cols();
  std::vector<double> out(size_t(n * d));
  RowMap<double>(out.data(), n, d, Eigen::OuterStride<>(d)) = P;
  return out;
}

py::array_t<std::int64_t> to_numpy(const std::vector<Index>& v) {
  py::array_t<std::int64_t> out(Index(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

template <class T>
void register_kernel_matrix(py::module_& m, const char* name) {
  using K = KernelMatrix<T>;
  py::class_<K>(m, name, py::module_local())
      .def(py::init([](const py::array& points, const std::string& kernel, double lengthscale,
                       double nugget) {
             Index n = 0, d = 0;
             std::vector<double> p = points_of(points, n, d);
             return K(std::move(p), n, d, Kernel(kernel, lengthscale, nugget));
           }),
           py::arg("points"), py::arg("kernel"), py::arg("lengthscale"), py::arg("nugget"))
      .def_property_readonly("size", &K::size)
      .def(
          "apply",
          [](const K& k, const py::array& x) {
            DenseView<T> out;
            auto [in, result] = operand_and_result<T>(x, k.size(), k.size(), out);
            {
              py::gil_scoped_release release;
              k.apply(in, out);
            }
            return result;
          },
          py::arg("x"))
      .def(
          "entries",
          [](const K& k, const py::array& rows, const py::array& cols) {
            auto r = rows.cast<py::array_t<std::int64_t, py::array::c_style>>();
            auto c = cols.cast<py::array_t<std::int64_t, py::array::c_style>>();
            for (auto* a : {&r, &c})
              for (Index t = 0; t < a->size(); ++t)
                if (a->data()[t] < 0 || a->data()[t] >= k.size())
                  throw py::index_error("index out of range for a kernel matrix of size " +
                                        std::to_string(k.size()));
            py::array_t<T, py::array::f_style> out({r.size(), c.size()});
            T* data = out.mutable_data();
            {
              py::gil_scoped_release release;
              k.entries(r.data(), r.size(), c.data(), c.size(), data, std::max<Index>(r.size(), 1));
            }
            return out;
          },
          py::arg("rows"), py::arg("cols"));
}

template <class T>
py::tuple hss_from_kernel(const py::array& points, const std::string& kernel, double lengthscale,
                          double nugget, const HSSOptions& o, const std::string& clustering,
                          bool hodlr) {
  Index n = 0, d = 0;
  std::vector<double> p = points_of(points, n, d);
  const Kernel k(kernel, lengthscale, nugget);
  const Index leaf_size = o.leaf_size();
  const double tol = o.tol();
  std::vector<Index> perm;
  py::object result;
  {
    py::gil_scoped_release release;
    // The near field reaches half a node's diameter: at the leaves of a 2-D
    // kd-tree that is the ring of adjacent leaves, where a singular kernel
    // varies fastest; farther out the random far-field samples stand in.
    const GeometricTree geo(p, n, d, leaf_size, clustering, 0.5);
    perm = geo.permutation();
    const KernelMatrix<T> K(geo.permuted_points(p), n, d, k);
    p = std::vector<double>();
    HSSMatrix<T> H = HSSMatrix<T>::from_kernel(K, geo, o);
    if (hodlr) {
      HODLRMatrix<T> L = hodlr_from_hss(H, tol);
      H = HSSMatrix<T>();
      py::gil_scoped_acquire acquire;
      result = py::cast(std::move(L));
    } else {
      py::gil_scoped_acquire acquire;
      result = py::cast(std::move(H));
    }
  }
  return py::make_tuple(result, to_numpy(perm));
}

template <class T>
void def_from_kernel(py::module_& m, const char* name, bool hodlr) {
  m.def(
      name,
      [hodlr](const py::array& points, const std::string& kernel, double lengthscale, double nugget,
              const HSSOptions& options, const std::string& clustering) {
        return hss_from_kernel<T>(points, kernel, lengthscale, nugget, options, clustering, hodlr);
      },
      py::arg("points"), py::arg("kernel"), py::arg("lengthscale"), py::arg("nugget"),
      py::arg("options"), py::arg("clustering"));
}

template <class T>
void def_from_operator(py::module_& m, const char* name) {
  m.def(name, &hss_from_operator<T>, py::arg("m"), py::arg("n"), py::arg("matvec"),
        py::arg("rmatvec"), py::arg("entries"), py::arg("symmetric"), py::arg("options"));
}

}  // namespace

void register_kernels(py::module_& m) {
  m.def("kernel_names", &Kernel::names);
  m.def(
      "geometric_permutation",
      [](const py::array& points, Index leaf_size, const std::string& clustering) {
        Index n = 0, d = 0;
        const std::vector<double> p = points_of(points, n, d);
        std::vector<Index> perm;
        {
          py::gil_scoped_release release;
          perm = GeometricTree(p, n, d, leaf_size, clustering, 0.5).permutation();
        }
        return to_numpy(perm);
      },
      py::arg("points"), py::arg("leaf_size"), py::arg("clustering"));
  register_kernel_matrix<float>(m, "KernelMatrix32");
  register_kernel_matrix<double>(m, "KernelMatrix64");
  def_from_operator<float>(m, "hss_from_operator32");
  def_from_operator<double>(m, "hss_from_operator64");
  def_from_kernel<float>(m, "hss_from_kernel32", false);
  def_from_kernel<double>(m, "hss_from_kernel64", false);
  def_from_kernel<float>(m, "hodlr_from_kernel32", true);
  def_from_kernel<double>(m, "hodlr_from_kernel64", true);
}

}  // namespace hsslin::bindings
