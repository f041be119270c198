"""``TreeExplainer``: a drop-in for ``shap.TreeExplainer`` on the raw margin."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from . import _inputs
from . import background as _background
from ._resources import check_fits, check_threads
from .model import load

#: Working memory of one chunk of background interaction rows.
_CHUNK_BYTES = 256 * 1024 * 1024

_PERTURBATIONS = ("auto", "tree_path_dependent", "interventional")
_OUTPUTS = ("raw", "probability", "log_loss", "predict", "predict_proba")


class TreeExplainer:
    """Exact path-dependent TreeSHAP values of a tree ensemble's raw margin.

    The constructor mirrors ``shap.TreeExplainer``. ``model`` is anything
    ``treelens.load`` accepts: an XGBoost / LightGBM / scikit-learn model, a ``Forest``,
    or a path to a saved model file.

    ``feature_perturbation="tree_path_dependent"`` (``"auto"`` without ``data``) explains
    the raw margin. With background ``data`` (``"interventional"``, or ``"auto"`` with
    ``data``) the values are exact Shapley values of ``v(S) = mean_z f(x_S, z_notS)`` over
    the background rows, weighted by ``data_weights``; ``model_output`` may then also be
    ``"probability"`` or ``"log_loss"`` (see ``treelens.background``).
    ``n_threads``: ``None`` uses every core. ``iteration_range`` (XGBoost) and
    ``num_iteration`` (LightGBM) select the boosting rounds to explain.
    """

    def __init__(self, model: Any, data: Any = None, model_output: str = "raw",
                 feature_perturbation: str = "auto", n_threads: Optional[int] = None,
                 iteration_range: Optional[Sequence[int]] = None,
                 num_iteration: Optional[int] = None, data_weights: Any = None) -> None:
        if feature_perturbation not in _PERTURBATIONS:
            raise ValueError(f"feature_perturbation must be one of {_PERTURBATIONS}, "
                             f"got {feature_perturbation!r}")
        if model_output not in _OUTPUTS:
            raise ValueError(f"model_output must be one of {_OUTPUTS}, got {model_output!r}")
        interventional = feature_perturbation == "interventional" or (
            feature_perturbation == "auto" and data is not None)
        if interventional and data is None:
            raise ValueError("feature_perturbation='interventional' needs background data")
        if not interventional and data is not None:
            raise NotImplementedError("background data with feature_perturbation="
                                      "'tree_path_dependent' is not supported")
        if model_output in ("predict", "predict_proba"):
            raise NotImplementedError(f"model_output={model_output!r} is not supported; use "
                                      "'raw', 'probability' or 'log_loss'")
        if model_output != "raw" and not interventional:
            raise NotImplementedError(
                f"model_output={model_output!r} is supported with background data only "
                "(feature_perturbation='interventional')")
        if data_weights is not None and not interventional:
            raise ValueError("data_weights weight the background data; pass data too")
        self.n_threads = check_threads(n_threads)
        self.forest = load(model, iteration_range=iteration_range,
                           num_iteration=num_iteration)
        self.model_output = model_output
        self.feature_perturbation = "interventional" if interventional else "tree_path_dependent"
        self._background = None
        if interventional:
            _background.check_output(model_output, self.forest.output_function,
                                     self.forest.n_outputs)
            self._background = _background.Background(self.forest, data, data_weights)
            self._background_expected = _background.expected_value(
                self.forest, self._background, model_output, self.n_threads)

    @property
    def expected_value(self) -> Any:
        """Mean explained output: float, or float64 ``[k]`` for multi-output models. With
        background data it is the weighted background mean; for ``log_loss`` a function of
        the labels ``y`` (as in ``shap``)."""
        if self._background is None:
            return self.forest.expected_value
        ev = self._background_expected
        if callable(ev) or ev.shape[0] != 1:
            return ev
        return float(ev[0])

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
        if y is not None and self.model_output != "log_loss":
            raise ValueError("y is only used with model_output='log_loss'")
        if tree_limit is not None:
            raise NotImplementedError("tree_limit is not supported; pass iteration_range "
                                      "(XGBoost) or num_iteration (LightGBM) to the explainer")
        if approximate:
            raise NotImplementedError("approximate (Saabas) values are not supported; "
                                      "treelens computes exact values")
        if self._background is not None:
            return self._background_shap_values(X, y, check_additivity)
        phi = self.forest.shap_values(X, self.n_threads)
        if check_additivity:
            self._check_additivity(X, phi)
        return phi

    def _background_shap_values(self, X: Any, y: Any, check_additivity: bool) -> np.ndarray:
        rows = _inputs.to_matrix(X, self.forest.spec)
        labels = None
        if self.model_output == "log_loss":
            labels = _background.check_labels(y, rows.shape[0])
        phi, expected = _background.shap_values(self.forest, rows, self._background,
                                                self.model_output, labels, self.n_threads)
        if check_additivity:
            output = _background.explained_output(self.forest, rows, self.model_output,
                                                  labels, self.n_threads)
            gap = np.abs(phi.sum(axis=1) + expected - output)
            if np.any(gap > 1e-6 * (1.0 + np.abs(output))):
                raise RuntimeError("additivity check failed: max |sum(phi) + expected_value "
                                   f"- output| = {gap.max():.3g}")
        return phi[:, :, 0] if phi.shape[2] == 1 else phi

    def _background_interaction_values(self, X: Any, features: Any = None) -> np.ndarray:
        """Background interaction values of the raw margin: float64 ``[n, s, s]`` or
        ``[n, s, s, k]`` (``s`` selected features); symmetric when all are selected, each
        row then summing to the SHAP value. All features: one result array, no copy. A
        subset: rows in chunks whose full ``[rows, m, m, k]`` working array stays within
        ``_CHUNK_BYTES``."""
        if self.model_output != "raw":
            raise ValueError("interaction values explain the raw margin only; got "
                             f"model_output={self.model_output!r}")
        forest = self.forest
        selected = forest._feature_positions(features)
        source = _inputs.row_source(X, forest.spec)
        n, s, k, m = source.n_rows, len(selected), forest.n_outputs, forest.n_features
        every = s == m and np.array_equal(selected, np.arange(m))
        chunk = max(1, _CHUNK_BYTES // (m * m * k * 8))
        working = 0 if every else min(chunk, n) * m * m * k * 8
        check_fits("interaction values", (n, s, s, k), working,
                   "explain fewer rows per call or pass features= to select a subset")
        if every:
            out, _ = _background.interaction_values(forest, source.take(0, n),
                                                    self._background, self.n_threads)
            return out[..., 0] if k == 1 else out
        out = np.empty((n, s, s, k), dtype=np.float64)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            full, _ = _background.interaction_values(forest, source.take(start, stop),
                                                     self._background, self.n_threads)
            out[start:stop] = full[:, selected][:, :, selected]
        return out[..., 0] if k == 1 else out

    def shap_interaction_values(self, X: Any, features: Any = None) -> np.ndarray:
        """SHAP interaction values of the raw margin for each row of ``X``.

        Returns float64 ``[n, m, m]``, or ``[n, m, m, k]`` for multi-output models;
        symmetric, each row summing to the SHAP value. Path-dependent values equal
        ``shap``'s and XGBoost's ``pred_interactions``. ``features`` (indices or names)
        returns only those rows and columns: ``[n, s, s(, k)]``; a MemoryError stating the
        size is raised before allocating a result that cannot fit.
        """
        if self._background is not None:
            return self._background_interaction_values(X, features)
        return self.forest.shap_interaction_values(X, self.n_threads, features)

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
