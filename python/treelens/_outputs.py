"""The model's output function: how a raw margin becomes the library's prediction.

Every loader records one ``OutputFunction`` in the ``ForestSpec`` (as Treelite keeps a
``postprocessor`` with its ``sigmoid_alpha``), and every consumer reads it from there:
``Forest.predict(output="response")``, background SHAP of ``model_output="probability"`` /
``"log_loss"``, permutation scoring and the batch job's ``prediction`` columns. The formulas
live only here.

Links (the model predicts ``inverse_link(margin_scale * margin)``):

- ``identity``: the margin (regression, ranking, XGBoost ``binary:logitraw``, and scikit-learn
  forest classifiers whose leaves already hold class probabilities);
- ``logistic``: ``1 / (1 + exp(-sigmoid_alpha * f))`` per output (LightGBM ``sigmoid=``,
  ``multiclassova`` one sigmoid per class, unnormalised; scikit-learn's exponential loss has
  ``sigmoid_alpha = 2``);
- ``softmax``: softmax over the outputs;
- ``log``: ``exp(f)`` (Poisson, gamma, Tweedie, Cox, AFT);
- ``sqrt``: ``sign(f) * f**2`` (LightGBM ``reg_sqrt``);
- ``softplus``: ``log(1 + exp(f))`` (LightGBM ``cross_entropy_lambda``);
- ``hinge``: ``1`` where ``f > 0``, else ``0`` (XGBoost ``binary:hinge``).

``margin_scale`` is ``1 / iterations`` for LightGBM random forests, whose ``predict()``
averages the trees while the raw score sums them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

LINKS = ("identity", "logistic", "softmax", "log", "sqrt", "softplus", "hinge")

#: Links whose log loss has the form ``G(f) - c * y * f + h(y)`` the background kernel needs.
_LOG_LOSS_LINKS = ("identity", "logistic", "log")


@dataclass(frozen=True)
class OutputFunction:
    """The output transform of a model and its parameters.

    ``classifier``: the library's ``predict_proba`` gives one column per class (a single
    output is the positive class of a binary classifier); ``probabilities``: whether that
    response is a probability (False for XGBoost ``binary:logitraw`` / ``binary:hinge``).
    ``objective``: the source library's objective name, for messages.
    """

    link: str = "identity"
    sigmoid_alpha: float = 1.0
    margin_scale: float = 1.0
    classifier: bool = False
    probabilities: bool = True
    objective: str = ""

    def __post_init__(self) -> None:
        if self.link not in LINKS:
            raise ValueError(f"unknown output link {self.link!r}; expected one of {LINKS}")

    @property
    def name(self) -> str:
        """The objective for messages: the library's name, else the link."""
        return self.objective or self.link

    @property
    def is_identity(self) -> bool:
        """Whether the prediction is the margin itself."""
        return self.link == "identity" and self.margin_scale == 1.0

    # ------------------------------------------------------------------- transforms

    def response(self, margin: np.ndarray) -> np.ndarray:
        """The transformed outputs, same shape as ``margin`` ``[..., k]`` (softmax over the
        last axis): the library's per-output prediction (positive-class probability of a
        binary classifier)."""
        f = np.asarray(margin, dtype=np.float64)
        if self.margin_scale != 1.0:
            f = f * self.margin_scale
        if self.link == "identity":
            return f
        if self.link == "logistic":
            return _sigmoid(self.sigmoid_alpha * f)
        if self.link == "softmax":
            e = np.exp(f - f.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        if self.link == "log":
            return np.exp(f)
        if self.link == "sqrt":
            return np.sign(f) * np.square(f)
        if self.link == "softplus":
            return np.logaddexp(0.0, f)
        return (f > 0.0).astype(np.float64)

    def proba(self, margin: np.ndarray) -> np.ndarray:
        """Class scores ``[..., n_classes]`` from margins ``[..., k]``, as ``predict_proba``
        gives them (a single output ``p`` becomes ``[1 - p, p]``). Classifiers only."""
        out = self.response(margin)
        if out.shape[-1] == 1:
            return np.concatenate([1.0 - out, out], axis=-1)
        return out

    def predict(self, margin: np.ndarray) -> np.ndarray:
        """The library's prediction from margins ``[n, k]``: ``predict_proba``
        ``[n, n_classes]`` for classifiers, else ``predict`` ``[n]`` or ``[n, k]``."""
        if self.classifier:
            return self.proba(margin)
        out = self.response(margin)
        return out[:, 0] if out.shape[1] == 1 else out

    # --------------------------------------------------------- explained outputs

    def check_explainable(self, model_output: str, n_outputs: int) -> None:
        """ValueError when background SHAP of ``model_output`` is not defined for this
        output function (``raw`` always is)."""
        if model_output == "raw":
            return
        if self.link == "hinge" or (self.classifier and not self.probabilities):
            raise ValueError(
                f"model_output={model_output!r} is not defined for the objective "
                f"{self.name!r}: its prediction is not a probability (use model_output='raw')")
        if self.link == "softmax":
            raise ValueError(
                f"model_output={model_output!r} is not defined for the objective "
                f"{self.name!r}: a softmax probability depends on every output's margin, so "
                "rescaling one output's margin attributions cannot add up to it (use "
                "model_output='raw')")
        if model_output == "log_loss":
            if n_outputs != 1:
                raise ValueError("model_output='log_loss' supports single-output models only; "
                                 f"this model has {n_outputs} outputs")
            if self.link not in _LOG_LOSS_LINKS:
                raise ValueError(
                    f"model_output='log_loss' is not defined for the objective {self.name!r} "
                    f"(link {self.link!r}); it is for links {_LOG_LOSS_LINKS}")

    def loss_terms(self) -> Tuple[Callable[[np.ndarray], np.ndarray], float,
                                  Callable[[np.ndarray], np.ndarray]]:
        """``(G, c, h)`` with the loss of margin ``f`` and label ``y`` equal to
        ``G(f) - c * y * f + h(y)``: binary cross entropy for ``logistic``, the Poisson
        loss ``mu - y log(mu)`` for ``log``, squared error for ``identity``."""
        s = self.margin_scale
        if self.link == "logistic":
            a = self.sigmoid_alpha * s
            return (lambda f: np.logaddexp(0.0, a * f)), a, np.zeros_like
        if self.link == "log":
            return (lambda f: np.exp(s * f)), s, np.zeros_like
        if self.link == "identity":
            return (lambda f: np.square(s * f)), 2.0 * s, np.square
        raise ValueError(f"no log loss for the link {self.link!r}")

    def loss(self, margin: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The log loss ``[n, 1]`` of margins ``[n, 1]`` for labels ``y`` ``[n]``."""
        g, c, h = self.loss_terms()
        return g(margin) - c * y[:, None] * margin + h(y)[:, None]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` without overflow, accurate in both tails."""
    return np.exp(-np.logaddexp(0.0, -z))


#: The output function of a model that predicts its margin.
IDENTITY = OutputFunction()
