#pragma once
// What every tree factorization (HSS ULV, HODLR) holds besides its factors:
// the tree, the SPD flag and log|det|, with the file header that stores them
// (size, tree depth, flag, log|det|), written and checked in one place.
#include <cstdint>

#include "hsslin/cluster_tree.hpp"
#include "hsslin/factorization.hpp"
#include "hsslin/io.hpp"

namespace hsslin {

/// \brief The state a tree factorization shares with every other: its tree,
/// whether it is the SPD variant, and the sign and log|det| of the matrix.
class TreeFactorization {
 public:
  Index size() const { return tree_.rows(); }
  bool spd() const { return spd_; }
  /// sign and log|det H|, from the pivots and the orthogonal transforms.
  LogDet logdet() const { return logdet_; }

 protected:
  void write_header(ByteWriter& w) const {
    w.put<std::int64_t>(tree_.rows());
    w.put<std::int32_t>(tree_.levels());
    w.put<std::uint8_t>(spd_ ? 1 : 0);
    w.put<double>(logdet_.sign);
    w.put<double>(logdet_.log_abs);
  }
  /// Reads and checks the header (after the file's own: `scalar_size` is the
  /// reader's caller's sizeof(T)); the tree is rebuilt from size and depth.
  void read_header(ByteReader& r, std::size_t scalar_size) {
    HSSLIN_CHECK(r.scalar_size() == scalar_size, "file holds ",
                 r.scalar_size() == 4 ? "float32" : "float64", " values");
    const auto n = r.get<std::int64_t>();
    const auto levels = r.get<std::int32_t>();
    HSSLIN_CHECK(n >= 1 && n < (Index(1) << 40), "corrupted file: size ", n);
    tree_ = ClusterTree::with_levels(n, n, levels);
    spd_ = r.get<std::uint8_t>() != 0;
    logdet_.sign = r.get<double>();
    logdet_.log_abs = r.get<double>();
  }

  ClusterTree tree_;
  bool spd_ = false;
  LogDet logdet_;
};

}  // namespace hsslin
