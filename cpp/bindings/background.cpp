// Bindings for background (interventional) SHAP: free functions taking the model.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "background_shap/background_shap.h"
#include "bindings/areas.h"
#include "bindings/model.h"

namespace treelens {
namespace {

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;

// weights: [n_background] float64, checked against the background.
Doubles CheckWeights(const py::array& weights, int64_t n_background) {
  Doubles w = Doubles::ensure(weights);
  if (!w || w.ndim() != 1 || w.shape(0) != n_background) {
    throw std::invalid_argument("data_weights must be a 1-D array of " +
                                std::to_string(n_background) + " weights (one per background row)");
  }
  return w;
}

// a: [n_rows, n_outputs] float64.
Doubles CheckTable(const py::array& a, int64_t n_rows, int n_outputs, const char* name) {
  Doubles d = Doubles::ensure(a);
  if (!d || d.ndim() != 2 || d.shape(0) != n_rows || d.shape(1) != n_outputs) {
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(n_rows) +
                                ", " + std::to_string(n_outputs) + ")");
  }
  return d;
}

py::tuple Values(Model& model, py::array x, py::array background, py::array weights,
                 int n_threads, bool interactions) {
  const Forest& f = model.forest();
  const MatrixView v = ViewOf(x, f.n_features);
  Background bg{ViewOf(background, f.n_features), nullptr};
  const Doubles w = CheckWeights(weights, bg.rows.n_rows);
  bg.weights = w.data();
  CheckThreads(n_threads);
  const int64_t m = f.n_features;
  const int64_t k = f.n_outputs;
  py::array_t<double> out = interactions ? py::array_t<double>({v.n_rows, m, m, k})
                                         : py::array_t<double>({v.n_rows, m, k});
  py::array_t<double> expected(k);
  double* o = out.mutable_data();
  double* e = expected.mutable_data();
  RunWithoutGil([&] {
    if (interactions) {
      BackgroundInteractionValues(f, v, bg, o, e, n_threads);
    } else {
      BackgroundShapValues(f, v, bg, o, e, n_threads);
    }
  });
  return py::make_tuple(std::move(out), std::move(expected));
}

}  // namespace

void BindBackgroundShap(py::module_& m) {
  m.def(
      "background_shap_values",
      [](Model& model, py::array x, py::array background, py::array weights, int n_threads) {
        return Values(model, x, background, weights, n_threads, false);
      },
      py::arg("forest"), py::arg("X"), py::arg("background"), py::arg("weights"),
      py::arg("n_threads") = 0,
      "Background SHAP of the raw margin: (phi [n_rows, n_features, n_outputs], expected "
      "[n_outputs]) float64.");
  m.def(
      "background_interaction_values",
      [](Model& model, py::array x, py::array background, py::array weights, int n_threads) {
        return Values(model, x, background, weights, n_threads, true);
      },
      py::arg("forest"), py::arg("X"), py::arg("background"), py::arg("weights"),
      py::arg("n_threads") = 0,
      "Background SHAP interaction values of the raw margin: (out [n_rows, n_features, "
      "n_features, n_outputs], expected [n_outputs]) float64.");
  m.def(
      "background_rescaled_shap_values",
      [](Model& model, py::array x, py::array background, py::array weights, py::array fx,
         py::array tx, py::object shift, py::array fz, py::array tz, int n_threads) {
        const Forest& f = model.forest();
        const MatrixView v = ViewOf(x, f.n_features);
        Background bg{ViewOf(background, f.n_features), nullptr};
        const Doubles w = CheckWeights(weights, bg.rows.n_rows);
        bg.weights = w.data();
        const int k = f.n_outputs;
        const Doubles fx_d = CheckTable(fx, v.n_rows, k, "fx");
        const Doubles tx_d = CheckTable(tx, v.n_rows, k, "tx");
        const Doubles fz_d = CheckTable(fz, bg.rows.n_rows, k, "fz");
        const Doubles tz_d = CheckTable(tz, bg.rows.n_rows, k, "tz");
        Doubles shift_d;
        if (!shift.is_none()) shift_d = CheckTable(shift, v.n_rows, k, "shift");
        const double* sh = shift.is_none() ? nullptr : shift_d.data();
        CheckThreads(n_threads);
        if (bg.rows.n_rows == 0) throw std::invalid_argument("background data has no rows");
        py::array_t<double> out({v.n_rows, static_cast<int64_t>(f.n_features), static_cast<int64_t>(k)});
        double* o = out.mutable_data();
        RunWithoutGil([&] {
          BackgroundRescaledShapValues(f, v, bg, fx_d.data(), tx_d.data(), sh, fz_d.data(),
                                       tz_d.data(), o, n_threads);
        });
        return out;
      },
      py::arg("forest"), py::arg("X"), py::arg("background"), py::arg("weights"), py::arg("fx"),
      py::arg("tx"), py::arg("shift"), py::arg("fz"), py::arg("tz"), py::arg("n_threads") = 0,
      "Per-background-row rescaled SHAP of a transformed output: [n_rows, n_features, "
      "n_outputs] float64.");
}

}  // namespace treelens
