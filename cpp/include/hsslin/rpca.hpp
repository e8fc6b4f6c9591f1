#pragma once
/// \file rpca.hpp
/// \brief Robust PCA: W = L + S by principal component pursuit (inexact ALM).
///
/// Principal component pursuit (Candes, Li, Ma, Wright 2011) solves
///   min ||L||_* + lambda ||S||_1  subject to  L + S = W,
/// here by the inexact augmented Lagrangian method of Lin, Chen and Ma
/// (2010, Algorithm 5):
///   L <- SVT(W - S + Y/mu, 1/mu),  S <- soft(W - L + Y/mu, lambda/mu),
///   Y <- Y + mu (W - L - S),       mu <- min(rho mu, mu_max),
/// stopping when both the primal residual ||W - L - S||_F / ||W||_F and the
/// dual residual mu ||S - S_previous||_F / ||W||_F are <= tol; mu grows
/// only in iterations after one whose primal residual exceeded its dual
/// residual (residual balancing). The singular value
/// thresholding (SVT) needs only the singular values above 1/mu; they come
/// from a randomized partial SVD (range finder with subspace iterations,
/// warm-started from the previous iteration's right singular vectors) whose
/// width is predicted from the previous iteration's count and grows when the
/// count reaches the oversampling margin.

#include <cstdint>
#include <vector>

#include "hsslin/config.hpp"
#include "hsslin/csr.hpp"
#include "hsslin/low_rank.hpp"

namespace hsslin {

/// \brief Options of robust_pca; setters validate and throw std::invalid_argument.
class RPCAOptions {
 public:
  /// lambda of the objective; unset means 1 / sqrt(max(m, n)) (Candes et al.'s choice).
  double lambda_for(Index m, Index n) const;
  bool has_lambda() const { return lambda_ > 0.0; }
  /// The lambda set with set_lambda, 0 when unset.
  double lambda() const { return lambda_; }
  Index max_iter() const { return max_iter_; }
  /// Target relative residual ||W - L - S||_F / ||W||_F for scalar type T:
  /// the value set, else 1e-7 in double (Lin, Chen and Ma's setting) and
  /// 1e-5 in float. Below about 1.5e-6 a float32 residual is rounding: on
  /// a planted 2000 x 2000 case S then absorbs that noise and its nonzeros
  /// grow from the planted 200,000 to 1.9 million at tol = 1e-6.
  template <class T>
  double tol_for() const {
    return tol_ > 0.0 ? tol_ : (sizeof(T) == sizeof(float) ? 1e-5 : 1e-7);
  }
  /// The tol set with set_tol, 0 when unset.
  double tol() const { return tol_; }
  double rho() const { return rho_; }
  /// Initial penalty mu_0 as a multiple of 1 / ||W||_2.
  double mu_scale() const { return mu_scale_; }
  /// mu stops growing at mu_0 * mu_growth_limit.
  double mu_growth_limit() const { return mu_growth_limit_; }
  Index oversampling() const { return oversampling_; }
  /// Subspace iterations of a partial SVD started mostly from fresh Gaussian
  /// columns (the first iteration's, or one that grew by more than it kept);
  /// a warm-started one runs none.
  int power_iterations() const { return power_iterations_; }
  Index initial_rank() const { return initial_rank_; }
  std::uint64_t seed() const { return seed_; }

  RPCAOptions& set_lambda(double lambda);
  RPCAOptions& set_max_iter(Index k);
  RPCAOptions& set_tol(double tol);
  RPCAOptions& set_rho(double rho);
  RPCAOptions& set_mu_scale(double s);
  RPCAOptions& set_mu_growth_limit(double g);
  RPCAOptions& set_oversampling(Index p);
  RPCAOptions& set_power_iterations(int q);
  RPCAOptions& set_initial_rank(Index r);
  RPCAOptions& set_seed(std::uint64_t seed);

 private:
  double lambda_ = 0.0;  // 0 = unset
  Index max_iter_ = 500;
  double tol_ = 0.0;  // 0 = unset: tol_for<T>()
  // rho = 1.5, mu_0 = 1.25 / ||W||_2 and mu_max = 1e7 mu_0 are Lin, Chen
  // and Ma's settings for inexact ALM.
  double rho_ = 1.5;
  double mu_scale_ = 1.25;
  double mu_growth_limit_ = 1e7;
  Index oversampling_ = 10;
  int power_iterations_ = 2;
  Index initial_rank_ = 10;
  std::uint64_t seed_ = 0;
};

/// \brief State after one iteration of robust_pca.
struct RPCAStep {
  Index rank = 0;              ///< singular values kept by the SVT
  Index nnz = 0;               ///< nonzeros of S
  double residual = 0.0;       ///< ||W - L - S||_F / ||W||_F
  double dual_residual = 0.0;  ///< mu ||S - S_previous||_F / ||W||_F (optimality)
  double mu = 0.0;             ///< penalty the iteration used
  Index sketch = 0;            ///< width of the last partial SVD (>= rank + oversampling, or full)
  Index sketches = 0;          ///< partial SVDs the iteration ran (1 + number of times it grew)
  double seconds = 0.0;        ///< wall-clock time of the iteration
};

/// \brief L = U V^T and S of a robust PCA, with its convergence record.
template <class T>
struct RPCAResult {
  Matrix<T> U;                ///< m x r: left singular vectors times sqrt(sigma), sigma descending
  Matrix<T> V;                ///< n x r: right singular vectors times sqrt(sigma)
  std::vector<double> sigma;  ///< the r thresholded singular values of L
  CSRMatrix<T> S;             ///< sparse part, sorted column indices, no stored zeros
  std::vector<RPCAStep> history;  ///< one entry per iteration run
  double lambda = 0.0;            ///< the lambda used
  bool converged = false;         ///< residual and dual_residual <= tol within max_iter
};

/// Robust PCA of a dense m x n matrix W (row-major). Throws
/// std::invalid_argument for an empty or non-finite W. Threaded; the
/// caller may release the GIL (no Python here).
template <class T>
RPCAResult<T> robust_pca(const ConstRowMap<T>& W, const RPCAOptions& options);

}  // namespace hsslin
