// HODLR factorization by recursive Sherman-Morrison-Woodbury (see
// hodlr_factor.hpp). The leaves, then each level from the deepest inner one
// up, run their nodes in parallel: a node only touches its own rows of the
// U factors above it, and the nodes of one level have disjoint rows.
#include "hsslin/hodlr_factor.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>

#include "hsslin/factor_io.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

// As in the HSS solve: below this many stored entries times right-hand
// sides, one thread.
constexpr double kParallelEntries = 1 << 18;

// U V^T factors of one off-diagonal block (rows x cols); a block kept dense
// becomes the thinner of (block, I) and (I, block^T).
template <class T>
void block_factors(const LowRankBlock<T>& b, Index rows, Index cols, Matrix<T>& U, Matrix<T>& V) {
  if (!b.is_dense) {
    U = b.U;
    V = b.V;
  } else if (cols <= rows) {
    U = b.dense;
    V = Matrix<T>::Identity(cols, cols);
  } else {
    U = Matrix<T>::Identity(rows, rows);
    V = b.dense.transpose();
  }
}

}  // namespace

template <class T>
Eigen::Block<Matrix<T>> HODLRFactor<T>::rows_in(Index q, Index i) {
  const Index a = ClusterTree::left(q);
  const bool left = tree_.node(i).row_begin < tree_.node(a).row_end;
  Matrix<T>& U = left ? inner_[size_t(q)].U12 : inner_[size_t(q)].U21;
  const Index first = left ? tree_.node(a).row_begin : tree_.node(a).row_end;
  return U.middleRows(tree_.node(i).row_begin - first, tree_.node(i).rows());
}

template <class T>
void HODLRFactor<T>::apply_inverse(Index p, Eigen::Ref<Matrix<T>> Y, bool transpose) const {
  const Inner& in = inner_[size_t(p)];
  const Index na = tree_.node(ClusterTree::left(p)).rows();
  const Index nb = Y.rows() - na;
  const Index r12 = in.U12.cols(), r21 = in.U21.cols();
  if (r12 + r21 == 0) return;
  auto Ya = Y.topRows(na);
  auto Yb = Y.bottomRows(nb);
  Matrix<T> w(r12 + r21, Y.cols());
  if (!transpose) {  // Y - U_p K^{-1} V_p^T Y
    w.topRows(r12).noalias() = in.V12.transpose() * Yb;
    w.bottomRows(r21).noalias() = in.V21.transpose() * Ya;
    in.K.solve(w, false);
    Ya.noalias() -= in.U12 * w.topRows(r12);
    Yb.noalias() -= in.U21 * w.bottomRows(r21);
  } else {  // Y - V_p K^{-T} U_p^T Y
    w.topRows(r12).noalias() = in.U12.transpose() * Ya;
    w.bottomRows(r21).noalias() = in.U21.transpose() * Yb;
    in.K.solve(w, true);
    Ya.noalias() -= in.V21 * w.bottomRows(r21);
    Yb.noalias() -= in.V12 * w.topRows(r12);
  }
}

template <class T>
HODLRFactor<T> HODLRFactor<T>::factor(const HODLRMatrix<T>& H, bool spd) {
  HSSLIN_CHECK(H.rows() == H.cols(), "factor needs a square matrix, got ", H.rows(), "x", H.cols());
  HODLRFactor F;
  F.tree_ = H.tree();
  F.spd_ = spd;
  const ClusterTree& tree = F.tree_;
  const Index inner = tree.leaf_begin();
  F.inner_.assign(size_t(inner), Inner{});
  F.leaves_.assign(size_t(tree.leaf_end() - inner), DenseFactor<T>{});
  parallel_for(0, inner, [&](Index p) {
    const auto nd = H.node(p);
    const Index na = tree.node(ClusterTree::left(p)).rows();
    const Index nb = tree.node(ClusterTree::right(p)).rows();
    Inner& in = F.inner_[size_t(p)];
    block_factors(nd.B12, na, nb, in.U12, in.V12);
    block_factors(nd.B21, nb, na, in.U21, in.V21);
  });
  std::vector<LogDet> dets(size_t(tree.size()));
  // Leaves: D^{-1} onto every U above them.
  parallel_for(inner, tree.leaf_end(), [&](Index i) {
    DenseFactor<T>& leaf = F.leaves_[size_t(i - inner)];
    leaf.factor(H.node(i).D, spd, dets[size_t(i)]);
    for (Index q = (i - 1) / 2, child = i; child > 0; child = q, q = (q - 1) / 2) {
      auto Y = F.rows_in(q, i);
      leaf.solve(Y, false);
    }
  });
  for (int l = tree.levels() - 1; l >= 0; --l) {
    parallel_for(ClusterTree::level_begin(l), ClusterTree::level_end(l), [&](Index p) {
      Inner& in = F.inner_[size_t(p)];
      const Index r12 = in.U12.cols(), r21 = in.U21.cols();
      Matrix<T> K = Matrix<T>::Identity(r12 + r21, r12 + r21);
      K.topRightCorner(r12, r21).noalias() += in.V12.transpose() * in.U21;
      K.bottomLeftCorner(r21, r12).noalias() += in.V21.transpose() * in.U12;
      if (spd && K.rows() > 0) {
        // Given positive definite children, A_p is positive definite iff
        // I + U_p V_p^T, similar to a symmetric matrix, has positive
        // eigenvalues: those of K and ones.
        const Eigen::EigenSolver<Matrix<T>> es(K, false);
        const double floor = detail::pivot_floor<T>(K.rows(), double(K.norm()));
        if (es.info() != Eigen::Success || !(double(es.eigenvalues().real().minCoeff()) > floor))
          fail_not_spd();
      }
      in.K.factor(K, false, dets[size_t(p)]);
      for (Index q = (p - 1) / 2, child = p; child > 0; child = q, q = (q - 1) / 2) {
        auto Y = F.rows_in(q, p);
        F.apply_inverse(p, Y, false);
      }
    });
  }
  for (const LogDet& d : dets) F.logdet_ *= d;
  return F;
}

template <class T>
bool HODLRFactor<T>::parallel(Index k) const {
  double entries = 0;
  for (const DenseFactor<T>& d : leaves_) entries += double(d.LU.size());
  for (const Inner& in : inner_)
    entries += double(in.U12.size() + in.U21.size() + in.V12.size() + in.V21.size());
  return entries * double(k) > kParallelEntries;
}

template <class T>
void HODLRFactor<T>::solve(const DenseView<T>& B, bool transpose) const {
  HSSLIN_CHECK(B.rows == size(), "solve: right-hand side has ", B.rows, " rows, expected ", size());
  const Index k = B.cols;
  if (k == 0) return;
  Matrix<T> X(size(), k);
  for (Index j = 0; j < k; ++j)
    for (Index i = 0; i < size(); ++i) X(i, j) = B.data[i * B.row_stride + j * B.col_stride];
  const ClusterTree& tree = tree_;
  const Index inner = tree.leaf_begin();
  const bool par = parallel(k);
  auto rows = [&](Index i) { return X.middleRows(tree.node(i).row_begin, tree.node(i).rows()); };
  auto leaves = [&]() {
    parallel_for(
        inner, tree.leaf_end(),
        [&](Index i) {
          auto Y = rows(i);
          leaves_[size_t(i - inner)].solve(Y, transpose);
        },
        par);
  };
  auto level = [&](int l) {
    parallel_for(
        ClusterTree::level_begin(l), ClusterTree::level_end(l),
        [&](Index p) {
          auto Y = rows(p);
          apply_inverse(p, Y, transpose);
        },
        par);
  };
  if (!transpose) {  // F_0^{-1} ... F_{L-1}^{-1} D^{-1}
    leaves();
    for (int l = tree.levels() - 1; l >= 0; --l) level(l);
  } else {  // D^{-T} F_{L-1}^{-T} ... F_0^{-T}
    for (int l = 0; l < tree.levels(); ++l) level(l);
    leaves();
  }
  for (Index j = 0; j < k; ++j)
    for (Index i = 0; i < size(); ++i) B.data[i * B.row_stride + j * B.col_stride] = X(i, j);
}

template <class T>
Index HODLRFactor<T>::nbytes() const {
  Index bytes = 0;
  for (const DenseFactor<T>& d : leaves_) bytes += d.nbytes();
  for (const Inner& in : inner_)
    bytes += (in.U12.size() + in.U21.size() + in.V12.size() + in.V21.size()) * Index(sizeof(T)) +
             in.K.nbytes();
  // Shapes (two per matrix, six matrices per inner node, one per leaf), the
  // tree's four range bounds per node, and a fixed header.
  return bytes + (Index(inner_.size()) * 12 + Index(leaves_.size()) * 2) * Index(sizeof(Index)) +
         tree_.size() * 4 * Index(sizeof(Index)) + 64;
}

template <class T>
std::string HODLRFactor<T>::serialize() const {
  ByteWriter w;
  write_header(w);
  for (const DenseFactor<T>& d : leaves_) d.write(w);
  for (const Inner& in : inner_) {
    for (const Matrix<T>* M : {&in.U12, &in.U21, &in.V12, &in.V21}) w.put_matrix(*M);
    in.K.write(w);
  }
  return w.finish(ObjectKind::HODLRFactor, sizeof(T));
}

template <class T>
HODLRFactor<T> HODLRFactor<T>::deserialize(const std::string& blob) {
  ByteReader r(blob, ObjectKind::HODLRFactor);
  HODLRFactor F;
  F.read_header(r, sizeof(T));
  const Index n = F.size();  // bounds every stored block's shape
  const Index inner = F.tree_.leaf_begin();
  F.leaves_.assign(size_t(F.tree_.leaf_end() - inner), DenseFactor<T>{});
  for (DenseFactor<T>& d : F.leaves_) d.read(r, n, F.spd_);
  F.inner_.assign(size_t(inner), Inner{});
  for (Inner& in : F.inner_) {
    for (Matrix<T>* M : {&in.U12, &in.U21, &in.V12, &in.V21}) *M = r.get_matrix_bounded<T>(n, n);
    in.K.read(r, 2 * n, false);
  }
  r.expect_end();
  F.check_structure();
  return F;
}

template <class T>
void HODLRFactor<T>::check_structure() const {
  auto ok = [](bool cond, Index i, const char* what) {
    HSSLIN_CHECK(cond, "corrupted file: node ", i, " has an inconsistent ", what);
  };
  const Index inner = tree_.leaf_begin();
  for (Index i = inner; i < tree_.leaf_end(); ++i)
    ok(leaves_[size_t(i - inner)].size() == tree_.node(i).rows(), i, "leaf factor");
  for (Index p = 0; p < inner; ++p) {
    const Inner& in = inner_[size_t(p)];
    const Index na = tree_.node(ClusterTree::left(p)).rows();
    const Index nb = tree_.node(ClusterTree::right(p)).rows();
    ok(in.U12.rows() == na && in.V12.rows() == nb && in.U12.cols() == in.V12.cols(), p, "block");
    ok(in.U21.rows() == nb && in.V21.rows() == na && in.U21.cols() == in.V21.cols(), p, "block");
    ok(in.K.size() == in.U12.cols() + in.U21.cols(), p, "capacitance factor");
  }
}

template class HODLRFactor<float>;
template class HODLRFactor<double>;

}  // namespace hsslin
