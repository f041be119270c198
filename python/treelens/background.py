"""Background (interventional) SHAP: the model-output transforms and the calls into the core.

The game explained is ``v(S) = sum_z w_z g(f(x_S, z_notS)) / sum_z w_z`` over the weighted
background rows ``z``. For the raw margin (``g`` = identity) the values are exact Shapley
values computed in O(n + m) (n explained rows, m background rows). For the nonlinear outputs
``model_output="probability"`` and ``"log_loss"`` the values follow ``shap.TreeExplainer``:
for every pair ``(x, z)`` the exact Shapley values of the single-reference margin game are
rescaled per output by ``(g(f(x)) - g(f(z))) / (f(x) - f(z))`` (1 when the margins are equal)
and averaged over the background, which costs O(n * m).

The transforms are the model's output function (``Forest.output_function``, see
``treelens._outputs``): ``probability`` explains the library's prediction (``predict_proba``
of a classifier, per output); ``log_loss`` (single-output models, labels ``y`` required)
explains binary cross entropy for logistic links, the Poisson loss ``mu - y log(mu)`` for
log links and squared error for the identity.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

from . import _core, _inputs
from ._outputs import OutputFunction
from ._resources import check_fits


class Background:
    """Background rows ``Z`` (float32/float64 ``[m, n_features]``) and weights ``[m]``."""

    def __init__(self, forest: Any, data: Any, weights: Any = None) -> None:
        if data is None:
            raise ValueError("background data is required for interventional SHAP")
        try:
            self.rows = _inputs.to_matrix(data, forest.spec)
        except ValueError as exc:
            raise ValueError(f"background data: {exc}") from None
        m = self.rows.shape[0]
        if m == 0:
            raise ValueError("background data has no rows")
        if weights is None:
            self.weights = np.ones(m, dtype=np.float64)
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (m,):
                raise ValueError(f"data_weights must have shape ({m},), one weight per "
                                 f"background row; got shape {w.shape}")
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError("data_weights must be finite and >= 0")
            if not w.sum() > 0:
                raise ValueError("data_weights sum to zero")
            self.weights = w


def check_output(model_output: str, output: OutputFunction, n_outputs: int) -> None:
    """Raise ValueError when ``model_output`` is not defined for the model's output function."""
    output.check_explainable(model_output, n_outputs)


def transform(model_output: str, output: OutputFunction
              ) -> Tuple[Callable[[np.ndarray], np.ndarray], float,
                         Callable[[np.ndarray], np.ndarray]]:
    """``(g, c, h)``: the explained output is ``g(f) - c * y * f + h(y)`` of margins
    ``f`` ``[n, k]`` and labels ``y`` ``[n]`` (``c = 0`` and ``h = 0`` for ``probability``)."""
    if model_output == "log_loss":
        return output.loss_terms()
    return output.response, 0.0, np.zeros_like


def check_labels(y: Any, n_rows: int) -> np.ndarray:
    """Labels as float64 ``[n_rows]``."""
    if y is None:
        raise ValueError("model_output='log_loss' needs the labels: shap_values(X, y=y)")
    labels = np.asarray(y, dtype=np.float64).reshape(-1)
    if labels.shape != (n_rows,):
        raise ValueError(f"y must have {n_rows} labels (one per row), got {labels.size}")
    if not np.all(np.isfinite(labels)):
        raise ValueError("y must be finite")
    return labels


def shap_values(forest: Any, X: np.ndarray, bg: Background, model_output: str,
                y: Optional[np.ndarray], n_threads: int) -> Tuple[np.ndarray, np.ndarray]:
    """Background SHAP values ``phi: [n, n_features, k]`` and expected values.

    The expected value is ``[k]`` for ``raw`` / ``probability`` and ``[n, 1]`` for
    ``log_loss`` (it depends on each row's label). ``phi.sum(1) + expected`` equals the
    explained output of each row.
    """
    check_fits("background SHAP values", (X.shape[0], forest.n_features, forest.n_outputs),
               hint="explain fewer rows per call")
    core = forest._core
    if model_output == "raw":
        phi, expected = core_call(_core.background_shap_values, core, X, bg, n_threads)
        return phi, expected
    g, c, h = transform(model_output, forest.output_function)
    fx = _margins(core, X, n_threads)
    fz = _margins(core, bg.rows, n_threads)
    tx, tz = g(fx), g(fz)
    shift = None
    w = bg.weights / bg.weights.sum()
    if model_output == "log_loss":
        shift = (c * y)[:, None]
        expected = (w @ tz)[None, :] - c * y[:, None] * (w @ fz)[None, :] + h(y)[:, None]
    else:
        expected = w @ tz
    phi = _core.background_rescaled_shap_values(core, X, bg.rows, bg.weights, fx, tx, shift,
                                               fz, tz, n_threads)
    return phi, expected


def interaction_values(forest: Any, X: np.ndarray, bg: Background,
                       n_threads: int) -> Tuple[np.ndarray, np.ndarray]:
    """Background SHAP interaction values of the raw margin ``[n, m, m, k]`` and ``[k]``."""
    core = forest._core
    return core_call(_core.background_interaction_values, core, X, bg, n_threads)


def core_call(fn: Callable[..., Any], core: Any, X: np.ndarray, bg: Background,
              n_threads: int) -> Tuple[np.ndarray, np.ndarray]:
    out, expected = fn(core, X, bg.rows, bg.weights, n_threads)
    return np.asarray(out), np.asarray(expected)


def _margins(core: Any, X: np.ndarray, n_threads: int) -> np.ndarray:
    return np.asarray(core.predict(X, n_threads, True))


def expected_value(forest: Any, bg: Background, model_output: str,
                   n_threads: int) -> Union[np.ndarray, Callable[[Any], np.ndarray]]:
    """Weighted mean explained output over the background: ``[k]``, or for ``log_loss`` a
    function of the labels ``y [n]`` returning ``[n]`` (as ``shap`` does)."""
    fz = _margins(forest._core, bg.rows, n_threads)
    w = bg.weights / bg.weights.sum()
    if model_output == "raw":
        return w @ fz
    g, c, h = transform(model_output, forest.output_function)
    if model_output != "log_loss":
        return w @ g(fz)
    mean_g, mean_f = float(w @ g(fz)[:, 0]), float(w @ fz[:, 0])

    def for_labels(y: Any) -> np.ndarray:
        labels = np.asarray(y, dtype=np.float64)
        return mean_g - c * labels * mean_f + h(labels)

    return for_labels


def explained_output(forest: Any, X: np.ndarray, model_output: str, y: Optional[np.ndarray],
                     n_threads: int) -> np.ndarray:
    """The output the values explain, per row: ``[n, k]`` (margins summed in float64)."""
    f = _margins(forest._core, X, n_threads)
    if model_output == "raw":
        return f
    if model_output != "log_loss":
        return forest.output_function.response(f)
    return forest.output_function.loss(f, y)
