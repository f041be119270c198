// The path kernel of path_shap.cpp for one row at a time, for calls of one row (online
// serving). The row-lane kernels put rows in the vector lanes, so a lone row leaves most
// lanes idle; here the lanes hold the q quadrature nodes of the path products G(t) and leaf
// sums H(t) (at most kSingleRowMaxQ = 4, one AVX2 vector; lanes past q stay 0), and the
// row's decisions are scalars turned into select masks, with no branch on them.
//
// Every value is the row-lane kernel's, bit for bit: each lane here performs the operations
// that kernel performs on the row's lane, and the sums over quadrature nodes are taken lane
// by lane in the same order (see SumNodes). The pass also notes the leaf the row reaches in
// each tree, so a call can return the model's margin without walking the trees again.
#include "path_shap/single_row_shap.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "common/row_lanes.h"
#include "common/simd.h"
#include "model/predict.h"

namespace treelens {
namespace detail {
namespace {

typedef simd::Vec<double, 4> QuadLanes;    // the quadrature nodes of one row
typedef simd::Vec<int64_t, 4> QuadMask;

struct SingleRowScratch {
  std::vector<double> xt;   // [n_features] transformed values of the row
  std::vector<double> phi;  // [n_features * n_outputs] the current chunk's contributions
  LaneBuffer<QuadLanes> g, h, s;  // [levels] each
  std::vector<int64_t> pos;
  // Per level, as lane masks (0 or all ones): whether the row goes left at the node, and
  // whether it follows the path on the edge's feature.
  std::vector<int64_t> go_left, on;
  std::vector<int64_t> hot;  // all ones where the row's own path reaches the level's node
  std::vector<uint8_t> has_s;
};

// All ones where the value goes left at split `node` (DecideSplit for one value), else 0.
TREELENS_INLINE int64_t GoesLeftWay(const Forest& forest, int64_t node, double x,
                                    double threshold, uint8_t flags) {
  if (flags & kCategorical) return forest.CategoryGoesLeft(node, x) ? -1 : 0;
  return -Forest::NumericGoesLeftBit(x, threshold, flags);
}

// The bits of v where way is all ones, else 0.
TREELENS_INLINE uint64_t BitsWhere(int64_t way, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits & static_cast<uint64_t>(way);
}

// The sum of the first Q lanes in lane order, the row-lane kernel's loop over i < q. That loop
// starts from 0, which differs from starting at lane 0 only in the sign of a zero sum. Each
// sum here is added, itself or times a factor, to a phi that started at +0 and so is never -0
// (an IEEE sum is -0 only when both terms are): the phi comes out the same.
template <int Q, typename V>
TREELENS_INLINE double SumNodes(const V& v) {
  double acc = v[0];
  for (int i = 1; i < Q; ++i) acc += v[i];
  return acc;
}

// Q constants (and the slack after them) from p.
TREELENS_INLINE QuadLanes LoadNodes(const double* p) { return simd::Load<QuadLanes>(p); }

TREELENS_INLINE QuadMask MaskOf(int64_t way) { return simd::Splat<QuadMask>(way); }

// G at the edge into st from the parent's gp, and on[st.depth]: DescendEdge for one row.
template <int Q>
TREELENS_INLINE QuadLanes DescendOneRow(const PathStep& st, const double* coef,
                                        const QuadLanes& qt, const QuadLanes& qs, int64_t oe,
                                        const QuadLanes& gp, int64_t* on) {
  typedef QuadLanes V;
  typedef QuadMask M;
  const M take = MaskOf(oe);
  if (st.prev_level >= 0) {
    const int64_t on_prev = on[st.prev_level];
    on[st.depth] = oe & on_prev;
    const V c0 = LoadNodes(coef + Q);
    const V c1 = LoadNodes(coef + 2 * Q);
    const V c2 = LoadNodes(coef + 3 * Q);
    return gp * simd::Select(MaskOf(on_prev), simd::Select(take, c2, c1), c0);
  }
  on[st.depth] = oe;
  const V off = st.z * qs;
  return gp * simd::Select(take, qt + off, off);
}

// One tree's contributions for the row in sc.xt, added into sc.phi (leaf width 1, q == Q);
// returns the value of the leaf the row reaches. The steps mirror ExplainTree of
// path_shap.cpp; see there and descend_edge.h.
template <int Q>
TREELENS_INLINE double ExplainTreeOneRow(const Forest& forest, const PathShapPlan& plan,
                                       int64_t t, SingleRowScratch& sc) {
  typedef QuadLanes V;
  typedef QuadMask M;
  const PathTreePlan& tp = plan.trees[t];
  if (tp.n_steps == 0) return forest.value[tp.root];
  const int k_out = forest.n_outputs;
  const int first = tp.output;
  V* g = reinterpret_cast<V*>(sc.g.data());
  V* h = reinterpret_cast<V*>(sc.h.data());
  V* s = reinterpret_cast<V*>(sc.s.data());
  int64_t* on = sc.on.data();
  int64_t* go_left = sc.go_left.data();
  int64_t* hot = sc.hot.data();
  uint64_t reached = 0;  // the bits of the reached leaf's value
  const double* xt = sc.xt.data();
  double* phi = sc.phi.data() + first;
  const PathStep* steps = plan.steps.data() + tp.first_step;
  const double* coef_base = plan.coef.data();
  // T, S = 1 - T, W and the off weights WA, with lanes past Q at 0.
  const double* quad = QuadratureOf(plan, Q);
  V qt{}, qs{}, wq{}, wa{}, one{};
  for (int i = 0; i < Q; ++i) {
    qt[i] = quad[i];
    qs[i] = quad[Q + i];
    wq[i] = quad[2 * Q + i];
    wa[i] = quad[3 * Q + i];
    one[i] = 1.0;
  }
  const V zero{};

  g[0] = one;
  hot[0] = -1;
  go_left[0] = GoesLeftWay(forest, tp.root, xt[tp.root_feature], tp.root_threshold,
                           tp.root_flags);

  for (int64_t j = 0; j < tp.n_steps; ++j) {
    const PathStep& st = steps[j];
    const int64_t d = st.depth;
    sc.pos[d] = j;
    const int64_t oe = go_left[d - 1] ^ (static_cast<int64_t>(st.is_left) - 1);
    const int64_t reach = hot[d - 1] & oe;  // the row's own path takes this edge
    const double* coef = coef_base + st.coef;
    const V gp = g[d - 1];
    int32_t first_finish = 0;
    int64_t top = d;
    if (st.is_pair) {
      const V gd = DescendOneRow<Q>(st, coef, qt, qs, oe, gp, on);
      g[d] = gd;
      const double integral = SumNodes<Q>(wq * gd);
      const int64_t left = GoesLeftWay(forest, st.node, xt[st.split], st.param, st.flags);
      reached |= BitsWhere(reach & left, steps[j + 1].param) |
                 BitsWhere(reach & ~left, steps[j + 2].param);
      const double* al = coef_base + st.pair;
      const double* bl = al + 2 * Q;
      // Chosen by masks: a branch on the row's way would be mispredicted half the time.
      const M way = MaskOf(left);
      const V b = simd::Select(way, simd::Splat<V>(bl[0]), simd::Splat<V>(bl[1]));
      phi[static_cast<int64_t>(st.split) * k_out] += integral * b[0];
      h[d] = gd * simd::Select(way, LoadNodes(al), LoadNodes(al + Q));
      top = d + 1;
      first_finish = 1;
      j += 2;
    } else if (st.is_leaf && st.prev_level < 0) {
      const double integral = SumNodes<Q>(wq * gp);
      const double v = st.param;
      const double share = (static_cast<double>(-oe) - st.z) * integral;
      phi[static_cast<int64_t>(st.feature) * k_out] += v * share;
      const V off = st.z * qs;
      const V hv = v * (gp * simd::Select(MaskOf(oe), qt + off, off));
      h[d - 1] = st.is_left ? hv : h[d - 1] + hv;
      reached |= BitsWhere(reach, v);
      first_finish = 1;
    }
    if (first_finish == 0) {
      const V gd = DescendOneRow<Q>(st, coef, qt, qs, oe, gp, on);
      g[d] = gd;
      if (!st.is_leaf) {
        go_left[d] = GoesLeftWay(forest, st.node, xt[st.split], st.param, st.flags);
        hot[d] = reach;
        continue;
      }
      h[d] = st.param * gd;
      reached |= BitsWhere(reach, st.param);
    }
    for (int32_t f = first_finish; f < st.n_finish; ++f) {
      const int64_t level = top - f;
      if (level == 0) break;
      const PathStep& done = steps[sc.pos[level]];
      const V hl = h[level];
      if (!done.is_leaf && done.s_level >= 0) {
        s[done.s_level] += hl;
        sc.has_s[done.s_level] = 1;
      }
      V src = hl;
      const bool subtract = sc.has_s[level];
      if (subtract) {
        src = hl - s[level];
        s[level] = zero;
        sc.has_s[level] = 0;
      }
      const V wb = LoadNodes(coef_base + done.coef);
      const V off_w = done.z > 0 ? wa : zero;
      phi[static_cast<int64_t>(done.feature) * k_out] +=
          SumNodes<Q>(simd::Select(MaskOf(on[level]), wb, off_w) * src);
      h[level - 1] = done.is_left ? hl : h[level - 1] + hl;
    }
  }
  double value;
  std::memcpy(&value, &reached, sizeof(value));
  return value;
}

// Trees t0 .. t1 for the row in sc.xt; leaves[t - t0] = the value of the leaf it reaches.
TREELENS_CLONES
void ExplainTreesOneRow(const Forest& forest, const PathShapPlan& plan, int64_t t0, int64_t t1,
                        SingleRowScratch& sc, double* leaves) {
  for (int64_t t = t0; t < t1; ++t) {
    CheckInterrupt();
    switch (plan.trees[t].q) {
      case 1: leaves[t - t0] = ExplainTreeOneRow<1>(forest, plan, t, sc); break;
      case 2: leaves[t - t0] = ExplainTreeOneRow<2>(forest, plan, t, sc); break;
      case 3: leaves[t - t0] = ExplainTreeOneRow<3>(forest, plan, t, sc); break;
      default: leaves[t - t0] = ExplainTreeOneRow<4>(forest, plan, t, sc); break;
    }
  }
}

}  // namespace

bool SingleRowKernelApplies(const Forest& forest, const PathShapPlan& plan) {
  return forest.leaf_width == 1 && plan.max_q <= kSingleRowMaxQ;
}

void SingleRowShapValues(const Forest& forest, const PathShapPlan& plan, const MatrixView& x,
                         double* phi, int threads, int64_t tree_chunk, double* margins) {
  const int64_t cells = forest.n_features * forest.n_outputs;
  const int64_t levels = plan.max_levels;
  auto scratch = MakePerThread<SingleRowScratch>(threads, [&] {
    SingleRowScratch sc;
    sc.xt.assign(forest.n_features, 0.0);
    sc.phi.assign(cells, 0.0);
    sc.g.resize(levels);
    sc.h.resize(levels);
    sc.s.assign(levels, QuadLanes{});
    sc.pos.assign(levels, 0);
    sc.go_left.assign(levels, 0);
    sc.on.assign(levels, 0);
    sc.hot.assign(levels, 0);
    sc.has_s.assign(levels, 0);
    return sc;
  });
  const int64_t n_trees = forest.NumTrees();
  const int64_t n_chunks = (n_trees + tree_chunk - 1) / tree_chunk;
  // Each (row, chunk) on its own, then each row's chunk sums in chunk order.
  std::vector<double> parts(static_cast<size_t>(x.n_rows * n_chunks * cells));
  std::vector<double> leaves(static_cast<size_t>(x.n_rows * n_trees));
  ParallelFor(x.n_rows * n_chunks, threads, [&](int64_t task, int tid) {
    SingleRowScratch& sc = scratch.Get(tid);
    const int64_t r = task / n_chunks, c = task % n_chunks;
    for (int64_t f = 0; f < x.n_cols; ++f) sc.xt[f] = forest.TransformInput(x.At(r, f));
    std::fill(sc.phi.begin(), sc.phi.end(), 0.0);
    const int64_t end = std::min(n_trees, (c + 1) * tree_chunk);
    ExplainTreesOneRow(forest, plan, c * tree_chunk, end, sc,
                       leaves.data() + r * n_trees + c * tree_chunk);
    std::copy(sc.phi.begin(), sc.phi.end(), parts.begin() + task * cells);
  });
  for (int64_t r = 0; r < x.n_rows; ++r) {
    double* out = phi + r * cells;
    std::fill(out, out + cells, 0.0);
    for (int64_t c = 0; c < n_chunks; ++c) {
      const double* part = parts.data() + (r * n_chunks + c) * cells;
      for (int64_t f = 0; f < cells; ++f) out[f] += part[f];
    }
  }
  if (margins == nullptr) return;
  // Predict's sums of the same leaves, in tree order.
  const int k_out = forest.n_outputs;
  const bool float32_sum = forest.float32_margin;
  std::vector<double> sums(k_out);
  std::vector<float> sums32(k_out);
  for (int64_t r = 0; r < x.n_rows; ++r) {
    StartMargin(forest, sums.data(), sums32.data());
    for (int64_t t = 0; t < n_trees; ++t) {
      AddToMargin(float32_sum, sums.data(), sums32.data(), forest.tree_output[t],
                  leaves[r * n_trees + t]);
    }
    for (int k = 0; k < k_out; ++k) {
      margins[r * k_out + k] = MarginOf(float32_sum, sums.data(), sums32.data(), k);
    }
  }
}

}  // namespace detail
}  // namespace treelens
