"""``treelens explain`` writes exactly what TreeExplainer computes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import treelens
from helpers import assert_bitwise


def _command():
    script = shutil.which("treelens", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "treelens"]


def _run(args, cwd):
    return subprocess.run(_command() + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def _read_table(path):
    """(column names or None, float64 [n, c]) from a CLI output file."""
    if path.suffix == ".npy":
        return None, np.load(path)
    import pandas as pd
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return list(frame.columns), frame.to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def saved(pandas_models, tmp_path_factory):
    """A named-feature XGBoost model file and a CSV of rows (with NaN) to explain."""
    folder = tmp_path_factory.mktemp("cli")
    model = pandas_models.model("xgboost", False)
    frame = pandas_models.frame(False)
    model.get_booster().save_model(str(folder / "model.json"))
    frame.to_csv(folder / "data.csv", index=False)
    return folder, frame


@pytest.mark.parametrize("suffix", [".parquet", ".npy", ".csv"])
def test_explain_csv(suffix, saved):
    folder, frame = saved
    out = folder / f"shap{suffix}"
    proc = _run(["explain", folder / "model.json", folder / "data.csv", "-o", out], folder)
    assert proc.returncode == 0, proc.stderr
    columns, table = _read_table(out)

    ex = treelens.TreeExplainer(str(folder / "model.json"))
    phi = ex.shap_values(frame)
    names = list(frame.columns)
    if columns is not None:
        assert columns == names + ["expected_value"]
    assert table.shape == (len(frame), len(names) + 1)
    assert_bitwise(table[:, :-1], phi, "CLI SHAP columns vs TreeExplainer")
    assert_bitwise(table[:, -1], np.full(len(frame), ex.expected_value), "expected_value")


def test_explain_multiclass_layout(cases, tmp_path):
    case = cases["lgb_booster_multiclass"]
    case.model.save_model(str(tmp_path / "model.txt"))
    np.save(tmp_path / "data.npy", case.X)
    out = tmp_path / "shap.parquet"
    proc = _run(["explain", tmp_path / "model.txt", tmp_path / "data.npy", "-o", out], tmp_path)
    assert proc.returncode == 0, proc.stderr
    columns, table = _read_table(out)
    ex = treelens.TreeExplainer(case.model)
    phi = ex.shap_values(case.X)                       # [n, m, k]
    n, m, k = phi.shape
    names = ex.feature_names or [f"f{i}" for i in range(m)]
    assert columns == [f"{f}__{c}" for c in range(k) for f in names] + \
        [f"expected_value__{c}" for c in range(k)]
    assert_bitwise(table[:, :m * k], phi.transpose(0, 2, 1).reshape(n, m * k), "SHAP block")
    assert_bitwise(table[:, m * k:], np.tile(ex.expected_value, (n, 1)), "expected_value")


def test_explain_example(tmp_path):
    proc = _run(["explain", "--example", "-o", tmp_path / "example.csv"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    import pandas as pd
    frame = pd.read_csv(tmp_path / "example.csv")
    assert list(frame.columns[:2]) == ["customer_id", "age"]
    assert "expected_value" in frame.columns and "top3_feature" in frame.columns
    assert len(frame) == 2000 and frame["customer_id"].iloc[-1] == "C02000"


@pytest.mark.parametrize("problem", ["garbage_model", "missing_data", "bad_extension",
                                     "missing_model", "wrong_columns"])
def test_explain_failures(problem, saved, tmp_path):
    folder, frame = saved
    model, data, out = folder / "model.json", folder / "data.csv", tmp_path / "out.npy"
    if problem == "garbage_model":
        model = tmp_path / "garbage.json"
        model.write_bytes(b"\x00\xffnot a model at all")
    elif problem == "missing_data":
        data = tmp_path / "absent.csv"
    elif problem == "bad_extension":
        out = tmp_path / "out.xlsx"
    elif problem == "missing_model":
        model = tmp_path / "absent.json"
    elif problem == "wrong_columns":
        data = tmp_path / "wrong.csv"
        frame.drop(columns=["income"]).to_csv(data, index=False)
    proc = _run(["explain", model, data, "-o", out], tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip(), "no message on stderr"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()
