"""Readers of XGBoost model-document fields with errors that name the field.

Documents come from ``json.loads`` (numbers as Python lists) or the UBJSON decoder (typed
numeric arrays as NumPy arrays); both read the same through these helpers.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np


def obj(parent: Any, key: str, where: str) -> Dict[str, Any]:
    if not isinstance(parent, dict) or key not in parent:
        raise ValueError(f"XGBoost model: '{where}' is missing '{key}'")
    value = parent[key]
    if not isinstance(value, dict):
        raise ValueError(f"XGBoost model: '{where}.{key}' is not an object")
    return value


def items(parent: Dict[str, Any], key: str, where: str) -> List[Any]:
    if key not in parent:
        raise ValueError(f"XGBoost model: '{where}' is missing '{key}'")
    value = parent[key]
    if not isinstance(value, list):
        raise ValueError(f"XGBoost model: '{where}.{key}' is not an array")
    return value


def text(parent: Dict[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str):
        raise ValueError(f"XGBoost model: '{where}.{key}' is missing or not a string")
    return value


def int_param(params: Dict[str, Any], key: str, where: str,
               default: Optional[int] = None) -> int:
    if key not in params:
        if default is None:
            raise ValueError(f"XGBoost model: '{where}' is missing '{key}'")
        return default
    value = params[key]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if number.is_integer():
                return int(number)
    raise ValueError(f"XGBoost model: '{where}.{key}' = {value!r} is not an integer")


def array(parent: Dict[str, Any], key: str, dtype: type, n: Optional[int],
           where: str) -> np.ndarray:
    if key not in parent:
        raise ValueError(f"XGBoost model: {where} is missing '{key}'")
    try:
        arr = np.asarray(parent[key], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"XGBoost model: {where} '{key}' is not a numeric array") from exc
    if arr.ndim != 1:
        raise ValueError(f"XGBoost model: {where} '{key}' is not a flat array")
    if n is not None and len(arr) != n:
        raise ValueError(f"XGBoost model: {where} '{key}' has {len(arr)} entries, "
                         f"expected {n}")
    return arr


def ints(parent: Dict[str, Any], key: str, n: Optional[int], where: str) -> np.ndarray:
    return array(parent, key, np.int64, n, where)


def floats(parent: Dict[str, Any], key: str, n: Optional[int], where: str) -> np.ndarray:
    """float32 values (the width XGBoost stores) for identical JSON and UBJSON results."""
    return array(parent, key, np.float32, n, where)
