// Bindings of robust PCA: the options type (its defaults are the ones the
// Python signature shows) and robust_pca for float and double.
#include <pybind11/stl.h>

#include "common.hpp"
#include "hsslin/rpca.hpp"

namespace hsslin::bindings {
namespace {

py::array_t<double> to_vector(const std::vector<double>& v) {
  py::array_t<double> out(Index(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

template <class T>
py::dict run(const py::array& W, const RPCAOptions& options) {
  const ConstRowMap<T> map = as_row_map<T>(W, "W");
  RPCAResult<T> r;
  {
    py::gil_scoped_release release;
    r = robust_pca<T>(map, options);
  }
  py::list history;
  for (const RPCAStep& s : r.history) {
    py::dict d;
    d["rank"] = s.rank;
    d["nnz"] = s.nnz;
    d["residual"] = s.residual;
    d["dual_residual"] = s.dual_residual;
    d["mu"] = s.mu;
    d["sketch"] = s.sketch;
    d["sketches"] = s.sketches;
    d["seconds"] = s.seconds;
    history.append(d);
  }
  py::dict out;
  out["U"] = to_numpy<T>(r.U);
  out["V"] = to_numpy<T>(r.V);
  out["sigma"] = to_vector(r.sigma);
  out["S"] = py::cast(std::move(r.S));
  out["history"] = history;
  out["lam"] = r.lambda;
  out["converged"] = r.converged;
  return out;
}

// A read-write property whose setter is RPCAOptions' validating setter.
template <class V, class Get, class Set>
void option(py::class_<RPCAOptions>& c, const char* name, Get get, Set set) {
  c.def_property(name, get, [set](RPCAOptions& o, V v) { (o.*set)(v); }, "");
}

}  // namespace

void register_rpca(py::module_& m) {
  py::class_<RPCAOptions> c(m, "RPCAOptions", py::module_local());
  c.def(py::init<>());
  c.def_property(
      "lam",
      [](const RPCAOptions& o) -> py::object {
        return o.has_lambda() ? py::cast(o.lambda()) : py::none();
      },
      [](RPCAOptions& o, double v) { o.set_lambda(v); });
  option<Index>(c, "max_iter", &RPCAOptions::max_iter, &RPCAOptions::set_max_iter);
  c.def_property(
      "tol",
      [](const RPCAOptions& o) -> py::object {
        return o.tol() > 0.0 ? py::cast(o.tol()) : py::none();
      },
      [](RPCAOptions& o, double v) { o.set_tol(v); });
  c.def("tol_for", [](const RPCAOptions& o, const std::string& dtype) {
    if (dtype == "float32") return o.tol_for<float>();
    if (dtype == "float64") return o.tol_for<double>();
    throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
  });
  option<double>(c, "rho", &RPCAOptions::rho, &RPCAOptions::set_rho);
  option<double>(c, "mu_scale", &RPCAOptions::mu_scale, &RPCAOptions::set_mu_scale);
  option<double>(c, "mu_growth_limit", &RPCAOptions::mu_growth_limit,
                 &RPCAOptions::set_mu_growth_limit);
  option<Index>(c, "oversampling", &RPCAOptions::oversampling, &RPCAOptions::set_oversampling);
  option<int>(c, "power_iterations", &RPCAOptions::power_iterations,
              &RPCAOptions::set_power_iterations);
  option<Index>(c, "initial_rank", &RPCAOptions::initial_rank, &RPCAOptions::set_initial_rank);
  option<std::uint64_t>(c, "seed", &RPCAOptions::seed, &RPCAOptions::set_seed);
  c.def("lambda_for", &RPCAOptions::lambda_for, py::arg("m"), py::arg("n"));

  m.def(
      "robust_pca",
      [](const py::array& W, const RPCAOptions& options) -> py::dict {
        if (W.dtype().is(py::dtype::of<float>())) return run<float>(W, options);
        if (W.dtype().is(py::dtype::of<double>())) return run<double>(W, options);
        throw py::type_error("W must have dtype float32 or float64, got " +
                             std::string(py::str(W.dtype())));
      },
      py::arg("W"), py::arg("options"));
}

}  // namespace hsslin::bindings
