"""treelens vs XGBoost's own pred_contribs and output_margin."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from helpers import FLOAT32_MARGIN_TOL, NATIVE_TOL, assert_close, load_spec, scale_of
from native_checks import check_margin, check_margin_bitwise, check_on_probes, check_shap
from treelens._forest import build

NAMES = zoo.names("xgb")
NUMERIC = [n for n in NAMES if n not in zoo.CATEGORICAL_CASES]


@pytest.mark.parametrize("name", NAMES)
def test_shap_matches_pred_contribs(name, cases):
    case = cases[name]
    check_shap(case, case.X)


@pytest.mark.parametrize("name", NAMES)
def test_predict_matches_output_margin(name, cases):
    case = cases[name]
    check_margin(case, case.X, FLOAT32_MARGIN_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_predict_is_bitwise_output_margin(name, cases):
    """Float32 routing and float32 accumulation reproduce XGBoost exactly."""
    case = cases[name]
    check_margin_bitwise(case, case.X, np.float32)


@pytest.mark.parametrize("name", NUMERIC)
def test_threshold_edges(name, cases):
    """Values at and one ulp (float32 and float64) around every threshold, NaN, +-0, tiny."""
    check_on_probes(cases[name], np.float32)


@pytest.mark.parametrize("name, ranges", [
    ("xgb_boosted_forest", [(0, 1), (1, 4), (2, 6), (5, 6)]),
    ("xgb_reg", [(0, 5), (7, 20)]),
    ("xgb_dart", [(3, 9)]),
])
def test_iteration_range(name, ranges, cases):
    """SHAP vs pred_contribs of the sliced booster (XGBoost only explains ranges that
    start at 0); margin vs output_margin with the same iteration_range."""
    case = cases[name]
    booster = case.model if name == "xgb_boosted_forest" else case.model.get_booster()
    X = case.X
    for a, b in ranges:
        forest = build(load_spec(case.model, "xgboost", iteration_range=(a, b)))
        _, shap_n = zoo.xgb_native(booster[a:b], case.feature_types)
        margin_n, _ = zoo.xgb_native(booster, case.feature_types, iteration_range=(a, b))
        phi_n, bias_n = shap_n(X)
        scale = scale_of(phi_n, bias_n)
        what = f"iteration_range=({a}, {b})"
        assert_close(forest.shap_values(X, 1), phi_n, NATIVE_TOL * scale, what + " shap")
        assert_close(np.broadcast_to(forest.expected_value(), bias_n.shape), bias_n,
                     NATIVE_TOL * scale, what + " expected_value")
        assert np.array_equal(forest.predict(X, 1).astype(np.float32),
                              margin_n(X).astype(np.float32)), what + " margin not bitwise"


def test_iteration_range_selects_rounds_not_trees(cases):
    """With 3 classes x 2 parallel trees per round, one round is 6 trees."""
    case = cases["xgb_boosted_forest"]
    assert build(load_spec(case.model, "xgboost", iteration_range=(1, 3))).n_trees == 12
    assert build(load_spec(case.model, "xgboost")).n_trees == 36


def test_multiclass_base_score_is_a_vector(cases):
    """XGBoost 3.x stores one base margin per class; the bias column shows them."""
    case = cases["xgb_multiclass"]
    spec = load_spec(case.model, "xgboost")
    _, bias_n = case.native_shap(case.X[:1])
    ev = build(spec).expected_value()
    assert len(set(np.round(np.asarray(spec.base_score, dtype=np.float64), 6))) > 1
    assert_close(ev, bias_n[0], NATIVE_TOL * scale_of(bias_n), "expected_value per class")
