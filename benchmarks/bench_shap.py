"""Path-dependent TreeSHAP speed and agreement: treelens against its peers, in one process.

For each workload the model is trained once, then every method is warmed up and timed
(best of ``--repeats`` calls) on the same float32 rows. A method whose call on all rows
would exceed ``--budget`` seconds is timed on the first rows only and its time
extrapolated with a fixed-plus-per-row cost model; the table says so. Each method's SHAP
values are compared with treelens's (or, without treelens, with the model library's own
``pred_contrib``).

    python benchmarks/bench_shap.py [--rows 10000] [--workloads W1,W2] [--threads 2] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None,
                        help="rows to explain (default 10000; 1000 with --quick)")
    parser.add_argument("--workloads", default="W1,W2", help="comma-separated, e.g. W1,W2")
    parser.add_argument("--threads", type=int, default=2, help="threads for every method")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per method, best kept (default 3; 1 with --quick)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds one timed call may take before a method is timed on a "
                             "row subset and scaled (default 10; 3 with --quick)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated method names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    args = parser.parse_args(argv)
    args.rows = args.rows or (1000 if args.quick else 10_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.budget = args.budget or (3.0 if args.quick else 10.0)
    if args.rows < 1 or args.threads < 1 or args.repeats < 1 or args.budget <= 0:
        parser.error("--rows, --threads, --repeats and --budget must be positive")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from timing import pin_threads

    pin_threads(args.threads)
    from harness import run_benchmark

    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
