"""scikit-learn scorer objects (``get_scorer``, ``make_scorer``) for permutation importance.

A scorer is called as scikit-learn calls it, ``scorer(estimator, X, y, sample_weight=w)``,
on a stand-in estimator whose ``predict`` / ``predict_proba`` / ``decision_function`` return
predictions the engine already computed from the (permuted) margins, so each scorer's own
response method, ``pos_label`` and sign apply unchanged.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np


class SklearnScorer:
    """A scikit-learn scorer applied to batches of margins."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def batch(self, output: Any, margins: np.ndarray, y: np.ndarray,
              w: Optional[np.ndarray]) -> np.ndarray:
        """Scores ``[b]`` of margins ``[b, n, n_outputs]``; ``output`` turns margins into
        the model's predictions (``permutation._ModelOutput``)."""
        kwargs = {} if w is None else {"sample_weight": w}
        rows = np.arange(margins.shape[1]).reshape(-1, 1)
        scores = np.empty(margins.shape[0])
        for b in range(margins.shape[0]):
            estimator = _stand_in(output, margins[b])
            scores[b] = float(self.scorer(estimator, rows, y, **kwargs))
        return scores


def is_sklearn_scorer(obj: Any) -> bool:
    """Whether ``obj`` is a scikit-learn scorer object rather than a metric function."""
    return callable(obj) and type(obj).__module__.startswith("sklearn.") \
        and hasattr(obj, "_score_func")


def named_scorer(name: str) -> SklearnScorer:
    """scikit-learn's scorer of that name (ValueError naming the name when it has none)."""
    try:
        from sklearn.metrics import get_scorer
    except ImportError:
        raise ValueError(f"unknown scoring {name!r}; scikit-learn's other scorer names need "
                         "scikit-learn installed") from None
    try:
        return SklearnScorer(get_scorer(name))
    except ValueError:
        raise ValueError(f"unknown scoring {name!r}: neither a treelens nor a scikit-learn "
                         "scorer name") from None


def _stand_in(output: Any, margin: np.ndarray) -> Any:
    """An estimator whose predictions are those of ``margin`` ``[n, n_outputs]``."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    predictions: Dict[str, Any] = {}
    if output.classifier:
        proba = output.proba(margin[None])[0]
        predictions["predict_proba"] = proba
        predictions["predict"] = output.classes[np.argmax(proba, axis=1)]
        predictions["decision_function"] = margin[:, 0] if margin.shape[1] == 1 else margin
        base = ClassifierMixin
    else:
        predictions["predict"] = output.regression(margin[None])[0]
        base = RegressorMixin

    def method(name: str) -> Any:
        def respond(self: Any, X: Any) -> np.ndarray:
            return predictions[name]
        respond.__name__ = name
        return respond

    cls = type("Predictions", (base, BaseEstimator),
               {name: method(name) for name in predictions})
    estimator = cls()
    if output.classifier:
        estimator.classes_ = output.classes
    return estimator
