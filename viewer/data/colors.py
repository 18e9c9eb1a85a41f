"""Point colours by step, label, kind or a metric, and their legend scale."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stores import format as fmt
from viewer.data.map_data import MapData


ColorMode = str  # "step" | "label" | "kind" | "metric:<name>"


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
           "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")
REFERENCE_COLOR = "#9e9e9e"


def label_colors(n: int) -> tuple[str, ...]:
    """``n`` distinct colours: the palette, then hues a golden angle apart at alternating
    lightness (48 labels repeated the palette's 20: lab_0, lab_20 and lab_40 were one blue)."""
    import colorsys

    extra = []
    for i in range(max(0, n - len(PALETTE))):
        rgb = colorsys.hls_to_rgb((0.61803398875 * i) % 1.0, (0.35, 0.55, 0.7)[i % 3], 0.65)
        extra.append("#" + "".join(f"{round(255 * c):02x}" for c in rgb))
    return (PALETTE + tuple(extra))[:n]
KIND_COLORS = {"generated": "#1f77b4", "real": "#6d6d6d", "holdout": "#2ca02c"}
# Viridis stops (matplotlib's), for the raster, the markers and the legend.
_VIRIDIS = np.array([[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
                     [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]],
                    np.float64)


def _viridis(t: np.ndarray) -> np.ndarray:
    """t in [0, 1] -> RGB float (n, 3) in 0..255."""
    t = np.clip(np.nan_to_num(t, nan=0.0), 0, 1) * (len(_VIRIDIS) - 1)
    lo = np.floor(t).astype(int)
    hi = np.minimum(lo + 1, len(_VIRIDIS) - 1)
    w = (t - lo)[:, None]
    return _VIRIDIS[lo] * (1 - w) + _VIRIDIS[hi] * w


def _hex_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@dataclass(frozen=True, slots=True)
class Coloring:
    """How rows are coloured: categories (codes + names + colours) or continuous values."""

    title: str
    categorical: bool
    codes: np.ndarray | None = None  # int (n,) category code per row, -1: none
    names: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    values: np.ndarray | None = None  # float (n,) for continuous; NaN: no value
    vmin: float = 0.0
    vmax: float = 1.0
    single: bool = False  # every value the same (one step): coloured at the scale's middle


def _scale(title: str, values: np.ndarray, lo: float, hi: float) -> Coloring:
    """A continuous colouring over [lo, hi]; a single value sits at the middle of a unit range
    around it (it was drawn at the dark end, and the legend read "step 1,000 → 1,001")."""
    if hi > lo:
        return Coloring(title, False, values=values, vmin=lo, vmax=hi)
    return Coloring(title, False, values=values, vmin=lo - 0.5, vmax=lo + 0.5, single=True)


def coloring(d: MapData, mode: ColorMode, metric: np.ndarray | None = None) -> Coloring:
    """The colouring of every laid-out row for a colour mode (by kind while no generated step
    is laid out: a step colour bar of nothing said nothing)."""
    ref = d.kind != fmt.KIND_CODES["generated"]
    if mode == "kind" or (mode == "step" and not len(d.steps)):
        names = tuple(d.kinds)
        return Coloring("kind", True, d.kind.astype(np.int64), names,
                        tuple(KIND_COLORS.get(k, PALETTE[i % len(PALETTE)]) for i, k in enumerate(names)))
    if mode == "label":
        names = tuple(d.labels) + ("(no label)",)
        codes = np.where(d.label < 0, len(d.labels), d.label).astype(np.int64)
        colors = label_colors(len(d.labels)) + (REFERENCE_COLOR,)
        return Coloring("label", True, codes, names, colors)
    if mode.startswith("metric:") and metric is not None:
        values = np.asarray(metric, np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        return _scale(mode.split(":", 1)[1], values, lo, hi)
    values = np.where(ref, np.nan, d.step).astype(np.float64)
    lo = float(d.steps.min()) if len(d.steps) else 0.0
    hi = float(d.steps.max()) if len(d.steps) else 1.0
    return _scale("step", values, lo, hi)


def row_rgb(c: Coloring, rows: np.ndarray) -> np.ndarray:
    """RGB floats (len(rows), 3) for the raster."""
    if c.categorical:
        table = np.array([_hex_rgb(x) for x in c.colors] + [_hex_rgb(REFERENCE_COLOR)], np.float64)
        codes = c.codes[rows]
        return table[np.where(codes < 0, len(c.colors), codes)]
    v = c.values[rows]
    rgb = _viridis((v - c.vmin) / (c.vmax - c.vmin))
    rgb[~np.isfinite(v)] = _hex_rgb(REFERENCE_COLOR)
    return rgb

