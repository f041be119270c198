"""JSON model documents read by the core's reader when it can, else by ``json``."""
from __future__ import annotations

import json
from typing import Any

from .. import _core


def loads(data: bytes, columns: str = "") -> Any:
    """``json.loads(data)`` for UTF-8 bytes: the same values, read by the core, with an
    array of like objects under a member named ``columns`` decoded by column (see
    ``_core.json_loads``). Text the core does not read exactly as ``json`` does (invalid
    JSON included) goes to ``json.loads``, which raises its own errors."""
    try:
        return _core.json_loads(data, columns)
    except ValueError:
        return json.loads(data)
