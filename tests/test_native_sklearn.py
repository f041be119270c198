"""treelens vs shap.TreeExplainer and scikit-learn's own predictions."""
from __future__ import annotations

import pytest

import zoo
from native_checks import check_margin, check_on_probes, check_shap

NAMES = zoo.names("sk")
WITH_SHAP = [n for n in NAMES if n not in ("sk_gbc_multiclass", "sk_hgb_categorical")]
REJECTS_NAN = ("sk_gbr", "sk_gbc_binary", "sk_gbc_multiclass")
NUMERIC = [n for n in NAMES if n not in zoo.CATEGORICAL_CASES]


@pytest.mark.parametrize("name", WITH_SHAP)
def test_shap_matches_shap_package(name, cases):
    case = cases[name]
    check_shap(case, case.X)


@pytest.mark.parametrize("name", NAMES)
def test_predict_matches_estimator(name, cases):
    """predict for regressors, predict_proba for forests, decision_function for boosting."""
    case = cases[name]
    check_margin(case, case.X, 1e-12)


@pytest.mark.parametrize("name", NUMERIC)
def test_threshold_edges(name, cases):
    """Values at and one ulp (float32 and float64) around every threshold, NaN, tiny."""
    check_on_probes(cases[name], allow_nan=name not in REJECTS_NAN)


def test_categorical_edges(cases):
    """HistGradientBoosting category bitsets: seen, unseen and missing categories."""
    import numpy as np

    case = cases["sk_hgb_categorical"]
    X = np.repeat(case.X[:10], 4, axis=0)
    specials = np.array([np.nan, 0.0, 9.0, 12.0])
    for f in (1, 4):
        X[:, f] = np.tile(specials, 10)
    check_margin(case, X, 1e-12)
