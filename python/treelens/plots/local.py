"""Plots of single rows and single features: the waterfall and the dependence scatter."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._common import NEGATIVE, POSITIVE, axes, explained, finish, pyplot, top_features


def waterfall(shap_values: Any, row: int = 0, data: Any = None,
              feature_names: Optional[Sequence[str]] = None, base_values: Any = None,
              max_display: int = 10, output: Optional[int] = None, ax: Any = None,
              path: Optional[Union[str, Path]] = None) -> Any:
    """How one row's SHAP values move the output from the expected value ``E[f(x)]`` to
    ``f(x) = E[f(x)] + sum(SHAP)``: one bar per feature, largest |SHAP| on top, red
    pushing up and blue down; the ``max_display - 1`` largest are drawn and the rest summed.

    ``shap_values``: an Explanation-like object or an array ``[n, m]`` / ``[m]`` (``[n, m,
    k]`` with ``output``); ``row`` picks the row; ``base_values`` (the expected value)
    defaults to the object's ``.base_values``, else 0. Labels show the row's feature values
    when ``data`` is known. Returns the matplotlib Axes.
    """
    e = explained(shap_values, data, feature_names, base_values, output)
    if not -e.values.shape[0] <= row < e.values.shape[0]:
        raise IndexError(f"row {row} is out of range for {e.values.shape[0]} rows")
    phi, base = e.values[row], float(e.base_values[row])
    plt = pyplot(headless=path is not None)
    order = top_features(np.abs(phi), len(phi))
    keep, rest = order[:max_display - 1], order[max_display - 1:]
    if len(order) <= max_display:
        keep, rest = order, order[:0]
    steps = [float(phi[j]) for j in keep]
    labels = [_label(e, row, j) for j in keep]
    if len(rest):
        steps.append(float(phi[rest].sum()))
        labels.append(f"sum of {len(rest)} other features")
    ax = axes(plt, ax, (8, 1.5 + 0.45 * len(steps)))
    # Bars stack bottom-up from E[f(x)]: the smallest contribution starts at the base.
    y = np.arange(len(steps))[::-1]
    start = base + np.concatenate([[0.0], np.cumsum(steps[::-1])])[:-1][::-1]
    colours = [POSITIVE if s >= 0 else NEGATIVE for s in steps]
    ax.barh(y, steps, left=start, color=colours, height=0.7)
    for yi, s, left in zip(y, steps, start):
        ax.annotate(f"{s:+.3g}", (left + s, yi), xytext=(3 if s >= 0 else -3, 0),
                    textcoords="offset points", va="center", ha="left" if s >= 0 else "right",
                    fontsize=8)
    total = base + float(np.sum(steps))
    ax.axvline(base, color="#999999", linewidth=0.8, linestyle="--")
    ax.axvline(total, color="#333333", linewidth=0.8)
    ax.set_yticks(y, labels)
    ax.margins(x=0.12)
    ax.set_xlabel(f"E[f(x)] = {base:.4g}    f(x) = {total:.4g}")
    return finish(plt, ax, path)


def _label(e: Any, row: int, j: int) -> str:
    if e.data is None:
        return e.feature_names[j]
    return f"{e.data[row, j]:.4g} = {e.feature_names[j]}"


def scatter(shap_values: Any, feature: Union[int, str] = 0, data: Any = None,
            feature_names: Optional[Sequence[str]] = None, color: Union[int, str, None] = None,
            output: Optional[int] = None, ax: Any = None,
            path: Optional[Union[str, Path]] = None) -> Any:
    """Dependence plot: a feature's value (x) against its SHAP value (y), one dot per row,
    coloured by another feature's value when ``color`` names one.

    ``shap_values``: an Explanation-like object with ``.data`` (or ``data [n, m]`` given
    here); ``feature`` / ``color``: index or name. Missing feature values are left out.
    Returns the matplotlib Axes.
    """
    e = explained(shap_values, data, feature_names, output=output)
    if e.data is None:
        raise ValueError("scatter needs the feature values: pass data= or an Explanation "
                         "with .data")
    j = e.column(feature)
    x, y = e.data[:, j], e.values[:, j]
    shown = ~np.isnan(x)
    plt = pyplot(headless=path is not None)
    ax = axes(plt, ax, (7, 5))
    if color is None:
        ax.scatter(x[shown], y[shown], s=12, color=NEGATIVE, linewidths=0)
    else:
        c = e.column(color)
        points = ax.scatter(x[shown], y[shown], s=12, c=e.data[shown, c], cmap="coolwarm",
                            linewidths=0)
        ax.figure.colorbar(points, ax=ax, label=e.feature_names[c])
    ax.axhline(0.0, color="#999999", linewidth=0.8, zorder=0)
    ax.set_xlabel(e.feature_names[j])
    ax.set_ylabel(f"SHAP value for {e.feature_names[j]}")
    return finish(plt, ax, path)
