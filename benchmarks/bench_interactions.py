"""W3: path-dependent SHAP interaction values, treelens against its peers in one process.

The W1 XGBoost model (100 rounds, depth 6, 50 features) explains its first ``--rows`` rows
(float32). Each method is warmed up, then timed (best of ``--repeats`` calls); a method
whose call on all rows would exceed ``--budget`` seconds is timed on the first rows only
and its time scaled linearly to all rows (the table says so). Every method's values
``[n, m, m]`` are compared with treelens's on the rows it computed.

    python benchmarks/bench_interactions.py [--rows 1000] [--threads 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from timing import LoadWatch, interleaved, pin_threads, timed

PROBE_ROWS = 20

Runner = Callable[[np.ndarray], np.ndarray]


def _treelens(model: Any, threads: int) -> Tuple[Runner, str, str]:
    import treelens

    explainer = treelens.TreeExplainer(model, n_threads=threads)
    return explainer.shap_interaction_values, str(threads), ""


def _xgboost(model: Any, threads: int) -> Tuple[Runner, str, str]:
    import xgboost

    model.set_param({"nthread": threads})

    def run(X: np.ndarray) -> np.ndarray:
        values = model.predict(xgboost.DMatrix(X, nthread=threads), pred_interactions=True)
        return values[:, :-1, :-1]

    return run, str(threads), "DMatrix built in the timed call"


def _shap(model: Any, threads: int) -> Tuple[Runner, str, str]:
    import shap

    explainer = shap.TreeExplainer(model)
    return explainer.shap_interaction_values, "1", "C extension, single-threaded"


def _woodelf(model: Any, threads: int) -> Tuple[Runner, str, str]:
    import pandas as pd
    from woodelf import WoodelfExplainer

    explainer = WoodelfExplainer(model)

    def run(X: np.ndarray) -> np.ndarray:
        columns = [f"f{j}" for j in range(X.shape[1])]
        frame = pd.DataFrame(X, columns=columns, copy=False)
        values = explainer.shap_interaction_values(frame, as_df=True, verbose=False)
        out = np.zeros((len(X), len(columns), len(columns)))
        where = {name: j for j, name in enumerate(columns)}
        for (a, b), column in values.items():
            out[:, where[a], where[b]] = column.to_numpy()
        return out

    return run, "1", "no thread option; BLAS capped by the thread variables"


METHODS: Dict[str, Callable[[Any, int], Tuple[Runner, str, str]]] = {
    "treelens": _treelens,
    "xgboost pred_interactions": _xgboost,
    "shap TreeExplainer": _shap,
    "WOODELF": _woodelf,
}


def prepare(name: str, model: Any, X: np.ndarray, args: argparse.Namespace) -> Dict[str, Any]:
    """Build one method, warm it up and choose its timed rows; failures become a table note."""
    row: Dict[str, Any] = {"name": name}
    try:
        run, threads, note = METHODS[name](model, args.threads)
        row["threads"], row["note"] = threads, note
        n = len(X)
        probe = min(n, PROBE_ROWS)
        run(X[:probe])  # warm-up (also loads the model in lazy peers)
        wall, _, _ = timed(lambda: run(X[:probe]))
        rows = n if wall / probe * n <= args.budget else max(
            probe, min(n, int(args.budget * probe / wall) // 10 * 10))
        row.update(run=run, rows=rows)
        if rows < n:
            row["note"] = "; ".join(filter(None, [f"timed on {rows:,} rows, scaled", note]))
    except ImportError as exc:
        row["note"] = f"not installed ({exc})"
    except Exception as exc:  # a failing peer must not end the run
        row["note"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return row


def measure(rows: List[Dict[str, Any]], X: np.ndarray, repeats: int) -> None:
    """Times the prepared methods in interleaved rounds (each method's fastest kept)."""
    n = len(X)
    live = [r for r in rows if "run" in r]
    best = interleaved({r["name"]: (lambda r=r: r["run"](X[:r["rows"]])) for r in live},
                       repeats)
    for r in live:
        wall, cpu, out = best[r["name"]]
        r.update(seconds=wall * n / r["rows"], cpu=cpu * n / r["rows"],
                 values=np.asarray(out, dtype=np.float64))


def format_table(rows: List[Dict[str, Any]], n: int) -> str:
    from harness import markdown_table, max_abs_diff

    reference = rows[0] if "values" in rows[0] else None
    peers = [r["seconds"] for r in rows[1:] if "seconds" in r]
    header = ["method", "threads", "timed rows", "seconds", "CPU s", "rows/s", "x treelens time",
              "max abs diff vs treelens", "note"]
    cells = []
    for r in rows:
        if "seconds" not in r:
            cells.append([r["name"], r.get("threads", "")] + [""] * 6 + [r["note"]])
            continue
        ratio = diff = "—"
        if reference is not None:
            ratio = f"{r['seconds'] / reference['seconds']:.1f}"
            diff = f"{max_abs_diff(r['values'], reference['values']):.1e}"
        cells.append([r["name"], r["threads"], f"{r['rows']:,}", f"{r['seconds']:.3f}",
                      f"{r['cpu']:.3f}", f"{n / r['seconds']:,.0f}", ratio, diff, r["note"]])
    table = markdown_table(header, cells, "lrrrrrrrl")
    if reference is not None and peers:
        table += f"\n\nFastest peer / treelens: {min(peers) / reference['seconds']:.1f}x"
    return table


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows to explain")
    parser.add_argument("--threads", type=int, default=2, help="threads for every method")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds, each method's fastest kept")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds a timed call may take before rows are subsampled")
    parser.add_argument("--methods", default=None,
                        help="comma-separated method name prefixes (default: all)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.threads < 1 or args.repeats < 1 or args.budget <= 0:
        parser.error("--rows, --threads, --repeats and --budget must be positive")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    pin_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from workloads import build_workload

    workload = build_workload("W1", args.rows, args.threads)
    names = list(METHODS)
    if args.methods:
        wanted = [w.strip().lower() for w in args.methods.split(",") if w.strip()]
        names = ["treelens"] + [m for m in names[1:]
                                if any(m.lower().startswith(w) for w in wanted)]
    print(f"## W3: SHAP interaction values, {workload.title}; {args.rows:,} rows, "
          f"{args.threads} threads, {args.repeats} interleaved rounds\n")
    watch = LoadWatch()
    rows = [prepare(name, workload.model, workload.X, args) for name in names]
    measure(rows, workload.X, args.repeats)
    print(format_table(rows, args.rows))
    print("\n" + watch.report())
    return 0 if "values" in rows[0] else 1


if __name__ == "__main__":
    sys.exit(main())
