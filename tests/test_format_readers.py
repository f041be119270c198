"""The core's format readers give the same Forest arrays and refuse the same malformed input
as the general path: UBJSON and JSON trees decoded by column against the plain decode (and
the core's JSON reader against ``json``), LightGBM text trees read by the core against the
general text reader (which plain-text models skip), and the builder's one-pass fill
against its walk."""
from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import xgboost as xgb

import treelens
from treelens import _core
from treelens._spec import FlatTrees, ForestSpec, TreeArrays
from treelens.loaders.lightgbm import load_lightgbm
from treelens.loaders.xgboost import parse_xgboost_json_model

from helpers import assert_bitwise
from spec_factory import TreeShape, probe_rows, random_spec

FIELDS = ("tree_offsets", "left", "right", "feature", "threshold", "default_left", "cover",
          "value", "output", "missing", "categorical", "cat_offsets", "cat_values", "gain")


def assert_same_specs(a: ForestSpec, b: ForestSpec, what: str) -> None:
    fa = FlatTrees.from_trees(a.trees, a.leaf_width)
    fb = FlatTrees.from_trees(b.trees, b.leaf_width)
    for name in FIELDS:
        x, y = getattr(fa, name), getattr(fb, name)
        if x is None or y is None:
            assert x is None and y is None, f"{what}: {name}"
        else:
            assert_bitwise(x, y, f"{what}: {name}")
    for name in ("n_features", "n_outputs", "base_score", "feature_names", "feature_types",
                 "categories_by_feature", "trees_per_round", "output"):
        assert getattr(a, name) == getattr(b, name), f"{what}: {name}"


# ------------------------------------------------------------------------ XGBoost UBJSON

@pytest.mark.parametrize("name", ["xgb_categorical", "xgb_pruned", "xgb_dart",
                                  "xgb_multiclass", "xgb_rf", "xgb_deep"])
def test_ubjson_trees_by_column_give_the_plain_decodes_arrays(name, cases):
    model = cases[name].model
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    data = bytes(booster.save_raw("ubj"))
    columns = _core.ubjson_loads(data, "trees")
    plain = _core.ubjson_loads(data)
    gathered = columns["learner"]["gradient_booster"]
    assert "n_items" in gathered.get("model", gathered.get("gbtree", {}).get("model"))["trees"]
    for limits in (None, (0, 1)):
        assert_same_specs(parse_xgboost_json_model(columns, limits),
                          parse_xgboost_json_model(plain, limits), f"{name} {limits}")


def test_ubjson_vector_leaf_trees_by_column_give_the_plain_decodes_arrays():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 4))
    Y = np.stack([X[:, 0] + X[:, 1], X[:, 2] * X[:, 3], -X[:, 0]], axis=1)
    booster = xgb.train({"multi_strategy": "multi_output_tree", "tree_method": "hist",
                         "max_depth": 3, "nthread": 1}, xgb.DMatrix(X, Y), 4)
    data = bytes(booster.save_raw("ubj"))
    assert_same_specs(parse_xgboost_json_model(_core.ubjson_loads(data, "trees")),
                      parse_xgboost_json_model(_core.ubjson_loads(data)), "vector leaves")


def _key(name: str) -> bytes:
    return b"L" + struct.pack(">q", len(name)) + name.encode()


def _ints(values) -> bytes:
    return b"[$l#L" + struct.pack(">q", len(values)) + struct.pack(f">{len(values)}i", *values)


def test_ubjson_columns_concatenate_typed_arrays_and_list_other_members():
    trees = [{"a": [1, -2], "n": "x"}, {"a": [3], "n": "y"}]
    body = b"".join(b"{" + _key("a") + _ints(t["a"]) + _key("n") + b"SL"
                    + struct.pack(">q", 1) + t["n"].encode() + b"}" for t in trees)
    doc = b"{" + _key("trees") + b"[#L" + struct.pack(">q", 2) + body + b"}"
    out = _core.ubjson_loads(doc, "trees")["trees"]
    values, lengths = out["arrays"]["a"]
    assert out["n_items"] == 2 and values.dtype == np.int64
    assert values.tolist() == [1, -2, 3] and lengths.tolist() == [2, 1]
    assert out["lists"] == {"n": ["x", "y"]}
    plain = _core.ubjson_loads(doc)["trees"]
    assert [t["a"].tolist() for t in plain] == [[1, -2], [3]]


@pytest.mark.parametrize("second", [
    b"{" + _key("b") + _ints([1]) + b"}",                  # another member
    b"{" + _key("a") + b"[$d#L" + struct.pack(">q", 1) + struct.pack(">f", 1.5) + b"}",
    b"{" + _key("a") + _ints([1]) + _key("a") + _ints([2]) + b"}",  # a member twice
    b"Z",                                                  # not an object
])
def test_ubjson_arrays_of_unlike_objects_decode_as_lists(second):
    doc = (b"{" + _key("trees") + b"[#L" + struct.pack(">q", 2) + b"{" + _key("a")
           + _ints([7]) + b"}" + second + b"}")
    trees = _core.ubjson_loads(doc, "trees")["trees"]
    assert isinstance(trees, list) and len(trees) == 2
    assert trees[0]["a"].tolist() == [7]


def test_ubjson_columns_reject_truncated_input():
    doc = (b"{" + _key("trees") + b"[#L" + struct.pack(">q", 1) + b"{" + _key("a")
           + _ints([1, 2, 3]) + b"}}")
    for end in range(1, len(doc) - 1):
        with pytest.raises(ValueError, match="UBJSON"):
            _core.ubjson_loads(doc[:end], "trees")


# ------------------------------------------------------------------------ JSON

@pytest.mark.parametrize("name", ["xgb_categorical", "xgb_pruned", "xgb_dart",
                                  "xgb_multiclass", "xgb_rf", "xgb_deep"])
def test_json_trees_by_column_give_the_json_modules_arrays(name, cases):
    model = cases[name].model
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    data = bytes(booster.save_raw("json"))
    reference = json.loads(data)
    assert _core.json_loads(data) == reference
    columns = _core.json_loads(data, "trees")
    for limits in (None, (0, 1)):
        assert_same_specs(parse_xgboost_json_model(columns, limits),
                          parse_xgboost_json_model(reference, limits), f"{name} {limits}")


def test_json_reader_reads_what_the_json_module_reads(cases):
    booster = cases["lgb_categorical"].model.booster_
    documents = [json.dumps(booster.dump_model()).encode(),
                 b'{"a": [1, 2.5, -0, -0.0, 1e400, -1e-400, 4.9e-324, 12345678901234567890, '
                 b'-9223372036854775809, 1E5, true, false, null, "x\\u00e9\\ud83d\\ude00\\/"],'
                 b' "a": {}, "b": [[], {}]}',
                 b"[]", b' "\\n" ', b"NaN", b"[Infinity, -Infinity]"]
    for data in documents:
        assert repr(_core.json_loads(data)) == repr(json.loads(data)), data[:80]


@pytest.mark.parametrize("data", [b"01", b"[1,]", b'{"a":1,}', b'"\x01"', b"[1 2]", b"tru",
                                  b'"\\ud800"', b"1.", b".5", b"+1", b"[", b'"\xff"',
                                  b"\xef\xbb\xbf{}", b"[" * 100 + b"]" * 100, b"{} {}"])
def test_json_reader_refuses_what_it_cannot_read_as_json_does(data):
    with pytest.raises(ValueError, match="JSON"):
        _core.json_loads(data)


def test_json_arrays_of_unlike_objects_decode_as_lists():
    doc = b'{"trees": [{"a": [1, 2], "b": "x"}, {"a": [true], "b": "y"}]}'
    assert _core.json_loads(doc, "trees") == json.loads(doc)
    doc = b'{"trees": [{"a": [1, 2]}, {"a": [2.5]}]}'
    assert _core.json_loads(doc, "trees") == json.loads(doc)
    out = _core.json_loads(b'{"trees": [{"a": [1, 2], "b": {}}, {"a": [], "b": 3}]}',
                           "trees")["trees"]
    values, lengths = out["arrays"]["a"]
    assert values.tolist() == [1, 2] and lengths.tolist() == [2, 0]
    assert out["n_items"] == 2 and out["lists"] == {"b": [{}, 3]}


# ------------------------------------------------------------------------ LightGBM text

def _without_tree_sizes(text: str) -> str:
    return re.sub(r"^tree_sizes=[^\n]*\n", "", text, count=1, flags=re.M)


def _general(text: str) -> str:
    """The same model with a form feed line in its first tree: not plain text, so it is read
    by the general reader (the form feed only breaks the line, giving empty lines)."""
    return text.replace("\nTree=0\n", "\nTree=0\n\f\n", 1)


@pytest.mark.parametrize("name", ["lgb_categorical", "lgb_missing_zero", "lgb_multiclass",
                                  "lgb_rf", "lgb_deep"])
def test_lightgbm_core_text_reader_gives_the_general_readers_arrays(name, cases, tmp_path):
    model = cases[name].model
    booster = model.booster_ if hasattr(model, "booster_") else model
    text = _without_tree_sizes(booster.model_to_string())
    start, m = text.index("\nTree=") + 1, booster.num_feature()
    assert _core.lightgbm_trees(text, start, m, 1, -1, 1) is not None
    assert _core.lightgbm_trees(_general(text), start, m, 1, -1, 1) is None
    path = tmp_path / "m.txt"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    for iterations in (None, 2):
        reference = load_lightgbm(_general(text), num_iteration=iterations)
        assert_same_specs(load_lightgbm(text, num_iteration=iterations), reference, name)
        assert_same_specs(load_lightgbm(str(path), num_iteration=iterations), reference,
                          f"{name} CRLF file")


def _edit_first(text: str, key: str, edit) -> str:
    """``text`` with the first tree's ``key=`` line's values replaced by edit(values)."""
    match = re.search(rf"^{key}=(.*)$", text, re.M)
    return text[:match.start(1)] + edit(match.group(1).split()) + text[match.end(1):]


MALFORMED = {
    "bad_number": ("threshold", lambda v: " ".join(["abc"] + v[1:])),
    "short_leaf_values": ("leaf_value", lambda v: " ".join(v[:-1])),
    "long_node_line": ("left_child", lambda v: " ".join(v + ["1"])),
    "child_out_of_range": ("left_child", lambda v: " ".join(["1000000"] + v[1:])),
    "cycle_to_root": ("left_child", lambda v: " ".join(["0"] + v[1:])),
    "no_leaves": ("num_leaves", lambda v: "0"),
    "huge_num_leaves": ("num_leaves", lambda v: "1000000000"),
    "feature_out_of_range": ("split_feature", lambda v: " ".join(["999"] + v[1:])),
    "bad_decision_type": ("decision_type", lambda v: " ".join(["64"] + v[1:])),
    "linear_tree": ("is_linear", lambda v: "1"),
    "bad_category_words": ("cat_threshold", lambda v: " ".join(["-1"] + v[1:])),
    "bad_category_bounds": ("cat_boundaries", lambda v: " ".join(v[:-1] + ["999"])),
    "missing_line": ("decision_type", None),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_lightgbm_core_text_reader_refuses_what_the_general_reader_refuses(kind, cases):
    text = _without_tree_sizes(cases["lgb_categorical"].model.booster_.model_to_string())
    key, edit = MALFORMED[kind]
    if edit is None:
        bad = re.sub(rf"^{key}=.*\n", "", text, count=1, flags=re.M)
    else:
        bad = _edit_first(text, key, edit)
    errors = []
    for variant in (bad, _general(bad)):
        with pytest.raises((ValueError, NotImplementedError)) as caught:
            load_lightgbm(variant)
        errors.append(caught.value)
    assert type(errors[0]) is type(errors[1]), errors
    tree = re.search(r"tree \d+", str(errors[1])).group()
    assert tree in str(errors[0]), errors


def test_lightgbm_file_not_utf8_after_the_trees_names_its_byte(cases, tmp_path):
    text = cases["lgb_reg"].model.booster_.model_to_string()
    data = text.encode() + b"\xff"
    path = tmp_path / "m.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=f"byte 0xff at offset {len(data) - 1}"):
        treelens.load(str(path))


# ------------------------------------------------------------------------ builder

def _renumbered(tree: TreeArrays) -> TreeArrays:
    """The tree with its non-root nodes stored in reverse order (children before parents)."""
    n = len(tree.left)
    new_of = np.concatenate(([0], np.arange(n - 1, 0, -1)))
    order = np.argsort(new_of)

    def child(c: np.ndarray) -> np.ndarray:
        return np.where(c < 0, c, new_of[np.maximum(c, 0)]).astype(np.int32)[order]

    def moved(a):
        return None if a is None else np.asarray(a)[order]

    return TreeArrays(
        left=child(tree.left), right=child(tree.right), feature=moved(tree.feature),
        threshold=moved(tree.threshold), default_left=moved(tree.default_left),
        cover=moved(tree.cover), value=moved(tree.value), output=tree.output,
        missing=moved(tree.missing), categorical=moved(tree.categorical),
        categories={int(new_of[k]): v for k, v in tree.categories.items()},
        gain=moved(tree.gain))


@pytest.mark.parametrize("routing", ["xgboost", "lightgbm", "float64"])
def test_trees_stored_children_first_build_like_parents_first(routing):
    spec = random_spec(7, routing=routing, n_features=5, n_trees=4,
                       shape=TreeShape(max_depth=5, p_leaf=0.2))
    flipped = ForestSpec(**{**vars(spec), "trees": [_renumbered(t) for t in spec.trees]})
    a, b = treelens.load(spec), treelens.load(flipped)
    X = probe_rows(spec, 2)
    assert a.max_depth == b.max_depth and a.n_nodes == b.n_nodes
    assert_bitwise(a.predict(X, n_threads=1), b.predict(X, n_threads=1), "margin")
    # Sums over leaves may run in another order: equal up to rounding.
    np.testing.assert_allclose(a.expected_value, b.expected_value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.shap_values(X, n_threads=1), b.shap_values(X, n_threads=1),
                               rtol=1e-10, atol=1e-10)
