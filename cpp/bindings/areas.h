// The areas of the extension module: each binding file registers its classes and functions
// with one call, and module.cpp only makes those calls.
#pragma once

#include <pybind11/pybind11.h>

namespace treelens {

void BindForest(pybind11::module_& m);            // forest.cpp: Forest, predict, SHAP values
void BindPathInteractions(pybind11::module_& m);  // interactions.cpp
void BindBackgroundShap(pybind11::module_& m);    // background.cpp
void BindPermutation(pybind11::module_& m);       // permutation.cpp
void BindBuildInfo(pybind11::module_& m);         // build_info.cpp
void BindUbjson(pybind11::module_& m);            // formats/ubjson.cpp
void BindJson(pybind11::module_& m);              // formats/json.cpp
void BindTextNumbers(pybind11::module_& m);       // formats/text_numbers.cpp
void BindXGBoostTrees(pybind11::module_& m);      // formats/xgboost_trees.cpp
void BindLightGBMText(pybind11::module_& m);      // formats/lightgbm_text.cpp

}  // namespace treelens
