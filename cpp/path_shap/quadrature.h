// Gauss-Legendre quadrature on [0, 1]: q nodes integrate polynomials of degree <= 2q - 1
// exactly. Path-dependent TreeSHAP writes each Shapley weight as a Beta integral, so a
// path with d unique features needs ceil(d / 2) nodes.
#pragma once

#include <vector>

namespace treelens {

// Fills t[q] (nodes in (0, 1), ascending) and w[q] (weights, summing to 1).
void GaussLegendre01(int q, std::vector<double>& t, std::vector<double>& w);

}  // namespace treelens
