#include "hsslin/rcm.hpp"

#include <algorithm>
#include <cstdlib>

#include "hsslin/csr.hpp"

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

// Builds a graph from a callback that emits directed edges: called once to
// count and once to fill. Repeated edges are then dropped per node.
template <class ForEachEdge>
Graph build_graph(Index nodes, ForEachEdge&& for_each_edge) {
  Graph g;
  g.nodes = nodes;
  auto& xadj = g.xadj_store;
  auto& adj = g.adj_store;
  xadj.assign(size_t(nodes + 1), 0);
  for_each_edge([&](Index u, Index) { ++xadj[size_t(u + 1)]; });
  for (Index v = 0; v < nodes; ++v) xadj[size_t(v + 1)] += xadj[size_t(v)];
  adj.resize(size_t(xadj[size_t(nodes)]));
  std::vector<std::int64_t> fill(xadj.begin(), xadj.end() - 1);
  for_each_edge([&](Index u, Index v) { adj[size_t(fill[size_t(u)]++)] = std::int32_t(v); });
  // Compact in place: a node's new start never passes its old one.
  std::vector<std::int32_t> seen(size_t(nodes), -1);
  std::int64_t out = 0;
  for (Index u = 0; u < nodes; ++u) {
    const std::int64_t begin = xadj[size_t(u)], end = xadj[size_t(u + 1)];
    xadj[size_t(u)] = out;
    for (std::int64_t p = begin; p < end; ++p) {
      const std::int32_t v = adj[size_t(p)];
      if (seen[size_t(v)] == std::int32_t(u)) continue;
      seen[size_t(v)] = std::int32_t(u);
      adj[size_t(out++)] = v;
    }
  }
  xadj[size_t(nodes)] = out;
  adj.resize(size_t(out));
  g.xadj = xadj.data();
  g.adj = adj.data();
  return g;
}

Graph graph_of(const SparsePattern& S, bool symmetric_mode) {
  const Index m = S.rows;
  const auto* ptr = S.indptr;
  const auto* idx = S.indices;
  if (S.rows != S.cols) {
    // Bipartite: rows are nodes [0, m), columns are nodes [m, m + n).
    return build_graph(m + S.cols, [&](auto&& edge) {
      for (Index i = 0; i < m; ++i)
        for (std::int64_t p = ptr[i]; p < ptr[i + 1]; ++p) {
          edge(i, m + idx[p]);
          edge(m + idx[p], i);
        }
    });
  }
  if (symmetric_mode) {
    // Trusted symmetric: the pattern is the graph; no copy.
    Graph g;
    g.nodes = m;
    g.xadj = ptr;
    g.adj = idx;
    return g;
  }
  return build_graph(m, [&](auto&& edge) {
    for (Index i = 0; i < m; ++i)
      for (std::int64_t p = ptr[i]; p < ptr[i + 1]; ++p)
        if (idx[p] != i) {
          edge(i, Index(idx[p]));
          edge(Index(idx[p]), i);
        }
  });
}

/// Breadth-first searches over the not yet numbered nodes of one graph.
class LevelSearch {
 public:
  explicit LevelSearch(const Graph& g)
      : g_(g), stamp_(size_t(g.nodes), 0), queue_(size_t(g.nodes)) {}

  /// Rooted level structure from `root`; returns the eccentricity and leaves
  /// the component in queue()[0, size()), the last level from last_begin().
  Index search(Index root, const std::vector<char>& /*numbered*/) {
    ++current_;
    size_ = 0;
    queue_[size_++] = std::int32_t(root);
    stamp_[size_t(root)] = current_;
    Index level_begin = 0, ecc = 0;
    for (;;) {
      const Index level_end = size_;
      for (Index q = level_begin; q < level_end; ++q) {
        const Index u = queue_[size_t(q)];
        for (std::int64_t p = g_.xadj[size_t(u)]; p < g_.xadj[size_t(u + 1)]; ++p) {
          const std::int32_t v = g_.adj[size_t(p)];
          // The stamp alone marks visited nodes (whether numbered or not):
          // a search stays within root's component.
          if (stamp_[size_t(v)] == current_) continue;
          stamp_[size_t(v)] = current_;
          queue_[size_++] = v;
        }
      }
      if (size_ == level_end) {
        last_begin_ = level_begin;
        return ecc;
      }
      level_begin = level_end;
      ++ecc;
    }
  }
  const std::int32_t* queue() const { return queue_.data(); }
  Index size() const { return size_; }
  Index last_begin() const { return last_begin_; }

 private:
  const Graph& g_;
  std::vector<std::int32_t> stamp_;
  std::vector<std::int32_t> queue_;
  std::int32_t current_ = 0;
  Index size_ = 0, last_begin_ = 0;
};

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
// increasing degree. Its levels are those of a plain search from root (the
// order within a level does not change which level a node is in), so it also
// reports the eccentricity and the last level, as a search would; and since
// every neighbour of u is numbered once u is processed, the bandwidth is the
// largest |position(u) - position(v)| seen on the way (`position` is scratch
// indexed by node).
CMResult cuthill_mckee_component(const Graph& g, Index root, std::vector<char>& numbered,
                                 std::vector<std::int32_t>& order,
                                 std::vector<std::int32_t>& position) {
  const auto by_degree = [&](std::int32_t a, std::int32_t b) {
    const Index da = g.degree(a), db = g.degree(b);
    return da < db || (da == db && a < b);
  };
  CMResult r;
  size_t head = order.size();
  size_t level_end = head + 1;  // end of the level being processed
  r.last_begin = head;
  position[size_t(root)] = std::int32_t(head);
  order.push_back(std::int32_t(root));
  numbered[size_t(root)] = 1;
  while (head < order.size()) {
    if (head == level_end) {  // the next level starts here
      ++r.eccentricity;
      r.last_begin = head;
      level_end = order.size();
    }
    const Index q = Index(head);
    const Index u = order[head++];
    const size_t first = order.size();
    for (std::int64_t p = g.xadj[size_t(u)]; p < g.xadj[size_t(u + 1)]; ++p) {
      const std::int32_t v = g.adj[size_t(p)];
      if (numbered[size_t(v)]) {
        r.bandwidth = std::max<Index>(r.bandwidth, std::abs(q - Index(position[size_t(v)])));
        continue;
      }
      numbered[size_t(v)] = 1;
      order.push_back(v);
    }
    // Insertion sort: neighbour lists are short, and it beats std::sort there.
    for (size_t a = first + 1; a < order.size(); ++a) {
      const std::int32_t v = order[a];
      size_t b = a;
      for (; b > first && by_degree(v, order[b - 1]); --b) order[b] = order[b - 1];
      order[b] = v;
    }
    for (size_t a = first; a < order.size(); ++a) position[size_t(order[a])] = std::int32_t(a);
    if (order.size() > first)
      r.bandwidth = std::max<Index>(r.bandwidth, Index(order.size() - 1) - q);
  }
  return r;
}

// Numbers the component of `low`, its lowest-degree node. RCM is a heuristic
// and no single start node wins on every graph, so two are tried -- `low`
// (the start scipy uses) and the George-Liu pseudo-peripheral node -- and the
// order with the smaller bandwidth is kept (the pseudo-peripheral one on a
// tie). George-Liu moves from `low` to the lowest-degree node of the last
// level while the eccentricity grows; the Cuthill-McKee pass from `low` is
// its first search, so trying both costs one order more than George-Liu
// alone.
void order_component(const Graph& g, Index low, LevelSearch& bfs, std::vector<char>& numbered,
                     std::vector<std::int32_t>& order, std::vector<std::int32_t>& position,
                     std::vector<std::int32_t>& saved) {
  const size_t first = order.size();
  const CMResult from_low = cuthill_mckee_component(g, low, numbered, order, position);
  Index root = low, ecc = from_low.eccentricity;
  Index x = min_degree_node(g, order.data() + from_low.last_begin,
                            Index(order.size() - from_low.last_begin));
  for (;;) {
    const Index ecc_x = bfs.search(x, numbered);
    if (ecc_x <= ecc) break;
    root = x;
    ecc = ecc_x;
    x = min_degree_node(g, bfs.queue() + bfs.last_begin(), bfs.size() - bfs.last_begin());
  }
  if (root == low) return;
  saved.assign(order.begin() + std::ptrdiff_t(first), order.end());
  for (size_t q = first; q < order.size(); ++q) numbered[size_t(order[q])] = 0;
  order.resize(first);
  const CMResult from_root = cuthill_mckee_component(g, root, numbered, order, position);
  if (from_root.bandwidth <= from_low.bandwidth) return;
  std::copy(saved.begin(), saved.end(), order.begin() + std::ptrdiff_t(first));
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

}  // namespace

void validate_pattern(const SparsePattern& S) {
  HSSLIN_CHECK(S.indptr != nullptr, "indptr is missing");
  HSSLIN_CHECK(S.rows < (Index(1) << 31) - S.cols, "pattern too large: ", S.rows, "x", S.cols);
  CSRMatrix<float>::validate(S.rows, S.cols, S.rows >= 0 ? S.indptr[S.rows] : 0, S.indices,
                             S.indptr);
}

Ordering reverse_cuthill_mckee(const SparsePattern& S, bool symmetric_mode) {
  validate_pattern(S);
  const Graph g = graph_of(S, symmetric_mode);
  std::vector<char> numbered(size_t(g.nodes), 0);
  std::vector<std::int32_t> order;
  order.reserve(size_t(g.nodes));
  LevelSearch bfs(g);
  std::vector<std::int32_t> position(size_t(g.nodes)), saved;
  // Components are started from their lowest-degree node: visiting all nodes
  // by increasing degree (then index), the first unnumbered one is the
  // lowest-degree node of a component not yet numbered. A counting sort.
  Index max_degree = 0;
  for (Index v = 0; v < g.nodes; ++v) max_degree = std::max(max_degree, g.degree(v));
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
    order_component(g, v, bfs, numbered, order, position, saved);
  }
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
