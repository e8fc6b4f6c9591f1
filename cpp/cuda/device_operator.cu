// DeviceOperator: upload of a layout (hsslin/_cuda_layout.py), products on
// the caller's stream through the fused item kernels (few columns) or one
// grouped cuBLAS GEMM per term position of each stage (many columns).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "device_operator.hpp"
#include "kernels.cuh"

namespace hsslin::cuda {
namespace {

using detail::Buffers;
using detail::Item;

// Below this many columns the fused kernels (which read each factor entry
// once per KT columns, see kernels.cu) run; from it on, cuBLAS. A first
// guess, to be set from benchmarks/bench_cuda.py on a GPU.
constexpr Index kCublasColumns = 16;
constexpr Index kAlign = 256;  // bytes: workspace regions start on this boundary

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) + ")");
}

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + ": " + cublasGetStatusString(s));
}

/// Makes `device` current for a scope and restores the caller's device.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() { cudaSetDevice(previous_); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
};

/// One cuBLAS handle per (device, stream): a handle's default workspace is
/// not safe to share between streams that run at once.
cublasHandle_t handle_for(int device, cudaStream_t stream) {
  static std::mutex mutex;
  static std::map<std::pair<int, cudaStream_t>, cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mutex);
  auto& h = handles[{device, stream}];
  if (!h) {
    check_cublas(cublasCreate(&h), "cublasCreate");
    check_cublas(cublasSetStream(h, stream), "cublasSetStream");
  }
  return h;
}

Index align_up(Index bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

bool column_major(const Operand& a) { return a.row_stride == 1; }
Index leading(const Operand& a) { return std::max<Index>({a.col_stride, a.rows, 1}); }

/// One grouped cuBLAS call: the terms at one position of every segment of a
/// stage, grouped by equal shapes (terms `first` .. in the ordered arrays).
struct GroupedCall {
  Index first = 0;
  std::vector<cublasOperation_t> transa;
  std::vector<std::int64_t> m, kdim, lda, size;
  std::vector<std::int8_t> in_buf, out_buf;
};

struct DevicePlan {
  Index rows_in = 0, rows_out = 0, scratch = 0;
  std::vector<Index> item_ptr;  // stage t runs items [item_ptr[t], item_ptr[t + 1])
  Item* items = nullptr;
  Index terms = 0;
  std::vector<GroupedCall> calls;
  Index *a = nullptr, *in_off = nullptr, *out_off = nullptr;
  std::int8_t *in_buf = nullptr, *out_buf = nullptr;
};

/// Rejects a plan whose indices would reach outside the arena or a buffer.
void check_plan(const PlanSpec& p, Index arena_size) {
  const Index segs = Index(p.seg_off.size()), terms = Index(p.term_a.size());
  HSSLIN_CHECK(!p.stage_ptr.empty() && p.stage_ptr.front() == 0 && p.stage_ptr.back() == segs,
               "plan: stage_ptr does not cover the segments");
  HSSLIN_CHECK(Index(p.seg_buf.size()) == segs && Index(p.seg_len.size()) == segs &&
                   Index(p.seg_term.size()) == segs + 1 && p.seg_term.front() == 0 &&
                   p.seg_term.back() == terms,
               "plan: segment arrays disagree in length");
  HSSLIN_CHECK(Index(p.term_ld.size()) == terms && Index(p.term_w.size()) == terms &&
                   Index(p.term_off.size()) == terms && Index(p.term_buf.size()) == terms &&
                   Index(p.term_trans.size()) == terms,
               "plan: term arrays disagree in length");
  HSSLIN_CHECK(p.rows_in >= 0 && p.rows_out >= 0 && p.scratch >= 0, "plan: negative size");
  const Index rows[3] = {p.rows_in, p.rows_out, p.scratch};
  for (size_t t = 0; t + 1 < p.stage_ptr.size(); ++t)
    HSSLIN_CHECK(p.stage_ptr[t] <= p.stage_ptr[t + 1], "plan: stage_ptr decreases");
  for (Index s = 0; s < segs; ++s) {
    const int buf = p.seg_buf[size_t(s)];
    const Index off = p.seg_off[size_t(s)], len = p.seg_len[size_t(s)];
    HSSLIN_CHECK(buf == 1 || buf == 2, "plan: segment ", s, " writes buffer ", buf);
    HSSLIN_CHECK(off >= 0 && len > 0 && len <= INT_MAX && off <= rows[buf] - len, "plan: segment ",
                 s, " is out of its buffer");
    HSSLIN_CHECK(p.seg_term[size_t(s)] <= p.seg_term[size_t(s) + 1], "plan: seg_term decreases");
    for (Index j = p.seg_term[size_t(s)]; j < p.seg_term[size_t(s) + 1]; ++j) {
      const int ib = p.term_buf[size_t(j)];
      const Index a = p.term_a[size_t(j)], ld = p.term_ld[size_t(j)], w = p.term_w[size_t(j)];
      const Index io = p.term_off[size_t(j)];
      const bool trans = p.term_trans[size_t(j)] != 0;
      HSSLIN_CHECK(ib >= 0 && ib <= 2 && w > 0 && io >= 0 && io <= rows[ib] - w, "plan: term ", j,
                   " reads outside its buffer");
      HSSLIN_CHECK(ld >= (trans ? len : w), "plan: term ", j, " has leading dimension ", ld);
      // Last entry read: a + (len - 1) ld + w - 1, or a + (w - 1) ld + len - 1.
      const Index outer = trans ? w : len, inner = trans ? len : w;
      HSSLIN_CHECK(a >= 0 && (outer - 1) <= (arena_size - a - inner) / ld &&
                       a + (outer - 1) * ld + inner <= arena_size,
                   "plan: term ", j, " reads outside the arena");
    }
  }
}

}  // namespace

struct DeviceOperator::Impl {
  int device = 0;
  Scalar scalar = Scalar::f64;
  Index rows = 0, cols = 0, elt = 8, bytes = 0;
  std::vector<void*> allocations;
  void* arena = nullptr;
  bool has_plans = false;
  DevicePlan plans[2];  // [transpose]
  bool has_sparse = false;
  void* values = nullptr;
  std::int32_t* indices = nullptr;
  std::int64_t* indptr = nullptr;
  std::int32_t *row_perm = nullptr, *col_perm = nullptr, *row_inv = nullptr, *col_inv = nullptr;

  ~Impl() {
    if (allocations.empty()) return;
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(device);
    for (void* p : allocations) cudaFree(p);
    cudaSetDevice(previous);
  }

  void* allocate(Index nbytes) {
    void* p = nullptr;
    if (nbytes == 0) return nullptr;
    check_cuda(cudaMalloc(&p, size_t(nbytes)), "cudaMalloc");
    allocations.push_back(p);
    bytes += nbytes;
    return p;
  }

  template <class U>
  U* upload(const U* host, Index count) {
    if (count == 0) return nullptr;
    U* d = static_cast<U*>(allocate(count * Index(sizeof(U))));
    check_cuda(cudaMemcpy(d, host, size_t(count) * sizeof(U), cudaMemcpyHostToDevice),
               "cudaMemcpy (upload)");
    return d;
  }

  void build_plan(const PlanSpec& spec, DevicePlan& plan, Index arena_size);
  void build_items(const PlanSpec& spec, DevicePlan& plan);
  void build_calls(const PlanSpec& spec, DevicePlan& plan);

  struct Regions {
    Index scratch = 0, xin = 0, yh = 0, ptrs = 0, total = 0;
  };
  Regions regions(Index k, bool transpose, Path path) const;

  template <class T>
  void apply(const Operand& x, const Operand& y, char* ws, bool transpose, Path path,
             cudaStream_t stream) const;
  template <class T>
  void run_cublas(const DevicePlan& P, const T* arena_t, const Buffers<T>& bufs, Index k,
                  char* ptrs, cudaStream_t stream) const;
};

void DeviceOperator::Impl::build_items(const PlanSpec& spec, DevicePlan& plan) {
  std::vector<Item> items;
  plan.item_ptr.assign(1, 0);
  for (size_t t = 0; t + 1 < spec.stage_ptr.size(); ++t) {
    for (Index s = spec.stage_ptr[t]; s < spec.stage_ptr[t + 1]; ++s) {
      const Index len = spec.seg_len[size_t(s)], off = spec.seg_off[size_t(s)];
      for (Index j = spec.seg_term[size_t(s)]; j < spec.seg_term[size_t(s) + 1]; ++j) {
        const bool trans = spec.term_trans[size_t(j)] != 0;
        const Index rb = trans ? detail::kItemRows1 : detail::kItemRows0;
        const Index ib = trans ? detail::kItemInner1 : detail::kItemInner0;
        const Index a = spec.term_a[size_t(j)], ld = spec.term_ld[size_t(j)];
        const Index w = spec.term_w[size_t(j)];
        for (Index r0 = 0; r0 < len; r0 += rb)
          for (Index j0 = 0; j0 < w; j0 += ib) {
            Item it{};
            it.a = trans ? a + j0 * ld + r0 : a + r0 * ld + j0;
            it.ld = ld;
            it.in_off = spec.term_off[size_t(j)] + j0;
            it.out_off = off + r0;
            it.len = std::int32_t(std::min(rb, len - r0));
            it.w = std::int32_t(std::min(ib, w - j0));
            it.trans = trans ? 1 : 0;
            it.in_buf = std::int8_t(spec.term_buf[size_t(j)]);
            it.out_buf = std::int8_t(spec.seg_buf[size_t(s)]);
            items.push_back(it);
          }
      }
    }
    const Index stage_items = Index(items.size()) - plan.item_ptr.back();
    HSSLIN_CHECK(stage_items < INT_MAX, "plan: a stage of ", stage_items,
                 " pieces is more than one kernel launch takes");
    plan.item_ptr.push_back(Index(items.size()));
  }
  plan.items = upload(items.data(), Index(items.size()));
}

void DeviceOperator::Impl::build_calls(const PlanSpec& spec, DevicePlan& plan) {
  std::vector<Index> a, in_off, out_off;
  std::vector<std::int8_t> in_buf, out_buf;
  for (size_t t = 0; t + 1 < spec.stage_ptr.size(); ++t) {
    Index positions = 0;
    for (Index s = spec.stage_ptr[t]; s < spec.stage_ptr[t + 1]; ++s)
      positions = std::max(positions, spec.seg_term[size_t(s) + 1] - spec.seg_term[size_t(s)]);
    // Terms at one position of the stage's segments write disjoint rows, so
    // they can share one call; the next position accumulates after it.
    for (Index p = 0; p < positions; ++p) {
      using Key = std::tuple<int, Index, Index, Index, int, int>;  // trans, len, w, ld, in, out
      std::map<Key, std::vector<Index>> groups;                    // key -> (segment, term)
      for (Index s = spec.stage_ptr[t]; s < spec.stage_ptr[t + 1]; ++s) {
        const Index j = spec.seg_term[size_t(s)] + p;
        if (j >= spec.seg_term[size_t(s) + 1]) continue;
        const Key key{spec.term_trans[size_t(j)], spec.seg_len[size_t(s)],
                      spec.term_w[size_t(j)],     spec.term_ld[size_t(j)],
                      spec.term_buf[size_t(j)],   spec.seg_buf[size_t(s)]};
        groups[key].push_back(s);
      }
      GroupedCall call;
      call.first = Index(a.size());
      for (const auto& [key, segs] : groups) {
        const auto [trans, len, w, ld, ib, ob] = key;
        // G[i, j] = arena[a + j ld + i] is column-major (len x w); the other
        // form is the transpose of a column-major (w x len) matrix.
        call.transa.push_back(trans ? CUBLAS_OP_N : CUBLAS_OP_T);
        call.m.push_back(len);
        call.kdim.push_back(w);
        call.lda.push_back(ld);
        call.size.push_back(std::int64_t(segs.size()));
        call.in_buf.push_back(std::int8_t(ib));
        call.out_buf.push_back(std::int8_t(ob));
        for (Index s : segs) {
          const Index j = spec.seg_term[size_t(s)] + p;
          a.push_back(spec.term_a[size_t(j)]);
          in_off.push_back(spec.term_off[size_t(j)]);
          out_off.push_back(spec.seg_off[size_t(s)]);
          in_buf.push_back(std::int8_t(ib));
          out_buf.push_back(std::int8_t(ob));
        }
      }
      plan.calls.push_back(std::move(call));
    }
  }
  plan.terms = Index(a.size());
  plan.a = upload(a.data(), plan.terms);
  plan.in_off = upload(in_off.data(), plan.terms);
  plan.out_off = upload(out_off.data(), plan.terms);
  plan.in_buf = upload(in_buf.data(), plan.terms);
  plan.out_buf = upload(out_buf.data(), plan.terms);
}

void DeviceOperator::Impl::build_plan(const PlanSpec& spec, DevicePlan& plan, Index arena_size) {
  check_plan(spec, arena_size);
  plan.rows_in = spec.rows_in;
  plan.rows_out = spec.rows_out;
  plan.scratch = spec.scratch;
  build_items(spec, plan);
  build_calls(spec, plan);
}

DeviceOperator::Impl::Regions DeviceOperator::Impl::regions(Index k, bool transpose,
                                                            Path path) const {
  Regions r;
  if (!has_plans) return r;
  const DevicePlan& P = plans[transpose ? 1 : 0];
  const bool cublas = path == Path::cublas;
  const bool gather = (transpose ? row_perm : col_perm) != nullptr;
  const bool separate = has_sparse || (transpose ? col_inv : row_inv) != nullptr;
  Index at = 0;
  r.scratch = at;
  at += align_up(P.scratch * k * elt);
  r.xin = at;
  if (gather || cublas) at += align_up(P.rows_in * k * elt);
  r.yh = at;
  if (separate || cublas) at += align_up(P.rows_out * k * elt);
  r.ptrs = at;
  if (cublas) at += align_up(3 * P.terms * Index(sizeof(void*)));
  r.total = at;
  return r;
}

template <class T>
void DeviceOperator::Impl::run_cublas(const DevicePlan& P, const T* arena_t, const Buffers<T>& bufs,
                                      Index k, char* ptrs, cudaStream_t stream) const {
  const T** A = reinterpret_cast<const T**>(ptrs);
  const T** B = A + P.terms;
  T** C = reinterpret_cast<T**>(ptrs + 2 * P.terms * Index(sizeof(void*)));
  detail::launch_bind<T>(P.a, P.in_off, P.out_off, P.in_buf, P.out_buf, P.terms, arena_t, bufs, A,
                         B, C, stream);
  check_cuda(cudaGetLastError(), "bind kernel");
  cublasHandle_t h = handle_for(device, stream);
  check_cublas(cublasSetStream(h, stream), "cublasSetStream");
  for (const GroupedCall& call : P.calls) {
    const size_t g = call.m.size();
    std::vector<cublasOperation_t> transb(g, CUBLAS_OP_N);
    std::vector<std::int64_t> n(g, k), ldb(g), ldc(g);
    std::vector<T> one(g, T(1));
    for (size_t i = 0; i < g; ++i) {
      ldb[i] = bufs.col_stride[call.in_buf[i]];
      ldc[i] = bufs.col_stride[call.out_buf[i]];
    }
    cublasStatus_t s;
    if constexpr (sizeof(T) == 4)
      s = cublasSgemmGroupedBatched_64(
          h, call.transa.data(), transb.data(), call.m.data(), n.data(), call.kdim.data(),
          one.data(), A + call.first, call.lda.data(), B + call.first, ldb.data(), one.data(),
          C + call.first, ldc.data(), std::int64_t(g), call.size.data());
    else
      s = cublasDgemmGroupedBatched_64(
          h, call.transa.data(), transb.data(), call.m.data(), n.data(), call.kdim.data(),
          one.data(), A + call.first, call.lda.data(), B + call.first, ldb.data(), one.data(),
          C + call.first, ldc.data(), std::int64_t(g), call.size.data());
    check_cublas(s, "cublasGemmGroupedBatched");
  }
}

template <class T>
void DeviceOperator::Impl::apply(const Operand& x, const Operand& y, char* ws, bool transpose,
                                 Path path, cudaStream_t stream) const {
  const Index k = x.cols, m_out = y.rows, n_in = x.rows;
  const T* X = static_cast<const T*>(x.data);
  T* Y = static_cast<T*>(y.data);
  const Index y_bytes = m_out * k * elt;
  if (m_out == 0 || k == 0) return;
  const std::int32_t* gather = transpose ? row_perm : col_perm;
  const std::int32_t* scatter_inv = transpose ? col_inv : row_inv;
  const T* vals = static_cast<const T*>(values);
  if (!has_plans) {  // S alone
    if (!transpose) {
      detail::launch_csr<T>(vals, indices, indptr, rows, X, x.row_stride, x.col_stride, Y,
                            y.row_stride, y.col_stride, nullptr, 0, 0, nullptr, k, stream);
    } else {
      check_cuda(cudaMemsetAsync(Y, 0, size_t(y_bytes), stream), "cudaMemsetAsync");
      detail::launch_csr_transpose<T>(vals, indices, indptr, rows, X, x.row_stride, x.col_stride, Y,
                                      y.row_stride, y.col_stride, k, stream);
    }
    check_cuda(cudaGetLastError(), "CSR kernel");
    return;
  }
  const DevicePlan& P = plans[transpose ? 1 : 0];
  const bool cublas = path == Path::cublas;
  const Regions R = regions(k, transpose, path);
  Buffers<T> bufs{};
  // The plan's input: x itself, or x gathered through the permutation (the
  // cuBLAS path also gathers an x that is not column-major).
  if (gather || (cublas && !column_major(x))) {
    T* xin = reinterpret_cast<T*>(ws + R.xin);
    detail::launch_gather<T>(X, x.row_stride, x.col_stride, gather, xin, 1, n_in, n_in, k, stream);
    bufs.data[0] = xin;
    bufs.row_stride[0] = 1;
    bufs.col_stride[0] = std::max<Index>(n_in, 1);
  } else {
    bufs.data[0] = const_cast<T*>(X);
    bufs.row_stride[0] = x.row_stride;
    bufs.col_stride[0] = cublas ? leading(x) : x.col_stride;
  }
  // The plan's output: y itself, or a workspace region that S's product and
  // the scatter through the other permutation then read.
  const bool separate = has_sparse || scatter_inv || (cublas && !column_major(y));
  if (separate) {
    bufs.data[1] = reinterpret_cast<T*>(ws + R.yh);
    bufs.row_stride[1] = 1;
    bufs.col_stride[1] = std::max<Index>(m_out, 1);
    check_cuda(cudaMemsetAsync(bufs.data[1], 0, size_t(y_bytes), stream), "cudaMemsetAsync");
  } else {
    bufs.data[1] = Y;
    bufs.row_stride[1] = y.row_stride;
    bufs.col_stride[1] = cublas ? leading(y) : y.col_stride;
    check_cuda(cudaMemsetAsync(Y, 0, size_t(y_bytes), stream), "cudaMemsetAsync");
  }
  bufs.data[2] = reinterpret_cast<T*>(ws + R.scratch);
  bufs.row_stride[2] = 1;
  bufs.col_stride[2] = std::max<Index>(P.scratch, 1);
  if (P.scratch > 0)
    check_cuda(cudaMemsetAsync(bufs.data[2], 0, size_t(P.scratch * k * elt), stream),
               "cudaMemsetAsync");
  const T* arena_t = static_cast<const T*>(arena);
  if (cublas) {
    run_cublas<T>(P, arena_t, bufs, k, ws + R.ptrs, stream);
  } else {
    for (size_t t = 0; t + 1 < P.item_ptr.size(); ++t)
      detail::launch_items<T>(P.items + P.item_ptr[t], P.item_ptr[t + 1] - P.item_ptr[t], arena_t,
                              bufs, k, stream);
  }
  check_cuda(cudaGetLastError(), "plan kernels");
  const T* yh = bufs.data[1];
  const Index yh_cs = bufs.col_stride[1];
  if (has_sparse && !transpose) {
    detail::launch_csr<T>(vals, indices, indptr, rows, X, x.row_stride, x.col_stride, Y,
                          y.row_stride, y.col_stride, yh, 1, yh_cs, scatter_inv, k, stream);
  } else if (separate) {
    detail::launch_gather<T>(yh, 1, yh_cs, scatter_inv, Y, y.row_stride, y.col_stride, m_out, k,
                             stream);
    if (has_sparse)
      detail::launch_csr_transpose<T>(vals, indices, indptr, rows, X, x.row_stride, x.col_stride, Y,
                                      y.row_stride, y.col_stride, k, stream);
  }
  check_cuda(cudaGetLastError(), "finishing kernels");
}

DeviceQuery query_devices() {
  DeviceQuery q;
  cudaRuntimeGetVersion(&q.runtime_version);
  cudaDriverGetVersion(&q.driver_version);
  const cudaError_t e = cudaGetDeviceCount(&q.count);
  if (e != cudaSuccess) {
    q.count = 0;
    q.error = int(e);
    q.message = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();  // clear it, so that it is not reported by a later call
  }
  return q;
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

DeviceOperator::DeviceOperator(const LayoutSpec& spec, int device) : impl_(new Impl) {
  Impl& d = *impl_;
  const DeviceQuery q = query_devices();
  HSSLIN_CHECK(device >= 0 && device < q.count, "device ", device, " does not exist (", q.count,
               " CUDA devices)");
  d.device = device;
  d.scalar = spec.scalar;
  d.rows = spec.rows;
  d.cols = spec.cols;
  d.elt = spec.scalar == Scalar::f32 ? 4 : 8;
  HSSLIN_CHECK(spec.rows >= 0 && spec.cols >= 0 && spec.arena_size >= 0, "layout: negative size");
  DeviceScope scope(device);
  d.arena = d.allocate(spec.arena_size * d.elt);
  for (const HostPart& part : spec.arena_parts) {
    HSSLIN_CHECK(part.offset >= 0 && part.count >= 0 && part.offset <= spec.arena_size - part.count,
                 "layout: an arena part lies outside the arena");
    check_cuda(cudaMemcpy(static_cast<char*>(d.arena) + part.offset * d.elt, part.data,
                          size_t(part.count * d.elt), cudaMemcpyHostToDevice),
               "cudaMemcpy (arena)");
  }
  d.has_plans = spec.has_plans;
  if (spec.has_plans) {
    HSSLIN_CHECK(spec.forward.rows_in == spec.cols && spec.forward.rows_out == spec.rows &&
                     spec.transposed.rows_in == spec.rows && spec.transposed.rows_out == spec.cols,
                 "layout: plan sizes do not match the operator's shape");
    d.build_plan(spec.forward, d.plans[0], spec.arena_size);
    d.build_plan(spec.transposed, d.plans[1], spec.arena_size);
  }
  d.has_sparse = spec.has_sparse;
  if (spec.has_sparse) {
    HSSLIN_CHECK(spec.indptr[0] == 0 && spec.indptr[spec.rows] == spec.nnz,
                 "layout: S's row pointers do not cover its entries");
    for (Index i = 0; i < spec.rows; ++i)
      HSSLIN_CHECK(spec.indptr[i] <= spec.indptr[i + 1], "layout: S's row pointers decrease");
    for (Index p = 0; p < spec.nnz; ++p)
      HSSLIN_CHECK(spec.indices[p] >= 0 && spec.indices[p] < spec.cols,
                   "layout: S has a column index out of range");
    d.values = d.allocate(spec.nnz * d.elt);
    if (spec.nnz)
      check_cuda(
          cudaMemcpy(d.values, spec.values, size_t(spec.nnz * d.elt), cudaMemcpyHostToDevice),
          "cudaMemcpy (S)");
    d.indices = d.upload(spec.indices, spec.nnz);
    d.indptr = d.upload(spec.indptr, spec.rows + 1);
  }
  auto perm = [&](const std::int32_t* p, Index n) -> std::int32_t* {
    if (!p) return nullptr;
    for (Index i = 0; i < n; ++i)
      HSSLIN_CHECK(p[i] >= 0 && p[i] < n, "layout: a permutation holds ", p[i], " outside [0, ", n,
                   ")");
    return d.upload(p, n);
  };
  HSSLIN_CHECK(!(spec.row_perm || spec.col_perm) || (spec.has_plans && spec.has_sparse),
               "layout: permutations need an H part and an S part");
  HSSLIN_CHECK(!spec.row_perm == !spec.row_inv && !spec.col_perm == !spec.col_inv,
               "layout: a permutation comes without its inverse");
  d.row_perm = perm(spec.row_perm, spec.rows);
  d.row_inv = perm(spec.row_inv, spec.rows);
  d.col_perm = perm(spec.col_perm, spec.cols);
  d.col_inv = perm(spec.col_inv, spec.cols);
}

DeviceOperator::~DeviceOperator() = default;

Index DeviceOperator::rows() const { return impl_->rows; }
Index DeviceOperator::cols() const { return impl_->cols; }
Scalar DeviceOperator::scalar() const { return impl_->scalar; }
int DeviceOperator::device() const { return impl_->device; }
Index DeviceOperator::nbytes() const { return impl_->bytes; }

Path DeviceOperator::resolve(Path path, Index k, bool transpose) const {
  if (!impl_->has_plans) return Path::fused;  // S alone: the CSR kernels either way
  if (path != Path::automatic) return path;
  return k >= kCublasColumns ? Path::cublas : Path::fused;
}

Index DeviceOperator::workspace_bytes(Index k, bool transpose, Path path) const {
  HSSLIN_CHECK(k >= 0, "k must be non-negative");
  return impl_->regions(k, transpose, resolve(path, k, transpose)).total;
}

void DeviceOperator::apply(const Operand& x, const Operand& y, void* workspace, Index ws_bytes,
                           bool transpose, Path path, void* stream) const {
  const Impl& d = *impl_;
  const Index n_in = transpose ? d.rows : d.cols, m_out = transpose ? d.cols : d.rows;
  HSSLIN_CHECK(x.rows == n_in, "x has ", x.rows, " rows, expected ", n_in);
  HSSLIN_CHECK(y.rows == m_out && y.cols == x.cols, "y has shape (", y.rows, ", ", y.cols,
               "), expected (", m_out, ", ", x.cols, ")");
  const Index k = x.cols;
  const bool contiguous = k <= 1 ? (y.row_stride == 1 || m_out <= 1)
                                 : (y.row_stride == 1 && y.col_stride == m_out) ||
                                       (y.col_stride == 1 && y.row_stride == k);
  HSSLIN_CHECK(contiguous, "y must be contiguous (row- or column-major)");
  const Path resolved = resolve(path, k, transpose);
  HSSLIN_CHECK(ws_bytes >= d.regions(k, transpose, resolved).total, "workspace has ", ws_bytes,
               " bytes, the product needs ", d.regions(k, transpose, resolved).total);
  DeviceScope scope(d.device);
  auto s = static_cast<cudaStream_t>(stream);
  if (d.scalar == Scalar::f32)
    d.apply<float>(x, y, static_cast<char*>(workspace), transpose, resolved, s);
  else
    d.apply<double>(x, y, static_cast<char*>(workspace), transpose, resolved, s);
}

}  // namespace hsslin::cuda
