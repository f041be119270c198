// Single-reference interventional TreeSHAP (Lundberg et al. 2020, "From local explanations to
// global understanding with explainable AI for trees", Algorithm 3): for one pair (x, z) a
// depth-first walk follows x and z together, splits into an x-branch and a z-branch at the
// first split where they disagree on a feature, and at every reached leaf adds the closed-form
// Shapley values of the single-leaf game (see ShapleyCoef). Used for nonlinear outputs, which
// shap defines per background row, and for trees whose paths are too wide for mask tables.
#include "background_shap/background_pairs.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "background_shap/background_shap.h"
#include "common/parallel.h"
#include "model/predict.h"

namespace treelens {
namespace detail {

namespace {
constexpr int kMaxCoefTable = 256;
}  // namespace

ShapleyCoef::ShapleyCoef(int max_players) : max_table_(std::min(max_players, kMaxCoefTable)) {
  table_.assign(static_cast<size_t>(max_table_ + 1) * (max_table_ + 2) / 2, 0.0);
  for (int n = 0; n <= max_table_; ++n) {
    // F(a, n - a) = 1 / ((n + 1) * C(n, a)), built from the binomial row of n.
    double binom = 1.0;
    for (int a = 0; a <= n; ++a) {
      table_[static_cast<size_t>(n) * (n + 1) / 2 + a] = 1.0 / ((n + 1) * binom);
      binom = binom * (n - a) / (a + 1);
    }
  }
}

void CheckBackground(const Forest& forest, const Background& bg) {
  if (bg.rows.n_rows == 0) throw std::invalid_argument("background data has no rows");
  if (bg.rows.n_cols != forest.n_features) {
    throw std::invalid_argument("background data has " + std::to_string(bg.rows.n_cols) +
                                " features, the model expects " +
                                std::to_string(forest.n_features));
  }
  double total = 0.0;
  for (int64_t j = 0; j < bg.rows.n_rows; ++j) {
    const double w = bg.weights[j];
    if (!std::isfinite(w) || w < 0.0) {
      throw std::invalid_argument("background weight " + std::to_string(j) + " is " +
                                  std::to_string(w) + "; weights must be finite and >= 0");
    }
    total += w;
  }
  if (!(total > 0.0)) throw std::invalid_argument("background weights sum to zero");
}

std::vector<double> LoadRows(const Forest& forest, const MatrixView& m, int n_threads) {
  std::vector<double> rows(static_cast<size_t>(m.n_rows * m.n_cols));
  constexpr int64_t kBlock = 1024;
  ParallelFor((m.n_rows + kBlock - 1) / kBlock, n_threads, [&](int64_t b, int) {
    const int64_t end = std::min(m.n_rows, (b + 1) * kBlock);
    for (int64_t r = b * kBlock; r < end; ++r) m.LoadRow(forest, r, &rows[r * m.n_cols]);
  });
  return rows;
}

void AddLeafInteractions(const ShapleyCoef& coef, const int32_t* in_a, int p, const int32_t* in_b,
                         int q, const double* v, int width, int first, int n_features,
                         int n_outputs, double* inter) {
  const double aa = p >= 2 ? 0.5 * coef.F(p - 2, q) : 0.0;
  const double bb = q >= 2 ? 0.5 * coef.F(p, q - 2) : 0.0;
  const double ab = p >= 1 && q >= 1 ? -0.5 * coef.F(p - 1, q - 1) : 0.0;
  const double diag_a = (p >= 1 ? coef.F(p - 1, q) : 0.0) - (p - 1) * aa - q * ab;
  const double diag_b = (q >= 1 ? -coef.F(p, q - 1) : 0.0) - (q - 1) * bb - p * ab;
  auto add = [&](int32_t i, int32_t j, double c) {
    double* o = inter + (static_cast<int64_t>(i) * n_features + j) * n_outputs + first;
    for (int k = 0; k < width; ++k) o[k] += c * v[k];
  };
  for (int s = 0; s < p; ++s) {
    for (int u = 0; u < p; ++u) add(in_a[s], in_a[u], s == u ? diag_a : aa);
    for (int u = 0; u < q; ++u) {
      add(in_a[s], in_b[u], ab);
      add(in_b[u], in_a[s], ab);
    }
  }
  for (int s = 0; s < q; ++s) {
    for (int u = 0; u < q; ++u) add(in_b[s], in_b[u], s == u ? diag_b : bb);
  }
}

void PairTreeShap(const Forest& forest, int64_t t, const double* x, const double* z,
                  const double* scale, const ShapleyCoef& coef, PairScratch& scratch,
                  double* phi, double* inter) {
  const int width = forest.leaf_width;
  const int first = width == 1 ? forest.tree_output[t] : 0;
  const int n_out = forest.n_outputs;
  const int n_features = forest.n_features;
  auto& stack = scratch.stack;
  auto& side = scratch.side;
  auto& in_a = scratch.in_a;
  auto& in_b = scratch.in_b;
  double v[64];
  std::vector<double> v_large;
  double* vs = v;
  if (width > 64) {
    v_large.resize(width);
    vs = v_large.data();
  }
  stack.clear();
  stack.push_back({forest.tree_offsets[t], -1, 0});
  while (!stack.empty()) {
    const PairScratch::Entry e = stack.back();
    stack.pop_back();
    if (e.kind == 3) {
      (side[e.feature] == 1 ? in_a : in_b).pop_back();
      side[e.feature] = 0;
      continue;
    }
    if (e.kind != 0) {
      side[e.feature] = e.kind;
      (e.kind == 1 ? in_a : in_b).push_back(e.feature);
    }
    const int64_t node = e.node;
    if (forest.IsLeaf(node)) {
      const int p = static_cast<int>(in_a.size());
      const int q = static_cast<int>(in_b.size());
      if (p + q == 0) continue;
      const double* value = &forest.value[node * width];
      for (int k = 0; k < width; ++k) vs[k] = value[k] * scale[first + k];
      const double ca = p > 0 ? coef.F(p - 1, q) : 0.0;
      const double cb = q > 0 ? -coef.F(p, q - 1) : 0.0;
      for (int s = 0; s < p; ++s) {
        double* o = phi + static_cast<int64_t>(in_a[s]) * n_out + first;
        for (int k = 0; k < width; ++k) o[k] += ca * vs[k];
      }
      for (int s = 0; s < q; ++s) {
        double* o = phi + static_cast<int64_t>(in_b[s]) * n_out + first;
        for (int k = 0; k < width; ++k) o[k] += cb * vs[k];
      }
      if (inter != nullptr) {
        AddLeafInteractions(coef, in_a.data(), p, in_b.data(), q, vs, width, first, n_features,
                            n_out, inter);
      }
      continue;
    }
    const int32_t f = forest.feature[node];
    const bool x_left = forest.GoesLeft(node, x[f]);
    const bool z_left = forest.GoesLeft(node, z[f]);
    const int64_t x_child = x_left ? forest.left[node] : forest.right[node];
    const int64_t z_child = z_left ? forest.left[node] : forest.right[node];
    if (side[f] == 1 || x_left == z_left) {
      stack.push_back({x_child, -1, 0});
    } else if (side[f] == 2) {
      stack.push_back({z_child, -1, 0});
    } else {
      stack.push_back({-1, f, 3});
      stack.push_back({z_child, f, 2});
      stack.push_back({-1, f, 3});
      stack.push_back({x_child, f, 1});
    }
  }
}

}  // namespace detail

void BackgroundRescaledShapValues(const Forest& forest, const MatrixView& x, const Background& bg,
                                  const double* fx, const double* tx, const double* shift,
                                  const double* fz, const double* tz, double* phi, int n_threads) {
  detail::CheckBackground(forest, bg);
  const int threads = ResolveThreads(n_threads);
  const int k_out = forest.n_outputs;
  const int64_t m = forest.n_features;
  const int64_t n_bg = bg.rows.n_rows;
  const std::vector<double> xs = detail::LoadRows(forest, x, threads);
  const std::vector<double> zs = detail::LoadRows(forest, bg.rows, threads);
  double total = 0.0;
  for (int64_t j = 0; j < n_bg; ++j) total += bg.weights[j];
  const detail::ShapleyCoef coef(static_cast<int>(std::min<int64_t>(m, forest.MaxDepth())));
  struct Buffers {
    detail::PairScratch pair;
    std::vector<double> scale;
  };
  auto scratch = MakePerThread<Buffers>(threads, [&] {
    return Buffers{detail::PairScratch(static_cast<int>(m)), std::vector<double>(k_out)};
  });
  ParallelFor(x.n_rows, threads, [&](int64_t i, int tid) {
    double* out = phi + i * m * k_out;
    std::fill(out, out + m * k_out, 0.0);
    Buffers& buffers = scratch.Get(tid);
    double* scale = buffers.scale.data();
    for (int64_t j = 0; j < n_bg; ++j) {
      if (bg.weights[j] == 0.0) continue;
      CheckInterrupt();
      const double w = bg.weights[j] / total;
      for (int k = 0; k < k_out; ++k) {
        const double dx = fx[i * k_out + k] - fz[j * k_out + k];
        const double r = dx == 0.0 ? 1.0
                                   : (tx[i * k_out + k] - tz[j * k_out + k]) / dx -
                                         (shift ? shift[i * k_out + k] : 0.0);
        scale[k] = w * r;
      }
      for (int64_t t = 0; t < forest.NumTrees(); ++t) {
        detail::PairTreeShap(forest, t, &xs[i * m], &zs[j * m], scale, coef, buffers.pair, out,
                             nullptr);
      }
    }
  });
}

}  // namespace treelens
