"""Vectorised scikit-learn metrics over batches of predictions.

Every metric takes ``y`` ``[n]`` (or ``[n, k]`` for multi-output regression), a batch of
predictions ``[b, n]`` / ``[b, n, k]`` and optional weights ``[n]``, and returns ``[b]``
scores equal to the scikit-learn function applied to each batch entry (up to rounding),
with scikit-learn's sign convention (greater is better).
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def _weighted_mean(values: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    """Mean over the row axis -2 of ``values`` ``[b, n, k]``: ``[b, k]``."""
    if w is None:
        return values.mean(axis=-2)
    return np.einsum("bnk,n->bk", values, w) / w.sum()


def _as_outputs(y: np.ndarray, pred: np.ndarray):
    """y as ``[n, k]`` and pred as ``[b, n, k]``."""
    y2 = y.reshape(y.shape[0], -1).astype(np.float64)
    return y2, pred.reshape(pred.shape[0], pred.shape[1], -1)


def r2(y: np.ndarray, pred: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    """``r2_score`` (uniform average over outputs, force_finite)."""
    y2, p3 = _as_outputs(y, pred)
    residual = np.subtract(p3, y2)
    if w is None:
        numerator = np.einsum("bnk,bnk->bk", residual, residual)
    else:
        np.square(residual, out=residual)
        numerator = np.einsum("bnk,n->bk", residual, w)
    return _r2_from_squared_residuals(numerator, y2, w)


def _r2_from_squared_residuals(numerator: np.ndarray, y2: np.ndarray,
                               w: Optional[np.ndarray]) -> np.ndarray:
    """r2 ``[b]`` from the weighted sums of squared residuals ``[b, k]`` and ``y`` ``[n, k]``."""
    ww = np.ones(y2.shape[0]) if w is None else w
    mean = np.average(y2, axis=0, weights=ww)
    denominator = np.einsum("nk,n->k", (y2 - mean) ** 2, ww)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - numerator / denominator
    flat = denominator == 0.0
    score[:, flat] = np.where(numerator[:, flat] == 0.0, 1.0, 0.0)
    return score.mean(axis=1)


def from_residual_sums(name: str, sums: np.ndarray, y: np.ndarray,
                       w: Optional[np.ndarray]) -> np.ndarray:
    """A regression score from weighted residual sums ``[b, k, 2]`` (sum of w e^2, sum of
    w |e| over the rows, per output): the value the metric ``name`` gives on the predictions
    behind the sums."""
    total = float(y.shape[0]) if w is None else float(w.sum())
    squared, absolute = sums[..., 0], sums[..., 1]
    if name == "neg_mean_squared_error":
        return -(squared / total).mean(axis=1)
    if name == "neg_root_mean_squared_error":
        return -np.sqrt(squared / total).mean(axis=1)
    if name == "neg_mean_absolute_error":
        return -(absolute / total).mean(axis=1)
    if name != "r2":
        raise ValueError(f"no residual-sum form of the metric {name!r}")
    return _r2_from_squared_residuals(squared, y.reshape(y.shape[0], -1).astype(np.float64), w)


def neg_mse(y: np.ndarray, pred: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    y2, p3 = _as_outputs(y, pred)
    return -_weighted_mean((y2 - p3) ** 2, w).mean(axis=1)


def neg_rmse(y: np.ndarray, pred: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    y2, p3 = _as_outputs(y, pred)
    return -np.sqrt(_weighted_mean((y2 - p3) ** 2, w)).mean(axis=1)


def neg_mae(y: np.ndarray, pred: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    y2, p3 = _as_outputs(y, pred)
    return -_weighted_mean(np.abs(y2 - p3), w).mean(axis=1)


def neg_log_loss(codes: np.ndarray, proba: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    """``-log_loss``: codes ``[n]`` class indices, proba ``[b, n, n_classes]``."""
    eps = np.finfo(np.float64).eps
    p = np.take_along_axis(proba, codes[None, :, None], axis=2)[:, :, 0]
    loss = -np.log(np.clip(p, eps, 1.0 - eps))
    return -(loss.mean(axis=1) if w is None else loss @ w / w.sum())


def accuracy(codes: np.ndarray, predicted: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    """``accuracy_score`` on class indices: predicted ``[b, n]``."""
    hit = (predicted == codes).astype(np.float64)
    return hit.mean(axis=1) if w is None else hit @ w / w.sum()


def balanced_accuracy(codes: np.ndarray, predicted: np.ndarray,
                      w: Optional[np.ndarray]) -> np.ndarray:
    """``balanced_accuracy_score``: mean recall over the classes present in ``codes``."""
    ww = np.ones(codes.shape[0]) if w is None else w
    recalls = []
    for c in np.unique(codes):
        mask = codes == c
        total = ww[mask].sum()
        if total == 0.0:
            continue
        recalls.append(((predicted[:, mask] == c) * ww[mask]).sum(axis=1) / total)
    return np.mean(recalls, axis=0)


def auc(positive: np.ndarray, score: np.ndarray, w: Optional[np.ndarray]) -> np.ndarray:
    """Weighted ROC AUC of ``score`` ``[b, n]`` for the boolean labels ``positive`` ``[n]``;
    tied scores count one half (the trapezoid rule of ``roc_auc_score``)."""
    ww = np.ones(positive.shape[0]) if w is None else w
    w_pos = np.where(positive, ww, 0.0)
    w_neg = np.where(positive, 0.0, ww)
    total_pos, total_neg = w_pos.sum(), w_neg.sum()
    if total_pos == 0.0 or total_neg == 0.0:
        raise ValueError("Only one class present in y_true. ROC AUC score is not defined "
                         "in that case.")
    order = np.argsort(score, axis=1, kind="stable")
    s = np.take_along_axis(score, order, axis=1)
    pos, neg = w_pos[order], w_neg[order]
    cum_neg = np.cumsum(neg, axis=1)
    n = s.shape[1]
    index = np.broadcast_to(np.arange(n), s.shape)
    change = s[:, 1:] != s[:, :-1]
    ones = np.ones((s.shape[0], 1), dtype=bool)
    start = np.maximum.accumulate(np.where(np.hstack([ones, change]), index, 0), axis=1)
    end = np.minimum.accumulate(np.where(np.hstack([change, ones]), index, n)[:, ::-1],
                                axis=1)[:, ::-1]
    rows = np.arange(s.shape[0])[:, None]
    before = cum_neg[rows, start] - neg[rows, start]
    through = cum_neg[rows, end]
    return (pos * (before + through)).sum(axis=1) / (2.0 * total_pos * total_neg)


def roc_auc_ovr(codes: np.ndarray, proba: np.ndarray, w: Optional[np.ndarray],
                weighted: bool) -> np.ndarray:
    """One-vs-rest ROC AUC over the classes, macro or prevalence-weighted average."""
    n_classes = proba.shape[2]
    ww = np.ones(codes.shape[0]) if w is None else w
    scores = np.stack([auc(codes == c, proba[:, :, c], w) for c in range(n_classes)], axis=1)
    if not weighted:
        return scores.mean(axis=1)
    prevalence = np.array([ww[codes == c].sum() for c in range(n_classes)])
    return scores @ prevalence / prevalence.sum()
