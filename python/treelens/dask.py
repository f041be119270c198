"""Explain Dask DataFrames and Arrays where they live: on the workers of a Dask cluster.

>>> import treelens.dask
>>> phi = treelens.dask.shap_values(model, ddf, keep=["id"], top_k=3)   # lazy DataFrame
>>> phi.to_parquet("out/")

Each partition is explained by the same code as ``treelens.explain_table``, so the
result equals the single-process one bit for bit, partition for partition. The model (and
any background) is packed once and sent to each worker once (``Client.scatter`` with
``broadcast=True`` when a distributed client is active, one graph key otherwise); each
worker process loads it on first use and keeps it. A task uses the threads of its worker
that no other task occupies (a worker with ``nthreads=1`` runs treelens single-threaded),
so a cluster is not oversubscribed. Needs ``pip install "treelens[dask]"``.
"""
from __future__ import annotations

import weakref
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from . import _arrow, _shipping
from ._batch import ArrowJob
from .permutation import permutation_importance as _permutation_importance

DASK_EXTRA = "treelens[dask]"
_SCATTERED_KEPT = 4
_scattered: Dict[Tuple[str, str], Any] = {}
_alive: "weakref.WeakValueDictionary[Tuple[str, str], Any]" = weakref.WeakValueDictionary()


def _dask() -> Any:
    try:
        import dask
        import dask.array
        import dask.dataframe
    except ModuleNotFoundError:
        raise ImportError(f"treelens.dask needs dask: pip install \"{DASK_EXTRA}\"") from None
    return dask


def shap_values(model: Any, X: Any, keep: Optional[Sequence[str]] = None, top_k: int = 0,
                model_output: str = "raw", data: Any = None, dtype: str = "float64", *,
                prediction: bool = False, output: str = "shap", features: Any = None,
                target: Optional[str] = None, data_weights: Any = None,
                n_threads: Optional[int] = None) -> Any:
    """SHAP values of a Dask DataFrame or Array, lazily.

    DataFrame in: a DataFrame out with the columns of ``treelens.explain_table`` (the
    ``keep`` columns, SHAP values, expected value, ...), partitions and index aligned with
    the input, ``meta`` known without computing anything. Array in (``[n, m]``): an Array
    ``[n, m]`` (``[n, m, k]`` for multi-output models) in the input's row chunks;
    ``keep``, ``top_k``, ``prediction`` and interactions need a DataFrame.

    ``data``: background rows (NumPy / pandas, small: shipped with the model) for
    interventional SHAP; ``model_output`` ``"probability"`` / ``"log_loss"`` (labels from
    the ``target`` column). ``n_threads``: threads per task (default: the worker's free
    threads). Column problems (a missing or non-numeric feature, an unknown kept column,
    a name collision) raise here, before any task runs.
    """
    dask = _dask()
    opts = _shipping.options(keep, top_k, output, model_output, features, prediction, dtype)
    forest, packed = _shipping.pack(model, data, data_weights)
    plan = opts.plan(forest, data, data_weights, 1)
    shipped = _ship(packed)
    if isinstance(X, dask.array.Array):
        if opts.keep or opts.top_k or opts.prediction or opts.output != "shap":
            raise ValueError("keep, top_k, prediction and interactions need a Dask DataFrame")
        return _array(X, plan, shipped, opts, n_threads)
    if not isinstance(X, dask.dataframe.DataFrame):
        raise TypeError(f"expected a Dask DataFrame or Array, got {type(X).__name__}")
    pa = _arrow.require(what="treelens.dask")
    job = ArrowJob(plan, pa.Schema.from_pandas(X._meta, preserve_index=False), target)
    meta = job.schema.empty_table().to_pandas()
    for name in plan.label_columns():
        meta[name] = meta[name].cat.set_categories(plan.names)
    meta.index = X._meta.index[:0]
    for name in opts.keep:
        meta[name] = X._meta[name].array[:0]
    return X.map_partitions(_explain_partition, shipped, opts, target, n_threads,
                            meta=meta, align_dataframes=False)


def _ship(packed: _shipping.Packed) -> Any:
    """The packed model as a future on every worker, or the value itself without a
    distributed client (the graph then holds it under one key).

    A client scatters a model once: later calls reuse its future while this process
    holds it (the last few models are kept; older ones while results still refer to
    them), unless its data was lost. A new scatter always takes a new key, so it cannot
    race with the release of an old one.
    """
    try:
        from distributed import Client
        client = Client.current(allow_global=True)
    except (ImportError, ValueError):
        import dask

        return dask.delayed(packed, pure=True)
    key = (client.id, packed.digest)
    future = _scattered.pop(key, None) or _alive.get(key)
    if future is None or future.status != "finished":
        future = client.scatter(packed, broadcast=True, hash=False)
        _alive[key] = future
    _scattered[key] = future
    while len(_scattered) > _SCATTERED_KEPT:
        _scattered.pop(next(iter(_scattered)))
    return future


def _task_threads(n_threads: Optional[int]) -> int:
    """Threads this task may use: ``n_threads``, else its worker's unoccupied threads."""
    if n_threads is not None:
        return int(n_threads)
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return 1
    state = worker.state
    return max(1, state.nthreads - max(0, state.executing_count - 1))


def _explain_partition(part: Any, packed: _shipping.Packed, opts: _shipping.Options,
                       target: Optional[str], n_threads: Optional[int]) -> Any:
    import pyarrow as pa

    plan = _shipping.plan_for(packed, opts, _task_threads(n_threads))
    table = pa.Table.from_pandas(part, preserve_index=False)
    job = ArrowJob(plan, table.schema, target)
    out = pa.Table.from_batches([job.explain(b) for b in table.to_batches() if b.num_rows],
                                schema=job.schema).to_pandas()
    for name in plan.label_columns():
        out[name] = out[name].cat.set_categories(plan.names)
    # Kept columns are the partition's own (pandas dtypes as they were, row for row,
    # repeated for long interaction output).
    rows = np.repeat(np.arange(len(part)), len(out) // len(part) if len(part) else 0)
    out.index = part.index.take(rows)
    for name in opts.keep:
        out[name] = part[name].array.take(rows)
    return out


def _array(X: Any, plan: Any, shipped: Any, opts: _shipping.Options,
           n_threads: Optional[int]) -> Any:
    if X.ndim != 2 or X.shape[1] != plan.forest.n_features:
        raise ValueError(f"expected a 2-D array with {plan.forest.n_features} columns, got "
                         f"shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"expected a numeric array, got dtype {X.dtype}")
    X = X.rechunk({1: -1})
    m, k = plan.forest.n_features, plan.forest.n_outputs
    chunks = (X.chunks[0], (m,)) + (((k,),) if k > 1 else ())
    return X.map_blocks(_explain_block, shipped, opts, n_threads, dtype=np.dtype(opts.dtype),
                        chunks=chunks, new_axis=[2] if k > 1 else None,
                        meta=np.empty((0,) * len(chunks), dtype=opts.dtype))


def _explain_block(block: np.ndarray, packed: _shipping.Packed, opts: _shipping.Options,
                   n_threads: Optional[int]) -> np.ndarray:
    plan = _shipping.plan_for(packed, opts, _task_threads(n_threads))
    return plan.explainer.shap_values(block).astype(opts.dtype, copy=False)


def permutation_importance(model: Any, X: Any, target: str, *, max_samples: int = 100_000,
                           random_state: Any = 0, **kwargs: Any) -> Any:
    """Permutation importance on a uniform sample of a Dask DataFrame's rows.

    ``max_samples`` rows (all when fewer) are drawn without replacement, uniformly over
    the whole frame (``random_state`` seeds the draw), collected to the client, and scored
    there by ``treelens.permutation_importance`` (``**kwargs``: ``scoring``,
    ``n_repeats``, ``groups``, ``n_threads``, ...) with the same ``random_state``. The
    sample must fit in the client's memory; the cluster only selects the rows.
    """
    dask = _dask()
    if not isinstance(X, dask.dataframe.DataFrame):
        raise TypeError(f"expected a Dask DataFrame, got {type(X).__name__}")
    if target not in X.columns:
        raise ValueError(f"unknown target column {target!r}")
    sample = sample_rows(X, max_samples, random_state)
    y = sample[target].to_numpy()
    return _permutation_importance(model, sample.drop(columns=[target]), y,
                                   random_state=random_state, **kwargs)


def sample_rows(X: Any, size: int, random_state: Any = 0) -> Any:
    """A uniform sample of ``size`` rows of a Dask DataFrame (pandas, in frame order)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"max_samples must be a positive number of rows, got {size!r}")
    lengths = np.asarray(X.map_partitions(len).compute(), dtype=np.int64)
    total = int(lengths.sum())
    rng = np.random.RandomState(random_state) if not isinstance(
        random_state, np.random.RandomState) else random_state
    picked = np.sort(rng.choice(total, size=min(int(size), total), replace=False))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    per_part = [picked[(picked >= a) & (picked < b)] - a
                for a, b in zip(starts[:-1], starts[1:])]
    return X.map_partitions(_take, per_part, meta=X._meta).compute()


def _take(part: Any, per_part: Any, partition_info: Any = None) -> Any:
    return part.iloc[per_part[partition_info["number"]]]
