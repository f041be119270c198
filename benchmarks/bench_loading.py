"""Model loading, single-row latency and end-to-end permutation importance, next to the
libraries, in one process.

    python benchmarks/bench_loading.py [--rounds 3] [--threads 2] [--calls 200]
                                       [--w9 model.ubj] [--l1000 model.txt]

- Loading: W9 (XGBoost, 1000 rounds of depth 8) saved as JSON and UBJSON, and L1000
  (LightGBM, 1000 trees of 255 leaves) saved as text. ``xgboost.Booster(model_file=)`` /
  ``lightgbm.Booster(model_file=)`` against ``treelens.load(path)``; and
  ``treelens.load(live booster)`` cold (cache cleared: serialise, parse, validate, build)
  and warm (the same unchanged object again: serialise and compare), and
  ``TreeExplainer(live booster)`` cold.
- Single-row latency on W9: ``TreeExplainer.shap_values`` of one row with a built
  explainer (time per call over ``--calls`` calls), next to XGBoost's ``pred_contribs``.
- W5 end to end: ``permutation_importance(model, X, y)`` with an ``XGBRegressor``
  (100 trees of depth 6, 50 features) on 10,000 rows, 5 repeats, r2, model object in and
  result out (load included; cold = cache cleared first), against
  ``sklearn.inspection.permutation_importance`` on the same estimator. The importances
  must agree (the table shows the largest difference).

All methods of a table run in interleaved rounds (reverse order every other round); each
shows its best wall time over ``--rounds`` rounds and the CPU seconds of that call. The
load average is printed before and after; a run above 0.5 per core is marked LOADED.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

from timing import LoadWatch, interleaved, pin_threads

W5_ROWS = 10_000
N_REPEATS = 5


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every method")
    parser.add_argument("--calls", type=int, default=200, help="single-row calls per round")
    parser.add_argument("--w9", help="a saved XGBoost model to use instead of W9")
    parser.add_argument("--l1000", help="a saved LightGBM model to use instead of L1000")
    args = parser.parse_args(argv)
    if args.rounds < 3 or args.threads < 1 or args.calls < 1:
        parser.error("--rounds must be >= 3, --threads and --calls positive")
    return args


def table(title: str, results: Dict[str, Tuple[float, float, Any]], reference: str,
          per_call: int = 1, notes: Optional[Dict[str, str]] = None) -> None:
    """Markdown table: wall and CPU seconds (per call), and each method's time over the
    reference's."""
    print(f"## {title}\n")
    print(f"| method | wall s | CPU s | / {reference} | note |")
    print("|---|---:|---:|---:|---|")
    base = results[reference][0]
    for name, (wall, cpu, _) in results.items():
        note = (notes or {}).get(name, "")
        print(f"| {name} | {wall / per_call:.5f} | {cpu / per_call:.5f} | "
              f"{wall / base:.2f} | {note} |")
    print(flush=True)


def booster_of(name: str, path: Optional[str], threads: int) -> Any:
    """Workload ``name``'s booster, or the booster saved at ``path``."""
    from workloads import WORKLOADS, build_workload

    if path is None:
        return build_workload(name, 1, threads).model
    if WORKLOADS[name][1] == "xgboost":
        import xgboost

        return xgboost.Booster(model_file=path)
    import lightgbm

    return lightgbm.Booster(model_file=path)


def loading(args: argparse.Namespace, folder: str) -> None:
    import lightgbm
    import xgboost

    import treelens
    from treelens import _cache

    rounds = args.rounds
    deep = booster_of("W9", args.w9, args.threads)
    wide = booster_of("L1000", args.l1000, args.threads)
    paths = {ext: os.path.join(folder, f"w9.{ext}") for ext in ("json", "ubj")}
    for path in paths.values():
        deep.save_model(path)
    text = os.path.join(folder, "l1000.txt")
    wide.save_model(text)

    def cold(model: Any, make: Callable[[Any], Any] = treelens.load) -> Callable[[], Any]:
        def run() -> Any:
            _cache.clear()
            return make(model)
        return run

    for ext, path in paths.items():
        methods = {f"xgboost.Booster(model_file) {ext}":
                   lambda path=path: xgboost.Booster(model_file=path),
                   f"treelens.load {ext} file": lambda path=path: treelens.load(path)}
        if ext == "ubj":
            methods["treelens.load(Booster), cold"] = cold(deep)
            methods["treelens.load(Booster), warm"] = lambda: treelens.load(deep)
            methods["TreeExplainer(Booster), cold"] = cold(deep, treelens.TreeExplainer)
        table(f"Loading W9 (XGBoost 1000 rounds, depth 8), {ext}",
              interleaved(methods, rounds), f"xgboost.Booster(model_file) {ext}")
    methods = {"lightgbm.Booster(model_file)": lambda: lightgbm.Booster(model_file=text),
               "treelens.load text file": lambda: treelens.load(text),
               "treelens.load(Booster), cold": cold(wide),
               "treelens.load(Booster), warm": lambda: treelens.load(wide),
               "TreeExplainer(Booster), cold": cold(wide, treelens.TreeExplainer)}
    table("Loading L1000 (LightGBM 1000 trees, 255 leaves), text", interleaved(methods, rounds),
          "lightgbm.Booster(model_file)")


def latency(args: argparse.Namespace) -> None:
    import numpy as np
    import xgboost

    import treelens
    from workloads import make_data

    rounds, threads, calls = args.rounds, args.threads, args.calls
    booster = booster_of("W9", args.w9, threads)
    booster.set_param({"nthread": threads})
    row = np.ascontiguousarray(make_data(1, booster.num_features())[0])
    explainer = treelens.TreeExplainer(booster, n_threads=threads)
    native_calls = max(1, calls // 40)
    methods = {
        "treelens TreeExplainer.shap_values": lambda: [explainer.shap_values(row)
                                                       for _ in range(calls)][-1],
        "xgboost pred_contribs": lambda: [booster.predict(xgboost.DMatrix(row),
                                                          pred_contribs=True)
                                          for _ in range(native_calls)][-1],
    }
    results = interleaved(methods, rounds)
    mine, theirs = results["treelens TreeExplainer.shap_values"], results["xgboost pred_contribs"]
    diff = float(np.max(np.abs(mine[2][0] - theirs[2][0, :-1])))
    per_call = {"treelens TreeExplainer.shap_values": (mine[0] / calls, mine[1] / calls, None),
                "xgboost pred_contribs": (theirs[0] / native_calls, theirs[1] / native_calls,
                                          None)}
    table(f"Single-row latency, W9, seconds per call ({calls} and {native_calls} calls a "
          "round)", per_call, "treelens TreeExplainer.shap_values",
          notes={"xgboost pred_contribs": f"max abs diff {diff:.1e}"})


def permutation(rounds: int, threads: int) -> None:
    import numpy as np
    import xgboost
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    import treelens
    from treelens import _cache
    from workloads import make_data

    X, y = make_data()
    model = xgboost.XGBRegressor(n_estimators=100, max_depth=6, learning_rate=0.1,
                                 n_jobs=threads, random_state=0).fit(X, y)
    X, y = X[:W5_ROWS], y[:W5_ROWS]

    def mine() -> Any:
        return treelens.permutation_importance(model, X, y, scoring="r2", n_repeats=N_REPEATS,
                                               random_state=0, n_threads=threads).importances

    def mine_cold() -> Any:
        _cache.clear()
        return mine()

    methods = {
        "treelens permutation_importance(model), cold": mine_cold,
        "treelens permutation_importance(model), warm": mine,
        "sklearn permutation_importance(model)": lambda: sk_permutation_importance(
            model, X, y, scoring="r2", n_repeats=N_REPEATS, random_state=0).importances,
    }
    results = interleaved(methods, rounds)
    reference = results["sklearn permutation_importance(model)"][2]
    notes = {name: f"sklearn / this {results['sklearn permutation_importance(model)'][0] / r[0]:.1f}x; "
             f"max abs diff {float(np.max(np.abs(r[2] - reference))):.1e}"
             for name, r in results.items()}
    table(f"W5 end to end: XGBRegressor 100 trees depth 6, {W5_ROWS:,} rows, "
          f"{N_REPEATS} repeats, r2", results, "sklearn permutation_importance(model)",
          notes=notes)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    pin_threads(args.threads)
    watch = LoadWatch()
    print("# treelens loading, latency and permutation benchmark\n")
    print(f"{os.cpu_count()} CPUs, {args.threads} threads, best of {args.rounds} interleaved "
          "rounds\n")
    with tempfile.TemporaryDirectory() as folder:
        loading(args, folder)
    latency(args)
    permutation(args.rounds, args.threads)
    print(watch.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
