"""Command line: ``treelens explain MODEL DATA -o OUT`` and ``treelens explain --example``.

Writes one row of SHAP values per data row (columns: see ``_io.output_columns``),
reading and writing chunk by chunk, with a progress bar on stderr. Errors print one
line on stderr and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np

from . import _io
from .model import BLOCK_ROWS, Forest, check_threads, load

EXAMPLE_DIR = Path(__file__).resolve().parent / "data"
EXAMPLE_MODEL = EXAMPLE_DIR / "example_model.json"
EXAMPLE_DATA = EXAMPLE_DIR / "example.csv"
EXAMPLE_OUTPUT = Path("treelens_example_shap.csv")
TOP_FEATURES = 5


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``treelens`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.example:
        if args.model or args.data:
            parser.error("--example takes no MODEL or DATA")
        model, data = EXAMPLE_MODEL, EXAMPLE_DATA
        output = Path(args.output) if args.output else EXAMPLE_OUTPUT
    else:
        if not (args.model and args.data):
            parser.error("MODEL and DATA are required (or use --example)")
        if not args.output:
            parser.error("-o/--output is required")
        model, data, output = Path(args.model), Path(args.data), Path(args.output)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be positive, got {args.threads}")
    if args.chunk_rows < 1:
        parser.error(f"--chunk-rows must be positive, got {args.chunk_rows}")
    show_progress = not args.no_progress and sys.stderr.isatty()
    try:
        report = explain_file(model, data, output, args.threads, args.chunk_rows,
                              show_progress)
    except KeyboardInterrupt:
        print("treelens: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI reports every failure as one line, exit status 2
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"treelens: error: {message}", file=sys.stderr)
        return 2
    print(report)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treelens", description="Exact TreeSHAP values for tree ensemble models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explain = commands.add_parser(
        "explain", help="write the SHAP values of every row of a data file",
        description="Write path-dependent TreeSHAP values of the raw margin for every row "
                    "of DATA to OUT: one column per feature (named by the model's feature "
                    "names, f0.. otherwise) plus expected_value; multi-output models get "
                    "{feature}__{k} and expected_value__{k} for each output k.")
    explain.add_argument("model", nargs="?", metavar="MODEL",
                         help="saved model: XGBoost .json/.ubj, LightGBM text or "
                              "dump_model JSON")
    explain.add_argument("data", nargs="?", metavar="DATA",
                         help="rows to explain: .csv, .parquet or .npy")
    explain.add_argument("-o", "--output", metavar="OUT",
                         help="where to write: .csv, .parquet or .npy")
    explain.add_argument("--example", action="store_true",
                         help="explain the bundled example model and data (default OUT: "
                              f"{EXAMPLE_OUTPUT})")
    explain.add_argument("--threads", type=int, metavar="N",
                         help="worker threads (default: all cores)")
    explain.add_argument("--chunk-rows", type=int, default=BLOCK_ROWS, metavar="N",
                         help=f"rows read and explained at a time (default {BLOCK_ROWS})")
    explain.add_argument("--no-progress", action="store_true",
                         help="no progress bar on stderr")
    return parser


def explain_file(model_path: Path, data_path: Path, output_path: Path,
                 n_threads: Optional[int], chunk_rows: int, show_progress: bool) -> str:
    """Explain every row of ``data_path`` into ``output_path``; return a short summary
    (the time it reports covers reading, explaining and writing, not loading the model)."""
    _io.check_data(data_path)
    _io.check_output(output_path)
    threads = check_threads(n_threads)
    forest = load(model_path)
    names = forest.feature_names or [f"f{i}" for i in range(forest.n_features)]
    expected_value = forest.expected_value
    n_rows, chunks = _io.read_chunks(data_path, chunk_rows, forest.spec)
    mean_abs = np.zeros(forest.n_features, dtype=np.float64)
    progress = _progress(n_rows, show_progress)
    started = time.perf_counter()
    try:
        with _io.open_writer(output_path, _io.output_columns(names, forest.n_outputs)) as out:
            for chunk in chunks:
                phi = forest.shap_values(chunk, threads)
                out.write(_io.table_block(phi, expected_value))
                mean_abs += _abs_sum(phi)
                progress.update(phi.shape[0])
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    return _summary(forest, names, out.rows, seconds, mean_abs / max(out.rows, 1),
                    output_path)


def _abs_sum(phi: np.ndarray) -> np.ndarray:
    """Sum over rows (and outputs) of |phi|: float64 ``[m]``."""
    total = np.abs(phi).sum(axis=0)
    return total.sum(axis=1) if total.ndim == 2 else total


def _summary(forest: Forest, names: List[str], rows: int, seconds: float,
             mean_abs: np.ndarray, output_path: Path) -> str:
    rate = rows / seconds if seconds > 0 else float("inf")
    lines = [f"explained {rows:,} rows x {forest.n_features} features "
             f"({forest.n_trees} trees) in {seconds:.2f} s ({rate:,.0f} rows/s) "
             f"-> {output_path}"]
    if rows:
        what = "mean |SHAP|" + (" summed over outputs" if forest.n_outputs > 1 else "")
        lines.append(f"top features by {what}:")
        order = np.argsort(-mean_abs, kind="stable")[:TOP_FEATURES]
        width = max(len(names[i]) for i in order)
        lines += [f"  {names[i]:<{width}}  {mean_abs[i]:.6g}" for i in order]
    return "\n".join(lines)


def _progress(total: Optional[int], enabled: bool) -> Any:
    """A progress bar on stderr (tqdm when installed) with ``update(n)`` and ``close()``."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return _PlainProgress(total, enabled)
    return tqdm(total=total, unit=" rows", unit_scale=True, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)


class _PlainProgress:
    """Rows done and rows/s on one refreshed stderr line, at most five times a second."""

    def __init__(self, total: Optional[int], enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.done = 0
        self.start = time.perf_counter()
        self.shown = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and now - self.shown >= 0.2:
            self.shown = now
            self._show(now)

    def close(self) -> None:
        if self.enabled:
            self._show(time.perf_counter())
            sys.stderr.write("\n")

    def _show(self, now: float) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        of = f"/{self.total:,}" if self.total is not None else ""
        sys.stderr.write(f"\r{self.done:,}{of} rows  {rate:,.0f} rows/s")
        sys.stderr.flush()
