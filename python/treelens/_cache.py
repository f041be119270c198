"""Forests of live model objects, reused while the model is unchanged.

``load`` keeps, per live model object (weakly: the entry goes with the model), the Forest
it built and the model's snapshot at that time: its serialised form (XGBoost UBJSON,
LightGBM text), or for scikit-learn the spec read from its trees. A later load of the same
object takes a new snapshot, which costs far less than parsing, validating and building,
and reuses the Forest, with the algorithm plans it has built, only when the snapshot is
unchanged: a model retrained or edited in place gets a new Forest.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Dict, Hashable, Tuple

import numpy as np

from ._spec import FlatTrees, ForestSpec

#: Forests kept per model object (one per distinct iteration limit asked for).
MAX_PER_MODEL = 4

_ENTRIES: "weakref.WeakKeyDictionary[Any, Dict[Hashable, Tuple[Any, Any]]]" = (
    weakref.WeakKeyDictionary())


def forest_of(model: Any, key: Hashable, snapshot: Any, build: Callable[[Any], Any]) -> Any:
    """The Forest cached for ``model`` under ``key`` when it was built from a snapshot equal
    to ``snapshot``; otherwise ``build(snapshot)``, cached. ``snapshot``: bytes, str,
    tuples of them, or a ``ForestSpec``. Objects that cannot be weakly referenced or hashed
    are not cached."""
    try:
        entries = _ENTRIES.get(model)
        if entries is None:
            entries = {}
            _ENTRIES[model] = entries
    except TypeError:
        return build(snapshot)
    hit = entries.get(key)
    if hit is not None and same(hit[0], snapshot):
        return hit[1]
    forest = build(snapshot)
    entries.pop(key, None)
    while len(entries) >= MAX_PER_MODEL:
        entries.pop(next(iter(entries)))
    entries[key] = (snapshot, forest)
    return forest


def clear() -> None:
    """Forget every cached Forest."""
    _ENTRIES.clear()


def same(a: Any, b: Any) -> bool:
    """Whether two snapshots describe the same model (specs: identical arrays and fields)."""
    if isinstance(a, ForestSpec) or isinstance(b, ForestSpec):
        if not (isinstance(a, ForestSpec) and isinstance(b, ForestSpec)):
            return False
        fa = FlatTrees.from_trees(a.trees, a.leaf_width)
        fb = FlatTrees.from_trees(b.trees, b.leaf_width)
        return (_same_fields(vars(fa), vars(fb))
                and _same_fields({k: v for k, v in vars(a).items() if k != "trees"},
                                 {k: v for k, v in vars(b).items() if k != "trees"}))
    return type(a) is type(b) and a == b


def _same_fields(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for name, x in a.items():
        y = b[name]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            x, y = np.asarray(x), np.asarray(y)
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                return False
        elif x != y and not (_is_nan(x) and _is_nan(y)):
            return False
    return True


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value
