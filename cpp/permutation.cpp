// Batched permutation importance (L. Breiman, "Random Forests", Machine Learning 45, 2001;
// the scikit-learn permutation_importance protocol) for tree ensembles.
//
// One pass over a block of rows routes every row through every tree and records its path.
// Permuting a feature group can only change the leaf of the (row, tree) pairs whose path tests
// a feature of the group, so only those pairs are walked again, from the first such node on
// the path, with the group's values taken from the permuted rows. The margins are then summed
// in tree order exactly as Predict sums them (float32 accumulation where the forest asks for
// it), so each permuted margin equals Predict on the explicitly permuted matrix bit for bit.
// Blocks of rows are independent and write disjoint outputs: the result does not depend on the
// number of threads.
#include "permutation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "parallel.h"

namespace treelens {
namespace detail {

constexpr int64_t kPermutationBlock = 64;

// A (row, tree) pair whose path tests a group feature; pos indexes the block's path array at
// the first node on the path that tests one. For single-feature groups alt caches the leaf
// reached when the row leaves the path at that node (kAltUnknown until first needed).
struct Candidate {
  int32_t row;
  int32_t tree;
  int32_t pos;
  int32_t alt;
};

constexpr int32_t kAltUnknown = -1;
constexpr int32_t kAltVaries = -2;  // the route past the node tests the feature again
constexpr int32_t kPathRepeats = -3;  // the path tests the feature more than once

struct TaggedCandidate {
  int32_t feature;
  Candidate c;
};

// The split test of a single-feature candidate, copied out of the forest for the repeats.
struct SplitCheck {
  double threshold;
  int32_t node;
  uint8_t went_left;
  uint8_t nan_left;
  uint8_t kind;
};

constexpr uint8_t kPlainSplit = 0;    // numeric: left iff x < threshold, NaN by default
constexpr uint8_t kGeneralSplit = 1;  // categorical, zero-as-missing or left-at-inf
constexpr uint8_t kWalkPath = 2;      // the path tests the feature more than once

struct LeafChange {
  int32_t row;
  int32_t tree;
  int32_t leaf;
};

// Per-thread scratch, sized once for a block of rows; T is the accumulation type.
template <typename T>
struct PermutationScratch {
  std::vector<double> rows;          // [block, n_features] transformed features
  std::vector<int32_t> path_offsets; // [block * n_trees + 1] into path
  std::vector<int32_t> path;         // root..leaf nodes of each (row, tree), row-major
  std::vector<T> vals;               // [n_trees * leaf_width, block] reached leaf values
  std::vector<T> sums;               // [n_outputs, block]
  std::vector<double> baseline;      // [block, n_outputs] margins of the unpermuted rows
  std::vector<int64_t> stamp;        // [n_features] last (row, tree) key that emitted it
  std::vector<int64_t> emitted;      // [n_features] index in tagged of that emission
  std::vector<int64_t> bucket_offsets;  // [n_features + 1] into buckets
  std::vector<TaggedCandidate> tagged;
  std::vector<Candidate> buckets;    // by feature, then row, then tree
  std::vector<Candidate> merged;     // candidates of a multi-feature group
  std::vector<int64_t> row_offsets;  // [block + 1] into the group's candidates
  std::vector<SplitCheck> checks;    // [candidates of a single-feature group]
  std::vector<double> saved;         // [group size]
  std::vector<LeafChange> changes;
};

inline int64_t Descend(const Forest& f, int64_t node, const double* row) {
  while (!f.IsLeaf(node)) node = f.GoesLeft(node, row[f.feature[node]]) ? f.left[node] : f.right[node];
  return node;
}

template <typename T>
class BlockEngine {
 public:
  BlockEngine(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
              const std::vector<uint8_t>& in_group, const int64_t* perms, int64_t n_repeats,
              double* out)
      : f_(forest), x_(x), groups_(groups), in_group_(in_group), perms_(perms),
        n_repeats_(n_repeats), out_(out), n_trees_(forest.NumTrees()), width_(forest.leaf_width),
        k_out_(forest.n_outputs) {}

  void Allocate(PermutationScratch<T>& s) const {
    const int64_t b = kPermutationBlock;
    s.rows.resize(b * x_.n_cols);
    s.path_offsets.resize(b * n_trees_ + 1);
    s.vals.resize(n_trees_ * width_ * b);
    s.sums.resize(k_out_ * b);
    s.baseline.resize(b * k_out_);
    s.stamp.resize(x_.n_cols);
    s.emitted.resize(x_.n_cols);
    s.bucket_offsets.resize(x_.n_cols + 1);
    s.row_offsets.resize(b + 1);
  }

  void Run(int64_t block, PermutationScratch<T>& s) const {
    const int64_t r0 = block * kPermutationBlock;
    const int64_t nb = std::min(x_.n_rows - r0, kPermutationBlock);
    RoutePaths(s, r0, nb);
    SumMargins(s, nb, s.baseline.data(), k_out_);
    EmitCandidates(s, nb);
    const int64_t n_rows = x_.n_rows;
    for (int64_t g = 0; g < groups_.NumGroups(); ++g) {
      Candidate* cand = nullptr;
      int64_t n_cand = 0;
      GroupCandidates(s, g, &cand, &n_cand);
      RowOffsets(s, cand, n_cand, nb);
      const bool single = groups_.offsets[g + 1] - groups_.offsets[g] == 1;
      if (single) PrepareChecks(s, cand, n_cand);
      for (int64_t r = 0; r < n_repeats_; ++r) {
        double* dst = out_ + ((g * n_repeats_ + r) * n_rows + r0) * k_out_;
        if (single) {
          FindChangesSingle(s, groups_.cols[groups_.offsets[g]], cand, perms_ + r * n_rows + r0, nb);
        } else {
          FindChanges(s, g, cand, perms_ + r * n_rows + r0, nb);
        }
        if (s.changes.empty()) {
          std::copy(s.baseline.begin(), s.baseline.begin() + nb * k_out_, dst);
          continue;
        }
        SetLeaves(s, true);
        SumMargins(s, nb, dst, k_out_);
        SetLeaves(s, false);
      }
    }
  }

 private:
  // Routes every row of the block through every tree, recording paths and leaf values.
  void RoutePaths(PermutationScratch<T>& s, int64_t r0, int64_t nb) const {
    const int64_t m = x_.n_cols;
    s.path.clear();
    s.path_offsets[0] = 0;
    for (int64_t i = 0; i < nb; ++i) {
      double* row = &s.rows[i * m];
      x_.LoadRow(f_, r0 + i, row);
      for (int64_t t = 0; t < n_trees_; ++t) {
        int64_t node = f_.tree_offsets[t];
        s.path.push_back(static_cast<int32_t>(node));
        while (!f_.IsLeaf(node)) {
          node = f_.GoesLeft(node, row[f_.feature[node]]) ? f_.left[node] : f_.right[node];
          s.path.push_back(static_cast<int32_t>(node));
        }
        s.path_offsets[i * n_trees_ + t + 1] = static_cast<int32_t>(s.path.size());
        WriteLeaf(s, i, t, node);
      }
    }
  }

  void WriteLeaf(PermutationScratch<T>& s, int64_t i, int64_t t, int64_t leaf) const {
    for (int k = 0; k < width_; ++k) {
      s.vals[(t * width_ + k) * kPermutationBlock + i] = static_cast<T>(f_.value[leaf * width_ + k]);
    }
  }

  // dst[i * stride + k] = base_score[k] + leaf values of row i, summed in tree order.
  void SumMargins(PermutationScratch<T>& s, int64_t nb, double* dst, int64_t stride) const {
    const int64_t b = kPermutationBlock;
    for (int k = 0; k < k_out_; ++k) {
      std::fill(s.sums.begin() + k * b, s.sums.begin() + k * b + nb, static_cast<T>(f_.base_score[k]));
    }
    for (int64_t t = 0; t < n_trees_; ++t) {
      const int first = width_ == 1 ? f_.tree_output[t] : 0;
      for (int k = 0; k < width_; ++k) {
        T* sum = &s.sums[(first + k) * b];
        const T* v = &s.vals[(t * width_ + k) * b];
        for (int64_t i = 0; i < nb; ++i) sum[i] += v[i];
      }
    }
    for (int64_t i = 0; i < nb; ++i) {
      for (int k = 0; k < k_out_; ++k) dst[i * stride + k] = static_cast<double>(s.sums[k * b + i]);
    }
  }

  // Buckets, per feature used by some group, the (row, tree) pairs whose path tests it.
  void EmitCandidates(PermutationScratch<T>& s, int64_t nb) const {
    const int64_t m = x_.n_cols;
    std::fill(s.stamp.begin(), s.stamp.end(), 0);
    std::fill(s.bucket_offsets.begin(), s.bucket_offsets.end(), 0);
    s.tagged.clear();
    for (int64_t i = 0; i < nb; ++i) {
      for (int64_t t = 0; t < n_trees_; ++t) {
        const int64_t key = i * n_trees_ + t + 1;
        const int32_t end = s.path_offsets[key] - 1;  // the leaf
        for (int32_t k = s.path_offsets[key - 1]; k < end; ++k) {
          const int32_t feat = f_.feature[s.path[k]];
          if (!in_group_[feat]) continue;
          if (s.stamp[feat] == key) {
            s.tagged[s.emitted[feat]].c.alt = kPathRepeats;
            continue;
          }
          s.stamp[feat] = key;
          s.emitted[feat] = static_cast<int64_t>(s.tagged.size());
          s.tagged.push_back({feat, {static_cast<int32_t>(i), static_cast<int32_t>(t), k, kAltUnknown}});
          ++s.bucket_offsets[feat + 1];
        }
      }
    }
    for (int64_t j = 0; j < m; ++j) s.bucket_offsets[j + 1] += s.bucket_offsets[j];
    s.buckets.resize(s.tagged.size());
    std::vector<int64_t>& fill = s.stamp;  // reused as insertion cursors
    std::copy(s.bucket_offsets.begin(), s.bucket_offsets.end() - 1, fill.begin());
    for (const TaggedCandidate& tc : s.tagged) s.buckets[fill[tc.feature]++] = tc.c;
  }

  // The group's candidates sorted by (row, tree), each pair once with its first tested node.
  void GroupCandidates(PermutationScratch<T>& s, int64_t g, Candidate** cand,
                       int64_t* n_cand) const {
    const int64_t begin = groups_.offsets[g], end = groups_.offsets[g + 1];
    if (end - begin == 1) {
      const int32_t j = groups_.cols[begin];
      *cand = s.buckets.data() + s.bucket_offsets[j];
      *n_cand = s.bucket_offsets[j + 1] - s.bucket_offsets[j];
      return;
    }
    s.merged.clear();
    for (int64_t c = begin; c < end; ++c) {
      const int32_t j = groups_.cols[c];
      s.merged.insert(s.merged.end(), s.buckets.begin() + s.bucket_offsets[j],
                      s.buckets.begin() + s.bucket_offsets[j + 1]);
    }
    std::sort(s.merged.begin(), s.merged.end(), [](const Candidate& a, const Candidate& b) {
      if (a.row != b.row) return a.row < b.row;
      if (a.tree != b.tree) return a.tree < b.tree;
      return a.pos < b.pos;
    });
    auto last = std::unique(s.merged.begin(), s.merged.end(), [](const Candidate& a, const Candidate& b) {
      return a.row == b.row && a.tree == b.tree;
    });
    s.merged.erase(last, s.merged.end());
    *cand = s.merged.data();
    *n_cand = static_cast<int64_t>(s.merged.size());
  }

  static void RowOffsets(PermutationScratch<T>& s, const Candidate* cand, int64_t n_cand, int64_t nb) {
    int64_t c = 0;
    for (int64_t i = 0; i <= nb; ++i) {
      while (c < n_cand && cand[c].row < i) ++c;
      s.row_offsets[i] = c;
    }
  }

  void PrepareChecks(PermutationScratch<T>& s, const Candidate* cand, int64_t n_cand) const {
    constexpr uint8_t kSpecial = kCategorical | kZeroMissing | kLeftAtInf;
    s.checks.resize(n_cand);
    for (int64_t c = 0; c < n_cand; ++c) {
      const Candidate& cd = cand[c];
      SplitCheck& ck = s.checks[c];
      const int32_t node = s.path[cd.pos];
      const uint8_t flags = f_.flags[node];
      ck.threshold = f_.threshold[node];
      ck.node = node;
      ck.went_left = s.path[cd.pos + 1] == f_.left[node];
      ck.nan_left = (flags & kDefaultLeft) != 0;
      ck.kind = cd.alt == kPathRepeats ? kWalkPath : (flags & kSpecial) ? kGeneralSplit : kPlainSplit;
    }
  }

  // Leaves that change when row i takes feature j from row perm[i].
  void FindChangesSingle(PermutationScratch<T>& s, int32_t j, Candidate* cand, const int64_t* perm,
                         int64_t nb) const {
    const int64_t m = x_.n_cols;
    s.changes.clear();
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t c0 = s.row_offsets[i], c1 = s.row_offsets[i + 1];
      if (c0 == c1) continue;
      double* row = &s.rows[i * m];
      const double saved = row[j];
      const double v = f_.TransformInput(x_.At(perm[i], j));
      const bool nan = std::isnan(v);
      row[j] = v;
      for (int64_t c = c0; c < c1; ++c) {
        const SplitCheck& ck = s.checks[c];
        Candidate& cd = cand[c];
        int64_t leaf;
        if (ck.kind == kWalkPath) {
          const int32_t last = s.path_offsets[i * n_trees_ + cd.tree + 1] - 1;
          leaf = WalkLeaf(s, cd, row, last);
          if (leaf == s.path[last]) continue;
        } else {
          const bool left = ck.kind == kPlainSplit ? (nan ? ck.nan_left : v < ck.threshold)
                                                   : f_.GoesLeft(ck.node, v);
          if (left == static_cast<bool>(ck.went_left)) continue;
          leaf = cd.alt >= 0 ? cd.alt : OtherLeaf(cd, ck, j, row);
        }
        s.changes.push_back({static_cast<int32_t>(i), cd.tree, static_cast<int32_t>(leaf)});
      }
      row[j] = saved;
    }
  }

  // Leaf past the branch the path did not take at the candidate's node, caching it in
  // cd.alt unless that route tests feature j again.
  int64_t OtherLeaf(Candidate& cd, const SplitCheck& ck, int32_t j, const double* row) const {
    int64_t leaf = ck.went_left ? f_.right[ck.node] : f_.left[ck.node];
    bool varies = false;
    while (!f_.IsLeaf(leaf)) {
      const int32_t feat = f_.feature[leaf];
      varies |= feat == j;
      leaf = f_.GoesLeft(leaf, row[feat]) ? f_.left[leaf] : f_.right[leaf];
    }
    if (cd.alt == kAltUnknown) cd.alt = varies ? kAltVaries : static_cast<int32_t>(leaf);
    return leaf;
  }

  // Leaves that change when row i takes the group's values from row perm[i].
  void FindChanges(PermutationScratch<T>& s, int64_t g, const Candidate* cand, const int64_t* perm,
                   int64_t nb) const {
    const int64_t m = x_.n_cols;
    const int64_t begin = groups_.offsets[g], end = groups_.offsets[g + 1];
    s.changes.clear();
    s.saved.resize(end - begin);
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t c0 = s.row_offsets[i], c1 = s.row_offsets[i + 1];
      if (c0 == c1) continue;
      double* row = &s.rows[i * m];
      for (int64_t c = begin; c < end; ++c) {
        const int32_t j = groups_.cols[c];
        s.saved[c - begin] = row[j];
        row[j] = f_.TransformInput(x_.At(perm[i], j));
      }
      for (int64_t c = c0; c < c1; ++c) {
        const Candidate& cd = cand[c];
        const int32_t last = s.path_offsets[i * n_trees_ + cd.tree + 1] - 1;
        const int64_t leaf = WalkLeaf(s, cd, row, last);
        if (leaf != s.path[last]) {
          s.changes.push_back({static_cast<int32_t>(i), cd.tree, static_cast<int32_t>(leaf)});
        }
      }
      for (int64_t c = end - 1; c >= begin; --c) row[groups_.cols[c]] = s.saved[c - begin];
    }
  }

  // Leaf of any path: walks it from pos and descends from the first node where it turns.
  int64_t WalkLeaf(const PermutationScratch<T>& s, const Candidate& cd, const double* row,
                   int32_t last) const {
    for (int32_t k = cd.pos; k < last; ++k) {
      const int64_t node = s.path[k];
      const int64_t child = f_.GoesLeft(node, row[f_.feature[node]]) ? f_.left[node] : f_.right[node];
      if (child != s.path[k + 1]) return Descend(f_, child, row);
    }
    return s.path[last];
  }

  // Writes the changed leaves' values (apply) or restores the unpermuted ones.
  void SetLeaves(PermutationScratch<T>& s, bool apply) const {
    for (const LeafChange& ch : s.changes) {
      const int64_t leaf = apply ? ch.leaf : s.path[s.path_offsets[ch.row * n_trees_ + ch.tree + 1] - 1];
      WriteLeaf(s, ch.row, ch.tree, leaf);
    }
  }

  const Forest& f_;
  const MatrixView& x_;
  const FeatureGroups& groups_;
  const std::vector<uint8_t>& in_group_;
  const int64_t* perms_;
  const int64_t n_repeats_;
  double* out_;
  const int64_t n_trees_;
  const int width_;
  const int k_out_;
};

template <typename T>
void RunPermutation(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
                    const std::vector<uint8_t>& in_group, const int64_t* perms, int64_t n_repeats,
                    double* out, int n_threads) {
  const int threads = ResolveThreads(n_threads);
  const BlockEngine<T> engine(forest, x, groups, in_group, perms, n_repeats, out);
  std::vector<PermutationScratch<T>> scratch(threads);
  for (auto& s : scratch) engine.Allocate(s);
  const int64_t n_blocks = (x.n_rows + kPermutationBlock - 1) / kPermutationBlock;
  ParallelFor(n_blocks, threads, [&](int64_t b, int tid) { engine.Run(b, scratch[tid]); });
}

}  // namespace detail

void PermutedMargins(const Forest& forest, const MatrixView& x, const FeatureGroups& groups,
                     const int64_t* perms, int64_t n_repeats, double* out, int n_threads) {
  if (groups.offsets.empty() || groups.offsets[0] != 0 ||
      groups.offsets.back() != static_cast<int64_t>(groups.cols.size())) {
    throw std::invalid_argument("group offsets must start at 0 and end at the number of columns");
  }
  std::vector<uint8_t> in_group(x.n_cols, 0);
  for (int64_t g = 0; g < groups.NumGroups(); ++g) {
    if (groups.offsets[g + 1] <= groups.offsets[g]) {
      throw std::invalid_argument("feature group " + std::to_string(g) + " is empty");
    }
  }
  for (int32_t c : groups.cols) {
    if (c < 0 || c >= x.n_cols) {
      throw std::out_of_range("group column " + std::to_string(c) + " out of range [0, " +
                              std::to_string(x.n_cols) + ")");
    }
    in_group[c] = 1;
  }
  for (int64_t k = 0; k < n_repeats * x.n_rows; ++k) {
    if (perms[k] < 0 || perms[k] >= x.n_rows) {
      throw std::out_of_range("permutation index " + std::to_string(perms[k]) +
                              " out of range [0, " + std::to_string(x.n_rows) + ")");
    }
  }
  if (forest.float32_margin) {
    detail::RunPermutation<float>(forest, x, groups, in_group, perms, n_repeats, out, n_threads);
  } else {
    detail::RunPermutation<double>(forest, x, groups, in_group, perms, n_repeats, out, n_threads);
  }
}

}  // namespace treelens
