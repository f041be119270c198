"""The W6 batch-job benchmark's data, methods and table (used by ``bench_batch.py``)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np

from timing import wait_for_quiet
from workloads import build_workload

ROW_GROUP = 128 * 1024
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(proc.stderr.read().decode())
print(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
"""
WRITE_ROWS = 256 * 1024


@dataclass
class Timing:
    """Best wall seconds over the rounds, with that round's CPU seconds and peak RSS."""

    wall: float = float("inf")
    cpu: float = float("nan")
    rss_mb: float = float("nan")
    rounds: List[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float, rss_mb: float = float("nan")) -> None:
        self.rounds.append(wall)
        if wall < self.wall:
            self.wall, self.cpu, self.rss_mb = wall, cpu, rss_mb


class BatchBench:
    def __init__(self, workdir: Path, rows: int, threads: int, peer_rows: int,
                 peer_script: str) -> None:
        self.workdir = workdir / f"rows-{rows}"
        self.rows, self.threads = rows, threads
        self.peer_rows = min(peer_rows, rows)
        self.peer_script = peer_script
        self.data = self.workdir / "rows.parquet"
        self.peer_data = self.workdir / "peer_rows.parquet"
        self.model = self.workdir / "W1.json"
        self.out = self.workdir / "shap.parquet"

    # ----------------------------------------------------------------- data

    def prepare(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        import treelens

        self.workdir.mkdir(parents=True, exist_ok=True)
        workload = build_workload("W1", self.rows, self.threads)
        workload.model.save_model(str(self.model))
        self.X = workload.X
        names = [f"f{j}" for j in range(self.X.shape[1])]
        schema = pa.schema([("id", pa.int64())] + [(n, pa.float32()) for n in names])
        for path, n in ((self.data, self.rows), (self.peer_data, self.peer_rows)):
            with pq.ParquetWriter(path, schema) as writer:
                for a in range(0, n, WRITE_ROWS):
                    b = min(a + WRITE_ROWS, n)
                    columns = [pa.array(np.arange(a, b, dtype=np.int64) + 10**9)]
                    columns += [pa.array(self.X[a:b, j]) for j in range(self.X.shape[1])]
                    writer.write_table(pa.Table.from_arrays(columns, schema=schema),
                                       row_group_size=ROW_GROUP)
        self.forest = treelens.load(str(self.model))
        self.names = names

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -------------------------------------------------------------- methods

    def _child(self, argv: List[str]) -> tuple:
        """(wall, CPU, peak RSS MiB) of a child process.

        The child is started by a small launcher process: Linux carries a process's peak
        RSS across exec, so a child forked straight from this (large) process would report
        this process's memory as its own peak.
        """
        out = subprocess.run([sys.executable, "-c", LAUNCHER] + argv, capture_output=True,
                             text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed: {out.stderr}")
        wall, cpu, rss_kb = (float(v) for v in out.stdout.split())
        return wall, cpu, rss_kb / 1024.0

    def job(self) -> tuple:
        treelens = shutil.which("treelens", path=os.path.dirname(sys.executable))
        command = [treelens] if treelens else [sys.executable, "-m", "treelens"]
        return self._child(command + [
            "explain", str(self.model), str(self.data), "-o", str(self.out), "--keep", "id",
            "--threads", str(self.threads), "--overwrite", "--no-progress"])

    def kernel(self) -> tuple:
        wall, cpu = time.perf_counter(), time.process_time()
        self.phi = self.forest.shap_values(self.X, self.threads)
        return time.perf_counter() - wall, time.process_time() - cpu, float("nan")

    def peer(self) -> tuple:
        return self._child([sys.executable, "-c", self.peer_script, str(self.model),
                            str(self.peer_data), str(self.workdir / "peer.parquet"),
                            str(self.threads)])

    def check(self) -> str:
        """Job output vs kernel (bitwise) and the peer's prefix vs kernel (max abs diff)."""
        import pyarrow.parquet as pq

        table = pq.read_table(self.out)
        if table.num_rows != self.rows:
            raise AssertionError(f"job wrote {table.num_rows} rows, expected {self.rows}")
        ids = table.column("id").to_numpy()
        if not np.array_equal(ids, np.arange(self.rows) + 10**9):
            raise AssertionError("job output ids differ from the input")
        job = np.column_stack([table.column(n).to_numpy() for n in self.names])
        if not np.array_equal(job, self.phi):
            raise AssertionError("job SHAP values differ from the kernel's")
        peer = pq.read_table(self.workdir / "peer.parquet")
        peer_phi = np.column_stack([peer.column(n).to_numpy() for n in self.names])
        return f"{np.abs(peer_phi - self.phi[:self.peer_rows]).max():.1e}"

    # ---------------------------------------------------------------- rounds

    def run(self, repeats: int) -> Dict[str, object]:
        methods = {"treelens explain job (Parquet -> Parquet)": self.job,
                   "treelens kernel, rows in memory": self.kernel,
                   "pandas + xgboost pred_contribs job": self.peer}
        timings = {name: Timing() for name in methods}
        load_before = wait_for_quiet(self.threads)
        for round_ in range(repeats):
            # Every other round runs the methods in reverse order: on a machine whose speed
            # drifts under sustained load, no method always runs first or last.
            order = list(methods.items())
            for name, method in (order if round_ % 2 == 0 else order[::-1]):
                timings[name].add(*method())
            if round_ == 0:
                diff = self.check()
        load_after = os.getloadavg()[0]
        return {"timings": timings, "diff": diff, "load": (load_before, load_after)}

    def table(self, result: Dict[str, object]) -> str:
        timings: Dict[str, Timing] = result["timings"]  # type: ignore[assignment]
        kernel = timings["treelens kernel, rows in memory"].wall
        scale = self.rows / self.peer_rows
        lines = [f"{self.rows:,} rows x 50 features + id",
                 "", "| method | wall s | CPU s | peak RSS MB | x kernel | note |",
                 "|---|---:|---:|---:|---:|---|"]
        for name, t in timings.items():
            wall, cpu, note = t.wall, t.cpu, f"best of {len(t.rounds)}"
            if name.startswith("pandas"):
                wall, cpu = wall * scale, cpu * scale
                note += f", run on {self.peer_rows:,} rows and scaled (peak RSS of that " \
                        f"run); max abs diff {result['diff']} (float32 contributions)"
            rss = "" if np.isnan(t.rss_mb) else f"{t.rss_mb:,.0f}"
            lines.append(f"| {name} | {wall:.2f} | {cpu:.2f} | {rss} | "
                         f"{wall / kernel:.2f} | {note} |")
        before, after = result["load"]  # type: ignore[misc]
        flag = (" (LOADED: other work above 0.5 per core)"
                if before / self.threads > 0.5 else "")
        lines.append(f"\nload average before {before:.2f}, after {after:.2f}{flag}")
        return "\n".join(lines)
