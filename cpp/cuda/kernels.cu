// Device kernels: plan items (the small dense products of the hierarchical
// sweeps), operand gathers, CSR products, cuBLAS pointer arrays.
//
// Partial sums go to their outputs by atomicAdd: a plan's outputs start at
// zero and a stage never reads what it writes (hsslin/_cuda_layout.py), so
// the pieces of one stage can run in any order. Several k columns share each
// factor entry read (KT columns per pass); a product with many columns takes
// the cuBLAS path instead (device_operator.cu).
#include <algorithm>

#include "kernels.cuh"

namespace hsslin::cuda::detail {
namespace {

template <class T>
__device__ inline T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Grid-stride loops cover any size with a bounded grid.
constexpr Index kMaxBlocks = 1 << 16;

inline unsigned blocks_for(Index work, Index per_block) {
  return unsigned(
      std::max<Index>(1, std::min<Index>((work + per_block - 1) / per_block, kMaxBlocks)));
}

template <class T, int KT>
__global__ void __launch_bounds__(kThreads)
    items_kernel(const Item* __restrict__ items, const T* __restrict__ arena, Buffers<T> bufs,
                 Index k) {
  const Item it = items[blockIdx.x];
  const Index irs = bufs.row_stride[it.in_buf], ics = bufs.col_stride[it.in_buf];
  const Index ors = bufs.row_stride[it.out_buf], ocs = bufs.col_stride[it.out_buf];
  const T* in = bufs.data[it.in_buf] + it.in_off * irs;
  T* out = bufs.data[it.out_buf] + it.out_off * ors;
  const T* g = arena + it.a;
  for (Index c0 = 0; c0 < k; c0 += KT) {
    const int kc = int(k - c0 < KT ? k - c0 : KT);
    const T* x0 = in + c0 * ics;
    T* y0 = out + c0 * ocs;
    if (it.trans == 0) {
      // G's rows are contiguous: a warp per row, lanes along it.
      const int lane = int(threadIdx.x) & 31;
      for (int i = int(threadIdx.x) >> 5; i < it.len; i += kThreads / 32) {
        T acc[KT];
#pragma unroll
        for (int c = 0; c < KT; ++c) acc[c] = T(0);
        const T* row = g + Index(i) * it.ld;
        for (int j = lane; j < it.w; j += 32) {
          const T v = row[j];
          const T* xj = x0 + Index(j) * irs;
#pragma unroll
          for (int c = 0; c < KT; ++c)
            if (c < kc) acc[c] += v * xj[c * ics];
        }
#pragma unroll
        for (int c = 0; c < KT; ++c) acc[c] = warp_sum(acc[c]);
        if (lane == 0)
          for (int c = 0; c < kc; ++c) atomicAdd(y0 + Index(i) * ors + c * ocs, acc[c]);
      }
    } else {
      // G's columns are contiguous: a thread per row, loads coalesced along a column.
      for (int i = int(threadIdx.x); i < it.len; i += kThreads) {
        T acc[KT];
#pragma unroll
        for (int c = 0; c < KT; ++c) acc[c] = T(0);
        for (int j = 0; j < it.w; ++j) {
          const T v = g[Index(j) * it.ld + i];
          const T* xj = x0 + Index(j) * irs;
#pragma unroll
          for (int c = 0; c < KT; ++c)
            if (c < kc) acc[c] += v * xj[c * ics];
        }
        for (int c = 0; c < kc; ++c) atomicAdd(y0 + Index(i) * ors + c * ocs, acc[c]);
      }
    }
  }
}

template <class T>
__global__ void gather_kernel(const T* __restrict__ src, Index srs, Index scs,
                              const std::int32_t* __restrict__ perm, T* __restrict__ dst, Index drs,
                              Index dcs, Index rows, Index k) {
  const Index total = rows * k;
  for (Index e = Index(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += Index(gridDim.x) * blockDim.x) {
    const Index i = e % rows, c = e / rows;
    const Index s = perm ? Index(perm[i]) : i;
    dst[i * drs + c * dcs] = src[s * srs + c * scs];
  }
}

template <class T, int KT>
__global__ void csr_kernel(const T* __restrict__ values, const std::int32_t* __restrict__ indices,
                           const std::int64_t* __restrict__ indptr, Index rows,
                           const T* __restrict__ x, Index xrs, Index xcs, T* __restrict__ y,
                           Index yrs, Index ycs, const T* __restrict__ add, Index ars, Index acs,
                           const std::int32_t* __restrict__ ainv, Index k) {
  const int lane = int(threadIdx.x) & 31;
  const Index warps = Index(gridDim.x) * (blockDim.x / 32);
  for (Index i = Index(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5); i < rows; i += warps) {
    const Index begin = indptr[i], end = indptr[i + 1];
    const Index ai = ainv ? Index(ainv[i]) : i;
    for (Index c0 = 0; c0 < k; c0 += KT) {
      const int kc = int(k - c0 < KT ? k - c0 : KT);
      T acc[KT];
#pragma unroll
      for (int c = 0; c < KT; ++c) acc[c] = T(0);
      for (Index p = begin + lane; p < end; p += 32) {
        const T v = values[p];
        const T* xj = x + Index(indices[p]) * xrs + c0 * xcs;
#pragma unroll
        for (int c = 0; c < KT; ++c)
          if (c < kc) acc[c] += v * xj[c * xcs];
      }
#pragma unroll
      for (int c = 0; c < KT; ++c) acc[c] = warp_sum(acc[c]);
      if (lane == 0)
        for (int c = 0; c < kc; ++c) {
          T r = acc[c];
          if (add) r += add[ai * ars + (c0 + c) * acs];
          y[i * yrs + (c0 + c) * ycs] = r;
        }
    }
  }
}

template <class T>
__global__ void csr_transpose_kernel(const T* __restrict__ values,
                                     const std::int32_t* __restrict__ indices,
                                     const std::int64_t* __restrict__ indptr, Index rows,
                                     const T* __restrict__ x, Index xrs, Index xcs, T* y, Index yrs,
                                     Index ycs, Index k) {
  const int lane = int(threadIdx.x) & 31;
  const Index warps = Index(gridDim.x) * (blockDim.x / 32);
  for (Index i = Index(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5); i < rows; i += warps) {
    const Index begin = indptr[i], end = indptr[i + 1];
    for (Index p = begin + lane; p < end; p += 32) {
      const T v = values[p];
      T* yj = y + Index(indices[p]) * yrs;
      for (Index c = 0; c < k; ++c) atomicAdd(yj + c * ycs, v * x[i * xrs + c * xcs]);
    }
  }
}

template <class T>
__global__ void bind_kernel(const Index* __restrict__ a, const Index* __restrict__ in_off,
                            const Index* __restrict__ out_off,
                            const std::int8_t* __restrict__ in_buf,
                            const std::int8_t* __restrict__ out_buf, Index count, const T* arena,
                            Buffers<T> bufs, const T** A, const T** B, T** C) {
  for (Index t = Index(blockIdx.x) * blockDim.x + threadIdx.x; t < count;
       t += Index(gridDim.x) * blockDim.x) {
    A[t] = arena + a[t];
    B[t] = bufs.data[in_buf[t]] + in_off[t] * bufs.row_stride[in_buf[t]];
    C[t] = bufs.data[out_buf[t]] + out_off[t] * bufs.row_stride[out_buf[t]];
  }
}

}  // namespace

template <class T>
void launch_items(const Item* items, Index count, const T* arena, const Buffers<T>& bufs, Index k,
                  cudaStream_t stream) {
  if (count == 0 || k == 0) return;
  const dim3 grid{
      static_cast<unsigned>(count)};  // < 2^31 items: checked when the work list is built
  if (k == 1)
    items_kernel<T, 1><<<grid, kThreads, 0, stream>>>(items, arena, bufs, k);
  else if (k == 2)
    items_kernel<T, 2><<<grid, kThreads, 0, stream>>>(items, arena, bufs, k);
  else
    items_kernel<T, 4><<<grid, kThreads, 0, stream>>>(items, arena, bufs, k);
}

template <class T>
void launch_gather(const T* src, Index src_rs, Index src_cs, const std::int32_t* perm, T* dst,
                   Index dst_rs, Index dst_cs, Index rows, Index k, cudaStream_t stream) {
  if (rows == 0 || k == 0) return;
  gather_kernel<T><<<blocks_for(rows * k, 256), 256, 0, stream>>>(src, src_rs, src_cs, perm, dst,
                                                                  dst_rs, dst_cs, rows, k);
}

template <class T>
void launch_csr(const T* values, const std::int32_t* indices, const std::int64_t* indptr,
                Index rows, const T* x, Index x_rs, Index x_cs, T* y, Index y_rs, Index y_cs,
                const T* add, Index add_rs, Index add_cs, const std::int32_t* ainv, Index k,
                cudaStream_t stream) {
  if (rows == 0 || k == 0) return;
  const unsigned grid = blocks_for(rows, 256 / 32);
  if (k == 1)
    csr_kernel<T, 1><<<grid, 256, 0, stream>>>(values, indices, indptr, rows, x, x_rs, x_cs, y,
                                               y_rs, y_cs, add, add_rs, add_cs, ainv, k);
  else
    csr_kernel<T, 4><<<grid, 256, 0, stream>>>(values, indices, indptr, rows, x, x_rs, x_cs, y,
                                               y_rs, y_cs, add, add_rs, add_cs, ainv, k);
}

template <class T>
void launch_csr_transpose(const T* values, const std::int32_t* indices, const std::int64_t* indptr,
                          Index rows, const T* x, Index x_rs, Index x_cs, T* y, Index y_rs,
                          Index y_cs, Index k, cudaStream_t stream) {
  if (rows == 0 || k == 0) return;
  csr_transpose_kernel<T><<<blocks_for(rows, 256 / 32), 256, 0, stream>>>(
      values, indices, indptr, rows, x, x_rs, x_cs, y, y_rs, y_cs, k);
}

template <class T>
void launch_bind(const Index* a, const Index* in_off, const Index* out_off,
                 const std::int8_t* in_buf, const std::int8_t* out_buf, Index count, const T* arena,
                 const Buffers<T>& bufs, const T** A, const T** B, T** C, cudaStream_t stream) {
  if (count == 0) return;
  bind_kernel<T><<<blocks_for(count, 256), 256, 0, stream>>>(a, in_off, out_off, in_buf, out_buf,
                                                             count, arena, bufs, A, B, C);
}

#define HSSLIN_CUDA_INSTANTIATE(T)                                                                 \
  template void launch_items<T>(const Item*, Index, const T*, const Buffers<T>&, Index,            \
                                cudaStream_t);                                                     \
  template void launch_gather<T>(const T*, Index, Index, const std::int32_t*, T*, Index, Index,    \
                                 Index, Index, cudaStream_t);                                      \
  template void launch_csr<T>(const T*, const std::int32_t*, const std::int64_t*, Index, const T*, \
                              Index, Index, T*, Index, Index, const T*, Index, Index,              \
                              const std::int32_t*, Index, cudaStream_t);                           \
  template void launch_csr_transpose<T>(const T*, const std::int32_t*, const std::int64_t*, Index, \
                                        const T*, Index, Index, T*, Index, Index, Index,           \
                                        cudaStream_t);                                             \
  template void launch_bind<T>(const Index*, const Index*, const Index*, const std::int8_t*,       \
                               const std::int8_t*, Index, const T*, const Buffers<T>&, const T**,  \
                               const T**, T**, cudaStream_t);

HSSLIN_CUDA_INSTANTIATE(float)
HSSLIN_CUDA_INSTANTIATE(double)

}  // namespace hsslin::cuda::detail
