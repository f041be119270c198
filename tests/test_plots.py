"""treelens.plots: each plot rendered to PNG with the Agg backend from real SHAP values, the
image checked not blank and the drawn numbers checked against the values."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import treelens

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from treelens import plots  # noqa: E402

N_ROWS, N_FEATURES = 200, 12


@pytest.fixture(scope="module")
def explained():
    """A real XGBoost regressor's SHAP values as an Explanation-like object."""
    xgboost = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    X[::11, 3] = np.nan
    y = 2 * X[:, 0] + X[:, 1] * X[:, 2] + np.nan_to_num(X[:, 3]) + 0.1 * rng.normal(size=N_ROWS)
    model = xgboost.XGBRegressor(n_estimators=30, max_depth=4).fit(X, y)
    explainer = treelens.TreeExplainer(model)
    phi = explainer.shap_values(X)
    names = [f"x{j}" for j in range(N_FEATURES)]
    return SimpleNamespace(values=phi, base_values=np.full(N_ROWS, explainer.expected_value),
                           data=X, feature_names=names)


def _assert_drawn(path):
    """The PNG exists and is not blank: many non-white pixels in several colours."""
    image = matplotlib.image.imread(str(path))[..., :3]
    ink = np.any(image < 0.95, axis=-1)
    assert ink.mean() > 0.01, f"{path.name}: only {ink.mean():.2%} of the pixels are drawn"
    colours = np.unique((image[ink] * 255).astype(np.uint8), axis=0)
    assert len(colours) > 10, f"{path.name}: {len(colours)} colours"


def test_beeswarm(explained, tmp_path):
    path = tmp_path / "beeswarm.png"
    ax = plots.beeswarm(explained, max_display=5, path=path)
    _assert_drawn(path)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    order = np.argsort(-np.abs(explained.values).mean(axis=0), kind="stable")
    assert labels[0] == explained.feature_names[order[0]]
    assert labels[-1] == f"sum of {N_FEATURES - 4} other features"
    top = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(top)[:, 0], explained.values[:, order[0]])
    assert np.abs(np.asarray(top)[:, 1] - (len(labels) - 1)).max() <= 0.4 + 1e-12


def test_bar_is_mean_absolute_shap(explained, tmp_path):
    path = tmp_path / "bar.png"
    ax = plots.bar(explained, max_display=N_FEATURES, path=path)
    _assert_drawn(path)
    widths = [p.get_width() for p in ax.patches]
    want = np.sort(np.abs(explained.values).mean(axis=0))[::-1]
    np.testing.assert_allclose(widths, want)


def test_bar_of_one_row_shows_signed_values(explained, tmp_path):
    path = tmp_path / "bar_row.png"
    ax = plots.bar(explained.values[7], feature_names=explained.feature_names, path=path)
    _assert_drawn(path)
    widths = np.array([p.get_width() for p in ax.patches])
    assert (widths < 0).any() and (widths > 0).any()
    top = np.argsort(-np.abs(explained.values[7]), kind="stable")[:9]
    np.testing.assert_allclose(widths[:9], explained.values[7, top])


def test_waterfall_goes_from_expected_value_to_the_prediction(explained, tmp_path):
    path = tmp_path / "waterfall.png"
    row = 3
    ax = plots.waterfall(explained, row=row, max_display=6, path=path)
    _assert_drawn(path)
    bars = ax.patches
    phi, base = explained.values[row], explained.base_values[row]
    assert np.isclose(sum(p.get_width() for p in bars), phi.sum())
    lowest = min(bars, key=lambda p: p.get_y())
    assert np.isclose(lowest.get_x(), base)
    highest = max(bars, key=lambda p: p.get_y())
    assert np.isclose(highest.get_x() + highest.get_width(), base + phi.sum())
    assert f"f(x) = {base + phi.sum():.4g}" in ax.get_xlabel()


def test_scatter_plots_values_against_shap(explained, tmp_path):
    path = tmp_path / "scatter.png"
    ax = plots.scatter(explained, "x3", color="x0", path=path)
    _assert_drawn(path)
    points = np.asarray(ax.collections[0].get_offsets())
    shown = ~np.isnan(explained.data[:, 3])
    np.testing.assert_array_equal(points[:, 0], explained.data[shown, 3])
    np.testing.assert_array_equal(points[:, 1], explained.values[shown, 3])


def test_arrays_dataframes_and_multiclass_outputs(tmp_path):
    pd = pytest.importorskip("pandas")
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(150, 4)), columns=["a", "b", "c", "d"])
    y = np.digitize(X.a + X.b, [-0.5, 0.5])
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    explainer = treelens.TreeExplainer(model)
    phi = explainer.shap_values(X)  # [n, m, 3]
    with pytest.raises(ValueError, match="output="):
        plots.beeswarm(phi, data=X)
    ax = plots.beeswarm(phi, data=X, output=2, path=tmp_path / "multi.png")
    _assert_drawn(tmp_path / "multi.png")
    assert {t.get_text() for t in ax.get_yticklabels()} == {"a", "b", "c", "d"}
    ax = plots.waterfall(phi, row=0, data=X, base_values=explainer.expected_value, output=1,
                         path=tmp_path / "multi_waterfall.png")
    _assert_drawn(tmp_path / "multi_waterfall.png")
    total = explainer.expected_value[1] + phi[0, :, 1].sum()
    assert np.isclose(total, explainer.predict(X.iloc[:1])[0, 1])
    assert f"f(x) = {total:.4g}" in ax.get_xlabel()


def test_shap_explanation_is_accepted(explained, tmp_path):
    shap = pytest.importorskip("shap")
    exp = shap.Explanation(values=explained.values, base_values=explained.base_values,
                           data=explained.data, feature_names=explained.feature_names)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    plots.bar(exp, ax=axes[0])
    plots.scatter(exp, "x1", ax=axes[1])
    fig.savefig(tmp_path / "shap_explanation.png")
    plt.close(fig)
    _assert_drawn(tmp_path / "shap_explanation.png")
    ax = plots.waterfall(exp[4], path=tmp_path / "shap_row.png")  # one row: 1-D values
    _assert_drawn(tmp_path / "shap_row.png")
    total = explained.base_values[4] + explained.values[4].sum()
    assert f"f(x) = {total:.4g}" in ax.get_xlabel()


@pytest.mark.parametrize("kind", ["box", "errorbar"])
def test_permutation_importance_plot(explained, tmp_path, kind):
    importances = np.abs(explained.values[:5]).T  # [m, 5 repeats] of real magnitudes
    result = SimpleNamespace(importances=importances)
    path = tmp_path / f"importance_{kind}.png"
    fig = plots.importance_plot(result, explained.feature_names, path=path, kind=kind,
                                max_display=6)
    _assert_drawn(path)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    order = np.argsort(-importances.mean(axis=1), kind="stable")
    assert labels[-1] == explained.feature_names[order[0]] and len(labels) == 6


def test_bad_inputs_raise(explained):
    with pytest.raises(ValueError, match="feature names"):
        plots.bar(explained.values, feature_names=["a"])
    with pytest.raises(ValueError, match="data has shape"):
        plots.beeswarm(explained.values, data=explained.data[:, :3])
    with pytest.raises(ValueError, match="needs the feature values"):
        plots.scatter(explained.values, 0)
    with pytest.raises(ValueError, match="unknown feature"):
        plots.scatter(explained, "nope")
    with pytest.raises(IndexError, match="row 500"):
        plots.waterfall(explained, row=500)
    with pytest.raises(ValueError, match="kind"):
        plots.importance_plot(SimpleNamespace(importances=np.ones((2, 3))), kind="violin")
    plt.close("all")
