"""The SHAP implementations compared by the benchmark, behind one interface.

Each method's ``prepare(workload, threads)`` does the untimed set-up (building explainers,
setting thread counts) and returns a ``Prepared`` whose ``run(X)`` is the timed call.
Every ``run`` returns path-dependent TreeSHAP values as float64 [n_rows, n_features]:
bias columns and single-output axes are stripped by ``as_phi``.
A method whose library is missing raises ImportError from ``prepare``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, List, Tuple

import numpy as np

from workloads import Workload


@dataclass
class Prepared:
    """A ready-to-time SHAP call.

    ``run``: float32 [n, m] -> SHAP values of any shape ``as_phi`` understands.
    ``threads``: the thread count the method runs with, as shown in the table.
    ``note``: how the method is called, when that needs saying.
    """

    run: Callable[[np.ndarray], Any]
    threads: str
    note: str = ""


@dataclass
class Method:
    """A named SHAP implementation; ``libraries`` restricts it to those model libraries."""

    name: str
    prepare: Callable[[Workload, int], Prepared]
    libraries: Tuple[str, ...] = ("xgboost", "lightgbm")


def as_phi(values: Any, n_rows: int, n_features: int) -> np.ndarray:
    """Normalise SHAP output to float64 [n_rows, n_features].

    Accepts [n, m], [n, m + 1] (trailing bias column), [n, m, 1], [n, m + 1, 1], a
    one-element list of those, and DataFrames.
    """
    if isinstance(values, list) and len(values) == 1:
        values = values[0]
    phi = np.asarray(values, dtype=np.float64)
    if phi.ndim == 3 and phi.shape[2] == 1:
        phi = phi[:, :, 0]
    if phi.ndim == 2 and phi.shape == (n_rows, n_features + 1):
        phi = phi[:, :n_features]
    if phi.shape != (n_rows, n_features):
        raise ValueError(f"SHAP output has shape {phi.shape}, expected ({n_rows}, {n_features})")
    return phi


def _treelens(workload: Workload, threads: int) -> Prepared:
    import treelens

    if hasattr(treelens, "TreeExplainer"):
        explainer = treelens.TreeExplainer(workload.model, n_threads=threads)
        return Prepared(explainer.shap_values, str(threads))
    from treelens import _forest

    if workload.library == "xgboost":
        from treelens.loaders.xgboost import load_xgboost as load
    else:
        from treelens.loaders.lightgbm import load_lightgbm as load
    forest = _forest.build(load(workload.model))
    return Prepared(lambda X: forest.shap_values(X, threads), str(threads),
                    "core Forest (no TreeExplainer)")


def _xgboost_native(workload: Workload, threads: int) -> Prepared:
    import xgboost

    booster = workload.model
    booster.set_param({"nthread": threads})

    def run(X: np.ndarray) -> np.ndarray:
        return booster.predict(xgboost.DMatrix(X, nthread=threads), pred_contribs=True)

    return Prepared(run, str(threads), "DMatrix built in the timed call")


def _lightgbm_native(workload: Workload, threads: int) -> Prepared:
    booster = workload.model
    return Prepared(lambda X: booster.predict(X, pred_contrib=True, num_threads=threads),
                    str(threads))


def _catboost_native(workload: Workload, threads: int) -> Prepared:
    import catboost

    model = workload.model

    def run(X: np.ndarray) -> np.ndarray:
        return model.get_feature_importance(catboost.Pool(X), type="ShapValues",
                                            thread_count=threads)

    return Prepared(run, str(threads), "Pool built in the timed call")


def _shap(workload: Workload, threads: int) -> Prepared:
    import shap

    explainer = shap.TreeExplainer(workload.model)
    return Prepared(lambda X: explainer.shap_values(X, check_additivity=False), "1",
                    "C extension, single-threaded")


def _fasttreeshap(workload: Workload, threads: int) -> Prepared:
    module = None
    for name in ("fasttreeshap", "fasttreeshap_fixed"):
        try:
            module = importlib.import_module(name)
            break
        except ImportError:
            continue
    if module is None:
        raise ImportError("neither fasttreeshap nor fasttreeshap_fixed is installed")
    explainer = module.TreeExplainer(workload.model, algorithm="v2", n_jobs=threads)
    return Prepared(lambda X: explainer.shap_values(X, check_additivity=False), str(threads),
                    f"{module.__name__}, algorithm v2")


def _woodelf(workload: Workload, threads: int) -> Prepared:
    import pandas as pd
    from woodelf import WoodelfExplainer

    explainer = WoodelfExplainer(workload.model)
    columns = [f"f{j}" for j in range(workload.X.shape[1])]

    def run(X: np.ndarray) -> np.ndarray:
        return explainer.shap_values(pd.DataFrame(X, columns=columns, copy=False), verbose=False)

    return Prepared(run, "1", "no thread option; BLAS capped by the thread variables")


TREELENS = Method("treelens", _treelens)
PEERS: List[Method] = [
    Method("xgboost pred_contribs", _xgboost_native, ("xgboost",)),
    Method("lightgbm pred_contrib", _lightgbm_native, ("lightgbm",)),
    Method("catboost ShapValues", _catboost_native, ("catboost",)),
    Method("shap TreeExplainer", _shap, ("xgboost", "lightgbm", "catboost")),
    Method("FastTreeSHAP v2", _fasttreeshap),
    Method("WOODELF", _woodelf),
]
