"""W4: background (interventional) SHAP of the W1 XGBoost model, treelens against its peers.

treelens runs at (n, m) = (1k, 1k), (10k, 10k), (100k, 100k) explained and background rows,
to show its O(n + m) cost; the peers run at (10k, 10k): WOODELF's background mode on all
rows, shap's interventional TreeExplainer on a subset of the explained rows, scaled to 10k
(its cost is linear in the explained rows). Explained rows are the first n rows of the W1
data, background rows the next m. Prints a Markdown table with rows/s, the ratio to treelens
and the largest difference from treelens on the rows both explained.

    python benchmarks/bench_background.py --threads 2 --shap-rows 100 --shap-background 100
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable, List, Optional, Tuple

import numpy as np

from timing import LoadWatch, interleaved, pin_threads, timed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SIZES = ((1_000, 1_000), (10_000, 10_000), (100_000, 100_000))
PEER_SIZE = (10_000, 10_000)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shap-rows", type=int, default=1000,
                        help="explained rows shap is timed on (scaled to 10k)")
    parser.add_argument("--shap-background", type=int, default=100,
                        help="background rows shap is timed with (scaled to 10k)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-n", type=int, default=100_000,
                        help="skip treelens sizes with more explained rows")
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    import treelens
    from harness import markdown_table, max_abs_diff
    from workloads import build_workload

    largest = max(n + m for n, m in SIZES if n <= args.max_n)
    work = build_workload("W1", max(largest, PEER_SIZE[0] + PEER_SIZE[1]), args.threads)
    data, model = work.X, work.model
    watch = LoadWatch()
    rows: List[Tuple[str, str, int, int, float, float, str]] = []
    explainers = {}
    for n, m in SIZES:
        if n > args.max_n:
            continue
        X, bg = data[:n], data[n:n + m]
        ex = treelens.TreeExplainer(model, data=bg, feature_perturbation="interventional",
                                    n_threads=args.threads)
        explainers[n, m] = ex
        if (n, m) == PEER_SIZE:
            rows.append(("treelens", f"{n:,} x {m:,}", n, n, float("nan"), float("nan"), ""))
            continue  # timed below, in rounds with the peers
        wall, cpu, phi = timed(lambda: ex.shap_values(X, check_additivity=False), args.repeats)
        gap = np.abs(phi.sum(1) + ex.expected_value - ex.predict(X)).max()
        rows.append(("treelens", f"{n:,} x {m:,}", n, n, wall, cpu,
                     f"additivity gap {gap:.1e}"))

    n, m = PEER_SIZE
    X, bg = data[:n], data[n:n + m]
    ex_ref = explainers.get((n, m)) or treelens.TreeExplainer(
        model, data=bg, feature_perturbation="interventional", n_threads=args.threads)
    # name, explained rows, background rows, run
    peers: List[Tuple[str, int, int, Callable[[], np.ndarray]]] = [
        ("treelens", n, m, lambda: ex_ref.shap_values(X, check_additivity=False))]
    try:
        import pandas as pd
        from woodelf import WoodelfExplainer

        columns = [f"f{i}" for i in range(X.shape[1])]
        bg_df, X_df = pd.DataFrame(bg, columns=columns), pd.DataFrame(X, columns=columns)

        def woodelf() -> np.ndarray:
            explainer = WoodelfExplainer(model, data=bg_df)
            return np.asarray(explainer.shap_values(X_df, verbose=False))

        peers.append(("WOODELF background", n, m, woodelf))
    except ImportError as exc:
        rows.append(("WOODELF background", "", 0, 0, float("nan"), float("nan"), str(exc)))
    try:
        import shap

        k, b = min(args.shap_rows, n), min(args.shap_background, m)

        def shap_run() -> np.ndarray:
            masker = shap.maskers.Independent(bg[:b], max_samples=b)
            explainer = shap.TreeExplainer(model, data=masker,
                                           feature_perturbation="interventional")
            return np.asarray(explainer.shap_values(X[:k], check_additivity=False))

        peers.append(("shap interventional", k, b, shap_run))
    except ImportError as exc:
        rows.append(("shap interventional", "", 0, 0, float("nan"), float("nan"), str(exc)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = interleaved({name: run for name, _, _, run in peers}, args.repeats)
        reference = best["treelens"][2]
        ref_seconds = best["treelens"][0]
        gap = np.abs(reference.sum(1) + ex_ref.expected_value - ex_ref.predict(X)).max()
        at = next((i for i, r in enumerate(rows) if r[1] == f"{n:,} x {m:,}"), len(rows))
        rows[at:at + 1] = [("treelens", f"{n:,} x {m:,}", n, n, ref_seconds,
                            best["treelens"][1], f"additivity gap {gap:.1e}")]
        for name, k, b, run in peers[1:]:
            wall, cpu, phi = best[name]
            scale = (n / k) * (m / b)
            expected = reference
            if b < m:
                ex = treelens.TreeExplainer(model, data=bg[:b],
                                            feature_perturbation="interventional",
                                            n_threads=args.threads)
                expected = ex.shap_values(X[:k], check_additivity=False)
            diff = max_abs_diff(phi, expected) if expected is not None else float("nan")
            note = f"max abs diff vs treelens {diff:.1e}"
            if scale != 1:
                note += f"; timed on {k:,} x {b:,} rows, scaled x{scale:g}"
            rows.append((name, f"{n:,} x {m:,}", n, k, wall * scale, cpu * scale, note))

    print(f"W4: {work.title}; background SHAP, {args.threads} thread(s)\n")
    header = ["method", "n x m", "timed rows", "seconds", "CPU s", "rows/s", "x treelens time",
              "note"]
    cells = []
    for name, size, n_rows, k, seconds, cpu, note in rows:
        if not size:
            cells.append([name] + [""] * 6 + [note])
            continue
        ratio = seconds / ref_seconds if size == f"{PEER_SIZE[0]:,} x {PEER_SIZE[1]:,}" else None
        cells.append([name, size, f"{k:,}", f"{seconds:.3f}", f"{cpu:.3f}",
                      f"{n_rows / seconds:,.0f}", f"{ratio:.2f}" if ratio is not None else "—",
                      note])
    print(markdown_table(header, cells, "llrrrrrl"))
    print(f"\nPeers and treelens at {PEER_SIZE[0]:,} x {PEER_SIZE[1]:,} timed in {args.repeats} "
          f"interleaved rounds, each method's fastest kept; {watch.report()}")

if __name__ == "__main__":
    main()
