#pragma once
/// \file parallel.hpp
/// \brief Thread count and the one parallel loop the library uses.

#include <functional>

#include "hsslin/config.hpp"

namespace hsslin {

/// \brief Number of threads hsslin's kernels use (>= 1).
int get_num_threads();
/// \brief Sets the thread count; n < 1 throws.
void set_num_threads(int n);

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

}  // namespace hsslin
