"""The run folder's file events, turned into wake-ups of the watch."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from engine.trainer_logs import is_event_file


class _Wake(FileSystemEventHandler):
    """Wakes the watch on a change; says whether one was to anything but trainer logs."""

    def __init__(self, flag: threading.Event, is_log: Callable[[str], bool], root: str) -> None:
        self.flag, self.is_log, self.root = flag, is_log, root
        self._other = threading.Event()
        self._event_files: set[str] = set()  # TensorBoard event files written, a trainer log's change
        self._lock = threading.Lock()
        self.root_deleted = threading.Event()  # the watched folder itself: no event of it comes any more

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.event_type == "deleted" and event.is_directory and os.fsdecode(event.src_path) == self.root:
            self.root_deleted.set()
        paths = [event.src_path, *([event.dest_path] if getattr(event, "dest_path", "") else [])]
        if event.is_directory:  # a folder's "modified" follows each write of its files, which say what they are
            other = event.event_type != "modified"
        else:
            other = not all(self.is_log(str(path)) for path in paths)
        if other:
            self._other.set()
        elif written := [os.fsdecode(path) for path in paths if is_event_file(os.path.basename(os.fsdecode(path)))]:
            with self._lock:
                self._event_files.update(written)
        self.flag.set()

    def take_other_changes(self) -> bool:
        """Whether anything but a trainer log changed since the last call. Cleared only once
        seen: an event between the look and a clear was lost, its checkpoint left to the rescan."""
        other = self._other.is_set()
        if other:
            self._other.clear()
        return other

    def take_event_files(self) -> list[str]:
        """The TensorBoard event files written since the last call."""
        with self._lock:
            written, self._event_files = sorted(self._event_files), set()
        return written
