"""Output files of a batch job, written batch by batch.

``.parquet`` (one row group per input batch), ``.csv`` (pyarrow's writer, or a plain one
without pyarrow; floats as the shortest text that reads back to the same value) and
``.npy`` (numbers only: the SHAP table ``[rows, columns]`` or the interaction values
``[rows, s, s(, k)]``; the header is rewritten with the final row count).

Data goes to ``<OUT>.partial`` and replaces OUT only when every batch was written and the
file closed; on any failure (or Ctrl-C) the partial file is removed and the error says so.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np

from . import _arrow
from ._batch import BatchPlan, Labels, OutBatch
from ._files import one_line

OUTPUT_FORMATS = (".parquet", ".csv", ".npy")


def check_output(path: Path, inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse, before any work, an output that cannot or must not be written."""
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output file extension {path.suffix or '(none)'!r} "
                         f"for {path}; expected one of {', '.join(OUTPUT_FORMATS)}")
    target = path.resolve()
    for source in inputs:
        source = source.resolve()
        if target == source or source in target.parents:
            raise ValueError(f"the output {path} would overwrite the input {source}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory not found: {path.parent}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output directory is not writable: {path.parent}")
    if path.is_dir():
        raise ValueError(f"the output {path} is a directory")
    if path.exists() and not overwrite:
        raise FileExistsError(f"the output {path} exists; pass --overwrite to replace it")


class Writer:
    """Writes OutBatches (with their kept columns) to ``<path>.partial``, then renames."""

    def __init__(self, path: Path, plan: BatchPlan) -> None:
        self.path = path
        self.plan = plan
        self.rows = 0
        self.partial = path.with_name(path.name + ".partial")

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._abandon()
            return
        try:
            self._close()
            os.replace(self.partial, self.path)
        except OSError as error:
            self._abandon()
            raise OSError(f"could not finish {self.path} ({one_line(error)}); nothing was "
                          f"written there and {self.partial.name} was removed") from None

    def write(self, out: OutBatch, kept: List[Any]) -> None:
        self._write(out, kept)
        self.rows += out.rows * out.repeat

    def _abandon(self) -> None:
        try:
            self._close()
        except Exception:  # the write already failed; the partial file goes either way
            pass
        self.partial.unlink(missing_ok=True)

    def _write(self, out: OutBatch, kept: List[Any]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class _ArrowWriter(Writer):
    """Parquet, or CSV through pyarrow's writer, from the job's output schema."""

    def __init__(self, path: Path, plan: BatchPlan, schema: Any) -> None:
        super().__init__(path, plan)
        self.schema = schema
        if path.suffix.lower() == ".parquet":
            pq = _arrow.require("pyarrow.parquet", "writing .parquet files")
            pa = _arrow.require()
            # Dictionary pages pay off for names and kept columns, not for SHAP values
            # (nearly all distinct): encoding them costs 4x the write time.
            coded = [f.name for f in schema if not pa.types.is_floating(f.type)]
            self._file = pq.ParquetWriter(self.partial, schema, use_dictionary=coded)
        else:
            pcsv = _arrow.require("pyarrow.csv", "writing CSV")
            self._file = pcsv.CSVWriter(self.partial, schema)

    def _write(self, out: OutBatch, kept: List[Any]) -> None:
        self._file.write_batch(_arrow.record_batch(out, kept, self.schema))

    def _close(self) -> None:
        self._file.close()


class _PlainCsvWriter(Writer):
    """CSV without pyarrow: kept columns as their text, floats by ``repr``."""

    def __init__(self, path: Path, plan: BatchPlan) -> None:
        super().__init__(path, plan)
        self._fh = open(self.partial, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh)
        self._csv.writerow(list(plan.keep) + plan.column_names)

    def _write(self, out: OutBatch, kept: List[Any]) -> None:
        columns = [np.repeat(np.asarray(k, dtype=object), out.repeat) for k in kept]
        for _, values in out.columns:
            columns.append(values.text() if isinstance(values, Labels)
                           else [repr(float(v)) if v == v else "nan" for v in values.tolist()])
        self._csv.writerows(zip(*columns))

    def _close(self) -> None:
        self._fh.close()


class _NpyWriter(Writer):
    """Rows appended after a fixed-size header; ``_close`` rewrites it with the count."""

    def __init__(self, path: Path, plan: BatchPlan, tail: Sequence[int]) -> None:
        super().__init__(path, plan)
        self.tail = tuple(tail)
        self.n = 0
        self._fh = open(self.partial, "wb")
        self._header_bytes = self._header()

    def _header(self) -> int:
        self._fh.seek(0)
        np.lib.format.write_array_header_1_0(self._fh, {
            "descr": np.lib.format.dtype_to_descr(self.plan.dtype), "fortran_order": False,
            "shape": (self.n,) + self.tail})
        return self._fh.tell()

    def _write(self, out: OutBatch, kept: List[Any]) -> None:
        block = out.array if out.array is not None else np.column_stack(
            [c for _, c in out.columns])
        self._fh.write(np.ascontiguousarray(block, dtype=self.plan.dtype).tobytes())
        self.n += out.rows

    def _close(self) -> None:
        if not self._fh.closed:
            if self._header() != self._header_bytes:
                raise OSError(".npy header size changed")
            self._fh.close()


def open_writer(path: Path, plan: BatchPlan, schema: Optional[Any]) -> Writer:
    """A Writer for ``path`` by its extension. ``schema``: the job's Arrow output schema
    (None when the input has no Arrow schema: ``.npy``, or CSV read without pyarrow)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if plan.keep:
            raise ValueError("a .npy output holds numbers only; kept columns need .parquet "
                             "or .csv")
        if plan.output == "interactions":
            s, k = len(plan.selected), plan.forest.n_outputs
            return _NpyWriter(path, plan, (s, s) + ((k,) if k > 1 else ()))
        if plan.label_columns():
            raise ValueError("a .npy output holds numbers only; top-k feature names need "
                             ".parquet or .csv")
        return _NpyWriter(path, plan, (len(plan.column_names),))
    if schema is None:
        try:
            pa = _arrow.require(what=f"writing {suffix} files")
        except ImportError:
            if suffix == ".parquet":
                raise
            return _PlainCsvWriter(path, plan)
        schema = _arrow.output_schema(plan, [pa.field(k, pa.string()) for k in plan.keep])
    return _ArrowWriter(path, plan, schema)
