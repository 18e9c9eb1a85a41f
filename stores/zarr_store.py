"""The run store: one Zarr v3 group, append-only rows, a commit count written last.

Why this shape (measured in shared/research/deps.md):
- ``Array.append``/``resize`` publish the new shape before the data, so readers never trust
  ``shape``: they read up to the committed count in the root attributes, which is written
  last, in one atomic file replace.
- An open array does not see growth, so readers re-open arrays on every refresh.
- Consolidated metadata would be a stale snapshot and sharding gave torn reads under
  concurrent rewrites: neither is used.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import json
import logging
import os
import re
import shlex
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from stores.errors import NO_ROOM, EncoderMismatchError, StoreFormatError
from stores.lock import WriterLock
from stores.owner import owner_gone, owner_tag
from stores.uninterrupted import after_writes_end, uninterrupted
from stores import format as fmt
from stores.format import is_store, stored_text

log = logging.getLogger(__name__)

#: Pixels per side of the thumbnail stored per sample, unless a new store is given another size.
DEFAULT_THUMBNAIL_SIZE = 48
#: Skipped files `info` names, the newest of the current versions (a grid of the wrong size
#: skips every file of the run); the `warnings/` arrays hold them all.
SKIPPED_FILES_SHOWN = 10

# Every chunk is written as it is: zarr's default compares each chunk with the fill value
# to skip "empty" ones, a full scan of every written chunk (~15% of a commit's CPU).
WRITE_CONFIG = {"write_empty_chunks": True}
#: Where a recomputed layout is written before it takes the old one's place, and where the old
#: one waits to be removed (:meth:`StoreWriter.replace_layout`).
_LAYOUT_NEXT, _LAYOUT_OLD = "xy.next", "xy.old"


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (a container pinned to 2 of 64
    cores has 2), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)


#: zarr's chunk operations in flight per array written (its default 10), from the cores: a
#: write's arrays go through together, and each chunk in flight holds its array, encoded and
#: compressed copies. On 2 cores, 4 per array made a 2,048-row commit's working set 38 MB
#: (2 per array: 28 MB, the same throughput; docs/ingest.md, Memory).
_CHUNKS_IN_FLIGHT = max(2, min(10, available_cores()))
#: Rows per write of the sample arrays (a group commit, a flush). zarr 3.1 spends 1-2 ms of
#: Python on each array it writes, whatever the rows, and a commit writes 17 arrays: per
#: commit of 1,024 / 2,048 / 4,096 rows the store wrote ~37k / ~59k / ~83k rows/s
#: (docs/ingest.md, "Store writes"); the rows wait in a _Staging of this size.
WRITE_ROWS = 2048

def _rows_per_chunk(row_shape: tuple[int, ...], itemsize: int, max_rows: int = 16384) -> int:
    """Rows per chunk: about ROW_CHUNK_BYTES, since each commit rewrites the partial last chunk."""
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * itemsize)
    rows = fmt.ROW_CHUNK_BYTES // row_bytes
    return int(min(max_rows, max(256, 2 ** int(np.log2(max(rows, 1))))))


def _node_type(path: Path) -> str | None:
    """What a Zarr v3 folder's zarr.json says it is ("group", "array"), None if unreadable."""
    try:
        return json.loads((path / "zarr.json").read_text()).get("node_type")
    except (OSError, ValueError, AttributeError):
        return None


def _write_all(writes: Iterable[Coroutine]) -> None:
    """Run zarr writes together on zarr's own event loop (what its synchronous API does one by
    one), with _CHUNKS_IN_FLIGHT chunk operations unless the user set zarr's own limit; the
    limit is zarr's process-wide setting, so it is set for these writes only. ``writes`` are
    made here: when making one fails or is interrupted (Ctrl-C, SIGTERM during a resize), those
    made before it are closed, not left to print "coroutine ... was never awaited" on stderr."""
    made: list[Coroutine] = []
    try:
        made.extend(writes)
    except BaseException:
        for write in made:
            write.close()
        raise

    async def together() -> None:
        await asyncio.gather(*made)

    user_set = "ZARR_ASYNC__CONCURRENCY" in os.environ
    with contextlib.nullcontext() if user_set else zarr.config.set({"async.concurrency": _CHUNKS_IN_FLIGHT}):
        sync(together())


def _open_root(path: Path, mode: str) -> zarr.Group:
    return zarr.open_group(str(path), mode=mode, use_consolidated=False)


def _open_array(path: Path, mode: str) -> zarr.Array:
    """One of the store's arrays; a missing or damaged ``zarr.json`` is a one-line error naming it."""
    try:
        return zarr.open_array(str(path), mode=mode)
    except Exception as exc:  # zarr raises several types: JSON errors, ArrayNotFoundError, ValueError
        raise _damaged_metadata(path, "array", exc) from None


def _open_group_read(path: Path) -> zarr.Group | None:
    """One of the store's groups to read, None before it is made. Its ``zarr.json`` missing
    beside its arrays (a copy cut short), or damaged, is a one-line error naming it: read as
    "no group", a watch cut the metrics arrays to no rows and then failed a KeyError, and a
    damaged one said only "Invalid control character at: line 1 column 9"."""
    if not (path / "zarr.json").is_file() and not any((child / "zarr.json").is_file() for child in
                                                       (path.iterdir() if path.is_dir() else ())):
        return None
    try:
        return zarr.open_group(str(path), mode="r", use_consolidated=False)
    except Exception as exc:  # as _open_array
        raise _damaged_metadata(path, "group", exc) from None


def _damaged_metadata(path: Path, node: str, exc: Exception) -> StoreFormatError:
    meta = path / "zarr.json"
    why = f"unreadable {node} metadata ({type(exc).__name__}: {exc})" if meta.is_file() else f"missing {node} metadata"
    return StoreFormatError(f"{meta}: {why}; restore the store folder from a copy, or start a new --store")


def encoder_mismatch(path: Path, stored: dict[str, Any], wanted: str) -> EncoderMismatchError:
    """The one line refusing to mix encoders in a store (``wanted``: what this run uses)."""
    return EncoderMismatchError(f"{path}: written with encoder '{stored.get('identity')}' (dim {stored.get('dim')}), "
                                f"this run uses {wanted}; pass --encoder {stored.get('spec') or stored.get('identity')} "
                                f"or use another --store")


def _equal_or_both_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b


def folder_identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) a path leads to now, None if nothing: tells a folder deleted, moved
    away or made again (its old inode number is often reused, the pair seldom) apart."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _column_description(group: str, name: str) -> str:
    """What a metric or scalar array holds, for its ``description`` attribute (it said only
    "metrics column fd": round AJ read docs/metrics.md to learn the rest)."""
    if name == "step":
        return ("the step of each row: rows are in the order steps were measured, sort by it" if group == "metrics"
                else "the training step of each logged value")
    return {"metrics": f"per-step metric {name!r} over the step's current generated samples, a row per step "
                       "(metrics/step); its definition: docs/metrics.md",
            "sample_metrics": f"per-sample metric {name!r}, row-aligned with samples/ (flags as 1.0 / 0.0), NaN where "
                              "not computed; its definition: docs/metrics.md",
            "scalars": f"trainer scalar {name!r} read from the run's logs, at the steps in scalars/step"}[group]


def _store_pieces(path: Path) -> bool:
    """Whether a folder holds nothing but pieces of a store: its groups' folders, their arrays'
    chunks (GROUP/ARRAY/c/...) and zarr.json files (round AP: `outputs/samples/*.png` was
    called pieces of a store, and the user told to remove the folder)."""
    groups = set(fmt.GROUPS) | {"metrics", "sample_metrics", "scalars", "alerts"}
    for folder, _, files in os.walk(path):
        parts = Path(folder).relative_to(path).parts
        if parts and parts[0] not in groups or not parts and files or any(
                name != "zarr.json" and (len(parts) < 3 or parts[2] != "c") for name in files):
            return False
    return True


def check_store_path(path: str | os.PathLike[str]) -> None:
    """Refuse a path that is no store and cannot become one (a file, a folder with other
    contents, the current folder), before a command loads anything else."""
    path = Path(path)
    if is_store(path):
        return
    if (store := enclosing_store(path)) is not None:  # its group, listed by every plain reader of the outer store
        raise StoreFormatError(f"{path}: is inside the evowatch store {store}; choose a --store path outside it")
    if path.exists() and not path.is_dir():  # os.walk finds nothing in a file: it read as "pieces of a store"
        raise StoreFormatError(_not_the_store(path) or f"{path}: is a file, not a store folder; choose another "
                                                       "--store path (a folder, made if missing: run.zarr)")
    if path.exists() and any(path.iterdir()):
        if _store_pieces(path):
            raise StoreFormatError(f"{path}: holds pieces of an evowatch store without its zarr.json (a store moved or "
                                   "deleted while written, or one being copied): restore the store, or remove the "
                                   "folder, or choose another --store path")
        raise StoreFormatError(f"{path}: exists and is not an evowatch store; choose another --store path"
                               f"{_stores_inside(path)}")
    if Path.cwd().is_relative_to(os.path.abspath(path)):  # an empty folder is replaced by the store: not under our feet
        raise StoreFormatError(f"{path}: is the current folder; name a store folder in it, e.g. --store run.zarr")


@dataclass(slots=True)
class _Columns:
    """A transaction's rows waiting for a write: their count, paths and latents (the
    fixed-width columns wait in the writer's :class:`_Staging`)."""

    path: list[np.ndarray] = field(default_factory=list)
    latent: list[np.ndarray] = field(default_factory=list)
    n: int = 0


class _Staging:
    """The fixed-width columns of the rows waiting for a write, in the order they will be
    written (the waiting checkpoints', then the open one's), copied once into arrays kept
    from write to write. Stacking a group's batches instead held every row twice and
    allocated tens of MB afresh at every commit: the ingest's largest memory transient."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.n = 0

    def append(self, columns: dict[str, np.ndarray]) -> None:
        k = len(next(iter(columns.values())))
        for name, values in columns.items():
            array = self.arrays.get(name)
            if array is None or len(array) < self.n + k:
                grown = np.empty((max(self.n + k, WRITE_ROWS + k, 2 * len(array) if array is not None else 0),
                                  *values.shape[1:]), values.dtype)
                if array is not None:
                    grown[: self.n] = array[: self.n]
                self.arrays[name] = array = grown
            array[self.n: self.n + k] = values
        self.n += k

    def front(self, k: int) -> dict[str, np.ndarray]:
        """Views of the first ``k`` rows; valid until :meth:`drop_front`."""
        return {name: array[:k] for name, array in self.arrays.items()}

    def drop_front(self, k: int) -> None:
        rest = self.n - k
        if rest:
            for array in self.arrays.values():
                array[:rest] = array[k: self.n].copy()
        self.n = rest

    def clear(self) -> None:
        self.n = 0


def _take(group: Sequence[CheckpointTransaction], staging: _Staging) -> tuple[int, int, dict[str, np.ndarray]]:
    """First row, row count and columns of consecutive transactions' waiting rows, which are
    the staging's first rows (views: write them before :meth:`_Staging.drop_front`)."""
    buffers = [tx.buffer for tx in group]
    counts = [b.n for b in buffers]
    columns = staging.front(sum(counts))
    columns["path"] = np.concatenate([part for b in buffers for part in b.path])
    columns["step"] = np.repeat(np.array([tx.step for tx in group], np.int64), counts)
    columns["kind"] = np.repeat(np.array([tx.kind_code for tx in group], np.int8), counts)
    columns["checkpoint"] = np.repeat(np.array([tx.checkpoint_index for tx in group], np.int32), counts)
    if group[0].latent_shape is not None:
        columns["latent"] = np.concatenate([part for b in buffers for part in b.latent])
    start = group[0].row_start + group[0].rows_written
    for tx in group:
        tx.rows_written += tx.buffer.n
        tx.buffer = _Columns()
    return start, sum(counts), columns


# arrays whose committed chunks all exist in any store: no real chunk of them holds only fill values
_NEVER_FILL = (("samples", "embedding"), ("samples", "path"), ("checkpoints", "source"), ("checkpoints", "hash"),
               ("warnings", "path"), ("layout", "xy"))


def _alert_record(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An alert as the store gives it back: ``{"step", "rule", "value", "message"}``, the value
    None where JSON has no number for it (:func:`stores.format.json_number`), so that a list read
    back equals the list written."""
    value = alert.get("value")
    return {"step": int(alert["step"]), "rule": str(alert["rule"]),
            "value": None if value is None else fmt.json_number(float(value)), "message": str(alert["message"])}


def _unsaid(records: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], listed: bool) -> list[dict[str, Any]]:
    """The alerts of ``records`` whose (step, rule) ``new`` holds (``listed``) or lacks, once each:
    what a watch is still to say, stored with the list it is said of (a kill between the list and
    its line lost the line: the next watch read the list as if it had been said)."""
    kept = {(a["step"], a["rule"]) for a in new}
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for alert in map(_alert_record, records):
        if ((alert["step"], alert["rule"]) in kept) == listed:
            out.setdefault((alert["step"], alert["rule"]), alert)
    return list(out.values())


def _alert_columns(alerts: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The ``alerts/`` arrays' rows of ``alerts``."""
    return {"step": np.array([a["step"] for a in alerts], np.int64),
            "rule": np.array([a["rule"] for a in alerts], dtype=str),
            "value": np.array([np.nan if a["value"] is None else a["value"] for a in alerts], np.float64),
            "message": np.array([a["message"] for a in alerts], dtype=str)}


def _stores_inside(folder: Path) -> str:
    """``; it holds run.zarr``: the stores just inside a folder given for one (round AQ: `view
    live` said only that live is none)."""
    try:
        found = sorted(child.name for child in folder.iterdir() if child.is_dir() and is_store(child))
    except OSError:
        return ""
    return f" (it holds {fmt.listed(found)})" if found else ""


#: How :meth:`StoreReader.missing_chunks` names an array whose zarr.json ends before the commit
#: point, apart from missing chunk files (:func:`missing_rows` tells the two by it).
_ENDS_SHORT = "its zarr.json ends at row"


def _evowatch_store(folder: Path) -> bool:
    """Whether ``folder`` is the root of an evowatch store (not another Zarr hierarchy)."""
    try:
        attrs = json.loads((folder / fmt.STORE_MARKER).read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False
    return fmt.schema_of(attrs) is not None


def enclosing_store(path: Path) -> Path | None:
    """The evowatch store ``path`` lies inside (a group, array or file of it, or a new path in its
    folder), as spelled where it can be, else None: a command pointed at ``run.zarr/samples``
    was told only that it is no evowatch store, and ``watch --store run.zarr/new.zarr`` made a
    store inside another, a group every plain reader of the outer one then listed."""
    if ".." in path.parts:  # `run.zarr/../new.zarr`, `../new.zarr` in a store's folder: beside it, not in it
        path = Path(os.path.abspath(path))
    above = [Path.cwd() if str(folder) == "." else folder for folder in path.parents]
    for folder in above + ([] if path.is_absolute() else list(Path.cwd().parents)):
        if _evowatch_store(folder):
            return folder
    return None


def _not_the_store(path: Path) -> str | None:
    """The one line for a path that is no store's root but part of one, or a zip archive of
    one (unzip it first), else None."""
    if (store := enclosing_store(path)) is not None:
        part = os.path.relpath(os.path.abspath(path), os.path.abspath(store))
        node = _node_type(path) if path.is_dir() else None
        return f"{path}: is {f'the {node} ' if node else ''}'{part}' inside the evowatch store {store}; point at {store}"
    try:
        names = zipfile.ZipFile(path).namelist() if path.is_file() and zipfile.is_zipfile(path) else []
    except (OSError, zipfile.BadZipFile):
        names = []
    inside = sorted({name[:-len("/zarr.json")] for name in names if name.count("/") == 1 and name.endswith("/zarr.json")})
    if fmt.STORE_MARKER in names:  # zipped from inside the store: its files at the archive's top
        folder = path.with_suffix("" if path.stem.lower().endswith(".zarr") else ".zarr")
        if folder == path:  # named as a store (store.zarr): unzip refuses to make a folder where the zip is
            folder = path.with_name(f"{path.stem}-unzipped.zarr")
        return (f"{path}: is a zip archive of a store; unzip it into a folder (unzip {shlex.quote(str(path))} -d "
                f"{shlex.quote(str(folder))}) and point at that")
    if inside:
        return (f"{path}: is a zip archive holding {fmt.listed(inside)}; unzip it (unzip {shlex.quote(str(path))}) "
                "and point at the store folder")
    return None


def _described_arrays(described: Mapping[str, str] | None) -> dict[str, str]:
    """The root's ``arrays`` attribute: ``described`` (an older store's), with this version's
    fixed arrays."""
    return {**(described or {}), **{f"{g}/{n}": d for g, arrays in fmt.GROUPS.items() for n, d in arrays.items()},
            **{f"checkpoints/{n}": d for n, d in fmt.OPTIONAL_CHECKPOINT_ARRAYS.items()},
            **{f"alerts/{n}": d for n, d in fmt.ALERT_ARRAYS.items()}}


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
    def _array(self, group: str, name: str) -> zarr.Array:
        # Re-opened every time: an open array does not see rows appended since.
        return _open_array(self.path / group / name, "r")

    def has_array(self, group: str, name: str) -> bool:
        return (self.path / group / name / "zarr.json").is_file()

    def samples(self, name: str, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """A per-sample column, clamped to the committed rows."""
        return self._read(self._array("samples", name), self.n_rows, rows)

    def checkpoints(self) -> dict[str, np.ndarray]:
        """The committed checkpoint table, one array per column."""
        n = self.n_checkpoints
        table = {name: self._read(self._array("checkpoints", name), n, None) for name in fmt.CHECKPOINT_ARRAYS}
        table["superseded_by"] = (self._read(self._array("checkpoints", "superseded_by"), n, None)
                                  if self.has_array("checkpoints", "superseded_by")  # an older store: unknown by whom
                                  else _replacements(table, table["superseded"].astype(bool), np.full(n, -1)))
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
        n = self.n_warnings
        return {name: self._read(self._array("warnings", name), n, None) for name in fmt.WARNING_ARRAYS}

    def current_rows(self) -> np.ndarray:
        """Boolean mask of committed rows that belong to the latest version of their checkpoint."""
        superseded = superseded_flags(self.checkpoints())
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
        """A group's attributes as stored now ({} before it exists)."""
        handle = _open_group_read(self.path / group)
        return {} if handle is None else dict(handle.attrs)

    def _table(self, group: str, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """A group of equal-length arrays with a 'committed_rows' attribute, as columns (all of
        them, or those ``names``)."""
        if (handle := _open_group_read(self.path / group)) is None:
            return {}
        n = int(handle.attrs.get("committed_rows", 0))
        if names is None:  # from its folders, as _array_names: zarr's listing warned about any other file there
            names = tuple(self._array_names(group))  # (a writer's zarr.<id>.partial, a copy's .DS_Store or ._zarr.json)
        columns = {name: self._read(self._array(group, name), n, None) for name in names}
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
            where = str(array.store_path).removeprefix("file://")
            raise StoreFormatError(f"{where}: cannot be read ({exc}): the store is damaged on disk; restore it from a "
                                   "copy, or ingest the run again into a new --store") from None

    def info(self) -> dict[str, Any]:
        """The summary `evowatch info --json` prints."""
        ckpt = self.checkpoints()
        kinds = self.samples("kind") if self.n_rows else np.zeros(0, np.int8)
        current = self.current_rows()
        superseded = superseded_flags(ckpt)
        skipped = self.warnings() if self.n_warnings else {name: np.zeros(0) for name in fmt.WARNING_ARRAYS}
        warned = skipped["checkpoint"].astype(np.int64)
        current_warned = np.flatnonzero(~superseded[warned])
        steps = sorted({int(s) for s, k, sup in zip(ckpt["step"], ckpt["kind"], superseded)
                        if k == fmt.KIND_CODES["generated"] and not sup})
        enc = self.encoder or {}
        metrics = self.step_metrics()
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
            "alerts": self.alerts(),
            "unsaid_alerts": {"onsets": self.unsaid_onsets(), "withdrawals": self.unsaid_withdrawals()},
            "missing_chunks": self.missing_chunks(),
        }


def _folders_above(source: str) -> list[str]:
    """The folders a checkpoint's source lies in: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = source.split("/")
    return ["/".join(parts[:k]) for k in range(1, len(parts))]


def _folder_and_name(source: str) -> tuple[str, str]:
    folder, _, name = source.rpartition("/")
    return folder, name


def is_pattern(name: str) -> bool:
    """Whether a source's name is a per-step pattern standing for several files (W&B's and
    MLflow's have only ``?`` runs, their hashes)."""
    return "*" in name or "?" in name or fmt.SAMPLE_KEY in name


@functools.lru_cache(maxsize=1024)
def pattern_regex(name: str) -> re.Pattern:
    """A per-step pattern source's name (``step1000_*.png``: its ``*`` a sample index, group
    1; its ``?`` runs a date, time or hash, with a seed after it or not: kohya-ss's
    ``mylora_000500_*_??????????????.png``; its ``{sample}`` a prompt or a class, group 1) as a
    regular expression for its files' names."""
    escaped = re.sub(r"(?:\\\?)+", ".+", re.escape(name))
    return re.compile(escaped.replace(re.escape(fmt.SAMPLE_KEY), "(.+)", 1).replace(r"\*", r"(\d+)", 1))


class _Names:
    """Names of sources directly in one folder, patterns apart: a name is compared only with
    those of the other kind (a folder of 1,000 grids holds no pattern to compare with)."""

    def __init__(self) -> None:
        self.patterns: set[str] = set()
        self.others: set[str] = set()

    def _side(self, name: str) -> set[str]:
        return self.patterns if is_pattern(name) else self.others

    def add(self, name: str) -> None:
        self._side(name).add(name)

    def discard(self, name: str) -> None:
        self._side(name).discard(name)

    def same_files(self, name: str) -> set[str]:
        """The names that are ``name``'s files read the other way (a pattern and one of its files)."""
        if is_pattern(name):
            return {other for other in self.others if pattern_regex(name).fullmatch(other)}
        return {other for other in self.patterns if pattern_regex(other).fullmatch(name)}


def _series_cover(source: str) -> Callable[[str], bool] | None:
    """For a checkpoint across per-sample folders (``samples/{sample}/step_1000.png``): what
    tells an earlier reading of the same files, before they were seen as one (a folder
    ``samples/cat``, a file ``samples/cat/step_1000.png``); None for other sources."""
    parts = source.split("/")
    at = next((i for i, part in enumerate(parts[:-1]) if part.startswith(fmt.SAMPLE_KEY)), None)  # {sample} - no-ema too
    if at is None:
        return None
    head, name = parts[:at], parts[-1] if len(parts) == at + 2 else None

    def covers(other: str) -> bool:  # the name's regex made only when asked (one per checkpoint was most of a pass)
        other_parts = other.split("/")
        return (fmt.SAMPLE_KEY not in other and other_parts[:at] == head
                and (len(other_parts) == at + 1 or (name is not None and len(other_parts) == at + 2
                                                    and bool(pattern_regex(name).fullmatch(other_parts[-1])))))
    return covers


def _reading_key(source: str) -> str:
    """What a checkpoint is a reading of: its source, but one slot per reference kind (a
    ``--real`` folder given instead of another replaces it: metrics compare with one set)."""
    for kind in fmt.KINDS[1:]:
        if source.startswith(f"{kind}:"):
            return f"{kind}:"
    return source


def _tag_as_file(stored: str | None, given: str | None) -> bool:
    """Whether ``given`` is a pretrained tag's weights copied by hand (``clip:ARCH/TAG@FILE``,
    identity ``clip:ARCH/TAG@sha256-…``) for a store of that tag's vectors: offline, the way
    its message gives to resume such a store; refused, that way had no way out."""
    if not stored or not given:
        return False
    match = re.fullmatch(r"(clip:[^@]+/[^/@]+)@sha256-[0-9a-f]{12}(\+quickgelu)?", given)
    return bool(match) and stored == match[1] + (match[2] or "")


def superseded_flags(checkpoints: dict[str, np.ndarray]) -> np.ndarray:
    """A checkpoint is superseded when a later committed one has the same source, or a source
    inside it or around it, or a per-step pattern covering it or covered by it: the same files
    read again once the run's layout became clear (a lone ``version_0/`` first read as one
    checkpoint, later as a run of ``version_0/images/epoch=3-step=1000/`` ...; a flat folder's
    ``step1000_00.png`` first alone, later in ``step1000_*.png``); or, for a reference set,
    a later one of its kind; or, for images logged to TensorBoard or a tracker's copies, a
    later checkpoint of the trainer's own files (:func:`stores.format.stand_in_for_files`)."""
    sources = checkpoints["source"]
    flags = np.zeros(len(sources), bool)
    own_later = False  # a later checkpoint read from the trainer's own sample files
    later: set[str] = set()
    around_later: set[str] = set()  # the folders later sources lie in
    names_later: dict[str, _Names] = {}  # folder -> names of later sources in it
    series_later: list[Callable[[str], bool]] = []  # later sources across per-sample folders
    for i in range(len(sources) - 1, -1, -1):
        source = _reading_key(str(sources[i]))
        above = _folders_above(source)
        folder, name = _folder_and_name(source)
        flags[i] = (source in later or source in around_later or not later.isdisjoint(above)
                    or bool(folder in names_later and names_later[folder].same_files(name))
                    or fmt.SAMPLE_KEY not in source and any(covers(source) for covers in series_later)  # never one
                    # across per-sample folders itself: asking them all made a pass O(checkpoints^2), 0.67 s at 2,000
                    or own_later and fmt.stand_in_for_files(source) is not None)
        own_later = own_later or _own_files(source)
        if covers := _series_cover(source):
            series_later.append(covers)
        later.add(source)
        around_later.update(above)
        names_later.setdefault(folder, _Names()).add(name)
    return flags


def _own_files(source: str) -> bool:
    """Whether a reading key is a generated checkpoint of the trainer's own files (no
    reference set, no stand-in for them)."""
    return not source.endswith(":") and fmt.stand_in_for_files(source) is None


def _replacements(checkpoints: dict[str, np.ndarray], flags: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """``superseded_by`` for the superseded ``flags``: the stored replacement where it is a later
    checkpoint, else the next reading of the same source (a reference set: of its kind), else
    of the same step, else the next checkpoint (0 was written: a renamed ``tmp-`` folder's step
    named checkpoint 0, another step's, as its replacement; round AQ); -1 for the current ones."""
    n = len(flags)
    out = np.full(n, -1, np.int32)
    next_of_source: dict[str, int] = {}
    next_of_step: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        source, step = _reading_key(str(checkpoints["source"][i])), int(checkpoints["step"][i])
        if flags[i]:
            out[i] = stored[i] if i < stored[i] < n else next_of_source.get(source, next_of_step.get(step, i + 1))
        next_of_source[source], next_of_step[step] = i, i
    return out


class _CurrentSources:
    """The current checkpoint of each source, kept up to date as checkpoints are committed:
    :func:`superseded_flags` one commit at a time."""

    def __init__(self, sources: Sequence[str], superseded: np.ndarray) -> None:
        self._index: dict[str, int] = {}
        self._below: dict[str, set[str]] = {}  # folder -> current sources inside it
        self._names: dict[str, _Names] = {}  # folder -> names of current sources directly in it
        self._stand_ins: set[str] = set()  # current sources standing in for the trainer's own files
        self.count = len(sources)  # the checkpoints it has seen
        for i, (source, old) in enumerate(zip(sources, superseded)):
            if not old:
                self._add(_reading_key(str(source)), i)

    def indices(self) -> list[int]:
        """The current checkpoints' indices, in no particular order."""
        return list(self._index.values())

    def _add(self, source: str, index: int) -> None:
        self._index[source] = index
        for folder in _folders_above(source):
            self._below.setdefault(folder, set()).add(source)
        folder, name = _folder_and_name(source)
        self._names.setdefault(folder, _Names()).add(name)
        if fmt.stand_in_for_files(source) is not None:
            self._stand_ins.add(source)

    def _remove(self, source: str) -> int:
        for folder in _folders_above(source):
            self._below[folder].discard(source)
        folder, name = _folder_and_name(source)
        self._names[folder].discard(name)
        self._stand_ins.discard(source)
        return self._index.pop(source)

    def commit(self, source: str, index: int) -> list[int]:
        """Make checkpoint ``index`` the current one of ``source``; the checkpoints it supersedes."""
        source = _reading_key(source)
        folder, name = _folder_and_name(source)
        gone = {s for s in [source, *_folders_above(source)] if s in self._index} | self._below.get(source, set())
        if folder in self._names:
            gone |= {f"{folder}/{other}" if folder else other for other in self._names[folder].same_files(name)}
        if covers := _series_cover(source):
            gone |= {other for other in self._index if covers(other)}
        if _own_files(source):
            gone |= self._stand_ins
        old = [self._remove(s) for s in gone]
        self._add(source, index)
        self.count = max(self.count, index + 1)
        return old


def _staging(path: Path) -> tuple[str, Path]:
    """The name a store at ``path`` is made under before it is renamed into place, and put
    under before it is removed (``.NAME.creating-PID@HOST``), with the stem its leftovers are
    found by."""
    where = Path(os.path.abspath(path))  # `--store .` has no name of its own
    stem = where.name[:200]  # a name near the file system's 255-byte limit: its staging name must fit too
    return stem, where.with_name(f".{stem}.creating-{owner_tag()}")


def discard_store(path: Path) -> None:
    """Remove a store folder whole or not at all: it is renamed aside first, then removed
    there. Removed in place, a second Ctrl-C (or a kill) during the removal left a part of it
    at its path, its root metadata without some arrays, which the same command then refused
    ("missing array metadata; restore the store folder", round AV). A removal cut short
    leaves the hidden name, which the next store made at the path clears."""
    _, aside = _staging(path)
    try:
        os.rename(path, aside)
    except OSError:  # gone already, or cannot be renamed (a mount point): left as it is
        return
    shutil.rmtree(aside, ignore_errors=True)


def _past_its_shape(array: zarr.Array, rows: int) -> zarr.Array:
    """``array`` as if ``rows`` long, its zarr.json left as it is: chunks written through it are
    on disk before a resize shows them."""
    same = array.async_array
    return zarr.Array(type(same)(metadata=same.metadata.update_shape((rows, *array.shape[1:])),
                                 store_path=same.store_path, config=same.config))


def _fill_by_chunks(array: zarr.Array, start: int, stop: int, value: Any) -> None:
    """Rows [start, stop) set to ``value`` a chunk at a time: a million rows of 512 latents
    padded in one write held 2 GB in memory."""
    chunk = array.chunks[0]
    for at in range(start, stop, chunk):
        array[at:min(at + chunk, stop)] = value


def _staged_name(name: str) -> str:
    """Where :meth:`StoreWriter._create_array` writes an array before renaming it into place
    (hidden: no evowatch reader lists it)."""
    return f".{name}.new"


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


class StoreWriter(StoreReader):
    """The single writer of a store: creates it, appends checkpoints, commits, recovers.

    Opening takes an exclusive lock and rolls back anything past the committed counts
    (what a killed process left behind), so ingest resumes exactly where it stopped.
    """

    def __init__(self, path: str | os.PathLike[str], encoder: dict[str, Any],
                 thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE, *, ingests: bool = True,
                 recover_now: bool = True) -> None:
        """``ingests``: the writer ingests the run's checkpoints (a watch), so a commit point
        past the rows on disk may go back to the last complete checkpoint, the rest ingested
        again; a writer that does not (``evowatch layout``) refuses instead of cutting.
        ``recover_now=False``: opened locked and read-only until :meth:`recover` (a watch checks
        first that its run is the store's: round BC, another run's was refused only after a store
        copied mid-write had been cut back)."""
        self.path = Path(path)
        self._ingests = ingests
        self._let_go = uninterrupted.let_go  # writes let go unfinished before this writer: not its own
        if not is_store(self.path):
            self._create_atomically(encoder, thumbnail_size)
        self._lock = WriterLock(self.path)
        self._folder = folder_identity(self.path)  # to tell when the store folder is deleted or moved
        self._handles: dict[tuple[str, str], zarr.Array] = {}
        self._lengths: dict[tuple[str, str], int] = {}  # rows written; arrays grow ahead of them
        self._scalars_written: dict[str, np.ndarray] | None = None  # the scalars table as this writer left it,
        self._scalars_written_at = (0, 0)  # at these committed_rows and rewrites (else read back: files restored)
        self._label_folders: frozenset[str] | None = None  # label_folders(), once read
        self._alert_list: list[dict[str, Any]] | None = None  # alerts(), once read: this is the only writer
        try:
            self.refresh()
            self._check_encoder(encoder)
        except BaseException:
            self._lengths.clear()  # nothing written: close only lets go of the lock
            self.close()
            raise
        if recover_now:
            self.recover()

    def recover(self) -> None:
        """Go on from the commit points (what a killed writer or a copy taken mid-write left),
        and refuse a store with chunk files missing; before it, this writer writes nothing."""
        try:
            if missing := self.missing_metadata():  # before any write: a watch made a table's column again over
                raise self._incomplete(missing)  # its chunks, and recorded itself in a store it then refused
            if self._load_state():  # a cleanly closed store ends at its commit points
                log.warning("%s: the last write was interrupted; resuming from the last commit (%d rows, %d checkpoints)",
                            self.path, self.n_rows, self.n_checkpoints)
            self.check_complete()  # appended to, a store with holes kept them (zeros measured, exported)
        except BaseException:
            self._lengths.clear()  # close only lets go of the lock
            self.close()
            raise

    def _load_state(self) -> bool:
        """Cut back to the commit points and read what writing goes on from; whether anything
        was past them."""
        cut = self._recover()  # and the current source of each checkpoint (_write_superseded)
        self._alert_list = None
        self._pending: list[CheckpointTransaction] = []
        self._staging = _Staging()
        self._labels = list(self.labels)
        self._label_codes = {name: code for code, name in enumerate(self._labels)}
        return cut

    def lock_descriptor_for_child(self) -> int:
        """A copy of the lock's descriptor for a child about to be forked to write for this
        writer (engine/writer_process.py): the store stays locked while the child lives.
        The caller closes its copy once the child is started."""
        return self._lock.duplicate()

    def reload_after_child(self) -> None:
        """Forget the arrays' cached shapes and lengths after a child wrote for this writer,
        and go on from the commit points it left (whether it finished, failed or was killed)."""
        self._handles.clear()
        self._lengths.clear()
        self.refresh()
        self._load_state()

    # --- lifecycle ------------------------------------------------------------------
    @property
    def _holding(self) -> bool:
        """Whether this writer holds its lock (not yet closed; made far enough to take it)."""
        lock = getattr(self, "_lock", None)
        return lock is not None and lock.held

    @property
    def write_let_go(self) -> bool:
        """Whether a second Ctrl-C (or SIGTERM) let a write of this writer go unfinished
        (:mod:`stores.uninterrupted`): it may still land, so the arrays are not cut back, nor
        the store removed; the next writer recovers from the commit points as after a kill."""
        return uninterrupted.let_go != getattr(self, "_let_go", uninterrupted.let_go)

    def holds_its_folder(self) -> bool:
        """Whether the store path still leads to the folder this writer opened, with its root
        metadata: not deleted (``rm -rf`` under way included), moved away or replaced (a copy
        put back is another folder)."""
        return folder_identity(self.path) == getattr(self, "_folder", None) and is_store(self.path)

    def _ensure_intact(self) -> None:
        """Stop before writing into a store folder deleted or moved while open: zarr would
        make a headless half store of the new chunks, and the next read would fail obscurely."""
        if self._holding and not self.holds_its_folder():
            raise self._gone()

    def _gone(self) -> StoreFormatError:
        # writes under way may have made chunk folders again there (zarr's local store makes a
        # chunk's folders): the same command then refused them as "not an evowatch store" (round
        # AN). Said, not removed: a store being copied back looks the same (round AO)
        again = (" (a folder is there again without the store's zarr.json: pieces writes under way made again, "
                 "to remove first, or a copy not finished)" if self.path.exists() and not is_store(self.path) else "")
        return StoreFormatError(f"{self.path}: the store was deleted or moved while being written; nothing more "
                                f"is written there: restore it, or run the same command again to start a new one{again}")

    def refresh(self) -> None:
        self._ensure_intact()
        super().refresh()

    def close(self) -> None:
        if self._holding and getattr(self, "_lengths", None) and self.holds_its_folder() and not self.write_let_go:
            try:  # a closed store's arrays end at their commit points
                self.refresh()
                self._cut_to_committed()
            except Exception as exc:  # readers stop at the commit points anyway; the next writer cuts
                if self.holds_its_folder():  # else deleted meanwhile: there is nothing to cut; a full disk is said
                    full = getattr(exc, "errno", None) in NO_ROOM  # by the error that closes it
                    log.log(logging.DEBUG if full else logging.WARNING,
                            "%s: could not cut the arrays' spare capacity on close (%s)", self.path, exc)
        if self._holding:
            lock, self._lock = self._lock, None
            if self.write_let_go:  # it may land yet: no other writer before it has
                after_writes_end(lock.release)
            else:
                lock.release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        # Whatever failed once the store folder was deleted (a read of a vanished array, a
        # metrics table gone empty) failed because of that: say so, on one line.
        gone = isinstance(exc, Exception) and self._holding and not self.holds_its_folder()
        self.close()
        if gone:
            raise self._gone() from exc

    def _create_atomically(self, encoder: dict[str, Any], thumbnail_size: int) -> None:
        """Build the empty store beside its final path and rename it into place.

        A reader or a restarted writer then never meets a half-created store.
        """
        check_store_path(self.path)
        where = Path(os.path.abspath(self.path))  # `--store .` has no name of its own
        if os.path.ismount(where):  # a fresh `docker -v` volume: it cannot be renamed over ("Device or resource busy")
            raise StoreFormatError(f"{self.path}: a mount point cannot become a store (a store is made beside its path "
                                   f"and renamed into place); give --store a path inside it, e.g. {where / 'run.zarr'}")
        stem, staging = _staging(self.path)
        for left in where.parent.glob(f".{glob.escape(stem)}.creating-*"):  # a killed creation's or removal's
            if left == staging or owner_gone(left.name.rpartition(".creating-")[2]):
                shutil.rmtree(left, ignore_errors=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create(staging, encoder, thumbnail_size)
        except BaseException as exc:  # a full disk, an interrupt: leave nothing half-made behind
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno not in NO_ROOM:  # those say "free space"
                # a file where a folder must be (--store notes.txt/s.zarr), /proc, a read-only mount
                raise StoreFormatError(f"{self.path}: cannot create a store there ({exc.strerror or exc}: "
                                       f"{exc.filename or self.path.parent}); choose another --store path") from None
            raise
        try:
            if self.path.is_dir():
                self.path.rmdir()
            os.rename(staging, self.path)
        except OSError:  # another writer created it first: use theirs
            shutil.rmtree(staging, ignore_errors=True)
            if not is_store(self.path):
                raise

    @staticmethod
    def _create(where: Path, encoder: dict[str, Any], thumbnail_size: int) -> None:
        root = zarr.open_group(str(where), mode="w", zarr_format=3)
        dim = int(encoder["dim"])
        specs = {
            "samples": {
                "embedding": ((dim,), "float16"),
                "step": ((), "int64"),
                "kind": ((), "int8"),
                "instance": ((), "int32"),
                "label": ((), "int16"),
                "checkpoint": ((), "int32"),
                "thumbnail": ((thumbnail_size, thumbnail_size, 3), "uint8"),
                "path": ((), str),
            },
            "checkpoints": {
                "step": ((), "int64"), "kind": ((), "int8"), "row_start": ((), "int64"), "row_stop": ((), "int64"),
                "time": ((), "float64"), "hash": ((), str), "source": ((), str), "superseded": ((), "bool"),
                "n_skipped": ((), "int32"),
            },
            "warnings": {"checkpoint": ((), "int32"), "path": ((), str), "reason": ((), str)},
            "layout": {"xy": ((2,), "float32")},
        }
        for group_name, arrays in specs.items():
            group = root.create_group(group_name)
            for name, (row_shape, dtype) in arrays.items():
                # Per-checkpoint tables grow by a row or two per commit: small chunks.
                max_rows = 16384 if group_name in ("samples", "layout") else 1024
                StoreWriter._create_array(group, name, row_shape, dtype, fmt.GROUPS[group_name][name], max_rows)
        StoreWriter._create_superseded_by(root["checkpoints"])
        StoreWriter._create_alert_arrays(root)
        zarr.open_group(str(where / "layout"), mode="r+").update_attributes({"committed_rows": 0})
        root.update_attributes({
            "evowatch": {"schema": fmt.SCHEMA, "version": fmt.SCHEMA_VERSION, "id": uuid.uuid4().hex},
            "description": "evowatch run store; " + fmt.READING_GUIDE,
            "arrays": _described_arrays({}),
            "encoder": dict(encoder),
            "kinds": list(fmt.KINDS),
            "labels": [],
            "thumbnail_size": thumbnail_size,
            "history": [],
            "committed": {"rows": 0, "checkpoints": 0, "warnings": 0},
        })

    @staticmethod
    def _create_alert_arrays(root: zarr.Group) -> None:
        """The ``alerts/`` group, no alert in it (made again from scratch: a migration killed
        before it took effect left one, which no reader of the older version looks at)."""
        shutil.rmtree(Path(root.store.root) / root.path / "alerts", ignore_errors=True)
        group = root.create_group("alerts", attributes={"first_row": 0, "committed_rows": 0, "rewrites": 0})
        for name, dtype in (("step", "int64"), ("rule", str), ("value", "float64"), ("message", str)):
            StoreWriter._create_array(group, name, (), dtype, fmt.ALERT_ARRAYS[name], 1024)

    @staticmethod
    def _create_superseded_by(group: zarr.Group) -> None:
        StoreWriter._create_array(group, "superseded_by", (), "int32", fmt.OPTIONAL_CHECKPOINT_ARRAYS["superseded_by"],
                                  1024)

    @staticmethod
    def _create_array(group: zarr.Group, name: str, row_shape: tuple[int, ...], dtype: Any, description: str,
                      max_rows: int = 16384, fill_value: Any = None,
                      attributes: Mapping[str, Any] | None = None, rows: int = 0) -> None:
        """A new array of ``rows`` rows, its attributes written with it (written after, a live reader
        of a new per-sample metric found no ``committed_rows`` for an instant: round AQ). An array
        added beside committed rows is made as long as them: made empty and grown after, a live
        reader found it shorter than the commit point for an instant (round BE)."""
        itemsize = 256 if dtype is str else np.dtype(dtype).itemsize  # strings: a typical path's length
        per_chunk = _rows_per_chunk(row_shape, itemsize, max_rows)
        folder = Path(group.store.root) / group.path
        staged = bool(rows) and fill_value is not None  # rows under a commit point: every chunk written first
        made = _staged_name(name) if staged else name
        try:
            shutil.rmtree(folder / made, ignore_errors=True) if staged else None  # a killed writer's
            group.create_array(made, shape=(rows, *row_shape), chunks=(per_chunk, *row_shape), dtype=dtype,
                               fill_value="" if dtype is str else fill_value,
                               attributes={"description": description, **(attributes or {})})
            if staged:  # then renamed into place: seen before its chunks, a live reader found them missing, and a
                array = _open_array(folder / made, "r+").with_config(WRITE_CONFIG)  # kill then left a store every
                _fill_by_chunks(array, 0, rows, fill_value)  # later watch refused as copied incompletely (round BK)
                os.rename(folder / made, folder / name)
        except BaseException:
            # a full disk or a stop half-way left a folder without zarr.json, which plain zarr
            # warned about at every read ("Object at density is not recognized") until a resume
            shutil.rmtree(folder / made, ignore_errors=True)
            raise

    def _check_encoder(self, encoder: dict[str, Any]) -> None:
        stored = self.encoder or {}
        same = stored.get("identity") == encoder.get("identity") or _tag_as_file(stored.get("identity"), encoder.get("identity"))
        if not same or int(stored.get("dim", -1)) != int(encoder["dim"]):
            raise encoder_mismatch(self.path, stored, f"'{encoder.get('identity')}' (dim {encoder['dim']})")
        if stored.get("identity") != encoder.get("identity"):
            log.info("%s: %s taken for the weights of %s, as its spec says (a file cannot be checked against a tag)",
                     self.path, encoder.get("spec"), stored.get("identity"))
        if encoder.get("spec") and stored.get("spec") != encoder["spec"]:  # the same weights, moved: a resume
            self._update_root({"encoder": {**stored, "spec": encoder["spec"]}})  # without --encoder finds them

    def _recover(self) -> bool:
        """Cut every array back to its committed length and repair superseded flags; whether
        anything was past the commit points."""
        self._finish_layout_swap()
        for group in ("samples", "metrics", "scalars"):  # arrays a killed writer was making (_create_array)
            for left in (self.path / group).glob(_staged_name("*")):
                shutil.rmtree(left, ignore_errors=True)
        behind = self._commit_point_behind_its_rows()
        self._metrics_behind_their_columns()
        cut = self._cut_to_committed()
        self._write_superseded()
        if self.attrs["evowatch"]["version"] != fmt.SCHEMA_VERSION:  # what makes it this version is done
            self._raise_version()
        return cut or behind

    @uninterrupted
    def _raise_version(self) -> None:
        """Make an older store this schema version: its alerts (version 1 and 2 kept them in the
        root attributes) are written into the ``alerts/`` arrays first, then one root write sets
        the version and drops ``attrs["alerts"]``. Killed in between, the store is still the older
        version, read from its root attributes (readers go by the version, not by the arrays),
        and the next writer does it again."""
        alerts = [_alert_record(a) for a in self.attrs.get("alerts", [])]
        root = _open_root(self.path, "r+")
        self._create_alert_arrays(root)
        for name in fmt.ALERT_ARRAYS:  # made again: no handle or length of before holds
            self._handles.pop(("alerts", name), None)
            self._lengths.pop(("alerts", name), None)
        if alerts:
            self.write_columns("alerts", 0, _alert_columns(alerts))
            self._ensure_group("alerts").update_attributes({"committed_rows": len(alerts)})
        attrs = {key: value for key, value in self.attrs.items() if key != "alerts"}
        attrs["evowatch"] = {**attrs["evowatch"], "version": fmt.SCHEMA_VERSION}
        attrs["arrays"] = _described_arrays(attrs.get("arrays"))
        self._ensure_intact()
        root.attrs.put(attrs)  # one write of the root zarr.json
        self.refresh()

    @uninterrupted
    def _commit_point_behind_its_rows(self) -> bool:
        """Move the commit point back to the last checkpoint whose rows and record all exist,
        when it counts more (an earlier evowatch stopped by Ctrl-C while committing; files lost
        on disk): readers would index past the arrays, and a resumed watch would append after
        rows that are not there. Whether it was moved."""
        counts = self.attrs["committed"]
        length = {group: min(self.handle(group, name).shape[0] for name in fmt.GROUPS[group])
                  for group in ("samples", "checkpoints", "warnings")}
        if (length["samples"] >= counts["rows"] and length["checkpoints"] >= counts["checkpoints"]
                and length["warnings"] >= counts["warnings"]):
            return False
        n = min(counts["checkpoints"], length["checkpoints"])
        row_stop = self._read(self.handle("checkpoints", "row_stop"), n, None)
        while n and row_stop[n - 1] > min(counts["rows"], length["samples"]):
            n -= 1
        warned = self._read(self.handle("warnings", "checkpoint"), min(counts["warnings"], length["warnings"]), None)
        kept = {"rows": int(row_stop[n - 1]) if n else 0, "checkpoints": n, "warnings": int(np.sum(warned < n))}
        complete = f"but only {n} {'is' if n == 1 else 'are'} complete on disk"
        if not self._ingests:  # it would cut rows no one ingests again (a store copied while written: round AY-2)
            raise StoreFormatError(f"{self.path}: the commit point counts {counts['checkpoints']} checkpoints "
                                   f"({counts['rows']} rows) {complete} (a store copied while it was written, or "
                                   "files lost); nothing changed: copy it again from its source, or `evowatch watch "
                                   f"RUN_DIR --store {shlex.quote(str(self.path))}` goes on from {'it' if n == 1 else 'those'} "
                                   "and ingests the rest again")
        log.warning("%s: the commit point counted %d checkpoints (%d rows) %s; going on from %s (the rest is "
                    "ingested again)", self.path, counts["checkpoints"], counts["rows"], complete,
                    "it" if n == 1 else "those")
        self._update_root({"committed": kept})  # the layout's commit point follows it (_cut_to_committed)
        return True

    def _metrics_behind_their_columns(self) -> None:
        """Move the per-step metrics' commit point back to the rows every column holds, when it
        counts more (a store copied while a watch measured: a column's zarr.json copied before its
        last rows): the watch read past the short column (an IndexError), and a next row would
        have grown it with zeros under the rows between. The steps past it are measured again; a
        writer that measures nothing (``evowatch layout``) leaves them to the next watch."""
        committed = int(self._group_attrs("metrics").get("committed_rows", 0))
        if not self._ingests or not committed:
            return
        held = min((self._length_on_disk("metrics", name) for name in self._array_names("metrics")), default=committed)
        if held < committed:
            log.warning("%s: the metrics' commit point counted %d steps but only %d are complete on disk (a store "
                        "copied while it was written); the rest is measured again", self.path, committed, held)
            self._ensure_group("metrics").update_attributes({"committed_rows": held})
            for name in self._array_names("metrics"):  # not then said as an interrupted write's rows
                self.handle("metrics", name).resize((held,))

    def _cut_to_committed(self) -> bool:
        """Drop rows past the commit points (uncommitted rows and the capacity grown ahead);
        whether there were any."""
        cut = False
        counts = self.attrs["committed"]
        layout_rows = self.layout_rows  # no more than the store's rows; its own count may be past them (the
        if self.has_array("layout", "xy") and int(self._group_attrs("layout").get("committed_rows", 0)) > layout_rows:
            self._set_layout_rows(layout_rows)  # commit point moved back): the rows ingested again were not laid out
        for group_name, n in (("samples", counts["rows"]), ("checkpoints", counts["checkpoints"]),
                              ("warnings", counts["warnings"]), ("layout", layout_rows)):
            extra = {"samples": ["latent"], "checkpoints": list(fmt.OPTIONAL_CHECKPOINT_ARRAYS)}.get(group_name, [])
            for name in list(fmt.GROUPS[group_name]) + extra:
                optional = name in extra or group_name == "layout"  # made when first needed
                if optional and not self.has_array(group_name, name):
                    continue
                array = self.handle(group_name, name)  # the cached handle must see the cut
                if array.shape[0] > n:
                    log.debug("%s: cutting %s/%s from %d to its %d committed rows", self.path, group_name, name,
                              array.shape[0], n)
                    array.resize((n, *array.shape[1:]))
                    cut = True
                self._lengths[(group_name, name)] = min(n, array.shape[0])
        table_rows = int(self._group_attrs("metrics").get("committed_rows", 0))  # the table's: one read
        for group_name in ("metrics", "sample_metrics"):  # grown ahead too (_ensure_column)
            for name in self._array_names(group_name):
                array = self.handle(group_name, name)
                n = table_rows if group_name == "metrics" else int(array.attrs.get("committed_rows", 0))
                if array.shape[0] > n:
                    array.resize((n,))
                    cut = True
        if int(self.attrs["evowatch"]["version"]) >= fmt.ALERT_ARRAYS_VERSION:  # grown ahead too (set_alerts)
            n = int(self._group_attrs("alerts").get("committed_rows", 0))
            for name in self._array_names("alerts"):
                array = self.handle("alerts", name)
                if array.shape[0] > n:
                    array.resize((n,))
                    cut = True
                self._lengths[("alerts", name)] = min(n, array.shape[0])
        return cut

    def handle(self, group: str, name: str) -> zarr.Array:
        """A cached writable handle: this process is the only writer, so its metadata stays true."""
        self._ensure_intact()  # every array write comes here
        key = (group, name)
        if key not in self._handles:
            # open_array ignores its ``config`` argument (zarr 3.1): with_config applies it.
            self._handles[key] = _open_array(self.path / group / name, "r+").with_config(WRITE_CONFIG)
        return self._handles[key]

    @uninterrupted
    def _supersede(self, group: Sequence[CheckpointTransaction]) -> np.ndarray:
        """Before the commit point: each checkpoint the group replaces gets the index of its
        replacement in ``superseded_by`` (a reader of the earlier count still reads it current).
        Returns their indices, flagged ``superseded`` once the commit point has moved."""
        pairs = [(i, tx.checkpoint_index) for tx in group for i in self._current.commit(tx.source, tx.checkpoint_index)]
        if pairs:
            old, new = (np.array(x) for x in zip(*pairs))
            self.handle("checkpoints", "superseded_by").set_coordinate_selection(old, new.astype(np.int32))
            return old
        return np.zeros(0, np.int64)

    @uninterrupted
    def _write_superseded(self) -> None:
        """Repair both records of supersession from the committed sources (after a crash, a
        checkpoint renamed, or in a store made before ``superseded_by``: where the replacement
        is not known, the next reading of its source, else of its step, else the next checkpoint)."""
        if not self.has_array("checkpoints", "superseded_by"):
            self._create_superseded_by(zarr.open_group(str(self.path / "checkpoints"), mode="r+"))
        ckpt = self.checkpoints()
        flags = superseded_flags(ckpt)
        n = len(flags)
        if n and not np.array_equal(flags, ckpt["superseded"]):
            self.handle("checkpoints", "superseded")[:n] = flags
        by = self.handle("checkpoints", "superseded_by")
        stored = by[:n] if by.shape[0] >= n else np.full(n, -2, np.int32)
        fixed = _replacements(ckpt, flags, stored)
        if not np.array_equal(fixed, stored):
            if by.shape[0] < n:
                by.resize((n,))
            by[:n] = fixed
        self._current = _CurrentSources(ckpt["source"], flags)

    def current_checkpoints(self) -> np.ndarray:
        """Boolean mask of the committed checkpoints that are current: ``~superseded_flags``
        of the committed table, from the current checkpoint of each source this writer keeps up
        to date as it commits (worked out again from every source, three times a call, it was
        0.1 s of the signals hook at 2,000 checkpoints)."""
        n = self.n_checkpoints
        if self._current.count != n:  # a commit that failed once its supersession was noted, a writer
            return ~superseded_flags(self.checkpoints())  # process's checkpoints not read back
        current = np.zeros(n, bool)
        current[self._current.indices()] = True
        return current

    # --- queries the pipeline needs -------------------------------------------------
    def committed_hashes(self) -> dict[str, str]:
        """Content hash of each source's current checkpoint: the idempotency check."""
        return {source: digest for source, (digest, _) in self.committed_readings().items()}

    def committed_readings(self) -> dict[str, tuple[str, int]]:
        """(content hash, step) of each source's current checkpoint: the idempotency check, and
        the step it was read at (a reading that changed as more of the run was written stores
        it again at its new step)."""
        self._ensure_intact()  # each watch pass starts here
        ckpt = self.checkpoints()
        return {str(s): (str(h), int(t)) for s, h, t, old in zip(ckpt["source"], ckpt["hash"], ckpt["step"],
                                                                  superseded_flags(ckpt)) if not old}

    # --- writing --------------------------------------------------------------------
    @uninterrupted
    def rename_source(self, old: str, new: str, content_hash: str | None = None) -> None:
        """Name the checkpoints read from ``old`` by ``new``, where the run moved them (a
        trainer's ``tmp-checkpoint-500/`` renamed ``checkpoint-500/``): read again there, the
        earlier reading is then that source's superseded version, not a second current copy.
        ``content_hash``: the current reading's hash under ``new`` (the same files seen from
        another folder: taken as stored, not read again); written after the name, so a write
        cut between the two has them read again, never taken for another run's."""
        ckpt = self.checkpoints()
        where = np.flatnonzero(ckpt["source"] == stored_text(old))
        if not len(where):
            return
        handle = self.handle("checkpoints", "source")
        for i in where:
            handle[int(i)] = stored_text(new)
        if content_hash is not None:
            self.handle("checkpoints", "hash")[int(where.max())] = content_hash
        self._write_superseded()
        by, newest = self.handle("checkpoints", "superseded_by"), int(np.flatnonzero(ckpt["source"] == stored_text(new)).max(initial=-1))
        for i in where:  # replaced by the reading at the new name
            if newest > i:
                by[int(i)] = newest

    @contextlib.contextmanager
    def checkpoint(self, step: int, source: str, content_hash: str, kind: str = "generated",
                   defer: bool = False) -> Iterator[CheckpointTransaction]:
        """Append one checkpoint's rows; committed on normal exit, rolled back on error.

        With ``defer`` a complete checkpoint waits in memory for :meth:`commit_pending`, so
        a backlog of small checkpoints is written and committed as one group (one write per
        array instead of one per array and checkpoint). Only complete checkpoints wait.
        """
        tx = CheckpointTransaction(self, step, source, content_hash, fmt.KIND_CODES[kind])
        tx.defer = defer  # the caller may decide when the checkpoint is complete
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        self._pending.append(tx)
        if not tx.defer or tx.rows_written:
            self.commit_pending()

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    @property
    def pending_rows(self) -> int:
        return sum(tx.n_rows for tx in self._pending)

    def _next(self) -> tuple[int, int, int]:
        """Row, checkpoint and warning index after the committed and pending checkpoints."""
        return (self.n_rows + self.pending_rows, self.n_checkpoints + len(self._pending),
                self.n_warnings + sum(len(tx.skipped) for tx in self._pending))

    def label_code(self, label: str | None) -> int:
        if label is None:
            return -1
        label = stored_text(label)  # a label folder's name
        code = self._label_codes.get(label)
        if code is None:
            code = self._label_codes[label] = len(self._labels)
            self._labels.append(label)
        return code

    @uninterrupted
    def commit_pending(self) -> None:
        """Write the waiting checkpoints' rows and records, then move the commit point once."""
        if not self._pending:
            return
        group, self._pending = self._pending, []
        with_rows = [tx for tx in group if tx.buffer.n]
        if len({tx.latent_shape for tx in with_rows}) == 1:  # same columns: one write per array
            self._write_staged(with_rows)
        else:
            for tx in with_rows:
                self._write_staged([tx])
        records = [tx.record() for tx in group]
        self.write_columns("checkpoints", group[0].checkpoint_index,
                                            {k: np.array([r[k] for r in records]) for k in records[0]})
        skipped = [(tx.checkpoint_index, path, reason) for tx in group for path, reason in tx.skipped]
        if skipped:
            index, paths, reasons = zip(*skipped)
            self.write_columns("warnings", self.n_warnings, {
                "checkpoint": np.array(index, np.int32), "path": np.array(paths, dtype=str),
                "reason": np.array(reasons, dtype=str)})
        last = group[-1]
        self._latents_end_at_their_chunks(last.row_start + last.n_rows)
        replaced = self._supersede(group)
        # The commit point: one atomic rewrite of the root zarr.json.
        self._update_root({
            "labels": list(self._labels),
            "committed": {"rows": last.row_start + last.n_rows, "checkpoints": last.checkpoint_index + 1,
                          "warnings": self.n_warnings + len(skipped)},
        })
        if len(replaced):
            self.handle("checkpoints", "superseded").set_coordinate_selection(replaced, True)

    def _latents_end_at_their_chunks(self, rows: int) -> None:
        """Before a commit to ``rows``: cut ``samples/latent``'s capacity grown ahead back to its
        last chunk written, once rows without latents pass it (it ends at the last rows with
        latents, docs/store.md); under the commit point, its unwritten chunks were said missing
        and the store refused as copied incompletely (round BK)."""
        written = self._lengths.get(("samples", "latent"))
        if written is None or not self.has_array("samples", "latent"):
            return
        array = self.handle("samples", "latent")
        end = -(-written // array.chunks[0]) * array.chunks[0]
        if written < rows and end < array.shape[0]:
            array.resize((end, *array.shape[1:]))

    def record_history(self, entry: dict[str, Any]) -> None:
        """Note a run event (device, fallback, encoder) in the root attributes."""
        history = list(self.attrs.get("history", []))[-99:]
        history.append({"time": time.time(), **entry})
        self._update_root({"history": history})

    def alerts(self) -> list[dict[str, Any]]:
        """:meth:`StoreReader.alerts`, read once: this writer is the store's only one."""
        if self._alert_list is None:
            self._alert_list = super().alerts()
        return list(self._alert_list)

    @uninterrupted
    def set_alerts(self, alerts: Sequence[Mapping[str, Any]], onsets: Sequence[Mapping[str, Any]] = ()) -> None:
        """Store ``alerts`` as the alert list (:meth:`StoreReader.alerts`), in place of the one
        stored. Rows are never changed under the commit point, so a reader or a kill sees the
        old list or the new one, whole: a list that only grew (a new step's alerts, the common
        case) has its new rows appended past ``committed_rows``, which then moves on; any other
        change (a step measured again, steps dropped) writes the whole new list where no
        committed row is (at row 0 when it fits before ``first_row``, else past
        ``committed_rows``) and moves ``first_row`` and ``committed_rows`` to it in one attribute
        write, counting it in ``rewrites``. Rewriting rows in place, or appending new versions
        with tombstones on the old, each needed a second commit point or a filter a plain reader
        must apply; a rewrite costs the list's length, about as the root attribute it replaces
        cost at every write. ``onsets``: alerts of the list to announce, kept unsaid with it
        (:meth:`StoreReader.unsaid_onsets`) until :meth:`said_onsets`."""
        old = self.alerts()
        grown = len(alerts) >= len(old) and list(alerts[:len(old)]) == old  # the stored list's records, equal
        new = old + [_alert_record(a) for a in alerts[len(old):]] if grown else [_alert_record(a) for a in alerts]
        if new == old and not onsets:
            return
        group = self._ensure_group("alerts")
        stored_onsets = group.attrs.get("unsaid_onsets", [])
        unsaid_onsets = _unsaid([*stored_onsets, *onsets], new, listed=True)
        first, stop = int(group.attrs.get("first_row", 0)), int(group.attrs.get("committed_rows", 0))
        if grown or new[:len(old)] == old:
            start, rows, commit = stop, new[len(old):], {"committed_rows": stop + len(new) - len(old)}
        else:
            start = 0 if len(new) <= first else stop
            rows = new
            commit = {"first_row": start, "committed_rows": start + len(new),
                      "rewrites": int(group.attrs.get("rewrites", 0)) + 1,
                      "unsaid_withdrawals": _unsaid([*group.attrs.get("unsaid_withdrawals", []), *old], new, listed=False)}
        if unsaid_onsets != stored_onsets:  # the onsets, and those of the old list still in the new one
            commit["unsaid_onsets"] = unsaid_onsets
        if rows:
            self.write_columns("alerts", start, _alert_columns(rows))
        group.update_attributes(commit)
        self._alert_list = new

    def said_withdrawals(self) -> None:
        """The withdrawals kept unsaid (:meth:`StoreReader.unsaid_withdrawals`) have been said."""
        self._said("unsaid_withdrawals")

    def said_onsets(self, said: Sequence[Mapping[str, Any]]) -> None:
        """The onsets ``said`` (by step and rule) have been announced, their --on-alert commands
        handed to the runner: the others stay unsaid (:meth:`StoreReader.unsaid_onsets`; a
        killed watch's, said once a pass confirms them, outlive a new onset's line)."""
        self._said("unsaid_onsets", {(a["step"], a["rule"]) for a in said})

    @uninterrupted
    def _said(self, key: str, said: set[tuple[int, str]] | None = None) -> None:
        """Empty the record ``key``, or drop the alerts ``said`` from it."""
        records = self._unsaid_alerts(key)
        left = [a for a in records if said is not None and (a["step"], a["rule"]) not in said]
        if left != records:
            self._ensure_group("alerts").update_attributes({key: left})

    def label_folders(self) -> frozenset[str]:
        """The run's label folders kept (:meth:`note_label_folders`); in a store made before they
        were kept, the folders its generated rows' labels came from (a file labelled by the
        folder it sits in: round AU, an upgraded store whose mixed steps were deleted read its
        one-class steps again, unlabelled). Read once a writer."""
        if self._label_folders is None:
            if "label_folders" in self.attrs:
                self._label_folders = frozenset(self.attrs["label_folders"])
            else:
                n, labels = self.n_rows, self.labels
                code, kind = self.samples("label", slice(0, n)), self.samples("kind", slice(0, n))
                rows = np.flatnonzero((code >= 0) & (kind == fmt.KIND_CODES["generated"]))
                paths = self.samples("path", rows) if len(rows) else []
                self._label_folders = frozenset(labels[c] for c, path in zip(code[rows], paths)
                                                if PurePosixPath(str(path)).parent.name == labels[c])
        return self._label_folders

    def note_label_folders(self, names: Iterable[str]) -> None:
        """Keep the names of the run's label folders (ImageFolder checkpoints' sub-folders), so
        that a one-class step is labelled by its folder after the checkpoints that showed the
        folder was a label's are deleted (a rotating trainer)."""
        known = self.label_folders()
        if not known.issuperset(names) or "label_folders" not in self.attrs:
            self._label_folders = known.union(names)
            self._update_root({"label_folders": sorted(self._label_folders)})

    @uninterrupted
    def _update_root(self, changes: dict[str, Any]) -> None:
        self._ensure_intact()
        root = _open_root(self.path, "r+")
        root.update_attributes(changes)  # one write: attrs.update writes zarr.json once per key
        self.refresh()

    @uninterrupted
    def _write_staged(self, group: Sequence[CheckpointTransaction]) -> None:
        """Write the waiting rows of consecutive transactions, the first in the staging."""
        start, n, columns = _take(group, self._staging)
        self.write_columns("samples", start, columns)
        self._staging.drop_front(n)

    def write_columns(self, group: str, start: int, columns: dict[str, np.ndarray]) -> None:
        """Write several arrays' rows at once, in one pass through zarr's event loop.

        Their I/O and compression overlap there, without a thread per array each blocking
        on that same loop (a 1,024-row commit: 25-28k -> 33-38k rows/s, docs/ingest.md).
        """
        _write_all(w for name, values in columns.items() for w in self._row_writes(group, name, start, values))

    def _row_writes(self, group: str, name: str, start: int, values: np.ndarray) -> list[Coroutine]:
        """Make room for one array's rows [start, start+len(values)); return their writes."""
        path = self.path / group / name
        if name == "latent" and not (path / "zarr.json").is_file():
            # reference rows never have latents: only generated rows without them are news
            kinds = self.handle("samples", "kind")[:start]
            generated = int((kinds == fmt.KIND_CODES["generated"]).sum())
            if generated:
                log.warning("%s: latents appear at row %d; the %d generated rows before have none (NaN)",
                            self.path, start, generated)
            group_handle = zarr.open_group(str(self.path / group), mode="r+")
            # rows never written read NaN, not 0 (a checkpoint without latents, once the writer cut
            # the array back to the committed rows and the next one wrote past them)
            self._create_array(group_handle, name, values.shape[1:], "float32", fmt.OPTIONAL_SAMPLE_ARRAYS[name],
                               fill_value=np.nan, rows=start)
            self._lengths[(group, name)] = start  # rows before ``start`` written NaN: their chunks on disk
        array = self.handle(group, name)
        if name == "latent" and array.shape[1:] != values.shape[1:]:
            log.warning("%s: latent width %s differs from the store's %s; these latents are not stored",
                        self.path, values.shape[1:], array.shape[1:])
            return []
        stop = start + len(values)
        length = self._lengths.get((group, name), array.shape[0])
        if length < start:  # latent array joined late, or skipped checkpoints: the rows between NaN, their
            chunk = array.chunks[0]  # chunks written before a resize shows them (shown first, a live reader or
            end = -(-start // chunk) * chunk  # a kill met them missing under the commit point: round BK)
            _fill_by_chunks(_past_its_shape(array, max(end, array.shape[0])), length, end, np.nan)
            length = start
        if array.shape[0] < stop:
            # Grow ahead, by whole chunks and at least a quarter: each resize rewrites the
            # array's zarr.json, which cost more than the rows themselves at one per commit.
            # Rows past the commit point (capacity included) are cut on close and on recovery.
            chunk = array.chunks[0]
            capacity = -(-max(stop, array.shape[0] + array.shape[0] // 4) // chunk) * chunk
            array.resize((capacity, *array.shape[1:]))
        self._lengths[(group, name)] = max(length, stop)
        return [array.async_array.setitem(slice(start, stop), values)]

    @uninterrupted
    def commit_layout(self, xy: np.ndarray, start: int) -> None:
        """Write layout rows [start, start+len(xy)) and then move the layout commit point."""
        if start != self.layout_rows:
            raise ValueError(f"layout rows must be appended in order: expected start {self.layout_rows}, got {start}")
        stop = start + len(xy)
        if stop > self.n_rows:
            raise ValueError(f"layout rows {stop} exceed the {self.n_rows} committed sample rows")
        array = self.handle("layout", "xy")
        array.resize((stop, 2))
        array[start:stop] = np.asarray(xy, np.float32)
        self._set_layout_rows(stop)

    def _set_layout_rows(self, n: int) -> None:
        """Move the layout's commit point."""
        zarr.open_group(str(self.path / "layout"), mode="r+").update_attributes({"committed_rows": n})

    @uninterrupted
    def write_step_metrics(self, step: int, values: dict[str, float], measured: list[int] | None = None) -> None:
        """Add or replace one step's row of metrics (:meth:`write_steps_metrics`)."""
        self.write_steps_metrics([(step, values, measured)])

    @uninterrupted
    def write_steps_metrics(self, rows: Sequence[tuple[int, dict[str, float], list[int] | None]]) -> None:
        """Add or replace steps' rows of metrics (a metric not given is NaN there); new metric
        names get new columns. Each row's ``measured``: what it was computed on (see
        :meth:`measured_steps`). Written together: a backlog of 1,500 steps written a row at a
        time spent 46 s growing and writing every column 1,500 times (the metrics 2 s)."""
        if not rows:
            return
        group = self._ensure_group("metrics")
        committed = int(group.attrs.get("committed_rows", 0))
        steps = self.handle("metrics", "step")[:committed] if "step" in group else np.zeros(0, np.int64)
        at = {int(step): row for row, step in enumerate(steps.tolist())}
        n = committed
        for step, _, _ in rows:
            if int(step) not in at:
                at[int(step)], n = n, n + 1
        placed = sorted({at[int(step)]: (int(step), values, measured) for step, values, measured in rows}.items())
        recorded = dict(group.attrs.get("measured", {}))
        replaced = [step for row, (step, _, _) in placed if row < committed]
        if any(recorded.get(str(step)) != [] for step in replaced):  # a reader that sees a row half old, half new
            group.update_attributes({"measured": {**recorded, **{str(step): [] for step in replaced}}})  # can tell
        names = {"step"} | {name for _, (_, values, _) in placed for name in values} | set(self._array_names("metrics"))
        positions = np.array([row for row, _ in placed])
        lo, hi = int(positions[0]), int(positions[-1]) + 1

        def writes() -> Iterator[Coroutine]:  # made inside _write_all: closed there if one fails
            for name in sorted(names):
                column = self._ensure_column(group, "metrics", name, "int64" if name == "step" else "float64", n,
                                             ahead=True)
                # one write per column over the rows' span, the rows between kept: a write per run
                # of consecutive rows raced its siblings on the column's one chunk, and a step
                # measured again with another kept its earlier values in some columns (round AJ)
                # read only for rows kept between: a new step's row was read back from every column
                # before it was written (33 reads, a third of a live watch's metric write)
                span = column[lo:hi] if len(positions) < hi - lo else np.empty(hi - lo, column.dtype)
                span[positions - lo] = [step if name == "step" else values.get(name, np.nan)
                                        for _, (step, values, _) in placed]  # none kept from an earlier measure
                yield column.async_array.setitem(slice(lo, hi), span)

        _write_all(writes())
        for _, (step, _, measured) in placed:
            if measured is not None:
                recorded[str(step)] = [int(x) for x in measured]
        group.update_attributes({"committed_rows": n, "measured": recorded})

    @uninterrupted
    def set_alerts_from(self, step: int | None, rewritten: dict[int, int] | None = None) -> None:
        """Note (or, None, forget) that the alerts of the steps after ``step`` are to be
        evaluated again: a step measured after later ones, their evaluation left to the end of
        a measure a stopped watch did not reach. ``rewritten``: the steps measured again on a
        new version, with its checkpoint index (kept as they are when not given; forgotten
        with ``step``): a watch resumed after a stop evaluated the abandoned run's later steps
        against a run resumed from an earlier checkpoint, for a false alert (round AW)."""
        attrs: dict[str, Any] = {"alerts_from": None if step is None else int(step)}
        if step is None or rewritten is not None:
            attrs["alerts_rewritten"] = {str(int(s)): int(i) for s, i in (rewritten or {}).items()}
        self._ensure_group("metrics").update_attributes(attrs)

    @uninterrupted
    def restart_step_metrics(self, reference: str | None, steps: Iterable[int]) -> None:
        """Have every step measured again (the reference its metrics were measured against
        changed): each of ``steps`` (those with checkpoints now) keeps its row and alerts until
        then, marked as measured on nothing (``[]`` in :meth:`measured_steps`); the rows and
        alerts of other steps go (read at other steps before: a corrected --step-regex).
        ``reference`` names the one the next metrics are measured against
        (:attr:`metrics_reference`). Clearing them all instead had a live viewer see every
        alert go and come back as the steps were measured again."""
        group = self._ensure_group("metrics")
        self._ensure_column(group, "metrics", "step", "int64", 0)  # a reader's table is empty, not missing
        table = self.step_metrics()
        kept = np.isin(table["step"], list({int(step) for step in steps}))
        self._remove_step_rows(table, kept)
        group.update_attributes({"committed_rows": int(kept.sum()), "reference": reference,
                                 "measured": {str(int(step)): [] for step in table["step"][kept]}})

    @uninterrupted
    def drop_step_metrics(self, steps: Iterable[int]) -> None:
        """Remove the rows and alerts of steps no checkpoint is read at any more (a checkpoint
        folder renamed to another step, a corrected --step-regex): their metrics stood in the
        table, `info` and the alerts' messages as if the step still existed."""
        table = self.step_metrics()
        self._remove_step_rows(table, ~np.isin(table["step"], list({int(step) for step in steps})))

    def _remove_step_rows(self, table: dict[str, np.ndarray], kept: np.ndarray) -> None:
        """Keep the metrics rows ``kept`` marks: the alerts of the steps dropped go; the commit
        point moves back to the first row dropped, the kept rows after it are moved up past it,
        then the commit point and ``measured`` are set and the arrays cut. Moved in place below
        the commit point, a kill between two columns left some moved and some not: after the
        resume the later steps showed their predecessors' values in the columns not yet moved
        (round AN). Killed now, the rows after the first dropped one are measured again."""
        if kept.all():
            return
        n, dropped = int(kept.sum()), {int(step) for step in table["step"][~kept]}
        first = int(np.argmin(kept))  # the rows before it stay where they are
        self.set_alerts([a for a in self.alerts() if int(a["step"]) not in dropped])
        group = self._ensure_group("metrics")
        recorded = {step: basis for step, basis in group.attrs.get("measured", {}).items() if int(step) not in dropped}
        group.update_attributes({"committed_rows": first, "measured": recorded})
        for name, values in table.items():
            self.handle("metrics", name)[first:n] = values[first:][kept[first:]]
        group.update_attributes({"committed_rows": n})
        for name in table:
            self.handle("metrics", name).resize((n,))

    @uninterrupted
    def write_scalars(self, columns: dict[str, np.ndarray]) -> None:
        """Replace the trainer scalars table (it is re-read from the run's logs): unchanged, it
        is not written; else the commit point moves back to its first row that changes (none
        when the logs grew: a reader saw an empty table while it was set to 0 for each rewrite;
        round AQ: rows rewritten under it, column by column, a reader took one loss from the
        new log and another from the old) and ``rewrites`` counts it (back to the same count,
        a reader comparing counts alone saw nothing; round AR), the rows from there are
        written, then it moves on. A column the logs no longer hold is NaN (it kept the
        abandoned run's values beside the new run's steps)."""
        group = self._ensure_group("scalars")
        n = len(columns.get("step", []))
        committed = int(group.attrs.get("committed_rows", 0))
        rewrites = int(group.attrs.get("rewrites", 0))
        written = self._scalars_written  # as this writer left it: read back, 41 columns of 100k rows cost 2 s a
        if written is None or self._scalars_written_at != (committed, rewrites):  # log pass (round AS); not if the
            written = {name: self.handle("scalars", name)[:committed] for name in self._array_names("scalars")}  # files changed
        columns = {**{name: np.full(n, np.nan) for name in written if name not in columns}, **columns}
        old = {name: written[name] for name in columns if name in written}
        same = min(committed, n)  # rows kept as they are: up to the first that differs in some old column
        for name, before in old.items():
            k = min(same, len(before))  # a column left short (a log that lost it, before round AR)
            differs = np.flatnonzero(~_equal_or_both_nan(before[:k], np.asarray(columns[name][:k])))
            same = int(differs[0]) if len(differs) else k
        if same == n == committed and len(old) == len(columns):
            self._scalars_written, self._scalars_written_at = old, (n, rewrites)
            return
        self._scalars_written = None  # until the table is whole again
        arrays = {name: self._ensure_column(group, "scalars", name, "int64" if name == "step" else "float64", n)
                  for name in columns}
        if same < committed:
            rewrites += 1
            group.update_attributes({"committed_rows": same, "rewrites": rewrites})
        for name, values in columns.items():
            arrays[name][same if name in old else 0:n] = values[same if name in old else 0:]
        group.update_attributes({"committed_rows": n})
        for array in arrays.values():
            if array.shape[0] > n:
                array.resize((n,))
        self._scalars_written = {name: np.array(values) for name, values in columns.items()}
        self._scalars_written_at = (n, rewrites)

    def write_sample_metric(self, name: str, start: int, values: np.ndarray) -> None:
        """Write rows [start, start+len) of a per-sample metric, then move its commit point."""
        self.write_sample_metrics({name: [(start, values)]})

    @uninterrupted
    def write_sample_metrics(self, parts: Mapping[str, Sequence[tuple[int, np.ndarray]]]) -> None:
        """Write each per-sample metric's ``(start, values)`` parts in one write over their span
        (rows between them kept, rows past its commit point NaN), then move its commit point: a
        backlog's steps written one at a time cost 4 resizes, writes and attribute updates a
        step (0.1 s of each step's 0.5 s at 1,000 steps of 16 samples)."""
        group = self._ensure_group("sample_metrics")
        for name, pieces in parts.items():
            if not pieces:
                continue
            stop = max(start + len(values) for start, values in pieces)
            array = self._ensure_column(group, "sample_metrics", name, "float32", stop, ahead=True)
            committed = int(array.attrs.get("committed_rows", 0))
            lo = min(committed, *(start for start, _ in pieces))
            span = array[lo:stop] if lo < committed else np.full(stop - lo, np.nan, np.float32)
            span[max(committed - lo, 0):] = np.nan  # past the commit point: a killed writer's, not kept
            for start, values in pieces:
                span[start - lo:start - lo + len(values)] = values
            array[lo:stop] = span
            array.update_attributes({"committed_rows": max(committed, stop)})

    def _ensure_group(self, name: str) -> zarr.Group:
        self._ensure_intact()
        return zarr.open_group(str(self.path / name), mode="a", zarr_format=3)

    def _ensure_column(self, group: zarr.Group, group_name: str, name: str, dtype: str, length: int,
                       ahead: bool = False) -> zarr.Array:
        """The column, made if new, at least ``length`` rows long; ``ahead``: grown by whole
        chunks, as the sample arrays are (a backlog's metrics resized and NaN-filled each of ~40
        columns at every write: half a second a write at 1,000 steps). Rows past a table's
        commit point are cut on close and on recovery (:meth:`_cut_to_committed`)."""
        if (group_name, name) not in self._handles and not (self.path / group_name / name / "zarr.json").is_file():
            per_step = group_name != "sample_metrics"  # a row per step: small chunks
            # a table's new column is made NaN and as long as the rows its table commits: made empty,
            # then grown, a live reader found it short of committed_rows (the viewer's table then cut
            # to no rows), then 0.0 where NaN is stored (round BE)
            chunk = 1024 if per_step else 16384
            rows = max(length, int(group.attrs.get("committed_rows", 0))) if per_step else 0
            rows = -(-rows // chunk) * chunk if ahead else rows
            is_float = dtype.startswith("float")
            self._create_array(group, name, (), dtype, _column_description(group_name, name),
                               chunk, fill_value=np.nan if is_float else None,
                               attributes={} if per_step else {"committed_rows": 0}, rows=rows)
        array = self.handle(group_name, name)
        if array.shape[0] < length:
            old = array.shape[0]
            chunk = array.chunks[0]
            capacity = -(-max(length, old + old // 4) // chunk) * chunk if ahead else length
            array.resize((capacity,))
            if dtype.startswith("float"):
                array[old:capacity] = np.nan
        return array

    def check_layout_writable(self) -> None:
        """Raise the OSError :meth:`replace_layout` would meet on a store it cannot write (a
        read-only mount), before a full recompute spends minutes on a layout it cannot keep
        (round AV: it failed on ``layout/xy.next`` only after them), or an incremental one on
        the first step's (round AY-2); in the store's root while it has no layout yet."""
        folder = self.path / "layout"
        probe = (folder if folder.is_dir() else self.path) / f".writable-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()

    @uninterrupted
    def replace_layout(self, xy: np.ndarray) -> None:
        """Put a recomputed layout of the first ``len(xy)`` rows in place of the old one, whole
        (a full recompute). It is written beside the old one and renamed into its place: reset
        and written again a step at a time, a kill -9 in between (seconds at 400 steps) left
        the store with no layout. Its ``generation`` counts the recomputes: one has as many
        rows as before, and readers that key on counts (the viewer) kept drawing the old one."""
        if len(xy) > self.n_rows:
            raise ValueError(f"layout rows {len(xy)} exceed the {self.n_rows} committed sample rows")
        folder = self.path / "layout"
        shutil.rmtree(folder / _LAYOUT_NEXT, ignore_errors=True)
        self._create_array(zarr.open_group(str(folder), mode="r+"), _LAYOUT_NEXT, (2,), "float32",
                           fmt.GROUPS["layout"]["xy"])
        new = _open_array(folder / _LAYOUT_NEXT, "r+").with_config(WRITE_CONFIG)
        new.resize((len(xy), 2))
        new[:] = np.asarray(xy, np.float32)
        new.update_attributes({"generation": int(self._group_attrs("layout").get("generation", 0)) + 1})
        self._handles.pop(("layout", "xy"), None)
        if (folder / "xy").exists():
            os.rename(folder / "xy", folder / _LAYOUT_OLD)
        os.rename(folder / _LAYOUT_NEXT, folder / "xy")
        self._finish_layout_swap()

    def _finish_layout_swap(self) -> None:
        """Complete a :meth:`replace_layout` cut short by a kill: the new layout renamed into
        place once the old one was moved aside, the commit point and generation it carries
        taken, the old one removed; one not yet complete is dropped (the old one stands)."""
        folder = self.path / "layout"
        if not (folder / "xy" / "zarr.json").is_file() and (folder / _LAYOUT_NEXT / "zarr.json").is_file():
            os.rename(folder / _LAYOUT_NEXT, folder / "xy")
        shutil.rmtree(folder / _LAYOUT_NEXT, ignore_errors=True)
        if (folder / "xy" / "zarr.json").is_file():
            xy = _open_array(folder / "xy", "r")
            generation = xy.attrs.get("generation")
            if generation is not None and int(generation) > int(self._group_attrs("layout").get("generation", 0)):
                zarr.open_group(str(folder), mode="r+").update_attributes(
                    {"committed_rows": min(int(xy.shape[0]), self.n_rows), "generation": int(generation)})
        shutil.rmtree(folder / _LAYOUT_OLD, ignore_errors=True)


class CheckpointTransaction:
    """Rows of one checkpoint, flushed chunk by chunk, made visible by :meth:`commit`."""

    def __init__(self, store: StoreWriter, step: int, source: str, content_hash: str, kind_code: int) -> None:
        self.store, self.step, self.hash, self.kind_code = store, step, content_hash, kind_code
        self.source = stored_text(source)
        self.row_start, self.checkpoint_index, _ = store._next()
        self.rows_written = 0
        self.buffer = _Columns()
        self.skipped: list[tuple[str, str]] = []
        chunk = _rows_per_chunk((int(store.encoder["dim"]),), 2)
        self._flush_rows = -(-WRITE_ROWS // chunk) * chunk  # whole embedding chunks

    @property
    def n_rows(self) -> int:
        """Rows of this checkpoint: written and still buffered."""
        return self.rows_written + self.buffer.n

    def add(self, embeddings: np.ndarray, instances: Sequence[int], labels: Sequence[str | None],
            thumbnails: np.ndarray, paths: Sequence[str], latents: np.ndarray | None = None) -> None:
        """Buffer a batch of rows; written out whenever WRITE_ROWS (whole chunks) have gathered."""
        n = len(embeddings)
        if not (len(instances) == len(labels) == len(thumbnails) == len(paths) == n):
            raise ValueError("add(): all columns must have one entry per embedding row")
        b = self.buffer
        self.store._staging.append({
            "embedding": np.asarray(embeddings, np.float16), "instance": np.asarray(instances, np.int32),
            "label": np.array([self.store.label_code(x) for x in labels], np.int16),
            "thumbnail": np.asarray(thumbnails, np.uint8)})
        b.path.append(np.array([stored_text(p) for p in paths], dtype=str))
        if latents is not None:
            b.latent.append(np.asarray(latents, np.float32))
        b.n += n
        if b.n >= self._flush_rows:
            # Rows are written in order: earlier waiting checkpoints go first.
            self.store.commit_pending()
            self._flush()

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append((stored_text(path), stored_text(reason)))

    def _flush(self) -> None:
        if self.buffer.n:
            self.store._write_staged([self])

    @property
    def latent_shape(self) -> tuple[int, ...] | None:
        """Row shape of the buffered latents; None unless every buffered row has one."""
        b = self.buffer
        if not b.latent or sum(len(x) for x in b.latent) != b.n or len({x.shape[1:] for x in b.latent}) != 1:
            return None
        return b.latent[0].shape[1:]

    def record(self) -> dict[str, Any]:
        return {"step": self.step, "kind": self.kind_code, "row_start": self.row_start,
                "row_stop": self.row_start + self.n_rows, "time": time.time(),
                "hash": self.hash, "source": self.source, "superseded": False, "n_skipped": len(self.skipped),
                "superseded_by": np.int32(-1)}

    def rollback(self) -> None:
        """Commit the complete checkpoints still waiting, then drop what this one wrote."""
        if self.store.write_let_go:  # a write still under way may land after either: the next writer recovers
            self.store._staging.clear()
            return
        with contextlib.suppress(Exception):
            self.store.commit_pending()
        self.store._staging.clear()  # this one's waiting rows (and any of a commit that failed)
        with contextlib.suppress(Exception):
            self.store._recover()
