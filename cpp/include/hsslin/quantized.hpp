#pragma once
/// \file quantized.hpp
/// \brief A dense matrix stored at low precision: float16, bfloat16, or integer
/// codes of 2 to 8 bits with float16 scales, decoded on the fly by every product.
///
/// Storage (QuantizedStorage, shared by the float and double operators):
///  * float16 / bfloat16: one 16-bit code per entry, row-major;
///  * integers of `bits` bits: each row is cut into groups of `group` columns
///    (group_size 32, 64 or 128, which must divide the row, or 0: one group
///    per row). A group's codes are unsigned, `width` bits each (2 for
///    bits = 2, 4 for bits 3-4, 8 for bits 5-8), packed into
///    B = ceil(group * width / 8) bytes: code t sits in byte t mod B at bit
///    width * (t / B), so each byte-slot of a group holds consecutive
///    columns and a kernel decodes it with one shift and one mask. Entry
///    value = scale * (code - zero), scale a float16 per group; zero is
///    2^(bits-1) (symmetric) or a stored uint8 per group (asymmetric).
///
/// Every decoded value is exact in float32 (an 11-bit scale times an
/// integer below 2^8), so the float and double operators and the generic
/// and AVX2 kernels decode the same matrix; their products differ only in
/// the order of their float sums.

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "hsslin/config.hpp"
#include "hsslin/dense.hpp"

namespace hsslin {

/// \brief Storage formats of a QuantizedMatrix.
enum class QuantFormat : std::int32_t { Float16 = 1, BFloat16 = 2, Int = 3 };

/// \brief The codes, scales and zero points of a quantized matrix (see the file comment).
struct QuantizedStorage {
  Index rows = 0, cols = 0;
  QuantFormat format = QuantFormat::Float16;
  int bits = 16;                      ///< 16 for the float formats, 2..8 for Int
  Index group_size = 0;               ///< 32, 64, 128, or 0 (one group per row); Int only
  bool zero_point = false;            ///< Int only: asymmetric, one uint8 zero per group
  std::vector<std::uint16_t> halves;  ///< float formats: rows * cols codes
  std::vector<std::uint8_t> codes;    ///< Int: rows * groups_per_row * group_bytes
  std::vector<std::uint16_t> scales;  ///< Int: float16, one per group
  std::vector<std::uint8_t> zeros;    ///< Int with zero_point: one per group

  Index group() const { return group_size == 0 ? cols : group_size; }
  Index groups_per_row() const { return format == QuantFormat::Int ? cols / group() : 0; }
  int width() const { return bits <= 2 ? 2 : bits <= 4 ? 4 : 8; }
  Index group_bytes() const { return (group() * width() + 7) / 8; }
};

/// Bytes of a quantized matrix's header (shape, format, bits, group size, zero-point flag).
constexpr Index kQuantizedHeaderBytes = 40;

/// \brief nbytes of a quantized matrix of that shape and format; throws on bad arguments.
Index quantized_nbytes(Index rows, Index cols, QuantFormat format, int bits, Index group_size,
                       bool zero_point);

/// \brief float16 bits -> float (portable; exact). Inline: the products
/// call it once per group, and a call per group cost more than the group's
/// arithmetic.
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000) << 16;
  const std::uint32_t e = h & 0x7c00, mant = h & 0x03ff;
  std::uint32_t u = 0;
  if (e == 0) {
    const float v = float(mant) * (1.0f / 16777216.0f);  // mant * 2^-24, exact
    return sign ? -v : v;
  }
  if (e == 0x7c00)
    u = sign | 0x7f800000u | (mant << 13);
  else
    u = sign | ((std::uint32_t(h & 0x7fff) << 13) + ((127 - 15) << 23));
  float f = 0;
  std::memcpy(&f, &u, 4);
  return f;
}

/// \brief A dense m x n matrix in low-precision storage; products y = A x and
/// y = A^T x decode it as they read (one row block at a time, never the whole
/// matrix) and accumulate in T.
template <class T>
class QuantizedMatrix {
 public:
  QuantizedMatrix() = default;
  explicit QuantizedMatrix(std::shared_ptr<const QuantizedStorage> storage);

  /// Encodes a row-major rows x cols array: float formats round to nearest
  /// (even); Int rounds to nearest with a per-group scale from the absolute
  /// maximum (symmetric) or from [min(0, min), max(0, max)] (zero_point),
  /// the scale rounded up to float16 so no entry is clipped (each entry's
  /// error is at most half its group's stored scale). Throws
  /// std::invalid_argument on bad arguments, non-finite data, or data (or a
  /// scale) beyond float16's largest finite value.
  static QuantizedMatrix encode(const T* A, Index rows, Index cols, QuantFormat format, int bits,
                                Index group_size, bool zero_point);

  /// Builds an integer-format matrix from given codes (row-major rows x cols,
  /// each in [0, 2^bits - 1]), float16 scales (rows x groups per row, each
  /// finite, >= 0 and exactly a float16 value) and, with zero_point, zeros
  /// (same count, each in [0, 2^bits - 1]): entry = scale * (code - zero),
  /// zero = 2^(bits-1) when symmetric. Stored as given, bit for bit, so a
  /// caller's own quantizer (GPTQ) keeps its exact result. `n_scales` and
  /// `n_zeros` are the lengths of the arrays given; every length is checked
  /// before anything is allocated. Throws std::invalid_argument naming the
  /// argument on any mismatch.
  static QuantizedMatrix from_codes(const std::int64_t* codes, Index rows, Index cols,
                                    const double* scales, Index n_scales, const std::int64_t* zeros,
                                    Index n_zeros, int bits, Index group_size, bool zero_point);

  Index rows() const { return s_->rows; }
  Index cols() const { return s_->cols; }
  const QuantizedStorage& storage() const { return *s_; }
  std::shared_ptr<const QuantizedStorage> shared_storage() const { return s_; }

  /// Every stored byte: codes, scales, zero points and the header.
  Index nbytes() const;

  /// Entries [c0, c1) of row i, decoded into out[0, c1 - c0).
  void decode(Index i, Index c0, Index c1, T* out) const;
  /// The decoded matrix (or its transpose), row-major, into `out`.
  void to_dense(T* out, bool transpose) const;
  /// Y = A X (transpose = false) or Y = A^T X; Y is overwritten. Threaded
  /// above worth_threading.
  void apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose) const;

  std::string serialize() const;
  static QuantizedMatrix deserialize(const std::string& blob);

 private:
  std::shared_ptr<const QuantizedStorage> s_ = std::make_shared<QuantizedStorage>();
};

}  // namespace hsslin
