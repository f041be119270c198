"""Plots of treelens results (matplotlib, an optional extra: ``treelens[plots]``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

PLOTS_EXTRA = "treelens[plots]"


def importance_plot(result: Any, names: Sequence[str], path: Optional[Path] = None,
                    max_display: int = 20, title: str = "permutation importance") -> Any:
    """Box plot of permutation importances, most important on top.

    ``result``: what ``permutation_importance`` returns (``importances [g, n_repeats]``);
    ``names``: ``[g]`` labels. The ``max_display`` largest mean importances are drawn, each
    box spanning its repeats. Saved to ``path`` when given; returns the Figure.
    """
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ImportError(f"plots need matplotlib: pip install \"{PLOTS_EXTRA}\"") from None
    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    importances = np.asarray(result.importances, dtype=np.float64)
    if importances.shape[0] != len(names):
        raise ValueError(f"{len(names)} names for {importances.shape[0]} importances")
    order = np.argsort(-importances.mean(axis=1), kind="stable")[:max_display][::-1]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * len(order)))
    ax.boxplot(importances[order].T, vert=False, widths=0.6)
    ax.set_yticks(np.arange(1, len(order) + 1), [str(names[i]) for i in order])
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("decrease in score")
    ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig
