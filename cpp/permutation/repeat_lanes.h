// Repeat lanes of the permutation engine: kRepeatLanes repeats of one feature are applied
// and summed together. Value matrices are interleaved, [position][lane], so that one flip
// entry updates every repeat with one vector blend and the margins of all repeats are summed
// by the same vector adds. Kernels are cloned for AVX2 (repeat_lanes.cpp).
#pragma once

#include <cstdint>

#include "permutation/block_records.h"

namespace treelens {
namespace detail {

constexpr int kRepeatLanes = 8;

// Applies flip entries to every lane.
//   vals:   [block, kRepeatLanes] permuted values of the block's rows, one lane per repeat.
//   base:   [positions] leaf values of the unpermuted rows.
//   values: [positions, kRepeatLanes] the lanes' leaf values, written at the entries.
//   least:  [kRepeatLanes] lowered to the least position whose leaf changed in the lane.
void ApplyFlipLanes(const FlipEntry<float>* begin, const FlipEntry<float>* end, const double* vals,
                    uint32_t row_mask, const float* base, float* values, uint32_t* least);
void ApplyFlipLanes(const FlipEntry<double>* begin, const FlipEntry<double>* end,
                    const double* vals, uint32_t row_mask, const double* base, double* values,
                    uint32_t* least);
// The same with float32 permuted values, for forests whose inputs and thresholds are all
// float32 values (the comparisons are then exact in float32).
void ApplyFlipLanes(const FlipEntry<float>* begin, const FlipEntry<float>* end, const float* vals,
                    uint32_t row_mask, const float* base, float* values, uint32_t* least);

// Resets every lane at the entries' positions to the unpermuted leaf values base[position].
void ResetLanes(const FlipEntry<float>* begin, const FlipEntry<float>* end, const float* base,
                float* values);
void ResetLanes(const FlipEntry<double>* begin, const FlipEntry<double>* end, const double* base,
                double* values);

// acc[i, lane] += values[slot * block + i, lane] for slot in [from, to), rows i < nb, for a
// single-output forest, starting from acc[i, lane] = start[i] (a running sum before `from`).
//   start: [nb]; values: [positions, kRepeatLanes]; acc: [nb, kRepeatLanes].
void SumLanes(const float* start, const float* values, int64_t from, int64_t to, int64_t block,
              int64_t nb, float* acc);
void SumLanes(const double* start, const double* values, int64_t from, int64_t to, int64_t block,
              int64_t nb, double* acc);

// Weighted residual sums of every lane's single-output margins, rows in order:
// squared[lane] = sum_i w_i (y_i - m[i, lane])^2, absolute[lane] = sum_i w_i |y_i - m[i, lane]|.
//   margins: [nb, kRepeatLanes]; y, weights: [nb] (weights may be null: all 1).
void ResidualLanes(const float* margins, const double* y, const double* weights, int64_t nb,
                   double* squared, double* absolute);
void ResidualLanes(const double* margins, const double* y, const double* weights, int64_t nb,
                   double* squared, double* absolute);

}  // namespace detail
}  // namespace treelens
