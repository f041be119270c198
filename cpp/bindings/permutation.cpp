// Bindings for permutation.
#include "model.h"

namespace treelens {

void BindPermutation(py::module_& m) { (void)m; }

}  // namespace treelens
