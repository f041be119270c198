"""The result of ``TreeExplainer.__call__``: a ``shap.Explanation`` when shap is installed
(so every ``shap.plots`` function takes it), else ``Explanation``, a light object with the
same main attributes. shap is imported only when an explanation is made."""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np


class Explanation:
    """Values of a set of rows with what they explain, shaped like ``shap.Explanation``.

    ``values``: ``[n, m]``, ``[n, m, k]`` (multi-output) or ``[n, m, m(, k)]``
    (interactions), without the row axis for a single row. ``base_values``: ``[n]`` or
    ``[n, k]`` (a float or ``[k]`` for a single row). ``data``: the explained rows
    ``[n, m]`` (or ``[m]``). ``feature_names``: ``[m]`` or None; ``output_names``: ``[k]``
    or None. Indexing (``e[0]``, ``e[:10]``, ``e[:, :, 1]``) slices the values; the first
    index also selects rows of base values and data, and an output index the base values'
    output.
    """

    def __init__(self, values: np.ndarray, base_values: Any = None, data: Any = None,
                 feature_names: Optional[List[str]] = None,
                 output_names: Optional[List[str]] = None) -> None:
        self.values = values
        self.base_values = base_values
        self.data = data
        self.feature_names = feature_names
        self.output_names = output_names

    @property
    def shape(self) -> tuple:
        return np.shape(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return (f".values =\n{self.values!r}\n\n.base_values =\n{self.base_values!r}\n\n"
                f".data =\n{self.data!r}")

    def __getitem__(self, item: Any) -> "Explanation":
        key = item if isinstance(item, tuple) else (item,)
        values = np.asarray(self.values)
        base = self.base_values
        if base is not None and np.ndim(base) > 0:
            base = np.asarray(base)[key[0]]
            if np.ndim(self.base_values) == 2 and len(key) == values.ndim:
                base = base[..., key[-1]]  # the output axis of [n, k] base values
        data = None if self.data is None else np.asarray(self.data)[key[0]]
        outputs = self.output_names
        if outputs is not None and len(key) == values.ndim \
                and isinstance(key[-1], (int, np.integer)):
            outputs = outputs[key[-1]]
        return Explanation(values[key], base, data, self.feature_names, outputs)


def make(values: np.ndarray, base_values: Any, data: Any,
         feature_names: Optional[List[str]], output_names: Optional[List[str]]) -> Any:
    """A ``shap.Explanation`` when shap can be imported, else an ``Explanation``."""
    try:
        import shap
    except ImportError:
        return Explanation(values, base_values, data, feature_names, output_names)
    return shap.Explanation(values, base_values=base_values, data=data,
                            feature_names=feature_names, output_names=output_names)


def data_of(X: Any) -> Any:
    """The explained rows as ``Explanation.data`` holds them: a NumPy array for frames and
    DMatrix (their values), sparse matrices as they are, anything else via ``np.asarray``."""
    package = type(X).__module__.split(".")[0]
    if package == "pandas":
        return X.to_numpy()
    if package == "xgboost" and hasattr(X, "get_data"):
        return X.get_data()
    if package == "scipy":
        return X
    if package in ("pyarrow", "polars"):
        return np.column_stack([np.asarray(c) for c in X.columns])
    return np.asarray(X)


def column_names(X: Any) -> Optional[List[str]]:
    """The input's own column names (pandas, Arrow, polars, DMatrix), or None."""
    package = type(X).__module__.split(".")[0]
    if package == "pandas" and hasattr(X, "columns"):
        return [str(c) for c in X.columns]
    if package == "pandas":
        return [str(c) for c in X.index]
    if package == "pyarrow":
        return list(X.schema.names)
    if package == "polars":
        return list(X.columns)
    if package == "xgboost" and getattr(X, "feature_names", None) is not None:
        return list(X.feature_names)
    return None
