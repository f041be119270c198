"""Brute-force reference for path-dependent TreeSHAP on a ``ForestSpec``.

Independent of the C++ core: routing is re-implemented here from the documented
rules of each ``ROUTING_*`` mode, and Shapley values come from the exponential
subset formula

    phi_i = sum_{S subset of M minus i} |S|! (M - |S| - 1)! / M! * (v(S + i) - v(S))

over the path-dependent value function of Lundberg et al. (2020), "From local
explanations to global understanding with explainable AI for trees": v(S) is the
leaf value reached when features in S follow the row and every other split sends
the row to both children, weighted by ``cover[child] / cover[node]`` (0 when
``cover[node]`` is 0).

Everything is float64 and vectorised over rows and subsets; the cost is
O(n_nodes * n_rows * 2**n_features), so keep n_features <= 10.
"""
from __future__ import annotations

from math import factorial
from typing import Tuple

import numpy as np

from treelens._spec import (
    MISSING_DEFAULT,
    MISSING_NAN_AS_ZERO,
    MISSING_ZERO,
    ROUTING_FLOAT64,
    ROUTING_LIGHTGBM,
    ROUTING_SKLEARN,
    ROUTING_XGBOOST,
    ForestSpec,
    TreeArrays,
)

MAX_ORACLE_FEATURES = 10
LIGHTGBM_ZERO_THRESHOLD = float(np.float32(1e-35))
XGBOOST_MAX_CATEGORY = float(2 ** 24)


def _as_float32_then_64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float32).astype(np.float64)


def _truncate_to_int(x: np.ndarray) -> np.ndarray:
    """C-style truncation toward zero of finite values; non-finite become -1."""
    out = np.full(x.shape, -1, dtype=np.int64)
    finite = np.isfinite(x)
    out[finite] = np.trunc(x[finite]).astype(np.int64)
    return out


def _members(tree: TreeArrays, node: int, codes: np.ndarray) -> np.ndarray:
    cats = np.asarray(tree.categories.get(node, np.zeros(0)), dtype=np.int64)
    return np.isin(codes, cats)


def _missing_type(tree: TreeArrays, node: int) -> int:
    return MISSING_DEFAULT if tree.missing is None else int(tree.missing[node])


def _is_categorical(tree: TreeArrays, node: int) -> bool:
    return tree.categorical is not None and bool(tree.categorical[node])


def goes_left(spec: ForestSpec, tree: TreeArrays, node: int, x: np.ndarray) -> np.ndarray:
    """Route one column through one split.

    x: [n_rows] float64 values of the node's feature. Returns bool [n_rows], True = left.
    """
    default_left = bool(tree.default_left[node])
    thr = float(tree.threshold[node])
    categorical = _is_categorical(tree, node)

    if spec.routing == ROUTING_XGBOOST:
        x32 = _as_float32_then_64(x)
        nan = np.isnan(x32)
        if categorical:
            invalid = (x32 < 0) | (x32 >= XGBOOST_MAX_CATEGORY)
            member = _members(tree, node, _truncate_to_int(np.where(invalid | nan, 0, x32)))
            left = invalid | ~member
        else:
            thr32 = float(np.float32(thr))
            with np.errstate(invalid="ignore"):
                left = x32 < thr32
        return np.where(nan, default_left, left)

    if spec.routing == ROUTING_LIGHTGBM:
        x = np.where(np.abs(x) <= LIGHTGBM_ZERO_THRESHOLD, 0.0, x)
        if categorical:
            nan = np.isnan(x)
            codes = _truncate_to_int(np.where(nan, -1, x))
            return ~nan & (codes >= 0) & _members(tree, node, codes)
        mtype = _missing_type(tree, node)
        if mtype in (MISSING_ZERO, MISSING_NAN_AS_ZERO):
            x = np.where(np.isnan(x), 0.0, x)
        if mtype == MISSING_ZERO:
            to_default = np.abs(x) <= LIGHTGBM_ZERO_THRESHOLD
        elif mtype == MISSING_DEFAULT:
            to_default = np.isnan(x)
        else:
            to_default = np.zeros(x.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            left = x <= thr
        return np.where(to_default, default_left, left)

    if spec.routing in (ROUTING_SKLEARN, ROUTING_FLOAT64):
        if spec.routing == ROUTING_SKLEARN:
            x = _as_float32_then_64(x)
        nan = np.isnan(x)
        if categorical:
            left = _members(tree, node, _truncate_to_int(np.where(nan, -1, x)))
        else:
            with np.errstate(invalid="ignore"):
                left = x <= thr
        return np.where(nan, default_left, left)

    raise ValueError(f"unknown routing {spec.routing!r}")


def _is_leaf(tree: TreeArrays, node: int) -> bool:
    return int(tree.left[node]) < 0


def _add_to_outputs(tree: TreeArrays, acc: np.ndarray, contrib: np.ndarray) -> None:
    """acc: [..., n_outputs]; contrib: [..., leaf_width]."""
    if tree.output < 0:
        acc += contrib
    else:
        acc[..., tree.output] += contrib[..., 0]


def _fraction(cover: np.ndarray, child: int, node: int) -> float:
    """Cover fraction of ``child``; 0 under a node of zero cover (no data reached it)."""
    return float(cover[child] / cover[node]) if cover[node] > 0 else 0.0


def subset_values(spec: ForestSpec, X: np.ndarray) -> np.ndarray:
    """v(S) for every subset S of the features, base score included.

    X: [n_rows, n_features] float64. Returns [n_rows, 2**n_features, n_outputs];
    bit j of the subset index means feature j follows the row.
    """
    n, m = X.shape
    if m > MAX_ORACLE_FEATURES:
        raise ValueError(f"oracle is exponential: {m} features > {MAX_ORACLE_FEATURES}")
    n_subsets = 1 << m
    subset_ids = np.arange(n_subsets)
    in_subset = [(subset_ids >> j) & 1 == 1 for j in range(m)]
    out = np.zeros((n, n_subsets, spec.n_outputs))
    out += np.asarray(spec.base_score, dtype=np.float64).reshape(1, 1, -1)
    width = int(spec.leaf_width)

    for tree in spec.trees:
        value = np.asarray(tree.value, dtype=np.float64).reshape(len(tree.left), width)
        cover = np.asarray(tree.cover, dtype=np.float64)
        acc = np.zeros((n, n_subsets, width))
        stack = [(0, np.ones((n, n_subsets)))]
        while stack:
            node, w = stack.pop()
            if _is_leaf(tree, node):
                acc += w[:, :, None] * value[node][None, None, :]
                continue
            f = int(tree.feature[node])
            lft, rgt = int(tree.left[node]), int(tree.right[node])
            left_row = goes_left(spec, tree, node, X[:, f])[:, None]
            follows = in_subset[f][None, :]
            stack.append((lft, w * np.where(follows, left_row, _fraction(cover, lft, node))))
            stack.append((rgt, w * np.where(follows, ~left_row, _fraction(cover, rgt, node))))
        _add_to_outputs(tree, out, acc)
    return out


def shapley_from_values(v: np.ndarray) -> np.ndarray:
    """Exact Shapley values from a full table of coalition values.

    v: [n_rows, 2**m, n_outputs]. Returns phi: [n_rows, m, n_outputs].
    """
    n, n_subsets, k = v.shape
    m = n_subsets.bit_length() - 1
    subset_ids = np.arange(n_subsets)
    sizes = np.array([bin(s).count("1") for s in subset_ids])
    weight_by_size = np.array(
        [factorial(s) * factorial(m - s - 1) / factorial(m) for s in range(m)] + [0.0]
    )
    phi = np.zeros((n, m, k))
    for i in range(m):
        without_i = subset_ids[(subset_ids >> i) & 1 == 0]
        w = weight_by_size[sizes[without_i]][None, :, None]
        phi[:, i, :] = np.sum(w * (v[:, without_i | (1 << i), :] - v[:, without_i, :]), axis=1)
    return phi


def interactions_from_values(v: np.ndarray) -> np.ndarray:
    """Exact SHAP interaction values from a full table of coalition values.

    v: [n_rows, 2**m, n_outputs]. Returns [n_rows, m, m, n_outputs]: off the diagonal, half
    the Shapley interaction index
    sum_{S in M - {i, j}} |S|! (m - |S| - 2)! / (m - 1)! * (v(S+ij) - v(S+i) - v(S+j) + v(S)) / 2;
    on it, phi_i minus the row's off-diagonal entries.
    """
    n, n_subsets, k = v.shape
    m = n_subsets.bit_length() - 1
    ids = np.arange(n_subsets)
    sizes = np.array([bin(s).count("1") for s in ids])
    out = np.zeros((n, m, m, k))
    for i in range(m):
        for j in range(i + 1, m):
            rest = ids[((ids >> i) & 1 == 0) & ((ids >> j) & 1 == 0)]
            w = np.array([factorial(s) * factorial(m - s - 2) / factorial(m - 1)
                          for s in sizes[rest]])[None, :, None]
            delta = (v[:, rest | (1 << i) | (1 << j)] - v[:, rest | (1 << i)]
                     - v[:, rest | (1 << j)] + v[:, rest])
            out[:, i, j] = out[:, j, i] = 0.5 * np.sum(w * delta, axis=1)
    phi = shapley_from_values(v)
    for i in range(m):
        out[:, i, i] = phi[:, i] - out[:, i].sum(axis=1)
    return out


def shap_values(spec: ForestSpec, X: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Brute-force path-dependent SHAP.

    X: [n_rows, n_features] (cast to float64). Returns (phi [n_rows, n_features,
    n_outputs], expected_value [n_outputs]).
    """
    X = np.asarray(X, dtype=np.float64)
    v = subset_values(spec, X)
    return shapley_from_values(v), v[0, 0, :].copy()


def predict(spec: ForestSpec, X: np.ndarray) -> np.ndarray:
    """Margin by plain routing, summed in float64 in tree order.

    X: [n_rows, n_features]. Returns [n_rows, n_outputs].
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    out = np.zeros((n, spec.n_outputs))
    out += np.asarray(spec.base_score, dtype=np.float64).reshape(1, -1)
    width = int(spec.leaf_width)
    for tree in spec.trees:
        value = np.asarray(tree.value, dtype=np.float64).reshape(len(tree.left), width)
        is_leaf = np.asarray(tree.left) < 0
        node = np.zeros(n, dtype=np.int64)
        active = ~is_leaf[node]
        while active.any():
            for nid in np.unique(node[active]):
                rows = np.flatnonzero(active & (node == nid))
                left = goes_left(spec, tree, int(nid), X[rows, int(tree.feature[nid])])
                node[rows] = np.where(left, tree.left[nid], tree.right[nid])
            active = ~is_leaf[node]
        _add_to_outputs(tree, out, value[node])
    return out


def tree_depth(tree: TreeArrays) -> int:
    """Number of edges on the longest root-to-leaf path."""
    best, stack = 0, [(0, 0)]
    while stack:
        node, d = stack.pop()
        if _is_leaf(tree, node):
            best = max(best, d)
        else:
            stack.append((int(tree.left[node]), d + 1))
            stack.append((int(tree.right[node]), d + 1))
    return best
