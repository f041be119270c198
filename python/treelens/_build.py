"""How the compiled core was built, and the warning for a thread count it cannot honour."""
from __future__ import annotations

import functools
import warnings
from typing import Any, Dict

from . import _core


@functools.lru_cache(maxsize=None)
def _core_info() -> Dict[str, Any]:
    return dict(_core.build_info())


def build_info() -> Dict[str, Any]:
    """How the compiled core was built.

    Keys: ``openmp`` (bool: threads available), ``openmp_version`` (int, e.g. 201511, or
    None), ``simd`` (``"vector extensions"`` or ``"scalar fallback"``), ``simd_targets``
    (list of the instruction sets the kernels were compiled for, e.g. ``["avx2", "sse2"]``),
    ``simd_selected`` (the one this CPU runs), ``compiler`` (name and version), and
    ``version`` (the treelens version).
    """
    from . import __version__
    info = dict(_core_info())
    info["simd_targets"] = list(info["simd_targets"])
    info["version"] = __version__
    return info


def warn_if_single_threaded(n_threads: int) -> None:
    """Warn when more than one thread is asked of a build without OpenMP."""
    if n_threads > 1 and not _core_info()["openmp"]:
        warnings.warn(f"n_threads={n_threads} was asked, but this treelens build has no "
                      "OpenMP and runs on one thread (see treelens.build_info(); rebuild "
                      "with an OpenMP runtime, e.g. libomp on macOS)", RuntimeWarning,
                      stacklevel=4)
