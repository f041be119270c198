"""Bad models, bad files and bad inputs raise clear exceptions and never crash."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import treelens
import zoo

# ------------------------------------------------------------ bad input arrays


@pytest.fixture(scope="module")
def reg(cases):
    return cases["xgb_reg"]


@pytest.mark.parametrize("name", ["xgb_reg", "lgb_reg", "sk_rf_reg"])
@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_feature_count(name, delta, cases):
    case = cases[name]
    m = case.n_features
    X = np.zeros((4, m + delta))
    ex = treelens.TreeExplainer(case.model)
    with pytest.raises(ValueError, match=str(m)):
        ex.shap_values(X)
    with pytest.raises(ValueError, match=str(m)):
        ex.predict(X)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 6), ()])
def test_input_must_be_2d_or_one_row(shape, reg):
    ex = treelens.TreeExplainer(reg.model)
    with pytest.raises(ValueError):
        ex.shap_values(np.zeros(shape))


@pytest.mark.parametrize("make", [
    lambda X: X.astype(str),
    lambda X: np.array([["a"] * X.shape[1]] * 3, dtype=object),
    lambda X: X.astype(np.complex128),
], ids=["str", "object-str", "complex"])
def test_non_numeric_input(make, reg):
    ex = treelens.TreeExplainer(reg.model)
    with pytest.raises((TypeError, ValueError)):
        ex.shap_values(make(reg.X[:3]))


def test_zero_threads(reg):
    with pytest.raises(ValueError):
        treelens.TreeExplainer(reg.model, n_threads=0).shap_values(reg.X)


def test_core_rejects_negative_threads(reg):
    """The core reads 0 as "all cores"; negative counts are refused."""
    from helpers import load_spec
    from treelens._forest import build

    forest = build(load_spec(reg.model, "xgboost"))
    with pytest.raises(ValueError):
        forest.shap_values(reg.X, -1)
    with pytest.raises(ValueError):
        forest.predict(reg.X, -1)


# ------------------------------------------------------------ unsupported options


@pytest.mark.parametrize("kwargs", [
    dict(model_output="probability"),
    dict(model_output="log_loss"),
], ids=["probability", "log_loss"])
def test_not_implemented_modes(kwargs, reg):
    with pytest.raises(NotImplementedError):
        treelens.TreeExplainer(reg.model, **kwargs).shap_values(reg.X)


@pytest.mark.parametrize("kwargs", [dict(model_output="bogus"),
                                    dict(feature_perturbation="bogus")])
def test_unknown_modes(kwargs, reg):
    with pytest.raises((ValueError, NotImplementedError), match="bogus"):
        treelens.TreeExplainer(reg.model, **kwargs).shap_values(reg.X)


def test_explicit_path_dependent_equals_auto(reg):
    auto = treelens.TreeExplainer(reg.model).shap_values(reg.X)
    explicit = treelens.TreeExplainer(reg.model, feature_perturbation="tree_path_dependent",
                                      model_output="raw").shap_values(reg.X)
    assert np.array_equal(auto, explicit)


# ------------------------------------------------------------ unsupported models


def _xgb_json(case):
    return json.loads(case.model.get_booster().save_raw("json"))


def test_gblinear_is_rejected(tmp_path):
    import xgboost as xgb

    X, y = zoo.make_data(70)
    booster = xgb.train(dict(booster="gblinear", nthread=1), xgb.DMatrix(X, label=y), 3)
    booster.save_model(str(tmp_path / "linear.json"))
    for source in (booster, str(tmp_path / "linear.json")):
        with pytest.raises((ValueError, NotImplementedError), match="gblinear"):
            treelens.TreeExplainer(source)


def test_unknown_xgboost_objective(reg, tmp_path):
    doc = _xgb_json(reg)
    doc["learner"]["objective"]["name"] = "reg:mystery"
    path = tmp_path / "mystery.json"
    path.write_text(json.dumps(doc))
    with pytest.raises((ValueError, NotImplementedError), match="mystery"):
        treelens.load(str(path))


def test_unknown_lightgbm_objective(cases, tmp_path):
    text = cases["lgb_reg"].model.booster_.model_to_string()
    assert "\nobjective=regression" in text
    path = tmp_path / "mystery.txt"
    path.write_text(text.replace("\nobjective=regression", "\nobjective=mystery", 1))
    with pytest.raises((ValueError, NotImplementedError), match="mystery"):
        treelens.load(str(path))


def test_lightgbm_linear_tree(tmp_path):
    import lightgbm as lgb

    X, y = zoo.make_data(71)
    params = dict(linear_tree=True, num_leaves=7, verbose=-1, num_threads=1, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=3)
    booster.save_model(str(tmp_path / "linear.txt"))
    for source in (booster, str(tmp_path / "linear.txt")):
        with pytest.raises(NotImplementedError):
            treelens.TreeExplainer(source)


def _unsupported_estimators():
    from sklearn.linear_model import LinearRegression
    from sklearn.neighbors import KNeighborsRegressor

    X, y = zoo.make_data(72)
    return [LinearRegression().fit(X, y), KNeighborsRegressor().fit(X, y), object(), 42]


def test_unsupported_estimators():
    for model in _unsupported_estimators():
        with pytest.raises((TypeError, ValueError, NotImplementedError)):
            treelens.TreeExplainer(model)


def test_unfitted_estimator():
    from sklearn.ensemble import RandomForestRegressor

    with pytest.raises((TypeError, ValueError)):
        treelens.TreeExplainer(RandomForestRegressor())


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        treelens.load(str(tmp_path / "nope.json"))


# ------------------------------------------------------------ malformed files, out of process

_LOAD_ALL = r"""
import json, sys, treelens
for path in sys.argv[1:]:
    print(json.dumps({"start": path}), flush=True)
    result = {"path": path}
    for api in ("load", "TreeExplainer"):
        try:
            getattr(treelens, api)(path)
            result[api] = None
        except Exception as e:
            result[api] = [type(e).__name__, isinstance(e, ValueError), str(e)]
    print(json.dumps(result), flush=True)
"""


def _truncate_inside_tree(text: str) -> str:
    cut = text.index("leaf_value=", text.index("Tree=1")) + 25
    return text[:cut]


def _malformed_files(cases):
    """file name -> bytes of a broken model file."""
    rng = np.random.default_rng(0)
    garbage = rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes()
    xgb_model = cases["xgb_reg"].model.get_booster()
    xjson = bytes(xgb_model.save_raw("json"))
    xubj = bytes(xgb_model.save_raw("ubj"))
    ltext = cases["lgb_reg"].model.booster_.model_to_string()
    ldump = cases["lgb_reg"].model.booster_.dump_model()

    def edited(edit):
        doc = json.loads(xjson)
        edit(doc["learner"]["gradient_booster"]["model"]["trees"][0], doc)
        return json.dumps(doc).encode()

    def set_item(key, value):
        def edit(tree, doc):
            tree[key] = value
        return edit

    files = {
        "garbage.json": garbage,
        "garbage.ubj": garbage,
        "garbage.txt": garbage,
        "empty.json": b"",
        "not_a_model.json": b'{"hello": 1}',
        "xgb_truncated.json": xjson[: len(xjson) // 2],
        "xgb_truncated.ubj": xubj[: len(xubj) // 2],
        "xgb_no_learner.json": json.dumps({"version": [3, 2, 0]}).encode(),
        "xgb_no_trees.json": edited(lambda t, d: d["learner"]["gradient_booster"]["model"]
                                    .pop("trees")),
        "xgb_no_left_children.json": edited(lambda t, d: t.pop("left_children")),
        "xgb_short_conditions.json": edited(lambda t, d: t.__setitem__(
            "split_conditions", t["split_conditions"][:2])),
        "xgb_child_out_of_range.json": edited(lambda t, d: t["left_children"].__setitem__(
            0, 10 ** 6)),
        "xgb_cycle.json": edited(lambda t, d: t["left_children"].__setitem__(
            t["left_children"][0], 0)),
        "xgb_text_in_numbers.json": edited(set_item("split_conditions", ["abc"] * 3)),
        "lgb_truncated.txt": _truncate_inside_tree(ltext).encode(),
        "lgb_bad_number.txt": ltext.replace("threshold=", "threshold=abc ", 1).encode(),
        "lgb_leaf_count_mismatch.txt": ltext.replace("num_leaves=", "num_leaves=9", 1).encode(),
        "lgb_dump_no_tree_info.json": json.dumps(
            {k: v for k, v in ldump.items() if k != "tree_info"}).encode(),
    }
    return files


@pytest.fixture(scope="module")
def malformed(cases, tmp_path_factory):
    """Loads every malformed file in one child interpreter; name -> per-API outcome."""
    folder = tmp_path_factory.mktemp("malformed")
    paths = []
    for name, data in _malformed_files(cases).items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    proc = subprocess.run([sys.executable, "-c", _LOAD_ALL, *paths],
                          capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = {line["path"].rsplit("/", 1)[-1]: line for line in lines if "start" not in line}
    started = [line["start"] for line in lines if "start" in line]
    return proc, results, started


MALFORMED_NAMES = [
    "garbage.json", "garbage.ubj", "garbage.txt", "empty.json", "not_a_model.json",
    "xgb_truncated.json", "xgb_truncated.ubj", "xgb_no_learner.json", "xgb_no_trees.json",
    "xgb_no_left_children.json", "xgb_short_conditions.json", "xgb_child_out_of_range.json",
    "xgb_cycle.json", "xgb_text_in_numbers.json", "lgb_truncated.txt", "lgb_bad_number.txt",
    "lgb_leaf_count_mismatch.txt", "lgb_dump_no_tree_info.json",
]


def test_malformed_files_do_not_crash_the_interpreter(malformed):
    proc, results, started = malformed
    crashed = [p for p in started if p.rsplit("/", 1)[-1] not in results]
    assert sorted(results) == sorted(MALFORMED_NAMES) or crashed
    assert proc.returncode == 0 and not crashed, (
        f"child exited with {proc.returncode} while loading {crashed}:\n{proc.stderr[-2000:]}"
    )


@pytest.mark.parametrize("name", MALFORMED_NAMES)
def test_malformed_file_raises_value_error(name, malformed):
    _, results, _ = malformed
    assert name in results, f"{name}: the child interpreter died before finishing"
    for api in ("load", "TreeExplainer"):
        outcome = results[name][api]
        assert outcome is not None, f"{api}({name}) accepted a malformed file"
        exc_type, is_value_error, message = outcome
        assert is_value_error, f"{api}({name}) raised {exc_type}: {message}"
        assert message.strip(), f"{api}({name}) raised {exc_type} with an empty message"
