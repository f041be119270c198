"""Benchmark workloads: a fixed synthetic data set and the models trained on it.

Every workload trains one single-output regression model on the same synthetic data and is
explained on the first ``rows`` training rows, as float32 (the width both XGBoost and
LightGBM use for their own inputs, so every method sees identical values). The data has 50
features, except for W8, whose data comes from the same generator with 100 features.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

import numpy as np

N_TRAIN = 20_000
N_FEATURES = 50
SEED = 0


@dataclass
class Workload:
    """A trained model and the rows to explain.

    ``X``: float32 [n_rows, n_features], C-contiguous.
    ``library``: "xgboost", "lightgbm" or "catboost", the library that owns ``model`` (a native
    Booster, or a ``CatBoostRegressor``).
    ``cached``: the model was loaded from an earlier run's file rather than trained.
    """

    name: str
    title: str
    library: str
    model: Any
    X: np.ndarray
    cached: bool = False


def make_data(n_rows: int = N_TRAIN, n_features: int = N_FEATURES,
              seed: int = SEED) -> Tuple[np.ndarray, np.ndarray]:
    """Synthetic regression data with interactions: X float32 [n, m], y float64 [n].

    The first k rows do not depend on ``n_rows``.
    """
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n_features)
    X = rng.standard_normal((n_rows, n_features)).astype(np.float32)
    noise = np.random.default_rng(seed + 1).standard_normal(n_rows)
    y = X @ w + 2.0 * X[:, 0] * X[:, 1] + np.sin(3.0 * X[:, 2]) + 0.5 * noise
    return X, y


def train_xgboost(X: np.ndarray, y: np.ndarray, threads: int) -> Any:
    """W1 model: xgboost.train, 100 rounds, max_depth 6, squared error."""
    import xgboost

    params = {"max_depth": 6, "eta": 0.1, "objective": "reg:squarederror",
              "nthread": threads, "seed": SEED}
    return xgboost.train(params, xgboost.DMatrix(X, label=y, nthread=threads),
                         num_boost_round=100)


def train_lightgbm(X: np.ndarray, y: np.ndarray, threads: int) -> Any:
    """W2 model: lightgbm.train, 500 trees, num_leaves 31, squared error."""
    import lightgbm

    params = {"objective": "regression", "num_leaves": 31, "learning_rate": 0.05,
              "num_threads": threads, "seed": SEED, "deterministic": True, "verbose": -1}
    return lightgbm.train(params, lightgbm.Dataset(X, label=y), num_boost_round=500)


def train_xgboost_deep(X: np.ndarray, y: np.ndarray, threads: int) -> Any:
    """W9 model: xgboost.train, 1000 rounds, max_depth 8, squared error."""
    import xgboost

    params = {"max_depth": 8, "eta": 0.05, "objective": "reg:squarederror",
              "nthread": threads, "seed": SEED}
    return xgboost.train(params, xgboost.DMatrix(X, label=y, nthread=threads),
                         num_boost_round=1000)


def train_lightgbm_w8(X: np.ndarray, y: np.ndarray, threads: int) -> Any:
    """W8 model: lightgbm.train, 500 trees, num_leaves 255, squared error, on 100 features."""
    import lightgbm

    params = {"objective": "regression", "num_leaves": 255, "learning_rate": 0.05,
              "min_data_in_leaf": 5, "num_threads": threads, "seed": SEED,
              "deterministic": True, "verbose": -1}
    return lightgbm.train(params, lightgbm.Dataset(X, label=y), num_boost_round=500)


def train_lightgbm_wide(X: np.ndarray, y: np.ndarray, threads: int) -> Any:
    """L1000 model: lightgbm.train, 1000 trees, num_leaves 255, squared error."""
    import lightgbm

    params = {"objective": "regression", "num_leaves": 255, "learning_rate": 0.05,
              "min_data_in_leaf": 5, "num_threads": threads, "seed": SEED,
              "deterministic": True, "verbose": -1}
    return lightgbm.train(params, lightgbm.Dataset(X, label=y), num_boost_round=1000)


def train_catboost(X: np.ndarray, y: np.ndarray, threads: int) -> Any:
    """W10 model: CatBoostRegressor, 500 symmetric trees, depth 6, RMSE."""
    import catboost

    model = catboost.CatBoostRegressor(iterations=500, depth=6, learning_rate=0.1,
                                       thread_count=threads, random_seed=SEED, verbose=0,
                                       allow_writing_files=False)
    return model.fit(X, y)


Trainer = Callable[[np.ndarray, np.ndarray, int], Any]

# name -> (description, library, trainer)
WORKLOADS: Dict[str, Tuple[str, str, Trainer]] = {
    "W1": ("XGBoost regressor, 100 rounds, max_depth 6", "xgboost", train_xgboost),
    "W2": ("LightGBM regressor, 500 trees, num_leaves 31", "lightgbm", train_lightgbm),
    "W8": ("LightGBM regressor, 500 trees, num_leaves 255", "lightgbm", train_lightgbm_w8),
    "W9": ("XGBoost regressor, 1000 rounds, max_depth 8", "xgboost", train_xgboost_deep),
    "W10": ("CatBoost regressor, 500 symmetric trees, depth 6", "catboost", train_catboost),
    "L1000": ("LightGBM regressor, 1000 trees, num_leaves 255", "lightgbm",
              train_lightgbm_wide),
}

# Features of a workload's data when not N_FEATURES.
WORKLOAD_FEATURES: Dict[str, int] = {"W8": 100}

_EXTENSIONS = {"xgboost": ".json", "lightgbm": ".txt", "catboost": ".cbm"}

CACHE_DIR = os.path.join(tempfile.gettempdir(), "treelens-bench")


def _cache_path(library: str, train: Trainer, n_features: int) -> str:
    """Model file named by the library version, the trainer's code and the data constants."""
    version = importlib.import_module(library).__version__
    key = f"{version}|{inspect.getsource(train)}|{N_TRAIN}|{n_features}|{SEED}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(CACHE_DIR, f"{train.__name__}-{digest}{_EXTENSIONS[library]}")


def _load_model(library: str, path: str) -> Any:
    if library == "xgboost":
        import xgboost

        return xgboost.Booster(model_file=path)
    if library == "catboost":
        import catboost

        return catboost.CatBoostRegressor().load_model(path)
    import lightgbm

    return lightgbm.Booster(model_file=path)


def build_workload(name: str, rows: int, threads: int) -> Workload:
    """Train workload ``name`` on the shared data and explain its first ``rows`` rows.

    The model always sees the first ``N_TRAIN`` rows; a larger ``rows`` extends the data set
    with fresh rows from the same distribution. Trained models are kept in ``CACHE_DIR``
    and reloaded by later runs.
    """
    title, library, train = WORKLOADS[name]
    n_features = WORKLOAD_FEATURES.get(name, N_FEATURES)
    X, y = make_data(max(rows, N_TRAIN), n_features)
    path = _cache_path(library, train, n_features)
    cached = os.path.exists(path)
    if cached:
        model = _load_model(library, path)
    else:
        model = train(X[:N_TRAIN], y[:N_TRAIN], threads)
        os.makedirs(CACHE_DIR, exist_ok=True)
        stem, extension = os.path.splitext(path)
        partial = f"{stem}.{os.getpid()}{extension}"
        model.save_model(partial)
        os.replace(partial, path)
    X_explain = np.ascontiguousarray(X[:rows])
    return Workload(name=name, title=f"{title}, {n_features} features",
                    library=library, model=model, X=X_explain, cached=cached)
