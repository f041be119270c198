// The descent step shared by the quadrature path kernels (path_shap.cpp,
// path_interactions.cpp): carrying the path product G(t) from a node to its child.
#pragma once

#include "common/row_lanes.h"
#include "path_shap/path_shap.h"

namespace treelens {
namespace detail {

// gd[i] = gp[i] * (factor of the edge into st at quadrature node i), for q nodes, and
// on[st.depth] = whether each lane's row follows the path on the edge's feature (merged
// with the earlier edge on the same feature, if any). oe: 1.0 where the row takes this
// edge. coef: the step's block of PathShapPlan::coef; quad: QuadratureOf(plan, q). A new
// feature's factor is z (1 - t) off the path and t + z (1 - t) on it; a repeated one's
// replaces the earlier factor (C1, C2 while the row still follows the feature, C0 once it
// has left it). The factor is chosen per lane by selects, which equal the products with
// the exact 0/1 lane values the formula writes.
template <typename L>
TREELENS_INLINE void DescendEdge(const PathStep& st, const double* coef, const double* quad,
                                 int q, L oe, const L* gp, L* gd, L* on) {
  typedef decltype(L{} != L{}) M;
  const M take = oe != simd::Splat<L>(0.0);
  if (st.prev_level >= 0) {
    const double* c0 = coef + q;
    const double* c1 = c0 + q;
    const double* c2 = c1 + q;
    const L on_prev = on[st.prev_level];
    on[st.depth] = oe * on_prev;
    const M was_on = on_prev != simd::Splat<L>(0.0);
    for (int i = 0; i < q; ++i) {
      const L f = simd::Select(take, simd::Splat<L>(c2[i]), simd::Splat<L>(c1[i]));
      gd[i] = gp[i] * simd::Select(was_on, f, simd::Splat<L>(c0[i]));
    }
  } else {
    on[st.depth] = oe;
    const double* t = quad;
    const double* s = quad + q;
    for (int i = 0; i < q; ++i) {
      const double off = st.z * s[i];
      gd[i] = gp[i] * simd::Select(take, simd::Splat<L>(t[i] + off), simd::Splat<L>(off));
    }
  }
}

}  // namespace detail
}  // namespace treelens
