// Encoding, byte counts and the file payload of QuantizedMatrix: integer and
// bit manipulation only, compiled once (HSSLIN_SHARED_SOURCES). The products
// are in quantized.cpp, compiled per instruction set.
#include <cmath>
#include <cstring>
#include <limits>

#include "hsslin/io.hpp"
#include "hsslin/quantized.hpp"

namespace hsslin {
namespace {

constexpr double kHalfMax = 65504.0;

void check_format(Index rows, Index cols, QuantFormat format, int bits, Index group_size,
                  bool zero_point) {
  HSSLIN_CHECK(rows > 0 && cols > 0, "a quantized matrix needs a non-empty shape, got ", rows, "x",
               cols);
  HSSLIN_CHECK(format == QuantFormat::Float16 || format == QuantFormat::BFloat16 ||
                   format == QuantFormat::Int,
               "format must be float16, bfloat16 or an integer format, got code ",
               static_cast<int>(format));
  if (format != QuantFormat::Int) {
    HSSLIN_CHECK(bits == 16, "bits of a 16-bit float format must be 16, got ", bits);
    HSSLIN_CHECK(group_size == 0 && !zero_point,
                 "group_size and zero_point apply to integer formats only");
    return;
  }
  HSSLIN_CHECK(bits >= 2 && bits <= 8, "bits must be in 2..8, got ", bits);
  HSSLIN_CHECK(group_size == 0 || group_size == 32 || group_size == 64 || group_size == 128,
               "group_size must be 32, 64, 128 or None (one group per row), got ", group_size);
  HSSLIN_CHECK(group_size == 0 || cols % group_size == 0, "group_size=", group_size,
               " does not divide the row length ", cols,
               " (use a group size that divides it, or one group per row)");
}

/// Rounds |x| to `precision` significant bits (subnormals: to multiples of
/// 2^min_exp), to nearest-even (up = false) or up; x >= 0.
double round_to_bits(double x, int precision, int min_exp, bool up) {
  if (x == 0.0) return 0.0;
  int e = 0;
  std::frexp(x, &e);  // x = m 2^e, m in [0.5, 1)
  const double quantum = std::ldexp(1.0, std::max(e - precision, min_exp));
  const double q = x / quantum;  // exact: a power of two
  return (up ? std::ceil(q) : std::nearbyint(q)) * quantum;
}

/// float16 bits of a value exactly representable in float16 (|r| <= 65504).
std::uint16_t half_bits_exact(double r) {
  std::uint16_t sign = std::signbit(r) ? 0x8000 : 0;
  const double a = std::fabs(r);
  if (a == 0.0) return sign;
  if (a < std::ldexp(1.0, -14)) return sign | static_cast<std::uint16_t>(std::ldexp(a, 24));
  int e = 0;
  const double m = std::frexp(a, &e);  // a = m 2^e, exponent e - 1
  const auto mant = static_cast<std::uint16_t>(std::ldexp(m * 2.0 - 1.0, 10));
  return sign | static_cast<std::uint16_t>((e - 1 + 15) << 10) | mant;
}

template <class T>
std::uint16_t to_half(T x) {
  const double r = round_to_bits(std::fabs(double(x)), 11, -24, false);
  HSSLIN_CHECK(r <= kHalfMax, "W holds ", double(x),
               ", beyond float16's largest finite value 65504 (it would be stored as inf); "
               "scale W or use bfloat16");
  return half_bits_exact(std::signbit(double(x)) ? -r : r);
}

template <class T>
std::uint16_t to_bfloat16(T x) {
  const double r = round_to_bits(std::fabs(double(x)), 8, -133, false);
  HSSLIN_CHECK(r <= double(std::numeric_limits<float>::max()), "W holds ", double(x),
               ", beyond bfloat16's largest finite value (it would be stored as inf)");
  const float f = static_cast<float>(std::signbit(double(x)) ? -r : r);  // exact
  std::uint32_t u = 0;
  std::memcpy(&u, &f, 4);
  return static_cast<std::uint16_t>(u >> 16);
}

/// A group's scale rounded up to float16 (so no entry clips); throws beyond 65504.
double half_scale(double s, Index row, Index group) {
  const double r = round_to_bits(s, 11, -24, true);
  HSSLIN_CHECK(r <= kHalfMax, "the scale of group ", group, " of row ", row, " (", s,
               ") exceeds float16's largest finite value 65504; scale W first");
  return r;
}

template <class T>
void encode_group(const T* x, Index g_cols, const QuantizedStorage& s, Index row, Index g,
                  std::uint8_t* bytes, std::uint16_t& scale, std::uint8_t& zero) {
  const int levels = (1 << s.bits) - 1;  // codes 0..levels
  double lo = 0.0, hi = 0.0, amax = 0.0;
  for (Index j = 0; j < g_cols; ++j) {
    lo = std::min(lo, double(x[j]));
    hi = std::max(hi, double(x[j]));
    amax = std::max(amax, std::fabs(double(x[j])));
  }
  double step = 0.0;
  int z = 1 << (s.bits - 1);
  if (s.zero_point) {
    step = half_scale((hi - lo) / levels, row, g);
    // The range includes 0, so -lo / step lies in [0, levels] (step >= (hi - lo) / levels).
    z = step == 0.0 ? 0 : int(std::min<double>(levels, std::nearbyint(-lo / step)));
  } else {
    step = half_scale(amax / (z - 1), row, g);
  }
  scale = half_bits_exact(step);
  zero = static_cast<std::uint8_t>(z);
  const Index B = s.group_bytes();
  const int w = s.width();
  for (Index t = 0; t < g_cols; ++t) {
    const double q = step == 0.0 ? 0.0 : std::nearbyint(double(x[t]) / step);
    const int code = int(std::min<double>(levels, std::max<double>(0.0, q + z)));
    bytes[t % B] |= static_cast<std::uint8_t>(code << (w * (t / B)));
  }
}

}  // namespace

Index quantized_nbytes(Index rows, Index cols, QuantFormat format, int bits, Index group_size,
                       bool zero_point) {
  check_format(rows, cols, format, bits, group_size, zero_point);
  QuantizedStorage s;
  s.cols = cols;
  s.format = format;
  s.bits = bits;
  s.group_size = group_size;
  const Index limit = std::numeric_limits<Index>::max() / 4;
  HSSLIN_CHECK(cols <= limit / rows, "a ", rows, "x", cols, " matrix is too large");
  if (format != QuantFormat::Int) return kQuantizedHeaderBytes + 2 * rows * cols;
  const Index groups = rows * s.groups_per_row();
  return kQuantizedHeaderBytes + groups * (s.group_bytes() + 2 + (zero_point ? 1 : 0));
}

template <class T>
QuantizedMatrix<T>::QuantizedMatrix(std::shared_ptr<const QuantizedStorage> storage)
    : s_(std::move(storage)) {}

template <class T>
Index QuantizedMatrix<T>::nbytes() const {
  return quantized_nbytes(s_->rows, s_->cols, s_->format, s_->bits, s_->group_size, s_->zero_point);
}

template <class T>
QuantizedMatrix<T> QuantizedMatrix<T>::encode(const T* A, Index rows, Index cols,
                                              QuantFormat format, int bits, Index group_size,
                                              bool zero_point) {
  quantized_nbytes(rows, cols, format, bits, group_size, zero_point);  // checks, before allocating
  for (Index k = 0; k < rows * cols; ++k)
    HSSLIN_CHECK(std::isfinite(double(A[k])), "W holds a non-finite value at row ", k / cols,
                 ", column ", k % cols);
  auto s = std::make_shared<QuantizedStorage>();
  s->rows = rows;
  s->cols = cols;
  s->format = format;
  s->bits = bits;
  s->group_size = group_size;
  s->zero_point = zero_point;
  if (format != QuantFormat::Int) {
    s->halves.resize(size_t(rows * cols));
    for (Index k = 0; k < rows * cols; ++k)
      s->halves[size_t(k)] = format == QuantFormat::Float16 ? to_half(A[k]) : to_bfloat16(A[k]);
    return QuantizedMatrix(std::move(s));
  }
  const Index gpr = s->groups_per_row(), G = s->group(), B = s->group_bytes();
  s->codes.assign(size_t(rows * gpr * B), 0);
  s->scales.resize(size_t(rows * gpr));
  std::vector<std::uint8_t> zeros(size_t(rows * gpr));
  for (Index i = 0; i < rows; ++i)
    for (Index g = 0; g < gpr; ++g) {
      const Index k = i * gpr + g;
      encode_group(A + i * cols + g * G, G, *s, i, g, s->codes.data() + k * B, s->scales[size_t(k)],
                   zeros[size_t(k)]);
    }
  if (zero_point) s->zeros = std::move(zeros);
  return QuantizedMatrix(std::move(s));
}

template <class T>
QuantizedMatrix<T> QuantizedMatrix<T>::from_codes(const std::int64_t* codes, Index rows, Index cols,
                                                  const double* scales, Index n_scales,
                                                  const std::int64_t* zeros, Index n_zeros,
                                                  int bits, Index group_size, bool zero_point) {
  // Checks the shape and format (and that rows * cols fits) before any length is trusted.
  quantized_nbytes(rows, cols, QuantFormat::Int, bits, group_size, zero_point);
  auto s = std::make_shared<QuantizedStorage>();
  s->rows = rows;
  s->cols = cols;
  s->format = QuantFormat::Int;
  s->bits = bits;
  s->group_size = group_size;
  s->zero_point = zero_point;
  const Index gpr = s->groups_per_row(), G = s->group(), B = s->group_bytes();
  HSSLIN_CHECK(n_scales == rows * gpr, "scales holds ", n_scales, " values, expected ", rows * gpr,
               " (", rows, " rows x ", gpr, " groups per row)");
  HSSLIN_CHECK(n_zeros == (zero_point ? rows * gpr : 0),
               zero_point ? "zeros must hold one value per group ("
                          : "zeros applies to zero_point=True only (",
               rows * gpr, " expected, got ", n_zeros, ")");
  const std::int64_t levels = (std::int64_t(1) << bits) - 1;
  for (Index k = 0; k < rows * cols; ++k)
    HSSLIN_CHECK(codes[k] >= 0 && codes[k] <= levels, "codes holds ", codes[k], " at row ",
                 k / cols, ", column ", k % cols, ", outside [0, ", levels, "] for ", bits,
                 " bits");
  for (Index k = 0; k < n_zeros; ++k)
    HSSLIN_CHECK(zeros[k] >= 0 && zeros[k] <= levels, "zeros holds ", zeros[k], " at group ", k,
                 ", outside [0, ", levels, "]");
  for (Index k = 0; k < n_scales; ++k) {
    const double v = scales[k];
    HSSLIN_CHECK(
        std::isfinite(v) && v >= 0.0 && v <= kHalfMax && round_to_bits(v, 11, -24, false) == v,
        "scales holds ", v, " at group ", k,
        ", not a finite non-negative float16 value (round the scales to float16 first)");
  }
  s->codes.assign(size_t(rows * gpr * B), 0);
  s->scales.resize(size_t(rows * gpr));
  const int w = s->width();
  for (Index i = 0; i < rows; ++i)
    for (Index g = 0; g < gpr; ++g) {
      const Index k = i * gpr + g;
      s->scales[size_t(k)] = half_bits_exact(scales[k]);
      std::uint8_t* bytes = s->codes.data() + k * B;
      const std::int64_t* c = codes + i * cols + g * G;
      for (Index t = 0; t < G; ++t)
        bytes[t % B] |= static_cast<std::uint8_t>(c[t] << (w * (t / B)));
    }
  if (zero_point) s->zeros.assign(zeros, zeros + n_zeros);
  return QuantizedMatrix(std::move(s));
}

template <class T>
std::string QuantizedMatrix<T>::serialize() const {
  const QuantizedStorage& s = *s_;
  ByteWriter w;
  w.put<std::int64_t>(s.rows);
  w.put<std::int64_t>(s.cols);
  w.put<std::int32_t>(static_cast<std::int32_t>(s.format));
  w.put<std::int32_t>(s.bits);
  w.put<std::int64_t>(s.group_size);
  w.put<std::int32_t>(s.zero_point ? 1 : 0);
  w.put<std::int32_t>(sizeof(T));  // the header's scalar size again: the codes alone do not tell
  w.put_array(s.halves.data(), Index(s.halves.size()));
  w.put_array(s.codes.data(), Index(s.codes.size()));
  w.put_array(s.scales.data(), Index(s.scales.size()));
  w.put_array(s.zeros.data(), Index(s.zeros.size()));
  return w.finish(ObjectKind::Quantized, sizeof(T));
}

template <class T>
QuantizedMatrix<T> QuantizedMatrix<T>::deserialize(const std::string& blob) {
  ByteReader r(blob, ObjectKind::Quantized);
  HSSLIN_CHECK(r.scalar_size() == sizeof(T), "file holds ",
               r.scalar_size() == 4 ? "float32" : "float64", " values");
  auto s = std::make_shared<QuantizedStorage>();
  s->rows = r.get<std::int64_t>();
  s->cols = r.get<std::int64_t>();
  s->format = static_cast<QuantFormat>(r.get<std::int32_t>());
  s->bits = r.get<std::int32_t>();
  s->group_size = r.get<std::int64_t>();
  const auto zp = r.get<std::int32_t>();
  const auto scalar = r.get<std::int32_t>();
  HSSLIN_CHECK((zp == 0 || zp == 1) && scalar == std::int32_t(sizeof(T)),
               "corrupted file: bad quantized header");
  s->zero_point = zp == 1;
  try {
    quantized_nbytes(s->rows, s->cols, s->format, s->bits, s->group_size, s->zero_point);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("corrupted file: ") + e.what());
  }
  // Array lengths come from the checked header; get_array bounds each by the bytes left.
  const bool is_int = s->format == QuantFormat::Int;
  const Index halves = is_int ? 0 : s->rows * s->cols;
  const Index groups = is_int ? s->rows * s->groups_per_row() : 0;
  s->halves = r.get_array<std::uint16_t>(halves);
  s->codes = r.get_array<std::uint8_t>(groups * s->group_bytes());
  s->scales = r.get_array<std::uint16_t>(groups);
  s->zeros = r.get_array<std::uint8_t>(s->zero_point ? groups : 0);
  r.expect_end();
  HSSLIN_CHECK(Index(s->halves.size()) == halves &&
                   Index(s->codes.size()) == groups * s->group_bytes() &&
                   Index(s->scales.size()) == groups &&
                   Index(s->zeros.size()) == (s->zero_point ? groups : 0),
               "corrupted file: array lengths do not match the header");
  const int levels = is_int ? (1 << s->bits) - 1 : 0;
  for (auto z : s->zeros) HSSLIN_CHECK(z <= levels, "corrupted file: zero point out of range");
  for (auto h : s->scales)
    HSSLIN_CHECK((h & 0x7c00) != 0x7c00 && !(h & 0x8000), "corrupted file: bad scale");
  for (auto h : s->halves) {
    const bool finite =
        s->format == QuantFormat::Float16 ? (h & 0x7c00) != 0x7c00 : (h & 0x7f80) != 0x7f80;
    HSSLIN_CHECK(finite, "corrupted file: a non-finite entry");
  }
  return QuantizedMatrix(std::move(s));
}

#define HSSLIN_INSTANTIATE(T)                                                                      \
  template QuantizedMatrix<T>::QuantizedMatrix(std::shared_ptr<const QuantizedStorage>);           \
  template Index QuantizedMatrix<T>::nbytes() const;                                               \
  template QuantizedMatrix<T> QuantizedMatrix<T>::encode(const T*, Index, Index, QuantFormat, int, \
                                                         Index, bool);                             \
  template QuantizedMatrix<T> QuantizedMatrix<T>::from_codes(                                      \
      const std::int64_t*, Index, Index, const double*, Index, const std::int64_t*, Index, int,    \
      Index, bool);                                                                                \
  template std::string QuantizedMatrix<T>::serialize() const;                                      \
  template QuantizedMatrix<T> QuantizedMatrix<T>::deserialize(const std::string&);
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
