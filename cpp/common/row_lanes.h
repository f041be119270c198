// Row lanes: kRowLanes rows processed together with identical control flow, as vectors of the
// SIMD header (common/simd.h). Lane buffers live in std::vector<Lanes> but must be read and
// written through Lanes pointers only: the default allocator gives 16-byte alignment, which is
// all the type claims, while vector::operator[] inside an AVX2 clone may assume more.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "common/parallel.h"
#include "common/simd.h"
#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {
namespace detail {

constexpr int kRowLanes = 4;

typedef simd::Vec<double, kRowLanes> Lanes;
typedef simd::Vec<int64_t, kRowLanes> LaneMask;

TREELENS_INLINE Lanes Splat(double v) { return simd::Splat<Lanes>(v); }

// 1.0 where the mask is set, 0.0 elsewhere (bitwise, exact).
TREELENS_INLINE Lanes OneWhere(LaneMask m) {
  return simd::BitCast<Lanes>(m & simd::BitCast<LaneMask>(Splat(1.0)));
}

// All-ones lanes where a numeric split sends x left: the rule of Forest::GoesLeft for
// non-categorical splits, branch-free.
TREELENS_INLINE LaneMask NumericLeft(Lanes x, double threshold,
                                     uint8_t flags) {
  LaneMask missing = x != x;
  if (flags & kZeroMissing) missing |= x == Splat(0.0);
  LaneMask lt = x < Splat(threshold);
  if (flags & kLeftAtInf) lt |= x == Splat(threshold);
  const LaneMask dl = (flags & kDefaultLeft) ? missing : LaneMask{};
  return (lt & ~missing) | dl;
}

// 1.0 where the lane's row goes left at `node`, 0.0 where it goes right.
// xt: [n_features] transformed values.
TREELENS_INLINE Lanes Decide(const Forest& forest, int64_t node,
                             const Lanes* xt) {
  const Lanes x = xt[forest.feature[node]];
  const uint8_t flags = forest.flags[node];
  if (flags & kCategorical) {
    Lanes out = Splat(0.0);
    for (int r = 0; r < kRowLanes; ++r) out[r] = forest.CategoryGoesLeft(node, x[r]) ? 1.0 : 0.0;
    return out;
  }
  return OneWhere(NumericLeft(x, forest.threshold[node], flags));
}

// Rows r0 .. r0 + kRowLanes of x, transformed for routing, into xt: [n_features] lanes; lanes
// past the last row are 0.
inline void LoadLanes(const Forest& forest, const MatrixView& x, int64_t r0, Lanes* xt) {
  const int64_t nr = std::min<int64_t>(kRowLanes, x.n_rows - r0);
  for (int64_t f = 0; f < x.n_cols; ++f) {
    for (int64_t r = 0; r < kRowLanes; ++r) {
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
