// Saabas attributions: the single-ordering approximation of TreeSHAP.
#pragma once

#include <vector>

#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {

// Cover-weighted mean output of every node: [n_nodes, leaf_width] (leaves: their value).
std::vector<double> NodeMeans(const Forest& forest);

// phi: [n_rows, n_features, n_outputs], overwritten. Along each row's path every split adds
// mean(child) - mean(node) to its feature (means: NodeMeans(forest)), so phi.sum(1) +
// expected_value is the margin. Bitwise identical for any n_threads.
void SaabasValues(const Forest& forest, const std::vector<double>& mean, const MatrixView& x,
                  double* phi, int n_threads);

}  // namespace treelens
