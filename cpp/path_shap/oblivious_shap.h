// Path-dependent TreeSHAP for forests of oblivious (symmetric) trees by leaf tables.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forest.h"
#include "model/matrix.h"
#include "path_shap/path_shap.h"

namespace treelens {

// Deepest oblivious tree given a table (2^depth decision patterns per tree).
constexpr int kMaxObliviousDepth = 8;

// The per-model view: for each tree, the split of each level and the SHAP values of every
// decision pattern. Empty (usable == false) unless every tree is oblivious.
struct ObliviousShapPlan {
  bool usable = false;
  std::vector<int64_t> level_offset;    // [n_trees + 1] into level_node
  std::vector<int64_t> level_node;      // one node of each level (all split alike)
  std::vector<int64_t> feature_offset;  // [n_trees + 1] into features
  std::vector<int32_t> features;        // distinct split features of each tree
  std::vector<int64_t> table_offset;    // [n_trees] into table
  std::vector<double> table;            // per tree [2^depth, n_used_features, leaf_width]
};

ObliviousShapPlan BuildObliviousShapPlan(const Forest& forest, const PathShapPlan& plan);

// phi: [n_rows, n_features, n_outputs], overwritten with the same SHAP values as
// PathShapValues (up to rounding). Bitwise identical for any n_threads.
void ObliviousShapValues(const Forest& forest, const ObliviousShapPlan& plan,
                         const MatrixView& x, double* phi, int n_threads);

}  // namespace treelens
