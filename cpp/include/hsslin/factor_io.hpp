#pragma once
// The header every tree factorization's file starts with (HSS ULV, HODLR):
// size, tree depth, the SPD flag and log|det|, written and checked in one place.
#include <cstdint>
#include <utility>

#include "hsslin/cluster_tree.hpp"
#include "hsslin/factorization.hpp"
#include "hsslin/io.hpp"

namespace hsslin::detail {

/// \brief The fields a tree factorization's file starts with.
struct FactorHeader {
  ClusterTree tree;
  bool spd = false;
  LogDet logdet;
};

inline void write_factor_header(ByteWriter& w, const ClusterTree& tree, bool spd,
                                const LogDet& logdet) {
  w.put<std::int64_t>(tree.rows());
  w.put<std::int32_t>(tree.levels());
  w.put<std::uint8_t>(spd ? 1 : 0);
  w.put<double>(logdet.sign);
  w.put<double>(logdet.log_abs);
}

/// Reads and checks the header (after the file's own: `scalar_size` is the
/// reader's caller's sizeof(T)); the tree is rebuilt from size and depth.
inline FactorHeader read_factor_header(ByteReader& r, std::size_t scalar_size) {
  HSSLIN_CHECK(r.scalar_size() == scalar_size, "file holds ",
               r.scalar_size() == 4 ? "float32" : "float64", " values");
  const auto n = r.get<std::int64_t>();
  const auto levels = r.get<std::int32_t>();
  HSSLIN_CHECK(n >= 1 && n < (Index(1) << 40), "corrupted file: size ", n);
  FactorHeader h;
  h.tree = ClusterTree::with_levels(n, n, levels);
  h.spd = r.get<std::uint8_t>() != 0;
  h.logdet.sign = r.get<double>();
  h.logdet.log_abs = r.get<double>();
  return h;
}

}  // namespace hsslin::detail
