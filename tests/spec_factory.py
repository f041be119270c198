"""Random ``ForestSpec`` models and probe data built directly, without any library.

Trees have random shapes and covers, repeat features along a path, carry
categorical splits and per-node missing-value rules; the probe rows hit
thresholds exactly, one ulp either side (in float64 and float32), NaN, zero,
tiny values and, for categorical features, unseen, negative, fractional and
out-of-range codes where the routing mode defines them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from treelens._spec import (
    MISSING_DEFAULT,
    MISSING_NAN_AS_ZERO,
    MISSING_ZERO,
    ROUTING_FLOAT64,
    ROUTING_LIGHTGBM,
    ROUTING_SKLEARN,
    ROUTING_XGBOOST,
    ForestSpec,
    TreeArrays,
)

ALL_ROUTINGS = [ROUTING_XGBOOST, ROUTING_LIGHTGBM, ROUTING_SKLEARN, ROUTING_FLOAT64]
CATEGORICAL_ROUTINGS = [ROUTING_XGBOOST, ROUTING_LIGHTGBM, ROUTING_FLOAT64]


@dataclass
class TreeShape:
    """Knobs of the random tree generator."""

    max_depth: int = 5
    p_leaf: float = 0.25          # chance that a non-root node above max_depth is a leaf
    p_repeat: float = 0.4         # chance to reuse a feature already on the path
    chain: bool = False           # one child of every split is a leaf
    consistent_cover: bool = True  # children's covers sum to the parent's
    p_stump: float = 0.0          # chance that the whole tree is a single leaf
    p_inf_threshold: float = 0.0  # chance of a +inf threshold (NaN-versus-rest splits)


@dataclass
class _Builder:
    rng: np.random.Generator
    n_features: int
    routing: str
    leaf_width: int
    cat_features: Dict[int, int]
    shape: TreeShape
    left: List[int] = field(default_factory=list)
    right: List[int] = field(default_factory=list)
    feature: List[int] = field(default_factory=list)
    threshold: List[float] = field(default_factory=list)
    default_left: List[int] = field(default_factory=list)
    missing: List[int] = field(default_factory=list)
    categorical: List[int] = field(default_factory=list)
    cover: List[float] = field(default_factory=list)
    value: List[np.ndarray] = field(default_factory=list)
    categories: Dict[int, np.ndarray] = field(default_factory=dict)

    def new_node(self, cover: float) -> int:
        self.left.append(-1)
        self.right.append(-1)
        self.feature.append(0)
        self.threshold.append(0.0)
        self.default_left.append(int(self.rng.integers(2)))
        self.missing.append(MISSING_DEFAULT)
        self.categorical.append(0)
        self.cover.append(cover)
        self.value.append(self._round(self.rng.normal(size=self.leaf_width)))
        return len(self.left) - 1

    def _round(self, v):
        if self.routing == ROUTING_XGBOOST:
            return np.asarray(v, dtype=np.float32).astype(np.float64)
        return np.asarray(v, dtype=np.float64)

    def _pick_feature(self, path: List[int]) -> int:
        if path and self.rng.random() < self.shape.p_repeat:
            return int(self.rng.choice(path))
        return int(self.rng.integers(self.n_features))

    def _child_covers(self, cover: float):
        frac = self.rng.uniform(0.1, 0.9)
        covers = np.array([cover * frac, cover * (1.0 - frac)])
        if not self.shape.consistent_cover:
            covers *= self.rng.uniform(0.7, 1.3, size=2)
        return covers

    def split(self, node: int, path: List[int]) -> None:
        f = self._pick_feature(path)
        self.feature[node] = f
        if f in self.cat_features and self.routing in CATEGORICAL_ROUTINGS:
            n_cat = self.cat_features[f]
            size = int(self.rng.integers(1, n_cat))
            members = np.sort(self.rng.choice(n_cat, size=size, replace=False))
            self.categorical[node] = 1
            self.categories[node] = members.astype(np.int64)
            self.threshold[node] = float(self._round(self.rng.normal()))
        else:
            self.threshold[node] = float(self._round(self.rng.normal()))
            if self.rng.random() < self.shape.p_inf_threshold:
                self.threshold[node] = float("inf")
            if self.routing == ROUTING_LIGHTGBM:
                self.missing[node] = int(
                    self.rng.choice([MISSING_DEFAULT, MISSING_ZERO, MISSING_NAN_AS_ZERO])
                )

    def grow(self, root: int) -> None:
        shape = self.shape
        stack = [(root, 0, [])]
        while stack:
            node, depth, path = stack.pop()
            if depth >= shape.max_depth:
                continue
            if depth == 0 and self.rng.random() < shape.p_stump:
                continue
            if depth > 0 and not shape.chain and self.rng.random() < shape.p_leaf:
                continue
            self.split(node, path)
            cl, cr = self._child_covers(self.cover[node])
            lft, rgt = self.new_node(float(cl)), self.new_node(float(cr))
            self.left[node], self.right[node] = lft, rgt
            children = [lft, rgt]
            if shape.chain:
                children = [children[int(self.rng.integers(2))]]
            stack += [(child, depth + 1, path + [self.feature[node]]) for child in children]

    def tree(self, output: int) -> TreeArrays:
        has_cat = any(self.categorical)
        return TreeArrays(
            left=np.array(self.left, dtype=np.int32),
            right=np.array(self.right, dtype=np.int32),
            feature=np.array(self.feature, dtype=np.int32),
            threshold=np.array(self.threshold, dtype=np.float64),
            default_left=np.array(self.default_left, dtype=np.uint8),
            cover=np.array(self.cover, dtype=np.float64),
            value=np.array(self.value, dtype=np.float64).reshape(-1, self.leaf_width),
            output=output,
            missing=np.array(self.missing, dtype=np.uint8)
            if self.routing == ROUTING_LIGHTGBM else None,
            categorical=np.array(self.categorical, dtype=np.uint8) if has_cat else None,
            categories=dict(self.categories),
        )


def random_spec(
    seed: int,
    *,
    routing: str,
    n_features: int = 5,
    n_trees: int = 4,
    n_outputs: int = 1,
    vector_leaves: bool = False,
    cat_features: Optional[Dict[int, int]] = None,
    shape: Optional[TreeShape] = None,
) -> ForestSpec:
    """A random forest spec.

    cat_features: feature index -> number of categories (categorical splits on it).
    vector_leaves: leaves hold all n_outputs values (leaf_width = n_outputs);
    otherwise tree t adds to output t % n_outputs.
    """
    rng = np.random.default_rng(seed)
    shape = shape or TreeShape()
    cat_features = dict(cat_features or {})
    leaf_width = n_outputs if vector_leaves else 1
    trees = []
    for t in range(n_trees):
        b = _Builder(rng, n_features, routing, leaf_width, cat_features, shape)
        root = b.new_node(float(rng.uniform(50.0, 1000.0)))
        b.grow(root)
        trees.append(b.tree(-1 if vector_leaves else t % n_outputs))
    base = rng.normal(size=n_outputs)
    if routing == ROUTING_XGBOOST:
        base = base.astype(np.float32).astype(np.float64)
    return ForestSpec(
        trees=trees,
        n_features=n_features,
        n_outputs=n_outputs,
        base_score=[float(b) for b in base],
        routing=routing,
        leaf_width=leaf_width,
    )


def _thresholds_by_feature(spec: ForestSpec) -> Dict[int, List[float]]:
    out: Dict[int, List[float]] = {}
    for tree in spec.trees:
        for node in range(len(tree.left)):
            if tree.left[node] < 0:
                continue
            if tree.categorical is not None and tree.categorical[node]:
                continue
            out.setdefault(int(tree.feature[node]), []).append(float(tree.threshold[node]))
    return out


def _numeric_probes(thresholds: List[float], allow_inf: bool) -> np.ndarray:
    probes = [0.0, -0.0, 1e-36, -1e-36, 1e-30, np.nan] + ([np.inf, -np.inf] if allow_inf else [])
    for t in thresholds:
        if not np.isfinite(t):
            probes += [t, 1e300, float(np.finfo(np.float32).max)] if allow_inf else [1e30]
            continue
        t32 = np.float32(t)
        probes += [
            t,
            np.nextafter(t, np.inf),
            np.nextafter(t, -np.inf),
            float(np.nextafter(t32, np.float32(np.inf))),
            float(np.nextafter(t32, np.float32(-np.inf))),
        ]
    probes = np.array(probes, dtype=np.float64)
    if not allow_inf:
        with np.errstate(over="ignore"):
            probes = probes[~np.isinf(probes.astype(np.float32))]
    return probes


def _categorical_probes(routing: str, n_cat: int) -> np.ndarray:
    probes = list(range(n_cat)) + [n_cat, n_cat + 3, np.nan]
    if routing in (ROUTING_XGBOOST, ROUTING_LIGHTGBM):
        probes += [-1.0, -0.5, 0.5, 1.7, float(2 ** 24), 1e9]
    return np.array(probes, dtype=np.float64)


def probe_rows(spec: ForestSpec, seed: int, n_rows: int = 24,
               cat_features: Optional[Dict[int, int]] = None,
               allow_inf: bool = True) -> np.ndarray:
    """Rows mixing plain random values with adversarial probes.

    allow_inf: include +-inf (XGBoost and scikit-learn refuse them as input).

    Returns X: [n_rows, n_features] float64.
    """
    rng = np.random.default_rng(seed)
    cat_features = dict(cat_features or {})
    thresholds = _thresholds_by_feature(spec)
    X = rng.normal(size=(n_rows, spec.n_features))
    for f in range(spec.n_features):
        if f in cat_features:
            n_cat = cat_features[f]
            X[:, f] = rng.integers(0, n_cat, size=n_rows)
            probes = _categorical_probes(spec.routing, n_cat)
        else:
            probes = _numeric_probes(thresholds.get(f, []), allow_inf)
        hit = rng.random(n_rows) < 0.5
        X[hit, f] = rng.choice(probes, size=int(hit.sum()))
    X[rng.random(X.shape) < 0.1] = np.nan
    return X
