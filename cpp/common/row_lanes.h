// Row lanes: kRowLanes rows processed together with identical control flow, as vectors of the
// SIMD header (common/simd.h). Lane buffers are LaneBuffer (64-byte aligned): the kernels are
// templates over the lane type, and a template argument drops the 16-byte alignment the vector
// types claim, so inside them every access may be an aligned one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "common/parallel.h"
#include "common/simd.h"
#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {
namespace detail {

constexpr int kRowLanes = 4;

typedef simd::Vec<double, kRowLanes> Lanes;

TREELENS_INLINE Lanes Splat(double v) { return simd::Splat<Lanes>(v); }

// Allocates on 64-byte boundaries, the widest vector register: buffers of lane vectors wider
// than 16 bytes are kept in LaneBuffer, so any access may use aligned loads. The block comes
// from plain operator new, 64 bytes larger, with the start of the block stored just before
// the aligned address (aligned operator new goes through memalign, whose leftover pieces
// fragment the heap of a process that calls the kernels again and again).
template <typename T>
struct LaneAllocator {
  typedef T value_type;
  static constexpr size_t kAlign = 64;
  LaneAllocator() = default;
  template <typename U>
  LaneAllocator(const LaneAllocator<U>&) {}
  T* allocate(size_t n) {
    char* raw = static_cast<char*>(::operator new(n * sizeof(T) + kAlign));
    char* aligned = raw + kAlign - reinterpret_cast<uintptr_t>(raw) % kAlign;
    std::memcpy(aligned - sizeof(char*), &raw, sizeof(char*));
    return reinterpret_cast<T*>(aligned);
  }
  void deallocate(T* p, size_t) {
    char* raw;
    std::memcpy(&raw, reinterpret_cast<char*>(p) - sizeof(char*), sizeof(char*));
    ::operator delete(raw);
  }
  template <typename U>
  bool operator==(const LaneAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const LaneAllocator<U>&) const { return false; }
};

template <typename L>
using LaneBuffer = std::vector<L, LaneAllocator<L>>;

// Lane vectors of N rows (kRowLanes unless a kernel picks its own width) and their masks.
template <int N>
using LanesOf = simd::Vec<double, N>;
template <int N>
using LaneMaskOf = simd::Vec<int64_t, N>;

// 1.0 where the mask is set, 0.0 elsewhere (bitwise, exact).
template <typename M>
TREELENS_INLINE LanesOf<simd::kLanesOf<M>> OneWhere(M m) {
  typedef LanesOf<simd::kLanesOf<M>> L;
  return simd::BitCast<L>(m & simd::BitCast<M>(simd::Splat<L>(1.0)));
}

// All-ones lanes where a numeric split sends x left: the rule of Forest::GoesLeft for
// non-categorical splits, branch-free.
template <typename L>
TREELENS_INLINE LaneMaskOf<simd::kLanesOf<L>> NumericLeft(L x, double threshold, uint8_t flags) {
  typedef LaneMaskOf<simd::kLanesOf<L>> M;
  M missing = x != x;
  if (flags & kZeroMissing) missing |= x == simd::Splat<L>(0.0);
  M lt = x < simd::Splat<L>(threshold);
  if (flags & kLeftAtInf) lt |= x == simd::Splat<L>(threshold);
  const M dl = (flags & kDefaultLeft) ? missing : M{};
  return (lt & ~missing) | dl;
}

// 1.0 where the lane's value x goes left at split `node` with the given threshold and
// flags (copies of the forest's, which a kernel may keep in its own plan), 0.0 where it goes
// right.
template <typename L>
TREELENS_INLINE L DecideSplit(const Forest& forest, int64_t node, const L& x, double threshold,
                              uint8_t flags) {
  if (flags & kCategorical) {
    L out = simd::Splat<L>(0.0);
    for (int r = 0; r < simd::kLanesOf<L>; ++r) {
      out[r] = forest.CategoryGoesLeft(node, x[r]) ? 1.0 : 0.0;
    }
    return out;
  }
  return OneWhere(NumericLeft(x, threshold, flags));
}

// DecideSplit for lanes made of several vectors: part by part.
template <typename V, int K>
TREELENS_INLINE simd::Multi<V, K> DecideSplit(const Forest& forest, int64_t node,
                                              const simd::Multi<V, K>& x, double threshold,
                                              uint8_t flags) {
  simd::Multi<V, K> out;
  if (flags & kCategorical) {
    for (int r = 0; r < simd::kLanesOf<V> * K; ++r) {
      out[r] = forest.CategoryGoesLeft(node, x[r]) ? 1.0 : 0.0;
    }
    return out;
  }
  for (int k = 0; k < K; ++k) out.part[k] = OneWhere(NumericLeft(x.part[k], threshold, flags));
  return out;
}

// 1.0 where the lane's row goes left at `node`, 0.0 where it goes right.
// xt: [n_features] transformed values.
template <typename L>
TREELENS_INLINE L Decide(const Forest& forest, int64_t node, const L* xt) {
  return DecideSplit(forest, node, xt[forest.feature[node]], forest.threshold[node],
                     forest.flags[node]);
}

// Rows r0 .. r0 + N of x, transformed for routing, into xt: [n_features] lanes of N rows;
// lanes past the last row are 0.
template <typename L>
inline void LoadLanes(const Forest& forest, const MatrixView& x, int64_t r0, L* xt) {
  constexpr int kN = simd::kLanesOf<L>;
  const int64_t nr = std::min<int64_t>(kN, x.n_rows - r0);
  for (int64_t f = 0; f < x.n_cols; ++f) {
    for (int64_t r = 0; r < kN; ++r) {
      xt[f][r] = r < nr ? forest.TransformInput(x.At(r0 + r, f)) : 0.0;
    }
  }
}

// The row-lane driver of the path kernels: blocks of kRowLanes rows in parallel, each with the
// scratch of its thread (made by make(); it has lanes xt: [n_features] and phi). Per block: the
// rows are loaded into sc.xt, sc.phi is zeroed, tree(t, sc) runs for every tree in order, and
// store(sc, r0, nr) writes the nr rows from r0 out of the lanes.
template <typename Scratch, typename Make, typename Tree, typename StoreRows>
void ForEachRowBlock(const Forest& forest, const MatrixView& x, int threads, Make make,
                     Tree tree, StoreRows store) {
  auto scratch = MakePerThread<Scratch>(threads, std::move(make));
  const int64_t n_blocks = (x.n_rows + kRowLanes - 1) / kRowLanes;
  ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
    Scratch& sc = scratch.Get(tid);
    const int64_t r0 = b * kRowLanes;
    LoadLanes(forest, x, r0, sc.xt.data());
    std::fill(sc.phi.begin(), sc.phi.end(), Splat(0.0));
    for (int64_t t = 0; t < forest.NumTrees(); ++t) {
      CheckInterrupt();
      tree(t, sc);
    }
    store(sc, r0, std::min<int64_t>(kRowLanes, x.n_rows - r0));
  });
}

}  // namespace detail
}  // namespace treelens
