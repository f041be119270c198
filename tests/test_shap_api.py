"""shap.TreeExplainer's interface on real models: explainer(X), plots, tree_limit, Saabas
values, predict_proba, data-weighted covers, additivity, single rows; each against shap."""
from __future__ import annotations

import io
import sys
import warnings

import numpy as np
import pytest

import treelens
from helpers import as3d, assert_close, scale_of

shap = pytest.importorskip("shap")

F32_TOL = 2e-5   # XGBoost: shap reads float32 node values, treelens float64


def _shap_explainer(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shap.TreeExplainer(model, **kwargs)


def _shap_values(explainer, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return explainer.shap_values(X, **kwargs)


@pytest.mark.parametrize("name", ["xgb_reg", "lgb_multiclass", "sk_rf_binary"])
def test_call_returns_a_shap_explanation_equal_to_shaps(name, cases):
    import pandas as pd

    case = cases[name]
    X = pd.DataFrame(case.X[:30], columns=[f"c{i}" for i in range(case.n_features)])
    got = treelens.TreeExplainer(case.model)(X.to_numpy())
    want = _shap_explainer(case.model)(X.to_numpy())
    assert isinstance(got, shap.Explanation)
    tol = F32_TOL * scale_of(want.values)
    assert_close(got.values, want.values, tol, f"{name} values")
    assert_close(got.base_values, want.base_values, tol, f"{name} base values")
    assert np.array_equal(got.data, want.data)
    named = treelens.TreeExplainer(case.model)(X)
    assert named.feature_names == list(X.columns)
    if case.n_outputs > 1:
        assert named.output_names == [str(c) for c in case.model.classes_]


def test_call_interactions_equal_shaps(cases):
    case = cases["xgb_reg"]
    got = treelens.TreeExplainer(case.model)(case.X[:10], interactions=True)
    want = _shap_explainer(case.model)(case.X[:10], interactions=True)
    assert_close(got.values, want.values, F32_TOL * scale_of(want.values), "interactions")
    assert got.base_values.shape == (10,)


def _not_blank(fig) -> bool:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    image = plt.imread(io.BytesIO(buffer.getvalue()))
    return image.shape[0] > 50 and float(image[..., :3].std()) > 0.01


def test_shap_plots_render_a_treelens_explanation(cases):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    case = cases["lgb_reg"]
    X = pd.DataFrame(case.X[:60], columns=[f"feature {i}" for i in range(case.n_features)])
    e = treelens.TreeExplainer(case.model)(X)
    drawings = {
        "beeswarm": lambda: shap.plots.beeswarm(e, show=False),
        "bar": lambda: shap.plots.bar(e, show=False),
        "waterfall": lambda: shap.plots.waterfall(e[0], show=False),
        "scatter": lambda: shap.plots.scatter(e[:, 0], show=False),
        "force": lambda: shap.plots.force(e[0], matplotlib=True, show=False),
    }
    for name, draw in drawings.items():
        plt.close("all")
        draw()
        assert _not_blank(plt.gcf()), f"{name} plot is blank"


def test_light_explanation_without_shap(cases, monkeypatch):
    case = cases["xgb_multiclass"]
    monkeypatch.setitem(sys.modules, "shap", None)  # import shap now raises ImportError
    e = treelens.TreeExplainer(case.model)(case.X[:8])
    assert type(e) is treelens.Explanation
    phi = treelens.TreeExplainer(case.model).shap_values(case.X[:8])
    assert np.array_equal(e.values, phi)
    assert e.base_values.shape == (8, 3) and e.data.shape == (8, case.n_features)
    assert e.output_names == ["0", "1", "2"] and e.shape == (8, case.n_features, 3)
    first = e[0, :, 1]
    assert np.array_equal(first.values, phi[0, :, 1])
    assert first.base_values == e.base_values[0, 1] and first.output_names == "1"


def test_model_and_assert_additivity(cases):
    case = cases["lgb_binary"]
    ex = treelens.TreeExplainer(case.model)
    assert isinstance(ex.model, treelens.Forest)
    phi = ex.shap_values(case.X[:20])
    margin = case.native_margin(case.X[:20])
    ex.assert_additivity(phi, margin)
    ex.assert_additivity([phi], margin[:, None])
    wrong = phi.copy()
    wrong[3, 0] += 0.5
    with pytest.raises(treelens.AdditivityError, match="additivity"):
        ex.assert_additivity(wrong, margin)


@pytest.mark.parametrize("name,limit", [("xgb_multiclass", 9), ("xgb_reg", 7), ("lgb_reg", 5),
                                        ("lgb_multiclass", 3), ("sk_rf_reg", 4),
                                        ("sk_gbr", 6)])
def test_tree_limit_matches_shap(name, limit, cases):
    case = cases[name]
    ex = treelens.TreeExplainer(case.model)
    got = ex.shap_values(case.X[:25], tree_limit=limit)
    want = _shap_values(_shap_explainer(case.model), case.X[:25], tree_limit=limit,
                        check_additivity=False)
    assert_close(got, want, F32_TOL * scale_of(want), f"{name} tree_limit={limit}")
    assert np.array_equal(ex.shap_values(case.X[:5], tree_limit=-1), ex.shap_values(case.X[:5]))
    with pytest.raises(ValueError, match="tree_limit"):
        ex.shap_values(case.X[:5], tree_limit=-3)


@pytest.mark.parametrize("name", ["xgb_reg", "xgb_multiclass", "sk_rf_multiclass", "sk_gbr"])
def test_approximate_matches_shap_saabas(name, cases):
    case = cases[name]
    got = treelens.TreeExplainer(case.model).shap_values(case.X[:25], approximate=True)
    want = _shap_values(_shap_explainer(case.model), case.X[:25], approximate=True)
    assert_close(got, want, F32_TOL * scale_of(want), f"{name} Saabas")
    exact = treelens.TreeExplainer(case.model).shap_values(case.X[:25])
    assert np.abs(exact - got).max() > 1e-3 * scale_of(exact), "Saabas equals exact values"


def test_approximate_on_lightgbm_is_additive(cases):
    case = cases["lgb_multiclass"]
    ex = treelens.TreeExplainer(case.model)
    phi = as3d(ex.shap_values(case.X[:20], approximate=True))
    margin = case.native_margin(case.X[:20])
    assert_close(phi.sum(1) + ex.expected_value, margin, 1e-9 * scale_of(margin), "additivity")


@pytest.mark.parametrize("name", ["xgb_binary", "sk_rf_multiclass"])
def test_predict_proba_matches_shap(name, cases):
    """Binary XGBoost: one margin becomes two class probabilities, as in shap. A random
    forest's outputs already are probabilities; its values are checked for additivity."""
    case = cases[name]
    bg = case.X[:40]
    ex = treelens.TreeExplainer(case.model, data=bg, model_output="predict_proba")
    got = ex.shap_values(case.X[50:60])
    assert got.shape == (10, case.n_features, max(2, case.n_outputs))
    if case.n_outputs == 1:
        se = _shap_explainer(case.model, data=bg, model_output="predict_proba")
        assert_close(got, _shap_values(se, case.X[50:60]), 1e-6, f"{name} predict_proba")
        assert_close(ex.expected_value, se.expected_value, 1e-6, f"{name} expected value")
    proba = case.model.predict_proba(case.X[50:60])
    assert_close(got.sum(1) + ex.expected_value, proba, 1e-6, "predict_proba additivity")


def test_interaction_values_accept_y(cases):
    case = cases["lgb_reg"]
    ex = treelens.TreeExplainer(case.model)
    y = np.zeros(10)
    assert np.array_equal(ex.shap_interaction_values(case.X[:10], y=y),
                          ex.shap_interaction_values(case.X[:10]))
    with pytest.raises(ValueError, match="one label per row"):
        ex.shap_interaction_values(case.X[:10], y=np.zeros(3))


@pytest.mark.parametrize("name", ["xgb_reg", "lgb_multiclass", "sk_rf_reg", "sk_gbc_binary"])
def test_data_reweights_covers_like_shap(name, cases):
    """data= with tree_path_dependent: covers re-counted from 80 rows (below shap's
    100-row sample, so both use the same rows), then path-dependent TreeSHAP."""
    case = cases[name]
    bg = case.X[-80:]
    ex = treelens.TreeExplainer(case.model, data=bg, feature_perturbation="tree_path_dependent")
    se = _shap_explainer(case.model, data=bg, feature_perturbation="tree_path_dependent")
    got = ex.shap_values(case.X[:20])
    want = _shap_values(se, case.X[:20], check_additivity=False)
    assert_close(got, want, F32_TOL * scale_of(want), f"{name} data-weighted values")
    plain = treelens.TreeExplainer(case.model).shap_values(case.X[:20])
    assert np.abs(plain - got).max() > 1e-3 * scale_of(plain), "covers were not re-weighted"
    counts = ex.model.spec.trees[0].cover[0]
    assert counts == len(bg)


def test_interventional_without_data_warns_and_falls_back(cases):
    case = cases["xgb_reg"]
    with pytest.warns(UserWarning, match="needs background data"):
        ex = treelens.TreeExplainer(case.model, feature_perturbation="interventional")
    assert ex.feature_perturbation == "tree_path_dependent"
    assert np.array_equal(ex.shap_values(case.X[:5]),
                          treelens.TreeExplainer(case.model).shap_values(case.X[:5]))


@pytest.mark.parametrize("name", ["xgb_multiclass", "sk_rf_reg"])
def test_single_row_gives_one_dimensional_values(name, cases):
    import pandas as pd

    case = cases[name]
    ex = treelens.TreeExplainer(case.model)
    full = ex.shap_values(case.X[:3])
    row = ex.shap_values(case.X[1])
    assert row.shape == full.shape[1:]
    if case.library == "sklearn":  # shap's XGBoost path refuses 1-D input
        assert np.shape(_shap_values(_shap_explainer(case.model), case.X[1])) == row.shape
    assert np.array_equal(row, full[1])
    series = pd.Series(case.X[1], index=[f"c{i}" for i in range(case.n_features)])
    assert np.array_equal(ex.shap_values(series), full[1])
    assert np.array_equal(ex.shap_interaction_values(case.X[1]),
                          ex.shap_interaction_values(case.X[:3])[1])
    e = ex(series)
    assert e.values.shape == full.shape[1:] and e.data.shape == (case.n_features,)
    assert e.feature_names == list(series.index)
    assert np.array_equal(np.asarray(ex.predict(case.X[1])), ex.predict(case.X[:3])[1])


def test_call_with_labels_and_background_tree_limit_match_shap(cases):
    """explainer(X, y) explains the log loss per row (base value per row: shap's own
    Explanation holds the expected-value function there); tree_limit with background data."""
    case = cases["xgb_binary"]
    bg, X = case.X[:40], case.X[50:60]
    y = case.model.predict(X)
    ex = treelens.TreeExplainer(case.model, data=bg, model_output="log_loss")
    se = _shap_explainer(case.model, data=bg, model_output="log_loss")
    got = ex(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = se(X, y)
    assert_close(got.values, want.values, 1e-6, "log_loss values")
    p = case.model.predict_proba(X)[:, 1]
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert_close(got.values.sum(1) + got.base_values, loss, 1e-5, "log_loss additivity")
    ex = treelens.TreeExplainer(case.model, data=bg)
    se = _shap_explainer(case.model, data=bg)
    want = _shap_values(se, X, tree_limit=7, check_additivity=False)
    assert_close(ex.shap_values(X, tree_limit=7), want, 1e-6, "background tree_limit")


def test_saabas_and_data_covers_are_identical_for_any_thread_count(cases):
    case = cases["lgb_multiclass"]
    one = treelens.TreeExplainer(case.model, data=case.X[:300], n_threads=1,
                                 feature_perturbation="tree_path_dependent")
    two = treelens.TreeExplainer(case.model, data=case.X[:300], n_threads=2,
                                 feature_perturbation="tree_path_dependent")
    for t in range(len(one.model.spec.trees)):
        assert np.array_equal(one.model.spec.trees[t].cover, two.model.spec.trees[t].cover)
    assert np.array_equal(one.shap_values(case.X, approximate=True),
                          two.shap_values(case.X, approximate=True))
