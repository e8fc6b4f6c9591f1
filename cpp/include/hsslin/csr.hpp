#pragma once
/// \file csr.hpp
/// \brief Compressed sparse row matrix: threaded SpMV/SpMM and transposed products.
///
/// Storage: values (float or double), int32 column indices, int64 row
/// pointers. int32 indices halve the index traffic of the products and match
/// scipy's default; int64 row pointers lift the nnz limit of int32 at a cost
/// of rows + 1 extra words, which is nothing next to nnz.
///
/// Duplicates (the same (i, j) stored more than once in a row) are accepted
/// and act as their sum in every product and in to_dense, exactly as in
/// scipy's non-canonical CSR; nnz counts stored entries. Column indices need
/// not be sorted within a row.
///
/// The arrays are either owned (std::vector) or borrowed from memory kept
/// alive by an opaque owner handle (the bindings use it to share numpy
/// buffers without copying). Either way they are validated once, on
/// construction, and are never written afterwards: a borrower must make sure
/// nobody else writes the indices either (the bindings copy them unless
/// another CSRMatrix owns them), as an index out of range makes a product
/// read out of bounds.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hsslin/config.hpp"
#include "hsslin/dense.hpp"

namespace hsslin {

/// \brief A real sparse matrix in CSR form (values, int32 indices, int64 row pointers).
template <class T>
class CSRMatrix {
 public:
  using StorageIndex = std::int32_t;
  using Offset = std::int64_t;

  CSRMatrix() = default;

  /// Takes ownership of the arrays after validating them (see validate()).
  CSRMatrix(Index rows, Index cols, std::vector<T> values, std::vector<StorageIndex> indices,
            std::vector<Offset> indptr);

  /// Borrows values and indices (nnz = indptr.back() entries each) whose
  /// lifetime `owner` extends; indptr is always owned. Validated like the
  /// owning constructor.
  static CSRMatrix borrow(Index rows, Index cols, const T* values, const StorageIndex* indices,
                          std::vector<Offset> indptr, std::shared_ptr<const void> owner);

  /// Throws std::invalid_argument unless indptr has rows + 1 entries,
  /// indptr[0] == 0, is non-decreasing, indptr[rows] == nnz, and every
  /// index lies in [0, cols).
  static void validate(Index rows, Index cols, Index nnz, const StorageIndex* indices,
                       const Offset* indptr);

  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  Index nnz() const { return nnz_; }
  const T* values() const { return values_; }
  const StorageIndex* indices() const { return indices_; }
  const Offset* indptr() const { return indptr_.data(); }

  /// Y = S X (transpose = false) or Y = S^T X. X and Y may each be row- or
  /// column-major; Y is overwritten. Threaded above a work threshold.
  void apply(const DenseView<const T>& X, const DenseView<T>& Y, bool transpose) const;

  /// Rows [begin, end) of y = S x for one contiguous vector x, for a caller
  /// that splits the product itself (into product_chunks()).
  void multiply_rows(const T* x, const DenseView<T>& y, Index begin, Index end) const;
  /// Row ranges of about equal work (nnz + rows), `chunks` + 1 boundaries.
  std::vector<Index> balanced_row_chunks(Index chunks) const;
  /// Row ranges (boundaries) a product with k right-hand sides is split into:
  /// four per thread when it is large enough to thread, else one.
  std::vector<Index> product_chunks(Index k) const;

  /// Writes S (or S^T) into `out`, row-major, overwriting it.
  void to_dense(T* out, bool transpose) const;

  /// Bytes stored: values + indices + row pointers + header (shape, nnz).
  Index nbytes() const { return nbytes_for(rows_, nnz_); }
  /// nbytes() of a CSR matrix with `rows` rows and `nnz` stored entries.
  static Index nbytes_for(Index rows, Index nnz);

  std::string serialize() const;
  static CSRMatrix deserialize(const std::string& blob);

 private:
  void multiply(const T* X, Index ldx, Index k, const DenseView<T>& Y) const;
  void multiply_transposed(const T* X, Index ldx, Index k, const DenseView<T>& Y) const;
  /// Number of threads a product with k right-hand sides is split over (1: serial).
  Index chunk_count(Index k) const;

  Index rows_ = 0, cols_ = 0, nnz_ = 0;
  std::vector<Offset> indptr_ = {0};
  // values_/indices_ point into memory that owner_ keeps alive (our own
  // vectors or a borrowed buffer); it is immutable, so copies share it.
  const T* values_ = nullptr;
  const StorageIndex* indices_ = nullptr;
  std::shared_ptr<const void> owner_;
};

}  // namespace hsslin
