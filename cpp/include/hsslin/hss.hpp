#pragma once
/// \file hss.hpp
/// \brief HSSMatrix: hierarchically semiseparable matrix with nested bases.

#include <string>
#include <vector>

#include "hsslin/cluster_tree.hpp"
#include "hsslin/low_rank.hpp"
#include "hsslin/matrix_source.hpp"
#include "hsslin/options.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {

template <class T>
class KernelMatrix;
class GeometricTree;

/// \brief HSS matrix (nested bases) over a ClusterTree.
///
/// Leaf tau stores D_tau = A(I_tau, J_tau) and bases U_tau, V_tau; an inner
/// node tau with children a, b stores the couplings B12 = B_ab, B21 = B_ba
/// and (unless it is the root) transfer matrices U, V with
/// U_tau = diag(U_a, U_b) * U. Off-diagonal blocks are A(I_a, J_b) ~=
/// U_a B_ab V_b^T. Built from a dense matrix by randomized sampling and
/// interpolative decompositions (Martinsson 2011) with adaptive sample size.
template <class T>
class HSSMatrix {
 public:
  /// Factors of one node while building or loading (Eigen-owned).
  struct Node {
    Matrix<T> D;         ///< leaves: dense diagonal block
    Matrix<T> U, V;      ///< leaf bases or transfer matrices (empty at the root)
    Matrix<T> B12, B21;  ///< inner nodes: couplings between the two children
  };
  using ConstMap = Eigen::Map<const Matrix<T>>;
  /// Diagonal blocks are stored row-major, like the dense input, so a row
  /// chunk of a large block (the dense fallback) is contiguous.
  using ConstRowBlock = Eigen::Map<const RowMatrix<T>>;

  HSSMatrix() = default;
  /// Compresses a dense row-major matrix (finite entries; checked by the caller).
  static HSSMatrix compress(const ConstRowMap<T>& A, const HSSOptions& options);
  /// The same from products and entries alone (STRUMPACK's compress(Amult, Aelem)).
  static HSSMatrix compress(const MatrixSource<T>& A, const HSSOptions& options);
  /// Compresses a kernel matrix over points in `geo`'s order from its entries
  /// (hss_from_entries.hpp).
  static HSSMatrix from_kernel(const KernelMatrix<T>& K, const GeometricTree& geo,
                               const HSSOptions& options);

  Index rows() const { return tree_.rows(); }
  Index cols() const { return tree_.cols(); }
  const ClusterTree& tree() const { return tree_; }
  /// Views of node i's factors in the packed storage.
  ConstRowBlock D(Index i) const {
    const Slot& s = slots_[size_t(i) * 5 + size_t(kD)];
    return ConstRowBlock(arena_.data() + s.offset, s.rows, s.cols);
  }
  ConstMap U(Index i) const { return view(i, kU); }
  ConstMap V(Index i) const { return view(i, kV); }
  ConstMap B12(Index i) const { return view(i, kB12); }
  ConstMap B21(Index i) const { return view(i, kB21); }
  const HSSOptions& options() const { return options_; }
  /// Relative Frobenius error measured on held-out random probes at build time.
  double error_estimate() const { return error_estimate_; }
  /// Number of random samples the adaptive construction settled on.
  Index samples() const { return samples_; }
  bool symmetric() const { return symmetric_; }
  /// True when compression did not pay and the matrix is stored dense.
  bool is_dense_fallback() const { return dense_fallback_; }

  /// Y = op(H) X with op = identity or transpose; X, Y row- or column-major.
  /// Y = H X (or H^T X); `hooks` folds a caller's work into the product.
  void apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose,
             const ProductHooks* hooks = nullptr) const;
  /// Writes H (or H^T) as a dense row-major array into out.
  void to_dense(T* out, bool transpose) const;
  /// Every stored byte: factor values, tree ranges, factor shapes, header.
  Index nbytes() const;
  /// An upper bound on nbytes() of compress(A, options) for any rows x cols
  /// A that is not stored dense (is_dense_fallback() false): the bytes with
  /// every basis at the largest rank the cap (options.max_rank(), 0: none)
  /// and its node allow. Counted by the same rule as nbytes().
  static Index nbytes_bound(Index rows, Index cols, const HSSOptions& options);
  /// Rank of node i's row basis (U) and column basis (V); -1 at the root.
  Index row_rank(Index i) const;
  Index col_rank(Index i) const;

  std::string serialize() const;
  static HSSMatrix deserialize(const std::string& blob);
  /// This matrix with every stored value converted to S: the same tree,
  /// options, error estimate, sample count, symmetry and dense-fallback
  /// flags. A float32 matrix applies float64 operands through its float64
  /// cast (exact: every float32 value is a float64 value).
  template <class S>
  HSSMatrix<S> cast() const;

 private:
  template <class>
  friend class HSSMatrix;
  enum Factor { kD = 0, kU = 1, kV = 2, kB12 = 3, kB21 = 4 };
  struct Slot {
    Index offset = 0, rows = 0, cols = 0;
  };
  /// Entries a factor of n entries takes in the arena: each starts on a
  /// 64-byte boundary.
  static Index padded(Index n) {
    constexpr Index kAlign = 64 / Index(sizeof(T));
    return (n + kAlign - 1) / kAlign * kAlign;
  }
  /// nbytes() of a matrix whose arena holds `arena_entries` over `nodes` nodes.
  static Index storage_bytes(Index arena_entries, Index nodes);
  struct Build;
  template <bool Transpose>
  class Product;
  template <class XMap, class YMap>
  void apply_dense_transpose(const XMap& X, YMap& Y, const ProductHooks* hooks) const;
  /// Moves the factors into one contiguous array, laid out in the order the
  /// products read them, so that a cold product streams instead of chasing
  /// many small allocations.
  void pack(std::vector<Node>&& nodes);
  void set_dense(const MatrixSource<T>& A);
  /// Multiplies the stored values of A (D, B12, B21) by 2^e.
  void scale_values(int e);
  /// Replaces every coupling by the least-squares one for the stored bases.
  void project_couplings(const MatrixSource<T>& A);
  void check_structure() const;
  ConstMap view(Index i, Factor f) const {
    const Slot& s = slots_[size_t(i) * 5 + size_t(f)];
    return ConstMap(arena_.data() + s.offset, s.rows, s.cols);
  }

  ClusterTree tree_;
  // Aligned, with every factor starting on a 64-byte boundary: vectorized
  // kernels then round identically in every copy of the matrix.
  std::vector<T, Eigen::aligned_allocator<T>> arena_;
  std::vector<Slot> slots_;  // five per node: D, U, V, B12, B21
  HSSOptions options_;
  double error_estimate_ = 0.0;
  Index samples_ = 0;
  bool symmetric_ = false;
  bool dense_fallback_ = false;
};

}  // namespace hsslin
