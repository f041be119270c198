"""Explain Spark DataFrames on the executors, with ``mapInArrow`` (no pandas round trip).

>>> import treelens.spark
>>> out = treelens.spark.explain(spark_df, model, keep=["id"], top_k=3)
>>> out.write.parquet("path/")

Each Arrow batch Spark hands over is explained by the same code as
``treelens.explain_table``, so the values equal the single-process ones bit for bit. The
model (and any background) is packed once and shipped as one broadcast; each Python worker
loads it on first use and keeps it. The output schema comes from the model's feature names
and outputs (feature-name columns of ``top_k`` are strings); a missing or non-numeric
feature column, an unknown kept column or a name collision raises here, before any task
runs. treelens uses ``spark.task.cpus`` threads per task. Works on ``local[n]`` and on a
cluster alike; needs ``pip install "treelens[spark]"``.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

from . import _arrow, _shipping
from ._batch import ArrowJob

SPARK_EXTRA = "treelens[spark]"


def explain(df: Any, model: Any, keep: Optional[Sequence[str]] = None, top_k: int = 0,
            model_output: str = "raw", data: Any = None, dtype: str = "float64", *,
            prediction: bool = False, output: str = "shap", features: Any = None,
            target: Optional[str] = None, data_weights: Any = None) -> Any:
    """A Spark DataFrame of explanations of ``df``'s rows: the ``keep`` columns, then the
    columns of ``treelens.explain_table`` (arguments as there). Lazy, like any Spark
    transformation; rows keep their order within each partition."""
    try:
        from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
        from pyspark.sql.types import StructType
    except ModuleNotFoundError:
        raise ImportError(f"treelens.spark needs pyspark: pip install \"{SPARK_EXTRA}\"") \
            from None
    pa = _arrow.require(what="treelens.spark")
    opts = _shipping.options(keep, top_k, output, model_output, features, prediction, dtype)
    forest, packed = _shipping.pack(model, data, data_weights)
    plan = opts.plan(forest, data, data_weights, 1)
    spark = df.sparkSession
    zone = spark.conf.get("spark.sql.session.timeZone")
    job = ArrowJob(plan, to_arrow_schema(df.schema, timezone=zone), target)
    # Kept columns keep their Spark types; the explanation's come from its Arrow schema.
    made = from_arrow_schema(_plain_strings(job.schema, pa))
    schema = StructType([df.schema[k] for k in opts.keep]
                        + [f for f in made.fields if f.name not in set(opts.keep)])
    shipped = spark.sparkContext.broadcast(packed)
    threads = int(spark.conf.get("spark.task.cpus", "1"))

    def explain_batches(batches: Iterator[Any]) -> Iterator[Any]:
        return _explain(batches, shipped.value, opts, target, threads)

    return df.mapInArrow(explain_batches, schema)


def _explain(batches: Iterator[Any], packed: _shipping.Packed, opts: _shipping.Options,
             target: Optional[str], threads: int) -> Iterator[Any]:
    """One output batch per input batch, feature names as plain strings."""
    import pyarrow as pa

    plan = _shipping.plan_for(packed, opts, threads)
    job = None
    for batch in batches:
        if job is None:
            job = ArrowJob(plan, batch.schema, target)
            schema = _plain_strings(job.schema, pa)
        out = job.explain(batch)
        yield pa.RecordBatch.from_arrays(
            [c.cast(f.type) for c, f in zip(out.columns, schema)], schema=schema)


def _plain_strings(schema: Any, pa: Any) -> Any:
    """``schema`` with dictionary fields (feature names) as plain strings."""
    return pa.schema([pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type)
                      else f for f in schema])
