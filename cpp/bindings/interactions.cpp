// Bindings for interactions.
#include "model.h"

namespace treelens {

void BindPathInteractions(py::module_& m) { (void)m; }

}  // namespace treelens
