"""The arrays a reader opened at one snapshot of the store (:class:`OpenedArrays`): opening one
through zarr (its zarr.json read and parsed, about 0.5-1 ms) cost as much as reading a
column of 16,000 rows, and a reader opened it again at every read."""
from __future__ import annotations

import os
from pathlib import Path

import zarr.api.asynchronous
from zarr import AsyncArray

from stores.zarr_store.primitives import _damaged_metadata


def _metadata_stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells an array's zarr.json rewritten (zarr replaces the file: a new inode) or changed
    by hand: its inode, modification time and size; None when it cannot be read."""
    try:
        st = os.stat(path / "zarr.json")
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class OpenedArrays:
    """Arrays opened for one snapshot's reads (a :class:`StoreReader` makes a new one at each
    :meth:`~StoreReader.refresh`), each opened again when its zarr.json changed (a writer in
    another process grew or cut it; a copy put back, a hand edit or damage: read as before) or
    its shape no longer holds the rows to read: a read of an open array stops at the shape it
    was opened with, and a row past it raises. Only metadata is kept; rows are read from disk."""

    def __init__(self) -> None:
        self._held: dict[Path, tuple[tuple[int, int, int], AsyncArray]] = {}

    def held(self, path: Path, rows: int) -> AsyncArray | None:
        """The array at ``path`` as opened before, if its zarr.json is unchanged and it holds ``rows``."""
        held = self._held.get(path)
        if held is not None and held[0] == _metadata_stamp(path) and held[1].shape[0] >= rows:
            return held[1]
        return None

    async def open(self, path: Path, rows: int) -> AsyncArray:
        """The array at ``path`` to read its first ``rows`` rows (:meth:`held`, else opened); a
        missing or damaged zarr.json is the one-line error naming it."""
        if (held := self.held(path, rows)) is not None:
            return held
        stamp = _metadata_stamp(path)  # before the open: a file changed after it is opened again next time
        try:
            array = await zarr.api.asynchronous.open_array(store=str(path), mode="r")
        except Exception as exc:  # zarr raises several types: JSON errors, ArrayNotFoundError, ValueError
            raise _damaged_metadata(path, "array", exc) from None
        if stamp is not None:
            self._held[path] = (stamp, array)
        return array
