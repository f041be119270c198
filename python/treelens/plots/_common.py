"""Shared plumbing of the plots: the matplotlib import, the Explanation-like input and saving."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

PLOTS_EXTRA = "treelens[plots]"

#: Colours of positive and negative contributions (shap's red and blue).
POSITIVE = "#ff0051"
NEGATIVE = "#008bfb"


def pyplot(headless: bool = False) -> Any:
    """``matplotlib.pyplot``; the Agg backend when ``headless`` (saving to a file). One-line
    ImportError naming the extra when matplotlib is missing."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ImportError(f"plots need matplotlib: pip install \"{PLOTS_EXTRA}\"") from None
    if headless:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Explained:
    """SHAP values of one output: ``values [n, m]``, ``base_values [n]``, ``data [n, m]``
    (None when not given) and ``feature_names [m]``."""

    values: np.ndarray
    base_values: np.ndarray
    data: Optional[np.ndarray]
    feature_names: List[str]

    def column(self, feature: Union[int, str]) -> int:
        """Index of a feature given by index or name."""
        if isinstance(feature, str):
            if feature not in self.feature_names:
                raise ValueError(f"unknown feature {feature!r}")
            return self.feature_names.index(feature)
        if not 0 <= int(feature) < len(self.feature_names):
            raise IndexError(f"feature index {feature} is out of range for "
                             f"{len(self.feature_names)} features")
        return int(feature)


def explained(shap_values: Any, data: Any = None, feature_names: Optional[Sequence[str]] = None,
              base_values: Any = None, output: Optional[int] = None) -> Explained:
    """Normalise an Explanation-like object or arrays.

    ``shap_values``: an object with ``.values`` (and optionally ``.base_values``, ``.data``,
    ``.feature_names``, such as ``shap.Explanation`` or what ``explainer(X)`` returns) or an
    array ``[n, m]``, ``[m]`` (one row), or ``[n, m, k]`` with ``output`` selecting one of the
    ``k`` outputs. Arguments given here override the object's attributes; ``data`` may be a
    pandas DataFrame (its columns name the features).
    """
    values = shap_values
    if not isinstance(shap_values, (np.ndarray, list, tuple)) and hasattr(shap_values, "values"):
        values = shap_values.values
        if data is None:
            data = getattr(shap_values, "data", None)
        if base_values is None:
            base_values = getattr(shap_values, "base_values", None)
        if feature_names is None:
            feature_names = getattr(shap_values, "feature_names", None)
    if feature_names is None and hasattr(data, "columns"):
        feature_names = [str(c) for c in data.columns]
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim == 3:
        values, base_values = _one_output(values, base_values, output)
    elif output is not None:
        raise ValueError("output selects one output of [n, m, k] values; these are "
                         f"{values.shape}")
    if values.ndim != 2:
        raise ValueError(f"expected SHAP values [n, m] or [n, m, k], got shape {values.shape}")
    n, m = values.shape
    base = np.zeros(n) if base_values is None else np.asarray(base_values, dtype=np.float64)
    base = np.broadcast_to(base.reshape(-1) if base.size in (1, n) else base, (n,)).copy()
    matrix = None
    if data is not None:
        matrix = np.asarray(getattr(data, "values", data), dtype=np.float64)
        matrix = matrix[None, :] if matrix.ndim == 1 else matrix
        if matrix.shape != (n, m):
            raise ValueError(f"data has shape {matrix.shape}, the SHAP values {values.shape}")
    names = [f"Feature {j}" for j in range(m)] if feature_names is None else [
        str(f) for f in feature_names]
    if len(names) != m:
        raise ValueError(f"{len(names)} feature names for {m} features")
    return Explained(values, base, matrix, names)


def _one_output(values: np.ndarray, base_values: Any,
                output: Optional[int]) -> Tuple[np.ndarray, Any]:
    k = values.shape[2]
    if output is None:
        if k != 1:
            raise ValueError(f"the SHAP values have {k} outputs; pass output= to pick one")
        output = 0
    if not 0 <= output < k:
        raise IndexError(f"output {output} is out of range for {k} outputs")
    if base_values is not None:
        base = np.asarray(base_values, dtype=np.float64)
        base_values = base[..., output] if base.ndim and base.shape[-1] == k else base
    return values[:, :, output], base_values


def axes(plt: Any, ax: Any, size: Tuple[float, float]) -> Any:
    """The given Axes, or new ones on a figure of ``size`` inches."""
    if ax is not None:
        return ax
    return plt.subplots(figsize=size)[1]


def finish(plt: Any, ax: Any, path: Optional[Union[str, Path]]) -> Any:
    """Lay out, save to ``path`` (and close the figure) when given; returns the Axes."""
    ax.figure.tight_layout()
    if path is not None:
        ax.figure.savefig(path)
        plt.close(ax.figure)
    return ax


def top_features(importance: np.ndarray, max_display: int) -> np.ndarray:
    """Indices of the ``max_display`` largest ``importance`` values, largest first (stable)."""
    if max_display < 1:
        raise ValueError(f"max_display must be positive, got {max_display}")
    return np.argsort(-importance, kind="stable")[:max_display]
