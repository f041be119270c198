"""``treelens.dask`` on a real ``distributed.LocalCluster`` (two single-threaded worker
processes).

Checked against the single-process ``treelens.explain_table`` bit for bit: DataFrame
output (XGBoost with NaN, multiclass LightGBM, categorical LightGBM / XGBoost on pandas
category columns, with kept columns, top-k, prediction and float32), index and partitions
aligned with the input, ``_meta`` known without computing, Parquet round trip, background
probability explanations. Array input against ``TreeExplainer.shap_values`` (row chunks,
column chunks rechunked, multi-output). Also: the model is scattered once and its plan
cached per worker, a task runs the kernel with its worker's single thread, sample-based
permutation importance, column errors raised by the call before any task runs, a job
that survives a worker process killed mid-run, kept columns that keep their pandas dtype
(categories, nullable Int64 / boolean), and repeated calls with the same model.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import treelens  # noqa: E402
import treelens.dask  # noqa: E402
import zoo  # noqa: E402
from helpers import assert_bitwise  # noqa: E402
from treelens import _shipping  # noqa: E402

OPTIONS = dict(keep=["id"], top_k=2, prediction=True, dtype="float32")
pytestmark = pytest.mark.filterwarnings("ignore:Port .* is already in use")
DATASETS = ["xgb_nan", "lgb_multiclass", "lgb_categorical", "xgb_categorical"]
EXPLAIN_PREFIX = "explain_partition"


#: Every collection ``shap_values`` returns in this module, kept until the cluster closes.
@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


shap_values = treelens.dask.shap_values


# ------------------------------------------------------------------ data and references


def _feature_names(model):
    forest = treelens.load(model)
    return list(forest.feature_names or [f"f{i}" for i in range(forest.n_features)])


def _dataset(name, cases, pandas_models):
    """(model, pandas frame: ``id`` then the features, on a non-default index)."""
    if name.endswith("categorical"):
        library = "lightgbm" if name.startswith("lgb") else "xgboost"
        model = pandas_models.model(library, True)
        frame = pandas_models.frame(True).copy()
        frame.loc[frame.index[[0, 5, 17, 41]], "color"] = np.nan
        assert isinstance(frame["color"].dtype, pd.CategoricalDtype)
    else:
        case = cases[name]
        model = case.model
        frame = pd.DataFrame(case.X, columns=_feature_names(model))
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64) * 7 + 3)
    frame.index = pd.Index(1000 + 3 * np.arange(len(frame)), dtype=np.int64)
    return model, frame


def _reference(model, frame, **kwargs):
    """explain_table's output as pandas, on ``frame``'s index."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    out = treelens.explain_table(model, table, **kwargs).to_pandas()
    out.index = frame.index
    return out


def assert_same_frame(got, want):
    """Same columns, dtypes, index and values (floats bit for bit, NaN equal to NaN)."""
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_series_equal(got.dtypes, want.dtypes)
    assert got.index.equals(want.index)
    for name in want.columns:
        if want[name].dtype.kind == "f":
            assert_bitwise(got[name].to_numpy(), want[name].to_numpy(), name)
        else:
            assert got[name].tolist() == want[name].tolist(), name


def _boom(i):
    raise RuntimeError(f"partition {i} was computed")


def _lazy_frame(meta, npartitions):
    """A Dask DataFrame with ``meta``'s columns whose partitions raise when computed."""
    return dd.from_delayed([dask.delayed(_boom)(i) for i in range(npartitions)], meta=meta,
                           verify_meta=False)


def _cached_keys():
    """(digest, n_threads) of every plan cached in this worker process."""
    return sorted((key[0], plan.explainer.n_threads) for key, plan in _shipping._plans.items())


def _clear_cache():
    _shipping._plans.clear()


def _packed_digests(dask_worker):
    return sorted(v.digest for v in dask_worker.data.values()
                  if isinstance(v, _shipping.Packed))


def _explain_states(dask_scheduler):
    """Counts by state of the scheduler's partition-explaining tasks."""
    states = {}
    for ts in dask_scheduler.tasks.values():
        if ts.prefix.name == EXPLAIN_PREFIX:
            states[ts.state] = states.get(ts.state, 0) + 1
    return states


# ------------------------------------------------------------------ DataFrames


@pytest.mark.parametrize("name", DATASETS)
def test_dataframe_equals_explain_table(name, client, cases, pandas_models):
    model, frame = _dataset(name, cases, pandas_models)
    ddf = dd.from_pandas(frame, npartitions=4)
    assert ddf.npartitions == 4

    lazy_in = _lazy_frame(frame.iloc[:0], 4)
    lazy = shap_values(model, lazy_in, **OPTIONS)
    assert lazy.npartitions == 4

    out = shap_values(model, ddf, **OPTIONS)
    assert out.npartitions == ddf.npartitions
    assert out.divisions == ddf.divisions
    got = out.compute()
    want = _reference(model, frame, **OPTIONS)
    assert_same_frame(got, want)

    for meta in (lazy._meta, out._meta):
        assert list(meta.columns) == list(got.columns)
        pd.testing.assert_series_equal(meta.dtypes, got.dtypes)
        assert len(meta) == 0
    assert list(out.map_partitions(len).compute()) == list(ddf.map_partitions(len).compute())
    third = out.partitions[2].compute()
    assert third.index.equals(frame.index[30:45])
    assert_same_frame(third, want.iloc[30:45])

    k = treelens.load(model).n_outputs
    features = _feature_names(model)
    shap_columns = features if k == 1 else [f"{n}__{o}" for o in range(k) for n in features]
    assert list(got.columns[1:1 + len(shap_columns)]) == shap_columns
    assert got["id"].tolist() == frame["id"].tolist()
    assert all(got[c].dtype == np.float32 for c in shap_columns)


def test_to_parquet_round_trip(client, pandas_models, cases, tmp_path):
    model, frame = _dataset("lgb_categorical", cases, pandas_models)
    out = shap_values(model, dd.from_pandas(frame, npartitions=4), **OPTIONS)
    computed = out.compute()
    out.to_parquet(str(tmp_path / "out"))
    assert len(list((tmp_path / "out").glob("*.parquet"))) == 4
    back = dd.read_parquet(str(tmp_path / "out")).compute()
    assert_same_frame(back, computed)


def test_background_probability(client, cases):
    case = cases["xgb_binary"]
    X_all, _ = zoo.make_data(2)
    background = X_all[:50]
    frame = pd.DataFrame(case.X, columns=_feature_names(case.model))
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    kwargs = dict(keep=["id"], data=background, model_output="probability")
    out = shap_values(case.model, dd.from_pandas(frame, npartitions=3), **kwargs)
    got = out.compute()
    want = _reference(case.model, frame, **kwargs)
    assert_same_frame(got, want)
    ex = treelens.TreeExplainer(case.model, data=background, model_output="probability")
    assert_bitwise(got["expected_value"].to_numpy(),
                   np.full(len(frame), ex.expected_value), "expected_value")


@pytest.mark.parametrize("kind", ["category", "Int64", "boolean"])
def test_kept_column_keeps_its_dtype(kind, client, pandas_models):
    model = pandas_models.model("lightgbm", False)
    frame = pandas_models.frame(False).copy()
    n = len(frame)
    if kind == "category":
        extra = pd.Categorical([f"g{i % 3}" for i in range(n)])
    elif kind == "Int64":
        extra = pd.array([None if i == 4 else i for i in range(n)], dtype="Int64")
    else:
        extra = pd.array([None if i == 4 else bool(i % 2) for i in range(n)], dtype="boolean")
    frame.insert(0, "extra", extra)
    out = shap_values(model, dd.from_pandas(frame, npartitions=3), keep=["extra"])
    got = out.compute()
    assert out._meta["extra"].dtype == frame["extra"].dtype
    assert got["extra"].dtype == frame["extra"].dtype
    pd.testing.assert_series_equal(got["extra"], frame["extra"])


# ------------------------------------------------------------------ Arrays


@pytest.mark.parametrize("column_chunk", [None, 2], ids=["whole_rows", "column_chunks"])
@pytest.mark.parametrize("name", ["xgb_nan", "lgb_multiclass"])
def test_array_equals_tree_explainer(name, column_chunk, client, cases):
    model = cases[name].model
    m = treelens.load(model).n_features
    seed = 5 if name == "xgb_nan" else 23
    X, _ = zoo.make_data(seed, n_rows=301, nan_frac=0.3 if name == "xgb_nan" else 0.0)
    n = len(X)
    dX = da.from_array(X, chunks=(n // 3, column_chunk or m))
    assert (len(dX.chunks[1]) > 1) == (column_chunk is not None)
    phi = shap_values(model, dX)
    want = treelens.TreeExplainer(model).shap_values(X)
    k = treelens.load(model).n_outputs
    assert phi.shape == ((n, m) if k == 1 else (n, m, k))
    assert want.shape == phi.shape
    assert phi.chunks[0] == dX.chunks[0]
    assert phi.dtype == np.float64
    got = phi.compute()
    assert_bitwise(got, want, name)
    phi32 = shap_values(model, dX, dtype="float32")
    assert phi32.dtype == np.float32
    assert_bitwise(phi32.compute(), want.astype(np.float32), name + " float32")


# ------------------------------------------------------------------ shipping, threads


def test_model_shipped_once_and_plan_cached(client, cases):
    model, frame = _dataset("xgb_nan", cases, None)
    ddf = dd.from_pandas(frame, npartitions=6)
    digest = _shipping.pack(model)[1].digest
    client.run(_clear_cache)
    assert set(client.run(_shipping.cached_plans).values()) == {0}

    out1 = shap_values(model, ddf, **OPTIONS)
    with distributed.get_task_stream(client) as stream:
        first = out1.compute()
    ran = {t["worker"] for t in stream.data
           if dask.utils.key_split(t["key"]) == EXPLAIN_PREFIX}
    assert ran
    counts = client.run(_shipping.cached_plans)
    for worker in ran:
        assert counts[worker] >= 1, counts
    keys = client.run(_cached_keys)
    for worker in ran:
        assert keys[worker] == [(digest, 1)], keys

    out2 = shap_values(model, ddf, **OPTIONS)
    second = out2.compute()
    assert client.run(_shipping.cached_plans) == counts
    assert client.run(_cached_keys) == keys
    held = client.run(_packed_digests)
    assert held and all(d.count(digest) == 1 for d in held.values()), held
    assert_same_frame(second, first)


def test_task_uses_its_workers_single_thread(client, cases):
    futures = [client.submit(treelens.dask._task_threads, None, pure=False)
               for _ in range(4)]
    assert client.gather(futures) == [1, 1, 1, 1]
    assert client.submit(treelens.dask._task_threads, 3, pure=False).result() == 3
    assert set(client.run(lambda dask_worker: dask_worker.state.nthreads).values()) == {1}

    client.run(_clear_cache)
    model, frame = _dataset("lgb_multiclass", cases, None)
    shap_values(model, dd.from_pandas(frame, npartitions=4)).compute()
    plans = [entry for keys in client.run(_cached_keys).values() for entry in keys]
    assert plans
    assert {threads for _, threads in plans} == {1}


def test_repeated_calls_with_the_same_model(cases):
    """A loop that explains, keeps only the computed values and calls again: every job
    must complete (run in a thread on its own cluster, so a hang fails the test)."""
    model = cases["xgb_nan"].model
    X, _ = zoo.make_data(5, n_rows=120, nan_frac=0.3)
    want = treelens.TreeExplainer(model).shap_values(X)
    frame = pd.DataFrame(X, columns=_feature_names(model))
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster, set_as_default=False)
    outcome = {"done": 0}

    def loop():
        try:
            with client.as_current():
                for _ in range(15):
                    phi = treelens.dask.shap_values(model, da.from_array(X, chunks=40))
                    got = client.compute(phi).result(timeout=30)
                    del phi
                    assert_bitwise(got, want, "array")
                    out = treelens.dask.shap_values(model, dd.from_pandas(frame, 3))
                    got = client.compute(out).result(timeout=30)
                    del out
                    assert_bitwise(got[list(frame.columns)].to_numpy(), want, "frame")
                    outcome["done"] += 1
        except BaseException as error:  # reported by the test thread
            outcome["error"] = error

    worker = threading.Thread(target=loop, daemon=True)
    try:
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), f"hung after {outcome['done']} rounds"
        if "error" in outcome:
            raise AssertionError(f"round {outcome['done'] + 1} failed: "
                                 f"{outcome['error']!r}") from outcome["error"]
        assert outcome["done"] == 15
    finally:
        client.close(timeout=20)
        cluster.close(timeout=20)


# ------------------------------------------------------------------ permutation importance


def test_permutation_importance_on_a_sample(client, pandas_models):
    model = pandas_models.model("lightgbm", False)
    frame, y = zoo.pandas_frame(61, n_rows=1500)
    frame = frame.drop(columns=["color"]).assign(y=y)
    ddf = dd.from_pandas(frame, npartitions=7)

    sample = treelens.dask.sample_rows(ddf, 500, 0)
    assert isinstance(sample, pd.DataFrame)
    assert len(sample) == 500
    assert sample.index.is_unique
    assert sample.index.isin(frame.index).all()
    assert sample.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(sample, frame.loc[sample.index], check_exact=True)
    again = treelens.dask.sample_rows(ddf, 500, 0)
    assert again.index.equals(sample.index)

    got = treelens.dask.permutation_importance(model, ddf, target="y", max_samples=500,
                                               n_repeats=3, random_state=0, scoring="r2")
    want = treelens.permutation_importance(model, sample.drop(columns=["y"]),
                                           sample["y"].to_numpy(), n_repeats=3,
                                           random_state=0, scoring="r2")
    assert got["importances"].shape == (5, 3)
    for key in ("importances", "importances_mean", "importances_std"):
        assert_bitwise(got[key], want[key], key)
    assert np.abs(got["importances_mean"]).max() > 0


# ------------------------------------------------------------------ errors


def test_column_errors_raise_before_any_task(client, pandas_models):
    model = pandas_models.model("lightgbm", False)
    frame = pandas_models.frame(False).copy()
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    meta = frame.iloc[:0]

    def call(meta_frame, **kwargs):
        return treelens.dask.shap_values(model, _lazy_frame(meta_frame, 3), **kwargs)

    lazy = shap_values(model, _lazy_frame(meta, 3), keep=["id"])
    with distributed.get_task_stream(client) as stream:
        with pytest.raises(ValueError, match="income"):
            call(meta.drop(columns=["income"]))
        with pytest.raises(TypeError, match="score"):
            call(meta.assign(score=pd.Series([], dtype=str)))
        with pytest.raises(TypeError, match="score"):
            call(meta.assign(score=pd.Series([], dtype=object)))
        with pytest.raises(ValueError, match="nope"):
            call(meta, keep=["id", "nope"])
        with pytest.raises(ValueError, match="age"):
            call(meta, keep=["age"])
        with pytest.raises(ValueError, match="expected_value"):
            call(meta.assign(expected_value=pd.Series([], dtype=np.float64)),
                 keep=["expected_value"])
        with pytest.raises(ValueError, match="top1_shap"):
            call(meta.assign(top1_shap=pd.Series([], dtype=np.float64)),
                 keep=["top1_shap"], top_k=1)
        with pytest.raises(ValueError, match="keep"):
            treelens.dask.shap_values(model, da.zeros((10, 5), chunks=5), keep=["id"])
        with pytest.raises(ValueError, match="columns"):
            treelens.dask.shap_values(model, da.zeros((10, 4), chunks=5))
        with pytest.raises(TypeError, match="DataFrame"):
            treelens.dask.shap_values(model, frame)
    assert stream.data == []

    with pytest.raises(RuntimeError, match="was computed"):
        lazy.compute()


# ------------------------------------------------------------------ worker failure


@pytest.mark.filterwarnings("ignore:Sending large graph")
def test_job_survives_a_killed_worker():
    import xgboost as xgb

    X, s = zoo.make_data(11, n_rows=200_000, nan_frac=0.05)
    model = xgb.XGBRegressor(n_estimators=200, max_depth=4, learning_rate=0.1,
                             random_state=0, n_jobs=2).fit(X[:5000], s[:5000])
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    ddf = dd.from_pandas(frame, npartitions=40)

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        with client.as_current():
            out = treelens.dask.shap_values(model, ddf, keep=["id"], top_k=1)
        pids = client.run(os.getpid, nanny=False)
        fut = client.compute(out)
        deadline = time.monotonic() + 60
        states = {}
        while time.monotonic() < deadline:
            states = client.run_on_scheduler(_explain_states)
            pending = sum(states.get(s, 0) for s in ("waiting", "queued", "processing",
                                                     "no-worker"))
            if pending >= 10 and 40 - pending >= 3 and states.get("processing", 0):
                break
            assert fut.status == "pending", f"job ended before a worker was killed: {states}"
            time.sleep(0.02)
        else:
            pytest.fail(f"the job never reached the point to kill a worker: {states}")
        busy = [addr for addr, keys in client.processing().items() if keys]
        victim = busy[0] if busy else next(iter(pids))
        os.kill(pids[victim], signal.SIGKILL)

        got = fut.result(timeout=180)
        assert len(got) == len(frame)
        client.wait_for_workers(2, timeout=60)
        assert pids[victim] not in client.run(os.getpid).values()
    finally:
        client.close()
        cluster.close()
    want = _reference(model, frame, keep=["id"], top_k=1)
    assert_same_frame(got, want)
