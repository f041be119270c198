"""XGBoost trees (``gradient_booster.model.trees``) into one ``FlatTrees``.

Each node field is gathered across all selected trees and converted once; validation and
renumbering run on the concatenated arrays, so the cost does not grow with a per-tree
Python step. Only nodes reachable from each tree's root are kept (pruned models keep
deleted nodes in their arrays): a tree whose nodes are each the child of exactly one node
with a smaller index keeps its numbering, any other is walked breadth-first from its root.
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .._spec import MISSING_DEFAULT, FlatTrees
from . import _xgboost_fields as fields

_SPLIT_NUMERIC = 0
_SPLIT_CATEGORICAL = 1


def leaf_vector_size(tree: Any, index: int) -> int:
    """``size_leaf_vector`` of tree ``index`` (1 for scalar leaves)."""
    if not isinstance(tree, dict):
        raise ValueError(f"XGBoost model: tree {index} is not an object")
    params = fields.obj(tree, "tree_param", f"tree {index}")
    return max(fields.int_param(params, "size_leaf_vector", f"tree {index}.tree_param", 1), 1)


def parse_trees(trees: List[Any], selected: Sequence[int], n_features: int, n_outputs: int,
                vector_leaves: bool, weight_drop: Optional[np.ndarray],
                tree_info: np.ndarray) -> Any:
    """The selected trees as one ``FlatTrees`` (an empty list when none is selected).

    ``weight_drop``: dart weights float32 [n_trees] or None; ``tree_info``: output of
    each tree [n_trees]. Values are float32 as XGBoost stores them, widened to float64.
    """
    selected = list(selected)
    if not selected:
        return []
    width = n_outputs if vector_leaves else 1
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
    nodes = _Nodes(trees, selected, sizes)
    left = nodes.column("left_children", np.int64)
    right = nodes.column("right_children", np.int64)
    order, new_sizes = _reachable(left, right, nodes)
    offsets = np.zeros(len(selected) + 1, dtype=np.int64)
    np.cumsum(new_sizes, out=offsets[1:])
    tree_of = np.repeat(np.arange(len(selected)), new_sizes)

    old_start = nodes.offsets[:-1][tree_of]
    local = np.full(len(left), -1, dtype=np.int64)
    local[order] = np.arange(len(order)) - offsets[:-1][tree_of]
    o_left = left[order]
    is_leaf = o_left == -1
    inner = ~is_leaf
    new_left = np.where(is_leaf, -1, local[np.where(is_leaf, 0, o_left) + old_start])
    new_right = np.where(is_leaf, -1, local[np.where(is_leaf, 0, right[order]) + old_start])

    feature = np.where(is_leaf, 0, nodes.column("split_indices", np.int64)[order])
    bad = inner & ((feature < 0) | (feature >= n_features))
    if bad.any():
        at = int(np.argmax(bad))
        raise ValueError(f"XGBoost model: tree {selected[tree_of[at]]} node "
                         f"{int(order[at] - old_start[at])} splits on feature "
                         f"{int(feature[at])}, but the model has {n_features}")
    conditions = nodes.column("split_conditions", np.float32)[order]
    default_left = nodes.column("default_left", np.int64)[order]
    bad = (default_left != 0) & (default_left != 1)
    if bad.any():
        raise ValueError(f"XGBoost model: tree {selected[tree_of[np.argmax(bad)]]} "
                         "'default_left' holds values other than 0 and 1")
    default_left = default_left == 1
    cover = nodes.column("sum_hessian", np.float32)[order]
    gain = nodes.column("loss_changes", np.float32, absent="none")
    split_type = nodes.column("split_type", np.int64, absent="zeros")[order]
    split_type[is_leaf] = _SPLIT_NUMERIC
    bad = (split_type != _SPLIT_NUMERIC) & (split_type != _SPLIT_CATEGORICAL)
    if bad.any():
        raise ValueError(f"XGBoost model: tree {selected[tree_of[np.argmax(bad)]]} has an "
                         "unknown split_type")

    if vector_leaves:
        pieces = []
        for i, t in enumerate(selected):
            kept = slice(offsets[i], offsets[i + 1])
            leaves = order[kept][is_leaf[kept]]
            pieces.append(_leaf_vectors(trees[t], int(sizes[i]), width,
                                        leaves - nodes.offsets[i], right[leaves], f"tree {t}"))
        leaf_values = np.concatenate(pieces)
    else:
        leaf_values = conditions[is_leaf].reshape(-1, 1)
    if weight_drop is not None:
        weights = weight_drop[np.asarray(selected)][tree_of[is_leaf]]
        leaf_values = leaf_values * weights.reshape(-1, 1)
    value = np.zeros((len(order), width), dtype=np.float64)
    value[is_leaf] = leaf_values

    categorical = split_type == _SPLIT_CATEGORICAL
    cat_offsets, cat_values = _categories(trees, selected, nodes.offsets, order, offsets,
                                          categorical)
    return FlatTrees(
        tree_offsets=offsets,
        left=new_left.astype(np.int32),
        right=new_right.astype(np.int32),
        feature=feature.astype(np.int32),
        threshold=np.where(is_leaf | categorical, 0.0, conditions.astype(np.float64)),
        default_left=(default_left & inner).astype(np.uint8),
        cover=cover.astype(np.float64),
        value=value,
        output=_outputs(tree_info, selected, n_outputs, vector_leaves),
        missing=np.full(len(order), MISSING_DEFAULT, dtype=np.uint8),
        categorical=categorical.astype(np.uint8),
        cat_offsets=cat_offsets,
        cat_values=cat_values,
        gain=None if gain is None else np.where(is_leaf, 0.0, gain[order].astype(np.float64)),
    )


def _categories(trees: List[Any], selected: List[int], old_offsets: np.ndarray,
                order: np.ndarray, offsets: np.ndarray, categorical: np.ndarray) -> Any:
    """Category sets in CSR form over the kept nodes: (offsets int64 [n_kept + 1],
    members int64 [n_members], sorted per node)."""
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

    def __init__(self, trees: List[Any], selected: List[int], sizes: np.ndarray) -> None:
        self.trees = [trees[t] for t in selected]
        self.selected = selected
        self.sizes = sizes
        self.offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.offsets[1:])

    def column(self, key: str, dtype: type, absent: str = "raise") -> Optional[np.ndarray]:
        """Field ``key`` of every tree concatenated. Where a tree lacks it, ``absent``
        decides: ``"raise"`` (ValueError), ``"none"`` (return None) or ``"zeros"``."""
        pieces = [tree.get(key) for tree in self.trees]
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


def _reachable(left: np.ndarray, right: np.ndarray, nodes: _Nodes) -> Any:
    """(kept nodes, root first per tree: int64 [n_kept] indices into the gathered arrays;
    kept nodes per tree: int64 [n_trees]).

    A tree is kept as stored when every node but the root is the child of exactly one node
    with a smaller index (XGBoost's layout without deleted nodes); any other tree is walked
    from its root, which raises ValueError on child indices out of range and on nodes
    reached twice (cycles or shared children)."""
    sizes, starts = nodes.sizes, nodes.offsets[:-1]
    n_trees = len(sizes)
    tree_of = np.repeat(np.arange(n_trees), sizes)
    local = np.arange(len(left)) - starts[tree_of]
    inner = np.flatnonzero(left != -1)
    parents = np.concatenate((local[inner], local[inner]))
    owner = np.concatenate((tree_of[inner], tree_of[inner]))
    kids = np.concatenate((left[inner], right[inner]))
    bad_edge = (kids <= parents) | (kids >= sizes[owner])
    kids_global = np.where(bad_edge, 0, kids + starts[owner])
    n_parents = np.bincount(kids_global[~bad_edge], minlength=len(left))
    bad_node = (n_parents != 1) & (local != 0)
    bad = (np.bincount(owner, minlength=n_trees) != sizes - 1)
    bad |= np.bincount(owner, weights=bad_edge, minlength=n_trees) > 0
    bad |= np.bincount(tree_of, weights=bad_node, minlength=n_trees) > 0
    if not bad.any():
        return np.arange(len(left)), sizes
    pieces, kept = [], sizes.copy()
    for i in range(n_trees):
        a, b = int(starts[i]), int(starts[i] + sizes[i])
        if bad[i]:
            walked = _walk(left[a:b], right[a:b], f"tree {nodes.selected[i]}")
            pieces.append(walked + a)
            kept[i] = len(walked)
        else:
            pieces.append(np.arange(a, b))
    return np.concatenate(pieces), kept


def _walk(left: np.ndarray, right: np.ndarray, where: str) -> np.ndarray:
    """Nodes reachable from the root in breadth-first order: int64 [n_reachable]."""
    n = len(left)
    visited = np.zeros(n, dtype=bool)
    visited[0] = True
    slot = np.zeros(n, dtype=np.int64)
    levels = []
    frontier = np.zeros(1, dtype=np.int64)
    while len(frontier):
        levels.append(frontier)
        inner = frontier[left[frontier] != -1]
        kids = np.concatenate((left[inner], right[inner]))
        bad = (kids < 0) | (kids >= n)
        if bad.any():
            node = int(np.concatenate((inner, inner))[bad][0])
            raise ValueError(f"XGBoost model: {where} node {node} has a child index out of "
                             f"range (left {int(left[node])}, right {int(right[node])}, "
                             f"{n} nodes)")
        if visited[kids].any():
            raise ValueError(f"XGBoost model: {where} has a node reached twice "
                             "(cycle or shared child)")
        visited[kids] = True
        positions = np.arange(len(kids))
        slot[kids] = positions
        if np.any(slot[kids] != positions):
            raise ValueError(f"XGBoost model: {where} has a node reached twice "
                             "(shared child)")
        frontier = kids
    return np.concatenate(levels)


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
