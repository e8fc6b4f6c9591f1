#include "hsslin/rpca.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "hsslin/parallel.hpp"
#include "hsslin/random.hpp"

namespace hsslin {

double RPCAOptions::lambda_for(Index m, Index n) const {
  return has_lambda() ? lambda_ : 1.0 / std::sqrt(static_cast<double>(std::max(m, n)));
}

RPCAOptions& RPCAOptions::set_lambda(double lambda) {
  HSSLIN_CHECK(std::isfinite(lambda) && lambda > 0.0, "lam must be a finite number > 0, got ",
               lambda);
  lambda_ = lambda;
  return *this;
}
RPCAOptions& RPCAOptions::set_max_iter(Index k) {
  HSSLIN_CHECK(k >= 1, "max_iter must be >= 1, got ", k);
  max_iter_ = k;
  return *this;
}
RPCAOptions& RPCAOptions::set_tol(double tol) {
  HSSLIN_CHECK(std::isfinite(tol) && tol > 0.0 && tol < 1.0, "tol must be in (0, 1), got ", tol);
  tol_ = tol;
  return *this;
}
RPCAOptions& RPCAOptions::set_rho(double rho) {
  HSSLIN_CHECK(std::isfinite(rho) && rho > 1.0 && rho <= 100.0, "rho must be in (1, 100], got ",
               rho);
  rho_ = rho;
  return *this;
}
RPCAOptions& RPCAOptions::set_mu_scale(double s) {
  HSSLIN_CHECK(std::isfinite(s) && s > 0.0, "mu_scale must be a finite number > 0, got ", s);
  mu_scale_ = s;
  return *this;
}
RPCAOptions& RPCAOptions::set_mu_growth_limit(double g) {
  HSSLIN_CHECK(std::isfinite(g) && g >= 1.0, "mu_growth_limit must be a finite number >= 1, got ",
               g);
  mu_growth_limit_ = g;
  return *this;
}
RPCAOptions& RPCAOptions::set_oversampling(Index p) {
  HSSLIN_CHECK(p >= 2 && p <= 1000, "oversampling must be in [2, 1000], got ", p);
  oversampling_ = p;
  return *this;
}
RPCAOptions& RPCAOptions::set_power_iterations(int q) {
  HSSLIN_CHECK(q >= 0 && q <= 20, "power_iterations must be in [0, 20], got ", q);
  power_iterations_ = q;
  return *this;
}
RPCAOptions& RPCAOptions::set_initial_rank(Index r) {
  HSSLIN_CHECK(r >= 1, "initial_rank must be >= 1, got ", r);
  initial_rank_ = r;
  return *this;
}
RPCAOptions& RPCAOptions::set_seed(std::uint64_t seed) {
  seed_ = seed;
  return *this;
}

namespace {

constexpr Index kRowChunk = 64;        // rows per task of the elementwise passes
constexpr double kThreadWork = 1e5;    // entries below which a pass runs on one thread
constexpr double kGrowthShare = 0.05;  // Lin, Chen, Ma: grow the prediction by 5% of min(m, n)

// Thin orthonormal basis of range(Y), Y with at most as many columns as rows.
template <class T>
Matrix<T> orthonormal(const Matrix<T>& Y) {
  Eigen::HouseholderQR<Matrix<T>> qr(Y);
  return qr.householderQ() * Matrix<T>::Identity(Y.rows(), Y.cols());
}

// C = A * B for a tall A, threaded over row chunks (Eigen itself runs on one
// thread here: the build sets EIGEN_DONT_PARALLELIZE).
template <class T>
Matrix<T> tall_product(const Matrix<T>& A, const Matrix<T>& B) {
  Matrix<T> C(A.rows(), B.cols());
  const Index chunks = (A.rows() + 255) / 256;
  parallel_for(0, chunks, [&](Index c) {
    const Index r0 = c * 256, len = std::min<Index>(256, A.rows() - r0);
    C.middleRows(r0, len).noalias() = A.middleRows(r0, len) * B;
  });
  return C;
}

/// Singular triplets of a partial SVD, M ~= U diag(sigma) V^T, sigma descending.
template <class T>
struct Triplets {
  Matrix<T> U, V;
  std::vector<double> sigma;
};

// Randomized partial SVD of M from the range of M * start refined by
// `power_iterations` subspace iterations (Halko, Martinsson, Tropp 2011,
// Algorithm 4.4), then Rayleigh-Ritz: B = Q^T M, and B^T = P R by QR so
// that the SVD runs on the small square R^T = Ur diag(s) Vr^T, giving
// M ~= (Q Ur) diag(s) (P Vr)^T. Squaring into B B^T would be cheaper but
// loses every singular value below sqrt(eps) ||M||, and the threshold 1/mu
// of the late iterations lies far below that in float32.
template <class T>
Triplets<T> partial_svd(const ConstRowMap<T>& M, const Matrix<T>& start, int power_iterations) {
  Matrix<T> Y, Z;
  sample_columns(M, start, Y);
  Matrix<T> Q = orthonormal<T>(Y);
  for (int i = 0; i < power_iterations; ++i) {
    sample_rows(M, Q, Z);
    Z = orthonormal<T>(Z);
    sample_columns(M, Z, Y);
    Q = orthonormal<T>(Y);
  }
  sample_rows(M, Q, Z);  // B^T, n x l
  const Index l = Z.cols();
  Eigen::HouseholderQR<Matrix<T>> qr(Z);
  const Matrix<T> Rt =
      Matrix<T>(qr.matrixQR().topRows(l).template triangularView<Eigen::Upper>()).transpose();
  Eigen::BDCSVD<Matrix<T>> svd(Rt, Eigen::ComputeFullU | Eigen::ComputeFullV);
  Triplets<T> out;
  out.U = tall_product<T>(Q, svd.matrixU());
  Matrix<T> Vr = Matrix<T>::Zero(Z.rows(), l);
  Vr.topRows(l) = svd.matrixV();
  out.V = qr.householderQ() * Vr;
  out.sigma.resize(static_cast<size_t>(l));
  for (Index i = 0; i < l; ++i)
    out.sigma[static_cast<size_t>(i)] = static_cast<double>(svd.singularValues()(i));
  return out;
}

/// Norms of W in one pass: Frobenius, max |w_ij|; throws on a non-finite entry.
struct Norms {
  double fro = 0.0, max_abs = 0.0;
};

template <class T>
Norms norms_of(const ConstRowMap<T>& W) {
  Norms out;
  double sum = 0.0;
  for (Index i = 0; i < W.rows(); ++i) {
    for (Index j = 0; j < W.cols(); ++j) {
      const double w = static_cast<double>(W(i, j));
      HSSLIN_CHECK(std::isfinite(w), "W has a non-finite entry at (", i, ", ", j, ")");
      sum += w * w;
      out.max_abs = std::max(out.max_abs, std::abs(w));
    }
  }
  out.fro = std::sqrt(sum);
  return out;
}

/// The iteration's dense state: S, the multiplier Y, and the matrix M the
/// next SVT reads, all m x n row-major.
template <class T>
struct ALMState {
  RowMatrix<T> S, Y, M;
};

struct PassTotals {
  double residual2 = 0.0;  // ||W - L - S||_F^2
  double change2 = 0.0;    // ||S - S_previous||_F^2
  Index nnz = 0;
};

// One fused pass over the rows, given L = UL VL^T of this iteration:
//   S <- soft(W - L + Y/mu, lambda/mu), R = W - L - S, Y <- Y + mu R,
//   M <- W - S + Y/mu_next (the next SVT's argument).
// Each chunk forms its rows of L with one small GEMM; per-chunk sums are
// added in chunk order, so the result does not depend on thread timing.
template <class T>
PassTotals update_pass(const ConstRowMap<T>& W, const Matrix<T>& UL, const Matrix<T>& VL, double mu,
                       double mu_next, double lambda, ALMState<T>& st) {
  const Index m = W.rows(), n = W.cols(), chunks = (m + kRowChunk - 1) / kRowChunk;
  std::vector<PassTotals> parts(static_cast<size_t>(chunks));
  const T inv_mu = T(1.0 / mu), inv_next = T(1.0 / mu_next), shrink = T(lambda / mu), mu_t = T(mu);
  const bool parallel = static_cast<double>(m) * static_cast<double>(n) >= kThreadWork;
  parallel_for(
      0, chunks,
      [&](Index c) {
        const Index r0 = c * kRowChunk, len = std::min(kRowChunk, m - r0);
        RowMatrix<T> L(len, n);
        if (UL.cols() > 0)
          L.noalias() = UL.middleRows(r0, len) * VL.transpose();
        else
          L.setZero();
        PassTotals& part = parts[static_cast<size_t>(c)];
        for (Index a = 0; a < len; ++a) {
          const Index i = r0 + a;
          for (Index j = 0; j < n; ++j) {
            const T w = W(i, j), l = L(a, j);
            T y = st.Y(i, j);
            const T t = w - l + y * inv_mu;
            const T s = t > shrink ? t - shrink : (t < -shrink ? t + shrink : T(0));
            const T r = w - l - s;
            const T ds = s - st.S(i, j);
            y += mu_t * r;
            st.S(i, j) = s;
            st.Y(i, j) = y;
            st.M(i, j) = w - s + y * inv_next;
            part.residual2 += static_cast<double>(r) * static_cast<double>(r);
            part.change2 += static_cast<double>(ds) * static_cast<double>(ds);
            part.nnz += s != T(0);
          }
        }
      },
      parallel);
  PassTotals total;
  for (const PassTotals& p : parts) {
    total.residual2 += p.residual2;
    total.change2 += p.change2;
    total.nnz += p.nnz;
  }
  return total;
}

// Dense S to CSR, keeping its nonzeros (sorted column indices).
template <class T>
CSRMatrix<T> sparse_of(const RowMatrix<T>& S, Index nnz) {
  const Index m = S.rows(), n = S.cols();
  std::vector<T> values;
  std::vector<std::int32_t> indices;
  values.reserve(static_cast<size_t>(nnz));
  indices.reserve(static_cast<size_t>(nnz));
  std::vector<std::int64_t> indptr(static_cast<size_t>(m + 1), 0);
  for (Index i = 0; i < m; ++i) {
    for (Index j = 0; j < n; ++j) {
      if (S(i, j) != T(0)) {
        values.push_back(S(i, j));
        indices.push_back(static_cast<std::int32_t>(j));
      }
    }
    indptr[static_cast<size_t>(i + 1)] = static_cast<std::int64_t>(values.size());
  }
  return CSRMatrix<T>(m, n, std::move(values), std::move(indices), std::move(indptr));
}

/// The randomized SVT: which triplets of M lie above tau, found with a
/// sketch that starts at the predicted width and grows while the count
/// reaches into the oversampling margin.
template <class T>
class Thresholder {
 public:
  Thresholder(Index rows, Index cols, const RPCAOptions& o)
      : n_(cols),
        full_(std::min(rows, cols)),
        p_(o.oversampling()),
        q_(o.power_iterations()),
        stream_(o.seed()),
        predicted_(std::min(o.initial_rank(), full_)),
        growth_(std::max<Index>(1, static_cast<Index>(std::llround(kGrowthShare * full_)))) {}

  /// Triplets of M above tau, shrunk by tau, as factors UL = U sqrt(s - tau),
  /// VL = V sqrt(s - tau); records the sketch in `step`.
  void threshold(const ConstRowMap<T>& M, double tau, Matrix<T>& UL, Matrix<T>& VL,
                 std::vector<double>& sigma, RPCAStep& step) {
    Index wanted = predicted_;
    Index count = 0;
    Triplets<T> t;
    while (true) {
      const Index width = std::min(full_, wanted + p_);
      Index fresh = 0;
      const Matrix<T> block = start(width, fresh);
      // A warm start needs no subspace iterations: each ALM iteration acts
      // as one (q = 0 and q = 1 recover the planted cases of the tests
      // equally; q = 1 costs two more products and orthonormalizations).
      const bool cold = 2 * fresh > width;
      t = partial_svd<T>(M, block, width == full_ || !cold ? 0 : q_);
      ++step.sketches;
      count = 0;
      while (count < width && t.sigma[static_cast<size_t>(count)] > tau) ++count;
      previous_ = t.V;
      step.sketch = width;
      // Enough when p computed values fall below tau, or the sketch spans everything.
      if (width == full_ || count + p_ <= width) break;
      // Widen by the larger of 5% of min(m, n) and half the count: while the
      // rank climbs (the first iterations on a weight matrix), a redo at too
      // small a width costs a whole partial SVD, overshooting only columns.
      wanted = count + std::max(growth_, count / 2);
    }
    // Lin, Chen and Ma's prediction (one more than this count when it fell
    // short of the prediction, 5% of min(m, n) more when it reached it),
    // raised to follow the last rise of the count, which on weight matrices
    // roughly repeats for several iterations.
    const Index rise = std::max<Index>(0, count - last_count_);
    last_count_ = count;
    predicted_ = std::min(full_, count + std::max(count < wanted ? Index(1) : growth_, rise));
    UL.resize(t.U.rows(), count);
    VL.resize(t.V.rows(), count);
    sigma.resize(static_cast<size_t>(count));
    for (Index k = 0; k < count; ++k) {
      const double s = t.sigma[static_cast<size_t>(k)] - tau;
      const T root = static_cast<T>(std::sqrt(s));
      UL.col(k) = t.U.col(k) * root;
      VL.col(k) = t.V.col(k) * root;
      sigma[static_cast<size_t>(k)] = s;
    }
    step.rank = count;
  }

 private:
  // Start block of a sketch of `width` columns: the previous iteration's
  // right singular vectors (M changes little between iterations, so they
  // already span most of the wanted subspace), topped up with fresh
  // Gaussian columns.
  Matrix<T> start(Index width, Index& fresh_columns) {
    Matrix<T> out(n_, width);
    const Index kept = std::min(width, static_cast<Index>(previous_.cols()));
    if (kept > 0) out.leftCols(kept) = previous_.leftCols(kept);
    fresh_columns = width - kept;
    if (width > kept) {
      Matrix<T> fresh(n_, width - kept);
      stream_.fill(fresh, drawn_);
      drawn_ += width - kept;
      out.rightCols(width - kept) = fresh;
    }
    return out;
  }

  Index n_, full_, p_;
  int q_;
  GaussianStream stream_;
  Index drawn_ = 0;  // Gaussian columns used so far (each sketch draws fresh ones)
  Index predicted_, growth_;
  Index last_count_ = 0;
  Matrix<T> previous_;
};

// ||W||_2 from a few subspace iterations on a narrow sketch; never below
// the lower bound ||W||_F / sqrt(min(m, n)), so it is positive for W != 0.
template <class T>
double spectral_norm(const ConstRowMap<T>& W, double fro, std::uint64_t seed) {
  const Index full = std::min(W.rows(), W.cols());
  Matrix<T> start(W.cols(), std::min<Index>(full, 4));
  GaussianStream(seed ^ 0x5bd1e995ULL).fill(start);
  const Triplets<T> t = partial_svd<T>(W, start, 4);
  return std::max(t.sigma.front(), fro / std::sqrt(static_cast<double>(full)));
}

}  // namespace

template <class T>
RPCAResult<T> robust_pca(const ConstRowMap<T>& W, const RPCAOptions& o) {
  const Index m = W.rows(), n = W.cols();
  HSSLIN_CHECK(m > 0 && n > 0, "W must be non-empty, got shape (", m, ", ", n, ")");
  HSSLIN_CHECK(n <= Index(std::numeric_limits<std::int32_t>::max()), "W has ", n,
               " columns, more than int32 indices hold");
  RPCAResult<T> out;
  out.lambda = o.lambda_for(m, n);
  const Norms norms = norms_of(W);
  if (norms.fro == 0.0) {  // L = S = 0 is exact
    out.U = Matrix<T>::Zero(m, 0);
    out.V = Matrix<T>::Zero(n, 0);
    out.S = CSRMatrix<T>(m, n, {}, {}, std::vector<std::int64_t>(static_cast<size_t>(m + 1), 0));
    out.converged = true;
    return out;
  }
  const double norm2 = spectral_norm(W, norms.fro, o.seed());
  // Lin, Chen, Ma: Y_0 = W / max(||W||_2, ||W||_inf / lambda), a point of
  // the dual ball that makes the first steps' objective values comparable.
  const double dual = std::max(norm2, norms.max_abs / out.lambda);
  double mu = o.mu_scale() / norm2;
  const double mu_max = mu * o.mu_growth_limit();

  ALMState<T> st;
  st.S = RowMatrix<T>::Zero(m, n);
  st.Y = (W / static_cast<T>(dual)).eval();
  st.M = (W + st.Y / static_cast<T>(mu)).eval();

  Thresholder<T> svt(m, n, o);
  Matrix<T> UL, VL;
  const double tol = o.template tol_for<T>();
  // Feasibility alone is no optimality test: mu grows geometrically, and
  // once it is large the iterates freeze wherever W - L - S first got small,
  // which need not be the PCP optimum (a planted 40 x 40 rank-1 case stops
  // at objective 62.121 against the optimum's 62.091 at rho = 1.5). The KKT
  // conditions of the splitting hold when both the primal residual W - L - S
  // and the dual residual mu (S_k - S_{k-1}) vanish (Lin, Chen, Ma 2010,
  // Theorem 2; Boyd et al. 2011, section 3.3), so both must reach tol, and
  // mu grows only while the primal residual dominates the dual one
  // (residual balancing, Boyd et al. section 3.4.1), decided on the previous
  // iteration's residuals because the fused pass needs the next mu.
  bool grow = true;
  for (Index k = 0; k < o.max_iter(); ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    RPCAStep step;
    step.mu = mu;
    const ConstRowMap<T> M(st.M.data(), m, n, Eigen::OuterStride<>(n));
    svt.threshold(M, 1.0 / mu, UL, VL, out.sigma, step);
    const double mu_next = grow ? std::min(mu * o.rho(), mu_max) : mu;
    const PassTotals totals = update_pass(W, UL, VL, mu, mu_next, out.lambda, st);
    step.nnz = totals.nnz;
    step.residual = std::sqrt(totals.residual2) / norms.fro;
    step.dual_residual = mu * std::sqrt(totals.change2) / norms.fro;
    step.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.history.push_back(step);
    mu = mu_next;
    grow = step.residual > step.dual_residual;
    if (step.residual <= tol && step.dual_residual <= tol) {
      out.converged = true;
      break;
    }
  }
  out.U = std::move(UL);
  out.V = std::move(VL);
  out.S = sparse_of(st.S, out.history.back().nnz);
  return out;
}

#define HSSLIN_INSTANTIATE(T) \
  template RPCAResult<T> robust_pca(const ConstRowMap<T>&, const RPCAOptions&);
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
