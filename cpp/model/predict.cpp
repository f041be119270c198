// Raw-margin prediction: every row walks every tree from its root; rows are split into
// blocks processed in parallel, each row's sum taken in tree order (deterministic).
#include "model/predict.h"

#include <algorithm>
#include <vector>

#include "common/parallel.h"

namespace treelens {

namespace {

// Forest::GoesLeft as 1 or 0, without branches on x for numeric splits.
inline int64_t GoesLeftBranchless(const Forest& forest, int64_t node, double x) {
  const uint8_t f = forest.flags[node];
  if (f & kCategorical) return forest.CategoryGoesLeft(node, x) ? 1 : 0;
  return Forest::NumericGoesLeftBit(x, forest.threshold[node], f);
}

}  // namespace

void Predict(const Forest& forest, const MatrixView& x, double* out, int n_threads,
             bool float64) {
  constexpr int64_t kBlock = 256;
  // Rows walk the trees in groups of kGroup walks: the walks are independent, so their memory
  // reads overlap, and each row still adds its trees' leaves in tree order.
  constexpr int kGroup = 8;
  const int64_t n_blocks = (x.n_rows + kBlock - 1) / kBlock;
  const int threads = ResolveThreads(n_threads);
  const int k_out = forest.n_outputs;
  const int width = forest.leaf_width;
  const bool float32_sum = forest.float32_margin && !float64;
  const int64_t n_cols = x.n_cols;
  std::vector<std::vector<double>> rows(threads, std::vector<double>(kGroup * n_cols));
  std::vector<std::vector<double>> sums(threads, std::vector<double>(kGroup * k_out));
  std::vector<std::vector<float>> sums32(threads, std::vector<float>(kGroup * k_out));
  ParallelFor(n_blocks, threads, [&](int64_t b, int tid) {
    double* row = rows[tid].data();
    const int64_t end = std::min(x.n_rows, (b + 1) * kBlock);
    for (int64_t r0 = b * kBlock; r0 < end; r0 += kGroup) {
      const int nr = static_cast<int>(std::min<int64_t>(kGroup, end - r0));
      for (int r = 0; r < nr; ++r) {
        x.LoadRow(forest, r0 + r, row + r * n_cols);
        StartMargin(forest, &sums[tid][r * k_out], &sums32[tid][r * k_out]);
      }
      // The walks of a group: (row, tree) pairs, the group's rows times as many consecutive
      // trees as fill kGroup walks (a lone row walks kGroup trees at once).
      const int tree_step = kGroup / nr;
      int64_t node[kGroup];
      for (int64_t t0 = 0; t0 < forest.NumTrees(); t0 += tree_step) {
        const int nt = static_cast<int>(std::min<int64_t>(tree_step, forest.NumTrees() - t0));
        const int walks = nr * nt;
        for (int w = 0; w < walks; ++w) node[w] = forest.tree_offsets[t0 + w / nr];
        for (bool moving = true; moving;) {
          moving = false;
          for (int w = 0; w < walks; ++w) {
            const int64_t n = node[w];
            if (forest.IsLeaf(n)) continue;
            const double xv = row[(w % nr) * n_cols + forest.feature[n]];
            const int64_t go = GoesLeftBranchless(forest, n, xv);
            const int64_t right = forest.right[n];
            node[w] = right + ((forest.left[n] - right) & -go);
            moving = true;
          }
        }
        for (int w = 0; w < walks; ++w) {  // tree by tree, so each row adds in tree order
          const int64_t t = t0 + w / nr;
          const int r = w % nr;
          const int first = width == 1 ? forest.tree_output[t] : 0;
          const double* v = &forest.value[node[w] * width];
          for (int k = 0; k < width; ++k) {
            AddToMargin(float32_sum, &sums[tid][r * k_out], &sums32[tid][r * k_out], first + k,
                        v[k]);
          }
        }
      }
      for (int r = 0; r < nr; ++r) {
        for (int k = 0; k < k_out; ++k) {
          out[(r0 + r) * k_out + k] =
              MarginOf(float32_sum, &sums[tid][r * k_out], &sums32[tid][r * k_out], k);
        }
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
