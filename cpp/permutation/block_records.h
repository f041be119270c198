// Records and per-thread scratch of the batched permutation importance engine
// (permutation.cpp, block_router.h): per-node step records, flip and walk entries,
// block scratch.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forest.h"

namespace treelens {
namespace detail {

constexpr int kMinBlockLog2 = 4;  // rows per block: 16 ..
constexpr int kMaxBlockLog2 = 8;  // .. 256

// A flip entry's position carries two flags in its high bits: the row went left at the node,
// and NaN goes left there. Positions stay below 2^30 (checked before a run).
constexpr uint32_t kWentLeftBit = 1u << 30;
constexpr uint32_t kNanLeftBit = 1u << 31;
constexpr uint32_t kPosMask = kWentLeftBit - 1;
constexpr uint8_t kGeneralSplit = kCategorical | kZeroMissing | kLeftAtInf;
constexpr uint8_t kLeafNode = 128;
constexpr int kLockstepRows = 8;  // rows routed through a tree together
constexpr int kLockstepDepth = 8;  // deeper trees drop walks as they reach a leaf

// A node as one cache-friendly record. Leaves loop onto themselves and test the zero column
// n_features, so walks of different lengths can advance in lockstep.
struct StepNode {
  double threshold;
  int32_t feature;
  int32_t child[2];  // left, right
  uint8_t flags;     // forest flags | kLeafNode
};

// A plain numeric split whose outcome alone decides the leaf: past the other branch the row
// reaches a leaf of value `alt` whatever the permuted value, and keeps its leaf otherwise.
template <typename T>
struct FlipEntry {
  double threshold;
  T alt;
  uint32_t pos;  // value-matrix position | kWentLeftBit | kNanLeftBit
};

// A (tree, row) pair walked again from `node` with the permuted values.
struct WalkEntry {
  int32_t node;
  uint32_t pos;   // value-matrix position
  int32_t leaf;   // leaf of the unpermuted row
  int32_t steps;  // steps from `node` that reach a leaf on every path (the tree depth below it)
};

// A (tree, row) pair of a heap tree walked again from a slot with the feature's splits
// decided for the permuted value (HeapForest::Walk).
struct HeapWalkEntry {
  uint32_t pos;    // value-matrix position
  int32_t leaf;    // leaf of the unpermuted row
  int32_t splits;  // HeapForest::FeatureSplits of the tree and feature
  uint8_t slot;
  uint8_t steps;
};

// Per-thread scratch for one block of rows; T is the accumulation type. Value matrices are
// [n_slots, block] with slot = tree * leaf_width + component, and position
// slot * block + row.
template <typename T>
struct BlockScratch {
  std::vector<double> rows;        // [block, n_features + 1] transformed features, then 0
  std::vector<double> cols;        // [n_features + 1, block] the same, column-major
  std::vector<float> cols_f;       // the same as float32 when that is exact
  std::vector<T> values;           // [positions, kRepeatLanes] leaf values, one permutation per lane
  std::vector<T> lane_acc;         // [n_outputs, block, kRepeatLanes] sums of the lanes
  std::vector<T> base_values;      // leaf values of the unpermuted rows
  std::vector<T> prefix;           // running sum of the slot's output before the slot
  std::vector<T> acc;              // [n_outputs, block]
  std::vector<double> baseline;    // [block, n_outputs] margins of the unpermuted rows
  std::vector<double> stage;       // [block, n_outputs] permuted margins of one lane
  std::vector<int64_t> first_slot; // [n_outputs]
  std::vector<int64_t> path_offsets;  // [n_trees * rows + 1] into path, for feature groups
  std::vector<int32_t> path;          // root..leaf nodes of each (tree, row)
  std::vector<std::vector<FlipEntry<T>>> flips;  // [n_features] in routing order
  std::vector<FlipEntry<T>*> flip_at;   // [n_features] flips[f].data()
  std::vector<int64_t> flip_count;      // [n_features] entries of the block in flips[f]
  std::vector<std::vector<WalkEntry>> walks;  // [n_features]
  std::vector<std::vector<HeapWalkEntry>> heap_walks;  // [n_features] in routing order
  std::vector<HeapWalkEntry*> heap_walk_at;  // [n_features] heap_walks[f].data()
  std::vector<int64_t> heap_walk_count;      // [n_features] entries of the block in heap_walks[f]
  std::vector<uint64_t> rights;    // [n_trees, block] heap decision bits of the block's rows
  std::vector<uint32_t> heap_reached;  // [block] heap leaf of each row in one tree
  std::vector<uint32_t> heap_other;    // [kHeapDepth, block] heap leaf through each other branch
  std::vector<WalkEntry> group_walks;         // of one multi-feature group
  std::vector<int64_t> stamp;      // [n_features] last (tree, row) that tested the feature
  std::vector<int32_t> first_at;   // [n_features] depth of that first test
  std::vector<uint8_t> in_group;   // [n_features]
  std::vector<int32_t> lane_path;  // [kLockstepRows, max_depth + 1] root..leaf of each lane
  std::vector<uint8_t> repeated, first;  // [kLockstepRows, max_depth + 1]
  std::vector<int32_t> alt_node, alt_lane, alt_depth, alt_watch;  // [kLockstepRows * max_depth]
  std::vector<int32_t> alt_live;   // [kLockstepRows * max_depth] walks not yet at a leaf
  std::vector<uint8_t> varies;     // [kLockstepRows * max_depth]
  std::vector<double> permuted;    // [block, max(group size, kRepeatLanes)] permuted values
  std::vector<float> permuted_f;   // [block, kRepeatLanes] the same as float32 where exact
  std::vector<double> saved;       // [group size]
};

// One step of a walk for the node's feature value x: the child x goes to (the node itself at
// leaves).
inline int32_t StepAt(const Forest& f, const StepNode& n, int32_t node, double x) {
  if (n.flags & kGeneralSplit) return n.child[f.GoesLeft(node, x) ? 0 : 1];
  const uint32_t left = static_cast<uint32_t>(x < n.threshold) |
                        (static_cast<uint32_t>(x != x) & (n.flags & kDefaultLeft));
  return n.child[left ^ 1u];
}

// One step of a walk: the child a transformed row goes to (the node itself at leaves).
inline int32_t Step(const Forest& f, const StepNode& n, int32_t node, const double* row) {
  return StepAt(f, n, node, row[n.feature]);
}

}  // namespace detail
}  // namespace treelens
