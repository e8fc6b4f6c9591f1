#pragma once
/// \file hss_from_entries.hpp
/// \brief HSS and HODLR forms of a kernel matrix built from its entries alone, in near-linear time.

#include "hsslin/geometric_tree.hpp"
#include "hsslin/hodlr.hpp"
#include "hsslin/hss.hpp"
#include "hsslin/kernel_matrix.hpp"

namespace hsslin {

/// HSSMatrix<T>::from_kernel(K, geo, options) compresses the kernel matrix K
/// (points in `geo`'s tree order) to a symmetric HSS matrix by interpolative
/// decompositions on sampled entries.
///
/// Bottom-up, node tau's candidate rows (a leaf's points; else its
/// children's skeletons) are sampled against columns that stand for all of
/// the rest of the matrix:
///  * its near field (geo.near(tau)): at the leaves every point; above, the
///    skeletons of the near nodes' children, each weighted by a Cholesky
///    factor of the Gram matrix of that child's expanded basis, so the
///    sample carries the Frobenius norm of the columns the skeleton stands for;
///  * its far field: uniform random points of the rest, weighted by
///    sqrt(far size / samples) (smooth kernels vary slowly there).
/// A row ID of the sample (after a Gaussian sketch of its columns when it is
/// wide) gives tau's skeleton and transfer matrix; couplings are the
/// skeleton entries K(skel_a, skel_b). No step touches more than O(r) entries
/// per row, so the cost is O(N r^2) with ranks r; the N x N matrix is never
/// formed. The error ||K - H||_F / ||K||_F is estimated on held-out probes
/// restricted to random rows (those rows are evaluated exactly), and the
/// construction is repeated with a tighter node tolerance while it misses
/// `tol` (as HSSMatrix::compress does).

/// \brief The HODLR form of a symmetric HSS matrix: each off-diagonal block
/// U_a B V_b^T of expanded bases, recompressed by QR and SVD to the smallest
/// rank whose dropped singular values keep the added error within
/// tol * ||H||_F over all blocks (each block gets its share of the entries).
/// The error reported adds that to H's own estimate.
template <class T>
HODLRMatrix<T> hodlr_from_hss(const HSSMatrix<T>& H, double tol);

}  // namespace hsslin
