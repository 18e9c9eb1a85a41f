"""The read-only view of a store: only committed rows, the tables, the alerts, and what is missing
on disk (:class:`StoreReader`)."""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from stores import format as fmt
from stores.errors import StoreFormatError
from stores.format import is_store
from stores.zarr_store.alert_records import _alert_record
from stores.zarr_store.opened import OpenedArrays
from stores.zarr_store.paths import _not_the_store, _stores_inside
from stores.zarr_store.primitives import _checked_counts, _node_type, _open_array, _open_group_read, _open_root
from stores.zarr_store.sources import _replacements, superseded_flags


#: Skipped files `info` names, the newest of the current versions (a grid of the wrong size
#: skips every file of the run); the `warnings/` arrays hold them all.
SKIPPED_FILES_SHOWN = 10


#: Where a recomputed layout is written before it takes the old one's place, and where the old
#: one waits to be removed (:meth:`StoreWriter.replace_layout`).
_LAYOUT_NEXT, _LAYOUT_OLD = "xy.next", "xy.old"


# arrays whose committed chunks all exist in any store: no real chunk of them holds only fill values
_NEVER_FILL = (("samples", "embedding"), ("samples", "path"), ("checkpoints", "source"), ("checkpoints", "hash"),
               ("warnings", "path"), ("layout", "xy"))


#: How :meth:`StoreReader.missing_chunks` names an array whose zarr.json ends before the commit
#: point, apart from missing chunk files (:func:`missing_rows` tells the two by it).
_ENDS_SHORT = "its zarr.json ends at row"


def _read_columns(folder: Path, names: Iterable[str], n: int,
                  opened: OpenedArrays | None = None) -> dict[str, np.ndarray]:
    """Rows ``[0, n)`` of the arrays ``names`` of the group at ``folder``, opened (or taken from
    ``opened``) and read together on zarr's event loop: one by one, each open and each read waited
    on that loop in turn (a watch pass read the checkpoint table's 10 columns three times; round
    BV). Not under the writer's chunk limit, zarr's process-wide setting (readers in several
    threads, the viewer's sessions, would leave it set). A missing or damaged zarr.json, or a chunk
    that cannot be decoded, is the line reading the array alone gives (the first column's in
    ``names`` order where several fail)."""
    names, opened = list(names), opened or OpenedArrays()

    async def column(name: str) -> np.ndarray:
        array = await opened.open(folder / name, n)
        try:
            return await array.getitem(slice(0, n))
        except (RuntimeError, ValueError) as exc:  # as StoreReader._read
            raise _undecodable(folder / name, exc) from None

    async def together() -> list:
        return await asyncio.gather(*(column(name) for name in names), return_exceptions=True)

    read = sync(together())
    if failed := next((value for value in read if isinstance(value, BaseException)), None):
        raise failed
    return dict(zip(names, read))


def _held_open(group: str, name: str) -> bool:
    """Whether an array's rows are those the root's counts commit (the snapshot a reader's
    :meth:`StoreReader.refresh` reads), its length on disk never below them while they stand:
    a writer grows them past the counts and cuts them back to them, not under. ``samples/latent``
    ends at its last rows with latents (cut back when rows without them pass its last chunk)."""
    return group in ("samples", "checkpoints", "warnings") and name != "latent"


def _undecodable(where: Path | str, exc: Exception) -> StoreFormatError:
    """The one line for an array whose chunk file a codec cannot decode (damaged on disk)."""
    return StoreFormatError(f"{where}: cannot be read ({exc}): the store is damaged on disk; restore it from a "
                            "copy, or ingest the run again into a new --store")


def missing_rows(missing: Sequence[str]) -> str:
    """What :meth:`StoreReader.missing_chunks` found, said as it reads: a missing chunk file as
    zeros, an array whose ``zarr.json`` ends early as fewer rows (not "chunk files missing ...
    read as zeros" for both: round AZ)."""
    meta = [entry for entry in missing if entry.endswith("zarr.json")]
    short = [entry for entry in missing if _ENDS_SHORT in entry]
    chunks = [entry for entry in missing if entry not in meta and entry not in short]
    return "; ".join(([f"metadata files missing ({'; '.join(meta)})"] if meta else [])
                     + ([f"chunk files missing ({'; '.join(chunks)}; zarr reads them as zeros)"] if chunks else [])
                     + ([f"arrays shorter than the commit point ({'; '.join(short)})"] if short else []))


class StoreReader:
    """Read-only view of a store that only ever shows committed rows.

    Call :meth:`refresh` to see rows committed since the reader was opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if said := _not_the_store(self.path):  # `view run.zarr/new.zarr`: no store can appear there
                raise StoreFormatError(said)
            raise StoreFormatError(f"{self.path}: no such store; create one with 'evowatch watch RUN_DIR --store {self.path}'")
        if not is_store(self.path):
            if said := _not_the_store(self.path):
                raise StoreFormatError(said)
            raise StoreFormatError(f"{self.path}: not a Zarr v3 store (no zarr.json); point at the folder 'evowatch watch "
                                   f"--store' created{_stores_inside(self.path)}")
        self.refresh()

    def refresh(self) -> None:
        """Re-read the root attributes (the commit point)."""
        try:
            self._root = _open_root(self.path, "r")
            attrs = dict(self._root.attrs)
        except Exception as exc:  # zarr raises several types for a damaged zarr.json
            if said := _not_the_store(self.path):  # an array of a store
                raise StoreFormatError(said) from None
            if _node_type(self.path) == "array":  # intact, only not a group: no restoring to do
                raise StoreFormatError(f"{self.path}: not an evowatch store (a Zarr array); choose another store") from None
            raise StoreFormatError(f"{self.path}: unreadable store metadata ({exc}); restore the folder or start a new --store") from exc
        meta = fmt.schema_of(attrs)
        if meta is None:
            if said := _not_the_store(self.path):  # a group of a store
                raise StoreFormatError(said)
            raise StoreFormatError(f"{self.path}: not an evowatch store (root attribute 'evowatch' missing); choose "
                                   "another store")
        if meta.get("version") not in fmt.SUPPORTED_VERSIONS:
            raise StoreFormatError(
                f"{self.path}: store schema version {meta.get('version')} is not supported by this evowatch "
                f"(supports {list(fmt.SUPPORTED_VERSIONS)}); upgrade evowatch"
            )
        committed = attrs.get("committed")
        if not (isinstance(committed, dict) and all(isinstance(committed.get(k), int)
                                                    for k in ("rows", "checkpoints", "warnings"))):
            # a store restored or edited by hand: `info` and `export` crashed on it (KeyError)
            raise StoreFormatError(f"{self.path}: its commit point (root attribute 'committed') is missing or "
                                   "damaged; restore the folder or start a new --store")
        self.attrs = attrs
        self._opened = OpenedArrays()  # for reads under this commit point

    # --- root facts -----------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return int(self.attrs["committed"]["rows"])

    @property
    def n_checkpoints(self) -> int:
        return int(self.attrs["committed"]["checkpoints"])

    @property
    def n_warnings(self) -> int:
        return int(self.attrs["committed"]["warnings"])

    @property
    def encoder(self) -> dict[str, Any] | None:
        return self.attrs.get("encoder")

    @property
    def labels(self) -> list[str]:
        return list(self.attrs.get("labels", []))

    @property
    def kinds(self) -> list[str]:
        return list(self.attrs.get("kinds", fmt.KINDS))

    # --- arrays ---------------------------------------------------------------------
    def _array(self, group: str, name: str, rows: int | None = None) -> zarr.Array:
        """The array, to read its first ``rows`` rows: the samples, checkpoint and warning arrays are
        held open under this commit point (:func:`_held_open`, :class:`OpenedArrays`); the others,
        rewritten and cut under their own commit points (the layout replaced whole), opened again."""
        path = self.path / group / name
        if rows is None or not _held_open(group, name):
            return _open_array(path, "r")
        return zarr.Array(self._opened.held(path, rows) or sync(self._opened.open(path, rows)))

    def has_array(self, group: str, name: str) -> bool:
        return (self.path / group / name / "zarr.json").is_file()

    def samples(self, name: str, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """A per-sample column, clamped to the committed rows."""
        return self._read(self._array("samples", name, self.n_rows), self.n_rows, rows)

    def checkpoints(self) -> dict[str, np.ndarray]:
        """The committed checkpoint table, one array per column."""
        n, by = self.n_checkpoints, self.has_array("checkpoints", "superseded_by")  # not in an older store
        table = _read_columns(self.path / "checkpoints", [*fmt.CHECKPOINT_ARRAYS, *(["superseded_by"] if by else [])], n,
                              self._opened)
        if not by:  # unknown by whom
            table["superseded_by"] = _replacements(table, table["superseded"].astype(bool), np.full(n, -1))
        return table

    def holds_generated(self, *, with_rows: bool = False) -> bool:
        """Whether any checkpoint of the run itself (not a reference set) was stored, or, with
        ``with_rows``, stored with at least one sample (every file of it skipped stores none)."""
        ckpt = self.checkpoints()
        generated = ckpt["kind"] == fmt.KIND_CODES["generated"]
        if with_rows:
            generated &= ckpt["row_stop"] > ckpt["row_start"]
        return bool(generated.any())

    def missing_metadata(self) -> list[str]:
        """The ``zarr.json`` files gone from the store's groups and arrays (a copy cut short), as
        ``group/name/zarr.json``: an array read without its metadata was not named by `info` nor
        `export` (its rows read by no one), and a watch made a missing metric column again over
        its chunk files. An array is one of the fixed ones, or a folder holding chunk files (a
        table's column being made has its zarr.json before any chunk)."""
        version = int(self.attrs["evowatch"]["version"])
        required = {group: list(names) for group, names in fmt.GROUPS.items() if group != "layout"}
        if version >= 2:  # kept in step with the checkpoints since version 2
            required["checkpoints"].append("superseded_by")
        groups = [*fmt.GROUPS, "metrics", "sample_metrics", "scalars"]
        if version >= fmt.ALERT_ARRAYS_VERSION:
            required["alerts"], groups = list(fmt.ALERT_ARRAYS), groups + ["alerts"]
        missing = []
        for group in groups:
            folder = self.path / group
            arrays = [child for child in (folder.iterdir() if folder.is_dir() else ())
                      if child.is_dir() and not child.name.startswith(".") and child.name not in (_LAYOUT_NEXT, _LAYOUT_OLD)]
            if not (folder / "zarr.json").is_file():
                if arrays or group in required:
                    missing.append(f"{group}/zarr.json")
                if group == "layout":  # its commit point is unknown: xy is looked for below
                    required["layout"] = ["xy"]
            elif group == "layout" and self.layout_committed and not (folder / _LAYOUT_NEXT / "zarr.json").is_file():
                required["layout"] = ["xy"]  # (between a full recompute's two renames, xy.next stands for it)
            names = {child.name for child in arrays if (child / "c").is_dir()} | set(required.get(group, ()))
            missing += [f"{group}/{name}/zarr.json" for name in sorted(names) if not self.has_array(group, name)]
        return missing

    @property
    def layout_committed(self) -> int:
        """The layout's own commit point (``layout.attrs["committed_rows"]``), not capped at the rows."""
        return int(self._group_attrs("layout").get("committed_rows", 0))

    def _committed_windows(self, skipped: Iterable[str] = ()) -> Iterator[tuple[str, str, int, int, bool]]:
        """``(group, name, start, stop, whole)`` for every array the store commits rows of, but
        those of the ``skipped`` groups: rows ``[start, stop)`` are read, and ``whole``: its length
        must reach ``stop`` (the tables' columns are read to the rows all hold, ``samples/latent``
        ends at the last rows with latents: docs/store.md)."""
        held = {"samples": lambda: (0, self.n_rows), "checkpoints": lambda: (0, self.n_checkpoints),
                "warnings": lambda: (0, self.n_warnings), "layout": lambda: (0, self.layout_rows),
                "metrics": lambda: (0, int(self._group_attrs("metrics").get("committed_rows", 0))),
                "scalars": lambda: (0, int(self._group_attrs("scalars").get("committed_rows", 0)))}
        if int(self.attrs["evowatch"]["version"]) >= fmt.ALERT_ARRAYS_VERSION:  # the alert list's rows
            held["alerts"] = lambda: (int(self._group_attrs("alerts").get("first_row", 0)),
                                      int(self._group_attrs("alerts").get("committed_rows", 0)))
        for group in set(held) - set(skipped):
            start, stop = held[group]()
            for name in self._array_names(group):
                if name not in (_LAYOUT_NEXT, _LAYOUT_OLD):  # a full recompute's, not yet the layout
                    yield group, name, start, stop, group not in ("metrics", "scalars") and name != "latent"
        if "sample_metrics" not in skipped:
            for name in self.sample_metric_names():
                yield "sample_metrics", name, 0, min(self._sample_metric_rows(name), self.n_rows), True

    def missing_chunks(self) -> list[str]:
        """What is gone under the commit points: :meth:`missing_metadata`, then the arrays whose
        zarr.json ends before them (``group/name rows a-b (its zarr.json ends at row a)``) and
        those whose chunk files there are gone or empty (``group/name rows a-b``): zarr reads a
        missing chunk as its fill value, so an interrupted copy of a store exported zeros as
        embeddings without a word (round AJ), and a copy to a full disk leaves its last files
        empty. Every committed chunk of a store made with an id is written (``WRITE_CONFIG``
        came before ids); in an older store only those of arrays no real chunk can leave at
        their fill value (a vector, a path): it left out chunks of step-0 rows."""
        missing = self.missing_metadata()
        every_chunk = bool(self.attrs["evowatch"].get("id"))
        headless = {entry.split("/")[0] for entry in missing if entry.count("/") == 1}  # a group's zarr.json gone
        for group, name, start, stop, whole in self._committed_windows(headless):
            if stop <= start or f"{group}/{name}/zarr.json" in missing:
                continue
            meta = self._metadata(group, name)  # an array's zarr.json older than the root's, copied before it
            ends = self._length_on_disk(group, name, meta)  # grew: its reads stopped short (export: "All arrays
            if whole and ends < stop:  # must be of the same length")
                missing.append(f"{group}/{name} rows {ends}-{stop - 1} ({_ENDS_SHORT} {ends})")
            if every_chunk or (group, name) in _NEVER_FILL:
                missing += self._chunks_gone(group, name, meta, start, min(stop, ends))
        return missing

    def _metadata(self, group: str, name: str) -> dict[str, Any]:
        """An array's zarr.json as JSON ({} where it cannot be read: zarr's error names it when read).
        Opening each array through zarr (about 1 ms) made :meth:`missing_chunks` a quarter of the
        viewer's reload at each commit."""
        try:
            meta = json.loads((self.path / group / name / "zarr.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _length_on_disk(self, group: str, name: str, meta: Mapping[str, Any] | None = None) -> int:
        """An array's rows as its zarr.json says."""
        try:
            return int((self._metadata(group, name) if meta is None else meta)["shape"][0])
        except (KeyError, IndexError, TypeError, ValueError):  # damaged: zarr's error, naming it
            return self._array(group, name).shape[0]

    def _chunks_gone(self, group: str, name: str, meta: Mapping[str, Any], start: int, stop: int) -> list[str]:
        """``group/name rows a-b`` where chunk files of rows [start, stop) are missing or empty (no
        codec writes an empty chunk: a copy to a full disk leaves its files so); one stat a chunk."""
        folder = self.path / group / name
        try:
            step = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
            encoding = meta["chunk_key_encoding"]
            sep = encoding.get("configuration", {}).get("separator", "/")
            ndim = len(meta["shape"])
            if encoding["name"] != "default":
                raise KeyError(encoding["name"])
            key = lambda i: sep.join(["c", str(i), *["0"] * (ndim - 1)])  # noqa: E731
        except (KeyError, IndexError, TypeError, ValueError):  # another layout: zarr says where its chunks are
            array = self._array(group, name)
            step = array.chunks[0]
            key = lambda i: array.metadata.encode_chunk_key((i, *[0] * (array.ndim - 1)))  # noqa: E731
        gone = []
        for i in range(start // step, -(-stop // step)):
            try:
                if os.stat(folder / key(i)).st_size:
                    continue
            except OSError:
                pass
            gone.append(i)
        if not gone:
            return []
        first, last = max(gone[0] * step, start), min((gone[-1] + 1) * step, stop) - 1
        return [f"{group}/{name} rows {first}-{last}" + (f" ({len(gone)} chunks)" if len(gone) > 1 else "")]

    def check_complete(self, *, chunk_files_only: bool = False) -> None:
        """Raise :class:`StoreFormatError` naming the arrays :meth:`missing_chunks` finds; with
        ``chunk_files_only``, only chunk files gone (read as zeros), not arrays whose zarr.json
        ends before the commit point (read as fewer rows: a copy taken mid-write, which a watch
        of the store's run goes on from)."""
        if missing := [entry for entry in self.missing_chunks() if not (chunk_files_only and _ENDS_SHORT in entry)]:
            raise self._incomplete(missing)

    def _incomplete(self, missing: Sequence[str]) -> StoreFormatError:
        """The one line refusing a store with ``missing`` pieces (:meth:`missing_chunks`)."""
        return StoreFormatError(f"{self.path}: {missing_rows(missing)}: the store was copied or restored "
                                "incompletely; copy it again from its source")

    def warnings(self) -> dict[str, np.ndarray]:
        return _read_columns(self.path / "warnings", fmt.WARNING_ARRAYS, self.n_warnings, self._opened)

    def current_rows(self, checkpoints: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Boolean mask of committed rows that belong to the latest version of their checkpoint;
        ``checkpoints``: the table :meth:`checkpoints` gave this reader (else read again: the
        viewer read it twice at each commit)."""
        return self._rows_of_current(superseded_flags(self.checkpoints() if checkpoints is None else checkpoints))

    def _rows_of_current(self, superseded: np.ndarray) -> np.ndarray:
        """:meth:`current_rows` from the checkpoints' ``superseded`` flags (:func:`superseded_flags`)."""
        return ~superseded[self.samples("checkpoint")] if self.n_rows else np.zeros(0, bool)

    @property
    def layout_rows(self) -> int:
        if not self.has_array("layout", "xy"):
            return 0
        return min(int(self._group_attrs("layout").get("committed_rows", 0)), self.n_rows)

    def layout_xy(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """Per-step 2-D solutions of the laid-out rows (all of them, or ``rows``)."""
        n = self.layout_rows
        return self._read(self._array("layout", "xy"), n, rows) if n else np.zeros((0, 2), np.float32)

    def _group_attrs(self, group: str) -> dict[str, Any]:
        """A group's attributes as stored now ({} before it exists), its row counts checked (:func:`_checked_counts`)."""
        handle = _open_group_read(self.path / group)
        return {} if handle is None else _checked_counts(self.path / group, handle.attrs)

    def _table(self, group: str, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """A group of equal-length arrays with a 'committed_rows' attribute, as columns (all of
        them, or those ``names``)."""
        if (handle := _open_group_read(self.path / group)) is None:
            return {}
        n = int(_checked_counts(self.path / group, handle.attrs).get("committed_rows", 0))
        if names is None:  # from its folders, as _array_names: zarr's listing warned about any other file there
            names = tuple(self._array_names(group))  # (a writer's zarr.<id>.partial, a copy's .DS_Store or ._zarr.json)
        columns = _read_columns(self.path / group, names, n)
        # a copy taken while the table grew: a column's zarr.json copied before its last rows ends short
        # of the commit point; the rows every column holds (info and the watch failed an IndexError)
        held = min((len(values) for values in columns.values()), default=n)
        return {name: values[:held] for name, values in columns.items()}

    def step_metrics(self) -> dict[str, np.ndarray]:
        """Per-step metrics: 'step' plus one float64 column per metric."""
        return self._table("metrics")

    def measured_steps(self) -> dict[int, list[int] | None]:
        """What each step's metrics were computed on: ``[last checkpoint index, rows]`` of its
        current checkpoints then (None: measured by an evowatch that did not record it; ``[]``:
        to be measured again, see :meth:`StoreWriter.restart_step_metrics`)."""
        if not self.has_array("metrics", "step"):
            return {}
        metrics = self._table("metrics", ("step",))  # not every metric's column
        recorded = self._group_attrs("metrics").get("measured", {})
        return {int(step): recorded.get(str(int(step))) for step in metrics["step"]}

    @property
    def alerts_from(self) -> int | None:
        """The earliest step measured after later ones whose later steps' alerts are still to
        be evaluated again (see :meth:`StoreWriter.set_alerts_from`), else None."""
        step = self._group_attrs("metrics").get("alerts_from")
        return None if step is None else int(step)

    @property
    def alerts_rewritten(self) -> dict[int, int]:
        """While :attr:`alerts_from` is set: the steps measured again on a new version before
        it was noted, each with that version's checkpoint index (the later steps whose
        checkpoints came before it are not evaluated again, see :meth:`StoreWriter.set_alerts_from`)."""
        return {int(step): int(index) for step, index in self._group_attrs("metrics").get("alerts_rewritten", {}).items()}

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts, ``[{"step", "rule", "value", "message"}]`` in (step, rule) order: rows
        ``[first_row, committed_rows)`` of the ``alerts/`` arrays (their group's attributes); a
        store of schema version 1 or 2 holds them in its root attributes."""
        if int(self.attrs["evowatch"]["version"]) < fmt.ALERT_ARRAYS_VERSION:
            return [_alert_record(a) for a in self.attrs.get("alerts", [])]
        attrs = self._group_attrs("alerts")
        lo, hi = int(attrs.get("first_row", 0)), int(attrs.get("committed_rows", 0))
        if hi <= lo:
            return []
        columns = [self._read(self._array("alerts", name), hi, slice(lo, hi)).tolist() for name in fmt.ALERT_ARRAYS]
        return [_alert_record(dict(zip(fmt.ALERT_ARRAYS, row))) for row in zip(*columns)]

    def unsaid_withdrawals(self) -> list[dict[str, Any]]:
        """The alerts taken off the list whose withdrawal no watch has said yet (one killed before
        its ALERT WITHDRAWN line): ``alerts.attrs["unsaid_withdrawals"]``, kept with the shorter
        list in one attribute write (:meth:`StoreWriter.set_alerts`)."""
        return self._unsaid_alerts("unsaid_withdrawals")

    def unsaid_onsets(self) -> list[dict[str, Any]]:
        """The alert onsets stored whose ALERT line (and --on-alert command) no watch has given
        yet (one killed between storing the alert and announcing it): ``alerts.attrs["unsaid_onsets"]``,
        kept with the list that holds them in one attribute write (:meth:`StoreWriter.set_alerts`)."""
        return self._unsaid_alerts("unsaid_onsets")

    def _unsaid_alerts(self, key: str) -> list[dict[str, Any]]:
        return [_alert_record(a) for a in self._group_attrs("alerts").get(key, [])]

    @property
    def metrics_reference(self) -> str | None:
        """What the per-step metrics were measured against (set by :meth:`StoreWriter.restart_step_metrics`):
        a restarted watch with the same reference keeps them, and the alerts already raised."""
        return self._group_attrs("metrics").get("reference")

    def scalars(self) -> dict[str, np.ndarray]:
        """Trainer scalars (losses): 'step' plus one float64 column per scalar."""
        return self._table("scalars")

    def _array_names(self, group: str) -> list[str]:
        """The arrays of a group, from its folders (no group read: metadata only)."""
        folder = self.path / group
        return sorted(p.name for p in folder.iterdir()  # not an array being made (_create_array)
                      if not p.name.startswith(".") and (p / "zarr.json").is_file()) if folder.is_dir() else []

    def scalar_names(self) -> list[str]:
        """The trainer scalars read from the run's logs (``scalars/<name>``), 'step' left out."""
        return [name for name in self._array_names("scalars") if name != "step"]

    def sample_metric_names(self) -> list[str]:
        return self._array_names("sample_metrics")

    def _sample_metric_rows(self, name: str) -> int:
        """A per-sample metric's own commit point (read as JSON, as :meth:`_metadata`)."""
        try:
            return int(self._metadata("sample_metrics", name).get("attributes", {}).get("committed_rows", 0))
        except (AttributeError, TypeError, ValueError):
            return 0

    def sample_metric(self, name: str) -> np.ndarray:
        """A per-sample metric for every committed row; NaN where not computed (yet)."""
        out = np.full(self.n_rows, np.nan, np.float32)
        if name in self.sample_metric_names():
            array = self._array("sample_metrics", name)
            n = min(int(array.attrs.get("committed_rows", 0)), self.n_rows)
            out[:n] = self._read(array, n, None)
        return out

    def _read(self, array: zarr.Array, n: int, rows: slice | np.ndarray | None) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(n)
            selection: Any = slice(start, stop, step)
        elif rows is None:
            selection = slice(0, n)
        else:
            rows = np.asarray(rows)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows[:n])
            if rows.size and (rows.min() < 0 or rows.max() >= n):
                raise IndexError(f"rows outside the {n} committed rows")
            selection = (rows,) + (slice(None),) * (array.ndim - 1)
        try:
            return array[selection] if isinstance(selection, slice) else array.get_orthogonal_selection(selection)
        except (RuntimeError, ValueError) as exc:  # a codec's, on a chunk file damaged on disk
            raise _undecodable(str(array.store_path).removeprefix("file://"), exc) from None

    def info(self) -> dict[str, Any]:
        """The summary `evowatch info --json` prints."""
        ckpt = self.checkpoints()
        kinds = self.samples("kind") if self.n_rows else np.zeros(0, np.int8)
        superseded = superseded_flags(ckpt)
        current = self._rows_of_current(superseded)
        skipped = self.warnings() if self.n_warnings else {name: np.zeros(0) for name in fmt.WARNING_ARRAYS}
        warned = skipped["checkpoint"].astype(np.int64)
        current_warned = np.flatnonzero(~superseded[warned])
        steps = sorted({int(s) for s, k, sup in zip(ckpt["step"], ckpt["kind"], superseded)
                        if k == fmt.KIND_CODES["generated"] and not sup})
        enc = self.encoder or {}
        metrics = self.step_metrics()
        missing = self.missing_chunks()  # an alerts array's zarr.json gone: shown unread (None), as other arrays are
        unread = any(entry.startswith("alerts/") and entry.count("/") == 2 for entry in missing if entry.endswith("zarr.json"))
        latest: dict[str, float] = {}
        if len(metrics.get("step", [])):
            last = int(np.argmax(metrics["step"]))
            latest = {k: (int(v[last]) if k == "step" else float(v[last])) for k, v in metrics.items()
                      if k == "step" or np.isfinite(v[last])}
        return {
            "store": str(self.path),
            "schema_version": self.attrs["evowatch"]["version"],
            "rows": self.n_rows,
            "current_rows": int(current.sum()),
            "checkpoints": self.n_checkpoints,
            "steps": steps,
            "encoder": enc.get("identity"),
            "dim": enc.get("dim"),
            "device": enc.get("device"),
            "kinds": {name: int((kinds == code).sum()) for code, name in enumerate(self.kinds)},
            "labels": self.labels,
            "layout_rows": self.layout_rows,
            "warnings": self.n_warnings,
            "current_warnings": len(current_warned),
            "skipped_files": [{"step": int(ckpt["step"][warned[i]]), "path": str(skipped["path"][i]),
                               "reason": str(skipped["reason"][i])}
                              for i in current_warned[::-1][:SKIPPED_FILES_SHOWN]],
            "metric_steps": len(metrics.get("step", [])),
            "latest_metrics": latest,
            "scalars": self.scalar_names(),
            "alerts": None if unread else self.alerts(),
            "unsaid_alerts": {"onsets": self.unsaid_onsets(), "withdrawals": self.unsaid_withdrawals()},
            "missing_chunks": missing,
        }
