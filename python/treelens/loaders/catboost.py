"""CatBoost loader: live ``CatBoost`` / ``CatBoostRegressor`` / ``CatBoostClassifier`` models,
saved ``.cbm`` files and ``save_model(format="json")`` files.

Live models and ``.cbm`` files are read through CatBoost's own JSON export; JSON files are parsed
without importing catboost. Only symmetric (oblivious) trees are supported: every level of a tree
tests one split, and leaf ``j``'s bit ``l`` is the outcome of ``splits[l]``. Each tree is expanded
into a full binary tree whose root tests the last split (the highest bit), the order CatBoost's
own ``ShapValues`` walks; internal covers are the sums of the ``leaf_weights`` below them.

Routing, as CatBoost's evaluator does it:

- float feature: ``float32(x) > border`` is the true (right) side. The builder's float64 mode
  compares ``x <= t``, so ``t`` is the largest double that rounds to a float32 at most ``border``.
  NaN goes to the false side (``nan_mode="Min"``, and features trained without NaN) or the true
  side (``nan_mode="Max"``).
- one-hot categorical feature: ``hash(str(value)) == split value`` is the true side. Category
  codes are indices into the feature's list of split hashes (``categories_by_feature``); a value
  whose hash is not listed, or a missing value, takes the false side.
- CTR (target-statistics) splits raise NotImplementedError naming the categorical features.

The margin is CatBoost's raw prediction (``prediction_type="RawFormulaVal"``):
``scale * sum(leaves) + bias``, one output per dimension.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .._outputs import OutputFunction
from .._spec import ROUTING_FLOAT64, ForestSpec, TreeArrays
from ._cityhash import city_hash64

# CatBoost loss function -> margin link.
_LOSS_LINKS = {
    "RMSE": "identity",
    "MultiRMSE": "identity",
    "MAE": "identity",
    "Quantile": "identity",
    "MAPE": "identity",
    "Huber": "identity",
    "Expectile": "identity",
    "Lq": "identity",
    "LogCosh": "identity",
    "Logloss": "logistic",
    "CrossEntropy": "logistic",
    "MultiClass": "softmax",
    "MultiClassOneVsAll": "logistic",
    "Poisson": "log",
    "Tweedie": "log",
}

CATBOOST_EXTRA = "treelens[catboost]"


def load_catboost(model: Any) -> ForestSpec:
    """Read a CatBoost model into a ``ForestSpec`` (see the module notes).

    ``model``: a fitted ``catboost.CatBoost`` (or subclass), a path to a ``.cbm`` or JSON
    model file, or an already parsed JSON document (dict).
    """
    if isinstance(model, dict):
        return parse_catboost_json(model)
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as fh:
            head = fh.read(64).lstrip()
        if head.startswith(b"{"):
            with open(model, "rb") as fh:
                return parse_catboost_json(json.load(fh))
        catboost = require_catboost("reading a .cbm model file")
        live = catboost.CatBoost()
        try:
            live.load_model(os.fspath(model), format="cbm")
        except catboost.CatBoostError as exc:
            raise ValueError(f"{model}: not a valid CatBoost model file "
                             f"({str(exc).strip().splitlines()[-1]})") from None
        return _from_live(live)
    return _from_live(model)


def require_catboost(what: str) -> Any:
    """The catboost module, or ImportError naming the extra to install."""
    try:
        import catboost
    except ModuleNotFoundError:
        raise ImportError(f"{what} needs catboost: pip install \"{CATBOOST_EXTRA}\"") from None
    return catboost


def _from_live(model: Any) -> ForestSpec:
    if not model.is_fitted():
        raise ValueError(f"this {type(model).__name__} is not fitted")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.json")
        model.save_model(path, format="json")
        with open(path, "rb") as fh:
            return parse_catboost_json(json.load(fh))


def parse_catboost_json(doc: Dict[str, Any]) -> ForestSpec:
    """A parsed ``save_model(format="json")`` document -> ``ForestSpec``; ValueError when it
    is malformed."""
    try:
        return _parse(doc)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"malformed CatBoost JSON model: {type(exc).__name__}: {exc}") from None


def _parse(doc: Dict[str, Any]) -> ForestSpec:
    if not isinstance(doc, dict) or "oblivious_trees" not in doc:
        if isinstance(doc, dict) and "trees" in doc:
            raise NotImplementedError("CatBoost models with non-symmetric trees "
                                      "(grow_policy Depthwise / Lossguide) are not supported")
        raise ValueError("not a CatBoost JSON model: no 'oblivious_trees'")
    info = doc.get("features_info", {})
    floats = info.get("float_features", [])
    cats = info.get("categorical_features", [])
    for kind in ("text_features", "embedding_features"):
        if info.get(kind):
            raise NotImplementedError(f"CatBoost models with {kind.replace('_', ' ')} "
                                      "are not supported")
    n_features = 1 + max([f["flat_feature_index"] for f in floats + cats], default=-1)
    names = _feature_names(floats + cats, n_features)
    trees = doc["oblivious_trees"]
    _reject_ctrs(trees, info, cats, names)

    scale, bias = doc.get("scale_and_bias", [1.0, [0.0]])
    bias = np.asarray(bias, dtype=np.float64).reshape(-1)
    n_outputs = max(len(bias), 1)
    hashes = _one_hot_hashes(trees, cats)
    arrays = [_tree(t, floats, cats, hashes, float(scale), n_outputs) for t in trees]
    feature_types = ["q"] * n_features
    for c in cats:
        feature_types[c["flat_feature_index"]] = "c"
    return ForestSpec(
        trees=arrays, n_features=max(n_features, 1), n_outputs=n_outputs,
        base_score=bias.tolist() if len(bias) else [0.0], routing=ROUTING_FLOAT64,
        leaf_width=n_outputs, feature_names=names, output=_output_function(doc),
        source="catboost",
        categories_by_feature={cats[i]["flat_feature_index"]: list(h)
                               for i, h in hashes.items()},
        feature_types=feature_types)


def _feature_names(features: List[Dict[str, Any]], n: int) -> Optional[List[str]]:
    names = [""] * n
    for f in features:
        names[f["flat_feature_index"]] = str(f.get("feature_name", f.get("feature_id", "")))
    return names if all(names) else None


def _output_function(doc: Dict[str, Any]) -> OutputFunction:
    """The link of the model's loss (identity for losses treelens does not know: the raw
    margin is still explained, probability outputs are refused)."""
    params = doc.get("model_info", {}).get("params", {})
    loss = params.get("loss_function", {}).get("type", "RMSE")
    link = _LOSS_LINKS.get(loss)
    return OutputFunction(link=link or "identity", classifier=link in ("logistic", "softmax"),
                          probabilities=link is not None, objective=loss)


def _reject_ctrs(trees: List[Dict[str, Any]], info: Dict[str, Any],
                 cats: List[Dict[str, Any]], names: Optional[List[str]]) -> None:
    """NotImplementedError naming the categorical features behind any CTR split."""
    kinds = {s.get("split_type") for t in trees for s in t.get("splits") or []}
    if kinds <= {"FloatFeature", "OneHotFeature"}:
        return
    if "OnlineCtr" not in kinds:
        raise NotImplementedError(f"CatBoost split types {sorted(kinds)} are not supported")
    used = sorted({e["cat_feature_index"] for ctr in info.get("ctrs", [])
                   for e in ctr.get("elements", []) if "cat_feature_index" in e})
    labels = []
    for i in used:
        flat = cats[i]["flat_feature_index"]
        labels.append(repr(names[flat]) if names else f"feature {flat}")
    raise NotImplementedError(
        "CatBoost CTR (target statistics) splits on categorical feature(s) "
        f"{', '.join(labels) or '(unknown)'} are not supported; train with "
        "one_hot_max_size above their number of categories to get one-hot splits")


def _one_hot_hashes(trees: List[Dict[str, Any]],
                    cats: List[Dict[str, Any]]) -> Dict[int, List[int]]:
    """Categorical feature index -> sorted hashes its one-hot splits test."""
    found: Dict[int, set] = {}
    for t in trees:
        for s in t.get("splits") or []:
            if s["split_type"] == "OneHotFeature":
                found.setdefault(int(s["cat_feature_index"]), set()).add(_hash_of(s))
    return {i: sorted(v) for i, v in found.items()}


def _hash_of(split: Dict[str, Any]) -> int:
    """The category hash a one-hot split tests, as an unsigned 32-bit value (the JSON writes
    it signed)."""
    return int(split["value"]) & 0xFFFFFFFF


def float_border_threshold(border: float) -> float:
    """The largest double ``t`` with ``float32(t) <= border`` (``border`` a float32 value), so
    that ``x <= t`` in double is CatBoost's ``not float32(x) > border``."""
    b = np.float32(border)
    with np.errstate(over="ignore"):
        up = np.nextafter(b, np.float32(np.inf))
    if np.isinf(up):
        return float("inf")
    mid = (float(b) + float(up)) / 2.0  # exact in double
    return mid if np.float32(mid) == b else float(np.nextafter(mid, -np.inf))


def _tree(tree: Dict[str, Any], floats: List[Dict[str, Any]], cats: List[Dict[str, Any]],
          hashes: Dict[int, List[int]], scale: float, k: int) -> TreeArrays:
    """One oblivious tree expanded to ``2^(d+1) - 1`` nodes in breadth-first order; the root
    tests ``splits[d - 1]``, so the leaf at breadth-first position ``p`` on the last level is
    CatBoost's leaf ``p``. Leaf values are scaled by ``scale``: ``[n_nodes, k]``."""
    splits = tree.get("splits") or []
    d = len(splits)
    leaf_values = np.asarray(tree["leaf_values"], dtype=np.float64).reshape(2 ** d, k) * scale
    leaf_weights = np.asarray(tree.get("leaf_weights", np.ones(2 ** d)),
                              dtype=np.float64).reshape(2 ** d)
    n_nodes = 2 ** (d + 1) - 1
    n_inner = 2 ** d - 1
    left = np.full(n_nodes, -1, dtype=np.int32)
    right = np.full(n_nodes, -1, dtype=np.int32)
    feature = np.zeros(n_nodes, dtype=np.int32)
    threshold = np.zeros(n_nodes, dtype=np.float64)
    default_left = np.zeros(n_nodes, dtype=np.uint8)
    categorical = np.zeros(n_nodes, dtype=np.uint8)
    categories: Dict[int, np.ndarray] = {}
    for level in range(d):
        split = splits[d - 1 - level]
        nodes = np.arange(2 ** level - 1, 2 ** (level + 1) - 1)
        false_child, true_child = 2 * nodes + 1, 2 * nodes + 2
        if split["split_type"] == "FloatFeature":
            info = floats[split["float_feature_index"]]
            feature[nodes] = info["flat_feature_index"]
            threshold[nodes] = float_border_threshold(split["border"])
            default_left[nodes] = info.get("nan_value_treatment") != "AsTrue"
            left[nodes], right[nodes] = false_child, true_child
        else:
            index = int(split["cat_feature_index"])
            feature[nodes] = cats[index]["flat_feature_index"]
            categorical[nodes] = 1
            code = hashes[index].index(_hash_of(split))
            for node in nodes:
                categories[int(node)] = np.array([code], dtype=np.int64)
            left[nodes], right[nodes] = true_child, false_child
    value = np.zeros((n_nodes, k), dtype=np.float64)
    value[n_inner:] = leaf_values
    cover = np.zeros(n_nodes, dtype=np.float64)
    cover[n_inner:] = leaf_weights
    for node in range(n_inner - 1, -1, -1):
        cover[node] = cover[2 * node + 1] + cover[2 * node + 2]
    return TreeArrays(left=left, right=right, feature=feature, threshold=threshold,
                      default_left=default_left, cover=cover, value=value,
                      output=0 if k == 1 else -1, categorical=categorical,
                      categories=categories)


def category_codes(values: Sequence[Any], hashes: Sequence[int], name: Any) -> np.ndarray:
    """Model codes (float64 ``[c]``) of raw categorical values: the index of CatBoost's hash
    of ``str(value)`` in ``hashes``; missing values and values no split tests give NaN (the
    false side of every one-hot split, as in CatBoost). Integers are taken as CatBoost takes
    them (``3`` is the category ``"3"``); other numbers raise TypeError, as CatBoost does."""
    codes = np.full(len(values), np.nan, dtype=np.float64)
    text, where = [], []
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, bytes, int, np.integer,
                                                                  float, np.floating)):
            raise TypeError(f"column {name!r} is a CatBoost categorical feature; got value "
                            f"{v!r} of type {type(v).__name__}, expected strings or integers")
        if isinstance(v, (float, np.floating)):
            if not float(v).is_integer():
                raise TypeError(f"column {name!r} is a CatBoost categorical feature; got the "
                                f"number {v!r}, expected strings or integers")
            v = int(v)
        text.append(v.decode() if isinstance(v, bytes) else str(v))
        where.append(i)
    if text:
        position = {h: j for j, h in enumerate(hashes)}
        for i, h in zip(where, category_hashes(text)):
            codes[i] = position.get(int(h), np.nan)
    return codes


def category_hashes(text: Sequence[str]) -> List[int]:
    """CatBoost's 32-bit hash of each category string: the low 32 bits of its CityHash64."""
    return [city_hash64(t.encode("utf-8")) & 0xFFFFFFFF for t in text]
