"""treelens against the exponential brute-force Shapley oracle (tests/oracle.py).

Random forests are built directly as ForestSpec for every routing mode; real small
models go through the loaders. Tolerance: 1e-9 relative to the largest magnitude.
"""
from __future__ import annotations

import numpy as np
import pytest

import oracle
import treelens
import zoo
from helpers import (
    ORACLE_TOL,
    as1d,
    as2d,
    as3d,
    assert_close,
    float64_margin,
    load_spec,
    scale_of,
)
from spec_factory import (
    ALL_ROUTINGS,
    CATEGORICAL_ROUTINGS,
    TreeShape,
    probe_rows,
    random_spec,
)
from treelens._forest import build
from treelens._spec import ROUTING_SKLEARN, ForestSpec, TreeArrays

CONFIGS = {
    "plain": dict(n_features=5, n_trees=3, shape=TreeShape(max_depth=4)),
    "eight_features_depth6": dict(n_features=8, n_trees=2, shape=TreeShape(max_depth=6)),
    "repeated_features": dict(n_features=2, n_trees=3, shape=TreeShape(max_depth=6, p_repeat=0.9)),
    "one_feature": dict(n_features=1, n_trees=2, shape=TreeShape(max_depth=5)),
    "categorical": dict(n_features=4, n_trees=3, cat_features={0: 5, 2: 9},
                        shape=TreeShape(max_depth=5)),
    "multi_output_per_tree": dict(n_features=4, n_trees=6, n_outputs=3,
                                  shape=TreeShape(max_depth=4)),
    "multi_output_vector_leaves": dict(n_features=4, n_trees=3, n_outputs=3, vector_leaves=True,
                                       cat_features={1: 6}, shape=TreeShape(max_depth=4)),
    "inconsistent_cover": dict(n_features=5, n_trees=3,
                               shape=TreeShape(max_depth=5, consistent_cover=False)),
    "stumps": dict(n_features=3, n_trees=5, shape=TreeShape(max_depth=3, p_stump=0.5)),
    "infinite_thresholds": dict(n_features=3, n_trees=3,
                                shape=TreeShape(max_depth=4, p_inf_threshold=0.3)),
}

DEEP_CONFIGS = {
    "chain30_f3": dict(n_features=3, n_trees=2, shape=TreeShape(max_depth=30, chain=True)),
    "chain36_f6": dict(n_features=6, n_trees=2, cat_features={5: 7},
                       shape=TreeShape(max_depth=36, chain=True, p_repeat=0.7)),
    "chain40_f10": dict(n_features=10, n_trees=1, shape=TreeShape(max_depth=40, chain=True)),
}


def _check(spec: ForestSpec, X: np.ndarray) -> None:
    forest = build(spec)
    phi_o, ev_o = oracle.shap_values(spec, X)
    margin_o = oracle.predict(spec, X)
    scale = scale_of(phi_o, ev_o, margin_o)
    tol = ORACLE_TOL * scale

    # The oracle is self-consistent before it judges anything.
    assert_close(phi_o.sum(axis=1) + ev_o, margin_o, tol, "oracle efficiency")

    assert_close(forest.shap_values(X, 1), phi_o, tol, "shap_values vs oracle")
    assert_close(forest.expected_value(), ev_o, tol, "expected_value vs oracle")
    assert_close(forest.predict(X, 1), margin_o, tol, "predict vs oracle")

    with np.errstate(over="ignore"):
        X32 = X.astype(np.float32)
    phi32_o, _ = oracle.shap_values(spec, X32.astype(np.float64))
    assert_close(forest.shap_values(X32, 1), phi32_o, tol, "float32 input vs oracle")


def _make(routing: str, config: dict, seed: int):
    spec = random_spec(seed, routing=routing, **config)
    X = probe_rows(spec, seed + 100, cat_features=config.get("cat_features"))
    return spec, X


def _cases(configs):
    out = []
    for name, config in configs.items():
        for routing in ALL_ROUTINGS:
            if config.get("cat_features") and routing not in CATEGORICAL_ROUTINGS:
                continue
            for seed in (0, 1):
                out.append(pytest.param(routing, config, seed, id=f"{name}-{routing}-{seed}"))
    return out


@pytest.mark.parametrize("routing, config, seed", _cases(CONFIGS))
def test_random_forest_matches_oracle(routing, config, seed):
    spec, X = _make(routing, config, seed)
    assert max(oracle.tree_depth(t) for t in spec.trees) <= 6
    _check(spec, X)


@pytest.mark.parametrize("routing, config, seed", _cases(DEEP_CONFIGS))
def test_deep_chain_matches_oracle(routing, config, seed):
    spec, X = _make(routing, config, seed)
    assert max(oracle.tree_depth(t) for t in spec.trees) >= 30
    _check(spec, X)


def test_random_forest_cases_exercise_the_edges():
    """The generator really produces repeats on a path, categorical and NaN routing."""
    spec, X = _make("lightgbm", CONFIGS["repeated_features"], 0)
    repeats = 0
    for tree in spec.trees:
        stack = [(0, ())]
        while stack:
            node, path = stack.pop()
            if tree.left[node] < 0:
                repeats += len(path) != len(set(path))
                continue
            f = int(tree.feature[node])
            stack += [(int(tree.left[node]), path + (f,)), (int(tree.right[node]), path + (f,))]
    assert repeats > 0
    spec, X = _make("xgboost", CONFIGS["categorical"], 0)
    assert any(t.categorical is not None and t.categorical.any() for t in spec.trees)
    assert np.isnan(X).any()


# ------------------------------------------------------------ the oracle itself


def _spec_from_sklearn_tree(model) -> ForestSpec:
    """A ForestSpec read straight from a fitted DecisionTreeRegressor's ``tree_``."""
    t = model.tree_
    leaf = t.children_left < 0
    return ForestSpec(
        trees=[TreeArrays(
            left=t.children_left.astype(np.int32),
            right=t.children_right.astype(np.int32),
            feature=np.where(leaf, 0, t.feature).astype(np.int32),
            threshold=t.threshold.astype(np.float64),
            default_left=t.missing_go_to_left.astype(np.uint8),
            cover=t.weighted_n_node_samples.astype(np.float64),
            value=t.value[:, 0, :1].astype(np.float64),
        )],
        n_features=model.n_features_in_,
        n_outputs=1,
        base_score=[0.0],
        routing=ROUTING_SKLEARN,
    )


def test_oracle_agrees_with_shap_package():
    """The oracle reproduces shap.TreeExplainer on a tree it did not help build."""
    import shap
    from sklearn.tree import DecisionTreeRegressor

    X, y = zoo.make_data(90, n_features=5, nan_frac=0.2)
    model = DecisionTreeRegressor(max_depth=6, random_state=0).fit(X[:300], y[:300])
    spec = _spec_from_sklearn_tree(model)
    Xq = X[300:330]
    phi_o, ev_o = oracle.shap_values(spec, Xq)
    explainer = shap.TreeExplainer(model)
    scale = scale_of(phi_o)
    assert_close(phi_o[:, :, 0], explainer.shap_values(Xq), 1e-10 * scale, "oracle vs shap")
    assert_close(ev_o, as1d(explainer.expected_value), 1e-10 * scale, "oracle ev vs shap")
    assert_close(oracle.predict(spec, Xq)[:, 0], model.predict(Xq), 1e-12 * scale,
                 "oracle routing vs sklearn")


# ------------------------------------------------------------ real models


@pytest.mark.parametrize("name", zoo.ALL_CASES)
def test_real_model_matches_oracle(name, cases):
    case = cases[name]
    X = case.X[:16]
    spec = load_spec(case.model, case.library)
    phi_o, ev_o = oracle.shap_values(spec, X)
    margin_o = oracle.predict(spec, X)
    tol = ORACLE_TOL * scale_of(phi_o, ev_o, margin_o)

    assert_close(margin_o, float64_margin(spec, X), tol, "core routing vs oracle")
    assert_close(margin_o, as2d(case.native_margin(X), len(X)),
                 1e-5 * scale_of(margin_o), "oracle routing vs the library")

    ex = treelens.TreeExplainer(case.model)
    assert_close(as3d(ex.shap_values(X)), phi_o, tol, "TreeExplainer.shap_values vs oracle")
    assert_close(as1d(ex.expected_value), ev_o, tol, "TreeExplainer.expected_value vs oracle")


def test_fields_the_contract_ignores_are_ignored():
    """Leaf feature/threshold, internal-node values and categorical thresholds do not matter."""
    config = CONFIGS["categorical"]
    spec, X = _make("lightgbm", config, 3)
    reference = build(spec)
    for tree in spec.trees:
        leaf = tree.left < 0
        tree.feature = np.where(leaf, -1, tree.feature).astype(np.int32)
        tree.threshold = np.where(leaf, np.nan, tree.threshold)
        tree.value = np.where(leaf[:, None], tree.value, np.nan)
        if tree.categorical is not None:
            tree.threshold = np.where(tree.categorical == 1, np.nan, tree.threshold)
    scrambled = build(spec)
    assert_close(scrambled.shap_values(X, 1), reference.shap_values(X, 1), 0.0, "shap_values")
    assert_close(scrambled.predict(X, 1), reference.predict(X, 1), 0.0, "predict")
    assert_close(scrambled.expected_value(), reference.expected_value(), 0.0, "expected_value")
