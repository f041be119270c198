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
// shallower edge. Work is O(nodes * q) per row and tree, in lanes of kLanes rows with
// identical control flow, so the loops vectorise and every row is computed the same way
// whatever the thread count.
#include "path_shap.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "parallel.h"
#include "quadrature.h"

namespace treelens {
namespace detail {

constexpr int kLanes = 8;

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
      for (int k = 0; k < width; ++k) {
        plan.expected_value[first + k] += reach[j] * forest.value[order[j].node * width + k];
      }
    }
    PathTreePlan& tp = plan.trees[t];
    tp.q = std::max(1, (max_unique + 1) / 2);
    tp.levels = forest.tree_depth[t] + 1;
    tp.first_step = static_cast<int64_t>(plan.steps.size());
    tp.n_steps = static_cast<int64_t>(n) - 1;
    plan.max_q = std::max(plan.max_q, tp.q);
    plan.max_levels = std::max(plan.max_levels, tp.levels);
    GaussLegendre01(tp.q, t_nodes, w_nodes);
    for (size_t j = 1; j < n; ++j) {
      const PreorderNode& nd = order[j];
      PathStep st{};
      st.node = nd.node;
      st.depth = nd.depth;
      st.feature = forest.feature[order[nd.parent].node];
      st.prev_level = prev[j] >= 0 ? order[prev[j]].depth : -1;
      st.is_left = nd.is_left;
      st.is_leaf = forest.IsLeaf(nd.node);
      st.s_level = -1;
      st.n_finish = 0;
      if (!st.is_leaf) {
        const int32_t e = detail::NearestEdgeOnFeature(forest, order, static_cast<int32_t>(j),
                                                       forest.feature[nd.node]);
        st.s_level = e >= 0 ? order[e].depth : -1;
      } else {
        // The leaf finishes, then every ancestor whose last (right) subtree this is.
        int32_t c = static_cast<int32_t>(j);
        st.n_finish = 1;
        while (order[c].parent >= 0 && !order[c].is_left) {
          c = order[c].parent;
          ++st.n_finish;
        }
      }
      st.coef = static_cast<int64_t>(plan.coef.size());
      const double zm = z_merged[j];
      const double zp = prev[j] >= 0 ? z_merged[prev[j]] : 1.0;
      const double ze = zp > 0 ? zm / zp : 0.0;
      plan.coef.resize(plan.coef.size() + 5 * static_cast<size_t>(tp.q));
      double* c0 = &plan.coef[st.coef];
      double* c1 = c0 + tp.q;
      double* c2 = c1 + tp.q;
      double* wa = c2 + tp.q;
      double* wb = wa + tp.q;
      for (int i = 0; i < tp.q; ++i) {
        const double ti = t_nodes[i], si = 1.0 - t_nodes[i];
        const double off = zm * si, on = ti + zm * si;
        if (prev[j] >= 0) {
          // Replace the earlier factor of this feature by the merged one.
          const double prev_on = ti + zp * si;
          c0[i] = ze;
          c1[i] = off / prev_on;
          c2[i] = on / prev_on;
        } else {
          c0[i] = 0.0;
          c1[i] = off;
          c2[i] = on;
        }
        wa[i] = zm > 0 ? -w_nodes[i] / si : 0.0;  // (0 - z) w / (z (1 - t))
        wb[i] = (1.0 - zm) * w_nodes[i] / on;     // (1 - z) w / (t + z (1 - t))
      }
      plan.steps.push_back(st);
    }
  }
  return plan;
}

namespace detail {

struct PathScratch {
  std::vector<double> xt, go_left, on, ones, g, h, s, phi, acc;
  std::vector<int64_t> pos;
  std::vector<uint8_t> has_s;
};

inline void Decide(const Forest& forest, int64_t node, const double* xt, double* out) {
  const double* xv = xt + static_cast<int64_t>(forest.feature[node]) * kLanes;
  const uint8_t flags = forest.flags[node];
  if (flags & kCategorical) {
    for (int r = 0; r < kLanes; ++r) out[r] = forest.CategoryGoesLeft(node, xv[r]) ? 1.0 : 0.0;
    return;
  }
  const double thr = forest.threshold[node];
  const double dl = (flags & kDefaultLeft) ? 1.0 : 0.0;
  if (flags & kZeroMissing) {
    for (int r = 0; r < kLanes; ++r) {
      const double x = xv[r];
      out[r] = (x != x || x == 0.0) ? dl : (x < thr ? 1.0 : 0.0);
    }
  } else {
    for (int r = 0; r < kLanes; ++r) {
      const double x = xv[r];
      out[r] = x != x ? dl : (x < thr ? 1.0 : 0.0);
    }
  }
}

// Adds one tree's contributions for kLanes rows (xt: [n_features, kLanes]) into
// phi: [n_features, n_outputs, kLanes].
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx2", "default")))
#endif
void ExplainTreeLanes(const Forest& forest, const PathShapPlan& plan, int64_t t, PathScratch& sc) {
  const PathTreePlan& tp = plan.trees[t];
  const int64_t root = forest.tree_offsets[t];
  if (forest.IsLeaf(root)) return;
  const int q = tp.q;
  const int width = forest.leaf_width;
  const int k_out = forest.n_outputs;
  const int first = width == 1 ? forest.tree_output[t] : 0;
  const int64_t qb = static_cast<int64_t>(q) * kLanes;
  const int64_t hb = width * qb;
  double* g = sc.g.data();
  double* h = sc.h.data();
  double* s = sc.s.data();
  double* on = sc.on.data();
  double* go_left = sc.go_left.data();
  double* acc = sc.acc.data();
  const double* xt = sc.xt.data();
  const double* ones = sc.ones.data();
  const PathStep* steps = plan.steps.data() + tp.first_step;

  std::fill(g, g + qb, 1.0);
  std::fill(h, h + hb, 0.0);
  Decide(forest, root, xt, go_left);

  for (int64_t j = 0; j < tp.n_steps; ++j) {
    const PathStep& st = steps[j];
    const int64_t d = st.depth;
    sc.pos[d] = j;
    const double* parent_left = go_left + (d - 1) * kLanes;
    const double* on_prev = st.prev_level >= 0 ? on + st.prev_level * kLanes : ones;
    double* on_d = on + d * kLanes;
    double oe[kLanes];
    for (int r = 0; r < kLanes; ++r) {
      oe[r] = st.is_left ? parent_left[r] : 1.0 - parent_left[r];
      on_d[r] = oe[r] * on_prev[r];
    }
    const double* c0 = plan.coef.data() + st.coef;
    const double* c1 = c0 + q;
    const double* c2 = c1 + q;
    const double* gp = g + (d - 1) * qb;
    double* gd = g + d * qb;
    for (int i = 0; i < q; ++i) {
      for (int r = 0; r < kLanes; ++r) {
        const double f = on_prev[r] != 0.0 ? (oe[r] != 0.0 ? c2[i] : c1[i]) : c0[i];
        gd[i * kLanes + r] = gp[i * kLanes + r] * f;
      }
    }
    double* hd = h + d * hb;
    if (!st.is_leaf) {
      Decide(forest, st.node, xt, go_left + d * kLanes);
      std::fill(hd, hd + hb, 0.0);
      continue;
    }
    const double* v = &forest.value[static_cast<int64_t>(st.node) * width];
    for (int k = 0; k < width; ++k) {
      for (int64_t i = 0; i < qb; ++i) hd[k * qb + i] = v[k] * gd[i];
    }
    // Complete the leaf and each ancestor whose subtree it closes.
    for (int32_t f = 0; f < st.n_finish; ++f) {
      const int64_t level = d - f;
      if (level == 0) break;
      const PathStep& done = steps[sc.pos[level]];
      double* hl = h + level * hb;
      double* sl = s + level * hb;
      if (!done.is_leaf && done.s_level >= 0) {
        double* target = s + done.s_level * hb;
        for (int64_t i = 0; i < hb; ++i) target[i] += hl[i];
        sc.has_s[done.s_level] = 1;
      }
      // Only the leaves whose deepest split on this feature is this edge count here:
      // the sums below deeper splits on the same feature are set aside in s.
      const double* src = hl;
      const bool subtract = sc.has_s[level];
      if (subtract) {
        for (int64_t i = 0; i < hb; ++i) sl[i] = hl[i] - sl[i];
        src = sl;
      }
      const double* wa = plan.coef.data() + done.coef + 3 * q;
      const double* wb = wa + q;
      const double* on_l = on + level * kLanes;
      double* phi_f = sc.phi.data() + (static_cast<int64_t>(done.feature) * k_out + first) * kLanes;
      for (int k = 0; k < width; ++k) {
        for (int r = 0; r < kLanes; ++r) acc[r] = 0.0;
        for (int i = 0; i < q; ++i) {
          const double* hr = src + k * qb + i * kLanes;
          for (int r = 0; r < kLanes; ++r) acc[r] += (on_l[r] != 0.0 ? wb[i] : wa[i]) * hr[r];
        }
        for (int r = 0; r < kLanes; ++r) phi_f[k * kLanes + r] += acc[r];
      }
      if (subtract) {
        std::fill(sl, sl + hb, 0.0);
        sc.has_s[level] = 0;
      }
      double* hp = h + (level - 1) * hb;
      for (int64_t i = 0; i < hb; ++i) hp[i] += hl[i];
    }
  }
}

}  // namespace detail

void PathShapValues(const Forest& forest, const PathShapPlan& plan, const MatrixView& x,
                    double* phi, int n_threads) {
  using detail::kLanes;
  const int64_t m = forest.n_features;
  const int k_out = forest.n_outputs;
  const int width = forest.leaf_width;
  const int threads = ResolveThreads(n_threads);
  const int64_t levels = plan.max_levels;
  const int64_t hb = static_cast<int64_t>(width) * plan.max_q * kLanes;
  std::vector<detail::PathScratch> scratch(threads);
  for (auto& sc : scratch) {
    sc.xt.assign(m * kLanes, 0.0);
    sc.go_left.assign(levels * kLanes, 0.0);
    sc.on.assign(levels * kLanes, 1.0);
    sc.ones.assign(kLanes, 1.0);
    sc.g.assign(levels * plan.max_q * kLanes, 0.0);
    sc.h.assign(levels * hb, 0.0);
    sc.s.assign(levels * hb, 0.0);
    sc.phi.assign(m * k_out * kLanes, 0.0);
    sc.acc.assign(kLanes, 0.0);
    sc.pos.assign(levels, 0);
    sc.has_s.assign(levels, 0);
  }
  const int64_t n_blocks = (x.n_rows + kLanes - 1) / kLanes;
  ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
    detail::PathScratch& sc = scratch[tid];
    const int64_t r0 = b * kLanes;
    const int64_t nr = std::min<int64_t>(kLanes, x.n_rows - r0);
    for (int64_t f = 0; f < m; ++f) {
      for (int64_t r = 0; r < kLanes; ++r) {
        sc.xt[f * kLanes + r] = r < nr ? forest.TransformInput(x.At(r0 + r, f)) : 0.0;
      }
    }
    std::fill(sc.phi.begin(), sc.phi.end(), 0.0);
    for (int64_t t = 0; t < forest.NumTrees(); ++t) detail::ExplainTreeLanes(forest, plan, t, sc);
    for (int64_t r = 0; r < nr; ++r) {
      double* out = phi + (r0 + r) * m * k_out;
      for (int64_t f = 0; f < m; ++f) {
        for (int k = 0; k < k_out; ++k) out[f * k_out + k] = sc.phi[(f * k_out + k) * kLanes + r];
      }
    }
  });
}

}  // namespace treelens
