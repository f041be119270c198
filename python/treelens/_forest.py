"""Turn a loader's ForestSpec into the C++ Forest (one validating builder)."""
from __future__ import annotations

import numpy as np

from . import _core
from ._spec import FlatTrees, ForestSpec


def build(spec: ForestSpec) -> "_core.Forest":
    """Build the validated core Forest from the spec's trees (concatenated if per tree)."""
    flat = FlatTrees.from_trees(spec.trees, spec.leaf_width)
    if len(flat) == 0:
        raise ValueError("model has no trees")
    return _core.Forest(
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
