// Complete-heap view of the shallow trees of a forest, for the permutation engine's routing
// pass. A tree of depth D <= kHeapDepth with plain numeric splits is laid out as a complete
// binary heap (children of slot h at 2h + 1 and 2h + 2; slots below a shallower leaf pass
// everything to the left). A block of rows is then routed by one vectorised pass per split
// that sets a "goes right" bit per row (as QuickScorer evaluates every split once per block
// instead of chasing pointers: Lucchese et al., SIGIR 2015), after which every path and every
// walk through the other branch of a path node is integer arithmetic on that bitmask.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forest.h"

namespace treelens {
namespace detail {

constexpr int kHeapDepth = 6;
constexpr int kHeapSlots = 1 << kHeapDepth;  // per tree: internal slots (63) and leaves (64)
constexpr int64_t kMaxHeapRows = 256;        // rows decided together, at most

// One split for the decision pass.
struct HeapSplit {
  double threshold;
  int32_t feature;
  uint32_t nan_right;  // NaN goes right (no kDefaultLeft)
  uint64_t bit;        // 1 << heap slot
};

class HeapForest {
 public:
  explicit HeapForest(const Forest& forest);

  bool Eligible(int64_t t) const { return depth_[t] >= 0; }

  // Transformed inputs are float32 values and every heap threshold is one, so that float32
  // comparisons decide exactly as the double ones.
  bool FloatExact() const { return float_exact_; }

  // right[i] = bits of the splits of tree t that row i does not go left at.
  //   cols: [n_features, b] transformed features, column-major; right: [b]; b <= kMaxHeapRows.
  void Decide(int64_t t, const double* cols, int64_t b, uint64_t* right) const;
  void Decide(int64_t t, const float* cols, int64_t b, uint64_t* right) const;

  int Depth(int64_t t) const { return depth_[t]; }

  // The splits of tree t on the feature of its split at `slot`, as an index for Walk4.
  int32_t FeatureSplits(int64_t t, uint32_t slot) const { return slot_list_[t * kHeapSlots + slot]; }

  // Threshold of the split at a slot, and whether NaN goes left there.
  double Threshold(int64_t t, uint32_t slot) const { return slot_threshold_[t * kHeapSlots + slot]; }
  bool NanLeft(int64_t t, uint32_t slot) const { return slot_nan_left_[t * kHeapSlots + slot] != 0; }

  // Forest leaves that a row with decision bits `right` through tree t reaches from `slot`
  // (steps = tree depth below the slot) when the feature of `splits` takes the values
  // x[0..4): leaves[0..4).
  void Walk4(int64_t t, int32_t splits, uint64_t right, uint32_t slot, int steps, const double* x,
             int32_t* leaves) const;

  // Follows a row with decision bits `right` through tree t of depth D and returns its
  // forest leaf; calls visit(slot, depth, feature, went_left, first, repeated, varies, alt,
  // leaf) for every split on the path, root first:
  //   first:    first test of the feature on the path;
  //   repeated: the feature is tested again further down the path;
  //   varies:   the feature is tested again on the way through the other branch;
  //   alt:      forest leaf reached through the other branch with the row's values.
  template <int D, class Visit>
  int32_t Trace(int64_t t, uint64_t right, Visit&& visit) const {
    const int32_t* feature = &feature_[t * kHeapSlots];
    const int32_t* leaf = &leaf_[t * kHeapSlots];
    constexpr uint32_t kFirstLeaf = (1u << D) - 1u;
    uint32_t slot[D + 1];
    int32_t feat[D + 1];
    uint32_t goes_right[D + 1];
    uint32_t h = 0;
    for (int k = 0; k < D; ++k) {
      slot[k] = h;
      feat[k] = feature[h];
      goes_right[k] = static_cast<uint32_t>((right >> h) & 1u);
      h = 2 * h + 1 + goes_right[k];
    }
    const int32_t reached = leaf[h - kFirstLeaf];
    const uint8_t* shared = &shared_[t * kHeapSlots];
    for (int k = 0; k < D; ++k) {
      const int32_t f = feat[k];
      if (f < 0) break;  // passing below a leaf
      bool first = true, repeated = false, varies = false;
      uint32_t a = 2 * slot[k] + 2 - goes_right[k];  // the other child
      if (shared[slot[k]]) {
        for (int q = 0; q < k; ++q) first &= feat[q] != f;
        for (int q = k + 1; q < D; ++q) repeated |= feat[q] == f;
        for (int q = k + 1; q < D; ++q) {
          varies |= feature[a] == f;
          a = 2 * a + 1 + static_cast<uint32_t>((right >> a) & 1u);
        }
      } else {
        for (int q = k + 1; q < D; ++q) a = 2 * a + 1 + static_cast<uint32_t>((right >> a) & 1u);
      }
      visit(slot[k], k, f, goes_right[k] == 0, first, repeated, varies, leaf[a - kFirstLeaf],
            reached);
    }
    return reached;
  }

 private:
  std::vector<int8_t> depth_;          // [n_trees] heap depth, -1 when not eligible
  std::vector<int32_t> node_;          // [n_trees, kHeapSlots] forest node of a slot, -1 below a leaf
  std::vector<int32_t> feature_;       // [n_trees, kHeapSlots] -1 below a leaf
  std::vector<int32_t> leaf_;          // [n_trees, kHeapSlots] forest leaf of heap leaf j
  std::vector<uint8_t> shared_;        // [n_trees, kHeapSlots] the slot's feature is also split
                                       // on by an ancestor or a descendant slot
  std::vector<int64_t> split_offsets_; // [n_trees + 1] into splits_
  std::vector<HeapSplit> splits_;
  bool float_exact_ = false;
  // Splits grouped by (tree, feature): lists [tree_lists_[t], tree_lists_[t + 1]) of tree t,
  // sorted by feature; list L holds feature_splits_[split_list_offsets_[L] ..
  // split_list_offsets_[L + 1]) and the mask of their bits.
  std::vector<int64_t> tree_lists_;
  std::vector<int32_t> split_list_feature_;
  std::vector<uint64_t> split_list_mask_;
  std::vector<int64_t> split_list_offsets_;
  std::vector<HeapSplit> feature_splits_;
  std::vector<int32_t> slot_list_;        // [n_trees, kHeapSlots] split list of the slot's feature
  std::vector<double> slot_threshold_;    // [n_trees, kHeapSlots]
  std::vector<uint8_t> slot_nan_left_;    // [n_trees, kHeapSlots]
};

}  // namespace detail
}  // namespace treelens
