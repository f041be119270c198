"""A model and a job's options packed once for the workers of a cluster, and the plan each
worker process builds from them once and keeps.

``pack`` serialises the loaded ``Forest`` (its loader spec) with the background rows into
bytes, named by their SHA-256. Engines ship those bytes to each worker once (a Dask
scatter, a Spark broadcast); ``plan_for`` turns them into a ``BatchPlan`` on first use in a
worker process and caches it by digest and options, so later tasks reuse the loaded model.
"""
from __future__ import annotations

import hashlib
import pickle
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ._batch import BatchPlan
from .model import load

_CACHE_SIZE = 4
_plans: Dict[Tuple[str, Tuple[Any, ...]], BatchPlan] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Packed:
    """Serialised model and background: ``digest`` names ``payload``."""

    digest: str
    payload: bytes


@dataclass(frozen=True)
class Options:
    """The BatchPlan arguments other than the model and background (hashable)."""

    keep: Tuple[str, ...] = ()
    top_k: int = 0
    output: str = "shap"
    model_output: str = "raw"
    features: Optional[Tuple[Any, ...]] = None
    prediction: bool = False
    dtype: str = "float64"

    def plan(self, forest: Any, data: Any, data_weights: Any, n_threads: int) -> BatchPlan:
        return BatchPlan(forest, keep=list(self.keep), top_k=self.top_k, output=self.output,
                         model_output=self.model_output, data=data,
                         data_weights=data_weights,
                         features=None if self.features is None else list(self.features),
                         prediction=self.prediction, dtype=self.dtype, n_threads=n_threads)


def options(keep: Any = None, top_k: int = 0, output: str = "shap",
            model_output: str = "raw", features: Any = None, prediction: bool = False,
            dtype: str = "float64") -> Options:
    keep_names = () if keep is None else ((keep,) if isinstance(keep, str) else tuple(keep))
    picked = None if features is None else (
        (features,) if isinstance(features, (str, int)) else tuple(features))
    return Options(keep_names, int(top_k), output, model_output, picked, bool(prediction),
                   str(dtype))


def pack(model: Any, data: Any = None, data_weights: Any = None) -> Tuple[Any, Packed]:
    """(the loaded Forest, its packed form with the background rows)."""
    forest = load(model)
    payload = pickle.dumps((forest, data, data_weights), protocol=pickle.HIGHEST_PROTOCOL)
    return forest, Packed(hashlib.sha256(payload).hexdigest(), payload)


def plan_for(packed: Packed, opts: Options, n_threads: int) -> BatchPlan:
    """The worker process's BatchPlan for this model and options (built once, cached)."""
    key = (packed.digest, (opts,))
    with _lock:
        plan = _plans.get(key)
        if plan is None:
            forest, data, weights = pickle.loads(packed.payload)
            plan = opts.plan(forest, data, weights, n_threads)
            _warm_up(plan)
            if len(_plans) >= _CACHE_SIZE:
                _plans.pop(next(iter(_plans)))
            _plans[key] = plan
    plan.explainer.n_threads = n_threads
    return plan


def _warm_up(plan: BatchPlan) -> None:
    """Explain one row, so the views the kernels build on first use exist before tasks
    of this process share the plan from several threads."""
    row = np.zeros((1, plan.forest.n_features))
    plan.explain(row, np.zeros(1) if plan.needs_labels else None)


def cached_plans() -> int:
    """Plans cached in this process (for tests and diagnostics): count."""
    return len(_plans)
