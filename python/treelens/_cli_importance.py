"""``treelens importance MODEL DATA --target y``: permutation importances of a data set.

DATA is read whole (permutation needs every row at once), then scored by
``treelens.permutation_importance``. OUT (``.csv`` or ``.json``) holds one row per feature
or group, in the model's feature order: mean, standard deviation and every repeat's
importance; ``--plot`` draws them (needs matplotlib).
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any, List, Tuple

import numpy as np

from . import _writers
from .model import load
from .permutation import CLASSIFICATION_SCORERS, REGRESSION_SCORERS, permutation_importance

IMPORTANCE_FORMATS = (".csv", ".json")
TOP_FEATURES = 10


def add_importance_parser(commands: Any) -> None:
    from .cli import add_data_arguments

    command = commands.add_parser(
        "importance", help="permutation importances of the features on a labelled data set",
        description="Permute each feature (or group) of DATA across rows and report how much "
                    "the score drops, as sklearn.inspection.permutation_importance does.")
    command.add_argument("model", metavar="MODEL", help="saved model file")
    add_data_arguments(command)
    command.add_argument("--target", required=True, metavar="COL", help="the label column")
    command.add_argument("--scoring", default=None,
                         choices=REGRESSION_SCORERS + CLASSIFICATION_SCORERS,
                         help="score (default: r2 for regression, accuracy for classifiers)")
    command.add_argument("--repeats", type=int, default=5, metavar="N",
                         help="permutations per feature (default 5)")
    command.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    command.add_argument("--max-samples", type=float, default=1.0, metavar="S",
                         help="rows scored per repeat: a fraction (<= 1.0) or a count")
    command.add_argument("--groups", metavar="GROUPS.json",
                         help="features permuted together: a JSON list of lists of feature "
                              "names or indices, or an object {group name: [features]}")
    command.add_argument("--plot", metavar="PNG", help="draw the importances (needs matplotlib)")
    command.add_argument("--overwrite", action="store_true",
                         help="replace an existing OUT or PNG")


def importance_command(args: argparse.Namespace) -> str:
    """Run ``treelens importance``; return the summary to print."""
    from .cli import read_rows

    model, data = Path(args.model), Path(args.data or "")
    if not args.data:
        raise ValueError("DATA is required")
    outputs = [Path(p) for p in (args.output, args.plot) if p]
    for path in outputs:
        _check_output(path, [model, data], args.overwrite, path == Path(args.plot or ""))
    if args.repeats < 1:
        raise ValueError(f"--repeats must be positive, got {args.repeats}")
    forest = load(model)
    names, groups = _groups(Path(args.groups), forest) if args.groups else (
        forest.feature_names or [f"f{i}" for i in range(forest.n_features)], None)
    rows = read_rows(data, forest, args.batch_rows, target=args.target)
    max_samples = int(args.max_samples) if args.max_samples > 1 else args.max_samples
    started = time.perf_counter()
    result = permutation_importance(forest, rows.matrix, rows.labels, scoring=args.scoring,
                                    n_repeats=args.repeats, random_state=args.seed,
                                    max_samples=max_samples, groups=groups,
                                    n_threads=args.threads)
    seconds = time.perf_counter() - started
    if args.output:
        _write(Path(args.output), names, result, args)
    if args.plot:
        from .plots import importance_plot

        importance_plot(result, names, path=Path(args.plot),
                        title=f"permutation importance ({args.scoring or 'default score'})")
    return _summary(names, result, rows.matrix.shape[0], seconds, outputs)


def _check_output(path: Path, inputs: List[Path], overwrite: bool, plot: bool) -> None:
    if plot:
        if path.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise ValueError(f"--plot needs a .png, .svg or .pdf file, got {path}")
        _writers.check_output(path.with_suffix(".csv"), inputs, True)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
        return
    if path.suffix.lower() not in IMPORTANCE_FORMATS:
        raise ValueError(f"importances are written as .csv or .json, got {path}")
    _writers.check_output(path.with_suffix(".csv"), inputs, True)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def _groups(path: Path, forest: Any) -> Tuple[List[str], List[List[Any]]]:
    """(group names, groups) from a JSON file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read groups ({exc})") from None
    if isinstance(document, dict):
        names, groups = [str(k) for k in document], list(document.values())
    elif isinstance(document, list):
        groups = document
        names = ["+".join(str(f) for f in g) if isinstance(g, list) else str(g) for g in groups]
    else:
        raise ValueError(f"{path}: expected a JSON list of feature lists or an object "
                         "{name: [features]}")
    if not all(isinstance(g, list) and g for g in groups):
        raise ValueError(f"{path}: every group must be a non-empty list of feature names or "
                         "indices")
    return names, groups


def _write(path: Path, names: List[str], result: Any, args: argparse.Namespace) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w", newline="", encoding="utf-8") as fh:
            if path.suffix.lower() == ".json":
                json.dump({"scoring": args.scoring, "n_repeats": args.repeats,
                           "seed": args.seed, "importances": [
                               {"feature": n, "importance_mean": float(m),
                                "importance_std": float(s), "importances": r.tolist()}
                               for n, m, s, r in _rows(names, result)]}, fh, indent=1)
            else:
                writer = csv.writer(fh)
                writer.writerow(["feature", "importance_mean", "importance_std"]
                                + [f"importance_{i}" for i in range(args.repeats)])
                writer.writerows([n, repr(float(m)), repr(float(s))]
                                 + [repr(float(v)) for v in r]
                                 for n, m, s, r in _rows(names, result))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _rows(names: List[str], result: Any) -> Any:
    return zip(names, result.importances_mean, result.importances_std, result.importances)


def _summary(names: List[str], result: Any, n_rows: int, seconds: float,
             outputs: List[Path]) -> str:
    written = f" -> {', '.join(str(p) for p in outputs)}" if outputs else ""
    lines = [f"permutation importance of {len(names)} feature(s) on {n_rows:,} rows in "
             f"{seconds:.2f} s{written}", "most important (mean +/- std):"]
    order = np.argsort(-result.importances_mean, kind="stable")[:TOP_FEATURES]
    width = max(len(names[i]) for i in order)
    lines += [f"  {names[i]:<{width}}  {result.importances_mean[i]:.6g} +/- "
              f"{result.importances_std[i]:.3g}" for i in order]
    return "\n".join(lines)

