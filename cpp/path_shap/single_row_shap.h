// Path-dependent SHAP for calls of a few rows: one row at a time, vectorised across the
// quadrature nodes instead of across rows.
#pragma once

#include <cstdint>

#include "model/forest.h"
#include "model/matrix.h"
#include "path_shap/path_shap.h"

namespace treelens {
namespace detail {

// Whether SingleRowShapValues handles this model: one-output trees and at most
// kSingleRowMaxQ quadrature nodes per tree.
constexpr int kSingleRowMaxQ = 4;
bool SingleRowKernelApplies(const Forest& forest, const PathShapPlan& plan);

// PathShapValues for each row on its own. Trees are explained in chunks of tree_chunk trees
// whose sums are added in chunk order, and every row gets bitwise the values of the row-lane
// kernels: each value is computed by the same IEEE operations in the same order.
// margins, if not null: [n_rows, n_outputs], Predict's margins, summed as Predict sums them
// from the leaves the rows reach in the pass.
void SingleRowShapValues(const Forest& forest, const PathShapPlan& plan, const MatrixView& x,
                         double* phi, int threads, int64_t tree_chunk, double* margins);

}  // namespace detail
}  // namespace treelens
