"""CatBoost models: treelens against CatBoost's own ShapValues and raw predictions, shap's
TreeExplainer, the brute-force oracle, and additivity; saved .cbm and JSON files."""
from __future__ import annotations

import json
import string

import numpy as np
import pytest

import oracle
import treelens
from helpers import ADDITIVITY_TOL, ORACLE_TOL, as1d, as2d, as3d, assert_close, scale_of
from treelens.loaders._cityhash import city_hash64
from treelens.loaders.catboost import float_border_threshold, load_catboost

catboost = pytest.importorskip("catboost")
pd = pytest.importorskip("pandas")

N_ROWS = 400


def _numeric_data(seed: int = 0, n_features: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, n_features))
    X[rng.random(N_ROWS) < 0.15, 1] = np.nan
    signal = X[:, 0] + 2 * np.nan_to_num(X[:, 1], nan=2.0) + X[:, 2] * X[:, 3]
    return X, signal + 0.1 * rng.normal(size=N_ROWS)


def _regressor(nan_mode="Min", depth=4, iterations=25):
    X, y = _numeric_data()
    model = catboost.CatBoostRegressor(iterations=iterations, depth=depth, nan_mode=nan_mode,
                                       random_seed=0, verbose=0, allow_writing_files=False)
    return model.fit(X, y), X


def _binary():
    X, y = _numeric_data(1)
    model = catboost.CatBoostClassifier(iterations=25, depth=3, random_seed=0, verbose=0,
                                        allow_writing_files=False)
    return model.fit(X, (y > np.median(y)).astype(int)), X


def _multiclass():
    X, y = _numeric_data(2)
    model = catboost.CatBoostClassifier(iterations=15, depth=3, loss_function="MultiClass",
                                        random_seed=0, verbose=0, allow_writing_files=False)
    return model.fit(X, np.digitize(y, np.quantile(y, [0.33, 0.66]))), X


def _categorical_frame(seed: int = 3):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "num": rng.normal(size=N_ROWS),
        "colour": rng.choice(["red", "green", "blue", "cyan"], N_ROWS),
        "other": rng.normal(size=N_ROWS),
        "level": rng.integers(0, 3, N_ROWS),
    })
    y = (df.num + 2 * (df.colour == "green") - (df.colour == "cyan") + 1.5 * (df.level == 1)
         + 0.1 * rng.normal(size=N_ROWS))
    return df, y


def _one_hot():
    df, y = _categorical_frame()
    model = catboost.CatBoostRegressor(iterations=30, depth=3, one_hot_max_size=10,
                                       random_seed=0, verbose=0, allow_writing_files=False)
    return model.fit(df, y, cat_features=["colour", "level"]), df


def _multi_target():
    X, y = _numeric_data(4)
    model = catboost.CatBoostRegressor(iterations=15, depth=3, loss_function="MultiRMSE",
                                       random_seed=0, verbose=0, allow_writing_files=False)
    return model.fit(X, np.column_stack([y, np.nan_to_num(X[:, 1]) * X[:, 4]])), X


BUILDERS = {
    "regressor_nan_min": lambda: _regressor("Min"),
    "regressor_nan_max": lambda: _regressor("Max"),
    "binary": _binary,
    "multiclass": _multiclass,
    "one_hot": _one_hot,
    "multi_target": _multi_target,
}


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = BUILDERS[name]()
        return cache[name]

    return get


def _pool(model, X):
    return catboost.Pool(X, cat_features=model.get_cat_feature_indices() or None)


def _native(model, X):
    """CatBoost's (phi [n, m, k], expected value [k], raw margin [n, k])."""
    sv = np.asarray(model.get_feature_importance(_pool(model, X), type="ShapValues"))
    if sv.ndim == 2:
        sv = sv[:, None, :]
    margin = as2d(model.predict(X, prediction_type="RawFormulaVal"), len(X))
    return sv[:, :, :-1].transpose(0, 2, 1), sv[0, :, -1], margin


def _with_missing(X):
    """Rows with NaN added in a feature trained without missing values."""
    if isinstance(X, np.ndarray):
        X = X.copy()
        X[::7, 0] = np.nan
        return X
    X = X.copy()
    X.loc[X.index[::7], "num"] = np.nan
    X.loc[X.index[:5], "colour"] = "unseen"
    return X


@pytest.mark.parametrize("name", list(BUILDERS))
def test_matches_catboost_shap_values_and_raw_prediction(name, models):
    model, X = models(name)
    X = _with_missing(X)
    phi, expected, margin = _native(model, X)
    explainer = treelens.TreeExplainer(model)
    got = as3d(explainer.shap_values(X))
    assert_close(got, phi, 1e-12 * scale_of(phi), f"{name}: SHAP vs CatBoost ShapValues")
    assert_close(as1d(explainer.expected_value), expected, 1e-12 * scale_of(expected),
                 f"{name}: expected value")
    assert_close(as2d(explainer.predict(X), len(X)), margin, 1e-12 * scale_of(margin),
                 f"{name}: margin vs RawFormulaVal")
    gap = got.sum(axis=1) + as1d(explainer.expected_value) - margin
    assert_close(gap, np.zeros_like(gap), ADDITIVITY_TOL * scale_of(margin), "additivity")


@pytest.mark.parametrize("name", ["regressor_nan_min", "multiclass", "one_hot"])
def test_matches_shap_tree_explainer(name, models):
    shap = pytest.importorskip("shap")
    model, X = models(name)
    X = X[:60]
    want = shap.TreeExplainer(model).shap_values(X)
    want = as3d(np.stack(want, axis=-1) if isinstance(want, list) else want)
    got = as3d(treelens.TreeExplainer(model).shap_values(X))
    assert_close(got, want, 1e-10 * scale_of(want), f"{name}: treelens vs shap")


@pytest.mark.parametrize("name", ["regressor_nan_max", "binary", "multiclass", "one_hot"])
def test_saved_cbm_and_json_files(name, models, tmp_path):
    model, X = models(name)
    pool = _pool(model, X)
    cbm, js = tmp_path / "model.cbm", tmp_path / "model.json"
    model.save_model(str(cbm))
    model.save_model(str(js), format="json", pool=pool)
    want = treelens.TreeExplainer(model).shap_values(X)
    for path in (cbm, js, str(js)):
        got = treelens.TreeExplainer(path).shap_values(X)
        np.testing.assert_array_equal(got, want)
    with open(js) as fh:
        parsed = treelens.load(load_catboost(json.load(fh)))
    np.testing.assert_array_equal(parsed.shap_values(X), want)
    assert parsed.n_trees == model.tree_count_


def test_scale_and_bias(models):
    """A model rescaled with set_scale_and_bias: predict is CatBoost's raw prediction, the
    values (which CatBoost refuses to compute for a scale other than 1) add up to it and
    equal the oracle's."""
    model, X = _regressor("Max", depth=3, iterations=8)
    model.set_scale_and_bias(0.5, [1.25])
    X = _with_missing(X)[:30]
    forest = treelens.load(model)
    margin = model.predict(X, prediction_type="RawFormulaVal")
    assert_close(forest.predict(X), margin, 1e-12 * scale_of(margin), "scaled margin")
    want, want_ev = oracle.shap_values(forest.spec, X)
    assert_close(forest.shap_values(X), want[:, :, 0], ORACLE_TOL * scale_of(want), "oracle")
    assert_close(forest.expected_value, want_ev[0], ORACLE_TOL * scale_of(want_ev), "ev")


def test_threshold_probes_route_as_catboost(models):
    """Values at, one double ulp around and halfway between float32 neighbours of every
    border take CatBoost's side (``float32(x) > border``)."""
    model, X = models("regressor_nan_min")
    spec = load_catboost(model)
    rows = []
    for tree in spec.trees:
        for node in np.flatnonzero(np.asarray(tree.left) >= 0):
            f = int(tree.feature[node])
            t = float(tree.threshold[node])
            for v in (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf),
                      float(np.float32(t)), float(np.nextafter(np.float32(t), np.float32(9)))):
                row = X[len(rows) % len(X)].copy()
                row[f] = v
                rows.append(row)
    P = np.array(rows)
    margin = model.predict(P, prediction_type="RawFormulaVal")
    assert_close(treelens.load(model).predict(P), margin, 1e-12 * scale_of(margin),
                 "probes around borders")


def test_border_threshold_is_last_double_below_the_next_float32():
    for border in (0.30530107021331787, -1.0, 1e-30, 3.0e38, 0.0):
        t = float_border_threshold(border)
        assert np.float32(t) <= np.float32(border)
        assert np.float32(np.nextafter(t, np.inf)) > np.float32(border)


def test_oracle_on_small_models(models):
    """Path-dependent TreeSHAP of the expanded oblivious trees against brute force."""
    for name in ("regressor_nan_min", "multiclass", "one_hot"):
        model, X = models(name)
        forest = treelens.load(model)
        rows = _with_missing(X)[:25]
        want, want_ev = oracle.shap_values(forest.spec, _encoded(forest, rows))
        assert not np.isnan(want).any() and not np.isnan(want_ev).any()
        got = as3d(forest.shap_values(rows))
        assert_close(got, as3d(want), ORACLE_TOL * scale_of(want), f"{name}: oracle")
        assert_close(as1d(forest.expected_value), as1d(want_ev), ORACLE_TOL * scale_of(want_ev),
                     f"{name}: oracle expected value")


def _encoded(forest, X):
    """The input as the core reads it (category codes in place of raw values)."""
    from treelens import _inputs

    return _inputs.to_matrix(X, forest.spec)


def test_one_hot_inputs_agree_across_containers(models):
    """Strings, pandas categories, integers and Arrow columns give CatBoost's margin."""
    model, df = models("one_hot")
    df = _with_missing(df)
    want = model.predict(df, prediction_type="RawFormulaVal")
    forest = treelens.load(model)
    frames = [df, df.astype({"colour": "category", "level": "category"})]
    pa = pytest.importorskip("pyarrow")
    frames.append(pa.Table.from_pandas(df))
    for frame in frames:
        assert_close(forest.predict(frame), want, 1e-12 * scale_of(want), type(frame).__name__)
    numeric = df.drop(columns="colour").assign(colour=0)[list(df.columns)]
    numeric_want = model.predict(numeric.astype({"colour": int}),
                                 prediction_type="RawFormulaVal")
    assert_close(forest.predict(numeric.to_numpy(dtype=np.float64)), numeric_want,
                 1e-12 * scale_of(numeric_want), "NumPy input with integer categories")


def test_batch_tables_with_categories(models):
    """explain_table reads Arrow string columns once, as the model's codes."""
    pa = pytest.importorskip("pyarrow")
    model, df = models("one_hot")
    df = _with_missing(df).assign(row_id=np.arange(len(df)))
    out = treelens.explain_table(model, pa.Table.from_pandas(df, preserve_index=False),
                                 keep=["row_id"])
    want = treelens.TreeExplainer(model).shap_values(df.drop(columns="row_id"))
    got = np.column_stack([out.column(c).to_numpy() for c in ["num", "colour", "other",
                                                                 "level"]])
    np.testing.assert_array_equal(got, want)
    assert out.column("row_id").to_pylist() == list(range(len(df)))


def test_fractional_category_is_refused(models):
    model, df = models("one_hot")
    bad = df.copy().astype({"level": float})
    bad.loc[bad.index[0], "level"] = 0.5
    with pytest.raises(TypeError, match="categorical feature"):
        treelens.load(model).predict(bad)


def test_ctr_features_raise_naming_the_feature():
    df, y = _categorical_frame()
    model = catboost.CatBoostRegressor(iterations=10, depth=3, one_hot_max_size=1,
                                       random_seed=0, verbose=0, allow_writing_files=False)
    model.fit(df, y, cat_features=["colour", "level"])
    with pytest.raises(NotImplementedError, match="'colour'"):
        treelens.TreeExplainer(model)


def test_non_symmetric_trees_are_refused():
    X, y = _numeric_data()
    model = catboost.CatBoostRegressor(iterations=5, depth=3, grow_policy="Depthwise",
                                       random_seed=0, verbose=0, allow_writing_files=False)
    model.fit(X, y)
    with pytest.raises(NotImplementedError, match="non-symmetric"):
        treelens.load(model)


def test_unfitted_and_corrupt_models_raise(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        treelens.load(catboost.CatBoostRegressor())
    bad = tmp_path / "bad.cbm"
    bad.write_bytes(b"CBM1" + b"\x00" * 40)
    with pytest.raises(ValueError, match="not a valid CatBoost model"):
        treelens.load(bad)


def test_malformed_json_raises_value_error(models, tmp_path):
    model, _ = models("regressor_nan_min")
    path = tmp_path / "model.json"
    model.save_model(str(path), format="json")
    doc = json.loads(path.read_text())
    del doc["oblivious_trees"][3]["leaf_values"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="malformed CatBoost JSON model"):
        treelens.load(path)
    doc["oblivious_trees"][3]["leaf_values"] = [float("nan")] * 16
    with pytest.raises(ValueError, match="not finite"):
        treelens.load(load_catboost(doc))


def test_cityhash_matches_catboost_hashes():
    """CatBoost's group-id hash is the full CityHash64 of the string."""
    rng = np.random.default_rng(0)
    letters = np.array(list(string.ascii_letters + "é "))
    words = ["".join(rng.choice(letters, size)) for size in
             (1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 129, 700)]
    pool = catboost.Pool(np.zeros((len(words), 1), dtype=np.float32), group_id=words)
    want = np.asarray(pool.get_group_id_hash()).astype(np.uint64)
    got = np.array([city_hash64(w.encode("utf-8")) for w in words], dtype=np.uint64)
    np.testing.assert_array_equal(got, want)


def test_leaf_tables_equal_the_general_kernel(models):
    """Forests of oblivious trees use per-tree leaf tables; one extra non-oblivious tree with
    zero leaves sends the same model through the general kernel."""
    import dataclasses

    from treelens._spec import TreeArrays

    for name in ("regressor_nan_min", "multiclass", "one_hot"):
        model, X = models(name)
        forest = treelens.load(model)
        spec = forest.spec
        k = spec.leaf_width
        lopsided = TreeArrays(
            left=np.array([1, 3, -1, -1, -1], np.int32),
            right=np.array([2, 4, -1, -1, -1], np.int32),
            feature=np.zeros(5, np.int32), threshold=np.array([0.0, -1.0, 0, 0, 0]),
            default_left=np.zeros(5, np.uint8), cover=np.array([4.0, 2, 2, 1, 1]),
            value=np.zeros((5, k)), output=0 if k == 1 else -1)
        general = treelens.load(dataclasses.replace(spec, trees=spec.trees + [lopsided]))
        rows = _encoded(forest, _with_missing(X))
        tables = forest._core.shap_values(rows, 2)
        assert_close(tables, general._core.shap_values(rows, 2), 1e-12 * scale_of(tables),
                     f"{name}: leaf tables vs general kernel")
        np.testing.assert_array_equal(forest._core.shap_values(rows, 1), tables)


@pytest.mark.parametrize("name", ["regressor_nan_max", "one_hot"])
def test_interaction_values_match_catboost(name, models):
    model, X = models(name)
    X = _with_missing(X)[:40]
    want = model.get_feature_importance(_pool(model, X), type="ShapInteractionValues")
    got = treelens.TreeExplainer(model).shap_interaction_values(X)
    assert_close(got, want[:, :-1, :-1], 1e-12 * scale_of(want), f"{name}: interactions")
