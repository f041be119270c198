"""The user-facing ``Forest``: a loaded tree ensemble with predictions and SHAP values.

``load`` accepts XGBoost, LightGBM and scikit-learn models, or a path to a saved model
file, and returns a ``Forest`` wrapping the validated C++ forest together with the
loader's ``ForestSpec`` (feature names, categories, split gains).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _inputs
from ._outputs import OutputFunction
from ._resources import check_fits, check_threads
from ._spec import ForestSpec

#: Rows converted and computed per block when the input needs conversion.
BLOCK_ROWS = 65536

_IMPORTANCE_KINDS = ("split", "gain", "cover")
_PREDICT_OUTPUTS = ("margin", "response")

#: Weight of a node no data row reaches when covers are re-weighted by data (shap's value).
EMPTY_NODE_WEIGHT = 1e-6


class Forest:
    """A tree ensemble ready for exact predictions and path-dependent TreeSHAP.

    Shapes: ``n`` rows, ``m = n_features``, ``k = n_outputs``. Single-output models
    (``k == 1``) drop the output axis everywhere.
    """

    def __init__(self, core: Any, spec: ForestSpec) -> None:
        self._core = core
        self._spec = spec

    @classmethod
    def from_spec(cls, spec: ForestSpec) -> "Forest":
        """Build from a loader's ``ForestSpec`` (validated by the core builder)."""
        from . import _forest

        return cls(_forest.build(spec), spec)

    def __reduce__(self) -> Tuple[Callable[..., "Forest"], Tuple[ForestSpec]]:
        return (Forest.from_spec, (self._spec,))

    def __repr__(self) -> str:
        source = f"{self._spec.source} " if self._spec.source else ""
        return (f"<treelens.Forest: {source}{self.n_trees} trees, {self.n_features} features, "
                f"{self.n_outputs} output(s), max depth {self.max_depth}>")

    # ------------------------------------------------------------------ metadata

    @property
    def spec(self) -> ForestSpec:
        """The loader's description of the model (arrays and metadata)."""
        return self._spec

    @property
    def n_trees(self) -> int:
        return int(self._core.n_trees)

    @property
    def n_nodes(self) -> int:
        return int(self._core.n_nodes)

    @property
    def n_features(self) -> int:
        return int(self._core.n_features)

    @property
    def n_outputs(self) -> int:
        return int(self._core.n_outputs)

    @property
    def max_depth(self) -> int:
        return int(self._core.max_depth)

    @property
    def feature_names(self) -> Optional[List[str]]:
        """Feature names stored in the model, or None."""
        names = self._spec.feature_names
        return None if names is None else list(names)

    @property
    def objective(self) -> str:
        """Link of the model's objective (``identity``, ``logistic``, ``softmax``, ``log``,
        ``sqrt``, ``softplus``, ``hinge``); its parameters are in ``output_function``."""
        return self._spec.output.link

    @property
    def output_function(self) -> OutputFunction:
        """The transform from the margin to the library's prediction, with its parameters."""
        return self._spec.output

    @property
    def expected_value(self) -> Union[float, np.ndarray]:
        """Mean margin under the trees' cover: float, or float64 ``[k]`` for multi-output."""
        ev = np.asarray(self._core.expected_value(), dtype=np.float64)
        return float(ev[0]) if ev.shape[0] == 1 else ev

    # --------------------------------------------------------------- computation

    def predict(self, X: Any, n_threads: Optional[int] = None,
                output: str = "margin") -> np.ndarray:
        """Predictions, float64.

        ``output="margin"``: the raw margin ``[n]``, or ``[n, k]`` for multi-output models.
        ``output="response"``: what the source library's ``predict_proba`` gives for
        classifiers (``[n, n_classes]``, binary included), else its ``predict`` (``[n]`` or
        ``[n, k]``), computed from the margin by the model's ``output_function``.
        """
        if output not in _PREDICT_OUTPUTS:
            raise ValueError(f"output must be one of {_PREDICT_OUTPUTS}, got {output!r}")
        threads = check_threads(n_threads)
        out = self._blocks(X, lambda block: self._core.predict(block, threads),
                           (self.n_outputs,), "predictions")
        if output == "response":
            return self._spec.output.predict(out)
        return out[:, 0] if self.n_outputs == 1 else out

    def shap_values(self, X: Any, n_threads: Optional[int] = None) -> np.ndarray:
        """Path-dependent TreeSHAP values of the raw margin.

        Returns float64 ``phi: [n, m]``, or ``[n, m, k]`` for multi-output models, with
        ``phi.sum(axis=1) + expected_value == predict(X)`` up to rounding.
        """
        threads = check_threads(n_threads)
        out = self._blocks(X, lambda block: self._core.shap_values(block, threads),
                           (self.n_features, self.n_outputs), "SHAP values",
                           int(self._core.shap_scratch_bytes(threads)))
        return out[:, :, 0] if self.n_outputs == 1 else out

    def shap_interaction_values(self, X: Any, n_threads: Optional[int] = None,
                                features: Any = None) -> np.ndarray:
        """Path-dependent SHAP interaction values of the raw margin.

        Returns float64 ``phi: [n, s, s]``, or ``[n, s, s, k]`` for multi-output models,
        where ``s = m`` or ``len(features)``. ``phi[r, i, j]`` (i != j) is half the Shapley
        interaction index of features i and j; the diagonal is ``phi_i - sum_{j != i}
        phi_ij`` over all m features, so with every feature selected each row sums to the
        SHAP value and the matrix is symmetric.

        ``features``: feature indices or names (in the model's feature names); only
        those rows and columns are computed and allocated, in the order given.
        MemoryError, stating the size, when the result would not fit in memory.
        """
        from . import _core

        threads = check_threads(n_threads)
        selected = self._feature_positions(features)
        source = _inputs.row_source(X, self._spec)
        n, s, k = source.n_rows, len(selected), self.n_outputs
        check_fits("interaction values", (n, s, s, k),
                   int(_core.path_interaction_scratch_bytes(self._core, s, threads)),
                   "explain fewer rows per call or pass features= to select a subset")
        out = np.empty((n, s, s, k), dtype=np.float64)
        step = BLOCK_ROWS if source.copies else max(n, 1)
        for start in range(0, n, step):
            stop = min(start + step, n)
            _core.path_interaction_values(self._core, source.take(start, stop), out[start:stop],
                                          selected, threads)
        return out[..., 0] if k == 1 else out

    def reweighted(self, X: Any, n_threads: Optional[int] = None) -> "Forest":
        """This model with each node's cover replaced by the number of rows of ``X``
        ``[n, m]`` that reach it, as ``shap.TreeExplainer`` re-weights the trees for
        ``data=`` with ``feature_perturbation="tree_path_dependent"``. Nodes no row reaches
        get weight ``EMPTY_NODE_WEIGHT``, as in shap, so every path keeps a defined value."""
        from . import _forest

        threads = check_threads(n_threads)
        rows = _inputs.to_matrix(X, self._spec)
        if rows.shape[0] == 0:
            raise ValueError("cannot re-weight the trees by data without rows")
        counts = self._core.node_counts(rows, threads)
        return Forest.from_spec(_forest.with_covers(self._spec, counts, EMPTY_NODE_WEIGHT))

    def first_trees(self, n_trees: int) -> "Forest":
        """This model reduced to its first ``n_trees`` trees."""
        from . import _forest

        return Forest.from_spec(_forest.first_trees(self._spec, n_trees))

    def _feature_positions(self, features: Any) -> np.ndarray:
        """Feature indices int64 ``[s]`` from indices or names; None selects all."""
        if features is None:
            return np.arange(self.n_features, dtype=np.int64)
        items = [features] if isinstance(features, (str, int, np.integer)) else list(features)
        if not items:
            raise ValueError("features must select at least one feature")
        names = self.feature_names
        positions = []
        for item in items:
            if isinstance(item, str):
                if names is None or item not in names:
                    known = "the model has no feature names" if names is None else (
                        f"known names: {names[:10]}{' ...' if len(names) > 10 else ''}")
                    raise ValueError(f"unknown feature {item!r} ({known})")
                positions.append(names.index(item))
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                if not 0 <= item < self.n_features:
                    raise IndexError(f"feature index {item} is out of range for "
                                     f"{self.n_features} features")
                positions.append(int(item))
            else:
                raise TypeError(f"features must hold feature indices or names, got {item!r}")
        if len(set(positions)) != len(positions):
            raise ValueError(f"features selects a feature twice: {items}")
        return np.array(positions, dtype=np.int64)

    def feature_importances(self, kind: str = "split") -> np.ndarray:
        """Per-feature importance over the splits of all trees, float64 ``[m]``.

        ``"split"``: number of splits on the feature; ``"gain"``: total split gain
        (ValueError when the model stores no gains); ``"cover"``: total cover of the
        nodes split on the feature.
        """
        if kind not in _IMPORTANCE_KINDS:
            raise ValueError(f"kind must be one of {_IMPORTANCE_KINDS}, got {kind!r}")
        total = np.zeros(self.n_features, dtype=np.float64)
        for i, tree in enumerate(self._spec.trees):
            weights = None if kind == "split" else getattr(tree, kind)
            if kind == "gain" and weights is None:
                raise ValueError(f"this model stores no split gains (tree {i} has none); "
                                 "use kind='split' or kind='cover'")
            splits = np.asarray(tree.left) >= 0  # the builder rejects unreachable nodes
            total += np.bincount(
                np.asarray(tree.feature)[splits], minlength=self.n_features,
                weights=None if weights is None else np.asarray(weights, np.float64)[splits])
        return total

    def _blocks(self, X: Any, compute: Callable[[np.ndarray], np.ndarray],
                tail: Tuple[int, ...], what: str, scratch: int = 0) -> np.ndarray:
        """Run ``compute`` over the rows of ``X``: in one call when the input needs no
        conversion, else in blocks of ``BLOCK_ROWS`` rows written into one output
        ``[n, *tail]``; MemoryError naming ``what`` and its size when that and ``scratch``
        working bytes cannot fit."""
        source = _inputs.row_source(X, self._spec)
        n = source.n_rows
        check_fits(what, (n,) + tail, scratch, hint="pass fewer rows per call")
        if n == 0:
            return np.zeros((0,) + tail, dtype=np.float64)
        if not source.copies or n <= BLOCK_ROWS:
            return np.asarray(compute(source.take(0, n))).reshape((n,) + tail)
        out = np.empty((n,) + tail, dtype=np.float64)
        for start in range(0, n, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n)
            out[start:stop] = np.asarray(compute(source.take(start, stop))).reshape(
                (stop - start,) + tail)
        return out


# ------------------------------------------------------------------------- loading


def load(model: Any, iteration_range: Optional[Sequence[int]] = None,
         num_iteration: Optional[int] = None, missing: Optional[float] = None) -> Forest:
    """Load a model into a ``Forest``.

    ``model``: an XGBoost ``Booster`` / ``XGBModel``, a LightGBM ``Booster`` /
    ``LGBMModel``, a gpboost ``Booster``, a CatBoost model, a scikit-learn tree ensemble
    (``IsolationForest`` and pyod's ``IForest`` included), a ``ForestSpec``, a
    ``Forest`` (returned as is), or a path to a saved model: XGBoost JSON / UBJSON,
    LightGBM text model or ``dump_model()`` JSON, CatBoost ``.cbm`` or JSON. The format of
    a file is read from its contents, not its name.

    ``iteration_range=(begin, end)`` keeps XGBoost boosting rounds ``[begin, end)``;
    ``num_iteration`` keeps the first LightGBM iterations.

    ``missing`` (XGBoost): the input value treated as missing, as ``xgboost.DMatrix(missing=)``
    takes it. A scikit-learn XGBoost estimator's own ``missing`` is used by default; saved
    files and Boosters do not record it, so pass it when the model was trained with one.

    A live model object is serialised (XGBoost UBJSON, LightGBM text) and its Forest kept
    while the object lives: loading the same object again returns that Forest, with the
    plans already built for it, as long as the model serialises to the same bytes
    (scikit-learn: its trees hold the same arrays); a model retrained or edited in place
    gets a new Forest. The XGBoost missing value is part of what is kept; CatBoost models
    are read again on every load.
    """
    if isinstance(model, Forest):
        _check_no_limits(iteration_range, num_iteration, missing, "a treelens Forest")
        return model
    if isinstance(model, ForestSpec):
        _check_no_limits(iteration_range, num_iteration, missing, "a ForestSpec")
        return Forest.from_spec(model)
    if isinstance(model, (str, os.PathLike)):
        source, model = _sniff_file(Path(model))
    else:
        source = _library_of(model)
    if iteration_range is not None and source != "xgboost":
        raise ValueError("iteration_range applies to XGBoost models; "
                         "use num_iteration for LightGBM")
    if num_iteration is not None and source != "lightgbm":
        raise ValueError("num_iteration applies to LightGBM models; "
                         "use iteration_range for XGBoost")
    if missing is not None and source != "xgboost":
        raise ValueError("missing applies to XGBoost models; LightGBM and scikit-learn "
                         "treat NaN as missing")
    if isinstance(model, (dict, Path)):
        spec = _file_spec(source, model, iteration_range, num_iteration)
        if source == "xgboost":
            spec = _with_missing(spec, _xgboost_missing(model, missing))
        return Forest.from_spec(spec)
    return _live_forest(model, source, iteration_range, num_iteration, missing)


def _file_spec(source: str, model: Any, iteration_range: Optional[Sequence[int]],
               num_iteration: Optional[int]) -> ForestSpec:
    """The spec of a model file (its path, or its parsed JSON document)."""
    if source == "xgboost":
        from .loaders.xgboost import load_xgboost, parse_xgboost_json_model

        return (parse_xgboost_json_model(model, iteration_range) if isinstance(model, dict)
                else load_xgboost(model, iteration_range=iteration_range))
    if source == "catboost":
        from .loaders.catboost import load_catboost

        return load_catboost(model)
    from .loaders.lightgbm import load_lightgbm

    return load_lightgbm(model, num_iteration=num_iteration)


def _live_forest(model: Any, source: str, iteration_range: Optional[Sequence[int]],
                 num_iteration: Optional[int], missing: Optional[float]) -> Forest:
    """The Forest of a live model object, reused while its serialised form is unchanged."""
    from . import _cache

    if source == "xgboost":
        from .loaders.xgboost import load_xgboost, snapshot

        value = _xgboost_missing(model, missing)
        limits = None if iteration_range is None else repr(iteration_range)
        return _cache.forest_of(model, ("xgboost", limits, repr(value)), snapshot(model),
                                lambda raw: Forest.from_spec(_with_missing(
                                    load_xgboost(raw, iteration_range=iteration_range), value)))
    if source == "lightgbm":
        from .loaders.lightgbm import load_lightgbm, snapshot, spec_from_snapshot

        snap = snapshot(model)
        if snap is None:
            return Forest.from_spec(load_lightgbm(model, num_iteration=num_iteration))
        return _cache.forest_of(model, ("lightgbm", num_iteration), snap, lambda text: (
            Forest.from_spec(spec_from_snapshot(text, num_iteration))))
    if source == "catboost":
        from .loaders.catboost import load_catboost

        return Forest.from_spec(load_catboost(model))
    from .loaders.sklearn import load_sklearn

    return _cache.forest_of(model, ("sklearn",), load_sklearn(model), Forest.from_spec)


def _with_missing(spec: ForestSpec, value: float) -> ForestSpec:
    """The spec with XGBoost's missing value ``value`` (NaN: the default)."""
    return spec if np.isnan(value) else dataclasses.replace(spec, missing_value=value)


def _check_no_limits(iteration_range: Any, num_iteration: Any, missing: Any,
                     what: str) -> None:
    if iteration_range is not None or num_iteration is not None or missing is not None:
        raise ValueError(f"iteration_range / num_iteration / missing cannot be applied to "
                         f"{what}; pass the original model instead")


def _xgboost_missing(model: Any, missing: Optional[float]) -> float:
    """The value XGBoost treats as missing: ``missing`` or the estimator's own, else NaN."""
    own = getattr(model, "missing", None) if hasattr(model, "get_booster") else None
    own = np.nan if own is None else float(own)
    if missing is None:
        return own
    try:
        value = float(missing)
    except (TypeError, ValueError):
        raise TypeError(f"missing must be a number, got {missing!r}") from None
    if not np.isnan(own) and own != value:
        raise ValueError(f"missing={value!r} conflicts with the estimator's own "
                         f"missing={own!r}")
    return value


def _library_of(model: Any) -> str:
    """``xgboost``, ``lightgbm``, ``catboost`` or ``sklearn``, from the model class (or its
    bases)."""
    for cls in type(model).__mro__:
        package = cls.__module__.split(".")[0]
        if package in ("xgboost", "lightgbm", "catboost", "sklearn"):
            return package
        if package == "pyod":
            return "sklearn"
        if package == "gpboost":  # LightGBM's model format
            return "lightgbm"
    raise TypeError(
        f"unsupported model type {type(model).__module__}.{type(model).__qualname__}; "
        "expected an XGBoost, LightGBM, CatBoost or scikit-learn tree model, or a path to a "
        "saved model file")


def _sniff_file(path: Path) -> Tuple[str, Any]:
    """(library, what its loader takes) for a saved model file, judged by its contents.

    JSON is parsed here, once: a ``learner`` object means XGBoost, ``tree_info`` a
    LightGBM ``dump_model()``, ``booster_str`` a gpboost model with a GPModel,
    ``oblivious_trees`` CatBoost. A ``{`` followed by a binary key
    is XGBoost UBJSON; text starting with ``tree`` is a LightGBM text model; ``CBM1`` a
    CatBoost binary model.
    """
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"tree"):
        return "lightgbm", path
    if head.startswith(b"CBM1"):
        return "catboost", path
    if head.startswith(b"{") and head[1:].lstrip()[:1] not in (b'"', b"}"):
        return "xgboost", path
    if head.startswith(b"{"):
        from .loaders import _json

        try:
            with open(path, "rb") as fh:
                document = _json.loads(fh.read(), "trees")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"{path}: not a valid JSON model file ({exc})") from None
        if isinstance(document, dict) and "learner" in document:
            return "xgboost", document
        if isinstance(document, dict) and ("tree_info" in document
                                           or "booster_str" in document):
            return "lightgbm", document
        if isinstance(document, dict) and ("oblivious_trees" in document
                                           or "features_info" in document):
            return "catboost", document
    raise ValueError(f"{path}: not a recognised model file (expected XGBoost JSON/UBJSON, "
                     "a LightGBM text model or dump_model JSON, or a CatBoost .cbm / JSON "
                     "model)")
