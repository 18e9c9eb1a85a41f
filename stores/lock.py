"""One writer per store: an exclusive ``flock`` on ``STORE.lock`` beside the store.

The file sits beside the store (``run.zarr`` -> ``run.zarr.lock``): inside it, plain zarr
listing the store's members warns about any file it does not know. It exists only while a
writer holds it; a killed writer's file stays, unlocked, and the next writer takes it over.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from stores.errors import StoreLockedError
from stores.inherited import close_in_forked_children, forget

LOCK_SUFFIX = ".lock"


def lock_path_of(store: str | os.PathLike[str]) -> Path:
    """The lock file of ``store``: ``STORE.lock`` in the same folder (``--store .`` included), of
    the store a symlink names (through a link, a second writer took a lock of its own and cut
    the first one's arrays)."""
    store = Path(os.path.realpath(store))
    return store.with_name(store.name + LOCK_SUFFIX)


class WriterLock:
    """The lock of one store's writer, taken when made; :meth:`release` lets it go."""

    def __init__(self, store: Path) -> None:
        self.store, self.path = store, lock_path_of(store)
        self._handle: IO[str] | None = self._take()

    def _take(self) -> IO[str]:
        """The holder unlinks the file before letting go, so a process that opened it just
        before and locks it just after holds a lock on a name that is gone: it retries until
        the path names the file it locked."""
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise StoreLockedError(f"{self.store}: already being written by {holder} (an evowatch watch or "
                                       "layout); wait for it or stop it, or write to another store") from None
            try:
                if os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            handle.close()  # unlinked by the writer we waited for: lock the new file
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        close_in_forked_children(handle.fileno())  # a child outliving a killed writer must not block a restart
        return handle

    @property
    def held(self) -> bool:
        return self._handle is not None

    def duplicate(self) -> int:
        """A descriptor of the same open lock, not closed at a fork: a forked child that keeps
        it holds the lock with this writer (a flock belongs to the open file, not the process)."""
        assert self._handle is not None, "the lock was released"
        return os.dup(self._handle.fileno())

    def release(self) -> None:
        """Remove the file while still locked (see :meth:`_take`), then unlock. A read-only
        folder keeps the file (the next writer takes it over, as a killed one's): failing here
        would hide the error that ended the writing and keep the lock."""
        if self._handle is None:
            return
        forget(self._handle.fileno())
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None
