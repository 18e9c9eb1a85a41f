"""Checkpoints still being written: when they are taken, --settle lengthened, those left unfinished."""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import replace

from engine.backlog_log import counted
from engine.discovery.identity import file_versions
from engine.discovery.ready import ready_file_name
from engine.discovery.said_once import warn_once
from engine.pipeline import IngestResult
from engine.records import Checkpoint
from engine.watch.config import QUIET_MAX_S, SETTLE_MAX_S
from stores.format import stored_text

log = logging.getLogger(__name__)


def _changed_since(checkpoint: Checkpoint, when: float) -> bool:
    """Whether a file of ``checkpoint`` was written or changed (``cp -p`` keeps the mtime, not
    the change time) after ``when``, seconds since the epoch, or is gone."""
    try:
        return any(max(version[2:]) > when * 1e9 for version in file_versions(checkpoint, changes=True))
    except OSError:
        return True


class _Settling:
    """The watch's waits for checkpoints to be complete (:class:`~engine.watch.watcher.Watcher`
    gives it ``config``, ``_settling``, ``_options``, ``_hashes``, ``_taken_files``,
    ``_grew``, ``_ready`` and ``run_once``)."""

    def _say_deleted_unread(self, found: list[Checkpoint], committed: dict, now: float) -> None:
        """Name the checkpoints the last pass saw still being written whose files are gone now,
        their step with them, never stored: a trainer that deletes its checkpoints sooner than they
        settle (rotation, keeping the newest few) lost them without a word (round AV: 8 of 300
        steps, written 0.1 s apart and rotated away; keeping 1 a second, all but the last). Looked
        at again later than a checkpoint could take to settle (or than a ready file's event takes
        to come), it may have been complete before it went, the watch busy ingesting, laying out
        and measuring others (round AW: the newest 3 kept, one a second, 64 samples each, --settle 2;
        each lived 3 s): a lower --settle does not help there, keeping more does."""
        steps = {c.step for c in found}  # renamed (tmp-checkpoint-500/ -> checkpoint-500/): its step is there
        ready_file, settle, gap = self.config.options.ready_file, self._options.settle, now - self._looked_at
        late = gap > (QUIET_MAX_S if ready_file else settle)  # may have been complete before it went
        for checkpoint in self._settling:
            if checkpoint.step in steps or stored_text(checkpoint.source) in committed or \
                    any(os.path.lexists(path) for path in checkpoint.files):  # read otherwise now (version_0/)
                continue
            why = (f"no ready file {ready_file_name(checkpoint, ready_file)} yet" if ready_file else
                   f"changed within the last --settle {settle:g} s" if settle else "being written")
            line = f"step {checkpoint.step} ({checkpoint.source}) was deleted before " + (
                f"the watch looked again ({why} when it looked, {gap:.1f} s before)" if late else
                f"it was complete ({why})") + ": not ingested"
            if self._said_deleted_unread:
                log.info("%s", line)
                continue
            self._said_deleted_unread = True
            fix = ("needs them kept longer than the watch takes between its looks: have it "
                   "keep more of them" if late else "needs them taken sooner: " + (
                       "have the trainer write the ready file as soon as the samples are" if ready_file else
                       ("lower --settle, or " if settle else "") +
                       "have the trainer write a --ready-file once a checkpoint is complete"))
            log.warning("%s; a trainer that deletes its checkpoints this soon (rotation) %s", line, fix)

    def _note_growing(self, checkpoint: Checkpoint) -> None:
        """When a checkpoint is taken again with more files (under its name, or under another once
        its second file came: kohya-ss's lone ``lora_000500_00_<time>.png``), the trainer writes
        its files further apart than ``--settle``, and each of its passes is a version: lengthen
        a default --settle, or say once how to (DCGAN's grid rewritten in place keeps its one file:
        no sign of that)."""
        files = frozenset(checkpoint.files)
        taken = self._taken_files.setdefault(checkpoint.step, [])
        grew = any(earlier < files for earlier in taken)
        taken[:] = [earlier for earlier in taken if not earlier < files and earlier != files] + [files]
        options = self._options
        if not grew or (self.config.adapt_settle and not options.ready_file and self._lengthen_settle(checkpoint)):
            return
        self._grew[checkpoint.step] += 1
        if self._grew[checkpoint.step] == 2:
            why = (f"its --ready-file {options.ready_file} came before the last of them (a sync tool copies "
                   "in name order: give it a name that sorts after the samples', or copy it last)"
                   if options.ready_file else
                   f"the trainer writes them more than --settle {options.settle:g} s apart; raise --settle, "
                   "or have it write a --ready-file")
            warn_once(self.config.run_dir, f"{checkpoint.source}: taken again as more files came "
                      f"({len(checkpoint.files)} now): {why}", about="growing")

    def _lengthen_settle(self, checkpoint: Checkpoint) -> bool:
        """Wait for quiet longer than the longest time between two of a grown checkpoint's files
        from now on, and say so; True unless that is longer than SETTLE_MAX_S (or, lengthened
        since, it is so already: the checkpoint was taken before). kohya-ss writes one image per
        prompt, seconds apart: each step was stored and measured once per image."""
        if self._trainer_exited:  # nothing is written any more: lengthened, the pass left the checkpoints after it
            return True
        # when each file arrived (discovery's is_ready: its change time, for a copy keeping old times)
        times = sorted(max(version[2:4]) / 1e9 for version in self._hashes.get(checkpoint.source, ((),))[0])
        gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)
        settle = math.ceil(1.5 * gap)
        if settle > SETTLE_MAX_S:
            return False
        if settle > self._options.settle:
            self._options = replace(self._options, settle=float(settle))
            log.warning("%s: taken again as more files came (%d now), written up to %.1f s apart: a checkpoint is "
                        "now taken after %d s without a change (--settle S sets it; or have the trainer write a "
                        "--ready-file)", checkpoint.source, len(checkpoint.files), gap, settle)
        return True

    def trainer_exited(self) -> None:
        """Nothing is being written any more: the next pass takes every checkpoint as it is."""
        self._options = replace(self._options, settle=0.0)
        self._trainer_exited = True

    def _settled(self) -> bool:
        """Whether a checkpoint still being written at the last scan is ready now: its own files
        are checked, not the whole run's (a tick's rescan of 300 checkpoints took 1.2 s of CPU)."""
        now = time.time()
        return any(self._ready(checkpoint, now) for checkpoint in self._settling)

    def run_until_settled(self) -> list[IngestResult]:
        """``--once``: ingest what is ready, then what was still being written once it has had
        ``--settle`` seconds of quiet (a run just copied or just written); a checkpoint still
        changing then, or without its ready file, is named and left for the next run."""
        results = self.run_once()
        if self._settling and not self.config.options.ready_file:
            log.info("waiting %gs for %s still being written", self._options.settle,
                     counted(len(self._settling), "checkpoint"))
            time.sleep(self._options.settle)
            results += self.run_once()
        self.say_unfinished(("run the same command again once it is complete",
                             "run the same command again once they are complete"))
        return results

    def _stored_as_it_is(self, checkpoint: Checkpoint, stored: tuple[str, int] | None, stored_at: float) -> bool:
        """Whether a checkpoint left settling needs no next watch: stored with the files it has
        now (a watch started within --settle of its last change and stopped at once named it
        "not ingested" though a watch had stored it). With a --ready-file, one no file of which
        changed since it was stored (stored before the option was set) is not read again at a
        stop: a run's every checkpoint can be waiting for a ready file its trainer never writes."""
        if stored is None:
            return False
        if self.config.options.ready_file and not _changed_since(checkpoint, stored_at):
            return True
        return stored == (self._hash(checkpoint), checkpoint.step)

    def say_unfinished(self, then: tuple[str, str]) -> None:
        """Name the checkpoints the last scan found still being written (or without their ready
        file), not ingested; ``then`` says what ingests it, or them. A live watch stopped within
        --settle of the run's last checkpoint left it out without a word (round AJ)."""
        if not self._settling:
            return
        ready_file = self.config.options.ready_file
        table = self.store.intact_checkpoints()
        committed = self.store.committed_readings(table)
        stored_at = dict(zip(map(str, table["source"]), table["time"].tolist()))  # a source's newest version last
        waiting = [c for c in self._settling if not self._stored_as_it_is(
            c, committed.get(stored_text(c.source)), stored_at.get(stored_text(c.source), math.inf))]
        unfinished = [c.source for c in waiting]
        if unfinished:  # the ready file named as the first one waits for it ('ok-{step}' said as such, round AN)
            awaited = ready_file and ready_file_name(waiting[0], ready_file) + (", ..." if len(waiting) > 1 else "")
            log.warning("not ingested, %s: %s; %s", f"no ready file ({awaited}) yet" if ready_file else
                        "still being written", ", ".join(unfinished[:5]) + (", ..." if len(unfinished) > 5 else ""),
                        then[len(unfinished) > 1])
