// Exact raw-margin prediction with the source library's routing and accumulation width.
#pragma once

#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {

// out: [n_rows, n_outputs] raw margins (base_score + sum of leaves in tree order; float32
// accumulation for forests with float32_margin, as XGBoost does, unless float64 is set: then
// always float64, the margin the background SHAP games are additive in).
void Predict(const Forest& forest, const MatrixView& x, double* out, int n_threads,
             bool float64 = false);

// One row's margins summed as Predict sums them, in sums: [n_outputs] (float64) or sums32:
// [n_outputs] (float32, for forests with float32_margin unless Predict's float64 is set).
// Starts both from base_score.
inline void StartMargin(const Forest& forest, double* sums, float* sums32) {
  for (int k = 0; k < forest.n_outputs; ++k) {
    sums[k] = forest.base_score[k];
    sums32[k] = ToFloat32(forest.base_score[k]);
  }
}

// Adds one tree's leaf value v to output k (trees in tree order).
inline void AddToMargin(bool float32_sum, double* sums, float* sums32, int k, double v) {
  if (float32_sum) {
    sums32[k] += ToFloat32(v);
  } else {
    sums[k] += v;
  }
}

inline double MarginOf(bool float32_sum, const double* sums, const float* sums32, int k) {
  return float32_sum ? static_cast<double>(sums32[k]) : sums[k];
}

// counts: [n_nodes], overwritten with the number of rows of x that pass through each node
// (every tree's root counts every row). Integer sums, so identical for any n_threads.
void NodeCounts(const Forest& forest, const MatrixView& x, int64_t* counts, int n_threads);

// Leaf reached by a transformed row from the root of tree t (global node index).
inline int64_t FindLeaf(const Forest& forest, int64_t t, const double* row) {
  int64_t node = forest.tree_offsets[t];
  while (!forest.IsLeaf(node)) {
    node = forest.GoesLeft(node, row[forest.feature[node]]) ? forest.left[node] : forest.right[node];
  }
  return node;
}

}  // namespace treelens
