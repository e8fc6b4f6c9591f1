// The construction options as Python classes, _core.HSSOptions and
// _core.HODLROptions: each attribute reads the C++ getter and writes through
// the validating setter, and a fresh instance holds the defaults. Python
// takes its signatures' defaults from here, so an option, its range and its
// default are written once, in cpp/include/hsslin/options.hpp.
#include <pybind11/pybind11.h>

#include "hsslin/options.hpp"
#include "register.hpp"

namespace py = pybind11;

namespace hsslin::bindings {
namespace {

// A read-write attribute whose setter is the options class's validating setter.
template <class V, class O, class Get, class Set>
void option(py::class_<O>& c, const char* name, Get get, Set set) {
  c.def_property(name, get, [set](O& o, V v) { (o.*set)(v); });
}

// An attribute whose value 0 means "not set": None in Python.
template <class V, class O, class Get, class Set>
void optional_option(py::class_<O>& c, const char* name, Get get, Set set) {
  c.def_property(
      name,
      [get](const O& o) -> py::object {
        const V v = (o.*get)();
        return v == V(0) ? py::none() : py::cast(v);
      },
      [set](O& o, V v) { (o.*set)(v); });
}

template <class O>
py::class_<O> options_class(py::module_& m, const char* name, const char* doc) {
  py::class_<O> c(m, name, doc, py::module_local());
  c.def(py::init<>());
  return c;
}

}  // namespace

void register_options(py::module_& m) {
  auto hss = options_class<HSSOptions>(m, "HSSOptions",
                                       "Options of HSS compression; a fresh instance holds the "
                                       "defaults, and each attribute validates what it is given");
  option<double>(hss, "tol", &HSSOptions::tol, &HSSOptions::set_tol);
  optional_option<Index>(hss, "max_rank", &HSSOptions::max_rank, &HSSOptions::set_max_rank);
  option<Index>(hss, "leaf_size", &HSSOptions::leaf_size, &HSSOptions::set_leaf_size);
  option<Index>(hss, "oversampling", &HSSOptions::oversampling, &HSSOptions::set_oversampling);
  option<Index>(hss, "initial_samples", &HSSOptions::initial_samples,
                &HSSOptions::set_initial_samples);
  option<std::uint64_t>(hss, "seed", &HSSOptions::seed, &HSSOptions::set_seed);

  auto hodlr = options_class<HODLROptions>(
      m, "HODLROptions",
      "Options of HODLR compression (a tolerance or a rank schedule); a fresh instance holds "
      "the defaults, and each attribute validates what it is given");
  optional_option<double>(hodlr, "tol", &HODLROptions::tol, &HODLROptions::set_tol);
  optional_option<Index>(hodlr, "rank", &HODLROptions::rank, &HODLROptions::set_rank);
  option<double>(hodlr, "rank_decay", &HODLROptions::rank_decay, &HODLROptions::set_rank_decay);
  option<Index>(hodlr, "min_rank", &HODLROptions::min_rank, &HODLROptions::set_min_rank);
  optional_option<Index>(hodlr, "max_rank", &HODLROptions::max_rank, &HODLROptions::set_max_rank);
  option<Index>(hodlr, "leaf_size", &HODLROptions::leaf_size, &HODLROptions::set_leaf_size);
  option<Index>(hodlr, "power_iterations", &HODLROptions::power_iterations,
                &HODLROptions::set_power_iterations);
  option<std::uint64_t>(hodlr, "seed", &HODLROptions::seed, &HODLROptions::set_seed);
  hodlr.def_property_readonly_static(
      "default_tol", [](const py::object&) { return HODLROptions::kDefaultTol; },
      "The tolerance compression uses when neither tol nor rank is set");
}

}  // namespace hsslin::bindings
