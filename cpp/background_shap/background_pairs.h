// Internals shared by the background SHAP kernels: Shapley coefficients of the single-leaf
// game and the per-pair tree walk used for nonlinear outputs and for trees whose paths are
// too wide for mask tables.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "background_shap/background_shap.h"
#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {
namespace detail {

// For one leaf with value v and one pair (x, z), the composed row x_S z_notS reaches the
// leaf iff every path feature's merged condition holds for the row it is taken from. With
// A = path features only x satisfies and B = those only z satisfies (p = |A|, q = |B|;
// the game is zero when a feature is satisfied by neither), the game is
// v [A subset of S][B disjoint from S], whose Shapley values are
//   phi_i =  v (p-1)! q! / (p+q)! = v F(p-1, q)   for i in A,
//   phi_i = -v p! (q-1)! / (p+q)! = -v F(p, q-1)  for i in B,
// and whose Shapley interaction index (S subset of N \ {i, j} weighted |S|!(n-|S|-2)!/(n-1)!) is
//   I_ij = v F(p-2, q) (i, j in A),  v F(p, q-2) (i, j in B),  -v F(p-1, q-1) (mixed),
// all with F(a, b) = a! b! / (a + b + 1)!.
class ShapleyCoef {
 public:
  explicit ShapleyCoef(int max_players);
  double F(int a, int b) const {
    const int n = a + b;
    if (n <= max_table_) return table_[static_cast<size_t>(n) * (n + 1) / 2 + a];
    return std::exp(std::lgamma(a + 1.0) + std::lgamma(b + 1.0) - std::lgamma(n + 2.0));
  }

 private:
  int max_table_;
  std::vector<double> table_;  // row n = a + b holds a = 0..n
};

// Throws std::invalid_argument for an empty background, the wrong width, or weights that
// are negative, not finite or sum to zero.
void CheckBackground(const Forest& forest, const Background& bg);

// Transformed (TransformInput) rows of a matrix, dense: [n_rows, n_cols].
std::vector<double> LoadRows(const Forest& forest, const MatrixView& m, int n_threads);

// Per-thread scratch of PairTreeShap.
struct PairScratch {
  explicit PairScratch(int n_features) : side(n_features, 0) {}
  std::vector<uint8_t> side;   // [n_features] 0 free, 1 from x (in A), 2 from z (in B)
  std::vector<int32_t> in_a, in_b;
  struct Entry {
    int64_t node;
    int32_t feature;
    uint8_t kind;  // 0 enter, 1 enter and assign feature to x, 2 to z, 3 leave assignment
  };
  std::vector<Entry> stack;
};

// Adds scale[k] times the Shapley values (and, when inter is not null, the interaction
// values) of tree t in the single-reference game of (x, z) into phi: [n_features, n_outputs]
// and inter: [n_features, n_features, n_outputs]. x, z: transformed rows [n_features];
// scale: [n_outputs].
void PairTreeShap(const Forest& forest, int64_t t, const double* x, const double* z,
                  const double* scale, const ShapleyCoef& coef, PairScratch& scratch,
                  double* phi, double* inter);

// Adds the leaf's interaction values (given A and B) times v[k] * scale into inter.
void AddLeafInteractions(const ShapleyCoef& coef, const int32_t* in_a, int p, const int32_t* in_b,
                         int q, const double* v, int width, int first, int n_features,
                         int n_outputs, double* inter);

}  // namespace detail
}  // namespace treelens
