// The extension module treelens._core. The binding layer is thin: each area file converts and
// checks arrays with the GIL held, releases it, runs the core and returns NumPy arrays
// allocated up front and written in place. Here each area only registers itself.
#include <pybind11/pybind11.h>

#include "bindings/areas.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "treelens core: format-free forest, exact prediction and TreeSHAP";
  treelens::BindForest(m);
  treelens::BindPathInteractions(m);
  treelens::BindBackgroundShap(m);
  treelens::BindPermutation(m);
  treelens::BindBuildInfo(m);
  treelens::BindUbjson(m);
  treelens::BindJson(m);
  treelens::BindTextNumbers(m);
  treelens::BindXGBoostTrees(m);
  treelens::BindLightGBMText(m);
}
