"""Loading: every form of a model gives the same Forest arrays; live models are reused while
unchanged and reloaded when retrained or edited in place; the format readers reject
malformed input with ValueError."""
from __future__ import annotations

import copy
import re
import struct

import numpy as np
import pytest

import treelens
from treelens import _cache, _core
from treelens._spec import FlatTrees
from treelens.loaders.lightgbm import load_lightgbm

from helpers import NATIVE_TOL, as3d, assert_bitwise, assert_close, scale_of

FLAT_FIELDS = ("tree_offsets", "left", "right", "feature", "threshold", "default_left",
               "cover", "value", "output", "missing", "categorical", "cat_offsets",
               "cat_values")


def flat(forest, leaf_width=None):
    spec = forest.spec
    return FlatTrees.from_trees(spec.trees, leaf_width or spec.leaf_width)


def assert_same_arrays(a, b, what, fields=FLAT_FIELDS):
    fa, fb = flat(a), flat(b)
    for name in fields:
        assert_bitwise(getattr(fa, name), getattr(fb, name), f"{what}: {name}")
    assert_bitwise(np.asarray(a.spec.base_score), np.asarray(b.spec.base_score), what)


def _data(seed=0, n=400, m=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m))
    return X, np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=n)


# --------------------------------------------------------------------- identical arrays

@pytest.mark.parametrize("name", ["xgb_categorical", "xgb_pruned", "xgb_dart",
                                  "xgb_multiclass", "xgb_rf"])
def test_xgboost_json_ubj_and_live_give_identical_arrays(name, cases, tmp_path):
    model = cases[name].model
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    forests = {}
    for ext in ("json", "ubj"):
        booster.save_model(str(tmp_path / f"m.{ext}"))
        forests[ext] = treelens.load(str(tmp_path / f"m.{ext}"))
    live = treelens.load(model)
    assert_same_arrays(forests["json"], live, f"{name} json vs live")
    assert_same_arrays(forests["ubj"], live, f"{name} ubj vs live")


@pytest.mark.parametrize("name", ["lgb_categorical", "lgb_missing_zero", "lgb_rf",
                                  "lgb_multiclass"])
def test_lightgbm_text_dump_and_live_give_identical_arrays(name, cases, tmp_path):
    model = cases[name].model
    booster = model.booster_ if hasattr(model, "booster_") else model
    booster.save_model(str(tmp_path / "m.txt"))
    text = treelens.load(str(tmp_path / "m.txt"))
    live = treelens.load(model)
    dump = treelens.load(load_lightgbm(booster.dump_model()))
    assert_same_arrays(text, live, f"{name} text vs live")
    assert_same_arrays(text, dump, f"{name} text vs dump_model")


def _with_tree_sizes(text, encode=True):
    """``text`` with its tree_sizes line set to each Tree= block's length (bytes, or
    characters when not ``encode``), found by scanning the text."""
    end = re.search(r"^end of trees", text, re.M).start()
    starts = [m.start() for m in re.finditer(r"^Tree=", text[:end], re.M)] + [end]
    sizes = [len(text[a:b].encode()) if encode else b - a for a, b in zip(starts, starts[1:])]
    return re.sub(r"^tree_sizes=[^\r\n]*", "tree_sizes=" + " ".join(map(str, sizes)), text,
                  count=1, flags=re.M)


def test_lightgbm_tree_sizes_are_checked_in_bytes_whatever_the_line_breaks(cases):
    """tree_sizes must give each Tree= block's bytes (LightGBM seeks by them): files with
    CRLF breaks or non-ASCII text inside a tree load when they are right, and a size off by
    a byte or counted in characters is refused."""
    text = cases["lgb_reg"].model.booster_.model_to_string()
    reference = treelens.load(load_lightgbm(text))
    crlf = text.replace("\n", "\r\n")
    accented = text.replace("\nTree=1\n", "\nTree=1\n\u00e9t\u00e9\n", 1)
    assert accented != text
    for variant in (crlf, accented):
        assert_same_arrays(treelens.load(load_lightgbm(_with_tree_sizes(variant))), reference,
                           "tree_sizes recomputed")
    off_by_one = re.sub(r"^tree_sizes=(\d+)", lambda m: f"tree_sizes={int(m[1]) + 1}", text,
                        count=1, flags=re.M)
    for bad in (crlf, off_by_one, _with_tree_sizes(accented, encode=False)):
        with pytest.raises(ValueError, match="tree_sizes"):
            load_lightgbm(bad)


def test_flat_trees_round_trip_through_per_tree_views(cases):
    forest = treelens.load(cases["lgb_categorical"].model)
    trees = flat(forest)
    again = FlatTrees.from_trees(list(trees), forest.spec.leaf_width)
    for name in FLAT_FIELDS + ("gain",):
        assert_bitwise(getattr(again, name), getattr(trees, name), name)
    assert any(len(t.categories) for t in trees)


# ------------------------------------------------------------------------- live cache

def test_unchanged_live_model_reuses_its_forest(cases):
    model = cases["xgb_reg"].model
    forest = treelens.load(model)
    assert treelens.load(model) is forest
    assert treelens.TreeExplainer(model).forest is forest
    assert treelens.load(model, iteration_range=(0, 2)) is not forest
    assert treelens.load(model) is forest


def test_xgboost_missing_value_is_part_of_the_cached_forest():
    """A live XGBoost model's Forest is kept per missing value: the estimator's own, one
    passed to load, or NaN; changing the estimator's ``missing`` gives a new Forest."""
    import xgboost

    X, y = _data(5)
    X[::7, 0] = -999.0
    model = xgboost.XGBRegressor(n_estimators=5, max_depth=3, missing=-999.0).fit(X, y)
    own = treelens.load(model)
    assert own.spec.missing_value == -999.0 and treelens.load(model) is own
    booster = model.get_booster()
    plain = treelens.load(booster)
    given = treelens.load(booster, missing=-999.0)
    assert np.isnan(plain.spec.missing_value) and given.spec.missing_value == -999.0
    assert treelens.load(booster) is plain and treelens.load(booster, missing=-999.0) is given
    want = booster.predict(xgboost.DMatrix(X, missing=-999.0), output_margin=True)
    assert_close(given.predict(X), want, NATIVE_TOL * scale_of(want), "missing=-999 margin")
    model.set_params(missing=np.nan)
    again = treelens.load(model)
    assert again is not own and np.isnan(again.spec.missing_value)


def test_xgboost_refit_in_place_gives_the_new_models_values():
    import xgboost

    X, y = _data(1)
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y)
    before = treelens.TreeExplainer(model).shap_values(X)
    model.fit(X, -3.0 * y)
    after = treelens.TreeExplainer(model).shap_values(X)
    native = model.get_booster().predict(xgboost.DMatrix(X), pred_contribs=True)[:, :-1]
    assert_close(after, native, NATIVE_TOL * scale_of(native), "after refit")
    assert not np.allclose(before, after)


def test_xgboost_booster_updated_in_place_gives_the_new_models_values():
    import xgboost

    X, y = _data(2)
    dtrain = xgboost.DMatrix(X, label=y)
    booster = xgboost.train({"max_depth": 3, "nthread": 1}, dtrain, 5)
    first = treelens.load(booster)
    booster.update(dtrain, 5)
    second = treelens.load(booster)
    assert second is not first and second.n_trees == first.n_trees + 1
    native = booster.predict(dtrain, pred_contribs=True)[:, :-1]
    phi = second.shap_values(X)
    assert_close(phi, native, NATIVE_TOL * scale_of(native), "after update")


def test_lightgbm_booster_updated_in_place_gives_the_new_models_values():
    import lightgbm

    X, y = _data(3)
    train = lightgbm.Dataset(X, label=y, free_raw_data=False)
    booster = lightgbm.train({"num_leaves": 7, "verbose": -1, "num_threads": 1}, train, 5,
                             keep_training_booster=True)
    first = treelens.load(booster)
    booster.update()
    second = treelens.load(booster)
    assert second is not first and second.n_trees == first.n_trees + 1
    native = booster.predict(X, pred_contrib=True)[:, :-1]
    assert_close(second.shap_values(X), native, NATIVE_TOL * scale_of(native), "update")
    booster.set_leaf_output(0, 0, 123.0)
    edited = treelens.load(booster)
    assert edited is not second
    assert_close(edited.predict(X), booster.predict(X, raw_score=True), 1e-9, "edited leaf")


def test_sklearn_refit_and_warm_start_give_the_new_models_values():
    from sklearn.ensemble import RandomForestRegressor

    X, y = _data(4)
    model = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0,
                                  warm_start=True, n_jobs=1).fit(X, y)
    first = treelens.load(model)
    assert treelens.load(model) is first
    model.set_params(n_estimators=8).fit(X, y)   # warm start: the same list, grown
    grown = treelens.load(model)
    assert grown is not first and grown.n_trees == 8
    model.set_params(warm_start=False).fit(X, y[::-1].copy())
    refit = treelens.load(model)
    assert refit is not grown
    phi = refit.shap_values(X)
    assert_close(phi.sum(axis=1) + refit.expected_value, model.predict(X), 1e-9, "refit")


def test_permutation_importance_follows_a_refit_model():
    import xgboost

    X, y = _data(5)
    model = xgboost.XGBRegressor(n_estimators=15, max_depth=3, n_jobs=1).fit(X, y)
    run = lambda m: treelens.permutation_importance(m, X, y, n_repeats=2,  # noqa: E731
                                                    random_state=0).importances
    before = run(model)
    assert_bitwise(run(model), before, "unchanged model")
    model.fit(X[:, ::-1].copy(), y)
    fresh = run(copy.deepcopy(model))
    assert_bitwise(run(model), fresh, "refit model vs a fresh copy")
    assert not np.allclose(before, fresh)


def test_a_forest_is_accepted_wherever_a_model_is(cases):
    case = cases["xgb_reg"]
    forest = treelens.load(case.model)
    _cache.clear()
    y = case.native_margin(case.X)[:, 0]
    assert_bitwise(treelens.TreeExplainer(forest).shap_values(case.X),
                   treelens.TreeExplainer(case.model).shap_values(case.X), "explainer")
    a = treelens.permutation_importance(forest, case.X, y, n_repeats=2, random_state=0)
    b = treelens.permutation_importance(case.model, case.X, y, n_repeats=2, random_state=0)
    assert_bitwise(a.importances, b.importances, "permutation importance")


# --------------------------------------------------- many trees, few rows, many threads

def test_few_rows_of_a_many_tree_model_are_split_over_trees_bit_for_bit():
    """Trees are explained in chunks; with fewer row blocks than threads the chunks run in
    parallel. A row's values equal its values in a large batch and the library's."""
    import xgboost

    X, y = _data(6, n=600, m=8)
    booster = xgboost.train({"max_depth": 8, "eta": 0.1, "nthread": 1},
                            xgboost.DMatrix(X, label=y), 150)
    forest = treelens.load(booster)
    batch = forest.shap_values(X[:40], 1)
    native = booster.predict(xgboost.DMatrix(X[:40]), pred_contribs=True)[:, :-1]
    assert_close(batch, native, NATIVE_TOL * scale_of(native), "vs pred_contribs")
    for rows in (1, 3, 5, 9):
        for threads in (1, 2, 3, 8):
            assert_bitwise(forest.shap_values(X[:rows], threads), batch[:rows],
                           f"{rows} rows, {threads} threads")
    assert_bitwise(as3d(forest.shap_values(X[7:8], 2)), as3d(batch[7:8]), "row 7 alone")


# ------------------------------------------------------------------- format readers

def _ubj_key(name: str) -> bytes:
    return b"L" + struct.pack(">q", len(name)) + name.encode()


def test_ubjson_decodes_scalars_strings_and_typed_arrays():
    doc = (b"{" + _ubj_key("f") + b"[$d#L" + struct.pack(">q", 2) + struct.pack(">ff", 1.5, -2)
           + _ubj_key("i") + b"[$l#L" + struct.pack(">q", 2) + struct.pack(">ii", -7, 9)
           + _ubj_key("s") + b"SL" + struct.pack(">q", 3) + b"abc"
           + _ubj_key("n") + b"D" + struct.pack(">d", 0.1)
           + _ubj_key("l") + b"[" + b"T" + b"F" + b"Z" + b"U\x05" + b"]" + b"}")
    out = _core.ubjson_loads(doc)
    assert out["f"].dtype == np.float32 and out["f"].tolist() == [1.5, -2.0]
    assert out["i"].dtype == np.int32 and out["i"].tolist() == [-7, 9]
    assert out["s"] == "abc" and out["n"] == 0.1
    assert out["l"] == [True, False, None, 5]


@pytest.mark.parametrize("data", [
    b"",
    b"{",
    b"[$d#L" + struct.pack(">q", 10 ** 15),              # count past the end
    b"[$d#L" + struct.pack(">q", -1),                    # negative count
    b"[#L" + struct.pack(">q", 10 ** 9) + b"T",          # count larger than the bytes
    b"SL" + struct.pack(">q", 2) + b"\xff\xfe",           # not UTF-8
    b"[" * 100 + b"]" * 100,                             # nested too deeply
    b"Q",                                                # unknown marker
    b"TT",                                               # trailing bytes
])
def test_ubjson_rejects_malformed_input(data):
    with pytest.raises(ValueError, match="UBJSON"):
        _core.ubjson_loads(data)


def test_number_lines_are_parsed_strictly():
    values, counts = _core.parse_number_lines(["1 2.5 -3e2", "", "0.1"], False)
    assert values.tolist() == [1.0, 2.5, -300.0, 0.1] and counts.tolist() == [3, 0, 1]
    ints, _ = _core.parse_number_lines(["4 -5"], True)
    assert ints.dtype == np.int64 and ints.tolist() == [4, -5]
    for lines, integers in ((["1 1.5"], True), (["1 abc"], False), (["99999999999999999999"],
                                                                     True)):
        with pytest.raises(ValueError, match="line 0"):
            _core.parse_number_lines(lines, integers)
