// ULV factorization of an HSS matrix and its solves (see hss_ulv.hpp for
// the algorithm). The factorization walks the tree bottom-up one level at a
// time, the nodes of a level in parallel; each node turns its local system
// (a leaf's rows, or the unknowns its children kept, coupled through their
// reduced bases) into a forward transform F, a column transform P and a
// smaller system for its parent. The root's system is factored densely.
#include "hsslin/hss_ulv.hpp"

#include <algorithm>

#include "hsslin/factor_io.hpp"
#include "hsslin/io.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

// Below this many stored entries times right-hand sides a solve runs on one
// thread: a solve of a 4096 x 4096 Gaussian kernel (rank ~20) reads ~1 MB of
// factors per right-hand side, done in ~0.1 ms, where waking a thread and
// handing out a level's nodes costs about as much.
constexpr double kParallelEntries = 1 << 18;

// Determinant of the orthogonal factor of a Householder QR: each reflector
// with a nonzero coefficient is a reflection (det -1), a zero one is I.
template <class QR>
bool reflections_odd(const QR& qr) {
  Index count = 0;
  for (Index j = 0; j < qr.hCoeffs().size(); ++j) count += qr.hCoeffs()(j) != 0;
  return count % 2 == 1;
}

template <class T>
Matrix<T> orthogonal_factor(const Eigen::HouseholderQR<Matrix<T>>& qr, Index m) {
  if (qr.hCoeffs().size() == 0) return Matrix<T>::Identity(m, m);
  return qr.householderQ() * Matrix<T>::Identity(m, m);
}

}  // namespace

/// What a node hands its parent: its reduced block and bases (rows = kept unknowns).
template <class T>
struct HSSULV<T>::Reduced {
  Matrix<T> D, U, V;  // kept x kept; kept x (row rank); kept x (column rank), general only
};

/// Per-solve buffers, one stretch of rows per node, all nodes stacked.
template <class T>
struct HSSULV<T>::Workspace {
  std::vector<Index> moff, hoff;  // row offsets: m-sized blocks, c-sized blocks
  Matrix<T> t;                    // forward results [z1; kept] per node
  Matrix<T> r;                    // assembled right-hand side (transposed: its adjoint) per node
  Matrix<T> x;                    // unknowns of inner nodes, handed to the children
  Matrix<T> h;                    // known parts V^T x of the eliminated unknowns (general)

  Workspace(const std::vector<NodeFactor>& nodes, Index k) {
    moff.assign(nodes.size() + 1, 0);
    hoff.assign(nodes.size() + 1, 0);
    for (size_t i = 0; i < nodes.size(); ++i) {
      moff[i + 1] = moff[i] + nodes[i].m;
      hoff[i + 1] = hoff[i] + nodes[i].c;
    }
    t.resize(moff.back(), k);
    r.resize(moff.back(), k);
    x.resize(moff.back(), k);
    h.setZero(hoff.back(), k);
  }
  auto block(Matrix<T>& M, Index i) {
    return M.middleRows(moff[size_t(i)], moff[size_t(i) + 1] - moff[size_t(i)]);
  }
  auto known(Index i) {
    return h.middleRows(hoff[size_t(i)], hoff[size_t(i) + 1] - hoff[size_t(i)]);
  }
};

template <class T>
void HSSULV<T>::eliminate(Index i, Matrix<T>& D, const Matrix<T>& U, const Matrix<T>& V,
                          Reduced& out, LogDet& det) {
  NodeFactor& nf = nodes_[size_t(i)];
  const Index m = D.rows(), r = U.cols();
  nf.m = m;
  nf.c = spd_ ? 0 : V.cols();
  if (r >= m) {  // the basis spans every row: nothing to eliminate here
    nf.k = 0;
    out.D = std::move(D);
    out.U = U;
    if (!spd_) out.V = V;
    return;
  }
  const Index k = m - r;
  nf.k = k;
  const double floor = detail::pivot_floor<T>(m, double(D.norm()));
  Eigen::HouseholderQR<Matrix<T>> qr(U);
  const Matrix<T> Q = orthogonal_factor(qr, m);
  out.U = qr.matrixQR().topRows(r).template triangularView<Eigen::Upper>();
  const auto Qe_t = Q.rightCols(k).transpose();
  const auto Qk_t = Q.leftCols(r).transpose();
  nf.F.resize(m, m);
  // Q^T D by its r reflectors, not the explicit Q: O(m^2 r) instead of O(m^3)
  // (at the leaves of a 1-D kernel matrix r is a tenth of m).
  Matrix<T> Dh = D;
  if (qr.hCoeffs().size() > 0) Dh.applyOnTheLeft(qr.householderQ().transpose());
  if (spd_) {
    if (qr.hCoeffs().size() > 0) Dh.applyOnTheRight(qr.householderQ());
    const Matrix<T> Dee = Dh.bottomRightCorner(k, k);
    Eigen::LLT<Matrix<T>> llt(Dee);
    if (llt.info() != Eigen::Success) fail_not_spd();
    const auto L = llt.matrixL();  // a view into llt
    for (Index j = 0; j < k; ++j) {
      const double p = double(llt.matrixLLT()(j, j));
      if (!(p * p > floor)) fail_not_spd();
      det.add_pivot(p * p);
    }
    const Matrix<T> W = L.solve(Dh.bottomLeftCorner(k, r));
    out.D = Dh.topLeftCorner(r, r);
    out.D.noalias() -= W.transpose() * W;
    nf.F.topRows(k) = L.solve(Matrix<T>(Qe_t));
    nf.F.bottomRows(r) = Qk_t;
    nf.F.bottomRows(r).noalias() -= W.transpose() * nf.F.topRows(k);
    return;
  }
  Eigen::HouseholderQR<Matrix<T>> lq(Dh.bottomRows(k).transpose());
  nf.P = orthogonal_factor(lq, m);
  // det(Q^T D P) = det(D) det(Q) det(P); the congruence of the SPD branch has det(Q)^2 = 1.
  if (reflections_odd(qr) != reflections_odd(lq)) det.flip();
  if ((k * r) % 2 == 1) det.flip();  // the k eliminated rows move above the r kept ones
  const Matrix<T> L = lq.matrixQR().topRows(k).template triangularView<Eigen::Upper>().transpose();
  for (Index j = 0; j < k; ++j) {
    const double p = double(L(j, j));
    if (!(std::abs(p) > floor)) fail_singular(std::abs(p), floor);
    det.add_pivot(p);
  }
  const Matrix<T> DkP = Dh.topRows(r) * nf.P;  // [E, reduced block]
  out.D = DkP.rightCols(r);
  nf.F.topRows(k) = L.template triangularView<Eigen::Lower>().solve(Matrix<T>(Qe_t));
  nf.F.bottomRows(r) = Qk_t;
  nf.F.bottomRows(r).noalias() -= DkP.leftCols(k) * nf.F.topRows(k);
  const Matrix<T> PV = nf.P.transpose() * V;
  nf.Vz = PV.topRows(k).transpose();
  out.V = PV.bottomRows(r);
}

template <class T>
HSSULV<T> HSSULV<T>::factor(const HSSMatrix<T>& H, bool spd) {
  HSSLIN_CHECK(H.rows() == H.cols(), "factor needs a square matrix, got ", H.rows(), "x", H.cols());
  HSSLIN_CHECK(!spd || H.symmetric(),
               "symmetric=True needs a symmetric HSS matrix (one compressed from exactly "
               "symmetric input, or built from a kernel); this one is not");
  HSSULV F;
  F.tree_ = H.tree();
  F.spd_ = spd;
  const ClusterTree& tree = F.tree_;
  F.nodes_.assign(size_t(tree.size()), NodeFactor{});
  if (tree.levels() == 0) {
    F.nodes_[0].m = H.rows();
    F.root_.factor(Matrix<T>(H.D(0)), spd, F.logdet_);
    return F;
  }
  std::vector<Reduced> red(size_t(tree.size()));
  std::vector<LogDet> dets(size_t(tree.size()));
  // The local system of inner node i from its children's reduced blocks.
  auto assemble = [&](Index i, Matrix<T>& D, Matrix<T>& U, Matrix<T>& V) {
    NodeFactor& nf = F.nodes_[size_t(i)];
    const Reduced& Ra = red[size_t(ClusterTree::left(i))];
    const Reduced& Rb = red[size_t(ClusterTree::right(i))];
    const Index ma = Ra.D.rows(), mb = Rb.D.rows();
    D.resize(ma + mb, ma + mb);
    D.topLeftCorner(ma, ma) = Ra.D;
    D.bottomRightCorner(mb, mb) = Rb.D;
    if (spd) {
      // B21 = B12^T for symmetric H: the lower block is the upper one's transpose.
      const Matrix<T> C = Ra.U * H.B12(i);
      D.topRightCorner(ma, mb).noalias() = C * Rb.U.transpose();
      D.bottomLeftCorner(mb, ma) = D.topRightCorner(ma, mb).transpose();
    } else {
      nf.C12 = Ra.U * H.B12(i);
      nf.C21 = Rb.U * H.B21(i);
      D.topRightCorner(ma, mb).noalias() = nf.C12 * Rb.V.transpose();
      D.bottomLeftCorner(mb, ma).noalias() = nf.C21 * Ra.V.transpose();
    }
    if (i == 0) return;
    auto stack = [](const Matrix<T>& A, const Matrix<T>& B, const auto& W) {
      Matrix<T> out(A.rows() + B.rows(), W.cols());
      out.topRows(A.rows()).noalias() = A * W.topRows(A.cols());
      out.bottomRows(B.rows()).noalias() = B * W.bottomRows(B.cols());
      return out;
    };
    U = stack(Ra.U, Rb.U, H.U(i));
    if (!spd) {
      nf.W = H.V(i);
      V = stack(Ra.V, Rb.V, H.V(i));
    }
  };
  for (int l = tree.levels(); l >= 1; --l) {
    const Index begin = ClusterTree::level_begin(l), end = ClusterTree::level_end(l);
    parallel_for(begin, end, [&](Index i) {
      Matrix<T> D, U, V;
      if (tree.is_leaf(i)) {
        D = H.D(i);
        U = H.U(i);
        if (!spd) V = H.V(i);
      } else {
        assemble(i, D, U, V);
        red[size_t(ClusterTree::left(i))] = Reduced{};
        red[size_t(ClusterTree::right(i))] = Reduced{};
      }
      F.eliminate(i, D, U, V, red[size_t(i)], dets[size_t(i)]);
    });
  }
  Matrix<T> D, U, V;
  assemble(0, D, U, V);
  F.nodes_[0].m = D.rows();
  F.root_.factor(D, spd, F.logdet_);
  for (const LogDet& d : dets) F.logdet_ *= d;
  return F;
}

template <class T>
bool HSSULV<T>::parallel(Index k) const {
  double entries = 0;
  for (const NodeFactor& nf : nodes_) entries += double(nf.F.size() + nf.P.size());
  return entries * double(k) > kParallelEntries;
}

// Bottom-up: each node's right-hand side (a leaf's rows of X, or what its
// children kept, less the couplings to the known parts of their siblings),
// times F; the kept part goes up, z1 stays for the way down.
template <class T>
void HSSULV<T>::solve_forward(Matrix<T>& X, Workspace& ws) const {
  const ClusterTree& tree = tree_;
  const bool par = parallel(X.cols());
  auto rhs = [&](Index i) {
    auto r = ws.block(ws.r, i);
    const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
    const NodeFactor &na = nodes_[size_t(a)], &nb = nodes_[size_t(b)], &nf = nodes_[size_t(i)];
    const Index ka = na.m - na.k, kb = nb.m - nb.k;
    r.topRows(ka) = ws.block(ws.t, a).bottomRows(ka);
    r.bottomRows(kb) = ws.block(ws.t, b).bottomRows(kb);
    if (!spd_) {
      r.topRows(ka).noalias() -= nf.C12 * ws.known(b);
      r.bottomRows(kb).noalias() -= nf.C21 * ws.known(a);
    }
  };
  for (int l = tree.levels(); l >= 1; --l) {
    parallel_for(
        ClusterTree::level_begin(l), ClusterTree::level_end(l),
        [&](Index i) {
          const NodeFactor& nf = nodes_[size_t(i)];
          auto t = ws.block(ws.t, i);
          const bool leaf = tree.is_leaf(i);
          if (!leaf) rhs(i);
          const auto source = [&]() {
            return leaf ? X.middleRows(tree.node(i).row_begin, nf.m) : ws.block(ws.r, i);
          };
          if (nf.k == 0)
            t = source();
          else
            t.noalias() = nf.F * source();
          if (spd_) return;
          auto h = ws.known(i);
          if (nf.k > 0)
            h.noalias() = nf.Vz * t.topRows(nf.k);
          else
            h.setZero();
          if (!leaf && nf.W.size() > 0) {
            const Index ca = nodes_[size_t(ClusterTree::left(i))].c;
            const Index cb = nodes_[size_t(ClusterTree::right(i))].c;
            h.noalias() += nf.W.topRows(ca).transpose() * ws.known(ClusterTree::left(i));
            h.noalias() += nf.W.bottomRows(cb).transpose() * ws.known(ClusterTree::right(i));
          }
        },
        par);
  }
  rhs(0);
  auto x0 = ws.block(ws.x, 0);
  x0 = ws.block(ws.r, 0);
  root_.solve(x0, false);
}

// Top-down: each node's unknowns from its z1 and the share of its parent's
// unknowns it kept.
template <class T>
void HSSULV<T>::solve_backward(Matrix<T>& X, Workspace& ws) const {
  const ClusterTree& tree = tree_;
  const bool par = parallel(X.cols());
  for (int l = 1; l <= tree.levels(); ++l) {
    parallel_for(
        ClusterTree::level_begin(l), ClusterTree::level_end(l),
        [&](Index i) {
          const NodeFactor& nf = nodes_[size_t(i)];
          const Index p = (i - 1) / 2;
          const Index kept = nf.m - nf.k;
          const Index offset =
              i == ClusterTree::left(p)
                  ? 0
                  : nodes_[size_t(ClusterTree::left(p))].m - nodes_[size_t(ClusterTree::left(p))].k;
          const auto z2 = ws.block(ws.x, p).middleRows(offset, kept);
          auto out = [&]() {
            return tree.is_leaf(i) ? X.middleRows(tree.node(i).row_begin, nf.m) : ws.block(ws.x, i);
          };
          auto x = out();
          if (nf.k == 0) {
            x = z2;
            return;
          }
          const auto z1 = ws.block(ws.t, i).topRows(nf.k);
          if (spd_) {
            x.noalias() = nf.F.topRows(nf.k).transpose() * z1;
            x.noalias() += nf.F.bottomRows(kept).transpose() * z2;
          } else {
            x.noalias() = nf.P.leftCols(nf.k) * z1;
            x.noalias() += nf.P.rightCols(kept) * z2;
          }
        },
        par);
  }
}

// The transposed solve of the general variant: the adjoint of forward then
// backward, in reverse order. Bottom-up, P^T splits each node's adjoint into
// the eliminated part (kept in t) and the part its parent sees; the root
// solves with the transposed LU; top-down, F^T maps each node's adjoint
// (its eliminated part plus what the known parts owe, V_z^T h) back to its
// right-hand side, and the couplings pass adjoints to the children's known parts.
template <class T>
void HSSULV<T>::solve_transposed(Matrix<T>& X, Workspace& ws) const {
  const ClusterTree& tree = tree_;
  const bool par = parallel(X.cols());
  auto child_offset = [&](Index i) {
    const Index p = (i - 1) / 2, a = ClusterTree::left(p);
    return i == a ? Index(0) : nodes_[size_t(a)].m - nodes_[size_t(a)].k;
  };
  for (int l = tree.levels(); l >= 1; --l) {
    parallel_for(
        ClusterTree::level_begin(l), ClusterTree::level_end(l),
        [&](Index i) {
          const NodeFactor& nf = nodes_[size_t(i)];
          const Index kept = nf.m - nf.k;
          const auto xbar = [&]() {
            return tree.is_leaf(i) ? X.middleRows(tree.node(i).row_begin, nf.m) : ws.block(ws.x, i);
          }();
          auto up = ws.block(ws.x, (i - 1) / 2).middleRows(child_offset(i), kept);
          if (nf.k == 0) {
            up = xbar;
            return;
          }
          ws.block(ws.t, i).topRows(nf.k).noalias() = nf.P.leftCols(nf.k).transpose() * xbar;
          up.noalias() = nf.P.rightCols(kept).transpose() * xbar;
        },
        par);
  }
  // Adjoints of the children's known parts and right-hand sides, from node i's.
  auto couple = [&](Index i) {
    const NodeFactor& nf = nodes_[size_t(i)];
    const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
    const Index ka = nodes_[size_t(a)].m - nodes_[size_t(a)].k;
    const Index kb = nodes_[size_t(b)].m - nodes_[size_t(b)].k;
    const auto rbar = ws.block(ws.r, i);
    auto ha = ws.known(a);
    auto hb = ws.known(b);
    ha.noalias() = -(nf.C21.transpose() * rbar.bottomRows(kb));
    hb.noalias() = -(nf.C12.transpose() * rbar.topRows(ka));
    if (i > 0 && nf.W.size() > 0) {
      ha.noalias() += nf.W.topRows(ha.rows()) * ws.known(i);
      hb.noalias() += nf.W.bottomRows(hb.rows()) * ws.known(i);
    }
  };
  auto r0 = ws.block(ws.r, 0);
  r0 = ws.block(ws.x, 0);
  root_.solve(r0, true);
  couple(0);
  for (int l = 1; l <= tree.levels(); ++l) {
    parallel_for(
        ClusterTree::level_begin(l), ClusterTree::level_end(l),
        [&](Index i) {
          const NodeFactor& nf = nodes_[size_t(i)];
          const Index kept = nf.m - nf.k;
          const auto rr = ws.block(ws.r, (i - 1) / 2).middleRows(child_offset(i), kept);
          auto rbar = [&]() {
            return tree.is_leaf(i) ? X.middleRows(tree.node(i).row_begin, nf.m) : ws.block(ws.r, i);
          }();
          if (nf.k == 0) {
            rbar = rr;
          } else {
            auto z1 = ws.block(ws.t, i).topRows(nf.k);
            z1.noalias() += nf.Vz.transpose() * ws.known(i);
            rbar.noalias() = nf.F.topRows(nf.k).transpose() * z1;
            rbar.noalias() += nf.F.bottomRows(kept).transpose() * rr;
          }
          if (!tree.is_leaf(i)) couple(i);
        },
        par);
  }
}

template <class T>
void HSSULV<T>::solve(const DenseView<T>& B, bool transpose) const {
  HSSLIN_CHECK(B.rows == size(), "solve: right-hand side has ", B.rows, " rows, expected ", size());
  const Index k = B.cols;
  if (k == 0 || size() == 0) return;
  Matrix<T> X(size(), k);
  for (Index j = 0; j < k; ++j)
    for (Index i = 0; i < size(); ++i) X(i, j) = B.data[i * B.row_stride + j * B.col_stride];
  if (tree_.levels() == 0) {
    root_.solve(X, transpose && !spd_);
  } else {
    Workspace ws(nodes_, k);
    if (transpose && !spd_) {
      solve_transposed(X, ws);
    } else {
      solve_forward(X, ws);
      solve_backward(X, ws);
    }
  }
  for (Index j = 0; j < k; ++j)
    for (Index i = 0; i < size(); ++i) B.data[i * B.row_stride + j * B.col_stride] = X(i, j);
}

template <class T>
Index HSSULV<T>::nbytes() const {
  Index values = 0;
  for (const NodeFactor& nf : nodes_)
    values +=
        nf.F.size() + nf.P.size() + nf.Vz.size() + nf.W.size() + nf.C12.size() + nf.C21.size();
  // Values, the root's permutation, (m, k, c) and six shapes per node, the
  // tree's four range bounds per node, and a fixed header.
  return values * Index(sizeof(T)) + root_.nbytes() +
         tree_.size() * (15 + 4) * Index(sizeof(Index)) + 64;
}

template <class T>
std::string HSSULV<T>::serialize() const {
  ByteWriter w;
  write_header(w);
  for (const NodeFactor& nf : nodes_) {
    w.put<std::int64_t>(nf.m);
    w.put<std::int64_t>(nf.k);
    w.put<std::int64_t>(nf.c);
    for (const Matrix<T>* M : {&nf.F, &nf.P, &nf.Vz, &nf.W, &nf.C12, &nf.C21}) w.put_matrix(*M);
  }
  root_.write(w);
  return w.finish(ObjectKind::HSSFactor, sizeof(T));
}

template <class T>
HSSULV<T> HSSULV<T>::deserialize(const std::string& blob) {
  ByteReader r(blob, ObjectKind::HSSFactor);
  HSSULV F;
  F.read_header(r, sizeof(T));
  const Index n = F.size();  // bounds every stored block's shape
  F.nodes_.assign(size_t(F.tree_.size()), NodeFactor{});
  for (NodeFactor& nf : F.nodes_) {
    nf.m = r.get<std::int64_t>();
    nf.k = r.get<std::int64_t>();
    nf.c = r.get<std::int64_t>();
    HSSLIN_CHECK(nf.m >= 0 && nf.m <= n && nf.k >= 0 && nf.k <= nf.m && nf.c >= 0 && nf.c <= n,
                 "corrupted file: node sizes ", nf.m, ", ", nf.k, ", ", nf.c);
    for (Matrix<T>* M : {&nf.F, &nf.P, &nf.Vz, &nf.W, &nf.C12, &nf.C21})
      *M = r.get_matrix_bounded<T>(n, n);
  }
  F.root_.read(r, n, F.spd_);
  r.expect_end();
  F.check_structure();
  return F;
}

// Every extent must fit its neighbours, or a solve would read out of bounds.
template <class T>
void HSSULV<T>::check_structure() const {
  const ClusterTree& t = tree_;
  auto ok = [](bool cond, Index i, const char* what) {
    HSSLIN_CHECK(cond, "corrupted file: node ", i, " has an inconsistent ", what);
  };
  auto kept = [&](Index i) { return nodes_[size_t(i)].m - nodes_[size_t(i)].k; };
  for (Index i = 0; i < t.size(); ++i) {
    const NodeFactor& nf = nodes_[size_t(i)];
    const Index m = nf.m, k = nf.k;
    if (t.is_leaf(i)) {
      ok(m == t.node(i).rows(), i, "size");
    } else {
      const Index a = ClusterTree::left(i), b = ClusterTree::right(i);
      ok(m == kept(a) + kept(b), i, "size");
      if (!spd_) {
        ok(nf.C12.rows() == kept(a) && nf.C12.cols() == nodes_[size_t(b)].c, i, "coupling");
        ok(nf.C21.rows() == kept(b) && nf.C21.cols() == nodes_[size_t(a)].c, i, "coupling");
        ok(i == 0 ? nf.W.size() == 0
                  : nf.W.rows() == nodes_[size_t(a)].c + nodes_[size_t(b)].c && nf.W.cols() == nf.c,
           i, "column transfer");
      }
    }
    if (i == 0) {
      ok(k == 0 && root_.size() == m, i, "root factor");
      continue;
    }
    ok(k == 0 ? nf.F.size() == 0 : nf.F.rows() == m && nf.F.cols() == m, i, "forward transform");
    if (spd_) {
      ok(nf.P.size() == 0 && nf.Vz.size() == 0 && nf.c == 0, i, "column transform");
    } else {
      ok(k == 0 ? nf.P.size() == 0 : nf.P.rows() == m && nf.P.cols() == m, i, "column transform");
      ok(k == 0 ? nf.Vz.size() == 0 : nf.Vz.rows() == nf.c && nf.Vz.cols() == k, i, "basis");
    }
  }
}

template class HSSULV<float>;
template class HSSULV<double>;

}  // namespace hsslin
