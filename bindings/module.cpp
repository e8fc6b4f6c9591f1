// The private extension hsslin._core (built once per instruction set; see
// CMakeLists.txt). Each concept registers itself from its own file.
#include <pybind11/pybind11.h>

#include <string>

#include "register.hpp"

#define HSSLIN_STRINGIFY_(x) #x
#define HSSLIN_STRINGIFY(x) HSSLIN_STRINGIFY_(x)
#define HSSLIN_DEFINE_MODULE(name, variable) PYBIND11_MODULE(name, variable)

namespace py = pybind11;

HSSLIN_DEFINE_MODULE(HSSLIN_MODULE_NAME, m) {
  m.doc() = "hsslin C++ core (private; import hsslin instead)";
  m.attr("simd") =
      std::string(HSSLIN_STRINGIFY(HSSLIN_MODULE_NAME)) == "_core_avx2" ? "avx2" : "generic";
  hsslin::bindings::register_runtime(m);
  hsslin::bindings::register_options(m);
  hsslin::bindings::register_hierarchical(m);
  hsslin::bindings::register_sparse(m);
  hsslin::bindings::register_sparse_plus(m);
  hsslin::bindings::register_factor(m);
  hsslin::bindings::register_kernels(m);
  hsslin::bindings::register_rpca(m);
  hsslin::bindings::register_quantized(m);
}
