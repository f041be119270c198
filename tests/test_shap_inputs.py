"""Inputs shap accepts (DMatrix, object arrays with None, LightGBM's stored names, name
mismatches as each library treats them), XGBoost's missing value, permutation importance the
scikit-learn way, and where treelens deliberately differs from shap (checked by oracles)."""
from __future__ import annotations

import numpy as np
import pytest

import treelens
from helpers import ORACLE_TOL, assert_close, scale_of

F32_TOL = 2e-5


def test_dmatrix_input_matches_xgboost(cases):
    import xgboost as xgb

    case = cases["xgb_nan"]
    X = case.X[:40]
    ex = treelens.TreeExplainer(case.model)
    dm = xgb.DMatrix(X)
    want = case.model.get_booster().predict(dm, pred_contribs=True)
    assert_close(ex.shap_values(dm), want[:, :-1], F32_TOL * scale_of(want), "DMatrix values")
    assert np.array_equal(ex.shap_values(dm), ex.shap_values(X))
    e = ex(dm)
    assert e.data.shape == X.shape
    named = xgb.DMatrix(X, feature_names=[f"g{i}" for i in range(X.shape[1])])
    import pandas as pd

    clean = pd.DataFrame(np.nan_to_num(X), columns=[f"h{i}" for i in range(X.shape[1])])
    model = xgb.XGBRegressor(n_estimators=3).fit(clean, clean["h0"])
    with pytest.raises(ValueError, match="feature names do not match"):
        treelens.TreeExplainer(model).shap_values(named)


def test_object_array_with_none_is_missing(cases):
    case = cases["lgb_nan"]
    X = case.X[:30]
    obj = X.astype(object)
    obj[np.isnan(X)] = None
    ex = treelens.TreeExplainer(case.model)
    assert np.isnan(X).any()
    assert np.array_equal(ex.shap_values(obj), ex.shap_values(X))
    bad = obj.copy()
    bad[0, 0] = "text"
    with pytest.raises(TypeError, match="object array"):
        ex.shap_values(bad)


def _frame(columns):
    import pandas as pd

    X, s = np.random.default_rng(5).normal(size=(300, len(columns))), None
    s = X[:, 0] + X[:, 1] * X[:, 2]
    return pd.DataFrame(X, columns=columns), s


def test_lightgbm_sanitized_names_are_matched():
    import lightgbm as lgb

    X, y = _frame(["Marital Status", "age", "hours per week"])
    model = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y)
    assert model.booster_.feature_name()[0] == "Marital_Status"
    ex = treelens.TreeExplainer(model)
    want = model.predict(X, pred_contrib=True)[:, :-1]
    assert_close(ex.shap_values(X), want, 1e-9 * scale_of(want), "sanitized names")
    reordered = X[X.columns[::-1]]
    assert_close(ex.shap_values(reordered), want, 1e-9 * scale_of(want), "reordered names")
    pa = pytest.importorskip("pyarrow")
    table = treelens.explain_table(model, pa.Table.from_pandas(reordered))
    got = np.column_stack([table.column(n).to_numpy() for n in model.booster_.feature_name()])
    assert_close(got, want, 1e-9 * scale_of(want), "sanitized names in an Arrow table")


def test_name_mismatch_follows_each_library():
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestRegressor

    X, y = _frame(["a", "b", "c"])
    renamed = X.set_axis(["p", "q", "r"], axis=1)
    lgbm = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y)
    want = lgbm.predict(renamed, pred_contrib=True)[:, :-1]  # LightGBM: by position
    assert_close(treelens.TreeExplainer(lgbm).shap_values(renamed), want,
                 1e-9 * scale_of(want), "LightGBM renamed columns")
    xgbm = xgb.XGBRegressor(n_estimators=5).fit(X, y)
    with pytest.raises(ValueError, match="feature_names mismatch"):
        xgbm.predict(renamed)
    with pytest.raises(ValueError, match="missing 3 feature"):
        treelens.TreeExplainer(xgbm).shap_values(renamed)
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="feature names should match"):
        forest.predict(renamed)
    with pytest.raises(ValueError, match="missing 3 feature"):
        treelens.TreeExplainer(forest).shap_values(renamed)


def test_sklearn_model_without_names_warns_and_goes_by_position():
    import warnings

    from sklearn.ensemble import RandomForestRegressor

    X, y = _frame(["a", "b", "c"])
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X.to_numpy(), y)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        forest.predict(X)
    ex = treelens.TreeExplainer(forest)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        got = ex.shap_values(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(got, ex.shap_values(X.to_numpy()))


@pytest.fixture(scope="module")
def missing_model():
    """An XGBoost classifier trained with missing=1e-8 on data holding that value."""
    import xgboost as xgb

    rng = np.random.default_rng(8)
    X = rng.normal(size=(400, 5))
    X[rng.random(X.shape) < 0.25] = 1e-8
    y = (X[:, 0] + 2.0 * (X[:, 1] == 1e-8) + X[:, 2] * X[:, 3] > 0.5).astype(int)
    model = xgb.XGBClassifier(n_estimators=15, max_depth=4, missing=1e-8).fit(X, y)
    return model, X


def test_xgboost_missing_value_is_missing(missing_model, tmp_path):
    import xgboost as xgb

    model, X = missing_model
    dm = xgb.DMatrix(X, missing=1e-8)
    booster = model.get_booster()
    margin = booster.predict(dm, output_margin=True)
    contribs = booster.predict(dm, pred_contribs=True)
    path = tmp_path / "m.json"
    model.save_model(path)
    for source, kw in ((model, {}), (path, {"missing": 1e-8}), (booster, {"missing": 1e-8})):
        ex = treelens.TreeExplainer(source, **kw)
        assert np.array_equal(ex.predict(X), margin.astype(np.float64))
        assert_close(ex.shap_values(X), contribs[:, :-1], F32_TOL, f"missing {type(source)}")
        assert_close(ex(X).values, contribs[:, :-1], F32_TOL, "missing explainer(X)")
    pa = pytest.importorskip("pyarrow")
    table = treelens.explain_table(model, pa.table({f"c{i}": X[:, i] for i in range(5)}))
    got = np.column_stack([table.column(f"f{i}").to_numpy() for i in range(5)])
    assert_close(got, contribs[:, :-1], F32_TOL, "missing in an Arrow batch")
    plain = treelens.TreeExplainer(path)
    assert np.abs(plain.predict(X) - margin).max() > 0.1, "missing value had no effect"
    with pytest.raises(ValueError, match="conflicts"):
        treelens.load(model, missing=0.0)


def test_xgboost_missing_value_in_background_and_permutation(missing_model, tmp_path):
    model, X = missing_model
    nan_X = np.where(X == 1e-8, np.nan, X)
    path = tmp_path / "m.json"
    model.save_model(path)
    ex = treelens.TreeExplainer(model, data=X[:50])
    ref = treelens.TreeExplainer(path, data=nan_X[:50])
    assert np.array_equal(ex.shap_values(X[100:120]), ref.shap_values(nan_X[100:120]))
    y = model.predict(X)
    got = treelens.permutation_importance(model, X, y, n_repeats=3, random_state=0)
    want = treelens.permutation_importance(path, nan_X, y, n_repeats=3, random_state=0)
    assert np.array_equal(got.importances, want.importances)


def test_missing_is_for_xgboost_only(cases):
    with pytest.raises(ValueError, match="XGBoost"):
        treelens.load(cases["lgb_reg"].model, missing=0.0)


def test_permutation_importance_takes_sklearn_scorers(cases):
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import f1_score, get_scorer, make_scorer

    case = cases["xgb_binary"]
    X, y = case.X, case.model.predict(case.X)
    y = np.where(np.random.default_rng(1).random(len(y)) < 0.2, 1 - y, y)
    for scoring in (make_scorer(f1_score), get_scorer("roc_auc"), "f1",
                    {"acc": "accuracy", "f1": make_scorer(f1_score), "ll": "neg_log_loss"}):
        got = treelens.permutation_importance(case.model, X, y, scoring=scoring, n_repeats=3,
                                              random_state=0, n_jobs=-1)
        want = permutation_importance(case.model, X, y, scoring=scoring, n_repeats=3,
                                      random_state=0, n_jobs=1)
        pairs = [(got[k], want[k]) for k in scoring] if isinstance(scoring, dict) \
            else [(got, want)]
        for a, b in pairs:
            assert_close(a.importances, b.importances, 1e-6, f"scoring {scoring!r}")
    with pytest.raises(ValueError, match="not both"):
        treelens.permutation_importance(case.model, X, y, n_jobs=2, n_threads=2)


def test_full_background_is_exact_where_shap_samples(cases):
    """treelens uses every background row; shap silently keeps a 100-row sample. The
    values equal the brute-force game over all 150 rows."""
    from test_background import background_game

    import oracle

    case = cases["lgb_reg"]
    bg, X = case.X[:150], case.X[150:153]
    got = treelens.TreeExplainer(case.model, data=bg).shap_values(X)
    forest = treelens.load(case.model)
    v = background_game(forest._core, X, bg, np.ones(len(bg)))
    want = oracle.shapley_from_values(v)[..., 0]
    assert_close(got, want, ORACLE_TOL * scale_of(want), "full background vs oracle")


def test_lightgbm_categorical_interactions_match_the_oracle(cases):
    """Interaction values of a LightGBM model with categorical splits equal the brute-force
    Shapley interaction index of the path-dependent game (shap's are not)."""
    from test_interactions import interaction_oracle

    case = cases["lgb_categorical"]
    X = case.X[:4]
    forest = treelens.load(case.model)
    assert any(t.categories for t in forest.spec.trees)
    got = treelens.TreeExplainer(case.model).shap_interaction_values(X)
    want = interaction_oracle(forest.spec, X)[..., 0]
    assert_close(got, want, ORACLE_TOL * scale_of(want), "LightGBM categorical interactions")
