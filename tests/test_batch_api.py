"""The Arrow batch API: ``treelens.batch.explain_table`` and ``explain_batches``.

Every explanation column is checked against ``TreeExplainer`` on the same rows (bit for
bit where the computation is the same): SHAP columns and their multi-output layout,
expected value, margin and prediction, top-k reason codes, float32 output, long-format
interactions, background (probability / log_loss) explanations, categorical dictionary
columns, kept columns, feature-column selection, streaming over record batches, polars
input, input errors, and that an Arrow table is explained without importing pandas.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import treelens
import zoo
from helpers import assert_bitwise
from treelens.batch import explain_batches, explain_table


def _names(model):
    forest = treelens.load(model)
    return list(forest.feature_names or [f"f{i}" for i in range(forest.n_features)])


def _column(values, nulls):
    """float64 values as an Arrow column: NaN as nulls, or as NaN floats."""
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, mask=np.isnan(values)) if nulls else pa.array(values)


def _table(X, names, nulls=False, **extra):
    columns = dict(extra)
    columns.update({n: _column(X[:, j], nulls) for j, n in enumerate(names)})
    return pa.table(columns)


def _np(out, name):
    return out.column(name).to_numpy()


def _labels(out, name):
    return np.asarray(out.column(name).to_pylist(), dtype=object)


def _shap_columns(names, k):
    return list(names) if k == 1 else [f"{n}__{o}" for o in range(k) for n in names]


def _with_nan(X, seed):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < 0.15] = np.nan
    return X


def _frame_table(frame, nulls=True, color=None, **extra):
    """A pandas evaluation frame as an Arrow table; ``color``: the dictionary column."""
    columns = dict(extra)
    for name in frame.columns:
        if name == "color":
            columns[name] = color if color is not None else pa.array(
                frame[name].astype(str).tolist()).dictionary_encode()
        else:
            columns[name] = _column(frame[name].to_numpy(), nulls)
    return pa.table(columns)


# ------------------------------------------------------------------ SHAP columns

SHAP_CASES = ["xgb_nan", "lgb_nan", "sk_rf_nan", "xgb_multiclass", "lgb_multiclass",
              "sk_rf_multiclass", "sk_hgb_binary"]


@pytest.mark.parametrize("nulls", [True, False], ids=["arrow_nulls", "nan_floats"])
@pytest.mark.parametrize("name", SHAP_CASES)
def test_shap_columns_equal_tree_explainer(name, nulls, cases):
    case = cases[name]
    X = case.X if name == "sk_rf_multiclass" else _with_nan(case.X, 1)
    names = _names(case.model)
    out = explain_table(case.model, _table(X, names, nulls))
    ex = treelens.TreeExplainer(case.model)
    phi = zoo.as_2d(ex.shap_values(X), len(X)).reshape(len(X), len(names), -1)
    k = phi.shape[2]
    assert k == case.n_outputs
    ev_names = ["expected_value"] if k == 1 else [f"expected_value__{o}" for o in range(k)]
    assert out.schema.names == _shap_columns(names, k) + ev_names
    assert out.num_rows == len(X)
    for o in range(k):
        for j, n in enumerate(names):
            col = n if k == 1 else f"{n}__{o}"
            assert_bitwise(_np(out, col), phi[:, j, o], col)
        ev = np.atleast_1d(ex.expected_value)[o]
        assert_bitwise(_np(out, ev_names[o]), np.full(len(X), ev), ev_names[o])


def test_float32_input_columns_match_float32_matrix(cases):
    case = cases["xgb_reg"]
    X32 = case.X.astype(np.float32)
    table = pa.table({f"f{j}": X32[:, j] for j in range(case.n_features)})
    out = explain_table(case.model, table)
    phi = treelens.TreeExplainer(case.model).shap_values(X32)
    for j in range(case.n_features):
        assert_bitwise(_np(out, f"f{j}"), phi[:, j], f"f{j}")


# ------------------------------------------------------------------ kept columns, selection


def test_kept_columns_copied_and_features_selected_by_name(pandas_models):
    model = pandas_models.model("lightgbm", False)
    frame = pandas_models.frame(False)
    n = len(frame)
    ids = pa.array(np.arange(1000, 1000 + n, dtype=np.int64))
    who = pa.array([f"row-{i}" if i % 7 else None for i in range(n)])
    when = pa.array(np.datetime64("2024-01-01T00:00:00") + np.arange(n).astype("timedelta64[h]"))
    columns = {"junk": pa.array(np.ones(n)), "score": frame["score"].to_numpy(),
               "id": ids, "weight": frame["weight"].to_numpy(), "who": who,
               "age": frame["age"].to_numpy(), "when": when,
               "height": frame["height"].to_numpy(), "income": frame["income"].to_numpy()}
    table = pa.table(columns)
    out = explain_table(model, table, keep=["who", "id", "when"])
    assert out.schema.names[:3] == ["who", "id", "when"]
    assert out.schema.field("when").type == table.schema.field("when").type
    for name in ("who", "id", "when"):
        assert out.column(name).equals(table.column(name)), name
    phi = treelens.TreeExplainer(model).shap_values(frame)
    names = list(frame.columns)
    assert out.schema.names[3:] == names + ["expected_value"]
    for j, name in enumerate(names):
        assert_bitwise(_np(out, name), phi[:, j], name)


@pytest.mark.parametrize("name", ["xgb_reg", "sk_rf_reg", "lgb_reg"])
def test_model_without_names_takes_first_free_columns(name, cases):
    case = cases[name]
    m = case.n_features
    n = len(case.X)
    columns = {"id": np.arange(n), "y": np.zeros(n)}
    columns.update({f"x{j}": case.X[:, j] for j in range(m)})
    columns["extra"] = np.full(n, 1e6)
    table = pa.table(columns)
    out = explain_table(case.model, table, keep=["id"])
    names = _names(case.model)
    assert out.schema.names == ["id"] + names + ["expected_value"]
    phi_y_first = treelens.TreeExplainer(case.model).shap_values(
        np.c_[np.zeros(n), case.X[:, :m - 1]])
    for j, col in enumerate(names):
        assert_bitwise(_np(out, col), phi_y_first[:, j], col)
    data = case.X[:25]
    out = explain_table(case.model, table.select(["y", "id"] + [f"x{j}" for j in range(m)]),
                        keep=["id"], data=data, model_output="raw", target="y")
    phi = treelens.TreeExplainer(case.model, data=data).shap_values(case.X)
    for j, col in enumerate(names):
        assert_bitwise(_np(out, col), phi[:, j], col)


# ------------------------------------------------------------------ top-k


@pytest.fixture(scope="module")
def tie_model():
    """XGBoost regressor whose features ``c1`` and ``c3`` are constant (never split on)."""
    import pandas as pd
    import xgboost as xgb

    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 5))
    X[:, 1] = 0.0
    X[:, 3] = 0.0
    y = X[:, 0] + 0.5 * X[:, 2] * X[:, 4] + 0.1 * rng.normal(size=300)
    frame_names = ["a0", "c1", "a2", "c3", "a4"]
    model = xgb.XGBRegressor(n_estimators=15, max_depth=3, random_state=0, n_jobs=1)
    model.fit(pd.DataFrame(X, columns=frame_names), y)
    Xe = rng.normal(size=(80, 5))
    return model, Xe, frame_names


def _expected_top(values, k):
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(values, order, axis=1)


def test_top_k_ties_broken_by_feature_order(tie_model):
    model, X, names = tie_model
    m = len(names)
    out = explain_table(model, _table(X, names), top_k=m)
    phi = treelens.TreeExplainer(model).shap_values(X)
    assert (phi[:, [1, 3]] == 0).all()
    order, top = _expected_top(phi, m)
    for i in range(m):
        assert (_labels(out, f"top{i + 1}_feature") == np.asarray(names)[order[:, i]]).all()
        assert_bitwise(_np(out, f"top{i + 1}_shap"), top[:, i], f"top{i + 1}_shap")
    used_nonzero = (phi[:, [0, 2, 4]] != 0).all(axis=1)
    assert used_nonzero.sum() > len(X) // 2
    assert (_labels(out, f"top{m - 1}_feature")[used_nonzero] == "c1").all()
    assert (_labels(out, f"top{m}_feature")[used_nonzero] == "c3").all()
    assert out.schema.field("top1_feature").type == pa.dictionary(pa.int32(), pa.string())


@pytest.mark.parametrize("name", ["xgb_reg", "xgb_multiclass", "lgb_multiclass"])
def test_top_k_largest_abs_shap_per_output(name, cases):
    case = cases[name]
    names = _names(case.model)
    k_top = 3
    out = explain_table(case.model, _table(case.X, names), top_k=k_top)
    phi = zoo.as_2d(treelens.TreeExplainer(case.model).shap_values(case.X), len(case.X))
    phi = phi.reshape(len(case.X), len(names), -1)
    k = phi.shape[2]
    top_cols = [c for c in out.schema.names if c.startswith("top")]
    assert len(top_cols) == 2 * k_top * k
    for o in range(k):
        suffix = f"__{o}" if k > 1 else ""
        order, top = _expected_top(phi[:, :, o], k_top)
        for i in range(k_top):
            got = _labels(out, f"top{i + 1}_feature{suffix}")
            assert (got == np.asarray(names)[order[:, i]]).all()
            assert_bitwise(_np(out, f"top{i + 1}_shap{suffix}"), top[:, i], f"top{i + 1}")


# ------------------------------------------------------------------ prediction, dtype


@pytest.mark.parametrize("name", ["xgb_binary", "lgb_binary", "lgb_multiclass", "xgb_reg"])
def test_prediction_columns(name, cases):
    case = cases[name]
    names = _names(case.model)
    X = case.X
    out = explain_table(case.model, _table(X, names), prediction=True)
    ex = treelens.TreeExplainer(case.model)
    margin = zoo.as_2d(ex.predict(X), len(X))
    k = margin.shape[1]
    sfx = [""] if k == 1 else [f"__{o}" for o in range(k)]
    for o in range(k):
        got = _np(out, "margin" + sfx[o])
        assert_bitwise(got, margin[:, o], "margin")
        shap_sum = sum(_np(out, n + sfx[o]) for n in names) + _np(out, "expected_value" + sfx[o])
        np.testing.assert_allclose(shap_sum, got, rtol=1e-6, atol=1e-6 * np.abs(got).max())
    if name == "xgb_reg":
        assert "prediction" not in out.schema.names
        return
    proba = case.model.predict_proba(X)
    for o in range(k):
        expected = proba[:, 1] if k == 1 else proba[:, o]
        np.testing.assert_allclose(_np(out, "prediction" + sfx[o]), expected, atol=1e-6)


def test_float32_output_is_float64_cast(cases):
    case = cases["xgb_multiclass"]
    names = _names(case.model)
    table = _table(_with_nan(case.X, 3), names, ids=np.arange(len(case.X)))
    kwargs = dict(keep=["ids"], top_k=2, prediction=True)
    out64 = explain_table(case.model, table, **kwargs)
    out32 = explain_table(case.model, table, dtype="float32", **kwargs)
    assert out32.schema.names == out64.schema.names
    for field in out64.schema:
        if field.type == pa.float64() and field.name != "ids":
            assert out32.schema.field(field.name).type == pa.float32()
            assert_bitwise(_np(out32, field.name),
                           _np(out64, field.name).astype(np.float32), field.name)
        else:
            assert out32.column(field.name).equals(out64.column(field.name))


# ------------------------------------------------------------------ interactions


def test_interactions_long_format(pandas_models):
    model = pandas_models.model("lightgbm", False)
    frame = pandas_models.frame(False)
    n = len(frame)
    ids = pa.array([f"id{i}" for i in range(n)])
    table = _frame_table(frame, id=ids)
    sel = ["score", "income"]
    out = explain_table(model, table, keep=["id"], output="interactions", features=sel)
    assert out.schema.names == ["id", "feature_i", "feature_j", "interaction"]
    assert out.num_rows == n * 4
    assert out.column("id").equals(pa.chunked_array([ids.take(np.repeat(np.arange(n), 4))]))
    assert _labels(out, "feature_i").tolist() == ["score", "score", "income", "income"] * n
    assert _labels(out, "feature_j").tolist() == ["score", "income", "score", "income"] * n
    phi = treelens.TreeExplainer(model).shap_interaction_values(frame, features=sel)
    assert_bitwise(_np(out, "interaction"), phi.reshape(-1), "interaction")


def test_interactions_multiclass(cases):
    case = cases["xgb_multiclass"]
    names = _names(case.model)
    out = explain_table(case.model, _table(case.X, names), output="interactions",
                        features=[3, 0], dtype="float32")
    phi = treelens.TreeExplainer(case.model).shap_interaction_values(case.X, features=[3, 0])
    assert out.schema.names == ["feature_i", "feature_j"] + [
        f"interaction__{o}" for o in range(3)]
    for o in range(3):
        assert_bitwise(_np(out, f"interaction__{o}"),
                       phi[..., o].reshape(-1).astype(np.float32), f"interaction__{o}")


# ------------------------------------------------------------------ background


@pytest.mark.parametrize("name", ["xgb_binary", "lgb_binary"])
def test_background_probability_and_log_loss(name, cases):
    case = cases[name]
    names = _names(case.model)
    X, bg = case.X, case.X[:20]
    y = (np.arange(len(X)) % 3 == 0).astype(np.float64)
    table = _table(X, names, y=y)
    out = explain_table(case.model, table, data=bg, model_output="probability", target="y")
    ex = treelens.TreeExplainer(case.model, data=bg, model_output="probability")
    phi = ex.shap_values(X)
    for j, col in enumerate(names):
        assert_bitwise(_np(out, col), phi[:, j], col)
    assert_bitwise(_np(out, "expected_value"), np.full(len(X), ex.expected_value), "ev")

    out = explain_table(case.model, table, data=bg, model_output="log_loss", target="y",
                        prediction=True)
    ex = treelens.TreeExplainer(case.model, data=bg, model_output="log_loss")
    phi = ex.shap_values(X, y=y)
    for j, col in enumerate(names):
        assert_bitwise(_np(out, col), phi[:, j], col)
    ev = np.reshape(ex.expected_value(y), -1)
    assert_bitwise(_np(out, "expected_value"), ev, "expected_value")
    loss = _np(out, "log_loss")
    p = _np(out, "prediction")
    np.testing.assert_allclose(loss, -(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-6)
    np.testing.assert_allclose(phi.sum(axis=1) + ev, loss, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------ categorical


@pytest.mark.parametrize("dictionary", ["appearance", "reversed", "reversed_unused_extra"])
@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_categorical_dictionary_column(library, dictionary, pandas_models):
    model = pandas_models.model(library, True)
    frame = pandas_models.frame(True).copy()
    missing = np.array([0, 5, 17])
    frame.loc[frame.index[missing], "color"] = np.nan
    codes = frame["color"].cat.codes.to_numpy()
    if dictionary == "appearance":
        values = [None if c < 0 else zoo.COLOR_CATEGORIES[c] for c in codes]
        color = pa.array(values).dictionary_encode()
    else:
        cats = list(reversed(zoo.COLOR_CATEGORIES))
        if dictionary == "reversed_unused_extra":
            cats = ["purple"] + cats
        index = np.array([cats.index(zoo.COLOR_CATEGORIES[c]) if c >= 0 else 0 for c in codes])
        color = pa.DictionaryArray.from_arrays(
            pa.array(index, type=pa.int32(), mask=codes < 0), pa.array(cats))
    assert color.null_count == len(missing)
    out = explain_table(model, _frame_table(frame, color=color), prediction=True)
    ex = treelens.TreeExplainer(model)
    phi = ex.shap_values(frame)
    for j, col in enumerate(frame.columns):
        assert_bitwise(_np(out, col), phi[:, j], col)
    assert_bitwise(_np(out, "margin"), ex.predict(frame), "margin")


def test_unseen_category(pandas_models):
    frame = pandas_models.frame(True).copy()
    values = frame["color"].astype(str).tolist()
    values[3] = "purple"
    table = _frame_table(frame, color=pa.array(values).dictionary_encode())
    with pytest.raises(ValueError, match="purple"):
        explain_table(pandas_models.model("xgboost", True), table)
    model = pandas_models.model("lightgbm", True)
    out = explain_table(model, table)
    frame.loc[frame.index[3], "color"] = np.nan
    phi = treelens.TreeExplainer(model).shap_values(frame)
    assert_bitwise(_np(out, "color"), phi[:, 2], "unseen category as missing")


def test_hist_gradient_boosting_numeric_categories():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(5)
    X = np.c_[rng.normal(size=300), rng.choice([10.0, 20.0, 30.0, 40.0], size=300)]
    y = X[:, 0] + 2.0 * (X[:, 1] == 20.0)
    model = HistGradientBoostingRegressor(max_iter=10, categorical_features=[1],
                                          random_state=0).fit(X, y)
    out = explain_table(model, pa.table({"f0": X[:, 0], "f1": X[:, 1]}), prediction=True)
    phi = treelens.TreeExplainer(model).shap_values(X)
    assert_bitwise(_np(out, "f1"), phi[:, 1], "f1")
    np.testing.assert_allclose(_np(out, "margin"), model.predict(X), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ streaming


@pytest.fixture(scope="module")
def stream_data():
    X, _ = zoo.make_data(99, n_rows=400, nan_frac=0.1)
    n = len(X)
    return _table(X, [f"f{j}" for j in range(X.shape[1])], nulls=True,
                  id=np.arange(n, dtype=np.int64), tag=pa.array([f"t{i % 11}" for i in range(n)]))


def test_explain_batches_matches_explain_table(stream_data, cases):
    model = cases["xgb_multiclass"].model
    kwargs = dict(keep=["tag", "id"], top_k=2, prediction=True)
    batches = stream_data.to_batches(max_chunksize=97)
    assert [b.num_rows for b in batches] == [97, 97, 97, 97, 12]
    reader = pa.RecordBatchReader.from_batches(stream_data.schema, batches)
    outs = list(explain_batches(model, reader, **kwargs))
    assert [type(b) for b in outs] == [pa.RecordBatch] * len(batches)
    assert [b.num_rows for b in outs] == [b.num_rows for b in batches]
    whole = explain_table(model, stream_data.combine_chunks(), **kwargs)
    assert whole.num_rows == stream_data.num_rows
    streamed = pa.Table.from_batches(outs)
    assert streamed.schema.equals(whole.schema)
    for name in whole.schema.names:
        a, b = streamed.column(name), whole.column(name)
        if pa.types.is_floating(a.type):
            assert_bitwise(a.to_numpy(), b.to_numpy(), name)
        else:
            assert a.to_pylist() == b.to_pylist(), name
    chunked = explain_table(model, pa.Table.from_batches(batches), **kwargs)
    assert chunked.equals(whole)
    one = explain_table(model, batches[1], **kwargs)
    assert one.equals(pa.Table.from_batches([outs[1]]))


def test_empty_input(stream_data, cases):
    model = cases["xgb_multiclass"].model
    kwargs = dict(keep=["id", "tag"], top_k=1, prediction=True)
    full = explain_table(model, stream_data.slice(0, 5), **kwargs)
    empty = explain_table(model, stream_data.slice(0, 0), **kwargs)
    assert empty.num_rows == 0
    assert empty.schema.equals(full.schema)
    inter = explain_table(model, stream_data.slice(0, 0), output="interactions",
                          keep=["id", "tag"])
    assert inter.num_rows == 0
    assert inter.schema.names == ["id", "tag", "feature_i", "feature_j"] + [
        f"interaction__{o}" for o in range(3)]
    assert list(explain_batches(model, iter([]), **kwargs)) == []


def _stage_threads():
    return [t for t in threading.enumerate()
            if t.name.startswith("treelens-stage") and t.is_alive()]


def test_explain_batches_early_break_does_not_hang(stream_data, cases):
    model = cases["xgb_reg"].model
    batch = stream_data.to_batches(max_chunksize=97)[0]
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield batch

    result = {}

    def consume():
        gen = explain_batches(model, endless(), keep=["id", "tag"])
        for i, out in enumerate(gen):
            result.setdefault("rows", []).append(out.num_rows)
            if i == 2:
                break
        gen.close()
        for out in explain_batches(model, endless(), keep=["id", "tag"]):
            break
        result["done"] = True

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert result.get("done"), "explain_batches hung after an early break"
    assert result["rows"] == [97, 97, 97]
    deadline = time.monotonic() + 10
    while _stage_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _stage_threads(), "pipeline threads still running after close()"
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count < 20


def test_explain_batches_rejects_a_batch_with_other_columns(stream_data, cases):
    model = cases["xgb_reg"].model
    good = stream_data.to_batches(max_chunksize=97)[0]
    bad = good.drop_columns(["tag"])
    with pytest.raises(ValueError, match="first batch"):
        list(explain_batches(model, [good, bad], keep=["id", "tag"]))


# ------------------------------------------------------------------ errors


@pytest.fixture(scope="module")
def named_table(pandas_models):
    frame = pandas_models.frame(False)
    return pandas_models.model("lightgbm", False), _frame_table(
        frame, id=np.arange(len(frame)), y=np.zeros(len(frame)))


def test_errors(named_table, pandas_models, cases):
    model, table = named_table
    with pytest.raises(ValueError, match="income"):
        explain_table(model, table.drop_columns(["income"]))
    as_text = table.set_column(table.schema.get_field_index("score"), "score",
                               pa.array([str(v) for v in range(table.num_rows)]))
    with pytest.raises(TypeError, match="score"):
        explain_table(model, as_text)
    with pytest.raises(ValueError, match="nope"):
        explain_table(model, table, keep=["id", "nope"])
    with pytest.raises(ValueError, match="age"):
        explain_table(model, table, keep=["age"])
    clash = table.append_column("expected_value", pa.array(np.zeros(table.num_rows)))
    with pytest.raises(ValueError, match="expected_value"):
        explain_table(model, clash, keep=["expected_value"])
    with pytest.raises(ValueError, match="top_k"):
        explain_table(model, table, top_k=6)
    binary = cases["xgb_binary"]
    binary_table = _table(binary.X, _names(binary.model), y=np.zeros(len(binary.X)))
    with pytest.raises(ValueError, match="target"):
        explain_table(binary.model, binary_table, data=binary.X[:10], model_output="log_loss")
    with pytest.raises(ValueError, match="target"):
        next(explain_batches(binary.model, binary_table.to_batches(), data=binary.X[:10],
                             model_output="log_loss"))
    with pytest.raises(ValueError, match="nope"):
        explain_table(model, table, target="nope")
    with pytest.raises(ValueError, match="dtype"):
        explain_table(model, table, dtype="float16")
    with pytest.raises(ValueError, match="dtype"):
        explain_batches(model, table.to_batches(), dtype="int64")
    with pytest.raises(TypeError, match="DataFrame"):
        explain_table(model, pandas_models.frame(False))
    with pytest.raises(ValueError, match="top_k"):
        explain_table(model, table, top_k=2, output="interactions")
    with pytest.raises(ValueError, match="output"):
        explain_table(model, table, output="contributions")


# ------------------------------------------------------------------ polars


@pytest.mark.parametrize("color", ["categorical", "string"])
@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_polars_input_equals_arrow(library, color, pandas_models):
    import polars as pl

    model = pandas_models.model(library, True)
    frame = pandas_models.frame(True)
    table = _frame_table(frame, id=np.arange(len(frame), dtype=np.int64))
    polars_frame = pl.from_arrow(table)
    assert isinstance(polars_frame, pl.DataFrame)
    if color == "string":
        polars_frame = polars_frame.with_columns(pl.col("color").cast(pl.String))
        assert polars_frame.schema["color"] == pl.String
    kwargs = dict(keep=["id"], top_k=2, prediction=True)
    assert explain_table(model, polars_frame, **kwargs).equals(
        explain_table(model, table, **kwargs))
    streamed = list(explain_batches(model, [polars_frame[:25], polars_frame[25:]], **kwargs))
    assert pa.Table.from_batches(streamed).equals(explain_table(model, table, **kwargs))


# ------------------------------------------------------------------ no pandas

_NO_PANDAS = r"""
import json, sys


class BlockPandas:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ImportError("pandas is blocked")


sys.meta_path.insert(0, BlockPandas())
import pyarrow as pa
import pyarrow.compute as pc
from treelens.batch import explain_table
cats = json.loads(sys.argv[2])
n = 12
columns = {"id": pa.array(list(range(n)))}
for name in ["age", "income", "height", "weight", "score"]:
    columns[name] = pa.array([0.25 * i - 1.0 if i % 5 else None for i in range(n)],
                             pa.float64())
columns["color"] = pa.array([cats[(3 * i) % len(cats)] for i in range(n)]).dictionary_encode()
out = explain_table(sys.argv[1], pa.table(columns), keep=["id"], top_k=2)
assert "pandas" not in sys.modules
print(json.dumps({name: out.column(name).to_pylist() for name in out.schema.names}))
"""


def test_arrow_table_is_explained_without_pandas(tmp_path, pandas_models):
    model = pandas_models.model("xgboost", True)
    path = tmp_path / "model.json"
    model.save_model(str(path))
    run = subprocess.run([sys.executable, "-c", _NO_PANDAS, str(path),
                          json.dumps(zoo.COLOR_CATEGORIES)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    import pandas as pd

    numeric = [0.25 * i - 1.0 if i % 5 else np.nan for i in range(12)]
    frame = pd.DataFrame({name: numeric for name in ["age", "income", "height", "weight",
                                                     "score"]})
    frame.insert(2, "color", pd.Categorical([zoo.COLOR_CATEGORIES[(3 * i) % 7]
                                             for i in range(12)],
                                            categories=zoo.COLOR_CATEGORIES))
    phi = treelens.TreeExplainer(model).shap_values(frame)
    assert got["id"] == list(range(12))
    for j, name in enumerate(frame.columns):
        assert_bitwise(np.asarray(got[name], dtype=np.float64), phi[:, j], name)
    assert len(got["top1_feature"]) == 12


def test_dictionary_column_of_a_numeric_feature_holds_values(cases):
    """A dictionary-encoded column of a feature the model declares numeric is read by its
    values (LightGBM records feature types), not by its dictionary codes."""
    case = cases["lgb_nan"]
    names = [f"f{j}" for j in range(case.X.shape[1])]
    plain = _table(case.X, names)
    coded = plain.set_column(0, names[0], pc.dictionary_encode(plain.column(0)))
    expected = explain_table(case.model, plain)
    got = explain_table(case.model, coded)
    assert got.equals(expected)


def test_feature_names_that_look_like_output_columns():
    """Features named like the feature-name columns (``*_feature*``) stay numeric SHAP
    columns; only the top-k name columns are strings."""
    xgboost = pytest.importorskip("xgboost")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 3))
    names = ["top1_feature_x", "my_feature", "feature_i"]
    model = xgboost.XGBRegressor(n_estimators=5, max_depth=2).fit(X, X[:, 0] + X[:, 1])
    model.get_booster().feature_names = names
    out = explain_table(model, _table(X, names), top_k=1)
    assert [str(out.schema.field(n).type) for n in names] == ["double"] * 3
    assert pa.types.is_dictionary(out.schema.field("top1_feature").type)
    assert_bitwise(np.column_stack([_np(out, n) for n in names]),
                   treelens.TreeExplainer(model).shap_values(X), "SHAP columns")
