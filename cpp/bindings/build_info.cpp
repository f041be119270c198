// Bindings for build_info(): how this extension was compiled (threads, SIMD, compiler).
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/areas.h"
#include "common/parallel.h"
#include "common/simd.h"

namespace treelens {
namespace {

std::string CompilerName() {
#if defined(__clang__) && defined(__apple_build_version__)
  return "Apple clang " + std::string(__clang_version__);
#elif defined(__clang__)
  return "clang " + std::string(__clang_version__);
#elif defined(__GNUC__)
  return "GCC " + std::string(__VERSION__);
#elif defined(_MSC_VER)
  return "MSVC " + std::to_string(_MSC_FULL_VER);
#else
  return "unknown";
#endif
}

pybind11::dict BuildInfo() {
  pybind11::dict info;
#ifdef _OPENMP
  info["openmp"] = true;
  info["openmp_version"] = _OPENMP;
#else
  info["openmp"] = false;
  info["openmp_version"] = pybind11::none();
#endif
  info["simd"] = TREELENS_VECTOR_EXTENSIONS ? "vector extensions" : "scalar fallback";
  pybind11::list targets;
  if (TREELENS_HAS_CLONES) targets.append("avx2");
  targets.append(simd::kBaselineTarget);
  info["simd_targets"] = targets;
  info["simd_selected"] = simd::SelectedTarget();
  std::string compiler = CompilerName();
  while (!compiler.empty() && compiler.back() == ' ') compiler.pop_back();
  info["compiler"] = compiler;
  return info;
}

}  // namespace

void BindBuildInfo(pybind11::module_& m) {
  m.def("build_info", &BuildInfo,
        "How the core was built: openmp (bool), openmp_version (int or None), simd "
        "('vector extensions' or 'scalar fallback'), simd_targets (code paths compiled), "
        "simd_selected (the one this CPU runs), compiler (name and version).");
}

}  // namespace treelens
