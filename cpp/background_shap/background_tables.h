// Per-leaf mask tables of exact background SHAP: the plan of each tree's splits and leaves
// (unique path features, table sizes) and the ranked superset-sum construction that turns a
// leaf's background histogram into its Shapley values (or interaction values) for every mask
// of conditions the explained row satisfies. See background_shap.cpp for the algorithm.
#pragma once

#include <cstdint>
#include <vector>

#include "background_shap/background_pairs.h"
#include "model/forest.h"

namespace treelens {
namespace detail {

constexpr int kMaxValueBits = 12;        // value tables: 2^d * d doubles per leaf
constexpr int kMaxInteractionBits = 10;  // interaction tables: 2^d * d * d doubles per leaf

// An internal node in preorder: local indices of itself and its children, its split, and the
// bit of its feature among the unique features of its path (0 past bit 31).
struct SplitStep {
  int64_t node;
  int32_t self, left, right;
  int32_t feature;
  uint32_t bit;
  double threshold;
  uint8_t flags;
};

struct LeafInfo {
  int64_t node;
  int32_t local;
  int32_t d;         // unique features on the path
  int64_t features;  // offset into BackgroundPlan::leaf_features, [d]
  int64_t hist;      // offset of H [2^d] within the tree's histograms
  int64_t table;     // offset of the table [2^d, width] within the tree's tables
};

struct TreeInfo {
  bool dense = true;  // every leaf fits a mask table
  int64_t first_step = 0, n_steps = 0;
  int64_t first_leaf = 0, n_leaves = 0;
  int64_t hist_doubles = 0;   // histograms of all its leaves
  int64_t table_doubles = 0;  // tables of all its leaves
};

struct BackgroundPlan {
  std::vector<TreeInfo> trees;
  std::vector<SplitStep> steps;
  std::vector<LeafInfo> leaves;
  std::vector<int32_t> leaf_features;
  int64_t max_tree_nodes = 0;
  int64_t max_hist_doubles = 0;
  int max_players = 1;     // most unique features on any path
  int max_table_bits = 0;  // most unique features on a path of a dense tree's leaf
};

// Table entries per mask: d for values, d * d for interactions.
inline int64_t TableWidth(int d, bool interactions) {
  return interactions ? int64_t{d} * d : d;
}

// Walks every tree once: preorder splits with feature bits, leaves with their unique path
// features, and the histogram and table sizes of each leaf.
BackgroundPlan BuildBackgroundPlan(const Forest& forest, bool interactions);

// Ranked superset sums: z[u][r] = sum of hist[b] over b containing u with |b| = r.
// hist: [2^d]; z: [2^d, d + 1].
void RankedSupersetSums(int d, const double* hist, double* z);

// table: [2^d, d], the leaf's Shapley value of each path feature (unit leaf value) for an
// explained row with mask a, averaged over the background. z: ranked superset sums.
void ValueTable(int d, const double* z, const ShapleyCoef& coef, double* table);

// table: [2^d, d, d], interaction values (half the interaction index off the diagonal; the
// diagonal completes each row to the Shapley value). values: scratch [d].
void InteractionTable(int d, const double* z, const ShapleyCoef& coef, double* values,
                      double* table);

}  // namespace detail
}  // namespace treelens
