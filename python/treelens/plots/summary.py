"""Global summaries over many rows: the beeswarm and the mean |SHAP| bar chart."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._common import NEGATIVE, POSITIVE, axes, explained, finish, pyplot, top_features


def beeswarm(shap_values: Any, data: Any = None, feature_names: Optional[Sequence[str]] = None,
             max_display: int = 10, output: Optional[int] = None, ax: Any = None,
             path: Optional[Union[str, Path]] = None) -> Any:
    """One row of dots per feature, each dot a row's SHAP value, coloured by the feature's
    value (blue low, red high; grey when missing or without ``data``).

    ``shap_values``: an Explanation-like object (``.values [n, m]``, ``.data [n, m]``,
    ``.feature_names``) or an array ``[n, m]`` (``[n, m, k]`` with ``output``). The
    ``max_display - 1`` features of largest mean |SHAP| are drawn, top first, and the others
    summed into one row. Draws into ``ax`` when given; saved to ``path`` when given.
    Returns the matplotlib Axes.
    """
    e = explained(shap_values, data, feature_names, output=output)
    plt = pyplot(headless=path is not None)
    rows, labels = _rows(e.values, e.feature_names, max_display)
    ax = axes(plt, ax, (8, 1.0 + 0.45 * len(rows)))
    cmap = plt.get_cmap("coolwarm")
    for y, (label, cols) in enumerate(zip(labels, rows)):
        phi = e.values[:, cols].sum(axis=1)
        colour = _colours(e.data[:, cols[0]] if e.data is not None and len(cols) == 1 else None,
                          len(phi), cmap)
        ax.scatter(phi, len(rows) - 1 - y + _swarm(phi), c=colour, s=12, linewidths=0,
                   rasterized=len(phi) > 500)
    ax.set_yticks(np.arange(len(rows))[::-1], labels)
    ax.axvline(0.0, color="#999999", linewidth=0.8, zorder=0)
    ax.set_xlabel("SHAP value (impact on model output)")
    if e.data is not None:
        bar = ax.figure.colorbar(plt.cm.ScalarMappable(cmap=cmap), ax=ax, ticks=[0, 1],
                                 aspect=40, pad=0.02)
        bar.set_ticklabels(["low", "high"])
        bar.set_label("feature value")
    return finish(plt, ax, path)


def bar(shap_values: Any, feature_names: Optional[Sequence[str]] = None, max_display: int = 10,
        output: Optional[int] = None, ax: Any = None,
        path: Optional[Union[str, Path]] = None) -> Any:
    """Horizontal bars of mean |SHAP| per feature, largest on top; for a single row, that
    row's signed SHAP values (red positive, blue negative).

    Takes what ``beeswarm`` takes. The ``max_display - 1`` largest features are drawn and the
    others summed into one bar. Returns the matplotlib Axes.
    """
    e = explained(shap_values, None, feature_names, output=output)
    plt = pyplot(headless=path is not None)
    single = e.values.shape[0] == 1
    rows, labels = _rows(e.values, e.feature_names, max_display)
    if single:
        heights = np.array([e.values[0, cols].sum() for cols in rows])
    else:
        heights = np.array([np.abs(e.values[:, cols]).mean(axis=0).sum() for cols in rows])
    ax = axes(plt, ax, (8, 1.0 + 0.45 * len(rows)))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, heights, color=[POSITIVE if h >= 0 else NEGATIVE for h in heights], height=0.7)
    ax.set_yticks(y, labels)
    ax.axvline(0.0, color="#999999", linewidth=0.8)
    ax.set_xlabel("SHAP value" if single else "mean(|SHAP value|)")
    return finish(plt, ax, path)


def _rows(values: np.ndarray, names: Sequence[str], max_display: int):
    """Feature columns of each drawn row (the last one may gather the rest) and their labels,
    by decreasing mean |SHAP|."""
    order = top_features(np.abs(values).mean(axis=0), len(names))
    if len(order) <= max_display:
        return [[j] for j in order], [names[j] for j in order]
    keep = order[:max_display - 1]
    rest = order[max_display - 1:]
    return ([[j] for j in keep] + [list(rest)],
            [names[j] for j in keep] + [f"sum of {len(rest)} other features"])


def _colours(feature: Optional[np.ndarray], n: int, cmap: Any) -> np.ndarray:
    """RGBA ``[n, 4]``: the feature's value between its 5th and 95th percentiles on ``cmap``,
    grey for missing values or without values."""
    grey = np.array([0.6, 0.6, 0.6, 1.0])
    out = np.tile(grey, (n, 1))
    if feature is None:
        return out
    finite = np.isfinite(feature)
    if finite.any():
        low, high = np.percentile(feature[finite], [5, 95])
        if high <= low:
            low, high = feature[finite].min(), feature[finite].max()
        scaled = (feature[finite] - low) / (high - low) if high > low else np.full(
            finite.sum(), 0.5)
        out[finite] = cmap(np.clip(scaled, 0.0, 1.0))
    return out


def _swarm(x: np.ndarray, width: float = 0.4, bins: int = 100) -> np.ndarray:
    """Vertical offsets ``[n]`` that pile up dots of similar ``x`` symmetrically, at most
    ``width`` from the row's centre (deterministic)."""
    n = len(x)
    offsets = np.zeros(n)
    if n == 0:
        return offsets
    span = float(np.ptp(x)) or 1.0
    cell = np.floor((x - x.min()) / span * (bins - 1)).astype(np.int64)
    order = np.lexsort((np.arange(n), cell))
    counts = np.bincount(cell, minlength=bins)
    scale = width / max(1, (counts.max() + 1) // 2)
    rank = np.empty(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(n) - starts[cell[order]]
    sign = np.where(rank % 2 == 0, 1.0, -1.0)
    offsets = sign * ((rank + 1) // 2) * scale
    return offsets
