// A read-only strided view of the caller's feature matrix (float32 or float64), so inputs in
// C order, Fortran order or as strided views are read in place without copies.
#pragma once

#include <cstdint>

#include "model/forest.h"

namespace treelens {

struct MatrixView {
  const char* data = nullptr;
  bool is_float32 = false;
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  int64_t row_stride = 0;  // bytes
  int64_t col_stride = 0;  // bytes

  double At(int64_t r, int64_t c) const {
    const char* p = data + r * row_stride + c * col_stride;
    return is_float32 ? static_cast<double>(*reinterpret_cast<const float*>(p))
                      : *reinterpret_cast<const double*>(p);
  }

  // Row r, transformed for routing, into out[n_cols].
  void LoadRow(const Forest& forest, int64_t r, double* out) const {
    for (int64_t c = 0; c < n_cols; ++c) out[c] = forest.TransformInput(At(r, c));
  }
};

}  // namespace treelens
