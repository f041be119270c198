// Exact background (interventional) TreeSHAP in O(n_rows + n_background), after the
// "linear background" idea of WOODELF (Nadel and Wolf, "Decision trees as cooperative games:
// exact, linear-time SHAP for ensembles"). For one leaf with d unique path features (repeated
// splits on a feature merge into one condition), a composed row x_S z_notS reaches the leaf
// iff each path feature's condition holds for the row it comes from, so the leaf's Shapley
// values for the pair (x, z) depend only on two d-bit masks: a (conditions x satisfies) and
// b (conditions z satisfies); see ShapleyCoef for the closed form. Per leaf, one pass over the
// background builds the weighted histogram H[b]; a ranked superset-sum transform of H
// (O(2^d d^2)) turns it into a table T[a][j] of the leaf's Shapley values for every mask a,
// averaged over the background; one pass over the explained rows computes each leaf's mask a
// and adds T[a]. Interaction values use a [2^d, d, d] table built the same way. Trees with a
// leaf whose path has more unique features than the tables allow (2^d entries) fall back to
// the exact per-pair walk of background_pairs.cpp, which costs O(n_rows * n_background).
#include "background_shap.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "background_pairs.h"
#include "parallel.h"
#include "predict.h"

namespace treelens {
namespace {

constexpr int kMaxValueBits = 12;        // value tables: 2^d * d doubles per leaf
constexpr int kMaxInteractionBits = 10;  // interaction tables: 2^d * d * d doubles per leaf
constexpr int64_t kChunkDoubles = int64_t{1} << 22;  // histograms + tables held at once
constexpr int64_t kRowBlock = 256;

// An internal node in preorder with the local indices of itself and its children and the bit
// of its feature among the unique features of its path.
struct SplitStep {
  int64_t node;
  int32_t self, left, right;
  uint32_t bit;
};

struct LeafInfo {
  int64_t node;
  int32_t local;
  int32_t d;          // unique features on the path
  int64_t features;   // offset into Plan::leaf_features, [d]
  int64_t hist;       // offset of H [2^d] within the chunk's histograms
  int64_t table;      // offset of the table within the chunk's tables
};

struct TreeInfo {
  bool dense = true;  // every leaf fits a mask table
  int64_t first_step = 0, n_steps = 0;
  int64_t first_leaf = 0, n_leaves = 0;
  int64_t table_doubles = 0;  // histograms + tables of all its leaves
};

struct Plan {
  std::vector<TreeInfo> trees;
  std::vector<SplitStep> steps;
  std::vector<LeafInfo> leaves;
  std::vector<int32_t> leaf_features;
  int64_t max_tree_nodes = 0;
  int max_players = 1;  // most unique features on any path
  int max_table_bits = 0;  // most unique features on a path of a dense tree's leaf
};

int64_t TableWidth(int d, bool interactions) { return interactions ? int64_t{d} * d : d; }

// Walks every tree once: preorder splits with feature bits, leaves with their unique path
// features, and the table sizes of each leaf.
Plan BuildPlan(const Forest& forest, bool interactions) {
  const int max_bits = interactions ? kMaxInteractionBits : kMaxValueBits;
  Plan plan;
  plan.trees.resize(forest.NumTrees());
  std::vector<int32_t> unique;
  struct Frame {
    int64_t node;
    int32_t n_unique;
  };
  std::vector<Frame> stack;
  for (int64_t t = 0; t < forest.NumTrees(); ++t) {
    TreeInfo& info = plan.trees[t];
    const int64_t begin = forest.tree_offsets[t];
    plan.max_tree_nodes = std::max(plan.max_tree_nodes, forest.tree_offsets[t + 1] - begin);
    info.first_step = static_cast<int64_t>(plan.steps.size());
    info.first_leaf = static_cast<int64_t>(plan.leaves.size());
    stack.assign(1, {begin, 0});
    int64_t offset = 0;
    while (!stack.empty()) {
      const Frame f = stack.back();
      stack.pop_back();
      const int32_t local = static_cast<int32_t>(f.node - begin);
      if (forest.IsLeaf(f.node)) {
        LeafInfo leaf{f.node, local, f.n_unique, static_cast<int64_t>(plan.leaf_features.size()),
                      offset, 0};
        plan.leaf_features.insert(plan.leaf_features.end(), unique.begin(),
                                  unique.begin() + f.n_unique);
        plan.max_players = std::max(plan.max_players, f.n_unique);
        if (f.n_unique > max_bits) {
          info.dense = false;
        } else {
          offset += int64_t{1} << f.n_unique;
          leaf.table = offset;
          offset += (int64_t{1} << f.n_unique) * TableWidth(f.n_unique, interactions);
        }
        plan.leaves.push_back(leaf);
        continue;
      }
      const int32_t feature = forest.feature[f.node];
      const auto found = std::find(unique.begin(), unique.begin() + f.n_unique, feature);
      const int32_t pos = static_cast<int32_t>(found - unique.begin());
      int32_t n_child = f.n_unique;
      if (pos == f.n_unique) {
        if (static_cast<int32_t>(unique.size()) <= pos) unique.resize(pos + 1);
        unique[pos] = feature;
        ++n_child;
      }
      plan.steps.push_back({f.node, local, static_cast<int32_t>(forest.left[f.node] - begin),
                            static_cast<int32_t>(forest.right[f.node] - begin),
                            pos < 32 ? uint32_t{1} << pos : 0u});
      stack.push_back({forest.right[f.node], n_child});
      stack.push_back({forest.left[f.node], n_child});
    }
    info.n_steps = static_cast<int64_t>(plan.steps.size()) - info.first_step;
    info.n_leaves = static_cast<int64_t>(plan.leaves.size()) - info.first_leaf;
    info.table_doubles = info.dense ? offset : 0;
    if (info.dense) {
      for (int64_t l = info.first_leaf; l < info.first_leaf + info.n_leaves; ++l) {
        plan.max_table_bits = std::max(plan.max_table_bits, plan.leaves[l].d);
      }
    }
  }
  return plan;
}

// fail[local]: bit p set when the row fails the condition of unique path feature p on the way
// to that node. row: transformed [n_features].
inline void FailMasks(const Forest& forest, const Plan& plan, const TreeInfo& info,
                      const double* row, uint32_t* fail) {
  fail[0] = 0;
  const SplitStep* steps = &plan.steps[info.first_step];
  for (int64_t s = 0; s < info.n_steps; ++s) {
    const SplitStep& st = steps[s];
    const uint32_t parent = fail[st.self];
    const bool left = forest.GoesLeft(st.node, row[forest.feature[st.node]]);
    fail[st.left] = parent | (left ? 0u : st.bit);
    fail[st.right] = parent | (left ? st.bit : 0u);
  }
}

// Ranked superset sums: Z[u][r] = sum of H[b] over b containing u with |b| = r; Z: [2^d, d+1].
void RankedSupersetSums(int d, const double* hist, double* z) {
  const int64_t n = int64_t{1} << d;
  const int w = d + 1;
  std::fill(z, z + n * w, 0.0);
  for (int64_t b = 0; b < n; ++b) z[b * w + __builtin_popcountll(b)] = hist[b];
  for (int i = 0; i < d; ++i) {
    for (int64_t u = 0; u < n; ++u) {
      if ((u >> i) & 1) continue;
      const double* src = z + (u | (int64_t{1} << i)) * w;
      double* dst = z + u * w;
      for (int r = 0; r < w; ++r) dst[r] += src[r];
    }
  }
}

// The leaf's Shapley value of each path feature p (unit leaf value) for an explained row with
// mask a, averaged over the background: values[p], p < d. With c = complement of a, q = |c|,
// the game is non-zero only for b containing c, and s = |b & a| gives |A| = |a| - s, |B| = q.
// z: ranked superset sums [2^d, d+1].
void ValueRow(int d, const double* z, const detail::ShapleyCoef& coef, int64_t a,
              double* values) {
  const int64_t n = int64_t{1} << d;
  const int w = d + 1;
  const int na = __builtin_popcountll(a);
  const int q = d - na;
  const int64_t c = (n - 1) & ~a;
  const double* z0 = z + c * w;
  double neg = 0.0;
  if (q > 0) {
    for (int s = 0; s <= na; ++s) neg += z0[q + s] * coef.F(na - s, q - 1);
  }
  for (int p = 0; p < d; ++p) {
    double val = -neg;
    if ((a >> p) & 1) {
      const double* zp = z + (c | (int64_t{1} << p)) * w;
      val = 0.0;
      for (int s = 0; s < na; ++s) val += (z0[q + s] - zp[q + s]) * coef.F(na - s - 1, q);
    }
    values[p] = val;
  }
}

// table: [2^d, d], ValueRow for every mask a.
void ValueTable(int d, const double* z, const detail::ShapleyCoef& coef, double* table) {
  for (int64_t a = 0; a < (int64_t{1} << d); ++a) ValueRow(d, z, coef, a, table + a * d);
}

// T[a][p][r]: interaction values (half the interaction index off the diagonal; the diagonal
// completes each row to the Shapley value). values: scratch [d].
void InteractionTable(int d, const double* z, const detail::ShapleyCoef& coef, double* values,
                      double* table) {
  const int64_t n = int64_t{1} << d;
  const int w = d + 1;
  for (int64_t a = 0; a < n; ++a) {
    const int na = __builtin_popcountll(a);
    const int q = d - na;
    const int64_t c = (n - 1) & ~a;
    const double* z0 = z + c * w;
    double bb = 0.0;
    if (q > 1) {
      for (int s = 0; s <= na; ++s) bb += z0[q + s] * coef.F(na - s, q - 2);
    }
    ValueRow(d, z, coef, a, values);
    double* rows = table + a * d * d;
    for (int p = 0; p < d; ++p) {
      const bool pa = (a >> p) & 1;
      const double* zp = z + (c | (int64_t{1} << p)) * w;
      double off_sum = 0.0;
      for (int r = 0; r < d; ++r) {
        if (r == p) continue;
        const bool ra = (a >> r) & 1;
        double index = 0.0;
        if (!pa && !ra) {
          index = bb;
        } else if (pa != ra) {
          const double* zi = pa ? zp : z + (c | (int64_t{1} << r)) * w;
          for (int s = 0; s < na; ++s) index -= (z0[q + s] - zi[q + s]) * coef.F(na - s - 1, q - 1);
        } else {
          const double* zr = z + (c | (int64_t{1} << r)) * w;
          const double* zpr = z + (c | (int64_t{1} << p) | (int64_t{1} << r)) * w;
          for (int s = 0; s + 1 < na; ++s) {
            index += (z0[q + s] - zp[q + s] - zr[q + s] + zpr[q + s]) * coef.F(na - s - 2, q);
          }
        }
        rows[p * d + r] = 0.5 * index;
        off_sum += 0.5 * index;
      }
      rows[p * d + p] = values[p] - off_sum;
    }
  }
}

// Shared driver of values (width d) and interactions (width d * d). out: [n_rows, n_features,
// n_features^interactions, n_outputs].
void Run(const Forest& forest, const MatrixView& x, const Background& bg, bool interactions,
         double* out, double* expected, int n_threads) {
  detail::CheckBackground(forest, bg);
  const int threads = ResolveThreads(n_threads);
  const Plan plan = BuildPlan(forest, interactions);
  const int64_t m = forest.n_features;
  const int k_out = forest.n_outputs;
  const int width = forest.leaf_width;
  const int64_t row_size = (interactions ? m * m : m) * k_out;
  const int64_t n_bg = bg.rows.n_rows;
  const int64_t n_trees = forest.NumTrees();
  const std::vector<double> xs = detail::LoadRows(forest, x, threads);
  const std::vector<double> zs = detail::LoadRows(forest, bg.rows, threads);
  std::vector<double> weight(n_bg);
  double total = 0.0;
  for (int64_t j = 0; j < n_bg; ++j) total += bg.weights[j];
  for (int64_t j = 0; j < n_bg; ++j) weight[j] = bg.weights[j] / total;
  const detail::ShapleyCoef coef(plan.max_players);

  // Expected value: per tree in parallel, then summed in tree order.
  std::vector<double> tree_mean(n_trees * width, 0.0);
  ParallelFor(n_trees, threads, [&](int64_t t, int) {
    double* acc = &tree_mean[t * width];
    for (int64_t j = 0; j < n_bg; ++j) {
      const int64_t leaf = FindLeaf(forest, t, &zs[j * m]);
      for (int k = 0; k < width; ++k) acc[k] += weight[j] * forest.value[leaf * width + k];
    }
  });
  for (int k = 0; k < k_out; ++k) expected[k] = forest.base_score[k];
  for (int64_t t = 0; t < n_trees; ++t) {
    const int first = width == 1 ? forest.tree_output[t] : 0;
    for (int k = 0; k < width; ++k) expected[first + k] += tree_mean[t * width + k];
  }

  std::fill(out, out + x.n_rows * row_size, 0.0);
  const int64_t n_blocks = (x.n_rows + kRowBlock - 1) / kRowBlock;
  std::vector<std::vector<uint32_t>> fail(threads, std::vector<uint32_t>(plan.max_tree_nodes));
  std::vector<detail::PairScratch> pair(threads, detail::PairScratch(static_cast<int>(m)));
  const int bits = plan.max_table_bits;
  std::vector<std::vector<double>> scratch(threads,
                                           std::vector<double>((int64_t{1} << bits) * (bits + 1) + bits));
  std::vector<double> tables;
  std::vector<int64_t> chunk_offset(n_trees, 0);
  for (int64_t begin = 0; begin < n_trees;) {
    // A chunk: consecutive trees whose histograms and tables fit the budget (at least one).
    int64_t end = begin, size = 0;
    while (end < n_trees && (end == begin || size + plan.trees[end].table_doubles <= kChunkDoubles)) {
      chunk_offset[end] = size;
      size += plan.trees[end].table_doubles;
      ++end;
    }
    tables.assign(size, 0.0);
    // Background histograms, one tree per task.
    ParallelFor(end - begin, threads, [&](int64_t i, int tid) {
      const TreeInfo& info = plan.trees[begin + i];
      if (!info.dense) return;
      double* base = tables.data() + chunk_offset[begin + i];
      uint32_t* f = fail[tid].data();
      for (int64_t j = 0; j < n_bg; ++j) {
        if (weight[j] == 0.0) continue;
        FailMasks(forest, plan, info, &zs[j * m], f);
        for (int64_t l = 0; l < info.n_leaves; ++l) {
          const LeafInfo& leaf = plan.leaves[info.first_leaf + l];
          const uint32_t full = (uint32_t{1} << leaf.d) - 1;
          base[leaf.hist + (~f[leaf.local] & full)] += weight[j];
        }
      }
    });
    // Tables, one tree per task (its leaves share the scratch).
    ParallelFor(end - begin, threads, [&](int64_t i, int tid) {
      const TreeInfo& info = plan.trees[begin + i];
      if (!info.dense) return;
      double* base = tables.data() + chunk_offset[begin + i];
      for (int64_t l = 0; l < info.n_leaves; ++l) {
        const LeafInfo& leaf = plan.leaves[info.first_leaf + l];
        const int64_t n = int64_t{1} << leaf.d;
        std::vector<double>& s = scratch[tid];
        RankedSupersetSums(leaf.d, base + leaf.hist, s.data());
        if (interactions) {
          InteractionTable(leaf.d, s.data(), coef, s.data() + n * (leaf.d + 1), base + leaf.table);
        } else {
          ValueTable(leaf.d, s.data(), coef, base + leaf.table);
        }
      }
    });
    // Explained rows: a block of rows per task, trees of the chunk in order.
    ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
      const int64_t r_end = std::min(x.n_rows, (b + 1) * kRowBlock);
      uint32_t* f = fail[tid].data();
      std::vector<double> scale(k_out);
      for (int64_t t = begin; t < end; ++t) {
        const TreeInfo& info = plan.trees[t];
        const int first = width == 1 ? forest.tree_output[t] : 0;
        const double* base = tables.data() + chunk_offset[t];
        for (int64_t r = b * kRowBlock; r < r_end; ++r) {
          double* o = out + r * row_size;
          if (!info.dense) {
            for (int64_t j = 0; j < n_bg; ++j) {
              if (weight[j] == 0.0) continue;
              std::fill(scale.begin(), scale.end(), weight[j]);
              detail::PairTreeShap(forest, t, &xs[r * m], &zs[j * m], scale.data(), coef, pair[tid],
                                   interactions ? nullptr : o, interactions ? o : nullptr);
            }
            continue;
          }
          FailMasks(forest, plan, info, &xs[r * m], f);
          for (int64_t l = 0; l < info.n_leaves; ++l) {
            const LeafInfo& leaf = plan.leaves[info.first_leaf + l];
            const int d = leaf.d;
            if (d == 0) continue;
            const uint32_t a = ~f[leaf.local] & ((uint32_t{1} << d) - 1);
            const double* v = &forest.value[leaf.node * width];
            const int32_t* feats = &plan.leaf_features[leaf.features];
            const int64_t tw = TableWidth(d, interactions);
            const double* row = base + leaf.table + a * tw;
            for (int p = 0; p < d; ++p) {
              if (interactions) {
                for (int u = 0; u < d; ++u) {
                  double* dst = o + (feats[p] * m + feats[u]) * k_out + first;
                  for (int k = 0; k < width; ++k) dst[k] += row[p * d + u] * v[k];
                }
              } else {
                double* dst = o + feats[p] * k_out + first;
                for (int k = 0; k < width; ++k) dst[k] += row[p] * v[k];
              }
            }
          }
        }
      }
    });
    begin = end;
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
