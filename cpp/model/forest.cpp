// Validating builder for the format-free Forest.
#include "model/forest.h"

#include "common/parallel.h"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <stdexcept>
#include <string>

namespace treelens {
namespace detail {

constexpr int64_t kMaxCategory = (int64_t{1} << 24) - 1;
// Bitset words of all categorical nodes together (256 MiB): a small file listing a few
// large category codes on many nodes must not allocate without bound.
constexpr int64_t kMaxCategoryWords = int64_t{1} << 26;
// Forests with fewer nodes are filled on the calling thread alone.
constexpr size_t kParallelNodes = 1 << 16;

[[noreturn]] void Fail(int64_t tree, int64_t node, const std::string& what) {
  throw std::invalid_argument("invalid model: tree " + std::to_string(tree) + ", node " +
                              std::to_string(node) + ": " + what);
}

std::string ToString(double v) {
  std::ostringstream out;
  out << std::setprecision(17) << v;
  return out.str();
}

template <typename T>
void CheckSize(const Span<T>& v, size_t n, const char* name) {
  if (v.size() != n) {
    throw std::invalid_argument(std::string("invalid model: array '") + name + "' has " +
                                std::to_string(v.size()) + " entries, expected " +
                                std::to_string(n));
  }
}

// A node on the builder's depth-first walk: global index, depth, and the product of the
// cover fractions from the root (the weight of the node in the path-dependent expectation).
struct Visit {
  int64_t node;
  int32_t depth;
  double reach;
};

// Reach of `child` below `parent` (global indices). TreeSHAP weighs a child by the cover
// fraction cover[child] / cover[parent] (0 under a zero-cover parent); a fraction or a
// product of fractions that overflows a double would turn the expected value and the
// SHAP values into inf / NaN, so it is rejected here. Tiny and subnormal covers are fine.
double ChildReach(const Span<double>& cover, int64_t parent, int64_t child,
                  double reach, int64_t tree, int64_t local) {
  const double pc = cover[parent], cc = cover[child];
  if (!std::isfinite(cc) || cc < 0) return reach;  // reported when the child is visited
  const double z = pc > 0 ? cc / pc : 0.0;
  if (!std::isfinite(z) || !std::isfinite(reach * z)) {
    Fail(tree, local, "cover fraction of child node " +
                          std::to_string(child - parent + local) + " overflows (cover " +
                          ToString(cc) + " under a parent cover of " + ToString(pc) +
                          "; children may not have covers more than ~1e308 times their "
                          "ancestors')");
  }
  return reach * z;
}

// Working memory of the per-tree passes, sized once for the whole forest.
struct TreeScratch {
  uint8_t* seen = nullptr;  // [n_nodes] of the whole forest; trees own disjoint ranges
  std::vector<int32_t> depth;
  std::vector<double> reach;
  std::vector<Visit> stack;
};

// Validates node g (local index `local` of tree t, `size` nodes) and writes its Forest
// fields; returns whether it is a split.
bool FillNode(const ForestArrays& a, Forest& f, int64_t t, int64_t begin, int64_t g,
              int64_t size) {
  const int64_t local = g - begin;
  if (!std::isfinite(a.cover[g]) || a.cover[g] < 0) Fail(t, local, "cover is negative or not finite");
  const int32_t l = a.left[g], r = a.right[g];
  if (l < 0 && r < 0) {
    for (int64_t k = 0; k < a.leaf_width; ++k) {
      const double v = a.value[g * a.leaf_width + k];
      if (!std::isfinite(v) || (a.float32_margin && !std::isfinite(ToFloat32(v)))) {
        Fail(t, local, "leaf value " + ToString(v) +
                           (a.float32_margin ? " is not a finite float32" : " is not finite"));
      }
      f.value[g * a.leaf_width + k] = v;
    }
    return false;
  }
  if (l < 0 || r < 0 || l >= size || r >= size) {
    Fail(t, local, "child index out of range (left " + std::to_string(l) + ", right " +
                       std::to_string(r) + ", tree has " + std::to_string(size) + " nodes)");
  }
  const int32_t feat = a.feature[g];
  if (feat < 0 || feat >= a.n_features) {
    Fail(t, local, "split feature " + std::to_string(feat) + " out of range [0, " +
                       std::to_string(a.n_features) + ")");
  }
  f.left[g] = static_cast<int32_t>(begin + l);
  f.right[g] = static_cast<int32_t>(begin + r);
  f.feature[g] = feat;
  uint8_t flags = a.default_left[g] ? kDefaultLeft : 0;
  if (a.categorical[g]) {
    flags |= kCategorical;
    if (f.routing == Routing::kLightGBM) flags &= static_cast<uint8_t>(~kDefaultLeft);
    if (f.routing == Routing::kSklearn) Fail(t, local, "categorical split in a sklearn tree");
  } else {
    const double thr = a.threshold[g];
    if (std::isnan(thr)) Fail(t, local, "threshold is NaN");
    // Rewrite `x <= thr` as `x < next(thr)`; XGBoost already compares with `<`.
    // `x <= +inf` keeps +inf and sends x = +inf left through kLeftAtInf.
    const bool strict = f.routing == Routing::kXGBoost;
    const double inf = std::numeric_limits<double>::infinity();
    double lt = static_cast<double>(ToFloat32(thr));
    if (!strict) {
      lt = thr == inf ? thr : std::nextafter(thr, inf);
      if (thr == inf) flags |= kLeftAtInf;
    }
    f.threshold[g] = lt;
    const auto miss = static_cast<Missing>(a.missing[g]);
    if (miss == Missing::kZero) {
      flags |= kZeroMissing;
    } else if (miss == Missing::kNanAsZero) {
      flags = static_cast<uint8_t>((flags & ~kDefaultLeft) | (0.0 < lt ? kDefaultLeft : 0));
    } else if (miss != Missing::kDefault) {
      Fail(t, local, "unknown missing-value rule " + std::to_string(a.missing[g]));
    }
  }
  f.flags[g] = flags;
  return true;
}

// Whether every node of the tree but its root is the child of exactly one split with a
// smaller local index (children in range): then the tree is acyclic and every node is
// reachable, and one pass in index order visits parents before children. Leaves
// scratch.seen marking the tree's non-root nodes.
bool IsOrdered(const ForestArrays& a, int64_t begin, int64_t end, TreeScratch& scratch) {
  const int64_t size = end - begin;
  int64_t children = 0;
  bool ordered = true;
  for (int64_t i = 0; i < size && ordered; ++i) {
    const int32_t l = a.left[begin + i], r = a.right[begin + i];
    if (l < 0 && r < 0) continue;
    if (!(l > i && r > i && l < size && r < size && l != r) || scratch.seen[begin + l] ||
        scratch.seen[begin + r]) {
      ordered = false;
    } else {
      scratch.seen[begin + l] = scratch.seen[begin + r] = 1;
      children += 2;
    }
  }
  if (ordered && children == size - 1) return true;
  std::fill(scratch.seen + begin, scratch.seen + end, 0);
  return false;
}

// Fills an ordered tree (see IsOrdered) in one pass in index order.
void BuildInOrder(const ForestArrays& a, Forest& f, int64_t t, int64_t begin, int64_t end,
                  TreeScratch& scratch) {
  const int64_t size = end - begin;
  scratch.depth.assign(static_cast<size_t>(size), 0);
  scratch.reach.assign(static_cast<size_t>(size), 1.0);
  for (int64_t i = 0; i < size; ++i) {
    const int64_t g = begin + i;
    const int32_t depth = scratch.depth[i];
    f.tree_depth[t] = std::max(f.tree_depth[t], depth);
    if (!FillNode(a, f, t, begin, g, size)) continue;
    if (depth >= 100000) Fail(t, i, "tree deeper than 100000");
    const int32_t l = a.left[g], r = a.right[g];
    const double reach = scratch.reach[i];
    scratch.reach[l] = ChildReach(a.cover, g, begin + l, reach, t, i);
    scratch.reach[r] = ChildReach(a.cover, g, begin + r, reach, t, i);
    scratch.depth[l] = scratch.depth[r] = depth + 1;
  }
}

// Fills any other tree by a depth-first walk from its root, which reports cycles, shared
// children and unreachable nodes.
void BuildByWalk(const ForestArrays& a, Forest& f, int64_t t, int64_t begin, int64_t end,
                 TreeScratch& scratch) {
  const int64_t size = end - begin;
  auto& stack = scratch.stack;
  stack.assign(1, {begin, 0, 1.0});
  int64_t visited = 0;
  while (!stack.empty()) {
    const auto [g, depth, reach] = stack.back();
    stack.pop_back();
    const int64_t local = g - begin;
    if (scratch.seen[g]) Fail(t, local, "node reached twice (cycle or shared child)");
    scratch.seen[g] = 1;
    ++visited;
    f.tree_depth[t] = std::max(f.tree_depth[t], depth);
    if (!FillNode(a, f, t, begin, g, size)) continue;
    if (depth >= 100000) Fail(t, local, "tree deeper than 100000");
    const int32_t l = a.left[g], r = a.right[g];
    const double reach_left = ChildReach(a.cover, g, begin + l, reach, t, local);
    const double reach_right = ChildReach(a.cover, g, begin + r, reach, t, local);
    stack.push_back({begin + r, depth + 1, reach_right});
    stack.push_back({begin + l, depth + 1, reach_left});
  }
  if (visited != size) {
    Fail(t, 0, std::to_string(size - visited) + " node(s) unreachable from the root");
  }
}

}  // namespace detail

Routing ParseRouting(const std::string& name) {
  if (name == "xgboost") return Routing::kXGBoost;
  if (name == "lightgbm") return Routing::kLightGBM;
  if (name == "sklearn") return Routing::kSklearn;
  if (name == "float64") return Routing::kFloat64;
  throw std::invalid_argument("unknown routing '" + name +
                              "', expected one of xgboost, lightgbm, sklearn, float64");
}

int Forest::MaxDepth() const {
  int d = 0;
  for (int32_t td : tree_depth) d = std::max(d, td);
  return d;
}

bool Forest::CategoryGoesLeft(int64_t node, double x) const {
  if (std::isnan(x)) return flags[node] & kDefaultLeft;
  const bool member_left = routing != Routing::kXGBoost;
  const bool valid = routing == Routing::kXGBoost ? (x >= 0.0 && x < 16777216.0)
                                                   : (x > -1.0 && x < 2147483648.0);
  if (!valid) return !member_left;
  const int64_t c = static_cast<int64_t>(x);
  const int64_t begin = cat_offsets[node];
  const int64_t n_words = cat_offsets[node + 1] - begin;
  const bool member = (c >> 5) < n_words && ((cat_words[begin + (c >> 5)] >> (c & 31)) & 1u);
  return member == member_left;
}

Forest BuildForest(const ForestArrays& a) {
  using detail::CheckSize;
  using detail::Fail;
  Forest f;
  f.routing = ParseRouting(a.routing);
  f.n_features = a.n_features;
  f.n_outputs = a.n_outputs;
  f.leaf_width = a.leaf_width;
  f.float32_margin = a.float32_margin;
  if (a.n_features <= 0) throw std::invalid_argument("invalid model: n_features must be positive");
  if (a.n_outputs <= 0) throw std::invalid_argument("invalid model: n_outputs must be positive");
  if (a.leaf_width != 1 && a.leaf_width != a.n_outputs) {
    throw std::invalid_argument("invalid model: leaf_width must be 1 or n_outputs");
  }
  if (a.tree_offsets.size() < 2 || a.tree_offsets[0] != 0) {
    throw std::invalid_argument("invalid model: the model has no trees");
  }
  const int64_t n_trees = static_cast<int64_t>(a.tree_offsets.size()) - 1;
  const int64_t n_nodes = a.tree_offsets.back();
  if (n_nodes < 0 || n_nodes > (int64_t{1} << 31) - 1) {
    throw std::invalid_argument("invalid model: node count out of range");
  }
  const size_t nn = static_cast<size_t>(n_nodes);
  CheckSize(a.left, nn, "left");
  CheckSize(a.right, nn, "right");
  CheckSize(a.feature, nn, "feature");
  CheckSize(a.threshold, nn, "threshold");
  CheckSize(a.default_left, nn, "default_left");
  CheckSize(a.missing, nn, "missing");
  CheckSize(a.categorical, nn, "categorical");
  CheckSize(a.cover, nn, "cover");
  CheckSize(a.value, nn * static_cast<size_t>(a.leaf_width), "value");
  CheckSize(a.cat_offsets, nn + 1, "cat_offsets");
  CheckSize(a.tree_output, static_cast<size_t>(n_trees), "tree_output");
  CheckSize(a.base_score, static_cast<size_t>(a.n_outputs), "base_score");
  if (a.cat_offsets[0] != 0 || a.cat_offsets.back() != static_cast<int64_t>(a.cat_values.size())) {
    throw std::invalid_argument("invalid model: category offsets do not match category values");
  }
  for (size_t g = 0; g < nn; ++g) {
    if (a.cat_offsets[g + 1] < a.cat_offsets[g] || a.cat_offsets[g + 1] > a.cat_offsets.back()) {
      throw std::invalid_argument("invalid model: category offset " + std::to_string(g + 1) +
                                  " (" + std::to_string(a.cat_offsets[g + 1]) +
                                  ") is not in [" + std::to_string(a.cat_offsets[g]) + ", " +
                                  std::to_string(a.cat_offsets.back()) + "]");
    }
  }
  for (double b : a.base_score) {
    if (!std::isfinite(b) || (a.float32_margin && !std::isfinite(ToFloat32(b)))) {
      throw std::invalid_argument("invalid model: base_score " + detail::ToString(b) +
                                  (a.float32_margin ? " is not a finite float32" : " is not finite"));
    }
  }

  f.tree_offsets.assign(a.tree_offsets.begin(), a.tree_offsets.end());
  f.tree_output.assign(a.tree_output.begin(), a.tree_output.end());
  f.base_score.assign(a.base_score.begin(), a.base_score.end());
  f.left.assign(nn, -1);
  f.right.assign(nn, -1);
  f.feature.assign(nn, -1);
  f.threshold.assign(nn, 0.0);
  f.flags.assign(nn, 0);
  f.cover.assign(a.cover.begin(), a.cover.end());
  f.value.assign(nn * a.leaf_width, 0.0);
  f.cat_offsets.assign(nn + 1, 0);
  f.tree_depth.assign(n_trees, 0);

  for (int64_t t = 0; t < n_trees; ++t) {  // so trees own disjoint node ranges
    if (a.tree_offsets[t + 1] <= a.tree_offsets[t] || a.tree_offsets[t + 1] > n_nodes) {
      Fail(t, 0, "tree has no nodes or bad offsets");
    }
  }
  // Trees are independent: fill them in parallel (large forests), then report the
  // lowest-numbered bad tree, whatever the thread count.
  std::vector<uint8_t> seen(nn, 0);
  const int threads = ResolveThreads(nn < detail::kParallelNodes ? 1 : 0);
  std::vector<detail::TreeScratch> scratch(static_cast<size_t>(threads));
  for (auto& s : scratch) s.seen = seen.data();
  std::vector<std::string> errors(static_cast<size_t>(n_trees));
  ParallelFor(n_trees, threads, [&](int64_t t, int thread) {
    try {
      const int64_t begin = a.tree_offsets[t];
      const int64_t end = a.tree_offsets[t + 1];
      const int32_t out = a.tree_output[t];
      if (a.leaf_width == 1 ? (out < 0 || out >= a.n_outputs) : out != -1) {
        Fail(t, 0, "tree output " + std::to_string(out) + " out of range");
      }
      if (detail::IsOrdered(a, begin, end, scratch[thread])) {
        detail::BuildInOrder(a, f, t, begin, end, scratch[thread]);
      } else {
        detail::BuildByWalk(a, f, t, begin, end, scratch[thread]);
      }
    } catch (const std::invalid_argument& e) {
      errors[t] = e.what();
    }
  });
  for (const std::string& error : errors) {
    if (!error.empty()) throw std::invalid_argument(error);
  }

  // Category bitsets.
  std::vector<uint32_t> words;
  for (int64_t g = 0; g < n_nodes; ++g) {
    f.cat_offsets[g] = static_cast<int64_t>(words.size());
    if (!(f.flags[g] & kCategorical)) continue;
    int64_t max_c = -1;
    for (int64_t i = a.cat_offsets[g]; i < a.cat_offsets[g + 1]; ++i) {
      const int64_t c = a.cat_values[i];
      if (c < 0 || c > detail::kMaxCategory) {
        int64_t t = std::upper_bound(a.tree_offsets.begin(), a.tree_offsets.end(), g) -
                    a.tree_offsets.begin() - 1;
        Fail(t, g - a.tree_offsets[t], "category " + std::to_string(c) + " out of range [0, 2^24)");
      }
      max_c = std::max(max_c, c);
    }
    const size_t base = words.size();
    const int64_t n_words = (max_c + 32) / 32;
    if (static_cast<int64_t>(base) + n_words > detail::kMaxCategoryWords) {
      throw std::invalid_argument(
          "invalid model: the category sets need more than " +
          std::to_string(detail::kMaxCategoryWords * 4 / (1 << 20)) +
          " MiB of bitsets (node " + std::to_string(g) + " lists category " +
          std::to_string(max_c) + ")");
    }
    words.resize(base + static_cast<size_t>(n_words), 0u);
    for (int64_t i = a.cat_offsets[g]; i < a.cat_offsets[g + 1]; ++i) {
      const int64_t c = a.cat_values[i];
      words[base + (c >> 5)] |= 1u << (c & 31);
    }
  }
  f.cat_offsets[n_nodes] = static_cast<int64_t>(words.size());
  f.cat_words = std::move(words);
  return f;
}

}  // namespace treelens
