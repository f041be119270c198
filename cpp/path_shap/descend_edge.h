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
// edge. Multiplying by exact 0/1 lane values selects without branches.
TREELENS_INLINE void DescendEdge(const PathStep& st, const double* c0,
                                 int q, Lanes oe, const Lanes* gp,
                                 Lanes* gd, Lanes* on) {
  const Lanes one = Splat(1.0);
  const Lanes off = one - oe;
  const double* c1 = c0 + q;
  const double* c2 = c1 + q;
  if (st.prev_level >= 0) {
    const Lanes on_prev = on[st.prev_level];
    on[st.depth] = oe * on_prev;
    for (int i = 0; i < q; ++i) {
      const Lanes f = on_prev * (c1[i] * off + c2[i] * oe) + (one - on_prev) * c0[i];
      gd[i] = gp[i] * f;
    }
  } else {
    on[st.depth] = oe;
    for (int i = 0; i < q; ++i) gd[i] = gp[i] * (c1[i] * off + c2[i] * oe);
  }
}

}  // namespace detail
}  // namespace treelens
