// Batched permutation importance (L. Breiman, "Random Forests", Machine Learning 45, 2001;
// the scikit-learn permutation_importance protocol) for tree ensembles.
//
// Rows are processed in blocks. One routing pass per block (block_router.h) records
// every (tree, row) leaf value and, for every feature tested on a path, an entry at the first
// node that tests it: threshold, branch taken, and the leaf reached through the other branch.
// Permuting a single feature then only compares the permuted values with those entries, for
// eight repeats at once as vector lanes over interleaved value matrices
// (repeat_lanes.h); entries whose answer depends on the permuted value beyond that node
// (the feature is tested again, a categorical or zero-as-missing split, multi-feature groups)
// descend again from the node. The margins are re-summed in tree order exactly as Predict
// sums them (float32 accumulation where the forest asks for it), from the stored running sum
// before the first changed tree, so each permuted margin equals Predict on the explicitly
// permuted matrix bit for bit. They are written out, or reduced at once to weighted residual
// sums per chunk of rows for regression scores. Blocks are independent and chunks are summed
// in row order: results do not depend on the number of threads.
#include "permutation/permutation.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/parallel.h"
#include "model/predict.h"
#include "permutation/block_records.h"
#include "permutation/repeat_lanes.h"
#include "permutation/block_router.h"

namespace treelens {
namespace detail {

// Where a block's permuted margins go: the output's margins, or residual sums of a chunk.
struct Sink {
  const PermutationOutput& out;
  double* sums;  // [n_groups, n_repeats, n_outputs, 2] of the block's chunk
};

template <typename T>
class PermutationPlan {
 public:
  PermutationPlan(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
                  const int64_t* perms, int64_t n_repeats, const HeapForest& heap, int block_log2,
                  int n_threads)
      : f_(forest), x_(x), groups_(groups), perms_(perms), n_repeats_(n_repeats),
        log2_(block_log2), block_(int64_t{1} << block_log2), n_trees_(forest.NumTrees()),
        width_(forest.leaf_width), k_out_(forest.n_outputs), n_slots_(n_trees_ * width_),
        stride_(x.n_cols + 1), matrix_(n_slots_ << block_log2),
        router_(forest, heap, groups, x.n_cols, block_log2) {
    const int64_t m = x.n_cols;
    slot_output_.resize(n_slots_);
    for (int64_t t = 0; t < n_trees_; ++t) {
      for (int c = 0; c < width_; ++c) slot_output_[t * width_ + c] = width_ == 1 ? f_.tree_output[t] : c;
    }
    column_.assign(m, -1);
    for (int64_t g = 0; g < groups.NumGroups(); ++g) {
      max_group_ = std::max(max_group_, groups.offsets[g + 1] - groups.offsets[g]);
    }
    for (int32_t c : groups.cols) {
      if (column_[c] < 0) column_[c] = n_used_++;
    }
    float_inputs_ = f_.routing == Routing::kXGBoost || f_.routing == Routing::kSklearn;
    for (int64_t n = 0; n < f_.NumNodes(); ++n) {
      const double t = f_.threshold[n];
      if (!f_.IsLeaf(n)) float_inputs_ = float_inputs_ && IsFloat32Exact(t);
    }
    if constexpr (std::is_same_v<T, float>) float_values_ = float_inputs_;
    // The used columns of every row, transformed, filled by the threads in bands of rows.
    used_rows_.resize(x.n_rows * n_used_);
    std::vector<int64_t> used;
    for (int64_t j = 0; j < m; ++j) {
      if (column_[j] >= 0) used.push_back(j);
    }
    constexpr int64_t kBand = 1024;
    ParallelFor((x.n_rows + kBand - 1) / kBand, n_threads, [&](int64_t band, int) {
      for (int64_t r = band * kBand; r < std::min(x.n_rows, (band + 1) * kBand); ++r) {
        for (int64_t j : used) used_rows_[r * n_used_ + column_[j]] = f_.TransformInput(x.At(r, j));
      }
    });
  }

  void Allocate(BlockScratch<T>& s) const {
    const int64_t b = block_;
    router_.Allocate(s);
    s.values.assign(kRepeatLanes * matrix_, T(0));
    s.lane_acc.assign(k_out_ * b * kRepeatLanes, T(0));
    s.prefix.assign(n_slots_ * b, T(0));
    s.acc.assign(k_out_ * b, T(0));
    s.baseline.assign(b * k_out_, 0.0);
    s.stage.assign(b * k_out_, 0.0);
    s.first_slot.assign(k_out_, 0);
    s.in_group.assign(x_.n_cols, 0);
    s.permuted.assign(float_values_ ? 0 : n_used_ * b * kRepeatLanes, 0.0);
    s.permuted_f.assign(float_values_ ? n_used_ * b * kRepeatLanes : 0, 0.0f);
    s.saved.assign(max_group_, 0.0);
  }

  // out: [n_groups, n_repeats, n_rows, n_outputs]; writes the block's rows.
  //   sums: the residual sums of the block's chunk, [n_groups, n_repeats, n_outputs, 2], when
  //   the output asks for residual sums.
  void Run(int64_t block, BlockScratch<T>& s, const PermutationOutput& out, double* sums) const {
    const int64_t r0 = block * block_;
    const int64_t nb = std::min(x_.n_rows - r0, block_);
    for (int64_t i = 0; i < nb; ++i) x_.LoadRow(f_, r0 + i, &s.rows[i * stride_]);
    router_.Route(s, nb);
    Baseline(s);
    if (out.baseline) {
      std::copy(s.baseline.begin(), s.baseline.begin() + nb * k_out_, out.baseline + r0 * k_out_);
    }
    const Sink sink{out, sums};
    // Groups write disjoint outputs, so single features go chunk by chunk of repeats (one
    // gather of the chunk's permuted rows serves them all) and multi-feature groups after.
    for (int64_t r_first = 0; r_first < n_repeats_; r_first += kRepeatLanes) {
      const int rc = static_cast<int>(std::min<int64_t>(kRepeatLanes, n_repeats_ - r_first));
      if constexpr (std::is_same_v<T, float>) {
        if (float_values_) {
          PermuteFeatures(s, s.permuted_f.data(), r_first, rc, r0, nb, sink);
          continue;
        }
      }
      PermuteFeatures(s, s.permuted.data(), r_first, rc, r0, nb, sink);
    }
    for (int64_t g = 0; g < groups_.NumGroups(); ++g) {
      if (groups_.offsets[g + 1] - groups_.offsets[g] != 1) PermuteGroup(s, g, r0, nb, sink);
    }
  }

 private:
  // Margins of the unpermuted rows, the running sums before every slot, and every lane of
  // the value matrix set to the unpermuted leaves.
  void Baseline(BlockScratch<T>& s) const {
    const int64_t b = block_;
    for (int o = 0; o < k_out_; ++o) {
      std::fill(s.acc.begin() + o * b, s.acc.begin() + (o + 1) * b, RoundTo<T>(f_.base_score[o]));
    }
    for (int64_t slot = 0; slot < n_slots_; ++slot) {
      T* a = &s.acc[slot_output_[slot] * b];
      const T* v = &s.base_values[slot * b];
      T* p = &s.prefix[slot * b];
      for (int64_t i = 0; i < b; ++i) {
        p[i] = a[i];
        a[i] += v[i];
      }
    }
    for (int64_t i = 0; i < b; ++i) {
      for (int o = 0; o < k_out_; ++o) s.baseline[i * k_out_ + o] = static_cast<double>(s.acc[o * b + i]);
    }
    T* values = s.values.data();
    for (int64_t p = 0; p < matrix_; ++p) {
      std::fill(values + p * kRepeatLanes, values + (p + 1) * kRepeatLanes, s.base_values[p]);
    }
  }

  // Writes lanes [0, rc) of repeats r_first .. r_first + rc of group g for the block:
  // margins summed in slot order from the lanes' value matrix, where slots before `from`
  // (the least changed position's slot) are unchanged, so each output resumes from its
  // running sum there.
  void Finish(BlockScratch<T>& s, int64_t g, int64_t r_first, int rc, int64_t r0, int64_t nb,
              uint32_t least, const Sink& sink) const {
    const int64_t b = block_;
    const int64_t repeat_stride = x_.n_rows * k_out_;
    double* dst = sink.out.margins ? sink.out.margins + ((g * n_repeats_ + r_first) * x_.n_rows + r0) * k_out_
                                   : nullptr;
    if (least == ~0u) {
      for (int l = 0; l < rc; ++l) {
        if (dst) {
          std::copy(s.baseline.begin(), s.baseline.begin() + nb * k_out_, dst + l * repeat_stride);
        } else {
          AddResiduals(sink, s.baseline.data(), g, r_first + l, r0, nb);
        }
      }
      return;
    }
    const int64_t from = least >> log2_;
    T* lanes = s.lane_acc.data();  // [n_outputs, block, kRepeatLanes]
    if (k_out_ == 1) {
      SumLanes(&s.prefix[from * b], s.values.data(), from, n_slots_, b, nb, lanes);
    } else {
      std::fill(s.first_slot.begin(), s.first_slot.end(), n_slots_);
      for (int64_t slot = n_slots_ - 1; slot >= from; --slot) s.first_slot[slot_output_[slot]] = slot;
      for (int o = 0; o < k_out_; ++o) {
        if (s.first_slot[o] == n_slots_) continue;
        const T* start = &s.prefix[s.first_slot[o] * b];
        for (int64_t i = 0; i < nb; ++i) {
          std::fill(lanes + (o * b + i) * kRepeatLanes, lanes + (o * b + i + 1) * kRepeatLanes, start[i]);
        }
      }
      const T* values = s.values.data();
      for (int64_t slot = from; slot < n_slots_; ++slot) {
        T* a = lanes + slot_output_[slot] * b * kRepeatLanes;
        const T* v = values + slot * b * kRepeatLanes;
        for (int64_t k = 0; k < nb * kRepeatLanes; ++k) a[k] += v[k];
      }
    }
    if (!dst && k_out_ == 1 && !sink.out.exp_link) {
      double squared[kRepeatLanes], absolute[kRepeatLanes];
      const double* w = sink.out.weights ? sink.out.weights + r0 : nullptr;
      ResidualLanes(lanes, sink.out.y + r0, w, nb, squared, absolute);
      for (int l = 0; l < rc; ++l) {
        double* acc = sink.sums + (g * n_repeats_ + r_first + l) * 2;
        acc[0] += squared[l];
        acc[1] += absolute[l];
      }
      return;
    }
    for (int l = 0; l < rc; ++l) {
      double* d = dst ? dst + l * repeat_stride : s.stage.data();
      if (k_out_ == 1) {
        for (int64_t i = 0; i < nb; ++i) d[i] = static_cast<double>(lanes[i * kRepeatLanes + l]);
      } else {
        for (int64_t i = 0; i < nb; ++i) {
          for (int o = 0; o < k_out_; ++o) {
            const bool untouched = s.first_slot[o] == n_slots_;
            d[i * k_out_ + o] = untouched ? s.baseline[i * k_out_ + o]
                                          : static_cast<double>(lanes[(o * b + i) * kRepeatLanes + l]);
          }
        }
      }
      if (!dst) AddResiduals(sink, d, g, r_first + l, r0, nb);
    }
  }

  // Adds the weighted squared and absolute residuals of the margins m: [nb, n_outputs] of
  // repeat r of group g to the chunk's sums, row by row.
  void AddResiduals(const Sink& sink, const double* m, int64_t g, int64_t r, int64_t r0,
                    int64_t nb) const {
    double* acc = sink.sums + (g * n_repeats_ + r) * k_out_ * 2;
    const double* y = sink.out.y + r0 * k_out_;
    for (int64_t i = 0; i < nb; ++i) {
      const double w = sink.out.weights ? sink.out.weights[r0 + i] : 1.0;
      for (int o = 0; o < k_out_; ++o) {
        const double p = sink.out.exp_link ? std::exp(m[i * k_out_ + o]) : m[i * k_out_ + o];
        const double e = y[i * k_out_ + o] - p;
        acc[2 * o] += w * (e * e);
        acc[2 * o + 1] += w * std::fabs(e);
      }
    }
  }

  // Writes the leaf values of `leaf` at a position of one lane.
  void WriteLeaf(T* values, uint32_t pos, int lane, int64_t leaf) const {
    for (int c = 0; c < width_; ++c) {
      values[(pos + c * block_) * kRepeatLanes + lane] = router_.LeafValues()[leaf * width_ + c];
    }
  }

  // Resets every lane at the entries' positions to the unpermuted leaves.
  template <typename Entry>
  void Restore(BlockScratch<T>& s, const Entry* begin, const Entry* end) const {
    T* values = s.values.data();
    for (const Entry* e_at = begin; e_at != end; ++e_at) {
      const Entry& e = *e_at;
      for (int c = 0; c < width_; ++c) {
        const int64_t p = e.pos + c * block_;
        std::fill(values + p * kRepeatLanes, values + (p + 1) * kRepeatLanes, s.base_values[p]);
      }
    }
  }

  // permuted[u, i, l] = used column u of the row that repeat r_first + l moves to row r0 + i,
  // for the chunk's rc repeats (lanes past them keep stale values, never read).
  //   permuted: [n_used, block, kRepeatLanes], float32 where that is exact.
  template <typename V>
  void GatherPermuted(V* permuted, int64_t r_first, int rc, int64_t r0, int64_t nb) const {
    const int64_t plane = block_ * kRepeatLanes;
    for (int l = 0; l < rc; ++l) {
      const int64_t* perm = perms_ + (r_first + l) * x_.n_rows + r0;
      for (int64_t i = 0; i < nb; ++i) {
        const double* src = &used_rows_[perm[i] * n_used_];
        V* dst = permuted + i * kRepeatLanes + l;
        for (int64_t u = 0; u < n_used_; ++u) dst[u * plane] = static_cast<V>(src[u]);
      }
    }
  }

  // Every single-feature group for the chunk of rc repeats from r_first.
  //   permuted: scratch for GatherPermuted.
  template <typename V>
  void PermuteFeatures(BlockScratch<T>& s, V* permuted, int64_t r_first, int rc, int64_t r0,
                       int64_t nb, const Sink& sink) const {
    GatherPermuted(permuted, r_first, rc, r0, nb);
    for (int64_t g = 0; g < groups_.NumGroups(); ++g) {
      if (groups_.offsets[g + 1] - groups_.offsets[g] == 1) {
        PermuteFeature(s, permuted, g, r_first, rc, r0, nb, sink);
      }
    }
  }

  // Single-feature group g: the chunk of rc repeats from r_first, one lane each.
  //   permuted: GatherPermuted's values of the chunk.
  template <typename V>
  void PermuteFeature(BlockScratch<T>& s, const V* permuted, int64_t g, int64_t r_first, int rc,
                      int64_t r0, int64_t nb, const Sink& sink) const {
    const int32_t j = groups_.cols[groups_.offsets[g]];
    const V* vals = permuted + column_[j] * block_ * kRepeatLanes;
    const FlipEntry<T>* flips = s.flip_at[j];
    const int64_t n_flips = s.flip_count[j];
    const std::vector<WalkEntry>& walks = s.walks[j];
    const HeapWalkEntry* heap_walks = s.heap_walk_at[j];
    const int64_t n_heap_walks = s.heap_walk_count[j];
    T* values = s.values.data();
    const T* base = s.base_values.data();
    const uint32_t row_mask = static_cast<uint32_t>(block_ - 1);
    {
      uint32_t least[kRepeatLanes];
      std::fill(least, least + kRepeatLanes, ~0u);
      ApplyFlipLanes(flips, flips + n_flips, vals, row_mask, base, values, least);
      for (const WalkEntry& e : walks) {
        // All lanes descend together for as many steps as the tree is deep below the node
        // (leaves loop onto themselves), reading feature j from the lane's permuted value.
        const int64_t i = e.pos & row_mask;
        const double* row = &s.rows[i * stride_];
        const V* lane_x = vals + i * kRepeatLanes;
        int32_t node[kRepeatLanes];
        for (int l = 0; l < kRepeatLanes; ++l) node[l] = e.node;
        for (int d = 0; d < e.steps; ++d) {
          for (int l = 0; l < rc; ++l) {
            const StepNode& n = router_.Node(node[l]);
            const double x = n.feature == j ? static_cast<double>(lane_x[l]) : row[n.feature];
            node[l] = StepAt(f_, n, node[l], x);
          }
        }
        for (int l = 0; l < rc; ++l) {
          WriteLeaf(values, e.pos, l, node[l]);
          if (node[l] != e.leaf) least[l] = std::min(least[l], e.pos);
        }
      }
      for (const HeapWalkEntry* e_at = heap_walks; e_at != heap_walks + n_heap_walks; ++e_at) {
        const HeapWalkEntry& e = *e_at;
        const int64_t i = e.pos & row_mask;
        const int64_t t = e.pos >> log2_;  // single-output forests only
        const uint64_t right = s.rights[t * block_ + i];
        double x[kRepeatLanes];
        int32_t leaves[kRepeatLanes];
        for (int l = 0; l < kRepeatLanes; ++l) x[l] = static_cast<double>(vals[i * kRepeatLanes + l]);
        int l = 0;
        for (; l + 1 < rc; l += 4) {
          router_.Heap().Walk4(t, e.splits, right, e.slot, e.steps, x + l, leaves + l);
        }
        if (l < rc) leaves[l] = router_.Heap().Walk1(t, e.splits, right, e.slot, e.steps, x[l]);
        for (int l = 0; l < rc; ++l) {
          WriteLeaf(values, e.pos, l, leaves[l]);
          if (leaves[l] != e.leaf) least[l] = std::min(least[l], e.pos);
        }
      }
      Finish(s, g, r_first, rc, r0, nb, *std::min_element(least, least + rc), sink);
    }
    ResetLanes(flips, flips + n_flips, base, values);
    Restore(s, walks.data(), walks.data() + walks.size());
    Restore(s, heap_walks, heap_walks + n_heap_walks);
  }

  // Multi-feature group: every (tree, row) whose path tests a group feature is walked
  // again from the first such node with all the group's values permuted.
  void PermuteGroup(BlockScratch<T>& s, int64_t g, int64_t r0, int64_t nb, const Sink& sink) const {
    const int32_t* cols = &groups_.cols[groups_.offsets[g]];
    const int64_t size = groups_.offsets[g + 1] - groups_.offsets[g];
    for (int64_t c = 0; c < size; ++c) s.in_group[cols[c]] = 1;
    s.group_walks.clear();
    for (int64_t i = 0; i < nb; ++i) {
      for (int64_t t = 0; t < n_trees_; ++t) {
        const int64_t end = s.path_offsets[t * nb + i + 1] - 1;  // the leaf
        for (int64_t k = s.path_offsets[t * nb + i]; k < end; ++k) {
          if (!s.in_group[f_.feature[s.path[k]]]) continue;
          const uint32_t pos = static_cast<uint32_t>(((t * width_) << log2_) + i);
          const int32_t below = static_cast<int32_t>(end - k);  // splits down to the row's leaf
          s.group_walks.push_back({s.path[k], pos, s.path[end], below});
          break;
        }
      }
    }
    for (int64_t c = 0; c < size; ++c) s.in_group[cols[c]] = 0;
    T* values = s.values.data();
    for (int64_t r_first = 0; r_first < n_repeats_; r_first += kRepeatLanes) {
      const int rc = static_cast<int>(std::min<int64_t>(kRepeatLanes, n_repeats_ - r_first));
      uint32_t least = ~0u;
      for (int l = 0; l < rc; ++l) {
        const int64_t* perm = perms_ + (r_first + l) * x_.n_rows + r0;
        int64_t current = -1;
        for (const WalkEntry& e : s.group_walks) {
          const int64_t i = e.pos & (block_ - 1);
          double* row = &s.rows[i * stride_];
          if (i != current) {
            if (current >= 0) Unpermute(s, cols, size, &s.rows[current * stride_]);
            for (int64_t c = 0; c < size; ++c) {
              s.saved[c] = row[cols[c]];
              row[cols[c]] = used_rows_[perm[i] * n_used_ + column_[cols[c]]];
            }
            current = i;
          }
          const int32_t leaf = router_.Descend(e.node, row);
          WriteLeaf(values, e.pos, l, leaf);
          if (leaf != e.leaf) least = std::min(least, e.pos);
        }
        if (current >= 0) Unpermute(s, cols, size, &s.rows[current * stride_]);
      }
      Finish(s, g, r_first, rc, r0, nb, least, sink);
    }
    Restore(s, s.group_walks.data(), s.group_walks.data() + s.group_walks.size());
  }

  static void Unpermute(BlockScratch<T>& s, const int32_t* cols, int64_t size, double* row) {
    for (int64_t c = size - 1; c >= 0; --c) row[cols[c]] = s.saved[c];
  }

  const Forest& f_;
  const MatrixView& x_;
  const FeatureGroups& groups_;
  const int64_t* perms_;
  const int64_t n_repeats_;
  const int log2_;
  const int64_t block_;
  const int64_t n_trees_;
  const int width_;
  const int k_out_;
  const int64_t n_slots_;
  const int64_t stride_;             // row stride of the block's feature matrix
  const int64_t matrix_;             // size of one value matrix, n_slots * block
  const BlockRouter<T> router_;
  bool float_inputs_ = false;        // inputs and thresholds are float32 values
  std::vector<int32_t> slot_output_; // [n_slots] output each slot adds to
  bool float_values_ = false;        // permuted values held as float32 (float_inputs_, T float)
  std::vector<int64_t> column_;      // [n_features] column of used_rows_, -1 when unused
  int64_t n_used_ = 0;               // features in some group
  std::vector<double> used_rows_;    // [n_rows, n_used_] transformed group features
  int64_t max_group_ = 1;
};

// Rows per block: a power of two (so a value-matrix position encodes its row in the low bits)
// keeping the block's value matrices, sensitivity entries and permuted values of the n_used
// group features within about 256 KiB.
inline int BlockLog2(const Forest& forest, size_t value_bytes, int64_t n_used) {
  const int64_t n_slots = forest.NumTrees() * forest.leaf_width;
  const int64_t tests = std::min(forest.MaxDepth(), forest.n_features);
  const double per_row = static_cast<double>((3 * n_slots + n_used * kRepeatLanes) * value_bytes) +
                         static_cast<double>(forest.NumTrees() * tests * sizeof(FlipEntry<double>));
  const double budget = 256.0 * 1024.0 / per_row;
  int log2 = kMinBlockLog2;
  while (log2 < kMaxBlockLog2 && static_cast<double>(int64_t{1} << (log2 + 1)) <= budget) ++log2;
  return log2;
}

// Residual sums are added per chunk of consecutive blocks in row order (at most kMaxChunks
// chunks) and the chunks in order, so that the sums do not depend on the number of threads.
constexpr int64_t kMaxChunks = 256;

template <typename T>
void RunPermutation(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
                    const int64_t* perms, int64_t n_repeats, const PermutationOutput& out,
                    int n_threads, const HeapForest& heap) {
  const int threads = ResolveThreads(n_threads);
  const int64_t n_slots = forest.NumTrees() * forest.leaf_width;
  std::vector<uint8_t> used(x.n_cols, 0);
  for (int32_t c : groups.cols) used[c] = 1;
  const int block_log2 =
      BlockLog2(forest, sizeof(T), std::count(used.begin(), used.end(), uint8_t{1}));
  if (n_slots >= (int64_t{1} << (30 - block_log2))) {
    throw std::invalid_argument("permutation importance supports fewer than " +
                                std::to_string(int64_t{1} << (30 - block_log2)) +
                                " trees x leaf width, got " + std::to_string(n_slots));
  }
  const PermutationPlan<T> plan(forest, x, groups, perms, n_repeats, heap, block_log2, threads);
  auto scratch = MakePerThread<BlockScratch<T>>(threads, [&plan] {
    BlockScratch<T> s;
    plan.Allocate(s);
    return s;
  });
  const int64_t block = int64_t{1} << block_log2;
  const int64_t n_blocks = (x.n_rows + block - 1) / block;
  if (out.margins) {
    ParallelFor(n_blocks, threads,
                [&](int64_t b, int tid) { plan.Run(b, scratch.Get(tid), out, nullptr); });
    return;
  }
  const int64_t per_chunk = (n_blocks + kMaxChunks - 1) / kMaxChunks;
  const int64_t n_chunks = (n_blocks + per_chunk - 1) / per_chunk;
  const int64_t n_sums = groups.NumGroups() * n_repeats * forest.n_outputs * 2;
  std::vector<double> chunk_sums(n_chunks * n_sums, 0.0);
  ParallelFor(n_chunks, threads, [&](int64_t c, int tid) {
    for (int64_t b = c * per_chunk; b < std::min(n_blocks, (c + 1) * per_chunk); ++b) {
      CheckInterrupt();
      plan.Run(b, scratch.Get(tid), out, &chunk_sums[c * n_sums]);
    }
  });
  std::fill(out.sums, out.sums + n_sums, 0.0);
  for (int64_t c = 0; c < n_chunks; ++c) {
    for (int64_t k = 0; k < n_sums; ++k) out.sums[k] += chunk_sums[c * n_sums + k];
  }
}

void CheckArguments(const MatrixView& x, const FeatureGroups& groups, const int64_t* perms,
                    int64_t n_repeats) {
  if (groups.offsets.empty() || groups.offsets[0] != 0 ||
      groups.offsets.back() != static_cast<int64_t>(groups.cols.size())) {
    throw std::invalid_argument("group offsets must start at 0 and end at the number of columns");
  }
  for (int64_t g = 0; g < groups.NumGroups(); ++g) {
    if (groups.offsets[g + 1] <= groups.offsets[g]) {
      throw std::invalid_argument("feature group " + std::to_string(g) + " is empty");
    }
  }
  for (int32_t c : groups.cols) {
    if (c < 0 || c >= x.n_cols) {
      throw std::out_of_range("group column " + std::to_string(c) + " out of range [0, " +
                              std::to_string(x.n_cols) + ")");
    }
  }
  for (int64_t k = 0; k < n_repeats * x.n_rows; ++k) {
    if (perms[k] < 0 || perms[k] >= x.n_rows) {
      throw std::out_of_range("permutation index " + std::to_string(perms[k]) +
                              " out of range [0, " + std::to_string(x.n_rows) + ")");
    }
  }
}

void Permute(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
             const int64_t* perms, int64_t n_repeats, const PermutationOutput& out, int n_threads,
             const HeapForest* heap) {
  CheckArguments(x, groups, perms, n_repeats);
  if (out.sums) {
    std::fill(out.sums, out.sums + groups.NumGroups() * n_repeats * forest.n_outputs * 2, 0.0);
  }
  if (x.n_rows == 0) return;
  if (groups.NumGroups() == 0 || n_repeats == 0) {
    if (out.baseline) Predict(forest, x, out.baseline, n_threads);
    return;
  }
  std::unique_ptr<HeapForest> own;
  if (!heap) {
    own = std::make_unique<HeapForest>(forest);
    heap = own.get();
  }
  if (forest.float32_margin) {
    RunPermutation<float>(forest, x, groups, perms, n_repeats, out, n_threads, *heap);
  } else {
    RunPermutation<double>(forest, x, groups, perms, n_repeats, out, n_threads, *heap);
  }
}

}  // namespace detail

void PermutedMargins(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
                     const int64_t* perms, int64_t n_repeats, double* out, int n_threads,
                     double* baseline, const detail::HeapForest* heap) {
  detail::PermutationOutput target;
  target.margins = out;
  target.baseline = baseline;
  detail::Permute(forest, x, groups, perms, n_repeats, target, n_threads, heap);
}

void PermutedResidualSums(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
                          const int64_t* perms, int64_t n_repeats, const double* y,
                          const double* weights, bool exp_link, double* sums, int n_threads,
                          double* baseline, const detail::HeapForest* heap) {
  detail::PermutationOutput target;
  target.y = y;
  target.weights = weights;
  target.exp_link = exp_link;
  target.sums = sums;
  target.baseline = baseline;
  detail::Permute(forest, x, groups, perms, n_repeats, target, n_threads, heap);
}

}  // namespace treelens
