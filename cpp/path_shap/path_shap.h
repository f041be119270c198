// Exact path-dependent TreeSHAP (cover-weighted value function).
#pragma once

#include <cstdint>
#include <vector>

#include "common/huge_pages.h"
#include "common/row_lanes.h"
#include "model/forest.h"
#include "model/matrix.h"

namespace treelens {

// One non-root node of a tree in preorder, with the constants of the edge into it.
struct PathStep {
  int32_t node;        // global node index
  int32_t depth;       // edges from the root
  int32_t feature;     // feature of the parent's split (the edge's feature)
  int32_t prev_level;  // depth of the nearest ancestor edge on the same feature, -1 if none
  int32_t s_level;     // internal nodes: prev_level of this node's child edges, -1 if none
  int32_t n_finish;    // leaves: nodes completed after this leaf (itself and ancestors);
                       // pair nodes: the same for their right leaf
  int32_t split;        // internal nodes: the node's own split feature
  uint8_t is_left;
  uint8_t is_leaf;
  uint8_t is_pair;  // an internal node whose children are two leaves on a new feature
  uint8_t flags;    // the node's Forest::flags
  double z;      // merged cover fraction of this edge's feature on the path
  // Internal nodes: the split threshold; leaves of one-output trees: the leaf value. Copies
  // of the Forest's, so that a tree's pass reads its steps in order and little else.
  double param;
  // Offset into PathShapPlan::coef of WB [q], the edge's on weights (1 - z) w / f(t); for a
  // repeated feature then C0, C1, C2 [q], the factor replacing the earlier edge's (see
  // DescendEdge). The other constants depend on q only (PathShapPlan::quad).
  int64_t coef;
  // Pair nodes: offset into PathShapPlan::coef of AL, AR ([width, q]) and BL, BR ([width]),
  // the leaves' brackets when the row goes left / right (see AddLeafPair); -1 otherwise.
  int64_t pair;
};

struct PathTreePlan {
  int32_t q = 1;        // quadrature nodes
  int32_t levels = 1;   // depth + 1
  int64_t first_step = 0;
  int64_t n_steps = 0;  // non-root nodes
  // Copies of the Forest's root node and output, so that a tree's pass starts from the plan.
  int64_t root = 0;
  int32_t output = 0;        // Forest::tree_output
  int32_t root_feature = 0;  // the root's split (unused when the root is a leaf)
  double root_threshold = 0;
  uint8_t root_flags = 0;
};

// The per-model view path-dependent SHAP needs, built once and cached with the model.
struct PathShapPlan {
  std::vector<PathTreePlan> trees;
  // Read front to back by every call, so kept on huge pages where the system has them.
  HugePageVector<PathStep> steps;
  HugePageVector<double> coef;
  // Per quadrature size q, at quad_offset[q]: T, S = 1 - T, W, WA and zeros, each [q]
  // (see QuadratureOf).
  std::vector<double> quad;
  std::vector<int64_t> quad_offset;
  std::vector<double> expected_value;  // [n_outputs], base_score + cover-weighted means
  int32_t max_q = 1;
  int32_t max_levels = 1;
};

PathShapPlan BuildPathShapPlan(const Forest& forest);

// The constants of q quadrature nodes: T, S = 1 - T, W, WA = -W / S and zeros, each [q].
inline const double* QuadratureOf(const PathShapPlan& plan, int q) {
  return plan.quad.data() + plan.quad_offset[q];
}

// The off weights of an edge, (0 - z) w / f(t) with f = z (1 - t): WA, or zeros when z = 0.
inline const double* OffWeights(const double* quad, int q, double z) {
  return quad + (z > 0 ? 3 : 4) * q;
}

// phi: [n_rows, n_features, n_outputs], overwritten with SHAP values (expected value
// excluded). Bitwise identical for any n_threads. margins, if not null: [n_rows, n_outputs],
// overwritten with Predict's margins (bit for bit; a single-row call takes them from the
// leaves its pass reaches instead of walking the trees again).
void PathShapValues(const Forest& forest, const PathShapPlan& plan, const MatrixView& x,
                    double* phi, int n_threads, double* margins = nullptr);

// SHAP values of tree t alone for kRowLanes rows whose decision at every split of depth l is
// go_left[l] (1.0 left, 0.0 right; [depth of the tree] lanes): the tree's contribution for
// any row with those decisions. Returns phi: [n_features * n_outputs] lanes.
detail::LaneBuffer<detail::Lanes> ExplainTreeByDepth(const Forest& forest, const PathShapPlan& plan,
                                              int64_t t, const detail::LaneBuffer<detail::Lanes>& go_left);

// Bytes of per-thread scratch PathShapValues allocates (it grows with depth^2).
int64_t PathShapScratchBytes(const Forest& forest, const PathShapPlan& plan, int n_threads);

}  // namespace treelens
