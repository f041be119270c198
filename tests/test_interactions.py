"""Path-dependent SHAP interaction values.

Tiers: the exponential oracle (half the Shapley interaction index of the path-dependent
game, diagonal completing each row to the SHAP value) on random specs of every routing
mode to 1e-9; XGBoost ``pred_interactions`` and ``shap`` on real models to 1e-5 x scale;
properties (symmetry, row sums, determinism across thread counts, feature subsets are
slices of the full result); input errors.
"""
from __future__ import annotations

import numpy as np
import pytest

import oracle
import treelens
import zoo
from helpers import (
    NATIVE_TOL,
    ORACLE_TOL,
    as3d,
    assert_bitwise,
    assert_close,
    scale_of,
)
from spec_factory import ALL_ROUTINGS, CATEGORICAL_ROUTINGS, TreeShape, probe_rows, random_spec
from treelens import _resources

CONFIGS = {
    "plain": dict(n_features=5, n_trees=3, shape=TreeShape(max_depth=5)),
    "repeated_features": dict(n_features=3, n_trees=3, shape=TreeShape(max_depth=7, p_repeat=0.8)),
    "one_feature": dict(n_features=1, n_trees=2, shape=TreeShape(max_depth=4)),
    "categorical": dict(n_features=4, n_trees=3, cat_features={0: 5, 2: 9},
                        shape=TreeShape(max_depth=5)),
    "multi_output_per_tree": dict(n_features=4, n_trees=6, n_outputs=3,
                                  shape=TreeShape(max_depth=4)),
    "multi_output_vector_leaves": dict(n_features=4, n_trees=3, n_outputs=2, vector_leaves=True,
                                       shape=TreeShape(max_depth=4)),
    "inconsistent_cover": dict(n_features=5, n_trees=3,
                               shape=TreeShape(max_depth=5, consistent_cover=False)),
    "stumps": dict(n_features=3, n_trees=5, shape=TreeShape(max_depth=3, p_stump=0.5)),
    "deep_chain": dict(n_features=7, n_trees=2,
                       shape=TreeShape(max_depth=24, chain=True, p_repeat=0.5)),
}


def interaction_oracle(spec, X: np.ndarray) -> np.ndarray:
    """Brute-force path-dependent interaction values: [n, m, m, n_outputs]."""
    return oracle.interactions_from_values(oracle.subset_values(spec, np.asarray(X, np.float64)))


def as4d(values) -> np.ndarray:
    """[n, m, m] or [n, m, m, k] -> [n, m, m, k] float64."""
    values = np.asarray(values, dtype=np.float64)
    return values[..., None] if values.ndim == 3 else values


def _oracle_cases():
    out = []
    for name, config in CONFIGS.items():
        for routing in ALL_ROUTINGS:
            if config.get("cat_features") and routing not in CATEGORICAL_ROUTINGS:
                continue
            out.append(pytest.param(routing, config, id=f"{name}-{routing}"))
    return out


@pytest.mark.parametrize("routing, config", _oracle_cases())
def test_random_forest_matches_oracle(routing, config):
    spec = random_spec(7, routing=routing, **config)
    X = probe_rows(spec, 8, n_rows=13, cat_features=config.get("cat_features"))
    forest = treelens.Forest.from_spec(spec)
    expected = interaction_oracle(spec, X)
    tol = ORACLE_TOL * scale_of(expected)
    assert_close(as4d(forest.shap_interaction_values(X, 1)), expected, tol, "interactions")
    with np.errstate(over="ignore"):
        X32 = X.astype(np.float32)
    assert_close(as4d(forest.shap_interaction_values(X32, 2)),
                 interaction_oracle(spec, X32.astype(np.float64)), tol, "float32 input")


def test_oracle_agrees_with_shap_package():
    """The interaction oracle reproduces shap on a tree it did not help build."""
    import shap
    from sklearn.tree import DecisionTreeRegressor
    from test_oracle import _spec_from_sklearn_tree

    X, y = zoo.make_data(91, n_features=5, nan_frac=0.2)
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(X[:300], y[:300])
    Xq = X[300:320]
    expected = interaction_oracle(_spec_from_sklearn_tree(model), Xq)[..., 0]
    got = shap.TreeExplainer(model).shap_interaction_values(Xq)
    assert_close(got, expected, 1e-10 * scale_of(expected), "oracle vs shap")


# ------------------------------------------------------------------ native libraries


def _xgb_interactions(case, X) -> np.ndarray:
    """XGBoost pred_interactions without the bias row/column: [n, m, m, k]."""
    import xgboost as xgb

    dmatrix = xgb.DMatrix(X, feature_types=case.feature_types,
                          enable_categorical=case.feature_types is not None, nthread=1)
    values = case.model.get_booster().predict(dmatrix, pred_interactions=True)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 3:
        values = values[:, None]
    return values[:, :, :-1, :-1].transpose(0, 2, 3, 1)


@pytest.mark.parametrize("name", ["xgb_reg", "xgb_multiclass", "xgb_categorical", "xgb_nan"])
def test_matches_xgboost_pred_interactions(name, cases):
    case = cases[name]
    X = case.X[:30]
    expected = _xgb_interactions(case, X)
    got = as4d(treelens.TreeExplainer(case.model).shap_interaction_values(X))
    assert_close(got, expected, NATIVE_TOL * scale_of(expected), f"{name} vs pred_interactions")


@pytest.mark.parametrize("name", ["sk_rf_reg", "sk_gbr", "sk_rf_multiclass", "lgb_reg"])
def test_matches_shap_package(name, cases):
    import shap

    case = cases[name]
    X = case.X[:12]
    expected = shap.TreeExplainer(case.model).shap_interaction_values(X)
    if isinstance(expected, list):
        expected = np.stack(expected, axis=-1)
    expected = as4d(expected)
    got = as4d(treelens.TreeExplainer(case.model).shap_interaction_values(X))
    assert_close(got, expected, NATIVE_TOL * scale_of(expected), f"{name} vs shap")


# ------------------------------------------------------------------ properties


@pytest.mark.parametrize("name", ["xgb_multiclass", "lgb_categorical", "sk_rf_multiclass"])
def test_symmetric_and_rows_sum_to_shap_values(name, cases):
    case = cases[name]
    ex = treelens.TreeExplainer(case.model)
    inter = as4d(ex.shap_interaction_values(case.X))
    assert inter.shape == (len(case.X), case.n_features, case.n_features, case.n_outputs)
    assert inter.dtype == np.float64
    assert_bitwise(inter, inter.transpose(0, 2, 1, 3), "symmetry")
    phi = as3d(ex.shap_values(case.X))
    assert_close(inter.sum(axis=2), phi, 1e-12 * scale_of(phi), "row sums vs shap_values")


def test_bitwise_identical_across_thread_counts(cases):
    case = cases["xgb_multiclass"]
    forest = treelens.load(case.model)
    X = np.repeat(case.X, 3, axis=0)
    reference = forest.shap_interaction_values(X, 1)
    for threads in (2, 3, 8):
        assert_bitwise(forest.shap_interaction_values(X, threads), reference, f"{threads} threads")


@pytest.mark.parametrize("features", [[3], [4, 1], [0, 5, 2, 1], list(range(6))[::-1]])
def test_feature_subsets_are_slices_of_the_full_result(features, cases):
    case = cases["xgb_multiclass"]
    forest = treelens.load(case.model)
    full = forest.shap_interaction_values(case.X, 2)
    part = forest.shap_interaction_values(case.X, 2, features=features)
    assert part.shape == (len(case.X), len(features), len(features), case.n_outputs)
    assert_bitwise(part, full[:, features][:, :, features], f"features={features}")


def test_features_by_name_and_frame_input(pandas_models):
    model = pandas_models.model("xgboost", True)
    df = pandas_models.frame(True)
    ex = treelens.TreeExplainer(model)
    full = ex.shap_interaction_values(df)
    names = list(df.columns)
    picked = ["score", "color"]
    index = [names.index(p) for p in picked]
    assert_bitwise(ex.shap_interaction_values(df, features=picked),
                   full[:, index][:, :, index], "features by name")
    assert_bitwise(ex.shap_interaction_values(df, features=np.array(index)),
                   full[:, index][:, :, index], "features as an index array")


def test_strided_input_and_empty_rows(cases):
    case = cases["xgb_reg"]
    forest = treelens.load(case.model)
    X = np.asfortranarray(case.X)
    assert_bitwise(forest.shap_interaction_values(X[::2], 1),
                   forest.shap_interaction_values(np.ascontiguousarray(case.X[::2]), 1),
                   "strided input")
    m = case.n_features
    assert forest.shap_interaction_values(case.X[:0]).shape == (0, m, m)


# ------------------------------------------------------------------ errors


def test_bad_features(cases):
    forest = treelens.load(cases["xgb_reg"].model)
    X = cases["xgb_reg"].X[:4]
    with pytest.raises(IndexError, match="out of range"):
        forest.shap_interaction_values(X, features=[0, 6])
    with pytest.raises(IndexError, match="out of range"):
        forest.shap_interaction_values(X, features=[-1])
    with pytest.raises(ValueError, match="twice"):
        forest.shap_interaction_values(X, features=[1, 1])
    with pytest.raises(ValueError, match="at least one"):
        forest.shap_interaction_values(X, features=[])
    with pytest.raises(ValueError, match="unknown feature 'nope'"):
        forest.shap_interaction_values(X, features=["nope"])
    with pytest.raises(TypeError, match="indices or names"):
        forest.shap_interaction_values(X, features=[1.5])


def test_bad_input(cases):
    forest = treelens.load(cases["xgb_reg"].model)
    with pytest.raises(ValueError, match="columns"):
        forest.shap_interaction_values(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_threads"):
        forest.shap_interaction_values(cases["xgb_reg"].X, n_threads=0)


def test_core_checks_the_output_array(cases):
    from treelens import _core

    forest = treelens.load(cases["xgb_reg"].model)
    X = cases["xgb_reg"].X[:5]
    features = np.arange(forest.n_features)
    for out in (np.empty((5, 6, 6, 2)), np.empty((5, 6, 6, 1), np.float32),
                np.empty((5, 6, 6, 1), order="F")[::1, :, ::2]):
        with pytest.raises(ValueError, match="out must be"):
            _core.path_interaction_values(forest._core, X, out, features, 1)
    with pytest.raises(IndexError, match="out of range"):
        _core.path_interaction_values(forest._core, X, np.empty((5, 1, 1, 1)), np.array([9]), 1)


def test_result_too_large_is_refused_before_allocating(cases, monkeypatch):
    forest = treelens.load(cases["xgb_reg"].model)
    monkeypatch.setattr(_resources, "available_memory", lambda: 10_000)
    with pytest.raises(MemoryError, match=r"\(60 x 6 x 6 x 1\) need 16\.9 KiB.*features="):
        forest.shap_interaction_values(cases["xgb_reg"].X, 1)
    assert forest.shap_interaction_values(cases["xgb_reg"].X[:1], 1, features=[0]).shape == (
        1, 1, 1)
