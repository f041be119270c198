"""Shape normalisation, tolerances and comparisons shared by the tests."""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

import treelens
from treelens._forest import build
from treelens._spec import ForestSpec

ORACLE_TOL = 1e-9        # brute force vs treelens, relative to the largest magnitude
NATIVE_TOL = 1e-5        # treelens vs the libraries' own SHAP (xgboost works in float32)
ADDITIVITY_TOL = 1e-9    # sum(phi) + expected_value vs margin, relative
FLOAT32_MARGIN_TOL = 4 * float(np.finfo(np.float32).eps)


def as3d(phi) -> np.ndarray:
    """[n, m] or [n, m, k] -> [n, m, k] float64."""
    phi = np.asarray(phi, dtype=np.float64)
    return phi[:, :, None] if phi.ndim == 2 else phi


def as2d(margin, n_rows: int) -> np.ndarray:
    """[n] or [n, k] -> [n, k] float64."""
    return np.asarray(margin, dtype=np.float64).reshape(n_rows, -1)


def as1d(expected_value) -> np.ndarray:
    """float or [k] -> [k] float64."""
    return np.atleast_1d(np.asarray(expected_value, dtype=np.float64))


def scale_of(*arrays) -> float:
    """Largest finite magnitude over the arrays, or 1 when all are zero."""
    s = max(float(np.max(np.abs(np.asarray(a, dtype=np.float64)), initial=0.0)) for a in arrays)
    return s if s > 0 else 1.0


def assert_close(actual, expected, atol: float, what: str) -> None:
    """Max-abs comparison with a message naming the worst element."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert not np.isnan(actual).any(), f"{what}: NaN in result"
    diff = np.abs(actual - expected)
    if diff.size and diff.max() > atol:
        idx = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise AssertionError(
            f"{what}: max |diff| {diff.max():.3e} > {atol:.3e} at {idx} "
            f"(got {actual[idx]!r}, want {expected[idx]!r}; "
            f"{int((diff > atol).sum())}/{diff.size} elements off)"
        )


def assert_bitwise(actual, expected, what: str) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    assert same.all(), f"{what}: {int((~same).sum())}/{same.size} elements differ bitwise"


def load_spec(model, library: str, **kwargs) -> ForestSpec:
    """The loader's ForestSpec for a live model of the given library."""
    if library == "xgboost":
        from treelens.loaders.xgboost import load_xgboost
        return load_xgboost(model, **kwargs)
    if library == "lightgbm":
        from treelens.loaders.lightgbm import load_lightgbm
        return load_lightgbm(model, **kwargs)
    if library == "sklearn":
        from treelens.loaders.sklearn import load_sklearn
        return load_sklearn(model, **kwargs)
    raise ValueError(library)


def float64_margin(spec: ForestSpec, X: np.ndarray) -> np.ndarray:
    """The model's margin summed in float64 by the core. Returns [n_rows, n_outputs]."""
    return build(dataclasses.replace(spec, float32_margin=False)).predict(X, 1)


def explain(model, X, n_threads: Optional[int] = None):
    """(phi [n, m, k], expected_value [k], margin [n, k]) through the public API."""
    ex = treelens.TreeExplainer(model, n_threads=n_threads)
    phi = ex.shap_values(X)
    n = np.shape(phi)[0]
    return as3d(phi), as1d(ex.expected_value), as2d(ex.predict(X), n)


def cli_command():
    """The installed ``treelens`` command (or ``python -m treelens``) as an argv prefix."""
    import os
    import shutil
    import sys

    script = shutil.which("treelens", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "treelens"]


def run_cli(*args, cwd=None, timeout=240):
    """Run ``treelens ARGS`` and return the CompletedProcess (text output captured)."""
    import subprocess

    return subprocess.run(cli_command() + [str(a) for a in args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)
