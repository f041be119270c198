// Bindings for path-dependent SHAP interaction values: checks with the GIL held, then the
// core writes into the caller's output array with the GIL released.
#include <string>
#include <vector>

#include "bindings/areas.h"
#include "bindings/model.h"
#include "path_shap/path_interactions.h"

namespace treelens {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + ")";
}

std::vector<int32_t> FeatureList(const py::array& features, int64_t n_features) {
  auto arr = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(features);
  if (!arr || arr.ndim() != 1) {
    throw std::invalid_argument("features must be a 1-D array of feature indices");
  }
  if (arr.size() == 0) throw std::invalid_argument("features must select at least one feature");
  std::vector<int32_t> out(arr.size());
  for (py::ssize_t i = 0; i < arr.size(); ++i) {
    const int64_t f = arr.data()[i];
    if (f < 0 || f >= n_features) {
      throw std::out_of_range("feature index " + std::to_string(f) + " is out of range for " +
                              std::to_string(n_features) + " features");
    }
    out[i] = static_cast<int32_t>(f);
  }
  return out;
}

void InteractionValues(Model& model, const py::array& x, py::array out, const py::array& features,
                       int n_threads) {
  const Forest& f = model.forest();
  const MatrixView v = ViewOf(x, f.n_features);
  CheckThreads(n_threads);
  const std::vector<int32_t> selected = FeatureList(features, f.n_features);
  const int64_t s = static_cast<int64_t>(selected.size());
  const std::vector<int64_t> want{v.n_rows, s, s, static_cast<int64_t>(f.n_outputs)};
  std::vector<int64_t> got(out.shape(), out.shape() + out.ndim());
  if (!out.dtype().is(py::dtype::of<double>()) || !(out.flags() & py::array::c_style) ||
      !out.writeable() || got != want) {
    throw std::invalid_argument("out must be a writeable C-contiguous float64 array of shape " +
                                ShapeText(want) + ", got dtype " +
                                std::string(py::str(out.dtype())) + " and shape " +
                                ShapeText(got));
  }
  const PathShapPlan& plan = model.path_plan();
  double* o = static_cast<double*>(out.mutable_data());
  RunWithoutGil([&] { PathInteractionValues(f, plan, v, selected, o, n_threads); });
}

}  // namespace

void BindPathInteractions(py::module_& m) {
  m.def("path_interaction_values", &InteractionValues, py::arg("forest"), py::arg("X"),
        py::arg("out"), py::arg("features"), py::arg("n_threads") = 0,
        "Path-dependent SHAP interaction values of the selected features written into out: "
        "[n_rows, s, s, n_outputs] float64, s = len(features).");
  m.def(
      "path_interaction_scratch_bytes",
      [](Model& model, int64_t s, int n_threads) {
        CheckThreads(n_threads);
        return PathInteractionScratchBytes(model.forest(), model.path_plan(), s, n_threads);
      },
      py::arg("forest"), py::arg("s"), py::arg("n_threads") = 0,
      "Bytes of working memory path_interaction_values needs for s selected features.");
}

}  // namespace treelens
