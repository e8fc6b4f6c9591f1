#pragma once
/// \file io.hpp
/// \brief Versioned, checksummed binary container used by save/load.
///
/// Layout (little-endian): 8-byte magic "HSSLIN\0\n", u32 format version,
/// u32 object kind, u32 scalar size, u32 reserved, u64 payload length,
/// u64 checksum of the payload (see fnv1a below), then the payload. Every read is
/// bounds-checked, so a truncated or corrupted file throws instead of
/// reading past the end.

#include <Eigen/Dense>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "hsslin/config.hpp"

namespace hsslin {

/// Format version this build writes; files with a larger version are refused.
constexpr std::uint32_t kFormatVersion = 1;

/// \brief Kinds of object a file can hold.
enum class ObjectKind : std::uint32_t {
  HSS = 1,
  HODLR = 2,
  CSR = 3,
  SparsePlus = 4,
  HSSFactor = 10,    ///< inside a factorization container (hsslin/_factor.py)
  HODLRFactor = 11,  ///< likewise
  Quantized = 14     ///< QuantizedMatrix (quantized.hpp)
};

/// \brief Appends plain values and matrices to a byte buffer.
class ByteWriter {
 public:
  template <class V>
  void put(const V& value) {
    const auto* p = reinterpret_cast<const char*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(V));
  }
  template <class V>
  void put_array(const V* data, Index count) {
    put<std::int64_t>(count);
    const auto* p = reinterpret_cast<const char*>(data);
    bytes_.insert(bytes_.end(), p, p + count * static_cast<Index>(sizeof(V)));
  }
  template <class T>
  void put_matrix(const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>& M) {
    put<std::int64_t>(M.rows());
    put<std::int64_t>(M.cols());
    const auto* p = reinterpret_cast<const char*>(M.data());
    bytes_.insert(bytes_.end(), p, p + M.size() * static_cast<Index>(sizeof(T)));
  }
  /// Wraps the payload in the header.
  std::string finish(ObjectKind kind, std::uint32_t scalar_size) const;
  const std::vector<char>& bytes() const { return bytes_; }

 private:
  std::vector<char> bytes_;
};

/// \brief Reads what ByteWriter wrote, checking bounds on every read.
class ByteReader {
 public:
  /// Validates the header (magic, version, kind, checksum, length).
  ByteReader(const std::string& blob, ObjectKind expected_kind);
  std::uint32_t scalar_size() const { return scalar_size_; }
  std::uint32_t version() const { return version_; }

  template <class V>
  V get() {
    V value;
    take(&value, sizeof(V));
    return value;
  }
  template <class V>
  std::vector<V> get_array(Index max_count) {
    const auto count = get<std::int64_t>();
    HSSLIN_CHECK(count >= 0 && count <= max_count, "corrupted file: array of ", count,
                 " entries where at most ", max_count, " are possible");
    require(count, sizeof(V), "array");
    std::vector<V> out(static_cast<size_t>(count));
    take(out.data(), static_cast<size_t>(count) * sizeof(V));
    return out;
  }
  template <class T>
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> get_matrix(Index rows, Index cols) {
    const auto r = get<std::int64_t>();
    const auto c = get<std::int64_t>();
    HSSLIN_CHECK(r == rows && c == cols, "corrupted file: a ", r, "x", c, " block where ", rows,
                 "x", cols, " was expected");
    return read_matrix<T>(r, c);
  }
  /// A matrix whose shape is stored in the file, bounded by the caller.
  template <class T>
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> get_matrix_bounded(Index max_rows,
                                                                      Index max_cols) {
    const auto r = get<std::int64_t>();
    const auto c = get<std::int64_t>();
    HSSLIN_CHECK(r >= 0 && c >= 0 && r <= max_rows && c <= max_cols, "corrupted file: a ", r, "x",
                 c, " block where at most ", max_rows, "x", max_cols, " fits");
    return read_matrix<T>(r, c);
  }
  /// Bytes not read yet.
  Index remaining() const { return Index(end_ - pos_); }
  /// Throws unless `count` items of at least `item_bytes` bytes each can
  /// still follow: every size read from a file passes here before anything
  /// of that size is allocated.
  void require(Index count, size_t item_bytes, const char* what) const {
    HSSLIN_CHECK(count >= 0 && (item_bytes == 0 || count <= remaining() / Index(item_bytes)),
                 "corrupted file: ", count, " ", what, " entries of ", item_bytes,
                 " bytes cannot fit the ", remaining(), " bytes left");
  }
  /// Throws unless every payload byte was consumed.
  void expect_end() const;

 private:
  template <class T>
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> read_matrix(Index r, Index c) {
    const Index item = Index(sizeof(T));  // r * item and r * c * item cannot overflow below
    HSSLIN_CHECK(r == 0 || c == 0 || (r <= remaining() / item && c <= remaining() / (r * item)),
                 "corrupted file: a ", r, "x", c, " block cannot fit the ", remaining(),
                 " bytes left");
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> M(r, c);
    take(M.data(), static_cast<size_t>(r * c) * sizeof(T));
    return M;
  }
  void take(void* out, size_t count);
  const std::string& blob_;
  size_t pos_ = 0, end_ = 0;
  std::uint32_t version_ = 0, scalar_size_ = 0;
};

/// 64-bit checksum: FNV-1a over eight interleaved byte lanes (byte i goes to
/// lane i mod 8), the lanes then folded with FNV-1a, then the tail bytes.
std::uint64_t fnv1a(const char* data, size_t size);

}  // namespace hsslin
