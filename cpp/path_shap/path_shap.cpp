// Path-dependent TreeSHAP by Gauss-Legendre quadrature, vectorised across rows.
//
// The Shapley weight |S|!(d-|S|-1)!/d! equals the Beta integral of t^|S| (1-t)^(d-|S|-1)
// over [0, 1], so the TreeSHAP contribution of unique path feature k to leaf value v is
//   v (o_k - z_k) * integral_0^1 prod_{j != k} (o_j t + z_j (1 - t)) dt,
// where z_j is the cover fraction and o_j in {0, 1} whether the row follows the path
// (Lundberg et al. 2020; the polynomial view of Linear TreeShap, Yu et al. 2022). The
// integrand has degree < d, so ceil(d/2) Gauss-Legendre nodes integrate it exactly
// (the quadrature formulation of Quadrature-TreeSHAP). One depth-first pass per tree
// carries the path products G(t) down and the leaf sums H(t) = sum v G(t) up; a node's
// contribution is H(t) divided by its own factor, folded into precomputed per-edge
// weights. Repeated features on a path merge into one factor (z multiplied, o and-ed),
// and the leaves below a deeper split on the same feature are subtracted from the
// shallower edge. A node whose children are two leaves on a new feature is done in one step
// from per-node constants (AddLeafPair). Work is O(nodes * q) per row and tree, in blocks
// of kPathLanes rows with identical control flow, so the per-node bookkeeping is shared by
// the block, the loops vectorise, and every row is computed the same way whatever the
// thread count or its place in a block.
#include "path_shap/path_shap.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "path_shap/descend_edge.h"
#include "common/parallel.h"
#include "model/predict.h"
#include "path_shap/quadrature.h"
#include "path_shap/single_row_shap.h"

namespace treelens {
namespace detail {

struct PreorderNode {
  int32_t node;
  int32_t parent;  // preorder position, -1 for the root
  int32_t depth;
  uint8_t is_left;
};

std::vector<PreorderNode> Preorder(const Forest& forest, int64_t root) {
  std::vector<PreorderNode> order;
  std::vector<PreorderNode> stack{{static_cast<int32_t>(root), -1, 0, 0}};
  while (!stack.empty()) {
    PreorderNode n = stack.back();
    stack.pop_back();
    const int32_t pos = static_cast<int32_t>(order.size());
    order.push_back(n);
    if (!forest.IsLeaf(n.node)) {
      stack.push_back({forest.right[n.node], pos, n.depth + 1, 0});
      stack.push_back({forest.left[n.node], pos, n.depth + 1, 1});
    }
  }
  return order;
}

// Preorder position of the nearest edge at or above `pos` whose parent splits on `feat`.
int32_t NearestEdgeOnFeature(const Forest& forest, const std::vector<PreorderNode>& order,
                             int32_t pos, int32_t feat) {
  while (order[pos].parent >= 0) {
    if (forest.feature[order[order[pos].parent].node] == feat) return pos;
    pos = order[pos].parent;
  }
  return -1;
}

}  // namespace detail

namespace {

// Nodes completed when the leaf at preorder position `pos` is: the leaf, then every
// ancestor whose last (right) subtree it closes.
int32_t Completions(const std::vector<detail::PreorderNode>& order, int32_t pos) {
  int32_t n = 1;
  while (order[pos].parent >= 0 && !order[pos].is_left) {
    pos = order[pos].parent;
    ++n;
  }
  return n;
}

// If the internal node at preorder position j (step st) has two leaves as children and splits
// on a feature new to its path, makes it a pair node and appends its constants. With G(t)
// the path product at the node, F_L, F_R the children's factors and I = integral of G, the
// two leaves add
//   v_L (o_L - z_L) I + v_R (o_R - z_R) I   to the node's feature, and
//   G (v_L F_L + v_R F_R)                   to the node's sum H,
// where the row takes exactly one child (o_L + o_R = 1): BL / BR and AL / AR are these
// brackets for a row going left / right.
void AddLeafPair(const Forest& forest, const std::vector<detail::PreorderNode>& order,
                 int32_t j, const std::vector<double>& z_merged,
                 const std::vector<double>& t_nodes, int q, PathStep& st, PathShapPlan& plan) {
  const int32_t l = j + 1, r = j + 2;
  if (st.is_leaf || st.s_level >= 0 || r >= static_cast<int32_t>(order.size()) ||
      order[r].parent != j || !forest.IsLeaf(order[l].node) || !forest.IsLeaf(order[r].node)) {
    return;
  }
  const int width = forest.leaf_width;
  st.is_pair = 1;
  st.n_finish = Completions(order, r);
  st.pair = static_cast<int64_t>(plan.coef.size());
  plan.coef.resize(plan.coef.size() + 2 * width * (q + 1));
  double* al = &plan.coef[st.pair];
  double* ar = al + width * q;
  double* bl = ar + width * q;
  double* br = bl + width;
  const double* vl = &forest.value[int64_t{order[l].node} * width];
  const double* vr = &forest.value[int64_t{order[r].node} * width];
  const double zl = z_merged[l], zr = z_merged[r];
  for (int k = 0; k < width; ++k) {
    for (int i = 0; i < q; ++i) {
      const double s = 1.0 - t_nodes[i];
      const double on_l = t_nodes[i] + zl * s, off_l = zl * s;
      const double on_r = t_nodes[i] + zr * s, off_r = zr * s;
      al[k * q + i] = vl[k] * on_l + vr[k] * off_r;
      ar[k * q + i] = vl[k] * off_l + vr[k] * on_r;
    }
    bl[k] = vl[k] * (1.0 - zl) - vr[k] * zr;
    br[k] = vr[k] * (1.0 - zr) - vl[k] * zl;
  }
}

}  // namespace

// The constants of q Gauss-Legendre nodes, once per q: T, S = 1 - T, W, WA = -W / S
// (the off weight (0 - z) w / (z (1 - t)) of an edge with z > 0) and zeros.
void AddQuadrature(int q, const std::vector<double>& t_nodes,
                   const std::vector<double>& w_nodes, PathShapPlan& plan) {
  if (static_cast<int>(plan.quad_offset.size()) > q && plan.quad_offset[q] >= 0) return;
  if (static_cast<int>(plan.quad_offset.size()) <= q) plan.quad_offset.resize(q + 1, -1);
  plan.quad_offset[q] = static_cast<int64_t>(plan.quad.size());
  plan.quad.resize(plan.quad.size() + 5 * static_cast<size_t>(q), 0.0);
  double* c = plan.quad.data() + plan.quad_offset[q];
  for (int i = 0; i < q; ++i) {
    const double si = 1.0 - t_nodes[i];
    c[i] = t_nodes[i];
    c[q + i] = si;
    c[2 * q + i] = w_nodes[i];
    c[3 * q + i] = -w_nodes[i] / si;
  }
}

PathShapPlan BuildPathShapPlan(const Forest& forest) {
  using detail::PreorderNode;
  PathShapPlan plan;
  const int width = forest.leaf_width;
  plan.expected_value = forest.base_score;
  plan.trees.resize(forest.NumTrees());
  std::vector<double> t_nodes, w_nodes;
  for (int64_t t = 0; t < forest.NumTrees(); ++t) {
    const std::vector<PreorderNode> order = detail::Preorder(forest, forest.tree_offsets[t]);
    const size_t n = order.size();
    std::vector<double> z_merged(n, 1.0), reach(n, 1.0);
    std::vector<int32_t> prev(n, -1), unique(n, 0);
    int32_t max_unique = 0;
    for (size_t j = 1; j < n; ++j) {
      const PreorderNode& nd = order[j];
      const int32_t parent_node = order[nd.parent].node;
      const int32_t feat = forest.feature[parent_node];
      prev[j] = detail::NearestEdgeOnFeature(forest, order, nd.parent, feat);
      const double pc = forest.cover[parent_node];
      const double z = pc > 0 ? forest.cover[nd.node] / pc : 0.0;
      z_merged[j] = z * (prev[j] >= 0 ? z_merged[prev[j]] : 1.0);
      reach[j] = reach[nd.parent] * z;
      unique[j] = unique[nd.parent] + (prev[j] < 0 ? 1 : 0);
      max_unique = std::max(max_unique, unique[j]);
    }
    // Path-dependent expectation: leaves weighted by their cover fraction.
    const int first = width == 1 ? forest.tree_output[t] : 0;
    for (size_t j = 0; j < n; ++j) {
      if (!forest.IsLeaf(order[j].node)) continue;
      const double* v = &forest.value[int64_t{order[j].node} * width];
      for (int k = 0; k < width; ++k) plan.expected_value[first + k] += reach[j] * v[k];
    }
    PathTreePlan& tp = plan.trees[t];
    tp.q = std::max(1, (max_unique + 1) / 2);
    tp.levels = forest.tree_depth[t] + 1;
    tp.first_step = static_cast<int64_t>(plan.steps.size());
    tp.n_steps = static_cast<int64_t>(n) - 1;
    tp.root = forest.tree_offsets[t];
    tp.output = forest.tree_output[t];
    tp.root_feature = forest.feature[tp.root];
    tp.root_threshold = forest.threshold[tp.root];
    tp.root_flags = forest.flags[tp.root];
    plan.max_q = std::max(plan.max_q, tp.q);
    plan.max_levels = std::max(plan.max_levels, tp.levels);
    GaussLegendre01(tp.q, t_nodes, w_nodes);
    AddQuadrature(tp.q, t_nodes, w_nodes, plan);
    for (size_t j = 1; j < n; ++j) {
      const PreorderNode& nd = order[j];
      PathStep st{};
      st.node = nd.node;
      st.depth = nd.depth;
      st.feature = forest.feature[order[nd.parent].node];
      st.prev_level = prev[j] >= 0 ? order[prev[j]].depth : -1;
      st.is_left = nd.is_left;
      st.is_leaf = forest.IsLeaf(nd.node);
      st.flags = forest.flags[nd.node];
      st.split = st.is_leaf ? -1 : forest.feature[nd.node];
      st.param = !st.is_leaf ? forest.threshold[nd.node] : width == 1 ? forest.value[nd.node] : 0.0;
      st.s_level = -1;
      st.n_finish = 0;
      st.pair = -1;
      if (!st.is_leaf) {
        const int32_t e = detail::NearestEdgeOnFeature(forest, order, static_cast<int32_t>(j),
                                                       forest.feature[nd.node]);
        st.s_level = e >= 0 ? order[e].depth : -1;
      } else {
        st.n_finish = Completions(order, static_cast<int32_t>(j));
      }
      st.coef = static_cast<int64_t>(plan.coef.size());
      const double zm = z_merged[j];
      st.z = zm;
      const double zp = prev[j] >= 0 ? z_merged[prev[j]] : 1.0;
      const double ze = zp > 0 ? zm / zp : 0.0;
      plan.coef.resize(plan.coef.size() + (prev[j] >= 0 ? 4 : 1) * static_cast<size_t>(tp.q));
      double* wb = &plan.coef[st.coef];
      for (int i = 0; i < tp.q; ++i) {
        const double ti = t_nodes[i], si = 1.0 - t_nodes[i];
        const double off = zm * si, on = ti + off;
        wb[i] = (1.0 - zm) * w_nodes[i] / on;  // (1 - z) w / (t + z (1 - t))
        if (prev[j] >= 0) {
          // Replace the earlier factor of this feature by the merged one.
          double* c0 = wb + tp.q;
          double* c1 = c0 + tp.q;
          double* c2 = c1 + tp.q;
          const double prev_on = ti + zp * si;
          c0[i] = ze;
          c1[i] = off / prev_on;
          c2[i] = on / prev_on;
        }
      }
      AddLeafPair(forest, order, static_cast<int32_t>(j), z_merged, t_nodes, tp.q, st, plan);
      plan.steps.push_back(st);
    }
  }
  // Slack after the last block: the single-row kernel loads whole vectors of q constants.
  plan.coef.resize(plan.coef.size() + detail::kSingleRowMaxQ, 0.0);
  return plan;
}

namespace detail {

// Decisions of ExplainTree: the rows' own routing (RowDecisions) or given per depth
// (DepthDecisions). Functors with always-inline calls, so that they inline into the target
// clones of the kernel (a lambda's call operator would stay a default-target function).
template <typename L>
struct RowDecisions {
  const Forest& forest;
  const L* xt;  // [n_features] transformed values
  TREELENS_INLINE L Root(const PathTreePlan& tp) const {
    return DecideSplit(forest, tp.root, xt[tp.root_feature], tp.root_threshold, tp.root_flags);
  }
  TREELENS_INLINE L operator()(const PathStep& st) const {
    return DecideSplit(forest, st.node, xt[st.split], st.param, st.flags);
  }
};

template <typename L>
struct DepthDecisions {
  const L* go_left;  // [depth]
  TREELENS_INLINE L Root(const PathTreePlan&) const { return go_left[0]; }
  TREELENS_INLINE L operator()(const PathStep& st) const { return go_left[st.depth]; }
};

// Trees are explained in fixed chunks of kTreeChunk trees: each chunk's contributions are
// summed on their own and the chunk sums added in chunk order, so a row's values do not
// depend on how the work is split (over row blocks, or over the chunks of a few rows).
constexpr int64_t kTreeChunk = 64;

// Rows per lane block of PathShapValues (four AVX2 registers of doubles): the per-node
// bookkeeping, branches and coefficient loads are shared by sixteen rows. Calls with fewer
// rows use two-row lanes, which compute every row with the same IEEE operations.
constexpr int kPathLanes = 16;

// Calls of at most this many rows explain each row on its own (single_row_shap.cpp).
constexpr int64_t kSingleRowMaxRows = 1;

template <typename L>
struct PathScratch {
  LaneBuffer<L> xt, go_left, on, g, h, s, phi, sum;
  std::vector<int64_t> pos;
  std::vector<uint8_t> has_s;
};

// Adds one tree's contributions for the rows in the lanes of L (sc.xt: [n_features]) into
// sc.phi: [n_features, n_outputs]. Q > 0 fixes the quadrature size and W > 0 the leaf
// width at compile time, so the inner loops unroll; 0 means "read from the plan".
// `decide(step)` gives the lanes' go-left decisions (1.0 / 0.0) at a step's split and
// `decide.Root(tree plan)` at the root.
template <int Q, int W, typename L, class DecideFn>
TREELENS_INLINE void ExplainTree(const Forest& forest, const PathShapPlan& plan,
                                 int64_t t, PathScratch<L>& sc, const DecideFn& decide) {
  typedef decltype(L{} != L{}) M;
  const PathTreePlan& tp = plan.trees[t];
  if (tp.n_steps == 0) return;  // a lone leaf
  const int q = Q > 0 ? Q : tp.q;
  const int width = W > 0 ? W : forest.leaf_width;
  const int k_out = forest.n_outputs;
  const int first = width == 1 ? tp.output : 0;
  const int64_t hb = static_cast<int64_t>(width) * q;
  L* g = sc.g.data();
  L* h = sc.h.data();
  L* s = sc.s.data();
  L* on = sc.on.data();
  L* go_left = sc.go_left.data();
  const L one = simd::Splat<L>(1.0), zero = simd::Splat<L>(0.0);
  const PathStep* steps = plan.steps.data() + tp.first_step;
  const double* quad = QuadratureOf(plan, q);
  const double* qt = quad;          // T
  const double* qs = quad + q;      // 1 - T
  const double* wq = quad + 2 * q;  // W

  for (int i = 0; i < q; ++i) g[i] = one;
  go_left[0] = decide.Root(tp);

  for (int64_t j = 0; j < tp.n_steps; ++j) {
    const PathStep& st = steps[j];
    const int64_t d = st.depth;
    sc.pos[d] = j;
    const L oe = st.is_left ? go_left[d - 1] : one - go_left[d - 1];
    const double* coef = plan.coef.data() + st.coef;
    const L* gp = g + (d - 1) * q;
    int32_t first_finish = 0;
    int64_t top = d;  // the level the completions count up from
    if (st.is_pair) {
      // The node and its two leaves at once: I = integral of G, the leaves' share of the
      // node's feature I * B, and the node's sum H = G * A (B, A chosen by the row's way).
      L* gd = g + d * q;
      DescendEdge(st, coef, quad, q, oe, gp, gd, on);
      L integral = zero;
      for (int i = 0; i < q; ++i) integral += wq[i] * gd[i];
      const M left = decide(st) != zero;
      const double* al = plan.coef.data() + st.pair;
      const double* ar = al + width * q;
      const double* bl = ar + width * q;
      const double* br = bl + width;
      L* phi_f = sc.phi.data() + static_cast<int64_t>(st.split) * k_out + first;
      L* hd = h + d * hb;
      for (int k = 0; k < width; ++k) {
        phi_f[k] += integral * simd::Select(left, simd::Splat<L>(bl[k]), simd::Splat<L>(br[k]));
        for (int i = 0; i < q; ++i) {
          hd[k * q + i] = gd[i] * simd::Select(left, simd::Splat<L>(al[k * q + i]),
                                               simd::Splat<L>(ar[k * q + i]));
        }
      }
      top = d + 1;
      first_finish = 1;
      j += 2;
    } else if (st.is_leaf && st.prev_level < 0) {
      // A leaf on a new feature: its own factor cancels, so its contribution is
      // v (o - z) * integral of the parent's product; only the parent's sum is updated.
      L integral = zero;
      for (int i = 0; i < q; ++i) integral += wq[i] * gp[i];
      const double* v = W == 1 ? &st.param : &forest.value[static_cast<int64_t>(st.node) * width];
      L* phi_f = sc.phi.data() + static_cast<int64_t>(st.feature) * k_out + first;
      L* hp = h + (d - 1) * hb;
      const L share = (oe - st.z) * integral;
      const M take = oe != zero;
      for (int k = 0; k < width; ++k) {
        phi_f[k] += v[k] * share;
        for (int i = 0; i < q; ++i) {
          const double off = st.z * qs[i];
          const L hv =
              v[k] * (gp[i] * simd::Select(take, simd::Splat<L>(qt[i] + off), simd::Splat<L>(off)));
          hp[k * q + i] = st.is_left ? hv : hp[k * q + i] + hv;
        }
      }
      first_finish = 1;
    }
    if (first_finish == 0) {
      L* gd = g + d * q;
      DescendEdge(st, coef, quad, q, oe, gp, gd, on);
      L* hd = h + d * hb;
      if (!st.is_leaf) {
        go_left[d] = decide(st);
        continue;
      }
      const double* v = W == 1 ? &st.param : &forest.value[static_cast<int64_t>(st.node) * width];
      for (int k = 0; k < width; ++k) {
        for (int i = 0; i < q; ++i) hd[k * q + i] = v[k] * gd[i];
      }
    }
    // Complete the leaf and each ancestor whose subtree it closes.
    for (int32_t f = first_finish; f < st.n_finish; ++f) {
      const int64_t level = top - f;
      if (level == 0) break;
      const PathStep& done = steps[sc.pos[level]];
      L* hl = h + level * hb;
      L* sl = s + level * hb;
      if (!done.is_leaf && done.s_level >= 0) {
        L* target = s + done.s_level * hb;
        for (int64_t i = 0; i < hb; ++i) target[i] += hl[i];
        sc.has_s[done.s_level] = 1;
      }
      // Only the leaves whose deepest split on this feature is this edge count here:
      // the sums below deeper splits on the same feature are set aside in s.
      const L* src = hl;
      const bool subtract = sc.has_s[level];
      if (subtract) {
        for (int64_t i = 0; i < hb; ++i) sl[i] = hl[i] - sl[i];
        src = sl;
      }
      // The off weights where the row leaves the path on this feature, the on weights
      // where it follows it.
      const double* wa = OffWeights(quad, q, done.z);
      const double* wb = plan.coef.data() + done.coef;
      const M follows = on[level] != zero;
      L* phi_f = sc.phi.data() + static_cast<int64_t>(done.feature) * k_out + first;
      for (int k = 0; k < width; ++k) {
        L acc = zero;
        for (int i = 0; i < q; ++i) {
          acc += simd::Select(follows, simd::Splat<L>(wb[i]), simd::Splat<L>(wa[i])) *
                 src[k * q + i];
        }
        phi_f[k] += acc;
      }
      if (subtract) {
        for (int64_t i = 0; i < hb; ++i) sl[i] = zero;
        sc.has_s[level] = 0;
      }
      // A node's sum starts with its left child, which completes first.
      L* hp = h + (level - 1) * hb;
      if (done.is_left) {
        for (int64_t i = 0; i < hb; ++i) hp[i] = hl[i];
      } else {
        for (int64_t i = 0; i < hb; ++i) hp[i] += hl[i];
      }
    }
  }
}

template <typename L>
TREELENS_INLINE void ExplainTreeRows(const Forest& forest, const PathShapPlan& plan, int64_t t,
                                     PathScratch<L>& sc) {
  const RowDecisions<L> decide{forest, sc.xt.data()};
  if (forest.leaf_width == 1) {
    switch (plan.trees[t].q) {
      case 1: return ExplainTree<1, 1>(forest, plan, t, sc, decide);
      case 2: return ExplainTree<2, 1>(forest, plan, t, sc, decide);
      case 3: return ExplainTree<3, 1>(forest, plan, t, sc, decide);
      case 4: return ExplainTree<4, 1>(forest, plan, t, sc, decide);
      case 5: return ExplainTree<5, 1>(forest, plan, t, sc, decide);
      case 6: return ExplainTree<6, 1>(forest, plan, t, sc, decide);
      case 7: return ExplainTree<7, 1>(forest, plan, t, sc, decide);
      case 8: return ExplainTree<8, 1>(forest, plan, t, sc, decide);
      default: return ExplainTree<0, 1>(forest, plan, t, sc, decide);
    }
  }
  ExplainTree<0, 0>(forest, plan, t, sc, decide);
}

typedef simd::Multi<Lanes, kPathLanes / kRowLanes> BlockLanes;
typedef LanesOf<2> RowLane;

// The kernel for blocks of kPathLanes rows and for pairs of rows, each built for AVX2 and the
// baseline.
TREELENS_CLONES
void ExplainTreeBlock(const Forest& forest, const PathShapPlan& plan, int64_t t,
                      PathScratch<BlockLanes>& sc) {
  ExplainTreeRows(forest, plan, t, sc);
}

TREELENS_CLONES
void ExplainTreeRow(const Forest& forest, const PathShapPlan& plan, int64_t t,
                    PathScratch<RowLane>& sc) {
  ExplainTreeRows(forest, plan, t, sc);
}

TREELENS_INLINE void ExplainTreeLanes(const Forest& forest, const PathShapPlan& plan, int64_t t,
                                      PathScratch<BlockLanes>& sc) {
  ExplainTreeBlock(forest, plan, t, sc);
}

TREELENS_INLINE void ExplainTreeLanes(const Forest& forest, const PathShapPlan& plan, int64_t t,
                                      PathScratch<RowLane>& sc) {
  ExplainTreeRow(forest, plan, t, sc);
}

template <typename L>
PathScratch<L> NewPathScratch(const Forest& forest, const PathShapPlan& plan) {
  const int64_t m = forest.n_features;
  const int64_t levels = plan.max_levels;
  const int64_t hb = static_cast<int64_t>(forest.leaf_width) * plan.max_q;
  const L zero = simd::Splat<L>(0.0);
  PathScratch<L> sc;
  sc.xt.assign(m, zero);
  sc.go_left.assign(levels, zero);
  sc.on.assign(levels, zero);
  sc.g.assign(levels * plan.max_q, zero);
  sc.h.assign(levels * hb, zero);
  sc.s.assign(levels * hb, zero);
  sc.phi.assign(m * forest.n_outputs, zero);
  sc.sum.assign(m * forest.n_outputs, zero);
  sc.pos.assign(levels, 0);
  sc.has_s.assign(levels, 0);
  return sc;
}

// PathShapValues with lane blocks of L.
template <typename L>
void PathShapValuesIn(const Forest& forest, const PathShapPlan& plan, const MatrixView& x,
                      double* phi, int threads) {
  constexpr int kN = simd::kLanesOf<L>;
  const int64_t cells = forest.n_features * forest.n_outputs;
  const L zero = simd::Splat<L>(0.0);
  auto scratch =
      MakePerThread<PathScratch<L>>(threads, [&] { return NewPathScratch<L>(forest, plan); });
  const int64_t n_blocks = (x.n_rows + kN - 1) / kN;
  const int64_t n_trees = forest.NumTrees();
  const int64_t n_chunks = (n_trees + kTreeChunk - 1) / kTreeChunk;
  // sc.phi = the contributions of the trees of chunk c, for the rows loaded in sc.xt.
  auto explain_chunk = [&](PathScratch<L>& sc, int64_t c) {
    std::fill(sc.phi.begin(), sc.phi.end(), zero);
    const int64_t end = std::min(n_trees, (c + 1) * kTreeChunk);
    for (int64_t t = c * kTreeChunk; t < end; ++t) {
      CheckInterrupt();
      ExplainTreeLanes(forest, plan, t, sc);
    }
  };
  auto write_rows = [&](int64_t b, const L* sums) {
    const int64_t r0 = b * kN;
    const int64_t nr = std::min<int64_t>(kN, x.n_rows - r0);
    for (int64_t r = 0; r < nr; ++r) {
      double* out = phi + (r0 + r) * cells;
      for (int64_t f = 0; f < cells; ++f) out[f] = sums[f][r];
    }
  };
  if (n_blocks >= threads || n_chunks == 1) {
    ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
      PathScratch<L>& sc = scratch.Get(tid);
      LoadLanes(forest, x, b * kN, sc.xt.data());
      std::fill(sc.sum.begin(), sc.sum.end(), zero);
      for (int64_t c = 0; c < n_chunks; ++c) {
        explain_chunk(sc, c);
        L* sum = sc.sum.data();
        const L* part = sc.phi.data();
        for (int64_t f = 0; f < cells; ++f) sum[f] += part[f];
      }
      write_rows(b, sc.sum.data());
    });
    return;
  }
  // Fewer row blocks than threads: the (block, chunk) pairs run in parallel and each
  // block's chunk sums are added in chunk order afterwards, the same additions as above.
  LaneBuffer<L> parts(static_cast<size_t>(n_blocks * n_chunks * cells), zero);
  ParallelFor(n_blocks * n_chunks, threads, [&](int64_t task, int tid) {
    PathScratch<L>& sc = scratch.Get(tid);
    LoadLanes(forest, x, (task / n_chunks) * kN, sc.xt.data());
    explain_chunk(sc, task % n_chunks);
    L* dst = parts.data() + task * cells;
    for (int64_t f = 0; f < cells; ++f) dst[f] = sc.phi[f];
  });
  LaneBuffer<L> sums(cells);
  L* sum = sums.data();
  for (int64_t b = 0; b < n_blocks; ++b) {
    std::fill(sums.begin(), sums.end(), zero);
    for (int64_t c = 0; c < n_chunks; ++c) {
      const L* part = parts.data() + (b * n_chunks + c) * cells;
      for (int64_t f = 0; f < cells; ++f) sum[f] += part[f];
    }
    write_rows(b, sum);
  }
}

}  // namespace detail

detail::LaneBuffer<detail::Lanes> ExplainTreeByDepth(const Forest& forest, const PathShapPlan& plan,
                                              int64_t t, const detail::LaneBuffer<detail::Lanes>& go_left) {
  using detail::Lanes;
  detail::PathScratch<Lanes> sc = detail::NewPathScratch<Lanes>(forest, plan);
  const detail::DepthDecisions<Lanes> decide{go_left.data()};
  detail::ExplainTree<0, 0>(forest, plan, t, sc, decide);
  return std::move(sc.phi);
}

int64_t PathShapScratchBytes(const Forest& forest, const PathShapPlan& plan, int n_threads) {
  const int64_t levels = plan.max_levels;
  const int64_t hb = static_cast<int64_t>(forest.leaf_width) * plan.max_q;
  const int64_t m = forest.n_features;
  // xt, go_left, on, g, h, s, phi and sum of PathScratch.
  const int64_t lanes =
      m + 2 * levels + levels * plan.max_q + 2 * levels * hb + 2 * m * forest.n_outputs;
  return static_cast<int64_t>(ResolveThreads(n_threads)) *
         (lanes * static_cast<int64_t>(sizeof(detail::BlockLanes)) + levels * 9);
}

void PathShapValues(const Forest& forest, const PathShapPlan& plan, const MatrixView& x,
                    double* phi, int n_threads, double* margins) {
  const int threads = ResolveThreads(n_threads);
  if (x.n_rows <= detail::kSingleRowMaxRows && detail::SingleRowKernelApplies(forest, plan)) {
    detail::SingleRowShapValues(forest, plan, x, phi, threads, detail::kTreeChunk, margins);
    return;
  }
  if (x.n_rows < detail::kPathLanes) {
    detail::PathShapValuesIn<detail::RowLane>(forest, plan, x, phi, threads);
  } else {
    detail::PathShapValuesIn<detail::BlockLanes>(forest, plan, x, phi, threads);
  }
  if (margins != nullptr) Predict(forest, x, margins, threads);
}

}  // namespace treelens
