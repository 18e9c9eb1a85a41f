"""Rows a box or lasso selection holds, resolved against every visible row; an instance's trail."""
from __future__ import annotations

from typing import Any

import numpy as np

from stores import format as fmt
from viewer.data.map_data import MapData


def _points_in_polygon(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points, looping over the polygon's edges."""
    inside = np.zeros(len(x), bool)
    j = len(px) - 1
    for i in range(len(px)):
        xi, yi, xj, yj = px[i], py[i], px[j], py[j]
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < x_at)
        j = i
    return inside


def _floats(values: Any) -> np.ndarray:
    if isinstance(values, dict):  # arrays that went through Streamlit's state may come back keyed by index
        values = [values[k] for k in sorted(values, key=int)]
    return np.asarray(values, np.float64).ravel()


def selection_is_empty(selection: dict[str, Any] | None) -> bool:
    if not selection:
        return True
    return not (selection.get("box") or selection.get("lasso"))


def selected_rows(xy: np.ndarray, visible: np.ndarray, selection: dict[str, Any] | None) -> np.ndarray:
    """Rows (sorted) inside a map selection's boxes and lassos (data coordinates), resolved
    against every visible row, so raster mode loses nothing."""
    if selection_is_empty(selection):
        return np.zeros(0, np.int64)
    rows = np.flatnonzero(visible)
    x, y = xy[rows, 0], xy[rows, 1]
    hit = np.zeros(len(rows), bool)
    for kind in ("box", "lasso"):
        for region in selection.get(kind) or []:
            px, py = _floats(region.get("x", [])), _floats(region.get("y", []))
            if not len(px) or len(px) != len(py):
                continue
            inb = (x >= px.min()) & (x <= px.max()) & (y >= py.min()) & (y <= py.max())
            if kind == "box":
                hit |= inb
            else:
                sub = np.flatnonzero(inb)
                hit[sub] |= _points_in_polygon(x[sub], y[sub], px, py)
    return rows[hit]


def instance_trail(d: MapData, row: int) -> np.ndarray:
    """Rows of ``row``'s instance across all generated steps, ordered by step."""
    if row < 0 or row >= d.n or d.instance[row] < 0 or d.kind[row] != fmt.KIND_CODES["generated"]:
        return np.array([row], np.int64) if 0 <= row < d.n else np.zeros(0, np.int64)
    rows = np.flatnonzero((d.instance == d.instance[row]) & (d.kind == d.kind[row]) & d.current)
    return rows[np.argsort(d.step[rows], kind="stable")]

