"""Permutation importance with scikit-learn's semantics, computed by the tree engine.

``permutation_importance`` returns what ``sklearn.inspection.permutation_importance``
returns for the same model, data and ``random_state``: the permutations are drawn from the
same random streams, and only the trees whose paths test a permuted feature are evaluated
again. Scores are computed natively on the model's output as each scorer sees it
(probabilities or labels for classifiers, the model's output function applied to the
margin; see ``treelens._outputs``).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core, _inputs
from . import _metrics as metrics
from . import _scorers
from ._resources import check_fits, check_threads
from .model import Forest, load

#: Largest block of permuted margins held at once (bytes); groups are processed in chunks.
CHUNK_BYTES = 256 << 20
#: Largest block of predictions a metric works on at once (bytes); its temporaries are a
#: small multiple of it, so a chunk of margins is scored a few repeats at a time.
SCORE_BYTES = 16 << 20

REGRESSION_SCORERS = ("r2", "neg_mean_squared_error", "neg_root_mean_squared_error",
                      "neg_mean_absolute_error")
CLASSIFICATION_SCORERS = ("neg_log_loss", "accuracy", "balanced_accuracy", "roc_auc",
                          "roc_auc_ovr", "roc_auc_ovr_weighted")

Scorer = Union[str, Callable[..., float], _scorers.SklearnScorer]


class Bunch(dict):
    """A dict whose keys are also attributes, like ``sklearn.utils.Bunch``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def permutation_importance(
        model: Any, X: Any, y: Any, *,
        scoring: Union[None, Scorer, Sequence[str], Dict[str, Any]] = None,
        n_repeats: int = 5, random_state: Any = None, sample_weight: Any = None,
        max_samples: Union[int, float] = 1.0,
        groups: Optional[Sequence[Sequence[Union[int, str]]]] = None,
        n_threads: Optional[int] = None,
        return_permutations: bool = False,
        n_jobs: Optional[int] = None) -> Union[Bunch, Dict[str, Bunch]]:
    """Decrease of a score when a feature (or a group of features) is permuted across rows.

    ``model``: anything ``treelens.load`` accepts. ``X``: ``[n, m]`` in any supported input
    type; ``y``: ``[n]`` targets (``[n, k]`` for multi-output regression).
    ``scoring``: ``None`` (r2 for regressors, accuracy for classifiers), one of
    ``REGRESSION_SCORERS`` / ``CLASSIFICATION_SCORERS``, a callable
    ``score(y_true, y_pred, sample_weight) -> float`` on the regression output or the class
    probabilities, a scikit-learn scorer object (``get_scorer(name)``, ``make_scorer(...)``;
    other scikit-learn scorer names are looked up with ``get_scorer``), or a list of names /
    a dict ``{name: scoring}`` (a dict of results, keyed by name).
    ``n_jobs``: scikit-learn's spelling of ``n_threads`` (``-1``: all cores).
    ``groups``: lists of feature indices or names, each permuted jointly (one permutation of
    the group's rows); default one group per feature. ``max_samples``: rows drawn without
    replacement for the permuted scores, as scikit-learn does (needs scikit-learn when below
    all rows); the baseline is scored on all rows.

    Returns a Bunch with ``importances_mean`` / ``importances_std`` ``[g]`` and
    ``importances`` ``[g, n_repeats]`` (``g`` = features or groups), plus, with
    ``return_permutations``, ``permutations`` int64 ``[g, n_repeats, n_used]``: repeat ``r``
    of group ``j`` scores ``X[rows]`` with its columns replaced by
    ``X[permutations[j, r]][:, cols_j]``, where ``rows`` is ``sample_indices`` ``[n_used]``.
    """
    forest = load(model)
    threads = check_threads(_threads_of(n_threads, n_jobs))
    matrix = _inputs.to_matrix(X, forest.spec)
    n_rows = matrix.shape[0]
    if n_rows == 0:
        raise ValueError("X has no rows: permutation importance needs rows to score")
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, numbers.Integral) \
            or n_repeats < 1:
        raise ValueError(f"n_repeats must be a positive int, got {n_repeats!r}")
    columns = _resolve_groups(groups, forest, X)
    n_used = _check_max_samples(max_samples, n_rows)
    check_fits("permutations and margins", (int(n_repeats) + forest.n_outputs, n_used),
               hint="pass fewer rows or set max_samples")
    if return_permutations:
        check_fits("returned permutations", (len(columns), int(n_repeats), n_used),
                   hint="pass fewer rows or set max_samples")
    output = _ModelOutput(model, forest)
    y_arr = _check_targets(y, n_rows, output)
    weights = None if sample_weight is None else _check_weights(sample_weight, n_rows)
    scorers = _resolve_scoring(scoring, output)

    rows, perms = draw_permutations(random_state, n_rows, int(n_repeats), max_samples)
    all_y, all_weights = y_arr, weights
    margin = None
    if rows is not None:
        # The baseline is scored on all rows, the permutations on the sampled ones.
        margin = forest._core.predict(matrix, threads)
        matrix, y_arr = matrix[rows], y_arr[rows]
        if weights is not None:
            weights = weights[rows]
            if weights.sum() == 0.0:
                raise ValueError(f"the {len(rows)} rows drawn by max_samples={max_samples!r} "
                                 "have sample_weight summing to zero")
    offsets = np.zeros(len(columns) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in columns], out=offsets[1:])
    flat_columns = np.concatenate(columns).astype(np.int32)
    if _scores_from_residuals(scorers, output, y_arr, forest.n_outputs):
        # Regression scores need only residual sums: the engine never holds the margins.
        unpermuted = np.empty((n_rows, forest.n_outputs)) if margin is None else None
        sums = _core.permuted_residual_sums(
            forest._core, matrix, offsets, flat_columns, perms, y_arr, weights,
            exp_link=output.function.link == "log", n_threads=threads, baseline=unpermuted)
        margin = unpermuted if margin is None else margin
        scores = {name: metrics.from_residual_sums(name, sums.reshape(-1, *sums.shape[2:]),
                                                   y_arr, weights).reshape(len(columns), n_repeats)
                  for name in scorers}
    else:
        scores, margin = _scores_from_margins(forest, matrix, columns, perms, scorers, output,
                                              y_arr, weights, threads, margin, n_rows)
    baseline = {name: _score_batch(fn, output, margin[None], all_y, all_weights)[0]
                for name, fn in scorers.items()}
    results = {}
    for name in scorers:
        importances = baseline[name] - scores[name]
        result = Bunch(importances_mean=importances.mean(axis=1),
                       importances_std=importances.std(axis=1), importances=importances)
        if return_permutations:
            used = np.arange(n_rows) if rows is None else rows
            result.permutations = np.ascontiguousarray(
                np.broadcast_to(used[perms], (len(columns),) + perms.shape))
            result.sample_indices = used
        results[name] = result
    if isinstance(scoring, (list, tuple, dict)):
        return results
    return next(iter(results.values()))


def _scores_from_residuals(scorers: Dict[str, Scorer], output: "_ModelOutput", y: np.ndarray,
                           n_outputs: int) -> bool:
    """Whether every scorer is a regression metric of the residuals the engine can sum."""
    return (not output.classifier and output.function.link in ("identity", "log")
            and output.function.margin_scale == 1.0
            and all(isinstance(fn, str) and fn in REGRESSION_SCORERS for fn in scorers.values())
            and np.issubdtype(y.dtype, np.number) and y.size == y.shape[0] * n_outputs)


def _scores_from_margins(forest: Forest, matrix: Any, columns: List[np.ndarray],
                         perms: np.ndarray, scorers: Dict[str, Scorer], output: "_ModelOutput",
                         y_arr: np.ndarray, weights: Optional[np.ndarray], threads: int,
                         margin: Optional[np.ndarray], n_rows: int):
    """Scores ``{name: [g, n_repeats]}`` from the permuted margins, computed in chunks of
    groups, and the unpermuted margins ``[n_rows, n_outputs]``."""
    n_repeats = perms.shape[0]
    scores = {name: np.empty((len(columns), n_repeats)) for name in scorers}
    per_group = n_repeats * matrix.shape[0] * forest.n_outputs * 8
    chunk = max(1, CHUNK_BYTES // max(per_group, 1))
    for start in range(0, len(columns), chunk):
        part = columns[start:start + chunk]
        offsets = np.zeros(len(part) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in part], out=offsets[1:])
        unpermuted = None
        if margin is None:
            margin = unpermuted = np.empty((n_rows, forest.n_outputs))
        margins = _core.permuted_margins(forest._core, matrix, offsets,
                                         np.concatenate(part).astype(np.int32), perms, threads,
                                         baseline=unpermuted)
        margins = margins.reshape(-1, *margins.shape[2:])
        for name, fn in scorers.items():
            scores[name][start:start + len(part)] = _score_batch(
                fn, output, margins, y_arr, weights).reshape(len(part), n_repeats)
    return scores, margin


# ------------------------------------------------------------------------ permutations


def draw_permutations(random_state: Any, n_rows: int, n_repeats: int,
                      max_samples: Union[int, float]
                      ) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """The rows used (``None`` for all) and the permutations ``[n_repeats, n_used]`` int64
    that ``sklearn.inspection.permutation_importance`` applies to every column.

    scikit-learn draws one seed from ``random_state`` and gives every column a fresh
    ``RandomState(seed)``: it subsamples rows with it, then shuffles an index array in place
    once per repeat and re-permutes the already permuted column with it, so repeat ``r``
    uses the composition of the first ``r`` shuffles.
    """
    rng = _check_random_state(random_state)
    seed = rng.randint(np.iinfo(np.int32).max + 1)
    n_used = _check_max_samples(max_samples, n_rows)
    stream = np.random.RandomState(seed)
    rows = None
    if n_used < n_rows:
        try:
            from sklearn.utils.random import sample_without_replacement
        except ImportError as exc:
            raise ImportError("max_samples below the number of rows draws rows as "
                              "scikit-learn does and needs scikit-learn") from exc
        rows = np.asarray(sample_without_replacement(n_rows, n_used, random_state=stream),
                          dtype=np.int64)
    shuffling = np.arange(n_used)
    current = np.arange(n_used)
    perms = np.empty((n_repeats, n_used), dtype=np.int64)
    for r in range(n_repeats):
        stream.shuffle(shuffling)
        current = current[shuffling]
        perms[r] = current
    return rows, perms


def _check_random_state(random_state: Any) -> np.random.RandomState:
    if random_state is None or random_state is np.random:
        return np.random.mtrand._rand
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(random_state)
    if isinstance(random_state, np.random.RandomState):
        return random_state
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, "
                     f"got {random_state!r}")


def _check_max_samples(max_samples: Union[int, float], n_rows: int) -> int:
    if isinstance(max_samples, bool):
        raise ValueError(f"max_samples must be an int or a float, got {max_samples!r}")
    if isinstance(max_samples, numbers.Integral):
        if not 1 <= max_samples <= n_rows:
            raise ValueError(f"max_samples must be in [1, {n_rows}] (the number of rows), "
                             f"got {max_samples}")
        return int(max_samples)
    if isinstance(max_samples, numbers.Real) and 0.0 < max_samples <= 1.0:
        n_used = int(max_samples * n_rows)
        if n_used < 1:
            raise ValueError(f"max_samples={max_samples!r} of {n_rows} rows draws no row; "
                             f"use at least {1.0 / n_rows:.3g} or an int")
        return n_used
    raise ValueError(f"max_samples must be an int in [1, n_rows] or a float in (0, 1], "
                     f"got {max_samples!r}")


# ---------------------------------------------------------------------- inputs


def _check_rows(a: np.ndarray, n_rows: int, name: str) -> np.ndarray:
    if a.ndim == 0 or a.shape[0] != n_rows:
        raise ValueError(f"{name} has {a.shape[0] if a.ndim else 0} entries, X has "
                         f"{n_rows} rows")
    return a


def _check_targets(y: Any, n_rows: int, output: "_ModelOutput") -> np.ndarray:
    """Targets ``[n]``, or ``[n, k]`` for a ``k``-output regressor, checked as scikit-learn
    checks them: one column per model output and no NaN or infinity."""
    y_arr = _check_rows(np.asarray(y), n_rows, "y")
    k = 1 if output.classifier else output.n_outputs
    if y_arr.ndim > 2:
        raise ValueError(f"y must be 1-D or 2-D, got shape {y_arr.shape}")
    if k == 1:
        if y_arr.ndim == 2 and y_arr.shape[1] != 1:
            what = "a classifier" if output.classifier else "a single-output model"
            raise ValueError(f"y has shape {y_arr.shape} ({y_arr.shape[1]} columns) but "
                             f"{what} takes one target per row: shape ({n_rows},)")
        y_arr = y_arr.reshape(n_rows)
    elif y_arr.shape != (n_rows, k):
        raise ValueError(f"y has shape {y_arr.shape} but the model has {k} outputs: "
                         f"expected shape ({n_rows}, {k})")
    if y_arr.dtype.kind in "fc" and not np.all(np.isfinite(y_arr)):
        bad = int(np.count_nonzero(~np.isfinite(y_arr)))
        raise ValueError(f"y contains NaN or infinity ({bad} entries); "
                         "targets must be finite")
    return y_arr


def _check_weights(sample_weight: Any, n_rows: int) -> np.ndarray:
    """``sample_weight`` as float64 ``[n]``: finite, not all zero."""
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must be numeric: {exc}") from None
    weights = _check_rows(weights, n_rows, "sample_weight")
    if weights.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D, got shape {weights.shape}")
    if not np.all(np.isfinite(weights)):
        bad = int(np.count_nonzero(~np.isfinite(weights)))
        raise ValueError(f"sample_weight contains NaN or infinity ({bad} entries)")
    if weights.sum() == 0.0:
        raise ValueError("sample_weight sums to zero; the scores would be undefined")
    return weights


def _resolve_groups(groups: Optional[Sequence[Sequence[Union[int, str]]]], forest: Forest,
                    X: Any) -> List[np.ndarray]:
    """Column indices of each group."""
    m = forest.n_features
    if groups is None:
        return [np.array([j]) for j in range(m)]
    names = forest.feature_names
    if names is None and hasattr(X, "columns"):
        names = [str(c) for c in X.columns]
    where = {} if names is None else {n: i for i, n in enumerate(names)}
    out = []
    if isinstance(groups, (str, bytes)) or len(groups) == 0:
        raise ValueError("groups must be a non-empty list of lists of features")
    for g, group in enumerate(groups):
        if isinstance(group, (str, bytes, numbers.Integral)):
            raise ValueError(f"group {g} must be a list of features, got {group!r}")
        cols = []
        for feature in group:
            if isinstance(feature, str):
                if feature not in where:
                    raise ValueError(f"group {g}: unknown feature {feature!r}")
                cols.append(where[feature])
            elif isinstance(feature, numbers.Integral) and not isinstance(feature, bool):
                if not 0 <= feature < m:
                    raise ValueError(f"group {g}: feature index {feature} out of range "
                                     f"[0, {m})")
                cols.append(int(feature))
            else:
                raise ValueError(f"group {g}: features are names or indices, got {feature!r}")
        if not cols:
            raise ValueError(f"group {g} is empty")
        out.append(np.unique(cols))
    return out


# ------------------------------------------------------------------- model outputs


class _ModelOutput:
    """The model's predictions as scorers see them, from batches of raw margins."""

    def __init__(self, model: Any, forest: Forest) -> None:
        self.function = forest.output_function
        self.n_outputs = forest.n_outputs
        self.classifier = _is_classifier(model, forest)
        if self.classifier:
            n_classes = 2 if self.n_outputs == 1 else self.n_outputs
            classes = getattr(model, "classes_", None)
            self.classes = np.arange(n_classes) if classes is None else np.asarray(classes)
            if len(self.classes) != n_classes:
                raise ValueError(f"the model has {len(self.classes)} classes but "
                                 f"{n_classes} class outputs")

    def regression(self, margin: np.ndarray) -> np.ndarray:
        """``[b, n]`` (single output) or ``[b, n, k]`` predictions."""
        out = self.function.response(margin)
        return out[..., 0] if self.n_outputs == 1 else out

    def proba(self, margin: np.ndarray) -> np.ndarray:
        """``[b, n, n_classes]`` class scores, as ``predict_proba`` gives them."""
        return self.function.proba(margin)

    def positive_score(self, margin: np.ndarray) -> np.ndarray:
        """``[b, n]`` score of the positive class of a binary classifier, ranked as
        ``roc_auc`` ranks it: the margin where the probability is a monotone function of
        it (no ties from saturation), else the probability."""
        if self.n_outputs == 1 and self.function.link == "logistic":
            return margin[:, :, 0]
        proba = self.proba(margin)
        if proba.shape[2] != 2:
            raise ValueError("scoring 'roc_auc' is for binary classifiers; use "
                             "'roc_auc_ovr' for multiclass models")
        return proba[:, :, 1]

    def codes(self, y: np.ndarray) -> np.ndarray:
        """Class index of each label ``[n]``; ValueError for labels the model lacks."""
        order = np.argsort(self.classes)
        pos = np.searchsorted(self.classes, y, sorter=order)
        pos = np.minimum(pos, len(self.classes) - 1)
        codes = order[pos]
        unknown = self.classes[codes] != y
        if np.any(unknown):
            raise ValueError(f"y has labels the model does not predict: "
                             f"{np.unique(y[unknown])[:10].tolist()}; model classes: "
                             f"{self.classes.tolist()}")
        return codes


def _is_classifier(model: Any, forest: Forest) -> bool:
    """From the estimator when it is a scikit-learn-style one, else from the link."""
    if hasattr(model, "get_params"):
        try:
            from sklearn.base import is_classifier
        except ImportError:
            pass
        else:
            return bool(is_classifier(model))
    return forest.output_function.classifier


# ----------------------------------------------------------------------- scoring


def _threads_of(n_threads: Optional[int], n_jobs: Optional[int]) -> Optional[int]:
    """Threads from ``n_threads`` or scikit-learn's ``n_jobs`` (negative: cores + 1 + n_jobs)."""
    if n_jobs is None:
        return n_threads
    if n_threads is not None:
        raise ValueError("pass n_threads or n_jobs, not both")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero int or None, got {n_jobs!r}")
    return int(n_jobs) if n_jobs > 0 else max(1, check_threads(None) + 1 + int(n_jobs))


def _resolve_scoring(scoring: Union[None, Scorer, Sequence[str], Dict[str, Any]],
                     output: _ModelOutput) -> Dict[str, Scorer]:
    if scoring is None:
        name = "accuracy" if output.classifier else "r2"
        return {name: name}
    if isinstance(scoring, dict):
        if not scoring:
            raise ValueError("scoring must be non-empty, got an empty dict")
        return {str(name): _one_scorer(item, output) for name, item in scoring.items()}
    if isinstance(scoring, str):
        return {scoring: _one_scorer(scoring, output)}
    if callable(scoring):
        return {"score": _one_scorer(scoring, output)}
    names = list(scoring)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"scoring must be non-empty without duplicates, got {scoring!r}")
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"a list of scorings holds names, got {name!r}")
    return {name: _one_scorer(name, output) for name in names}


def _one_scorer(item: Any, output: _ModelOutput) -> Scorer:
    """A scorer name treelens computes natively, a scikit-learn scorer, or a callable."""
    if _scorers.is_sklearn_scorer(item):
        return _scorers.SklearnScorer(item)
    if callable(item):
        return item
    if not isinstance(item, str):
        raise ValueError(f"a scoring is a name, a scikit-learn scorer or a callable, got "
                         f"{item!r}")
    if item in CLASSIFICATION_SCORERS and not output.classifier:
        raise ValueError(f"scoring {item!r} needs a classifier; this model is a "
                         f"regressor (use one of {REGRESSION_SCORERS})")
    if item == "neg_log_loss" and not output.function.probabilities:
        raise ValueError(f"scoring 'neg_log_loss' needs class probabilities; the "
                         f"objective {output.function.name!r} does not predict them")
    if item in REGRESSION_SCORERS and output.classifier:
        raise ValueError(f"scoring {item!r} needs a regressor; this model is a "
                         f"classifier (use one of {CLASSIFICATION_SCORERS})")
    if item not in REGRESSION_SCORERS + CLASSIFICATION_SCORERS:
        return _scorers.named_scorer(item)
    return item


_REGRESSION_METRICS = {
    "r2": metrics.r2,
    "neg_mean_squared_error": metrics.neg_mse,
    "neg_root_mean_squared_error": metrics.neg_rmse,
    "neg_mean_absolute_error": metrics.neg_mae,
}


def _score_batch(scorer: Scorer, output: _ModelOutput, margins: np.ndarray, y: np.ndarray,
                 w: Optional[np.ndarray]) -> np.ndarray:
    """Scores ``[b]`` of a batch of margins ``[b, n, n_outputs]``, a few batch entries at a
    time (at most ``SCORE_BYTES`` of predictions), so that the metrics' temporaries stay
    bounded however many repeats and groups the batch holds."""
    if isinstance(scorer, _scorers.SklearnScorer):
        return scorer.batch(output, margins, y, w)
    b, n, k = margins.shape
    step = max(1, SCORE_BYTES // (8 * max(n, 1) * max(k, 2)))
    codes = output.codes(y) if isinstance(scorer, str) and scorer in CLASSIFICATION_SCORERS \
        else None
    return np.concatenate([_score_slice(scorer, output, margins[i:i + step], y, codes, w)
                           for i in range(0, b, step)])


def _score_slice(scorer: Scorer, output: _ModelOutput, margins: np.ndarray, y: np.ndarray,
                 codes: Optional[np.ndarray], w: Optional[np.ndarray]) -> np.ndarray:
    """Scores ``[b]`` of margins ``[b, n, n_outputs]``; ``codes``: class indices of ``y``
    ``[n]`` for the classification scorers."""
    if callable(scorer):
        pred = output.proba(margins) if output.classifier else output.regression(margins)
        return np.array([float(scorer(y, p, w)) for p in pred])
    if scorer in _REGRESSION_METRICS:
        return _REGRESSION_METRICS[scorer](y, output.regression(margins), w)
    if scorer == "roc_auc":
        return metrics.auc(codes == 1, output.positive_score(margins), w)
    proba = output.proba(margins)
    if scorer == "neg_log_loss":
        return metrics.neg_log_loss(codes, proba, w)
    if scorer in ("roc_auc_ovr", "roc_auc_ovr_weighted"):
        return metrics.roc_auc_ovr(codes, proba, w, scorer.endswith("weighted"))
    predicted = np.argmax(proba, axis=2)
    if scorer == "accuracy":
        return metrics.accuracy(codes, predicted, w)
    return metrics.balanced_accuracy(codes, predicted, w)
