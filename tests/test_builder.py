"""The validating builder refuses malformed ForestSpecs with a clear exception."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spec_factory import TreeShape, probe_rows, random_spec
from treelens import _core
from treelens._forest import build, flat_arrays

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


def test_middle_category_offset_out_of_range_is_rejected():
    """Every category offset is checked, not only the first and the last."""
    spec = random_spec(7, routing="lightgbm", n_features=4, n_trees=2, cat_features={1: 40})
    arrays = flat_arrays(spec)
    offsets = arrays["cat_offsets"]
    assert offsets[-1] > 0, "the spec has no categorical split"
    middle = int(np.argmax(offsets > 0))
    for bad in (offsets[-1] + 10**12, -5):
        broken = dict(arrays, cat_offsets=offsets.copy())
        broken["cat_offsets"][middle] = bad
        with pytest.raises(ValueError, match="category offset"):
            _core.Forest(**broken)


# ------------------------------------------------------------ covers and float32 ranges

def _oracle_check(spec, n_rows=12):
    import oracle

    X = probe_rows(spec, 3, n_rows=n_rows)
    forest = build(spec)
    phi, expected = oracle.shap_values(spec, X)
    mine = forest.shap_values(X, 1)
    assert np.isfinite(mine).all() and np.isfinite(forest.expected_value()).all()
    np.testing.assert_allclose(forest.expected_value(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mine, phi, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mine.sum(axis=1) + forest.expected_value(),
                               forest.predict(X, 1), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scale", [1e-300, 1e-320, 5e-324])
def test_subnormal_covers_match_the_oracle(scale):
    """Covers scaled into the subnormal range (down to covers rounding to zero) give
    finite values equal to the oracle's."""
    spec = _spec()
    for tree in spec.trees:
        tree.cover = tree.cover / tree.cover.max() * scale
    _oracle_check(spec)


def test_zero_and_subnormal_covers_in_one_tree_match_the_oracle():
    spec = _spec()
    tree = spec.trees[0]
    left, right = int(tree.left[0]), int(tree.right[0])
    tree.cover[left] = 0.0          # a subtree no data reached: fraction 0 below it
    _zero_subtree(tree, left)
    tree.cover[right] = 1e-320      # a subnormal subtree under a normal root
    _scale_subtree(tree, right, 1e-320)
    _oracle_check(spec)


def _zero_subtree(tree, node):
    stack = [node]
    while stack:
        n = stack.pop()
        tree.cover[n] = 0.0
        if tree.left[n] >= 0:
            stack += [int(tree.left[n]), int(tree.right[n])]


def _scale_subtree(tree, node, cover):
    """Covers of the subtree below ``node`` as fractions of ``cover``."""
    stack = [(node, cover)]
    while stack:
        n, c = stack.pop()
        tree.cover[n] = c
        if tree.left[n] >= 0:
            stack += [(int(tree.left[n]), c * 0.25), (int(tree.right[n]), c * 0.75)]


def test_cover_fraction_that_overflows_is_rejected():
    """A subnormal cover above normal ones would make the expected value inf and the SHAP
    values NaN: refused with the node named, never computed silently."""
    spec = _spec()
    spec.trees[1].cover[0] = 1e-320
    with pytest.raises(ValueError, match="tree 1, node 0: cover fraction .* overflows"):
        build(spec)


def test_xgboost_threshold_beyond_float32_saturates():
    """A threshold past the float32 range rounds to +-inf, as the conversion XGBoost's
    float32 storage applies; the oracle routes the same way."""
    import oracle

    spec = random_spec(8, routing="xgboost", n_features=3, n_trees=2)
    tree = spec.trees[0]
    tree.threshold[0] = 1e300
    tree.threshold[int(tree.left[0])] = -1e300
    X = np.array([[1e308, 3e38, -1e308], [np.inf, -np.inf, 0.0], [3.5e38, -3.5e38, 1.0]])
    with np.errstate(over="ignore"):
        X = np.vstack([X, probe_rows(spec, 4, n_rows=6)])
        expected = oracle.predict(spec, X)
    np.testing.assert_allclose(build(spec).predict(X, 1), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("field", ["leaf", "base_score"])
def test_float32_margin_rejects_values_beyond_float32(field):
    spec = dataclasses.replace(random_spec(8, routing="xgboost", n_features=3, n_trees=2),
                               float32_margin=True)
    if field == "leaf":
        tree = spec.trees[0]
        tree.value[int(np.argmax(tree.left < 0))] = 1e300
    else:
        spec.base_score = [1e39]
    with pytest.raises(ValueError, match="not a finite float32"):
        build(spec)


def test_category_bitsets_are_bounded():
    """Large category codes on many nodes would need GBs of bitsets: refused by size."""
    spec = random_spec(9, routing="xgboost", n_features=3, n_trees=60, cat_features={0: 4},
                       shape=TreeShape(max_depth=4, p_leaf=0.0))
    nodes = [(tree, node) for tree in spec.trees for node in tree.categories]
    assert len(nodes) > 130
    for tree, node in nodes:
        tree.categories[node] = np.array([2**24 - 1])
    with pytest.raises(ValueError, match="MiB of bitsets"):
        build(spec)
