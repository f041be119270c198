"""Timing, comparison and Markdown reporting for the benchmark scripts: the SHAP benchmark
(``bench_shap.py``) runs entirely here; every script prints its tables with ``markdown_table``
and compares answers with ``max_abs_diff``.

Imported only after a script has set the thread-count variables (``timing.pin_threads``).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from timing import LoadWatch, interleaved

from methods import PEERS, TREELENS, Method, Prepared, as_phi
from workloads import WORKLOADS, Workload, build_workload

PROBE_ROWS = (256, 1024)
MIN_TIMED_ROWS = 1000
PACKAGES = ("numpy", "xgboost-cpu", "xgboost", "lightgbm", "catboost", "shap", "fasttreeshap",
            "fasttreeshap-fixed", "woodelf-explainer", "treelite", "treelens")


@dataclass
class Result:
    """One method on one workload.

    ``phi``: float64 [timed_rows, n_features], the output of the last timed call.
    ``seconds``: best call time scaled to all of the workload's rows.
    ``cores``: process CPU time / wall time during the best call.
    ``fixed``: estimated per-call fixed cost used to extrapolate from a row subset.
    """

    name: str
    prepared: Optional[Prepared] = None
    timed_rows: int = 0
    seconds: float = float("nan")
    cores: float = float("nan")
    fixed: float = 0.0
    phi: Optional[np.ndarray] = None
    error: str = ""
    missing: bool = False


def _one_call(run: Callable[[np.ndarray], Any], X: np.ndarray) -> float:
    start = time.perf_counter()
    run(X)
    return time.perf_counter() - start


def subset_rows(fixed: float, per_row: float, n_rows: int, budget: float) -> int:
    """Rows one call may take within ``budget`` seconds (a multiple of 100, >= MIN_TIMED_ROWS)."""
    fit = int(max(budget - fixed, 0.0) / max(per_row, 1e-12)) // 100 * 100
    return min(n_rows, max(MIN_TIMED_ROWS, fit))


def probe_method(result: Result, X: np.ndarray, budget: float) -> None:
    """Warm up and choose the rows the timed calls take; fills ``result.timed_rows`` and
    ``result.fixed``.

    Cost model from two probe calls: seconds(k rows) = fixed + per_row * k. A method whose
    predicted time for all rows exceeds ``budget`` is timed on a prefix of k rows and its
    time extrapolated as fixed + (seconds(k) - fixed) * n_rows / k.
    """
    run = result.prepared.run
    n_rows, n_features = X.shape
    small, large = PROBE_ROWS
    warm = min(n_rows, small)
    as_phi(run(X[:warm]), warm, n_features)
    rows, fixed = n_rows, 0.0
    if n_rows > large:
        t_small = _one_call(run, X[:small])
        t_large = _one_call(run, X[:large])
        per_row = max(t_large - t_small, 0.0) / (large - small)
        fixed = max(t_small - per_row * small, 0.0)
        if fixed + per_row * n_rows > budget:
            rows = subset_rows(fixed, per_row, n_rows, budget)
    result.timed_rows, result.fixed = rows, fixed


def time_rounds(results: List[Result], X: np.ndarray, rounds: int) -> None:
    """Times every prepared method in ``rounds`` interleaved rounds (``timing.interleaved``)
    and fills ``seconds`` (scaled to all rows), ``cores`` and ``phi``."""
    live = [r for r in results if r.prepared is not None and not r.error]
    calls = {r.name: (lambda r=r: r.prepared.run(X[:r.timed_rows])) for r in live}
    best = interleaved(calls, rounds)
    n_rows, n_features = X.shape
    for r in live:
        wall, cpu, out = best[r.name]
        r.cores = cpu / wall
        r.phi = as_phi(out, r.timed_rows, n_features)
        if r.timed_rows == n_rows:
            r.seconds = wall
        else:
            r.fixed = min(r.fixed, wall)
            r.seconds = r.fixed + (wall - r.fixed) * n_rows / r.timed_rows


def prepare_method(method: Method, workload: Workload, args: argparse.Namespace) -> Result:
    """Prepare and probe one method, turning any failure into a table note."""
    result = Result(method.name)
    try:
        result.prepared = method.prepare(workload, args.threads)
        probe_method(result, workload.X, args.budget)
    except ImportError as exc:
        result.missing = True
        result.error = f"not installed ({exc})"
    except Exception as exc:  # a failing peer must not end the run
        result.error = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        if method is TREELENS:
            traceback.print_exc()
    return result


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str) -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` (text) or ``r`` (numbers)."""
    rules = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def max_abs_diff(values: Any, reference: Any) -> float:
    """Largest absolute difference on the leading rows both arrays hold."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    k = min(len(a), len(b))
    return float(np.max(np.abs(a[:k] - b[:k])))


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 100 else f"{seconds:.0f}"


def _note(result: Result, n_rows: int) -> str:
    notes = []
    if result.timed_rows and result.timed_rows < n_rows:
        note = f"timed on {result.timed_rows:,} rows, extrapolated"
        if result.fixed >= 0.01:
            note += f" with a fixed cost of {result.fixed:.2f} s per call"
        notes.append(note)
    if result.prepared is not None and result.prepared.note:
        notes.append(result.prepared.note)
    if result.error:
        notes.append(result.error)
    return "; ".join(notes)


def format_table(results: List[Result], reference: Optional[Result], n_rows: int) -> str:
    """Markdown table; ratio and difference are relative to ``reference``."""
    ref_name = reference.name if reference else "reference"
    header = ["method", "threads", "cores used", "timed rows", "seconds", "CPU s", "rows/s",
              f"x {ref_name} time", f"max abs diff vs {ref_name}", "note"]
    rows = []
    for r in results:
        if r.phi is None:
            rows.append([r.name] + [""] * 8 + [_note(r, n_rows)])
            continue
        ratio = diff = "—"
        if reference is not None and r is not reference:
            ratio = f"{r.seconds / reference.seconds:.2f}"
            diff = f"{max_abs_diff(r.phi, reference.phi):.2e}"
        elif r is reference:
            ratio = "1.00"
        rows.append([r.name, r.prepared.threads, f"{r.cores:.2f}", f"{r.timed_rows:,}",
                     _fmt_seconds(r.seconds), _fmt_seconds(r.seconds * r.cores),
                     f"{n_rows / r.seconds:,.0f}", ratio, diff, _note(r, n_rows)])
    return markdown_table(header, rows, "lrrrrrrrrl")


def pick_reference(results: List[Result], workload: Workload) -> Optional[Result]:
    """treelens when it ran, else the model library's own pred_contrib."""
    native = next(m.name for m in PEERS if m.libraries == (workload.library,))
    for name in (TREELENS.name, native):
        for r in results:
            if r.name == name and r.phi is not None:
                return r
    return None


def environment_summary(args: argparse.Namespace) -> str:
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"Python {platform.python_version()} on {platform.machine()}, "
            f"{os.cpu_count()} CPUs (load average {load}); {args.threads} threads; "
            f"{args.repeats} interleaved rounds after a warm-up, each method's fastest kept; "
            f"budget {args.budget:g} s per call.\n"
            f"{'; '.join(versions)}")


def selected_methods(args: argparse.Namespace, library: str) -> List[Method]:
    methods = [TREELENS] + [m for m in PEERS if library in m.libraries]
    if args.methods:
        wanted = [w.strip().lower() for w in args.methods.split(",") if w.strip()]
        methods = [m for m in methods if any(m.name.lower().startswith(w) for w in wanted)]
    return methods


def run_benchmark(args: argparse.Namespace) -> int:
    """Run the selected workloads and print one Markdown table each.

    Returns 1 when treelens is installed but failed on some workload, else 0.
    """
    print("# treelens SHAP benchmark\n")
    print(environment_summary(args) + "\n")
    status = 0
    for name in [w.strip().upper() for w in args.workloads.split(",") if w.strip()]:
        if name not in WORKLOADS:
            print(f"## {name}\n\nunknown workload (known: {', '.join(WORKLOADS)})\n")
            continue
        start = time.perf_counter()
        try:
            workload = build_workload(name, args.rows, args.threads)
        except Exception as exc:
            print(f"## {name}\n\ncould not build: {type(exc).__name__}: {exc}\n")
            continue
        how = "loaded from cache" if workload.cached else "trained"
        print(f"## {name}: {workload.title}; explaining {args.rows:,} rows "
              f"(model {how} in {time.perf_counter() - start:.1f} s)\n", flush=True)
        watch = LoadWatch()
        results = []
        for method in selected_methods(args, workload.library):
            results.append(prepare_method(method, workload, args))
            if method is TREELENS and results[-1].error and not results[-1].missing:
                status = 1
        time_rounds(results, workload.X, args.repeats)
        reference = pick_reference(results, workload)
        print(format_table(results, reference, args.rows) + "\n", flush=True)
        print(watch.report() + "\n", flush=True)
    return status
