"""Permutation importance: bitwise engine margins, exact replay through scikit-learn's
metrics, agreement with ``sklearn.inspection.permutation_importance``, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import treelens
from treelens import _core
from treelens.permutation import draw_permutations

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")
sklearn_ensemble = pytest.importorskip("sklearn.ensemble")
from sklearn import metrics as skm  # noqa: E402
from sklearn.inspection import permutation_importance as sk_permutation_importance  # noqa: E402

N = 300


def _data(seed: int = 0, nan: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 6))
    X[:, 5] = rng.integers(0, 5, size=N)
    s = X[:, 0] + X[:, 1] * X[:, 2] + 0.5 * (X[:, 5] == 2) + 0.2 * rng.normal(size=N)
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    return X, s, (s > 0).astype(int), np.digitize(s, [-0.6, 0.6])


def _models():
    X, s, yb, ym = _data()
    Xn = _data(nan=True)[0]
    lgb = dict(n_estimators=15, num_leaves=7, min_child_samples=5, verbose=-1)
    xgb = dict(n_estimators=15, max_depth=3)
    return {
        "xgb_reg": (xgboost.XGBRegressor(**xgb).fit(Xn, s), Xn, s),
        "xgb_bin": (xgboost.XGBClassifier(**xgb).fit(Xn, yb), Xn, yb),
        "xgb_multi": (xgboost.XGBClassifier(**xgb).fit(X, ym), X, ym),
        "lgb_reg": (lightgbm.LGBMRegressor(**lgb).fit(Xn, s, categorical_feature=[5]), Xn, s),
        "lgb_bin": (lightgbm.LGBMClassifier(**lgb).fit(X, yb, categorical_feature=[5]), X, yb),
        "lgb_multi": (lightgbm.LGBMClassifier(**lgb).fit(X, ym), X, ym),
        "rf_reg": (sklearn_ensemble.RandomForestRegressor(8, max_depth=4, random_state=0)
                   .fit(X, s), X, s),
        "rf_multi": (sklearn_ensemble.RandomForestClassifier(8, max_depth=4, random_state=0)
                     .fit(X, ym), X, ym),
        "gb_bin": (sklearn_ensemble.GradientBoostingClassifier(n_estimators=10, max_depth=2)
                   .fit(X, yb), X, yb),
    }


MODELS = _models()
REGRESSORS = [k for k in MODELS if k.endswith("reg")]
CLASSIFIERS = [k for k in MODELS if not k.endswith("reg")]
REG_SCORING = ["r2", "neg_mean_squared_error", "neg_root_mean_squared_error",
               "neg_mean_absolute_error"]
CLS_SCORING = ["accuracy", "balanced_accuracy", "neg_log_loss"]


def _weights():
    return np.random.default_rng(5).uniform(0.2, 2.0, size=N)


# ---------------------------------------------------------------- engine


@pytest.mark.parametrize("name", list(MODELS))
def test_permuted_margins_equal_predict_bitwise(name):
    model, X, _ = MODELS[name]
    forest = treelens.load(model)
    _, perms = draw_permutations(3, N, 2, 1.0)
    offsets = np.array([0, 1, 3, 4], dtype=np.int64)
    cols = np.array([5, 0, 2, 1], dtype=np.int32)
    out = _core.permuted_margins(forest._core, X, offsets, cols, perms, 1)
    assert out.shape == (3, 2, N, forest.n_outputs)
    for g, group in enumerate([[5], [0, 2], [1]]):
        for r in range(2):
            Xp = X.copy()
            Xp[:, group] = X[perms[r]][:, group]
            assert np.array_equal(out[g, r], forest._core.predict(Xp, 1))
    out3 = _core.permuted_margins(forest._core, X, offsets, cols, perms, 3)
    assert np.array_equal(out, out3)


def _heap_models():
    """Forests of depth 6 (every tree on the heap route), up to 8 (a mix) and with categorical
    splits (float64 routing), on six features so that features repeat along paths and below
    other branches, with NaN."""
    Xn, s = _data(nan=True)[:2]
    return {
        "xgb_depth6": (xgboost.XGBRegressor(n_estimators=12, max_depth=6).fit(Xn, s), Xn),
        "xgb_depth8_lossguide": (xgboost.XGBRegressor(
            n_estimators=12, max_depth=8, max_leaves=20, grow_policy="lossguide").fit(Xn, s), Xn),
        "hgb_categorical": (sklearn_ensemble.HistGradientBoostingRegressor(
            max_iter=12, max_depth=5, categorical_features=[5], random_state=0).fit(Xn, s), Xn),
    }


HEAP_MODELS = _heap_models()


@pytest.mark.parametrize("name", list(MODELS) + list(HEAP_MODELS))
def test_single_feature_margins_and_baseline_equal_predict_bitwise(name):
    model, X = HEAP_MODELS[name] if name in HEAP_MODELS else MODELS[name][:2]
    forest = treelens.load(model)
    n_repeats = 10  # more than one chunk of repeats
    _, perms = draw_permutations(4, N, n_repeats, 1.0)
    m = X.shape[1]
    baseline = np.empty((N, forest.n_outputs))
    out = _core.permuted_margins(forest._core, X, np.arange(m + 1, dtype=np.int64),
                                 np.arange(m, dtype=np.int32), perms, 2, baseline=baseline)
    assert np.array_equal(baseline, forest._core.predict(X, 1))
    for j in range(m):
        for r in range(n_repeats):
            Xp = X.copy()
            Xp[:, j] = X[perms[r], j]
            assert np.array_equal(out[j, r], forest._core.predict(Xp, 1)), (j, r)


def test_permuted_margins_rejects_a_bad_baseline_array():
    model, X, _ = MODELS["xgb_reg"]
    forest = treelens.load(model)
    _, perms = draw_permutations(0, N, 1, 1.0)
    args = (forest._core, X, np.array([0, 1]), np.array([1], np.int32), perms, 1)
    frozen = np.empty((N, 1))
    frozen.flags.writeable = False
    for bad in (np.empty((N, 2)), np.empty((N, 1), np.float32), np.empty((N, 2))[:, :1], frozen,
                [[0.0]] * N):
        with pytest.raises(ValueError, match="baseline"):
            _core.permuted_margins(*args, baseline=bad)


def _residual_sums(margins, y, w, exp_link):
    """[g, r, k, 2] sums of w e^2 and w |e| from permuted margins [g, r, n, k]."""
    pred = np.exp(margins) if exp_link else margins
    e = y.reshape(y.shape[0], -1)[None, None] - pred
    ww = np.ones(y.shape[0]) if w is None else w
    return np.stack([np.einsum("grnk,n->grk", e * e, ww),
                     np.einsum("grnk,n->grk", np.abs(e), ww)], axis=-1)


@pytest.mark.parametrize("name, weighted, exp_link", [
    ("xgb_reg", True, False), ("lgb_reg", False, False), ("rf_reg", True, True),
    ("xgb_multi", True, False), ("xgb_depth6", False, True)])
def test_residual_sums_equal_sums_over_the_permuted_margins(name, weighted, exp_link):
    model, X = HEAP_MODELS[name] if name in HEAP_MODELS else MODELS[name][:2]
    forest = treelens.load(model)
    y = np.random.default_rng(2).normal(size=(N, forest.n_outputs))
    w = _weights() if weighted else None
    _, perms = draw_permutations(1, N, 9, 1.0)  # more repeats than one lane chunk
    for offsets, cols in [(np.arange(7), np.arange(6, dtype=np.int32)),
                          (np.array([0, 1, 3, 4]), np.array([5, 0, 2, 1], np.int32))]:
        margins = _core.permuted_margins(forest._core, X, offsets, cols, perms, 2)
        baseline = np.empty((N, forest.n_outputs))
        sums = _core.permuted_residual_sums(forest._core, X, offsets, cols, perms, y, w,
                                            exp_link=exp_link, n_threads=2, baseline=baseline)
        assert sums.shape == (len(offsets) - 1, 9, forest.n_outputs, 2)
        np.testing.assert_allclose(sums, _residual_sums(margins, y, w, exp_link), rtol=1e-12)
        assert np.array_equal(baseline, forest._core.predict(X, 1))
        for threads in (1, 3):
            again = _core.permuted_residual_sums(forest._core, X, offsets, cols, perms, y, w,
                                                 exp_link=exp_link, n_threads=threads)
            assert np.array_equal(sums, again)


def test_residual_sums_reject_bad_targets_and_weights():
    model, X, y = MODELS["xgb_reg"]
    forest = treelens.load(model)
    _, perms = draw_permutations(0, N, 1, 1.0)
    args = (forest._core, X, np.array([0, 1]), np.array([1], np.int32), perms)
    with pytest.raises(ValueError, match="y must hold"):
        _core.permuted_residual_sums(*args, y[:-1])
    with pytest.raises(ValueError, match="weights"):
        _core.permuted_residual_sums(*args, y, np.ones(N - 1))


def test_log_link_regressor_replays_through_sklearn_metrics():
    X, s = _data()[:2]
    counts = np.random.default_rng(4).poisson(np.exp(0.5 * s))
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=4, objective="count:poisson")
    model.fit(X, counts)
    forest = treelens.load(model)
    scoring = ["r2", "neg_mean_squared_error", "neg_mean_absolute_error"]
    r = treelens.permutation_importance(model, X, counts, scoring=scoring, n_repeats=3,
                                        random_state=0, return_permutations=True)
    scorers = {"r2": skm.r2_score, "neg_mean_squared_error": skm.mean_squared_error,
               "neg_mean_absolute_error": skm.mean_absolute_error}
    sign = {"r2": 1.0, "neg_mean_squared_error": -1.0, "neg_mean_absolute_error": -1.0}
    for k in scoring:
        base = sign[k] * scorers[k](counts, np.exp(forest._core.predict(X, 1)[:, 0]))
        for j in range(X.shape[1]):
            for rep in range(3):
                Xp = X.copy()
                Xp[:, j] = X[r[k].permutations[j, rep], j]
                score = sign[k] * scorers[k](counts, np.exp(forest._core.predict(Xp, 1)[:, 0]))
                assert abs(base - score - r[k].importances[j, rep]) <= 1e-12, (k, j, rep)


def test_permuted_margins_float32_input_and_strides():
    model, X, _ = MODELS["xgb_reg"]
    forest = treelens.load(model)
    _, perms = draw_permutations(0, N, 1, 1.0)
    Xf = np.asfortranarray(X.astype(np.float32))
    out = _core.permuted_margins(forest._core, Xf, np.array([0, 1]), np.array([1], np.int32),
                                 perms, 2)
    Xp = Xf.copy()
    Xp[:, 1] = Xf[perms[0], 1]
    assert np.array_equal(out[0, 0], forest._core.predict(Xp, 1))


# ------------------------------------------------------- agreement with scikit-learn


@pytest.mark.parametrize("name", REGRESSORS)
def test_matches_sklearn_regression(name):
    model, X, y = MODELS[name]
    w = _weights()
    r = treelens.permutation_importance(model, X, y, scoring=REG_SCORING, n_repeats=3,
                                        random_state=7, sample_weight=w, n_threads=2)
    s = sk_permutation_importance(model, X, y, scoring=REG_SCORING, n_repeats=3,
                                  random_state=7, sample_weight=w)
    for k in REG_SCORING:
        np.testing.assert_allclose(r[k].importances, s[k].importances, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", [k for k in CLASSIFIERS if not k.startswith("xgb")])
def test_matches_sklearn_classification(name):
    model, X, y = MODELS[name]
    scoring = CLS_SCORING + (["roc_auc"] if name.endswith("bin") else ["roc_auc_ovr"])
    r = treelens.permutation_importance(model, X, y, scoring=scoring, n_repeats=3,
                                        random_state=2, max_samples=0.7)
    s = sk_permutation_importance(model, X, y, scoring=scoring, n_repeats=3, random_state=2,
                                  max_samples=0.7)
    for k in scoring:
        np.testing.assert_allclose(r[k].importances, s[k].importances, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["xgb_bin", "xgb_multi"])
def test_xgboost_classifier_close_to_sklearn(name):
    # XGBoost's own probabilities are float32; treelens applies the link in float64.
    model, X, y = MODELS[name]
    r = treelens.permutation_importance(model, X, y, scoring=CLS_SCORING, n_repeats=3,
                                        random_state=4)
    s = sk_permutation_importance(model, X, y, scoring=CLS_SCORING, n_repeats=3,
                                  random_state=4)
    for k in CLS_SCORING:
        np.testing.assert_allclose(r[k].importances, s[k].importances, rtol=0, atol=1e-5)


def test_statistical_agreement_with_sklearn():
    model, X, y = MODELS["lgb_reg"]
    r = treelens.permutation_importance(model, X, y, n_repeats=30, random_state=11)
    s = sk_permutation_importance(model, X, y, n_repeats=30, random_state=12)
    se = np.sqrt((r.importances_std ** 2 + s.importances_std ** 2) / 30)
    assert np.all(np.abs(r.importances_mean - s.importances_mean) <= 5 * se + 1e-9)
    assert np.argmax(r.importances_mean) == np.argmax(s.importances_mean)


# ----------------------------------------------------------------- exact replay


def _replay_score(name, scoring, model, forest, Xp, y, w):
    margin = forest._core.predict(Xp, 1)
    link = forest.objective
    if name.endswith("reg"):
        pred = np.exp(margin[:, 0]) if link == "log" else margin[:, 0]
        fn = {"r2": skm.r2_score, "neg_mean_absolute_error": skm.mean_absolute_error}[scoring]
        value = fn(y, pred, sample_weight=w)
        return value if scoring == "r2" else -value
    if link == "softmax":
        e = np.exp(margin - margin.max(axis=1, keepdims=True))
        proba = e / e.sum(axis=1, keepdims=True)
    elif link == "logistic":
        p = 1.0 / (1.0 + np.exp(-margin[:, 0]))
        proba = np.column_stack([1.0 - p, p])
    else:
        proba = margin
    if scoring == "neg_log_loss":
        return -skm.log_loss(y, proba, sample_weight=w)
    if scoring == "roc_auc":
        return skm.roc_auc_score(y, margin[:, 0] if link == "logistic" else proba[:, 1],
                                 sample_weight=w)
    labels = np.asarray(model.classes_)[np.argmax(proba, axis=1)]
    return skm.balanced_accuracy_score(y, labels, sample_weight=w)


@pytest.mark.parametrize("name", list(MODELS))
def test_replay_permutations_through_sklearn_metrics(name):
    model, X, y = MODELS[name]
    forest = treelens.load(model)
    w = _weights()
    if name.endswith("reg"):
        scoring = ["r2", "neg_mean_absolute_error"]
    else:
        scoring = ["neg_log_loss", "balanced_accuracy"]
        scoring += ["roc_auc"] if name.endswith("bin") else []
    groups = [[0], [1, 2], [5], [3, 4]]
    r = treelens.permutation_importance(model, X, y, scoring=scoring, n_repeats=2,
                                        random_state=3, sample_weight=w, groups=groups,
                                        max_samples=200, return_permutations=True)
    rows = r[scoring[0]].sample_indices
    perms = r[scoring[0]].permutations
    assert perms.shape == (4, 2, 200) and perms.dtype == np.int64
    for k in scoring:
        base = _replay_score(name, k, model, forest, X, y, w)
        for g, cols in enumerate(groups):
            for rep in range(2):
                Xp = X[rows].copy()
                Xp[:, cols] = X[perms[g, rep]][:, cols]
                score = _replay_score(name, k, model, forest, Xp, y[rows], w[rows])
                assert abs(base - score - r[k].importances[g, rep]) <= 1e-12, (k, g, rep)


def test_same_result_for_any_thread_count_and_names():
    import pandas as pd

    model, X, y = MODELS["lgb_reg"]
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(6)])
    a = treelens.permutation_importance(model, X, y, random_state=0, n_threads=1)
    b = treelens.permutation_importance(model, frame, y, random_state=0, n_threads=3)
    assert np.array_equal(a.importances, b.importances)
    c = treelens.permutation_importance(model, X, y, random_state=0,
                                        groups=[["Column_1", 2]])
    d = treelens.permutation_importance(model, X, y, random_state=0, groups=[[2, 1]])
    assert np.array_equal(c.importances, d.importances)


def test_callable_scoring():
    model, X, y = MODELS["xgb_reg"]

    def score(y_true, y_pred, sample_weight):
        return -np.mean(np.abs(y_true - y_pred))

    r = treelens.permutation_importance(model, X, y, scoring=score, random_state=0)
    s = treelens.permutation_importance(model, X, y, scoring="neg_mean_absolute_error",
                                        random_state=0)
    np.testing.assert_allclose(r.importances, s.importances, atol=1e-12)


# -------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    (dict(scoring="bogus_metric"), "unknown scoring"),
    (dict(scoring="accuracy"), "needs a classifier"),
    (dict(groups=[["nope"]]), "unknown feature"),
    (dict(groups=[[9]]), "out of range"),
    (dict(groups=[[]]), "empty"),
    (dict(n_repeats=0), "n_repeats"),
    (dict(max_samples=10_000), "max_samples"),
    (dict(sample_weight=np.ones(3)), "sample_weight has 3"),
])
def test_bad_input(kwargs, match):
    model, X, y = MODELS["xgb_reg"]
    with pytest.raises(ValueError, match=match):
        treelens.permutation_importance(model, X, y, **kwargs)


def test_bad_y_and_labels():
    model, X, y = MODELS["xgb_bin"]
    with pytest.raises(ValueError, match="y has 5 entries"):
        treelens.permutation_importance(model, X, y[:5])
    with pytest.raises(ValueError, match="labels the model does not predict"):
        treelens.permutation_importance(model, X, y + 7)


def test_core_rejects_bad_permutations():
    model, X, _ = MODELS["xgb_reg"]
    forest = treelens.load(model)
    bad = np.full((1, N), N, dtype=np.int64)
    with pytest.raises(IndexError, match="permutation index"):
        _core.permuted_margins(forest._core, X, np.array([0, 1]), np.array([0], np.int32), bad)
    with pytest.raises(ValueError, match="perms has shape"):
        _core.permuted_margins(forest._core, X, np.array([0, 1]), np.array([0], np.int32),
                               bad[:, :5])
