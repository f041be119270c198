"""Saved model files give exactly the results of the live objects."""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import treelens
from helpers import as1d, as3d, assert_bitwise, explain

XGB_CASES = ["xgb_reg", "xgb_multiclass", "xgb_categorical", "xgb_dart", "xgb_boosted_forest"]
LGB_CASES = ["lgb_reg", "lgb_multiclass", "lgb_categorical", "lgb_missing_zero", "lgb_rf"]


def _booster(case):
    return case.model.get_booster() if hasattr(case.model, "get_booster") else case.model


def _lgb_booster(case):
    return case.model.booster_ if hasattr(case.model, "booster_") else case.model


def _assert_same(path, case):
    """TreeExplainer and treelens.load on str and Path give the live results bit for bit."""
    X = case.X
    live = explain(case.model, X)
    for source in (str(path), pathlib.Path(path)):
        for what, a, b in zip(("shap_values", "expected_value", "predict"),
                              explain(source, X), live):
            assert_bitwise(a, b, f"{pathlib.Path(path).name}: {what}")
        forest = treelens.load(source)
        assert_bitwise(as3d(forest.shap_values(X)), live[0], "treelens.load shap_values")
        assert_bitwise(as1d(forest.expected_value), live[1], "treelens.load expected_value")


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
@pytest.mark.parametrize("name", XGB_CASES)
def test_xgboost_saved_model(name, suffix, cases, tmp_path):
    case = cases[name]
    path = tmp_path / f"model{suffix}"
    _booster(case).save_model(str(path))
    _assert_same(path, case)


@pytest.mark.parametrize("name", LGB_CASES)
def test_lightgbm_text_file(name, cases, tmp_path):
    case = cases[name]
    path = tmp_path / "model.txt"
    _lgb_booster(case).save_model(str(path))
    _assert_same(path, case)


@pytest.mark.parametrize("name", ["lgb_reg", "lgb_multiclass", "lgb_categorical"])
def test_lightgbm_dump_model_json(name, cases, tmp_path):
    case = cases[name]
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(_lgb_booster(case).dump_model()))
    _assert_same(path, case)


def test_xgboost_json_and_ubj_are_the_same_model(cases, tmp_path):
    case = cases["xgb_categorical"]
    for suffix in (".json", ".ubj"):
        _booster(case).save_model(str(tmp_path / f"m{suffix}"))
    a = treelens.load(str(tmp_path / "m.json"))
    b = treelens.load(str(tmp_path / "m.ubj"))
    assert (a.n_trees, a.n_features, a.n_outputs, a.max_depth) == \
        (b.n_trees, b.n_features, b.n_outputs, b.max_depth)
    assert_bitwise(np.asarray(a.predict(case.X)), np.asarray(b.predict(case.X)), "predict")
