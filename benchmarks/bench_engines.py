"""W7: treelens on Dask and Spark next to treelens in one process and today's ways.

    python benchmarks/bench_engines.py                  # 1M rows, 8 partitions, 2 cores
    python benchmarks/bench_engines.py --rows 200000 --repeats 2

The W1 model (XGBoost, 100 trees of depth 6, 50 features) explains ``rows`` rows split in
8 partitions, with 2 cores in total for every method:

- treelens, one process: ``treelens.explain_table`` with 2 threads on the rows as an Arrow
  table in memory;
- treelens on Dask: ``treelens.dask.shap_values`` on a ``LocalCluster`` of 2 worker
  processes x 1 thread (and 1 x 1, for the scaling table), the partitions persisted on the
  workers first; the result is reduced on the workers (a column sum), so what is timed is
  the explanation, not moving 400 MB to the client;
- treelens on Spark: ``treelens.spark.explain`` on ``local[2]``, the input cached first,
  the output written to Spark's ``noop`` sink;
- xgboost on Dask: ``xgboost.dask.predict(..., pred_contribs=True)`` on the same cluster;
- shap in a Spark pandas UDF: ``mapInPandas`` calling ``shap.TreeExplainer(booster)``.

Each method's time is its best over ``--repeats`` interleaved rounds. The two peers are
run on ``--peer-rows`` rows (in 8 partitions) and scaled to all rows, as the note says.
Every method's values are checked against the single-process ones before timing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-rows", type=int, default=16_000)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ["PYSPARK_PYTHON"] = sys.executable

    from engines import EngineBench

    started = time.perf_counter()
    bench = EngineBench(args.rows, args.partitions, args.peer_rows)
    try:
        bench.start()
        print(bench.table(bench.run(args.repeats)))
    finally:
        bench.stop()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
