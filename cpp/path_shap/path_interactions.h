// Exact path-dependent SHAP interaction values (cover-weighted value function).
#pragma once

#include <cstdint>
#include <vector>

#include "model/forest.h"
#include "model/matrix.h"
#include "path_shap/path_shap.h"

namespace treelens {

// out: [n_rows, s, s, n_outputs] with s = features.size(), overwritten with the SHAP
// interaction values of the selected features (in the given order): off-diagonal
// phi_ij = half the Shapley interaction index, diagonal phi_ii = phi_i - sum_{j != i}
// phi_ij, where the sum runs over all features, selected or not. Symmetric, and bitwise
// identical for any n_threads. features: distinct indices in [0, n_features).
void PathInteractionValues(const Forest& forest, const PathShapPlan& plan, const MatrixView& x,
                           const std::vector<int32_t>& features, double* out, int n_threads);

// Bytes of per-thread scratch PathInteractionValues allocates for s selected features.
int64_t PathInteractionScratchBytes(const Forest& forest, const PathShapPlan& plan, int64_t s,
                                    int n_threads);

}  // namespace treelens
