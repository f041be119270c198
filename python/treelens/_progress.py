"""A progress bar on stderr for long commands: tqdm when installed, else one plain line."""
from __future__ import annotations

import sys
import time
from typing import Any, Optional


def progress_bar(total: Optional[int], enabled: bool) -> Any:
    """A progress bar on stderr (tqdm when installed) with ``update(n)`` and ``close()``."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return _PlainProgress(total, enabled)
    return tqdm(total=total, unit=" rows", unit_scale=True, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)


class _PlainProgress:
    """Rows done and rows/s on one refreshed stderr line, at most five times a second."""

    def __init__(self, total: Optional[int], enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.done = 0
        self.start = time.perf_counter()
        self.shown = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and now - self.shown >= 0.2:
            self.shown = now
            self._show(now)

    def close(self) -> None:
        if self.enabled:
            self._show(time.perf_counter())
            sys.stderr.write("\n")

    def _show(self, now: float) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        of = f"/{self.total:,}" if self.total is not None else ""
        sys.stderr.write(f"\r{self.done:,}{of} rows  {rate:,.0f} rows/s")
        sys.stderr.flush()
