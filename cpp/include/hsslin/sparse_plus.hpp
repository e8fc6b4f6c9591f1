#pragma once
/// \file sparse_plus.hpp
/// \brief Products with a sparse plus permuted hierarchical matrix, W = S + Pr^T H Pc.
///
/// The parts live in their own classes (CSRMatrix, HODLRMatrix or
/// HSSMatrix); this header holds what ties them together: the permutations'
/// check and the fused product, which runs the sparse rows as tasks of one
/// of H's parallel loops (ProductHooks) and adds each chunk of H's result as
/// soon as it is final.

#include <cstdint>

#include "hsslin/csr.hpp"
#include "hsslin/dense.hpp"

namespace hsslin {

/// Throws std::invalid_argument unless perm[0, n) is a permutation of 0..n-1
/// (`name` names it in the message).
void check_permutation(const std::int32_t* perm, Index n, const char* name);

/// Y = W X (transpose = false) or W^T X, with W = S + Pr^T H Pc: row i of
/// H's result goes to row row_perm[i] of W's, and column j of H reads
/// column col_perm[j] of W's (null: the identity). S and H must have the
/// same shape, and both permutations must be permutations (they are checked).
/// X and Y may each be row- or column-major; Y is overwritten.
template <class T, class Hierarchical>
void sparse_plus_apply(const CSRMatrix<T>& S, const Hierarchical& H, const std::int32_t* row_perm,
                       const std::int32_t* col_perm, const DenseView<const T>& X,
                       const DenseView<T>& Y, bool transpose);

}  // namespace hsslin
