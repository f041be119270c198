"""Hostile feature matrices, as a table: every entry point gives the right numbers or a
clear exception, never a crash or silent garbage.

Each case is an input built from a clean evaluation matrix and the expected outcome:
``Same(reference)``, the results equal those of a clean float64 matrix; ``Native``, the
margin equals the oracle's routing (``tests/oracle.py``) and the library's own prediction
where the library accepts the input, and the SHAP values are finite and add up;
or ``Raises(types, pattern)``. The entry points are ``predict``, ``shap_values``,
``shap_interaction_values``, background (interventional) SHAP and
``permutation_importance``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Type

import numpy as np
import pytest

import oracle
import treelens

ENTRY_POINTS = ("predict", "shap_values", "interactions", "background", "permutation")
N_ROWS = 12


@dataclass
class Same:
    reference: Callable[[np.ndarray], np.ndarray]  # clean X -> the equivalent float64 X


@dataclass
class Native:
    """The margin equals the library's own; SHAP values finite and additive."""


@dataclass
class Raises:
    types: Tuple[Type[BaseException], ...]
    pattern: str


def _unaligned(X: np.ndarray) -> np.ndarray:
    buf = np.zeros(X.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(buf.data, dtype=X.dtype, count=X.size, offset=1).reshape(X.shape)
    out[...] = X
    assert not out.flags.aligned
    return out


def _read_only(X: np.ndarray) -> np.ndarray:
    out = X.copy()
    out.flags.writeable = False
    return out


def _with_values(values) -> Callable[[np.ndarray], np.ndarray]:
    def make(X: np.ndarray) -> np.ndarray:
        out = X.copy()
        flat = out.reshape(-1)
        flat[: len(values) * 3: 3] = values
        return out
    return make


EXTREMES = [np.inf, -np.inf, np.nan, 1e308, -1e308, 5e-324, -1e-310, 3.5e38, -3.5e38,
            -0.0, 1e-45, 2.0 ** 24 + 1]

_NOT_2D = Raises((ValueError,), r"2-D|shape")
_NOT_NUMERIC = Raises((TypeError, ValueError), r"numeric|dtype|convert")
_WIDTH = Raises((ValueError,), r"columns|features")

# name -> (make bad X from clean X, outcome)
NUMPY_CASES: Dict[str, Tuple[Callable[[np.ndarray], Any], Any]] = {
    "one_column_more": (lambda X: np.hstack([X, X[:, :1]]), _WIDTH),
    "one_column_less": (lambda X: X[:, 1:], _WIDTH),
    "no_columns": (lambda X: X[:, :0], _WIDTH),
    "three_d": (lambda X: X[None], _NOT_2D),
    "scalar": (lambda X: np.float64(1.0), _NOT_2D),
    "str_dtype": (lambda X: X.astype(str), _NOT_NUMERIC),
    "object_strings": (lambda X: X.astype(str).astype(object), _NOT_NUMERIC),
    "complex": (lambda X: X.astype(np.complex128), _NOT_NUMERIC),
    "object_numbers": (lambda X: X.astype(object), Same(lambda X: X)),
    "list_of_lists": (lambda X: X.tolist(), Same(lambda X: X)),
    "float16": (lambda X: X.astype(np.float16),
                Same(lambda X: X.astype(np.float16).astype(np.float64))),
    "float32": (lambda X: X.astype(np.float32), Same(lambda X: X.astype(np.float32))),
    "bool": (lambda X: X > 0, Same(lambda X: (X > 0).astype(np.float64))),
    "int64": (lambda X: np.round(X * 3).astype(np.int64),
              Same(lambda X: np.round(X * 3))),
    "uint8": (lambda X: np.abs(X * 10).astype(np.uint8),
              Same(lambda X: np.abs(X * 10).astype(np.uint8).astype(np.float64))),
    "big_endian": (lambda X: X.astype(">f8"), Same(lambda X: X)),
    "fortran_order": (np.asfortranarray, Same(lambda X: X)),
    "negative_row_stride": (lambda X: X[::-1], Same(lambda X: X[::-1].copy())),
    "negative_column_stride": (lambda X: X[:, ::-1][:, ::-1], Same(lambda X: X)),
    "every_other_row": (lambda X: np.repeat(X, 2, axis=0)[::2], Same(lambda X: X)),
    "read_only": (_read_only, Same(lambda X: X)),
    "unaligned": (_unaligned, Same(lambda X: X)),
    "extreme_values": (_with_values(EXTREMES), Native()),
    "all_nan": (lambda X: np.full_like(X, np.nan), Native()),
    "all_inf": (lambda X: np.full_like(X, np.inf), Native()),
}


@pytest.fixture(scope="module")
def models(cases):
    """name -> (model, clean X [N_ROWS, m], native margin function)."""
    out = {}
    for name in ("xgb_reg", "lgb_reg", "sk_rf_reg"):
        case = cases[name]
        out[name] = (case.model, case.X[:N_ROWS].copy(), case.native_margin)
    return out


def _run(entry: str, model: Any, X: Any, background: np.ndarray, y: np.ndarray) -> Any:
    if entry == "predict":
        return treelens.TreeExplainer(model, n_threads=1).predict(X)
    if entry == "shap_values":
        return treelens.TreeExplainer(model, n_threads=1).shap_values(X)
    if entry == "interactions":
        return treelens.TreeExplainer(model, n_threads=1).shap_interaction_values(X)
    if entry == "background":
        return treelens.TreeExplainer(model, data=background, n_threads=1).shap_values(X)
    result = treelens.permutation_importance(model, X, y, n_repeats=2, random_state=0,
                                             n_threads=1)
    return result.importances


def _library_accepts(X: np.ndarray) -> bool:
    """XGBoost and scikit-learn refuse infinities and values beyond float32; LightGBM
    takes everything. Those inputs are compared with the oracle's routing only."""
    return bool(np.all(np.isnan(X) | (np.abs(X) <= np.finfo(np.float32).max)))


def _check(entry: str, model: Any, X_clean: np.ndarray, make: Callable, outcome: Any,
           native_margin: Optional[Callable] = None) -> None:
    background = X_clean[::-1].copy()
    y = np.linspace(-1.0, 1.0, len(X_clean))
    bad = make(X_clean)
    if isinstance(outcome, Raises):
        with pytest.raises(outcome.types, match=outcome.pattern):
            _run(entry, model, bad, background, y)
        return
    got = np.asarray(_run(entry, model, bad, background, y))
    if isinstance(outcome, Same):
        expected = _run(entry, model, outcome.reference(X_clean), background, y)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        return
    assert np.isfinite(got).all(), f"{entry} returned non-finite values"
    explainer = treelens.TreeExplainer(model, n_threads=1)
    margin = explainer.predict(bad)
    if entry == "predict":
        X64 = np.asarray(bad, dtype=np.float64)
        reference = oracle.predict(explainer.forest.spec, X64).reshape(margin.shape)
        np.testing.assert_allclose(margin, reference, rtol=1e-5, atol=1e-5)
        if _library_accepts(X64):
            native = np.asarray(native_margin(X64)).reshape(margin.shape)
            np.testing.assert_allclose(margin, native, rtol=1e-5, atol=1e-5)
    elif entry == "shap_values":
        np.testing.assert_allclose(got.sum(axis=1) + explainer.expected_value, margin,
                                   rtol=1e-6, atol=1e-5)
    elif entry == "interactions":
        np.testing.assert_allclose(got.sum(axis=2), explainer.shap_values(bad),
                                   rtol=1e-9, atol=1e-9)
    elif entry == "background":
        bg = treelens.TreeExplainer(model, data=background, n_threads=1)
        np.testing.assert_allclose(got.sum(axis=1) + bg.expected_value, margin,
                                   rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", sorted(NUMPY_CASES))
@pytest.mark.parametrize("model_name", ["xgb_reg", "lgb_reg", "sk_rf_reg"])
def test_numpy_input(model_name, case, entry, models):
    model, X, native_margin = models[model_name]
    make, outcome = NUMPY_CASES[case]
    _check(entry, model, X, make, outcome, native_margin)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_zero_rows(entry, models):
    """Empty results of the right shape; permutation importance has nothing to score."""
    model, X, _ = models["xgb_reg"]
    if entry == "permutation":
        with pytest.raises(ValueError, match="rows|samples|empty"):
            _run(entry, model, X[:0], X, np.zeros(0))
        return
    got = np.asarray(_run(entry, model, X[:0], X, np.zeros(0)))
    full = np.asarray(_run(entry, model, X[:2], X, np.zeros(2)))
    assert got.shape == (0,) + full.shape[1:]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_one_dimensional_row(entry, models):
    """A single row given as 1-D: the row's results, or a ValueError saying 2-D."""
    model, X, _ = models["lgb_reg"]
    try:
        got = np.asarray(_run(entry, model, X[0], X, np.zeros(1)))
    except ValueError as exc:
        assert "2-D" in str(exc) or "shape" in str(exc) or "single" in str(exc)
        return
    if entry != "permutation":
        expected = np.asarray(_run(entry, model, X[:1], X, np.zeros(1)))
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-12)


# ------------------------------------------------------------------ data frames

def _frame_cases():
    def drop(df):
        return df.drop(columns=[df.columns[1]])

    def extra(df):
        return df.assign(unused=1.0)

    def duplicated(df):
        import pandas as pd
        return pd.concat([df, df.iloc[:, :1]], axis=1)

    def reordered(df):
        return df[list(df.columns[::-1])]

    def nullable(df):
        out = df.astype("Float64")
        out.iloc[0, 0] = None
        return out

    def nullable_reference(df):
        out = df.copy()
        out.iloc[0, 0] = np.nan
        return out

    return {
        "missing_column": (drop, Raises((ValueError,), "missing")),
        "extra_column": (extra, Raises((ValueError,), "does not use")),
        "duplicated_column": (duplicated, Raises((ValueError,), "duplicate")),
        "reordered_columns": (reordered, Same(lambda df: df)),
        "nullable_float_with_NA": (nullable, Same(nullable_reference)),
        "object_column_of_floats": (lambda df: df.astype(object), Same(lambda df: df)),
    }


FRAME_CASES = _frame_cases()


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", sorted(FRAME_CASES))
@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "sklearn"])
def test_pandas_input(library, case, entry, pandas_models):
    model = pandas_models.model(library, False)
    df = pandas_models.frame(False).iloc[:N_ROWS]
    make, outcome = FRAME_CASES[case]
    if isinstance(outcome, Raises):
        _check(entry, model, df, make, outcome)
        return
    background = df.iloc[::-1]
    y = np.linspace(-1.0, 1.0, len(df))
    got = np.asarray(_run(entry, model, make(df), background, y))
    expected = np.asarray(_run(entry, model, outcome.reference(df), background, y))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def _with_unseen_category(df):
    import pandas as pd

    out = df.copy()
    values = out["color"].astype(object)
    values.iloc[:3] = "ultraviolet"
    out["color"] = pd.Categorical(values)
    return out


def test_unseen_category_lightgbm_is_missing(pandas_models):
    """LightGBM treats a category it never saw as missing: same margin as lightgbm."""
    model = pandas_models.model("lightgbm", True)
    df = _with_unseen_category(pandas_models.frame(True).iloc[:N_ROWS])
    explainer = treelens.TreeExplainer(model, n_threads=1)
    np.testing.assert_allclose(explainer.predict(df), model.predict(df, raw_score=True),
                               rtol=1e-12, atol=1e-12)
    phi = explainer.shap_values(df)
    np.testing.assert_allclose(phi.sum(axis=1) + explainer.expected_value,
                               explainer.predict(df), rtol=1e-9, atol=1e-9)


def test_unseen_category_xgboost_raises(pandas_models):
    """XGBoost rejects a category outside its training set; so does treelens."""
    model = pandas_models.model("xgboost", True)
    df = _with_unseen_category(pandas_models.frame(True).iloc[:N_ROWS])
    for entry in ENTRY_POINTS:
        with pytest.raises(ValueError, match="ultraviolet"):
            _run(entry, model, df, pandas_models.frame(True).iloc[:N_ROWS],
                 np.zeros(N_ROWS))


@pytest.mark.parametrize("kind", ["pyarrow", "polars"])
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_nulls_from_arrow_and_polars_are_missing(kind, entry, pandas_models):
    """A null is a missing value: the same results as NaN in a NumPy matrix."""
    import pyarrow as pa

    model = pandas_models.model("lightgbm", False)
    df = pandas_models.frame(False).iloc[:N_ROWS].reset_index(drop=True)
    X = df.to_numpy(dtype=np.float64).copy()
    X[::4, 1] = np.nan
    columns = {name: pa.array([None if np.isnan(v) else float(v) for v in X[:, j]],
                              type=pa.float64())
               for j, name in enumerate(df.columns)}
    table = pa.table(columns)
    n_null = int(np.isnan(X).sum())
    assert sum(c.null_count for c in table.columns) == n_null > 0
    if kind == "polars":
        import polars as pl
        table = pl.from_arrow(table)
        assert int(table.null_count().sum_horizontal()[0]) == n_null
    y = np.linspace(-1.0, 1.0, N_ROWS)
    background = df.iloc[::-1].to_numpy()
    got = np.asarray(_run(entry, model, table, background, y))
    expected = np.asarray(_run(entry, model, X, background, y))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
