// Products and decoding of QuantizedMatrix, compiled per instruction set.
//
// Every product decodes a block of rows into a small buffer (at most
// kBlockBytes) and multiplies it with Eigen; the dense matrix is never
// formed. The float32 matrix-vector product of the AVX2 build fuses the two
// instead (decode with F16C / shifts / widening, multiply-add, no buffer):
// it is the case whose time should follow the stored bytes.
#include <algorithm>
#include <cstring>

#include "hsslin/parallel.hpp"
#include "hsslin/quantized.hpp"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define HSSLIN_QUANT_AVX2 1
#endif

namespace hsslin {
namespace {

/// Row blocks of the decoded buffer stay within this many bytes (L2-resident).
constexpr Index kBlockBytes = 1 << 17;

inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t u = std::uint32_t(h) << 16;
  float f = 0;
  std::memcpy(&f, &u, 4);
  return f;
}

/// out[j] = scale * (((bytes[j] >> shift) & mask) - zero) for j < count.
template <class T>
void decode_codes(const std::uint8_t* bytes, int shift, int mask, Index count, int zero,
                  float scale, T* out) {
  Index j = 0;
#ifdef HSSLIN_QUANT_AVX2
  if constexpr (std::is_same_v<T, float>) {
    const __m128i m = _mm_set1_epi8(char(mask));
    const __m128i sh = _mm_cvtsi32_si128(shift);
    const __m256i z = _mm256_set1_epi32(zero);
    const __m256 s = _mm256_set1_ps(scale);
    for (; j + 16 <= count; j += 16) {
      const __m128i b = _mm_and_si128(
          _mm_srl_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + j)), sh), m);
      const __m256i lo = _mm256_sub_epi32(_mm256_cvtepu8_epi32(b), z);
      const __m256i hi = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), z);
      _mm256_storeu_ps(out + j, _mm256_mul_ps(s, _mm256_cvtepi32_ps(lo)));
      _mm256_storeu_ps(out + j + 8, _mm256_mul_ps(s, _mm256_cvtepi32_ps(hi)));
    }
  }
#endif
  for (; j < count; ++j) out[j] = T(scale) * T(((bytes[j] >> shift) & mask) - zero);
}

template <class T>
void decode_halves(const std::uint16_t* h, Index count, bool bfloat, T* out) {
  Index j = 0;
#ifdef HSSLIN_QUANT_AVX2
  if constexpr (std::is_same_v<T, float>) {
    for (; j + 8 <= count; j += 8) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + j));
      const __m256 f = bfloat ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16))
                              : _mm256_cvtph_ps(v);
      _mm256_storeu_ps(out + j, f);
    }
  }
#endif
  if (bfloat)
    for (; j < count; ++j) out[j] = T(bf16_to_float(h[j]));
  else
    for (; j < count; ++j) out[j] = T(half_to_float(h[j]));
}

#ifdef HSSLIN_QUANT_AVX2
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// acc += sum_j ((bytes[j] >> shift & mask) - zero) x[j] for j < count, in
/// lanes; the tail (count mod 16) goes to `tail`.
inline void dot_codes(const std::uint8_t* bytes, int shift, int mask, Index count, int zero,
                      const float* x, __m256& acc, float& tail) {
  const __m128i m = _mm_set1_epi8(char(mask));
  const __m128i sh = _mm_cvtsi32_si128(shift);
  const __m256i z = _mm256_set1_epi32(zero);
  Index j = 0;
  for (; j + 16 <= count; j += 16) {
    const __m128i b = _mm_and_si128(
        _mm_srl_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + j)), sh), m);
    const __m256i lo = _mm256_sub_epi32(_mm256_cvtepu8_epi32(b), z);
    const __m256i hi = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), z);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), _mm256_loadu_ps(x + j), acc);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi), _mm256_loadu_ps(x + j + 8), acc);
  }
  for (; j < count; ++j) tail += float(((bytes[j] >> shift) & mask) - zero) * x[j];
}

/// Row i of A times x, decoding as it reads (float32, AVX2).
float dot_row(const QuantizedStorage& s, Index i, const float* x) {
  const Index n = s.cols;
  if (s.format != QuantFormat::Int) {
    const std::uint16_t* h = s.halves.data() + i * n;
    const bool bfloat = s.format == QuantFormat::BFloat16;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    Index j = 0;
    for (; j + 16 <= n; j += 16) {
      const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + j));
      const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + j + 8));
      const __m256 f0 = bfloat
                            ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v0), 16))
                            : _mm256_cvtph_ps(v0);
      const __m256 f1 = bfloat
                            ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v1), 16))
                            : _mm256_cvtph_ps(v1);
      a0 = _mm256_fmadd_ps(f0, _mm256_loadu_ps(x + j), a0);
      a1 = _mm256_fmadd_ps(f1, _mm256_loadu_ps(x + j + 8), a1);
    }
    float tail = 0.0f;
    for (; j < n; ++j) tail += (bfloat ? bf16_to_float(h[j]) : half_to_float(h[j])) * x[j];
    return hsum(_mm256_add_ps(a0, a1)) + tail;
  }
  const Index gpr = s.groups_per_row(), G = s.group(), B = s.group_bytes();
  const int w = s.width(), mask = (1 << w) - 1, slots = 8 / w;
  __m256 total = _mm256_setzero_ps();
  float total_tail = 0.0f;
  for (Index g = 0; g < gpr; ++g) {
    const Index k = i * gpr + g;
    const std::uint8_t* bytes = s.codes.data() + k * B;
    const float scale = _cvtsh_ss(s.scales[size_t(k)]);
    const int zero = s.zero_point ? s.zeros[size_t(k)] : 1 << (s.bits - 1);
    const float* xg = x + g * G;
    __m256 acc = _mm256_setzero_ps();
    float tail = 0.0f;
    for (int slot = 0; slot < slots; ++slot) {
      const Index t0 = slot * B, t1 = std::min(G, t0 + B);
      if (t0 >= t1) break;
      dot_codes(bytes, w * slot, mask, t1 - t0, zero, xg + t0, acc, tail);
    }
    total = _mm256_fmadd_ps(_mm256_set1_ps(scale), acc, total);
    total_tail += scale * tail;
  }
  return hsum(total) + total_tail;
}
#endif

/// Split [0, count) into chunks of about equal size, boundaries multiples of `align`.
std::vector<Index> chunks_of(Index count, Index pieces, Index align) {
  std::vector<Index> b = {0};
  for (Index p = 1; p < pieces; ++p) {
    const Index at = std::min(count, (count * p / pieces + align - 1) / align * align);
    if (at > b.back() && at < count) b.push_back(at);
  }
  b.push_back(count);
  return b;
}

}  // namespace

template <class T>
void QuantizedMatrix<T>::decode(Index i, Index c0, Index c1, T* out) const {
  const QuantizedStorage& s = *s_;
  if (s.format != QuantFormat::Int) {
    decode_halves(s.halves.data() + i * s.cols + c0, c1 - c0, s.format == QuantFormat::BFloat16,
                  out);
    return;
  }
  const Index gpr = s.groups_per_row(), G = s.group(), B = s.group_bytes();
  const int w = s.width(), mask = (1 << w) - 1, slots = 8 / w;
  for (Index g = c0 / G; g < gpr && g * G < c1; ++g) {
    const Index k = i * gpr + g;
    const std::uint8_t* bytes = s.codes.data() + k * B;
    const float scale = half_to_float(s.scales[size_t(k)]);
    const int zero = s.zero_point ? s.zeros[size_t(k)] : 1 << (s.bits - 1);
    for (int slot = 0; slot < slots; ++slot) {
      // Columns g*G + [t0, t1) sit in bytes [0, t1 - t0) at this slot; keep those in [c0, c1).
      const Index t0 = std::max(slot * B, c0 - g * G);
      const Index t1 = std::min({G, (slot + 1) * B, c1 - g * G});
      if (t0 >= t1) continue;
      decode_codes(bytes + (t0 - slot * B), w * slot, mask, t1 - t0, zero, scale,
                   out + (g * G + t0 - c0));
    }
  }
}

template <class T>
void QuantizedMatrix<T>::to_dense(T* out, bool transpose) const {
  const Index m = rows(), n = cols();
  parallel_for(
      0, m,
      [&](Index i) {
        if (!transpose) {
          decode(i, 0, n, out + i * n);
          return;
        }
        std::vector<T> row(static_cast<size_t>(n));
        decode(i, 0, n, row.data());
        for (Index j = 0; j < n; ++j) out[j * m + i] = row[size_t(j)];
      },
      worth_threading(double(m) * double(n)));
}

template <class T>
void QuantizedMatrix<T>::apply(const DenseView<const T>& X, const DenseView<T>& Y,
                               bool transpose) const {
  const Index m = rows(), n = cols(), k = X.cols;
  const bool parallel = worth_threading(double(m) * double(n) * double(std::max<Index>(k, 1)));
  const Index pieces = parallel ? 4 * get_num_threads() : 1;
  const Index block = std::clamp<Index>(kBlockBytes / Index(sizeof(T) * n), 1, 64);
#ifdef HSSLIN_QUANT_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (!transpose && k == 1 && (X.rows <= 1 || X.row_stride == 1)) {
      // One column: element j of x at X.data[j * row_stride], of y at Y.data[i * row_stride].
      const auto b = chunks_of(m, pieces, 1);
      parallel_for(
          0, Index(b.size()) - 1,
          [&](Index c) {
            for (Index i = b[size_t(c)]; i < b[size_t(c) + 1]; ++i)
              Y.data[i * Y.row_stride] = dot_row(*s_, i, X.data);
          },
          parallel);
      return;
    }
  }
#endif
  with_maps(X, Y, [&](const auto& Xm, auto& Ym) {
    if (!transpose) {
      const auto b = chunks_of(m, pieces, 1);
      parallel_for(
          0, Index(b.size()) - 1,
          [&](Index c) {
            RowMatrix<T> buf(block, n);
            for (Index r0 = b[size_t(c)]; r0 < b[size_t(c) + 1]; r0 += block) {
              const Index r = std::min(block, b[size_t(c) + 1] - r0);
              for (Index i = 0; i < r; ++i) decode(r0 + i, 0, n, buf.data() + i * n);
              Ym.middleRows(r0, r).noalias() = buf.topRows(r) * Xm;
            }
          },
          parallel);
      return;
    }
    // Y (n x k) = A^T X: threads own column ranges of A (rows of Y), aligned
    // to whole bytes of every slot, and walk all rows of A.
    const auto b = chunks_of(n, pieces, 64);
    parallel_for(
        0, Index(b.size()) - 1,
        [&](Index c) {
          const Index c0 = b[size_t(c)], c1 = b[size_t(c) + 1], w = c1 - c0;
          const Index rb = std::clamp<Index>(kBlockBytes / Index(sizeof(T) * w), 1, 256);
          RowMatrix<T> buf(rb, w);
          auto Yc = Ym.middleRows(c0, w);
          Yc.setZero();
          for (Index r0 = 0; r0 < m; r0 += rb) {
            const Index r = std::min(rb, m - r0);
            for (Index i = 0; i < r; ++i) decode(r0 + i, c0, c1, buf.data() + i * w);
            Yc.noalias() += buf.topRows(r).transpose() * Xm.middleRows(r0, r);
          }
        },
        parallel);
  });
}

#define HSSLIN_INSTANTIATE(T)                                                                   \
  template void QuantizedMatrix<T>::decode(Index, Index, Index, T*) const;                      \
  template void QuantizedMatrix<T>::to_dense(T*, bool) const;                                   \
  template void QuantizedMatrix<T>::apply(const DenseView<const T>&, const DenseView<T>&, bool) \
      const;
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
