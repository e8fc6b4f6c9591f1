#pragma once
// What bindings/module.cpp calls: each concept registers itself from its own
// file. Kept apart from common.hpp so that module.cpp, compiled once per
// instruction set, does not parse Eigen.
#include <pybind11/pybind11.h>

namespace hsslin::bindings {

void register_runtime(pybind11::module_& m);
void register_hierarchical(pybind11::module_& m);
void register_sparse(pybind11::module_& m);
void register_sparse_plus(pybind11::module_& m);
void register_factor(pybind11::module_& m);
void register_kernels(pybind11::module_& m);
void register_rpca(pybind11::module_& m);
void register_options(pybind11::module_& m);
void register_quantized(pybind11::module_& m);

}  // namespace hsslin::bindings
