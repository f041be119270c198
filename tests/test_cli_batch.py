"""``treelens explain`` and ``treelens importance`` end to end, through the installed command.

Saved XGBoost / LightGBM models and Parquet, CSV and ``.npy`` files go through the command
line; what it writes is read back and compared with the Python API on the same rows:

- every input format against every output format (SHAP columns bitwise);
- a hive-partitioned multi-file Parquet dataset streamed in batches (row order, kept
  columns, one output row group per input batch);
- ``--top-k``, ``--prediction``, ``--dtype float32``, ``--background`` with
  ``--model-output probability`` / ``log_loss``, ``--interactions --features``;
- a model without feature names (features by position);
- ``treelens importance`` (CSV, JSON, groups, plot) against ``permutation_importance``.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pacsv = pytest.importorskip("pyarrow.csv")
xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

import treelens  # noqa: E402
from treelens.batch import explain_table  # noqa: E402

from helpers import run_cli  # noqa: E402

FEATURES = ["a", "b", "c", "d", "e"]


def _ok(proc):
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _rows(n, seed, nan_frac=0.05):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    signal = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3]
    X[rng.random(X.shape) < nan_frac] = np.nan
    return X, signal + 0.1 * rng.normal(size=n)


def _table(X, **extra):
    columns = dict(extra)
    columns.update({name: X[:, j] for j, name in enumerate(FEATURES)})
    return pa.table(columns)


def _matrix(table, names=FEATURES):
    return np.column_stack([table.column(n).to_numpy(zero_copy_only=False)
                            for n in names]).astype(np.float64)


def _read(path):
    """(column names or None, pyarrow Table or ndarray) of a CLI output file."""
    if path.suffix == ".npy":
        return None, np.load(path)
    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    return table.column_names, table


def _col(table, name):
    return table.column(name).to_numpy(zero_copy_only=False)


def assert_same(actual, expected, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: {actual.dtype} != {expected.dtype}"
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    assert same.all(), f"{what}: {int((~same).sum())} values differ"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Models and data files: a regressor (XGBoost JSON), a binary classifier (LightGBM
    text), rows with an id, labels and NaNs as Parquet / CSV / .npy, background rows."""
    folder = tmp_path_factory.mktemp("cli_batch")
    X, y = _rows(600, 0)
    reg = xgb.train({"max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 0},
                    xgb.DMatrix(X, y, feature_names=FEATURES), 25)
    reg.save_model(str(folder / "reg.json"))
    clf = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1,
                     "num_threads": 1, "seed": 0},
                    lgb.Dataset(X, (y > 0).astype(float), feature_name=FEATURES), 20)
    clf.save_model(str(folder / "clf.txt"))

    X, y = _rows(1500, 1)
    table = _table(X, id=np.arange(1500, dtype=np.int64) * 7, y=y,
                   label=(y > 0).astype(np.int64))
    pq.write_table(table, folder / "data.parquet", row_group_size=400)
    pacsv.write_csv(table, folder / "data.csv")
    np.save(folder / "data.npy", X)
    pq.write_table(_table(_rows(80, 2)[0]), folder / "bg.parquet")
    return folder


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("out_suffix", [".parquet", ".csv", ".npy"])
@pytest.mark.parametrize("in_suffix", [".parquet", ".csv", ".npy"])
def test_round_trip(in_suffix, out_suffix, work, tmp_path):
    data, out = work / f"data{in_suffix}", tmp_path / f"shap{out_suffix}"
    proc = _ok(run_cli("explain", work / "reg.json", data, "-o", out, "--batch-rows", 333))
    assert "explained 1,500 rows x 5 features (25 trees)" in proc.stdout
    assert f"-> {out} (1,500 rows)" in proc.stdout
    if in_suffix == ".npy":
        X = np.load(data)
    else:
        X = _matrix(pq.read_table(data) if in_suffix == ".parquet" else pacsv.read_csv(data))
    ex = treelens.TreeExplainer(str(work / "reg.json"))
    phi = ex.shap_values(X)
    names, got = _read(out)
    if names is None:
        assert_same(got[:, :-1], phi, "SHAP block")
        assert_same(got[:, -1], np.full(len(X), ex.expected_value), "expected_value")
        return
    assert names == FEATURES + ["expected_value"]
    assert all(got.schema.field(n).type == pa.float64() for n in names)
    assert_same(np.column_stack([_col(got, n) for n in FEATURES]), phi, "SHAP columns")
    assert_same(_col(got, "expected_value"), np.full(len(X), ex.expected_value),
                "expected_value")


# ---------------------------------------------------------------- dataset directory


@pytest.fixture(scope="module")
def hive(tmp_path_factory):
    """A hive-partitioned directory: 7,777 rows in four files of two row groups each."""
    root = tmp_path_factory.mktemp("hive") / "rows"
    sizes = [("b", 0, 2100), ("a", 1, 1600), ("a", 0, 1900), ("c", 0, 2177)]
    rng = np.random.default_rng(3)
    for region, part, n in sizes:
        folder = root / f"region={region}"
        folder.mkdir(parents=True, exist_ok=True)
        X, _ = _rows(n, int(rng.integers(1 << 30)))
        ids = rng.integers(-(1 << 62), 1 << 62, size=n, dtype=np.int64)
        pq.write_table(_table(X, id=ids), folder / f"part-{part}.parquet",
                       row_group_size=1300)
    return root


def test_dataset_directory(hive, work, tmp_path):
    out = tmp_path / "shap.parquet"
    proc = _ok(run_cli("explain", work / "reg.json", hive, "-o", out, "--keep", "id,region",
                    "--batch-rows", 1000))
    assert "explained 7,777 rows" in proc.stdout

    files = sorted(hive.rglob("*.parquet"))
    assert len(files) == 4
    assert all(pq.ParquetFile(f).metadata.num_row_groups == 2 for f in files)
    parts = [pq.read_table(f) for f in files]
    inputs = pa.concat_tables(parts)
    regions = np.concatenate([[f.parent.name.split("=")[1]] * t.num_rows
                              for f, t in zip(files, parts)])
    got = pq.read_table(out)
    assert got.num_rows == inputs.num_rows == 7777
    assert got.column_names == ["id", "region"] + FEATURES + ["expected_value"]
    assert got.schema.field("id").type == pa.int64()
    assert_same(_col(got, "id"), _col(inputs, "id"), "kept id")
    assert got.column("region").to_pylist() == regions.tolist()

    X = _matrix(inputs)
    ex = treelens.TreeExplainer(str(work / "reg.json"))
    assert_same(np.column_stack([_col(got, n) for n in FEATURES]), ex.shap_values(X),
                "SHAP columns vs one in-memory call")

    # Each file is read in batches of --batch-rows rows (across its row groups), and
    # each batch is one output row group.
    sizes = [t.num_rows for t in parts]
    expected = [min(1000, n - a) for n in sizes for a in range(0, n, 1000)]
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == expected


# ---------------------------------------------------------------- modes


def _explain(work, tmp_path, out_name, *options, model="reg.json"):
    out = tmp_path / out_name
    _ok(run_cli("explain", work / model, work / "data.parquet", "-o", out, "--batch-rows", 500,
             *options))
    return out


def _same_table(got, expected):
    assert got.schema.equals(expected.schema), f"{got.schema}\n!=\n{expected.schema}"
    for name in expected.column_names:
        a, b = got.column(name), expected.column(name)
        if pa.types.is_floating(b.type):
            assert_same(a.to_numpy(), b.to_numpy(), name)
        else:
            assert a.to_pylist() == b.to_pylist(), name


def test_top_k(work, tmp_path):
    out = _explain(work, tmp_path, "top.parquet", "--top-k", 3, "--keep", "id")
    table = pq.read_table(work / "data.parquet")
    got = pq.read_table(out)
    _same_table(got, explain_table(str(work / "reg.json"), table, keep=["id"], top_k=3))

    phi = treelens.TreeExplainer(str(work / "reg.json")).shap_values(_matrix(table))
    order = np.argsort(-np.abs(phi), axis=1, kind="stable")[:, :3]
    for i in range(3):
        assert got.column(f"top{i + 1}_feature").to_pylist() == \
            np.asarray(FEATURES)[order[:, i]].tolist()
        assert_same(_col(got, f"top{i + 1}_shap"),
                    np.take_along_axis(phi, order[:, i:i + 1], axis=1)[:, 0], "top shap")


def test_top_k_csv(work, tmp_path):
    out = _explain(work, tmp_path, "top.csv", "--top-k", 2)
    got = pacsv.read_csv(out)
    expected = explain_table(str(work / "reg.json"), pq.read_table(work / "data.parquet"),
                             top_k=2)
    assert got.column_names == expected.column_names
    for name in expected.column_names:
        if name.endswith("_feature"):
            assert got.column(name).to_pylist() == expected.column(name).to_pylist()
        else:
            assert_same(_col(got, name), _col(expected, name), name)


def test_prediction(work, tmp_path):
    table = pq.read_table(work / "data.parquet")
    X = _matrix(table)
    for model, link in (("reg.json", False), ("clf.txt", True)):
        got = pq.read_table(_explain(work, tmp_path, f"pred_{model}.parquet",
                                     "--prediction", model=model))
        _same_table(got, explain_table(str(work / model), table, prediction=True))
        ex = treelens.TreeExplainer(str(work / model))
        margin = ex.predict(X)
        assert_same(_col(got, "margin"), margin, "margin")
        assert ("prediction" in got.column_names) == link
        if link:
            np.testing.assert_allclose(_col(got, "prediction"), 1 / (1 + np.exp(-margin)),
                                       rtol=1e-12)


def test_float32(work, tmp_path):
    got = pq.read_table(_explain(work, tmp_path, "f32.parquet", "--dtype", "float32",
                                 "--prediction", "--top-k", 1))
    table = pq.read_table(work / "data.parquet")
    _same_table(got, explain_table(str(work / "reg.json"), table, dtype="float32",
                                   prediction=True, top_k=1))
    for name in FEATURES + ["expected_value", "margin", "top1_shap"]:
        assert got.schema.field(name).type == pa.float32(), name
    phi = treelens.TreeExplainer(str(work / "reg.json")).shap_values(_matrix(table))
    assert_same(np.column_stack([_col(got, n) for n in FEATURES]), phi.astype(np.float32),
                "float32 SHAP")

    npy = np.load(_explain(work, tmp_path, "f32.npy", "--dtype", "float32"))
    assert npy.dtype == np.float32 and npy.shape == (1500, 6)
    assert_same(npy[:, :5], phi.astype(np.float32), "float32 .npy")


def test_background_probability(work, tmp_path):
    got = pq.read_table(_explain(work, tmp_path, "prob.parquet", "--background",
                                 work / "bg.parquet", "--model-output", "probability",
                                 "--keep", "id", model="clf.txt"))
    table, bg = pq.read_table(work / "data.parquet"), pq.read_table(work / "bg.parquet")
    model = str(work / "clf.txt")
    _same_table(got, explain_table(model, table, keep=["id"], data=_matrix(bg),
                                   model_output="probability"))
    ex = treelens.TreeExplainer(model, data=_matrix(bg), model_output="probability")
    assert_same(np.column_stack([_col(got, n) for n in FEATURES]),
                ex.shap_values(_matrix(table)), "probability SHAP")
    assert_same(_col(got, "expected_value"), np.full(1500, ex.expected_value), "expected")


def test_background_log_loss(work, tmp_path):
    got = pq.read_table(_explain(work, tmp_path, "loss.parquet", "--background",
                                 work / "bg.parquet", "--model-output", "log_loss",
                                 "--target", "label", "--prediction", model="clf.txt"))
    table, bg = pq.read_table(work / "data.parquet"), pq.read_table(work / "bg.parquet")
    model = str(work / "clf.txt")
    _same_table(got, explain_table(model, table, data=_matrix(bg), model_output="log_loss",
                                   target="label", prediction=True))
    assert "log_loss" in got.column_names and "label" not in got.column_names
    ex = treelens.TreeExplainer(model, data=_matrix(bg), model_output="log_loss")
    y = _col(table, "label").astype(np.float64)
    assert_same(np.column_stack([_col(got, n) for n in FEATURES]),
                ex.shap_values(_matrix(table), y=y), "log_loss SHAP")
    assert_same(_col(got, "expected_value"), np.reshape(ex.expected_value(y), -1),
                "expected_value(y)")


def test_interactions(work, tmp_path):
    table = pq.read_table(work / "data.parquet")
    model = str(work / "reg.json")
    got = pq.read_table(_explain(work, tmp_path, "inter.parquet", "--interactions",
                                 "--features", "a,c", "--keep", "id"))
    _same_table(got, explain_table(model, table, keep=["id"], output="interactions",
                                   features=["a", "c"]))
    assert got.column_names == ["id", "feature_i", "feature_j", "interaction"]
    assert got.num_rows == 1500 * 4
    assert_same(_col(got, "id"), np.repeat(_col(table, "id"), 4), "repeated id")
    assert got.column("feature_i").to_pylist() == ["a", "a", "c", "c"] * 1500
    assert got.column("feature_j").to_pylist() == ["a", "c", "a", "c"] * 1500
    phi = treelens.TreeExplainer(model).shap_interaction_values(_matrix(table),
                                                                features=["a", "c"])
    assert_same(_col(got, "interaction"), phi.reshape(-1), "interaction values")

    npy = np.load(_explain(work, tmp_path, "inter.npy", "--interactions", "--features",
                           "a,c"))
    assert_same(npy, phi, ".npy [n, s, s]")


# ---------------------------------------------------------------- unnamed model


def test_model_without_feature_names(work, tmp_path):
    X, y = _rows(400, 4)
    booster = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(X, y), 10)
    booster.save_model(str(tmp_path / "unnamed.json"))
    assert treelens.load(str(tmp_path / "unnamed.json")).feature_names is None
    Xq, _ = _rows(300, 5)
    names = ["u", "v", "w", "x", "z"]
    table = pa.table({"key": [f"k{i}" for i in range(300)],
                      **{n: Xq[:, j] for j, n in enumerate(names)},
                      "ignored": np.ones(300)})
    pq.write_table(table, tmp_path / "rows.parquet")
    out = tmp_path / "shap.parquet"
    proc = _ok(run_cli("explain", tmp_path / "unnamed.json", tmp_path / "rows.parquet", "-o",
                    out, "--keep", "key"))
    assert "the model has no feature names: its 5 features are the first columns of DATA " \
           "that are not kept" in proc.stdout
    got = pq.read_table(out)
    assert got.column_names == ["key", "f0", "f1", "f2", "f3", "f4", "expected_value"]
    assert got.column("key").to_pylist() == table.column("key").to_pylist()
    phi = treelens.TreeExplainer(str(tmp_path / "unnamed.json")).shap_values(Xq)
    assert_same(np.column_stack([_col(got, f"f{j}") for j in range(5)]), phi, "by position")


# ---------------------------------------------------------------- importance


def _importance_rows(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows


def _check_importance(rows, names, expected, repeats):
    assert [r["feature"] for r in rows] == names
    for r, mean, std, values in zip(rows, expected.importances_mean,
                                    expected.importances_std, expected.importances):
        assert float(r["importance_mean"]) == mean
        assert float(r["importance_std"]) == std
        assert [float(r[f"importance_{i}"]) for i in range(repeats)] == values.tolist()


def test_importance_csv_and_json(work, tmp_path):
    table = pq.read_table(work / "data.parquet")
    X, y = _matrix(table), _col(table, "y")
    model = str(work / "reg.json")
    expected = treelens.permutation_importance(model, X, y, scoring="r2", n_repeats=3,
                                               random_state=0)
    out = tmp_path / "imp.csv"
    proc = _ok(run_cli("importance", model, work / "data.parquet", "--target", "y",
                    "--scoring", "r2", "--repeats", 3, "-o", out))
    assert "permutation importance of 5 feature(s) on 1,500 rows" in proc.stdout
    _check_importance(_importance_rows(out), FEATURES, expected, 3)

    js = tmp_path / "imp.json"
    _ok(run_cli("importance", model, work / "data.csv", "--target", "y", "--scoring", "r2",
             "--repeats", 3, "-o", js))
    document = json.loads(js.read_text())
    assert (document["scoring"], document["n_repeats"], document["seed"]) == ("r2", 3, 0)
    got = document["importances"]
    assert [g["feature"] for g in got] == FEATURES
    assert [g["importance_mean"] for g in got] == expected.importances_mean.tolist()
    assert [g["importance_std"] for g in got] == expected.importances_std.tolist()
    assert [g["importances"] for g in got] == expected.importances.tolist()


@pytest.mark.parametrize("form", ["lists", "object"])
def test_importance_groups(form, work, tmp_path):
    groups = [["a", "b"], ["c"], ["d", "e"]]
    if form == "lists":
        document, names = groups, ["a+b", "c", "d+e"]
    else:
        names = ["ab", "c_only", "de"]
        document = dict(zip(names, groups))
    (tmp_path / "groups.json").write_text(json.dumps(document))
    table = pq.read_table(work / "data.parquet")
    model = str(work / "reg.json")
    expected = treelens.permutation_importance(model, _matrix(table), _col(table, "y"),
                                               scoring="neg_mean_squared_error",
                                               n_repeats=2, random_state=5, groups=groups)
    out = tmp_path / "imp.csv"
    _ok(run_cli("importance", model, work / "data.parquet", "--target", "y", "--scoring",
             "neg_mean_squared_error", "--repeats", 2, "--seed", 5, "--groups",
             tmp_path / "groups.json", "-o", out))
    _check_importance(_importance_rows(out), names, expected, 2)


def test_importance_plot(work, tmp_path):
    png = tmp_path / "imp.png"
    _ok(run_cli("importance", work / "reg.json", work / "data.parquet", "--target", "y",
             "--repeats", 2, "--plot", png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000


def test_importance_unknown_target(work, tmp_path):
    out = tmp_path / "imp.csv"
    proc = run_cli("importance", work / "reg.json", work / "data.parquet", "--target", "nope",
                "-o", out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("treelens: error:"), proc.stderr
    assert "nope" in lines[0]
    assert not out.exists() and not (tmp_path / "imp.csv.partial").exists()
