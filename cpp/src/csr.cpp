#include "hsslin/csr.hpp"

#include <algorithm>
#include <cstring>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif
#include <limits>

#include "hsslin/io.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

// Right-hand sides accumulated together in SpMM (held in registers).
constexpr Index kBlock = 16;
// Cap on the per-thread scatter buffers of transposed products (entries).
constexpr Index kMaxScatterEntries = Index(1) << 26;

template <class T>
struct OwnedArrays {
  std::vector<T> values;
  std::vector<std::int32_t> indices;
};

// Dot product of one sparse row with a contiguous vector; four accumulators
// break the add dependency chain. (Non-template overloads below take over for
// float and double in the AVX2 build.)
template <class T>
T row_dot(const T* v, const std::int32_t* idx, std::int64_t begin, std::int64_t end, const T* x) {
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::int64_t p = begin;
  for (; p + 4 <= end; p += 4) {
    s0 += v[p] * x[idx[p]];
    s1 += v[p + 1] * x[idx[p + 1]];
    s2 += v[p + 2] * x[idx[p + 2]];
    s3 += v[p + 3] * x[idx[p + 3]];
  }
  for (; p < end; ++p) s0 += v[p] * x[idx[p]];
  return (s0 + s1) + (s2 + s3);
}

#if defined(__AVX2__) && defined(__FMA__)
// The AVX2 build gathers x: 8 (float) or 4 (double) entries per instruction,
// two accumulators. One thread on a 4096 x 4096 float matrix at 12.5%
// density: 2.5 entries/ns against 1.5 for the scalar loop with cached data,
// 1.9-2.1 against 1.5 with cold caches.
inline float hsum(__m256 a) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

inline double hsum(__m256d a) {
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  h = _mm_add_sd(h, _mm_unpackhi_pd(h, h));
  return _mm_cvtsd_f64(h);
}

inline float row_dot(const float* v, const std::int32_t* idx, std::int64_t begin, std::int64_t end,
                     const float* x) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  std::int64_t p = begin;
  for (; p + 16 <= end; p += 16) {
    const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + p));
    const __m256i i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + p + 8));
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + p), _mm256_i32gather_ps(x, i0, 4), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(v + p + 8), _mm256_i32gather_ps(x, i1, 4), a1);
  }
  float s = hsum(_mm256_add_ps(a0, a1));
  for (; p < end; ++p) s += v[p] * x[idx[p]];
  return s;
}

inline double row_dot(const double* v, const std::int32_t* idx, std::int64_t begin,
                      std::int64_t end, const double* x) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  std::int64_t p = begin;
  for (; p + 8 <= end; p += 8) {
    const __m128i i0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + p));
    const __m128i i1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + p + 4));
    a0 = _mm256_fmadd_pd(_mm256_loadu_pd(v + p), _mm256_i32gather_pd(x, i0, 8), a0);
    a1 = _mm256_fmadd_pd(_mm256_loadu_pd(v + p + 4), _mm256_i32gather_pd(x, i1, 8), a1);
  }
  double s = hsum(_mm256_add_pd(a0, a1));
  for (; p < end; ++p) s += v[p] * x[idx[p]];
  return s;
}
#endif

// acc[0:W] += sum_p v[p] * X[idx[p], 0:W]; W fixed so acc stays in registers.
template <class T, Index W>
void row_times_block(const T* v, const std::int32_t* idx, std::int64_t begin, std::int64_t end,
                     const T* X, Index ldx, T* out) {
  T acc[W] = {};
  for (std::int64_t p = begin; p < end; ++p) {
    const T a = v[p];
    const T* xr = X + Index(idx[p]) * ldx;
    for (Index t = 0; t < W; ++t) acc[t] += a * xr[t];
  }
  for (Index t = 0; t < W; ++t) out[t] = acc[t];
}

template <class T>
void row_times_block_any(const T* v, const std::int32_t* idx, std::int64_t begin, std::int64_t end,
                         const T* X, Index ldx, Index w, T* out) {
  T acc[kBlock] = {};
  for (std::int64_t p = begin; p < end; ++p) {
    const T a = v[p];
    const T* xr = X + Index(idx[p]) * ldx;
    for (Index t = 0; t < w; ++t) acc[t] += a * xr[t];
  }
  for (Index t = 0; t < w; ++t) out[t] = acc[t];
}

// buf[idx[p], 0:W] += v[p] * x[0:W] for the entries of one row (W fixed).
// Written with Eigen's fixed-size arrays so that each update is W/packet
// vector multiply-adds along the row: with a plain loop, GCC 12 -O3
// vectorized across entries instead (gathers and scatters) and ran 3.5x
// slower (4.3 ms against 1.2 ms for 838k entries, 16 columns, AVX2).
template <class T, Index W>
void scatter_block(const T* v, const std::int32_t* idx, std::int64_t begin, std::int64_t end,
                   const T* x, T* buf, Index ldb) {
  using Row = Eigen::Array<T, W, 1>;
  const Row xs = Eigen::Map<const Row>(x);
  for (std::int64_t p = begin; p < end; ++p)
    Eigen::Map<Row>(buf + Index(idx[p]) * ldb) += v[p] * xs;
}

template <class T>
void scatter_block_any(const T* v, const std::int32_t* idx, std::int64_t begin, std::int64_t end,
                       const T* x, T* buf, Index ldb, Index w) {
  for (std::int64_t p = begin; p < end; ++p) {
    const T a = v[p];
    T* br = buf + Index(idx[p]) * ldb;
    for (Index t = 0; t < w; ++t) br[t] += a * x[t];
  }
}

// Copies a dense view into a row-major buffer with leading dimension cols.
template <class T>
std::vector<T> pack_row_major(const DenseView<const T>& X) {
  std::vector<T> out(size_t(X.rows * X.cols));
  for (Index i = 0; i < X.rows; ++i)
    for (Index t = 0; t < X.cols; ++t)
      out[size_t(i * X.cols + t)] = X.data[i * X.row_stride + t * X.col_stride];
  return out;
}

}  // namespace

template <class T>
void CSRMatrix<T>::validate(Index rows, Index cols, Index nnz, const StorageIndex* indices,
                            const Offset* indptr) {
  HSSLIN_CHECK(rows >= 0 && cols >= 0, "shape must be non-negative, got (", rows, ", ", cols, ")");
  HSSLIN_CHECK(cols <= Index(std::numeric_limits<StorageIndex>::max()), "cols = ", cols,
               " does not fit int32 column indices");
  HSSLIN_CHECK(indptr[0] == 0, "indptr[0] must be 0, got ", indptr[0]);
  for (Index i = 0; i < rows; ++i)
    HSSLIN_CHECK(indptr[i + 1] >= indptr[i], "indptr must be non-decreasing: indptr[", i + 1,
                 "] = ", indptr[i + 1], " < indptr[", i, "] = ", indptr[i]);
  HSSLIN_CHECK(indptr[rows] == nnz, "indptr[-1] = ", indptr[rows], " but there are ", nnz,
               " stored entries");
  // One branch-free pass counts offenders; the slow search runs only on error.
  Index bad = 0;
  const auto ucols = static_cast<std::uint64_t>(cols);
  for (Index p = 0; p < nnz; ++p)
    bad += static_cast<std::uint64_t>(static_cast<std::int64_t>(indices[p])) >= ucols;
  if (bad > 0) {
    Index p = 0;
    while (static_cast<std::uint64_t>(static_cast<std::int64_t>(indices[p])) < ucols) ++p;
    HSSLIN_CHECK(false, "column index ", indices[p], " at position ", p, " is out of range [0, ",
                 cols, ") (", bad, " indices out of range)");
  }
}

template <class T>
CSRMatrix<T>::CSRMatrix(Index rows, Index cols, std::vector<T> values,
                        std::vector<StorageIndex> indices, std::vector<Offset> indptr) {
  HSSLIN_CHECK(rows >= 0, "rows must be non-negative, got ", rows);
  HSSLIN_CHECK(Index(indptr.size()) == rows + 1, "indptr has ", indptr.size(),
               " entries, expected rows + 1 = ", rows + 1);
  HSSLIN_CHECK(values.size() == indices.size(), "data has ", values.size(),
               " entries but indices has ", indices.size());
  validate(rows, cols, Index(indices.size()), indices.data(), indptr.data());
  auto arrays = std::make_shared<OwnedArrays<T>>();
  arrays->values = std::move(values);
  arrays->indices = std::move(indices);
  rows_ = rows;
  cols_ = cols;
  nnz_ = Index(arrays->indices.size());
  values_ = arrays->values.data();
  indices_ = arrays->indices.data();
  indptr_ = std::move(indptr);
  owner_ = std::move(arrays);
}

template <class T>
CSRMatrix<T> CSRMatrix<T>::borrow(Index rows, Index cols, const T* values,
                                  const StorageIndex* indices, std::vector<Offset> indptr,
                                  std::shared_ptr<const void> owner) {
  HSSLIN_CHECK(rows >= 0, "rows must be non-negative, got ", rows);
  HSSLIN_CHECK(Index(indptr.size()) == rows + 1, "indptr has ", indptr.size(),
               " entries, expected rows + 1 = ", rows + 1);
  const Index nnz = indptr.back();
  HSSLIN_CHECK(nnz >= 0, "indptr[-1] must be non-negative, got ", nnz);
  validate(rows, cols, nnz, indices, indptr.data());
  CSRMatrix S;
  S.rows_ = rows;
  S.cols_ = cols;
  S.nnz_ = nnz;
  S.values_ = values;
  S.indices_ = indices;
  S.indptr_ = std::move(indptr);
  S.owner_ = std::move(owner);
  return S;
}

template <class T>
std::vector<Index> CSRMatrix<T>::balanced_row_chunks(Index chunks) const {
  // Work of rows [0, i) is indptr[i] + i (strictly increasing in i), so each
  // boundary is a binary search.
  std::vector<Index> bounds(size_t(chunks + 1), rows_);
  bounds[0] = 0;
  const Index total = nnz_ + rows_;
  for (Index c = 1; c < chunks; ++c) {
    const Index target = total * c / chunks;
    Index lo = bounds[size_t(c - 1)], hi = rows_;
    while (lo < hi) {
      const Index mid = lo + (hi - lo) / 2;
      if (indptr_[size_t(mid)] + mid < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    bounds[size_t(c)] = lo;
  }
  return bounds;
}

template <class T>
std::vector<Index> CSRMatrix<T>::product_chunks(Index k) const {
  // Several chunks per thread: with dynamic scheduling a thread that was
  // descheduled (a busy machine) leaves its work to the others.
  const Index threads = chunk_count(k);
  return balanced_row_chunks(threads > 1 ? 4 * threads : 1);
}

template <class T>
Index CSRMatrix<T>::chunk_count(Index k) const {
  const int threads = get_num_threads();
  if (threads <= 1 || !worth_threading(double(nnz_ + rows_) * double(k))) return 1;
  return threads;
}

template <class T>
void CSRMatrix<T>::multiply_rows(const T* x, const DenseView<T>& y, Index begin, Index end) const {
  HSSLIN_CHECK(0 <= begin && begin <= end && end <= rows_ && y.rows == rows_ && y.cols == 1,
               "multiply_rows: rows [", begin, ", ", end, ") of a ", rows_, "-row product");
  for (Index i = begin; i < end; ++i)
    y.data[i * y.row_stride] =
        row_dot(values_, indices_, indptr_[size_t(i)], indptr_[size_t(i + 1)], x);
}

template <class T>
void CSRMatrix<T>::multiply(const T* X, Index ldx, Index k, const DenseView<T>& Y) const {
  const std::vector<Index> bounds = product_chunks(k);
  const Index chunks = Index(bounds.size()) - 1;
  const T* v = values_;
  const StorageIndex* idx = indices_;
  const Offset* ptr = indptr_.data();
  parallel_for(
      0, chunks,
      [&](Index c) {
        if (k == 1) {
          multiply_rows(X, Y, bounds[size_t(c)], bounds[size_t(c + 1)]);
          return;
        }
        T tmp[kBlock];
        for (Index i = bounds[size_t(c)]; i < bounds[size_t(c + 1)]; ++i) {
          T* yrow = Y.data + i * Y.row_stride;
          for (Index c0 = 0; c0 < k; c0 += kBlock) {
            const Index w = std::min(kBlock, k - c0);
            const bool direct = Y.col_stride == 1;
            T* out = direct ? yrow + c0 : tmp;
            if (w == kBlock)
              row_times_block<T, kBlock>(v, idx, ptr[i], ptr[i + 1], X + c0, ldx, out);
            else
              row_times_block_any(v, idx, ptr[i], ptr[i + 1], X + c0, ldx, w, out);
            if (!direct)
              for (Index t = 0; t < w; ++t) yrow[(c0 + t) * Y.col_stride] = tmp[t];
          }
        }
      },
      chunks > 1);
}

template <class T>
void CSRMatrix<T>::multiply_transposed(const T* X, Index ldx, Index k,
                                       const DenseView<T>& Y) const {
  // y_j += sum_i S_ij x_i scatters into rows of Y; each chunk of rows
  // scatters into its own buffer (cols x k, row-major) and the buffers are
  // summed afterwards, which avoids forming S^T and any atomics.
  Index chunks = chunk_count(k);
  const Index per_buffer = std::max<Index>(cols_ * k, 1);
  chunks = std::max<Index>(1, std::min(chunks, kMaxScatterEntries / per_buffer));
  const std::vector<Index> bounds = balanced_row_chunks(chunks);
  const bool direct =
      chunks == 1 && (k == 1 ? Y.row_stride == 1 : Y.col_stride == 1 && Y.row_stride == k);
  std::vector<T> buffers(direct ? 0 : size_t(chunks * per_buffer), T(0));
  if (direct)
    for (Index j = 0; j < cols_; ++j) std::fill_n(Y.data + j * Y.row_stride, k, T(0));
  const T* v = values_;
  const StorageIndex* idx = indices_;
  const Offset* ptr = indptr_.data();
  parallel_for(
      0, chunks,
      [&](Index c) {
        T* buf = direct ? Y.data : buffers.data() + c * per_buffer;
        for (Index i = bounds[size_t(c)]; i < bounds[size_t(c + 1)]; ++i) {
          const T* xr = X + i * ldx;
          if (k == 1) {
            const T xi = *xr;
            for (Offset p = ptr[i]; p < ptr[i + 1]; ++p) buf[idx[p]] += v[p] * xi;
            continue;
          }
          for (Index c0 = 0; c0 < k; c0 += kBlock) {
            const Index w = std::min(kBlock, k - c0);
            if (w == kBlock)
              scatter_block<T, kBlock>(v, idx, ptr[i], ptr[i + 1], xr + c0, buf + c0, k);
            else
              scatter_block_any(v, idx, ptr[i], ptr[i + 1], xr + c0, buf + c0, k, w);
          }
        }
      },
      chunks > 1);
  if (direct) return;
  // Sum the buffers into Y, threaded over blocks of output rows.
  const Index row_blocks = chunks > 1 ? chunks : 1;
  parallel_for(
      0, row_blocks,
      [&](Index b) {
        const Index j0 = cols_ * b / row_blocks, j1 = cols_ * (b + 1) / row_blocks;
        for (Index j = j0; j < j1; ++j)
          for (Index t = 0; t < k; ++t) {
            T s = 0;
            for (Index c = 0; c < chunks; ++c) s += buffers[size_t(c * per_buffer + j * k + t)];
            Y.data[j * Y.row_stride + t * Y.col_stride] = s;
          }
      },
      row_blocks > 1);
}

template <class T>
void CSRMatrix<T>::apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose) const {
  const Index in_rows = transpose ? rows_ : cols_;
  const Index out_rows = transpose ? cols_ : rows_;
  HSSLIN_CHECK(X.rows == in_rows, "x has ", X.rows, " rows, expected ", in_rows);
  HSSLIN_CHECK(Y.rows == out_rows && Y.cols == X.cols, "y is ", Y.rows, "x", Y.cols, ", expected ",
               out_rows, "x", X.cols);
  const Index k = X.cols;
  if (out_rows == 0 || k == 0) return;
  // The kernels read X as row-major with unit stride along the k columns
  // (for k == 1: a contiguous vector); anything else is packed first.
  const bool x_ready = k == 1 ? X.row_stride == 1 : X.col_stride == 1;
  std::vector<T> packed;
  const T* x = X.data;
  Index ldx = k == 1 ? 1 : X.row_stride;
  if (!x_ready) {
    packed = pack_row_major(X);
    x = packed.data();
    ldx = k;
  }
  if (transpose)
    multiply_transposed(x, ldx, k, Y);
  else
    multiply(x, ldx, k, Y);
}

template <class T>
void CSRMatrix<T>::to_dense(T* out, bool transpose) const {
  std::fill_n(out, rows_ * cols_, T(0));
  for (Index i = 0; i < rows_; ++i)
    for (Offset p = indptr_[size_t(i)]; p < indptr_[size_t(i + 1)]; ++p) {
      const Index j = indices_[p];
      if (transpose)
        out[j * rows_ + i] += values_[p];
      else
        out[i * cols_ + j] += values_[p];
    }
}

template <class T>
Index CSRMatrix<T>::nbytes_for(Index rows, Index nnz) {
  HSSLIN_CHECK(rows >= 0 && nnz >= 0 && rows < (Index(1) << 40) && nnz < (Index(1) << 40),
               "nbytes_for: ", rows, " rows with ", nnz, " entries");
  // Header: rows, cols, nnz (one 8-byte word each).
  return nnz * Index(sizeof(T) + sizeof(StorageIndex)) + (rows + 1) * Index(sizeof(Offset)) +
         3 * Index(sizeof(std::int64_t));
}

template <class T>
std::string CSRMatrix<T>::serialize() const {
  ByteWriter w;
  w.put<std::int64_t>(rows_);
  w.put<std::int64_t>(cols_);
  w.put<std::int64_t>(nnz_);
  w.put_array(indptr_.data(), rows_ + 1);
  w.put_array(indices_, nnz_);
  w.put_array(values_, nnz_);
  return w.finish(ObjectKind::CSR, sizeof(T));
}

template <class T>
CSRMatrix<T> CSRMatrix<T>::deserialize(const std::string& blob) {
  ByteReader r(blob, ObjectKind::CSR);
  HSSLIN_CHECK(r.scalar_size() == sizeof(T), "file holds ",
               r.scalar_size() == 4 ? "float32" : "float64", " values");
  const auto m = r.get<std::int64_t>();
  const auto n = r.get<std::int64_t>();
  const auto nnz = r.get<std::int64_t>();
  const Index limit = Index(blob.size());
  HSSLIN_CHECK(m >= 0 && n >= 0 && nnz >= 0 && m < limit && nnz < limit &&
                   n <= Index(std::numeric_limits<StorageIndex>::max()),
               "corrupted file: shape ", m, "x", n, " with ", nnz, " entries");
  auto indptr = r.get_array<Offset>(m + 1);
  auto indices = r.get_array<StorageIndex>(nnz);
  auto values = r.get_array<T>(nnz);
  r.expect_end();
  HSSLIN_CHECK(
      Index(indptr.size()) == m + 1 && Index(indices.size()) == nnz && Index(values.size()) == nnz,
      "corrupted file: array lengths do not match the header");
  return CSRMatrix(m, n, std::move(values), std::move(indices), std::move(indptr));
}

template class CSRMatrix<float>;
template class CSRMatrix<double>;

}  // namespace hsslin
