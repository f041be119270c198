// Complete-heap routing of shallow trees for permutation importance, after QuickScorer
// (Lucchese et al., "QuickScorer: a fast algorithm to rank documents with additive ensembles
// of regression trees", SIGIR 2015): instead of chasing pointers row by row, every split of a
// tree is evaluated once for a whole block of rows in one vectorised comparison pass that sets
// a "goes right" bit per row and heap slot; a row's path, and the leaf it reaches through the
// other branch of any path node with a permuted value (Walk4, four values at once), are then
// integer arithmetic on those bits. The passes are cloned for AVX2 (common/simd.h).
#include "permutation/heap_forest.h"

#include <algorithm>

#include "common/simd.h"

namespace treelens {
namespace detail {
namespace {

bool PlainTree(const Forest& f, int64_t t) {
  if (f.tree_depth[t] > kHeapDepth) return false;
  for (int64_t n = f.tree_offsets[t]; n < f.tree_offsets[t + 1]; ++n) {
    if (!f.IsLeaf(n) && (f.flags[n] & (kCategorical | kZeroMissing | kLeftAtInf))) return false;
  }
  return true;
}

typedef simd::Vec<double, 4> Double4;
typedef simd::Vec<int64_t, 4> Mask4;
typedef simd::Vec<uint64_t, 4> Bits4;

// Decisions of the splits for b rows, four rows per vector (b is a multiple of 8).
TREELENS_CLONES
void DecideDouble(const HeapSplit* splits, int64_t n_splits, const double* cols, int64_t b,
                  uint64_t* right) {
  for (int64_t i = 0; i < b; ++i) right[i] = 0;
  for (int64_t s = 0; s < n_splits; ++s) {
    const double* x = cols + static_cast<int64_t>(splits[s].feature) * b;
    const Double4 threshold = Double4{} + splits[s].threshold;
    const Bits4 bit = Bits4{} + splits[s].bit;
    const Mask4 nan_right = Mask4{} - static_cast<int64_t>(splits[s].nan_right != 0);
    for (int64_t i = 0; i < b; i += 4) {
      const Double4 xv = simd::Load<Double4>(x + i);
      const Mask4 goes_right = ~(xv < threshold) & ((xv == xv) | nan_right);
      simd::Store(right + i, simd::Load<Bits4>(right + i) | (simd::BitCast<Bits4>(goes_right) & bit));
    }
  }
}

// Float32 decisions into two 32-bit words per row (slots below 32 and the rest), so that the
// masks keep the width of the comparisons; eight rows per vector (b is a multiple of 8).
TREELENS_CLONES
void DecideFloat(const HeapSplit* splits, int64_t n_splits, const float* cols, int64_t b,
                 uint64_t* right) {
  typedef simd::Vec<float, 8> Float8;
  typedef simd::Vec<int32_t, 8> Mask8;
  typedef simd::Vec<uint32_t, 8> Word8;
  uint32_t words[2][kMaxHeapRows];
  for (int64_t i = 0; i < b; ++i) words[0][i] = words[1][i] = 0;
  for (int64_t s = 0; s < n_splits; ++s) {
    const float* x = cols + static_cast<int64_t>(splits[s].feature) * b;
    const Float8 threshold = Float8{} + static_cast<float>(splits[s].threshold);
    const int slot = simd::CountTrailingZeros(splits[s].bit);
    const Word8 bit = Word8{} + (uint32_t{1} << (slot & 31));
    uint32_t* word = words[slot >> 5];
    const Mask8 nan_right = Mask8{} - static_cast<int32_t>(splits[s].nan_right != 0);
    for (int64_t i = 0; i < b; i += 8) {
      const Float8 xv = simd::Load<Float8>(x + i);
      const Mask8 goes_right = ~(xv < threshold) & ((xv == xv) | nan_right);
      simd::Store(word + i, simd::Load<Word8>(word + i) | (simd::BitCast<Word8>(goes_right) & bit));
    }
  }
  for (int64_t i = 0; i < b; ++i) right[i] = words[0][i] | (static_cast<uint64_t>(words[1][i]) << 32);
}

// Heap slots reached from `slot` in `steps` steps by four rows whose decision bits are the
// row's `right` with the splits [s, end) decided for x[k] instead.
TREELENS_CLONES
void WalkSlots4(const HeapSplit* s, const HeapSplit* end, uint64_t right, uint32_t slot,
                int steps, const double* x, uint64_t* slots) {
  Double4 xv;
  for (int k = 0; k < 4; ++k) xv[k] = x[k];
  Bits4 r = Bits4{} + right;
  for (; s != end; ++s) {
    const Mask4 nan_right = Mask4{} - static_cast<int64_t>(s->nan_right != 0);
    const Mask4 goes_right = ~(xv < (Double4{} + s->threshold)) & ((xv == xv) | nan_right);
    r |= simd::BitCast<Bits4>(goes_right) & (Bits4{} + s->bit);
  }
  Bits4 h = Bits4{} + static_cast<uint64_t>(slot);
  for (int k = 0; k < steps; ++k) h = 2 * h + 1 + ((r >> h) & 1);
  for (int k = 0; k < 4; ++k) slots[k] = h[k];
}

// The heap leaves of Leaves for trees of depth D, four rows per vector.
template <int D>
TREELENS_INLINE void LeavesOf(const uint64_t* right, int64_t n, uint32_t* reached,
                              uint32_t* other, int64_t stride) {
  typedef simd::Vec<uint32_t, 4> Index4;
  constexpr uint64_t kFirstLeaf = (uint64_t{1} << D) - 1;
  for (int64_t i = 0; i < n; i += 4) {
    const Bits4 r = simd::Load<Bits4>(right + i);
    Bits4 h = Bits4{};
    Bits4 alt[D + 1];
    for (int k = 0; k < D; ++k) {
      const Bits4 goes_right = (r >> h) & 1;
      alt[k] = 2 * h + 2 - goes_right;
      h = 2 * h + 1 + goes_right;
    }
    simd::Store(reached + i, simd::Convert<Index4>(h - kFirstLeaf));
    for (int k = 0; k < D; ++k) {
      Bits4 a = alt[k];
      for (int q = k + 1; q < D; ++q) a = 2 * a + 1 + ((r >> a) & 1);
      simd::Store(other + k * stride + i, simd::Convert<Index4>(a - kFirstLeaf));
    }
  }
}

TREELENS_CLONES
void HeapLeaves(int depth, const uint64_t* right, int64_t n, uint32_t* reached, uint32_t* other,
                int64_t stride) {
  switch (depth) {
    case 0: return LeavesOf<0>(right, n, reached, other, stride);
    case 1: return LeavesOf<1>(right, n, reached, other, stride);
    case 2: return LeavesOf<2>(right, n, reached, other, stride);
    case 3: return LeavesOf<3>(right, n, reached, other, stride);
    case 4: return LeavesOf<4>(right, n, reached, other, stride);
    case 5: return LeavesOf<5>(right, n, reached, other, stride);
    default: return LeavesOf<kHeapDepth>(right, n, reached, other, stride);
  }
}

}  // namespace

HeapForest::HeapForest(const Forest& f) {
  const int64_t n_trees = f.NumTrees();
  depth_.assign(n_trees, -1);
  node_.assign(n_trees * kHeapSlots, -1);
  leaf_.assign(n_trees * kHeapSlots, -1);
  slots_.assign(n_trees * kHeapSlots, HeapSlot{0.0, 0, -1, -1, 0});
  split_offsets_.assign(n_trees + 1, 0);
  std::vector<std::pair<int32_t, int32_t>> stack;  // (slot, forest node)
  for (int64_t t = 0; t < n_trees; ++t) {
    split_offsets_[t + 1] = split_offsets_[t];
    if (!PlainTree(f, t)) continue;
    const int d = f.tree_depth[t];
    depth_[t] = static_cast<int8_t>(d);
    int32_t* node = &node_[t * kHeapSlots];
    int32_t* leaf = &leaf_[t * kHeapSlots];
    const int32_t first_leaf = (1 << d) - 1;
    stack.assign(1, {0, static_cast<int32_t>(f.tree_offsets[t])});
    while (!stack.empty()) {
      const auto [slot, n] = stack.back();
      stack.pop_back();
      if (f.IsLeaf(n)) {
        // Every heap leaf below the slot (reached by passing left) maps to this leaf.
        int32_t lo = slot, hi = slot;
        while (lo < first_leaf) {
          lo = 2 * lo + 1;
          hi = 2 * hi + 2;
        }
        for (int32_t j = lo; j <= hi; ++j) leaf[j - first_leaf] = n;
        continue;
      }
      node[slot] = n;
      splits_.push_back({f.threshold[n], f.feature[n],
                         static_cast<uint32_t>(!(f.flags[n] & kDefaultLeft)), uint64_t{1} << slot});
      stack.push_back({2 * slot + 1, f.left[n]});
      stack.push_back({2 * slot + 2, f.right[n]});
    }
    split_offsets_[t + 1] = static_cast<int64_t>(splits_.size());
  }
  tree_lists_.assign(n_trees + 1, 0);
  split_list_offsets_.assign(1, 0);
  for (int64_t t = 0; t < n_trees; ++t) {
    std::vector<HeapSplit> own(splits_.begin() + split_offsets_[t], splits_.begin() + split_offsets_[t + 1]);
    std::stable_sort(own.begin(), own.end(),
                     [](const HeapSplit& a, const HeapSplit& b) { return a.feature < b.feature; });
    for (size_t k = 0; k < own.size(); ++k) {
      if (k == 0 || own[k].feature != own[k - 1].feature) {
        split_list_feature_.push_back(own[k].feature);
        split_list_mask_.push_back(0);
        split_list_offsets_.push_back(split_list_offsets_.back());
      }
      feature_splits_.push_back(own[k]);
      split_list_mask_.back() |= own[k].bit;
      ++split_list_offsets_.back();
    }
    tree_lists_[t + 1] = static_cast<int64_t>(split_list_feature_.size());
    for (int32_t slot = 0; slot + 1 < kHeapSlots; ++slot) {
      const int32_t n = node_[t * kHeapSlots + slot];
      if (n < 0) continue;
      const auto begin = split_list_feature_.begin() + tree_lists_[t];
      const auto end = split_list_feature_.begin() + tree_lists_[t + 1];
      const int32_t list =
          static_cast<int32_t>(std::lower_bound(begin, end, f.feature[n]) - split_list_feature_.begin());
      slots_[t * kHeapSlots + slot] = {f.threshold[n], split_list_mask_[list], f.feature[n], list,
                                       static_cast<uint32_t>((f.flags[n] & kDefaultLeft) != 0)};
    }
  }
  path_masks_.assign((kHeapDepth + 1) * kHeapSlots, 0);
  for (int d = 0; d <= kHeapDepth; ++d) {
    for (uint32_t j = 0; j < (1u << d); ++j) {
      uint64_t& mask = path_masks_[d * kHeapSlots + j];
      for (int k = 0; k < d; ++k) mask |= uint64_t{1} << ((1u << k) - 1u + (j >> (d - k)));
    }
  }
  float_exact_ = f.routing == Routing::kXGBoost || f.routing == Routing::kSklearn;
  for (const HeapSplit& s : splits_) float_exact_ = float_exact_ && IsFloat32Exact(s.threshold);
}

void HeapForest::Walk4(int64_t t, int32_t splits, uint64_t right, uint32_t slot, int steps,
                       const double* x, int32_t* leaves) const {
  uint64_t slots[4];
  WalkSlots4(&feature_splits_[0] + split_list_offsets_[splits],
             &feature_splits_[0] + split_list_offsets_[splits + 1],
             right & ~split_list_mask_[splits], slot, steps, x, slots);
  const uint64_t first_leaf = (uint64_t{1} << depth_[t]) - 1;
  for (int k = 0; k < 4; ++k) leaves[k] = leaf_[t * kHeapSlots + (slots[k] - first_leaf)];
}

void HeapForest::Leaves(int64_t t, const uint64_t* right, int64_t n, uint32_t* reached,
                        uint32_t* other, int64_t stride) const {
  HeapLeaves(depth_[t], right, n, reached, other, stride);
}

void HeapForest::Decide(int64_t t, const double* cols, int64_t b, uint64_t* right) const {
  DecideDouble(splits_.data() + split_offsets_[t], split_offsets_[t + 1] - split_offsets_[t], cols,
               b, right);
}

void HeapForest::Decide(int64_t t, const float* cols, int64_t b, uint64_t* right) const {
  DecideFloat(splits_.data() + split_offsets_[t], split_offsets_[t + 1] - split_offsets_[t], cols,
              b, right);
}

}  // namespace detail
}  // namespace treelens
