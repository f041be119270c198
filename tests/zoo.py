"""Small seeded models from the three libraries, with their native reference answers.

Every case carries evaluation rows ``X`` (float64 NumPy; categorical columns hold
integer codes), the live model, and functions giving the library's own SHAP values,
bias and raw margin, all normalised to 3-D / 2-D shapes:

    native_shap(X) -> (phi [n_rows, n_features, n_outputs], bias [n_rows, n_outputs]) or None
    native_margin(X) -> [n_rows, n_outputs]
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

N_TRAIN = 300
N_EVAL = 60


@dataclass
class Case:
    name: str
    library: str                      # "xgboost", "lightgbm", "sklearn"
    model: object
    X: np.ndarray                     # [n_eval, n_features] float64
    n_outputs: int
    native_margin: Callable[[np.ndarray], np.ndarray]
    native_shap: Optional[Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]]
    feature_types: Optional[List[str]] = None

    @property
    def n_features(self) -> int:
        return self.X.shape[1]


# ---------------------------------------------------------------- data


def make_data(seed: int, n_features: int = 6, n_rows: int = N_TRAIN + N_EVAL,
              nan_frac: float = 0.0, zero_frac: float = 0.0,
              cat_features: Optional[Dict[int, int]] = None):
    """Features X [n_rows, n_features] and a smooth target signal [n_rows]."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    for f, n_cat in (cat_features or {}).items():
        X[:, f] = rng.integers(0, n_cat, size=n_rows)
    if zero_frac:
        X[rng.random(X.shape) < zero_frac] = 0.0
    signal_X = X.copy()
    if nan_frac:
        X[rng.random(X.shape) < nan_frac] = np.nan
    s = np.nan_to_num(signal_X)
    signal = np.sin(s[:, 0]) + s[:, 1] * s[:, 2 % n_features] + 0.5 * s[:, 3 % n_features]
    for f in (cat_features or {}):
        signal += np.where(s[:, f] % 3 == 0, 1.0, -0.5)
    signal += 0.1 * rng.normal(size=n_rows)
    return X, signal


def classes(signal: np.ndarray, n_classes: int) -> np.ndarray:
    qs = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1])
    return np.digitize(signal, qs)


def counts(signal: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(np.exp(0.5 * np.clip(signal, -3, 3))).astype(np.float64)


def _split(X, y):
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:]


def as_2d(a: np.ndarray, n_rows: int) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(n_rows, -1)


# ---------------------------------------------------------------- xgboost


def xgb_native(booster, feature_types=None, **predict_kwargs):
    """Reference functions from Booster.predict (pred_contribs / output_margin)."""
    import xgboost as xgb

    def dmatrix(X):
        return xgb.DMatrix(X, feature_types=feature_types,
                           enable_categorical=feature_types is not None, nthread=1)

    def margin(X):
        return as_2d(booster.predict(dmatrix(X), output_margin=True, **predict_kwargs), len(X))

    def shap(X):
        c = booster.predict(dmatrix(X), pred_contribs=True, **predict_kwargs)
        c = np.asarray(c, dtype=np.float64)
        if c.ndim == 2:
            c = c[:, None, :]
        return c[:, :, :-1].transpose(0, 2, 1), c[:, :, -1]

    return margin, shap


def _xgb_case(name, model, X, y, n_outputs, feature_types=None, fit_kwargs=None):
    Xtr, ytr, Xev = _split(X, y)
    model.fit(Xtr, ytr, **(fit_kwargs or {}))
    margin, shap = xgb_native(model.get_booster(), feature_types)
    return Case(name, "xgboost", model, Xev, n_outputs, margin, shap, feature_types)


def _xgb_params(**kw):
    p = dict(n_estimators=20, max_depth=4, learning_rate=0.3, random_state=0, n_jobs=1)
    p.update(kw)
    return p


def xgb_reg():
    import xgboost as xgb
    X, s = make_data(1)
    return _xgb_case("xgb_reg", xgb.XGBRegressor(**_xgb_params()), X, s, 1)


def xgb_binary():
    import xgboost as xgb
    X, s = make_data(2)
    return _xgb_case("xgb_binary", xgb.XGBClassifier(**_xgb_params()), X, classes(s, 2), 1)


def xgb_multiclass():
    import xgboost as xgb
    X, s = make_data(3)
    return _xgb_case("xgb_multiclass", xgb.XGBClassifier(**_xgb_params(n_estimators=8)),
                     X, classes(s, 3), 3)


def xgb_categorical():
    import xgboost as xgb
    cats = {1: 10, 4: 6}
    X, s = make_data(4, cat_features=cats)
    X[np.random.default_rng(4).random(X.shape) < 0.1] = np.nan
    ftypes = ["c" if f in cats else "q" for f in range(X.shape[1])]
    model = xgb.XGBRegressor(**_xgb_params(tree_method="hist", enable_categorical=True,
                                           feature_types=ftypes, max_cat_to_onehot=1))
    return _xgb_case("xgb_categorical", model, X, s, 1, ftypes)


def xgb_nan():
    import xgboost as xgb
    X, s = make_data(5, nan_frac=0.4)
    return _xgb_case("xgb_nan", xgb.XGBRegressor(**_xgb_params()), X, s, 1)


def xgb_rf():
    import xgboost as xgb
    X, s = make_data(6)
    model = xgb.XGBRFRegressor(n_estimators=8, max_depth=4, subsample=0.8,
                               colsample_bynode=0.8, random_state=0, n_jobs=1)
    return _xgb_case("xgb_rf", model, X, s, 1)


def xgb_dart():
    import xgboost as xgb
    X, s = make_data(7)
    model = xgb.XGBRegressor(**_xgb_params(booster="dart", rate_drop=0.3, skip_drop=0.0))
    return _xgb_case("xgb_dart", model, X, s, 1)


def xgb_deep():
    import xgboost as xgb
    X, s = make_data(8, n_features=5, nan_frac=0.05)
    model = xgb.XGBRegressor(**_xgb_params(n_estimators=6, max_depth=14, min_child_weight=0,
                                           reg_lambda=0.01, learning_rate=0.5))
    return _xgb_case("xgb_deep", model, X, s, 1)


def xgb_poisson():
    import xgboost as xgb
    X, s = make_data(9)
    model = xgb.XGBRegressor(**_xgb_params(objective="count:poisson"))
    return _xgb_case("xgb_poisson", model, X, counts(s, 9), 1)


def xgb_pruned():
    """tree_method=exact with gamma leaves deleted, unreachable nodes in the arrays."""
    import xgboost as xgb
    X, s = make_data(12)
    model = xgb.XGBRegressor(**_xgb_params(tree_method="exact", gamma=0.5, max_depth=6))
    return _xgb_case("xgb_pruned", model, X, s, 1)


def xgb_boosted_forest():
    """Raw Booster: 3 classes x 2 parallel trees x 6 rounds (for iteration_range)."""
    import xgboost as xgb
    X, s = make_data(10)
    Xtr, ytr, Xev = _split(X, classes(s, 3))
    params = dict(objective="multi:softprob", num_class=3, max_depth=3, num_parallel_tree=2,
                  subsample=0.8, seed=0, nthread=1)
    booster = xgb.train(params, xgb.DMatrix(Xtr, label=ytr), num_boost_round=6)
    margin, shap = xgb_native(booster)
    return Case("xgb_boosted_forest", "xgboost", booster, Xev, 3, margin, shap)


# ---------------------------------------------------------------- lightgbm


def lgb_native(booster, n_outputs, **predict_kwargs):
    """Reference functions from Booster.predict (pred_contrib / raw_score)."""

    def margin(X):
        return as_2d(booster.predict(X, raw_score=True, **predict_kwargs), len(X))

    def shap(X):
        c = np.asarray(booster.predict(X, pred_contrib=True, **predict_kwargs), dtype=np.float64)
        c = c.reshape(len(X), n_outputs, -1)
        return c[:, :, :-1].transpose(0, 2, 1), c[:, :, -1]

    return margin, shap


def _lgb_params(**kw):
    p = dict(n_estimators=20, num_leaves=15, learning_rate=0.2, min_child_samples=5,
             random_state=0, n_jobs=1, verbose=-1)
    p.update(kw)
    return p


def _lgb_case(name, model, X, y, n_outputs, fit_kwargs=None):
    Xtr, ytr, Xev = _split(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(Xtr, ytr, **(fit_kwargs or {}))
    margin, shap = lgb_native(model.booster_, n_outputs)
    return Case(name, "lightgbm", model, Xev, n_outputs, margin, shap)


def lgb_reg():
    import lightgbm as lgb
    X, s = make_data(21)
    return _lgb_case("lgb_reg", lgb.LGBMRegressor(**_lgb_params()), X, s, 1)


def lgb_binary():
    import lightgbm as lgb
    X, s = make_data(22)
    return _lgb_case("lgb_binary", lgb.LGBMClassifier(**_lgb_params()), X, classes(s, 2), 1)


def lgb_multiclass():
    import lightgbm as lgb
    X, s = make_data(23)
    return _lgb_case("lgb_multiclass", lgb.LGBMClassifier(**_lgb_params(n_estimators=8)),
                     X, classes(s, 3), 3)


def lgb_categorical():
    import lightgbm as lgb
    cats = {1: 10, 4: 6}
    X, s = make_data(24, cat_features=cats)
    X[np.random.default_rng(24).random(X.shape) < 0.1] = np.nan
    model = lgb.LGBMRegressor(**_lgb_params(min_data_per_group=5, cat_smooth=1.0,
                                            cat_l2=1.0, max_cat_to_onehot=2))
    return _lgb_case("lgb_categorical", model, X, s, 1,
                     fit_kwargs=dict(categorical_feature=sorted(cats)))


def lgb_nan():
    import lightgbm as lgb
    X, s = make_data(25, nan_frac=0.4)
    return _lgb_case("lgb_nan", lgb.LGBMRegressor(**_lgb_params()), X, s, 1)


def lgb_rf():
    import lightgbm as lgb
    X, s = make_data(26)
    model = lgb.LGBMRegressor(**_lgb_params(boosting_type="rf", n_estimators=10,
                                            subsample=0.7, subsample_freq=1,
                                            colsample_bytree=0.8))
    return _lgb_case("lgb_rf", model, X, s, 1)


def lgb_dart():
    import lightgbm as lgb
    X, s = make_data(27)
    model = lgb.LGBMRegressor(**_lgb_params(boosting_type="dart", drop_rate=0.3))
    return _lgb_case("lgb_dart", model, X, s, 1)


def lgb_deep():
    import lightgbm as lgb
    X, s = make_data(28, n_features=5, n_rows=900 + N_EVAL, nan_frac=0.05)
    Xtr, ytr, Xev = X[:900], s[:900], X[900:]
    model = lgb.LGBMRegressor(**_lgb_params(n_estimators=5, num_leaves=255, max_depth=-1,
                                            min_child_samples=1, min_child_weight=0,
                                            min_split_gain=0.0, learning_rate=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(Xtr, ytr)
    margin, shap = lgb_native(model.booster_, 1)
    return Case("lgb_deep", "lightgbm", model, Xev, 1, margin, shap)


def lgb_poisson():
    import lightgbm as lgb
    X, s = make_data(29)
    model = lgb.LGBMRegressor(**_lgb_params(objective="poisson"))
    return _lgb_case("lgb_poisson", model, X, counts(s, 29), 1)


def lgb_missing_zero():
    import lightgbm as lgb
    X, s = make_data(30, zero_frac=0.4, nan_frac=0.1)
    model = lgb.LGBMRegressor(**_lgb_params(zero_as_missing=True))
    return _lgb_case("lgb_missing_zero", model, X, s, 1)


def lgb_missing_none():
    import lightgbm as lgb
    X, s = make_data(31, zero_frac=0.4, nan_frac=0.1)
    model = lgb.LGBMRegressor(**_lgb_params(use_missing=False))
    return _lgb_case("lgb_missing_none", model, X, s, 1)


def lgb_booster_multiclass():
    """Raw Booster, 3 classes x 10 rounds (for num_iteration)."""
    import lightgbm as lgb
    X, s = make_data(32)
    Xtr, ytr, Xev = _split(X, classes(s, 3))
    params = dict(objective="multiclass", num_class=3, num_leaves=7, min_data_in_leaf=5,
                  seed=0, num_threads=1, verbose=-1)
    booster = lgb.train(params, lgb.Dataset(Xtr, label=ytr), num_boost_round=10)
    margin, shap = lgb_native(booster, 3)
    return Case("lgb_booster_multiclass", "lightgbm", booster, Xev, 3, margin, shap)


# ---------------------------------------------------------------- scikit-learn


def sk_shap(model):
    """Reference SHAP from shap.TreeExplainer (path-dependent)."""
    import shap

    explainer = shap.TreeExplainer(model)

    def native(X):
        phi = np.asarray(explainer.shap_values(X), dtype=np.float64)
        if phi.ndim == 2:
            phi = phi[:, :, None]
        ev = np.asarray(explainer.expected_value, dtype=np.float64).reshape(1, -1)
        bias = np.broadcast_to(ev, (len(X), phi.shape[2]))
        return phi, bias

    return native


def _sk_case(name, model, X, y, n_outputs, margin_method, with_shap=True):
    """scikit-learn runs single-threaded here (HistGradientBoosting's OpenMP pool
    stalls on a busy machine)."""
    from threadpoolctl import threadpool_limits

    Xtr, ytr, Xev = _split(X, y)
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(Xtr, ytr)
    method = getattr(model, margin_method)

    def margin(Xq):
        with threadpool_limits(limits=1, user_api="openmp"):
            return as_2d(method(Xq), len(Xq))

    shap = sk_shap(model) if with_shap else None
    return Case(name, "sklearn", model, Xev, n_outputs, margin, shap)


def sk_rf_reg():
    from sklearn.ensemble import RandomForestRegressor
    X, s = make_data(41)
    m = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
    return _sk_case("sk_rf_reg", m, X, s, 1, "predict")


def sk_rf_binary():
    from sklearn.ensemble import RandomForestClassifier
    X, s = make_data(42)
    m = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
    return _sk_case("sk_rf_binary", m, X, classes(s, 2), 2, "predict_proba")


def sk_rf_multiclass():
    from sklearn.ensemble import RandomForestClassifier
    X, s = make_data(43)
    m = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
    return _sk_case("sk_rf_multiclass", m, X, classes(s, 3), 3, "predict_proba")


def sk_extra_trees():
    from sklearn.ensemble import ExtraTreesRegressor
    X, s = make_data(44)
    m = ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
    return _sk_case("sk_extra_trees", m, X, s, 1, "predict")


def sk_decision_tree():
    from sklearn.tree import DecisionTreeRegressor
    X, s = make_data(45)
    return _sk_case("sk_decision_tree", DecisionTreeRegressor(max_depth=8, random_state=0),
                    X, s, 1, "predict")


def sk_gbr():
    from sklearn.ensemble import GradientBoostingRegressor
    X, s = make_data(46)
    m = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0)
    return _sk_case("sk_gbr", m, X, s, 1, "predict")


def sk_gbc_binary():
    from sklearn.ensemble import GradientBoostingClassifier
    X, s = make_data(47)
    m = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)
    return _sk_case("sk_gbc_binary", m, X, classes(s, 2), 1, "decision_function")


def sk_gbc_multiclass():
    from sklearn.ensemble import GradientBoostingClassifier
    X, s = make_data(48)
    m = GradientBoostingClassifier(n_estimators=8, max_depth=3, random_state=0)
    # shap 0.51 rejects multiclass GradientBoostingClassifier: checked by the oracle only.
    return _sk_case("sk_gbc_multiclass", m, X, classes(s, 3), 3, "decision_function",
                    with_shap=False)


def sk_hgb_reg():
    from sklearn.ensemble import HistGradientBoostingRegressor
    X, s = make_data(49, nan_frac=0.2)
    m = HistGradientBoostingRegressor(max_iter=20, max_leaf_nodes=15, random_state=0)
    return _sk_case("sk_hgb_reg", m, X, s, 1, "predict")


def sk_hgb_binary():
    from sklearn.ensemble import HistGradientBoostingClassifier
    X, s = make_data(50)
    m = HistGradientBoostingClassifier(max_iter=20, max_leaf_nodes=15, random_state=0)
    return _sk_case("sk_hgb_binary", m, X, classes(s, 2), 1, "decision_function")


def sk_hgb_multiclass():
    from sklearn.ensemble import HistGradientBoostingClassifier
    X, s = make_data(51)
    m = HistGradientBoostingClassifier(max_iter=8, max_leaf_nodes=15, random_state=0)
    return _sk_case("sk_hgb_multiclass", m, X, classes(s, 3), 3, "decision_function")


def sk_hgb_categorical():
    from sklearn.ensemble import HistGradientBoostingRegressor
    cats = {1: 10, 4: 6}
    X, s = make_data(52, cat_features=cats, nan_frac=0.1)
    m = HistGradientBoostingRegressor(max_iter=20, max_leaf_nodes=15, random_state=0,
                                      categorical_features=sorted(cats))
    # shap 0.51 ignores HistGradientBoosting category bitsets: checked by the oracle only.
    return _sk_case("sk_hgb_categorical", m, X, s, 1, "predict", with_shap=False)


def sk_rf_nan():
    from sklearn.ensemble import RandomForestRegressor
    X, s = make_data(53, nan_frac=0.3)
    m = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
    return _sk_case("sk_rf_nan", m, X, s, 1, "predict")


BUILDERS: Dict[str, Callable[[], Case]] = {
    f.__name__: f
    for f in [
        xgb_reg, xgb_binary, xgb_multiclass, xgb_categorical, xgb_nan, xgb_rf, xgb_dart,
        xgb_deep, xgb_poisson, xgb_pruned, xgb_boosted_forest,
        lgb_reg, lgb_binary, lgb_multiclass, lgb_categorical, lgb_nan, lgb_rf, lgb_dart,
        lgb_deep, lgb_poisson, lgb_missing_zero, lgb_missing_none, lgb_booster_multiclass,
        sk_rf_reg, sk_rf_binary, sk_rf_multiclass, sk_extra_trees, sk_decision_tree, sk_gbr,
        sk_gbc_binary, sk_gbc_multiclass, sk_hgb_reg, sk_hgb_binary, sk_hgb_multiclass,
        sk_hgb_categorical, sk_rf_nan,
    ]
}
ALL_CASES = sorted(BUILDERS)


CATEGORICAL_CASES = ("xgb_categorical", "lgb_categorical", "sk_hgb_categorical")


def names(library: Optional[str] = None) -> List[str]:
    """Case names, optionally of one library prefix ("xgb", "lgb", "sk")."""
    return [n for n in ALL_CASES if library is None or n.startswith(library + "_")]


# ---------------------------------------------------------------- DataFrame-trained models

COLOR_CATEGORIES = ["red", "green", "blue", "yellow", "black", "white", "cyan"]


def pandas_frame(seed: int, n_rows: int = N_TRAIN + N_EVAL):
    """DataFrame with five named numeric columns and a category column ``color``.

    Returns (df [n_rows, 6], target [n_rows]).
    """
    import pandas as pd

    X, s = make_data(seed, n_features=5, n_rows=n_rows, nan_frac=0.05)
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(COLOR_CATEGORIES), size=n_rows)
    df = pd.DataFrame(X, columns=["age", "income", "height", "weight", "score"])
    df.insert(2, "color", pd.Categorical.from_codes(codes, categories=COLOR_CATEGORIES))
    return df, s + np.where(codes % 2 == 0, 1.5, -1.0)


class PandasModels:
    """Models trained on DataFrames, per library, with or without the ``color`` column.

    ``frame(with_category)`` is the matching evaluation DataFrame.
    """

    def __init__(self) -> None:
        df, y = pandas_frame(60)
        self._train, self._eval, self._y = df.iloc[:N_TRAIN], df.iloc[N_TRAIN:], y[:N_TRAIN]
        self._models: Dict[Tuple[str, bool], object] = {}

    def frame(self, with_category: bool):
        return self._eval if with_category else self._eval.drop(columns=["color"])

    def model(self, library: str, with_category: bool):
        key = (library, with_category)
        if key not in self._models:
            train = self._train if with_category else self._train.drop(columns=["color"])
            self._models[key] = self._fit(library, train)
        return self._models[key]

    def _fit(self, library: str, train):
        if library == "xgboost":
            import xgboost as xgb
            return xgb.XGBRegressor(**_xgb_params(tree_method="hist", enable_categorical=True,
                                                  max_cat_to_onehot=1)).fit(train, self._y)
        if library == "lightgbm":
            import lightgbm as lgb
            model = lgb.LGBMRegressor(**_lgb_params(min_data_per_group=5, cat_smooth=1.0,
                                                    max_cat_to_onehot=2))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return model.fit(train, self._y)
        if library == "sklearn":
            from sklearn.ensemble import RandomForestRegressor
            model = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0, n_jobs=1)
            return model.fit(train, self._y)
        raise ValueError(library)
