// Shared pieces of the binding layer: the Python-visible model object (a Forest plus the
// algorithm views built from it on first use), argument checks done with the GIL held, and
// the one way a core call runs with the GIL released.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/parallel.h"
#include "model/forest.h"
#include "model/matrix.h"
#include "path_shap/oblivious_shap.h"
#include "path_shap/path_shap.h"
#include "path_shap/saabas.h"
#include "permutation/heap_forest.h"

namespace treelens {

namespace py = pybind11;

class Model {
 public:
  explicit Model(Forest forest) : forest_(std::move(forest)) {}
  const Forest& forest() const { return forest_; }
  // Built on first use while the GIL is held, so no two threads build it at once.
  const PathShapPlan& path_plan() {
    if (!path_plan_) path_plan_ = std::make_unique<PathShapPlan>(BuildPathShapPlan(forest_));
    return *path_plan_;
  }
  // Cover-weighted node means for Saabas values, built on first use like path_plan().
  const std::vector<double>& node_means() {
    if (!node_means_) node_means_ = std::make_unique<std::vector<double>>(NodeMeans(forest_));
    return *node_means_;
  }

  // The heap view of the shallow trees for permutation importance, built on first use like
  // path_plan().
  const detail::HeapForest& heap_forest() {
    if (!heap_forest_) heap_forest_ = std::make_unique<detail::HeapForest>(forest_);
    return *heap_forest_;
  }

  // Leaf tables, when every tree is oblivious (usable == false otherwise).
  const ObliviousShapPlan& oblivious_plan() {
    if (!oblivious_plan_) {
      oblivious_plan_ =
          std::make_unique<ObliviousShapPlan>(BuildObliviousShapPlan(forest_, path_plan()));
    }
    return *oblivious_plan_;
  }

 private:
  Forest forest_;
  std::unique_ptr<PathShapPlan> path_plan_;
  std::unique_ptr<std::vector<double>> node_means_;
  std::unique_ptr<ObliviousShapPlan> oblivious_plan_;
  std::unique_ptr<detail::HeapForest> heap_forest_;
};

// A strided float32/float64 view of X: [n_rows, n_features]; throws on other shapes/dtypes.
inline MatrixView ViewOf(const py::array& x, int64_t n_features) {
  if (x.ndim() != 2) {
    throw std::invalid_argument("X must be a 2-D array, got " + std::to_string(x.ndim()) +
                                " dimension(s)");
  }
  MatrixView v;
  if (py::isinstance<py::array_t<double>>(x)) {
    v.is_float32 = false;
  } else if (py::isinstance<py::array_t<float>>(x)) {
    v.is_float32 = true;
  } else {
    throw std::invalid_argument("X must have dtype float32 or float64, got " +
                                std::string(py::str(x.dtype())));
  }
  v.data = static_cast<const char*>(x.data());
  v.n_rows = x.shape(0);
  v.n_cols = x.shape(1);
  v.row_stride = x.strides(0);
  v.col_stride = x.strides(1);
  if (v.n_cols != n_features) {
    throw std::invalid_argument("X has " + std::to_string(v.n_cols) +
                                " features, the model expects " + std::to_string(n_features));
  }
  return v;
}

// 0 means all cores; negative counts are refused.
inline int CheckThreads(int n_threads) {
  if (n_threads < 0) throw std::invalid_argument("n_threads must be positive (0 = all cores)");
  return n_threads;
}

// Runs `core` (a call into the core) with the GIL released. A signal handler's exception
// (Ctrl-C's KeyboardInterrupt) stops it between blocks and is raised here, the GIL held again
// and the core's memory released; other exceptions pass through unchanged.
template <typename Core>
void RunWithoutGil(Core&& core) {
  std::unique_ptr<py::error_already_set> raised;
  {
    const InterruptScope scope([&raised] {
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() == 0) return false;
      raised = std::make_unique<py::error_already_set>();
      return true;
    });
    try {
      py::gil_scoped_release release;
      std::forward<Core>(core)();
    } catch (const Interrupted&) {
      if (!raised) throw;
    }
  }
  if (raised) throw py::error_already_set(*raised);
}

}  // namespace treelens
