"""Permutation importance: targets and weights checked as scikit-learn checks them, and
classification scores computed in bounded memory."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import treelens
import treelens.permutation as permutation
from output_zoo import case

pytest.importorskip("lightgbm")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def regressor():
    c = case("lgb-regression")
    return c.model, c.X, c.y


@pytest.fixture(scope="module")
def classifier():
    c = case("lgb-binary-sigmoid=2.0")
    return c.model, c.X, c.y


def test_two_column_y_for_a_single_output_model(regressor, classifier):
    for model, X, y in (regressor, classifier):
        with pytest.raises(ValueError, match=r"y has shape \(300, 2\) \(2 columns\)"):
            treelens.permutation_importance(model, X, np.column_stack([y, y]))
    model, X, y = regressor
    one_column = treelens.permutation_importance(model, X, y[:, None], random_state=0)
    flat = treelens.permutation_importance(model, X, y, random_state=0)
    np.testing.assert_array_equal(one_column.importances, flat.importances)


def test_multi_output_model_needs_one_column_per_output():
    from sklearn.ensemble import RandomForestRegressor

    X, y = case("sk-rfr").X, case("sk-rfr").y
    model = RandomForestRegressor(4, max_depth=3, random_state=0).fit(X, np.column_stack([y, -y]))
    with pytest.raises(ValueError, match=r"the model has 2 outputs: expected shape \(300, 2\)"):
        treelens.permutation_importance(model, X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_y(regressor, bad):
    model, X, y = regressor
    y = y.copy()
    y[[3, 7]] = bad
    with pytest.raises(ValueError, match=r"y contains NaN or infinity \(2 entries\)"):
        treelens.permutation_importance(model, X, y)


def test_nan_label_of_a_classifier(classifier):
    model, X, y = classifier
    labels = y.astype(np.float64)
    labels[0] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        treelens.permutation_importance(model, X, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_sample_weight(regressor, bad):
    model, X, y = regressor
    w = np.ones(len(y))
    w[5] = bad
    with pytest.raises(ValueError, match=r"sample_weight contains NaN or infinity \(1 entr"):
        treelens.permutation_importance(model, X, y, sample_weight=w)


def test_all_zero_weights(regressor, classifier):
    for model, X, y in (regressor, classifier):
        with pytest.raises(ValueError, match="sample_weight sums to zero"):
            treelens.permutation_importance(model, X, y, sample_weight=np.zeros(len(y)))


def test_zero_weights_on_the_sampled_rows(regressor):
    model, X, y = regressor
    rows, _ = permutation.draw_permutations(1, len(y), 5, 5)
    w = np.ones(len(y))
    w[rows] = 0.0
    with pytest.raises(ValueError, match="max_samples=5 have sample_weight summing to zero"):
        treelens.permutation_importance(model, X, y, sample_weight=w, max_samples=5,
                                        random_state=1)


def test_max_samples_drawing_no_row(regressor):
    model, X, y = regressor
    with pytest.raises(ValueError, match="max_samples=0.001 of 300 rows draws no row"):
        treelens.permutation_importance(model, X, y, max_samples=0.001)


def test_no_rows(regressor):
    model, X, y = regressor
    with pytest.raises(ValueError, match="X has no rows"):
        treelens.permutation_importance(model, X[:0], y[:0])


# ------------------------------------------------------------------------- memory


@pytest.mark.parametrize("scoring,temporaries", [("roc_auc", 22), ("accuracy", 14)])
def test_classification_scores_in_bounded_memory(monkeypatch, scoring, temporaries):
    """With the chunk limits at their minimum (one group of margins, one repeat scored at a
    time) the peak is the permutations and one group's margins (a row vector per repeat
    each) plus a fixed number of row vectors, whatever the numbers of repeats and features.
    Scoring a whole chunk at once needs about 10 more row vectors per repeat for roc_auc
    (103 in all here) and 4 for accuracy (51); scored in slices they peak at 32 and 25."""
    import lightgbm

    rng = np.random.default_rng(3)
    n, m, repeats = 100_000, 6, 8
    X = rng.normal(size=(n, m))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1).fit(
        X[:5000], y[:5000])
    monkeypatch.setattr(permutation, "CHUNK_BYTES", 1)
    monkeypatch.setattr(permutation, "SCORE_BYTES", 1)
    treelens.permutation_importance(model, X[:100], y[:100], scoring=scoring, n_repeats=2)
    tracemalloc.start()
    try:
        result = treelens.permutation_importance(model, X, y, scoring=scoring,
                                                 n_repeats=repeats, random_state=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.importances.shape == (m, repeats)
    row_vector = 8 * n
    bound = (2 * repeats + temporaries) * row_vector
    assert peak < bound, (f"{scoring}: peak {peak / 2**20:.1f} MiB exceeds "
                          f"{bound / 2**20:.1f} MiB")
