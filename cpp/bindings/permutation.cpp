// Bindings for the permutation importance engine.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/areas.h"
#include "bindings/model.h"
#include "permutation/permutation.h"

namespace treelens {
namespace {

template <typename T>
py::array_t<T, py::array::c_style | py::array::forcecast> Contiguous(const py::array& a,
                                                                     const char* name, int ndim) {
  auto arr = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!arr) throw std::invalid_argument(std::string("cannot convert '") + name + "' to integers");
  if (arr.ndim() != ndim) {
    throw std::invalid_argument(std::string("'") + name + "' must have " + std::to_string(ndim) +
                                " dimension(s), got " + std::to_string(arr.ndim()));
  }
  return arr;
}

// The engine's inputs, checked while holding the GIL.
struct PermutationArgs {
  MatrixView x;
  FeatureGroups groups;
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> perms;
  double* baseline = nullptr;
  int64_t n_repeats = 0;
};

double* WritableBaseline(const py::object& baseline, int64_t n_rows, int64_t n_outputs) {
  if (baseline.is_none()) return nullptr;
  using Out = py::array_t<double, py::array::c_style>;
  const bool ok = py::isinstance<Out>(baseline);
  Out b = ok ? baseline.cast<Out>() : Out();
  if (!ok || !b.writeable() || b.ndim() != 2 || b.shape(0) != n_rows || b.shape(1) != n_outputs) {
    throw std::invalid_argument("baseline must be a writable C-contiguous float64 array of shape (" +
                                std::to_string(n_rows) + ", " + std::to_string(n_outputs) + ")");
  }
  return b.mutable_data();
}

PermutationArgs CheckArgs(const Forest& f, const py::array& x, const py::array& group_offsets,
                          const py::array& group_cols, const py::array& perms, int n_threads,
                          const py::object& baseline) {
  PermutationArgs a;
  a.x = ViewOf(x, f.n_features);
  CheckThreads(n_threads);
  auto offsets = Contiguous<int64_t>(group_offsets, "group_offsets", 1);
  auto cols = Contiguous<int32_t>(group_cols, "group_cols", 1);
  a.perms = Contiguous<int64_t>(perms, "perms", 2);
  if (a.perms.shape(1) != a.x.n_rows) {
    throw std::invalid_argument("perms has shape (" + std::to_string(a.perms.shape(0)) + ", " +
                                std::to_string(a.perms.shape(1)) + "), expected (n_repeats, " +
                                std::to_string(a.x.n_rows) + ")");
  }
  a.groups.offsets.assign(offsets.data(), offsets.data() + offsets.size());
  a.groups.cols.assign(cols.data(), cols.data() + cols.size());
  a.n_repeats = a.perms.shape(0);
  a.baseline = WritableBaseline(baseline, a.x.n_rows, f.n_outputs);
  return a;
}

int64_t NumGroups(const FeatureGroups& g) { return g.offsets.empty() ? 0 : g.NumGroups(); }

py::array_t<double> PermutedMarginsPy(Model& m, const py::array& x, const py::array& group_offsets,
                                      const py::array& group_cols, const py::array& perms,
                                      int n_threads, const py::object& baseline) {
  const Forest& f = m.forest();
  PermutationArgs a = CheckArgs(f, x, group_offsets, group_cols, perms, n_threads, baseline);
  const detail::HeapForest* heap = &m.heap_forest();
  py::array_t<double> out({NumGroups(a.groups), a.n_repeats, a.x.n_rows,
                           static_cast<int64_t>(f.n_outputs)});
  double* o = out.mutable_data();
  RunWithoutGil([&] {
    PermutedMargins(f, a.x, a.groups, a.perms.data(), a.n_repeats, o, n_threads, a.baseline, heap);
  });
  return out;
}

py::array_t<double> PermutedResidualSumsPy(Model& m, const py::array& x,
                                           const py::array& group_offsets,
                                           const py::array& group_cols, const py::array& perms,
                                           const py::array& y, const py::object& weights,
                                           bool exp_link, int n_threads,
                                           const py::object& baseline) {
  const Forest& f = m.forest();
  PermutationArgs a = CheckArgs(f, x, group_offsets, group_cols, perms, n_threads, baseline);
  const detail::HeapForest* heap = &m.heap_forest();
  using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;
  Doubles yy = Doubles::ensure(y);
  if (!yy || yy.size() != a.x.n_rows * f.n_outputs) {
    throw std::invalid_argument("y must hold n_rows x n_outputs = " +
                                std::to_string(a.x.n_rows * f.n_outputs) + " numbers");
  }
  Doubles w;
  if (!weights.is_none()) {
    w = Doubles::ensure(weights);
    if (!w || w.ndim() != 1 || w.shape(0) != a.x.n_rows) {
      throw std::invalid_argument("weights must be a 1-D array of " + std::to_string(a.x.n_rows) +
                                  " numbers");
    }
  }
  py::array_t<double> sums({NumGroups(a.groups), a.n_repeats, static_cast<int64_t>(f.n_outputs),
                            int64_t{2}});
  double* o = sums.mutable_data();
  const double* wp = weights.is_none() ? nullptr : w.data();
  RunWithoutGil([&] {
    PermutedResidualSums(f, a.x, a.groups, a.perms.data(), a.n_repeats, yy.data(), wp, exp_link,
                         o, n_threads, a.baseline, heap);
  });
  return sums;
}

}  // namespace

void BindPermutation(py::module_& m) {
  m.def("permuted_margins", &PermutedMarginsPy, py::arg("forest"), py::arg("X"),
        py::arg("group_offsets"), py::arg("group_cols"), py::arg("perms"), py::arg("n_threads") = 0,
        py::arg("baseline") = py::none(),
        "Raw margins with feature groups permuted: [n_groups, n_repeats, n_rows, n_outputs] "
        "float64. Group g permutes columns group_cols[group_offsets[g]:group_offsets[g + 1]]; "
        "repeat r replaces them by the rows perms[r] ([n_repeats, n_rows] int64). baseline, "
        "when given ([n_rows, n_outputs] float64, C order), receives the unpermuted margins.");
  m.def("permuted_residual_sums", &PermutedResidualSumsPy, py::arg("forest"), py::arg("X"),
        py::arg("group_offsets"), py::arg("group_cols"), py::arg("perms"), py::arg("y"),
        py::arg("weights") = py::none(), py::arg("exp_link") = false, py::arg("n_threads") = 0,
        py::arg("baseline") = py::none(),
        "The permutations of permuted_margins scored without keeping the margins: "
        "[n_groups, n_repeats, n_outputs, 2] float64 sums over rows of w (y - p)^2 and "
        "w |y - p|, with p the margin (exp of it when exp_link). y: [n_rows, n_outputs].");
}

}  // namespace treelens
