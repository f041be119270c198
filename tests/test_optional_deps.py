"""Batch jobs with only some optional packages: Parquet with pyarrow and no pandas, CSV with
neither.

Every test runs the command line or the API in a child interpreter in which the packages
a user might lack cannot be imported (a finder that refuses them), so the same file
checks those paths in the full test environment. CI also runs it in virtual environments
that really lack them (``.ci/run``); ``TREELENS_EXPECT_MISSING`` then names the packages
that must be absent. Models come from files (the bundled example, a LightGBM model with a
categorical feature in ``tests/data``), so no model library is needed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import treelens
from treelens.cli import EXAMPLE_DATA, EXAMPLE_MODEL

DATA = Path(__file__).resolve().parent / "data"
LIGHTGBM_CATEGORICAL = DATA / "lightgbm_categorical.txt"
FEATURES = ["age", "income", "debt_ratio", "credit_lines", "late_payments",
            "years_employed", "loan_amount", "savings", "utilization", "inquiries"]

RUN = """
import sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Absent())
{body}
"""


def _child(body: str, blocked, cwd: Path) -> subprocess.CompletedProcess:
    code = RUN.format(blocked=list(blocked), body=body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def _cli(args, blocked, cwd: Path) -> subprocess.CompletedProcess:
    body = f"from treelens.cli import main\nsys.exit(main({[str(a) for a in args]!r}))"
    return _child(body, blocked, cwd)


def _example():
    """(customer ids [n], features float64 [n, 10]) of the bundled example."""
    ids = np.loadtxt(EXAMPLE_DATA, delimiter=",", skiprows=1, usecols=0, dtype=str)
    X = np.genfromtxt(EXAMPLE_DATA, delimiter=",", skip_header=1)[:, 1:-1]
    return ids, X


def test_expected_packages_are_missing():
    """In CI's reduced environments the packages said to be absent really are."""
    expected = [n for n in os.environ.get("TREELENS_EXPECT_MISSING", "").split(",") if n]
    present = [n for n in expected if importlib.util.find_spec(n) is not None]
    assert not present, f"installed although this environment must lack them: {present}"
    for name in ("pandas", "pyarrow"):
        if importlib.util.find_spec(name) is None:
            with pytest.raises(ModuleNotFoundError):
                __import__(name)


def test_parquet_job_without_pandas(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids, X = _example()
    columns = {"customer_id": pa.array(ids)}
    columns.update({name: pa.array(X[:, j]) for j, name in enumerate(FEATURES)})
    pq.write_table(pa.table(columns), tmp_path / "rows.parquet", row_group_size=700)
    proc = _cli(["explain", EXAMPLE_MODEL, "rows.parquet", "-o", "out.parquet",
                 "--keep", "customer_id", "--top-k", "2", "--prediction",
                 "--batch-rows", "512"], ["pandas"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = pq.read_table(tmp_path / "out.parquet")
    phi = treelens.TreeExplainer(str(EXAMPLE_MODEL)).shap_values(X)
    got = np.column_stack([out.column(n).to_numpy() for n in FEATURES])
    np.testing.assert_array_equal(got, phi)
    assert out.column("customer_id").to_pylist() == ids.tolist()
    margin = out.column("margin").to_numpy()
    np.testing.assert_allclose(phi.sum(axis=1) + out.column("expected_value").to_numpy(),
                               margin, rtol=1e-6, atol=1e-6)
    assert out.column("top1_feature").to_pylist()[0] in FEATURES


def test_dictionary_column_without_pandas(tmp_path):
    """A LightGBM categorical feature as an Arrow dictionary column, mapped by value."""
    pytest.importorskip("pyarrow")
    body = f"""
import numpy as np, pyarrow as pa, treelens, json
colors = ["red", "blue", None, "green", "black", "purple", "red"]
table = pa.table({{"color": pa.array(colors).dictionary_encode(),
                   "size": [0.5, np.nan, 1.0, -2.0, 0.0, 3.0, 1.5],
                   "weight": [1.0, 2.0, -1.0, 0.5, 0.0, 1.0, 2.0], "id": list("abcdefg")}})
out = treelens.explain_table({str(LIGHTGBM_CATEGORICAL)!r}, table, keep=["id"])
print(json.dumps({{n: out.column(n).to_pylist() for n in ("size", "weight", "color", "id")}}))
"""
    proc = _child(body, ["pandas"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    # The model's categories are ["black", "blue", "green", "red"]; unseen and null -> NaN.
    codes = [3.0, 1.0, np.nan, 2.0, 0.0, np.nan, 3.0]
    X = np.column_stack([[0.5, np.nan, 1.0, -2.0, 0.0, 3.0, 1.5],
                         [1.0, 2.0, -1.0, 0.5, 0.0, 1.0, 2.0], codes])
    phi = treelens.TreeExplainer(str(LIGHTGBM_CATEGORICAL)).shap_values(X)
    np.testing.assert_array_equal(np.column_stack([got["size"], got["weight"], got["color"]]),
                                  phi)
    assert got["id"] == list("abcdefg")


@pytest.mark.parametrize("output", ["out.csv", "out.npy"])
def test_csv_job_without_pyarrow_or_pandas(output, tmp_path):
    proc = _cli(["explain", EXAMPLE_MODEL, EXAMPLE_DATA, "-o", output, "--prediction"]
                + (["--keep", "customer_id", "--top-k", "1"] if output.endswith(".csv") else []),
                ["pandas", "pyarrow"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    ids, X = _example()
    phi = treelens.TreeExplainer(str(EXAMPLE_MODEL)).shap_values(X)
    if output.endswith(".npy"):
        table = np.load(tmp_path / output)
        np.testing.assert_array_equal(table[:, :len(FEATURES)], phi)
        return
    lines = (tmp_path / output).read_text().splitlines()
    header = lines[0].split(",")
    assert header[:2] == ["customer_id", "age"] and header[-2:] == ["top1_feature", "top1_shap"]
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == ids.tolist()
    got = np.array([[float(v) for v in r[1:1 + len(FEATURES)]] for r in rows])
    np.testing.assert_array_equal(got, phi)


def test_parquet_without_pyarrow_names_the_extra(tmp_path):
    proc = _cli(["explain", EXAMPLE_MODEL, EXAMPLE_DATA, "-o", "out.parquet"],
                ["pyarrow"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "treelens[parquet]" in proc.stderr, proc.stderr
    assert not list(tmp_path.iterdir())


def test_plots_without_matplotlib_name_the_extra(tmp_path):
    body = """
import numpy as np
from treelens import plots
try:
    plots.bar(np.ones((3, 2)))
except ImportError as exc:
    print(exc)
"""
    proc = _child(body, ["matplotlib"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "treelens[plots]" in proc.stdout, proc.stdout


def test_catboost_json_without_catboost(tmp_path):
    """A CatBoost JSON file (one-hot categories included) loads without catboost; a .cbm
    file needs it and says which extra to install."""
    catboost = pytest.importorskip("catboost")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "colour": rng.choice(["a", "b"], 200)})
    y = frame.x + (frame.colour == "b")
    model = catboost.CatBoostRegressor(iterations=10, depth=3, one_hot_max_size=4, verbose=0,
                                       allow_writing_files=False)
    model.fit(frame, y, cat_features=["colour"])
    model.save_model(str(tmp_path / "model.json"), format="json")
    model.save_model(str(tmp_path / "model.cbm"))
    pytest.importorskip("pyarrow")
    body = """
import json, pyarrow as pa, treelens
rows = pa.table({"x": [0.5, -1.0, 2.0], "colour": ["a", "b", "unseen"]})
print(json.dumps(treelens.load("model.json").predict(rows).tolist()))
try:
    treelens.load("model.cbm")
except ImportError as exc:
    print(exc)
"""
    want = model.predict(pd.DataFrame({"x": [0.5, -1.0, 2.0], "colour": ["a", "b", "unseen"]}),
                         prediction_type="RawFormulaVal")
    proc = _child(body, ["catboost", "pandas"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    np.testing.assert_allclose(json.loads(lines[0]), want, rtol=0, atol=1e-12)
    assert len(lines) == 2 and "treelens[catboost]" in lines[1], proc.stdout


def test_explanation_and_plots_without_shap(tmp_path):
    """Without shap, explainer(X) returns treelens.Explanation (the same attributes, values
    equal to shap_values) and treelens.plots draws it (when matplotlib is there)."""
    body = f"""
import numpy as np, treelens
X = np.genfromtxt({str(EXAMPLE_DATA)!r}, delimiter=",", skip_header=1)[:40, 1:-1]
ex = treelens.TreeExplainer({str(EXAMPLE_MODEL)!r})
e = ex(X)
assert type(e).__module__.startswith("treelens"), type(e)
assert np.array_equal(e.values, ex.shap_values(X))
assert np.allclose(e.base_values, ex.expected_value) and np.array_equal(e.data, X, equal_nan=True)
assert len(e.feature_names) == X.shape[1]
try:
    import matplotlib
except ImportError:
    print("explanation ok")
else:
    matplotlib.use("Agg")
    from treelens import plots
    plots.bar(e); plots.beeswarm(e); plots.waterfall(e[0]); plots.scatter(e, feature=0)
    print("explanation ok, plots ok")
"""
    proc = _child(body, ["shap"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("explanation ok"), proc.stdout
