"""Specs of the map (markers, or a raster with sampled markers) and of the signals chart."""
from __future__ import annotations

import base64
import hashlib
import io
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import streamlit as st

from viewer.data.colors import REFERENCE_COLOR, ColorMode, Coloring, _viridis, row_rgb
from viewer.data.commits import Commit, forget_older_commits
from viewer.data.filters import Filters
from viewer.data.map_data import Layout, MapData
from viewer.data.step_signals import METRIC_BETTER, _alert_line, _alert_matches


log = logging.getLogger(__name__)


#: The map's container key, and the CSS selector of the drawn map (the preload and the
#: browser tests find it by this).
MAP_CONTAINER = "evo_map"
MAP_SELECTOR = f".st-key-{MAP_CONTAINER} .evomap"
#: Visible points drawn one by one as markers; above this the map is a raster.
MAX_POINTS = 40_000
#: Markers drawn over the raster for hover and clicks.
SAMPLE_POINTS = 8_000
#: Raster size (pixels) of the density map.
RASTER_SIZE = (1000, 640)


def _bounds(xy: np.ndarray, layout: Layout = "rectilinear") -> tuple[float, float, float, float]:
    """The view: the points with a margin; the rings' whole circles (radial: centred on the
    origin), so the outermost ring's name has room above it however few points it holds."""
    if not len(xy):
        return -1.0, 1.0, -1.0, 1.0
    if layout == "radial":
        r = float(np.hypot(xy[:, 0], xy[:, 1]).max()) * 1.03 or 1.0
        return -r, r, -r, r
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    px, py = max((x1 - x0) * 0.03, 1e-3), max((y1 - y0) * 0.03, 1e-3)
    return float(x0 - px), float(x1 + px), float(y0 - py), float(y1 + py)


def density_png(xy: np.ndarray, rgb: np.ndarray, bounds: tuple[float, float, float, float],
                size: tuple[int, int] = RASTER_SIZE) -> str:
    """Datashader-style aggregate: mean colour per pixel, opacity from log(count); a data URI."""
    from PIL import Image

    w, h = size
    x0, x1, y0, y1 = bounds
    ix = np.clip(((xy[:, 0] - x0) / (x1 - x0) * w).astype(np.int64), 0, w - 1)
    iy = np.clip(((y1 - xy[:, 1]) / (y1 - y0) * h).astype(np.int64), 0, h - 1)
    flat = iy * w + ix
    count = np.bincount(flat, minlength=w * h).astype(np.float64)
    img = np.zeros((w * h, 4), np.uint8)
    hit = count > 0
    for ch in range(3):
        s = np.bincount(flat, weights=rgb[:, ch], minlength=w * h)
        img[hit, ch] = np.clip(s[hit] / count[hit], 0, 255).astype(np.uint8)
    alpha = np.log1p(count[hit]) / np.log1p(count.max()) if hit.any() else np.zeros(0)
    img[hit, 3] = (90 + 165 * alpha).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img.reshape(h, w, 4), "RGBA").save(buf, format="PNG", optimize=False, compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def _legend(c: Coloring, rows: np.ndarray) -> dict[str, Any]:
    """Legend entries for the rows shown: the categories present, or the colour scale plus
    the rows without a value (the reference data, real and held-out, when colouring by step)."""
    if c.categorical:
        present = np.unique(c.codes[rows]) if len(rows) else np.zeros(0, np.int64)
        items = [[c.names[k] if 0 <= k < len(c.names) else "other",
                  c.colors[k] if 0 <= k < len(c.colors) else REFERENCE_COLOR] for k in present]
        return {"items": items}
    stops = ["#%02x%02x%02x" % tuple(int(v) for v in rgb) for rgb in _viridis(np.linspace(0, 1, 9))]
    number = (lambda v: f"{v:,.0f}") if c.title == "step" else (lambda v: f"{v:.4g}")
    items = []
    if len(rows) and not np.isfinite(c.values[rows]).all():
        items.append(["reference data" if c.title == "step" else f"no {c.title}", REFERENCE_COLOR])  # real and held-out
    if c.single:
        return {"items": [[f"{c.title} {number((c.vmin + c.vmax) / 2)}", stops[len(stops) // 2]], *items]}
    return {"scale": {"title": c.title, "low": number(c.vmin), "high": number(c.vmax), "stops": stops}, "items": items}


def _overlay(xy: np.ndarray, rows: np.ndarray | None) -> dict[str, list] | None:
    if rows is None or not len(rows):
        return None
    return {"x": xy[rows, 0].tolist(), "y": xy[rows, 1].tolist(), "row": rows.tolist()}


def map_spec(d: MapData, xy: np.ndarray, visible: np.ndarray, c: Coloring, *,
             layout: Layout = "rectilinear", trail: np.ndarray | None = None,
             highlight: np.ndarray | None = None, max_points: int = MAX_POINTS,
             sample_points: int = SAMPLE_POINTS, height: int = 620, seed: int = 0) -> tuple[dict[str, Any], str]:
    """The evolution map for the canvas component (:func:`viewer.canvas.evolution_map`), and its
    render mode ("points"/"density").

    Every visible row is a marker up to ``max_points``; past that the visible rows are
    aggregated into a raster (:func:`density_png`) and a fixed random sample of
    ``sample_points`` rows is drawn as faint markers for hover and clicks. Markers travel as
    base64 typed arrays (13 bytes a point before base64).
    """
    rows = np.flatnonzero(visible)
    bounds = _bounds(xy[d.current] if d.current.any() else xy, layout)
    mode = "points" if len(rows) <= max_points else "density"
    raster = None
    if mode == "density":
        raster = density_png(xy[rows], row_rgb(c, rows), bounds)
        rng = np.random.default_rng(seed)
        drawn = np.sort(rng.choice(rows, size=min(sample_points, len(rows)), replace=False))
        radius, opacity = 1.2, 0.35
    else:
        drawn = rows
        radius = 3.0 if len(rows) < 2_000 else 2.0 if len(rows) < 30_000 else 1.3
        opacity = 0.85 if len(rows) < 30_000 else 0.6
    points = {"n": int(len(drawn)), "radius": radius, "opacity": opacity,
              "x": _b64(xy[drawn, 0].astype(np.float32)), "y": _b64(xy[drawn, 1].astype(np.float32)),
              "row": _b64(drawn.astype(np.int32)),
              "rgb": _b64(np.clip(np.rint(row_rgb(c, drawn)), 0, 255).astype(np.uint8))}
    spec = {"mode": mode, "bounds": list(bounds), "equal": layout == "radial", "height": height,
            "view_key": layout, "raster": raster, "points": points, "legend": _legend(c, rows),
            "labels": _band_labels(d, xy, layout), "rings": _ring_labels(d, xy, layout), "trail": _overlay(xy, trail), "highlight": _overlay(xy, highlight)}
    return spec, mode


@st.cache_resource(max_entries=16, show_spinner=False)
def _cached_map_spec(path: str, commit: Commit, layout: str, color: str, f: Filters, trail: tuple[int, ...],
                     highlight: tuple[int, ...] | None, _d: MapData, _xy: np.ndarray, _visible: np.ndarray,
                     _c: Coloring) -> tuple[dict[str, Any], str]:
    spec, mode = map_spec(_d, _xy, _visible, _c, layout=layout,  # type: ignore[arg-type]
                          trail=np.asarray(trail, np.int64),
                          highlight=None if highlight is None else np.asarray(highlight, np.int64))
    key = repr((path, commit, layout, color, f, trail, highlight)).encode()
    spec["sig"] = hashlib.blake2b(key, digest_size=8).hexdigest()  # the component redraws only a new spec
    return spec, mode


def cached_map_spec(path: str | Path, commit: Commit, layout: Layout, color: ColorMode, f: Filters,
                    d: MapData, xy: np.ndarray, visible: np.ndarray, c: Coloring, *, trail: np.ndarray,
                    highlight: np.ndarray | None) -> tuple[dict[str, Any], str]:
    """:func:`map_spec`, shared between reruns and sessions: ``d``, ``xy``, ``visible`` and
    ``c`` are functions of (store, commit, layout, colour, filters), so those are the key. A
    selection or table click rerun, or a second browser tab, reuses the built spec (its
    raster PNG and arrays) instead of rebuilding it; a newer commit drops the older ones'
    specs. Never mutate the returned dict."""
    forget_older_commits(_cached_map_spec, str(path), commit)
    return _cached_map_spec(str(path), commit, layout, color, f, tuple(int(r) for r in trail),
                            None if highlight is None else tuple(int(r) for r in highlight), d, xy, visible, c)


def _step_rows(d: MapData, stride: int = 1) -> Iterator[tuple[np.ndarray, str]]:
    """(rows, name) of the reference ("real") and of every ``stride``-th step counted
    back from the newest (the step a live run is watched at; counted from the first, it was
    named only when the count fell right), written 1,000 like the rest of the page. The rows
    are grouped by one sort: a mask per step compared every row with each step (the radial
    map's ring names, every step: 0.4 s of each 0.5 s spec at 900 steps of 48, and growing
    as steps times rows)."""
    order = np.argsort(d.step_index, kind="stable")
    ordered = np.asarray(d.step_index)[order]
    wanted = np.array([-1, *reversed(range(len(d.steps) - 1, -1, -stride))], np.int64)
    starts, stops = np.searchsorted(ordered, wanted, "left"), np.searchsorted(ordered, wanted, "right")
    for k, start, stop in zip(wanted.tolist(), starts.tolist(), stops.tolist()):
        if stop > start:
            yield order[start:stop], "real" if k < 0 else f"{int(d.steps[k]):,}"


def _band_labels(d: MapData, xy: np.ndarray, layout: Layout) -> list[tuple[float, str]]:
    """(x, text) step names over the bands (rectilinear), at most ~25 of them."""
    if layout != "rectilinear" or not d.n:
        return []
    stride = max(1, (len(d.steps) + 1) // 25)
    return [(float(np.median(xy[rows, 0])), name) for rows, name in _step_rows(d, stride)]


def _ring_labels(d: MapData, xy: np.ndarray, layout: Layout) -> list[tuple[float, str]]:
    """(radius, text) step names of the rings (radial; the rings are centred on the origin,
    ``engine.layout.placement.place``), innermost first: every ring, at its median radius.
    The canvas draws those its zoom leaves room for, the newest first."""
    if layout != "radial" or not d.n:
        return []
    return [(float(np.median(np.hypot(xy[rows, 0], xy[rows, 1]))), name) for rows, name in _step_rows(d)]


def signals_spec(table: dict[str, np.ndarray], columns: Sequence[str], alerts: Sequence[dict[str, Any]],
                 *, title: str, focus_step: int | None = None, height_per: int = 120) -> dict[str, Any]:
    """Per-step line charts for :func:`viewer.canvas.step_lines`: one panel per column
    sharing the step axis; each alert is a red cross on the columns its rule concerns and a
    dotted line across all panels; NaN values are gaps (None)."""
    columns = [c for c in columns if c in table and c != "step"]
    steps = np.asarray(table.get("step", np.zeros(0)))
    order = np.argsort(steps, kind="stable")
    x = steps[order]
    series = []
    for col in columns:
        y = np.asarray(table[col], np.float64)[order]
        fin = np.isfinite(y)
        marks = [[int(a.get("step", 0)), float(np.interp(int(a.get("step", 0)), x[fin], y[fin])), _alert_line(a)]
                 for a in alerts if _alert_matches(a, col) and fin.any()]
        series.append({"name": col, "better": METRIC_BETTER.get(col, ""),
                       "y": [float(v) if np.isfinite(v) else None for v in y], "alerts": marks})
    alert_steps = sorted({int(a.get("step", 0)) for a in alerts})
    messages: dict[str, str] = {}  # every alert of a step (one per step hid the others of it)
    for a in sorted(alerts, key=lambda a: str(a.get("rule", ""))):
        key = str(int(a.get("step", 0)))
        messages[key] = " | ".join(filter(None, (messages.get(key), _alert_line(a))))
    return {"title": title, "steps": [int(s) for s in x], "series": series, "alert_steps": alert_steps,
            "messages": messages, "focus": focus_step, "height_per": height_per}

