"""Data files read in row chunks and result tables written chunk by chunk.

Inputs: ``.csv`` (pandas ``chunksize``; a plain reader when pandas is absent),
``.parquet`` (pyarrow record batches) and ``.npy`` (memory-mapped). Outputs: ``.csv``,
``.parquet`` (one row group per chunk) and ``.npy`` (rows appended after a header that
is rewritten with the final shape). Memory stays bounded by the chunk size.
"""
from __future__ import annotations

import csv
import importlib
import itertools
import os
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._inputs import column_positions
from ._spec import ForestSpec

DATA_FORMATS = (".csv", ".parquet", ".npy")
OUTPUT_FORMATS = (".csv", ".parquet", ".npy")

_NA_TEXT = frozenset(["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"])


def read_chunks(path: Path, chunk_rows: int,
                spec: ForestSpec) -> Tuple[Optional[int], Iterator[Any]]:
    """(row count when the format tells it cheaply, iterator of row chunks).

    Chunks are pandas DataFrames (csv), pyarrow RecordBatches (parquet) or 2-D NumPy
    arrays (npy, and csv without pandas), each of at most ``chunk_rows`` rows, ready
    for ``Forest.shap_values``.
    """
    check_data(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as exc:
            raise ValueError(f"{path}: cannot read as a numeric .npy array ({exc})") from None
        if array.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D array, got shape {array.shape}")
        n = array.shape[0]
        return n, (array[a:a + chunk_rows] for a in range(0, n, chunk_rows))
    if suffix == ".parquet":
        pq = _require("pyarrow.parquet", "reading .parquet files needs pyarrow")
        reader = pq.ParquetFile(path)
        return reader.metadata.num_rows, reader.iter_batches(batch_size=chunk_rows)
    try:
        import pandas as pd
    except ModuleNotFoundError:
        return None, _plain_csv_chunks(path, chunk_rows, spec)
    return None, iter(pd.read_csv(path, chunksize=chunk_rows))


def _plain_csv_chunks(path: Path, chunk_rows: int, spec: ForestSpec) -> Iterator[np.ndarray]:
    """Numeric CSV without pandas: float64 chunks, columns in the model's order."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None:
            raise ValueError(f"{path}: empty CSV file (expected a header line)")
        positions = column_positions(header, spec)
        line = 1
        while True:
            block = list(itertools.islice(rows, chunk_rows))
            if not block:
                return
            out = np.empty((len(block), len(header)), dtype=np.float64)
            for i, row in enumerate(block):
                line += 1
                if len(row) != len(header):
                    raise ValueError(f"{path}, line {line}: {len(row)} fields, "
                                     f"expected {len(header)}")
                try:
                    out[i] = [np.nan if v in _NA_TEXT else float(v) for v in row]
                except ValueError as exc:
                    raise ValueError(f"{path}, line {line}: {exc} (install pandas to read "
                                     "non-numeric columns)") from None
            yield out[:, positions]


class TableWriter:
    """Writes a float64 table ``[n_rows, n_columns]`` chunk by chunk.

    Data goes to ``<path>.partial`` and replaces ``path`` only when ``close`` succeeds;
    leaving the ``with`` block on an exception removes the partial file.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = list(columns)
        self.rows = 0
        self._partial = path.with_name(path.name + ".partial")

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._release()
            self._partial.unlink(missing_ok=True)

    def write(self, block: np.ndarray) -> None:
        """Append rows: float64 ``[rows, n_columns]``."""
        self._write(block)
        self.rows += block.shape[0]

    def close(self) -> None:
        self._finish()
        os.replace(self._partial, self.path)

    def _write(self, block: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        self._release()

    def _release(self) -> None:
        raise NotImplementedError


class _CsvWriter(TableWriter):
    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        super().__init__(path, columns)
        self._fh = open(self._partial, "w", newline="", encoding="utf-8")
        csv.writer(self._fh).writerow(self.columns)

    def _write(self, block: np.ndarray) -> None:
        np.savetxt(self._fh, block, fmt="%.17g", delimiter=",")

    def _release(self) -> None:
        self._fh.close()


class _NpyWriter(TableWriter):
    """Rows appended after a fixed-size header; ``_finish`` rewrites it with the count."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        super().__init__(path, columns)
        self._fh = open(self._partial, "wb")
        self._header_bytes = self._write_header()

    def _write_header(self) -> int:
        self._fh.seek(0)
        np.lib.format.write_array_header_1_0(self._fh, {
            "descr": "<f8", "fortran_order": False, "shape": (self.rows, len(self.columns))})
        return self._fh.tell()

    def _write(self, block: np.ndarray) -> None:
        self._fh.write(np.ascontiguousarray(block, dtype="<f8").tobytes())

    def _finish(self) -> None:
        if self._write_header() != self._header_bytes:
            raise ValueError(f"{self.path}: .npy header size changed; cannot finish the file")
        self._release()

    def _release(self) -> None:
        self._fh.close()


class _ParquetWriter(TableWriter):
    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        super().__init__(path, columns)
        self._pa = _require("pyarrow", "writing .parquet files needs pyarrow")
        pq = _require("pyarrow.parquet", "writing .parquet files needs pyarrow")
        self._schema = self._pa.schema([(c, self._pa.float64()) for c in self.columns])
        self._writer = pq.ParquetWriter(self._partial, self._schema)

    def _write(self, block: np.ndarray) -> None:
        columns = np.asfortranarray(block, dtype=np.float64)
        arrays = [self._pa.array(columns[:, j]) for j in range(columns.shape[1])]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema))

    def _release(self) -> None:
        self._writer.close()


_WRITERS = {".csv": _CsvWriter, ".npy": _NpyWriter, ".parquet": _ParquetWriter}


def open_writer(path: Path, columns: Sequence[str]) -> TableWriter:
    """A ``TableWriter`` for ``path``, chosen by its extension."""
    check_output(path)
    return _WRITERS[path.suffix.lower()](path, columns)


def _check_suffix(path: Path, allowed: Tuple[str, ...], role: str) -> None:
    if path.suffix.lower() not in allowed:
        raise ValueError(f"unsupported {role} file extension {path.suffix or '(none)'!r} "
                         f"for {path}; expected one of {', '.join(allowed)}")


def _require(module: str, message: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ImportError(f"{message} (pip install pyarrow)") from None


def check_output(path: Path) -> None:
    """Raise early (ValueError / FileNotFoundError) when ``path`` cannot be written to."""
    _check_suffix(path, OUTPUT_FORMATS, "output")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory not found: {path.parent}")


def check_data(path: Path) -> None:
    """Raise early (ValueError / FileNotFoundError) when ``path`` is not a readable input."""
    _check_suffix(path, DATA_FORMATS, "data")
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")


def output_columns(feature_names: List[str], n_outputs: int) -> List[str]:
    """Column names of the SHAP table.

    One output: one column per feature, then ``expected_value``. ``k`` outputs: the
    features of output 0 as ``{feature}__0``, then those of output 1, ..., then
    ``expected_value__0`` ... ``expected_value__{k-1}``.
    """
    if n_outputs == 1:
        return list(feature_names) + ["expected_value"]
    return ([f"{name}__{k}" for k in range(n_outputs) for name in feature_names]
            + [f"expected_value__{k}" for k in range(n_outputs)])


def table_block(phi: np.ndarray, expected_value: Any) -> np.ndarray:
    """Rows of the SHAP table in the ``output_columns`` layout.

    ``phi``: ``[rows, m]`` or ``[rows, m, k]``; ``expected_value``: float or ``[k]``.
    Returns float64 ``[rows, (m + 1) * k]``.
    """
    rows = phi.shape[0]
    if phi.ndim == 2:
        phi = phi[:, :, None]
    m, k = phi.shape[1], phi.shape[2]
    out = np.empty((rows, (m + 1) * k), dtype=np.float64)
    out[:, :m * k] = phi.transpose(0, 2, 1).reshape(rows, m * k)
    out[:, m * k:] = np.reshape(expected_value, (1, k))
    return out
