// The private extension hsslin._cuda (built only when CMake finds a CUDA
// compiler; see cmake/hsslin_cuda.cmake). Conversion and validation only:
// layouts arrive as NumPy arrays (hsslin/_cuda_layout.py), operands as
// DLPack capsules, whose structs are declared here from the DLPack ABI.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "device_operator.hpp"

namespace py = pybind11;
using hsslin::Index;
namespace hc = hsslin::cuda;

namespace {

// DLPack ABI (dlpack.h, version 0.x/1.x unversioned tensors).
struct DLDevice {
  std::int32_t device_type;
  std::int32_t device_id;
};
struct DLDataType {
  std::uint8_t code;
  std::uint8_t bits;
  std::uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;
  std::uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor*);
};
constexpr std::int32_t kDLCUDA = 2;
constexpr std::uint8_t kDLUInt = 1, kDLFloat = 2;

const DLTensor& tensor_of(const py::capsule& cap, const char* name) {
  if (std::string(cap.name() ? cap.name() : "") != "dltensor")
    throw py::value_error(std::string(name) + " is not an unconsumed DLPack capsule");
  auto* managed = static_cast<DLManagedTensor*>(cap.get_pointer());
  if (!managed) throw py::value_error(std::string(name) + ": empty DLPack capsule");
  return managed->dl_tensor;
}

/// A 1-D or 2-D float operand of the operator's dtype on its device.
hc::Operand operand_of(const py::capsule& cap, const char* name, const hc::DeviceOperator& op) {
  const DLTensor& t = tensor_of(cap, name);
  if (t.device.device_type != kDLCUDA)
    throw py::type_error(std::string(name) + " is not in CUDA device memory (DLPack device type " +
                         std::to_string(t.device.device_type) + ")");
  if (t.device.device_id != op.device())
    throw py::value_error(std::string(name) + " is on cuda:" + std::to_string(t.device.device_id) +
                          ", the operator on cuda:" + std::to_string(op.device()));
  const int bits = op.scalar() == hc::Scalar::f32 ? 32 : 64;
  if (t.dtype.code != kDLFloat || t.dtype.bits != bits || t.dtype.lanes != 1)
    throw py::type_error(std::string(name) + " must have dtype float" + std::to_string(bits));
  if (t.ndim != 1 && t.ndim != 2) throw py::value_error(std::string(name) + " must be 1-D or 2-D");
  hc::Operand o;
  o.data = static_cast<char*>(t.data) + t.byte_offset;
  o.rows = t.shape[0];
  o.cols = t.ndim == 2 ? t.shape[1] : 1;
  if (t.ndim == 1) {
    o.row_stride = t.strides ? t.strides[0] : 1;
    o.col_stride = std::max<Index>(o.rows, 1);
  } else {
    o.row_stride = t.strides ? t.strides[0] : o.cols;
    o.col_stride = t.strides ? t.strides[1] : 1;
  }
  return o;
}

template <class U>
const U* host_array(const py::handle& h, const char* name, Index count) {
  auto a = py::array::ensure(h);
  if (!a || !a.dtype().is(py::dtype::of<U>()) || !(a.flags() & py::array::c_style) ||
      Index(a.size()) != count)
    throw py::value_error(std::string("layout: ") + name + " must be a C-contiguous array of " +
                          std::to_string(count) + " " + std::string(py::str(py::dtype::of<U>())));
  return static_cast<const U*>(a.data());
}

template <class U>
std::vector<U> host_vector(const py::dict& d, const char* name) {
  auto a = py::array::ensure(d[name]);
  if (!a || !a.dtype().is(py::dtype::of<U>()) || a.ndim() != 1)
    throw py::value_error(std::string("layout: plan array ") + name + " has the wrong dtype");
  const auto* p = static_cast<const U*>(py::array_t<U, py::array::c_style>(a).data());
  return std::vector<U>(p, p + a.size());
}

hc::PlanSpec plan_of(const py::dict& d) {
  hc::PlanSpec p;
  p.rows_in = d["rows_in"].cast<Index>();
  p.rows_out = d["rows_out"].cast<Index>();
  p.scratch = d["scratch"].cast<Index>();
  p.stage_ptr = host_vector<std::int64_t>(d, "stage_ptr");
  p.seg_buf = host_vector<std::int32_t>(d, "seg_buf");
  p.seg_off = host_vector<std::int64_t>(d, "seg_off");
  p.seg_len = host_vector<std::int64_t>(d, "seg_len");
  p.seg_term = host_vector<std::int64_t>(d, "seg_term");
  p.term_a = host_vector<std::int64_t>(d, "term_a");
  p.term_ld = host_vector<std::int64_t>(d, "term_ld");
  p.term_trans = host_vector<std::int8_t>(d, "term_trans");
  p.term_w = host_vector<std::int64_t>(d, "term_w");
  p.term_buf = host_vector<std::int32_t>(d, "term_buf");
  p.term_off = host_vector<std::int64_t>(d, "term_off");
  return p;
}

hc::Path path_of(int path) {
  if (path < 0 || path > 2) throw py::value_error("path must be 0 (auto), 1 (fused) or 2 (cublas)");
  return static_cast<hc::Path>(path);
}

std::unique_ptr<hc::DeviceOperator> make_operator(const py::dict& layout, int device) {
  hc::LayoutSpec s;
  const std::string scalar = layout["scalar"].cast<std::string>();
  if (scalar != "float32" && scalar != "float64")
    throw py::type_error("layout: scalar must be float32 or float64");
  s.scalar = scalar == "float32" ? hc::Scalar::f32 : hc::Scalar::f64;
  s.rows = layout["rows"].cast<Index>();
  s.cols = layout["cols"].cast<Index>();
  s.arena_size = layout["arena_size"].cast<Index>();
  const py::dtype value_type =
      s.scalar == hc::Scalar::f32 ? py::dtype::of<float>() : py::dtype::of<double>();
  for (const py::handle& part : layout["arena_parts"].cast<py::list>()) {
    const auto pair = part.cast<py::tuple>();
    auto a = py::array::ensure(pair[1]);
    if (!a || !a.dtype().is(value_type) || !(a.flags() & py::array::c_style))
      throw py::value_error("layout: arena parts must be C-contiguous arrays of the scalar type");
    s.arena_parts.push_back({a.data(), pair[0].cast<Index>(), Index(a.size())});
  }
  if (!layout["plans"].is_none()) {
    const auto plans = layout["plans"].cast<py::dict>();
    s.has_plans = true;
    s.forward = plan_of(plans["forward"].cast<py::dict>());
    s.transposed = plan_of(plans["transposed"].cast<py::dict>());
  }
  if (!layout["sparse"].is_none()) {
    const auto sp = layout["sparse"].cast<py::tuple>();
    auto values = py::array::ensure(sp[0]);
    if (!values || !values.dtype().is(value_type) || !(values.flags() & py::array::c_style))
      throw py::value_error("layout: S's values must be a C-contiguous array of the scalar type");
    s.has_sparse = true;
    s.nnz = Index(values.size());
    s.values = values.data();
    s.indices = host_array<std::int32_t>(sp[1], "S.indices", s.nnz);
    s.indptr = host_array<std::int64_t>(sp[2], "S.indptr", s.rows + 1);
  }
  auto perm = [&](const char* name, Index n) -> const std::int32_t* {
    return layout[name].is_none() ? nullptr : host_array<std::int32_t>(layout[name], name, n);
  };
  s.row_perm = perm("row_perm", s.rows);
  s.row_inv = perm("row_inv", s.rows);
  s.col_perm = perm("col_perm", s.cols);
  s.col_inv = perm("col_inv", s.cols);
  // The arrays stay referenced by `layout` while the upload copies them.
  py::gil_scoped_release release;
  return std::make_unique<hc::DeviceOperator>(s, device);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "hsslin CUDA operators (private; use hsslin.cuda)";
  m.def("query", []() {
    const hc::DeviceQuery q = hc::query_devices();
    py::dict d;
    d["count"] = q.count;
    d["error"] = q.error;
    d["message"] = q.message;
    d["runtime_version"] = q.runtime_version;
    d["driver_version"] = q.driver_version;
    return d;
  });
  m.def("device_name", &hc::device_name, py::arg("device"));
  py::class_<hc::DeviceOperator>(m, "DeviceOperator")
      .def(py::init(&make_operator), py::arg("layout"), py::arg("device"))
      .def_property_readonly("rows", &hc::DeviceOperator::rows)
      .def_property_readonly("cols", &hc::DeviceOperator::cols)
      .def_property_readonly("device", &hc::DeviceOperator::device)
      .def_property_readonly("nbytes", &hc::DeviceOperator::nbytes)
      .def(
          "resolve",
          [](const hc::DeviceOperator& op, int path, Index k, bool transpose) {
            return int(op.resolve(path_of(path), k, transpose));
          },
          py::arg("path"), py::arg("k"), py::arg("transpose"))
      .def(
          "workspace_bytes",
          [](const hc::DeviceOperator& op, Index k, bool transpose, int path) {
            return op.workspace_bytes(k, transpose, path_of(path));
          },
          py::arg("k"), py::arg("transpose"), py::arg("path"))
      .def(
          "apply",
          [](const hc::DeviceOperator& op, const py::capsule& x, const py::capsule& y,
             const py::object& workspace, bool transpose, int path, std::uintptr_t stream) {
            const hc::Operand xo = operand_of(x, "x", op);
            const hc::Operand yo = operand_of(y, "y", op);
            void* ws = nullptr;
            Index ws_bytes = 0;
            if (!workspace.is_none()) {
              const DLTensor& t = tensor_of(workspace.cast<py::capsule>(), "workspace");
              if (t.device.device_type != kDLCUDA || t.device.device_id != op.device() ||
                  t.dtype.code != kDLUInt || t.dtype.bits != 8 || t.ndim != 1)
                throw py::value_error(
                    "workspace must be a 1-D uint8 array on the operator's device");
              ws = static_cast<char*>(t.data) + t.byte_offset;
              ws_bytes = t.shape[0];
            }
            py::gil_scoped_release release;
            op.apply(xo, yo, ws, ws_bytes, transpose, path_of(path),
                     reinterpret_cast<void*>(stream));
          },
          py::arg("x"), py::arg("y"), py::arg("workspace"), py::arg("transpose"), py::arg("path"),
          py::arg("stream"));
}
