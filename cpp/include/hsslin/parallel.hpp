#pragma once
/// \file parallel.hpp
/// \brief Thread count, the one parallel loop the library uses, and product hooks.

#include <algorithm>
#include <functional>

#include "hsslin/config.hpp"

namespace hsslin {

/// Most threads per hardware thread set_num_threads accepts: more only
/// oversubscribes the cores (each extra thread is an OS thread that waits).
constexpr int kThreadsPerCore = 4;

/// \brief Number of threads hsslin's kernels use (>= 1).
int get_num_threads();
/// \brief The largest count set_num_threads accepts: kThreadsPerCore times
/// the hardware threads (HSSLIN_NUM_THREADS is clamped to it).
int max_num_threads();
/// \brief Sets the thread count; outside [1, max_num_threads()] throws.
/// Lowering it stops and joins the pool's workers beyond the new count.
void set_num_threads(Index n);

/// Work below which a loop runs on one thread, in multiply-adds (or entries
/// read once). Waking a worker costs tens of microseconds -- about what 2e5
/// multiply-adds on streamed data take on one core -- and on a machine whose
/// cores are busy (another library's spinning threads) it can cost far more.
constexpr double kMinParallelWork = 2e5;

/// \brief The one rule for whether a loop is worth threading: its total
/// `work` (see kMinParallelWork) is at least kMinParallelWork.
inline bool worth_threading(double work) { return work >= kMinParallelWork; }

namespace detail {
/// Runs body(i) for i in [begin, end) on the calling thread and the pool.
void run_parallel(Index begin, Index end, const std::function<void(Index)>& body);
}  // namespace detail

/// \brief Runs body(i) for i in [begin, end) on up to get_num_threads() threads.
///
/// Items are claimed from a shared counter by the calling thread and by
/// pool workers. The caller waits only for items already claimed, never
/// for a worker that has not woken up yet: on a machine whose cores are
/// busy (another library's spinning threads) the loop degrades to serial
/// speed instead of stalling for a scheduler time slice. Runs serially when
/// `parallel` is false or one thread is set. The first exception thrown by
/// any item is rethrown on the calling thread after all claimed items end.
template <class Body>
void parallel_for(Index begin, Index end, Body&& body, bool parallel = true) {
  if (!parallel || get_num_threads() <= 1 || end - begin <= 1) {
    for (Index i = begin; i < end; ++i) body(i);
    return;
  }
  detail::run_parallel(begin, end, std::function<void(Index)>(std::ref(body)));
}

/// \brief Work a caller folds into a hierarchical product's parallel loops.
///
/// The `tasks` items of `task` run in one of the product's parallel loops,
/// so that one parallel region serves both (a sparse product S x beside
/// H x, for S + H): HODLR runs them beside its input projections; HSS
/// beside its leaf sweep, or beside its inner levels walked on one thread
/// when those hold no more entries than `work` (the entries the tasks read,
/// a size hint; 0 = unknown). `rows_done(begin, count)` runs, on the thread
/// that finished them, once output rows [begin, begin + count) of the
/// product are final; the calls cover every output row once, after every
/// task has ended, and never overlap.
struct ProductHooks {
  Index tasks = 0;
  std::function<void(Index)> task;
  std::function<void(Index, Index)> rows_done;
  double work = 0.0;
};

/// \brief parallel_for over `items` items of `body` and the tasks of
/// `hooks` (may be null), the two lists alternating while both last: a
/// memory-bound item and a compute-bound task then tend to run side by side.
template <class Body>
void parallel_for_hooked(Index items, const ProductHooks* hooks, Body&& body, bool parallel) {
  const Index extra = hooks ? hooks->tasks : 0;
  const Index both = 2 * std::min(items, extra);
  parallel_for(
      0, items + extra,
      [&](Index t) {
        const bool own = t < both ? t % 2 == 0 : items > extra;
        const Index i = t < both ? t / 2 : t - both / 2;
        if (own)
          body(i);
        else
          hooks->task(i);
      },
      parallel || extra > 1);
}

}  // namespace hsslin
