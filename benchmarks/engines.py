"""The W7 benchmark's clusters, methods and table (used by ``bench_engines.py``)."""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from batch_job import Timing
from timing import wait_for_quiet
from workloads import build_workload

SHAP_UDF_ROWS = 2048


class EngineBench:
    def __init__(self, rows: int, partitions: int, peer_rows: int) -> None:
        self.rows, self.partitions = rows, partitions
        self.peer_rows = min(peer_rows, rows)
        self.clusters: Dict[int, Tuple[Any, Any]] = {}
        self.spark = None

    # ------------------------------------------------------------- set-up

    def start(self) -> None:
        import pandas as pd
        import pyarrow as pa

        workload = build_workload("W1", self.rows, 2)
        self.booster = workload.model
        names = [f"f{j}" for j in range(workload.X.shape[1])]
        self.booster.feature_names = names
        self.frame = pd.DataFrame(workload.X, columns=names)
        self.arrow = pa.Table.from_pandas(self.frame, preserve_index=False)
        self.names = names
        self._start_dask()
        self._start_spark()

    def _start_dask(self) -> None:
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

        ddf = dd.from_pandas(self.frame, npartitions=self.partitions)
        peer = dd.from_pandas(self.frame.iloc[:self.peer_rows], npartitions=self.partitions)
        self.ddf, self.peer_ddf = {}, {}
        for workers in (1, 2):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, memory_limit="6GiB")
            client = Client(cluster, set_as_default=False)
            self.clusters[workers] = (cluster, client)
            self.ddf[workers] = client.persist(ddf)
            self.peer_ddf[workers] = client.persist(peer)
            for data in (self.ddf[workers], self.peer_ddf[workers]):
                client.compute(data.map_partitions(len).sum()).result()

    def _start_spark(self) -> None:
        from pyspark.sql import SparkSession

        self.spark = (SparkSession.builder.master("local[2]")
                      .config("spark.ui.enabled", "false")
                      .config("spark.driver.memory", "6g")
                      .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                      .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
                      .getOrCreate())
        self.sdf = self.spark.createDataFrame(self.frame).repartition(self.partitions).cache()
        self.sdf.count()
        self.peer_sdf = self.spark.createDataFrame(self.frame.iloc[:self.peer_rows]) \
            .repartition(self.partitions).cache()
        self.peer_sdf.count()

    def stop(self) -> None:
        for cluster, client in self.clusters.values():
            client.close()
            cluster.close()
        if self.spark is not None:
            self.spark.stop()

    # ------------------------------------------------------------- methods

    def single(self) -> np.ndarray:
        import treelens

        out = treelens.explain_table(self.booster, self.arrow, n_threads=2)
        return np.column_stack([out.column(n).to_numpy() for n in self.names])

    def dask(self, workers: int) -> Callable[[], Any]:
        def run() -> Any:
            import treelens.dask

            client = self.clusters[workers][1]
            with client.as_current():
                out = treelens.dask.shap_values(self.booster, self.ddf[workers])
                return client.compute(out[self.names].sum()).result().to_numpy()
        return run

    def spark_treelens(self) -> Any:
        import treelens.spark

        out = treelens.spark.explain(self.sdf, self.booster)
        out.write.format("noop").mode("overwrite").save()

    def xgboost_dask(self) -> Any:
        import xgboost.dask

        client = self.clusters[2][1]
        with client.as_current():
            phi = xgboost.dask.predict(client, self.booster, self.peer_ddf[2],
                                       pred_contribs=True)
            return np.asarray(client.compute(phi.sum(axis=0)).result())[:-1]

    def shap_spark(self) -> Any:
        from pyspark.sql.types import DoubleType, StructField, StructType

        booster_bytes = bytes(self.booster.save_raw("json"))
        names = self.names
        schema = StructType([StructField(n, DoubleType()) for n in names])

        def explain(frames: Any) -> Any:
            import pandas as pd
            import shap
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(bytearray(booster_bytes))
            explainer = shap.TreeExplainer(booster)
            for frame in frames:
                phi = explainer.shap_values(frame[names])
                yield pd.DataFrame(phi, columns=names)

        self.peer_sdf.mapInPandas(explain, schema).write.format("noop").mode(
            "overwrite").save()

    # ---------------------------------------------------------------- rounds

    def check(self) -> List[str]:
        """Values of every method against the single-process ones (column sums)."""
        ref = self.single()
        notes = []
        for workers in (1, 2):
            sums = self.dask(workers)()
            notes.append(f"dask {workers}x1 column sums vs one process: "
                         f"{np.abs(sums - ref.sum(axis=0)).max():.1e}")
        import treelens.spark

        got = treelens.spark.explain(self.sdf, self.booster).select(self.names).toPandas()
        notes.append(f"spark column sums vs one process: "
                     f"{np.abs(got.to_numpy().sum(axis=0) - ref.sum(axis=0)).max():.1e}")
        peer = np.asarray(self.xgboost_dask())
        notes.append(f"xgboost.dask column sums vs treelens on the same rows: "
                     f"{np.abs(peer - ref[:self.peer_rows].sum(axis=0)).max():.1e}")
        return notes

    def run(self, repeats: int) -> Dict[str, Any]:
        methods: Dict[str, Tuple[Callable[[], Any], bool]] = {
            "treelens, one process, 2 threads": (self.single, False),
            "treelens on Dask, 2 workers x 1 thread": (self.dask(2), False),
            "treelens on Dask, 1 worker x 1 thread": (self.dask(1), False),
            "treelens on Spark, local[2]": (self.spark_treelens, False),
            "xgboost.dask.predict pred_contribs, 2 workers x 1 thread": (self.xgboost_dask,
                                                                          True),
            "shap.TreeExplainer in a Spark pandas UDF, local[2]": (self.shap_spark, True),
        }
        notes = self.check()
        timings = {name: Timing() for name in methods}
        load_before = wait_for_quiet(2)
        for round_ in range(repeats):
            # Every other round runs the methods in reverse order: on a machine whose speed
            # drifts under sustained load, no method always runs first or last.
            order = list(methods.items())
            for name, (method, _) in (order if round_ % 2 == 0 else order[::-1]):
                wall, cpu = time.perf_counter(), time.process_time()
                method()
                timings[name].add(time.perf_counter() - wall, time.process_time() - cpu)
        return {"timings": timings, "peers": {n for n, (_, p) in methods.items() if p},
                "notes": notes, "load": (load_before, os.getloadavg()[0])}

    def table(self, result: Dict[str, Any]) -> str:
        timings: Dict[str, Timing] = result["timings"]
        single = timings["treelens, one process, 2 threads"].wall
        scale = self.rows / self.peer_rows
        lines = [f"W7: W1 model, {self.rows:,} rows x 50 features in {self.partitions} "
                 "partitions, 2 cores", "",
                 "| method | seconds | rows/s | vs one process | note |",
                 "|---|---:|---:|---:|---|"]
        for name, t in timings.items():
            wall, note = t.wall, f"best of {len(t.rounds)}"
            if name in result["peers"]:
                wall *= scale
                note += f", run on {self.peer_rows:,} rows and scaled"
            lines.append(f"| {name} | {wall:.2f} | {self.rows / wall:,.0f} | "
                         f"{single / wall:.2f} | {note} |")
        lines += [""] + [f"- {n}" for n in result["notes"]]
        before, after = result["load"]
        flag = " (LOADED: other work above 0.5 per core)" if before / 2 > 0.5 else ""
        lines.append(f"\nload average before {before:.2f}, after {after:.2f}{flag}")
        return "\n".join(lines)
