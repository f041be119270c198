"""Arrow tables and record batches as model input, without pandas.

``select_columns`` decides once per schema which columns hold the model's features
(``ColumnSelection``); ``feature_matrix`` then turns each batch into the float32/float64
``[rows, n_features]`` matrix the core reads. Numeric columns go to NumPy directly (nulls
become NaN), dictionary and text columns of categorical features are mapped to the model's
categories by value, and nothing else is accepted as a feature.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._inputs import (category_lookup, encode_hashed, encode_raw, hashed_categories,
                      is_auto_name, mask_missing, raw_categories, show, stored_name)
from ._spec import ForestSpec

#: The extra that installs pyarrow, named in every "install it" message.
ARROW_EXTRA = "treelens[parquet]"


def require(module: str = "pyarrow", what: str = "this") -> Any:
    """Import ``module`` (pyarrow or one of its submodules), or ImportError naming the extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ImportError(f"{what} needs pyarrow: pip install \"{ARROW_EXTRA}\"") from None


@dataclass
class ColumnSelection:
    """Where the model's features are in a table.

    ``positions[j]``: column index of feature ``j``. ``by_position``: the model has no
    usable feature names, so the features are the first ``n_features`` columns that are
    not kept or the target.
    """

    positions: List[int]
    by_position: bool


def select_columns(names: Sequence[str], spec: ForestSpec,
                   reserved: Sequence[str] = ()) -> ColumnSelection:
    """Feature columns of a table with column ``names``, by the model's feature names.

    Columns the model does not use are ignored; names are compared as the model's library
    stores them (``stored_name``). A model without names (or with generated
    ones, ``f0`` / ``Column_0``, that the table lacks) takes the first ``n_features``
    columns not named in ``reserved`` (kept columns, the target). ValueError names the
    missing features or the shortfall of columns.
    """
    names = [stored_name(n, spec) for n in names]
    where: Dict[str, int] = {}
    for i, name in enumerate(names):
        where.setdefault(name, i)
    model_names = spec.feature_names
    if model_names is not None:
        missing = [n for n in model_names if n not in where]
        if not missing:
            duplicated = [n for n in model_names if names.count(n) > 1]
            if duplicated:
                raise ValueError(f"input has duplicate column(s) {show(duplicated)}")
            return ColumnSelection([where[n] for n in model_names], by_position=False)
        if not all(is_auto_name(n, i) for i, n in enumerate(model_names)):
            raise ValueError(f"input is missing {len(missing)} feature column(s) the model "
                             f"uses: {show(missing)}")
    skip = {stored_name(n, spec) for n in reserved}
    free = [i for i, name in enumerate(names) if name not in skip]
    if len(free) < spec.n_features:
        raise ValueError(f"input has {len(free)} feature column(s) but the model expects "
                         f"{spec.n_features} (its features have no names to match)")
    return ColumnSelection(free[:spec.n_features], by_position=True)


def feature_matrix(batch: Any, selection: ColumnSelection, spec: ForestSpec,
                   encode_raw_categories: bool = True) -> np.ndarray:
    """The model's features of a pyarrow Table / RecordBatch as a C-ordered matrix
    ``[rows, n_features]``: float32 when every feature column is float32 (and needs no
    category mapping), float64 otherwise.

    Raw numeric categories of scikit-learn models become category indices, unless
    ``encode_raw_categories`` is False: the matrix is then the raw values, as a NumPy
    input for ``TreeExplainer`` (which encodes them itself). CatBoost categorical columns
    always become the model's codes (their raw values may be strings).
    """
    raw = raw_categories(spec) if encode_raw_categories else {}
    columns = [batch.column(p) for p in selection.positions]
    plain_float32 = not raw and not spec.categories_by_feature and all(
        str(c.type) == "float" for c in columns)
    out = np.empty((batch.num_rows, len(columns)),
                   dtype=np.float32 if plain_float32 else np.float64)
    for j, column in enumerate(columns):
        name = batch.schema.names[selection.positions[j]]
        values = column_values(column, name, j, spec)
        out[:, j] = values if j not in raw else encode_raw(values, raw[j])
    return mask_missing(out, spec)


def column_values(column: Any, name: str, feature: int, spec: ForestSpec) -> np.ndarray:
    """One Arrow column (Array or ChunkedArray) of feature ``feature`` as float32/float64
    ``[rows]``: numbers as they are, nulls as NaN, categories as the model's codes."""
    pa = require()
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if not chunks:
        return np.empty(0, dtype=np.float64)
    parts = [_chunk_values(chunk, name, feature, spec) for chunk in chunks]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _chunk_values(array: Any, name: str, feature: int, spec: ForestSpec) -> np.ndarray:
    pa = require()
    pc = require("pyarrow.compute")
    kind = array.type
    stored = spec.categories_by_feature.get(feature)
    if pa.types.is_dictionary(kind):
        if not _numeric_feature(feature, spec):
            return _dictionary_codes(array, name, stored, spec)
        array, kind = array.dictionary_decode(), kind.value_type
    if stored is not None and hashed_categories(spec):
        return encode_hashed(np.array(array.to_pylist(), dtype=object), feature, name, spec)
    if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and stored is not None:
        return _dictionary_codes(pc.dictionary_encode(array), name, stored, spec)
    if pa.types.is_floating(kind):
        if pa.types.is_float16(kind):
            array = pc.cast(array, pa.float32())
        return array.to_numpy(zero_copy_only=False)
    if (pa.types.is_integer(kind) or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind) or pa.types.is_null(kind)):
        return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    raise TypeError(f"column {name!r} has type {kind}; a feature column must hold numbers, "
                    "booleans or categories (a dictionary column)")


def _numeric_feature(feature: int, spec: ForestSpec) -> bool:
    """Whether the model declares ``feature`` numeric (a dictionary column then holds
    values, not categories)."""
    types = spec.feature_types
    return (feature >= 0 and types is not None and types[feature] == "q"
            and feature not in spec.categories_by_feature)


def _dictionary_codes(array: Any, name: str, stored: Optional[list],
                      spec: ForestSpec) -> np.ndarray:
    """A dictionary-encoded column as the model's category codes (float64); null -> NaN."""
    dictionary = array.dictionary.to_pylist()
    lut = category_lookup(name, dictionary, stored, spec,
                          present=_present(array, len(dictionary)))
    indices = array.indices.to_numpy(zero_copy_only=False)
    valid = array.indices.is_valid().to_numpy(zero_copy_only=False)
    codes = np.where(valid, indices, len(dictionary)).astype(np.int64)
    return np.append(lut, np.nan)[codes]


def _present(array: Any, size: int) -> np.ndarray:
    """Which dictionary entries the column actually uses: bool ``[size]``."""
    pc = require("pyarrow.compute")
    used = pc.unique(array.indices.drop_null()).to_numpy(zero_copy_only=False)
    present = np.zeros(size, dtype=bool)
    present[used.astype(np.int64)] = True
    return present


# ------------------------------------------------------------------ output tables


def label_type() -> Any:
    """Arrow type of feature-name columns: strings dictionary-encoded by int32 codes."""
    pa = require()
    return pa.dictionary(pa.int32(), pa.string())


def output_schema(plan: Any, kept_fields: Sequence[Any]) -> Any:
    """Schema of a batch job's output: the kept fields, then the plan's columns."""
    pa = require()
    labels = set(plan.label_columns())
    number = pa.from_numpy_dtype(plan.dtype)
    fields = list(kept_fields) + [
        pa.field(name, label_type() if name in labels else number)
        for name in plan.column_names]
    return pa.schema(fields)


def record_batch(out: Any, kept: Sequence[Any], schema: Any) -> Any:
    """An output ``pyarrow.RecordBatch``: ``kept`` arrays (one per kept field, input rows,
    repeated ``out.repeat`` times each) followed by ``out.columns``."""
    pa = require()
    from ._batch import Labels

    arrays = []
    if kept and out.repeat > 1:
        take = pa.array(np.repeat(np.arange(out.rows, dtype=np.int64), out.repeat))
        kept = [k.take(take) for k in kept]
    arrays += [k if isinstance(k, (pa.Array, pa.ChunkedArray)) else pa.array(k) for k in kept]
    arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
    dictionaries: Dict[int, Any] = {}
    for _, values in out.columns:
        if isinstance(values, Labels):
            names = dictionaries.setdefault(id(values.names), pa.array(values.names, pa.string()))
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(values.indices, pa.int32()),
                                                         names))
        else:
            arrays.append(pa.array(values))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def check_feature_types(schema: Any, selection: ColumnSelection, spec: ForestSpec) -> None:
    """TypeError, before any row is read, when a feature column's type cannot be a feature."""
    pa = require()
    for j, p in enumerate(selection.positions):
        field = schema.field(p)
        _chunk_values(pa.array([], type=field.type), field.name, j, spec)
