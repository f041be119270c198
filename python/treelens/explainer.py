"""``TreeExplainer``: a drop-in for ``shap.TreeExplainer`` on the raw margin."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

import numpy as np

from .model import check_threads, load

_PERTURBATIONS = ("auto", "tree_path_dependent", "interventional")
_OUTPUTS = ("raw", "probability", "log_loss", "predict", "predict_proba")


class TreeExplainer:
    """Exact path-dependent TreeSHAP values of a tree ensemble's raw margin.

    The constructor mirrors ``shap.TreeExplainer``. ``model`` is anything
    ``treelens.load`` accepts: an XGBoost / LightGBM / scikit-learn model, a ``Forest``,
    or a path to a saved model file.

    Supported now: ``feature_perturbation="tree_path_dependent"`` (also what ``"auto"``
    means without ``data``) and ``model_output="raw"``. Background data
    (``"interventional"``) and the other model outputs raise NotImplementedError.
    ``n_threads``: ``None`` uses every core. ``iteration_range`` (XGBoost) and
    ``num_iteration`` (LightGBM) select the boosting rounds to explain.
    """

    def __init__(self, model: Any, data: Any = None, model_output: str = "raw",
                 feature_perturbation: str = "auto", n_threads: Optional[int] = None,
                 iteration_range: Optional[Sequence[int]] = None,
                 num_iteration: Optional[int] = None) -> None:
        if feature_perturbation not in _PERTURBATIONS:
            raise ValueError(f"feature_perturbation must be one of {_PERTURBATIONS}, "
                             f"got {feature_perturbation!r}")
        if model_output not in _OUTPUTS:
            raise ValueError(f"model_output must be one of {_OUTPUTS}, got {model_output!r}")
        if feature_perturbation == "interventional" or data is not None:
            raise NotImplementedError(
                "background data (feature_perturbation='interventional') is not supported "
                "yet; use data=None with feature_perturbation='tree_path_dependent'")
        if model_output != "raw":
            raise NotImplementedError(
                f"model_output={model_output!r} is not supported yet; only 'raw' (the "
                "margin) is")
        self.n_threads = check_threads(n_threads)
        self.forest = load(model, iteration_range=iteration_range,
                           num_iteration=num_iteration)
        self.model_output = model_output
        self.feature_perturbation = "tree_path_dependent"

    @property
    def expected_value(self) -> Union[float, np.ndarray]:
        """Mean margin: float, or float64 ``[k]`` for multi-output models."""
        return self.forest.expected_value

    @property
    def feature_names(self) -> Optional[List[str]]:
        return self.forest.feature_names

    def shap_values(self, X: Any, y: Any = None, tree_limit: Optional[int] = None,
                    approximate: bool = False, check_additivity: bool = False) -> np.ndarray:
        """SHAP values of the raw margin for each row of ``X``.

        Returns float64 ``[n, m]``, or ``[n, m, k]`` for multi-output models.
        ``check_additivity=True`` verifies ``phi.sum(1) + expected_value == predict(X)``
        to within rounding and raises RuntimeError otherwise. ``y``, ``tree_limit`` and
        ``approximate=True`` are not supported (use ``iteration_range`` /
        ``num_iteration`` on the explainer to limit the trees).
        """
        if y is not None:
            raise NotImplementedError("y is only used for model_output='log_loss', "
                                      "which is not supported yet")
        if tree_limit is not None:
            raise NotImplementedError("tree_limit is not supported; pass iteration_range "
                                      "(XGBoost) or num_iteration (LightGBM) to the explainer")
        if approximate:
            raise NotImplementedError("approximate (Saabas) values are not supported; "
                                      "treelens computes exact values")
        phi = self.forest.shap_values(X, self.n_threads)
        if check_additivity:
            self._check_additivity(X, phi)
        return phi

    def predict(self, X: Any) -> np.ndarray:
        """Raw margin: float64 ``[n]``, or ``[n, k]`` for multi-output models."""
        return self.forest.predict(X, self.n_threads)

    def _check_additivity(self, X: Any, phi: np.ndarray) -> None:
        margin = self.predict(X)
        gap = np.abs(phi.sum(axis=1) + self.expected_value - margin)
        bound = 1e-4 * (1.0 + np.abs(margin))
        if np.any(gap > bound):
            raise RuntimeError(
                "additivity check failed: max |sum(phi) + expected_value - margin| = "
                f"{gap.max():.3g}")
