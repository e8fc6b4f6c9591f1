#pragma once
/// \file hodlr.hpp
/// \brief HODLRMatrix: hierarchical off-diagonal low rank, bases not nested.

#include <string>
#include <vector>

#include "hsslin/cluster_tree.hpp"
#include "hsslin/low_rank.hpp"
#include "hsslin/options.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {

/// \brief A matrix stored in row panels for streaming products.
///
/// The rows are cut into panels of at most kRows rows; the cuts restart at
/// every segment boundary (the leaves of the cluster tree below the matrix's
/// node), so a product over any leaf, or over any stretch of a leaf that
/// starts kRows-aligned within it, covers whole panels. Each panel is stored
/// column-major and the panels follow each other in row order, so the panel
/// that starts at row r begins at entry r * cols and a product over a row
/// stretch reads one contiguous stretch of memory, front to back.
template <class T>
struct RowPanels {
  static constexpr Index kRows = 8;
  Eigen::Matrix<T, Eigen::Dynamic, 1> data;  ///< rows * cols entries
  Index rows = 0, cols = 0;

  /// Packs M; `segments` are the row counts of the consecutive segments (sum = rows).
  static RowPanels pack(const Matrix<T>& M, const std::vector<Index>& segments);
  Matrix<T> unpack(const std::vector<Index>& segments) const;
  /// Rows [begin, begin + count) of one segment, `begin` kRows-aligned within
  /// it and `count` reaching at most the segment's end, as a col-major matrix.
  Matrix<T> rows_of(Index begin, Index count) const;
  const T* at_row(Index r) const { return data.data() + r * cols; }
};

/// Bytes a HODLR matrix over `tree` stores when its off-diagonal blocks have
/// ranks `block_ranks` (block 2i: B12 of inner node i, 2i + 1: B21; -1: kept
/// dense): every value, the tree's four range bounds per node, two extents
/// and a dense flag per stored matrix, and a 64-byte header.
/// HODLRMatrix::nbytes() is this count of the blocks it stores.
Index hodlr_nbytes(const ClusterTree& tree, const std::vector<Index>& block_ranks,
                   Index scalar_size);

/// The block ranks HODLRMatrix::compress stores under `options`' rank
/// schedule (options.rank() > 0): the scheduled rank of each block's level,
/// kept to what the block allows (fixed_rank_layout, as compress does).
std::vector<Index> hodlr_schedule_ranks(const ClusterTree& tree, const HODLROptions& options);

/// \brief HODLR matrix over a ClusterTree.
///
/// Leaf tau stores D_tau; an inner node with children a, b stores the two
/// off-diagonal blocks A(I_a, J_b) ~= U12 V12^T and A(I_b, J_a) ~= U21 V21^T,
/// each with its own factors (or kept dense when a factorization would
/// store more). Ranks follow a schedule (outer rank at the root, decaying
/// level by level) or a tolerance.
///
/// Storage: D, U and dense blocks are held in RowPanels over the leaves
/// below their rows, and V^T in RowPanels of 8 of its rows, so that both
/// sweeps of the product (t = V^T x, then y = D x + U t) read each factor
/// front to back. `Node` is the exchange form (plain matrices) that
/// compress, from_parts, node() and the file format use.
template <class T>
class HODLRMatrix {
 public:
  using Block = LowRankBlock<T>;
  struct Node {
    Matrix<T> D;     ///< leaves: dense diagonal block
    Block B12, B21;  ///< inner nodes: A(I_a, J_b) and A(I_b, J_a)
  };

  HODLRMatrix() = default;
  static HODLRMatrix compress(const ConstRowMap<T>& A, const HODLROptions& options);
  /// Assembles a HODLR matrix from given parts (used by the torch adapter and load).
  static HODLRMatrix from_parts(ClusterTree tree, std::vector<Node> nodes, HODLROptions options,
                                double error);

  Index rows() const { return tree_.rows(); }
  Index cols() const { return tree_.cols(); }
  const ClusterTree& tree() const { return tree_; }
  /// Node i in exchange form (a copy, unpacked from the stored panels).
  Node node(Index i) const;
  /// Rank of block B12 (lower = false) or B21 of inner node i; -1 when kept dense.
  Index block_rank(Index i, bool lower) const;
  const HODLROptions& options() const { return options_; }
  /// Relative Frobenius error ||A - H||_F / ||A||_F, exact (computed block by block).
  double relative_error() const { return error_; }

  /// Y = H X (or H^T X); `hooks` folds a caller's work into the product.
  void apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose,
             const ProductHooks* hooks = nullptr) const;
  void to_dense(T* out, bool transpose) const;
  Index nbytes() const;

  std::string serialize() const;
  static HODLRMatrix deserialize(const std::string& blob);

 private:
  struct StoredBlock {
    RowPanels<T> U;      ///< rows x r, panels over the leaves below the rows
    RowPanels<T> Vt;     ///< V^T (r x cols), panels over its r rows
    RowPanels<T> dense;  ///< when is_dense: rows x cols, panels as U
    bool is_dense = false;
    double error = 0.0;
  };
  template <bool Transpose, class XMap, class YMap>
  void apply_impl(const XMap& X, YMap& Y, const ProductHooks* hooks) const;
  static void check_structure(const ClusterTree& tree, const std::vector<Node>& nodes);
  /// Multiplies every stored value by 2^e (a low-rank block's factors share it).
  void scale_values(int e);
  /// Row counts of the leaves below node i, on the row side or the column side.
  std::vector<Index> segments(Index i, bool row_side) const;
  /// Block 2i + 0 (B12) or 2i + 1 (B21) of inner node i.
  const StoredBlock& block(Index b) const { return blocks_[size_t(b)]; }
  void pack(std::vector<Node> nodes);

  ClusterTree tree_;
  std::vector<RowPanels<T>> leaves_;  ///< D of leaf leaf_begin() + i
  std::vector<StoredBlock> blocks_;   ///< 2 * inner node + (0: B12, 1: B21)
  HODLROptions options_;
  double error_ = 0.0;
};

}  // namespace hsslin
