// Raw-margin prediction: every row walks every tree from its root; rows are split into
// blocks processed in parallel, each row's sum taken in tree order (deterministic).
#include "model/predict.h"

#include <algorithm>
#include <vector>

#include "common/parallel.h"

namespace treelens {

void Predict(const Forest& forest, const MatrixView& x, double* out, int n_threads,
             bool float64) {
  constexpr int64_t kBlock = 256;
  const int64_t n_blocks = (x.n_rows + kBlock - 1) / kBlock;
  const int threads = ResolveThreads(n_threads);
  const int k_out = forest.n_outputs;
  const int width = forest.leaf_width;
  const bool float32_sum = forest.float32_margin && !float64;
  std::vector<std::vector<double>> rows(threads, std::vector<double>(x.n_cols));
  std::vector<std::vector<double>> sums(threads, std::vector<double>(k_out));
  std::vector<std::vector<float>> sums32(threads, std::vector<float>(k_out));
  ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
    double* row = rows[tid].data();
    double* sum = sums[tid].data();
    float* sum32 = sums32[tid].data();
    const int64_t end = std::min(x.n_rows, (b + 1) * kBlock);
    for (int64_t r = b * kBlock; r < end; ++r) {
      x.LoadRow(forest, r, row);
      for (int k = 0; k < k_out; ++k) {
        sum[k] = forest.base_score[k];
        sum32[k] = ToFloat32(forest.base_score[k]);
      }
      for (int64_t t = 0; t < forest.NumTrees(); ++t) {
        const int64_t leaf = FindLeaf(forest, t, row);
        const double* v = &forest.value[leaf * width];
        const int first = width == 1 ? forest.tree_output[t] : 0;
        for (int k = 0; k < width; ++k) {
          if (float32_sum) {
            sum32[first + k] += ToFloat32(v[k]);
          } else {
            sum[first + k] += v[k];
          }
        }
      }
      for (int k = 0; k < k_out; ++k) {
        out[r * k_out + k] = float32_sum ? static_cast<double>(sum32[k]) : sum[k];
      }
    }
  });
}

void NodeCounts(const Forest& forest, const MatrixView& x, int64_t* counts, int n_threads) {
  constexpr int64_t kBlock = 256;
  const int64_t n_blocks = (x.n_rows + kBlock - 1) / kBlock;
  const int threads = ResolveThreads(n_threads);
  const int64_t n_nodes = forest.NumNodes();
  std::vector<std::vector<double>> rows(threads, std::vector<double>(x.n_cols));
  std::vector<std::vector<int64_t>> partial(threads, std::vector<int64_t>(n_nodes, 0));
  ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
    double* row = rows[tid].data();
    int64_t* count = partial[tid].data();
    const int64_t end = std::min(x.n_rows, (b + 1) * kBlock);
    for (int64_t r = b * kBlock; r < end; ++r) {
      x.LoadRow(forest, r, row);
      for (int64_t t = 0; t < forest.NumTrees(); ++t) {
        int64_t node = forest.tree_offsets[t];
        ++count[node];
        while (!forest.IsLeaf(node)) {
          node = forest.GoesLeft(node, row[forest.feature[node]]) ? forest.left[node]
                                                                  : forest.right[node];
          ++count[node];
        }
      }
    }
  });
  std::fill(counts, counts + n_nodes, int64_t{0});
  for (const auto& p : partial) {
    for (int64_t i = 0; i < n_nodes; ++i) counts[i] += p[i];
  }
}

}  // namespace treelens
