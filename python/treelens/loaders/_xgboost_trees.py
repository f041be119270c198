"""XGBoost trees (``gradient_booster.model.trees``) into one ``FlatTrees``.

Each node field is gathered across all selected trees (straight from the UBJSON reader's
columns when it decoded the trees by column) and the core turns the gathered fields into
the kept nodes' arrays in one pass (``_core.xgboost_trees``): only nodes reachable from
each tree's root are kept (pruned models keep deleted nodes in their arrays), a tree whose
nodes are each the child of exactly one node with a smaller index keeps its numbering,
any other is walked breadth-first from its root. Category sets and multi-output leaf
vectors, which only some models have, are read per tree here.
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence as SequenceABC
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .. import _core
from .._spec import MISSING_DEFAULT, FlatTrees
from . import _xgboost_fields as fields

_SPLIT_NUMERIC = 0
_SPLIT_CATEGORICAL = 1


class ColumnTrees(SequenceABC):
    """Trees as the UBJSON reader decodes them by column: each typed-array field
    concatenated over all trees with per-tree lengths, other fields as per-tree lists.
    Indexing gives one tree as a dict of views, as the document would hold it."""

    def __init__(self, columns: Dict[str, Any]) -> None:
        self.n_trees = int(columns["n_items"])
        self.lists: Dict[str, list] = columns["lists"]
        self.arrays = {}
        for key, (values, lengths) in columns["arrays"].items():
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            self.arrays[key] = (values, lengths, offsets)

    def __len__(self) -> int:
        return self.n_trees

    def __getitem__(self, t: Any) -> Any:
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(self.n_trees))]
        if not 0 <= t < self.n_trees:
            raise IndexError(f"tree {t} out of range for {self.n_trees} trees")
        tree = {key: values[offsets[t]:offsets[t + 1]]
                for key, (values, _, offsets) in self.arrays.items()}
        tree.update((key, values[t]) for key, values in self.lists.items())
        return tree

    def column(self, key: str, selected: range, sizes: np.ndarray) -> Optional[np.ndarray]:
        """Field ``key`` of the ``selected`` trees concatenated, when each holds ``sizes``
        values; None otherwise."""
        if key not in self.arrays:
            return None
        values, lengths, offsets = self.arrays[key]
        if not np.array_equal(lengths[selected.start:selected.stop], sizes):
            return None
        return values[offsets[selected.start]:offsets[selected.stop]]


def tree_list(model: Dict[str, Any]) -> Sequence[Any]:
    """``model.trees``: a list of tree objects, or ``ColumnTrees``."""
    trees = model.get("trees")
    if isinstance(trees, dict) and "n_items" in trees and "arrays" in trees:
        return ColumnTrees(trees)
    return fields.items(model, "trees", "gradient_booster.model")


def leaf_vector_size(tree: Any, index: int) -> int:
    """``size_leaf_vector`` of tree ``index`` (1 for scalar leaves)."""
    if not isinstance(tree, dict):
        raise ValueError(f"XGBoost model: tree {index} is not an object")
    params = fields.obj(tree, "tree_param", f"tree {index}")
    return max(fields.int_param(params, "size_leaf_vector", f"tree {index}.tree_param", 1), 1)


def parse_trees(trees: Sequence[Any], selected: range, n_features: int, n_outputs: int,
                vector_leaves: bool, weight_drop: Optional[np.ndarray],
                tree_info: np.ndarray) -> Any:
    """The selected trees as one ``FlatTrees`` (an empty list when none is selected).

    ``trees``: the tree objects (or ``ColumnTrees``); ``selected``: a range of them;
    ``weight_drop``: dart weights float32 [n_trees] or None; ``tree_info``: output of
    each tree [n_trees]. Values are float32 as XGBoost stores them, widened to float64.
    """
    if not len(selected):
        return []
    width = n_outputs if vector_leaves else 1
    sizes = _tree_sizes(trees, selected, width, vector_leaves)
    nodes = _Nodes(trees, selected, sizes)
    conditions = nodes.column("split_conditions", np.float32)
    flat = _core.xgboost_trees(
        sizes, nodes.column("left_children", np.int64), nodes.column("right_children", np.int64),
        nodes.column("split_indices", np.int64), conditions,
        nodes.column("default_left", np.int64),
        nodes.column("split_type", np.int64, absent="zeros"),
        nodes.column("sum_hessian", np.float32),
        nodes.column("loss_changes", np.float32, absent="none"),
        None if weight_drop is None else weight_drop[selected.start:selected.stop],
        n_features, selected.start)
    offsets, order = flat["tree_offsets"], flat["order"]
    value = flat["value"]
    if vector_leaves:
        value = _vector_values(trees, selected, nodes, flat, width, weight_drop)
    categorical = flat["categorical"]
    cat_offsets, cat_values = _categories(trees, list(selected), nodes.offsets, order,
                                          offsets, categorical.view(bool))
    return FlatTrees(
        tree_offsets=offsets,
        left=flat["left"],
        right=flat["right"],
        feature=flat["feature"],
        threshold=flat["threshold"],
        default_left=flat["default_left"],
        cover=flat["cover"],
        value=value,
        output=_outputs(tree_info, list(selected), n_outputs, vector_leaves),
        missing=np.full(len(order), MISSING_DEFAULT, dtype=np.uint8),
        categorical=categorical,
        cat_offsets=cat_offsets,
        cat_values=cat_values,
        gain=flat["gain"],
    )


def _tree_sizes(trees: Sequence[Any], selected: range, width: int,
                vector_leaves: bool) -> np.ndarray:
    """Stored nodes of each selected tree, int64 [n_selected], after checking each tree's
    leaf vector size (``width``) and that it has nodes."""
    if not vector_leaves:
        if isinstance(trees, ColumnTrees):
            params = trees.lists.get("tree_param", [])[selected.start:selected.stop]
        else:
            params = [tree.get("tree_param") if isinstance(tree, dict) else None
                      for tree in trees[selected.start:selected.stop]]
        try:
            nodes = [p["num_nodes"] for p in params]
            leaves = [p.get("size_leaf_vector", "1") for p in params]
            if (len(nodes) == len(selected)
                    and all(type(v) is str for v in itertools.chain(nodes, leaves))):
                sizes = np.array([int(v) for v in nodes], dtype=np.int64)
                if np.all(sizes > 0) and all(int(v) <= 1 for v in leaves):
                    return sizes
        except (TypeError, KeyError, AttributeError, ValueError, OverflowError):
            pass  # the loop below names the problem
    sizes = np.empty(len(selected), dtype=np.int64)
    for i, t in enumerate(selected):
        tree = trees[t]
        if leaf_vector_size(tree, t) != width or (width > 1) != vector_leaves:
            raise ValueError(f"XGBoost model: tree {t} has leaf vectors of size "
                             f"{leaf_vector_size(tree, t)}; expected {width} for every tree")
        sizes[i] = fields.int_param(tree["tree_param"], "num_nodes", f"tree {t}.tree_param")
        if sizes[i] <= 0:
            raise ValueError(f"XGBoost model: tree {t} has no nodes")
        if vector_leaves and "sum_hessian" not in tree:
            raise ValueError(f"XGBoost model: tree {t} stores no node covers (sum_hessian), "
                             "which TreeSHAP needs; older XGBoost versions save multi-output "
                             "trees without them")
    return sizes


def _vector_values(trees: Sequence[Any], selected: range, nodes: "_Nodes",
                   flat: Dict[str, np.ndarray], width: int,
                   weight_drop: Optional[np.ndarray]) -> np.ndarray:
    """Leaf vectors of multi-output trees at the kept nodes: float64 [n_kept, width]."""
    offsets, order = flat["tree_offsets"], flat["order"]
    is_leaf = flat["left"] == -1
    right = nodes.column("right_children", np.int64)
    pieces = []
    for i, t in enumerate(selected):
        kept = slice(offsets[i], offsets[i + 1])
        leaves = order[kept][is_leaf[kept]]
        pieces.append(_leaf_vectors(trees[t], int(nodes.sizes[i]), width,
                                    leaves - nodes.offsets[i], right[leaves], f"tree {t}"))
    leaf_values = np.concatenate(pieces)
    if weight_drop is not None:
        tree_of = np.repeat(np.arange(len(selected)), np.diff(offsets))
        weights = weight_drop[selected.start:selected.stop][tree_of[is_leaf]]
        leaf_values = leaf_values * weights.reshape(-1, 1)
    value = np.zeros((len(order), width), dtype=np.float64)
    value[is_leaf] = leaf_values
    return value


def _categories(trees: List[Any], selected: List[int], old_offsets: np.ndarray,
                order: np.ndarray, offsets: np.ndarray, categorical: np.ndarray) -> Any:
    """Category sets in CSR form over the kept nodes: (offsets int64 [n_kept + 1],
    members int64 [n_members], sorted per node)."""
    if not categorical.any():
        return np.zeros(len(order) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    counts = np.zeros(len(order), dtype=np.int64)
    chunks = []
    for i in np.unique(np.searchsorted(offsets, np.flatnonzero(categorical), side="right") - 1):
        t, a, b = selected[i], int(offsets[i]), int(offsets[i + 1])
        sets = _node_categories(trees[t], int(old_offsets[i + 1] - old_offsets[i]),
                                order[a:b] - old_offsets[i], np.flatnonzero(categorical[a:b]),
                                f"tree {t}")
        for node in sorted(sets):
            counts[a + node] = len(sets[node])
            chunks.append(sets[node])
    cat_offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(counts, out=cat_offsets[1:])
    return cat_offsets, np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


def _outputs(tree_info: np.ndarray, selected: List[int], n_outputs: int,
             vector_leaves: bool) -> np.ndarray:
    """Output each selected tree adds to: int32 [n_selected] (-1 for vector leaves)."""
    if vector_leaves:
        return np.full(len(selected), -1, dtype=np.int32)
    outputs = tree_info[np.asarray(selected)]
    bad = (outputs < 0) | (outputs >= n_outputs)
    if bad.any():
        at = int(np.argmax(bad))
        raise ValueError(f"XGBoost model: tree {selected[at]} adds to output "
                         f"{int(outputs[at])}, but the model has {n_outputs} output(s)")
    return outputs.astype(np.int32)


class _Nodes:
    """Node fields of the selected trees, each gathered into one array [sum of sizes]."""

    def __init__(self, trees: Sequence[Any], selected: range, sizes: np.ndarray) -> None:
        self.source = trees
        self.selected = selected
        self.sizes = sizes
        self.offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.offsets[1:])

    @functools.cached_property
    def trees(self) -> List[Any]:
        return [self.source[t] for t in self.selected]

    def column(self, key: str, dtype: type, absent: str = "raise") -> Optional[np.ndarray]:
        """Field ``key`` of every tree concatenated. Where a tree lacks it, ``absent``
        decides: ``"raise"`` (ValueError), ``"none"`` (return None) or ``"zeros"``."""
        if isinstance(self.source, ColumnTrees):
            gathered = self.source.column(key, self.selected, self.sizes)
            if gathered is not None:
                return gathered.astype(dtype, copy=False)
        pieces = [tree.get(key) for tree in self.trees]
        if dtype in (np.int64, np.float32) and not isinstance(self.source, ColumnTrees):
            gathered = _core.gather_lists(pieces, self.sizes, dtype is np.int64)
            if gathered is not None:
                return gathered
        for i in [i for i, piece in enumerate(pieces) if piece is None]:
            if absent == "none":
                return None
            if absent == "raise":
                raise ValueError(f"XGBoost model: tree {self.selected[i]} is missing '{key}'")
            pieces[i] = np.zeros(int(self.sizes[i]), dtype=dtype)
        try:
            lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
            if np.array_equal(lengths, self.sizes):
                if all(type(piece) is np.ndarray for piece in pieces):
                    out = np.concatenate(pieces)
                else:
                    out = np.fromiter(itertools.chain.from_iterable(pieces), dtype=dtype,
                                      count=int(self.offsets[-1]))
                if out.ndim == 1 and out.dtype.kind in "biuf":
                    return out.astype(dtype, copy=False)
        except (TypeError, ValueError, OverflowError):
            pass
        for tree, t, n in zip(self.trees, self.selected, self.sizes.tolist()):
            if key in tree:
                fields.array(tree, key, dtype, n, f"tree {t}")  # raises, naming the problem
        raise ValueError(f"XGBoost model: '{key}' is not a numeric array")


def _leaf_vectors(tree: Dict[str, Any], n: int, width: int, leaves: np.ndarray,
                  leaf_slots: np.ndarray, where: str) -> np.ndarray:
    """Leaf vectors [n_leaves, width] of a multi-output tree.

    XGBoost >= 3.2 stores them in ``leaf_weights``, indexed by the leaf's right child
    slot; older versions keep one vector per node in ``base_weights``."""
    if "leaf_weights" in tree:
        weights = fields.floats(tree, "leaf_weights", None, where)
        if len(weights) % width:
            raise ValueError(f"XGBoost model: {where} leaf_weights length {len(weights)} is "
                             f"not a multiple of {width}")
        table = weights.reshape(-1, width)
        if np.any((leaf_slots < 0) | (leaf_slots >= len(table))):
            raise ValueError(f"XGBoost model: {where} has a leaf index outside leaf_weights")
        return table[leaf_slots]
    weights = fields.floats(tree, "base_weights", n * width, where)
    return weights.reshape(n, width)[leaves]


def _node_categories(tree: Dict[str, Any], n: int, order: np.ndarray,
                     cat_nodes_new: np.ndarray, where: str) -> Dict[int, np.ndarray]:
    """Category sets of the categorical nodes, keyed by renumbered node: int64 arrays."""
    nodes = fields.ints(tree, "categories_nodes", None, where)
    segments = fields.ints(tree, "categories_segments", len(nodes), where)
    sizes = fields.ints(tree, "categories_sizes", len(nodes), where)
    values = fields.ints(tree, "categories", None, where)
    if np.any((segments < 0) | (sizes < 0) | (segments + sizes > len(values))):
        raise ValueError(f"XGBoost model: {where} category segments exceed the "
                         f"{len(values)} stored categories")
    if np.any((nodes < 0) | (nodes >= n)):
        raise ValueError(f"XGBoost model: {where} categories_nodes index out of range")
    by_node = {int(k): (int(s), int(c)) for k, s, c in zip(nodes, segments, sizes)}
    out: Dict[int, np.ndarray] = {}
    for new in cat_nodes_new.tolist():
        old = int(order[new])
        if old not in by_node:
            raise ValueError(f"XGBoost model: {where} categorical node {old} has no "
                             "category set")
        start, size = by_node[old]
        members = values[start:start + size]
        if np.any(members < 0):
            raise ValueError(f"XGBoost model: {where} node {old} has a negative category")
        out[new] = np.unique(members)
    return out
