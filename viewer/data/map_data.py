"""The map's rows (:class:`MapData`), their placement per layout and per-sample metrics, cached per commit."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import streamlit as st

from stores import format as fmt
from viewer.data.commits import Commit, reader
from viewer.data.step_signals import _measured_columns

log = logging.getLogger(__name__)


Layout = Literal["rectilinear", "radial"]


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
        ckpt = r.checkpoints()  # read once: the current rows and each row's checkpoint
        all_step = r.samples("step")
        all_kind = r.samples("kind")
        current = r.current_rows(ckpt)
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
    solution = _checkpoint_of_rows(ckpt, n) if n else np.zeros(0, np.int64)
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

