"""Turn a loader's ForestSpec into the C++ Forest (one validating builder)."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict

import numpy as np

from . import _core
from ._spec import MISSING_DEFAULT, ForestSpec

_MAX_INT32 = 2**31 - 1


def build(spec: ForestSpec) -> "_core.Forest":
    """Concatenate the spec's trees into flat arrays and build the validated core Forest."""
    return _core.Forest(**flat_arrays(spec))


def flat_arrays(spec: ForestSpec) -> Dict[str, Any]:
    """The keyword arguments of ``_core.Forest``: the spec's trees concatenated (nodes
    [n_nodes], trees [n_trees + 1] offsets, category members in CSR by node)."""
    trees = spec.trees
    if not trees:
        raise ValueError("model has no trees")
    for name in ("n_features", "n_outputs"):
        value = getattr(spec, name)
        if not 0 < value <= _MAX_INT32:
            raise ValueError(f"invalid model: {name} = {value} is outside 1..{_MAX_INT32}")
    sizes = np.array([len(t.left) for t in trees], dtype=np.int64)
    offsets = np.zeros(len(trees) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    n = int(offsets[-1])

    def cat(name, dtype, default=0):
        out = np.empty(n, dtype=dtype)
        for t, start in zip(trees, offsets[:-1]):
            a = getattr(t, name)
            out[start:start + len(t.left)] = default if a is None else np.asarray(a).reshape(-1)
        return out

    values = np.empty((n, spec.leaf_width), dtype=np.float64)
    cat_counts = np.zeros(n, dtype=np.int64)
    cat_chunks = []
    for t, start in zip(trees, offsets[:-1]):
        v = np.asarray(t.value, dtype=np.float64)
        values[start:start + len(t.left)] = v.reshape(len(t.left), spec.leaf_width)
        for node in sorted(t.categories):
            members = np.asarray(t.categories[node], dtype=np.int64).reshape(-1)
            cat_counts[start + node] = len(members)
            cat_chunks.append(members)
    cat_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cat_counts, out=cat_offsets[1:])
    cat_values = np.concatenate(cat_chunks) if cat_chunks else np.zeros(0, dtype=np.int64)

    return dict(
        tree_offsets=offsets,
        left=cat("left", np.int32),
        right=cat("right", np.int32),
        feature=cat("feature", np.int32),
        threshold=cat("threshold", np.float64),
        default_left=cat("default_left", np.uint8),
        missing=cat("missing", np.uint8, MISSING_DEFAULT),
        categorical=cat("categorical", np.uint8),
        cat_offsets=cat_offsets,
        cat_values=cat_values,
        cover=cat("cover", np.float64),
        value=values,
        tree_output=np.array([t.output for t in trees], dtype=np.int32),
        base_score=np.asarray(spec.base_score, dtype=np.float64).reshape(-1),
        n_features=int(spec.n_features),
        n_outputs=int(spec.n_outputs),
        routing=spec.routing,
        float32_margin=bool(spec.float32_margin),
    )


def first_trees(spec: ForestSpec, n_trees: int) -> ForestSpec:
    """The spec with only its first ``n_trees`` trees (base score and metadata kept)."""
    if not 0 < n_trees <= len(spec.trees):
        raise ValueError(f"cannot keep {n_trees} of the model's {len(spec.trees)} trees")
    return dataclasses.replace(spec, trees=spec.trees[:n_trees])


def with_covers(spec: ForestSpec, covers: np.ndarray, floor: float) -> ForestSpec:
    """The spec with node weights ``covers`` ``[n_nodes]`` (all trees, concatenated in
    order); weights below ``floor`` become ``floor``."""
    trees = []
    start = 0
    for tree in spec.trees:
        stop = start + len(tree.left)
        cover = np.maximum(np.asarray(covers[start:stop], dtype=np.float64), floor)
        trees.append(dataclasses.replace(tree, cover=cover))
        start = stop
    if start != len(covers):
        raise ValueError(f"{len(covers)} node weights for a model with {start} nodes")
    return dataclasses.replace(spec, trees=trees)
