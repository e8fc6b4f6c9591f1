#pragma once
/// \file options.hpp
/// \brief Construction options for the hierarchical formats; setters validate.

#include <cmath>
#include <cstdint>

#include "hsslin/config.hpp"

namespace hsslin {

/// \brief Options of HSSMatrix::compress (STRUMPACK's HSSOptions in spirit).
///
/// `tol` is the target relative Frobenius error ||A - H||_F / ||A||_F.
class HSSOptions {
 public:
  double tol() const { return tol_; }
  Index max_rank() const { return max_rank_; }
  Index leaf_size() const { return leaf_size_; }
  Index oversampling() const { return oversampling_; }
  Index initial_samples() const { return initial_samples_; }
  std::uint64_t seed() const { return seed_; }

  HSSOptions& set_tol(double tol) {
    HSSLIN_CHECK(std::isfinite(tol) && tol > 0.0 && tol < 1.0, "tol must be in (0, 1), got ", tol);
    tol_ = tol;
    return *this;
  }
  /// 0 means no cap.
  HSSOptions& set_max_rank(Index r) {
    HSSLIN_CHECK(r >= 0, "max_rank must be >= 1 (or 0/None for no cap), got ", r);
    max_rank_ = r;
    return *this;
  }
  HSSOptions& set_leaf_size(Index s) {
    HSSLIN_CHECK(s >= 1, "leaf_size must be >= 1, got ", s);
    leaf_size_ = s;
    return *this;
  }
  HSSOptions& set_oversampling(Index p) {
    HSSLIN_CHECK(p >= 2 && p <= 1000, "oversampling must be in [2, 1000], got ", p);
    oversampling_ = p;
    return *this;
  }
  HSSOptions& set_initial_samples(Index d) {
    HSSLIN_CHECK(d >= 1, "initial_samples must be >= 1, got ", d);
    initial_samples_ = d;
    return *this;
  }
  HSSOptions& set_seed(std::uint64_t seed) {
    seed_ = seed;
    return *this;
  }

 private:
  double tol_ = 1e-8;
  Index max_rank_ = 0;
  Index leaf_size_ = 64;
  Index oversampling_ = 10;
  Index initial_samples_ = 48;
  std::uint64_t seed_ = 0;
};

/// \brief Options of HODLRMatrix::compress: a tolerance or a rank schedule.
///
/// With a schedule, the off-diagonal blocks of the root's children get rank
/// `rank`, and each level down multiplies it by `rank_decay`, rounded, never
/// below `min_rank`. With a tolerance (rank == 0), each block gets the
/// smallest rank that keeps the total relative Frobenius error <= tol.
class HODLROptions {
 public:
  double tol() const { return tol_; }
  Index rank() const { return rank_; }
  double rank_decay() const { return rank_decay_; }
  Index min_rank() const { return min_rank_; }
  Index max_rank() const { return max_rank_; }
  Index leaf_size() const { return leaf_size_; }
  int power_iterations() const { return power_iterations_; }
  std::uint64_t seed() const { return seed_; }

  HODLROptions& set_tol(double tol) {
    HSSLIN_CHECK(std::isfinite(tol) && tol > 0.0 && tol < 1.0, "tol must be in (0, 1), got ", tol);
    tol_ = tol;
    return *this;
  }
  HODLROptions& set_rank(Index r) {
    HSSLIN_CHECK(r >= 1, "rank must be >= 1, got ", r);
    rank_ = r;
    return *this;
  }
  HODLROptions& set_rank_decay(double d) {
    HSSLIN_CHECK(std::isfinite(d) && d > 0.0 && d <= 1.0, "rank_decay must be in (0, 1], got ", d);
    rank_decay_ = d;
    return *this;
  }
  HODLROptions& set_min_rank(Index r) {
    HSSLIN_CHECK(r >= 1, "min_rank must be >= 1, got ", r);
    min_rank_ = r;
    return *this;
  }
  HODLROptions& set_max_rank(Index r) {
    HSSLIN_CHECK(r >= 0, "max_rank must be >= 1 (or 0/None for no cap), got ", r);
    max_rank_ = r;
    return *this;
  }
  HODLROptions& set_leaf_size(Index s) {
    HSSLIN_CHECK(s >= 1, "leaf_size must be >= 1, got ", s);
    leaf_size_ = s;
    return *this;
  }
  HODLROptions& set_power_iterations(int q) {
    HSSLIN_CHECK(q >= 0 && q <= 20, "power_iterations must be in [0, 20], got ", q);
    power_iterations_ = q;
    return *this;
  }
  HODLROptions& set_seed(std::uint64_t seed) {
    seed_ = seed;
    return *this;
  }
  /// Rank of the off-diagonal blocks at `level` (1 = children of the root).
  Index scheduled_rank(int level) const {
    const double r = static_cast<double>(rank_) * std::pow(rank_decay_, level - 1);
    return std::max<Index>(min_rank_, static_cast<Index>(std::llround(r)));
  }

 private:
  double tol_ = 0.0;
  Index rank_ = 0;
  double rank_decay_ = 0.5;
  Index min_rank_ = 1;
  Index max_rank_ = 0;
  Index leaf_size_ = 64;
  int power_iterations_ = 2;
  std::uint64_t seed_ = 0;
};

}  // namespace hsslin
