"""Arrow batches in, Arrow batches out: the building block of batch jobs.

>>> out = treelens.explain_table(model, table, keep=["id"], top_k=3)
>>> for out_batch in treelens.explain_batches(model, reader, keep=["id"]):
...     writer.write_batch(out_batch)

Features are taken from the table by the model's feature names (other columns are
ignored); a model without names takes the first ``n_features`` columns that are neither
kept nor the target. Kept columns are copied through unchanged, row for row. The output
columns are described in ``treelens._batch`` (and the README). Needs pyarrow
(``pip install "treelens[parquet]"``); pandas is not used.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Sequence

from . import _arrow, _pipeline
from ._batch import ArrowJob, BatchPlan


def explain_table(model: Any, table: Any, keep: Optional[Sequence[str]] = None,
                  top_k: int = 0, output: str = "shap", model_output: str = "raw",
                  data: Any = None, dtype: str = "float64", n_threads: Optional[int] = None,
                  *, prediction: bool = False, features: Any = None,
                  target: Optional[str] = None, data_weights: Any = None) -> Any:
    """Explain every row of a pyarrow ``Table`` / ``RecordBatch`` (or a polars DataFrame).

    ``output``: ``"shap"`` (one output row per input row) or ``"interactions"``
    (``s * s`` rows per input row for the ``features`` selected, default all).
    ``model_output``: ``"raw"``, or with background ``data`` ``"probability"`` /
    ``"log_loss"`` (labels from the ``target`` column). ``prediction`` adds the margin and
    the prediction; ``top_k`` adds the K features of largest |SHAP| per row and output.
    ``dtype``: ``"float64"`` or ``"float32"`` output columns.

    Returns a ``pyarrow.Table``: the ``keep`` columns, then the explanation columns.
    """
    pa = _arrow.require(what="explain_table")
    plan = BatchPlan(model, keep=keep or (), top_k=top_k, output=output,
                     model_output=model_output, data=data, data_weights=data_weights,
                     features=features, prediction=prediction, dtype=dtype,
                     n_threads=n_threads)
    table = _as_arrow(table, pa)
    job = ArrowJob(plan, table.schema, target=target)
    batches = table.to_batches() if isinstance(table, pa.Table) else [table]
    return pa.Table.from_batches([job.explain(b) for b in batches if b.num_rows],
                                 schema=job.schema)


def explain_batches(model: Any, batches: Iterable[Any], keep: Optional[Sequence[str]] = None,
                    top_k: int = 0, output: str = "shap", model_output: str = "raw",
                    data: Any = None, dtype: str = "float64", n_threads: Optional[int] = None,
                    *, prediction: bool = False, features: Any = None,
                    target: Optional[str] = None, data_weights: Any = None
                    ) -> Iterator[Any]:
    """Explain a stream of pyarrow RecordBatches (a ``RecordBatchReader``, a dataset's
    ``to_batches()``, any iterable); yields one output ``RecordBatch`` per input batch, in
    order. Arguments as in ``explain_table``; every batch must have the first one's columns.

    The next batch is read and converted while the current one is explained, in
    background threads with at most two batches waiting at each step.
    """
    pa = _arrow.require(what="explain_batches")
    plan = BatchPlan(model, keep=keep or (), top_k=top_k, output=output,
                     model_output=model_output, data=data, data_weights=data_weights,
                     features=features, prediction=prediction, dtype=dtype,
                     n_threads=n_threads)
    return _stream(plan, iter(batches), target, pa)


def _stream(plan: BatchPlan, batches: Iterator[Any], target: Optional[str],
            pa: Any) -> Iterator[Any]:
    first = next(batches, None)
    if first is None:
        return
    first = _as_arrow(first, pa)
    job = ArrowJob(plan, first.schema, target=target)

    def source() -> Iterator[Any]:
        yield first
        for batch in batches:
            yield _as_arrow(batch, pa)

    def compute(chunk: Any) -> Any:
        return job.finish(plan.explain(chunk.matrix, chunk.labels), chunk.kept)

    yield from _pipeline.overlapped(source(), [job.prepare, compute])


def _as_arrow(table: Any, pa: Any) -> Any:
    if isinstance(table, (pa.Table, pa.RecordBatch)):
        return table
    if type(table).__module__.split(".")[0] == "polars":
        return table.to_arrow()
    raise TypeError(f"expected a pyarrow Table or RecordBatch, got {type(table).__name__}")
