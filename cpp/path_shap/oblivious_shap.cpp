// Path-dependent TreeSHAP of oblivious trees (CatBoost's symmetric trees) by leaf tables.
//
// In an oblivious tree every split of a level tests the same condition, so a row's decisions
// at all nodes are fixed by its d level decisions, and path-dependent TreeSHAP (Lundberg et
// al. 2020), which reads a row only through those decisions, gives every row with the same
// decision pattern the same values. The 2^d patterns of each tree are explained once with
// the quadrature kernel of path_shap.cpp (ExplainTreeByDepth); a row then costs d split
// tests and one table row per tree, the precomputation CatBoost's ShapValues also uses.
#include "path_shap/oblivious_shap.h"

#include <algorithm>

#include "common/row_lanes.h"
#include "common/parallel.h"

namespace treelens {
namespace detail {

bool SameSplit(const Forest& forest, int64_t a, int64_t b) {
  if (forest.feature[a] != forest.feature[b] || forest.flags[a] != forest.flags[b]) return false;
  if (!(forest.flags[a] & kCategorical)) return forest.threshold[a] == forest.threshold[b];
  const int64_t na = forest.cat_offsets[a + 1] - forest.cat_offsets[a];
  const int64_t nb = forest.cat_offsets[b + 1] - forest.cat_offsets[b];
  return na == nb && std::equal(forest.cat_words.begin() + forest.cat_offsets[a],
                                forest.cat_words.begin() + forest.cat_offsets[a + 1],
                                forest.cat_words.begin() + forest.cat_offsets[b]);
}

// One node per level of tree t when it is oblivious (complete, every level split alike);
// false otherwise.
bool ObliviousLevels(const Forest& forest, int64_t t, std::vector<int64_t>& levels) {
  levels.clear();
  std::vector<int64_t> level{forest.tree_offsets[t]}, next;
  while (!forest.IsLeaf(level[0])) {
    if (static_cast<int>(levels.size()) == kMaxObliviousDepth) return false;
    next.clear();
    for (int64_t node : level) {
      if (forest.IsLeaf(node) || !SameSplit(forest, node, level[0])) return false;
      next.push_back(forest.left[node]);
      next.push_back(forest.right[node]);
    }
    levels.push_back(level[0]);
    level.swap(next);
  }
  return std::all_of(level.begin(), level.end(), [&](int64_t n) { return forest.IsLeaf(n); });
}

}  // namespace detail

ObliviousShapPlan BuildObliviousShapPlan(const Forest& forest, const PathShapPlan& path) {
  using detail::kRowLanes;
  using detail::Lanes;
  ObliviousShapPlan plan;
  const int width = forest.leaf_width;
  const int k_out = forest.n_outputs;
  std::vector<int64_t> levels;
  plan.level_offset.push_back(0);
  plan.feature_offset.push_back(0);
  for (int64_t t = 0; t < forest.NumTrees(); ++t) {
    if (!detail::ObliviousLevels(forest, t, levels)) return ObliviousShapPlan{};
    plan.level_node.insert(plan.level_node.end(), levels.begin(), levels.end());
    plan.level_offset.push_back(static_cast<int64_t>(plan.level_node.size()));
    std::vector<int32_t> used;
    for (int64_t node : levels) used.push_back(forest.feature[node]);
    std::sort(used.begin(), used.end());
    used.erase(std::unique(used.begin(), used.end()), used.end());
    plan.features.insert(plan.features.end(), used.begin(), used.end());
    plan.feature_offset.push_back(static_cast<int64_t>(plan.features.size()));

    const int64_t depth = static_cast<int64_t>(levels.size());
    const int64_t n_patterns = int64_t{1} << depth;
    const int64_t row = static_cast<int64_t>(used.size()) * width;
    const int first = width == 1 ? forest.tree_output[t] : 0;
    plan.table_offset.push_back(static_cast<int64_t>(plan.table.size()));
    plan.table.resize(plan.table.size() + n_patterns * row, 0.0);
    if (depth == 0) continue;
    double* table = plan.table.data() + plan.table_offset.back();
    detail::LaneBuffer<Lanes> go_left(depth);
    for (int64_t p0 = 0; p0 < n_patterns; p0 += kRowLanes) {
      // Pattern p: bit l set = left at depth l.
      for (int64_t l = 0; l < depth; ++l) {
        for (int r = 0; r < kRowLanes; ++r) go_left[l][r] = ((p0 + r) >> l) & 1 ? 1.0 : 0.0;
      }
      const detail::LaneBuffer<Lanes> phi = ExplainTreeByDepth(forest, path, t, go_left);
      for (int r = 0; r < kRowLanes && p0 + r < n_patterns; ++r) {
        double* out = table + (p0 + r) * row;
        for (size_t j = 0; j < used.size(); ++j) {
          for (int k = 0; k < width; ++k) {
            out[j * width + k] = phi[static_cast<int64_t>(used[j]) * k_out + first + k][r];
          }
        }
      }
    }
  }
  plan.usable = true;
  return plan;
}

void ObliviousShapValues(const Forest& forest, const ObliviousShapPlan& plan,
                         const MatrixView& x, double* phi, int n_threads) {
  constexpr int64_t kBlock = 64;  // rows per block: their phi rows and one table stay cached
  const int64_t m = forest.n_features;
  const int k_out = forest.n_outputs;
  const int width = forest.leaf_width;
  const int threads = ResolveThreads(n_threads);
  struct Scratch {
    std::vector<double> xt;        // [kBlock, m] transformed values
    std::vector<int64_t> pattern;  // [kBlock]
  };
  auto scratch = MakePerThread<Scratch>(threads, [&] {
    return Scratch{std::vector<double>(static_cast<size_t>(kBlock * m)),
                   std::vector<int64_t>(kBlock)};
  });
  const int64_t n_blocks = (x.n_rows + kBlock - 1) / kBlock;
  ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
    Scratch& sc = scratch.Get(tid);
    const int64_t r0 = b * kBlock;
    const int64_t nr = std::min<int64_t>(kBlock, x.n_rows - r0);
    for (int64_t r = 0; r < nr; ++r) {
      for (int64_t f = 0; f < m; ++f) sc.xt[r * m + f] = forest.TransformInput(x.At(r0 + r, f));
    }
    double* out = phi + r0 * m * k_out;
    std::fill(out, out + nr * m * k_out, 0.0);
    int64_t* pattern = sc.pattern.data();
    const double* xt = sc.xt.data();
    for (int64_t t = 0; t < forest.NumTrees(); ++t) {
      const int64_t l0 = plan.level_offset[t], l1 = plan.level_offset[t + 1];
      std::fill(pattern, pattern + nr, int64_t{0});
      for (int64_t l = l0; l < l1; ++l) {
        const int64_t node = plan.level_node[l];
        const int64_t f = forest.feature[node];
        for (int64_t r = 0; r < nr; ++r) {
          pattern[r] |= static_cast<int64_t>(forest.GoesLeft(node, xt[r * m + f])) << (l - l0);
        }
      }
      const int64_t f0 = plan.feature_offset[t], f1 = plan.feature_offset[t + 1];
      const int64_t row = (f1 - f0) * width;
      const int first = width == 1 ? forest.tree_output[t] : 0;
      const double* table = plan.table.data() + plan.table_offset[t];
      for (int64_t r = 0; r < nr; ++r) {
        const double* entry = table + pattern[r] * row;
        double* o = out + r * m * k_out + first;
        for (int64_t j = f0; j < f1; ++j) {
          double* target = o + static_cast<int64_t>(plan.features[j]) * k_out;
          for (int k = 0; k < width; ++k) target[k] += entry[(j - f0) * width + k];
        }
      }
    }
  });
}

}  // namespace treelens
