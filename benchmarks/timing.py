"""Timing helpers shared by the benchmark scripts (imports nothing heavy, so scripts can set
thread variables before their libraries load)."""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Tuple

# Thread pools read these once, when their library is first imported.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def pin_threads(threads: int) -> None:
    """Cap every library's thread pool at ``threads``; call before importing them."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)


def timed(run: Callable[[], Any], repeats: int = 1,
          stop_after: float = float("inf")) -> Tuple[float, float, Any]:
    """(best wall seconds, CPU seconds of that call, last output) over up to ``repeats`` calls;
    no further call starts once the calls so far took ``stop_after`` seconds in total."""
    best, cpu_best, out, spent = float("inf"), float("nan"), None, 0.0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best:
            best, cpu_best = wall, cpu
        spent += wall
        if spent >= stop_after:
            break
    return best, cpu_best, out


def wait_for_quiet(cores: int, limit: float = 120.0) -> float:
    """Wait (at most ``limit`` seconds) until the 1-minute load average falls to 0.5 per
    core, so a run does not start on the tail of the previous one; returns the load."""
    deadline = time.perf_counter() + limit
    while os.getloadavg()[0] > 0.5 * cores and time.perf_counter() < deadline:
        time.sleep(5.0)
    return os.getloadavg()[0]


def interleaved(methods: "dict[str, Callable[[], Any]]", rounds: int = 3
                ) -> "dict[str, Tuple[float, float, Any]]":
    """Each method's (best wall seconds, CPU seconds of that call, last output) over
    ``rounds`` rounds that run every method once, in reverse order every other round (no
    method always first on a machine that slows under sustained load)."""
    best = {name: (float("inf"), float("nan"), None) for name in methods}
    names = list(methods)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            wall, cpu, out = timed(methods[name])
            if wall < best[name][0]:
                best[name] = (wall, cpu, out)
            else:
                best[name] = best[name][:2] + (out,)
    return best


def _machine_cpu_seconds() -> Optional[float]:
    """CPU seconds every process on this machine has used since boot, plus the time the
    hypervisor took from this machine's CPUs (steal), from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class LoadWatch:
    """Whether anything else used the machine during a run. Records the 1-minute load
    average when the run starts and ends, and the CPU time other processes (and a
    hypervisor's steal) took meanwhile: the machine's CPU time from /proc/stat less this
    process's own. The run is marked LOADED when the others used more than 0.5 of a core
    per core on average. The load average alone cannot tell: it counts this benchmark's own
    busy threads, and decays over about a minute after they stop, so on a two-core machine
    every run after the first would read as loaded."""

    def __init__(self, cores: Optional[int] = None) -> None:
        self.cores = cores or os.cpu_count() or 1
        self.before = os.getloadavg()[0]
        self.wall = time.perf_counter()
        self.machine = _machine_cpu_seconds()
        self.own = _own_cpu_seconds()

    def others(self) -> Optional[float]:
        """Cores' worth of CPU other processes used since the watch started (None where
        /proc/stat is not available)."""
        machine = _machine_cpu_seconds()
        if machine is None or self.machine is None:
            return None
        wall = max(time.perf_counter() - self.wall, 1e-9)
        used = (machine - self.machine) - (_own_cpu_seconds() - self.own)
        return max(used, 0.0) / wall

    def report(self) -> str:
        """One line for the benchmark's output, e.g. ``load average 1.31 before, 1.90 after
        (2 cores); other processes used 0.02 cores during the run: quiet``."""
        after = os.getloadavg()[0]
        others = self.others()
        if others is None:
            busy = max(self.before, after) > 0.5 * self.cores
            measure = ""
        else:
            busy = others > 0.5 * self.cores
            measure = f"; other processes used {others:.2f} cores during the run"
        verdict = ("LOADED: others above 0.5 per core, timings disturbed; rerun on a quiet "
                   "machine" if busy else "quiet")
        return (f"load average {self.before:.2f} before, {after:.2f} after "
                f"({self.cores} cores){measure}: {verdict}")
