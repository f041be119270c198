"""Large-tree shapes of the benchmark workloads, small enough to train in seconds.

W8 is a LightGBM model of 255-leaf trees over 100 features and W9 an XGBoost model of depth-8
trees; here the same tree shapes are trained with few trees, plus an XGBoost model of depth
up to 14, on data with NaN. Path SHAP and interaction values are checked against the
libraries' own ``pred_contrib`` / ``pred_contribs`` / ``pred_interactions``, by additivity,
and bitwise across thread counts; the permutation engine's margins bitwise against predict on
the explicitly permuted rows, on these and on depth-6 trees of the W5 shape. Single deep trees over eight features (features repeated along
every long path) go against the brute-force oracle, interactions included.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest

import oracle
import treelens
from helpers import (
    ADDITIVITY_TOL,
    NATIVE_TOL,
    ORACLE_TOL,
    as3d,
    assert_bitwise,
    assert_close,
    float64_margin,
    load_spec,
    scale_of,
)
from treelens.permutation import draw_permutations

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")

N_TRAIN = 2000
N_EXPLAIN = 300
N_INTERACTIONS = 40
N_NATIVE_INTERACTIONS = 6


def _data(seed: int, n_features: int, n_rows: int = N_TRAIN + N_EXPLAIN):
    """Rows [n_rows, n_features] float64 with 5% NaN, and a target with interactions."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features))
    w = rng.standard_normal(n_features)
    y = (np.nan_to_num(X) @ w + 2.0 * X[:, 0] * X[:, 1] + np.sin(3.0 * X[:, 2])
         + 0.3 * rng.standard_normal(n_rows))
    X[rng.random(X.shape) < 0.05] = np.nan
    return X, y


@lru_cache(maxsize=None)
def _model(name: str):
    """(library, model, explained rows [N_EXPLAIN, n_features]), trained on first use."""
    if name == "lgb_wide":  # the W8 tree shape: 255 leaves over 100 features
        X, y = _data(0, 100)
        params = dict(objective="regression", num_leaves=255, min_data_in_leaf=3,
                      learning_rate=0.1, num_threads=1, seed=0, deterministic=True,
                      verbose=-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = lightgbm.train(params, lightgbm.Dataset(X[:N_TRAIN], label=y[:N_TRAIN]),
                                     num_boost_round=10)
        return "lightgbm", booster, X[N_TRAIN:]
    X, y = _data(1, 50)
    if name == "xgb_depth6":  # the W1/W5 tree shape: every tree on the permutation heap route
        params = dict(max_depth=6, eta=0.1, nthread=1, seed=0)
        rounds = 12
    elif name == "xgb_depth8":  # the W9 tree shape: depth 8
        params = dict(max_depth=8, eta=0.1, nthread=1, seed=0)
        rounds = 12
    else:  # "xgb_depth14": few, very deep trees
        params = dict(max_depth=14, eta=0.5, min_child_weight=0, reg_lambda=0.01, nthread=1,
                      seed=0)
        rounds = 3
    booster = xgboost.train(params, xgboost.DMatrix(X[:N_TRAIN], label=y[:N_TRAIN]),
                            num_boost_round=rounds)
    return "xgboost", booster, X[N_TRAIN:]


MODELS = ["lgb_wide", "xgb_depth8", "xgb_depth14"]
MIN_DEPTH = {"lgb_wide": 10, "xgb_depth8": 8, "xgb_depth14": 12}


def _native_contribs(library: str, booster, X: np.ndarray) -> np.ndarray:
    """The library's SHAP values with the bias last: [n, m + 1] float64."""
    if library == "lightgbm":
        return np.asarray(booster.predict(X, pred_contrib=True), dtype=np.float64)
    return booster.predict(xgboost.DMatrix(X), pred_contribs=True).astype(np.float64)


@pytest.mark.parametrize("name", MODELS)
def test_trees_have_the_workload_shape(name):
    library, booster, X = _model(name)
    forest = treelens.load(booster)
    assert forest.max_depth >= MIN_DEPTH[name]
    assert np.isnan(X).any()
    if name == "lgb_wide":
        assert forest.n_features == 100
        dump = booster.dump_model()["tree_info"]
        assert max(tree["num_leaves"] for tree in dump) == 255


@pytest.mark.parametrize("name", MODELS)
def test_shap_values_match_the_library(name):
    library, booster, X = _model(name)
    ex = treelens.TreeExplainer(booster, n_threads=2)
    phi = as3d(ex.shap_values(X))[:, :, 0]
    native = _native_contribs(library, booster, X)
    scale = scale_of(native)
    assert_close(phi, native[:, :-1], NATIVE_TOL * scale, f"{name}: shap_values vs native")
    assert_close(np.full(len(X), float(np.ravel(ex.expected_value)[0])), native[:, -1],
                 NATIVE_TOL * scale, f"{name}: expected_value vs native bias")


@pytest.mark.parametrize("name", MODELS)
def test_shap_values_add_up_to_the_margin(name):
    """Additivity against the margin summed in float64 (XGBoost's own is float32), to 1e-9
    relative."""
    library, booster, X = _model(name)
    forest = treelens.load(booster)
    phi = forest.shap_values(X, 2)
    margin = float64_margin(load_spec(booster, library), X)[:, 0]
    total = phi.sum(axis=1) + forest.expected_value
    assert_close(total, margin, ADDITIVITY_TOL * scale_of(margin, phi), f"{name}: additivity")


@pytest.mark.parametrize("name", MODELS)
def test_interaction_values_match_the_library_and_their_rows(name):
    library, booster, X = _model(name)
    X = X[:N_INTERACTIONS]
    forest = treelens.load(booster)
    inter = forest.shap_interaction_values(X, 2)
    phi = forest.shap_values(X, 2)
    scale = scale_of(inter, phi)
    assert_close(inter.sum(axis=2), phi, ADDITIVITY_TOL * scale,
                 f"{name}: interaction rows sum to shap_values")
    assert_close(inter, np.swapaxes(inter, 1, 2), ADDITIVITY_TOL * scale,
                 f"{name}: interactions symmetric")
    if library == "xgboost":
        # XGBoost's own interactions take about a second per row on the deepest trees.
        native = booster.predict(xgboost.DMatrix(X[:N_NATIVE_INTERACTIONS]),
                                 pred_interactions=True)[:, :-1, :-1]
        assert_close(inter[:N_NATIVE_INTERACTIONS], native, NATIVE_TOL * scale_of(native),
                     f"{name}: interactions vs pred_interactions")


@pytest.mark.parametrize("name", MODELS)
def test_results_do_not_depend_on_the_thread_count(name):
    _, booster, X = _model(name)
    forest = treelens.load(booster)
    assert_bitwise(forest.shap_values(X, 1), forest.shap_values(X, 2), f"{name}: shap_values")
    Xi = X[:N_INTERACTIONS]
    assert_bitwise(forest.shap_interaction_values(Xi, 1), forest.shap_interaction_values(Xi, 2),
                   f"{name}: shap_interaction_values")


@pytest.mark.parametrize("name, n_repeats", [(name, 3) for name in MODELS]
                         + [("xgb_depth6", 1), ("xgb_depth6", 5)])
def test_permuted_margins_equal_predict_on_permuted_rows(name, n_repeats):
    """The permutation engine on deep and wide trees (paths that test a feature many
    times, walks below other branches) and on depth-6 trees (the heap route, with 1 and 5
    repeats: lanes walked alone and four at a time): every feature permuted alone, and three
    in a group."""
    _, booster, X = _model(name)
    X = X[:120]
    n, m = X.shape
    forest = treelens.load(booster)
    _, perms = draw_permutations(2, n, n_repeats, 1.0)
    singles = np.arange(m, dtype=np.int32)
    offsets = np.concatenate([np.arange(m + 1), [m + 3]]).astype(np.int64)
    cols = np.concatenate([singles, [0, 1, 2]]).astype(np.int32)
    baseline = np.empty((n, 1))
    out = treelens._core.permuted_margins(forest._core, X, offsets, cols, perms, 2,
                                          baseline=baseline)
    assert np.array_equal(baseline, forest._core.predict(X, 1))
    groups = [[j] for j in range(m)] + [[0, 1, 2]]
    for g, group in enumerate(groups):
        for r in range(len(perms)):
            Xp = X.copy()
            Xp[:, group] = X[perms[r]][:, group]
            assert np.array_equal(out[g, r], forest._core.predict(Xp, 1)), (name, g, r)
    again = treelens._core.permuted_margins(forest._core, X, offsets, cols, perms, 1)
    assert np.array_equal(out, again)


# ------------------------------------------------------------ oracle: deep, few features


@lru_cache(maxsize=None)
def _deep_single_tree(library: str):
    """One tree of depth >= 10 over 8 features, and 12 rows to explain (with NaN)."""
    X, y = _data(2, 8, n_rows=2000 + 12)
    y = y + 3.0 * np.sin(4.0 * np.nan_to_num(X[:, 3])) * np.nan_to_num(X[:, 4])
    if library == "lightgbm":
        params = dict(objective="regression", num_leaves=255, max_depth=-1, min_data_in_leaf=2,
                      min_sum_hessian_in_leaf=0.0, learning_rate=1.0, num_threads=1, seed=0,
                      verbose=-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = lightgbm.train(params, lightgbm.Dataset(X[:2000], label=y[:2000]),
                                   num_boost_round=1)
    else:
        params = dict(max_depth=12, eta=1.0, min_child_weight=0, reg_lambda=0.0, nthread=1,
                      seed=0)
        model = xgboost.train(params, xgboost.DMatrix(X[:2000], label=y[:2000]),
                              num_boost_round=1)
    return model, X[2000:]


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_deep_tree_over_few_features_matches_the_oracle(library):
    model, X = _deep_single_tree(library)
    spec = load_spec(model, library)
    assert len(spec.trees) == 1 and oracle.tree_depth(spec.trees[0]) >= 10
    forest = treelens.Forest.from_spec(spec)
    v = oracle.subset_values(spec, X)
    phi_o = oracle.shapley_from_values(v)
    inter_o = oracle.interactions_from_values(v)
    tol = ORACLE_TOL * scale_of(phi_o, inter_o, v)
    assert_close(forest.shap_values(X, 1), phi_o[..., 0], tol, f"{library}: shap_values vs oracle")
    assert_close(forest.expected_value, v[0, 0, 0], tol, f"{library}: expected_value vs oracle")
    assert_close(forest.shap_interaction_values(X, 1), inter_o[..., 0], tol,
                 f"{library}: interactions vs oracle")
