#pragma once
// Launchers of hsslin's device kernels (kernels.cu), used by device_operator.cu.
#include <cuda_runtime.h>

#include <cstdint>

#include "hsslin/config.hpp"

namespace hsslin::cuda::detail {

/// A plan's three buffers for one call: base pointer and strides (elements).
template <class T>
struct Buffers {
  T* data[3];
  Index row_stride[3];
  Index col_stride[3];
};

/// One piece of a term: rows [out_off, out_off + len) of buffer out_buf gain
/// G (len x w) times rows [in_off, in_off + w) of in_buf, with
/// G[i, j] = arena[a + i * ld + j] (trans 0) or arena[a + j * ld + i] (trans 1).
/// Terms are cut into pieces at upload so that each thread block reads a
/// bounded number of factor entries.
struct Item {
  Index a, ld, in_off, out_off;
  std::int32_t len, w;
  std::int8_t trans, in_buf, out_buf, pad;
};

/// Rows and inner columns of one item: trans-0 pieces are read row by row
/// (a warp per row), trans-1 pieces column by column (a thread per row).
constexpr Index kItemRows0 = 16, kItemInner0 = 1024;
constexpr Index kItemRows1 = 128, kItemInner1 = 128;
constexpr int kThreads = 128;

/// Runs items[0, count) of one stage; outputs are added atomically.
template <class T>
void launch_items(const Item* items, Index count, const T* arena, const Buffers<T>& bufs, Index k,
                  cudaStream_t stream);

/// dst[i, c] = src[perm[i], c] (perm null: identity) for i < rows, c < k.
template <class T>
void launch_gather(const T* src, Index src_rs, Index src_cs, const std::int32_t* perm, T* dst,
                   Index dst_rs, Index dst_cs, Index rows, Index k, cudaStream_t stream);

/// y[i, c] = sum_j S[i, j] x[j, c] + (add ? add[ainv ? ainv[i] : i, c] : 0).
template <class T>
void launch_csr(const T* values, const std::int32_t* indices, const std::int64_t* indptr,
                Index rows, const T* x, Index x_rs, Index x_cs, T* y, Index y_rs, Index y_cs,
                const T* add, Index add_rs, Index add_cs, const std::int32_t* ainv, Index k,
                cudaStream_t stream);

/// y[j, c] += sum_i S[i, j] x[i, c] (atomic additions).
template <class T>
void launch_csr_transpose(const T* values, const std::int32_t* indices, const std::int64_t* indptr,
                          Index rows, const T* x, Index x_rs, Index x_cs, T* y, Index y_rs,
                          Index y_cs, Index k, cudaStream_t stream);

/// The cuBLAS path's pointer arrays: for term t of `order`, A = arena + a,
/// B = bufs[in_buf] + in_off, C = bufs[out_buf] + out_off (column-major buffers).
template <class T>
void launch_bind(const Index* a, const Index* in_off, const Index* out_off,
                 const std::int8_t* in_buf, const std::int8_t* out_buf, Index count, const T* arena,
                 const Buffers<T>& bufs, const T** A, const T** B, T** C, cudaStream_t stream);

}  // namespace hsslin::cuda::detail
