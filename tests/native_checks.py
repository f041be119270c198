"""Comparisons of treelens with a library's own SHAP values and margins."""
from __future__ import annotations

import numpy as np

import zoo
from helpers import NATIVE_TOL, assert_close, explain, load_spec, scale_of
from spec_factory import probe_rows


def check_shap(case: zoo.Case, X: np.ndarray) -> None:
    """shap_values and expected_value vs the library: |diff| <= 1e-5 * scale."""
    phi, ev, _ = explain(case.model, X)
    phi_n, bias_n = case.native_shap(X)
    scale = scale_of(phi_n, bias_n)
    assert_close(phi, phi_n, NATIVE_TOL * scale, f"{case.name}: shap_values vs native")
    assert_close(np.broadcast_to(ev, bias_n.shape), bias_n, NATIVE_TOL * scale,
                 f"{case.name}: expected_value vs native bias")


def check_margin(case: zoo.Case, X: np.ndarray, atol_rel: float) -> None:
    """predict vs the library's raw margin: |diff| <= atol_rel * max(1, |margin|)."""
    _, _, margin = explain(case.model, X)
    native = case.native_margin(X)
    tol = atol_rel * np.maximum(1.0, np.abs(native))
    diff = np.abs(margin - native)
    assert margin.shape == native.shape, f"{case.name}: {margin.shape} != {native.shape}"
    bad = diff > tol
    assert not bad.any(), (
        f"{case.name}: predict vs native margin off in {int(bad.sum())}/{bad.size} "
        f"elements, max |diff| {diff.max():.3e}"
    )


def check_margin_bitwise(case: zoo.Case, X: np.ndarray, dtype) -> None:
    """predict cast to the library's output dtype equals its margin exactly."""
    _, _, margin = explain(case.model, X)
    native = case.native_margin(X).astype(dtype)
    got = margin.astype(dtype)
    off = got != native
    assert not off.any(), (
        f"{case.name}: {int(off.sum())}/{off.size} margins differ from the library "
        f"(max |diff| {np.abs(got.astype(np.float64) - native).max():.3e})"
    )


def threshold_probes(case: zoo.Case, n_rows: int = 200, allow_nan: bool = True) -> np.ndarray:
    """Rows at, and one ulp around, every numeric threshold of the model; +-inf only
    for LightGBM (XGBoost and scikit-learn refuse infinite input).

    Returns [n_rows, n_features] float64.
    """
    spec = load_spec(case.model, case.library)
    X = probe_rows(spec, seed=7, n_rows=n_rows, allow_inf=case.library == "lightgbm")
    if not allow_nan:
        X = np.nan_to_num(X, nan=0.0)
    return X


def check_on_probes(case: zoo.Case, margin_dtype=None, allow_nan: bool = True) -> None:
    """At the routing edges SHAP agrees with the library, and so do margins:
    bitwise in margin_dtype when given, else to 1e-12 relative."""
    X = threshold_probes(case, allow_nan=allow_nan)
    if margin_dtype is None:
        check_margin(case, X, 1e-12)
    else:
        check_margin_bitwise(case, X, margin_dtype)
    if case.native_shap is not None:
        check_shap(case, X)
