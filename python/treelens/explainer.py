"""``TreeExplainer``: a drop-in for ``shap.TreeExplainer``.

Shapes: ``n`` rows, ``m`` features, ``k`` outputs; single-output models drop the ``k``
axis, and a single row (1-D array or pandas Series) drops the ``n`` axis, as in shap.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import _explanation, _inputs
from . import background as _background
from ._resources import check_fits, check_threads
from .model import Forest, load

#: Working memory of one chunk of background interaction rows.
_CHUNK_BYTES = 256 * 1024 * 1024

_PERTURBATIONS = ("auto", "tree_path_dependent", "interventional")
_OUTPUTS = ("raw", "probability", "log_loss", "predict_proba")


class AdditivityError(RuntimeError):
    """SHAP values plus the expected value do not add up to the explained output."""


class TreeExplainer:
    """Exact TreeSHAP values of a tree ensemble, with ``shap.TreeExplainer``'s interface.

    ``model`` is anything ``treelens.load`` accepts: an XGBoost / LightGBM / scikit-learn
    model, a ``Forest``, or a path to a saved model file.

    ``feature_perturbation="tree_path_dependent"`` (``"auto"`` without ``data``) explains
    the raw margin under the trees' own node covers; with ``data`` the covers are first
    replaced by how many of its rows reach each node, as shap does (``Forest.reweighted``).
    With background ``data`` and ``"interventional"`` (or ``"auto"``) the values are exact
    Shapley values of ``v(S) = mean_z f(x_S, z_notS)`` over all background rows, weighted by
    ``data_weights``; ``model_output`` may then also be ``"probability"``, ``"predict_proba"``
    (probabilities of every class: a binary model's one output becomes two, as in shap) or
    ``"log_loss"`` (see ``treelens.background``). ``"interventional"`` without ``data``
    warns and falls back to ``"tree_path_dependent"``, as shap does.

    ``n_threads``: ``None`` uses every core. ``iteration_range`` (XGBoost) and
    ``num_iteration`` (LightGBM) select the boosting rounds to explain. ``missing``
    (XGBoost): the input value treated as missing (see ``treelens.load``).
    ``feature_names`` ``[m]`` label the features of ``explainer(X)`` when ``X`` has none.
    """

    def __init__(self, model: Any, data: Any = None, model_output: str = "raw",
                 feature_perturbation: str = "auto", n_threads: Optional[int] = None,
                 iteration_range: Optional[Sequence[int]] = None,
                 num_iteration: Optional[int] = None, data_weights: Any = None,
                 feature_names: Optional[Sequence[str]] = None,
                 missing: Optional[float] = None) -> None:
        if feature_perturbation not in _PERTURBATIONS:
            raise ValueError(f"feature_perturbation must be one of {_PERTURBATIONS}, "
                             f"got {feature_perturbation!r}")
        if model_output not in _OUTPUTS:
            raise ValueError(f"model_output must be one of {_OUTPUTS}, got {model_output!r}")
        if feature_perturbation == "interventional" and data is None:
            warnings.warn("feature_perturbation='interventional' needs background data; "
                          "using 'tree_path_dependent' instead", UserWarning, stacklevel=2)
            feature_perturbation = "tree_path_dependent"
        interventional = feature_perturbation == "interventional" or (
            feature_perturbation == "auto" and data is not None)
        if model_output != "raw" and not interventional:
            raise NotImplementedError(
                f"model_output={model_output!r} is supported with background data only "
                "(feature_perturbation='interventional')")
        if data_weights is not None and not interventional:
            raise ValueError("data_weights weight the background data of "
                             "feature_perturbation='interventional'; pass data too")
        self.n_threads = check_threads(n_threads)
        forest = load(model, iteration_range=iteration_range, num_iteration=num_iteration,
                      missing=missing)
        if data is not None and not interventional:
            try:
                forest = forest.reweighted(data, self.n_threads)
            except ValueError as exc:
                raise ValueError(f"data: {exc}") from None
        self.forest = forest
        self.data = data
        self.model_output = model_output
        self.feature_perturbation = "interventional" if interventional else "tree_path_dependent"
        self._feature_names = _check_names(feature_names, forest.n_features)
        self._output_names = _class_names(model, forest.n_outputs, model_output)
        self._limited: Dict[int, Forest] = {}
        self._background = None
        self._saabas_forest: Optional[Forest] = None
        # What the background code explains: predict_proba is probability, then doubled.
        self._explained = "probability" if model_output == "predict_proba" else model_output
        self._doubled = model_output == "predict_proba" and forest.n_outputs == 1
        if interventional:
            _background.check_output(self._explained, forest.output_function, forest.n_outputs)
            self._background = _background.Background(forest, data, data_weights)
            self._background_expected = _background.expected_value(
                forest, self._background, self._explained, self.n_threads)

    # ------------------------------------------------------------------ metadata

    @property
    def model(self) -> Forest:
        """The explained model as treelens reads it (``predict``, ``n_outputs``, ...)."""
        return self.forest

    @property
    def expected_value(self) -> Any:
        """Mean explained output: float, or float64 ``[k]`` for multi-output models. With
        background data it is the weighted background mean; for ``log_loss`` a function of
        the labels ``y`` (as in ``shap``)."""
        if self._background is None:
            return self.forest.expected_value
        ev = self._background_expected
        if callable(ev):
            return ev
        if self._doubled:
            return np.array([1.0 - ev[0], ev[0]])
        return float(ev[0]) if ev.shape[0] == 1 else ev

    @property
    def feature_names(self) -> Optional[List[str]]:
        """``[m]`` names given to the explainer, else those stored in the model, or None."""
        return self._feature_names if self._feature_names is not None \
            else self.forest.feature_names

    # --------------------------------------------------------------- computation

    def __call__(self, X: Any, y: Any = None, interactions: bool = False,
                 check_additivity: bool = True, approximate: bool = False) -> Any:
        """The explanation of ``X``: a ``shap.Explanation`` when shap is installed, else a
        ``treelens`` ``Explanation`` with the same attributes.

        ``values``: ``shap_values(X)`` (``[n, m(, k)]``), or with ``interactions=True``
        ``shap_interaction_values(X)`` (``[n, m, m(, k)]``); ``base_values``: the expected
        value per row ``[n(, k)]``; ``data``: the rows ``[n, m]``; ``feature_names``: the
        input's column names, else ``feature_names``; ``output_names``: the class labels of
        a multi-output classifier, else None. A single row drops the ``n`` axis.
        """
        rows, single = _inputs.split_single_row(X)
        if interactions:
            if approximate:
                raise NotImplementedError("approximate=True is not defined for interaction "
                                          "values")
            values = self.shap_interaction_values(rows, y=y)
        else:
            values = self.shap_values(rows, y=y, approximate=approximate,
                                      check_additivity=check_additivity)
        n = values.shape[0]
        ev = self.expected_value
        if callable(ev):
            base = np.asarray(ev(_background.check_labels(y, n)), dtype=np.float64)
        elif np.ndim(ev) == 0:
            base = np.full(n, float(ev))
        else:
            base = np.tile(np.asarray(ev, dtype=np.float64), (n, 1))
        data = _explanation.data_of(rows)
        if single:
            values, base, data = values[0], base[0], data[0]
        names = _explanation.column_names(X) or self.feature_names
        return _explanation.make(values, base, data, names, self._output_names)

    def shap_values(self, X: Any, y: Any = None, tree_limit: Optional[int] = None,
                    approximate: bool = False, check_additivity: bool = True) -> np.ndarray:
        """SHAP values of each row of ``X``: float64 ``[n, m]``, or ``[n, m, k]`` for
        multi-output models (``[m]`` / ``[m, k]`` for a single row).

        ``y`` ``[n]``: the labels, used by ``model_output="log_loss"`` (checked for length
        otherwise). ``tree_limit``: explain only the first trees, counted as shap counts
        them (XGBoost: trees, rounded down to whole rounds; LightGBM: iterations;
        otherwise trees); ``None`` or ``-1``: all. ``approximate=True``: Saabas values
        (each split credits its feature with the change of the node mean; fast, not
        Shapley values), as shap's ``approximate=True``. ``check_additivity``: verify that
        the values plus the expected value equal the explained output, else
        ``AdditivityError``.
        """
        rows, single = _inputs.split_single_row(X)
        forest = self._limit(self.forest, tree_limit)
        matrix = _inputs.to_matrix(rows, forest.spec)
        labels = self._labels(y, matrix.shape[0])
        if approximate:
            phi, expected, output = self._saabas(matrix, tree_limit)
        elif self._background is not None:
            phi, expected = _background.shap_values(forest, matrix, self._background,
                                                    self._explained, labels, self.n_threads)
            output = None
            if check_additivity:
                output = _background.explained_output(forest, matrix, self._explained, labels,
                                                      self.n_threads)
        else:
            if check_additivity:
                phi, output = forest._core.shap_values(matrix, self.n_threads, with_output=True)
            else:
                phi, output = forest._core.shap_values(matrix, self.n_threads), None
            expected = forest._core.expected_value()
        if check_additivity:
            _check_additivity(phi.sum(axis=1) + expected, output)
        if self._doubled:
            phi = np.concatenate([-phi, phi], axis=2)
        out = phi[:, :, 0] if phi.shape[2] == 1 else phi
        return out[0] if single else out

    def shap_interaction_values(self, X: Any, y: Any = None, tree_limit: Optional[int] = None,
                                features: Any = None) -> np.ndarray:
        """SHAP interaction values of the raw margin for each row of ``X``.

        Returns float64 ``[n, m, m]``, or ``[n, m, m, k]`` for multi-output models (no
        ``n`` axis for a single row); symmetric, each row summing to the SHAP value.
        Path-dependent values equal ``shap``'s and XGBoost's ``pred_interactions``.
        ``y`` is accepted as shap accepts it (checked for length; the raw margin does not
        depend on it). ``tree_limit`` as in ``shap_values``. ``features`` (indices or
        names) returns only those rows and columns: ``[n, s, s(, k)]``; a MemoryError
        stating the size is raised before allocating a result that cannot fit.
        """
        if self.model_output != "raw":
            raise ValueError("interaction values explain the raw margin only; got "
                             f"model_output={self.model_output!r}")
        rows, single = _inputs.split_single_row(X)
        forest = self._limit(self.forest, tree_limit)
        if y is not None:
            source = _inputs.row_source(rows, forest.spec)
            self._labels(y, source.n_rows)
        if self._background is not None:
            out = self._background_interaction_values(rows, features, tree_limit)
        else:
            out = forest.shap_interaction_values(rows, self.n_threads, features)
        return out[0] if single else out

    def predict(self, X: Any) -> np.ndarray:
        """Raw margin: float64 ``[n]``, or ``[n, k]`` for multi-output models (one row:
        a float or ``[k]``)."""
        rows, single = _inputs.split_single_row(X)
        out = self.forest.predict(rows, self.n_threads)
        return out[0] if single else out

    def assert_additivity(self, phi: Any, model_output: Any) -> None:
        """Raise ``AdditivityError`` unless ``phi`` (``[n, m]`` / ``[n, m, k]``, or a list of
        ``k`` arrays ``[n, m]``) plus ``expected_value`` equals ``model_output`` ``[n]`` /
        ``[n, k]`` to within rounding, as ``shap.TreeExplainer.assert_additivity`` does."""
        values = np.stack(phi, axis=-1) if isinstance(phi, list) else np.asarray(phi)
        total = values.sum(axis=1) + np.asarray(self.expected_value, dtype=np.float64)
        _check_additivity(total, np.asarray(model_output, dtype=np.float64).reshape(total.shape))

    # ------------------------------------------------------------------ internals

    def _limit(self, forest: Forest, tree_limit: Optional[int]) -> Forest:
        """``forest`` reduced to the trees ``tree_limit`` selects (cached per count)."""
        if tree_limit is None or tree_limit == -1:
            return forest
        if isinstance(tree_limit, bool) or not isinstance(tree_limit, (int, np.integer)) \
                or tree_limit < 0:
            raise ValueError(f"tree_limit must be None, -1 or a non-negative int, got "
                             f"{tree_limit!r}")
        spec = forest.spec
        if spec.source == "lightgbm":
            n_trees = int(tree_limit) * spec.trees_per_round
        elif spec.source == "xgboost":
            n_trees = int(tree_limit) // spec.trees_per_round * spec.trees_per_round
        else:
            n_trees = int(tree_limit)
        if n_trees == 0 and spec.source in ("lightgbm", "xgboost"):
            return forest  # zero rounds selects all of them, as both libraries read it
        if n_trees == 0:
            raise ValueError("tree_limit=0 selects no trees")
        if n_trees >= forest.n_trees:
            return forest
        if forest is not self.forest:
            return forest.first_trees(n_trees)
        if n_trees not in self._limited:
            self._limited[n_trees] = forest.first_trees(n_trees)
        return self._limited[n_trees]

    def _saabas(self, matrix: np.ndarray, tree_limit: Optional[int]):
        """Saabas values ``[n, m, k]``, their expected value ``[k]`` and the margins."""
        if self._explained != "raw":
            raise ValueError("approximate=True explains the raw margin only; got "
                             f"model_output={self.model_output!r}")
        forest = self.forest
        if self._background is not None:
            # shap weighs the nodes by the background rows here too.
            if self._saabas_forest is None:
                self._saabas_forest = forest.reweighted(self._background.rows, self.n_threads)
            forest = self._saabas_forest
        forest = self._limit(forest, tree_limit)
        phi = forest._core.saabas_values(matrix, self.n_threads)
        return phi, forest._core.expected_value(), forest._core.predict(matrix, self.n_threads)

    def _labels(self, y: Any, n_rows: int) -> Optional[np.ndarray]:
        """Labels ``[n]`` for ``log_loss``; other outputs only check that ``y`` fits."""
        if self.model_output == "log_loss":
            return _background.check_labels(y, n_rows)
        if y is not None and np.shape(y)[:1] != (n_rows,):
            raise ValueError(f"y must have one label per row ({n_rows}), got shape "
                             f"{np.shape(y)}")
        return None

    def _background_interaction_values(self, X: Any, features: Any = None,
                                       tree_limit: Optional[int] = None) -> np.ndarray:
        """Background interaction values of the raw margin: float64 ``[n, s, s]`` or
        ``[n, s, s, k]`` (``s`` selected features); symmetric when all are selected, each
        row then summing to the SHAP value. All features: one result array, no copy. A
        subset: rows in chunks whose full ``[rows, m, m, k]`` working array stays within
        ``_CHUNK_BYTES``."""
        forest = self._limit(self.forest, tree_limit)
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


def _check_additivity(total: np.ndarray, output: np.ndarray) -> None:
    """``AdditivityError`` when ``total`` (values plus expected value) and the explained
    ``output`` (same shape) differ by more than rounding (float32 margins included)."""
    gap = np.abs(total - output)
    if np.any(gap > 1e-4 * (1.0 + np.abs(output))):
        raise AdditivityError("additivity check failed: max |sum(phi) + expected_value - "
                              f"output| = {np.max(gap):.3g}; pass check_additivity=False to "
                              "skip the check")


def _check_names(names: Optional[Sequence[str]], n_features: int) -> Optional[List[str]]:
    if names is None:
        return None
    out = [str(n) for n in names]
    if len(out) != n_features:
        raise ValueError(f"feature_names has {len(out)} names for {n_features} features")
    return out


def _class_names(model: Any, n_outputs: int, model_output: str) -> Optional[List[str]]:
    """Class labels ``[k]`` of a classifier whose outputs are one per class, else None."""
    classes = getattr(model, "classes_", None)
    k = 2 if model_output == "predict_proba" and n_outputs == 1 else n_outputs
    if classes is None or k < 2 or len(classes) != k:
        return None
    return [str(c) for c in classes]
