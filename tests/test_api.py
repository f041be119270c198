"""The public objects: shapes, metadata and importances."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import treelens
import zoo
from helpers import NATIVE_TOL, as3d, assert_bitwise, assert_close, load_spec, scale_of
from oracle import tree_depth


@pytest.mark.parametrize("name", zoo.ALL_CASES)
def test_output_shapes_and_types(name, cases):
    case = cases[name]
    ex = treelens.TreeExplainer(case.model)
    n, m, k = len(case.X), case.n_features, case.n_outputs
    phi = ex.shap_values(case.X)
    margin = ex.predict(case.X)
    assert phi.dtype == np.float64 and margin.dtype == np.float64
    if k == 1:
        assert phi.shape == (n, m) and margin.shape == (n,)
        assert isinstance(ex.expected_value, float)
    else:
        assert phi.shape == (n, m, k) and margin.shape == (n, k)
        assert isinstance(ex.expected_value, np.ndarray) and ex.expected_value.shape == (k,)


@pytest.mark.parametrize("name", zoo.ALL_CASES)
def test_forest_metadata(name, cases):
    case = cases[name]
    forest = treelens.load(case.model)
    spec = load_spec(case.model, case.library)
    assert forest.n_features == case.n_features
    assert forest.n_outputs == case.n_outputs
    assert forest.n_trees == len(spec.trees)
    assert forest.max_depth == max(tree_depth(t) for t in spec.trees)
    assert_bitwise(np.asarray(forest.shap_values(case.X)),
                   np.asarray(treelens.TreeExplainer(case.model).shap_values(case.X)),
                   "Forest.shap_values vs TreeExplainer")


def test_tree_counts_match_the_libraries(cases):
    assert treelens.load(cases["xgb_boosted_forest"].model).n_trees == 36
    assert treelens.load(cases["xgb_rf"].model).n_trees == 8
    assert treelens.load(cases["lgb_multiclass"].model).n_trees == 24
    lgb_booster = cases["lgb_deep"].model.booster_
    assert treelens.load(lgb_booster).n_trees == lgb_booster.num_trees()
    assert treelens.load(cases["sk_gbc_multiclass"].model).n_trees == 24
    assert treelens.load(cases["sk_rf_reg"].model).n_trees == 10


def test_deep_models_are_deep(cases):
    assert treelens.load(cases["xgb_deep"].model).max_depth >= 12
    assert treelens.load(cases["lgb_deep"].model).max_depth >= 15


@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "sklearn"])
def test_feature_names(library, pandas_models):
    model = pandas_models.model(library, False)
    names = list(pandas_models.frame(False).columns)
    assert treelens.load(model).feature_names == names
    assert treelens.TreeExplainer(model).feature_names == names


def test_split_importance_matches_the_libraries(cases, pandas_models):
    xgb_model = pandas_models.model("xgboost", False)
    native = xgb_model.get_booster().get_score(importance_type="weight")
    got = treelens.load(xgb_model).feature_importances("split")
    names = treelens.load(xgb_model).feature_names
    assert_bitwise(got, np.array([native.get(n, 0.0) for n in names]), "xgboost weight")

    lgb_model = cases["lgb_reg"].model
    native = lgb_model.booster_.feature_importance("split").astype(np.float64)
    assert_bitwise(treelens.load(lgb_model).feature_importances("split"), native,
                   "lightgbm split")


def test_gain_importance_matches_lightgbm(cases):
    model = cases["lgb_reg"].model
    native = model.booster_.feature_importance("gain")
    got = treelens.load(model).feature_importances("gain")
    assert_close(got, native, 1e-5 * scale_of(native), "lightgbm total gain")


def test_gain_importance_matches_xgboost_total_gain(pandas_models):
    model = pandas_models.model("xgboost", False)
    native = model.get_booster().get_score(importance_type="total_gain")
    forest = treelens.load(model)
    expected = np.array([native.get(n, 0.0) for n in forest.feature_names])
    assert_close(forest.feature_importances("gain"), expected, 1e-5 * scale_of(expected),
                 "xgboost total_gain")


def test_cover_importance_matches_xgboost_total_cover(pandas_models):
    model = pandas_models.model("xgboost", False)
    native = model.get_booster().get_score(importance_type="total_cover")
    forest = treelens.load(model)
    expected = np.array([native.get(n, 0.0) for n in forest.feature_names])
    assert_close(forest.feature_importances("cover"), expected, 1e-5 * scale_of(expected),
                 "xgboost total_cover")


def test_unknown_importance_kind(cases):
    with pytest.raises(ValueError):
        treelens.load(cases["lgb_reg"].model).feature_importances("bogus")


def test_explainer_iteration_limits(cases):
    """iteration_range / num_iteration on the explainer equal the loader's selection."""
    from treelens._forest import build

    case = cases["xgb_boosted_forest"]
    got = treelens.TreeExplainer(case.model, iteration_range=(1, 4)).shap_values(case.X)
    want = build(load_spec(case.model, "xgboost", iteration_range=(1, 4))).shap_values(case.X, 1)
    assert_bitwise(as3d(got), want, "iteration_range")

    case = cases["lgb_booster_multiclass"]
    got = treelens.TreeExplainer(case.model, num_iteration=3).shap_values(case.X)
    _, shap_n = zoo.lgb_native(case.model, 3, num_iteration=3)
    phi_n, _ = shap_n(case.X)
    assert_close(as3d(got), phi_n, NATIVE_TOL * scale_of(phi_n), "num_iteration")


def test_forest_pickles(cases):
    case = cases["lgb_categorical"]
    forest = treelens.load(case.model)
    clone = pickle.loads(pickle.dumps(forest))
    assert_bitwise(np.asarray(clone.shap_values(case.X)), np.asarray(forest.shap_values(case.X)),
                   "pickled Forest")
