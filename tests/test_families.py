"""IsolationForest (scikit-learn and pyod) and gpboost models: treelens against the libraries'
own scores, shap's TreeExplainer and the brute-force oracle."""
from __future__ import annotations

import numpy as np
import pytest

import oracle
import treelens
from helpers import ADDITIVITY_TOL, ORACLE_TOL, assert_close, scale_of

N_ROWS = 300


def _data(seed: int = 0, nan: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, 6))
    if nan:
        X[::10, 2] = np.nan
    return X


def _mean_path_length(model, X):
    """E[h(x)] from scikit-learn's score_samples = -2 ** (-E[h(x)] / c(max_samples))."""
    from sklearn.ensemble._iforest import _average_path_length

    return -np.log2(-model.score_samples(X)) * _average_path_length([model._max_samples])[0]


@pytest.fixture(scope="module")
def isolation_forests():
    from sklearn.ensemble import IsolationForest

    return {
        "all_features": IsolationForest(n_estimators=25, random_state=0).fit(_data()),
        "feature_subsets": IsolationForest(n_estimators=25, max_features=0.5,
                                           random_state=1).fit(_data()),
        "trained_with_nan": IsolationForest(n_estimators=25, random_state=2).fit(
            _data(nan=True)),
    }


@pytest.mark.parametrize("name", ["all_features", "feature_subsets", "trained_with_nan"])
def test_isolation_forest_is_the_mean_path_length(name, isolation_forests):
    """predict is E[h(x)] as score_samples and decision_function define it; additivity."""
    model = isolation_forests[name]
    X = _data(5, nan=True)
    explainer = treelens.TreeExplainer(model)
    margin = explainer.predict(X)
    want = _mean_path_length(model, X)
    assert_close(margin, want, 1e-12 * scale_of(want), f"{name}: E[h(x)] vs score_samples")
    offset = model.decision_function(X) - model.score_samples(X)
    assert np.allclose(offset, -model.offset_)
    phi = explainer.shap_values(X)
    gap = phi.sum(axis=1) + explainer.expected_value - margin
    assert_close(gap, np.zeros_like(gap), ADDITIVITY_TOL * scale_of(margin), "additivity")


@pytest.mark.parametrize("name", ["all_features", "feature_subsets", "trained_with_nan"])
def test_isolation_forest_matches_shap(name, isolation_forests):
    """Fresh rows (none within float32 rounding of a threshold), NaN included."""
    shap = pytest.importorskip("shap")
    model = isolation_forests[name]
    X = _data(7, nan=True)
    reference = shap.TreeExplainer(model)
    want = reference.shap_values(X)
    explainer = treelens.TreeExplainer(model)
    assert_close(explainer.shap_values(X), want, 1e-10 * scale_of(want), f"{name}: vs shap")
    assert_close(explainer.expected_value, float(np.ravel(reference.expected_value)[0]),
                 1e-10, "expected value")


def test_isolation_forest_oracle_on_training_rows(isolation_forests):
    """Training rows against the oracle, and all of them against score_samples: thresholds
    are drawn from training values, and scikit-learn (as treelens) routes float32(x)."""
    model = isolation_forests["trained_with_nan"]
    X = _data(nan=True)[:40]
    forest = treelens.load(model)
    want, want_ev = oracle.shap_values(forest.spec, X)
    assert_close(forest.shap_values(X), want[:, :, 0], ORACLE_TOL * scale_of(want), "oracle")
    assert_close(forest.expected_value, want_ev[0], ORACLE_TOL * scale_of(want_ev), "oracle ev")
    margin = _mean_path_length(model, _data(nan=True))
    assert_close(forest.predict(_data(nan=True)), margin, 1e-12 * scale_of(margin),
                 "training rows vs score_samples")


def test_pyod_iforest_matches_its_detector_and_shap():
    pyod_iforest = pytest.importorskip("pyod.models.iforest")
    shap = pytest.importorskip("shap")
    model = pyod_iforest.IForest(n_estimators=20, random_state=0).fit(_data())
    X = _data(3)
    got = treelens.TreeExplainer(model).shap_values(X)
    want = shap.TreeExplainer(model).shap_values(X)
    assert_close(got, want, 1e-10 * scale_of(want), "pyod IForest vs shap")
    margin = _mean_path_length(model.detector_, X)
    assert_close(treelens.load(model).predict(X), margin, 1e-12 * scale_of(margin),
                 "pyod IForest vs its detector's score_samples")


def test_unfitted_isolation_forest_raises():
    from sklearn.ensemble import IsolationForest
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        treelens.load(IsolationForest())


@pytest.fixture(scope="module")
def gpboost_models():
    gpb = pytest.importorskip("gpboost")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 5))
    X[::9, 1] = np.nan
    group = rng.integers(0, 10, 500)
    y = X[:, 0] + np.nan_to_num(X[:, 1]) + 0.3 * group + 0.1 * rng.normal(size=500)
    params = {"objective": "regression", "num_leaves": 15, "verbose": -1}
    plain = gpb.train(params=params, train_set=gpb.Dataset(X, y), num_boost_round=20)
    mixed = gpb.train(params=params, train_set=gpb.Dataset(X, y), num_boost_round=20,
                      gp_model=gpb.GPModel(group_data=group, likelihood="gaussian"))
    return {"plain": plain, "gp_model": mixed}, X, group


def test_gpboost_booster_matches_pred_contrib_and_shap(gpboost_models):
    shap = pytest.importorskip("shap")
    models, X, _ = gpboost_models
    booster = models["plain"]
    explainer = treelens.TreeExplainer(booster)
    want = booster.predict(X, pred_contrib=True)
    got = explainer.shap_values(X)
    assert_close(got, want[:, :-1], 1e-12 * scale_of(want), "vs gpboost pred_contrib")
    assert_close(got, shap.TreeExplainer(booster).shap_values(X), 1e-12 * scale_of(want),
                 "vs shap")
    latent = booster.predict(X, pred_latent=True)
    assert_close(explainer.predict(X), latent, 1e-12 * scale_of(latent), "vs pred_latent")


def test_gpboost_with_gp_model_explains_the_trees(gpboost_models, tmp_path):
    """With random effects the trees are the fixed effect F(X); live and saved models."""
    models, X, group = gpboost_models
    booster = models["gp_model"]
    fixed = booster.predict(X, group_data_pred=group, pred_latent=True)["fixed_effect"]
    forest = treelens.load(booster)
    assert_close(forest.predict(X), fixed, 1e-12 * scale_of(fixed), "vs fixed_effect")
    path = tmp_path / "gpboost.json"
    booster.save_model(str(path))
    np.testing.assert_array_equal(treelens.load(path).shap_values(X), forest.shap_values(X))
