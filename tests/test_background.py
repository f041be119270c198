"""Background (interventional) SHAP: brute-force oracle, properties, shap cross-check, errors.

The oracle evaluates the model (core prediction, margins summed in float64) on every composed
row x_S z_notS and takes exact Shapley values / interaction indices of
v(S) = sum_z w_z f(x_S, z_notS) / sum_z w_z.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import oracle
import spec_factory as sf
import treelens
from helpers import ORACLE_TOL, as1d, as3d, assert_bitwise, assert_close, scale_of
from treelens import _core
from treelens._forest import build


def background_game(core, X: np.ndarray, Z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """v: [n_rows, 2**m, n_outputs] of the weighted interventional game."""
    n, m = X.shape
    mask = ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1).astype(bool)
    v = np.zeros((n, 2 ** m, core.n_outputs))
    for i in range(n):
        composed = np.where(mask[:, None, :], X[i][None, None, :], Z[None, :, :])
        f = core.predict(composed.reshape(-1, m), 1).reshape(2 ** m, len(Z), -1)
        v[i] = np.einsum("z,szk->sk", w / w.sum(), f)
    return v


CASES = [(routing, seed) for routing in sf.ALL_ROUTINGS for seed in range(3)]


def _case(routing: str, seed: int, n_features: int = 5, shape=None, n_trees: int = 3):
    cats = {1: 5} if routing in sf.CATEGORICAL_ROUTINGS else None
    multi = seed == 2
    spec = sf.random_spec(seed, routing=routing, n_features=n_features, n_trees=n_trees,
                          n_outputs=2 if multi else 1,
                          vector_leaves=multi and routing == sf.ROUTING_FLOAT64,
                          cat_features=cats, shape=shape)
    core = build(dataclasses.replace(spec, float32_margin=False))
    X = sf.probe_rows(spec, seed, 5, cat_features=cats)
    Z = sf.probe_rows(spec, seed + 10, 7, cat_features=cats)
    w = np.random.default_rng(seed).uniform(0.0, 2.0, len(Z))
    w[0] = 0.0
    return core, X, Z, w


@pytest.mark.parametrize("routing,seed", CASES)
def test_values_and_interactions_match_oracle(routing, seed):
    core, X, Z, w = _case(routing, seed)
    v = background_game(core, X, Z, w)
    phi, expected = _core.background_shap_values(core, X, Z, w, 1)
    scale = scale_of(v)
    assert_close(phi, oracle.shapley_from_values(v), ORACLE_TOL * scale, "background phi")
    assert_close(expected, v[0, 0], ORACLE_TOL * scale, "expected value")
    inter, _ = _core.background_interaction_values(core, X, Z, w, 2)
    assert_close(inter, oracle.interactions_from_values(v), ORACLE_TOL * scale, "background interactions")


@pytest.mark.parametrize("n_features", [11, 13])
def test_wide_paths_use_the_exact_pair_walk(n_features):
    """Paths with more unique features than the mask tables hold (10 for interactions,
    12 for values) take the per-pair walk; it must agree with the oracle too."""
    shape = sf.TreeShape(max_depth=n_features, chain=True, p_repeat=0.0)
    core, X, Z, w = _case(sf.ROUTING_FLOAT64, 0, n_features=n_features, shape=shape, n_trees=2)
    X, Z, w = X[:2], Z[:4], w[:4] + 0.5
    v = background_game(core, X, Z, w)
    scale = scale_of(v)
    phi, _ = _core.background_shap_values(core, X, Z, w, 1)
    assert_close(phi, oracle.shapley_from_values(v), ORACLE_TOL * scale, "wide-path phi")
    if n_features == 11:
        inter, _ = _core.background_interaction_values(core, X, Z, w, 1)
        assert_close(inter, oracle.interactions_from_values(v), ORACLE_TOL * scale, "wide-path interactions")


def test_properties_and_determinism(cases):
    case = cases["xgb_multiclass"]
    bg = case.X[:20]
    ex = treelens.TreeExplainer(case.model, data=bg, feature_perturbation="interventional",
                                data_weights=np.linspace(0.5, 2.0, 20))
    phi = as3d(ex.shap_values(case.X))
    margin = treelens.background._margins(ex.forest._core, case.X, 1)
    assert_close(phi.sum(1) + as1d(ex.expected_value), margin, 1e-9 * scale_of(margin),
                 "additivity")
    inter = ex._background_interaction_values(case.X[:10])
    assert_close(inter, inter.transpose(0, 2, 1, 3), 1e-12, "symmetry")
    assert_close(inter.sum(2), phi[:10], 1e-9 * scale_of(phi), "interaction rows sum to phi")
    one = treelens.TreeExplainer(case.model, data=bg, n_threads=1).shap_values(case.X)
    two = treelens.TreeExplainer(case.model, data=bg, n_threads=2).shap_values(case.X)
    assert_bitwise(one, two, "1 vs 2 threads")


@pytest.mark.parametrize("name,outputs", [
    ("xgb_reg", ("raw", "log_loss")),
    ("xgb_binary", ("raw", "probability", "log_loss")),
])
def test_matches_shap_interventional(cases, name, outputs):
    shap = pytest.importorskip("shap")
    case = cases[name]
    bg, X = case.X[:25], case.X[25:45]
    y = case.native_margin(X)[:, 0] > 0 if name == "xgb_binary" else case.native_margin(X)[:, 0]
    y = y.astype(np.float64)
    for output in outputs:
        kw = {"y": y} if output == "log_loss" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = shap.TreeExplainer(case.model, data=bg, model_output=output,
                                      feature_perturbation="interventional").shap_values(X, **kw)
        ex = treelens.TreeExplainer(case.model, data=bg, model_output=output,
                                    feature_perturbation="interventional")
        got = ex.shap_values(X, check_additivity=True, **kw)
        assert_close(got, want, 1e-5 * scale_of(want), f"{name} {output} vs shap")


def test_nonlinear_output_is_additive():
    import xgboost as xgb

    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 4))
    model = xgb.XGBRegressor(n_estimators=5, max_depth=3, objective="count:poisson").fit(
        X, rng.poisson(np.exp(X[:, 0])))
    ex = treelens.TreeExplainer(model, data=X[:15], model_output="probability")
    phi = as3d(ex.shap_values(X[20:30], check_additivity=True))
    margin = treelens.background._margins(ex.forest._core, X[20:30], 1)
    prob = ex.forest.output_function.response(margin)
    assert_close(phi.sum(1) + as1d(ex.expected_value), prob, 1e-12, "poisson additivity")


def test_bad_input(cases):
    case = cases["xgb_reg"]
    bg = case.X[:10]
    with pytest.raises(ValueError, match="columns"):
        treelens.TreeExplainer(case.model, data=bg[:, :3])
    with pytest.raises(ValueError, match="data_weights"):
        treelens.TreeExplainer(case.model, data=bg, data_weights=np.ones(9))
    with pytest.raises(ValueError, match="finite and >= 0"):
        treelens.TreeExplainer(case.model, data=bg, data_weights=-np.ones(10))
    with pytest.raises(ValueError, match="no rows"):
        treelens.TreeExplainer(case.model, data=bg[:0])
    with pytest.warns(UserWarning, match="needs background data"):
        ex = treelens.TreeExplainer(case.model, feature_perturbation="interventional")
    assert ex.feature_perturbation == "tree_path_dependent"
    ex = treelens.TreeExplainer(case.model, data=bg, model_output="log_loss")
    with pytest.raises(ValueError, match="needs the labels"):
        ex.shap_values(case.X)
    with pytest.raises(NotImplementedError, match="background data only"):
        treelens.TreeExplainer(case.model, model_output="probability")


def test_interaction_feature_subsets_are_slices(monkeypatch):
    """features= picks rows/columns of the full background interaction matrix, also when the
    rows are computed in several chunks."""
    import treelens.explainer as explainer_module
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(11)
    X = rng.normal(size=(200, 6))
    y = X[:, 0] * X[:, 1] + X[:, 2] + rng.normal(size=200) * 0.1
    model = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    ex = treelens.TreeExplainer(model, data=X[:40], feature_perturbation="interventional")
    full = ex.shap_interaction_values(X[:25])
    pick = [4, 0, 2]
    monkeypatch.setattr(explainer_module, "_CHUNK_BYTES", 6 * 6 * 8 * 7)  # 7 rows per chunk
    sub = ex.shap_interaction_values(X[:25], features=pick)
    assert sub.shape == (25, 3, 3)
    assert_bitwise(sub, full[:, pick][:, :, pick], "background interaction subset")
    with pytest.raises(IndexError):
        ex.shap_interaction_values(X[:5], features=[0, 99])
