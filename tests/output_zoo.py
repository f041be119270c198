"""One small real model per objective of each library, with the library's own predictions.

Each ``OutputCase`` is trained on first use (``case(name)``, cached) and carries:

- ``predict(X)``: what ``Forest.predict(X, output="response")`` must equal: the library's
  ``predict_proba`` for classifiers, its ``predict`` otherwise;
- ``outputs(X)``: the library's prediction per model output ``[n, k]`` (the positive-class
  probability of a binary classifier): what ``model_output="probability"`` explains;
- ``margin(X)``: the library's raw margin ``[n, k]``;
- ``estimator``: an object scikit-learn's ``permutation_importance`` can score (the model
  itself, or ``BoosterEstimator`` around a bare XGBoost ``Booster``);
- ``float32``: the library predicts in float32 (XGBoost).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

N_ROWS = 300
N_FEATURES = 4


@dataclass
class OutputCase:
    name: str
    model: Any
    X: np.ndarray
    y: np.ndarray
    predict: Callable[[np.ndarray], np.ndarray]
    outputs: Callable[[np.ndarray], np.ndarray]
    margin: Callable[[np.ndarray], np.ndarray]
    estimator: Any
    classifier: bool
    float32: bool = False


class BoosterEstimator(RegressorMixin, BaseEstimator):
    """A bare ``xgboost.Booster`` with the ``fit`` / ``predict`` pair scikit-learn's scorers
    call (the Booster is already trained; ``fit`` returns it unchanged)."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def fit(self, X: Any, y: Any = None) -> "BoosterEstimator":
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        import xgboost

        return self.booster.predict(xgboost.DMatrix(X))


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    signal = X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 0.5 * X[:, 3] + 0.3 * rng.normal(size=N_ROWS)
    return X, signal, rng


def _labels(kind: str):
    X, s, rng = _data()
    if kind == "real":
        return X, s
    if kind == "binary":
        return X, (s > 0).astype(int)
    if kind == "multiclass":
        return X, np.digitize(s, [-0.7, 0.7])
    if kind == "positive":
        return X, np.exp(0.5 * s) + 0.1
    if kind == "counts":
        return X, rng.poisson(np.exp(0.5 * s)).astype(np.float64)
    if kind == "fraction":
        return X, 1.0 / (1.0 + np.exp(-2.0 * s))
    raise ValueError(kind)


def _as2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def _sk_case(name: str, model: Any, kind: str, margin: Callable[[Any, np.ndarray], Any],
             float32: bool = False, **fit: Any) -> OutputCase:
    """A scikit-learn-API model (scikit-learn, XGBoost and LightGBM wrappers)."""
    X, y = _labels(kind)
    model.fit(X, y, **fit)
    classifier = hasattr(model, "predict_proba") and hasattr(model, "classes_")

    def predict(Z):
        return np.asarray(model.predict_proba(Z) if classifier else model.predict(Z),
                          dtype=np.float64)

    def margins(Z):
        return _as2d(margin(model, Z))

    def outputs(Z):
        p = _as2d(predict(Z))
        return p[:, 1:] if p.shape[1] == 2 and margins(Z[:1]).shape[1] == 1 else p

    return OutputCase(name, model, X, y, predict, outputs, margins, model, classifier, float32)


def _xgb(name: str, objective: str, kind: str, **params: Any) -> OutputCase:
    import xgboost

    classifier = objective.startswith(("binary:", "multi:"))
    cls = xgboost.XGBClassifier if classifier else xgboost.XGBRegressor
    model = cls(n_estimators=6, max_depth=3, objective=objective, **params)
    return _sk_case(name, model, kind, lambda m, Z: m.predict(Z, output_margin=True), True)


def _xgb_booster(name: str, params: Dict[str, Any], kind: str, **info: Any) -> OutputCase:
    import xgboost

    X, y = _labels(kind)
    dtrain = xgboost.DMatrix(X, label=y, **info)
    booster = xgboost.train({"max_depth": 3, **params}, dtrain, 6)

    def predict(Z):
        return np.asarray(booster.predict(xgboost.DMatrix(Z)), dtype=np.float64)

    def margin(Z):
        return _as2d(booster.predict(xgboost.DMatrix(Z), output_margin=True))

    return OutputCase(name, booster, X, y, predict, lambda Z: _as2d(predict(Z)), margin,
                      BoosterEstimator(booster), False, True)


def _lgb(name: str, objective: str, kind: str, **params: Any) -> OutputCase:
    import lightgbm

    classifier = objective in ("binary", "multiclass", "multiclassova")
    cls = lightgbm.LGBMClassifier if classifier else lightgbm.LGBMRegressor
    if objective == "lambdarank":
        cls = lightgbm.LGBMRanker
    model = cls(n_estimators=6, num_leaves=7, min_child_samples=5, objective=objective,
                verbose=-1, **params)
    fit = {"group": [30] * 10} if objective == "lambdarank" else {}
    return _sk_case(name, model, kind, lambda m, Z: m.predict(Z, raw_score=True), **fit)


def _gb_margin(m, Z):
    if hasattr(m, "decision_function"):
        return m.decision_function(Z)
    return m._raw_predict(np.asarray(Z, dtype=np.float32 if hasattr(m, "estimators_") else None))


def _sklearn(name: str, model: Any, kind: str) -> OutputCase:
    return _sk_case(name, model, kind, _gb_margin)


def _forest(name: str, model: Any, kind: str) -> OutputCase:
    margin = (lambda m, Z: m.predict_proba(Z)) if kind in ("binary", "multiclass") \
        else (lambda m, Z: m.predict(Z))
    return _sk_case(name, model, kind, margin)


def _builders() -> Dict[str, Callable[[], OutputCase]]:
    from sklearn import ensemble, tree

    gb = dict(n_estimators=8, max_depth=2, random_state=0)
    hgb = dict(max_iter=8, max_leaf_nodes=7, random_state=0)
    b = {}
    for objective, kind, params in [
            ("reg:squarederror", "real", {}), ("reg:absoluteerror", "real", {}),
            ("reg:pseudohubererror", "real", {}), ("reg:squaredlogerror", "positive", {}),
            ("reg:quantileerror", "real", {"quantile_alpha": 0.3}),
            ("reg:logistic", "fraction", {}), ("binary:logistic", "binary", {}),
            ("binary:logitraw", "binary", {}), ("binary:hinge", "binary", {}),
            ("multi:softprob", "multiclass", {}), ("multi:softmax", "multiclass", {}),
            ("count:poisson", "counts", {}), ("reg:gamma", "positive", {}),
            ("reg:tweedie", "positive", {"tweedie_variance_power": 1.4}),
            ("survival:cox", "real", {}), ("rank:pairwise", "real", {})]:
        b[f"xgb-{objective}"] = functools.partial(_xgb, f"xgb-{objective}", objective, kind,
                                                  **params)
    _, s, _ = _data()
    b["xgb-survival:aft"] = functools.partial(
        _xgb_booster, "xgb-survival:aft",
        {"objective": "survival:aft", "aft_loss_distribution": "logistic"}, "positive",
        label_lower_bound=np.exp(0.5 * s), label_upper_bound=np.exp(0.5 * s) * 1.5)
    for objective, kind, params in [
            ("regression", "real", {}), ("regression", "real", {"reg_sqrt": True}),
            ("regression_l1", "real", {"reg_sqrt": True}), ("huber", "real", {}),
            ("fair", "real", {}), ("quantile", "real", {"alpha": 0.3}),
            ("mape", "positive", {}), ("poisson", "counts", {}), ("gamma", "positive", {}),
            ("tweedie", "positive", {}), ("binary", "binary", {"sigmoid": 2.0}),
            ("multiclass", "multiclass", {}),
            ("multiclassova", "multiclass", {"sigmoid": 1.5}),
            ("cross_entropy", "fraction", {}), ("cross_entropy_lambda", "fraction", {}),
            ("lambdarank", "multiclass", {}),
            ("binary", "binary", {"boosting_type": "rf", "subsample": 0.6,
                                  "subsample_freq": 1}),
            ("regression", "real", {"boosting_type": "rf", "subsample": 0.6,
                                    "subsample_freq": 1})]:
        suffix = "".join(f"-{k}={v}" for k, v in params.items() if k in (
            "reg_sqrt", "sigmoid", "boosting_type"))
        name = f"lgb-{objective}{suffix}"
        b[name] = functools.partial(_lgb, name, objective, kind, **params)
    for loss in ("squared_error", "absolute_error", "huber", "quantile"):
        b[f"sk-gbr-{loss}"] = functools.partial(
            _sklearn, f"sk-gbr-{loss}", ensemble.GradientBoostingRegressor(loss=loss, **gb),
            "real")
    for loss, kind in [("log_loss", "binary"), ("log_loss", "multiclass"),
                       ("exponential", "binary")]:
        name = f"sk-gbc-{loss}-{kind}"
        b[name] = functools.partial(
            _sklearn, name, ensemble.GradientBoostingClassifier(loss=loss, **gb), kind)
    for loss, kind in [("squared_error", "real"), ("absolute_error", "real"),
                       ("gamma", "positive"), ("poisson", "counts"), ("quantile", "real")]:
        extra = {"quantile": 0.3} if loss == "quantile" else {}
        b[f"sk-hgbr-{loss}"] = functools.partial(
            _sklearn, f"sk-hgbr-{loss}",
            ensemble.HistGradientBoostingRegressor(loss=loss, **hgb, **extra), kind)
    for kind in ("binary", "multiclass"):
        b[f"sk-hgbc-{kind}"] = functools.partial(
            _sklearn, f"sk-hgbc-{kind}", ensemble.HistGradientBoostingClassifier(**hgb), kind)
    forests = {
        "sk-rfr": (ensemble.RandomForestRegressor(6, max_depth=4, random_state=0), "real"),
        "sk-etr": (ensemble.ExtraTreesRegressor(6, max_depth=4, random_state=0), "real"),
        "sk-rfc-binary": (ensemble.RandomForestClassifier(6, max_depth=4, random_state=0),
                          "binary"),
        "sk-etc-multiclass": (ensemble.ExtraTreesClassifier(6, max_depth=4, random_state=0),
                              "multiclass"),
        "sk-tree-multiclass": (tree.DecisionTreeClassifier(max_depth=4, random_state=0),
                               "multiclass"),
    }
    for name, (model, kind) in forests.items():
        b[name] = functools.partial(_forest, name, model, kind)
    return b


_BUILDERS = _builders()
NAMES = sorted(_BUILDERS)


@functools.lru_cache(maxsize=None)
def case(name: str) -> OutputCase:
    """The trained case ``name`` (one of ``NAMES``), trained once per session."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        pytest.fail(f"no output case {name!r}")
    return builder()
