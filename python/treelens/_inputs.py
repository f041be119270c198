"""Turn user input into the 2-D float32/float64 matrix the core reads.

Accepted: NumPy arrays (and anything ``np.asarray`` makes numeric; object arrays may hold
``None`` for missing), pandas DataFrames, pyarrow Tables / RecordBatches, polars DataFrames,
SciPy sparse matrices / arrays and ``xgboost.DMatrix``.

A float32 or float64 NumPy array of the right width is handed over as it is, whatever
its memory order or strides: the core reads any strides. Everything else is converted
block by block (``RowSource.take``), so a large input never exists twice in full.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ._spec import ForestSpec

_AUTO_NAME = re.compile(r"(?:f|Column_)(\d+)\Z")


@dataclass
class RowSource:
    """Rows of an input, converted on request.

    ``take(start, stop)`` returns rows ``[start, stop)`` as a float32/float64 array of
    shape ``[stop - start, n_features]``. ``copies`` is False when ``take`` returns views
    of the caller's array (nothing to gain by splitting into blocks).
    """

    n_rows: int
    take: Callable[[int, int], np.ndarray]
    copies: bool


class EncodedRows(np.ndarray):
    """A float32/float64 matrix whose categorical columns already hold the model's category
    codes (batch jobs encode Arrow columns themselves): read as it is, never encoded again."""


def to_matrix(X: Any, spec: ForestSpec) -> np.ndarray:
    """The whole input as one float32/float64 matrix ``[n_rows, n_features]``.

    A float32/float64 NumPy array of the right shape comes back as a view of itself,
    whatever its strides (no copy).
    """
    source = row_source(X, spec)
    return source.take(0, source.n_rows)


def row_source(X: Any, spec: ForestSpec) -> RowSource:
    """Validate ``X`` against the model once and return a converter for row blocks.

    Values equal to the model's ``missing_value`` (XGBoost's ``missing``) come out as NaN.
    Raises TypeError for unsupported types or non-numeric data, ValueError for the
    wrong shape or missing / unexpected feature names.
    """
    source = _any_source(X, spec)
    if np.isnan(spec.missing_value):
        return source
    take = source.take
    return RowSource(source.n_rows, lambda a, b: mask_missing(take(a, b), spec), copies=True)


def mask_missing(block: np.ndarray, spec: ForestSpec) -> np.ndarray:
    """``block`` with the values equal to ``spec.missing_value`` set to NaN (compared in
    float32, as XGBoost's DMatrix does); the block itself when the missing value is NaN."""
    if np.isnan(spec.missing_value):
        return block
    with np.errstate(over="ignore"):  # beyond float32 range: inf, as XGBoost reads it
        hit = block.astype(np.float32, copy=False) == np.float32(spec.missing_value)
    if not hit.any():
        return block
    out = np.array(block, copy=True)
    out[hit] = np.nan
    return out


def split_single_row(X: Any) -> Tuple[Any, bool]:
    """``(rows, single)``: a 1-D array / list or a pandas Series is one row, returned as a
    one-row 2-D input with ``single=True``; anything else is returned as it is."""
    package = type(X).__module__.split(".")[0]
    if package == "pandas":
        import pandas as pd

        if isinstance(X, pd.Series):
            return X.to_frame().T.infer_objects(), True
        return X, False
    if isinstance(X, (np.ndarray, list, tuple)):
        arr = np.asarray(X, dtype=None if isinstance(X, np.ndarray) else object)
        if arr.ndim == 1:
            return (X.reshape(1, -1) if isinstance(X, np.ndarray) else arr.reshape(1, -1)), True
    return X, False


def _any_source(X: Any, spec: ForestSpec) -> RowSource:
    package = type(X).__module__.split(".")[0]
    if package == "pandas":
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            return _pandas_source(X, spec)
        if isinstance(X, pd.Series):
            raise ValueError(
                "expected 2-D input of shape (n_rows, n_features), got a pandas Series; "
                "use series.to_frame().T for a single row")
    if package == "pyarrow":
        import pyarrow as pa

        if isinstance(X, (pa.Table, pa.RecordBatch)):
            return _arrow_source(X, spec)
    if package == "polars":
        import polars as pl

        if isinstance(X, pl.DataFrame):
            return _arrow_source(_polars_to_arrow(X), spec)
        if isinstance(X, pl.LazyFrame):
            raise TypeError("got a polars LazyFrame; call .collect() first")
    if package == "scipy":
        import scipy.sparse as sp

        if sp.issparse(X):
            return _sparse_source(X, spec)
    if package == "xgboost":
        import xgboost

        if isinstance(X, xgboost.DMatrix):
            return _dmatrix_source(X, spec)
    return _numpy_source(X, spec)


# --------------------------------------------------------------------------- NumPy


def _numpy_source(X: Any, spec: ForestSpec) -> RowSource:
    encoded = isinstance(X, EncodedRows)
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"cannot convert input of type {type(X).__name__} to an array: "
                        f"{exc}") from None
    if arr.dtype.kind == "O":
        arr = _numbers_of_objects(arr)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"expected numeric input, got an array of dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"expected 2-D input of shape (n_rows, n_features), got shape {arr.shape}")
    _check_width(arr.shape[1], spec)
    if not encoded and (raw_categories(spec) or hashed_categories(spec)):
        return RowSource(arr.shape[0], lambda a, b: _encode_raw_block(arr[a:b], spec),
                         copies=True)
    if arr.dtype in (np.float32, np.float64) and arr.dtype.isnative:
        return RowSource(arr.shape[0], lambda a, b: arr[a:b], copies=False)
    # float16 widens exactly to float32; integers and booleans become float64.
    dtype = np.float32 if arr.dtype == np.float16 else np.float64
    return RowSource(arr.shape[0], lambda a, b: arr[a:b].astype(dtype), copies=True)


def _numbers_of_objects(arr: np.ndarray) -> np.ndarray:
    """An object array holding numbers (None as missing) as float64; TypeError for
    anything else, strings included (never parsed as numbers)."""
    try:
        if any(isinstance(v, (str, bytes)) for v in arr.flat):
            raise TypeError
        return np.array(np.where(np.equal(arr, None), np.nan, arr), dtype=np.float64)
    except (TypeError, ValueError):
        kinds = sorted({type(v).__name__ for v in arr.ravel()[:1000]})
        raise TypeError("expected numeric input, got an object array holding "
                        f"{', '.join(kinds)}") from None


def raw_categories(spec: ForestSpec) -> Dict[int, np.ndarray]:
    """Numeric training categories per feature [n_categories] of a scikit-learn model.

    HistGradientBoosting encodes a categorical column as the index of its value among
    the sorted training categories (unknown values become missing); its trees split on
    those indices. Other libraries take the codes themselves, so this is empty for them.
    """
    if spec.source != "sklearn":
        return {}
    out = {}
    for feature, cats in spec.categories_by_feature.items():
        values = np.asarray(cats)
        if values.dtype.kind in "biuf":
            out[feature] = values.astype(np.float64)
    return out


def hashed_categories(spec: ForestSpec) -> bool:
    """Whether the model's categorical features take raw values that are hashed (CatBoost)
    rather than category codes."""
    return spec.source == "catboost" and bool(spec.categories_by_feature)


def encode_hashed(values: np.ndarray, feature: int, name: Any, spec: ForestSpec) -> np.ndarray:
    """Raw values ``[n]`` of a CatBoost categorical feature as the model's codes (float64)."""
    from .loaders.catboost import category_codes

    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        uniques, inverse = np.unique(values, return_inverse=True)
        uniques = uniques.tolist()
    else:
        index: Dict[Any, int] = {}
        inverse = np.fromiter((index.setdefault(v, len(index)) for v in values.tolist()),
                              dtype=np.int64, count=len(values))
        uniques = list(index)
    lut = category_codes(uniques, spec.categories_by_feature[feature], name)
    return lut[inverse.reshape(-1)]


def encode_raw(values: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Raw category values [n] as indices into sorted ``categories``; unknown/NaN -> NaN."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(categories, kind="stable")
    sorted_cats = categories[order]
    pos = np.clip(np.searchsorted(sorted_cats, values), 0, max(len(sorted_cats) - 1, 0))
    hit = (sorted_cats[pos] == values) if len(sorted_cats) else np.zeros(len(values), bool)
    return np.where(hit, order[pos].astype(np.float64), np.nan)


def _encode_raw_block(block: np.ndarray, spec: ForestSpec) -> np.ndarray:
    """A block ``[rows, n_features]`` with its raw categorical values encoded as codes."""
    out = np.array(block, dtype=np.float64)
    for feature, cats in raw_categories(spec).items():
        out[:, feature] = encode_raw(out[:, feature], cats)
    if hashed_categories(spec):
        for feature in spec.categories_by_feature:
            out[:, feature] = encode_hashed(block[:, feature], feature, feature, spec)
    return out


def _check_width(n_columns: int, spec: ForestSpec) -> None:
    if n_columns != spec.n_features:
        raise ValueError(
            f"input has {n_columns} columns but the model expects {spec.n_features} features")


# ----------------------------------------------------------------------- SciPy sparse


def _sparse_source(X: Any, spec: ForestSpec, fill: Optional[float] = None) -> RowSource:
    """Sparse rows densified block by block.

    Absent entries become ``fill``; by default what the source library makes of them:
    missing (NaN) for XGBoost, 0.0 for LightGBM and scikit-learn. Stored entries,
    explicit zeros included, keep their values.
    """
    if len(X.shape) != 2:
        raise ValueError(f"expected a 2-D sparse matrix, got shape {X.shape}")
    _check_width(X.shape[1], spec)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"expected a numeric sparse matrix, got dtype {X.dtype}")
    csr = X.tocsr()
    dtype = np.float32 if X.dtype in (np.float16, np.float32) else np.float64
    if fill is None:
        fill = np.nan if spec.source == "xgboost" else 0.0
    raw = raw_categories(spec) or hashed_categories(spec)

    def take(a: int, b: int) -> np.ndarray:
        block = csr[a:b]
        block.sum_duplicates()
        out = np.full((b - a, X.shape[1]), fill, dtype=dtype)
        rows = np.repeat(np.arange(b - a), np.diff(block.indptr))
        out[rows, block.indices] = block.data
        return _encode_raw_block(out, spec) if raw else out

    return RowSource(X.shape[0], take, copies=True)


def _dmatrix_source(X: Any, spec: ForestSpec) -> RowSource:
    """An ``xgboost.DMatrix``: its entries (absent ones are missing, as in XGBoost), with
    its feature names checked against the model's as XGBoost's ``predict`` checks them."""
    names = X.feature_names
    if names is not None and spec.feature_names is not None \
            and list(names) != list(spec.feature_names):
        raise ValueError(f"the DMatrix feature names do not match the model's: expected "
                         f"{show(list(spec.feature_names))}, got {show(list(names))}")
    return _sparse_source(X.get_data(), spec, fill=np.nan)


# ---------------------------------------------------------------- data frames


def column_positions(labels: Sequence[Any], spec: ForestSpec) -> np.ndarray:
    """Column position in the frame of each model feature, matched by name when possible.

    Same names in another order are reordered; missing or unexpected names raise
    ValueError. Columns are taken by position when the model has no feature names,
    when its names are generated ones (``f0``, ``Column_0``) or when the frame's labels
    are the integers ``0..n-1`` (for a scikit-learn model without names, string labels
    warn as scikit-learn does). For LightGBM models a label matches the name LightGBM
    stores for it (spaces replaced by ``_``), and labels that do not match are taken by
    position when their count is right, as LightGBM's ``predict`` does.
    """
    names = spec.feature_names
    text = [stored_name(c, spec) for c in labels]
    if names is None and spec.source == "sklearn" and all(isinstance(c, str) for c in labels):
        warnings.warn("X has feature names, but the scikit-learn model was fitted without "
                      "feature names; columns are taken by position", UserWarning,
                      stacklevel=4)
    if names is None or text == list(names):
        _check_width(len(text), spec)
        return np.arange(spec.n_features)
    where: Dict[str, int] = {}
    for i, c in enumerate(text):
        if c in where:
            raise ValueError(f"input has duplicate column {c!r}")
        where[c] = i
    missing = [n for n in names if n not in where]
    if missing:
        if (list(labels) == list(range(len(labels)))
                or all(is_auto_name(n, i) for i, n in enumerate(names))
                or (spec.source == "lightgbm" and len(text) == spec.n_features)):
            _check_width(len(text), spec)
            return np.arange(spec.n_features)
        raise ValueError(f"input is missing {len(missing)} feature(s) the model uses: "
                         f"{show(missing)}")
    known = set(names)
    extra = [c for c in text if c not in known]
    if extra:
        raise ValueError(f"input has {len(extra)} column(s) the model does not use: "
                         f"{show(extra)}")
    return np.array([where[n] for n in names])


def stored_name(label: Any, spec: ForestSpec) -> str:
    """A column label as the model's library stores feature names: LightGBM replaces
    spaces by ``_`` (``'Marital Status'`` -> ``'Marital_Status'``)."""
    text = str(label)
    return text.replace(" ", "_") if spec.source == "lightgbm" else text


def is_auto_name(name: str, index: int) -> bool:
    """Whether ``name`` is a library's generated name for feature ``index``."""
    match = _AUTO_NAME.match(name)
    return match is not None and int(match.group(1)) == index


def show(items: Sequence[Any], limit: int = 10) -> str:
    """The first ``limit`` items as reprs, with a count of the rest."""
    shown = ", ".join(repr(s) for s in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _pandas_source(df: Any, spec: ForestSpec) -> RowSource:
    positions = column_positions(list(df.columns), spec)
    plain = not (raw_categories(spec) or hashed_categories(spec)) and all(
        _is_numpy_number(df.dtypes.iloc[p]) for p in positions)
    if plain:
        all_float32 = all(df.dtypes.iloc[p] == np.float32 for p in positions)
        dtype = np.float32 if all_float32 else np.float64
        identity = np.array_equal(positions, np.arange(df.shape[1]))

        def take(a: int, b: int) -> np.ndarray:
            block = df.iloc[a:b] if identity else df.iloc[a:b, positions]
            return block.to_numpy(dtype=dtype)
    else:
        def take(a: int, b: int) -> np.ndarray:
            return _convert_frame(df.iloc[a:b], positions, spec)
    return RowSource(len(df), take, copies=True)


def _is_numpy_number(dtype: Any) -> bool:
    return isinstance(dtype, np.dtype) and dtype.kind in "biuf"


def _convert_frame(df: Any, positions: np.ndarray, spec: ForestSpec) -> np.ndarray:
    """A pandas frame with mixed column kinds as float64 ``[n_rows, n_features]``."""
    out = np.empty((len(df), len(positions)), dtype=np.float64)
    for j, p in enumerate(positions):
        out[:, j] = _column_values(df.iloc[:, p], j, spec)
    return out


def _column_values(col: Any, feature: int, spec: ForestSpec) -> np.ndarray:
    """One pandas column as float64: categories as the model's codes, NA as NaN."""
    import pandas as pd
    from pandas.api import types

    dtype = col.dtype
    stored = spec.categories_by_feature.get(feature)
    if isinstance(dtype, pd.CategoricalDtype):
        return _category_codes(col.name, col.cat.categories, col.cat.codes.to_numpy(),
                               stored, spec)
    if stored is not None and hashed_categories(spec):
        return encode_hashed(col.to_numpy(dtype=object, na_value=None), feature, col.name, spec)
    raw = raw_categories(spec).get(feature)
    if _is_numpy_number(dtype) or types.is_numeric_dtype(dtype) or types.is_bool_dtype(dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return values if raw is None else encode_raw(values, raw)
    if stored is not None and (types.is_string_dtype(dtype) or types.is_object_dtype(dtype)):
        categories = pd.Index(col.dropna().unique())
        return _category_codes(col.name, categories, categories.get_indexer(col), stored, spec)
    if types.is_object_dtype(dtype):
        try:
            values = _numbers_of_objects(col.to_numpy(dtype=object, na_value=None))
        except TypeError:
            pass
        else:
            return values if raw is None else encode_raw(values, raw)
    raise TypeError(f"column {col.name!r} has dtype {dtype}; expected numbers, booleans or "
                    "a category")


def _category_codes(name: Any, categories: Any, codes: np.ndarray, stored: Optional[list],
                    spec: ForestSpec) -> np.ndarray:
    """The frame's category codes ``[n]`` as the model's codes (float64); -1 (NA) -> NaN."""
    present = np.zeros(len(categories), dtype=bool)
    present[codes[codes >= 0]] = True
    lut = category_lookup(name, list(categories), stored, spec, present)
    return np.append(lut, np.nan)[codes]  # index -1 (NA) reads the trailing NaN


def category_lookup(name: Any, categories: Sequence[Any], stored: Optional[list],
                    spec: ForestSpec, present: np.ndarray) -> np.ndarray:
    """The model's code (float64) of each of a column's ``categories`` ``[c]``.

    With the model's category list, categories are matched by value. A category the
    model never saw is handled as its library does: LightGBM treats it as missing (NaN);
    XGBoost rejects it ("Found a category not in the training set"), so ValueError when
    the column uses it (``present``: bool ``[c]``). Without a stored list the column's
    own codes are used, as both libraries do.
    """
    if stored is None:
        return np.arange(len(categories), dtype=np.float64)
    if hashed_categories(spec):
        from .loaders.catboost import category_codes

        return category_codes(list(categories), stored, name)
    where = {value: i for i, value in enumerate(stored)}
    lut = np.array([where.get(c, -1) for c in categories], dtype=np.float64)
    unseen = lut < 0
    if spec.source == "xgboost" and unseen.any():
        new = [categories[i] for i in np.flatnonzero(unseen & present)]
        if new:
            raise ValueError(
                f"column {name!r} has {len(new)} categor{'y' if len(new) == 1 else 'ies'} "
                f"the XGBoost model was not trained on: {show(new)}; replace them with "
                "missing values (NaN) to explain these rows")
    lut[unseen] = np.nan
    return lut


# ------------------------------------------------------------------ arrow / polars


def _arrow_source(table: Any, spec: ForestSpec) -> RowSource:
    """pyarrow Table / RecordBatch rows, block by block, without pandas: numeric columns
    as they are (nulls as NaN), dictionary columns mapped to the model's categories.
    Columns are matched as in ``column_positions``."""
    from ._arrow import ColumnSelection, feature_matrix

    selection = ColumnSelection([int(p) for p in column_positions(table.schema.names, spec)], False)

    def take(a: int, b: int) -> np.ndarray:
        return feature_matrix(table.slice(a, b - a), selection, spec)

    return RowSource(table.num_rows, take, copies=True)


def _polars_to_arrow(df: Any) -> Any:
    try:
        return df.to_arrow()
    except ModuleNotFoundError as exc:
        raise ImportError("reading a polars DataFrame needs pyarrow "
                          "(pip install pyarrow)") from exc
