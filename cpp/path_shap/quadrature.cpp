// Gauss-Legendre nodes by Newton iteration on P_q in long double (Golub-Welsch accuracy
// is not needed: Newton from the Chebyshev-like initial guess converges quadratically).
#include "path_shap/quadrature.h"

#include <cmath>
#include <stdexcept>

namespace treelens {

void GaussLegendre01(int q, std::vector<double>& t, std::vector<double>& w) {
  if (q < 1) throw std::invalid_argument("quadrature needs at least one node");
  t.assign(q, 0.0);
  w.assign(q, 0.0);
  const long double pi = 3.141592653589793238462643383279502884L;
  for (int i = 0; i < (q + 1) / 2; ++i) {
    long double x = std::cos(pi * (i + 0.75L) / (q + 0.5L));
    long double dp = 0;
    for (int iter = 0; iter < 100; ++iter) {
      long double p0 = 1, p1 = x;
      for (int k = 2; k <= q; ++k) {
        const long double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      if (q == 1) p0 = 1;
      dp = q * (x * p1 - p0) / (x * x - 1);
      const long double dx = p1 / dp;
      x -= dx;
      if (std::fabs(dx) < 1e-19L) break;
    }
    // Recompute the derivative at the converged root for the weight.
    long double p0 = 1, p1 = x;
    for (int k = 2; k <= q; ++k) {
      const long double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
      p0 = p1;
      p1 = p2;
    }
    dp = q == 1 ? 1.0L : q * (x * p1 - p0) / (x * x - 1);
    const long double weight = 2 / ((1 - x * x) * dp * dp);
    // Map [-1, 1] -> [0, 1]: node (1 -+ x) / 2, weight / 2.
    t[i] = static_cast<double>((1 - x) / 2);
    t[q - 1 - i] = static_cast<double>((1 + x) / 2);
    w[i] = w[q - 1 - i] = static_cast<double>(weight / 2);
  }
}

}  // namespace treelens
