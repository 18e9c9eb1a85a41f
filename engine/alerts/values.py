"""A metric record's values as the rules read them (NaN where missing), and shares as messages write them."""
from __future__ import annotations

import math
from typing import Any, Mapping


def _get(rec: Mapping[str, Any], key: str) -> float:
    v = rec.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def _finite(*vals: float) -> bool:
    return all(math.isfinite(v) for v in vals)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"
