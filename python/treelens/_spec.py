"""The loader contract: every model source becomes one ``ForestSpec``.

Loaders (``treelens.loaders.*``) only fill these arrays; ``treelens._forest.build`` hands
them to the C++ validating builder, which produces the format-free ``Forest`` the
algorithms read. Nothing downstream knows which library a model came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

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
class ForestSpec:
    trees: List[TreeArrays]
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
