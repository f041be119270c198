// Routing pass of the permutation engine (permutation.cpp). For a block of rows it records
// every (tree, row) leaf and, for every single-group feature tested on the row's path, an
// entry at the first node that tests it: a flip entry (threshold, branch taken, leaf reached
// through the other branch with the row's own values) when that comparison alone decides the
// leaf, else a walk to repeat with the permuted value (the feature is tested again, or the
// split is categorical / zero-as-missing). Shallow plain trees are routed through their heap
// view (heap_forest.h), the others walk kLockstepRows rows in lockstep.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/forest.h"
#include "permutation/permutation.h"
#include "permutation/block_records.h"
#include "permutation/heap_forest.h"

namespace treelens {
namespace detail {

static_assert((int64_t{1} << kMaxBlockLog2) <= kMaxHeapRows, "a block fits one decision pass");

template <typename T>
class BlockRouter {
 public:
  //   n_cols: columns of the feature matrix; blocks hold 2^block_log2 rows.
  //   heap: the forest's heap view.
  BlockRouter(const Forest& forest, const HeapForest& heap, const FeatureGroups& groups,
              int64_t n_cols, int block_log2)
      : f_(forest), n_cols_(n_cols), log2_(block_log2), block_(int64_t{1} << block_log2),
        n_trees_(forest.NumTrees()), width_(forest.leaf_width), max_depth_(forest.MaxDepth()),
        stride_(n_cols + 1), heap_(heap) {
    steps_.resize(f_.NumNodes());
    for (int64_t n = 0; n < f_.NumNodes(); ++n) {
      StepNode& st = steps_[n];
      const bool leaf = f_.IsLeaf(n);
      st.threshold = leaf ? 0.0 : f_.threshold[n];
      st.feature = leaf ? static_cast<int32_t>(n_cols) : f_.feature[n];
      st.child[0] = leaf ? static_cast<int32_t>(n) : f_.left[n];
      st.child[1] = leaf ? static_cast<int32_t>(n) : f_.right[n];
      st.flags = leaf ? kLeafNode : f_.flags[n];
    }
    tree_feature_offsets_.assign(n_trees_ + 1, 0);
    std::vector<int64_t> seen(n_cols, -1);
    for (int64_t t = 0; t < n_trees_; ++t) {
      for (int64_t n = f_.tree_offsets[t]; n < f_.tree_offsets[t + 1]; ++n) {
        if (f_.IsLeaf(n) || seen[f_.feature[n]] == t) continue;
        seen[f_.feature[n]] = t;
        tree_features_.push_back(f_.feature[n]);
      }
      tree_feature_offsets_[t + 1] = static_cast<int64_t>(tree_features_.size());
    }
    leaf_values_.resize(f_.value.size());
    for (size_t k = 0; k < leaf_values_.size(); ++k) leaf_values_[k] = RoundTo<T>(f_.value[k]);
    single_.assign(n_cols, 0);
    for (int64_t g = 0; g < groups.NumGroups(); ++g) {
      if (groups.offsets[g + 1] - groups.offsets[g] == 1) single_[groups.cols[groups.offsets[g]]] = 1;
      else multi_ = true;
    }
    use_heap_ = width_ == 1 && !multi_;
    if (use_heap_) {
      heap_values_.assign(n_trees_ * kHeapSlots, T(0));
      for (int64_t t = 0; t < n_trees_; ++t) {
        if (!heap_.Eligible(t)) continue;
        for (int j = 0; j < (1 << heap_.Depth(t)); ++j) {
          heap_values_[t * kHeapSlots + j] = leaf_values_[heap_.LeafNodes(t)[j]];
        }
      }
    }
  }

  // The routing part of a thread's scratch.
  void Allocate(BlockScratch<T>& s) const {
    const int64_t m = n_cols_, b = block_;
    s.rows.assign(b * (m + 1), 0.0);
    s.cols.assign(b * (m + 1), 0.0);
    s.cols_f.assign(b * (m + 1), 0.0f);
    s.base_values.assign(n_trees_ * width_ * b, T(0));
    if (multi_) s.path_offsets.assign(n_trees_ * b + 1, 0);
    s.flips.assign(m, {});
    s.flip_at.assign(m, nullptr);
    s.flip_count.assign(m, 0);
    s.walks.resize(m);
    s.heap_walks.assign(m, {});
    s.heap_walk_at.assign(m, nullptr);
    s.heap_walk_count.assign(m, 0);
    if (use_heap_) {
      s.rights.assign(n_trees_ * b, 0);
      s.heap_reached.assign(b, 0);
      s.heap_other.assign(kHeapDepth * b, 0);
    }
    s.stamp.assign(m, 0);
    s.first_at.assign(m, 0);
    const int64_t lane_depth = kLockstepRows * (max_depth_ + 1);
    s.lane_path.assign(lane_depth, 0);
    s.repeated.assign(lane_depth, 0);
    s.first.assign(lane_depth, 0);
    s.alt_node.assign(lane_depth, 0);
    s.alt_lane.assign(lane_depth, 0);
    s.alt_depth.assign(lane_depth, 0);
    s.alt_watch.assign(lane_depth, 0);
    s.alt_live.assign(lane_depth, 0);
    s.varies.assign(lane_depth, 0);
  }

  // Routes the block's rows s.rows[0 .. nb) through every tree: unpermuted leaf values
  // (s.base_values), flip entries and walks per feature, heap decision bits and, with
  // multi-feature groups, the paths.
  void Route(BlockScratch<T>& s, int64_t nb) const {
    if (use_heap_) Transpose(s, nb);
    std::fill(s.stamp.begin(), s.stamp.end(), 0);
    for (int64_t j = 0; j < n_cols_; ++j) s.walks[j].clear();
    std::fill(s.heap_walk_count.begin(), s.heap_walk_count.end(), 0);
    s.path.clear();
    std::fill(s.flip_count.begin(), s.flip_count.end(), 0);
    for (int64_t t = 0; t < n_trees_; ++t) {
      // Each (tree, row) emits at most one flip entry and one heap walk per feature of the
      // tree.
      const bool heap = use_heap_ && heap_.Eligible(t);
      for (int64_t k = tree_feature_offsets_[t]; k < tree_feature_offsets_[t + 1]; ++k) {
        const int32_t f = tree_features_[k];
        Reserve(s.flips[f], s.flip_at[f], s.flip_count[f] + nb);
        if (heap) Reserve(s.heap_walks[f], s.heap_walk_at[f], s.heap_walk_count[f] + nb);
      }
      if (heap) {
        RouteHeap(s, t, nb);
        continue;
      }
      for (int64_t i0 = 0; i0 < nb; i0 += kLockstepRows) RouteLanes(s, t, i0, std::min<int64_t>(kLockstepRows, nb - i0), nb);
    }
  }

  const StepNode& Node(int32_t node) const { return steps_[node]; }
  const T* LeafValues() const { return leaf_values_.data(); }
  const HeapForest& Heap() const { return heap_; }

  int32_t Descend(int32_t node, const double* row) const {
    while (!(steps_[node].flags & kLeafNode)) node = Step(f_, steps_[node], node, row);
    return node;
  }

 private:
  // Grows `entries` to hold at least `need` entries; `at` follows its data.
  template <typename Entry>
  static void Reserve(std::vector<Entry>& entries, Entry*& at, int64_t need) {
    if (need <= static_cast<int64_t>(entries.size())) return;
    entries.resize(std::max<int64_t>(need, 2 * entries.size()));
    at = entries.data();
  }

  // s.cols (or s.cols_f where float32 is exact) from s.rows, for the heap decision pass.
  void Transpose(BlockScratch<T>& s, int64_t nb) const {
    if (heap_.FloatExact()) {
      for (int64_t i = 0; i < nb; ++i) {
        for (int64_t j = 0; j < n_cols_; ++j) {
          s.cols_f[j * block_ + i] = ToFloat32(s.rows[i * stride_ + j]);
        }
      }
      return;
    }
    for (int64_t i = 0; i < nb; ++i) {
      for (int64_t j = 0; j < n_cols_; ++j) s.cols[j * block_ + i] = s.rows[i * stride_ + j];
    }
  }

  // Routes the block's rows through a shallow plain tree by its heap view; single-output
  // forests of single-feature groups only (no paths kept).
  void RouteHeap(BlockScratch<T>& s, int64_t t, int64_t nb) const {
    if (heap_.FloatExact()) {
      heap_.Decide(t, s.cols_f.data(), block_, &s.rights[t * block_]);
    } else {
      heap_.Decide(t, s.cols.data(), block_, &s.rights[t * block_]);
    }
    switch (heap_.Depth(t)) {
      case 0: return RouteHeap<0>(s, t, nb);
      case 1: return RouteHeap<1>(s, t, nb);
      case 2: return RouteHeap<2>(s, t, nb);
      case 3: return RouteHeap<3>(s, t, nb);
      case 4: return RouteHeap<4>(s, t, nb);
      case 5: return RouteHeap<5>(s, t, nb);
      default: return RouteHeap<kHeapDepth>(s, t, nb);
    }
  }

  template <int D>
  void RouteHeap(BlockScratch<T>& s, int64_t t, int64_t nb) const {
    static_assert(D <= kHeapDepth, "heap trees are at most kHeapDepth deep");
    const uint32_t* reached = s.heap_reached.data();
    const uint32_t* other = s.heap_other.data();
    heap_.Leaves(t, &s.rights[t * block_], nb, s.heap_reached.data(), s.heap_other.data(), block_);
    const HeapSlot* slots = heap_.Slots(t);
    const T* heap_value = &heap_values_[t * kHeapSlots];
    T* base_values = s.base_values.data();
    const uint8_t* single = single_.data();
    FlipEntry<T>* const* flip_at = s.flip_at.data();
    int64_t* flip_count = s.flip_count.data();
    HeapWalkEntry* const* heap_walk_at = s.heap_walk_at.data();
    int64_t* heap_walk_count = s.heap_walk_count.data();
    for (int64_t i = 0; i < nb; ++i) {
      const uint32_t pos = Pos(t, i);
      const uint32_t leaf = reached[i];
      const uint64_t path = heap_.PathMask(D, leaf);
      base_values[pos] = heap_value[leaf];
      for (int k = 0; k < D; ++k) {
        const uint32_t slot = (1u << k) - 1u + (leaf >> (D - k));
        const HeapSlot& split = slots[slot];
        const int32_t f = split.feature;
        if (f < 0) break;  // passing below a leaf
        const uint32_t alt = other[k * block_ + i];
        const bool went_left = ((leaf >> (D - 1 - k)) & 1u) == 0;
        // The feature's first test on the path, and whether the leaf then depends on it
        // further down the path or through the other branch (a walk, not a flip).
        const uint64_t above = (uint64_t{1} << ((1u << k) - 1u)) - 1u;
        const uint64_t below = ~((uint64_t{1} << ((2u << k) - 1u)) - 1u);
        const bool tested = single[f] && !(split.same & path & above);
        const bool walk = (split.same & (path | heap_.PathMask(D, alt)) & below) != 0;
        if (tested && walk) {
          heap_walk_at[f][heap_walk_count[f]++] = {pos, heap_.LeafNodes(t)[leaf], split.splits,
                                                   static_cast<uint8_t>(slot),
                                                   static_cast<uint8_t>(D - k)};
        }
        const uint32_t flags = (split.nan_left ? kNanLeftBit : 0u) | (went_left ? kWentLeftBit : 0u);
        const int64_t c = flip_count[f];
        flip_at[f][c] = {split.threshold, heap_value[alt], pos | flags};
        flip_count[f] = c + (tested && !walk);
      }
    }
  }

  // Routes rows i0 .. i0 + lanes through tree t in lockstep and emits their entries.
  void RouteLanes(BlockScratch<T>& s, int64_t t, int64_t i0, int64_t lanes, int64_t nb) const {
    const int64_t d1 = max_depth_ + 1;
    const StepNode* steps = steps_.data();
    const double* rows = s.rows.data() + i0 * stride_;
    int32_t* lane_path = s.lane_path.data();
    uint8_t* first = s.first.data();
    uint8_t* repeated = s.repeated.data();
    T* base_values = s.base_values.data();
    const T* leaf_values = leaf_values_.data();
    int32_t cur[kLockstepRows];
    for (int64_t l = 0; l < lanes; ++l) {
      cur[l] = static_cast<int32_t>(f_.tree_offsets[t]);
      lane_path[l * d1] = cur[l];
    }
    const int depth = f_.tree_depth[t];
    for (int d = 0; d < depth; ++d) {
      uint32_t done = kLeafNode;
      for (int64_t l = 0; l < lanes; ++l) {
        cur[l] = Step(f_, steps[cur[l]], cur[l], rows + l * stride_);
        lane_path[l * d1 + d + 1] = cur[l];
        done &= steps[cur[l]].flags;
      }
      if (done) break;
    }
    for (int64_t l = 0; l < lanes; ++l) {
      const int64_t i = i0 + l;
      const int32_t* path = lane_path + l * d1;
      const int32_t leaf = cur[l];
      int len = 0;
      while (path[len] != leaf) ++len;
      const uint32_t pos = Pos(t, i);
      const T* leaf_value = leaf_values + int64_t{leaf} * width_;
      for (int c = 0; c < width_; ++c) base_values[pos + c * block_] = leaf_value[c];
      if (multi_) {
        s.path.insert(s.path.end(), path, path + len + 1);
        s.path_offsets[t * nb + i + 1] = static_cast<int64_t>(s.path.size());
      }
      MarkFirstTests(s, t * nb + i + 1, path, len, first + l * d1, repeated + l * d1);
      std::fill(first + l * d1 + len, first + (l + 1) * d1, 0);
    }
    int32_t* alt_node = s.alt_node.data();
    int32_t* alt_lane = s.alt_lane.data();
    int32_t* alt_depth = s.alt_depth.data();
    int32_t* alt_watch = s.alt_watch.data();
    int n_alt = 0;
    // Entries by depth, so that the walks past the other branches shorten together.
    for (int k = 0; k < depth; ++k) {
      for (int64_t l = 0; l < lanes; ++l) {
        if (!first[l * d1 + k]) continue;
        const int32_t node = lane_path[l * d1 + k];
        const StepNode& n = steps[node];
        if (repeated[l * d1 + k] || (n.flags & kGeneralSplit)) {
          s.walks[n.feature].push_back({node, Pos(t, i0 + l), cur[l], depth - k});
          continue;
        }
        const bool left = lane_path[l * d1 + k + 1] == n.child[0];
        alt_node[n_alt] = n.child[left ? 1 : 0];
        alt_lane[n_alt] = static_cast<int32_t>(l);
        alt_watch[n_alt] = n.feature;
        alt_depth[n_alt++] = k;
      }
    }
    WalkAlternatives(s, rows, n_alt, depth);
    const uint8_t* varies = s.varies.data();
    for (int w = 0; w < n_alt; ++w) {
      const int64_t l = alt_lane[w];
      const int32_t node = lane_path[l * d1 + alt_depth[w]];
      const StepNode& n = steps[node];
      const uint32_t pos = Pos(t, i0 + l);
      const int32_t next = lane_path[l * d1 + alt_depth[w] + 1];
      if (varies[w] || width_ != 1) {
        s.walks[n.feature].push_back({node, pos, cur[l], depth - alt_depth[w]});
      } else {
        const uint32_t flags = ((n.flags & kDefaultLeft) ? kNanLeftBit : 0u) |
                               (next == n.child[0] ? kWentLeftBit : 0u);
        s.flips[n.feature][s.flip_count[n.feature]++] = {n.threshold, leaf_values[alt_node[w]], pos | flags};
      }
    }
  }

  uint32_t Pos(int64_t t, int64_t i) const {
    return static_cast<uint32_t>(((t * width_) << log2_) + i);
  }

  // first[k] = 1 where path[k] is the first test of a single-group feature on the path,
  // repeated[k] = 1 where that feature is tested again further down.
  void MarkFirstTests(BlockScratch<T>& s, int64_t key, const int32_t* path, int len, uint8_t* first,
                      uint8_t* repeated) const {
    const StepNode* steps = steps_.data();
    const uint8_t* single = single_.data();
    int64_t* stamp = s.stamp.data();
    int32_t* first_at = s.first_at.data();
    for (int k = 0; k < len; ++k) {
      const int32_t feat = steps[path[k]].feature;
      first[k] = 0;
      if (!single[feat]) continue;
      if (stamp[feat] == key) {
        repeated[first_at[feat]] = 1;
        continue;
      }
      stamp[feat] = key;
      first_at[feat] = k;
      first[k] = 1;
      repeated[k] = 0;
    }
  }

  // Walks the pending alternatives (sorted by the depth they start at) to their leaves in
  // lockstep, noting those that test their own feature again. Shallow trees walk every
  // alternative as deep as the tree allows; deep trees drop each walk at its leaf.
  //   rows: [lanes, stride_] the lanes' transformed features.
  void WalkAlternatives(BlockScratch<T>& s, const double* rows, int n_alt, int depth) const {
    const StepNode* steps = steps_.data();
    int32_t* alt_node = s.alt_node.data();
    const int32_t* alt_lane = s.alt_lane.data();
    const int32_t* alt_depth = s.alt_depth.data();
    const int32_t* alt_watch = s.alt_watch.data();
    uint8_t* varies = s.varies.data();
    if (depth > kLockstepDepth) {
      WalkToLeaves(s, rows, n_alt);
      return;
    }
    std::fill(varies, varies + n_alt, 0);
    int active = n_alt;
    for (int step = 0; active > 0; ++step) {
      // A walk starting below depth k needs at most depth - k - 1 steps.
      while (active > 0 && alt_depth[active - 1] >= depth - 1 - step) --active;
      for (int w = 0; w < active; ++w) {
        const int32_t node = alt_node[w];
        const StepNode& n = steps[node];
        varies[w] |= n.feature == alt_watch[w];
        alt_node[w] = Step(f_, n, node, rows + alt_lane[w] * stride_);
      }
    }
  }

  // Walks the pending alternatives to their leaves in lockstep, dropping each walk as it
  // reaches a leaf, for deep trees whose leaves lie at very different depths.
  //   rows: [lanes, stride_] the lanes' transformed features.
  void WalkToLeaves(BlockScratch<T>& s, const double* rows, int n_alt) const {
    const StepNode* steps = steps_.data();
    int32_t* alt_node = s.alt_node.data();
    const int32_t* alt_lane = s.alt_lane.data();
    const int32_t* alt_watch = s.alt_watch.data();
    int32_t* live = s.alt_live.data();
    uint8_t* varies = s.varies.data();
    int n_live = 0;
    for (int w = 0; w < n_alt; ++w) {
      varies[w] = 0;
      live[n_live] = w;
      n_live += !(steps[alt_node[w]].flags & kLeafNode);
    }
    while (n_live > 0) {
      int kept = 0;
      for (int q = 0; q < n_live; ++q) {
        const int32_t w = live[q];
        const int32_t node = alt_node[w];
        const StepNode& n = steps[node];
        varies[w] |= n.feature == alt_watch[w];
        const int32_t child = Step(f_, n, node, rows + alt_lane[w] * stride_);
        alt_node[w] = child;
        live[kept] = w;
        kept += !(steps[child].flags & kLeafNode);
      }
      n_live = kept;
    }
  }

  const Forest& f_;
  const int64_t n_cols_;
  const int log2_;
  const int64_t block_;
  const int64_t n_trees_;
  const int width_;
  const int max_depth_;
  const int64_t stride_;             // row stride of the block's feature matrix
  const HeapForest& heap_;           // shallow plain trees as heaps
  bool use_heap_ = false;
  bool multi_ = false;
  std::vector<StepNode> steps_;      // [n_nodes]
  std::vector<T> leaf_values_;       // [n_nodes, leaf_width] in the accumulation type
  std::vector<T> heap_values_;       // [n_trees, kHeapSlots] value of each heap leaf
  std::vector<int64_t> tree_feature_offsets_;  // [n_trees + 1] into tree_features_
  std::vector<int32_t> tree_features_;         // distinct features split on by each tree
  std::vector<uint8_t> single_;      // [n_features] feature forms a single-feature group
};

}  // namespace detail
}  // namespace treelens
