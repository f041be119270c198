// Exact background (interventional) SHAP: Shapley values and Shapley interaction values of
// the game v(S) = sum_z w_z f(x_S, z_notS) / sum_z w_z over weighted background rows z.
#pragma once

#include <cstdint>

#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {

// Background rows and their weights (weights: [n_background] finite, >= 0, positive sum).
struct Background {
  MatrixView rows;                 // [n_background, n_features]
  const double* weights = nullptr;  // [n_background]
};

// phi: [n_rows, n_features, n_outputs], overwritten with the Shapley values of the raw-margin
// game; expected: [n_outputs], the weighted mean margin over the background (base score
// included), so phi.sum(features) + expected = margin(x) with margins summed in float64.
// Cost O((n_rows + n_background) * leaves * depth) plus O(2^d d^2) per leaf with d unique
// features on its path. Bitwise identical for any n_threads.
void BackgroundShapValues(const Forest& forest, const MatrixView& x, const Background& bg,
                          double* phi, double* expected, int n_threads);

// out: [n_rows, n_features, n_features, n_outputs], overwritten with Shapley interaction
// values of the same game: off-diagonal entries are half the Shapley interaction index,
// diagonal entries make every row sum to the Shapley value. expected as above.
void BackgroundInteractionValues(const Forest& forest, const MatrixView& x, const Background& bg,
                                 double* out, double* expected, int n_threads);

// Per-background-row rescaled attributions of a transformed output T (the rule of
// shap.TreeExplainer for nonlinear outputs): for every explained row x and background row z,
// the Shapley values phi(x, z) of the single-reference raw game are scaled per output k by
//   r_k = (tx_k - tz_k) / (fx_k - fz_k) - shift_k   (r_k = 1 when fx_k == fz_k)
// and averaged with the background weights. fx, tx, shift: [n_rows, n_outputs];
// fz, tz: [n_background, n_outputs]; phi: [n_rows, n_features, n_outputs], overwritten.
// Cost O(n_rows * n_background * trees * hybrid leaves): every pair is its own game.
void BackgroundRescaledShapValues(const Forest& forest, const MatrixView& x, const Background& bg,
                                  const double* fx, const double* tx, const double* shift,
                                  const double* fz, const double* tz, double* phi, int n_threads);

}  // namespace treelens
