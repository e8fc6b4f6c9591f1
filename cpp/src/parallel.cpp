#include "hsslin/parallel.hpp"

#include <atomic>
#include <cstdlib>
#include <thread>

namespace hsslin {
namespace {

int initial_threads() {
  if (const char* env = std::getenv("HSSLIN_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= 4096) return static_cast<int>(n);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::atomic<int>& thread_count() {
  static std::atomic<int> count{initial_threads()};
  return count;
}

}  // namespace

int get_num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  HSSLIN_CHECK(n >= 1, "num_threads must be >= 1, got ", n);
  thread_count().store(n, std::memory_order_relaxed);
}

}  // namespace hsslin
