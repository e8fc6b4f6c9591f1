#pragma once
/// \file parallel.hpp
/// \brief Thread count and the one parallel loop the library uses.

#include <exception>
#include <mutex>

#include "hsslin/config.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hsslin {

/// \brief Number of threads hsslin's kernels use (>= 1).
int get_num_threads();
/// \brief Sets the thread count; n < 1 throws.
void set_num_threads(int n);

/// \brief Runs body(i) for i in [begin, end) on up to get_num_threads() threads.
///
/// Runs serially when `parallel` is false (small inputs: a parallel region
/// costs microseconds). An exception thrown by any iteration is carried out
/// of the region and rethrown on the calling thread; remaining iterations
/// of other threads still run to completion.
template <class Body>
void parallel_for(Index begin, Index end, Body&& body, bool parallel = true) {
  const int threads = get_num_threads();
  if (!parallel || threads <= 1 || end - begin <= 1) {
    for (Index i = begin; i < end; ++i) body(i);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (Index i = begin; i < end; ++i) {
    try {
      body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace hsslin
