"""The viewer's data layer: cached store reads, filters, selection geometry, figure builders.

The page (``viewer/app.py``) stays a thin layout over this module (style.md item 12):

- Loaders are keyed on ``(store path, Commit)``: a :class:`Commit` holds every committed
  count the viewer depends on, so a new commit from the watcher invalidates exactly the
  loaders it affects and nothing is re-read between reruns otherwise.
- Everything else is a pure function on numpy arrays returning plain values or the
  canvas components' specs (map, signals), testable without a server.

Scale (issue 6: a million points). The map is a canvas (:func:`viewer.canvas.evolution_map`) that
draws every visible point while they number at most :data:`MAX_POINTS`; past that it
switches to a datashader-style raster: every visible point is binned server-side into one
PNG (count gives the opacity, the colour mode gives the hue) and only a fixed random sample
of :data:`SAMPLE_POINTS` points is sent as markers for hover and clicks. The browser
payload therefore stays about 1 MB at any size. Box and lasso selections are resolved
server-side from the selection's geometry against *all* visible rows, not just the drawn
sample, so selecting in raster mode loses nothing. (Why not pydeck: its selection is
``single-object`` only in Streamlit 1.67; why not datashader itself: it adds numba/dask for
what ``np.bincount`` does here in tens of milliseconds.)
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import streamlit as st

from engine.alerts import NEWEST_ALERTS, alert_step, onsets_and_newest  # noqa: F401 - the page's too
from stores import format as fmt
from stores.errors import StoreFormatError
from stores.zarr_store import StoreReader

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
#: Seconds between polls of the store's committed counts.
POLL_SECONDS = 2.0
#: Thumbnails shown in a grid at most.
GRID_MAX = 60

Layout = Literal["rectilinear", "radial"]
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


# ----------------------------------------------------------------------------- commit state
@dataclass(frozen=True, slots=True)
class Commit:
    """Every committed count the viewer reads; equal commits mean equal store contents."""

    rows: int
    checkpoints: int
    layout_rows: int
    metric_rows: int
    scalar_rows: int
    sample_metrics: tuple[tuple[str, int], ...]
    alerts: int  # hash of the alert list, or of the alerts/ arrays' commit point
    # What counts do not tell: another store created at the same path (a run started again
    # into it showed the old run's metrics and map until the viewer restarted), a layout
    # recomputed (`layout --full`), metrics measured again against another reference.
    store_id: str | None = None
    layout_generation: int = 0
    metrics_reference: str | None = None
    # rows rewritten in place, the counts unchanged: a step measured again (a grid rewritten),
    # a trainer log started again with as many rows (its old losses stayed on the page; round AS)
    metrics_measured: int = 0  # hash of metrics.attrs["measured"]
    scalar_rewrites: int = 0


def _group_attributes(path: Path, group: str) -> dict[str, Any]:
    meta = path / group / "zarr.json"
    return (_attributes(meta) or {}) if meta.is_file() else {}


def _group_rows(path: Path, group: str) -> int:
    try:
        return int(_group_attributes(path, group).get("committed_rows", 0))
    except (TypeError, ValueError):
        return 0


def _attributes(meta: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None


def read_commit(path: str | Path) -> Commit:
    """The store's committed counts: cheap (a few small JSON reads), polled by the page.

    Raises
    ------
    StoreFormatError
        Missing, foreign, damaged or unsupported store (one-line message).
    """
    path = Path(path)
    attrs = _attributes(path / "zarr.json")
    meta = fmt.schema_of(attrs)
    if meta is None or meta.get("version") not in fmt.SUPPORTED_VERSIONS or not isinstance(attrs.get("committed"), dict):
        StoreReader(path)  # raises the store's own one-line message
        raise StoreFormatError(f"{path}: unreadable store metadata; restore the folder or start a new --store")
    rows = int(attrs["committed"].get("rows", 0))
    group = path / "sample_metrics"
    names = sorted(p.name for p in group.iterdir() if (p / "zarr.json").is_file()) if group.is_dir() else []
    metrics = tuple((name, _group_rows(path, f"sample_metrics/{name}")) for name in names)
    layout_rows = min(_group_rows(path, "layout"), rows) if (path / "layout" / "xy" / "zarr.json").is_file() else 0
    metric_attrs, scalar_attrs = _group_attributes(path, "metrics"), _group_attributes(path, "scalars")
    return Commit(rows=rows, checkpoints=int(attrs["committed"].get("checkpoints", 0)),
                  layout_rows=layout_rows, metric_rows=_group_rows(path, "metrics"),
                  scalar_rows=_group_rows(path, "scalars"), sample_metrics=metrics,
                  # the list (schema 1-2) or the alerts/ arrays' commit point and rewrites (3)
                  alerts=hash(repr((attrs.get("alerts", []), _group_attributes(path, "alerts")))),
                  store_id=meta.get("id"),
                  layout_generation=int(_group_attributes(path, "layout").get("generation", 0)),
                  metrics_reference=metric_attrs.get("reference"),
                  metrics_measured=hash(repr(metric_attrs.get("measured"))),
                  scalar_rewrites=int(scalar_attrs.get("rewrites", 0) or 0))


@st.cache_resource(max_entries=4, show_spinner=False)
def _reader(path: str, commit: Commit) -> StoreReader:
    return StoreReader(path)


def reader(path: str | Path, commit: Commit) -> StoreReader:
    """A read-only store handle whose attributes match ``commit`` (never mutate it)."""
    return _reader(str(path), commit)


# ----------------------------------------------------------------------------- map data
@dataclass(frozen=True, eq=False)
class MapData:
    """Per-row columns the map needs, for the rows that have layout coordinates."""

    n_rows: int  # committed sample rows
    n_superseded: int  # of them, rows of a checkpoint's earlier versions (a grid rewritten in place)
    n_reference: int  # of the current ones, real and held-out reference rows
    n_replaced_reference: int  # of the superseded ones, reference rows (a --real set replaced)
    step: np.ndarray  # int64 (n,)  n = layout rows
    kind: np.ndarray  # int8
    label: np.ndarray  # int16
    instance: np.ndarray  # int32
    current: np.ndarray  # bool: not superseded
    xy: np.ndarray  # float32 (n, 2), per-step solutions before placement
    step_index: np.ndarray  # int64: ordinal of the row's step among generated steps, -1 for references
    solution: np.ndarray  # int64: the row's checkpoint (each laid out on its own), normalised on its own
    steps: np.ndarray  # sorted generated steps present in the laid-out rows
    all_steps: np.ndarray  # sorted generated steps of all committed rows
    labels: tuple[str, ...]
    kinds: tuple[str, ...]
    encoder: dict[str, Any] = field(default_factory=dict)
    alerts: tuple[dict[str, Any], ...] = ()
    sample_metric_names: tuple[str, ...] = ()
    has_real: bool = False  # any committed real-reference row (laid out or not): metrics can be computed
    missing_chunks: tuple[str, ...] = ()  # arrays whose chunk files are gone (read as zeros): a copy cut short

    @property
    def n(self) -> int:
        return len(self.step)


def _readonly(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@st.cache_resource(max_entries=3, show_spinner="Reading the store…")
def _map_data(path: str, commit: Commit, laid_out: bool = True) -> MapData:
    r = reader(path, commit)
    n = commit.layout_rows if laid_out else commit.rows
    gen = fmt.KIND_CODES["generated"]
    if commit.rows:
        all_step = r.samples("step")
        all_kind = r.samples("kind")
        current = r.current_rows()
    else:
        all_step = np.zeros(0, np.int64)
        all_kind = np.zeros(0, np.int8)
        current = np.zeros(0, bool)
    rows = slice(0, n)
    step = all_step[:n]
    kind = all_kind[:n]
    label = r.samples("label", rows) if n else np.zeros(0, np.int16)
    instance = r.samples("instance", rows) if n else np.zeros(0, np.int32)
    xy = r.layout_xy()[:n].astype(np.float32) if laid_out and n else np.zeros((n, 2), np.float32)
    all_steps = np.unique(all_step[(all_kind == gen) & current])
    steps = np.unique(step[(kind == gen) & current[:n]])
    step_index = np.where(kind == gen, np.searchsorted(steps, step), -1).astype(np.int64)
    solution = _checkpoint_of_rows(r.checkpoints(), n) if n else np.zeros(0, np.int64)
    cur = current[:n].copy()
    _readonly(step, kind, label, instance, cur, xy, step_index, solution, steps, all_steps)
    return MapData(n_rows=commit.rows, n_superseded=int(np.count_nonzero(~current)),
                   n_reference=int(np.count_nonzero((all_kind != gen) & current)),
                   n_replaced_reference=int(np.count_nonzero((all_kind != gen) & ~current)), step=step, kind=kind,
                   label=label, instance=instance,
                   current=cur, xy=xy, step_index=step_index, solution=solution, steps=steps, all_steps=all_steps,
                   labels=tuple(r.labels), kinds=tuple(r.kinds), encoder=dict(r.encoder or {}),
                   alerts=tuple(r.alerts()), sample_metric_names=tuple(r.sample_metric_names()),
                   has_real=bool((all_kind == fmt.KIND_CODES["real"]).any()),
                   missing_chunks=tuple(r.missing_chunks()))


def _checkpoint_of_rows(ckpt: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Each of the first ``n`` rows' checkpoint index (checkpoints hold contiguous row ranges;
    an empty one sorts before the one that starts where it does)."""
    order = np.lexsort((ckpt["row_stop"], ckpt["row_start"]))
    return order[np.searchsorted(ckpt["row_start"][order], np.arange(n), side="right") - 1].astype(np.int64)


def map_data(path: str | Path, commit: Commit, laid_out: bool = True) -> MapData:
    """Cached per (store, commit): the map columns of the laid-out rows, or (``laid_out=False``,
    for the step comparison of a store without a layout) of all committed rows, xy zero."""
    return _map_data(str(path), commit, laid_out)


def placement(xy: np.ndarray, step_index: np.ndarray, layout: Layout, solution: np.ndarray | None = None) -> np.ndarray:
    """Bands (rectilinear) or rings (radial) from the per-checkpoint solutions.

    Uses ``engine.layout.placement.place`` (the engine's own definition, so the viewer and
    ``evowatch`` agree on the picture).
    """
    if not len(xy):
        return np.zeros((0, 2), np.float32)
    return _engine_place()(xy, step_index, layout, groups=solution)


def _engine_place():
    """``engine.layout.placement.place``, the engine's own code, without importing the layout
    package: ``placement.py`` only needs ``band_coordinates`` from ``quality.py``, whose module
    imports faiss and openTSNE (about 2 s of a cold first paint). Both files' functions are
    compiled into one private namespace; if their shape ever changes, the real import is used."""
    global _PLACE
    if _PLACE is None:
        try:
            _PLACE = _light_place()
        except Exception:  # noqa: BLE001 - fall back to the engine's own import
            log.debug("light placement load failed; importing engine.layout", exc_info=True)
            from engine.layout.placement import place

            _PLACE = place
    return _PLACE


_PLACE = None


def _light_place():
    import ast

    import engine

    folder = Path(engine.__file__).parent / "layout"
    quality = ast.parse((folder / "quality.py").read_text())
    placement_ = ast.parse((folder / "placement.py").read_text())
    wanted = {"band_coordinates", "rms_radius"}
    helpers = [n for n in quality.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    if {n.name for n in helpers} != wanted:
        raise ImportError("quality.py changed shape")
    body = []
    for node in placement_.body:
        if isinstance(node, ast.ImportFrom) and node.level:  # the package-relative imports
            if any(a.name not in wanted for a in node.names):
                raise ImportError("placement.py imports more than band_coordinates")
            continue
        body.append(node)
    head = [n for n in body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    rest = [n for n in body if n not in head]
    module = ast.Module(body=[*head, *helpers, *rest], type_ignores=[])
    ns: dict[str, Any] = {"__name__": "viewer._engine_placement", "np": np}
    exec(compile(ast.fix_missing_locations(module), str(folder / "placement.py"), "exec"), ns)  # noqa: S102
    return ns["place"]


@st.cache_resource(max_entries=4, show_spinner=False)
def _placed(path: str, commit: Commit, layout: str) -> np.ndarray:
    d = map_data(path, commit)
    out = placement(d.xy, d.step_index, layout, d.solution)  # type: ignore[arg-type]
    _readonly(out)
    return out


def placed(path: str | Path, commit: Commit, layout: Layout) -> np.ndarray:
    """Cached map coordinates (n_layout, 2) for ``layout``."""
    return _placed(str(path), commit, layout)


@st.cache_resource(max_entries=8, show_spinner=False)
def _sample_metric(path: str, commit: Commit, name: str, laid_out: bool = True) -> np.ndarray:
    values = reader(path, commit).sample_metric(name)[: commit.layout_rows if laid_out else commit.rows]
    _readonly(values)
    return values


def sample_metric(path: str | Path, commit: Commit, name: str, laid_out: bool = True) -> np.ndarray:
    """A per-sample metric for the laid-out rows (NaN where absent), cached per commit; with
    ``laid_out=False``, for all committed rows (measured before they are laid out)."""
    return _sample_metric(str(path), commit, name, laid_out)


NEAR_COPY = "near_copy"


def probe_names(names: Sequence[str], table: dict[str, np.ndarray] | None = None) -> list[str]:
    """Per-sample probe margins are stored as ``probe:<prompt>`` sample metrics; with the
    per-step ``table``, only the probes measured in it (a probe no longer given kept its
    margins of the steps measured before, and picking it hid every later step)."""
    probes = [n for n in names if n.startswith("probe:")]
    if table is None:
        return probes
    measured = set(_measured_columns(table))
    return [n for n in probes if fmt.array_name("probe_share:" + n.removeprefix("probe:")) in measured]


def color_metrics(names: Sequence[str]) -> list[str]:
    return [n for n in names if n != NEAR_COPY]


# ----------------------------------------------------------------------------- filters
@dataclass(frozen=True, slots=True)
class Filters:
    """What the user narrowed the map to (all optional)."""

    step_range: tuple[int, int] | None = None
    focus_step: int | None = None  # a step picked on the signals charts
    kinds: tuple[str, ...] | None = None  # None: all kinds
    labels: tuple[str, ...] | None = None  # None: all labels (unlabelled included)
    probe: str | None = None  # keep samples with a positive margin for this probe
    near_copies_only: bool = False


def filter_mask(d: MapData, f: Filters, *, probe_values: np.ndarray | None = None,
                near_copy: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask over the laid-out rows. Reference rows (step -1) ignore the step filters;
    a step picked on the signals charts overrides the Steps range (it showed nothing outside it)."""
    mask = d.current.copy()
    gen = d.kind == fmt.KIND_CODES["generated"]
    if f.step_range is not None and f.focus_step is None:
        lo, hi = f.step_range
        mask &= ~gen | ((d.step >= lo) & (d.step <= hi))
    if f.focus_step is not None:
        mask &= ~gen | (d.step == f.focus_step)
    if f.kinds is not None:
        codes = [d.kinds.index(k) for k in f.kinds if k in d.kinds]
        mask &= np.isin(d.kind, codes)
    if f.labels is not None:
        codes = [d.labels.index(lab) for lab in f.labels if lab in d.labels]
        mask &= np.isin(d.label, codes)
    if f.probe is not None and probe_values is not None:
        mask &= np.nan_to_num(probe_values, nan=-np.inf) > 0
    if f.near_copies_only and near_copy is not None:
        mask &= np.nan_to_num(near_copy, nan=0.0) > 0.5
    return mask


# ----------------------------------------------------------------------------- selection
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


# ----------------------------------------------------------------------------- colours
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


# ----------------------------------------------------------------------------- figures
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
    raster PNG and arrays) instead of rebuilding it. Never mutate the returned dict."""
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


def alerts_shown(alerts: Sequence[dict[str, Any]], newest: int = NEWEST_ALERTS) -> list[dict[str, Any]]:
    """The alerts listed above the map (:func:`engine.alerts.onsets_and_newest`)."""
    return onsets_and_newest(alerts, newest)


_STEP_NUMBERS = re.compile(r"\bstep (\d+)(?: (and|to) (\d+))?")


def step_numbers(message: str) -> str:
    """The step numbers in an alert message written as the viewer writes steps ("between step
    1,250 and 2,500", "from step 1,000 to 8,000", not "1250 and 2500"); the stored message is
    left as the engine wrote it."""
    return _STEP_NUMBERS.sub(lambda m: f"step {int(m[1]):,}" + (f" {m[2]} {int(m[3]):,}" if m[3] else ""), message)


def alert_text(alert: dict[str, Any]) -> str:
    """One alert as the page lists it, named by its rule (the expander says "each rule's
    first"): "Step 2,500 · collapse: diversity fell … between step 1,250 and 2,500 …"."""
    message = step_numbers(str(alert.get("message", alert.get("rule", "alert"))))
    rule = str(alert.get("rule", "")).replace("_", " ")
    step = alert.get("step")
    where = f"Step {step:,}" if isinstance(step, int) else ""
    label = " · ".join(filter(None, (where, rule)))
    return f"{label}: {message}" if label else message


def _alert_line(alert: dict[str, Any]) -> str:
    """"rule: message", steps written as the page writes them."""
    return f"{alert.get('rule', 'alert')}: {step_numbers(str(alert.get('message', '')))}"


_RULE_METRICS = {
    "collapse": ("vendi", "pairwise_cosine", "duplicate_frac", "coverage", "recall", "region_tv"),
    "memorisation": ("near_copy_frac", "tight_copy_frac", "copy_log_ratio", "copy_zu", "nn_train_median"),
    "fd_rising": ("fd",),
    "label_drift": ("label_tv",),
    "probe_drift": ("probe_share",),
    "convergence": ("loss",),
}


#: A collapse or memorisation alert's metric, by the words of its message (engine/alerts.py's
#: conditions; a fall in diversity names its metric: a pairwise-cosine alert was marked on
#: Vendi's chart; a tight-copy alert opened the near-copy chart, round AN).
_MESSAGE_METRICS = {
    "collapse": {"Vendi score": ("vendi",), "pairwise cosine": ("pairwise_cosine",),
                 "diversity fell": ("vendi", "pairwise_cosine"), "partial mode collapse": ("duplicate_frac",),
                 "recall fell": ("recall",), "regions off": ("region_tv",)},
    "memorisation": {"near-copies": ("near_copy_frac",), "are copies of training images": ("tight_copy_frac",),
                     "log distance ratio": ("copy_log_ratio",)},
}


def _watched(alert: dict[str, Any]) -> tuple[str, ...] | None:
    """The metrics an alert's rule watches (None: unknown rule). `convergence` seen in the
    samples ("no progress …": precision and FD stalled) watches those, not the losses; a
    `collapse` or `memorisation` alert the metric its message names (a mode-dropping alert
    showed Vendi)."""
    rule, message = str(alert.get("rule", "")), str(alert.get("message", ""))
    if rule == "convergence" and message.startswith("no progress"):
        return ("precision", "fd")
    if rule in _MESSAGE_METRICS:
        return next((m for words, m in _MESSAGE_METRICS[rule].items() if words in message), _RULE_METRICS[rule])
    return _RULE_METRICS.get(rule)


def _alert_matches(alert: dict[str, Any], column: str) -> bool:
    """Mark an alert on the charts of the metrics its rule watches (all, when unknown)."""
    watched = _watched(alert)
    return watched is None or any(column.startswith(w) for w in watched)


DEFAULT_SIGNALS = ("vendi", "coverage", "precision", "fd", "near_copy_frac", "nn_train_median", "label_tv")


def _first_watched(alert: dict[str, Any], columns: Sequence[str]) -> str | None:
    """The first of the columns an alert's rule watches, in the rule's order."""
    watched = _watched(alert) or ()
    return next((c for w in watched for c in columns if c.startswith(w)), None)


def _measured_columns(table: dict[str, np.ndarray]) -> list[str]:
    return [c for c in table if c != "step" and np.isfinite(np.asarray(table[c], np.float64)).any()]


def alerted_signal_columns(table: dict[str, np.ndarray], alerts: Sequence[dict[str, Any]]) -> list[str]:
    """The metric each alert is marked on (its rule's first measured one), once each."""
    cols = _measured_columns(table)
    return list(dict.fromkeys(c for a in alerts if (c := _first_watched(a, cols))))


def default_signal_columns(table: dict[str, np.ndarray], alerts: Sequence[dict[str, Any]] = (), k: int = 4) -> list[str]:
    """The metrics plotted at first: the first of each alerting rule's (a memorisation alert
    showed no near-copy chart), then the usual ones, ``k`` in all when no rule adds more."""
    cols = _measured_columns(table)
    chosen = alerted_signal_columns(table, alerts)
    usual = [c for c in DEFAULT_SIGNALS if c in cols] or cols
    return chosen + [c for c in usual if c not in chosen][:max(0, k - len(chosen))]


@st.cache_data(max_entries=8, show_spinner=False)
def step_metrics(path: str, commit: Commit) -> dict[str, np.ndarray]:
    return reader(path, commit).step_metrics()


@st.cache_data(max_entries=8, show_spinner=False)
def scalars(path: str, commit: Commit) -> dict[str, np.ndarray]:
    return reader(path, commit).scalars()


#: What each per-step metric says and which way is good, behind the Metrics picker's help
#: icon (the page showed raw names: copy_zu, duplicate_expected). docs/metrics.md has the formulas.
METRIC_GLOSSARY = (
    "**Diversity** — `vendi`: effective number of distinct samples (higher: more diverse; a fall: collapse); "
    "`pairwise_cosine`: mean cosine distance between samples (a fall: collapse); `duplicate_frac`: share of "
    "samples with a near-duplicate among the step's (a rise: partial collapse; `duplicate_expected`: real data's).  \n"
    "**Fidelity** — `precision`: share of samples that look like real data (higher better); `recall` and "
    "`coverage`: share of the real data the samples cover (higher better); `density`; `fd`: Fréchet distance "
    "to the real features (lower better); `region_tv`: how far the samples' shares of the real data's regions "
    "(k-means of its features) are from the real ones (a rise past `region_tv_chance`: modes dropped); "
    "`region_empty_share`: real data in regions without a sample.  \n"
    "**Copying** — `near_copy_frac`: share of samples nearly identical to a training image (a rise: "
    "memorisation; `near_copy_expected`: chance level); `tight_copy_frac`: share closer to a training image than "
    "nearly every held-out image is (exact copies; `tight_copy_expected`: chance level); `nn_train_median`: median distance to the nearest "
    "training image; `copy_log_ratio`: about 0 when samples are no closer to training than to held-out data, "
    "below 0 when copying; `copy_zu`: Meehan's test, far below 0 copying, far above underfitting.  \n"
    "**Bias** — `label_tv`: distance between the samples' label shares and the real ones (lower better); "
    "`label_share:L`, `probe_share:P` and their `_ref_` counterparts.  \n"
    "**The real reference's** — `real_vendi`, `real_pairwise_cosine`: the real data's values at the step's size "
    "(the diversity bar); `real_pairwise_cosine_sd`: how far `pairwise_cosine` of that many real samples moves by "
    "chance.  \n"
    "**Counts and thresholds** — `n_generated`: the samples measured; `n_reference`, `n_holdout`: the real and "
    "held-out samples; `regions`: the real data's regions; `duplicate_threshold`, `near_copy_threshold`, "
    "`tight_copy_threshold`: the distances under which a sample counts as a duplicate or a copy; "
    "`copy_neighbourhoods`, `copy_log_ratio_p`: the distinct training neighbourhoods `copy_log_ratio` is over, and "
    "its sign test's p-value; `copy_null_share`: the chance that test counts a fresh sample's neighbourhood closer "
    "in this store. Formulas and sources: docs/metrics.md.")


#: Which way is good, after a metric's name on its chart (the glossary says why).
METRIC_BETTER = {
    **dict.fromkeys(("vendi", "pairwise_cosine", "precision", "recall", "coverage", "nn_train_median"),
                    "higher is better"),
    **dict.fromkeys(("duplicate_frac", "fd", "near_copy_frac", "tight_copy_frac", "label_tv", "region_tv", "region_empty_share"),
                    "lower is better"),
    **dict.fromkeys(("copy_log_ratio", "copy_zu"), "best near 0"),
}


def watched_without_metrics(path: str, commit: Commit) -> bool:
    """Whether the store's latest watch ran with ``--no-metrics`` (no metrics nor losses will come)."""
    watches = [entry for entry in reader(path, commit).attrs.get("history", []) if entry.get("event") == "watch"]
    return bool(watches and watches[-1].get("no_metrics"))


# ----------------------------------------------------------------------------- samples
@st.cache_data(max_entries=64, show_spinner=False)
def _sample_columns(path: str, store_id: str | None, rows: tuple[int, ...], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    r = StoreReader(path)  # rows already committed: read as they are now
    idx = np.asarray(rows, np.int64)
    return {name: r.samples(name, idx) for name in names}


def sample_columns(path: str | Path, commit: Commit, rows: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns (e.g. 'thumbnail', 'path') for a few committed rows, cached per (store, rows):
    committed rows never change, and keyed on the commit too, an instance trail left open on
    a live run cached its thumbnails again at every commit (96 px, 90 commits: +330 MB)."""
    rows = np.asarray(rows, np.int64)
    if not len(rows):
        return {name: np.zeros(0) for name in names}
    if rows.max() >= commit.rows:
        raise IndexError(f"rows outside the {commit.rows} committed rows")
    order = np.argsort(rows)
    got = _sample_columns(str(path), commit.store_id, tuple(int(r) for r in rows[order]), tuple(names))
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return {name: values[inverse] for name, values in got.items()}


@dataclass(frozen=True)
class RowColumns:
    """What a description of some rows reads of the map, for those rows only: an export made
    when fetched holds this, not the MapData (40 bytes a row: 40 MB at a million rows, for each
    of the 32 selections viewer/export.py keeps)."""

    rows: np.ndarray
    step: np.ndarray
    kind: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    kinds: tuple[str, ...]
    labels: tuple[str, ...]

    @classmethod
    def of(cls, d: MapData, rows: np.ndarray) -> RowColumns:
        rows = np.asarray(rows, np.int64)
        return cls(rows, d.step[rows], d.kind[rows], d.label[rows], d.instance[rows], d.kinds, d.labels)

    def describe(self) -> dict[str, list[Any]]:
        gen = fmt.KIND_CODES["generated"]
        return {
            "row": self.rows.tolist(),
            "step": [s if k == gen else -1 for s, k in zip(self.step.tolist(), self.kind.tolist())],
            "kind": [self.kinds[k] if k < len(self.kinds) else "?" for k in self.kind.tolist()],
            "label": [self.labels[x] if 0 <= x < len(self.labels) else "" for x in self.label.tolist()],
            "instance": self.instance.tolist(),
        }


def describe_rows(d: MapData, rows: np.ndarray) -> dict[str, list[Any]]:
    """Step, kind, label, instance per row (no store read)."""
    return RowColumns.of(d, rows).describe()


def export_maker(path: str | Path, commit: Commit, d: MapData, rows: np.ndarray) -> Callable[[], str]:
    """A function that makes the selection's CSV when the export is asked for, its paths read
    from the store then (those of 100,000 rows take about 2 s), holding the selected rows'
    columns only; it refuses a store made again since the selection."""
    return functools.partial(_export, str(path), commit.store_id, RowColumns.of(d, rows))


def _export(path: str, store_id: str | None, columns: RowColumns) -> str:
    reader = StoreReader(path)
    if fmt.schema_of(reader.attrs).get("id") != store_id:
        raise StoreFormatError(f"{path}: the store was made again since this selection; select again on the page")
    order = np.argsort(columns.rows)
    paths = np.empty(len(columns.rows), object)
    paths[order] = reader.samples("path", columns.rows[order])
    return _csv(columns, [str(p) for p in paths])


def _csv(columns: RowColumns, paths: Sequence[str]) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["row", "step", "kind", "label", "instance", "path"])
    desc = columns.describe()
    for i in range(len(columns.rows)):
        w.writerow([desc["row"][i], desc["step"][i], desc["kind"][i], desc["label"][i], desc["instance"][i], paths[i]])
    return buf.getvalue()


def grid_rows(rows: np.ndarray, limit: int = GRID_MAX) -> np.ndarray:
    """At most ``limit`` rows of a selection (or a trail) for a thumbnail grid: an even spread,
    in their order, the first and the last kept."""
    if len(rows) <= limit:
        return rows
    idx = np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)
    return rows[idx]


def comparison_rows(d: MapData, step_a: int, step_b: int, prefer_instances: np.ndarray | None = None,
                    limit: int = 24) -> tuple[np.ndarray, np.ndarray, bool]:
    """Rows of the same instances at two steps (pairs), preferring selected instances.

    Returns (rows_a, rows_b, aligned); aligned is False when the store has no instance ids,
    in which case the first ``limit`` samples of each step are returned.
    """
    gen = (d.kind == fmt.KIND_CODES["generated"]) & d.current
    a = np.flatnonzero(gen & (d.step == step_a))
    b = np.flatnonzero(gen & (d.step == step_b))
    ia, ib = d.instance[a], d.instance[b]
    common = np.intersect1d(ia[ia >= 0], ib[ib >= 0])
    if not len(common):
        return a[:limit], b[:limit], False
    if prefer_instances is not None and len(prefer_instances):
        first = np.intersect1d(common, prefer_instances)
        common = np.concatenate([first, np.setdiff1d(common, first)])
    common = common[:limit]
    pos_a = {int(i): int(r) for i, r in zip(ia, a)}
    pos_b = {int(i): int(r) for i, r in zip(ib, b)}
    return (np.array([pos_a[int(i)] for i in common], np.int64),
            np.array([pos_b[int(i)] for i in common], np.int64), True)


def mosaic(thumbs: np.ndarray, cols: int = 8, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile (n, T, T, 3) thumbnails into one image (white gaps)."""
    n = len(thumbs)
    if not n:
        return np.full((8, 8, 3), 255, np.uint8)
    if scale > 1:
        thumbs = thumbs.repeat(scale, axis=1).repeat(scale, axis=2)
    t = thumbs.shape[1]
    cols = min(cols, n)
    rows = -(-n // cols)
    out = np.full((rows * (t + pad) + pad, cols * (t + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(thumbs):
        r, c = divmod(i, cols)
        out[pad + r * (t + pad): pad + r * (t + pad) + t, pad + c * (t + pad): pad + c * (t + pad) + t] = img
    return out


# ----------------------------------------------------------------------------- text query
def is_clip(encoder: dict[str, Any]) -> bool:
    return str(encoder.get("identity", "")).startswith("clip")


@st.cache_resource(max_entries=1, show_spinner="Loading the text encoder…")
def text_encoder(identity: str, spec: str = ""):
    """The store's CLIP encoder on CPU, loaded from the spec the store recorded (stores
    written before it was recorded: from the identity, which loads for pretrained tags), or
    raises (the page shows the reason)."""
    from engine.encoders import make_encoder

    enc = make_encoder(spec or identity, device="cpu")
    if enc.identity != identity:
        raise ValueError(f"'{spec or identity}' now loads as '{enc.identity}', not the store's '{identity}' "
                         "(were the weights replaced?)")
    return enc


@st.cache_data(max_entries=16, show_spinner="Ranking samples…")
def _query_scores(path: str, commit: Commit, identity: str, spec: str, prompt: str) -> np.ndarray:
    enc = text_encoder(identity, spec)
    t = np.asarray(enc.encode_text([prompt]), np.float32)[0]
    r = reader(path, commit)
    n = commit.layout_rows
    out = np.empty(n, np.float32)
    step = 65536
    for start in range(0, n, step):
        emb = r.samples("embedding", slice(start, min(n, start + step))).astype(np.float32)
        out[start:start + len(emb)] = emb @ t
    return out


def query_scores(path: str | Path, commit: Commit, encoder: dict[str, Any], prompt: str) -> np.ndarray:
    """Cosine similarity of every laid-out row's embedding to the prompt (cached)."""
    return _query_scores(str(path), commit, str(encoder.get("identity", "")), str(encoder.get("spec") or ""), prompt)


def top_matches(scores: np.ndarray, visible: np.ndarray, k: int) -> np.ndarray:
    rows = np.flatnonzero(visible)
    if not len(rows):
        return rows
    k = min(k, len(rows))
    part = np.argpartition(-scores[rows], k - 1)[:k]
    best = rows[part]
    return best[np.argsort(-scores[best], kind="stable")]


def store_error_text(exc: BaseException) -> str:
    """One line for the page when the store cannot be read."""
    if isinstance(exc, StoreFormatError):
        return str(exc)
    return f"could not read the store: {type(exc).__name__}: {exc}"


def read_error_text(path: str | Path, exc: BaseException) -> str:
    """One line for a read that failed after the page loaded. When the store itself is now
    gone or broken (removed while the page is open, or copied incompletely), its own message
    ("no such store", what the live caption says), not the first array the failed read tripped over."""
    try:
        read_commit(path)
        StoreReader(path).check_complete()  # rows gone from a copy: an array ending early failed an IndexError
    except Exception as now:  # noqa: BLE001 - any failure to read the store is its message
        return store_error_text(now)
    return store_error_text(exc)
