#include "hsslin/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace hsslin {
namespace {

constexpr auto kSpin = std::chrono::microseconds(20);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int hardware_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

int initial_threads() {
  if (const char* env = std::getenv("HSSLIN_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1) return int(std::min<long>(n, max_num_threads()));
  }
  return hardware_threads();
}

std::atomic<int>& thread_count() {
  static std::atomic<int> count{initial_threads()};
  return count;
}

/// One loop handed to the pool.
struct Job {
  const std::function<void(Index)>* body = nullptr;
  Index end = 0;
  std::atomic<Index> next{0};
  std::atomic<Index> active{0};  // items claimed and not finished
  std::exception_ptr error;
  std::mutex error_mutex;

  // Claims and runs items until none are left.
  void work() {
    while (true) {
      active.fetch_add(1, std::memory_order_acq_rel);
      const Index i = next.fetch_add(1, std::memory_order_acq_rel);
      if (i >= end) {
        active.fetch_sub(1, std::memory_order_acq_rel);
        return;
      }
      try {
        (*body)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
      active.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
};

/// Persistent workers. After a loop a worker watches for the next one for
/// kSpin before it sleeps on the condition variable: a product runs several
/// short loops back to back (the levels of a tree), and a sleeping worker
/// takes tens of microseconds to wake, longer than many of those loops.
class Pool {
 public:
  static Pool& instance() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static teardown
    return *pool;
  }

  // Returns false when another caller holds the pool (the caller then runs serially).
  // The job is shared: a worker that wakes after the caller returned still
  // holds it, finds every item claimed and never touches the body.
  bool run(const std::shared_ptr<Job>& job, int helpers) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      try {
        while (int(workers_.size()) < helpers) {
          const int id = int(workers_.size());
          workers_.emplace_back([this, id] { loop(id); });
        }
      } catch (const std::system_error&) {
        // The system refused another thread: run with the workers there are.
        helpers = int(workers_.size());
      }
      job_ = job;
      wanted_ = helpers;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    job->work();
    // Late workers find no item left; wait only for items in flight.
    while (job->active.load(std::memory_order_acquire) > 0) std::this_thread::yield();
    std::lock_guard<std::mutex> lock(mutex_);
    job_.reset();
    return true;
  }

  /// Stops and joins the workers beyond the first `keep`. Waits for a loop
  /// in flight to end first (a product on another thread keeps its workers).
  void shrink(int keep) {
    std::lock_guard<std::mutex> busy(busy_);
    std::vector<std::thread> leaving;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (int(workers_.size()) <= keep) return;
      keep_ = keep;
      for (size_t i = size_t(keep); i < workers_.size(); ++i)
        leaving.push_back(std::move(workers_[i]));
      workers_.resize(size_t(keep));
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (std::thread& t : leaving) t.join();
    std::lock_guard<std::mutex> lock(mutex_);
    keep_ = std::numeric_limits<int>::max();
  }

 private:
  void loop(int id) {
    std::uint64_t seen = 0;
    while (true) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      while (generation_.load(std::memory_order_acquire) == seen &&
             std::chrono::steady_clock::now() < until)
        cpu_relax();
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        seen = generation_.load(std::memory_order_relaxed);
        if (id >= keep_) return;              // shrink() let this worker go
        if (!job_ || wanted_ <= 0) continue;  // the loop is over or has its helpers
        --wanted_;
        job = job_;
      }
      job->work();
    }
  }

  std::mutex busy_, mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  std::shared_ptr<Job> job_;
  std::atomic<std::uint64_t> generation_{0};  // changed under mutex_, read without it
  int wanted_ = 0;
  int keep_ = std::numeric_limits<int>::max();  // workers with a larger id exit (shrink)
};

}  // namespace

int get_num_threads() { return thread_count().load(std::memory_order_relaxed); }

int max_num_threads() { return kThreadsPerCore * hardware_threads(); }

void set_num_threads(Index n) {
  HSSLIN_CHECK(n >= 1 && n <= max_num_threads(), "num_threads must be in [1, ", max_num_threads(),
               "] (", kThreadsPerCore, " per hardware thread), got ", n);
  thread_count().store(int(n), std::memory_order_relaxed);
  // A loop uses n - 1 workers besides its caller: the others go.
  Pool::instance().shrink(int(n) - 1);
}

namespace detail {

void run_parallel(Index begin, Index end, const std::function<void(Index)>& body) {
  const std::function<void(Index)> shifted = [&](Index i) { body(begin + i); };
  auto job = std::make_shared<Job>();
  job->body = &shifted;
  job->end = end - begin;
  const int helpers = int(std::min<Index>(get_num_threads(), end - begin)) - 1;
  if (helpers <= 0 || !Pool::instance().run(job, helpers)) {
    for (Index i = begin; i < end; ++i) body(i);
    return;
  }
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace detail

}  // namespace hsslin
