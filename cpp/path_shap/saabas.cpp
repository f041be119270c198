// Saabas values ("Interpreting random forests", A. Saabas, 2014; the approx_contribs of
// XGBoost and shap's approximate=True): each row walks its path once, and the change of the
// cover-weighted node mean across a split is credited to the split's feature. It depends on
// the order of the splits and is not a Shapley value; exact values are in path_shap.cpp.
#include "path_shap/saabas.h"

#include <algorithm>
#include <vector>

#include "common/parallel.h"

namespace treelens {

std::vector<double> NodeMeans(const Forest& forest) {
  const int width = forest.leaf_width;
  std::vector<double> mean(forest.value.begin(), forest.value.end());
  std::vector<double> weight(forest.cover.begin(), forest.cover.end());
  // No node order is assumed: each tree is resolved bottom-up by reversing a preorder.
  std::vector<int64_t> stack, order;
  for (int64_t t = 0; t < forest.NumTrees(); ++t) {
    stack.assign(1, forest.tree_offsets[t]);
    order.clear();
    while (!stack.empty()) {
      const int64_t node = stack.back();
      stack.pop_back();
      order.push_back(node);
      if (!forest.IsLeaf(node)) {
        stack.push_back(forest.left[node]);
        stack.push_back(forest.right[node]);
      }
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const int64_t node = *it;
      if (forest.IsLeaf(node)) continue;
      const int64_t l = forest.left[node], r = forest.right[node];
      const double total = weight[l] + weight[r];
      for (int k = 0; k < width; ++k) {
        const double sum = weight[l] * mean[l * width + k] + weight[r] * mean[r * width + k];
        mean[node * width + k] = total > 0.0 ? sum / total : 0.0;
      }
      weight[node] = total;
    }
  }
  return mean;
}

void SaabasValues(const Forest& forest, const std::vector<double>& mean, const MatrixView& x,
                  double* phi, int n_threads) {
  constexpr int64_t kBlock = 64;
  const int64_t n_blocks = (x.n_rows + kBlock - 1) / kBlock;
  const int threads = ResolveThreads(n_threads);
  const int width = forest.leaf_width;
  const int k_out = forest.n_outputs;
  const int64_t row_size = static_cast<int64_t>(forest.n_features) * k_out;
  std::vector<std::vector<double>> rows(threads, std::vector<double>(x.n_cols));
  ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
    double* row = rows[tid].data();
    const int64_t end = std::min(x.n_rows, (b + 1) * kBlock);
    for (int64_t r = b * kBlock; r < end; ++r) {
      double* out = phi + r * row_size;
      std::fill(out, out + row_size, 0.0);
      x.LoadRow(forest, r, row);
      for (int64_t t = 0; t < forest.NumTrees(); ++t) {
        const int first = width == 1 ? forest.tree_output[t] : 0;
        int64_t node = forest.tree_offsets[t];
        while (!forest.IsLeaf(node)) {
          const int32_t f = forest.feature[node];
          const int64_t next =
              forest.GoesLeft(node, row[f]) ? forest.left[node] : forest.right[node];
          for (int k = 0; k < width; ++k) {
            out[f * k_out + first + k] += mean[next * width + k] - mean[node * width + k];
          }
          node = next;
        }
      }
    }
  });
}

}  // namespace treelens
