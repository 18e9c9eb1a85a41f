"""One checkpoint's rows on their way into the store: buffered per transaction, their
fixed-width columns staged in the writer's arrays, taken out a group of transactions at a time."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from stores.format import stored_text
from stores.zarr_store.primitives import _rows_per_chunk

if TYPE_CHECKING:
    from stores.zarr_store.writer import StoreWriter


#: Rows per write of the sample arrays (a group commit, a flush). zarr 3.1 spends 1-2 ms of
#: Python on each array it writes, whatever the rows, and a commit writes 17 arrays: per
#: commit of 1,024 / 2,048 / 4,096 rows the store wrote ~37k / ~59k / ~83k rows/s
#: (docs/ingest.md, "Store writes"); the rows wait in a _Staging of this size.
WRITE_ROWS = 2048


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
