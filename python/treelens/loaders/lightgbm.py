"""LightGBM loader: text models (``save_model`` / ``model_to_string``) and ``dump_model()`` JSON.

Files are parsed without importing lightgbm; live ``Booster`` / ``LGBMModel`` objects are read
through ``model_to_string()``. Both formats are first brought into LightGBM's own per-tree layout
(internal nodes ``0 .. L-2``, leaves ``~j``), which is then turned into ``TreeArrays`` with
internal node ``i`` at local index ``i`` and leaf ``j`` at ``L - 1 + j``.

The margin is LightGBM's raw score, ``booster.predict(X, raw_score=True)``: the sum of the leaf
values of the trees of each output. In random-forest mode (``average_output``) LightGBM's raw
score and its ``pred_contrib`` are this sum too (only the transformed ``predict()`` divides by
the number of iterations), so leaves are not rescaled. TreeSHAP node weights are the data
counts (``internal_count`` / ``leaf_count``), which is what LightGBM's ``pred_contrib`` uses.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from .. import _core
from .._outputs import OutputFunction
from .._spec import ROUTING_LIGHTGBM, FlatTrees, ForestSpec
from . import _lightgbm_categories as pandas_categories
from ._lightgbm_trees import (
    CATEGORICAL_MASK,
    DEFAULT_LEFT_MASK,
    RawTree,
    RawTrees,
    flat_trees,
    key_values,
    parse_text_trees,
)

# LightGBM objective name (first token of the ``objective`` line) -> its output function;
# ``sigmoid:`` and ``sqrt`` parameters on the line are applied in ``_output_function``.
_REGRESSION = OutputFunction()
_OBJECTIVE_OUTPUTS = {
    "regression": _REGRESSION,
    "regression_l1": _REGRESSION,
    "huber": _REGRESSION,
    "fair": _REGRESSION,
    "quantile": _REGRESSION,
    "mape": _REGRESSION,
    "lambdarank": _REGRESSION,
    "rank_xendcg": _REGRESSION,
    "custom": _REGRESSION,
    "binary": OutputFunction(link="logistic", classifier=True),
    "cross_entropy": OutputFunction(link="logistic"),
    "multiclassova": OutputFunction(link="logistic", classifier=True),
    "multiclass": OutputFunction(link="softmax", classifier=True),
    "poisson": OutputFunction(link="log"),
    "gamma": OutputFunction(link="log"),
    "tweedie": OutputFunction(link="log"),
    "cross_entropy_lambda": OutputFunction(link="softplus"),
}

_JSON_MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}
_FLAT_FIELDS = ("tree_offsets", "left", "right", "feature", "threshold", "default_left",
                "cover", "value", "output", "missing", "categorical", "cat_offsets",
                "cat_values", "gain")


@dataclass
class _FeatureInfo:
    """Training values of a feature: categorical (list of categories) or numeric (range)."""

    categorical: bool
    low: float
    high: float


@dataclass
class _RawModel:
    n_features: int
    n_outputs: int
    objective: str
    feature_names: Optional[List[str]]
    feature_infos: List[Optional[_FeatureInfo]]
    pandas_categorical: Optional[list]
    trees: Any  # RawTrees, or the FlatTrees the core's text reader returns
    average_output: bool = False  # random forest: predict() averages the iterations
    tree_sizes: Optional[str] = None  # the text header's tree_sizes line


def load_lightgbm(model: Any, num_iteration: Optional[int] = None) -> ForestSpec:
    """Read a LightGBM model into a ``ForestSpec`` whose margin is LightGBM's raw score.

    ``model``: a ``lightgbm.Booster``, a fitted ``LGBMModel`` (its ``booster_``), a path to a
    text model file or to a ``dump_model()`` JSON file, a model string, or a dump dict; also
    a gpboost ``Booster`` or its saved file (with a ``GPModel``, a JSON document whose
    ``booster_str`` holds the trees: only the trees, the fixed effect, are explained).
    ``num_iteration``: use the first ``num_iteration`` boosting rounds; ``None`` uses the
    booster's ``best_iteration`` when a live booster has one, else all rounds; ``<= 0`` uses all.

    The spec has ``n_outputs = num_tree_per_iteration`` (classes for multiclass); tree ``i`` adds
    to output ``i % n_outputs``; ``base_score`` is zero (LightGBM folds it into the leaves).
    Raises ``ValueError`` for malformed models, ``NotImplementedError`` for linear trees.
    """
    raw, best_iteration = _read(model)
    if num_iteration is None:
        num_iteration = best_iteration
    return _to_spec(raw, num_iteration)


def snapshot(model: Any) -> Optional[Tuple[str, int]]:
    """A live ``Booster`` / ``LGBMModel`` as (its text model, its best_iteration or 0); None
    for any other source. ValueError for an unfitted ``LGBMModel``."""
    booster = model
    if not hasattr(model, "model_to_string") and hasattr(type(model), "booster_"):
        booster = getattr(model, "booster_", None)  # None while an LGBMModel is not fitted
        if booster is None:
            raise ValueError(f"{type(model).__name__} is not fitted")
    if not hasattr(booster, "model_to_string"):
        return None
    best = getattr(booster, "best_iteration", 0) or 0
    return booster.model_to_string(num_iteration=-1), max(int(best), 0)


def spec_from_snapshot(snap: Tuple[str, int], num_iteration: Optional[int]) -> ForestSpec:
    """``load_lightgbm`` of the live model ``snapshot`` returned."""
    text, best_iteration = snap
    return _to_spec(_parse_model_text(text), best_iteration if num_iteration is None
                    else num_iteration)


def _read(model: Any) -> Tuple[_RawModel, int]:
    """Parse any accepted source; also return the live booster's best_iteration (0 if none)."""
    snap = snapshot(model)
    if snap is not None:
        return _parse_model_text(snap[0]), snap[1]
    if isinstance(model, dict):
        if isinstance(model.get("booster_str"), str):
            return _parse_text(model["booster_str"]), 0
        return _parse_dump(model), 0
    if isinstance(model, bytes):
        model = _decode(model, "model bytes")
    if isinstance(model, str) and ("\n" in model or model.startswith("tree")):
        return _parse_text(model), 0
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            return _parse_model_file(f.read(), os.fspath(model)), 0
    raise TypeError(f"cannot read a LightGBM model from {type(model).__name__}")


def _parse_model_text(text: str) -> _RawModel:
    """A text model, or a JSON document (a ``dump_model()`` dump, or a gpboost model with a
    ``GPModel`` whose ``booster_str`` holds the trees)."""
    if text.lstrip().startswith("{"):
        return _read(_load_json(text))[0]
    return _parse_text(text)


def _parse_model_file(data: bytes, origin: str) -> _RawModel:
    """A model file's bytes: the trees of a text model read from the bytes when they are plain
    text (only the rest is decoded), anything else as ``_parse_model_text`` reads it."""
    start = 0 if data.startswith(b"Tree=") else data.find(b"\nTree=") + 1
    if start > 0 or data.startswith(b"Tree="):
        header = _decode(data[:start], origin)
        header_lines = header.splitlines()
        if not (header.lstrip().startswith("{")
                or any(ln.startswith("Tree=") for ln in header_lines)):
            raw = _parse_plain_text(data, start, header_lines, origin)
            if raw is not None:
                return raw
    return _parse_model_text(_decode(data, origin))


def _decode(data: bytes, origin: str, offset: int = 0) -> str:
    """UTF-8 ``data``, found at byte ``offset`` of its source."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{origin}: not a LightGBM model (not UTF-8 text: byte "
                         f"0x{data[e.start]:02x} at offset {offset + e.start})") from None


def _load_json(text: str) -> dict:
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(
            "LightGBM JSON dump is nested too deeply to parse; save the model in the text "
            "format (Booster.save_model) instead") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed LightGBM JSON dump: {e}") from None
    if not isinstance(data, dict):
        raise ValueError("malformed LightGBM JSON dump: top level is not an object")
    return data


# ----------------------------------------------------------------------------- text format

def _parse_text(text: str) -> _RawModel:
    start = 0 if text.startswith("Tree=") else text.find("\nTree=") + 1
    if start > 0 or text.startswith("Tree="):
        header_lines = text[:start].splitlines()
        if not any(ln.startswith("Tree=") for ln in header_lines):
            raw = _parse_plain_text(text, start, header_lines)
            if raw is not None:
                return raw
    lines = text.splitlines()
    first_tree = next((i for i, ln in enumerate(lines) if ln.startswith("Tree=")), len(lines))
    try:
        end = lines.index("end of trees", first_tree)
    except ValueError:
        raise ValueError("malformed LightGBM model: no 'end of trees' line "
                         "(truncated or not a LightGBM text model)") from None
    raw = _header(lines[:first_tree])
    blocks: List[List[str]] = []
    tree_lines: List[int] = []
    for i in range(first_tree, end):
        ln = lines[i]
        if ln.startswith("Tree="):
            blocks.append([])
            tree_lines.append(i)
        elif ln.strip():
            blocks[-1].append(ln)
    raw.trees = parse_text_trees(blocks)
    if raw.tree_sizes is not None:
        _check_tree_sizes(raw.tree_sizes,
                          lambda: _block_sizes(text, lines, tree_lines + [end]))
    raw.pandas_categorical = pandas_categories.parse_footer(lines[end + 1:])
    return raw


def _parse_plain_text(text: Union[str, bytes], start: int, header_lines: List[str],
                      origin: str = "model text") -> Optional[_RawModel]:
    """The model read by the core's tree reader when its trees (from character, or byte,
    ``start``: the first ``Tree=`` line) are plain text; None otherwise."""
    raw = _header(header_lines)
    flat = _core.lightgbm_trees(text, start, raw.n_features, raw.n_outputs, -1, 0)
    if flat is None:
        return None
    if raw.tree_sizes is not None:
        _check_tree_sizes(raw.tree_sizes, lambda: flat["block_bytes"].tolist())
    raw.trees = FlatTrees(**{name: flat[name] for name in _FLAT_FIELDS})
    footer = text[flat["end"]:]
    if isinstance(footer, bytes):
        footer = _decode(footer, origin, flat["end"])
    raw.pandas_categorical = pandas_categories.parse_footer(footer.splitlines())
    return raw


def _header(lines: List[str]) -> _RawModel:
    """The model's header lines (before the first ``Tree=`` line), trees not yet read."""
    header = key_values(lines)
    n_features = _header_int(header, "max_feature_idx") + 1
    n_outputs = _header_int(header, "num_tree_per_iteration")
    if "num_class" in header and _header_int(header, "num_class") != n_outputs:
        raise ValueError(f"malformed LightGBM model: num_class={header['num_class']} but "
                         f"num_tree_per_iteration={n_outputs}")
    names = _per_feature(header, "feature_names", n_features)
    infos = [_text_feature_info(s) for s in _per_feature(header, "feature_infos", n_features)]
    return _RawModel(
        n_features=n_features,
        n_outputs=n_outputs,
        objective=header.get("objective", "custom"),
        feature_names=names,
        feature_infos=infos,
        pandas_categorical=None,
        trees=RawTrees.concat([]),
        average_output="average_output" in (ln.strip() for ln in lines),
        tree_sizes=header.get("tree_sizes"),
    )


def _check_tree_sizes(declared: str, actual_sizes: Callable[[], List[int]]) -> None:
    """LightGBM finds tree i at the byte offset the ``tree_sizes`` before it add up to, so
    sizes that do not match the ``Tree=`` blocks would make it read other trees.

    ``actual_sizes``: the bytes of each stored ``Tree=`` block."""
    try:
        sizes = [int(v) for v in declared.split()]
    except ValueError:
        raise ValueError(f"malformed LightGBM model: bad tree_sizes={declared[:80]!r}") from None
    actual = actual_sizes()
    if sizes != actual:
        raise ValueError(f"malformed LightGBM model: tree_sizes ({len(sizes)} entries) do not "
                         f"match the sizes of the {len(actual)} stored trees")


def _block_sizes(text: str, lines: List[str], marks: List[int]) -> List[int]:
    """Bytes from each ``Tree=`` line to the next (the last to the ``end of trees`` line).

    ``marks``: indices into ``lines`` of each ``Tree=`` line and of the ``end of trees``
    line."""
    actual = _block_bytes(text, lines, marks)
    if actual is None:
        end = _line_starts(text, "end of trees", len(text), first=True)[0]
        bounds = _line_starts(text, "Tree=", end) + [end]
        actual = [len(text[a:b].encode()) for a, b in zip(bounds, bounds[1:])]
    return actual


def _block_bytes(text: str, lines: List[str], marks: List[int]) -> Optional[List[int]]:
    """Bytes from each mark line to the next, counted from ``lines`` (the text's lines), or
    None unless every line break of the text is one byte (the last line may have none)."""
    breaks = len(lines) - (0 if text.endswith("\n") else 1)
    if sum(map(len, lines)) + breaks != len(text):  # then every break is one character
        return None
    head = lines[marks[0]:marks[-1]]
    if text.isascii():
        sizes: Iterable[int] = map(len, head)
    elif text.count("\n") == breaks:
        sizes = (len(ln.encode()) for ln in head)
    else:
        return None
    offsets = [0, *itertools.accumulate(size + 1 for size in sizes)]
    starts = [offsets[m - marks[0]] for m in marks]
    return [b - a for a, b in zip(starts, starts[1:])]


def _line_starts(text: str, prefix: str, stop: int, first: bool = False) -> List[int]:
    """Offsets of the lines of ``text[:stop]`` that start with ``prefix`` (only the first
    one when ``first``)."""
    out = [0] if text.startswith(prefix) else []
    needle = "\n" + prefix
    at = text.find(needle, 0, stop)
    while at >= 0 and not (first and out):
        out.append(at + 1)
        at = text.find(needle, at + 1, stop)
    return out


def _header_int(header: Dict[str, str], key: str) -> int:
    try:
        return int(header[key])
    except KeyError:
        raise ValueError(f"malformed LightGBM model: header has no '{key}'") from None
    except ValueError:
        raise ValueError(f"malformed LightGBM model: bad {key}={header[key]!r}") from None


def _per_feature(header: Dict[str, str], key: str, n_features: int) -> List[str]:
    """The ``n_features`` space-separated entries of a header line (LightGBM requires the
    line and its length; checking it first bounds everything sized by the feature count)."""
    if key not in header:
        raise ValueError(f"malformed LightGBM model: header has no '{key}' line")
    values = header[key].split()
    if len(values) != n_features:
        raise ValueError(f"malformed LightGBM model: '{key}' has {len(values)} entries, but "
                         f"max_feature_idx={n_features - 1} declares {n_features} features")
    return values


def _text_feature_info(info: str) -> Optional[_FeatureInfo]:
    """``[low:high]`` (numeric), ``c1:c2:...`` (categories) or ``none`` (unused)."""
    try:
        if info == "none":
            return None
        if info.startswith("[") and info.endswith("]"):
            low, high = info[1:-1].split(":")
            return _FeatureInfo(False, float(low), float(high))
        values = [int(v) for v in info.split(":")]
        return _FeatureInfo(True, min(values), max(values))
    except ValueError:
        raise ValueError(f"malformed LightGBM model: bad feature_infos entry {info!r}") from None


# ----------------------------------------------------------------------- dump_model() JSON

class _MalformedDump(ValueError):
    """A ``dump_model()`` document that does not have LightGBM's structure."""


def _parse_dump(dump: dict) -> _RawModel:
    try:
        return _parse_dump_fields(dump)
    except _MalformedDump:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, OverflowError) as e:
        raise _MalformedDump(f"malformed LightGBM JSON dump: bad or missing field "
                             f"({type(e).__name__}: {e})") from None


def _parse_dump_fields(dump: dict) -> _RawModel:
    n_features = int(dump["max_feature_idx"]) + 1
    names = dump["feature_names"]
    if not isinstance(names, list) or len(names) != n_features:
        raise _MalformedDump(f"malformed LightGBM JSON dump: feature_names does not list the "
                             f"{n_features} features max_feature_idx declares")
    infos = dump.get("feature_infos") or {}
    return _RawModel(
        n_features=n_features,
        n_outputs=int(dump["num_tree_per_iteration"]),
        objective=str(dump.get("objective", "custom")),
        feature_names=[str(n) for n in names],
        feature_infos=[_json_feature_info(infos.get(str(n))) for n in names],
        pandas_categorical=pandas_categories.check_lists(dump.get("pandas_categorical")),
        trees=RawTrees.concat([_parse_dump_tree(t, i)
                               for i, t in enumerate(dump["tree_info"])]),
        average_output=bool(dump.get("average_output", False)),
    )


def _json_feature_info(info: Any) -> Optional[_FeatureInfo]:
    if not isinstance(info, dict):
        return None
    if info.get("values"):
        values = [int(v) for v in info["values"]]
        return _FeatureInfo(True, min(values), max(values))
    return _FeatureInfo(False, float(info["min_value"]), float(info["max_value"]))


def _count_leaves(root: Any, limit: int) -> int:
    """Leaves of a nested ``tree_structure``, counting stops past ``limit`` (so a declared
    size is checked against the document before anything is allocated for it)."""
    count, stack = 0, [root]
    while stack and count <= limit:
        node = stack.pop()
        if isinstance(node, dict) and "split_index" in node:
            stack.extend((node["left_child"], node["right_child"]))
        else:
            count += 1
    return count


def _parse_dump_tree(info: dict, index: int) -> RawTree:
    """Walk one nested ``tree_structure`` (iteratively) into LightGBM's array layout."""
    where = f"tree {index}"
    n_leaves = int(info["num_leaves"])
    if n_leaves < 1 or _count_leaves(info["tree_structure"], n_leaves) != n_leaves:
        raise _MalformedDump(f"malformed LightGBM JSON dump: {where} declares num_leaves="
                             f"{n_leaves}, which its tree_structure does not hold")
    n_int = n_leaves - 1
    tree = RawTree(
        split_feature=np.zeros(n_int, np.int64), threshold=np.zeros(n_int),
        decision_type=np.zeros(n_int, np.int64), left_child=np.zeros(n_int, np.int64),
        right_child=np.zeros(n_int, np.int64), internal_count=np.zeros(n_int),
        split_gain=np.zeros(n_int), leaf_value=np.zeros(n_leaves), leaf_count=np.zeros(n_leaves))
    seen_nodes = np.zeros(n_int, dtype=bool)
    seen_leaves = np.zeros(n_leaves, dtype=bool)

    def node_id(node: dict) -> int:
        """LightGBM id of a node dict: split_index, or ~leaf_index; records leaves."""
        if not isinstance(node, dict):
            raise _MalformedDump(f"malformed LightGBM JSON dump: {where} has a node that is "
                                 f"not an object")
        if "split_index" in node:
            i = int(node["split_index"])
            if not 0 <= i < n_int or seen_nodes[i]:
                raise _MalformedDump(f"malformed LightGBM JSON dump: {where} has bad or repeated "
                                 f"split_index {i}")
            seen_nodes[i] = True
            return i
        if "leaf_coeff" in node or "leaf_const" in node:
            raise NotImplementedError(f"{where} is a linear tree (linear_tree=True); "
                                      "linear trees are not supported")
        j = int(node.get("leaf_index", 0))
        if not 0 <= j < n_leaves or seen_leaves[j]:
            raise _MalformedDump(f"malformed LightGBM JSON dump: {where} has bad or repeated "
                             f"leaf_index {j}")
        seen_leaves[j] = True
        tree.leaf_value[j] = float(node["leaf_value"])
        tree.leaf_count[j] = float(node.get("leaf_count", 0))
        return ~j

    stack = [info["tree_structure"]]
    if node_id(stack[0]) < 0:
        stack.pop()
    while stack:
        node = stack.pop()
        i = int(node["split_index"])
        left, right = node["left_child"], node["right_child"]
        tree.left_child[i] = node_id(left)
        tree.right_child[i] = node_id(right)
        stack.extend(c for c in (right, left) if "split_index" in c)
        tree.split_feature[i] = int(node["split_feature"])
        tree.internal_count[i] = float(node["internal_count"])
        # The text format rounds split_gain to 6 significant digits; match it.
        tree.split_gain[i] = float("%.6g" % float(node.get("split_gain", 0.0)))
        missing = _JSON_MISSING_TYPES.get(node.get("missing_type", "None"))
        if missing is None:
            raise _MalformedDump(f"malformed LightGBM JSON dump: {where} has missing_type "
                             f"{node.get('missing_type')!r}")
        dtype = (missing << 2) | (DEFAULT_LEFT_MASK if node.get("default_left") else 0)
        if node.get("decision_type", "<=") == "==":
            dtype |= CATEGORICAL_MASK
            cats = str(node["threshold"]).split("||")
            tree.categories[i] = np.array(sorted(int(c) for c in cats), dtype=np.int64)
        else:
            tree.threshold[i] = float(node["threshold"])
        tree.decision_type[i] = dtype
    if not (seen_nodes.all() and seen_leaves.all()):
        raise _MalformedDump(f"malformed LightGBM JSON dump: {where} does not reach all "
                         f"{n_leaves} leaves")
    return tree


# ---------------------------------------------------------------------------- to the spec

def _to_spec(raw: _RawModel, num_iteration: int) -> ForestSpec:
    k = raw.n_outputs
    if k < 1:
        raise ValueError(f"malformed LightGBM model: num_tree_per_iteration={k}")
    if not len(raw.trees):
        raise ValueError("malformed LightGBM model: the model has no trees")
    if len(raw.trees) % k:
        raise ValueError(f"malformed LightGBM model: {len(raw.trees)} trees is not a multiple "
                         f"of num_tree_per_iteration={k}")
    n_trees = len(raw.trees)
    if num_iteration > 0:
        n_trees = min(n_trees, num_iteration * k)
    if isinstance(raw.trees, FlatTrees):
        trees = raw.trees if n_trees == len(raw.trees) else raw.trees.first(n_trees)
    else:
        trees = flat_trees(raw.trees.head(n_trees), k, raw.n_features)

    output = _output_function(raw.objective, len(trees) // k if raw.average_output else 1)

    feature_types = ["c" if i is not None and i.categorical else "q" for i in raw.feature_infos]
    for f in np.unique(trees.feature[trees.categorical.astype(bool)]):
        feature_types[int(f)] = "c"
    names = raw.feature_names
    return ForestSpec(
        trees=trees,
        n_features=raw.n_features,
        n_outputs=k,
        base_score=[0.0] * k,
        routing=ROUTING_LIGHTGBM,
        feature_names=names,
        output=output,
        source="lightgbm",
        categories_by_feature=pandas_categories.by_feature(
            raw.pandas_categorical, raw.feature_infos, feature_types),
        feature_types=feature_types,
        trees_per_round=k,
    )


def _output_function(objective_line: str, iterations: int) -> OutputFunction:
    """The output function of an ``objective`` line such as ``binary sigmoid:2`` or
    ``regression sqrt``; ``iterations``: the divisor of an averaging random forest (1 when
    the model sums its trees)."""
    tokens = objective_line.split() or ["custom"]
    name = tokens[0]
    if name not in _OBJECTIVE_OUTPUTS:
        raise ValueError(f"unknown LightGBM objective {name!r}")
    output = _OBJECTIVE_OUTPUTS[name]
    changes: Dict[str, Any] = {"objective": name, "margin_scale": 1.0 / max(iterations, 1)}
    for token in tokens[1:]:
        key, _, value = token.partition(":")
        if key == "sqrt" and output.link == "identity":
            changes["link"] = "sqrt"
        elif key == "sigmoid" and output.link == "logistic":
            try:
                alpha = float(value)
            except ValueError:
                alpha = float("nan")
            if not (np.isfinite(alpha) and alpha > 0):
                raise ValueError(f"malformed LightGBM model: objective {objective_line!r} "
                                 "needs a positive finite sigmoid")
            changes["sigmoid_alpha"] = alpha
    return dataclasses.replace(output, **changes)
