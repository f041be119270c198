// An allocator for large read-mostly tables that kernels stream through on every call (the
// path plans): blocks of 2 MiB and more are mapped on their own, 2 MiB aligned, and marked
// for transparent huge pages, so that one pass over a plan of tens of megabytes needs a few
// TLB entries instead of thousands. Smaller blocks, and systems without madvise, use the
// ordinary heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#define TREELENS_HAS_HUGE_PAGES 1
#else
#define TREELENS_HAS_HUGE_PAGES 0
#endif

namespace treelens {

template <typename T>
struct HugePageAllocator {
  typedef T value_type;
  static constexpr size_t kHuge = size_t{2} << 20;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}

  static size_t MappedBytes(size_t n) { return (n * sizeof(T) + kHuge - 1) / kHuge * kHuge; }

  T* allocate(size_t n) {
#if TREELENS_HAS_HUGE_PAGES
    if (n * sizeof(T) >= kHuge) {
      // Over-map by one huge page and trim, so that the block starts on a 2 MiB boundary.
      const size_t bytes = MappedBytes(n);
      void* raw = mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
      if (raw == MAP_FAILED) throw std::bad_alloc();
      char* start = static_cast<char*>(raw);
      char* aligned = start + (kHuge - reinterpret_cast<uintptr_t>(start) % kHuge) % kHuge;
      if (aligned > start) munmap(start, aligned - start);
      char* end = start + bytes + kHuge;
      if (end > aligned + bytes) munmap(aligned + bytes, end - (aligned + bytes));
      madvise(aligned, bytes, MADV_HUGEPAGE);
      return reinterpret_cast<T*>(aligned);
    }
#endif
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }

  void deallocate(T* p, size_t n) {
#if TREELENS_HAS_HUGE_PAGES
    if (n * sizeof(T) >= kHuge) {
      munmap(p, MappedBytes(n));
      return;
    }
#endif
    ::operator delete(p);
  }

  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

template <typename T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace treelens
