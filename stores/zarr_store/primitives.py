"""The zarr I/O every part of the store shares: opening its nodes with one-line errors, writing
many arrays' rows together on zarr's event loop, rows per chunk, and the cores to size them by."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from stores import format as fmt
from stores.errors import StoreFormatError


# Every chunk is written as it is: zarr's default compares each chunk with the fill value
# to skip "empty" ones, a full scan of every written chunk (~15% of a commit's CPU).
WRITE_CONFIG = {"write_empty_chunks": True}


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (a container pinned to 2 of 64
    cores has 2), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)


#: zarr's chunk operations in flight per array written (its default 10), from the cores: a
#: write's arrays go through together, and each chunk in flight holds its array, encoded and
#: compressed copies. On 2 cores, 4 per array made a 2,048-row commit's working set 38 MB
#: (2 per array: 28 MB, the same throughput; docs/ingest.md, Memory).
_CHUNKS_IN_FLIGHT = max(2, min(10, available_cores()))


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


#: The row counts each group's attributes hold, and the attributes written with them (None: from the
#: group's making on; a metrics or scalars group made, its first write killed, holds none and counts
#: no row). One missing beside those was read as 0: an earlier alert list's rows, metrics measured again.
#: An empty ``measured`` is no row: evowatch of 2026-12-06 (13f8c6f to 90e1bc4) wrote ``{"measured": {},
#: "reference": ...}`` alone when a watch read --real before any step, and its healthy store was refused.
_GROUP_COUNTS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "alerts": (("first_row", "committed_rows", "rewrites"), None), "layout": (("committed_rows",), None),
    "metrics": (("committed_rows",), ("measured",)), "scalars": (("committed_rows",), ("rewrites",))}


def _checked_counts(path: Path, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of the group at ``path``, its row counts (:data:`_GROUP_COUNTS`) there and whole
    numbers, else a one-line error naming its zarr.json: a count the store's readers would read as 0."""
    attrs = dict(attrs)
    counts, written_with = _GROUP_COUNTS.get(path.name, ((), None))
    if written_with is not None and all(attrs.get(key) in (None, {}) for key in written_with):
        return attrs
    bad = [key for key in counts if type(attrs.get(key)) is not int or attrs[key] < 0]
    if bad:
        raise StoreFormatError(f"{path / 'zarr.json'}: attribute {', '.join(map(repr, bad))} missing or not a row count "
                               "(a hand edit, or a copy from mixed versions): restore the store folder from a copy, or "
                               "start a new --store")
    return attrs


def _damaged_metadata(path: Path, node: str, exc: Exception) -> StoreFormatError:
    meta = path / "zarr.json"
    why = f"unreadable {node} metadata ({type(exc).__name__}: {exc})" if meta.is_file() else f"missing {node} metadata"
    return StoreFormatError(f"{meta}: {why}; restore the store folder from a copy, or start a new --store")


def folder_identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) a path leads to now, None if nothing: tells a folder deleted, moved
    away or made again (its old inode number is often reused, the pair seldom) apart."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


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
