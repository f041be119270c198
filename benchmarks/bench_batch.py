"""W6: a batch job, Parquet in -> SHAP Parquet out, next to the kernel alone and the way
users do it without treelens.

    python benchmarks/bench_batch.py                   # 1M and 4M rows, 2 threads
    python benchmarks/bench_batch.py --rows 200000     # a quicker run

The W1 model (XGBoost, 100 trees of depth 6, 50 features) explains ``rows`` rows stored
in a Parquet file (row groups of 128k rows, the 50 features as float32 and an ``id``
column). Methods, run in interleaved rounds (each method's best of ``--repeats``):

- ``treelens explain`` job: the command line in a child process, ``--keep id``, Parquet
  out; wall and CPU seconds and the child's peak RSS (all of reading, explaining, writing).
- treelens kernel: ``Forest.shap_values`` on the same rows already in memory (float32),
  in this process: the floor the job is measured against.
- pandas + xgboost: ``pd.read_parquet``, ``Booster.predict(DMatrix(chunk),
  pred_contribs=True)`` per 64k-row chunk, a DataFrame with the id written through
  ``pyarrow.parquet.ParquetWriter``, in a child process. It runs on a prefix of the rows
  (``--peer-rows``) and its time is scaled to all rows, as the note column says.

Before timing, the job's output is checked against the kernel's values (bit for bit) and
the peer's prefix against the kernel (float32 tolerance).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PEER_SCRIPT = """
import sys, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq, xgboost as xgb
model, data, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
booster = xgb.Booster(model_file=model)
booster.set_param({"nthread": threads})
frame = pd.read_parquet(data)
features = [c for c in frame.columns if c != "id"]
writer = None
for start in range(0, len(frame), 65536):
    chunk = frame.iloc[start:start + 65536]
    phi = booster.predict(xgb.DMatrix(chunk[features], nthread=threads), pred_contribs=True)
    result = pd.DataFrame(phi[:, :-1], columns=features, index=chunk.index)
    result.insert(0, "id", chunk["id"].to_numpy())
    result["expected_value"] = phi[:, -1]
    table = pa.Table.from_pandas(result, preserve_index=False)
    writer = writer or pq.ParquetWriter(out, table.schema)
    writer.write_table(table)
writer.close()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1000000,4000000",
                        help="comma-separated row counts (default 1000000,4000000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-rows", type=int, default=50_000,
                        help="rows the pandas + xgboost job runs on (scaled to all rows)")
    parser.add_argument("--workdir", default=None, help="where the Parquet files go")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    from batch_job import BatchBench

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="treelens-w6-"))
    print(f"# W6: Parquet -> SHAP Parquet, W1 model, {args.threads} threads\n")
    for rows in [int(r) for r in args.rows.split(",")]:
        bench = BatchBench(workdir, rows, args.threads, args.peer_rows, PEER_SCRIPT)
        bench.prepare()
        print(bench.table(bench.run(args.repeats)))
        print(flush=True)
        bench.cleanup()
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    status = main()
    print(f"total {time.perf_counter() - started:.0f} s")
    sys.exit(status)
