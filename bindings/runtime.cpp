// Bindings of what is not a matrix: the thread count and the file
// container's checksum.
#include <pybind11/pybind11.h>

#include <string_view>

#include "hsslin/io.hpp"
#include "hsslin/parallel.hpp"
#include "register.hpp"

namespace hsslin::bindings {

void register_runtime(pybind11::module_& m) {
  namespace py = pybind11;
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("max_num_threads", &max_num_threads);
  m.def(
      "checksum",
      [](const py::bytes& payload) {
        const std::string_view bytes = payload;
        return fnv1a(bytes.data(), bytes.size());
      },
      py::arg("payload"), "the container's checksum of a payload (the bytes after the header)");
}

}  // namespace hsslin::bindings
