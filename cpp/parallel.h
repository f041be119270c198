// The one threading helper: ParallelFor over [0, n) giving (index, thread_id), carrying the
// first exception out of the parallel region. Compiles to a plain loop without OpenMP.
#pragma once

#include <cstdint>
#include <exception>
#include <mutex>

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

}  // namespace treelens
