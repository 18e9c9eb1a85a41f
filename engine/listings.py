"""What is computed from folder listings alone, kept while the folders are unchanged.

A live watch looks at the whole run at every pass: discovery classified every file of every
checkpoint again, and the trainer logs were looked for in every folder (2.2 s and 0.2 s a
pass at 2,000 checkpoints of 8 files; ``benchmarks/long_run.py``). A folder gets a new
modification time when an entry is added, removed or renamed in it, so what a function made
of the listings it read (names and kinds of entries, never a file's content or time) holds
while each of those folders keeps its times. Its change time counts too: a chmod leaves the
modification time as it was (a folder made unreadable was still read from its kept listing),
and so does ``touch -d`` or ``cp -a`` setting it back. Not kept: a folder either of whose times
moved in the last :data:`SETTLED_LISTING_S` (a file system that keeps times to the second, or
two on FAT, shows no change for a file added in the tick of the listing, nor for one added and
the times set back again in the tick they were set back: ``rsync -a`` twice), one that could
not be listed, or one holding a symlink (its target may change, the folder not).
"""
from __future__ import annotations

import collections
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

SETTLED_LISTING_S = 2.0
#: Results kept per function, the last used (one a checkpoint folder, about a kilobyte).
KEPT_MOST = 20_000
#: A function's results are looked over once they are twice as many as after the last look (and
#: at least this many): those of folders changed or gone since, never to be used again, are dropped.
LOOKED_OVER_FROM = 64


class _Computing(threading.local):
    """While kept functions compute in this thread (nested: one per call): the folders each
    listed (absolute path -> its times, :func:`_times`), or None once one cannot be kept. Per
    thread: the signals hook looks for trainer logs while discovery may list in another."""

    def __init__(self) -> None:
        self.stack: list[dict[str, tuple[int, int]] | None] = []


_computing = _Computing()


def recording() -> bool:
    """Whether a kept function is computing: its listings are to be noted (:func:`note`)."""
    return bool(_computing.stack)


def _times(st: os.stat_result) -> tuple[int, int]:
    """A folder's modification and change times (ns): either moves when what a listing of it
    gives may have changed (an entry, or its permissions)."""
    return st.st_mtime_ns, st.st_ctime_ns


def time_before_listing(folder: os.PathLike | str) -> tuple[str, tuple[int, int]] | None:
    """A folder's times, taken before it is listed (a change during the listing then shows), or
    None when a listing made now cannot be kept (either time moved just now, or gone)."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    settled = time.time() - max(st.st_mtime, st.st_ctime) >= SETTLED_LISTING_S
    return (os.path.abspath(folder), _times(st)) if settled else None


def note(listed: tuple[str, tuple[int, int]] | None, entries: Iterable[os.DirEntry] = ()) -> None:
    """Note a folder listed (:func:`time_before_listing`'s answer, and what it held) for every
    function computing now; None: what they compute cannot be kept."""
    if listed is not None and any(entry.is_symlink() for entry in entries):
        listed = None
    _merge(None if listed is None else dict([listed]))


def listed_entries(folder: os.PathLike | str) -> list[os.DirEntry]:
    """``os.scandir(folder)``'s entries, noted (:func:`note`) for the kept functions computing
    now; an ``OSError`` is raised once the listing is noted as one that cannot be kept."""
    listed = time_before_listing(folder) if recording() else None
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        note(None)
        raise
    note(listed, entries)
    return entries


def _merge(listed: dict[str, tuple[int, int]] | None) -> None:
    """Add folders listed to each record computing now, in place: a copy at each of N folders
    made a listing of N folders cost N^2 (27 ms at 1,000 folders, 10 ms in place). The records
    on the stack are their calls' own (a kept one is only read)."""
    stack = _computing.stack
    for i, listed_now in enumerate(stack):
        if listed is None or listed_now is None:
            stack[i] = None
        else:
            listed_now.update(listed)


def _alike(listed_before: dict[str, tuple[int, int]]) -> bool:
    try:
        return all(_times(os.stat(folder)) == times for folder, times in listed_before.items())
    except OSError:
        return False


def is_dir(entry: os.DirEntry) -> bool:
    """Whether an entry is a folder (or a link to one); one that vanished or cannot be asked is not."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def kept_while_listed_alike(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Keep ``fn(folder, *args)`` (hashable arguments) while no folder it listed changed. Its
    listings go through :func:`note`; the result is shared, so callers do not change it. The
    :data:`KEPT_MOST` last used are kept: a trainer that deletes its old checkpoints left one
    entry for each it ever wrote; those of folders changed or gone are dropped as they pile up
    (:func:`_drop_changed`). ``wrapper.held()``: how many are kept now."""
    kept: collections.OrderedDict[tuple, tuple[dict[str, tuple[int, int]], Any]] = collections.OrderedDict()
    lock = threading.Lock()
    left_after_look = 0  # results kept after the last look over them

    @functools.wraps(fn)
    def wrapper(folder: os.PathLike | str, *args: Any) -> Any:
        key = (os.fspath(folder), None if os.path.isabs(folder) else os.getcwd(), args)
        with lock:
            hit = kept.get(key)
        if hit is not None and _alike(hit[0]):
            with lock:
                if key in kept:
                    kept.move_to_end(key)
            _merge(hit[0])  # a caller computing too listed them, through this
            return hit[1]
        _computing.stack.append({})
        try:
            result = fn(folder, *args)
        finally:
            listed = _computing.stack.pop()
        nonlocal left_after_look
        with lock:
            if listed is None:
                kept.pop(key, None)
            else:
                kept[key] = (listed, result)
                kept.move_to_end(key)
                while len(kept) > KEPT_MOST:
                    kept.popitem(last=False)
            look = len(kept) >= max(2 * left_after_look, LOOKED_OVER_FROM)
            results = list(kept.items()) if look else []
        if look:
            left_after_look = _drop_changed(kept, lock, results)
        if listed is not None:
            _merge(listed)
        return result

    wrapper.held = lambda: len(kept)  # type: ignore[attr-defined]  # results kept now (tests, benchmarks)
    return wrapper


def _drop_changed(kept: collections.OrderedDict, lock: threading.Lock, results: list) -> int:
    """Drop the ``results`` whose folders changed or went (a trainer deleting its old checkpoints):
    KEPT_MOST alone held one for each of its last 20,000 checkpoints (9 kB a checkpoint of 8 files
    over the kept functions); returns how many are left. Amortised: a look over n results comes
    after n new ones."""
    changed = [(key, entry) for key, entry in results if not _alike(entry[0])]
    with lock:
        for key, entry in changed:
            if kept.get(key) is entry:
                del kept[key]
        return len(kept)
