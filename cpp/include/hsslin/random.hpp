#pragma once
/// \file random.hpp
/// \brief Seeded Gaussian test matrices, identical on every platform.
///
/// std::normal_distribution is implementation-defined, so results would
/// differ between standard libraries; a splitmix64 stream with Box-Muller
/// gives the same numbers everywhere for the same seed.

#include <Eigen/Dense>
#include <cmath>
#include <cstdint>

#include "hsslin/config.hpp"

namespace hsslin {

/// \brief Counter-based stream: entry (i, j) of stream `seed` is a pure function.
class GaussianStream {
 public:
  explicit GaussianStream(std::uint64_t seed) : seed_(seed) {}

  /// Fills `out` (column-major) with N(0,1) entries; column j uses column
  /// index `first_col + j`, so columns can be generated in batches.
  template <class T>
  void fill(Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>& out, Index first_col = 0) const {
    for (Index j = 0; j < out.cols(); ++j) {
      const std::uint64_t col_key =
          mix(seed_ ^ mix(static_cast<std::uint64_t>(first_col + j) + 0x9e37ULL));
      for (Index i = 0; i < out.rows(); i += 2) {
        const std::uint64_t a = mix(col_key + 2 * static_cast<std::uint64_t>(i) + 1);
        const std::uint64_t b = mix(col_key + 2 * static_cast<std::uint64_t>(i) + 2);
        const double u1 = (static_cast<double>(a >> 11) + 0.5) * 0x1.0p-53;
        const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
        const double radius = std::sqrt(-2.0 * std::log(u1));
        const double angle = 6.283185307179586 * u2;
        out(i, j) = static_cast<T>(radius * std::cos(angle));
        if (i + 1 < out.rows()) out(i + 1, j) = static_cast<T>(radius * std::sin(angle));
      }
    }
  }

 private:
  static std::uint64_t mix(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t seed_;
};

}  // namespace hsslin
