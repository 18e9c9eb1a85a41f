"""The sample columns a call's steps read, read ahead in windows."""
from __future__ import annotations

import numpy as np

from stores.zarr_store import StoreWriter

READ_AHEAD_ROWS = 4096  # sample rows read at once by a backlog's steps (~6 MB of 768-d vectors)


class _RowWindow:
    """Sample columns read ahead in windows of :data:`READ_AHEAD_ROWS`: a backlog's steps are
    consecutive rows, and a zarr read per step and column cost 10 ms (16 ms a step at 600 steps
    of 16 samples, more than their metrics' half). Committed rows never change."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, np.ndarray]] = {}

    def read(self, store: StoreWriter, name: str, rows: slice | np.ndarray) -> np.ndarray:
        if isinstance(rows, slice):
            lo, hi = rows.start, rows.stop
        else:
            lo, hi = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, 0)
        start, window = self._windows.get(name, (0, None))
        if window is None or lo < start or hi > start + len(window):
            start, window = lo, store.samples(name, slice(lo, max(hi, min(lo + READ_AHEAD_ROWS, store.n_rows))))
            self._windows[name] = (start, window)
        return window[rows.start - start:rows.stop - start] if isinstance(rows, slice) else window[rows - start]
