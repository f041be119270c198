"""Data files read batch by batch, for a batch job.

DATA is a Parquet file, a directory of Parquet files (a dataset; hive partition keys
``key=value`` become columns), a CSV file or a ``.npy`` matrix. Parquet and CSV are read
through ``pyarrow.dataset`` (only the columns the job needs, batches of at most
``batch_rows`` rows, files in path order); without pyarrow a numeric CSV is read by a
plain reader (kept columns as text) and a ``.npy`` file is memory-mapped. Every reader
gives a ``Reading``: the items to read and how to turn one into a ``_batch.Chunk``.
"""
from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import numpy as np

from . import _arrow
from ._batch import ArrowJob, BatchPlan, Chunk, check_present

DATA_FORMATS = (".parquet", ".csv", ".npy")

_READ_BUFFER = 4 << 20
_NA_TEXT = frozenset(["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"])


@dataclass
class Reading:
    """An opened input: ``items`` (read lazily) and ``prepare`` (item -> Chunk).

    ``n_rows``: the row count when the format tells it cheaply. ``kept_fields``: Arrow
    fields of the kept columns (None for plain readers, whose kept columns are text).
    ``job``: the ArrowJob of Arrow inputs. ``by_position``: features taken by position.
    """

    items: Iterator[Any]
    prepare: Callable[[Any], Chunk]
    n_rows: Optional[int]
    by_position: bool
    job: Optional[ArrowJob] = None


def check_data(path: Path) -> None:
    """FileNotFoundError / ValueError when ``path`` is no readable input."""
    if path.is_dir():
        return
    if path.suffix.lower() not in DATA_FORMATS:
        raise ValueError(f"unsupported data file extension {path.suffix or '(none)'!r} for "
                         f"{path}; expected {', '.join(DATA_FORMATS)} or a directory of "
                         ".parquet files")
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")


def open_data(path: Path, plan: BatchPlan, target: Optional[str],
              batch_rows: int) -> Reading:
    """Open ``path`` for ``plan``; ValueError / TypeError for missing or unusable columns
    before any row is read."""
    check_data(path)
    suffix = "" if path.is_dir() else path.suffix.lower()
    if suffix == ".npy":
        return _open_npy(path, plan, target, batch_rows)
    if suffix == ".csv":
        try:
            _arrow.require()
        except ImportError:
            return _open_plain_csv(path, plan, target, batch_rows)
    return _open_dataset(path, plan, target, batch_rows)


def read_all(reading: Reading) -> Chunk:
    """Every row of an input as one Chunk (for jobs that need all rows at once)."""
    chunks = [reading.prepare(item) for item in reading.items]
    if not chunks:
        raise ValueError("the input has no rows")
    labels = None if chunks[0].labels is None else np.concatenate([c.labels for c in chunks])
    return Chunk(np.concatenate([c.matrix for c in chunks]), labels, [])


# ---------------------------------------------------------------- Arrow datasets


def _open_dataset(path: Path, plan: BatchPlan, target: Optional[str],
                  batch_rows: int) -> Reading:
    ds = _arrow.require("pyarrow.dataset", f"reading {path.name}")
    dataset = _dataset(ds, path, plan)
    full = ArrowJob(plan, dataset.schema, target=target)
    names = full.input_names
    wanted = [names[p] for p in full.selection.positions] + plan.keep
    wanted += [target] if target is not None else []
    columns = list(dict.fromkeys(wanted))
    schema = _arrow.require().schema([dataset.schema.field(c) for c in columns])
    job = ArrowJob(plan, schema, target=target)
    if path.suffix.lower() == ".csv" and not path.is_dir():
        scan = dict(columns=columns, batch_size=batch_rows, batch_readahead=1,
                    fragment_readahead=1)
        batches = _errors(lambda: dataset.to_batches(**scan), path)
    else:
        batches = _errors(lambda: _parquet_batches(ds, dataset, schema, batch_rows), path)
    return Reading(batches, job.prepare, _count(dataset), full.features_by_position, job)


def _parquet_batches(ds: Any, dataset: Any, schema: Any, batch_rows: int) -> Iterator[Any]:
    """Batches of ``schema``'s columns, file by file in path order and row group by row
    group within a file (memory stays flat however large the files are); hive partition
    keys of a file are repeated as its rows' values."""
    pa = _arrow.require()
    pq = _arrow.require("pyarrow.parquet")
    for fragment in dataset.get_fragments():
        keys = ds.get_partition_keys(fragment.partition_expression)
        stored = [f.name for f in schema if f.name not in keys]
        # Without pre-buffering and with a buffered stream, column chunks are read a
        # piece at a time; pre-buffered, every chunk read stays in memory until the file
        # is closed, so memory would grow with the file.
        with pq.ParquetFile(fragment.path, pre_buffer=False,
                            buffer_size=_READ_BUFFER) as reader:
            for batch in reader.iter_batches(batch_size=batch_rows, columns=stored,
                                             use_threads=True):
                arrays = []
                for field in schema:
                    if field.name in keys:
                        value = pa.array([keys[field.name]], field.type)
                        arrays.append(value.take(pa.array(np.zeros(batch.num_rows, np.int64))))
                        continue
                    array = batch.column(field.name)
                    arrays.append(array if array.type == field.type else array.cast(field.type))
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _dataset(ds: Any, path: Path, plan: BatchPlan) -> Any:
    """The dataset at ``path``: Parquet (a file, or a directory with hive partitions) or
    CSV with the model's numeric feature columns read as float64."""
    try:
        if path.suffix.lower() == ".csv" and not path.is_dir():
            return ds.dataset(path, format=_csv_format(ds, path, plan))
        dataset = ds.dataset(path, format="parquet", partitioning="hive",
                             exclude_invalid_files=False)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise ValueError(f"{path}: cannot read as {_kind(path)} ({one_line(exc)})") from None
    if path.is_dir() and not dataset.files:
        raise ValueError(f"{path}: the directory holds no Parquet files")
    return dataset


def _csv_format(ds: Any, path: Path, plan: BatchPlan) -> Any:
    csv_mod = _arrow.require("pyarrow.csv", "reading CSV")
    pa = _arrow.require()
    spec = plan.forest.spec
    numeric = {}
    if spec.feature_names is not None:
        numeric = {name: pa.float64() for j, name in enumerate(spec.feature_names)
                   if j not in spec.categories_by_feature}
    return ds.CsvFileFormat(
        read_options=csv_mod.ReadOptions(block_size=8 << 20),
        convert_options=csv_mod.ConvertOptions(column_types=numeric))


def _count(dataset: Any) -> Optional[int]:
    try:
        return int(dataset.count_rows()) if str(dataset.format).find("Parquet") >= 0 else None
    except Exception:  # a corrupt footer is reported when the rows are read
        return None


def _errors(batches: Callable[[], Iterator[Any]], path: Path) -> Iterator[Any]:
    """``batches()``, with pyarrow's read errors as one-line ValueErrors. Reading starts
    with the first batch asked for and stops when the generator is closed."""
    pa = _arrow.require()
    try:
        yield from batches()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, KeyError) as exc:
        raise ValueError(f"{path}: {one_line(exc)}") from None


def _kind(path: Path) -> str:
    return "CSV" if path.suffix.lower() == ".csv" else "Parquet"


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


# ------------------------------------------------------------ without pyarrow


def _no_columns(plan: BatchPlan, target: Optional[str], path: Path) -> None:
    if plan.keep or target is not None:
        raise ValueError(f"{path.name} has no named columns to keep or to take the target "
                         "from; use a .parquet or .csv input")


def _open_npy(path: Path, plan: BatchPlan, target: Optional[str],
              batch_rows: int) -> Reading:
    _no_columns(plan, target, path)
    try:
        array = np.load(path, mmap_mode="r")
    except ValueError as exc:
        raise ValueError(f"{path}: cannot read as a numeric .npy array ({exc})") from None
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected a 2-D numeric array, got shape {array.shape} "
                         f"and dtype {array.dtype}")
    n_features = plan.forest.n_features
    if array.shape[1] != n_features:
        raise ValueError(f"{path}: has {array.shape[1]} columns but the model expects "
                         f"{n_features} features")
    starts = range(0, array.shape[0], batch_rows)

    def prepare(start: int) -> Chunk:
        block = np.asarray(array[start:start + batch_rows])
        if block.dtype not in (np.float32, np.float64):
            block = block.astype(np.float64)
        return Chunk(block, None, [])

    return Reading(iter(starts), prepare, array.shape[0], by_position=True)


def _open_plain_csv(path: Path, plan: BatchPlan, target: Optional[str],
                    batch_rows: int) -> Reading:
    """A numeric CSV read without pyarrow: features and target as float64, kept columns
    as their text."""
    fh = open(path, newline="", encoding="utf-8")
    rows = csv.reader(fh)
    header = next(rows, None)
    if header is None:
        fh.close()
        raise ValueError(f"{path}: empty CSV file (expected a header line)")
    check_present(plan.keep + ([target] if target else []), header, "kept or target")
    reserved = plan.keep + ([target] if target else [])
    selection = _arrow.select_columns(header, plan.forest.spec, reserved)
    kept = [header.index(k) for k in plan.keep]
    target_at = header.index(target) if target is not None else None

    def blocks() -> Iterator[List[List[str]]]:
        line = 1
        try:
            while True:
                block = list(itertools.islice(rows, batch_rows))
                if not block:
                    return
                for row in block:
                    line += 1
                    if len(row) != len(header):
                        raise ValueError(f"{path}, line {line}: {len(row)} fields, expected "
                                         f"{len(header)}")
                yield block
        finally:
            fh.close()

    def prepare(block: List[List[str]]) -> Chunk:
        text = np.array(block, dtype=object).reshape(len(block), len(header))
        matrix = _parse(text[:, selection.positions], path)
        labels = None if target_at is None else _parse(text[:, [target_at]], path)[:, 0]
        return Chunk(matrix, labels, [text[:, k].astype(str) for k in kept])

    return Reading(blocks(), prepare, None, selection.by_position)


def _parse(text: np.ndarray, path: Path) -> np.ndarray:
    out = np.empty(text.shape, dtype=np.float64)
    for j in range(text.shape[1]):
        try:
            out[:, j] = [np.nan if v in _NA_TEXT else float(v) for v in text[:, j]]
        except ValueError as exc:
            raise ValueError(f"{path}: {exc} (a non-numeric feature column; install pyarrow "
                             f"to read categories: pip install \"{_arrow.ARROW_EXTRA}\")"
                             ) from None
    return out
