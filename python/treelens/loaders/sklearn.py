"""scikit-learn loader: decision trees, random forests, extra trees, gradient boosting and
histogram gradient boosting.

The margin follows ``shap.TreeExplainer(model_output="raw")``:

- tree and forest regressors: the prediction, the average of the trees (``1 / n_trees`` folded
  into the leaves); multi-output regression gives one output per target.
- tree and forest classifiers: class probabilities (leaf class fractions averaged over the
  trees), one output per class, binary included.
- ``GradientBoosting*``: the raw decision function, ``init`` prediction + learning rate x trees;
  one output for regression and binary classification, one per class otherwise.
- ``HistGradientBoosting*``: the raw decision function, ``_baseline_prediction`` + trees.

Trees of the ``sklearn.tree`` family route as scikit-learn does (``float32(x) <= threshold``,
NaN to ``missing_go_to_left``) with ``weighted_n_node_samples`` as TreeSHAP cover. Histogram
gradient boosting compares doubles and weighs nodes by their sample ``count``, as shap does.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from .._outputs import OutputFunction
from .._spec import ROUTING_FLOAT64, ROUTING_SKLEARN, ForestSpec, TreeArrays

# sklearn._loss link class name -> (link, sigmoid_alpha) of the prediction.
_LINKS = {
    "IdentityLink": ("identity", 1.0),
    "LogLink": ("log", 1.0),
    "LogitLink": ("logistic", 1.0),
    "HalfLogitLink": ("logistic", 2.0),   # exponential loss: p = expit(2 * margin)
    "MultinomialLogit": ("softmax", 1.0),
}


def load_sklearn(model: Any) -> ForestSpec:
    """Read a fitted scikit-learn tree ensemble into a ``ForestSpec`` (see the module notes).

    Supported: ``DecisionTree*``, ``ExtraTree*``, ``RandomForest*``, ``ExtraTrees*``,
    ``GradientBoosting*`` and ``HistGradientBoosting*``, regressors and classifiers;
    ``IsolationForest`` and pyod's ``IForest`` (the mean path length).
    Raises ``TypeError`` for other estimators, ``NotImplementedError`` for multi-output
    classifiers and custom ``init`` estimators of gradient boosting.
    """
    from sklearn import ensemble, tree
    from sklearn.utils.validation import check_is_fitted

    if type(model).__module__.split(".")[0] == "pyod":
        detector = getattr(model, "detector_", None)
        if not isinstance(detector, ensemble.IsolationForest):
            raise TypeError(f"unsupported pyod model {type(model).__name__}: only IForest "
                            "(a fitted scikit-learn IsolationForest) is supported")
        model = detector
    if isinstance(model, ensemble.IsolationForest):
        check_is_fitted(model)
        return _isolation_forest(model)
    if isinstance(model, (ensemble.HistGradientBoostingRegressor,
                          ensemble.HistGradientBoostingClassifier)):
        check_is_fitted(model)
        return _hist_gradient_boosting(model)
    if isinstance(model, (ensemble.GradientBoostingRegressor,
                          ensemble.GradientBoostingClassifier)):
        check_is_fitted(model)
        return _gradient_boosting(model)
    if isinstance(model, (ensemble.RandomForestRegressor, ensemble.RandomForestClassifier,
                          ensemble.ExtraTreesRegressor, ensemble.ExtraTreesClassifier)):
        check_is_fitted(model)
        return _forest(model, [e.tree_ for e in model.estimators_])
    if isinstance(model, tree.BaseDecisionTree):
        check_is_fitted(model)
        return _forest(model, [model.tree_])
    raise TypeError(f"unsupported scikit-learn model {type(model).__name__}")


def _common(model: Any) -> Dict[str, Any]:
    names = getattr(model, "feature_names_in_", None)
    n = int(model.n_features_in_)
    return dict(
        n_features=n,
        feature_names=[str(c) for c in names] if names is not None else None,
        feature_types=["q"] * n,
        source="sklearn",
    )


def _tree_arrays(t: Any, value: np.ndarray, output: int, default_left: bool) -> TreeArrays:
    """One ``sklearn.tree._tree.Tree``; ``value``: [n_nodes, leaf_width] leaf outputs."""
    left = t.children_left.astype(np.int32)
    leaf = left < 0
    return TreeArrays(
        left=left,
        right=t.children_right.astype(np.int32),
        feature=np.where(leaf, 0, t.feature).astype(np.int32),
        threshold=np.where(leaf, 0.0, t.threshold).astype(np.float64),
        default_left=(np.asarray(t.missing_go_to_left).astype(bool) & default_left
                      & ~leaf).astype(np.uint8),
        cover=np.asarray(t.weighted_n_node_samples, dtype=np.float64),
        value=value,
        output=output,
        gain=_impurity_decrease(t),
    )


def _impurity_decrease(t: Any) -> np.ndarray:
    """Weighted impurity decrease per split (scikit-learn's importance), 0 at leaves:
    [n_nodes]."""
    w = np.asarray(t.weighted_n_node_samples, dtype=np.float64)
    imp = np.asarray(t.impurity, dtype=np.float64)
    left, right = t.children_left, t.children_right
    split = left >= 0
    gain = np.zeros(len(w))
    li, ri = left[split], right[split]
    gain[split] = w[split] * imp[split] - w[li] * imp[li] - w[ri] * imp[ri]
    return gain


def _forest(model: Any, trees: List[Any]) -> ForestSpec:
    """Single trees and bagged forests: the average of the trees."""
    from sklearn.base import is_classifier

    classifier = is_classifier(model)
    n_targets = int(trees[0].value.shape[1])
    if classifier and n_targets != 1:
        raise NotImplementedError(f"multi-output {type(model).__name__} is not supported")
    n_outputs = len(model.classes_) if classifier else n_targets
    arrays = []
    for t in trees:
        if classifier:
            v = np.asarray(t.value, dtype=np.float64)[:, 0, :n_outputs]
            total = v.sum(axis=1, keepdims=True)
            if not np.allclose(total[t.children_left < 0], 1.0):
                # Trees that store weighted class counts rather than fractions.
                v = v / np.where(total == 0.0, 1.0, total)
        else:
            v = np.asarray(t.value, dtype=np.float64)[:, :, 0]
        if len(trees) > 1:
            v = v / len(trees)
        arrays.append(_tree_arrays(t, v, 0 if n_outputs == 1 else -1, default_left=True))
    output = OutputFunction(classifier=classifier,
                            objective="predict_proba" if classifier else "averaging")
    return ForestSpec(trees=arrays, n_outputs=n_outputs, base_score=[0.0] * n_outputs,
                      routing=ROUTING_SKLEARN, leaf_width=n_outputs, output=output,
                      **_common(model))


def _isolation_forest(model: Any) -> ForestSpec:
    """``IsolationForest``: the mean path length ``E[h(x)]`` over the trees, as shap explains
    it. A leaf's path length is its depth plus ``c(n_node_samples)``, the average path length
    of an unsuccessful binary-search-tree search among its training samples (scikit-learn's
    ``_average_path_length``); ``score_samples(X) = -2 ** (-E[h(x)] / c(max_samples))``.
    Each tree sees the columns ``estimators_features_`` of the input."""
    from sklearn.ensemble._iforest import _average_path_length

    n_trees = len(model.estimators_)
    arrays = []
    for estimator, columns in zip(model.estimators_, model.estimators_features_):
        t = estimator.tree_
        depth = np.zeros(t.node_count, dtype=np.float64)
        for node in range(t.node_count):  # children always follow their parent
            for child in (t.children_left[node], t.children_right[node]):
                if child >= 0:
                    depth[child] = depth[node] + 1.0
        leaf = t.children_left < 0
        length = depth + _average_path_length(np.asarray(t.n_node_samples, dtype=np.float64))
        value = np.where(leaf, length, 0.0)[:, None] / n_trees
        tree = _tree_arrays(t, value, 0, default_left=True)
        tree.feature = np.where(leaf, 0, np.asarray(columns)[np.maximum(t.feature, 0)]).astype(
            np.int32)
        arrays.append(tree)
    return ForestSpec(trees=arrays, n_outputs=1, base_score=[0.0], routing=ROUTING_SKLEARN,
                      **_common(model))


def _output_function(model: Any) -> OutputFunction:
    """The link of the boosting model's loss, as ``predict`` / ``predict_proba`` apply it."""
    from sklearn.base import is_classifier

    link = type(model._loss.link).__name__
    if link not in _LINKS:
        raise ValueError(f"unknown link {link} of {type(model).__name__}")
    name, alpha = _LINKS[link]
    return OutputFunction(link=name, sigmoid_alpha=alpha, classifier=is_classifier(model),
                          objective=str(model.loss))


def _gradient_boosting(model: Any) -> ForestSpec:
    """``GradientBoosting*``: stage ``i``, class ``k`` tree adds ``learning_rate x leaf`` to
    output ``k``."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    init = model.init_
    constant = (isinstance(init, DummyRegressor)
                or (isinstance(init, DummyClassifier) and init.strategy != "stratified"))
    if not (isinstance(init, str) and init == "zero") and not constant:
        raise NotImplementedError(
            f"{type(model).__name__} with init={type(init).__name__} is not supported: only "
            "the default init estimator and init='zero' give a constant base score")
    zeros = np.zeros((1, model.n_features_in_), dtype=np.float32)
    base = np.asarray(model._raw_predict_init(zeros), dtype=np.float64).reshape(-1)

    lr = float(model.learning_rate)
    n_outputs = model.estimators_.shape[1]
    trees = []
    for stage in model.estimators_:
        for k, est in enumerate(stage):
            t = est.tree_
            value = np.asarray(t.value, dtype=np.float64)[:, 0, :1] * lr
            # Boosting stages compare `x <= threshold` with no NaN branch: NaN goes right.
            trees.append(_tree_arrays(t, value, k, default_left=False))
    return ForestSpec(trees=trees, n_outputs=n_outputs, base_score=base.tolist(),
                      routing=ROUTING_SKLEARN, output=_output_function(model), **_common(model))


def _hist_gradient_boosting(model: Any) -> ForestSpec:
    """``HistGradientBoosting*``: predictor ``k`` of each iteration adds to output ``k``.

    With categorical features scikit-learn orders the columns (categorical first) and encodes
    categories as their index in the sorted training categories (unknown -> missing) before
    the trees see them. Split features are mapped back to the input columns; category sets
    stay in that encoding, and ``categories_by_feature`` holds each feature's training
    categories (code = index in the list).
    """
    columns, categories = _hgb_columns(model)
    known = model._bin_mapper.make_known_categories_bitsets()
    trees = []
    for iteration in model._predictors:
        for k, predictor in enumerate(iteration):
            trees.append(_hgb_tree(predictor, k, columns, known))
    common = _common(model)
    for f in categories:
        common["feature_types"][f] = "c"
    base = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    return ForestSpec(trees=trees, n_outputs=int(model.n_trees_per_iteration_),
                      base_score=base.tolist(), routing=ROUTING_FLOAT64,
                      output=_output_function(model), categories_by_feature=categories, **common)


def _hgb_columns(model: Any) -> Tuple[np.ndarray, Dict[int, list]]:
    """Input column of each column the trees see: [n_features]; and the training categories
    of each categorical input column."""
    n = int(model.n_features_in_)
    pre = getattr(model, "_preprocessor", None)
    if pre is None:
        return np.arange(n), {}
    columns = np.empty(n, dtype=np.int64)
    for name, _, selection in pre.transformers_:
        if name in pre.output_indices_:
            columns[pre.output_indices_[name]] = np.arange(n)[selection]
    encoder = pre.named_transformers_["encoder"]
    categories = {}
    for col, cats in zip(np.flatnonzero(model.is_categorical_), encoder.categories_):
        cats = list(cats.tolist())
        if cats and isinstance(cats[-1], float) and np.isnan(cats[-1]):
            cats.pop()
        categories[int(col)] = cats
    return columns, categories


def _hgb_tree(predictor: Any, output: int, columns: np.ndarray,
              known: Tuple[np.ndarray, np.ndarray]) -> TreeArrays:
    """One ``TreePredictor``; ``columns``: input column of each tree column [n_features];
    ``known``: the known-category bitsets [n_categorical, 8] and their index per tree column."""
    known_bitsets, f_idx_map = known
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"]).astype(np.int32)
    right = np.where(leaf, -1, nodes["right"]).astype(np.int32)
    default_left = nodes["missing_go_to_left"].astype(bool) & ~leaf
    is_cat = nodes["is_categorical"].astype(bool) & ~leaf
    categories = {}
    for node in np.flatnonzero(is_cat):
        bitset = predictor.raw_left_cat_bitsets[nodes["bitset_idx"][node]]
        members = _bitset_members(bitset)
        if default_left[node]:
            # Unknown (and negative) categories follow the missing side; with missing on the
            # left, swap the children so that the set lists the known categories going to the
            # old right child and everything else falls on the new right (the old left).
            feature_known = _bitset_members(known_bitsets[f_idx_map[nodes["feature_idx"][node]]])
            members = np.setdiff1d(feature_known, members)
            left[node], right[node] = right[node], left[node]
            default_left[node] = False
        categories[int(node)] = members
    value = np.where(leaf, nodes["value"], 0.0).astype(np.float64)[:, None]
    return TreeArrays(
        left=left,
        right=right,
        feature=np.where(leaf, 0, columns[nodes["feature_idx"]]).astype(np.int32),
        threshold=np.where(leaf | is_cat, 0.0, nodes["num_threshold"]).astype(np.float64),
        default_left=default_left.astype(np.uint8),
        cover=nodes["count"].astype(np.float64),
        value=value,
        output=output,
        categorical=is_cat.astype(np.uint8),
        categories=categories,
        gain=np.where(leaf, 0.0, nodes["gain"]).astype(np.float64),
    )


def _bitset_members(words: np.ndarray) -> np.ndarray:
    """uint32 bitset words -> sorted members (bit b of word w = value 32 w + b)."""
    bits = np.unpackbits(np.asarray(words, dtype="<u4").view(np.uint8), bitorder="little")
    return np.flatnonzero(bits).astype(np.int64)
