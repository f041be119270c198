"""Type stub of the compiled extension (cpp/bindings/). Shapes: ``n`` rows, ``m`` features,
``k`` outputs; every array returned is a new C-contiguous float64 array."""
from typing import Any, Dict, Optional

import numpy as np
import numpy.typing as npt

_Array = npt.ArrayLike
_Floats = npt.NDArray[np.float64]

class Forest:
    def __init__(self, tree_offsets: _Array, left: _Array, right: _Array, feature: _Array,
                 threshold: _Array, default_left: _Array, missing: _Array,
                 categorical: _Array, cat_offsets: _Array, cat_values: _Array, cover: _Array,
                 value: _Array, tree_output: _Array, base_score: _Array, n_features: int,
                 n_outputs: int, routing: str, float32_margin: bool) -> None: ...
    @property
    def n_trees(self) -> int: ...
    @property
    def n_nodes(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_outputs(self) -> int: ...
    @property
    def max_depth(self) -> int: ...
    def predict(self, X: np.ndarray, n_threads: int = 0, float64: bool = False) -> _Floats:
        """Raw margins: [n, k], summed as the library does, or in float64."""
    def shap_values(self, X: np.ndarray, n_threads: int = 0) -> _Floats:
        """Path-dependent SHAP values: [n, m, k]."""
    def expected_value(self) -> _Floats:
        """Path-dependent expected value: [k]."""
    def shap_scratch_bytes(self, n_threads: int = 0) -> int:
        """Bytes of working memory shap_values needs."""
    def saabas_values(self, X: np.ndarray, n_threads: int = 0) -> _Floats:
        """Saabas values: [n, m, k]."""
    def node_counts(self, X: np.ndarray, n_threads: int = 0) -> np.ndarray:
        """Rows of X passing through each node: [n_nodes] int64."""

def path_interaction_values(forest: Forest, X: np.ndarray, out: _Floats, features: _Array,
                            n_threads: int = 0) -> None:
    """Writes interaction values of the s selected features into out: [n, s, s, k]."""

def path_interaction_scratch_bytes(forest: Forest, s: int, n_threads: int = 0) -> int: ...

def background_shap_values(forest: Forest, X: np.ndarray, background: np.ndarray,
                           weights: _Array, n_threads: int = 0) -> tuple[_Floats, _Floats]:
    """(phi [n, m, k], expected [k])."""

def background_interaction_values(forest: Forest, X: np.ndarray, background: np.ndarray,
                                  weights: _Array,
                                  n_threads: int = 0) -> tuple[_Floats, _Floats]:
    """(values [n, m, m, k], expected [k])."""

def background_rescaled_shap_values(forest: Forest, X: np.ndarray, background: np.ndarray,
                                    weights: _Array, fx: _Array, tx: _Array,
                                    shift: Optional[_Array], fz: _Array, tz: _Array,
                                    n_threads: int = 0) -> _Floats:
    """[n, m, k]."""

def permuted_margins(forest: Forest, X: np.ndarray, group_offsets: _Array, group_cols: _Array,
                     perms: _Array, n_threads: int = 0,
                     baseline: Optional[_Floats] = None) -> _Floats:
    """[n_groups, n_repeats, n, k]."""

def permuted_residual_sums(forest: Forest, X: np.ndarray, group_offsets: _Array,
                           group_cols: _Array, perms: _Array, y: _Array,
                           weights: Optional[_Array] = None, exp_link: bool = False,
                           n_threads: int = 0,
                           baseline: Optional[_Floats] = None) -> _Floats:
    """[n_groups, n_repeats, k, 2]."""

def build_info() -> Dict[str, Any]: ...

def json_loads(data: bytes, columns: str = "") -> Any:
    """One UTF-8 JSON document as json.loads reads it (ValueError for anything it does not
    read exactly so); an array of like objects under a member named ``columns`` decoded by
    column as ``ubjson_loads`` does (int64 or float64 values)."""

def ubjson_loads(data: bytes, columns: str = "") -> Any:
    """One UBJSON document; typed numeric arrays as 1-D NumPy arrays [count]; an array of
    like objects under a member named ``columns`` decoded by column (a dict with
    ``n_items``, ``arrays``: key -> (values [total], lengths int64 [n_items]) and
    ``lists``: key -> [n_items] values)."""

def gather_lists(pieces: list, sizes: np.ndarray, integers: bool) -> Optional[np.ndarray]:
    """T lists of numbers as one int64 / float32 array [sum(sizes)], or None when any list
    is not sizes[t] ints (floats)."""

def xgboost_trees(sizes: np.ndarray, left: np.ndarray, right: np.ndarray,
                  feature: np.ndarray, conditions: np.ndarray, default_left: np.ndarray,
                  split_type: np.ndarray, cover: np.ndarray, gain: Optional[np.ndarray],
                  weight_drop: Optional[np.ndarray], n_features: int,
                  first_tree: int) -> dict:
    """XGBoost node arrays gathered over T trees (nodes [sum(sizes)]) -> the kept nodes'
    arrays [N] (tree_offsets [T + 1], order, left, right, feature, threshold, default_left,
    categorical, cover, gain, value [N, 1])."""

def lightgbm_trees(text: str, start: int, n_features: int, n_outputs: int, n_keep: int,
                   n_threads: int) -> Optional[Dict[str, Any]]:
    """The Tree= blocks of a LightGBM text model from character ``start``: FlatTrees arrays
    of the first ``n_keep`` trees (all when negative), ``n_trees``, ``block_bytes`` int64
    [n_trees] and ``end``; None unless the trees are plain text."""

def parse_number_lines(lines: list[str], integers: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values int64 or float64 [total], counts int64 [n_lines])."""
