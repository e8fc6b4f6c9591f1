#include "hsslin/sparse_select.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

// Magnitude threshold t and tie budget: the k largest of |w| are every
// |w| > t plus the first `ties` entries with |w| == t. `mags` is scratch
// holding the magnitudes; it is reordered. Requires 0 < k <= mags.size().
template <class T>
std::pair<T, Index> threshold(std::vector<T>& mags, Index k) {
  auto kth = mags.begin() + (k - 1);
  std::nth_element(mags.begin(), kth, mags.end(), std::greater<T>());
  const T t = *kth;
  // Everything before kth is >= t; those equal to t share the tie budget.
  const Index above = Index(std::count_if(mags.begin(), kth, [t](T a) { return a > t; }));
  return {t, k - above};
}

template <class T>
void magnitudes(const T* w, Index n, T* out) {
  for (Index j = 0; j < n; ++j) {
    HSSLIN_CHECK(std::isfinite(w[j]), "W has a non-finite entry at flat position ", j);
    out[j] = std::abs(w[j]);
  }
}

// Appends the kept entries of one row; `ties` is decremented as ties are taken.
template <class T>
void keep_row(const T* w, Index n, T t, Index& ties, T* values, std::int32_t* indices,
              Index& count) {
  for (Index j = 0; j < n; ++j) {
    const T a = std::abs(w[j]);
    const bool keep = a > t || (a == t && ties > 0);
    if (keep) {
      if (!(a > t)) --ties;
      values[count] = w[j];
      indices[count] = std::int32_t(j);
      ++count;
    }
  }
}

}  // namespace

Index top_count(double rho, Index total) {
  HSSLIN_CHECK(rho >= 0.0 && rho < 1.0, "rho must lie in [0, 1), got ", rho);
  HSSLIN_CHECK(total >= 0 && total < (Index(1) << 53), "total out of range: ", total);
  const double p = rho * double(total);
  // rho = 0.1 is stored as 0.1000000000000000055..., so 0.1 * 2000 would
  // ceil to 201; a product within a few ulps of an integer is that integer.
  const double nearest = std::round(p);
  const double k = std::abs(p - nearest) <= 8 * std::numeric_limits<double>::epsilon() * p
                       ? nearest
                       : std::ceil(p);
  return std::min<Index>(Index(k), total);
}

template <class T>
CSRMatrix<T> top_magnitude(const ConstRowMap<T>& W, double rho, bool per_row) {
  const Index m = W.rows(), n = W.cols();
  HSSLIN_CHECK(n <= Index(std::numeric_limits<std::int32_t>::max()), "W has ", n,
               " columns, more than int32 indices hold");
  const Index ld = W.outerStride();
  std::vector<std::int64_t> indptr(size_t(m + 1), 0);
  if (per_row) {
    const Index kr = top_count(rho, n);
    std::vector<T> values(static_cast<size_t>(m * kr));
    std::vector<std::int32_t> indices(static_cast<size_t>(m * kr));
    for (Index i = 0; i <= m; ++i) indptr[size_t(i)] = i * kr;
    const int threads = get_num_threads();
    const Index chunks = worth_threading(double(m) * double(n)) ? Index(threads) : 1;
    parallel_for(
        0, chunks,
        [&](Index c) {
          std::vector<T> mags(static_cast<size_t>(n));
          for (Index i = m * c / chunks; i < m * (c + 1) / chunks; ++i) {
            const T* w = W.data() + i * ld;
            magnitudes(w, n, mags.data());
            if (kr == 0) continue;
            auto [t, ties] = threshold(mags, kr);
            Index count = i * kr;
            keep_row(w, n, t, ties, values.data(), indices.data(), count);
          }
        },
        chunks > 1);
    return CSRMatrix<T>(m, n, std::move(values), std::move(indices), std::move(indptr));
  }
  const Index k = top_count(rho, m * n);
  std::vector<T> mags(static_cast<size_t>(m * n));
  for (Index i = 0; i < m; ++i) magnitudes(W.data() + i * ld, n, mags.data() + i * n);
  std::vector<T> values(static_cast<size_t>(k));
  std::vector<std::int32_t> indices(static_cast<size_t>(k));
  if (k > 0) {
    auto [t, ties] = threshold(mags, k);
    Index count = 0;
    for (Index i = 0; i < m; ++i) {
      keep_row(W.data() + i * ld, n, t, ties, values.data(), indices.data(), count);
      indptr[size_t(i + 1)] = count;
    }
  }
  return CSRMatrix<T>(m, n, std::move(values), std::move(indices), std::move(indptr));
}

#define HSSLIN_INSTANTIATE(T) \
  template CSRMatrix<T> top_magnitude(const ConstRowMap<T>&, double, bool);
HSSLIN_INSTANTIATE(float)
HSSLIN_INSTANTIATE(double)

}  // namespace hsslin
