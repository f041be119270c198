"""Plots of treelens results, drawn with matplotlib (an optional extra: ``treelens[plots]``).

``beeswarm``, ``bar``, ``waterfall`` and ``scatter`` take an Explanation-like object (anything
with ``.values``, and optionally ``.base_values``, ``.data`` and ``.feature_names``, such as a
``shap.Explanation``) or plain arrays, like ``shap.plots``, without needing shap; they return
the matplotlib Axes. ``importance_plot`` draws permutation importances over repeats and
returns the Figure. Every function draws into ``ax=`` when given and saves to ``path=``.
"""
from ._common import PLOTS_EXTRA
from .importance import importance_plot
from .local import scatter, waterfall
from .summary import bar, beeswarm

__all__ = ["PLOTS_EXTRA", "bar", "beeswarm", "importance_plot", "scatter", "waterfall"]
