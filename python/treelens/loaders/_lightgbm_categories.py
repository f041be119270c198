"""LightGBM ``pandas_categorical``: the category lists of a model trained on pandas
``category`` columns, and the features they belong to.

The list of feature ``f`` gives the code of each category (its index in the list). Models
store one list per pandas category column, in column order, but not the columns' positions;
``by_feature`` recovers them from the features' training values (``feature_infos``).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence


def parse_footer(footer: List[str]) -> Optional[list]:
    """The ``pandas_categorical:`` line among the lines after ``end of trees``, checked."""
    for ln in footer:
        if ln.startswith("pandas_categorical:"):
            try:
                value = json.loads(ln[len("pandas_categorical:"):])
            except RecursionError:
                raise ValueError("malformed LightGBM model: pandas_categorical is nested too "
                                 "deeply") from None
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"malformed LightGBM model: bad pandas_categorical: {e}") from None
            return check_lists(value)
    return None


def check_lists(value: Any) -> Optional[list]:
    """``pandas_categorical``: None, or a list with one list of categories (strings,
    numbers or booleans) per pandas category column."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("malformed LightGBM model: pandas_categorical is not a list")
    for j, categories in enumerate(value):
        if not isinstance(categories, list) or not all(
                isinstance(c, (str, int, float)) for c in categories):
            raise ValueError(f"malformed LightGBM model: pandas_categorical[{j}] is not a "
                             "list of category values")
    return value


def by_feature(lists: Optional[list], infos: Sequence[Any],
               feature_types: List[str]) -> Dict[int, list]:
    """Map pandas category lists to features: feature index -> its category list.

    ``infos``: per feature, None (unused) or an object with ``categorical``, ``low`` and
    ``high`` (its training values); ``feature_types``: ``"c"`` / ``"q"`` per feature.

    LightGBM stores one list per pandas ``category`` column, in column order, but not the
    columns' positions. Unordered ones are the categorical features (when they are as many as
    the lists, that is the answer); ordered ones are numeric features holding the codes.
    Otherwise the lists go to the one order-preserving choice of features whose training
    values fit the codes of their list; when that choice is not unique, nothing is mapped.
    The choice is unique exactly when the leftmost and the rightmost placements agree
    (any placement lies between them, list by list), so two linear scans decide it.
    """
    if not lists:
        return {}

    def fits(f: int, j: int) -> bool:
        info = infos[f]
        if info is None:
            return True
        low = -1 if info.categorical else 0  # categorical infos may list -1
        return (low <= info.low and info.high <= len(lists[j]) - 1
                and info.low == int(info.low) and info.high == int(info.high))

    cat_features = [f for f, t in enumerate(feature_types) if t == "c"]
    if len(cat_features) == len(lists) and all(fits(f, j) for j, f in enumerate(cat_features)):
        return {f: list(c) for f, c in zip(cat_features, lists)}
    n_lists, n_feat = len(lists), len(feature_types)
    leftmost, f = [], 0
    for j in range(n_lists):
        while f < n_feat and not fits(f, j):
            f += 1
        if f == n_feat:
            return {}
        leftmost.append(f)
        f += 1
    rightmost, f = [0] * n_lists, n_feat - 1
    for j in range(n_lists - 1, -1, -1):
        while not fits(f, j):
            f -= 1
        rightmost[j] = f
        f -= 1
    if leftmost != rightmost:
        return {}
    return {f: list(lists[j]) for j, f in enumerate(leftmost)}
