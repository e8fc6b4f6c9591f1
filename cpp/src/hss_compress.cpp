// HSS construction from a dense matrix by randomized sampling (Martinsson
// 2011, "A fast randomized algorithm for computing a hierarchically
// semiseparable representation of a matrix"), with three additions:
//  * adaptive sample size: a node whose interpolative decomposition needs
//    more columns than the sample certifies asks for more samples;
//  * a posterior check of the error on held-out probe vectors, tightening
//    the per-node tolerance when the target was missed;
//  * incompressible input is detected from the rank growth and kept dense.
#include <algorithm>
#include <cmath>

#include "hsslin/hss.hpp"
#include "hsslin/parallel.hpp"
#include "hsslin/random.hpp"

namespace hsslin {

namespace {
constexpr Index kHoldout = 8;           // probe vectors for the posterior error check
constexpr int kMaxTightenings = 4;      // re-compressions with a tighter node tolerance
constexpr double kDenseFraction = 0.9;  // predicted bytes above this share of dense: keep dense
}  // namespace

/// Transient per-node state of one compression pass.
template <class T>
struct HSSMatrix<T>::Build {
  struct Work {
    std::vector<Index> rows, cols;            // candidate global rows / columns
    std::vector<Index> skel_rows, skel_cols;  // chosen skeletons (global indices)
    Matrix<T> Yskel, Zskel;                   // samples restricted to the skeletons
    Matrix<T> Omega_c, Psi_c;                 // V^T Omega(J), U^T Psi(I), propagated up
    Index rank_estimate_rows = 0, rank_estimate_cols = 0;
    bool saturated = false;
  };

  const MatrixSource<T>& A;
  const Matrix<T>& Omega;
  const Matrix<T>& Psi;
  const Matrix<T>& Y;
  const Matrix<T>& Z;
  Index samples;
  bool symmetric;
  double row_tol_unit, col_tol_unit;  // per-node tolerance = unit * sqrt(node share)
  const HSSOptions& options;
  HSSMatrix& H;
  std::vector<Node>& nodes;
  std::vector<Work> work;
  bool any_saturated = false;

  void compress_node(Index i) {
    const ClusterTree& tree = H.tree_;
    const ClusterNode& cn = tree.node(i);
    Node& node = nodes[static_cast<size_t>(i)];
    Work& w = work[static_cast<size_t>(i)];
    Matrix<T> Yloc, Zloc, Om, Ps;
    if (tree.is_leaf(i)) {
      node.D = A.block(cn.row_begin, cn.col_begin, cn.rows(), cn.cols());
      w.rows.resize(static_cast<size_t>(cn.rows()));
      w.cols.resize(static_cast<size_t>(cn.cols()));
      for (Index k = 0; k < cn.rows(); ++k) w.rows[static_cast<size_t>(k)] = cn.row_begin + k;
      for (Index k = 0; k < cn.cols(); ++k) w.cols[static_cast<size_t>(k)] = cn.col_begin + k;
      Om = Omega.middleRows(cn.col_begin, cn.cols());
      Yloc = Y.middleRows(cn.row_begin, cn.rows());
      if (cn.cols() > 0) Yloc.noalias() -= node.D * Om;
      if (!symmetric) {
        Ps = Psi.middleRows(cn.row_begin, cn.rows());
        Zloc = Z.middleRows(cn.col_begin, cn.cols());
        if (cn.rows() > 0) Zloc.noalias() -= node.D.transpose() * Ps;
      }
    } else {
      couple_children(i);
      const Work& a = work[static_cast<size_t>(ClusterTree::left(i))];
      const Work& b = work[static_cast<size_t>(ClusterTree::right(i))];
      w.rows = a.skel_rows;
      w.rows.insert(w.rows.end(), b.skel_rows.begin(), b.skel_rows.end());
      w.cols = a.skel_cols;
      w.cols.insert(w.cols.end(), b.skel_cols.begin(), b.skel_cols.end());
      Yloc.resize(Index(w.rows.size()), samples);
      Yloc << a.Yskel - node.B12 * b.Omega_c, b.Yskel - node.B21 * a.Omega_c;
      Om.resize(Index(w.cols.size()), samples);
      Om << a.Omega_c, b.Omega_c;
      if (!symmetric) {
        Zloc.resize(Index(w.cols.size()), samples);
        Zloc << a.Zskel - node.B21.transpose() * b.Psi_c, b.Zskel - node.B12.transpose() * a.Psi_c;
        Ps.resize(Index(w.rows.size()), samples);
        Ps << a.Psi_c, b.Psi_c;
      }
    }
    const Index limit = samples - options.oversampling();
    const double row_tol = row_tol_unit * std::sqrt(double(cn.rows()) / double(H.rows()));
    RowID<T> rid = row_interpolative(Yloc, row_tol, options.max_rank(), limit, samples < H.cols());
    node.U = std::move(rid.U);
    w.rank_estimate_rows = rid.rank_estimate;
    w.saturated = rid.saturated;
    for (Index k : rid.skeleton) w.skel_rows.push_back(w.rows[static_cast<size_t>(k)]);
    w.Yskel.resize(Index(rid.skeleton.size()), samples);
    for (size_t k = 0; k < rid.skeleton.size(); ++k)
      w.Yskel.row(Index(k)) = Yloc.row(rid.skeleton[k]);
    if (symmetric) {
      node.V = node.U;
      w.skel_cols = w.skel_rows;
      w.Zskel = w.Yskel;
      w.rank_estimate_cols = w.rank_estimate_rows;
      w.Omega_c = node.V.transpose() * Om;
      w.Psi_c = w.Omega_c;
      return;
    }
    const double col_tol = col_tol_unit * std::sqrt(double(cn.cols()) / double(H.cols()));
    RowID<T> cid = row_interpolative(Zloc, col_tol, options.max_rank(), limit, samples < H.rows());
    node.V = std::move(cid.U);
    w.rank_estimate_cols = cid.rank_estimate;
    w.saturated = w.saturated || cid.saturated;
    for (Index k : cid.skeleton) w.skel_cols.push_back(w.cols[static_cast<size_t>(k)]);
    w.Zskel.resize(Index(cid.skeleton.size()), samples);
    for (size_t k = 0; k < cid.skeleton.size(); ++k)
      w.Zskel.row(Index(k)) = Zloc.row(cid.skeleton[k]);
    w.Omega_c = node.V.transpose() * Om;
    w.Psi_c = node.U.transpose() * Ps;
  }

  void couple_children(Index i) {
    Node& node = nodes[static_cast<size_t>(i)];
    const Work& a = work[static_cast<size_t>(ClusterTree::left(i))];
    const Work& b = work[static_cast<size_t>(ClusterTree::right(i))];
    node.B12 = A.gather(a.skel_rows, b.skel_cols);
    node.B21 = A.gather(b.skel_rows, a.skel_cols);
  }

  void run() {
    const ClusterTree& tree = H.tree_;
    work.assign(static_cast<size_t>(tree.size()), Work{});
    for (int l = tree.levels(); l >= 1; --l) {
      const Index begin = ClusterTree::level_begin(l), end = ClusterTree::level_end(l);
      // Each node runs a pivoted QR of its samples (samples x candidates, at
      // most 2 samples' worth of candidate rows above the leaves).
      const double nodes = double(end - begin);
      const double candidates = std::min(2.0 * double(samples), double(H.rows()) / nodes);
      parallel_for(
          begin, end, [&](Index i) { compress_node(i); },
          worth_threading(nodes * double(samples) * double(samples) * candidates));
      for (Index i = begin; i < end; ++i)
        any_saturated = any_saturated || work[size_t(i)].saturated;
    }
    couple_children(0);
  }

  /// Entries the representation would store if every saturated node had the
  /// rank its spectrum extrapolates to.
  double predicted_entries() const {
    const ClusterTree& tree = H.tree_;
    auto r = [&](Index i) { return double(work[size_t(i)].rank_estimate_rows); };
    auto c = [&](Index i) { return double(work[size_t(i)].rank_estimate_cols); };
    double total = 0.0;
    for (Index i = 0; i < tree.size(); ++i) {
      const ClusterNode& cn = tree.node(i);
      if (tree.is_leaf(i)) {
        total += double(cn.rows()) * double(cn.cols()) + double(cn.rows()) * r(i) +
                 double(cn.cols()) * c(i);
        continue;
      }
      const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
      total += r(a) * c(b) + r(b) * c(a);
      if (i > 0) total += (r(a) + r(b)) * r(i) + (c(a) + c(b)) * c(i);
    }
    return total;
  }

  Index max_rank_estimate() const {
    Index best = 0;
    for (const Work& w : work) best = std::max({best, w.rank_estimate_rows, w.rank_estimate_cols});
    return best;
  }
};

template <class T>
void HSSMatrix<T>::set_dense(const MatrixSource<T>& A) {
  tree_ = ClusterTree::with_levels(A.rows(), A.cols(), 0);
  std::vector<Node> nodes(1);
  nodes[0].D = A.block(0, 0, A.rows(), A.cols());
  pack(std::move(nodes));
  error_estimate_ = 0.0;
  dense_fallback_ = true;
}

namespace {

// Relative Frobenius error of H on held-out probes: ||A G - H G|| / ||A G||.
template <class T>
double probe_error(const HSSMatrix<T>& H, const Matrix<T>& G, const Matrix<T>& AG) {
  Matrix<T> HG(H.rows(), G.cols());
  DenseView<const T> x{G.data(), G.rows(), G.cols(), 1, G.rows()};
  DenseView<T> y{HG.data(), HG.rows(), HG.cols(), 1, HG.rows()};
  H.apply(x, y, false);
  const double denom = static_cast<double>(AG.norm());
  const double num = static_cast<double>((AG - HG).norm());
  return denom > 0 ? num / denom : num;
}

}  // namespace

// Least-squares couplings for fixed bases: B_ab = argmin ||A(I_a, J_b) -
// Uf_a B Vf_b^T||_F = Uf_a^+ A(I_a, J_b) (Vf_b^+)^T, where Uf, Vf are the
// expanded (nested) bases, Uf_tau = diag(Uf_a, Uf_b) U_tau. Used under a rank
// cap: interpolative bases truncated far below the numerical rank make the
// skeleton entries A(skel_a, skel_b) a poor coupling (on a 384 x 384
// attention weight, cap 32 gave a relative error of 1.16, worse than the
// zero matrix); the projection bounds every block's error by the block's
// own norm and is the best coupling the bases allow. The couplings keep
// their shapes, so they are overwritten in the packed storage. Cost
// O(|I| |J| r) per block; the blocks of all levels cover the matrix once, so
// O(m n r) in all.
template <class T>
void HSSMatrix<T>::project_couplings(const MatrixSource<T>& A) {
  const ClusterTree& tree = tree_;
  std::vector<Matrix<T>> Uf(static_cast<size_t>(tree.size()));
  std::vector<Matrix<T>> Vf(symmetric_ ? 0 : static_cast<size_t>(tree.size()));
  auto expand = [&](std::vector<Matrix<T>>& F, Index i, const ConstMap& basis) {
    if (tree.is_leaf(i)) {
      F[size_t(i)] = basis;
      return;
    }
    const Matrix<T>& Fa = F[size_t(ClusterTree::left(i))];
    const Matrix<T>& Fb = F[size_t(ClusterTree::right(i))];
    Matrix<T>& out = F[size_t(i)];
    out.resize(Fa.rows() + Fb.rows(), basis.cols());
    out.topRows(Fa.rows()).noalias() = Fa * basis.topRows(Fa.cols());
    out.bottomRows(Fb.rows()).noalias() = Fb * basis.bottomRows(Fb.cols());
  };
  for (int l = tree.levels(); l >= 1; --l)
    parallel_for(ClusterTree::level_begin(l), ClusterTree::level_end(l), [&](Index i) {
      expand(Uf, i, U(i));
      if (!symmetric_) expand(Vf, i, V(i));
    });
  const std::vector<Matrix<T>>& col_bases = symmetric_ ? Uf : Vf;  // V = U for symmetric input
  auto project = [&](Index i, Factor f, Index a, Index b) {
    const Slot& s = slots_[size_t(i) * 5 + size_t(f)];
    const Matrix<T>& Ua = Uf[size_t(a)];
    const Matrix<T>& Vb = col_bases[size_t(b)];
    if (s.rows == 0 || s.cols == 0) return;
    // Normal equations: interpolative bases hold an identity block, so
    // U^T U >= I and V^T V >= I are well conditioned; two products with the
    // block are the whole cost.
    const ClusterNode& ca = tree.node(a);
    const ClusterNode& cb = tree.node(b);
    const Matrix<T> MV = A.block_times(ca.row_begin, cb.col_begin, ca.rows(), cb.cols(), Vb);
    const Matrix<T> B = (Ua.transpose() * Ua).ldlt().solve(Ua.transpose() * MV);
    Eigen::Map<Matrix<T>>(arena_.data() + s.offset, s.rows, s.cols) =
        (Vb.transpose() * Vb).ldlt().solve(B.transpose()).transpose();
  };
  parallel_for(0, tree.leaf_begin(), [&](Index i) {
    const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
    project(i, kB12, a, b);
    project(i, kB21, b, a);
  });
}

template <class T>
void HSSMatrix<T>::scale_values(int e) {
  // D and the couplings hold values of A; the bases are interpolation
  // coefficients (or their least-squares couplings' partners) and do not scale.
  for (Index i = 0; i < tree_.size(); ++i)
    for (Factor f : {kD, kB12, kB21}) {
      const Slot& s = slots_[size_t(i) * 5 + size_t(f)];
      scale_by_power_of_two(
          Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(arena_.data() + s.offset, s.rows * s.cols),
          e);
    }
}

template <class T>
HSSMatrix<T> HSSMatrix<T>::compress(const ConstRowMap<T>& A, const HSSOptions& options) {
  HSSLIN_CHECK(A.rows() >= 1 && A.cols() >= 1, "matrix must be non-empty, got ", A.rows(), "x",
               A.cols());
  if (const int e = scale_exponent(A); e != 0) {
    // Tiny or huge magnitudes: compress A * 2^-e, whose norms stay in range
    // (relative errors and ranks are those of A), then scale back exactly.
    // (Entry sources, such as kernels from points, are not scaled: their
    // entries are never all seen at once.)
    const RowMatrix<T> As = scaled_copy(A, e);
    HSSMatrix H = compress(DenseSource<T>(ConstRowMap<T>(As.data(), As.rows(), As.cols(),
                                                         Eigen::OuterStride<>(As.cols()))),
                           options);
    H.scale_values(e);
    return H;
  }
  return compress(DenseSource<T>(A), options);
}

template <class T>
HSSMatrix<T> HSSMatrix<T>::compress(const MatrixSource<T>& A, const HSSOptions& options) {
  HSSLIN_CHECK(A.rows() >= 1 && A.cols() >= 1, "matrix must be non-empty, got ", A.rows(), "x",
               A.cols());
  HSSMatrix H;
  H.options_ = options;
  H.tree_ = ClusterTree(A.rows(), A.cols(), options.leaf_size());
  if (H.tree_.levels() == 0) {
    H.set_dense(A);
    H.dense_fallback_ = false;  // a single leaf is the exact HSS form here
    return H;
  }
  const Index m = A.rows(), n = A.cols();
  H.symmetric_ = A.symmetric();
  const Index max_samples = std::max(m, n);
  const Index p = options.oversampling();
  Index d = std::min(max_samples, std::max(options.initial_samples(),
                                           options.max_rank() > 0 ? options.max_rank() + p : 0));

  // Construction samples (grown on demand) and held-out probes.
  const GaussianStream omega_stream(options.seed()),
      psi_stream(options.seed() ^ 0x5851f42d4c957f2dULL);
  Matrix<T> Omega(n, d), Psi, Y, Z;
  omega_stream.fill(Omega);
  Matrix<T> G(n, kHoldout), AG;
  GaussianStream(options.seed() ^ 0x2545f4914f6cdd1dULL).fill(G);
  {
    Matrix<T> both(n, d + kHoldout);
    both << Omega, G;
    Matrix<T> sampled;
    A.multiply(both, sampled);
    Y = sampled.leftCols(d);
    AG = sampled.rightCols(kHoldout);
  }
  if (!H.symmetric_) {
    Psi.resize(m, d);
    psi_stream.fill(Psi);
    A.multiply_transpose(Psi, Z);
  }

  const double levels = H.tree_.levels();
  double safety = 0.5;
  int tightenings = 0;
  while (true) {
    const Matrix<T>& Zs = H.symmetric_ ? Y : Z;
    const Matrix<T>& Ps = H.symmetric_ ? Omega : Psi;
    std::vector<Node> nodes(static_cast<size_t>(H.tree_.size()));
    const double unit = options.tol() * safety / std::sqrt(2.0 * levels);
    Build build{A,
                Omega,
                Ps,
                Y,
                Zs,
                d,
                H.symmetric_,
                unit * static_cast<double>(Y.norm()),
                unit * static_cast<double>(Zs.norm()),
                options,
                H,
                nodes,
                {},
                false};
    build.run();

    // With a rank cap, d >= max_rank + p samples from the start (see above): saturation
    // then only says the true ranks exceed the cap, which is what a cap is for.
    const bool capped = options.max_rank() > 0;
    if (build.any_saturated && d < max_samples && !capped) {
      if (build.predicted_entries() >= kDenseFraction * double(m) * double(n)) {
        H.set_dense(A);
        H.samples_ = d;
        return H;
      }
      const Index wanted = std::max(2 * d, build.max_rank_estimate() + p);
      const Index grown = std::min(max_samples, wanted);
      // Columns d..grown of a random block (the stream continues where it
      // stopped, so the samples are those a larger first draw would give) and
      // of its product with A or A^T.
      const auto grow = [&](const GaussianStream& stream, Matrix<T>& R, Matrix<T>& S,
                            bool transpose) {
        Matrix<T> extra(R.rows(), grown - d), product;
        stream.fill(extra, d);
        if (transpose) {
          A.multiply_transpose(extra, product);
        } else {
          A.multiply(extra, product);
        }
        R.conservativeResize(Eigen::NoChange, grown);
        R.rightCols(grown - d) = extra;
        S.conservativeResize(product.rows(), grown);
        S.rightCols(grown - d) = product;
      };
      grow(omega_stream, Omega, Y, false);
      if (!H.symmetric_) grow(psi_stream, Psi, Z, true);
      d = grown;
      continue;
    }
    H.pack(std::move(nodes));
    H.samples_ = d;
    if (H.nbytes() >= Index(sizeof(T)) * m * n) {
      H.set_dense(A);
      H.samples_ = d;
      return H;
    }
    if (capped) H.project_couplings(A);
    H.error_estimate_ = probe_error(H, G, AG);
    if (H.error_estimate_ <= options.tol() || capped || tightenings >= kMaxTightenings) return H;
    safety *= std::max(0.1, 0.5 * options.tol() / H.error_estimate_);
    ++tightenings;
  }
}

template class HSSMatrix<float>;
template class HSSMatrix<double>;

}  // namespace hsslin
