"""The run folder itself: deleted, made again, its link pointed elsewhere, later runs beside it."""
from __future__ import annotations

import logging
import os
import re
import shlex
import time
from pathlib import Path

from engine.watch.config import RESCAN_S
from stores.zarr_store import folder_identity

log = logging.getLogger(__name__)


class _LaterRuns:
    """Folders that appear beside the watched run folder, named as it is but for a higher
    number (Lightning's ``version_1`` beside ``version_0``, StyleGAN's ``00001-…`` beside
    ``00000-…``): a restarted trainer writes there, and the watch of the old folder went quiet
    without a word (round AV)."""

    def __init__(self, run_dir: Path) -> None:
        name = Path(os.path.abspath(run_dir)).name  # `watch .` from inside version_0/
        self._parent = Path(os.path.normpath(os.path.join(run_dir, os.pardir)))
        self._parts = re.split(r"(\d+)", name)  # text, number, text, ...: ['version_', '0', '']
        self._known: set[str] | None = None  # those there at the first look are not new
        self._looked = -RESCAN_S

    def appeared(self) -> list[Path]:
        """The later run folders that appeared since the last look (one listing every RESCAN_S)."""
        if len(self._parts) == 1 or time.monotonic() - self._looked < RESCAN_S:
            return []
        self._looked = time.monotonic()
        try:
            names = {entry.name for entry in os.scandir(self._parent) if self._later(entry.name) and entry.is_dir()}
        except OSError:
            return []
        known, self._known = self._known, names | (self._known or set())
        return [] if known is None else [self._parent / name for name in sorted(names - known)]

    def _later(self, name: str) -> bool:
        """Whether ``name`` is the watched name up to a number that is higher: its first part
        that differs (the date's day or the index of ``run_2024-05-01_3``, the run number of
        StyleGAN's ``00000-stylegan2-ffhq``, whatever follows it; round AX: only the first
        number was compared, 2024 with 2024)."""
        for i, (mine, theirs) in enumerate(zip(self._parts, re.split(r"(\d+)", name))):
            if mine != theirs:
                return i % 2 == 1 and theirs.isdigit() and int(theirs) > int(mine)
        return False


class _RunFolder:
    """The watch's look at its run folder (:class:`~engine.watch.watcher.Watcher` gives it
    ``config``, ``store``, ``_run_dir_gone``, ``_run_path``, ``_settling``, ``_watched``,
    ``_wake``, ``_observer``, ``_later_runs``, the observer's start and stop, and
    :meth:`check_same_run`)."""

    def _say_later_runs(self) -> None:
        """Name a run folder that appeared beside the watched one, and how to follow it."""
        for path in self._later_runs.appeared():  # this watch holds the store's lock: stopped first
            log.warning("%s: %s appeared beside it, named as it is with a higher number: were the trainer restarted "
                        "there, it writes there, not here; to go on with it in this store, stop this watch, then: "
                        "evowatch watch %s --store %s --same-run", self.config.run_dir, path.name,
                        shlex.quote(str(path)), shlex.quote(str(self.store.path)))

    def _run_dir_present(self) -> bool:
        """A run directory deleted while watched (a trainer restarted from scratch) is waited
        for, said once; once it is back its file events are watched again (the old watch
        followed the deleted folder)."""
        present = self.config.run_dir.is_dir()
        replaced = present and not self._run_dir_gone and self._replaced()
        if not present and not self._run_dir_gone or replaced:
            # its checkpoints still being written went with it (said so, below), or are where its
            # link led before: "deleted before it was complete ... (rotation)" of a restarted run,
            # and of a link pointed at a resumed run's folder, its checkpoint still there (round AW)
            self._settling = []
        if not present and not self._run_dir_gone:
            log.warning("%s: the run directory was deleted; everything ingested from it is kept; waiting for it "
                        "to be created again (Ctrl-C to stop)", self.config.run_dir)
        elif present and self._run_dir_gone:
            self._check_still_the_run()
            log.info("%s: %s", self.config.run_dir, "the run directory is back; watching it again" if self._observer
                     else "created; watching it")
            self._stop_observer()
            self._observer = self._start_observer()
        elif replaced:
            # deleted and made again between two looks (rm -rf out && mkdir out), or a link to
            # it pointed elsewhere: the events came from the old folder, and stopped for good
            self._check_still_the_run()
            log.info("%s: the run directory was replaced (made again, or its link points elsewhere); watching the "
                     "new one", self.config.run_dir)
            self._stop_observer()
            self._observer = self._start_observer()
        self._run_dir_gone = not present
        return present

    def _check_still_the_run(self) -> None:
        """A RUN_DIR link pointed at another folder while watched is checked as a new watch's
        folder is (:meth:`check_same_run`): another run's checkpoints were taken for new
        versions of the store's, their rows superseded (round AN)."""
        now = os.path.realpath(self.config.run_dir)
        if now != self._run_path:
            self.take_renamed(self.check_same_run(self._run_path))
            self._run_path = now

    def _replaced(self) -> bool:
        """Whether the run directory is no longer the folder whose events come (one stat a
        tick): made again between two looks, or its link pointed elsewhere, no event says so."""
        return self._observer is not None and (
            folder_identity(self.config.run_dir) != self._watched  # a new inode (the old one's number is often reused:
            or self._wake is not None and self._wake.root_deleted.is_set())  # the deleted folder's own event says it)
