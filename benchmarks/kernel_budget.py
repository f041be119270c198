"""The work of the path-dependent SHAP kernel per row and tree, and how far its speed is from
what the machine's cores can do.

For each workload the script walks the trees as the kernel's plan does (cpp/path_shap/
path_shap.cpp), classifies every step, and counts per row and tree

- double-precision multiplies and adds (the quadrature arithmetic),
- per-lane selects and compares (the row's way at each split),
- plan bytes the pass reads (64-byte steps, per-edge weights, pair constants), which a block
  of 16 rows shares, and the row's own input and output bytes.

It then times the kernel alone (``Forest.shap_values``, best of ``--repeats``) on the
workload's rows with ``--threads`` threads and reports the arithmetic rate against the peak
of the cores: four 256-bit floating-point pipes per core (two multiply, two add, as on AMD
Zen 4 and Intel Golden Cove), so 16 double operations per cycle per core, at the clock
``/proc/cpuinfo`` reports.

    python benchmarks/kernel_budget.py --workloads W1,W2,W8,W9 --rows 10000
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from timing import pin_threads  # noqa: E402

BLOCK_ROWS = 16      # kPathLanes
STEP_BYTES = 64      # sizeof(PathStep)
PEAK_OPS_PER_CYCLE = 16


@dataclass
class Budget:
    """Counts per row and tree, summed over a forest (divide by ``trees``)."""

    trees: int = 0
    steps: int = 0          # plan steps executed (a pair node covers its two leaves)
    flops: float = 0.0      # multiplies and adds per row
    selects: float = 0.0    # per-lane selects and compares per row
    plan_bytes: float = 0.0
    q: List[int] = field(default_factory=list)

    def add(self, kind: str, q: int, repeated: bool) -> None:
        """One step of the given kind with q quadrature nodes."""
        finish = 3 * q + 1          # sum of weights x H, phi update, parent H update
        descend = q                 # G(t) times the edge factor
        self.steps += 1
        self.plan_bytes += STEP_BYTES + 8 * q * (4 if repeated else 1)
        if kind == "pair":
            self.flops += descend + 2 * q + 2 + q + finish
            self.selects += 3 * q + 4
            self.plan_bytes += 8 * (2 * q + 2)
        elif kind == "leaf_new":    # a leaf on a new feature: integral of the parent's G
            self.flops += 2 * q + 4 + 2 * q
            self.selects += q + 1
        elif kind == "leaf":
            self.flops += descend + q + finish
            self.selects += 2 * q
        else:                       # an internal node
            self.flops += descend + finish
            self.selects += 2 * q + 4


def forest_budget(forest) -> Budget:
    """Budget of every tree of a loaded ``treelens.Forest``."""
    trees = forest.spec.trees
    budget = Budget()
    for t in range(len(trees.tree_offsets) - 1):
        lo, hi = int(trees.tree_offsets[t]), int(trees.tree_offsets[t + 1])
        left, right = trees.left[lo:hi], trees.right[lo:hi]
        feature = trees.feature[lo:hi]
        is_leaf = left < 0
        steps: List[tuple] = []
        max_unique = 0
        stack = [(0, ())]
        while stack:
            node, path = stack.pop()
            max_unique = max(max_unique, len(set(path)))
            if is_leaf[node]:
                continue
            f = int(feature[node])
            for child in (int(right[node]), int(left[node])):
                steps.append((child, f, f in path, path + (f,)))
                stack.append((child, path + (f,)))
        q = max(1, (max_unique + 1) // 2)
        budget.trees += 1
        budget.q.append(q)
        covered = set()
        for child, f, repeated, path in steps:
            if child in covered:
                continue
            if is_leaf[child]:
                budget.add("leaf" if repeated else "leaf_new", q, repeated)
                continue
            kids = (int(left[child]), int(right[child]))
            pair = all(is_leaf[k] for k in kids) and int(feature[child]) not in path
            if pair:
                covered.update(kids)
            budget.add("pair" if pair else "internal", q, repeated)
    return budget


def cpu_hz() -> Optional[float]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) * 1e6
    except OSError:
        pass
    return None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="W1,W2")
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    import treelens
    from workloads import build_workload

    hz = cpu_hz()
    print(f"| workload | steps / tree | mean q | flops / row·tree | selects / row·tree "
          f"| plan KB / tree | bytes / row·tree | rows/s | Gflop/s | % of peak |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.workloads.split(","):
        w = build_workload(name, args.rows, args.threads)
        forest = treelens.load(w.model)
        b = forest_budget(forest)
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            forest.shap_values(w.X, args.threads)
            best = min(best, time.perf_counter() - start)
        rows_per_s = args.rows / best
        flops = b.flops / b.trees
        row_bytes = 8 * w.X.shape[1] * 2 / b.trees   # input and output, per tree
        per_row_tree = b.plan_bytes / b.trees / BLOCK_ROWS + row_bytes
        gflops = flops * b.trees * rows_per_s / 1e9
        peak = PEAK_OPS_PER_CYCLE * args.threads * hz / 1e9 if hz else float("nan")
        print(f"| {name} | {b.steps / b.trees:.0f} | {sum(b.q) / len(b.q):.1f} | {flops:.0f} "
              f"| {b.selects / b.trees:.0f} | {b.plan_bytes / b.trees / 1024:.1f} "
              f"| {per_row_tree:.0f} | {rows_per_s:,.0f} | {gflops:.1f} "
              f"| {100 * gflops / peak:.0f} |")
    if hz:
        print(f"\npeak: {PEAK_OPS_PER_CYCLE} double ops/cycle/core x {args.threads} cores x "
              f"{hz / 1e9:.2f} GHz = {PEAK_OPS_PER_CYCLE * args.threads * hz / 1e9:.0f} Gflop/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
