// The one threading helper: ParallelFor over [0, n) giving (index, thread_id), carrying the
// first exception out of the parallel region, stopping between indices when the caller is
// interrupted. Compiles to a plain loop without OpenMP.
//
// Interruption: the binding layer installs, for the calling thread, a poll ("has the user
// pressed Ctrl-C?") with an InterruptScope. ParallelFor asks it from the calling thread
// between indices, at most every kPollInterval; once it answers yes, no thread starts another
// index and ParallelFor throws Interrupted. Kernels whose single index may run long call
// CheckInterrupt() inside it, e.g. once per tree or background row.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace treelens {

// Number of threads to use: n_threads <= 0 means all available cores; a larger request is
// clamped to the processors this process may run on (no failed thread creation).
inline int ResolveThreads(int n_threads) {
#ifdef _OPENMP
  const int procs = std::max(1, omp_get_num_procs());
  if (n_threads <= 0) return std::min(omp_get_max_threads(), procs);
  return std::min(n_threads, procs);
#else
  (void)n_threads;
  return 1;
#endif
}

// Thrown by ParallelFor and CheckInterrupt once the caller's poll asked to stop.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

namespace detail {

constexpr std::chrono::milliseconds kPollInterval{50};

struct CallState {
  std::function<bool()> poll;
  std::thread::id caller;
  std::chrono::steady_clock::time_point next_poll;
  std::atomic<bool> stop{false};
};

// The call the running thread works for: the caller's scope, or the one ParallelFor lends a
// worker thread for the duration of an index.
inline thread_local CallState* current_call = nullptr;

class LendCall {
 public:
  explicit LendCall(CallState* call) : saved_(current_call) { current_call = call; }
  ~LendCall() { current_call = saved_; }
  LendCall(const LendCall&) = delete;
  LendCall& operator=(const LendCall&) = delete;

 private:
  CallState* saved_;
};

}  // namespace detail

// Installs `poll` for core calls made by this thread while the scope lives. poll runs on
// this thread only; returning true stops the call with Interrupted.
class InterruptScope {
 public:
  explicit InterruptScope(std::function<bool()> poll) : lend_(&state_) {
    state_.poll = std::move(poll);
    state_.caller = std::this_thread::get_id();
    state_.next_poll = std::chrono::steady_clock::now() + detail::kPollInterval;
  }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  detail::CallState state_;
  detail::LendCall lend_;
};

// Throws Interrupted when the current call was asked to stop; polls from the calling thread.
inline void CheckInterrupt() {
  detail::CallState* call = detail::current_call;
  if (call == nullptr) return;
  if (!call->stop.load(std::memory_order_relaxed) &&
      std::this_thread::get_id() == call->caller) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= call->next_poll) {
      if (call->poll()) call->stop.store(true, std::memory_order_relaxed);
      call->next_poll = std::chrono::steady_clock::now() + detail::kPollInterval;
    }
  }
  if (call->stop.load(std::memory_order_relaxed)) throw Interrupted();
}

// Calls fn(i, thread_id) for every i in [0, n) with dynamic scheduling; thread_id < n_threads.
template <typename Fn>
void ParallelFor(int64_t n, int n_threads, Fn&& fn) {
  n_threads = ResolveThreads(n_threads);
  if (n_threads <= 1 || n <= 1) {
    for (int64_t i = 0; i < n; ++i) {
      CheckInterrupt();
      fn(i, 0);
    }
    return;
  }
  detail::CallState* const call = detail::current_call;
  std::exception_ptr error;
  std::mutex error_mutex;
  std::atomic<bool> failed{false};
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
#endif
  for (int64_t i = 0; i < n; ++i) {
    if (failed.load(std::memory_order_relaxed)) continue;
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    try {
      const detail::LendCall lend(call);
      CheckInterrupt();
      fn(i, tid);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed.store(true, std::memory_order_relaxed);
    }
  }
  if (error) std::rethrow_exception(error);
}

// Per-thread scratch, each object built by the thread that first asks for it, so that its
// memory comes from that thread's allocator arena and shares no cache line with another
// thread's scratch (small buffers written in hot loops would otherwise false-share).
template <typename T, typename Make>
class PerThread {
 public:
  PerThread(int n_threads, Make make) : slots_(ResolveThreads(n_threads)), make_(std::move(make)) {}
  T& Get(int thread_id) {
    std::unique_ptr<T>& slot = slots_[thread_id];
    if (!slot) slot = std::make_unique<T>(make_());
    return *slot;
  }

 private:
  std::vector<std::unique_ptr<T>> slots_;
  Make make_;
};

template <typename T, typename Make>
PerThread<T, Make> MakePerThread(int n_threads, Make make) {
  return PerThread<T, Make>(n_threads, std::move(make));
}

}  // namespace treelens
