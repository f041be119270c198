"""One batch of rows in, one batch of explanation columns out.

``BatchPlan`` fixes everything about a batch job once (model, explainer, mode, kept
columns, output columns and dtype) and ``BatchPlan.explain`` turns the feature matrix of a
batch into its output columns. It is the common core of ``explain_table`` /
``explain_batches``, the command line and the Dask and Spark entry points: they differ
only in where batches come from and where the columns go.

Output layout, per input row (``shap`` mode), after the kept columns:

- SHAP values: one column per feature, named by the feature; ``{feature}__{k}`` per output
  ``k`` of multi-output models (all features of output 0, then output 1, ...);
- ``expected_value`` (``expected_value__{k}``);
- with ``prediction``: ``margin`` (``margin__{k}``), ``prediction`` where the model's link
  is not the identity, and ``log_loss`` when that is the explained output;
- with ``top_k = K``: ``top{i}_feature`` and ``top{i}_shap`` for i = 1..K (``__{k}`` per
  output): the K features of largest |SHAP|, ties broken by feature order.

``interactions`` mode writes a long table: ``s * s`` rows per input row (``s`` selected
features), the kept columns repeated, then ``feature_i``, ``feature_j`` and ``interaction``
(``interaction__{k}``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _inputs
from . import background as _background
from .explainer import TreeExplainer
from .model import Forest

MODES = ("shap", "interactions")
DTYPES = ("float64", "float32")


@dataclass
class Labels:
    """A column of feature names stored as indices into ``names`` (int32 ``[rows]``)."""

    indices: np.ndarray
    names: List[str]

    def __len__(self) -> int:
        return len(self.indices)

    def text(self) -> np.ndarray:
        """The names themselves, object ``[rows]``."""
        return np.asarray(self.names, dtype=object)[self.indices]


Values = Union[np.ndarray, Labels]


@dataclass
class OutBatch:
    """Explanation columns of one batch of ``rows`` input rows: ``columns`` in output
    order, ``repeat`` output rows per input row (kept columns are repeated that often);
    in interactions mode ``array`` holds the values ``[rows, s, s(, k)]`` for ``.npy``
    output; in shap mode ``shap_abs_sum`` is ``sum |phi|`` per feature ``[m]``."""

    columns: List[Tuple[str, Values]]
    repeat: int = 1
    array: Optional[np.ndarray] = None
    rows: int = 0
    shap_abs_sum: Optional[np.ndarray] = field(default=None, repr=False)


class BatchPlan:
    """A batch job's fixed choices; see the module docstring for the output columns.

    ``model``: anything ``treelens.load`` takes (a loaded ``Forest`` is used as is).
    ``data`` / ``data_weights``: background rows for interventional SHAP (then
    ``model_output`` may be ``probability`` or ``log_loss``; ``log_loss`` needs the labels
    passed to ``explain``). ``features``: the interaction features (names or indices;
    all when None). ``dtype``: ``float64`` or ``float32`` output columns.
    """

    def __init__(self, model: Any, *, keep: Sequence[str] = (), top_k: int = 0,
                 output: str = "shap", model_output: str = "raw", data: Any = None,
                 data_weights: Any = None, features: Any = None, prediction: bool = False,
                 dtype: str = "float64", n_threads: Optional[int] = None) -> None:
        if output not in MODES:
            raise ValueError(f"output must be one of {MODES}, got {output!r}")
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
            raise ValueError(f"top_k must be a non-negative int, got {top_k!r}")
        self.explainer = TreeExplainer(model, data=data, model_output=model_output,
                                       n_threads=n_threads, data_weights=data_weights)
        forest = self.forest
        self.keep = _unique_names(keep, "keep")
        self.output = output
        self.model_output = model_output
        self.prediction = bool(prediction)
        self.dtype = np.dtype(str(dtype))
        self.names = forest.feature_names or [f"f{i}" for i in range(forest.n_features)]
        if output == "interactions":
            if top_k or prediction:
                raise ValueError("top_k and prediction apply to output='shap', not "
                                 "'interactions'")
            if model_output != "raw":
                raise ValueError("interaction values explain the raw margin only; got "
                                 f"model_output={model_output!r}")
            self.selected = forest._feature_positions(features)
        elif features is not None:
            raise ValueError("features selects interaction features; use "
                             "output='interactions'")
        if top_k > forest.n_features:
            raise ValueError(f"top_k={top_k} exceeds the model's {forest.n_features} features")
        self.top_k = int(top_k)
        self.column_names = self._column_names()
        clash = [name for name in self.keep if name in set(self.column_names)]
        if clash:
            raise ValueError(f"kept column(s) {clash} have the name of an output column; "
                             "rename them in the input")

    @property
    def forest(self) -> Forest:
        return self.explainer.forest

    @property
    def needs_labels(self) -> bool:
        """Whether ``explain`` needs the rows' labels (``model_output='log_loss'``)."""
        return self.model_output == "log_loss"

    # ------------------------------------------------------------------ layout

    def _column_names(self) -> List[str]:
        k = self.forest.n_outputs
        if self.output == "interactions":
            self._label_columns = ["feature_i", "feature_j"]
            return self._label_columns + _per_output("interaction", k)
        names = ([f"{n}__{o}" for o in range(k) for n in self.names] if k > 1
                 else list(self.names))
        names += _per_output("expected_value", k)
        if self.prediction:
            names += _per_output("margin", k)
            if self._has_link:
                names += _per_output("prediction", k)
            if self.model_output == "log_loss":
                names.append("log_loss")
        self._label_columns = []
        for o in range(k):
            suffix = f"__{o}" if k > 1 else ""
            for i in range(1, self.top_k + 1):
                names += [f"top{i}_feature{suffix}", f"top{i}_shap{suffix}"]
                self._label_columns.append(f"top{i}_feature{suffix}")
        return names

    @property
    def _has_link(self) -> bool:
        return not self.forest.output_function.is_identity

    def label_columns(self) -> List[str]:
        """Names of the output columns that hold feature names (the rest are numbers)."""
        return list(self._label_columns)

    # ---------------------------------------------------------------- compute

    def explain(self, matrix: np.ndarray, labels: Optional[np.ndarray] = None) -> OutBatch:
        """Output columns of one batch; ``matrix``: the features ``[rows, n_features]``,
        ``labels``: ``[rows]`` (``log_loss`` only)."""
        if self.output == "interactions":
            return self._interactions(matrix)
        ex = self.explainer
        y = labels if self.needs_labels else None
        phi = ex.shap_values(matrix, y=y, check_additivity=False)
        rows, k = phi.shape[0], self.forest.n_outputs
        phi3 = phi.reshape(rows, self.forest.n_features, k)
        by_output = np.ascontiguousarray(phi3.transpose(2, 1, 0), dtype=self.dtype)
        columns: List[Tuple[str, Values]] = []
        names = iter(self.column_names)
        for o in range(k):
            columns += [(next(names), by_output[o, j]) for j in range(phi3.shape[1])]
        ev = ex.expected_value
        ev_rows = ev(y) if callable(ev) else np.broadcast_to(
            np.reshape(ev, (1, k)), (rows, k))
        ev_rows = np.reshape(ev_rows, (rows, k))
        columns += [(next(names), self._cast(ev_rows[:, o])) for o in range(k)]
        if self.prediction:
            columns += self._prediction_columns(matrix, y, names)
        columns += self._top_columns(phi3, names)
        return OutBatch(columns, rows=rows, shap_abs_sum=np.abs(phi3).sum(axis=(0, 2)))

    def _prediction_columns(self, matrix: np.ndarray, y: Optional[np.ndarray],
                            names: Any) -> List[Tuple[str, Values]]:
        k = self.forest.n_outputs
        margin = self.forest.predict(matrix, self.explainer.n_threads).reshape(-1, k)
        out = [(next(names), self._cast(margin[:, o])) for o in range(k)]
        if self._has_link:
            response = self.forest.output_function.response(margin)
            out += [(next(names), self._cast(response[:, o])) for o in range(k)]
        if self.model_output == "log_loss":
            loss = _background.explained_output(self.forest, matrix, "log_loss", y,
                                                self.explainer.n_threads)
            out.append((next(names), self._cast(loss[:, 0])))
        return out

    def _top_columns(self, phi3: np.ndarray, names: Any) -> List[Tuple[str, Values]]:
        out: List[Tuple[str, Values]] = []
        if not self.top_k:
            return out
        for o in range(phi3.shape[2]):
            values = phi3[:, :, o]
            order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :self.top_k]
            top = np.take_along_axis(values, order, axis=1)
            for i in range(self.top_k):
                out.append((next(names), Labels(order[:, i].astype(np.int32), self.names)))
                out.append((next(names), self._cast(top[:, i])))
        return out

    def _interactions(self, matrix: np.ndarray) -> OutBatch:
        phi = self.explainer.shap_interaction_values(matrix, features=self.selected)
        rows, s, k = phi.shape[0], len(self.selected), self.forest.n_outputs
        flat = phi.reshape(rows * s * s, k)
        grid = np.arange(s * s, dtype=np.int32)
        picked = np.asarray(self.selected, dtype=np.int32)
        columns: List[Tuple[str, Values]] = [
            ("feature_i", Labels(np.tile(picked[grid // s], rows), self.names)),
            ("feature_j", Labels(np.tile(picked[grid % s], rows), self.names))]
        columns += [(name, self._cast(flat[:, o]))
                    for o, name in enumerate(_per_output("interaction", k))]
        return OutBatch(columns, repeat=s * s, array=phi.astype(self.dtype, copy=False),
                        rows=rows)

    def _cast(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=self.dtype)


def _per_output(name: str, k: int) -> List[str]:
    return [name] if k == 1 else [f"{name}__{o}" for o in range(k)]


def _unique_names(names: Any, what: str) -> List[str]:
    if names is None:
        return []
    items = [names] if isinstance(names, str) else list(names)
    if not all(isinstance(n, str) and n for n in items):
        raise TypeError(f"{what} must be column names (strings), got {items!r}")
    if len(set(items)) != len(items):
        raise ValueError(f"{what} names a column twice: {items}")
    return items


# ------------------------------------------------------------------ Arrow input


@dataclass
class Chunk:
    """A batch ready for ``BatchPlan.explain``: features ``[rows, n_features]``, labels
    ``[rows]`` (or None) and the kept columns' values (Arrow or NumPy arrays)."""

    matrix: np.ndarray
    labels: Optional[np.ndarray]
    kept: List[Any]


class ArrowJob:
    """A ``BatchPlan`` bound to the schema of its input batches.

    Resolves, before any row is read, the feature columns (by the model's names, or the
    first ``n_features`` other columns), the kept columns and the ``target`` column
    (labels for ``log_loss``), and the output schema; ValueError / TypeError name a
    missing column or a column that cannot be a feature.
    """

    def __init__(self, plan: BatchPlan, schema: Any, target: Optional[str] = None) -> None:
        from . import _arrow

        names = [str(n) for n in schema.names]
        check_present(plan.keep, names, "kept")
        if target is not None:
            check_present([target], names, "target")
        elif plan.needs_labels:
            raise ValueError("model_output='log_loss' needs the labels: name the target "
                             "column")
        self.plan = plan
        self.input_names = names
        reserved = plan.keep + ([target] if target is not None else [])
        self.selection = _arrow.select_columns(names, plan.forest.spec, reserved)
        _arrow.check_feature_types(schema, self.selection, plan.forest.spec)
        self.kept_positions = [names.index(k) for k in plan.keep]
        self.target_position = names.index(target) if target is not None else None
        self.schema = _arrow.output_schema(plan, [schema.field(p) for p in self.kept_positions])

    @property
    def features_by_position(self) -> bool:
        """Whether the features were taken by position (the model has no names)."""
        return self.selection.by_position

    def prepare(self, batch: Any) -> Chunk:
        """Features, labels and kept columns of a pyarrow RecordBatch / Table."""
        from . import _arrow

        if [str(n) for n in batch.schema.names] != self.input_names:
            raise ValueError(f"a batch has columns {batch.schema.names}, the first batch had "
                             f"{self.input_names}")
        spec = self.plan.forest.spec
        matrix = _arrow.feature_matrix(batch, self.selection, spec,
                                       encode_raw_categories=False)
        if _inputs.hashed_categories(spec):
            matrix = matrix.view(_inputs.EncodedRows)  # CatBoost categories are codes already
        labels = None
        if self.target_position is not None:
            name = self.input_names[self.target_position]
            labels = _arrow.column_values(batch.column(self.target_position), name, -1, spec)
        return Chunk(matrix, labels, [batch.column(p) for p in self.kept_positions])

    def finish(self, out: OutBatch, kept: List[Any]) -> Any:
        """The output RecordBatch of a computed chunk."""
        from . import _arrow

        return _arrow.record_batch(out, kept, self.schema)

    def explain(self, batch: Any) -> Any:
        """One RecordBatch in, one out (same rows, in order)."""
        chunk = self.prepare(batch)
        return self.finish(self.plan.explain(chunk.matrix, chunk.labels), chunk.kept)


def check_present(wanted: Sequence[str], names: Sequence[str], what: str) -> None:
    """ValueError naming the ``wanted`` columns that ``names`` lacks."""
    from ._inputs import show

    missing = [w for w in wanted if w not in names]
    if missing:
        raise ValueError(f"unknown {what} column(s) {show(missing)}; the input has "
                         f"{show(list(names))}")
