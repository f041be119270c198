// Complete-heap view of the shallow trees of a forest, for the permutation engine's routing
// pass. A tree of depth D <= kHeapDepth with plain numeric splits is laid out as a complete
// binary heap (children of slot h at 2h + 1 and 2h + 2; slots below a shallower leaf pass
// everything to the left). A block of rows is then routed by one vectorised pass per split
// that sets a "goes right" bit per row (as QuickScorer evaluates every split once per block
// instead of chasing pointers: Lucchese et al., SIGIR 2015), after which every path and every
// walk through the other branch of a path node is integer arithmetic on that bitmask, four
// rows at a time as vector lanes; a row's path nodes then follow from the heap leaf it reaches.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forest.h"

namespace treelens {
namespace detail {

constexpr int kHeapDepth = 6;
constexpr int kHeapSlots = 1 << kHeapDepth;  // per tree: internal slots (63) and leaves (64)
constexpr int64_t kMaxHeapRows = 256;        // rows decided together, at most

// What the routing pass reads at a split slot of a heap tree.
struct HeapSlot {
  double threshold;
  uint64_t same;      // bits of the tree's slots that split on this slot's feature (itself too)
  int32_t feature;    // -1 below a leaf
  int32_t splits;     // the splits of the tree on the feature, as an index for Walk4
  uint32_t nan_left;  // 1 when NaN goes left
};

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
  //   cols: [n_features, b] transformed features, column-major; right: [b]; b <= kMaxHeapRows
  //   and a multiple of 8.
  void Decide(int64_t t, const double* cols, int64_t b, uint64_t* right) const;
  void Decide(int64_t t, const float* cols, int64_t b, uint64_t* right) const;

  int Depth(int64_t t) const { return depth_[t]; }

  // Forest leaves that a row with decision bits `right` through tree t reaches from `slot`
  // (steps = tree depth below the slot) when the feature of `splits` takes the values
  // x[0..4): leaves[0..4).
  void Walk4(int64_t t, int32_t splits, uint64_t right, uint32_t slot, int steps, const double* x,
             int32_t* leaves) const;

  // The same for one value x: the forest leaf reached.
  int32_t Walk1(int64_t t, int32_t splits, uint64_t right, uint32_t slot, int steps, double x) const {
    uint64_t r = right & ~split_list_mask_[splits];
    const HeapSplit* end = &feature_splits_[0] + split_list_offsets_[splits + 1];
    for (const HeapSplit* s = &feature_splits_[0] + split_list_offsets_[splits]; s != end; ++s) {
      const bool goes_right = !(x < s->threshold) && (x == x || s->nan_right != 0);
      r |= goes_right ? s->bit : uint64_t{0};
    }
    uint64_t h = slot;
    for (int k = 0; k < steps; ++k) h = 2 * h + 1 + ((r >> h) & 1u);
    return leaf_[t * kHeapSlots + (h - ((uint64_t{1} << depth_[t]) - 1))];
  }

  // Heap leaves (0 .. 2^D) reached through tree t of depth D by rows with decision bits
  // right[0 .. n): reached[i], and for every level k < D the heap leaf reached through the
  // other branch of the row's path node at that level: other[k * stride + i]. Rows go four
  // at a time as vector lanes: right, reached and every row of other hold n rounded up to a
  // multiple of 4. The path node of a row at level k is slot (2^k - 1) + (reached >> (D - k)),
  // and the row goes right there when bit D - 1 - k of reached is set.
  void Leaves(int64_t t, const uint64_t* right, int64_t n, uint32_t* reached, uint32_t* other,
              int64_t stride) const;

  // The split slots of tree t ([kHeapSlots]) and the forest leaf of each of its heap
  // leaves ([2^D]).
  const HeapSlot* Slots(int64_t t) const { return &slots_[t * kHeapSlots]; }
  const int32_t* LeafNodes(int64_t t) const { return &leaf_[t * kHeapSlots]; }

  // Bits of the slots on the path from the root to heap leaf j of a tree of depth D.
  uint64_t PathMask(int D, uint32_t j) const { return path_masks_[D * kHeapSlots + j]; }

 private:
  std::vector<int8_t> depth_;          // [n_trees] heap depth, -1 when not eligible
  std::vector<int32_t> node_;          // [n_trees, kHeapSlots] forest node of a slot, -1 below a leaf
  std::vector<int32_t> leaf_;          // [n_trees, kHeapSlots] forest leaf of heap leaf j
  std::vector<HeapSlot> slots_;        // [n_trees, kHeapSlots]
  std::vector<uint64_t> path_masks_;   // [kHeapDepth + 1, kHeapSlots] PathMask
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
};

}  // namespace detail
}  // namespace treelens
