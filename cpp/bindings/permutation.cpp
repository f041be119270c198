// Bindings for the permutation importance engine.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "model.h"
#include "permutation.h"

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

py::array_t<double> PermutedMarginsPy(Model& m, const py::array& x, const py::array& group_offsets,
                                      const py::array& group_cols, const py::array& perms,
                                      int n_threads, const py::object& baseline) {
  const Forest& f = m.forest();
  const MatrixView v = ViewOf(x, f.n_features);
  CheckThreads(n_threads);
  auto offsets = Contiguous<int64_t>(group_offsets, "group_offsets", 1);
  auto cols = Contiguous<int32_t>(group_cols, "group_cols", 1);
  auto p = Contiguous<int64_t>(perms, "perms", 2);
  if (p.shape(1) != v.n_rows) {
    throw std::invalid_argument("perms has shape (" + std::to_string(p.shape(0)) + ", " +
                                std::to_string(p.shape(1)) + "), expected (n_repeats, " +
                                std::to_string(v.n_rows) + ")");
  }
  FeatureGroups groups;
  groups.offsets.assign(offsets.data(), offsets.data() + offsets.size());
  groups.cols.assign(cols.data(), cols.data() + cols.size());
  const int64_t n_repeats = p.shape(0);
  const int64_t n_groups = groups.offsets.empty() ? 0 : groups.NumGroups();
  py::array_t<double> out({n_groups, n_repeats, v.n_rows, static_cast<int64_t>(f.n_outputs)});
  double* o = out.mutable_data();
  const int64_t* pp = p.data();
  double* base = nullptr;
  if (!baseline.is_none()) {
    using Out = py::array_t<double, py::array::c_style>;
    const bool ok = py::isinstance<Out>(baseline);
    Out b = ok ? baseline.cast<Out>() : Out();
    if (!ok || !b.writeable() || b.ndim() != 2 || b.shape(0) != v.n_rows ||
        b.shape(1) != f.n_outputs) {
      throw std::invalid_argument("baseline must be a writable C-contiguous float64 array of shape (" +
                                  std::to_string(v.n_rows) + ", " + std::to_string(f.n_outputs) + ")");
    }
    base = b.mutable_data();
  }
  {
    py::gil_scoped_release release;
    PermutedMargins(f, v, groups, pp, n_repeats, o, n_threads, base);
  }
  return out;
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
}

}  // namespace treelens
