// The one threading helper: ParallelFor over [0, n) giving (index, thread_id), carrying the
// first exception out of the parallel region. Compiles to a plain loop without OpenMP.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace treelens {

// Number of threads to use: n_threads <= 0 means all available cores.
inline int ResolveThreads(int n_threads) {
#ifdef _OPENMP
  if (n_threads <= 0) return omp_get_max_threads();
  return n_threads;
#else
  (void)n_threads;
  return 1;
#endif
}

// Calls fn(i, thread_id) for every i in [0, n) with dynamic scheduling; thread_id < n_threads.
template <typename Fn>
void ParallelFor(int64_t n, int n_threads, Fn&& fn) {
  n_threads = ResolveThreads(n_threads);
  if (n_threads <= 1 || n <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
#endif
  for (int64_t i = 0; i < n; ++i) {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    try {
      fn(i, tid);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
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
