"""``treelens.spark.explain`` on a real local Spark session (``local[2]``).

Checked against the single-process ``treelens.explain_table`` bit for bit, rows matched by
an ``id`` column: XGBoost with NaN, multiclass LightGBM, categorical LightGBM / XGBoost
fed string columns (mapped to the model's categories by value), with kept columns, top-k,
prediction and float32 output; background probability explanations; the output schema
(feature-name columns as plain strings); column errors raised by the call itself before
any Spark job runs; the thread count taken from ``spark.task.cpus``; and a DataFrame with
a ``timestamp`` column (ignored when not kept, copied when kept).
"""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

pytest.importorskip("pyspark")

import treelens  # noqa: E402
import treelens.spark  # noqa: E402
import zoo  # noqa: E402
from helpers import assert_bitwise  # noqa: E402

OPTIONS = dict(keep=["id"], top_k=2, prediction=True, dtype="float32")
DATASETS = ["xgb_nan", "lgb_multiclass", "lgb_categorical", "xgb_categorical"]
TASK_CPUS = 2

pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning")


@pytest.fixture(scope="module")
def spark():
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = (SparkSession.builder.master("local[2]")
                   .appName("treelens-tests")
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", "4")
                   .config("spark.task.cpus", str(TASK_CPUS))
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
                   .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


# ------------------------------------------------------------------ data and references


def _feature_names(model):
    forest = treelens.load(model)
    return list(forest.feature_names or [f"f{i}" for i in range(forest.n_features)])


def _dataset(name, cases, pandas_models):
    """(model, Arrow table of ``id`` then the features: the reference input, the same
    table with categories as plain strings: the Spark input)."""
    if name.endswith("categorical"):
        library = "lightgbm" if name.startswith("lgb") else "xgboost"
        model = pandas_models.model(library, True)
        frame = pandas_models.frame(True).copy()
        frame.loc[frame.index[[0, 5, 17, 41]], "color"] = np.nan
    else:
        case = cases[name]
        model = case.model
        frame = pd.DataFrame(case.X, columns=_feature_names(model))
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64) * 7 + 3)
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    spark_table = table
    if "color" in table.schema.names:
        i = table.schema.get_field_index("color")
        assert pa.types.is_dictionary(table.schema.field(i).type)
        spark_table = table.set_column(i, "color", table.column("color").cast(pa.string()))
        assert spark_table.column("color").null_count == 4
    return model, table, spark_table


def _collect(df):
    """A Spark DataFrame as an Arrow table sorted by ``id``."""
    return df.toArrow().sort_by("id")


def assert_same_table(got, want):
    """Same columns and rows; floats bit for bit (same type), feature names as strings."""
    assert got.schema.names == want.schema.names
    assert got.num_rows == want.num_rows
    for name in want.schema.names:
        a, b = got.column(name), want.column(name)
        if pa.types.is_floating(b.type):
            assert a.type == b.type, name
            assert_bitwise(a.to_numpy(), b.to_numpy(), name)
        elif pa.types.is_dictionary(b.type):
            assert pa.types.is_string(a.type) or pa.types.is_large_string(a.type), name
            assert a.to_pylist() == b.to_pylist(), name
        else:
            assert a.to_pylist() == b.to_pylist(), name


# ------------------------------------------------------------------ results


@pytest.mark.parametrize("name", DATASETS)
def test_explain_equals_explain_table(name, spark, cases, pandas_models):
    model, table, spark_table = _dataset(name, cases, pandas_models)
    df = spark.createDataFrame(spark_table)
    assert df.rdd.getNumPartitions() == 2
    out = treelens.spark.explain(df, model, **OPTIONS)
    want = treelens.explain_table(model, table, **OPTIONS)
    assert out.columns == want.schema.names
    types = dict(out.dtypes)
    assert types["id"] == "bigint"
    for field in want.schema:
        if pa.types.is_floating(field.type):
            assert types[field.name] == "float", field.name
        elif pa.types.is_dictionary(field.type):
            assert types[field.name] == "string", field.name
    got = _collect(out)
    assert_same_table(got, want)

    k = treelens.load(model).n_outputs
    features = _feature_names(model)
    shap_columns = features if k == 1 else [f"{n}__{o}" for o in range(k) for n in features]
    assert got.schema.names[1:1 + len(shap_columns)] == shap_columns


def test_rows_keep_their_order_within_partitions(spark, cases, pandas_models):
    model, table, spark_table = _dataset("lgb_categorical", cases, pandas_models)
    df = spark.createDataFrame(spark_table).repartition(3, "id").sortWithinPartitions("id")
    out = treelens.spark.explain(df, model, keep=["id"], top_k=1)
    rows = out.toArrow()
    inputs = df.select("id").toArrow()
    assert rows.column("id").to_pylist() == inputs.column("id").to_pylist()
    want = treelens.explain_table(model, table, keep=["id"], top_k=1)
    assert_same_table(rows.sort_by("id"), want)


def test_background_probability(spark, cases):
    case = cases["xgb_binary"]
    X_all, _ = zoo.make_data(2)
    background = X_all[:50]
    names = _feature_names(case.model)
    columns = {"id": np.arange(len(case.X), dtype=np.int64)}
    columns.update({n: case.X[:, j] for j, n in enumerate(names)})
    table = pa.table(columns)
    kwargs = dict(keep=["id"], data=background, model_output="probability")
    out = treelens.spark.explain(spark.createDataFrame(table), case.model, **kwargs)
    got = _collect(out)
    want = treelens.explain_table(case.model, table, **kwargs)
    assert_same_table(got, want)
    ex = treelens.TreeExplainer(case.model, data=background, model_output="probability")
    assert_bitwise(got.column("expected_value").to_numpy(),
                   np.full(len(case.X), ex.expected_value), "expected_value")


def test_dataframe_with_a_timestamp_column(spark, pandas_models):
    from pyspark.sql import functions as F

    model = pandas_models.model("lightgbm", False)
    frame = pandas_models.frame(False).copy()
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    df = spark.createDataFrame(table).withColumn(
        "ts", F.to_timestamp(F.lit("2024-03-01 12:00:00")) + F.make_interval(
            hours=F.col("id").cast("int")))
    assert dict(df.dtypes)["ts"] == "timestamp"
    want = treelens.explain_table(model, table, keep=["id"])
    assert_same_table(_collect(treelens.spark.explain(df, model, keep=["id"])), want)
    out = _collect(treelens.spark.explain(df, model, keep=["id", "ts"]))
    assert out.column("ts").to_pylist() == _collect(df).column("ts").to_pylist()
    assert_same_table(out.drop_columns(["ts"]), want)


# ------------------------------------------------------------------ errors


def test_column_errors_raise_before_any_job(spark, pandas_models):
    model = pandas_models.model("lightgbm", False)
    frame = pandas_models.frame(False).copy()
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    df = spark.createDataFrame(table)
    score = table.schema.get_field_index("score")
    as_text = spark.createDataFrame(
        table.set_column(score, "score", pc.cast(table.column("score"), pa.string())))
    clash = spark.createDataFrame(
        table.append_column("expected_value", pa.array(np.zeros(table.num_rows))))
    top_clash = spark.createDataFrame(
        table.append_column("top1_feature", pa.array(["x"] * table.num_rows)))

    sc = spark.sparkContext
    tracker = sc.statusTracker()
    group = "treelens-column-errors"
    sc.setJobGroup(group, "calls that must not run a job")
    try:
        with pytest.raises(ValueError, match="income"):
            treelens.spark.explain(df.drop("income"), model)
        with pytest.raises(TypeError, match="score"):
            treelens.spark.explain(as_text, model)
        with pytest.raises(ValueError, match="nope"):
            treelens.spark.explain(df, model, keep=["id", "nope"])
        with pytest.raises(ValueError, match="age"):
            treelens.spark.explain(df, model, keep=["age"])
        with pytest.raises(ValueError, match="expected_value"):
            treelens.spark.explain(clash, model, keep=["expected_value"])
        with pytest.raises(ValueError, match="top1_feature"):
            treelens.spark.explain(top_clash, model, keep=["top1_feature"], top_k=1)
        assert list(tracker.getJobIdsForGroup(group)) == []
        lazy = treelens.spark.explain(df, model, keep=["id"])
        assert list(tracker.getJobIdsForGroup(group)) == []
        assert lazy.count() == len(frame)
        assert list(tracker.getJobIdsForGroup(group)) != []
    finally:
        sc.setJobGroup("", "")


# ------------------------------------------------------------------ threads


def test_threads_from_spark_task_cpus(spark, cases):
    """Each task explains with ``spark.task.cpus`` threads: the plans cached in the Python
    workers (reused between jobs) carry that thread count."""
    assert int(spark.conf.get("spark.task.cpus")) == TASK_CPUS
    model = cases["lgb_multiclass"].model
    names = _feature_names(model)
    X = cases["lgb_multiclass"].X
    columns = {"id": np.arange(len(X), dtype=np.int64)}
    columns.update({n: X[:, j] for j, n in enumerate(names)})
    df = spark.createDataFrame(pa.table(columns))
    assert treelens.spark.explain(df, model, keep=["id"]).count() == len(X)

    digest = treelens._shipping.pack(model)[1].digest

    def report(batches):
        import os as _os

        import pyarrow as _pa
        from treelens import _shipping as shipping

        for _ in batches:
            pass
        found = [plan.explainer.n_threads for key, plan in shipping._plans.items()
                 if key[0] == digest]
        yield _pa.RecordBatch.from_pydict({"pid": [_os.getpid()] * len(found),
                                           "threads": found},
                                          schema=_pa.schema([("pid", _pa.int64()),
                                                             ("threads", _pa.int64())]))

    seen = df.mapInArrow(report, "pid long, threads long").toArrow()
    threads = seen.column("threads").to_pylist()
    assert threads, "no Python worker held the explained model's plan"
    assert set(threads) == {TASK_CPUS}
