"""The validating builder refuses malformed ForestSpecs with a clear exception."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spec_factory import TreeShape, probe_rows, random_spec
from treelens._forest import build

INVALID = (ValueError, IndexError)


def _spec():
    return random_spec(5, routing="float64", n_features=4, n_trees=2,
                       shape=TreeShape(max_depth=3, p_leaf=0.0))


def _edit_tree(edit):
    spec = _spec()
    edit(spec.trees[0])
    return spec


def test_valid_spec_builds():
    spec = _spec()
    forest = build(spec)
    assert (forest.n_trees, forest.n_features, forest.n_outputs, forest.max_depth) == (2, 4, 1, 3)
    assert forest.n_nodes == sum(len(t.left) for t in spec.trees)
    X = probe_rows(spec, 1)
    assert forest.shap_values(X, 1).shape == (len(X), 4, 1)
    assert forest.predict(X, 1).shape == (len(X), 1)
    assert forest.expected_value().shape == (1,)


def _set(name, index, value):
    def edit(tree):
        getattr(tree, name)[index] = value
    return edit


BROKEN = {
    "nan_leaf_value": lambda t: t.value.__setitem__((t.left < 0).argmax(), np.nan),
    "inf_leaf_value": lambda t: t.value.__setitem__((t.left < 0).argmax(), np.inf),
    "child_out_of_range": _set("left", 0, 1000),
    "negative_child_at_split": _set("right", 0, -7),
    "cycle_to_root": lambda t: t.left.__setitem__(int(t.left[0]), 0),
    "self_loop": _set("left", 0, 0),
    "shared_child": lambda t: t.right.__setitem__(0, int(t.left[0])),
    "feature_out_of_range": _set("feature", 0, 4),
    "negative_feature": _set("feature", 0, -1),
    "nan_threshold": _set("threshold", 0, np.nan),
    "short_right_array": lambda t: setattr(t, "right", t.right[:-1]),
    "output_out_of_range": lambda t: setattr(t, "output", 3),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_malformed_tree_is_rejected(name):
    spec = _edit_tree(BROKEN[name])
    with pytest.raises(INVALID):
        build(spec)


@pytest.mark.parametrize("change", [
    dict(routing="nonsense"),
    dict(base_score=[0.0, 1.0]),
    dict(n_features=0),
    dict(n_outputs=0),
    dict(trees=[]),
], ids=["routing", "base_score_length", "no_features", "no_outputs", "no_trees"])
def test_malformed_forest_is_rejected(change):
    spec = dataclasses.replace(_spec(), **change)
    with pytest.raises(INVALID):
        build(spec)


def _chain_covers(tree) -> None:
    """Covers that stay well inside float64 range however deep the chain is."""
    stack = [0]
    while stack:
        node = stack.pop()
        if tree.left[node] < 0:
            continue
        for child in (int(tree.left[node]), int(tree.right[node])):
            keep = 0.999 if tree.left[child] >= 0 else 0.001
            tree.cover[child] = tree.cover[node] * keep
            stack.append(child)


def test_very_deep_tree_is_not_a_crash():
    """A 2000-deep chain either builds and explains consistently or is refused cleanly."""
    spec = random_spec(6, routing="float64", n_features=3, n_trees=1,
                       shape=TreeShape(max_depth=2000, chain=True))
    _chain_covers(spec.trees[0])
    X = probe_rows(spec, 2, n_rows=3)
    try:
        forest = build(spec)
    except INVALID:
        return
    phi = forest.shap_values(X, 1)
    total = phi.sum(axis=1) + forest.expected_value()
    assert np.allclose(total, forest.predict(X, 1), rtol=1e-9, atol=1e-9)
