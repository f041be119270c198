"""Properties every model kind must have: additivity and thread-count determinism."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import zoo
from helpers import (
    ADDITIVITY_TOL,
    FLOAT32_MARGIN_TOL,
    as3d,
    assert_bitwise,
    assert_close,
    explain,
    float64_margin,
    load_spec,
    scale_of,
)
from spec_factory import ALL_ROUTINGS, TreeShape, probe_rows, random_spec
from treelens import _core
from treelens._forest import build


@pytest.mark.parametrize("name", zoo.ALL_CASES)
def test_additivity(name, cases):
    """sum(phi) + expected_value == margin, to 1e-9 relative.

    XGBoost margins are accumulated in float32 (as XGBoost does), so the 1e-9 check
    runs against the same trees summed in float64, and the float32 margin is held
    to float32 precision.
    """
    case = cases[name]
    X = case.X
    phi, ev, margin = explain(case.model, X)
    total = phi.sum(axis=1) + ev
    spec = load_spec(case.model, case.library)
    exact = float64_margin(spec, X) if spec.float32_margin else margin
    assert_close(total, exact, ADDITIVITY_TOL * scale_of(exact), "sum(phi) + expected_value")
    assert_close(total, margin, FLOAT32_MARGIN_TOL * scale_of(margin) * len(spec.trees),
                 "sum(phi) + expected_value vs predict")


@pytest.mark.parametrize("routing", ALL_ROUTINGS)
def test_additivity_random_forest(routing):
    spec = random_spec(11, routing=routing, n_features=12, n_trees=20, n_outputs=2,
                       shape=TreeShape(max_depth=8, p_leaf=0.1))
    X = probe_rows(spec, 12, n_rows=300)
    forest = build(spec)
    total = forest.shap_values(X, 1).sum(axis=1) + forest.expected_value()
    margin = forest.predict(X, 1)
    assert_close(total, margin, ADDITIVITY_TOL * scale_of(margin), "additivity")


@pytest.mark.parametrize("name", zoo.ALL_CASES)
def test_thread_count_does_not_change_results(name, cases):
    case = cases[name]
    X = np.concatenate([case.X] * 3)
    ref = explain(case.model, X, n_threads=1)
    for n_threads in (2, 3):
        got = explain(case.model, X, n_threads=n_threads)
        for what, a, b in zip(("shap_values", "expected_value", "predict"), got, ref):
            assert_bitwise(a, b, f"{what} with n_threads={n_threads}")


@pytest.mark.parametrize("routing", ALL_ROUTINGS)
def test_thread_count_does_not_change_core_results(routing):
    spec = random_spec(21, routing=routing, n_features=9, n_trees=30, n_outputs=3,
                       vector_leaves=True, shape=TreeShape(max_depth=8, p_leaf=0.15))
    spec = dataclasses.replace(spec, float32_margin=routing == "xgboost")
    X = probe_rows(spec, 22, n_rows=257)
    forest = build(spec)
    for rows in (X, X[:1], X[:5]):      # few rows: work may be split across trees instead
        ref = (forest.shap_values(rows, 1), forest.predict(rows, 1))
        for n_threads in (2, 3):
            what = f"{len(rows)} rows, n_threads={n_threads}"
            assert_bitwise(forest.shap_values(rows, n_threads), ref[0], "shap " + what)
            assert_bitwise(forest.predict(rows, n_threads), ref[1], "predict " + what)


def test_shap_is_row_independent(cases):
    """A row's attribution does not depend on which other rows share the call."""
    case = cases["lgb_nan"]
    phi_all, _, _ = explain(case.model, case.X)
    phi_one = np.concatenate([as3d(explain(case.model, case.X[i:i + 1])[0]) for i in range(5)])
    assert_bitwise(phi_one, phi_all[:5], "row-by-row vs batched")


@pytest.mark.parametrize("routing", ALL_ROUTINGS)
@pytest.mark.parametrize("vector_leaves", [False, True])
@pytest.mark.parametrize("depth, n_features", [(7, 7), (12, 14)])
def test_shap_is_row_independent_for_every_block_width(routing, vector_leaves, depth,
                                                       n_features):
    """Rows are explained in blocks of sixteen, in pairs when a call has fewer than
    sixteen, and one row alone by its own kernel (one-output leaves, at most eight features
    on a path: the depth-12 trees have paths with more, which go to the pair kernel); each
    row gets the same bits whichever block and lane it lands in."""
    spec = random_spec(31, routing=routing, n_features=n_features, n_trees=12, n_outputs=2,
                       vector_leaves=vector_leaves,
                       shape=TreeShape(max_depth=depth, p_leaf=0.1))
    X = probe_rows(spec, 32, n_rows=53)
    forest = build(spec)
    ref = forest.shap_values(X, 1)
    for start, stop in ((0, 1), (3, 18), (5, 20), (7, 53), (40, 53)):
        assert_bitwise(forest.shap_values(X[start:stop], 2), ref[start:stop],
                       f"rows {start}:{stop} alone vs in one call")
    for i in range(len(X)):
        assert_bitwise(forest.shap_values(X[i:i + 1], 2), ref[i:i + 1], f"row {i} alone")


@pytest.mark.parametrize("routing", ALL_ROUTINGS)
@pytest.mark.parametrize("n_rows", [1, 2, 40])
def test_shap_values_with_output_returns_predict_bitwise(routing, n_rows):
    """shap_values(..., with_output=True) gives the margins of predict bit for bit; a lone
    row takes them from the leaves its SHAP pass reaches (float32 sums for XGBoost)."""
    spec = random_spec(41, routing=routing, n_features=6, n_trees=25, n_outputs=3,
                       shape=TreeShape(max_depth=6, p_leaf=0.1))
    spec = dataclasses.replace(spec, float32_margin=routing == "xgboost")
    X = probe_rows(spec, 42, n_rows=40)
    forest = build(spec)
    for start in range(0, len(X), n_rows):
        rows = X[start:start + n_rows]
        phi, margins = forest.shap_values(rows, 2, with_output=True)
        assert_bitwise(phi, forest.shap_values(rows, 1), f"rows {start}: values")
        assert_bitwise(margins, forest.predict(rows, 1), f"rows {start}: margins")


@pytest.mark.parametrize("routing", ["xgboost", "sklearn"])
def test_inputs_beyond_the_float32_range_round_as_numpy_does(routing):
    """Float32-routing models read a float64 input as its float32 rounding, also beyond the
    float range: just above the largest float it stays the largest float, further out it is
    +-inf (numpy's IEEE cast). Predictions, SHAP and permutation margins agree either way."""
    spec = random_spec(3, routing=routing, n_features=4, n_trees=5,
                       shape=TreeShape(max_depth=4, p_inf_threshold=0.2))
    forest = build(spec)
    top = float(np.finfo(np.float32).max)
    edges = [top, top * (1 + 2.0**-25), top * (1 + 2.0**-24), 1e39, 1e308, np.inf]
    values = np.array(edges + [-v for v in edges] + [0.0, 1.0])
    rows = np.random.default_rng(0).choice(values, size=(64, spec.n_features))
    with np.errstate(over="ignore"):
        rounded = rows.astype(np.float32)
    perms = np.random.default_rng(1).permuted(np.tile(np.arange(64), (2, 1)), axis=1)
    offsets, cols = np.arange(spec.n_features + 1), np.arange(spec.n_features, dtype=np.int32)
    for name, call in [("predict", lambda X: forest.predict(X, 2)),
                       ("shap", lambda X: forest.shap_values(X, 2)),
                       ("permuted margins",
                        lambda X: _core.permuted_margins(forest, X, offsets, cols, perms, 2))]:
        assert_bitwise(call(rows), call(rounded), f"{routing} {name}")
