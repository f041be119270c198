// The format-free forest: a flat struct-of-arrays model every loader fills and every
// algorithm reads. Nodes of all trees are concatenated; children are global node indices.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace treelens {

// How a split routes a feature value (the source library's exact semantics).
//   kXGBoost:  x -> float32; NaN -> default; x < thr left; category member -> right,
//              x < 0 or x >= 2^24 -> left.
//   kLightGBM: double; |x| <= kZeroThreshold -> 0; x <= thr left; category member -> left,
//              c = trunc(x) < 0 -> right; NaN at a categorical split -> right.
//   kSklearn:  x -> float32 -> double; NaN -> default; x <= thr left.
//   kFloat64:  double; NaN -> default; x <= thr left; category member -> left.
enum class Routing : uint8_t { kXGBoost, kLightGBM, kSklearn, kFloat64 };

// Per-node missing-value rule as loaders give it (numeric splits only).
enum class Missing : uint8_t { kDefault = 0, kZero = 1, kNanAsZero = 2 };

// Node flags after normalisation by the builder.
enum NodeFlag : uint8_t {
  kDefaultLeft = 1,   // NaN (and zero, with kZeroMissing) goes left
  kCategorical = 2,   // category split: bitset membership
  kZeroMissing = 4,   // 0.0 is treated as missing (LightGBM missing_type=Zero)
  kLeftAtInf = 8,     // x = +inf goes left too (`x <= +inf` splits)
};

constexpr double kLightGBMZeroThreshold = static_cast<double>(1e-35f);

// x rounded to float32 as the hardware rounds (to nearest, ties to even; beyond the float
// range to the largest float or +-inf), without the undefined behaviour of casting a double
// outside the float range.
inline float ToFloat32(double x) {
  constexpr double kMax = static_cast<double>(std::numeric_limits<float>::max());
  constexpr double kRoundsToInf = 0x1.ffffffp127;  // kMax + half an ulp
  if (!(std::fabs(x) > kMax)) return static_cast<float>(x);  // also NaN
  const float big = std::fabs(x) < kRoundsToInf ? std::numeric_limits<float>::max()
                                                : std::numeric_limits<float>::infinity();
  return x > 0 ? big : -big;
}

// x as a T (float or double), rounded as ToFloat32 does for float.
template <typename T>
inline T RoundTo(double x) {
  if constexpr (std::is_same_v<T, float>) {
    return ToFloat32(x);
  } else {
    return static_cast<T>(x);
  }
}

// Whether float32 holds x exactly (NaN and +-inf included).
inline bool IsFloat32Exact(double x) {
  return x != x || static_cast<double>(ToFloat32(x)) == x;
}

struct Forest {
  // Per node [n_nodes]. Numeric splits go left iff x < threshold (x transformed by
  // TransformInput); the builder rewrites `<=` thresholds to that form.
  std::vector<int32_t> left, right;  // global node index, -1 at leaves
  std::vector<int32_t> feature;
  std::vector<double> threshold;
  std::vector<uint8_t> flags;
  std::vector<double> cover;
  std::vector<double> value;         // [n_nodes, leaf_width], leaves only
  std::vector<int64_t> cat_offsets;  // [n_nodes + 1] into cat_words
  std::vector<uint32_t> cat_words;   // category bitsets, bit c = category c is a member

  // Per tree [n_trees].
  std::vector<int64_t> tree_offsets;  // [n_trees + 1]; the root of tree t is tree_offsets[t]
  std::vector<int32_t> tree_output;   // output the tree adds to; -1 for vector leaves
  std::vector<int32_t> tree_depth;    // edges on the longest root-leaf path

  std::vector<double> base_score;  // [n_outputs], margin space
  int n_features = 0;
  int n_outputs = 1;
  int leaf_width = 1;
  Routing routing = Routing::kXGBoost;
  bool float32_margin = false;

  int64_t NumTrees() const { return static_cast<int64_t>(tree_offsets.size()) - 1; }
  int64_t NumNodes() const { return static_cast<int64_t>(left.size()); }
  bool IsLeaf(int64_t node) const { return left[node] < 0; }
  int MaxDepth() const;

  // Value as the split compares it: float32 rounding or zero snapping per routing.
  double TransformInput(double x) const {
    switch (routing) {
      case Routing::kXGBoost:
      case Routing::kSklearn:
        return static_cast<double>(ToFloat32(x));
      case Routing::kLightGBM:
        return std::fabs(x) <= kLightGBMZeroThreshold ? 0.0 : x;
      default:
        return x;
    }
  }

  // GoesLeft for a numeric split with the given threshold and flags, as 1 or 0, the
  // comparisons combined by bit operations rather than branches (the outcome of
  // `x < threshold` is as good as random to a branch predictor).
  static int64_t NumericGoesLeftBit(double x, double threshold, uint8_t f) {
    const int64_t missing = static_cast<int64_t>(x != x) |
                            (static_cast<int64_t>((f & kZeroMissing) != 0) &
                             static_cast<int64_t>(x == 0.0));
    const int64_t less = static_cast<int64_t>(x < threshold) |
                         (static_cast<int64_t>((f & kLeftAtInf) != 0) &
                          static_cast<int64_t>(x == threshold));
    const int64_t default_left = (f & kDefaultLeft) != 0;
    return (missing & default_left) | (~missing & less & 1);
  }

  // Does a (transformed) value go to the left child of split `node`?
  bool GoesLeft(int64_t node, double x) const {
    const uint8_t f = flags[node];
    if (f & kCategorical) return CategoryGoesLeft(node, x);
    if (std::isnan(x) || ((f & kZeroMissing) && x == 0.0)) return f & kDefaultLeft;
    return x < threshold[node] || ((f & kLeftAtInf) && x == threshold[node]);
  }

  bool CategoryGoesLeft(int64_t node, double x) const;
};

// A read-only view of n contiguous values owned elsewhere (the loader's arrays).
template <typename T>
class Span {
 public:
  Span() = default;
  Span(const T* data, size_t size) : data_(data), size_(size) {}
  explicit Span(const std::vector<T>& v) : data_(v.data()), size_(v.size()) {}
  const T& operator[](size_t i) const { return data_[i]; }
  size_t size() const { return size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  const T& back() const { return data_[size_ - 1]; }

 private:
  const T* data_ = nullptr;
  size_t size_ = 0;
};

// Raw arrays as the Python layer hands them over (see python/treelens/_spec.py), viewed in
// place: they must outlive the BuildForest call.
struct ForestArrays {
  Span<int64_t> tree_offsets;
  Span<int32_t> left, right, feature;  // local child indices, -1 at leaves
  Span<double> threshold;              // raw, as the library compares
  Span<uint8_t> default_left, missing, categorical;
  Span<int64_t> cat_offsets;  // [n_nodes + 1] into cat_values
  Span<int64_t> cat_values;   // member categories per categorical node
  Span<double> cover;
  Span<double> value;  // [n_nodes, leaf_width]
  Span<int32_t> tree_output;
  Span<double> base_score;
  int n_features = 0;
  int n_outputs = 1;
  int leaf_width = 1;
  std::string routing;
  bool float32_margin = false;
};

// The one validating builder: checks child ranges, reachability, acyclicity, features,
// finiteness (values, covers and the cover fractions TreeSHAP divides out), category
// offsets and values, and normalises thresholds and flags. Throws std::invalid_argument
// naming the bad tree/node/value.
Forest BuildForest(const ForestArrays& a);

Routing ParseRouting(const std::string& name);

}  // namespace treelens
