"""The loader contract: every model source becomes one ``ForestSpec``.

Loaders (``treelens.loaders.*``) only fill these arrays; ``treelens._forest.build`` hands
them to the C++ validating builder, which produces the format-free ``Forest`` the
algorithms read. Nothing downstream knows which library a model came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from ._outputs import IDENTITY, OutputFunction

# How a split routes a feature value: the source library's comparison operator,
# its float width and its NaN/zero/category rules (see cpp/model/forest.h, Routing).
ROUTING_XGBOOST = "xgboost"      # x -> float32; NaN -> default; x < thr left; category member -> right
ROUTING_LIGHTGBM = "lightgbm"    # double; |x| <= 1e-35 -> 0; x <= thr left; category member -> left
ROUTING_SKLEARN = "sklearn"      # x -> float32 -> double; NaN -> default; x <= thr left
ROUTING_FLOAT64 = "float64"      # double; NaN -> default; x <= thr left; category member -> left

# Per-node missing-value handling (numeric splits only).
MISSING_DEFAULT = 0      # NaN goes to the default child
MISSING_ZERO = 1         # LightGBM missing_type=Zero: NaN and 0.0 go to the default child
MISSING_NAN_AS_ZERO = 2  # LightGBM missing_type=None: NaN is compared as 0.0


@dataclass
class TreeArrays:
    """One tree, nodes indexed locally from 0 (the root).

    All arrays have length n_nodes. Children are local indices, -1 at leaves.
    ``threshold`` is the raw threshold exactly as the source library compares it.
    ``value``: [n_nodes, leaf_width] leaf outputs (already scaled by tree weights,
    learning rates and averaging, so that the margin is base_score + sum of leaves);
    rows of internal nodes are ignored.
    ``cover``: the node weight TreeSHAP uses (XGBoost sum_hessian, LightGBM counts,
    sklearn weighted_n_node_samples).
    ``categories``: node index -> 1-D int array of the categories in the node's set
    (for categorical splits only).
    """

    left: np.ndarray          # int32 [n_nodes]
    right: np.ndarray         # int32 [n_nodes]
    feature: np.ndarray       # int32 [n_nodes], ignored at leaves
    threshold: np.ndarray     # float64 [n_nodes], ignored at leaves / categorical nodes
    default_left: np.ndarray  # uint8 [n_nodes]
    cover: np.ndarray         # float64 [n_nodes]
    value: np.ndarray         # float64 [n_nodes, leaf_width]
    output: int = 0           # output the tree adds to; -1 when leaf_width == n_outputs
    missing: Optional[np.ndarray] = None      # uint8 [n_nodes] MISSING_*; None = all default
    categorical: Optional[np.ndarray] = None  # uint8 [n_nodes]; None = no categorical splits
    categories: Dict[int, np.ndarray] = field(default_factory=dict)
    gain: Optional[np.ndarray] = None         # float64 [n_nodes] split gain, for importances


@dataclass
class FlatTrees:
    """All trees of a forest concatenated, as loaders that read whole forests at once fill
    them: ``N`` nodes, ``T`` trees, ``C`` category members in total.

    Node arrays hold tree ``t``'s nodes at ``tree_offsets[t]:tree_offsets[t + 1]`` with the
    meaning of the ``TreeArrays`` fields (children are local indices within their tree).
    Category sets are in CSR form over nodes. Indexing and iteration give per-tree
    ``TreeArrays`` whose arrays are views of these.
    """

    tree_offsets: np.ndarray  # int64 [T + 1]
    left: np.ndarray          # int32 [N]
    right: np.ndarray         # int32 [N]
    feature: np.ndarray       # int32 [N]
    threshold: np.ndarray     # float64 [N]
    default_left: np.ndarray  # uint8 [N]
    cover: np.ndarray         # float64 [N]
    value: np.ndarray         # float64 [N, leaf_width]
    output: np.ndarray        # int32 [T]
    missing: np.ndarray       # uint8 [N] MISSING_*
    categorical: np.ndarray   # uint8 [N]
    cat_offsets: np.ndarray   # int64 [N + 1] into cat_values
    cat_values: np.ndarray    # int64 [C], each node's members sorted
    gain: Optional[np.ndarray] = None  # float64 [N], or None when the model stores none

    @classmethod
    def from_trees(cls, trees: Sequence[TreeArrays], leaf_width: int) -> "FlatTrees":
        """Concatenate per-tree arrays (``ValueError`` for an empty forest)."""
        if isinstance(trees, FlatTrees):
            return trees
        if not len(trees):
            raise ValueError("model has no trees")
        sizes = np.array([len(t.left) for t in trees], dtype=np.int64)
        offsets = np.zeros(len(trees) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])

        def cat(name: str, dtype: type, default: int = 0) -> np.ndarray:
            return np.concatenate([
                np.full(len(t.left), default, dtype) if getattr(t, name) is None
                else np.asarray(getattr(t, name)).reshape(-1).astype(dtype, copy=False)
                for t in trees])

        n = int(offsets[-1])
        cat_counts = np.zeros(n, dtype=np.int64)
        chunks = []
        for t, start in zip(trees, offsets[:-1]):
            for node in sorted(t.categories):
                members = np.asarray(t.categories[node], dtype=np.int64).reshape(-1)
                cat_counts[start + node] = len(members)
                chunks.append(members)
        cat_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(cat_counts, out=cat_offsets[1:])
        has_gain = all(t.gain is not None for t in trees)
        return cls(
            tree_offsets=offsets, left=cat("left", np.int32), right=cat("right", np.int32),
            feature=cat("feature", np.int32), threshold=cat("threshold", np.float64),
            default_left=cat("default_left", np.uint8), cover=cat("cover", np.float64),
            value=np.concatenate([np.asarray(t.value, dtype=np.float64).reshape(
                len(t.left), leaf_width) for t in trees]),
            output=np.array([t.output for t in trees], dtype=np.int32),
            missing=cat("missing", np.uint8, MISSING_DEFAULT),
            categorical=cat("categorical", np.uint8),
            cat_offsets=cat_offsets,
            cat_values=np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64),
            gain=cat("gain", np.float64) if has_gain else None)

    def __len__(self) -> int:
        return len(self.tree_offsets) - 1

    def first(self, n_trees: int) -> "FlatTrees":
        """The first ``n_trees`` trees (``0 < n_trees <= len(self)``), as views."""
        n = int(self.tree_offsets[n_trees])
        return FlatTrees(
            tree_offsets=self.tree_offsets[:n_trees + 1], left=self.left[:n],
            right=self.right[:n], feature=self.feature[:n], threshold=self.threshold[:n],
            default_left=self.default_left[:n], cover=self.cover[:n], value=self.value[:n],
            output=self.output[:n_trees], missing=self.missing[:n],
            categorical=self.categorical[:n], cat_offsets=self.cat_offsets[:n + 1],
            cat_values=self.cat_values[:int(self.cat_offsets[n])],
            gain=None if self.gain is None else self.gain[:n])

    def __getitem__(self, t: int) -> TreeArrays:
        if not -len(self) <= t < len(self):
            raise IndexError(f"tree index {t} out of range for {len(self)} trees")
        t %= len(self)
        a, b = int(self.tree_offsets[t]), int(self.tree_offsets[t + 1])
        bounds = self.cat_offsets
        return TreeArrays(
            left=self.left[a:b], right=self.right[a:b], feature=self.feature[a:b],
            threshold=self.threshold[a:b], default_left=self.default_left[a:b],
            cover=self.cover[a:b], value=self.value[a:b], output=int(self.output[t]),
            missing=self.missing[a:b], categorical=self.categorical[a:b],
            categories={int(i): self.cat_values[bounds[a + i]:bounds[a + i + 1]]
                        for i in np.flatnonzero(self.categorical[a:b])},
            gain=None if self.gain is None else self.gain[a:b])

    def __iter__(self) -> Iterator[TreeArrays]:
        return (self[t] for t in range(len(self)))


@dataclass
class ForestSpec:
    trees: Union[List[TreeArrays], FlatTrees]  # per tree, or all trees concatenated
    n_features: int
    n_outputs: int
    base_score: Sequence[float]     # [n_outputs], margin space
    routing: str                    # ROUTING_*
    leaf_width: int = 1             # 1, or n_outputs for vector leaves
    float32_margin: bool = False    # accumulate the margin in float32 (XGBoost)
    feature_names: Optional[List[str]] = None
    # Python-side metadata (never seen by the C++ core):
    output: OutputFunction = IDENTITY  # margin -> the library's prediction (see _outputs)
    source: str = ""                # "xgboost", "lightgbm", "sklearn"
    categories_by_feature: Dict[int, list] = field(default_factory=dict)  # pandas category lists
    feature_types: Optional[List[str]] = None  # "q" numeric, "c" categorical, per feature
    trees_per_round: int = 1        # trees added per boosting round (XGBoost, LightGBM)
    missing_value: float = float("nan")  # an input equal to it is missing (XGBoost `missing`)
