// HSS and HODLR forms of a kernel matrix from its entries (see
// hss_from_entries.hpp). Why not the randomized compressor of
// hss_compress.cpp with kernel products: its samples K * Omega cost N^2
// kernel evaluations (1e10 at N = 1e5, minutes on two cores) before any
// compression starts; here each node samples O(r) columns per candidate row.
#include "hsslin/hss_from_entries.hpp"

#include <algorithm>
#include <cmath>

#include "hsslin/parallel.hpp"
#include "hsslin/random.hpp"

namespace hsslin {
namespace {

constexpr Index kProbeRows = 512;   // rows evaluated exactly for the error estimate
constexpr Index kHoldout = 8;       // probe vectors
constexpr int kMaxTightenings = 3;  // re-builds with a tighter node tolerance
// Factors above this share of the dense matrix's entries: store it dense
// (as HSSMatrix::compress does for incompressible input).
constexpr double kDenseFraction = 0.9;
// ... but never a dense matrix above this many bytes (the 4 GiB the issue
// allows a 100 000-point build): a kernel that does not compress at that
// size is an error, not an 80 GB allocation. The construction stops as soon
// as its factors pass it.
constexpr double kMaxDenseBytes = 4.0 * (1 << 30);
// Far-field samples per node: twice the candidate rows plus this many. The
// far field of a smooth kernel has a low rank; twice the rows leaves room
// for every rank the ID can pick, and the floor covers leaves whose
// candidates are few.
constexpr Index kFarExtra = 32;

std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// `count` uniform random indices of [0, n) outside the sorted, disjoint
// ranges `excluded` (drawn with replacement); `outside` gets how many
// indices lie outside.
std::vector<Index> sample_outside(const std::vector<std::pair<Index, Index>>& excluded, Index n,
                                  Index count, std::uint64_t key, Index& outside) {
  std::vector<std::pair<Index, Index>> gaps;  // (begin, end) of the allowed stretches
  Index pos = 0;
  for (const auto& [b, e] : excluded) {
    if (b > pos) gaps.push_back({pos, b});
    pos = std::max(pos, e);
  }
  if (pos < n) gaps.push_back({pos, n});
  std::vector<Index> prefix(gaps.size() + 1, 0);
  for (size_t g = 0; g < gaps.size(); ++g)
    prefix[g + 1] = prefix[g] + gaps[g].second - gaps[g].first;
  outside = prefix.back();
  std::vector<Index> out;
  if (outside == 0) return out;
  out.reserve(size_t(count));
  for (Index s = 0; s < count; ++s) {
    const Index u = Index(mix(key + std::uint64_t(s)) % std::uint64_t(outside));
    const size_t g = size_t(std::upper_bound(prefix.begin(), prefix.end(), u) - prefix.begin()) - 1;
    out.push_back(gaps[g].first + (u - prefix[g]));
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Exact products K G on a random subset of rows: the held-out probes.
template <class T>
struct Probe {
  std::vector<Index> rows;
  Matrix<T> G, KG;     // N x kHoldout Gaussian; |rows| x kHoldout exact
  double norm2 = 0.0;  // estimate of ||K||_F^2 from the sampled rows

  Probe(const KernelMatrix<T>& K, std::uint64_t seed) {
    const Index n = K.size();
    if (n <= kProbeRows) {
      for (Index i = 0; i < n; ++i) rows.push_back(i);
    } else {
      for (Index s = 0; s < kProbeRows; ++s)
        rows.push_back(Index(mix(seed ^ (0x7f4a7c15ULL + std::uint64_t(s))) % std::uint64_t(n)));
      std::sort(rows.begin(), rows.end());
      rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    }
    G.resize(n, kHoldout);
    GaussianStream(seed ^ 0x2545f4914f6cdd1dULL).fill(G);
    const Index m = Index(rows.size());
    KG.setZero(m, kHoldout);
    constexpr Index kRows = 16, kCols = 2048;
    const Index chunks = (m + kRows - 1) / kRows;
    std::vector<double> sums(size_t(chunks), 0.0);
    parallel_for(0, chunks, [&](Index c) {
      const Index r0 = c * kRows, nr = std::min(kRows, m - r0);
      std::vector<Index> cols;
      for (Index c0 = 0; c0 < n; c0 += kCols) {
        const Index w = std::min(kCols, n - c0);
        cols.resize(size_t(w));
        for (Index j = 0; j < w; ++j) cols[size_t(j)] = c0 + j;
        Matrix<T> E(nr, w);
        K.entries(rows.data() + r0, nr, cols.data(), w, E.data(), nr);
        KG.middleRows(r0, nr).noalias() += E * G.middleRows(c0, w);
        sums[size_t(c)] += double(E.squaredNorm());
      }
    });
    for (double s : sums) norm2 += s;
    norm2 *= double(n) / double(m);
  }

  double error(const HSSMatrix<T>& H) const {
    Matrix<T> HG(H.rows(), kHoldout);
    H.apply(DenseView<const T>{G.data(), G.rows(), G.cols(), 1, G.rows()},
            DenseView<T>{HG.data(), HG.rows(), HG.cols(), 1, HG.rows()}, false);
    double num = 0, den = 0;
    for (size_t s = 0; s < rows.size(); ++s) {
      num += double((HG.row(rows[s]) - KG.row(Index(s))).squaredNorm());
      den += double(KG.row(Index(s)).squaredNorm());
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  }
};

/// One bottom-up pass at a given node tolerance.
template <class T>
struct KernelBuild {
  using Node = typename HSSMatrix<T>::Node;
  const KernelMatrix<T>& K;
  const GeometricTree& geo;
  const HSSOptions& options;
  double unit;  // a node of n rows gets the absolute ID tolerance unit * sqrt(n / N)
  std::uint64_t key;
  std::vector<Node> nodes;
  std::vector<std::vector<Index>> skel;
  std::vector<Matrix<T>> R;  // R factor of each node's expanded basis (Uf = Q R)

  /// False when the factors grew past kDenseFraction of the dense matrix
  /// (incompressible at this tolerance: the caller stores it dense).
  bool run() {
    const ClusterTree& tree = geo.tree();
    nodes.assign(size_t(tree.size()), Node{});
    skel.assign(size_t(tree.size()), {});
    R.assign(size_t(tree.size()), Matrix<T>());
    const double dense = double(K.size()) * double(K.size());
    double stored = 0;
    for (int l = tree.levels(); l >= 1; --l) {
      parallel_for(ClusterTree::level_begin(l), ClusterTree::level_end(l),
                   [&](Index i) { compress_node(i); });
      for (Index i = ClusterTree::level_begin(l); i < ClusterTree::level_end(l); ++i) {
        const Node& nd = nodes[size_t(i)];
        stored += double(nd.D.size() + nd.U.size() + nd.V.size());
      }
      if (stored >= kDenseFraction * dense || stored * sizeof(T) > kMaxDenseBytes) return false;
    }
    parallel_for(0, tree.leaf_begin(), [&](Index p) {
      Node& nd = nodes[size_t(p)];
      nd.B12 = K.entries(skel[size_t(ClusterTree::left(p))], skel[size_t(ClusterTree::right(p))]);
      nd.B21 = nd.B12.transpose();
    });
    return true;
  }

  void compress_node(Index i) {
    const ClusterTree& tree = geo.tree();
    const ClusterNode& c = tree.node(i);
    Node& nd = nodes[size_t(i)];
    const bool leaf = tree.is_leaf(i);
    std::vector<Index> cand;
    if (leaf) {
      for (Index t = c.row_begin; t < c.row_end; ++t) cand.push_back(t);
      nd.D = K.block(c.row_begin, c.row_begin, c.rows(), c.rows());
    } else {
      cand = skel[size_t(ClusterTree::left(i))];
      const auto& sb = skel[size_t(ClusterTree::right(i))];
      cand.insert(cand.end(), sb.begin(), sb.end());
    }
    const Matrix<T> Y = sample(i, cand);
    const double tol = unit * std::sqrt(double(c.rows()) / double(K.size()));
    RowID<T> rid = row_interpolative(Y, tol, options.max_rank(), Y.cols(), false);
    nd.U = std::move(rid.U);
    nd.V = nd.U;
    for (Index k : rid.skeleton) skel[size_t(i)].push_back(cand[size_t(k)]);
    // R of the expanded basis: Uf_i = diag(Q_a, Q_b) diag(R_a, R_b) U_i.
    Matrix<T> M;
    if (leaf) {
      M = nd.U;
    } else {
      const Matrix<T>& Ra = R[size_t(ClusterTree::left(i))];
      const Matrix<T>& Rb = R[size_t(ClusterTree::right(i))];
      M.resize(Ra.rows() + Rb.rows(), nd.U.cols());
      M.topRows(Ra.rows()).noalias() = Ra * nd.U.topRows(Ra.cols());
      M.bottomRows(Rb.rows()).noalias() = Rb * nd.U.bottomRows(Rb.cols());
    }
    const Index r = nd.U.cols();
    Eigen::HouseholderQR<Matrix<T>> qr(M);
    R[size_t(i)] =
        qr.matrixQR().topRows(std::min(r, M.rows())).template triangularView<Eigen::Upper>();
  }

  // Columns standing for all of K(cand, outside of node i); see the header.
  Matrix<T> sample(Index i, const std::vector<Index>& cand) const {
    const ClusterTree& tree = geo.tree();
    const Index rows = Index(cand.size());
    std::vector<Matrix<T>> parts;
    std::vector<std::pair<Index, Index>> excluded{{tree.node(i).row_begin, tree.node(i).row_end}};
    for (Index v : geo.near(i)) {
      excluded.push_back({tree.node(v).row_begin, tree.node(v).row_end});
      if (tree.is_leaf(v)) {
        std::vector<Index> cols;
        for (Index t = tree.node(v).row_begin; t < tree.node(v).row_end; ++t) cols.push_back(t);
        parts.push_back(K.entries(cand, cols));
        continue;
      }
      for (Index ch : {ClusterTree::left(v), ClusterTree::right(v)}) {
        if (skel[size_t(ch)].empty()) continue;
        parts.push_back(K.entries(cand, skel[size_t(ch)]) * R[size_t(ch)].transpose());
      }
    }
    std::sort(excluded.begin(), excluded.end());
    Index far = 0;
    const Index want = 2 * rows + kFarExtra;
    const std::vector<Index> cols =
        sample_outside(excluded, K.size(), want, mix(key ^ std::uint64_t(i)), far);
    if (!cols.empty())
      parts.push_back(K.entries(cand, cols) * T(std::sqrt(double(far) / double(cols.size()))));
    Index width = 0;
    for (const Matrix<T>& p : parts) width += p.cols();
    Matrix<T> Y(rows, width);
    Index at = 0;
    for (const Matrix<T>& p : parts) {
      Y.middleCols(at, p.cols()) = p;
      at += p.cols();
    }
    // A wide sample is sketched down: the ID depends on the row space's
    // geometry, which a Gaussian sketch of the columns keeps (the randomized
    // compressor's argument), and the pivoted QR then costs rows^2 (rows + p).
    const Index sketch = rows + options.oversampling();
    if (width <= 2 * sketch) return Y;
    Matrix<T> Omega(width, sketch);
    GaussianStream(mix(key ^ (std::uint64_t(i) << 20) ^ 0x51ULL)).fill(Omega);
    Omega *= T(1.0 / std::sqrt(double(sketch)));
    return Y * Omega;
  }
};

}  // namespace

template <class T>
HSSMatrix<T> HSSMatrix<T>::from_kernel(const KernelMatrix<T>& K, const GeometricTree& geo,
                                       const HSSOptions& options) {
  HSSLIN_CHECK(geo.tree().rows() == K.size(), "kernel compression: the tree has ",
               geo.tree().rows(), " points, the kernel matrix ", K.size());
  HSSMatrix H;
  H.tree_ = geo.tree();
  H.options_ = options;
  H.symmetric_ = true;
  if (H.tree_.levels() == 0) {
    H.set_dense(K);
    H.dense_fallback_ = false;  // a single leaf is the exact HSS form here
    return H;
  }
  const Probe<T> probe(K, options.seed());
  const double levels = H.tree_.levels();
  double safety = 0.5;
  for (int attempt = 0;; ++attempt) {
    const double unit = options.tol() * safety * std::sqrt(probe.norm2 / (2.0 * levels));
    KernelBuild<T> build{K,  geo, options, unit, mix(options.seed() + std::uint64_t(attempt)),
                         {}, {},  {}};
    const bool compressed = build.run();
    if (compressed) H.pack(std::move(build.nodes));
    if (!compressed || H.nbytes() >= Index(sizeof(T)) * K.size() * K.size()) {
      const double bytes = double(sizeof(T)) * double(K.size()) * double(K.size());
      HSSLIN_CHECK(bytes <= kMaxDenseBytes, "the ", K.size(), "x", K.size(),
                   " kernel matrix does not compress at tol=", options.tol(),
                   " (its factors would take most of the dense matrix), and storing it dense "
                   "would take ",
                   bytes / double(1 << 30),
                   " GiB: use a larger tol or lengthscale, or fewer points");
      H.set_dense(K);
      return H;
    }
    H.error_estimate_ = probe.error(H);
    if (H.error_estimate_ <= options.tol() || attempt >= kMaxTightenings) return H;
    safety *= std::max(0.1, 0.5 * options.tol() / H.error_estimate_);
  }
}

template <class T>
HODLRMatrix<T> hodlr_from_hss(const HSSMatrix<T>& H, double tol) {
  HSSLIN_CHECK(H.symmetric(), "hodlr_from_hss: the HSS matrix must be symmetric");
  const ClusterTree& tree = H.tree();
  using Node = typename HODLRMatrix<T>::Node;
  std::vector<Node> nodes(size_t(tree.size()));
  HODLROptions options;
  options.set_tol(tol).set_leaf_size(H.options().leaf_size());
  if (tree.levels() == 0) {
    nodes[0].D = H.D(0);
    return HODLRMatrix<T>::from_parts(tree, std::move(nodes), options, H.error_estimate());
  }
  // Orthonormal expanded bases, Uf_i = Q_i R_i, bottom-up from
  // Uf_i = diag(Uf_a, Uf_b) U_i: then block (a, b) = Q_a (R_a B12 R_b^T) Q_b^T.
  std::vector<Matrix<T>> Q(size_t(tree.size())), R(size_t(tree.size()));
  for (int l = tree.levels(); l >= 1; --l)
    parallel_for(ClusterTree::level_begin(l), ClusterTree::level_end(l), [&](Index i) {
      Matrix<T> Uf;
      if (tree.is_leaf(i)) {
        Uf = H.U(i);
        nodes[size_t(i)].D = H.D(i);
      } else {
        const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
        const auto W = H.U(i);
        const Matrix<T> Wa = R[size_t(a)] * W.topRows(R[size_t(a)].cols());
        const Matrix<T> Wb = R[size_t(b)] * W.bottomRows(R[size_t(b)].cols());
        Uf.resize(Q[size_t(a)].rows() + Q[size_t(b)].rows(), W.cols());
        Uf.topRows(Q[size_t(a)].rows()).noalias() = Q[size_t(a)] * Wa;
        Uf.bottomRows(Q[size_t(b)].rows()).noalias() = Q[size_t(b)] * Wb;
      }
      const Index r = std::min(Uf.cols(), Uf.rows());
      Eigen::HouseholderQR<Matrix<T>> qr(Uf);
      Q[size_t(i)] = qr.householderQ() * Matrix<T>::Identity(Uf.rows(), r);
      R[size_t(i)] = qr.matrixQR().topRows(r).template triangularView<Eigen::Upper>();
    });
  // The cores R_a B12 R_b^T, their SVDs, and ||H||_F^2 from them.
  const Index inner = tree.leaf_begin();
  std::vector<Eigen::BDCSVD<Matrix<T>>> svd(static_cast<size_t>(inner));
  double norm2 = 0, offdiag = 0;
  for (Index i = inner; i < tree.leaf_end(); ++i) norm2 += double(H.D(i).squaredNorm());
  parallel_for(0, inner, [&](Index p) {
    const Index a = ClusterTree::left(p), b = ClusterTree::right(p);
    const Matrix<T> core = R[size_t(a)] * H.B12(p) * R[size_t(b)].transpose();
    svd[size_t(p)].compute(core, Eigen::ComputeThinU | Eigen::ComputeThinV);
  });
  for (Index p = 0; p < inner; ++p) {
    norm2 += 2.0 * double(svd[size_t(p)].singularValues().squaredNorm());
    const double na = double(tree.node(ClusterTree::left(p)).rows());
    offdiag += 2.0 * na * double(tree.node(ClusterTree::right(p)).rows());
  }
  // Each block's share of tol^2 ||H||^2 goes by its share of the off-diagonal entries.
  std::vector<double> dropped(size_t(inner), 0.0);
  parallel_for(0, inner, [&](Index p) {
    const Index a = ClusterTree::left(p), b = ClusterTree::right(p);
    const Index na = tree.node(a).rows(), nb = tree.node(b).rows();
    const auto& s = svd[size_t(p)].singularValues();
    const double budget = tol * tol * norm2 * double(na) * double(nb) / std::max(offdiag / 2, 1.0);
    Index rank = s.size();
    double cut = 0;
    while (rank > 0 && cut + double(s(rank - 1)) * double(s(rank - 1)) <= budget) {
      cut += double(s(rank - 1)) * double(s(rank - 1));
      --rank;
    }
    dropped[size_t(p)] = 2.0 * cut;
    const auto root = s.head(rank).cwiseSqrt().asDiagonal();
    LowRankBlock<T> blk;
    blk.U = Q[size_t(a)] * (svd[size_t(p)].matrixU().leftCols(rank) * root);
    blk.V = Q[size_t(b)] * (svd[size_t(p)].matrixV().leftCols(rank) * root);
    blk.error = std::sqrt(cut);
    if (rank * (na + nb) >= na * nb) {
      blk.dense = blk.U * blk.V.transpose();
      blk.U.resize(0, 0);
      blk.V.resize(0, 0);
      blk.is_dense = true;
    }
    LowRankBlock<T> lower;
    lower.error = blk.error;
    lower.is_dense = blk.is_dense;
    if (blk.is_dense) {
      lower.dense = blk.dense.transpose();
    } else {
      lower.U = blk.V;
      lower.V = blk.U;
    }
    nodes[size_t(p)].B12 = std::move(blk);
    nodes[size_t(p)].B21 = std::move(lower);
  });
  double cut = 0;
  for (double d : dropped) cut += d;
  const double added = norm2 > 0 ? std::sqrt(cut / norm2) : 0.0;
  const double error = std::sqrt(H.error_estimate() * H.error_estimate() + added * added);
  return HODLRMatrix<T>::from_parts(tree, std::move(nodes), options, error);
}

#define HSSLIN_INSTANTIATE(T)                                                                   \
  template HODLRMatrix<T> hodlr_from_hss(const HSSMatrix<T>&, double);                          \
  template HSSMatrix<T> HSSMatrix<T>::from_kernel(const KernelMatrix<T>&, const GeometricTree&, \
                                                  const HSSOptions&);
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
