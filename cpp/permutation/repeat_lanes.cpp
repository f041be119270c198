// Repeat-lane kernels of permutation importance (Breiman, "Random Forests", 2001; the
// scikit-learn permutation_importance protocol): kRepeatLanes repeats of one feature's
// permutation are evaluated as the lanes of one vector. A flip entry (threshold, branch taken,
// other leaf) updates every repeat's leaf value with one compare and blend, margins of all
// repeats are re-summed by the same vector adds in tree order, and residual sums are taken
// lane by lane in row order, so each lane equals the scalar computation bit for bit. Cloned
// for AVX2 (common/simd.h).
#include "permutation/repeat_lanes.h"

#include "common/simd.h"

namespace treelens {
namespace detail {
namespace {

// Half a repeat chunk: four lanes, so that every vector fits an AVX2 register.
constexpr int kHalf = kRepeatLanes / 2;
typedef simd::Vec<double, kHalf> Values4;
typedef simd::Vec<int64_t, kHalf> Mask4;
typedef simd::Vec<uint32_t, kHalf> Pos4;
typedef simd::Vec<int32_t, kHalf> Mask4x32;

// Lanes of the accumulation type: a half (with a same-width integer mask) and a whole chunk.
template <typename T>
struct Lane {
  typedef simd::Vec<T, kHalf> Half;
  typedef simd::Vec<simd::MaskLane<T>, kHalf> HalfMask;
  typedef simd::Vec<T, kRepeatLanes> V;
};

using simd::Load;
using simd::Store;

template <typename T>
TREELENS_INLINE void ApplyFlips(const FlipEntry<T>* begin,
                                const FlipEntry<T>* end, const double* vals,
                                uint32_t row_mask, const T* base, T* values,
                                uint32_t* least) {
  using Half = typename Lane<T>::Half;
  using HalfMask = typename Lane<T>::HalfMask;
  Pos4 low[2] = {Load<Pos4>(least), Load<Pos4>(least + kHalf)};
  for (const FlipEntry<T>* e = begin; e != end; ++e) {
    const uint32_t p = e->pos & kPosMask;
    const Mask4 nan_goes_left = Mask4{} - static_cast<int64_t>(e->pos >> 31);
    const Mask4 went = Mask4{} - static_cast<int64_t>((e->pos >> 30) & 1u);
    const double* x_at = vals + static_cast<int64_t>(p & row_mask) * kRepeatLanes;
    T* out = values + static_cast<int64_t>(p) * kRepeatLanes;
    const Values4 threshold = Values4{} + e->threshold;
    const HalfMask alt = simd::BitCast<HalfMask>(Half{} + e->alt);
    const HalfMask same = simd::BitCast<HalfMask>(Half{} + base[p]);
    const Pos4 pos = Pos4{} + p;
    for (int h = 0; h < 2; ++h) {
      const Values4 x = Load<Values4>(x_at + h * kHalf);
      const Mask4 flip = ((x < threshold) | ((x != x) & nan_goes_left)) ^ went;
      const HalfMask flip_t = simd::Convert<HalfMask>(flip);
      Store(out + h * kHalf, simd::BitCast<Half>((alt & flip_t) | (same & ~flip_t)));
      const Pos4 at = pos | ~simd::BitCast<Pos4>(simd::Convert<Mask4x32>(flip));
      low[h] = simd::Select(at < low[h], at, low[h]);
    }
  }
  Store(least, low[0]);
  Store(least + kHalf, low[1]);
}

typedef simd::Vec<float, kRepeatLanes> Float8;
typedef simd::Vec<int32_t, kRepeatLanes> Mask8;
typedef simd::Vec<uint32_t, kRepeatLanes> Pos8;

TREELENS_INLINE void ApplyFloatFlips(const FlipEntry<float>* begin,
                                     const FlipEntry<float>* end,
                                     const float* vals, uint32_t row_mask,
                                     const float* base, float* values,
                                     uint32_t* least) {
  Pos8 low = Load<Pos8>(least);
  for (const FlipEntry<float>* e = begin; e != end; ++e) {
    const uint32_t p = e->pos & kPosMask;
    const Mask8 nan_goes_left = Mask8{} - static_cast<int32_t>(e->pos >> 31);
    const Mask8 went = Mask8{} - static_cast<int32_t>((e->pos >> 30) & 1u);
    const Float8 x = Load<Float8>(vals + static_cast<int64_t>(p & row_mask) * kRepeatLanes);
    const Float8 threshold = Float8{} + static_cast<float>(e->threshold);
    const Mask8 flip = ((x < threshold) | ((x != x) & nan_goes_left)) ^ went;
    const Mask8 alt = simd::BitCast<Mask8>(Float8{} + e->alt);
    const Mask8 same = simd::BitCast<Mask8>(Float8{} + base[p]);
    Store(values + static_cast<int64_t>(p) * kRepeatLanes,
          simd::BitCast<Float8>((alt & flip) | (same & ~flip)));
    const Pos8 at = (Pos8{} + p) | ~simd::BitCast<Pos8>(flip);
    low = simd::Select(at < low, at, low);
  }
  Store(least, low);
}

template <typename T>
TREELENS_INLINE void Reset(const FlipEntry<T>* begin,
                           const FlipEntry<T>* end, const T* base,
                           T* values) {
  using V = typename Lane<T>::V;
  for (const FlipEntry<T>* e = begin; e != end; ++e) {
    const uint32_t p = e->pos & kPosMask;
    Store(values + static_cast<int64_t>(p) * kRepeatLanes, V{} + base[p]);
  }
}

template <typename T>
TREELENS_INLINE void Sum(const T* start, const T* values, int64_t from,
                         int64_t to, int64_t block, int64_t nb, T* acc) {
  using V = typename Lane<T>::V;
  constexpr int64_t kRows = 4;  // accumulators kept in registers
  int64_t i0 = 0;
  for (; i0 + kRows <= nb; i0 += kRows) {
    V a[kRows];
    for (int64_t r = 0; r < kRows; ++r) a[r] = V{} + start[i0 + r];
    for (int64_t slot = from; slot < to; ++slot) {
      const T* v = values + (slot * block + i0) * kRepeatLanes;
      for (int64_t r = 0; r < kRows; ++r) a[r] += Load<V>(v + r * kRepeatLanes);
    }
    for (int64_t r = 0; r < kRows; ++r) Store(acc + (i0 + r) * kRepeatLanes, a[r]);
  }
  for (; i0 < nb; ++i0) {
    V a = V{} + start[i0];
    for (int64_t slot = from; slot < to; ++slot) {
      a += Load<V>(values + (slot * block + i0) * kRepeatLanes);
    }
    Store(acc + i0 * kRepeatLanes, a);
  }
}

template <typename T>
TREELENS_INLINE void Residuals(const T* margins, const double* y,
                               const double* weights, int64_t nb,
                               double* squared, double* absolute) {
  Values4 sq[2] = {}, ab[2] = {};
  for (int64_t i = 0; i < nb; ++i) {
    const Values4 w = Values4{} + (weights ? weights[i] : 1.0);
    for (int h = 0; h < 2; ++h) {
      Values4 m;
      for (int k = 0; k < kHalf; ++k) m[k] = static_cast<double>(margins[i * kRepeatLanes + h * kHalf + k]);
      const Values4 e = (Values4{} + y[i]) - m;
      sq[h] += w * (e * e);
      ab[h] += w * simd::Select(e < 0.0, -e, e);
    }
  }
  for (int h = 0; h < 2; ++h) {
    Store(squared + h * kHalf, sq[h]);
    Store(absolute + h * kHalf, ab[h]);
  }
}

}  // namespace

TREELENS_CLONES
void ResidualLanes(const float* margins, const double* y, const double* weights, int64_t nb,
                   double* squared, double* absolute) {
  Residuals(margins, y, weights, nb, squared, absolute);
}

TREELENS_CLONES
void ResidualLanes(const double* margins, const double* y, const double* weights, int64_t nb,
                   double* squared, double* absolute) {
  Residuals(margins, y, weights, nb, squared, absolute);
}

TREELENS_CLONES
void ApplyFlipLanes(const FlipEntry<float>* begin, const FlipEntry<float>* end, const double* vals,
                    uint32_t row_mask, const float* base, float* values, uint32_t* least) {
  ApplyFlips(begin, end, vals, row_mask, base, values, least);
}

TREELENS_CLONES
void ApplyFlipLanes(const FlipEntry<double>* begin, const FlipEntry<double>* end,
                    const double* vals, uint32_t row_mask, const double* base, double* values,
                    uint32_t* least) {
  ApplyFlips(begin, end, vals, row_mask, base, values, least);
}

TREELENS_CLONES
void ApplyFlipLanes(const FlipEntry<float>* begin, const FlipEntry<float>* end, const float* vals,
                    uint32_t row_mask, const float* base, float* values, uint32_t* least) {
  ApplyFloatFlips(begin, end, vals, row_mask, base, values, least);
}

TREELENS_CLONES
void ResetLanes(const FlipEntry<float>* begin, const FlipEntry<float>* end, const float* base,
                float* values) {
  Reset(begin, end, base, values);
}

TREELENS_CLONES
void ResetLanes(const FlipEntry<double>* begin, const FlipEntry<double>* end, const double* base,
                double* values) {
  Reset(begin, end, base, values);
}

TREELENS_CLONES
void SumLanes(const float* start, const float* values, int64_t from, int64_t to, int64_t block,
              int64_t nb, float* acc) {
  Sum(start, values, from, to, block, nb, acc);
}

TREELENS_CLONES
void SumLanes(const double* start, const double* values, int64_t from, int64_t to, int64_t block,
              int64_t nb, double* acc) {
  Sum(start, values, from, to, block, nb, acc);
}

}  // namespace detail
}  // namespace treelens
