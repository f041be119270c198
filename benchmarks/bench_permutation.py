"""Permutation importance speed and agreement: treelens against its peers, in one process.

W5 is the W1 XGBoost model (100 trees, depth 6, 50 features) on 10,000 rows, n_repeats=5,
scoring r2, as a user runs it: an ``xgboost.XGBRegressor`` holding the model goes to both
``treelens.permutation_importance`` (load included) and
``sklearn.inspection.permutation_importance`` (n_jobs=1 and n_jobs=T, the faster one counts).
The LightGBM W2 model runs the same protocol, scikit-learn calling the Booster's own predict.
The last peer is a plain loop that permutes one column at a time and re-predicts with the
library (XGBoost ``inplace_predict``, LightGBM ``Booster.predict``).
Every method uses scikit-learn's permutations (same ``random_state``), so the importances
must agree to rounding; the table shows the largest difference from treelens.

    python benchmarks/bench_permutation.py [--rows 10000] [--workloads W1,W2] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, List, Optional

from timing import LoadWatch, interleaved, pin_threads

N_REPEATS = 5
SEED = 0


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows scored (default 10000)")
    parser.add_argument("--workloads", default="W1,W2", help="comma-separated, e.g. W1,W2")
    parser.add_argument("--threads", type=int, default=2, help="threads for every method")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls of treelens, best kept (peers run once)")
    args = parser.parse_args(argv)
    if args.rows < 2 or args.threads < 1 or args.repeats < 1:
        parser.error("--rows must be >= 2, --threads and --repeats positive")
    return args


def native_predict(workload: Any, threads: int) -> Callable[[Any], Any]:
    """The model library's own prediction of float32 rows."""
    booster = workload.model
    if workload.library == "xgboost":
        booster.set_param({"nthread": threads})
        return lambda X: booster.inplace_predict(X)
    return lambda X: booster.predict(X, num_threads=threads)


def make_estimator(workload: Any, predict: Callable[[Any], Any], threads: int) -> Any:
    """The fitted scikit-learn regressor a user holds: an ``XGBRegressor`` with the workload's
    booster, or for LightGBM one whose predict is the Booster's own."""
    from sklearn.base import BaseEstimator, RegressorMixin

    if workload.library == "xgboost":
        import xgboost

        estimator = xgboost.XGBRegressor(n_jobs=threads)
        estimator.load_model(bytearray(workload.model.save_raw("ubj")))
        return estimator

    class NativeRegressor(RegressorMixin, BaseEstimator):
        def fit(self, X: Any, y: Any) -> "NativeRegressor":
            return self

        def predict(self, X: Any) -> Any:
            return predict(X)

        def __sklearn_is_fitted__(self) -> bool:
            return True

    return NativeRegressor()


def plain_loop(predict: Callable[[Any], Any], X: Any, y: Any, perms: Any) -> Any:
    """Baseline r2 minus r2 with each column permuted: float64 [n_features, n_repeats]."""
    import numpy as np
    from sklearn.metrics import r2_score

    baseline = r2_score(y, predict(X))
    out = np.empty((X.shape[1], len(perms)))
    for j in range(X.shape[1]):
        Xp = X.copy()
        for r, perm in enumerate(perms):
            Xp[:, j] = X[perm, j]
            out[j, r] = baseline - r2_score(y, predict(Xp))
    return out


def run_workload(name: str, args: argparse.Namespace) -> None:
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    import treelens
    from harness import markdown_table, max_abs_diff
    from treelens.permutation import draw_permutations
    from workloads import build_workload, make_data

    workload = build_workload(name, args.rows, args.threads)
    X = workload.X
    _, y_all = make_data(max(args.rows, len(X)), X.shape[1])
    y = y_all[:len(X)]
    predict = native_predict(workload, args.threads)
    estimator = make_estimator(workload, predict, args.threads)
    forest = treelens.load(estimator)
    _, perms = draw_permutations(SEED, len(X), N_REPEATS, 1.0)

    def treelens_run(model: Any) -> Any:
        return treelens.permutation_importance(model, X, y, scoring="r2", n_repeats=N_REPEATS,
                                               random_state=SEED,
                                               n_threads=args.threads).importances

    def sklearn_run(jobs: int) -> Any:
        return sk_permutation_importance(estimator, X, y, scoring="r2", n_repeats=N_REPEATS,
                                         random_state=SEED, n_jobs=jobs).importances

    native = "inplace_predict" if workload.library == "xgboost" else "Booster.predict"
    calls = {"treelens, model object in (load included)": lambda: treelens_run(estimator),
             "treelens, loaded Forest": lambda: treelens_run(forest)}
    for jobs in sorted({1, args.threads}):
        calls[f"sklearn permutation_importance, n_jobs={jobs}"] = \
            lambda jobs=jobs: sklearn_run(jobs)
    calls[f"plain loop, {workload.library} {native}"] = lambda: plain_loop(predict, X, y, perms)
    watch = LoadWatch()
    best = interleaved(calls, args.repeats)
    rows = [(label, args.threads) + best[label] for label in calls]
    reference = rows[0][4]

    fastest_peer = min(r[2] for r in rows[2:])
    print(f"## {name}: {workload.title}; {len(X):,} rows, n_repeats={N_REPEATS}, r2\n")
    header = ["method", "threads", "seconds", "CPU s", "x treelens time",
              "fastest peer / this", "max abs diff vs treelens"]
    cells = [[label, threads, f"{wall:.3f}", f"{cpu:.3f}", f"{wall / rows[0][2]:.1f}",
              f"{fastest_peer / wall:.1f}", f"{max_abs_diff(out, reference):.2e}"]
             for label, threads, wall, cpu, out in rows]
    print(markdown_table(header, cells, "lrrrrrr"))
    print(f"\n{args.repeats} interleaved rounds, each method's fastest kept; {watch.report()}\n",
          flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    pin_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    print("# treelens permutation importance benchmark\n")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs (load average {load}); {args.threads} threads; every method "
          f"timed in {args.repeats} interleaved rounds (CPU s: process time, all threads).\n")
    for name in [w.strip().upper() for w in args.workloads.split(",") if w.strip()]:
        run_workload(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
