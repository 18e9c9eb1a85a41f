"""Selected rows' columns, thumbnails grid, export and step comparison."""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import streamlit as st

from engine.alerts import rule_onsets
from stores import format as fmt
from stores.errors import StoreFormatError
from stores.zarr_store import StoreReader
from viewer.data import copies
from viewer.data.commits import Commit
from viewer.data.map_data import MapData


#: Thumbnails shown in a grid at most.
GRID_MAX = 60


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
    return functools.partial(_export, str(path), commit, RowColumns.of(d, rows), d.has_real)


def _paths(reader: StoreReader, rows: np.ndarray) -> list[str]:
    """The ``path`` of each of ``rows``, in their order (read in the store's)."""
    order = np.argsort(rows)
    paths = np.empty(len(rows), object)
    paths[order] = reader.samples("path", rows[order])
    return [str(p) for p in paths]


def _export(path: str, commit: Commit, columns: RowColumns, has_real: bool) -> str:
    reader = StoreReader(path)
    if fmt.schema_of(reader.attrs).get("id") != commit.store_id:
        raise StoreFormatError(f"{path}: the store was made again since this selection; select again on the page")
    extra: dict[str, list[Any]] = {}
    if has_real:  # what each generated sample may copy, as the page's table shows it
        nearest, dist = copies.nearest_training(path, commit, columns.rows, columns.kind)
        extra = {"nearest_training_image": copies.training_names(nearest, lambda rows: _paths(reader, rows)),
                 "nn_train_dist": ["" if np.isnan(x) else f"{x:.6g}" for x in dist.tolist()]}
    return _csv(columns, _paths(reader, columns.rows), extra)


def _csv(columns: RowColumns, paths: Sequence[str], extra: dict[str, list[Any]]) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["row", "step", "kind", "label", "instance", "path", *extra])
    desc = columns.describe()
    for i in range(len(columns.rows)):
        w.writerow([desc["row"][i], desc["step"][i], desc["kind"][i], desc["label"][i], desc["instance"][i], paths[i],
                    *(values[i] for values in extra.values())])
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


def alert_comparisons(alerts: Sequence[dict[str, Any]], steps: Sequence[int]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Step pairs worth comparing for a failure: each rule's onset against the stored step
    before it (the last the rule held quiet at), named for the picker by the rule and its
    onset alone ("collapse: its onset, step 1,500, against the step before"), so a choice
    stays when a step before the onset lands late. Returns those pairs and the rules whose
    onset is the first stored step (nothing before it: compared with itself it showed the same
    samples twice). An onset at a step no longer in the store (rewritten by a resumed run) is
    left out."""
    pairs: dict[str, tuple[int, int]] = {}
    from_first: list[str] = []
    for alert in rule_onsets(alerts):
        onset = alert.get("step")
        if onset not in steps:
            continue
        rule = str(alert.get("rule", "alert")).replace("_", " ")
        before = max((s for s in steps if s < onset), default=None)
        if before is None:
            from_first.append(rule)
        else:
            pairs[f"{rule}: its onset, step {onset:,}, against the step before"] = (before, onset)
    return pairs, from_first


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

