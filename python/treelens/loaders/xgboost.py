"""Load XGBoost tree models (gbtree and dart) into a ``ForestSpec``.

Sources: a live ``xgboost.Booster`` or scikit-learn wrapper (serialised through
``save_raw("ubj")``), a path to a ``.json`` / ``.ubj`` model file, or the raw bytes of
one. Files and bytes are parsed without importing xgboost. Only nodes reachable from
each tree's root reach the spec (pruned models keep deleted nodes in their arrays), so
nodes are renumbered compactly, root first. Malformed documents raise ``ValueError``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .._outputs import OutputFunction
from .._spec import ROUTING_XGBOOST, ForestSpec
from .. import _core
from . import _json
from . import _xgboost_fields as fields
from ._xgboost_trees import leaf_vector_size, parse_trees, tree_list

_REGRESSION = OutputFunction()
_LOGISTIC = OutputFunction(link="logistic")
_LOG = OutputFunction(link="log")
_SOFTMAX = OutputFunction(link="softmax", classifier=True)

# objective -> (base_score transform, output function of the prediction)
_OBJECTIVES: Dict[str, Tuple[str, OutputFunction]] = {
    "reg:squarederror": ("identity", _REGRESSION),
    "reg:linear": ("identity", _REGRESSION),
    "reg:squaredlogerror": ("identity", _REGRESSION),
    "reg:pseudohubererror": ("identity", _REGRESSION),
    "reg:absoluteerror": ("identity", _REGRESSION),
    "reg:quantileerror": ("identity", _REGRESSION),
    "binary:hinge": ("identity", OutputFunction(link="hinge", classifier=True,
                                                probabilities=False)),
    "binary:logitraw": ("identity", OutputFunction(classifier=True, probabilities=False)),
    "binary:logistic": ("logit", OutputFunction(link="logistic", classifier=True)),
    "reg:logistic": ("logit", _LOGISTIC),
    "multi:softprob": ("identity", _SOFTMAX),
    "multi:softmax": ("identity", _SOFTMAX),
    "count:poisson": ("log", _LOG),
    "reg:gamma": ("log", _LOG),
    "reg:tweedie": ("log", _LOG),
    "survival:cox": ("log", _LOG),
    "survival:aft": ("log", _LOG),
}
_PROB_EPS = np.float32(1e-6)
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
_MAX_INT32 = 2**31 - 1
_SPLIT_NUMERIC = 0
_SPLIT_CATEGORICAL = 1


def load_xgboost(model: Any, iteration_range: Optional[Tuple[int, int]] = None) -> ForestSpec:
    """Read an XGBoost model into a ForestSpec.

    Args:
        model: an ``xgboost.Booster``, an xgboost scikit-learn estimator, a path
            (str / os.PathLike) to a ``.json`` or ``.ubj`` model, or the model's bytes.
        iteration_range: ``(begin, end)`` boosting rounds to keep, as in
            ``Booster.predict``; ``end == 0`` means the last round, ``None`` or ``(0, 0)``
            keeps every tree.

    Returns:
        The ForestSpec; ``spec.trees[t].value`` is [n_nodes, leaf_width] and
        ``spec.base_score`` is [n_outputs] in margin space.

    Raises:
        ValueError: malformed or unsupported model (gblinear, unknown objective).
        TypeError: ``model`` is none of the accepted kinds.
    """
    return parse_xgboost_json_model(_read_document(model), iteration_range)


def parse_xgboost_json_model(doc: Dict[str, Any],
                             iteration_range: Optional[Tuple[int, int]] = None) -> ForestSpec:
    """Turn a parsed XGBoost JSON/UBJSON model document into a ForestSpec.

    Args:
        doc: the document as ``json.loads`` (or the UBJSON decoder) returns it.
        iteration_range: see ``load_xgboost``.

    Returns:
        The ForestSpec (routing ``xgboost``, float32 margin accumulation).
    """
    learner = fields.obj(doc, "learner", "model")
    mparam = fields.obj(learner, "learner_model_param", "learner")
    n_features = fields.int_param(mparam, "num_feature", "learner_model_param")
    num_class = fields.int_param(mparam, "num_class", "learner_model_param", 0)
    num_target = fields.int_param(mparam, "num_target", "learner_model_param", 1)
    n_outputs = num_class if num_class > 0 else num_target
    for name, value in (("num_feature", n_features), ("number of outputs", n_outputs)):
        if not 0 < value <= _MAX_INT32:
            raise ValueError(f"XGBoost model: {name} = {value} is outside 1..{_MAX_INT32}")
    objective = fields.text(fields.obj(learner, "objective", "learner"), "name", "objective")
    if objective in _OBJECTIVES:
        transform, output = _OBJECTIVES[objective]
    elif objective.startswith("rank:"):
        transform, output = "identity", _REGRESSION
    else:
        raise ValueError(f"XGBoost model: unsupported objective '{objective}'")

    model, weight_drop = _tree_model(fields.obj(learner, "gradient_booster", "learner"))
    trees = tree_list(model)
    n_trees = len(trees)
    vector_leaves = n_trees > 0 and leaf_vector_size(trees[0], 0) > 1
    _check_declared_sizes(model, n_trees, n_outputs, vector_leaves)
    if weight_drop is not None and len(weight_drop) != n_trees:
        raise ValueError(f"XGBoost model: dart has {len(weight_drop)} weight_drop entries "
                         f"for {n_trees} trees")
    tree_info = fields.ints(model, "tree_info", n_trees, "gradient_booster.model")
    groups_per_round = 1 if vector_leaves else n_outputs
    selected = _select_trees(model, n_trees, iteration_range, groups_per_round)
    spec_trees = parse_trees(trees, selected, n_features, n_outputs, vector_leaves,
                             weight_drop, tree_info)

    feature_names = _optional_strings(learner, "feature_names", n_features)
    feature_types = _optional_strings(learner, "feature_types", n_features)
    cats = model.get("cats", learner.get("cats"))
    return ForestSpec(
        trees=spec_trees,
        n_features=n_features,
        n_outputs=n_outputs,
        base_score=_base_score(mparam, n_outputs, transform, objective),
        routing=ROUTING_XGBOOST,
        leaf_width=n_outputs if vector_leaves else 1,
        float32_margin=True,
        feature_names=feature_names,
        output=dataclasses.replace(output, objective=objective),
        source="xgboost",
        categories_by_feature=_categories_by_feature(cats, n_features),
        feature_types=None if feature_types is None
        else ["c" if ft == "c" else "q" for ft in feature_types],
        trees_per_round=groups_per_round * fields.int_param(
            model.get("gbtree_model_param", {}), "num_parallel_tree", "gbtree_model_param", 1),
    )


# ---------------------------------------------------------------------------------------
# Reading the document


def snapshot(model: Any) -> bytes:
    """A live ``Booster`` or estimator as UBJSON bytes (its fastest serialised form)."""
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    if not hasattr(booster, "save_raw"):
        raise TypeError(f"cannot load an XGBoost model from {type(model).__name__}: expected "
                        "an xgboost Booster or estimator, a .json/.ubj path, or model bytes")
    return bytes(booster.save_raw("ubj"))


def _read_document(model: Any) -> Dict[str, Any]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _decode(bytes(model), "model bytes")
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as fh:
            return _decode(fh.read(), os.fspath(model))
    return _decode(snapshot(model), "booster")


def _decode(data: bytes, origin: str) -> Dict[str, Any]:
    body = data.lstrip(b" \t\r\n")
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:].lstrip(b" \t\r\n")
    if not body.startswith(b"{"):
        raise ValueError(f"{origin}: not an XGBoost JSON or UBJSON model (legacy binary "
                         "models are unsupported; re-save with save_model('model.json'))")
    after_brace = _NOT_SPACE.search(body, 1)
    if after_brace is not None and after_brace.group() in (b'"', b"}"):
        try:
            doc = _json.loads(body, "trees")
        except RecursionError as exc:
            raise ValueError(f"{origin}: JSON nested too deeply") from exc
        except ValueError as exc:
            raise ValueError(f"{origin}: invalid JSON model: {exc}") from exc
    else:
        try:
            doc = _core.ubjson_loads(body, "trees")
        except ValueError as exc:
            raise ValueError(f"{origin}: invalid UBJSON model: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{origin}: the model document is not an object")
    return doc


def _optional_strings(learner: Dict[str, Any], key: str, n: int) -> Optional[List[str]]:
    values = learner.get(key)
    if not values:
        return None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"XGBoost model: 'learner.{key}' is not an array of strings")
    if len(values) != n:
        raise ValueError(f"XGBoost model: 'learner.{key}' has {len(values)} entries "
                         f"for {n} features")
    return list(values)


# ---------------------------------------------------------------------------------------
# Booster-level fields


def _tree_model(booster: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[np.ndarray]]:
    """(the gbtree model object, dart weight_drop as float32 [n_trees] or None)."""
    name = fields.text(booster, "name", "gradient_booster")
    if name == "gbtree":
        return fields.obj(booster, "model", "gradient_booster"), None
    if name == "dart":
        gbtree = fields.obj(booster, "gbtree", "gradient_booster")
        weights = fields.floats(booster, "weight_drop", None, "dart booster")
        return fields.obj(gbtree, "model", "gradient_booster.gbtree"), weights
    if name == "gblinear":
        raise ValueError("XGBoost model: booster 'gblinear' is unsupported "
                         "(only tree boosters, gbtree and dart, can be explained)")
    raise ValueError(f"XGBoost model: unsupported booster '{name}'")


def _check_declared_sizes(model: Dict[str, Any], n_trees: int, n_outputs: int,
                          vector_leaves: bool) -> None:
    """The declared tree count and output count agree with the stored trees (before
    anything is allocated per output).

    Every boosting round adds one tree per output (or one vector-leaf tree for all of
    them), so a model with scalar leaves has a multiple of ``n_outputs`` trees."""
    if n_trees == 0:
        raise ValueError("XGBoost model: the model has no trees")
    params = model.get("gbtree_model_param", {})
    if not isinstance(params, dict):
        raise ValueError("XGBoost model: 'gbtree_model_param' is not an object")
    if "num_trees" in params:
        declared = fields.int_param(params, "num_trees", "gbtree_model_param")
        if declared != n_trees:
            raise ValueError(f"XGBoost model: gbtree_model_param declares num_trees = "
                             f"{declared}, but the model stores {n_trees} trees")
    if not vector_leaves and n_trees % n_outputs:
        raise ValueError(f"XGBoost model: {n_outputs} outputs (num_class / num_target) "
                         f"declared, but the {n_trees} trees are not one per output per round")


def _select_trees(model: Dict[str, Any], n_trees: int,
                  iteration_range: Optional[Tuple[int, int]],
                  groups_per_round: int) -> range:
    """Tree indices of the rounds ``iteration_range`` selects (all when None or (0, 0))."""
    if "iteration_indptr" in model:
        indptr = fields.ints(model, "iteration_indptr", None, "gradient_booster.model")
        if (len(indptr) == 0 or indptr[0] != 0 or indptr[-1] != n_trees
                or np.any(np.diff(indptr) < 0)):
            raise ValueError("XGBoost model: iteration_indptr does not partition the "
                             f"{n_trees} trees into rounds")
    else:
        params = model.get("gbtree_model_param", {})
        per_round = groups_per_round * fields.int_param(params, "num_parallel_tree",
                                                        "gbtree_model_param", 1)
        if per_round <= 0 or n_trees % per_round:
            raise ValueError(f"XGBoost model: {n_trees} trees do not split into rounds of "
                             f"{per_round}")
        indptr = np.arange(0, n_trees + 1, per_round)
    n_rounds = len(indptr) - 1
    if iteration_range is None:
        return range(n_trees)
    try:
        begin, end = (int(v) for v in iteration_range)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"iteration_range must be a pair of integers, got "
                         f"{iteration_range!r}") from exc
    if end == 0:
        end = n_rounds
    if not 0 <= begin <= end <= n_rounds:
        raise ValueError(f"iteration_range {tuple(iteration_range)} is out of range for a "
                         f"model with {n_rounds} boosting rounds")
    return range(int(indptr[begin]), int(indptr[end]))


def _base_score(mparam: Dict[str, Any], n_outputs: int, transform: str,
                objective: str) -> List[float]:
    """Margin-space base score [n_outputs], computed in float32 as XGBoost does."""
    raw = mparam.get("base_score", "0.5")
    text = raw.strip() if isinstance(raw, str) else repr(raw)
    if text.startswith("[") and text.endswith("]"):
        parts = [p for p in text[1:-1].split(",") if p.strip()]
    else:
        parts = [text]
    try:
        values = np.array([float(p) for p in parts], dtype=np.float32)
    except ValueError as exc:
        raise ValueError(f"XGBoost model: base_score {raw!r} is not a number or a "
                         "vector of numbers") from exc
    if len(values) == 1:
        values = np.repeat(values, n_outputs)
    if len(values) != n_outputs:
        raise ValueError(f"XGBoost model: base_score has {len(values)} entries for "
                         f"{n_outputs} outputs")
    with np.errstate(all="ignore"):
        if transform == "logit":
            p = np.clip(values, _PROB_EPS, np.float32(1) - _PROB_EPS)
            values = -_logf(np.float32(1) / p - np.float32(1))
        elif transform == "log":
            if np.any(~(values > 0)):
                raise ValueError(f"XGBoost model: base_score {raw!r} must be positive "
                                 f"for objective '{objective}'")
            values = _logf(values)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"XGBoost model: base_score {raw!r} is not finite")
    return [float(v) for v in values]


def _logf(x: np.ndarray) -> np.ndarray:
    """float32 natural log of float32 [n], as the C library's ``logf`` (which XGBoost
    calls) rounds it; the double-precision log rounded to float32 where it is absent."""
    logf = _c_logf()
    if logf is None:
        return np.log(x.astype(np.float64)).astype(np.float32)
    return np.array([logf(float(v)) for v in x], dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _c_logf() -> Optional[Callable[[float], float]]:
    try:
        lib = ctypes.CDLL("libm.so.6")
    except OSError:
        path = ctypes.util.find_library("m")
        try:
            lib = ctypes.CDLL(path) if path else None
        except OSError:
            lib = None
    fn = getattr(lib, "logf", None)
    if fn is None:
        return None
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


def _categories_by_feature(cats: Any, n_features: int) -> Dict[int, list]:
    """Training categories per categorical feature: the tree code of a category is its
    index in the list (XGBoost >= 3.1 stores them under ``cats.enc``)."""
    if cats is None:
        return {}
    enc = fields.items(cats, "enc", "cats") if isinstance(cats, dict) else None
    if enc is None or len(enc) not in (0, n_features):
        raise ValueError(f"XGBoost model: 'cats.enc' must list the {n_features} features")
    out: Dict[int, list] = {}
    for f, column in enumerate(enc):
        where = f"cats.enc[{f}]"
        if not isinstance(column, dict):
            raise ValueError(f"XGBoost model: '{where}' is not an object")
        if "offsets" in column:
            offsets = fields.ints(column, "offsets", None, where)
            chars = fields.ints(column, "values", None, where)
            if len(offsets) <= 1:
                continue
            if (offsets[0] != 0 or np.any(np.diff(offsets) < 0)
                    or offsets[-1] > len(chars)):
                raise ValueError(f"XGBoost model: '{where}.offsets' are inconsistent")
            raw = (chars & 0xFF).astype(np.uint8).tobytes()
            # XGBoost 3.2 can store non-ASCII names with broken byte offsets; decode
            # leniently, as pyarrow does when XGBoost exports them.
            out[f] = [raw[a:b].decode("utf-8", errors="replace")
                      for a, b in zip(offsets[:-1], offsets[1:])]
        else:
            values = column.get("values")
            if values is None:
                raise ValueError(f"XGBoost model: '{where}' is missing 'values'")
            try:
                codes = np.asarray(values)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"XGBoost model: '{where}.values' is not an array") from exc
            if codes.ndim != 1 or codes.dtype.kind not in "iufb":
                raise ValueError(f"XGBoost model: '{where}.values' is not a numeric array")
            if len(codes):
                out[f] = codes.tolist()
    return out
