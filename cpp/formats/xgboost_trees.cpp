// XGBoost trees (the node arrays of `gradient_booster.model.trees`, gathered over the
// selected trees) into the concatenated node arrays of the loader contract (FlatTrees in
// python/treelens/_spec.py), in one pass per step instead of one NumPy pass per field.
//
// Only nodes reachable from each tree's root are kept (pruned models keep deleted nodes in
// their arrays): a tree whose nodes are each the child of exactly one node with a smaller
// index keeps its numbering; any other is walked breadth-first from its root (each level:
// the left children of its splits, then their right children), which rejects child
// indices out of range and nodes reached twice. Errors are ValueError naming the tree.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/forest.h"

namespace py = pybind11;

namespace treelens {
namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

[[noreturn]] void Fail(int64_t tree, const std::string& what) {
  throw std::invalid_argument("XGBoost model: tree " + std::to_string(tree) + " " + what);
}

template <typename T>
Array<T> Checked(const py::object& a, size_t n, const char* name) {
  Array<T> out = Array<T>::ensure(a);
  if (!out || out.ndim() != 1 || static_cast<size_t>(out.size()) != n) {
    throw std::invalid_argument(std::string("XGBoost model: '") + name +
                                "' does not hold one value per node");
  }
  return out;
}

// Whether the tree at left/right [n] is stored in XGBoost's layout without deleted nodes:
// every node but the root is the child of exactly one split with a smaller index.
bool KeepsNumbering(const int64_t* left, const int64_t* right, int64_t n,
                    std::vector<int32_t>& parents) {
  parents.assign(static_cast<size_t>(n), 0);
  int64_t splits = 0;
  for (int64_t p = 0; p < n; ++p) {
    if (left[p] == -1) continue;
    ++splits;
    for (const int64_t kid : {left[p], right[p]}) {
      if (kid <= p || kid >= n) return false;
      ++parents[kid];
    }
  }
  if (2 * splits != n - 1) return false;
  for (int64_t i = 1; i < n; ++i) {
    if (parents[i] != 1) return false;
  }
  return true;
}

// Nodes reachable from the root, breadth-first (local indices), appended to `order`.
void Walk(const int64_t* left, const int64_t* right, int64_t n, int64_t tree,
          std::vector<int64_t>& order, std::vector<uint8_t>& visited) {
  visited.assign(static_cast<size_t>(n), 0);
  visited[0] = 1;
  std::vector<int64_t> frontier{0}, inner, kids;
  while (!frontier.empty()) {
    order.insert(order.end(), frontier.begin(), frontier.end());
    inner.clear();
    for (const int64_t v : frontier) {
      if (left[v] != -1) inner.push_back(v);
    }
    kids.clear();
    for (const int64_t v : inner) kids.push_back(left[v]);
    for (const int64_t v : inner) kids.push_back(right[v]);
    for (size_t k = 0; k < kids.size(); ++k) {
      if (kids[k] < 0 || kids[k] >= n) {
        const int64_t node = inner[k % inner.size()];
        Fail(tree, "node " + std::to_string(node) + " has a child index out of range (left " +
                       std::to_string(left[node]) + ", right " + std::to_string(right[node]) +
                       ", " + std::to_string(n) + " nodes)");
      }
    }
    for (const int64_t kid : kids) {
      if (visited[kid]) Fail(tree, "has a node reached twice (cycle or shared child)");
    }
    for (const int64_t kid : kids) {
      if (visited[kid]) Fail(tree, "has a node reached twice (shared child)");
      visited[kid] = 1;
    }
    frontier.swap(kids);
  }
}

// The first error of one kind over the kept nodes: (tree, message) once set.
struct FirstError {
  int64_t tree = -1;
  std::string what;
  void Note(int64_t t, const std::string& message) {
    if (tree < 0) {
      tree = t;
      what = message;
    }
  }
  void Raise() const {
    if (tree >= 0) Fail(tree, what);
  }
};

py::dict XGBoostTrees(const py::array& sizes_in, const py::object& left_in,
                      const py::object& right_in, const py::object& feature_in,
                      const py::object& conditions_in, const py::object& default_left_in,
                      const py::object& split_type_in, const py::object& cover_in,
                      const py::object& gain_in, const py::object& weights_in,
                      int64_t n_features, int64_t first_tree) {
  const Array<int64_t> sizes = Array<int64_t>::ensure(sizes_in);
  if (!sizes || sizes.ndim() != 1) throw std::invalid_argument("sizes must be a 1-D array");
  const int64_t n_trees = sizes.size();
  const int64_t* size = sizes.data();
  std::vector<int64_t> starts(static_cast<size_t>(n_trees) + 1, 0);
  for (int64_t i = 0; i < n_trees; ++i) {
    if (size[i] <= 0) Fail(first_tree + i, "has no nodes");
    starts[i + 1] = starts[i] + size[i];
  }
  const size_t total = static_cast<size_t>(starts.back());
  const auto left = Checked<int64_t>(left_in, total, "left_children");
  const auto right = Checked<int64_t>(right_in, total, "right_children");
  const auto feature = Checked<int64_t>(feature_in, total, "split_indices");
  const auto conditions = Checked<float>(conditions_in, total, "split_conditions");
  const auto default_left = Checked<int64_t>(default_left_in, total, "default_left");
  const auto split_type = Checked<int64_t>(split_type_in, total, "split_type");
  const auto cover = Checked<float>(cover_in, total, "sum_hessian");
  const bool has_gain = !gain_in.is_none();
  const bool has_weights = !weights_in.is_none();
  Array<float> gain, weights;
  if (has_gain) gain = Checked<float>(gain_in, total, "loss_changes");
  if (has_weights) {
    weights = Checked<float>(weights_in, static_cast<size_t>(n_trees), "weight_drop");
  }

  // Outputs sized for every stored node; only the first `kept` are returned.
  const auto n_all = static_cast<py::ssize_t>(total);
  py::array_t<int64_t> offsets(n_trees + 1), order_out(n_all);
  py::array_t<int32_t> new_left(n_all), new_right(n_all), new_feature(n_all);
  py::array_t<double> threshold(n_all), node_cover(n_all), value({n_all, py::ssize_t{1}});
  py::array_t<uint8_t> new_default(n_all), categorical(n_all);
  py::array_t<double> node_gain(has_gain ? n_all : 0);
  const int64_t *l = left.data(), *r = right.data(), *feat = feature.data();
  const int64_t *dl = default_left.data(), *st = split_type.data();
  const float *cond = conditions.data(), *cov = cover.data();
  const float* gains = has_gain ? gain.data() : nullptr;
  int64_t *offset = offsets.mutable_data(), *o_order = order_out.mutable_data();
  int32_t *o_left = new_left.mutable_data(), *o_right = new_right.mutable_data();
  int32_t* o_feature = new_feature.mutable_data();
  double *o_threshold = threshold.mutable_data(), *o_cover = node_cover.mutable_data();
  double *o_gain = node_gain.mutable_data(), *o_value = value.mutable_data();
  uint8_t *o_default = new_default.mutable_data(), *o_categorical = categorical.mutable_data();
  FirstError bad_feature, bad_default, bad_split_type;
  std::vector<int32_t> parents;
  std::vector<uint8_t> visited;
  std::vector<int64_t> walked, local;
  offset[0] = 0;
  for (int64_t i = 0; i < n_trees; ++i) {
    const int64_t tree = first_tree + i, a = starts[i], n = size[i];
    // Kept nodes, root first, as indices into the gathered arrays, and their new numbers.
    const bool same = KeepsNumbering(l + a, r + a, n, parents);
    if (!same) {
      walked.clear();
      Walk(l + a, r + a, n, tree, walked, visited);
      local.assign(static_cast<size_t>(n), -1);
      for (size_t k = 0; k < walked.size(); ++k) local[walked[k]] = static_cast<int64_t>(k);
    }
    const int64_t kept_here = same ? n : static_cast<int64_t>(walked.size());
    offset[i + 1] = offset[i] + kept_here;
    const float weight = has_weights ? weights.data()[i] : 1.0f;
    for (int64_t k = 0; k < kept_here; ++k) {
      const int64_t j = offset[i] + k, g = a + (same ? k : walked[k]);
      o_order[j] = g;
      const bool leaf = l[g] == -1;
      const int64_t type = leaf ? 0 : st[g];
      const int64_t f = leaf ? 0 : feat[g];
      if (!leaf && (f < 0 || f >= n_features)) {
        bad_feature.Note(tree, "node " + std::to_string(g - a) + " splits on feature " +
                                   std::to_string(f) + ", but the model has " +
                                   std::to_string(n_features));
      }
      const int64_t d = dl[g];
      if (d != 0 && d != 1) {
        bad_default.Note(tree, "'default_left' holds values other than 0 and 1");
      }
      if (type != 0 && type != 1) bad_split_type.Note(tree, "has an unknown split_type");
      o_left[j] = leaf ? -1 : static_cast<int32_t>(same ? l[g] : local[l[g]]);
      o_right[j] = leaf ? -1 : static_cast<int32_t>(same ? r[g] : local[r[g]]);
      o_feature[j] = static_cast<int32_t>(f);
      o_threshold[j] = leaf || type == 1 ? 0.0 : static_cast<double>(cond[g]);
      o_default[j] = static_cast<uint8_t>(d == 1 && !leaf);
      o_categorical[j] = static_cast<uint8_t>(type == 1);
      o_cover[j] = static_cast<double>(cov[g]);
      if (has_gain) o_gain[j] = leaf ? 0.0 : static_cast<double>(gains[g]);
      // As XGBoost scales dart leaves: a float32 product.
      const float leaf_value = has_weights ? cond[g] * weight : cond[g];
      o_value[j] = leaf ? static_cast<double>(leaf_value) : 0.0;
    }
  }
  bad_feature.Raise();
  bad_default.Raise();
  bad_split_type.Raise();
  const py::slice kept(0, offset[n_trees], 1);

  py::dict out;
  out["tree_offsets"] = offsets;
  out["order"] = order_out[kept];
  out["left"] = new_left[kept];
  out["right"] = new_right[kept];
  out["feature"] = new_feature[kept];
  out["threshold"] = threshold[kept];
  out["default_left"] = new_default[kept];
  out["categorical"] = categorical[kept];
  out["cover"] = node_cover[kept];
  out["gain"] = has_gain ? py::object(node_gain[kept]) : py::object(py::none());
  out["value"] = value[kept];
  return out;
}

// One node field of T trees as JSON gives it (pieces: T lists of Python numbers) in one
// array: int64 (every element an int or bool) or float32 (every element a float, rounded as
// NumPy rounds it). None when a piece is not a list of `sizes[t]` such numbers (an int
// beyond int64 included): the caller then reads the field the general way.
py::object GatherLists(const py::list& pieces, const py::array& sizes_in, bool integers) {
  const Array<int64_t> sizes = Array<int64_t>::ensure(sizes_in);
  if (!sizes || sizes.ndim() != 1 || static_cast<size_t>(sizes.size()) != pieces.size()) {
    return py::none();
  }
  int64_t total = 0;
  for (size_t t = 0; t < pieces.size(); ++t) {
    PyObject* piece = pieces[t].ptr();
    if (!PyList_Check(piece) || PyList_GET_SIZE(piece) != sizes.data()[t]) return py::none();
    total += sizes.data()[t];
  }
  if (integers) {
    py::array_t<int64_t> out(total);
    int64_t* dst = out.mutable_data();
    for (size_t t = 0; t < pieces.size(); ++t) {
      PyObject* piece = pieces[t].ptr();
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(piece); ++i) {
        PyObject* item = PyList_GET_ITEM(piece, i);
        int overflow = 0;
        if (!PyLong_Check(item)) return py::none();
        const long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
          PyErr_Clear();
          return py::none();
        }
        *dst++ = static_cast<int64_t>(v);
      }
    }
    return out;
  }
  py::array_t<float> out(total);
  float* dst = out.mutable_data();
  for (size_t t = 0; t < pieces.size(); ++t) {
    PyObject* piece = pieces[t].ptr();
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(piece); ++i) {
      PyObject* item = PyList_GET_ITEM(piece, i);
      if (!PyFloat_Check(item)) return py::none();
      *dst++ = ToFloat32(PyFloat_AS_DOUBLE(item));
    }
  }
  return out;
}

}  // namespace

void BindXGBoostTrees(py::module_& m) {
  m.def("gather_lists", &GatherLists, py::arg("pieces"), py::arg("sizes"),
        py::arg("integers"),
        "T lists of numbers (sizes int64 [T]) -> one int64 or float32 array [sum(sizes)], or "
        "None unless every list holds sizes[t] ints (integers) / floats (otherwise).");
  m.def("xgboost_trees", &XGBoostTrees, py::arg("sizes"), py::arg("left"), py::arg("right"),
        py::arg("feature"), py::arg("conditions"), py::arg("default_left"),
        py::arg("split_type"), py::arg("cover"), py::arg("gain"), py::arg("weight_drop"),
        py::arg("n_features"), py::arg("first_tree"),
        "XGBoost node arrays gathered over T selected trees (sizes int64 [T]; nodes [sum]) "
        "-> dict of the kept nodes' arrays [N]: tree_offsets [T + 1], order (gathered index "
        "of each kept node), left / right / feature int32, threshold / cover / gain float64, "
        "default_left / categorical uint8, value float64 [N, 1] (leaf values times "
        "weight_drop [T], in float32); ValueError naming the tree on a malformed one.");
}

}  // namespace treelens
