"""Permutation importance over repeats: a box per feature, or the mean with error bars."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._common import axes, finish, pyplot, top_features

_KINDS = ("box", "errorbar")


def importance_plot(result: Any, names: Optional[Sequence[str]] = None,
                    path: Optional[Union[str, Path]] = None, max_display: int = 20,
                    title: str = "permutation importance", kind: str = "box",
                    ax: Any = None) -> Any:
    """Permutation importances, most important on top.

    ``result``: what ``treelens.permutation_importance`` (or scikit-learn's) returns, with
    ``importances [g, n_repeats]``; ``names``: ``[g]`` labels (default ``Feature i``). The
    ``max_display`` largest mean importances are drawn: ``kind="box"`` a box over the repeats
    of each, ``kind="errorbar"`` the mean with a bar of one standard deviation. Draws into
    ``ax`` when given; saved to ``path`` when given. Returns the matplotlib Figure.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    importances = np.asarray(result.importances, dtype=np.float64)
    if importances.ndim != 2:
        raise ValueError(f"importances must be [features, repeats], got {importances.shape}")
    if names is None:
        names = [f"Feature {j}" for j in range(importances.shape[0])]
    if importances.shape[0] != len(names):
        raise ValueError(f"{len(names)} names for {importances.shape[0]} importances")
    plt = pyplot(headless=path is not None)
    order = top_features(importances.mean(axis=1), max_display)[::-1]
    ax = axes(plt, ax, (7, 1.2 + 0.3 * len(order)))
    y = np.arange(1, len(order) + 1)
    if kind == "box":
        # matplotlib 3.10 renamed vert=False to orientation="horizontal".
        params = inspect.signature(ax.boxplot).parameters
        horizontal = {"orientation": "horizontal"} if "orientation" in params else {"vert": False}
        ax.boxplot(importances[order].T, widths=0.6, **horizontal)
    else:
        ax.errorbar(importances[order].mean(axis=1), y, xerr=importances[order].std(axis=1),
                    fmt="o", capsize=3)
    ax.set_yticks(y, [str(names[i]) for i in order])
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("decrease in score")
    ax.set_title(title)
    return finish(plt, ax, path).figure
