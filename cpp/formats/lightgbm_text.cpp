// The `Tree=` blocks of a LightGBM text model (save_model / model_to_string) into the
// concatenated node arrays of the loader contract (FlatTrees in python/treelens/_spec.py),
// trees parsed in parallel as LightGBM itself loads them.
//
// A tree with L leaves has internal nodes 0 .. L-2 and leaves ~j in LightGBM's layout; here
// internal node i sits at local index i and leaf j at L - 1 + j. Each tree is checked as the
// text format requires: its lines present with one value per node or leaf, numbers whole
// tokens, category sets consistent, children in range, every node but the root with one
// parent and reachable, split features in range, decision types valid. ValueError names
// the tree (the lowest-numbered bad one); a linear tree raises NotImplementedError.
//
// Only plain text is read here: between the first `Tree=` line and the `end of trees` line,
// printable ASCII, tabs and `\n` or `\r\n` line breaks. Anything else (or no `end of trees`
// line) returns None, and the caller reads the model the general way.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/parallel.h"
#include "formats/text_tokens.h"

namespace py = pybind11;

namespace treelens {
namespace {

// Lines of a tree block the loader reads.
enum Field {
  kNumLeaves, kNumCat, kIsLinear, kSplitFeature, kThreshold, kDecisionType, kLeftChild,
  kRightChild, kInternalCount, kSplitGain, kLeafValue, kLeafCount, kCatBoundaries,
  kCatThreshold, kNumFields
};
constexpr std::array<std::string_view, kNumFields> kFieldNames = {
    "num_leaves", "num_cat", "is_linear", "split_feature", "threshold", "decision_type",
    "left_child", "right_child", "internal_count", "split_gain", "leaf_value", "leaf_count",
    "cat_boundaries", "cat_threshold"};

constexpr int64_t kCategorical = 1;  // decision_type bits (LightGBM tree.h)
constexpr int64_t kDefaultLeft = 2;
// missing type (decision_type >> 2) & 3 -> the spec's missing mode: None, Zero, NaN.
constexpr uint8_t kMissingModes[3] = {2, 1, 0};

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view Strip(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// Whether s is plain text: printable ASCII, tabs, and `\n` or `\r\n` line breaks.
bool IsPlain(std::string_view s) {
  unsigned bad = 0;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    bad |= (c < 0x20u && c != '\t' && c != '\n' && c != '\r') | (c > 0x7eu);
  }
  if (bad) return false;
  for (size_t r = s.find('\r'); r != std::string_view::npos; r = s.find('\r', r + 1)) {
    if (r + 1 == s.size() || s[r + 1] != '\n') return false;
  }
  return true;
}

// One tree's `key=value` lines (the last of a repeated key wins).
struct TreeText {
  std::array<std::string_view, kNumFields> value;
  std::array<bool, kNumFields> has{};
  bool plain = true;
};

// Reads the lines of one block of plain text (its `Tree=` line excluded).
TreeText ReadBlock(std::string_view block) {
  TreeText out;
  while (!block.empty()) {
    const size_t eol = block.find('\n');
    std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol == std::string_view::npos ? block.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = Strip(line.substr(0, eq));
    for (int f = 0; f < kNumFields; ++f) {
      if (key == kFieldNames[f]) {
        out.value[f] = Strip(line.substr(eq + 1));
        out.has[f] = true;
        break;
      }
    }
  }
  return out;
}

// A tree's first problem: the message, and whether it is an unsupported (linear) tree.
struct Problem {
  std::string what;
  bool unsupported = false;
};

[[noreturn]] void Raise(int64_t tree, const Problem& p) {
  const std::string where = "tree " + std::to_string(tree);
  if (p.unsupported) {
    PyErr_SetString(PyExc_NotImplementedError, (where + " " + p.what).c_str());
    throw py::error_already_set();
  }
  throw std::invalid_argument("malformed LightGBM model: " + where + " " + p.what);
}

constexpr int64_t kAnyCount = -1;

// The numbers of one line into out; false (with the problem noted) on a bad token, or on a
// count other than `expected` (unless kAnyCount).
template <typename T>
bool Numbers(const TreeText& text, Field field, int64_t expected, std::vector<T>& out,
             Problem& problem) {
  out.clear();
  bool ok = true;
  ForEachToken(text.value[field], [&](std::string_view token) {
    T v{};
    ok = ok && ParseNumber(token, v);
    out.push_back(v);
  });
  const std::string_view key = kFieldNames[field];
  if (!ok) {
    problem.what = "has a bad '" + std::string(key) + "' line";
    return false;
  }
  if (expected != kAnyCount && static_cast<int64_t>(out.size()) != expected) {
    problem.what = "'" + std::string(key) + "' has " + std::to_string(out.size()) +
                   " values, expected " +
                   std::to_string(expected);
    return false;
  }
  return true;
}

// Per-thread working memory of one tree.
struct Scratch {
  std::vector<int64_t> feature, decision, left, right, bounds, words;
  std::vector<double> threshold, internal_count, gain, leaf_value, leaf_count;
  std::vector<int32_t> parents;
  std::vector<int64_t> frontier, next;
  std::vector<uint8_t> reached;
};

// The output arrays, all trees concatenated (nodes [n_nodes]).
struct Output {
  int32_t *left, *right, *feature;
  double *threshold, *cover, *value, *gain;
  uint8_t *default_left, *missing, *categorical;
};

// Category sets of one tree's categorical nodes: (local node, sorted members).
using CategorySets = std::vector<std::pair<int64_t, std::vector<int64_t>>>;

// A number line that may be absent: zeros when absent and allowed, else a problem.
template <typename T>
bool Optional(const TreeText& text, Field field, int64_t n, bool required, std::vector<T>& out,
              Problem& problem) {
  if (!text.has[field]) {
    if (required) {
      problem.what = "has no '" + std::string(kFieldNames[field]) + "' line";
      return false;
    }
    out.assign(static_cast<size_t>(n), T{});
    return true;
  }
  return Numbers(text, field, n, out, problem);
}

// Reads the category sets of the tree's categorical nodes; their thresholds become 0.
bool Categories(const TreeText& text, int64_t n_int, Scratch& s, CategorySets& sets,
                Problem& problem) {
  std::vector<int64_t> cat_nodes;
  for (int64_t i = 0; i < n_int; ++i) {
    if (s.decision[i] & kCategorical) cat_nodes.push_back(i);
  }
  if (cat_nodes.empty()) return true;
  std::vector<int64_t> n_cat_value;
  if (!Optional(text, kNumCat, 1, true, n_cat_value, problem)) return false;
  const int64_t n_cat = n_cat_value[0];
  if (!Optional(text, kCatBoundaries, kAnyCount, true, s.bounds, problem) ||
      !Optional(text, kCatThreshold, kAnyCount, true, s.words, problem)) {
    return false;
  }
  if (static_cast<int64_t>(s.bounds.size()) - 1 != n_cat) {
    problem.what = "'cat_boundaries' has " + std::to_string(s.bounds.size()) +
                   " values, expected " + std::to_string(n_cat) + " + 1";
    return false;
  }
  bool consistent = !s.bounds.empty() && s.bounds[0] == 0 &&
                    s.bounds.back() == static_cast<int64_t>(s.words.size());
  for (size_t k = 1; k < s.bounds.size(); ++k) consistent &= s.bounds[k] >= s.bounds[k - 1];
  for (const int64_t w : s.words) consistent &= w >= 0 && w <= 0xFFFFFFFFLL;
  if (!consistent) {
    problem.what = "has inconsistent cat_boundaries / cat_threshold";
    return false;
  }
  for (const int64_t node : cat_nodes) {
    const double k = s.threshold[node];
    if (!(k >= 0 && k < static_cast<double>(n_cat) && k == std::floor(k))) {
      problem.what = "node " + std::to_string(node) + " has category set index " +
                     std::to_string(k) + ", expected 0.." + std::to_string(n_cat - 1);
      return false;
    }
    const auto set = static_cast<int64_t>(k);
    std::vector<int64_t> members;
    for (int64_t w = s.bounds[set]; w < s.bounds[set + 1]; ++w) {
      for (int b = 0; b < 32; ++b) {
        if ((s.words[w] >> b) & 1) members.push_back(32 * (w - s.bounds[set]) + b);
      }
    }
    sets.emplace_back(node, std::move(members));
    s.threshold[node] = 0.0;
  }
  return true;
}

// Children in range, one parent per node, all reachable from the root; features and
// decision types valid. Children are written as local indices.
bool Shape(int64_t n_int, int64_t n_features, Scratch& s, Problem& problem) {
  const int64_t n = 2 * n_int + 1;
  for (std::vector<int64_t>* side : {&s.left, &s.right}) {
    for (int64_t& c : *side) {
      if (c < -(n_int + 1) || c >= n_int) {
        problem.what = "has a child index out of range";
        return false;
      }
      c = c >= 0 ? c : n_int + ~c;
    }
  }
  s.parents.assign(static_cast<size_t>(n), 0);
  s.parents[0] = 1;
  for (int64_t i = 0; i < n_int; ++i) {
    ++s.parents[s.left[i]];
    ++s.parents[s.right[i]];
  }
  for (const int32_t p : s.parents) {
    if (p != 1) {
      problem.what = "is not a tree (a node has no parent or several)";
      return false;
    }
  }
  s.reached.assign(static_cast<size_t>(n), 0);
  s.frontier.assign(1, 0);
  int64_t reached = 0;
  while (!s.frontier.empty()) {
    s.next.clear();
    for (const int64_t v : s.frontier) {
      s.reached[v] = 1;
      ++reached;
      if (v < n_int) {
        s.next.push_back(s.left[v]);
        s.next.push_back(s.right[v]);
      }
    }
    s.frontier.swap(s.next);
  }
  if (reached != n) {
    problem.what = "has nodes unreachable from the root";
    return false;
  }
  for (int64_t i = 0; i < n_int; ++i) {
    if (s.feature[i] < 0 || s.feature[i] >= n_features) {
      problem.what = "splits on a feature outside 0.." + std::to_string(n_features - 1);
      return false;
    }
  }
  for (int64_t i = 0; i < n_int; ++i) {
    const int64_t d = s.decision[i];
    if (d < 0 || d > 15 || ((d >> 2) & 3) > 2) {
      problem.what = "has an invalid decision_type";
      return false;
    }
  }
  return true;
}

// Parses and checks one tree of n_leaves leaves; with `out`, writes it at node `base`.
bool ParseTree(const TreeText& text, int64_t n_leaves, int64_t n_features, Scratch& s,
               const Output* out, int64_t base, CategorySets& sets, Problem& problem) {
  const int64_t n_int = n_leaves - 1;
  const bool splits = n_leaves > 1;
  if (!Optional(text, kSplitFeature, n_int, true, s.feature, problem) ||
      !Optional(text, kThreshold, n_int, true, s.threshold, problem) ||
      !Optional(text, kDecisionType, n_int, true, s.decision, problem) ||
      !Optional(text, kLeftChild, n_int, true, s.left, problem) ||
      !Optional(text, kRightChild, n_int, true, s.right, problem) ||
      !Optional(text, kInternalCount, n_int, splits, s.internal_count, problem) ||
      !Optional(text, kSplitGain, n_int, false, s.gain, problem) ||
      !Optional(text, kLeafValue, n_leaves, true, s.leaf_value, problem) ||
      !Optional(text, kLeafCount, n_leaves, splits, s.leaf_count, problem) ||
      !Categories(text, n_int, s, sets, problem)) {
    return false;
  }
  if (out == nullptr) return true;
  if (!Shape(n_int, n_features, s, problem)) return false;
  for (int64_t i = 0; i < n_int; ++i) {
    const int64_t g = base + i, d = s.decision[i];
    const bool cat = d & kCategorical;
    out->left[g] = static_cast<int32_t>(s.left[i]);
    out->right[g] = static_cast<int32_t>(s.right[i]);
    out->feature[g] = static_cast<int32_t>(s.feature[i]);
    out->threshold[g] = s.threshold[i];
    // LightGBM sends NaN to the right at categorical nodes, whatever the flags say.
    out->default_left[g] = static_cast<uint8_t>((d & kDefaultLeft) && !cat);
    out->missing[g] = cat ? 0 : kMissingModes[(d >> 2) & 3];
    out->categorical[g] = static_cast<uint8_t>(cat);
    out->cover[g] = s.internal_count[i];
    out->gain[g] = s.gain[i];
    out->value[g] = 0.0;
  }
  for (int64_t j = 0; j < n_leaves; ++j) {
    const int64_t g = base + n_int + j;
    out->left[g] = out->right[g] = -1;
    out->feature[g] = 0;
    out->threshold[g] = out->gain[g] = 0.0;
    out->default_left[g] = out->missing[g] = out->categorical[g] = 0;
    out->cover[g] = s.leaf_count[j];
    out->value[g] = s.leaf_value[j];
  }
  return true;
}

// Byte offset of character `chars` of a str (UTF-8 `data`, `size` bytes).
size_t ByteOffset(PyObject* text, const char* data, size_t size, int64_t chars) {
  if (PyUnicode_IS_ASCII(text)) return static_cast<size_t>(chars);
  size_t pos = 0;
  for (int64_t seen = 0; pos < size; ++pos) {
    if ((static_cast<unsigned char>(data[pos]) & 0xC0) != 0x80 && seen++ == chars) break;
  }
  return pos;
}

py::object LightGBMTrees(const py::object& text, int64_t start, int64_t n_features,
                         int64_t n_outputs, int64_t n_keep, int n_threads) {
  const char* data = nullptr;
  Py_ssize_t size = 0;
  size_t first = static_cast<size_t>(std::max<int64_t>(start, 0));
  if (PyBytes_Check(text.ptr())) {
    if (PyBytes_AsStringAndSize(text.ptr(), const_cast<char**>(&data), &size) != 0) {
      throw py::error_already_set();
    }
  } else if (PyUnicode_Check(text.ptr())) {
    data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
    if (data == nullptr) throw py::error_already_set();
    first = ByteOffset(text.ptr(), data, static_cast<size_t>(size), start);
  } else {
    throw py::type_error("text must be str or bytes");
  }
  const std::string_view all(data, static_cast<size_t>(size));
  if (first > all.size()) return py::none();

  // Block starts (each `Tree=` line) up to the `end of trees` line.
  std::vector<size_t> blocks;
  size_t end_line = std::string_view::npos, after_end = all.size();
  for (size_t pos = first; pos < all.size();) {
    const size_t eol = all.find('\n', pos);
    const size_t next = eol == std::string_view::npos ? all.size() : eol + 1;
    std::string_view line = all.substr(pos, next - pos);
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 5) == "Tree=") {
      blocks.push_back(pos);
    } else if (line == "end of trees") {
      end_line = pos;
      after_end = next;
      break;
    }
    pos = next;
  }
  if (end_line == std::string_view::npos || blocks.empty() || blocks[0] != first) {
    return py::none();
  }
  const auto n_trees = static_cast<int64_t>(blocks.size());
  blocks.push_back(end_line);

  std::vector<TreeText> texts(static_cast<size_t>(n_trees));
  ParallelFor(n_trees, n_threads, [&](int64_t t, int) {
    const std::string_view block = all.substr(blocks[t], blocks[t + 1] - blocks[t]);
    const size_t body = block.find('\n');
    if (IsPlain(block)) {
      texts[t] = ReadBlock(body == std::string_view::npos ? std::string_view()
                                                          : block.substr(body + 1));
    } else {
      texts[t].plain = false;
    }
  });
  for (const TreeText& t : texts) {
    if (!t.plain) return py::none();
  }

  // Leaves per tree, in tree order (linear trees and bad counts first, as they bound sizes).
  std::vector<int64_t> n_leaves(static_cast<size_t>(n_trees));
  for (int64_t t = 0; t < n_trees; ++t) {
    const TreeText& tt = texts[t];
    if (tt.has[kIsLinear] && tt.value[kIsLinear] != "0") {
      Raise(t, {"is a linear tree (linear_tree=True); linear trees are not supported", true});
    }
    std::vector<int64_t> leaves;
    Problem problem;
    if (!Optional(tt, kNumLeaves, 1, true, leaves, problem)) Raise(t, problem);
    if (leaves[0] < 1) Raise(t, {"has num_leaves=" + std::to_string(leaves[0])});
    // Before anything is allocated for them: a line holds at most (length + 1) / 2 values.
    const auto holds = [&tt](Field field) { return (tt.value[field].size() + 1) / 2; };
    if (static_cast<uint64_t>(leaves[0] - 1) > holds(kSplitFeature) ||
        static_cast<uint64_t>(leaves[0]) > holds(kLeafValue)) {
      Scratch scratch;
      CategorySets sets;
      ParseTree(tt, leaves[0], n_features, scratch, nullptr, 0, sets, problem);
      Raise(t, problem);
    }
    n_leaves[t] = leaves[0];
  }
  const int64_t kept = n_keep < 0 ? n_trees : std::min(n_keep, n_trees);
  n_outputs = std::max<int64_t>(n_outputs, 1);
  py::array_t<int64_t> offsets(kept + 1);
  int64_t* offset = offsets.mutable_data();
  offset[0] = 0;
  for (int64_t t = 0; t < kept; ++t) offset[t + 1] = offset[t] + 2 * n_leaves[t] - 1;
  const auto n = static_cast<py::ssize_t>(offset[kept]);
  py::array_t<int32_t> left(n), right(n), feature(n), output(kept);
  py::array_t<double> threshold(n), cover(n), value({n, py::ssize_t{1}}), gain(n);
  py::array_t<uint8_t> default_left(n), missing(n), categorical(n);
  const Output out{left.mutable_data(), right.mutable_data(), feature.mutable_data(),
                   threshold.mutable_data(), cover.mutable_data(), value.mutable_data(),
                   gain.mutable_data(), default_left.mutable_data(), missing.mutable_data(),
                   categorical.mutable_data()};
  for (int64_t t = 0; t < kept; ++t) output.mutable_data()[t] = static_cast<int32_t>(t % n_outputs);

  std::vector<Problem> problems(static_cast<size_t>(n_trees));
  std::vector<uint8_t> failed(static_cast<size_t>(n_trees), 0);
  std::vector<CategorySets> sets(static_cast<size_t>(n_trees));
  {
    py::gil_scoped_release release;
    std::vector<Scratch> scratch(static_cast<size_t>(ResolveThreads(n_threads)));
    ParallelFor(n_trees, n_threads, [&](int64_t t, int thread) {
      failed[t] = !ParseTree(texts[t], n_leaves[t], n_features, scratch[thread],
                             t < kept ? &out : nullptr, t < kept ? offset[t] : 0, sets[t],
                             problems[t]);
    });
  }
  for (int64_t t = 0; t < n_trees; ++t) {
    if (failed[t]) Raise(t, problems[t]);
  }

  // Category sets in CSR form over the kept nodes.
  py::array_t<int64_t> cat_offsets(n + 1);
  int64_t* cat_offset = cat_offsets.mutable_data();
  std::fill(cat_offset, cat_offset + n + 1, 0);
  int64_t members = 0;
  for (int64_t t = 0; t < kept; ++t) {
    for (const auto& [node, set] : sets[t]) {
      cat_offset[offset[t] + node + 1] = static_cast<int64_t>(set.size());
      members += static_cast<int64_t>(set.size());
    }
  }
  for (py::ssize_t g = 0; g < n; ++g) cat_offset[g + 1] += cat_offset[g];
  py::array_t<int64_t> cat_values(members);
  for (int64_t t = 0; t < kept; ++t) {
    for (const auto& [node, set] : sets[t]) {
      std::copy(set.begin(), set.end(), cat_values.mutable_data() + cat_offset[offset[t] + node]);
    }
  }

  py::array_t<int64_t> block_bytes(n_trees);
  for (int64_t t = 0; t < n_trees; ++t) {
    block_bytes.mutable_data()[t] = static_cast<int64_t>(blocks[t + 1] - blocks[t]);
  }
  py::dict result;
  result["n_trees"] = n_trees;
  result["block_bytes"] = block_bytes;
  // The region read is ASCII: characters past it are bytes past it.
  result["end"] = start + static_cast<int64_t>(after_end - first);
  result["tree_offsets"] = offsets;
  result["left"] = left;
  result["right"] = right;
  result["feature"] = feature;
  result["threshold"] = threshold;
  result["default_left"] = default_left;
  result["cover"] = cover;
  result["value"] = value;
  result["output"] = output;
  result["missing"] = missing;
  result["categorical"] = categorical;
  result["cat_offsets"] = cat_offsets;
  result["cat_values"] = cat_values;
  result["gain"] = gain;
  return result;
}

}  // namespace

void BindLightGBMText(py::module_& m) {
  m.def("lightgbm_trees", &LightGBMTrees, py::arg("text"), py::arg("start"),
        py::arg("n_features"), py::arg("n_outputs"), py::arg("n_keep"), py::arg("n_threads"),
        "The Tree= blocks of a LightGBM text model (str, or UTF-8 bytes) whose first Tree= "
        "line starts at character (bytes: byte) `start`: a dict of the first n_keep trees' "
        "node arrays [n_nodes] (FlatTrees fields; n_keep < 0 keeps all), n_trees, "
        "block_bytes int64 [n_trees] (each block's bytes) and end (where the text after the "
        "'end of trees' line starts); None unless the region is plain "
        "text. Every tree's lines are checked; ValueError / NotImplementedError name a tree.");
}

}  // namespace treelens
