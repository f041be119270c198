"""What a call may use of the machine: threads and memory, decided in one place.

``check_threads`` turns every entry point's ``n_threads`` into a thread count no larger
than the cores this process may run on: its CPU affinity (``taskset``, container cpusets)
and its cgroup CPU quota (Docker ``--cpus``, Kubernetes limits), as XGBoost's
``threading_utils`` reads them. ``check_fits`` raises a MemoryError naming the size before a
result is allocated that the memory available now cannot hold: ``MemAvailable`` of
``/proc/meminfo``, lowered to what is left under the cgroup memory limit.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from ._build import warn_if_single_threaded

_CGROUP = "/sys/fs/cgroup"


def check_threads(n_threads: Optional[int]) -> int:
    """Thread count for a core call: ``None`` -> every usable core; a positive int is
    clamped to the usable cores. TypeError for a non-integer, ValueError below 1."""
    cores = usable_cores()
    if n_threads is None:
        return cores
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"n_threads must be a positive int or None, got {n_threads!r}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be a positive int or None, got {n_threads}")
    warn_if_single_threaded(int(n_threads))
    return int(min(n_threads, cores))


@lru_cache(maxsize=1)
def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, lowered to its cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def _cgroup_cpu_quota() -> Optional[int]:
    """Whole CPUs allowed by the cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``), at least 1; None without a quota."""
    fields = _read_words(os.path.join(_CGROUP, "cpu.max"))
    if fields is None:
        quota = _read_words(os.path.join(_CGROUP, "cpu", "cpu.cfs_quota_us"))
        period = _read_words(os.path.join(_CGROUP, "cpu", "cpu.cfs_period_us"))
        fields = None if quota is None or period is None else quota[:1] + period[:1]
    try:
        quota_us, period_us = int(fields[0]), int(fields[1])  # "max" raises: no quota
    except (TypeError, ValueError, IndexError):
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, quota_us // period_us)


def _read_words(path: str) -> Optional[Sequence[str]]:
    try:
        with open(path) as fh:
            return fh.read().split()
    except OSError:
        return None


def check_fits(what: str, shape: Sequence[int], scratch: int = 0, hint: str = "") -> None:
    """MemoryError naming the size when a float64 result of ``shape`` plus ``scratch``
    working bytes exceed the memory available now. ``what`` names the result in the
    message; ``hint`` says how to ask for less."""
    need = 8 * math.prod(int(d) for d in shape)
    available = available_memory()
    if available is None or need + scratch <= available:
        return
    dims = " x ".join(f"{int(d):,}" for d in shape)
    working = f" (plus {_size(scratch)} working memory)" if scratch else ""
    raise MemoryError(
        f"{what} of shape ({dims}) need {_size(need)}{working}, but only "
        f"{_size(available)} is available{'; ' + hint if hint else ''}")


def available_memory() -> Optional[int]:
    """Bytes this process can allocate now: MemAvailable, lowered to the room left under
    the cgroup memory limit; None when unknown."""
    available = _meminfo_available()
    room = _cgroup_memory_room()
    if room is not None:
        available = room if available is None else min(available, room)
    return available


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_memory_room() -> Optional[int]:
    """Limit minus usage of the cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``)."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes",
                                    "memory/memory.usage_in_bytes")):
        limit = _read_words(os.path.join(_CGROUP, limit_file))
        usage = _read_words(os.path.join(_CGROUP, usage_file))
        try:
            return max(0, int(limit[0]) - int(usage[0]))  # "max" raises: no limit
        except (TypeError, ValueError, IndexError):
            continue
    return None


def _size(n_bytes: int) -> str:
    """Bytes in binary units, e.g. ``3.2 GiB``."""
    value = float(n_bytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.3g} {unit}" if unit != "bytes" else f"{n_bytes} bytes"
        value /= 1024
    return f"{value:.3g} TiB"
