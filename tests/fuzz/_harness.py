"""Shared plumbing of the atheris harnesses: seed models, one fuzz target per format.

Each harness writes the fuzzed bytes to a file and loads it with ``treelens.load``. A
ValueError or NotImplementedError with a message is the expected refusal; any other
exception, an empty message, a crash, or an accepted model whose margin or SHAP values
are non-finite or not additive is a finding (atheris stops and saves the input).

Run one harness for a bounded time, e.g.
``python tests/fuzz/fuzz_xgboost_json.py -max_total_time=60 -rss_limit_mb=3072``; the
seed corpus (small real models) is written to ``<tmp>/treelens_fuzz_corpus/<format>/``
on the first run unless a corpus folder is given.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict

import numpy as np

CORPUS = Path(tempfile.gettempdir()) / "treelens_fuzz_corpus"
_PROBE = np.array([[0.5, 1.0, -0.3, 2.0], [np.nan, 3.0, 0.0, -1.0], [-2.0, 0.0, 1e-40, 5.0],
                   [1e30, -1.0, np.inf, np.nan]])


def seed_models() -> Dict[str, Dict[str, bytes]]:
    """format -> {file name: bytes} of small real models with a categorical feature."""
    import lightgbm as lgb
    import pandas as pd
    import xgboost as xgb

    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 4))
    X[:, 1] = rng.integers(0, 5, size=300)
    y = X[:, 0] + np.where(X[:, 1] % 2 == 0, 1.0, -1.0)
    X[rng.random(X.shape) < 0.05] = np.nan
    seeds: Dict[str, Dict[str, bytes]] = {"xgboost_json": {}, "ubjson": {},
                                          "lightgbm_text": {}, "lightgbm_dump": {}}
    dm = xgb.DMatrix(X, y, feature_types=["q", "c", "q", "q"], enable_categorical=True)
    for name, params in {"reg": dict(max_depth=3), "multi": dict(
            objective="multi:softprob", num_class=3, max_depth=2)}.items():
        if name == "multi":
            dm.set_label(rng.integers(0, 3, size=300))
        booster = xgb.train(dict(params, nthread=1, max_cat_to_onehot=1), dm, 3)
        seeds["xgboost_json"][f"{name}.json"] = bytes(booster.save_raw("json"))
        seeds["ubjson"][f"{name}.ubj"] = bytes(booster.save_raw("ubj"))
    frame = pd.DataFrame(X)
    frame[1] = pd.Categorical(np.nan_to_num(X[:, 1]).astype(int))
    for name, params in {"reg": dict(objective="regression"), "multi": dict(
            objective="multiclass", num_class=3)}.items():
        target = y if name == "reg" else rng.integers(0, 3, size=300)
        booster = lgb.train(dict(params, num_leaves=5, min_data_in_leaf=5, verbose=-1,
                                 num_threads=1, min_data_per_group=5, max_cat_to_onehot=2),
                            lgb.Dataset(frame, target), 3)
        seeds["lightgbm_text"][f"{name}.txt"] = booster.model_to_string().encode()
        seeds["lightgbm_dump"][f"{name}.json"] = json.dumps(booster.dump_model()).encode()
    return seeds


def corpus_dir(fmt: str) -> str:
    folder = CORPUS / fmt
    if not folder.is_dir() or not any(folder.iterdir()):
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seed_models()[fmt].items():
            (folder / name).write_bytes(data)
    return str(folder)


def make_target() -> Callable[[bytes], None]:
    import treelens

    fd, path = tempfile.mkstemp(prefix="treelens_fuzz_")
    os.close(fd)

    def target(data: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            forest = treelens.load(path)
        except (ValueError, NotImplementedError) as exc:
            if not str(exc).strip():
                raise AssertionError(f"{type(exc).__name__} without a message") from exc
            return
        X = _PROBE[:, :forest.n_features] if forest.n_features <= 4 else np.zeros(
            (2, forest.n_features))
        if X.shape[1] < forest.n_features:
            return
        margin = forest.predict(X, n_threads=1).reshape(len(X), -1)
        phi = forest.shap_values(X, n_threads=1).reshape(len(X), X.shape[1], -1)
        expected = np.reshape(forest.expected_value, (1, -1))
        assert np.isfinite(margin).all() and np.isfinite(phi).all(), "non-finite result"
        gap = np.abs(phi.sum(axis=1) + expected - margin)
        assert np.all(gap <= 1e-6 * (1 + np.abs(phi).sum(axis=1) + np.abs(margin))), \
            "SHAP values do not add up to the margin"

    return target


def main(fmt: str) -> None:
    import atheris

    import treelens.loaders.lightgbm  # noqa: F401
    import treelens.loaders.xgboost  # noqa: F401
    import treelens.model  # noqa: F401

    # instrument_imports() misses modules behind the editable install's import hook.
    atheris.instrument_all()
    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(corpus_dir(fmt))
    atheris.Setup(args, make_target())
    atheris.Fuzz()
