// Exact background (interventional) TreeSHAP in O(n_rows + n_background), after the
// "linear background" idea of WOODELF (Nadel and Wolf, "Decision trees as cooperative games:
// exact, linear-time SHAP for ensembles"). For one leaf with d unique path features (repeated
// splits on a feature merge into one condition), a composed row x_S z_notS reaches the leaf
// iff each path feature's condition holds for the row it comes from, so the leaf's Shapley
// values for the pair (x, z) depend only on two d-bit masks: a (conditions x satisfies) and
// b (conditions z satisfies); see ShapleyCoef for the closed form. Per tree, one pass over the
// background builds every leaf's weighted histogram H[b]; a ranked superset-sum transform of H
// (O(2^d d^2), background_tables.cpp) turns it into a table T[a][j] of the leaf's Shapley
// values for every mask a, averaged over the background and scaled by the leaf value; one
// pass over the explained rows computes each leaf's mask a and adds T[a]. Both passes decide
// the splits of kGroupRows rows at once (vector compares), carry per-node masks of failed path
// conditions down the tree, and gather the leaves' histogram bins or table rows per lane.
// Interaction values use a [2^d, d, d] table built the same way. Trees with a leaf whose
// path has more unique features than the tables allow fall back to the exact per-pair walk of
// background_pairs.cpp, which costs O(n_rows * n_background).
#include "background_shap/background_shap.h"

#include <algorithm>
#include <vector>

#include "background_shap/background_pairs.h"
#include "background_shap/background_tables.h"
#include "common/row_lanes.h"
#include "common/parallel.h"
#include "model/predict.h"

namespace treelens {
namespace detail {

constexpr int kGroupRows = 8;
constexpr int64_t kChunkDoubles = int64_t{1} << 22;  // tables held at once
constexpr int64_t kAccDoubles = int64_t{1} << 14;    // per-thread value accumulators
constexpr int64_t kMaxGroupsPerBlock = 32;           // lane groups of explained rows per task

// A lane group is two halves of four rows: doubles are compared four at a time (one AVX2
// register) and the per-node masks of all eight rows fit one register.
typedef simd::Vec<uint32_t, kGroupRows / 2> HalfU;
typedef simd::Vec<uint32_t, kGroupRows> LaneU;

// Transformed rows in lane groups: row r, feature f at ((r / kGroupRows) * n_cols + f) * kGroupRows
// + r % kGroupRows; rows past the end of the last group are 0.
std::vector<double> LoadLaneRows(const Forest& forest, const MatrixView& x, int n_threads) {
  const int64_t n_groups = (x.n_rows + kGroupRows - 1) / kGroupRows;
  std::vector<double> lanes(static_cast<size_t>(n_groups * x.n_cols * kGroupRows), 0.0);
  ParallelFor(n_groups, n_threads, [&](int64_t g, int) {
    const int64_t end = std::min<int64_t>(kGroupRows, x.n_rows - g * kGroupRows);
    double* dst = &lanes[g * x.n_cols * kGroupRows];
    for (int64_t f = 0; f < x.n_cols; ++f) {
      for (int64_t r = 0; r < end; ++r) {
        dst[f * kGroupRows + r] = forest.TransformInput(x.At(g * kGroupRows + r, f));
      }
    }
  });
  return lanes;
}

// Row r of lane-grouped rows into row: [n_cols].
void LaneRow(const double* lanes, int64_t n_cols, int64_t r, double* row) {
  const double* src = lanes + (r / kGroupRows) * n_cols * kGroupRows + r % kGroupRows;
  for (int64_t f = 0; f < n_cols; ++f) row[f] = src[f * kGroupRows];
}

// All-ones lanes where the four rows of x4 go to the left child of a numeric split.
TREELENS_INLINE HalfU GoesLeftHalf(const double* x4, double threshold,
                                   uint8_t flags) {
  return simd::Convert<HalfU>(NumericLeft(simd::Load<Lanes>(x4), threshold, flags));
}

// All-ones lanes where the rows of lane group xg go to the left child of the split.
TREELENS_INLINE LaneU GoesLeftLanes(const Forest& forest, const SplitStep& st,
                                    const double* xg) {
  const double* x = xg + static_cast<int64_t>(st.feature) * kGroupRows;
  if (st.flags & kCategorical) {
    LaneU out{};
    for (int r = 0; r < kGroupRows; ++r) out[r] = forest.CategoryGoesLeft(st.node, x[r]) ? ~0u : 0u;
    return out;
  }
  const HalfU lo = GoesLeftHalf(x, st.threshold, st.flags);
  const HalfU hi = GoesLeftHalf(x + 4, st.threshold, st.flags);
  return simd::Join(lo, hi);
}

// fail: [tree nodes, kGroupRows]; per lane, bit p set when the row fails the condition of unique
// path feature p on the way to that node. xg: one lane group [n_features, kGroupRows].
TREELENS_INLINE void FailMasks(const Forest& forest,
                               const BackgroundPlan& plan,
                               const TreeInfo& info, const double* xg,
                               uint32_t* fail) {
  simd::Store(fail, LaneU{});
  const SplitStep* steps = &plan.steps[info.first_step];
  for (int64_t s = 0; s < info.n_steps; ++s) {
    const SplitStep& st = steps[s];
    const LaneU left = GoesLeftLanes(forest, st, xg);
    const LaneU parent = simd::Load<LaneU>(fail + static_cast<int64_t>(st.self) * kGroupRows);
    simd::Store(fail + static_cast<int64_t>(st.left) * kGroupRows, parent | (~left & st.bit));
    simd::Store(fail + static_cast<int64_t>(st.right) * kGroupRows, parent | (left & st.bit));
  }
}

// Bits of the path conditions a lane's row satisfies at a leaf: [kGroupRows].
TREELENS_INLINE LaneU Satisfied(const uint32_t* fail, const LeafInfo& leaf) {
  return ~simd::Load<LaneU>(fail + static_cast<int64_t>(leaf.local) * kGroupRows) &
         ((uint32_t{1} << leaf.d) - 1);
}

// hist: [info.hist_doubles], overwritten with every leaf's histogram H[b] of the weighted
// background (zl: lane groups [n_groups, n_features, kGroupRows]; weight: [n_groups * kGroupRows],
// 0 past the last row), rows added in order.
TREELENS_CLONES
void TreeHistograms(const Forest& forest, const BackgroundPlan& plan, const TreeInfo& info,
                    const double* zl, const double* weight, int64_t n_groups, uint32_t* fail,
                    double* hist) {
  const int64_t m = forest.n_features;
  std::fill(hist, hist + info.hist_doubles, 0.0);
  for (int64_t g = 0; g < n_groups; ++g) {
    FailMasks(forest, plan, info, zl + g * m * kGroupRows, fail);
    const double* w = weight + g * kGroupRows;
    for (int64_t l = 0; l < info.n_leaves; ++l) {
      const LeafInfo& leaf = plan.leaves[info.first_leaf + l];
      const LaneU b = Satisfied(fail, leaf);
      double* h = hist + leaf.hist;
      for (int r = 0; r < kGroupRows; ++r) h[b[r]] += w[r];
    }
  }
}

// dst[0:8] += (lo, hi).
TREELENS_INLINE void AddHalves(double* dst, Lanes lo, Lanes hi) {
  simd::Store(dst, simd::Load<Lanes>(dst) + lo);
  simd::Store(dst + 4, simd::Load<Lanes>(dst + 4) + hi);
}

// Adds one tree's values for a block of lane groups into acc: [n_groups, row_size, kGroupRows].
// offsets: per leaf path position, the output column (feature * n_outputs + first output).
// kFolded: single-output leaves whose tables already hold the leaf value.
template <bool kFolded>
TREELENS_INLINE void AddTreeValues(
    const Forest& forest, const BackgroundPlan& plan, const TreeInfo& info, const double* tables,
    const int64_t* offsets, const double* xl, int64_t n_groups, int64_t row_size, uint32_t* fail,
    double* acc) {
  const int64_t m = forest.n_features;
  const int width = forest.leaf_width;
  for (int64_t g = 0; g < n_groups; ++g) {
    FailMasks(forest, plan, info, xl + g * m * kGroupRows, fail);
    double* group_acc = acc + g * row_size * kGroupRows;
    for (int64_t l = 0; l < info.n_leaves; ++l) {
      const LeafInfo& leaf = plan.leaves[info.first_leaf + l];
      const int d = leaf.d;
      if (d == 0) continue;
      const LaneU idx = Satisfied(fail, leaf) * static_cast<uint32_t>(d);
      const double* table = tables + leaf.table;
      const int64_t* off = offsets + leaf.features;
      for (int p = 0; p < d; ++p) {
        const double* tp = table + p;
        const Lanes lo = {tp[idx[0]], tp[idx[1]], tp[idx[2]], tp[idx[3]]};
        const Lanes hi = {tp[idx[4]], tp[idx[5]], tp[idx[6]], tp[idx[7]]};
        if (kFolded) {
          AddHalves(group_acc + off[p] * kGroupRows, lo, hi);
        } else {
          const double* v = &forest.value[leaf.node * width];
          for (int k = 0; k < width; ++k) {
            AddHalves(group_acc + (off[p] + k) * kGroupRows, lo * v[k], hi * v[k]);
          }
        }
      }
    }
  }
}

TREELENS_CLONES
void TreeValues(const Forest& forest, const BackgroundPlan& plan, const TreeInfo& info,
                const double* tables, const int64_t* offsets, const double* xl, int64_t n_groups,
                int64_t row_size, uint32_t* fail, double* acc) {
  if (forest.leaf_width == 1) {
    AddTreeValues<true>(forest, plan, info, tables, offsets, xl, n_groups, row_size, fail, acc);
  } else {
    AddTreeValues<false>(forest, plan, info, tables, offsets, xl, n_groups, row_size, fail, acc);
  }
}

// Adds one tree's interaction values for rows [r0, r1) (r0 a multiple of kGroupRows) into
// out: [n_rows, n_features, n_features, n_outputs].
TREELENS_CLONES
void TreeInteractions(const Forest& forest, const BackgroundPlan& plan, const TreeInfo& info,
                      const double* tables, int first, const double* xl, int64_t r0, int64_t r1,
                      uint32_t* fail, double* out) {
  const int64_t m = forest.n_features;
  const int k_out = forest.n_outputs;
  const int width = forest.leaf_width;
  const int64_t row_size = m * m * k_out;
  for (int64_t g0 = r0; g0 < r1; g0 += kGroupRows) {
    FailMasks(forest, plan, info, xl + (g0 / kGroupRows) * m * kGroupRows, fail);
    const int lanes = static_cast<int>(std::min<int64_t>(kGroupRows, r1 - g0));
    for (int r = 0; r < lanes; ++r) {
      double* o = out + (g0 + r) * row_size;
      for (int64_t l = 0; l < info.n_leaves; ++l) {
        const LeafInfo& leaf = plan.leaves[info.first_leaf + l];
        const int d = leaf.d;
        if (d == 0) continue;
        const uint32_t a = ~fail[leaf.local * kGroupRows + r] & ((uint32_t{1} << d) - 1);
        const double* row = tables + leaf.table + static_cast<int64_t>(a) * d * d;
        const int32_t* feats = &plan.leaf_features[leaf.features];
        const double* v = &forest.value[leaf.node * width];
        for (int p = 0; p < d; ++p) {
          double* dst_p = o + static_cast<int64_t>(feats[p]) * m * k_out + first;
          for (int u = 0; u < d; ++u) {
            double* dst = dst_p + static_cast<int64_t>(feats[u]) * k_out;
            if (width == 1) {
              dst[0] += row[p * d + u];
            } else {
              for (int k = 0; k < width; ++k) dst[k] += row[p * d + u] * v[k];
            }
          }
        }
      }
    }
  }
}

}  // namespace detail

namespace {

using detail::kAccDoubles;
using detail::kChunkDoubles;
using detail::kGroupRows;
using detail::kMaxGroupsPerBlock;

struct Scratch {
  std::vector<uint32_t> fail;
  std::vector<double> hist, z, acc, x_row, z_row, scale;
  detail::PairScratch pair;
  explicit Scratch(int n_features) : pair(n_features) {}
};

// Shared driver of values (width d) and interactions (width d * d). out: [n_rows, n_features,
// n_features^interactions, n_outputs].
void Run(const Forest& forest, const MatrixView& x, const Background& bg, bool interactions,
         double* out, double* expected, int n_threads) {
  using detail::LeafInfo;
  using detail::TreeInfo;
  detail::CheckBackground(forest, bg);
  const int threads = ResolveThreads(n_threads);
  const detail::BackgroundPlan plan = detail::BuildBackgroundPlan(forest, interactions);
  const int64_t m = forest.n_features;
  const int k_out = forest.n_outputs;
  const int width = forest.leaf_width;
  const int64_t row_size = (interactions ? m * m : m) * k_out;
  const int64_t n_bg = bg.rows.n_rows;
  const int64_t n_trees = forest.NumTrees();
  const int64_t n_groups = (x.n_rows + kGroupRows - 1) / kGroupRows;
  const int64_t n_bg_groups = (n_bg + kGroupRows - 1) / kGroupRows;
  const std::vector<double> xl = detail::LoadLaneRows(forest, x, threads);
  const std::vector<double> zl = detail::LoadLaneRows(forest, bg.rows, threads);
  std::vector<double> weight(n_bg_groups * kGroupRows, 0.0);
  double total = 0.0;
  for (int64_t j = 0; j < n_bg; ++j) total += bg.weights[j];
  for (int64_t j = 0; j < n_bg; ++j) weight[j] = bg.weights[j] / total;
  const detail::ShapleyCoef coef(plan.max_players);

  // Output column of every leaf path position (values).
  std::vector<int64_t> offsets(plan.leaf_features.size());
  for (int64_t t = 0; t < n_trees; ++t) {
    const TreeInfo& info = plan.trees[t];
    const int first = width == 1 ? forest.tree_output[t] : 0;
    for (int64_t l = info.first_leaf; l < info.first_leaf + info.n_leaves; ++l) {
      const LeafInfo& leaf = plan.leaves[l];
      for (int p = 0; p < leaf.d; ++p) {
        offsets[leaf.features + p] = plan.leaf_features[leaf.features + p] * k_out + first;
      }
    }
  }

  const int64_t groups_per_block = std::max<int64_t>(
      1, std::min(kMaxGroupsPerBlock, kAccDoubles / (row_size * kGroupRows)));
  const int64_t n_blocks = (n_groups + groups_per_block - 1) / groups_per_block;
  const int bits = plan.max_table_bits;
  auto scratch = MakePerThread<Scratch>(threads, [&] {
    Scratch s(static_cast<int>(m));
    s.fail.resize(plan.max_tree_nodes * kGroupRows);
    s.hist.resize(plan.max_hist_doubles);
    s.z.resize((int64_t{1} << bits) * (bits + 1) + bits);
    if (!interactions) s.acc.resize(groups_per_block * row_size * kGroupRows);
    s.x_row.resize(m);
    s.z_row.resize(m);
    s.scale.resize(k_out);
    return s;
  });

  // Per-tree mean leaf value over the background: from the histograms (bin "all conditions
  // hold") for dense trees, by walking the background for the others.
  std::vector<double> tree_mean(n_trees * width, 0.0);
  std::fill(out, out + x.n_rows * row_size, 0.0);
  std::vector<double> tables;
  std::vector<int64_t> chunk_offset(n_trees, 0);
  for (int64_t begin = 0; begin < n_trees;) {
    // A chunk: consecutive trees whose tables fit the budget (at least one).
    int64_t end = begin, size = 0;
    while (end < n_trees && (end == begin || size + plan.trees[end].table_doubles <= kChunkDoubles)) {
      chunk_offset[end] = size;
      size += plan.trees[end].table_doubles;
      ++end;
    }
    tables.assign(size, 0.0);
    // Histograms, tables and mean leaf value, one tree per task.
    ParallelFor(end - begin, threads, [&](int64_t i, int tid) {
      const int64_t t = begin + i;
      const TreeInfo& info = plan.trees[t];
      Scratch& s = scratch.Get(tid);
      double* mean = &tree_mean[t * width];
      if (!info.dense) {
        for (int64_t j = 0; j < n_bg; ++j) {
          detail::LaneRow(zl.data(), m, j, s.z_row.data());
          const int64_t leaf = FindLeaf(forest, t, s.z_row.data());
          for (int k = 0; k < width; ++k) mean[k] += weight[j] * forest.value[leaf * width + k];
        }
        return;
      }
      detail::TreeHistograms(forest, plan, info, zl.data(), weight.data(), n_bg_groups,
                             s.fail.data(), s.hist.data());
      double* base = tables.data() + chunk_offset[t];
      for (int64_t l = info.first_leaf; l < info.first_leaf + info.n_leaves; ++l) {
        const LeafInfo& leaf = plan.leaves[l];
        const int64_t n = int64_t{1} << leaf.d;
        const double* hist = s.hist.data() + leaf.hist;
        const double* v = &forest.value[leaf.node * width];
        for (int k = 0; k < width; ++k) mean[k] += v[k] * hist[n - 1];
        double* table = base + leaf.table;
        detail::RankedSupersetSums(leaf.d, hist, s.z.data());
        if (interactions) {
          detail::InteractionTable(leaf.d, s.z.data(), coef, s.z.data() + n * (leaf.d + 1), table);
        } else {
          detail::ValueTable(leaf.d, s.z.data(), coef, table);
        }
        if (width == 1) {
          const int64_t size_l = n * detail::TableWidth(leaf.d, interactions);
          for (int64_t e = 0; e < size_l; ++e) table[e] *= v[0];
        }
      }
    });
    // Explained rows: a block of lane groups per task, trees of the chunk in order.
    ParallelFor(n_blocks, threads, [&](int64_t blk, int tid) {
      Scratch& s = scratch.Get(tid);
      const int64_t g0 = blk * groups_per_block;
      const int64_t g1 = std::min(n_groups, g0 + groups_per_block);
      const int64_t r0 = g0 * kGroupRows, r1 = std::min(x.n_rows, g1 * kGroupRows);
      // Values accumulate in lane order (acc: [g1 - g0, row_size, kGroupRows]); out holds the
      // rows between chunks and around the pair walks of sparse trees.
      auto load = [&]() {
        for (int64_t r = r0; r < r1; ++r) {
          double* a = s.acc.data() + ((r / kGroupRows - g0) * row_size) * kGroupRows + r % kGroupRows;
          for (int64_t c = 0; c < row_size; ++c) a[c * kGroupRows] = out[r * row_size + c];
        }
      };
      auto store = [&]() {
        for (int64_t r = r0; r < r1; ++r) {
          const double* a = s.acc.data() + ((r / kGroupRows - g0) * row_size) * kGroupRows + r % kGroupRows;
          for (int64_t c = 0; c < row_size; ++c) out[r * row_size + c] = a[c * kGroupRows];
        }
      };
      if (!interactions) load();
      for (int64_t t = begin; t < end; ++t) {
        CheckInterrupt();
        const TreeInfo& info = plan.trees[t];
        const double* base = tables.data() + chunk_offset[t];
        if (info.dense) {
          if (interactions) {
            const int first = width == 1 ? forest.tree_output[t] : 0;
            detail::TreeInteractions(forest, plan, info, base, first, xl.data(), r0, r1,
                                     s.fail.data(), out);
          } else {
            detail::TreeValues(forest, plan, info, base, offsets.data(),
                               xl.data() + g0 * m * kGroupRows, g1 - g0, row_size, s.fail.data(),
                               s.acc.data());
          }
          continue;
        }
        if (!interactions) store();
        for (int64_t r = r0; r < r1; ++r) {
          CheckInterrupt();
          double* o = out + r * row_size;
          detail::LaneRow(xl.data(), m, r, s.x_row.data());
          for (int64_t j = 0; j < n_bg; ++j) {
            if (weight[j] == 0.0) continue;
            detail::LaneRow(zl.data(), m, j, s.z_row.data());
            std::fill(s.scale.begin(), s.scale.end(), weight[j]);
            detail::PairTreeShap(forest, t, s.x_row.data(), s.z_row.data(), s.scale.data(), coef,
                                 s.pair, interactions ? nullptr : o, interactions ? o : nullptr);
          }
        }
        if (!interactions) load();
      }
      if (!interactions) store();
    });
    begin = end;
  }
  for (int k = 0; k < k_out; ++k) expected[k] = forest.base_score[k];
  for (int64_t t = 0; t < n_trees; ++t) {
    const int first = width == 1 ? forest.tree_output[t] : 0;
    for (int k = 0; k < width; ++k) expected[first + k] += tree_mean[t * width + k];
  }
}

}  // namespace

void BackgroundShapValues(const Forest& forest, const MatrixView& x, const Background& bg,
                          double* phi, double* expected, int n_threads) {
  Run(forest, x, bg, false, phi, expected, n_threads);
}

void BackgroundInteractionValues(const Forest& forest, const MatrixView& x, const Background& bg,
                                 double* out, double* expected, int n_threads) {
  Run(forest, x, bg, true, out, expected, n_threads);
}

}  // namespace treelens
