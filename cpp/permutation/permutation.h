// Permutation importance engine: margins of the model on data whose feature groups are
// permuted across rows, re-evaluating only the (row, tree) pairs the permutation can change.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {

namespace detail {
class HeapForest;
}  // namespace detail

// Feature groups in CSR form: group g permutes columns cols[offsets[g] .. offsets[g + 1]).
struct FeatureGroups {
  std::vector<int64_t> offsets;  // [n_groups + 1]
  std::vector<int32_t> cols;     // [offsets.back()], each in [0, n_features)
  int64_t NumGroups() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

// Raw margins with each group's columns permuted.
//   x:     [n_rows, n_features]
//   perms: [n_repeats, n_rows] row indices; repeat r scores x with x[:, cols_g] replaced by
//          x[perms[r]][:, cols_g] (the same permutation for every group).
//   out:   [n_groups, n_repeats, n_rows, n_outputs], each [n_rows, n_outputs] slice equal bit
//          for bit to Predict on the explicitly permuted matrix.
//   baseline: [n_rows, n_outputs] when not null, receives the unpermuted margins (equal to
//          Predict bit for bit).
//   heap: the forest's heap view (heap_forest.h) when the caller keeps one; built per call
//          otherwise.
// Throws std::invalid_argument for a column or row index out of range.
void PermutedMargins(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
                     const int64_t* perms, int64_t n_repeats, double* out, int n_threads,
                     double* baseline = nullptr, const detail::HeapForest* heap = nullptr);

// The same permutations scored without keeping the margins: for each group g, repeat r and
// output o, sums[g, r, o, :] = (sum_i w_i (y_io - p_io)^2, sum_i w_i |y_io - p_io|) over the
// rows, with p = margin, or exp(margin) when exp_link. Memory O(n_groups * n_repeats), and the
// sums do not depend on the number of threads.
//   y: [n_rows, n_outputs]; weights: [n_rows] or null (all 1); sums: [n_groups, n_repeats,
//   n_outputs, 2]; baseline and heap as above.
void PermutedResidualSums(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
                          const int64_t* perms, int64_t n_repeats, const double* y,
                          const double* weights, bool exp_link, double* sums, int n_threads,
                          double* baseline = nullptr, const detail::HeapForest* heap = nullptr);

namespace detail {

// Where PermutedMargins / PermutedResidualSums put their results (one of margins, sums).
struct PermutationOutput {
  double* margins = nullptr;         // [n_groups, n_repeats, n_rows, n_outputs]
  const double* y = nullptr;         // [n_rows, n_outputs] targets of the residual sums
  const double* weights = nullptr;   // [n_rows] or null
  bool exp_link = false;
  double* sums = nullptr;            // [n_groups, n_repeats, n_outputs, 2]
  double* baseline = nullptr;        // [n_rows, n_outputs] or null
};

}  // namespace detail

}  // namespace treelens
