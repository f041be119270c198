// Bindings for the model: the Forest class built from loader arrays, its raw-margin
// prediction and path-dependent SHAP values.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/areas.h"
#include "bindings/model.h"
#include "model/predict.h"

namespace treelens {
namespace {

// The loader's array as a contiguous array of T: the array itself when it already is one,
// else a converted copy, which `keep` holds while the builder reads it.
template <typename T>
Span<T> View(const py::array& a, const char* name, std::vector<py::object>& keep) {
  auto arr = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!arr) throw std::invalid_argument(std::string("cannot convert '") + name + "'");
  keep.push_back(arr);
  return Span<T>(arr.data(), static_cast<size_t>(arr.size()));
}

std::unique_ptr<Model> MakeModel(py::array tree_offsets, py::array left, py::array right,
                                 py::array feature, py::array threshold, py::array default_left,
                                 py::array missing, py::array categorical, py::array cat_offsets,
                                 py::array cat_values, py::array cover, py::array value,
                                 py::array tree_output, py::array base_score, int n_features,
                                 int n_outputs, const std::string& routing, bool float32_margin) {
  std::vector<py::object> keep;
  ForestArrays a;
  a.tree_offsets = View<int64_t>(tree_offsets, "tree_offsets", keep);
  a.left = View<int32_t>(left, "left", keep);
  a.right = View<int32_t>(right, "right", keep);
  a.feature = View<int32_t>(feature, "feature", keep);
  a.threshold = View<double>(threshold, "threshold", keep);
  a.default_left = View<uint8_t>(default_left, "default_left", keep);
  a.missing = View<uint8_t>(missing, "missing", keep);
  a.categorical = View<uint8_t>(categorical, "categorical", keep);
  a.cat_offsets = View<int64_t>(cat_offsets, "cat_offsets", keep);
  a.cat_values = View<int64_t>(cat_values, "cat_values", keep);
  a.cover = View<double>(cover, "cover", keep);
  a.value = View<double>(value, "value", keep);
  a.tree_output = View<int32_t>(tree_output, "tree_output", keep);
  a.base_score = View<double>(base_score, "base_score", keep);
  a.n_features = n_features;
  a.n_outputs = n_outputs;
  a.leaf_width = value.ndim() == 2 ? static_cast<int>(value.shape(1)) : 1;
  a.routing = routing;
  a.float32_margin = float32_margin;
  return std::make_unique<Model>(BuildForest(a));
}

}  // namespace

void BindForest(py::module_& m) {
  py::class_<Model>(m, "Forest")
      .def(py::init(&MakeModel), py::arg("tree_offsets"), py::arg("left"), py::arg("right"),
           py::arg("feature"), py::arg("threshold"), py::arg("default_left"), py::arg("missing"),
           py::arg("categorical"), py::arg("cat_offsets"), py::arg("cat_values"), py::arg("cover"),
           py::arg("value"), py::arg("tree_output"), py::arg("base_score"), py::arg("n_features"),
           py::arg("n_outputs"), py::arg("routing"), py::arg("float32_margin"))
      .def_property_readonly("n_trees", [](const Model& m) { return m.forest().NumTrees(); })
      .def_property_readonly("n_nodes", [](const Model& m) { return m.forest().NumNodes(); })
      .def_property_readonly("n_features", [](const Model& m) { return m.forest().n_features; })
      .def_property_readonly("n_outputs", [](const Model& m) { return m.forest().n_outputs; })
      .def_property_readonly("max_depth", [](const Model& m) { return m.forest().MaxDepth(); })
      .def(
          "predict",
          [](Model& m, py::array x, int n_threads, bool float64) {
            const auto& f = m.forest();
            const MatrixView v = ViewOf(x, f.n_features);
            CheckThreads(n_threads);
            py::array_t<double> out({v.n_rows, static_cast<int64_t>(f.n_outputs)});
            double* o = out.mutable_data();
            RunWithoutGil([&] { Predict(f, v, o, n_threads, float64); });
            return out;
          },
          py::arg("X"), py::arg("n_threads") = 0, py::arg("float64") = false,
          "Raw margins: [n_rows, n_outputs] float64, accumulated as the library does (float32 "
          "for XGBoost) or, with float64=True, in float64.")
      .def(
          "shap_values",
          [](Model& m, py::array x, int n_threads, bool with_output) -> py::object {
            const auto& f = m.forest();
            const MatrixView v = ViewOf(x, f.n_features);
            CheckThreads(n_threads);
            const PathShapPlan& plan = m.path_plan();
            const ObliviousShapPlan& tables = m.oblivious_plan();
            py::array_t<double> out(
                {v.n_rows, static_cast<int64_t>(f.n_features), static_cast<int64_t>(f.n_outputs)});
            double* o = out.mutable_data();
            py::array_t<double> margins({with_output ? v.n_rows : 0,
                                         static_cast<int64_t>(f.n_outputs)});
            double* mo = with_output ? margins.mutable_data() : nullptr;
            RunWithoutGil([&] {
              if (tables.usable) {
                ObliviousShapValues(f, tables, v, o, n_threads);
                if (mo != nullptr) Predict(f, v, mo, n_threads);
              } else {
                PathShapValues(f, plan, v, o, n_threads, mo);
              }
            });
            if (with_output) return py::make_tuple(out, margins);
            return std::move(out);
          },
          py::arg("X"), py::arg("n_threads") = 0, py::arg("with_output") = false,
          "Path-dependent SHAP values: [n_rows, n_features, n_outputs] float64; with "
          "with_output=True, the tuple (values, predict(X)).")
      .def(
          "shap_scratch_bytes",
          [](Model& m, int n_threads) {
            CheckThreads(n_threads);
            return PathShapScratchBytes(m.forest(), m.path_plan(), n_threads);
          },
          py::arg("n_threads") = 0, "Bytes of working memory shap_values needs.")
      .def(
          "expected_value",
          [](Model& m) {
            const auto& ev = m.path_plan().expected_value;
            py::array_t<double> out(static_cast<py::ssize_t>(ev.size()));
            std::copy(ev.begin(), ev.end(), out.mutable_data());
            return out;
          },
          "Path-dependent expected value per output: [n_outputs] float64.")
      .def(
          "saabas_values",
          [](Model& m, py::array x, int n_threads) {
            const auto& f = m.forest();
            const MatrixView v = ViewOf(x, f.n_features);
            CheckThreads(n_threads);
            const std::vector<double>& means = m.node_means();
            py::array_t<double> out(
                {v.n_rows, static_cast<int64_t>(f.n_features), static_cast<int64_t>(f.n_outputs)});
            double* o = out.mutable_data();
            RunWithoutGil([&] { SaabasValues(f, means, v, o, n_threads); });
            return out;
          },
          py::arg("X"), py::arg("n_threads") = 0,
          "Saabas values: [n_rows, n_features, n_outputs] float64.")
      .def(
          "node_counts",
          [](Model& m, py::array x, int n_threads) {
            const auto& f = m.forest();
            const MatrixView v = ViewOf(x, f.n_features);
            CheckThreads(n_threads);
            py::array_t<int64_t> out(static_cast<py::ssize_t>(f.NumNodes()));
            int64_t* o = out.mutable_data();
            RunWithoutGil([&] { NodeCounts(f, v, o, n_threads); });
            return out;
          },
          py::arg("X"), py::arg("n_threads") = 0,
          "Rows of X passing through each node: [n_nodes] int64 (nodes of all trees).");
}

}  // namespace treelens
