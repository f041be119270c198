// Path-dependent SHAP interaction values by Gauss-Legendre quadrature, vectorised across rows.
//
// SHAP interaction values (Lundberg et al. 2020, after the Shapley interaction index of
// Grabisch and Roubens 1999) split phi_i over pairs: phi_ij (i != j) is half the
// interaction index, i.e. (phi_i with j always present - phi_i with j always absent) / 2,
// and phi_ii = phi_i - sum_{j != i} phi_ij. Writing the index's weight
// |S|!(d-|S|-2)!/(d-1)! as a Beta integral, the share of one leaf with value v whose path
// holds features i and j among its d unique features is
//   v/2 (o_i - z_i)(o_j - z_j) * integral_0^1 prod_{l != i, j} (o_l t + z_l (1 - t)) dt,
// with z the cover fraction and o in {0, 1} whether the row follows the path (repeated
// features merged into one factor, as in path_shap.cpp). With r_l(t) = (o_l - z_l) /
// (o_l t + z_l (1 - t)) and G(t) the product of all factors, this is
// v/2 integral G r_i r_j dt, and the leaf's share of phi_i is v integral G r_i dt. The
// integrands have degree < d, so the ceil(d/2) Gauss-Legendre nodes of the path SHAP plan
// are exact. One depth-first pass per tree carries G(t) down the path (the update of
// path_shap.cpp); at each leaf the pairs of its unique features are summed, O(d^2 q) per
// leaf, for kRowLanes rows at once, into per-row [s, s] upper triangles that are mirrored into
// the output, so every row is computed the same way whatever the thread count.
#include "path_shap/path_interactions.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "path_shap/descend_edge.h"
#include "common/parallel.h"
#include "path_shap/quadrature.h"

namespace treelens {
namespace detail {
namespace {

// Lane buffers are read and written through Lanes pointers only: the vectors' own element
// type may claim more alignment than the default allocator gives.
struct InteractionScratch {
  LaneBuffer<Lanes> xt, go_left, on, g;  // [m], [levels], [levels], [levels * q]
  LaneBuffer<Lanes> u, r, diag;          // [levels * q], [levels * q], [levels]
  LaneBuffer<Lanes> phi;                 // [s, s, n_outputs], upper triangle used
  std::vector<int64_t> step_at;           // [levels] step index of each path level
  std::vector<int32_t> prev_at, active, position;  // [levels]
  std::vector<uint8_t> superseded;        // [levels]
};

// The per-call constants: 1 / w_i of each quadrature size, and the output position of each
// feature (-1 when not selected).
struct InteractionConsts {
  std::vector<double> inv_w;  // [max_q, max_q]: row q - 1 holds 1 / w_i for q nodes
  std::vector<int32_t> position;  // [n_features]
  int64_t s = 0;
  int32_t max_q = 1;
};

// Adds one leaf's pair shares for kRowLanes rows. The path levels 1..d are in sc; g points at
// G(t_i) of the leaf.
template <int Q, int W>
TREELENS_INLINE void LeafPairs(
    const Forest& forest, const PathShapPlan& plan, const PathStep* steps,
    const InteractionConsts& ic, int q_dyn, int width_dyn, int first, int64_t leaf_node,
    int64_t d, const Lanes* g, InteractionScratch& sc) {
  const int q = Q > 0 ? Q : q_dyn;
  const int width = W > 0 ? W : width_dyn;
  const int k_out = forest.n_outputs;
  const Lanes one = Splat(1.0), zero = Splat(0.0);
  // A level is superseded when a deeper edge on the path splits on the same feature.
  for (int64_t l = 1; l <= d; ++l) sc.superseded[l] = 0;
  for (int64_t l = 1; l <= d; ++l) {
    if (sc.prev_at[l] >= 0) sc.superseded[sc.prev_at[l]] = 1;
  }
  int n_active = 0;
  for (int64_t l = 1; l <= d; ++l) {
    if (!sc.superseded[l]) sc.active[n_active++] = static_cast<int32_t>(l);
  }
  const double* inv_w = ic.inv_w.data() + static_cast<int64_t>(q - 1) * ic.max_q;
  Lanes* u = sc.u.data();
  Lanes* r = sc.r.data();
  Lanes* diag = sc.diag.data();
  const Lanes* on = sc.on.data();
  int32_t* pos = sc.position.data();
  for (int a = 0; a < n_active; ++a) {
    const int32_t level = sc.active[a];
    const PathStep& st = steps[sc.step_at[level]];
    const double* wa = OffWeights(QuadratureOf(plan, q), q, st.z);  // (o - z) w / f, o = 0
    const double* wb = plan.coef.data() + st.coef;                  // (o - z) w / f, o = 1
    const Lanes on_l = on[level];
    const Lanes off_l = one - on_l;
    Lanes total = zero;
    for (int i = 0; i < q; ++i) {
      const Lanes wr = on_l * wb[i] + off_l * wa[i];
      u[a * q + i] = g[i] * wr;
      r[a * q + i] = wr * inv_w[i];
      total += u[a * q + i];
    }
    diag[a] = total;
    pos[a] = ic.position[st.feature];
  }
  const double* v = &forest.value[leaf_node * width];
  const int64_t s = ic.s;
  Lanes* phi = sc.phi.data();
  for (int a = 0; a < n_active; ++a) {
    for (int b = a + 1; b < n_active; ++b) {
      if (pos[a] < 0 && pos[b] < 0) continue;
      Lanes p = zero;
      for (int i = 0; i < q; ++i) p += u[a * q + i] * r[b * q + i];
      const Lanes half = 0.5 * p;
      diag[a] -= half;
      diag[b] -= half;
      if (pos[a] < 0 || pos[b] < 0) continue;
      const int64_t lo = std::min(pos[a], pos[b]), hi = std::max(pos[a], pos[b]);
      Lanes* cell = phi + (lo * s + hi) * k_out + first;
      for (int k = 0; k < width; ++k) cell[k] += v[k] * half;
    }
  }
  for (int a = 0; a < n_active; ++a) {
    if (pos[a] < 0) continue;
    Lanes* cell = phi + (pos[a] * s + pos[a]) * k_out + first;
    for (int k = 0; k < width; ++k) cell[k] += v[k] * diag[a];
  }
}

// Adds one tree's interaction values for kRowLanes rows (sc.xt: [n_features]) into sc.phi.
template <int Q, int W>
TREELENS_INLINE void InteractTree(
    const Forest& forest, const PathShapPlan& plan, const InteractionConsts& ic, int64_t t,
    InteractionScratch& sc) {
  const PathTreePlan& tp = plan.trees[t];
  const int64_t root = forest.tree_offsets[t];
  if (forest.IsLeaf(root)) return;
  const int q = Q > 0 ? Q : tp.q;
  const int width = W > 0 ? W : forest.leaf_width;
  const int first = width == 1 ? forest.tree_output[t] : 0;
  Lanes* g = sc.g.data();
  Lanes* on = sc.on.data();
  Lanes* go_left = sc.go_left.data();
  const Lanes* xt = sc.xt.data();
  const Lanes one = Splat(1.0);
  const PathStep* steps = plan.steps.data() + tp.first_step;

  for (int i = 0; i < q; ++i) g[i] = one;
  go_left[0] = Decide(forest, root, xt);
  for (int64_t j = 0; j < tp.n_steps; ++j) {
    const PathStep& st = steps[j];
    const int64_t d = st.depth;
    sc.step_at[d] = j;
    sc.prev_at[d] = st.prev_level;
    const Lanes oe = st.is_left ? go_left[d - 1] : one - go_left[d - 1];
    const Lanes* gp = g + (d - 1) * q;
    Lanes* gd = g + d * q;
    DescendEdge(st, plan.coef.data() + st.coef, QuadratureOf(plan, q), q, oe, gp, gd, on);
    if (!st.is_leaf) {
      go_left[d] = Decide(forest, st.node, xt);
      continue;
    }
    LeafPairs<Q, W>(forest, plan, steps, ic, q, width, first, st.node, d, gd, sc);
  }
}

TREELENS_CLONES
void InteractTreeLanes(const Forest& forest, const PathShapPlan& plan, const InteractionConsts& ic,
                       int64_t t, InteractionScratch& sc) {
  if (forest.leaf_width == 1) {
    switch (plan.trees[t].q) {
      case 1: return InteractTree<1, 1>(forest, plan, ic, t, sc);
      case 2: return InteractTree<2, 1>(forest, plan, ic, t, sc);
      case 3: return InteractTree<3, 1>(forest, plan, ic, t, sc);
      case 4: return InteractTree<4, 1>(forest, plan, ic, t, sc);
      default: return InteractTree<0, 1>(forest, plan, ic, t, sc);
    }
  }
  InteractTree<0, 0>(forest, plan, ic, t, sc);
}

InteractionConsts MakeConsts(const Forest& forest, const PathShapPlan& plan,
                             const std::vector<int32_t>& features) {
  InteractionConsts ic;
  ic.max_q = plan.max_q;
  ic.s = static_cast<int64_t>(features.size());
  ic.inv_w.assign(static_cast<size_t>(ic.max_q) * ic.max_q, 0.0);
  std::vector<double> t_nodes, w_nodes;
  for (int q = 1; q <= ic.max_q; ++q) {
    GaussLegendre01(q, t_nodes, w_nodes);
    for (int i = 0; i < q; ++i) ic.inv_w[(q - 1) * ic.max_q + i] = 1.0 / w_nodes[i];
  }
  ic.position.assign(forest.n_features, -1);
  for (size_t p = 0; p < features.size(); ++p) {
    const int32_t f = features[p];
    if (f < 0 || f >= forest.n_features) {
      throw std::out_of_range("feature index " + std::to_string(f) + " is out of range for " +
                              std::to_string(forest.n_features) + " features");
    }
    if (ic.position[f] >= 0) {
      throw std::invalid_argument("feature index " + std::to_string(f) + " is selected twice");
    }
    ic.position[f] = static_cast<int32_t>(p);
  }
  return ic;
}

}  // namespace
}  // namespace detail

int64_t PathInteractionScratchBytes(const Forest& forest, const PathShapPlan& plan, int64_t s,
                                    int n_threads) {
  const int64_t levels = plan.max_levels;
  const int64_t lanes = forest.n_features + 3 * levels + 3 * levels * plan.max_q +
                        s * s * forest.n_outputs;
  return static_cast<int64_t>(ResolveThreads(n_threads)) *
         (lanes * static_cast<int64_t>(sizeof(detail::Lanes)) + levels * 17);
}

void PathInteractionValues(const Forest& forest, const PathShapPlan& plan, const MatrixView& x,
                           const std::vector<int32_t>& features, double* out, int n_threads) {
  using detail::kRowLanes;
  using detail::Lanes;
  const detail::InteractionConsts ic = detail::MakeConsts(forest, plan, features);
  const int64_t m = forest.n_features;
  const int64_t s = ic.s;
  const int64_t k_out = forest.n_outputs;
  const int64_t n_blocks = (x.n_rows + kRowLanes - 1) / kRowLanes;
  const int64_t wanted = std::min<int64_t>(ResolveThreads(n_threads), n_blocks);
  const int threads = static_cast<int>(std::max<int64_t>(1, wanted));
  const int64_t levels = plan.max_levels;
  const Lanes zero = detail::Splat(0.0);
  auto make = [&] {
    detail::InteractionScratch sc;
    sc.xt.assign(m, zero);
    sc.go_left.assign(levels, zero);
    sc.on.assign(levels, zero);
    sc.g.assign(levels * plan.max_q, zero);
    sc.u.assign(levels * plan.max_q, zero);
    sc.r.assign(levels * plan.max_q, zero);
    sc.diag.assign(levels, zero);
    sc.phi.assign(s * s * k_out, zero);
    sc.step_at.assign(levels, 0);
    sc.prev_at.assign(levels, -1);
    sc.active.assign(levels, 0);
    sc.position.assign(levels, -1);
    sc.superseded.assign(levels, 0);
    return sc;
  };
  auto tree = [&](int64_t t, detail::InteractionScratch& sc) {
    detail::InteractTreeLanes(forest, plan, ic, t, sc);
  };
  const int64_t row_size = s * s * k_out;
  auto store = [&](const detail::InteractionScratch& sc, int64_t r0, int64_t nr) {
    for (int64_t r = 0; r < nr; ++r) {
      double* row = out + (r0 + r) * row_size;
      for (int64_t a = 0; a < s; ++a) {
        for (int64_t b = a; b < s; ++b) {
          const Lanes* cell = sc.phi.data() + (a * s + b) * k_out;
          double* upper = row + (a * s + b) * k_out;
          double* lower = row + (b * s + a) * k_out;
          for (int64_t k = 0; k < k_out; ++k) upper[k] = lower[k] = cell[k][r];
        }
      }
    }
  };
  detail::ForEachRowBlock<detail::InteractionScratch>(forest, x, threads, make, tree, store);
}

}  // namespace treelens
