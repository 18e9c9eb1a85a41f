"""The live watch's loop: file events and ticks lead to passes, trainer logs' writes to the hooks."""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from engine.trainer_logs import is_log_name
from engine.watch.config import HOOK_BUDGET_S, LOGS_S, POLL_S, QUIET_MAX_S, QUIET_S, RESCAN_S
from engine.watch.events import _Wake
from stores.zarr_store import folder_identity

log = logging.getLogger(__name__)


class _Live:
    """:meth:`run_forever` and the file events it waits on
    (:class:`~engine.watch.watcher.Watcher` gives it its state and the other parts)."""

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Initial scan, then ingest on events and ticks until ``stop`` is set or Ctrl-C. A run
        directory not created yet (the watch started before the trainer, as TensorBoard may be)
        is waited for."""
        stop = stop or threading.Event()
        self.live = True
        for hook in self.after_ingest:
            if hasattr(hook, "budget_s"):
                hook.budget_s = HOOK_BUDGET_S
        self._run_dir_gone = not self.config.run_dir.is_dir()
        self._observer = None if self._run_dir_gone else self._start_observer()
        if self._run_dir_gone:
            log.info("%s: no such directory yet; waiting for the trainer to create it (Ctrl-C to stop)",
                     self.config.run_dir)
        try:
            # the first look, before the first pass (the backlog's ingest: minutes for a long run): the
            # folders beside the run now are not new, one made meanwhile (a trainer restarted) is
            self._say_later_runs()
            if not self._run_dir_gone:
                self.run_once()
                log.info("watching %s (Ctrl-C to stop)", self.config.run_dir)
            last_scan = last_logs = time.monotonic()
            logs_due = False
            while not stop.is_set():
                # Rescan on an event other than a trainer log's (after a short debounce), on a
                # tick once a settling checkpoint is ready or while the run directory is gone,
                # and every RESCAN_S as a safety net for missed events; read the logs again on
                # their own writes.
                rescan = False
                if self._changed.wait(0 if self._hooks_pending() else self.config.tick):  # measuring: on at once
                    self._quiet()
                    rescan = self._wake.take_other_changes() if self._wake else True
                    rescan = self._logged_new_images(self._wake.take_event_files() if self._wake else []) or rescan
                    logs_due = logs_due or not rescan
                now = time.monotonic()
                if rescan or self._run_dir_gone or self._replaced() or now - last_scan >= RESCAN_S or self._settled():
                    last_scan = last_logs = now
                    logs_due = False
                    if self._run_dir_present():
                        self.run_once()
                    self._say_later_runs()
                elif logs_due and now - last_logs >= LOGS_S or self._hooks_pending():
                    last_logs, logs_due = now, False
                    self._run_hooks([])
        finally:
            self._stop_observer()

    def _quiet(self) -> None:
        """Wait for a burst of events to end (QUIET_S without one, QUIET_MAX_S at most): a
        checkpoint's files written one by one each started a rescan of the whole run."""
        self._changed.clear()
        end = time.monotonic() + QUIET_MAX_S
        while time.monotonic() < end and self._changed.wait(QUIET_S):
            self._changed.clear()

    def _is_log(self, path: str) -> bool:
        """A trainer log's write needs the logs read, not the run scanned: a loss line every
        2 s had the watch of a 300-checkpoint run rescan it all, 86% of a core. Not labels
        files. An event file's writes that bring images have the run scanned
        (:meth:`_logged_new_images`)."""
        p, labels = Path(path), self.config.options.labels_file
        return is_log_name(p.name) and p.stem != "labels" and (labels is None or p.name != Path(labels).name)

    def _logged_new_images(self, written: list[str]) -> bool:
        """Whether event files written since the last look hold new images that are the run's
        samples or may become them (a run without a checkpoint yet: its first logged image
        waited for the 30 s rescan). Only their appended records are read: each write of the
        trainer's scalars had the run scanned (20 a second: a scan every 2 s, however long the
        run went without a sample)."""
        if not written or self.config.sampler or not (self._stand_in is self._logged_images or not self._found):
            return False
        root = self._wake.root if self._wake else os.path.realpath(self.config.run_dir)
        return self._logged_images.holds_new_images(Path(self.config.run_dir) / os.path.relpath(path, root)
                                                     for path in written)

    def _stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def _start_observer(self):
        # the folder a link leads to: inotify watches a link itself, and reported nothing of a
        # RUN_DIR given as one (runs/latest -> runs/2026-12-06_...) until the 30 s rescans
        path = os.path.realpath(self.config.run_dir)
        handler = self._wake = _Wake(self._changed, self._is_log, path)
        self._watched = folder_identity(self.config.run_dir)
        if not self.config.poll:
            try:
                observer = Observer()
                observer.schedule(handler, path, recursive=True)
                observer.start()
                return observer
            except OSError as exc:  # inotify limits exhausted, unsupported filesystem
                print(f"evowatch: native file events unavailable ({exc}); polling {path} instead", file=sys.stderr)
        observer = PollingObserver(timeout=max(self.config.tick, POLL_S))
        observer.schedule(handler, path, recursive=True)
        observer.start()
        return observer
