// Mask tables of exact background SHAP (see background_tables.h), after the linear-background
// construction of WOODELF (Nadel and Wolf, "Decision trees as cooperative games: exact,
// linear-time SHAP for ensembles"): the per-tree plan and the closed-form Shapley values of a
// leaf for every explained-row mask, from ranked superset sums (a zeta transform over the
// subset lattice, split by popcount) of the background histogram, O(2^d d^2) per leaf.
#include "background_shap/background_tables.h"

#include <algorithm>

#include "common/simd.h"

namespace treelens {
namespace detail {
namespace {

// The leaf's Shapley value of each path feature p (unit leaf value) for an explained row with
// mask a, averaged over the background: values[p], p < d. With c = complement of a, q = |c|,
// the game is non-zero only for b containing c, and s = |b & a| gives |A| = |a| - s, |B| = q.
// z: ranked superset sums [2^d, d+1].
void ValueRow(int d, const double* z, const ShapleyCoef& coef, int64_t a,
              double* values) {
  const int64_t n = int64_t{1} << d;
  const int w = d + 1;
  const int na = simd::PopCount(a);
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

}  // namespace

BackgroundPlan BuildBackgroundPlan(const Forest& forest, bool interactions) {
  const int max_bits = interactions ? kMaxInteractionBits : kMaxValueBits;
  BackgroundPlan plan;
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
    int64_t hist = 0, table = 0;
    while (!stack.empty()) {
      const Frame f = stack.back();
      stack.pop_back();
      const int32_t local = static_cast<int32_t>(f.node - begin);
      if (forest.IsLeaf(f.node)) {
        LeafInfo leaf{f.node, local, f.n_unique, static_cast<int64_t>(plan.leaf_features.size()),
                      hist, table};
        plan.leaf_features.insert(plan.leaf_features.end(), unique.begin(),
                                  unique.begin() + f.n_unique);
        plan.max_players = std::max(plan.max_players, f.n_unique);
        if (f.n_unique > max_bits) {
          info.dense = false;
        } else {
          hist += int64_t{1} << f.n_unique;
          table += (int64_t{1} << f.n_unique) * TableWidth(f.n_unique, interactions);
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
                            static_cast<int32_t>(forest.right[f.node] - begin), feature,
                            pos < 32 ? uint32_t{1} << pos : 0u, forest.threshold[f.node],
                            forest.flags[f.node]});
      stack.push_back({forest.right[f.node], n_child});
      stack.push_back({forest.left[f.node], n_child});
    }
    info.n_steps = static_cast<int64_t>(plan.steps.size()) - info.first_step;
    info.n_leaves = static_cast<int64_t>(plan.leaves.size()) - info.first_leaf;
    if (info.dense) {
      info.hist_doubles = hist;
      info.table_doubles = table;
      plan.max_hist_doubles = std::max(plan.max_hist_doubles, hist);
      for (int64_t l = info.first_leaf; l < info.first_leaf + info.n_leaves; ++l) {
        plan.max_table_bits = std::max(plan.max_table_bits, plan.leaves[l].d);
      }
    }
  }
  return plan;
}

void RankedSupersetSums(int d, const double* hist, double* z) {
  const int64_t n = int64_t{1} << d;
  const int w = d + 1;
  std::fill(z, z + n * w, 0.0);
  for (int64_t b = 0; b < n; ++b) z[b * w + simd::PopCount(b)] = hist[b];
  for (int i = 0; i < d; ++i) {
    for (int64_t u = 0; u < n; ++u) {
      if ((u >> i) & 1) continue;
      const double* src = z + (u | (int64_t{1} << i)) * w;
      double* dst = z + u * w;
      for (int r = 0; r < w; ++r) dst[r] += src[r];
    }
  }
}

void ValueTable(int d, const double* z, const ShapleyCoef& coef, double* table) {
  for (int64_t a = 0; a < (int64_t{1} << d); ++a) ValueRow(d, z, coef, a, table + a * d);
}

void InteractionTable(int d, const double* z, const ShapleyCoef& coef, double* values,
                      double* table) {
  const int64_t n = int64_t{1} << d;
  const int w = d + 1;
  for (int64_t a = 0; a < n; ++a) {
    const int na = simd::PopCount(a);
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

}  // namespace detail
}  // namespace treelens
