"""Output functions against the libraries, one real model per objective (``output_zoo``).

- ``Forest.predict(output="response")`` equals the library's ``predict`` / ``predict_proba``;
- background SHAP of ``model_output="probability"`` / ``"log_loss"`` equals a brute-force
  oracle built on the library's own predictions: for every explained row ``x`` and background
  row ``z``, the exact single-reference Shapley values of the library's margin on the hybrid
  rows ``x_S z_notS`` (all ``2^m`` subsets), rescaled by ``(G(x) - G(z)) / (f(x) - f(z))``
  with ``G`` the library's prediction (or its loss), averaged over the background;
- permutation importances equal ``sklearn.inspection.permutation_importance`` run on the
  real model;
- the batch job's ``prediction`` columns equal the library's predictions.
"""
from __future__ import annotations

import warnings
from math import factorial

import numpy as np
import pytest

import treelens
from output_zoo import NAMES, case

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")
pytest.importorskip("sklearn")

#: Objectives whose prediction is not a probability (no probability / log-loss SHAP).
NO_PROBABILITY = {"xgb-binary:hinge", "xgb-binary:logitraw"}
F32_TOL = 4 * float(np.finfo(np.float32).eps)


def _tol(c) -> float:
    return F32_TOL if c.float32 else 1e-12


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("name", NAMES)
def test_response_equals_library_prediction(name):
    c = case(name)
    forest = treelens.load(c.model)
    got = forest.predict(c.X, output="response")
    want = c.predict(c.X)
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= _tol(c) * np.maximum(1.0, np.abs(want))), name
    margin = forest.predict(c.X, output="margin").reshape(len(c.X), -1)
    np.testing.assert_allclose(margin, c.margin(c.X), rtol=_tol(c), atol=_tol(c))


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("lgb-")])
def test_lightgbm_files_record_the_same_output_function(name, tmp_path):
    import json

    c = case(name)
    booster = c.model.booster_
    booster.save_model(str(tmp_path / "model.txt"))
    (tmp_path / "dump.json").write_text(json.dumps(booster.dump_model()))
    from_text = treelens.load(tmp_path / "model.txt").output_function
    from_dump = treelens.load(tmp_path / "dump.json").output_function
    assert from_text == from_dump == treelens.load(c.model).output_function


def test_output_function_parameters_are_recorded():
    assert treelens.load(case("lgb-binary-sigmoid=2.0").model).output_function.sigmoid_alpha == 2
    ova = treelens.load(case("lgb-multiclassova-sigmoid=1.5").model).output_function
    assert (ova.link, ova.sigmoid_alpha, ova.classifier) == ("logistic", 1.5, True)
    assert treelens.load(case("lgb-regression-reg_sqrt=True").model).objective == "sqrt"
    rf = treelens.load(case("lgb-binary-boosting_type=rf").model).output_function
    assert rf.margin_scale == pytest.approx(1 / 6)
    half = treelens.load(case("sk-gbc-exponential-binary").model).output_function
    assert (half.link, half.sigmoid_alpha) == ("logistic", 2.0)
    assert treelens.load(case("xgb-binary:hinge").model).objective == "hinge"


def test_predict_rejects_unknown_output():
    forest = treelens.load(case("xgb-reg:squarederror").model)
    with pytest.raises(ValueError, match="output must be one of"):
        forest.predict(case("xgb-reg:squarederror").X, output="probability")


# ------------------------------------------------------------------ background SHAP


def _rescaled_oracle(c, X, Z, explained, y):
    """Background SHAP ``[n, m, k]`` and the explained output ``[n, k]`` (see the module
    notes); ``explained(rows, labels) -> [r, k]`` from the library's predictions."""
    n, m = X.shape
    masks = ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1).astype(bool)   # [2^m, m]
    hybrid = np.where(masks[None, None], X[:, None, None, :], Z[None, :, None, :])
    f = c.margin(hybrid.reshape(-1, m)).reshape(n, len(Z), 2 ** m, -1)
    phi = np.zeros((n, len(Z), m, f.shape[3]))
    for i in range(m):
        for s in np.flatnonzero(~masks[:, i]):
            size = int(masks[s].sum())
            weight = factorial(size) * factorial(m - size - 1) / factorial(m)
            phi[:, :, i] += weight * (f[:, :, s | (1 << i)] - f[:, :, s])
    fx, fz = f[:, :, -1], f[:, :, 0]
    labels = None if y is None else np.repeat(y, len(Z))
    gx = explained(X, y)
    gz = explained(np.tile(Z, (n, 1)), labels).reshape(n, len(Z), -1)
    delta = fx - fz
    same = delta == 0.0
    factor = np.where(same, 1.0, (gx[:, None] - gz) / np.where(same, 1.0, delta))
    return (phi * factor[:, :, None]).mean(axis=1), gx


def _library_loss(c, link):
    def loss(rows, y):
        p = c.outputs(rows)[:, 0]
        if link == "logistic":
            value = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
        elif link == "log":
            value = p - y * np.log(p)
        else:
            value = (p - y) ** 2
        return value[:, None]
    return loss


def _explain(c, model_output, y=None):
    X, Z = c.X[:4], c.X[100:106]
    ex = treelens.TreeExplainer(c.model, data=Z, model_output=model_output)
    phi = ex.shap_values(X, y=y, check_additivity=True)
    return ex, X, Z, phi.reshape(len(X), X.shape[1], -1)


def _assert_oracle(c, got, want, explained_sum):
    scale = max(1.0, float(np.abs(want).max()))
    tol = 1e-4 if c.float32 else 1e-9
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale, err_msg=c.name)
    assert np.all(np.isfinite(explained_sum))


@pytest.mark.parametrize("name", NAMES)
def test_probability_shap_matches_library_oracle(name):
    c = case(name)
    if name in NO_PROBABILITY or treelens.load(c.model).objective == "softmax":
        with pytest.raises(ValueError, match="probability.*is not defined"):
            treelens.TreeExplainer(c.model, data=c.X[:5], model_output="probability")
        return
    ex, X, Z, phi = _explain(c, "probability")
    want, gx = _rescaled_oracle(c, X, Z, lambda rows, _: c.outputs(rows), None)
    _assert_oracle(c, phi, want, gx)
    ev = np.reshape(ex.expected_value, (1, -1))
    tol = 1e-5 if c.float32 else 1e-9
    np.testing.assert_allclose(phi.sum(axis=1) + ev, gx, rtol=0, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_log_loss_shap_matches_library_oracle(name):
    c = case(name)
    forest = treelens.load(c.model)
    single = forest.n_outputs == 1
    if name in NO_PROBABILITY or not single or forest.objective not in (
            "identity", "logistic", "log"):
        with pytest.raises(ValueError, match="log_loss"):
            treelens.TreeExplainer(c.model, data=c.X[:5], model_output="log_loss")
        return
    y = np.asarray(c.y[:4], dtype=np.float64)
    ex, X, Z, phi = _explain(c, "log_loss", y)
    want, gx = _rescaled_oracle(c, X, Z, _library_loss(c, forest.objective), y)
    _assert_oracle(c, phi, want, gx)
    tol = 1e-5 if c.float32 else 1e-9
    np.testing.assert_allclose(phi.sum(axis=1)[:, 0] + ex.expected_value(y), gx[:, 0],
                               rtol=0, atol=tol * max(1.0, float(np.abs(gx).max())))


# -------------------------------------------------------------- permutation importance


def _scorings(c, forest):
    if not c.classifier:
        return ["r2", "neg_mean_absolute_error"]
    scoring = ["accuracy"]
    if len(c.model.classes_) == 2:
        scoring.append("roc_auc")
    if c.name not in NO_PROBABILITY:
        scoring.append("neg_log_loss")
    return scoring


@pytest.mark.parametrize("name", NAMES)
def test_permutation_importance_matches_sklearn(name):
    from sklearn.inspection import permutation_importance

    c = case(name)
    forest = treelens.load(c.model)
    scoring = _scorings(c, forest)
    got = treelens.permutation_importance(c.model, c.X, c.y, scoring=scoring, n_repeats=2,
                                          random_state=7)
    want = permutation_importance(c.estimator, c.X, c.y, scoring=scoring, n_repeats=2,
                                  random_state=7)
    for s in scoring:
        atol = 1e-5 if c.float32 else 1e-10
        if s == "roc_auc" and forest.objective == "identity":
            # Forest class fractions averaged in another order round differently, which
            # breaks some of their many ties the other way.
            atol = 1e-4
        np.testing.assert_allclose(got[s].importances, want[s].importances, rtol=0, atol=atol,
                                   err_msg=f"{name} {s}")
    if c.name in NO_PROBABILITY:
        with pytest.raises(ValueError, match="needs class probabilities"):
            treelens.permutation_importance(c.model, c.X, c.y, scoring="neg_log_loss")


# ------------------------------------------------------------------------ batch job


@pytest.mark.parametrize("name", ["lgb-binary-sigmoid=2.0", "lgb-regression-reg_sqrt=True",
                                  "sk-gbc-exponential-binary", "xgb-binary:hinge",
                                  "lgb-multiclassova-sigmoid=1.5"])
def test_batch_prediction_column_equals_library(name):
    pa = pytest.importorskip("pyarrow")
    from treelens.batch import explain_table

    c = case(name)
    forest = treelens.load(c.model)
    names = list(forest.feature_names or [f"f{i}" for i in range(forest.n_features)])
    table = pa.table({n: c.X[:, j] for j, n in enumerate(names)})
    out = explain_table(c.model, table, prediction=True)
    want = c.outputs(c.X)
    k = want.shape[1]
    for o in range(k):
        column = "prediction" + ("" if k == 1 else f"__{o}")
        np.testing.assert_allclose(out.column(column).to_numpy(), want[:, o], rtol=0,
                                   atol=_tol(c))


@pytest.mark.parametrize("bad", ["sigmoid:-1", "sigmoid:abc", "sigmoid:nan"])
def test_malformed_lightgbm_sigmoid(bad, tmp_path):
    text = case("lgb-binary-sigmoid=2.0").model.booster_.model_to_string()
    assert "\nobjective=binary sigmoid:2\n" in text
    path = tmp_path / "model.txt"
    path.write_text(text.replace("\nobjective=binary sigmoid:2\n", f"\nobjective=binary {bad}\n"))
    with pytest.raises(ValueError, match="needs a positive finite sigmoid"):
        treelens.load(path)


def test_lightgbm_random_forest_averages_the_iterations_used():
    c = case("lgb-binary-boosting_type=rf")
    forest = treelens.load(c.model, num_iteration=3)
    assert forest.output_function.margin_scale == pytest.approx(1 / 3)
    want = c.model.booster_.predict(c.X, num_iteration=3)
    np.testing.assert_allclose(forest.predict(c.X, output="response")[:, 1], want, rtol=0,
                               atol=1e-12)
