"""treelens vs LightGBM's own pred_contrib and raw_score."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from helpers import NATIVE_TOL, assert_close, load_spec, scale_of
from native_checks import check_margin, check_margin_bitwise, check_on_probes, check_shap
from treelens._forest import build

NAMES = zoo.names("lgb")
NUMERIC = [n for n in NAMES if n not in zoo.CATEGORICAL_CASES]


@pytest.mark.parametrize("name", NAMES)
def test_shap_matches_pred_contrib(name, cases):
    case = cases[name]
    check_shap(case, case.X)


@pytest.mark.parametrize("name", NAMES)
def test_predict_matches_raw_score(name, cases):
    case = cases[name]
    check_margin(case, case.X, 1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_predict_is_bitwise_raw_score(name, cases):
    """Double routing and tree-order accumulation reproduce LightGBM exactly."""
    case = cases[name]
    check_margin_bitwise(case, case.X, np.float64)


@pytest.mark.parametrize("name", NUMERIC)
def test_threshold_edges(name, cases):
    """Values at and one ulp around every threshold, NaN, +-0 and |x| <= 1e-35."""
    check_on_probes(cases[name], np.float64)


@pytest.mark.parametrize("name", ["lgb_nan", "lgb_missing_zero", "lgb_missing_none"])
def test_infinite_values(name, cases):
    """LightGBM accepts +-inf; they meet its +inf thresholds (NaN-versus-rest splits)."""
    case = cases[name]
    n, m = case.X.shape
    X = np.tile(case.X[:20], (2 * m, 1))
    for f in range(m):
        X[40 * f:40 * f + 20, f] = np.inf
        X[40 * f + 20:40 * f + 40, f] = -np.inf
    check_margin_bitwise(case, X, np.float64)
    check_shap(case, X)


def test_categorical_edges(cases):
    """Unseen, negative, fractional and NaN categories route as LightGBM routes them."""
    case = cases["lgb_categorical"]
    X = np.repeat(case.X[:10], 8, axis=0)
    specials = np.array([np.nan, -1.0, -0.5, 0.5, 2.7, 10.0, 31.0, 1000.0])
    for f in (1, 4):
        X[:, f] = np.tile(specials, 10)
    check_margin_bitwise(case, X, np.float64)
    check_shap(case, X)


@pytest.mark.parametrize("name, iterations", [
    ("lgb_booster_multiclass", [1, 4, 10]),
    ("lgb_reg", [1, 7]),
])
def test_num_iteration(name, iterations, cases):
    case = cases[name]
    booster = case.model if name == "lgb_booster_multiclass" else case.model.booster_
    X = case.X
    for k in iterations:
        spec = load_spec(case.model, "lightgbm", num_iteration=k)
        forest = build(spec)
        assert forest.n_trees == k * case.n_outputs
        margin_n, shap_n = zoo.lgb_native(booster, case.n_outputs, num_iteration=k)
        phi_n, bias_n = shap_n(X)
        scale = scale_of(phi_n, bias_n)
        what = f"num_iteration={k}"
        assert_close(forest.shap_values(X, 1), phi_n, NATIVE_TOL * scale, what + " shap")
        assert_close(np.broadcast_to(forest.expected_value(), bias_n.shape), bias_n,
                     NATIVE_TOL * scale, what + " expected_value")
        assert_close(forest.predict(X, 1), margin_n(X), 0.0, what + " margin")
