"""LightGBM trees: the text format's ``Tree=`` blocks, in LightGBM's own layout, and their
conversion to one ``FlatTrees``.

In LightGBM's layout a tree with ``L`` leaves has internal nodes ``0 .. L-2`` and leaves
``~j``. The trees of a model are held concatenated (``RawTrees``) so that parsing and
validation run once over all of them: each node field of the text format is gathered
from every tree and its numbers parsed in one call. In the ``FlatTrees``, internal node
``i`` of a tree sits at local index ``i`` and leaf ``j`` at ``L - 1 + j``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from .._spec import MISSING_DEFAULT, MISSING_NAN_AS_ZERO, MISSING_ZERO, FlatTrees

# decision_type bits (LightGBM tree.h).
CATEGORICAL_MASK = 1
DEFAULT_LEFT_MASK = 2
# missing type (decision_type >> 2) & 3 -> spec missing mode: None, Zero, NaN.
_MISSING_MODES = np.array([MISSING_NAN_AS_ZERO, MISSING_ZERO, MISSING_DEFAULT], dtype=np.uint8)

# Node fields of a text tree: (key, integers, per leaf, when the line must be present:
# always, in trees that split, or never (zeros when absent)).
_ALWAYS, _SPLITS, _NEVER = 2, 1, 0
_TEXT_FIELDS = (
    ("split_feature", True, False, _ALWAYS),
    ("threshold", False, False, _ALWAYS),
    ("decision_type", True, False, _ALWAYS),
    ("left_child", True, False, _ALWAYS),
    ("right_child", True, False, _ALWAYS),
    ("internal_count", False, False, _SPLITS),
    ("split_gain", False, False, _NEVER),
    ("leaf_value", False, True, _ALWAYS),
    ("leaf_count", False, True, _SPLITS),
)


@dataclass
class RawTree:
    """One tree in LightGBM's layout: node arrays [L - 1], leaf arrays [L]."""

    split_feature: np.ndarray   # int64 [L - 1]
    threshold: np.ndarray       # float64 [L - 1], 0 at categorical nodes
    decision_type: np.ndarray   # int64 [L - 1]
    left_child: np.ndarray      # int64 [L - 1], >= 0 node, < 0 leaf ~c
    right_child: np.ndarray     # int64 [L - 1]
    internal_count: np.ndarray  # float64 [L - 1]
    split_gain: np.ndarray      # float64 [L - 1]
    leaf_value: np.ndarray      # float64 [L]
    leaf_count: np.ndarray      # float64 [L]
    categories: Dict[int, np.ndarray] = field(default_factory=dict)  # node -> members


@dataclass
class RawTrees:
    """``T`` trees in LightGBM's layout, concatenated: the fields of ``RawTree``, node fields
    [sum(L - 1)] and leaf fields [sum(L)], tree by tree; ``n_leaves`` int64 [T];
    ``categories``: (tree, node) -> sorted members."""

    n_leaves: np.ndarray
    fields: Dict[str, np.ndarray]
    categories: Dict[Tuple[int, int], np.ndarray] = field(default_factory=dict)

    @classmethod
    def concat(cls, trees: Sequence[RawTree]) -> "RawTrees":
        names = [name for name, *_ in _TEXT_FIELDS]
        return cls(
            n_leaves=np.array([len(t.leaf_value) for t in trees], dtype=np.int64),
            fields={name: np.concatenate([getattr(t, name) for t in trees])
                    if trees else np.zeros(0) for name in names},
            categories={(i, node): members for i, t in enumerate(trees)
                        for node, members in t.categories.items()})

    def __len__(self) -> int:
        return len(self.n_leaves)

    def head(self, n: int) -> "RawTrees":
        """The first ``n`` trees."""
        n_nodes = int(np.sum(self.n_leaves[:n] - 1))
        n_leaves = int(np.sum(self.n_leaves[:n]))
        return RawTrees(
            n_leaves=self.n_leaves[:n],
            fields={name: self.fields[name][:n_leaves if per_leaf else n_nodes]
                    for name, _, per_leaf, _ in _TEXT_FIELDS},
            categories={key: v for key, v in self.categories.items() if key[0] < n})


def parse_text_trees(blocks: List[List[str]]) -> RawTrees:
    """The ``Tree=`` blocks of a text model (each a list of ``key=value`` lines)."""
    kvs = [key_values(block) for block in blocks]
    n_leaves = np.empty(len(kvs), dtype=np.int64)
    for i, kv in enumerate(kvs):
        if kv.get("is_linear", "0") != "0":
            raise NotImplementedError(f"tree {i} is a linear tree (linear_tree=True); "
                                      "linear trees are not supported")
        n_leaves[i] = int(text_array(kv, "num_leaves", f"tree {i}", np.int64, 1)[0])
        if n_leaves[i] < 1:
            raise ValueError(f"malformed LightGBM model: tree {i} has "
                             f"num_leaves={n_leaves[i]}")
    fields = {}
    for key, integers, per_leaf, required in _TEXT_FIELDS:
        sizes = n_leaves if per_leaf else n_leaves - 1
        lines = []
        for i, kv in enumerate(kvs):
            line = kv.get(key)
            if line is None:
                if required == _ALWAYS or (required == _SPLITS and n_leaves[i] > 1):
                    raise ValueError(f"malformed LightGBM model: tree {i} has no '{key}' line")
                line = " ".join(["0"] * int(sizes[i]))
            lines.append(line)
        try:
            values, counts = _core.parse_number_lines(lines, integers)
        except ValueError as exc:
            tree = str(exc).split(":")[0].split()[-1]
            raise ValueError(f"malformed LightGBM model: tree {tree} has a bad '{key}' "
                             "line") from None
        bad = np.flatnonzero(counts != sizes)
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"malformed LightGBM model: tree {i} '{key}' has {counts[i]} "
                             f"values, expected {sizes[i]}")
        fields[key] = values
    raw = RawTrees(n_leaves=n_leaves, fields=fields)
    cat_nodes = np.flatnonzero(fields["decision_type"] & CATEGORICAL_MASK)
    if len(cat_nodes):
        node_starts = np.concatenate(([0], np.cumsum(n_leaves - 1)))
        trees_of = np.searchsorted(node_starts, cat_nodes, side="right") - 1
        for i in np.unique(trees_of):
            nodes = cat_nodes[trees_of == i] - node_starts[i]
            _text_categories(kvs[i], int(i), nodes, raw, int(node_starts[i]))
    return raw


def _text_categories(kv: Dict[str, str], index: int, nodes: np.ndarray, raw: RawTrees,
                     start: int) -> None:
    """Category sets of the categorical ``nodes`` of tree ``index`` into ``raw``; their
    thresholds (set indices) become 0."""
    where = f"tree {index}"
    n_cat = int(text_array(kv, "num_cat", where, np.int64, 1)[0])
    bounds = text_array(kv, "cat_boundaries", where, np.int64, n_cat + 1)
    words = text_array(kv, "cat_threshold", where, np.int64, None)
    if (bounds[0] != 0 or np.any(np.diff(bounds) < 0) or bounds[-1] != len(words)
            or np.any(words < 0) or np.any(words > 0xFFFFFFFF)):
        raise ValueError(f"malformed LightGBM model: {where} has inconsistent "
                         "cat_boundaries / cat_threshold")
    threshold = raw.fields["threshold"]
    for node in nodes.tolist():
        k = threshold[start + node]
        if not (0 <= k < n_cat and k == int(k)):
            raise ValueError(f"malformed LightGBM model: {where} node {node} has "
                             f"category set index {k}, expected 0..{n_cat - 1}")
        k = int(k)
        raw.categories[(index, node)] = bitset_members(words[bounds[k]:bounds[k + 1]])
        threshold[start + node] = 0.0


def key_values(lines: List[str]) -> Dict[str, str]:
    """``key=value`` lines -> dict (bare flag lines such as ``average_output`` are skipped)."""
    out: Dict[str, str] = {}
    for ln in lines:
        key, sep, value = ln.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def text_array(kv: Dict[str, str], key: str, where: str, dtype: type,
               size: Optional[int]) -> np.ndarray:
    """Parse one space-separated array line, checking its length."""
    if key not in kv:
        raise ValueError(f"malformed LightGBM model: {where} has no '{key}' line")
    try:
        out = np.array(kv[key].split(), dtype=dtype)
    except (ValueError, OverflowError):
        raise ValueError(f"malformed LightGBM model: {where} has a bad '{key}' line") from None
    if size is not None and len(out) != size:
        raise ValueError(f"malformed LightGBM model: {where} '{key}' has {len(out)} values, "
                         f"expected {size}")
    return out


def bitset_members(words: np.ndarray) -> np.ndarray:
    """uint32 bitset words -> sorted member categories (bit b of word w = category 32 w + b)."""
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")
    return np.flatnonzero(bits).astype(np.int64)


# ---------------------------------------------------------------------------- to the spec

def flat_trees(raw: RawTrees, n_outputs: int, n_features: int) -> FlatTrees:
    """LightGBM layout -> ``FlatTrees``: node i at local i, leaf j at L - 1 + j; tree t adds
    to output ``t % n_outputs``."""
    n_trees = len(raw)
    f = raw.fields
    n_int = raw.n_leaves - 1
    sizes = 2 * n_int + 1
    offsets = np.zeros(n_trees + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    n = int(offsets[-1])
    tree_of_int = np.repeat(np.arange(n_trees), n_int)
    tree_of_leaf = np.repeat(np.arange(n_trees), raw.n_leaves)
    int_pos = offsets[:-1][tree_of_int] + _local_index(n_int)
    leaf_pos = offsets[:-1][tree_of_leaf] + n_int[tree_of_leaf] + _local_index(raw.n_leaves)

    children = np.concatenate([f["left_child"], f["right_child"]])
    owner = np.concatenate([tree_of_int, tree_of_int])
    limit = n_int[owner]
    _first_bad(owner, (children < -(limit + 1)) | (children >= limit),
               "has a child index out of range")
    local = np.where(children >= 0, children, limit + ~children).astype(np.int32)
    left = np.full(n, -1, dtype=np.int32)
    right = np.full(n, -1, dtype=np.int32)
    left[int_pos] = local[:len(int_pos)]
    right[int_pos] = local[len(int_pos):]
    _check_tree_shape(offsets, owner, local, n)

    feature = f["split_feature"]
    _first_bad(tree_of_int, (feature < 0) | (feature >= n_features),
               f"splits on a feature outside 0..{n_features - 1}")
    decision = f["decision_type"]
    missing_type = (decision >> 2) & 3
    _first_bad(tree_of_int, (decision < 0) | (decision > 15) | (missing_type > 2),
               "has an invalid decision_type")
    is_cat = (decision & CATEGORICAL_MASK).astype(bool)

    def node_array(internal: np.ndarray, dtype: type) -> np.ndarray:
        out = np.zeros(n, dtype=dtype)
        out[int_pos] = internal
        return out

    value = np.zeros((n, 1), dtype=np.float64)
    value[leaf_pos, 0] = f["leaf_value"]
    cover = node_array(f["internal_count"], np.float64)
    cover[leaf_pos] = f["leaf_count"]
    cat_offsets, cat_values = _category_csr(raw.categories, offsets, n)
    return FlatTrees(
        tree_offsets=offsets,
        left=left,
        right=right,
        feature=node_array(feature, np.int32),
        threshold=node_array(f["threshold"], np.float64),
        # LightGBM sends NaN to the right at categorical nodes, whatever the flags say.
        default_left=node_array(((decision & DEFAULT_LEFT_MASK) > 0) & ~is_cat, np.uint8),
        cover=cover,
        value=value,
        output=(np.arange(n_trees) % n_outputs).astype(np.int32),
        missing=node_array(np.where(is_cat, MISSING_DEFAULT, _MISSING_MODES[missing_type]),
                           np.uint8),
        categorical=node_array(is_cat, np.uint8),
        cat_offsets=cat_offsets,
        cat_values=cat_values,
        gain=node_array(f["split_gain"], np.float64),
    )


def _local_index(sizes: np.ndarray) -> np.ndarray:
    """0 .. sizes[t] - 1 for each t, concatenated: int64 [sum(sizes)]."""
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return np.arange(int(np.sum(sizes))) - np.repeat(starts, sizes)


def _first_bad(tree_of: np.ndarray, bad: np.ndarray, what: str) -> None:
    if bad.any():
        raise ValueError(f"malformed LightGBM model: tree {int(tree_of[np.argmax(bad)])} "
                         f"{what}")


def _check_tree_shape(offsets: np.ndarray, owner: np.ndarray, local: np.ndarray,
                      n: int) -> None:
    """Every node but a tree's root has exactly one parent and is reachable from the root.

    ``owner``, ``local``: tree and local index of each child slot (the left children of all
    internal nodes, then their right children)."""
    starts, sizes = offsets[:-1], np.diff(offsets)
    tree_of = np.repeat(np.arange(len(starts)), sizes)
    child = starts[owner] + local
    parents = np.bincount(child, minlength=n)
    parents[starts] += 1  # the root has none
    _first_bad(tree_of, parents != 1, "is not a tree (a node has no parent or several)")
    n_slots = len(child) // 2
    slot = np.full(n, -1, dtype=np.int64)
    slot[np.arange(n) - starts[tree_of] < ((sizes - 1) // 2)[tree_of]] = np.arange(n_slots)
    reached = np.zeros(n, dtype=bool)
    frontier = starts
    while len(frontier):
        reached[frontier] = True
        inner = slot[frontier]
        inner = inner[inner >= 0]
        frontier = np.concatenate([child[inner], child[n_slots + inner]])
    _first_bad(tree_of, ~reached, "has nodes unreachable from the root")


def _category_csr(categories: Dict[Tuple[int, int], np.ndarray], offsets: np.ndarray,
                  n: int) -> Tuple[np.ndarray, np.ndarray]:
    """(offsets int64 [n + 1], members int64) of the category sets over all nodes."""
    counts = np.zeros(n, dtype=np.int64)
    chunks = []
    for (t, node), members in sorted(categories.items()):
        counts[offsets[t] + node] = len(members)
        chunks.append(np.asarray(members, dtype=np.int64))
    cat_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=cat_offsets[1:])
    return cat_offsets, np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
