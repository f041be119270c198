"""Turn a loader's ForestSpec into the C++ Forest (one validating builder)."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict

import numpy as np

from . import _core
from ._spec import FlatTrees, ForestSpec

_MAX_INT32 = 2**31 - 1


def build(spec: ForestSpec) -> "_core.Forest":
    """Build the validated core Forest from the spec's trees (concatenated if per tree)."""
    return _core.Forest(**flat_arrays(spec))


def flat_arrays(spec: ForestSpec) -> Dict[str, Any]:
    """The keyword arguments of ``_core.Forest``: the spec's trees concatenated (nodes
    [n_nodes], trees [n_trees + 1] offsets, category members in CSR by node)."""
    flat = FlatTrees.from_trees(spec.trees, spec.leaf_width)
    if len(flat) == 0:
        raise ValueError("model has no trees")
    for name in ("n_features", "n_outputs"):
        value = getattr(spec, name)
        if not 0 < value <= _MAX_INT32:
            raise ValueError(f"invalid model: {name} = {value} is outside 1..{_MAX_INT32}")
    return dict(
        tree_offsets=flat.tree_offsets,
        left=flat.left,
        right=flat.right,
        feature=flat.feature,
        threshold=flat.threshold,
        default_left=flat.default_left,
        missing=flat.missing,
        categorical=flat.categorical,
        cat_offsets=flat.cat_offsets,
        cat_values=flat.cat_values,
        cover=flat.cover,
        value=flat.value.reshape(-1, spec.leaf_width),
        tree_output=flat.output,
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
    flat = FlatTrees.from_trees(spec.trees, spec.leaf_width)
    return dataclasses.replace(spec, trees=flat.first(n_trees))


def with_covers(spec: ForestSpec, covers: np.ndarray, floor: float) -> ForestSpec:
    """The spec with node weights ``covers`` ``[n_nodes]`` (all trees, concatenated in
    order); weights below ``floor`` become ``floor``."""
    flat = FlatTrees.from_trees(spec.trees, spec.leaf_width)
    if len(covers) != len(flat.cover):
        raise ValueError(f"{len(covers)} node weights for a model with {len(flat.cover)} nodes")
    cover = np.maximum(np.asarray(covers, dtype=np.float64), floor)
    return dataclasses.replace(spec, trees=dataclasses.replace(flat, cover=cover))
