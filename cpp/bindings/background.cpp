// Bindings for background.
#include "model.h"

namespace treelens {

void BindBackgroundShap(py::module_& m) { (void)m; }

}  // namespace treelens
