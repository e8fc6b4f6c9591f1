#include "hsslin/io.hpp"

namespace hsslin {
namespace {
constexpr char kMagic[8] = {'H', 'S', 'S', 'L', 'I', 'N', '\0', '\n'};
constexpr size_t kHeaderSize = 8 + 4 * 4 + 8 + 8;

const char* kind_name(std::uint32_t kind) {
  switch (kind) {
    case 1:
      return "HSSMatrix";
    case 2:
      return "HODLRMatrix";
    case 3:
      return "CSRMatrix";
    case 4:
      return "SparsePlusHSS";
    case 10:
      return "HSS factorization";
    case 11:
      return "HODLR factorization";
    case 14:
      return "QuantizedMatrix";
    default:
      return "unknown object";
  }
}
}  // namespace

std::uint64_t fnv1a(const char* data, size_t size) {
  std::uint64_t h = 1469598103934665603ULL;
  // Eight independent lanes keep the loop from serializing on one multiply.
  std::uint64_t lanes[8] = {h, h ^ 1, h ^ 2, h ^ 3, h ^ 4, h ^ 5, h ^ 6, h ^ 7};
  size_t i = 0;
  for (; i + 8 <= size; i += 8)
    for (int k = 0; k < 8; ++k)
      lanes[k] = (lanes[k] ^ static_cast<unsigned char>(data[i + k])) * 1099511628211ULL;
  for (int k = 0; k < 8; ++k) h = (h ^ lanes[k]) * 1099511628211ULL;
  for (; i < size; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 1099511628211ULL;
  return h;
}

std::string ByteWriter::finish(ObjectKind kind, std::uint32_t scalar_size) const {
  std::string out;
  out.reserve(kHeaderSize + bytes_.size());
  out.append(kMagic, 8);
  auto put32 = [&](std::uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  auto put64 = [&](std::uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); };
  put32(kFormatVersion);
  put32(static_cast<std::uint32_t>(kind));
  put32(scalar_size);
  put32(0);
  put64(bytes_.size());
  put64(fnv1a(bytes_.data(), bytes_.size()));
  out.append(bytes_.data(), bytes_.size());
  return out;
}

ByteReader::ByteReader(const std::string& blob, ObjectKind expected_kind) : blob_(blob) {
  HSSLIN_CHECK(blob.size() >= kHeaderSize && std::memcmp(blob.data(), kMagic, 8) == 0,
               "not an hsslin file (bad magic number or shorter than the header)");
  auto get32 = [&](size_t at) {
    std::uint32_t v;
    std::memcpy(&v, blob.data() + at, 4);
    return v;
  };
  auto get64 = [&](size_t at) {
    std::uint64_t v;
    std::memcpy(&v, blob.data() + at, 8);
    return v;
  };
  version_ = get32(8);
  HSSLIN_CHECK(version_ >= 1 && version_ <= kFormatVersion, "file format version ", version_,
               " is not supported: this build of hsslin reads versions 1 to ", kFormatVersion,
               " (was it written by a newer hsslin?)");
  const std::uint32_t kind = get32(12);
  HSSLIN_CHECK(kind == static_cast<std::uint32_t>(expected_kind), "file holds a ", kind_name(kind),
               ", expected a ", kind_name(static_cast<std::uint32_t>(expected_kind)));
  scalar_size_ = get32(16);
  HSSLIN_CHECK(scalar_size_ == 4 || scalar_size_ == 8, "corrupted file: scalar size ",
               scalar_size_);
  const std::uint64_t length = get64(24);
  HSSLIN_CHECK(length == blob.size() - kHeaderSize, "truncated or padded file: header says ",
               length, " payload bytes, found ", blob.size() - kHeaderSize);
  HSSLIN_CHECK(get64(32) == fnv1a(blob.data() + kHeaderSize, length),
               "corrupted file: checksum mismatch");
  pos_ = kHeaderSize;
  end_ = blob.size();
}

void ByteReader::take(void* out, size_t count) {
  HSSLIN_CHECK(count <= end_ - pos_, "corrupted file: needs ", count, " more bytes at offset ",
               pos_, " but only ", end_ - pos_, " remain");
  if (count > 0) std::memcpy(out, blob_.data() + pos_, count);
  pos_ += count;
}

void ByteReader::expect_end() const {
  HSSLIN_CHECK(pos_ == end_, "corrupted file: ", end_ - pos_, " unread bytes at the end");
}

}  // namespace hsslin
