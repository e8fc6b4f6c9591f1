#include "hsslin/rcm.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "hsslin/csr.hpp"
#include "hsslin/parallel.hpp"

namespace hsslin {
namespace {

/// Undirected graph in adjacency (CSR) form. Built graphs own their arrays and
/// hold no self-loops or repeats; a symmetric pattern is used as it is (a view:
/// self-loops and repeats are then harmless, as every search skips visited
/// nodes, and only count in the degrees).
struct Graph {
  Graph() = default;
  Graph(Graph&&) = default;  // moving the vectors keeps their buffers: the pointers stay valid
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Index nodes = 0;
  const std::int64_t* xadj = nullptr;
  const std::int32_t* adj = nullptr;
  std::vector<std::int64_t> xadj_store;
  std::vector<std::int32_t> adj_store;
  Index degree(Index v) const { return xadj[size_t(v + 1)] - xadj[size_t(v)]; }
};

// The graph of a pattern S (m x n), built from S and its transpose.
// Square: node i's neighbours are row i of S and row i of S^T (the graph of
// S + S^T), without i itself. Bipartite (rectangular): rows are nodes
// [0, m) and columns nodes [m, m + n); row i's neighbours are m + row i of
// S, column j's are row j of S^T. S^T comes from a counting sort over
// columns, split by column range over the threads (each scans all of S and
// writes only its own columns). Repeats are dropped without a branch (every
// neighbour is written; the count advances only past new ones): for a
// symmetric pattern half the candidates are repeats, and a branch on them is
// mispredicted half the time.
Graph graph_with_transpose(const SparsePattern& S, bool bipartite) {
  const Index m = S.rows, n = S.cols;
  const auto* ptr = S.indptr;
  const auto* idx = S.indices;
  const std::int64_t nnz = ptr[m];
  std::vector<std::int64_t> tptr(size_t(n + 1), 0);
  for (std::int64_t p = 0; p < nnz; ++p) ++tptr[size_t(idx[p]) + 1];
  for (Index j = 0; j < n; ++j) tptr[size_t(j + 1)] += tptr[size_t(j)];
  std::unique_ptr<std::int32_t[]> tidx(new std::int32_t[size_t(std::max<std::int64_t>(nnz, 1))]);
  const Index parts = std::max<Index>(1, std::min<Index>(get_num_threads(), 16));
  parallel_for(
      0, parts,
      [&](Index t) {
        const Index c0 = n * t / parts, c1 = n * (t + 1) / parts;
        std::vector<std::int64_t> fill(tptr.begin() + c0, tptr.begin() + c1);
        for (Index i = 0; i < m; ++i)
          for (std::int64_t p = ptr[i]; p < ptr[i + 1]; ++p) {
            const Index j = idx[p];
            if (j >= c0 && j < c1) tidx[size_t(fill[size_t(j - c0)]++)] = std::int32_t(i);
          }
      },
      parts > 1 && worth_threading(double(nnz)));
  const Index nodes = bipartite ? m + n : m;
  const Index shift = bipartite ? m : 0;  // column j is node shift + j
  Graph g;
  g.nodes = nodes;
  g.xadj_store.resize(size_t(nodes + 1));
  g.adj_store.resize(size_t(2 * nnz));
  std::int32_t* out = g.adj_store.data();
  std::vector<std::int32_t> seen(size_t(nodes), -1);
  std::int64_t n_out = 0;
  auto add = [&](std::int32_t u, std::int32_t v) {
    const std::int32_t was = seen[size_t(v)];
    seen[size_t(v)] = u;
    out[n_out] = v;
    n_out += std::int64_t((was != u) & (v != u));
  };
  for (Index i = 0; i < nodes; ++i) {
    g.xadj_store[size_t(i)] = n_out;
    const auto u = std::int32_t(i);
    if (i < m)
      for (std::int64_t p = ptr[i]; p < ptr[i + 1]; ++p) add(u, std::int32_t(shift + idx[p]));
    if (const Index j = i - shift; j >= 0)  // node i is column j: row j of S^T
      for (std::int64_t p = tptr[size_t(j)]; p < tptr[size_t(j + 1)]; ++p) add(u, tidx[size_t(p)]);
  }
  g.xadj_store[size_t(nodes)] = n_out;
  g.adj_store.resize(size_t(n_out));
  g.xadj = g.xadj_store.data();
  g.adj = g.adj_store.data();
  return g;
}

// Whether the pattern E (entries counted with their multiplicity) equals its
// transpose, tested in one pass as a^T E b == a^T E^T b for random vectors
// a, b of 64-bit integers (Freivalds' test; arithmetic mod 2^64): equal
// when E = E^T, and unequal otherwise but with probability about 2^-63. A
// false pass is caught in order_component. Per row i the test needs only
// the sums of a and b over the row, so it costs two loads and two adds per
// entry. A symmetric pattern that repeats (i, j) more often than (j, i)
// fails, and is symmetrised.
bool is_symmetric_pattern(const SparsePattern& S) {
  auto mix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<std::uint64_t> a(size_t(S.rows)), b(size_t(S.rows));
  for (Index i = 0; i < S.rows; ++i) {
    a[size_t(i)] = mix(std::uint64_t(2 * i));
    b[size_t(i)] = mix(std::uint64_t(2 * i + 1));
  }
  std::uint64_t forward = 0, backward = 0;  // a^T E b and b^T E a = a^T E^T b
  for (Index i = 0; i < S.rows; ++i) {
    std::uint64_t sum_a = 0, sum_b = 0;
    for (std::int64_t p = S.indptr[i]; p < S.indptr[i + 1]; ++p) {
      sum_a += a[size_t(S.indices[p])];
      sum_b += b[size_t(S.indices[p])];
    }
    forward += a[size_t(i)] * sum_b;
    backward += b[size_t(i)] * sum_a;
  }
  return forward == backward;
}

Graph graph_of(const SparsePattern& S, bool symmetric_mode) {
  const Index m = S.rows;
  const auto* ptr = S.indptr;
  const auto* idx = S.indices;
  if (S.rows != S.cols) return graph_with_transpose(S, true);
  if (symmetric_mode && is_symmetric_pattern(S)) {
    // Trusted symmetric: the pattern is the graph; no copy.
    Graph g;
    g.nodes = m;
    g.xadj = ptr;
    g.adj = idx;
    return g;
  }
  return graph_with_transpose(S, false);
}

Index min_degree_node(const Graph& g, const std::int32_t* nodes, Index count) {
  Index best = nodes[0];
  for (Index q = 1; q < count; ++q) {
    const Index v = nodes[q];
    const Index dv = g.degree(v), db = g.degree(best);
    if (dv < db || (dv == db && v < best)) best = v;
  }
  return best;
}

/// What one Cuthill-McKee pass found besides the order.
struct CMResult {
  Index eccentricity = 0;  ///< levels - 1 of the root's level structure
  size_t last_begin = 0;   ///< where the last level starts in `order`
  Index bandwidth = 0;     ///< of the component in this order
};

// Appends the Cuthill-McKee order of root's component to `order`: a
// breadth-first search that numbers each node's unnumbered neighbours by
// increasing degree (ties: lower index). Its levels are those of a plain
// search from root (the order within a level does not change which level a
// node is in), so it also reports the eccentricity and the last level, as a
// search would.
//
// The bandwidth comes without looking up positions: a node v is numbered
// while its lowest-numbered neighbour p (its parent) is processed -- any
// neighbour numbered before p would have been processed before p and would
// have numbered v -- so v's widest edge is pos(v) - pos(p), and the
// component's bandwidth is the largest such difference, known when v is
// appended. Each neighbour list is sorted on 64-bit keys (degree, index)
// that are read once per node, not once per comparison; `keys` is scratch
// of at least the largest degree.
CMResult cuthill_mckee_component(const Graph& g, Index root, std::vector<char>& numbered,
                                 std::vector<std::int32_t>& order,
                                 std::vector<std::uint64_t>& keys) {
  CMResult r;
  size_t head = order.size();
  size_t level_end = head + 1;  // end of the level being processed
  r.last_begin = head;
  order.push_back(std::int32_t(root));
  numbered[size_t(root)] = 1;
  std::uint64_t* key = keys.data();
  while (head < order.size()) {
    if (head == level_end) {  // the next level starts here
      ++r.eccentricity;
      r.last_begin = head;
      level_end = order.size();
    }
    const size_t q = head;
    const Index u = order[head++];
    size_t count = 0;
    for (std::int64_t p = g.xadj[size_t(u)]; p < g.xadj[size_t(u + 1)]; ++p) {
      const std::int32_t v = g.adj[size_t(p)];
      if (numbered[size_t(v)]) continue;
      numbered[size_t(v)] = 1;
      key[count++] = (std::uint64_t(g.degree(v)) << 32) | std::uint32_t(v);
    }
    if (count == 0) continue;
    // Insertion sort: neighbour lists are short, and it beats std::sort there.
    for (size_t a = 1; a < count; ++a) {
      const std::uint64_t k = key[a];
      size_t b = a;
      for (; b > 0 && k < key[b - 1]; --b) key[b] = key[b - 1];
      key[b] = k;
    }
    for (size_t a = 0; a < count; ++a) order.push_back(std::int32_t(std::uint32_t(key[a])));
    r.bandwidth = std::max<Index>(r.bandwidth, Index(order.size() - 1 - q));
  }
  return r;
}

// Numbers the component of `low`, its lowest-degree node, starting from the
// George-Liu pseudo-peripheral node: move from `low` to the lowest-degree
// node of the last level of its rooted level structure while the
// eccentricity grows. A Cuthill-McKee pass has the levels of a plain
// breadth-first search from its root (see above), so every probe of that
// search is a Cuthill-McKee pass: the pseudo-peripheral node's order then
// costs nothing more, and each probe is also a candidate order. RCM is a
// heuristic and no start wins on every graph, so the order of smallest
// bandwidth among the starts tried (`low` -- scipy's start -- and every
// probe) is kept; on a tie the later, more peripheral start. On a random
// geometric graph of 200k nodes that is three passes: `low`, the
// pseudo-peripheral node, and the probe that confirms it.
//
// On a symmetric graph every pass numbers the same nodes (the component).
// Returns false, with `order` and `numbered` as they were before the call,
// when a pass numbers others: the graph was not symmetric after all.
bool order_component(const Graph& g, Index low, std::vector<char>& numbered,
                     std::vector<std::int32_t>& order, std::vector<std::uint64_t>& keys,
                     std::vector<std::int32_t>& best) {
  const auto first = std::ptrdiff_t(order.size());
  CMResult r = cuthill_mckee_component(g, low, numbered, order, keys);
  Index ecc = r.eccentricity, best_bandwidth = r.bandwidth;
  best.assign(order.begin() + first, order.end());
  const size_t members = best.size();
  auto forget_pass = [&] {  // un-numbers what the last pass numbered
    for (auto q = order.begin() + first; q != order.end(); ++q) numbered[size_t(*q)] = 0;
    order.resize(size_t(first));
  };
  for (;;) {
    const Index x =
        min_degree_node(g, order.data() + r.last_begin, Index(order.size() - r.last_begin));
    forget_pass();
    r = cuthill_mckee_component(g, x, numbered, order, keys);
    bool same = order.size() - size_t(first) == members;
    for (size_t q = 0; same && q < members; ++q) same = numbered[size_t(best[q])] != 0;
    if (!same) {
      forget_pass();
      return false;
    }
    if (r.bandwidth <= best_bandwidth) {
      best_bandwidth = r.bandwidth;
      best.assign(order.begin() + first, order.end());
    }
    if (r.eccentricity <= ecc) break;
    ecc = r.eccentricity;
  }
  // The same nodes in every pass: the numbered flags already match `best`.
  std::copy(best.begin(), best.end(), order.begin() + first);
  return true;
}

std::vector<Index> inverse_permutation(const Index* perm, Index n, const char* name) {
  std::vector<Index> inv(size_t(n), -1);
  for (Index p = 0; p < n; ++p) {
    const Index v = perm[p];
    HSSLIN_CHECK(v >= 0 && v < n && inv[size_t(v)] < 0, name, " is not a permutation of 0..", n - 1,
                 " (entry ", p, " = ", v, ")");
    inv[size_t(v)] = p;
  }
  return inv;
}

// The Cuthill-McKee order of every component of g, or an empty vector
// when a component was numbered differently by two passes (g is then not
// symmetric; see order_component).
std::vector<std::int32_t> cuthill_mckee(const Graph& g) {
  std::vector<char> numbered(size_t(g.nodes), 0);
  std::vector<std::int32_t> order;
  order.reserve(size_t(g.nodes));
  std::vector<std::int32_t> saved;
  // Components are started from their lowest-degree node: visiting all nodes
  // by increasing degree (then index), the first unnumbered one is the
  // lowest-degree node of a component not yet numbered. A counting sort.
  Index max_degree = 0;
  for (Index v = 0; v < g.nodes; ++v) max_degree = std::max(max_degree, g.degree(v));
  std::vector<std::uint64_t> keys(static_cast<size_t>(max_degree));
  std::vector<Index> start(size_t(max_degree + 2), 0);
  for (Index v = 0; v < g.nodes; ++v) ++start[size_t(g.degree(v) + 1)];
  for (Index d = 0; d <= max_degree; ++d) start[size_t(d + 1)] += start[size_t(d)];
  std::vector<std::int32_t> by_degree(size_t(g.nodes));
  for (Index v = 0; v < g.nodes; ++v)
    by_degree[size_t(start[size_t(g.degree(v))]++)] = std::int32_t(v);
  for (const std::int32_t v : by_degree) {
    if (numbered[size_t(v)]) continue;
    if (g.degree(v) == 0) {
      numbered[size_t(v)] = 1;
      order.push_back(v);
      continue;
    }
    if (!order_component(g, v, numbered, order, keys, saved)) return {};
  }
  return order;
}

}  // namespace

void validate_pattern(const SparsePattern& S) {
  HSSLIN_CHECK(S.indptr != nullptr, "indptr is missing");
  HSSLIN_CHECK(S.rows < (Index(1) << 31) - S.cols, "pattern too large: ", S.rows, "x", S.cols);
  CSRMatrix<float>::validate(S.rows, S.cols, S.rows >= 0 ? S.indptr[S.rows] : 0, S.indices,
                             S.indptr);
}

Ordering reverse_cuthill_mckee(const SparsePattern& S, bool symmetric_mode) {
  validate_pattern(S);
  const Index nodes = S.rows == S.cols ? S.rows : S.rows + S.cols;
  std::vector<std::int32_t> order = cuthill_mckee(graph_of(S, symmetric_mode));
  if (Index(order.size()) != nodes)  // a pattern that only looked symmetric
    order = cuthill_mckee(graph_with_transpose(S, false));
  HSSLIN_ENSURE(Index(order.size()) == nodes, "reverse_cuthill_mckee: ordered ", order.size(),
                " of ", nodes, " nodes");
  std::reverse(order.begin(), order.end());
  Ordering result;
  if (S.rows == S.cols) {
    result.rows.assign(order.begin(), order.end());
    result.cols = result.rows;
    return result;
  }
  result.rows.reserve(size_t(S.rows));
  result.cols.reserve(size_t(S.cols));
  for (const std::int32_t v : order) {
    if (v < S.rows)
      result.rows.push_back(v);
    else
      result.cols.push_back(v - S.rows);
  }
  return result;
}

Index bandwidth(const SparsePattern& S, const Index* row_perm, const Index* col_perm) {
  validate_pattern(S);
  const std::vector<Index> rpos = inverse_permutation(row_perm, S.rows, "row_perm");
  const std::vector<Index> cpos = inverse_permutation(col_perm, S.cols, "col_perm");
  Index bw = 0;
  for (Index i = 0; i < S.rows; ++i)
    for (std::int64_t p = S.indptr[i]; p < S.indptr[i + 1]; ++p)
      bw = std::max(bw, std::abs(rpos[size_t(i)] - cpos[size_t(S.indices[p])]));
  return bw;
}

}  // namespace hsslin
