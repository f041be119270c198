"""Command line: ``treelens explain`` and ``treelens importance``.

``explain`` streams DATA through the model batch by batch (a reader thread, the kernel,
and writing in the main thread overlap) and writes one output row per input row (see
``treelens._batch`` for the columns). ``importance`` reads DATA whole and writes
permutation importances. Errors print one line on stderr and exit with status 2;
Ctrl-C exits with status 130 and leaves no partial output.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np

from . import _files, _pipeline, _writers
from ._batch import BatchPlan
from ._progress import progress_bar
from .model import BLOCK_ROWS, Forest, load

EXAMPLE_DIR = Path(__file__).resolve().parent / "data"
EXAMPLE_MODEL = EXAMPLE_DIR / "example_model.json"
EXAMPLE_DATA = EXAMPLE_DIR / "example.csv"
EXAMPLE_OUTPUT = Path("treelens_example_shap.csv")
EXAMPLE_KEEP = ["customer_id"]
EXAMPLE_TOP_K = 3
TOP_FEATURES = 5


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``treelens`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "explain":
            _explain_arguments(parser, args)
            report = explain_command(args)
        else:
            from ._cli_importance import importance_command

            _check_threads(parser, args)
            report = importance_command(args)
    except KeyboardInterrupt:
        print("treelens: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI reports every failure as one line, exit status 2
        print(f"treelens: error: {_files.one_line(exc)}", file=sys.stderr)
        return 2
    print(report)
    return 0


def _parser() -> argparse.ArgumentParser:
    from ._cli_importance import add_importance_parser

    parser = argparse.ArgumentParser(
        prog="treelens", description="Exact SHAP values and permutation importances for "
                                     "tree ensemble models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explain = commands.add_parser(
        "explain", help="write the SHAP values of every row of a data set",
        description="Write exact SHAP values for every row of DATA to OUT, one output row "
                    "per input row, in order: the --keep columns, one SHAP column per "
                    "feature (named by the model's feature names; {feature}__{k} for "
                    "output k of multi-output models) and expected_value.")
    explain.add_argument("model", nargs="?", metavar="MODEL",
                         help="saved model: XGBoost .json/.ubj, LightGBM text or "
                              "dump_model JSON")
    add_data_arguments(explain)
    explain.add_argument("--example", action="store_true",
                         help="explain the bundled example model and data (default OUT: "
                              f"{EXAMPLE_OUTPUT}, keeping {EXAMPLE_KEEP[0]}, with the top "
                              f"{EXAMPLE_TOP_K} features)")
    explain.add_argument("--keep", metavar="COLS", type=_names, default=[],
                         help="comma-separated columns copied to OUT unchanged, row for row "
                              "(hive partition keys of a dataset directory too)")
    explain.add_argument("--top-k", type=int, default=None, metavar="K",
                         help="add the K features of largest |SHAP| per row (and output): "
                              "top{i}_feature, top{i}_shap; ties go to the earlier feature")
    explain.add_argument("--prediction", action="store_true",
                         help="add the margin (and the prediction where the model has a link)")
    explain.add_argument("--background", metavar="BG",
                         help="background rows (same formats as DATA): interventional SHAP")
    explain.add_argument("--model-output", default="raw",
                         choices=("raw", "probability", "log_loss"),
                         help="output explained (probability and log_loss need --background; "
                              "log_loss needs --target)")
    explain.add_argument("--target", metavar="COL",
                         help="label column, for --model-output log_loss")
    explain.add_argument("--interactions", action="store_true",
                         help="write SHAP interaction values instead: long format "
                              "(feature_i, feature_j, interaction) or a [n, s, s] .npy")
    explain.add_argument("--features", metavar="COLS", type=_names,
                         help="with --interactions: the features to pair (default all)")
    explain.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                         help="type of the output values (float32 halves the file)")
    explain.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    explain.add_argument("--no-progress", action="store_true",
                         help="no progress bar on stderr")
    add_importance_parser(commands)
    return parser


def add_data_arguments(command: argparse.ArgumentParser) -> None:
    """DATA, -o OUT, --threads and --batch-rows: shared by every subcommand."""
    command.add_argument("data", nargs="?", metavar="DATA",
                         help="rows: a .parquet file, a directory of .parquet files, .csv or "
                              ".npy")
    command.add_argument("-o", "--output", metavar="OUT", help="where to write")
    command.add_argument("--threads", type=int, metavar="N",
                         help="worker threads (default: all cores)")
    command.add_argument("--batch-rows", "--chunk-rows", dest="batch_rows", type=int,
                         default=BLOCK_ROWS, metavar="N",
                         help=f"rows read and explained at a time (default {BLOCK_ROWS})")


def _names(text: str) -> List[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got {text!r}")
    return names


def _check_threads(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be positive, got {args.threads}")
    if args.batch_rows < 1:
        parser.error(f"--batch-rows must be positive, got {args.batch_rows}")


def _explain_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    _check_threads(parser, args)
    if args.example:
        if args.model or args.data:
            parser.error("--example takes no MODEL or DATA")
        args.model, args.data = str(EXAMPLE_MODEL), str(EXAMPLE_DATA)
        if not args.output:
            args.output, args.overwrite = str(EXAMPLE_OUTPUT), True
        args.keep = args.keep or list(EXAMPLE_KEEP)
        args.top_k = EXAMPLE_TOP_K if args.top_k is None else args.top_k
    elif not (args.model and args.data):
        parser.error("MODEL and DATA are required (or use --example)")
    if not args.output:
        parser.error("-o/--output is required")
    args.top_k = args.top_k or 0
    if args.top_k < 0:
        parser.error(f"--top-k must be >= 0, got {args.top_k}")
    if args.features and not args.interactions:
        parser.error("--features selects interaction features; add --interactions")
    if args.model_output != "raw" and not args.background:
        parser.error(f"--model-output {args.model_output} needs --background")


def explain_command(args: argparse.Namespace) -> str:
    """Run ``treelens explain``; return the summary to print."""
    model, data, output = Path(args.model), Path(args.data), Path(args.output)
    inputs = [model, data] + ([Path(args.background)] if args.background else [])
    _files.check_data(data)
    _writers.check_output(output, inputs, args.overwrite)
    forest = load(model)
    background = None
    if args.background:
        background = read_rows(Path(args.background), forest, args.batch_rows).matrix
    plan = BatchPlan(forest, keep=args.keep, top_k=args.top_k,
                     output="interactions" if args.interactions else "shap",
                     model_output=args.model_output, data=background,
                     features=args.features, prediction=args.prediction, dtype=args.dtype,
                     n_threads=args.threads)
    reading = _files.open_data(data, plan, args.target, args.batch_rows)
    progress = progress_bar(reading.n_rows, not args.no_progress and sys.stderr.isatty())
    mean_abs = np.zeros(forest.n_features, dtype=np.float64)
    rows = 0

    def compute(chunk: Any) -> Any:
        return plan.explain(chunk.matrix, chunk.labels), chunk.kept

    started = time.perf_counter()
    try:
        with _writers.open_writer(output, plan, reading.job and reading.job.schema) as out:
            for batch, kept in _pipeline.overlapped(reading.items, [reading.prepare, compute]):
                out.write(batch, kept)
                rows += batch.rows
                if batch.shap_abs_sum is not None:
                    mean_abs += batch.shap_abs_sum
                progress.update(batch.rows)
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    return _summary(forest, plan, rows, out.rows, seconds, mean_abs / max(rows, 1),
                    output, reading.by_position)


def read_rows(path: Path, forest: Forest, batch_rows: int,
              target: Optional[str] = None) -> Any:
    """Every row of a data file as one ``Chunk`` (features, and labels from ``target``)."""
    reading = _files.open_data(path, BatchPlan(forest), target, batch_rows)
    try:
        return _files.read_all(reading)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _summary(forest: Forest, plan: BatchPlan, rows: int, written: int, seconds: float,
             mean_abs: np.ndarray, output_path: Path, by_position: bool) -> str:
    rate = rows / seconds if seconds > 0 else float("inf")
    lines = [f"explained {rows:,} rows x {forest.n_features} features "
             f"({forest.n_trees} trees) in {seconds:.2f} s ({rate:,.0f} rows/s) "
             f"-> {output_path} ({written:,} rows)"]
    if by_position:
        lines.append(f"the model has no feature names: its {forest.n_features} features "
                     "are the first columns of DATA that are not kept")
    if rows and plan.output == "shap":
        what = "mean |SHAP|" + (" summed over outputs" if forest.n_outputs > 1 else "")
        lines.append(f"top features by {what}:")
        order = np.argsort(-mean_abs, kind="stable")[:TOP_FEATURES]
        width = max(len(plan.names[i]) for i in order)
        lines += [f"  {plan.names[i]:<{width}}  {mean_abs[i]:.6g}" for i in order]
    return "\n".join(lines)
