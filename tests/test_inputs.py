"""Every accepted input container gives the SHAP values of the equivalent dense array."""
from __future__ import annotations

import numpy as np
import pytest

import treelens
import zoo
from helpers import NATIVE_TOL, as3d, assert_bitwise, assert_close, scale_of

LIBRARIES = ["xgboost", "lightgbm", "sklearn"]
DENSE_CASES = {"xgboost": "xgb_nan", "lightgbm": "lgb_missing_zero", "sklearn": "sk_rf_nan"}


def _shap(model, X):
    return np.asarray(treelens.TreeExplainer(model).shap_values(X))


def _codes(frame):
    """The frame as float64 with the category column replaced by training codes."""
    out = frame.copy()
    if "color" in out:
        codes = out["color"].cat.codes.to_numpy().astype(np.float64)
        out["color"] = np.where(codes < 0, np.nan, codes)
    return out.to_numpy(dtype=np.float64)


# ------------------------------------------------------------ NumPy dtypes and layouts


@pytest.mark.parametrize("library", LIBRARIES)
def test_float32_equals_its_float64_widening(library, cases):
    case = cases[DENSE_CASES[library]]
    X32 = case.X.astype(np.float32)
    assert_bitwise(_shap(case.model, X32), _shap(case.model, X32.astype(np.float64)),
                   "float32 input vs the same values as float64")


@pytest.mark.parametrize("library", ["xgboost", "sklearn"])
def test_float32_routing_libraries_ignore_the_extra_precision(library, cases):
    """XGBoost and scikit-learn forests round inputs to float32 before comparing."""
    case = cases[DENSE_CASES[library]]
    assert_bitwise(_shap(case.model, case.X.astype(np.float32)), _shap(case.model, case.X),
                   "float32 vs float64 input")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("library", LIBRARIES)
def test_memory_layouts(library, dtype, cases):
    case = cases[DENSE_CASES[library]]
    X = np.ascontiguousarray(case.X, dtype=dtype)
    n, m = X.shape
    ref = _shap(case.model, X)

    assert_bitwise(_shap(case.model, np.asfortranarray(X)), ref, "Fortran order")
    big = np.zeros((3 * n, 2 * m), dtype=dtype)
    big[::3, ::2] = X
    view = big[::3, ::2]
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    assert_bitwise(_shap(case.model, view), ref, "strided view")
    assert_bitwise(_shap(case.model, X[::-1]), ref[::-1], "negative row stride")
    assert_bitwise(_shap(case.model, X[5:9]), ref[5:9], "row slice")
    assert_bitwise(_shap(case.model, X.T.copy().T), ref, "transposed copy")


# ------------------------------------------------------------ DataFrames


def _native_frame_shap(library, model, frame):
    """The library's own SHAP on a DataFrame. Returns [n, m, 1]."""
    if library == "xgboost":
        import xgboost as xgb
        d = xgb.DMatrix(frame, enable_categorical=True)
        c = model.get_booster().predict(d, pred_contribs=True)
        return np.asarray(c, dtype=np.float64)[:, :-1, None]
    if library == "lightgbm":
        c = model.booster_.predict(frame, pred_contrib=True)
        return np.asarray(c, dtype=np.float64)[:, :-1, None]
    import shap
    return as3d(shap.TreeExplainer(model).shap_values(frame))


def _frame_params():
    return [("xgboost", True), ("lightgbm", True), ("xgboost", False), ("lightgbm", False),
            ("sklearn", False)]


@pytest.mark.parametrize("library, with_category", _frame_params())
def test_dataframe_matches_native(library, with_category, pandas_models):
    model = pandas_models.model(library, with_category)
    frame = pandas_models.frame(with_category)
    native = _native_frame_shap(library, model, frame)
    assert_close(as3d(_shap(model, frame)), native, NATIVE_TOL * scale_of(native),
                 "DataFrame shap vs native")


@pytest.mark.parametrize("library, with_category", _frame_params())
def test_dataframe_equals_code_matrix(library, with_category, pandas_models):
    model = pandas_models.model(library, with_category)
    frame = pandas_models.frame(with_category)
    assert_bitwise(_shap(model, frame), _shap(model, _codes(frame)), "DataFrame vs array")


@pytest.mark.parametrize("library, with_category", _frame_params())
def test_dataframe_reordered_columns(library, with_category, pandas_models):
    model = pandas_models.model(library, with_category)
    frame = pandas_models.frame(with_category)
    shuffled = frame[list(frame.columns[::-1])]
    assert_bitwise(_shap(model, shuffled), _shap(model, frame), "reordered columns")


@pytest.mark.parametrize("library, with_category", _frame_params())
def test_dataframe_missing_column(library, with_category, pandas_models):
    model = pandas_models.model(library, with_category)
    frame = pandas_models.frame(with_category).drop(columns=["income"])
    with pytest.raises(ValueError, match="income"):
        treelens.TreeExplainer(model).shap_values(frame)


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_category_values_are_matched_by_name(library, pandas_models):
    """The same colours under a differently ordered category list give the same result."""
    model = pandas_models.model(library, True)
    frame = pandas_models.frame(True)
    permuted = frame.copy()
    permuted["color"] = permuted["color"].cat.reorder_categories(
        list(reversed(zoo.COLOR_CATEGORIES)))
    assert not np.array_equal(permuted["color"].cat.codes, frame["color"].cat.codes)
    assert_bitwise(_shap(model, permuted), _shap(model, frame), "permuted category list")


# ------------------------------------------------------------ Arrow and polars


@pytest.mark.parametrize("library, with_category", _frame_params())
def test_pyarrow_table(library, with_category, pandas_models):
    import pyarrow as pa

    model = pandas_models.model(library, with_category)
    frame = pandas_models.frame(with_category)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert_bitwise(_shap(model, table), _shap(model, frame), "pyarrow Table vs DataFrame")


@pytest.mark.parametrize("library, with_category", _frame_params())
def test_polars_dataframe(library, with_category, pandas_models):
    import polars as pl

    model = pandas_models.model(library, with_category)
    frame = pandas_models.frame(with_category)
    data = {c: frame[c].to_numpy() for c in frame.columns if c != "color"}
    if with_category:
        data["color"] = pl.Series("color", frame["color"].astype(str).tolist(),
                                  dtype=pl.Enum(zoo.COLOR_CATEGORIES))
    pl_frame = pl.DataFrame(data).select(list(frame.columns))
    assert_bitwise(_shap(model, pl_frame), _shap(model, frame), "polars vs pandas DataFrame")


# ------------------------------------------------------------ sparse


def _zero_heavy(case, seed):
    """The case's rows with 50% exact zeros and 10% NaN. Returns [n, m] float64."""
    rng = np.random.default_rng(seed)
    X = case.X.copy()
    X[rng.random(X.shape) < 0.5] = 0.0
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def test_csr_absent_entries_are_missing_for_xgboost(cases):
    """XGBoost reads an absent CSR entry as missing; a stored 0.0 stays a zero."""
    import scipy.sparse as sp
    import xgboost as xgb

    case = cases["xgb_nan"]
    X = _zero_heavy(case, 1)
    csr = sp.csr_matrix(X)                      # zeros absent, NaN stored
    as_missing = np.where(X == 0.0, np.nan, X)
    assert_bitwise(_shap(case.model, csr), _shap(case.model, as_missing), "CSR vs dense NaN")

    explicit = sp.csr_matrix(np.where(X == 0.0, 1.0, X))
    explicit.data[explicit.data == 1.0] = 0.0   # the zeros stored explicitly
    assert_bitwise(_shap(case.model, explicit), _shap(case.model, X), "stored zeros")

    native = case.model.get_booster().predict(xgb.DMatrix(csr), pred_contribs=True)
    native = np.asarray(native, dtype=np.float64)[:, :-1, None]
    assert_close(as3d(_shap(case.model, csr)), native, NATIVE_TOL * scale_of(native),
                 "CSR vs xgboost on the same CSR")


def test_csr_absent_entries_are_zero_for_lightgbm(cases):
    import scipy.sparse as sp

    case = cases["lgb_missing_zero"]
    X = _zero_heavy(case, 2)
    csr = sp.csr_matrix(X)
    assert_bitwise(_shap(case.model, csr), _shap(case.model, X), "CSR vs dense zeros")

    native = case.model.booster_.predict(csr, pred_contrib=True)
    native = np.asarray(native.toarray() if sp.issparse(native) else native)[:, :-1, None]
    assert_close(as3d(_shap(case.model, csr)), native, NATIVE_TOL * scale_of(native),
                 "CSR vs lightgbm on the same CSR")
