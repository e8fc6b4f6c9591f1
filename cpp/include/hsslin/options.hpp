#pragma once
/// \file options.hpp
/// \brief Construction options for the hierarchical formats; setters validate.
///
/// These structs are the one place the options, their ranges and their
/// defaults are written: the bindings expose them to Python as
/// `_core.HSSOptions` and `_core.HODLROptions`, whose attributes call the
/// setters below and whose fresh instances hold the defaults.

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "hsslin/config.hpp"

namespace hsslin {

/// Upper bound of every size-like option (ranks, leaf size, samples): no
/// matrix side reaches 2^40, so a larger value means the same as 2^40, and
/// the bound keeps sums and roundings of options far from overflow.
constexpr Index kMaxSizeOption = Index(1) << 40;

namespace detail {
inline void check_size_option(Index v, Index lo, const char* name) {
  HSSLIN_CHECK(v >= lo && v <= kMaxSizeOption, name, " must be in [", lo, ", 2**40], got ", v);
}
inline void check_unit_interval(double v, bool closed_above, const char* name) {
  HSSLIN_CHECK(std::isfinite(v) && v > 0.0 && (closed_above ? v <= 1.0 : v < 1.0), name,
               " must be in (0, 1", closed_above ? "]" : ")", ", got ", v);
}
}  // namespace detail

/// \brief Options of HSSMatrix::compress (STRUMPACK's HSSOptions in spirit).
///
/// `tol` is the target relative Frobenius error ||A - H||_F / ||A||_F.
class HSSOptions {
 public:
  double tol() const { return tol_; }
  /// Cap on every basis rank; 0 means no cap.
  Index max_rank() const { return max_rank_; }
  Index leaf_size() const { return leaf_size_; }
  Index oversampling() const { return oversampling_; }
  Index initial_samples() const { return initial_samples_; }
  std::uint64_t seed() const { return seed_; }

  HSSOptions& set_tol(double tol) {
    detail::check_unit_interval(tol, false, "tol");
    tol_ = tol;
    return *this;
  }
  /// 0 means no cap.
  HSSOptions& set_max_rank(Index r) {
    if (r != 0) detail::check_size_option(r, 1, "max_rank");
    max_rank_ = r;
    return *this;
  }
  HSSOptions& set_leaf_size(Index s) {
    detail::check_size_option(s, 1, "leaf_size");
    leaf_size_ = s;
    return *this;
  }
  HSSOptions& set_oversampling(Index p) {
    HSSLIN_CHECK(p >= 2 && p <= 1000, "oversampling must be in [2, 1000], got ", p);
    oversampling_ = p;
    return *this;
  }
  HSSOptions& set_initial_samples(Index d) {
    detail::check_size_option(d, 1, "initial_samples");
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
/// With a schedule (`rank` set), the off-diagonal blocks of the root's
/// children get rank `rank`, and each level down multiplies it by
/// `rank_decay`, rounded, never below `min_rank`. Otherwise each block gets
/// the smallest rank that keeps the total relative Frobenius error <= tol
/// (kDefaultTol when neither is set). Setting both is an error.
class HODLROptions {
 public:
  /// The tolerance compress uses when neither tol nor rank is set.
  static constexpr double kDefaultTol = 1e-8;
  /// The tolerance set; 0 when none was (see resolved()).
  double tol() const { return tol_; }
  /// Outer rank of the schedule; 0 when built to a tolerance.
  Index rank() const { return rank_; }
  double rank_decay() const { return rank_decay_; }
  Index min_rank() const { return min_rank_; }
  /// Cap on every block's rank in tolerance mode; 0 means no cap.
  Index max_rank() const { return max_rank_; }
  Index leaf_size() const { return leaf_size_; }
  int power_iterations() const { return power_iterations_; }
  std::uint64_t seed() const { return seed_; }

  HODLROptions& set_tol(double tol) {
    detail::check_unit_interval(tol, false, "tol");
    tol_ = tol;
    return check_mode();
  }
  HODLROptions& set_rank(Index r) {
    detail::check_size_option(r, 1, "rank");
    rank_ = r;
    return check_mode();
  }
  HODLROptions& set_rank_decay(double d) {
    detail::check_unit_interval(d, true, "rank_decay");
    rank_decay_ = d;
    return *this;
  }
  HODLROptions& set_min_rank(Index r) {
    detail::check_size_option(r, 1, "min_rank");
    min_rank_ = r;
    return *this;
  }
  /// 0 means no cap.
  HODLROptions& set_max_rank(Index r) {
    if (r != 0) detail::check_size_option(r, 1, "max_rank");
    max_rank_ = r;
    return *this;
  }
  HODLROptions& set_leaf_size(Index s) {
    detail::check_size_option(s, 1, "leaf_size");
    leaf_size_ = s;
    return *this;
  }
  HODLROptions& set_power_iterations(Index q) {
    HSSLIN_CHECK(q >= 0 && q <= 20, "power_iterations must be in [0, 20], got ", q);
    power_iterations_ = int(q);
    return *this;
  }
  HODLROptions& set_seed(std::uint64_t seed) {
    seed_ = seed;
    return *this;
  }
  /// These options with the default tolerance filled in when neither tol
  /// nor rank is set: what compress builds with (and records).
  HODLROptions resolved() const {
    HODLROptions o = *this;
    if (rank_ == 0 && tol_ == 0.0) o.tol_ = kDefaultTol;
    return o;
  }
  /// Rank of the off-diagonal blocks at `level` (1 = children of the root);
  /// at most kMaxSizeOption, so the rounding cannot overflow.
  Index scheduled_rank(int level) const {
    const double r = static_cast<double>(rank_) * std::pow(rank_decay_, level - 1);
    return std::max<Index>(min_rank_, static_cast<Index>(std::llround(r)));
  }

 private:
  HODLROptions& check_mode() {
    HSSLIN_CHECK(!(tol_ > 0.0 && rank_ > 0), "give either tol or rank (a rank schedule), not both");
    return *this;
  }
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
