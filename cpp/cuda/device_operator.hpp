#pragma once
/// \file device_operator.hpp
/// \brief The device API of hsslin._cuda: operators resident on an NVIDIA GPU.
///
/// Plain C++ (no CUDA types), so the binding compiles with the host compiler.
/// An operator arrives in the layout of hsslin/_cuda_layout.py: a factor
/// arena, a plan of stages for H x and one for H^T x, an optional CSR part
/// and optional permutations; y = S x + P_r^T H P_c x.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hsslin/config.hpp"

namespace hsslin::cuda {

/// \brief What the CUDA runtime reports: a device count, or why there is none.
struct DeviceQuery {
  int count = 0;
  int error = 0;        ///< cudaError_t of cudaGetDeviceCount (0: success)
  std::string message;  ///< its text when error != 0
  int runtime_version = 0;
  int driver_version = 0;  ///< 0 when no driver is installed
};
DeviceQuery query_devices();
/// Name of device i (throws when there is none).
std::string device_name(int device);

enum class Scalar { f32, f64 };
/// Which executor runs a plan's stages.
enum class Path { automatic, fused, cublas };

/// \brief A k-column operand in device memory, strides in elements.
struct Operand {
  void* data = nullptr;
  Index rows = 0, cols = 1;
  Index row_stride = 1, col_stride = 1;
};

/// \brief One plan's host arrays (hsslin/_cuda_layout.py, class Plan).
struct PlanSpec {
  Index rows_in = 0, rows_out = 0, scratch = 0;
  std::vector<Index> stage_ptr, seg_off, seg_len, seg_term;
  std::vector<std::int32_t> seg_buf;
  std::vector<Index> term_a, term_ld, term_w, term_off;
  std::vector<std::int32_t> term_buf;
  std::vector<std::int8_t> term_trans;
};

/// \brief `count` host elements to be copied to arena offset `offset`.
struct HostPart {
  const void* data = nullptr;
  Index offset = 0, count = 0;
};

/// \brief Everything an operator uploads; host pointers stay valid during construction only.
struct LayoutSpec {
  Scalar scalar = Scalar::f64;
  Index rows = 0, cols = 0;
  Index arena_size = 0;  ///< elements
  std::vector<HostPart> arena_parts;
  bool has_plans = false;
  PlanSpec forward, transposed;
  bool has_sparse = false;
  const void* values = nullptr;
  const std::int32_t* indices = nullptr;
  const std::int64_t* indptr = nullptr;
  Index nnz = 0;
  const std::int32_t *row_perm = nullptr, *col_perm = nullptr;
  const std::int32_t *row_inv = nullptr, *col_inv = nullptr;
};

/// \brief An operator uploaded to one device; products run on the caller's stream.
///
/// Per-call memory (partial results, gathered operands, cuBLAS pointer
/// arrays) is the caller's `workspace`, of workspace_bytes() bytes, so
/// products on different streams never share scratch memory.
class DeviceOperator {
 public:
  DeviceOperator(const LayoutSpec& spec, int device);
  ~DeviceOperator();
  DeviceOperator(const DeviceOperator&) = delete;
  DeviceOperator& operator=(const DeviceOperator&) = delete;

  Index rows() const;
  Index cols() const;
  Scalar scalar() const;
  int device() const;
  /// Device bytes held: arena, plans and their work lists, S, permutations.
  Index nbytes() const;
  /// The path a product with k columns takes under `path` (automatic resolved).
  Path resolve(Path path, Index k, bool transpose) const;
  Index workspace_bytes(Index k, bool transpose, Path path) const;
  /// y = A x (A^T x). y must be contiguous (row- or column-major); x any strides.
  void apply(const Operand& x, const Operand& y, void* workspace, Index workspace_bytes,
             bool transpose, Path path, void* stream) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace hsslin::cuda
