// Row lanes: kLanes rows processed together with identical control flow. GCC/Clang vector
// extensions lower Lanes to the widest registers of each target clone (SSE2 by default, AVX2
// where a kernel is cloned for it). Lane buffers live in std::vector<Lanes> but must be read
// and written through Lanes pointers only: the default allocator gives 16-byte alignment,
// which is all the type claims, while vector::operator[] inside an AVX2 clone may assume more.
#pragma once

#include <algorithm>
#include <cstdint>

#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {
namespace detail {

constexpr int kLanes = 4;

typedef double Lanes __attribute__((vector_size(kLanes * sizeof(double)), aligned(16)));
typedef int64_t LaneMask __attribute__((vector_size(kLanes * sizeof(int64_t)), aligned(16)));

__attribute__((always_inline)) inline Lanes Splat(double v) { return Lanes{} + v; }

// 1.0 where the mask is set, 0.0 elsewhere (bitwise, exact).
__attribute__((always_inline)) inline Lanes OneWhere(LaneMask m) {
  return reinterpret_cast<Lanes>(m & reinterpret_cast<LaneMask>(Splat(1.0)));
}

// All-ones lanes where a numeric split sends x left: the rule of Forest::GoesLeft for
// non-categorical splits, branch-free.
__attribute__((always_inline)) inline LaneMask NumericLeft(Lanes x, double threshold,
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
__attribute__((always_inline)) inline Lanes Decide(const Forest& forest, int64_t node,
                                                   const Lanes* xt) {
  const Lanes x = xt[forest.feature[node]];
  const uint8_t flags = forest.flags[node];
  if (flags & kCategorical) {
    Lanes out = Splat(0.0);
    for (int r = 0; r < kLanes; ++r) out[r] = forest.CategoryGoesLeft(node, x[r]) ? 1.0 : 0.0;
    return out;
  }
  return OneWhere(NumericLeft(x, forest.threshold[node], flags));
}

// Rows r0 .. r0 + kLanes of x, transformed for routing, into xt: [n_features] lanes; lanes
// past the last row are 0.
inline void LoadLanes(const Forest& forest, const MatrixView& x, int64_t r0, Lanes* xt) {
  const int64_t nr = std::min<int64_t>(kLanes, x.n_rows - r0);
  for (int64_t f = 0; f < x.n_cols; ++f) {
    for (int64_t r = 0; r < kLanes; ++r) {
      xt[f][r] = r < nr ? forest.TransformInput(x.At(r0 + r, f)) : 0.0;
    }
  }
}

}  // namespace detail
}  // namespace treelens
