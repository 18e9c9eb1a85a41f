"""Which of the run's checkpoints to ingest now: scanned, ready, hashed, new or changed."""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from engine.backlog_log import counted
from engine.discovery.identity import combined_hash, file_digests, file_versions, reading_settings
from engine.discovery.ready import is_ready
from engine.discovery.scan import scan_reference, scan_run
from engine.errors import GONE, DiscoveryError
from engine.pipeline import deleted, say_deleted_while_read
from engine.records import Checkpoint
from stores.format import stored_text

log = logging.getLogger(__name__)


def _reference_stored(committed: dict[str, tuple[str, int]], kind: str, digest: str | None) -> bool:
    """The same --real/--holdout content is stored under another spelling of its path (relative
    then absolute, from another folder, a moved project): reading it again duplicated its rows
    and measured every step again, announcing every alert again."""
    return any(source.startswith(f"{kind}:") and stored == digest for source, (stored, _) in committed.items())


def _fingerprint(checkpoint: Checkpoint) -> tuple:
    """The files' versions a checkpoint's hash holds for: their change times count (a file
    made readable by chmod, one rewritten keeping its size and mtime were read again only by a
    restarted watch, not a live one)."""
    try:
        return file_versions(checkpoint, changes=True)
    except GONE:
        return ()


class _Pending:
    """What :meth:`pending` finds to ingest, for :class:`~engine.watch.watcher.Watcher`,
    which gives it ``config``, ``store``, its caches (``_hashes``, ``_digests``, ``_options``, ...)
    and the other parts' notes and moves it calls."""

    def _hash(self, checkpoint: Checkpoint, fingerprint: tuple | None = None) -> str | None:
        fingerprint = _fingerprint(checkpoint) if fingerprint is None else fingerprint
        if not fingerprint:
            return None
        cached = self._hashes.get(checkpoint.source)
        if cached and cached[0] == fingerprint:
            return cached[1]
        try:
            if self._stand_in:
                digest = self._stand_in.content_hash(checkpoint)
            else:  # content_hash, its file digests kept for this pass's look for moves
                self._digests[checkpoint.source] = file_digests(checkpoint)
                digest = combined_hash(reading_settings(checkpoint, self._options), self._digests[checkpoint.source])
        except GONE:  # deleted between scan and hash (rotation)
            return None
        self._hashes[checkpoint.source] = (fingerprint, digest)
        return digest

    def _references(self) -> list[Checkpoint]:
        refs = []
        for kind, folder in (("real", self.config.real), ("holdout", self.config.holdout)):
            if folder is not None:
                refs.append(scan_reference(folder, kind))
        return refs

    def _check_references_apart(self, references: list[Checkpoint], found: list[Checkpoint]) -> None:
        """Refuse a --real/--holdout set that would read the run's own samples (the run
        directory, one of its checkpoint folders, a folder above the run): they were taken for
        training images, and every step raised a false memorisation alert. Files the set leaves
        out (named as generated samples) and a --sampler's weight files are no such samples."""
        for reference in references:
            read = {os.path.realpath(path) for path in reference.files}
            inside = next((c for c in found if any(os.path.realpath(path) in read for path in c.files)), None)
            if inside is not None:
                kind = reference.kind
                folder = self.config.real if kind == "real" else self.config.holdout
                raise DiscoveryError(f"--{kind} {folder}: holds the run's own samples (step {inside.step}, "
                                     f"{inside.source}), which would be taken for training images; give --{kind} "
                                     "the folder of the training images")

    def pending(self) -> tuple[list[tuple[Checkpoint, str]], list[Checkpoint]]:
        """Checkpoints ready to ingest (new or changed), and those still being written."""
        table = self.store.intact_checkpoints()
        return self._pending(table, self.store.committed_readings(table))

    def _pending(self, table: dict[str, np.ndarray],
                 committed: dict[str, tuple[str, int]]) -> tuple[list[tuple[Checkpoint, str]], list[Checkpoint]]:
        """:meth:`pending` from the checkpoint table this pass read and the readings current in it,
        ``committed``, which stays the store's once the moves found are renamed: a pass reads the
        table once (three times before, each read 10 arrays: 58% of a pass; round BV)."""
        jobs, waiting = [], []
        now = time.time()
        # Reference sets are ingested once per session, on the first pass.
        references = [] if self._references_checked else self._references()
        found = self._scan()
        self._forget_gone(found)
        if references:
            self._check_references_apart(references, found)
        self._found = len(found)
        self._say_deleted_unread(found, committed, now)
        self._note_label_folders(found)
        self._note_shared_steps(found)
        for checkpoint in references + found:
            fingerprint = _fingerprint(checkpoint)
            stored, stored_step = committed.get(stored_text(checkpoint.source), (None, None))
            cached = self._hashes.get(checkpoint.source)
            # stored as its files are now: no need to ask whether it is complete (a walk and a stat
            # of every file of every checkpoint at each pass, 30% of a pass at 300 checkpoints)
            known = cached is not None and cached == (fingerprint, stored) and stored_step == checkpoint.step
            if checkpoint.kind == "generated" and not known and not self._ready(checkpoint, now):
                waiting.append(checkpoint)
                continue
            digest = self._hash(checkpoint, fingerprint)
            if digest is None and checkpoint.kind == "generated" and not self._stand_in and \
                    not all(os.path.lexists(path) for path in checkpoint.files):  # files went after the scan
                if not deleted(checkpoint):  # one went (a rewrite, a rotation inside it): looked at again
                    waiting.append(checkpoint)
                elif stored is None:  # rotated out while hashed, never stored: said (round BE)
                    say_deleted_while_read(checkpoint)
                continue
            if checkpoint.kind != "generated" and stored is None and _reference_stored(committed, checkpoint.kind, digest):
                continue
            # the same files at another step: the step read once more of the run was there
            # (CogVideoX's validation-100-0-…: the rank, 0, until a second step came)
            moved = stored == digest and stored_step != checkpoint.step
            if digest is not None and self._unsampled.get(checkpoint.source) == digest:
                continue
            if digest is not None and (stored != digest or moved):
                jobs.append((checkpoint, digest))
                if stored is not None:  # rewritten in place, a step logged again
                    self._replacing.add(checkpoint.source)
                if checkpoint.kind == "generated":
                    self._note_growing(checkpoint)
        self._find_moves([c for c, _ in jobs], table, self._stored_this_pass(found, jobs, committed))
        self._rename_stored_moves({c.source for c, _ in jobs}, committed)
        self._digests.clear()
        self._looked_at = now
        return jobs, waiting

    def _forget_gone(self, found: list[Checkpoint]) -> None:
        """Forget the checkpoints the scan no longer finds (a trainer keeping its newest few):
        their hashes, file lists and checks were kept for every checkpoint ever seen, growing for
        as long as a watch ran (12 kB a checkpoint of 8 files). One that comes back is hashed again."""
        sources, steps = {c.source for c in found}, {c.step for c in found}
        for by_source in (self._hashes, self._unsampled):
            for source in by_source.keys() - sources:
                del by_source[source]
        for by_step in (self._taken_files, self._grew):
            for step in by_step.keys() - steps:
                del by_step[step]
        self._replacing &= sources
        self._move_checked = {key for key in self._move_checked if key[0] in sources}

    def _stored_this_pass(self, found: list[Checkpoint], jobs: list, committed: dict) -> list[Checkpoint]:
        """Checkpoints stored as they are and hashed by this pass (its first: a restart hashes
        every one): one stored at its new name by a watch stopped before it renamed the old
        reading (SIGTERM or a full disk right after the commit) is found moved again here."""
        taken = {c.source for c, _ in jobs}
        return [c for c in found if c.source in self._digests and c.source not in taken
                and committed.get(stored_text(c.source), (None,))[0] == self._hashes[c.source][1]]

    def _scan(self) -> list[Checkpoint]:
        """The run's checkpoints: its weight files with a --sampler, else its sample files, else
        (none found) the images it logged to TensorBoard."""
        if self.config.sampler:
            if not self._sampler_files_noted:  # once: a scan of the sample files too
                self._sampler_files_noted = True
                if files := scan_run(self.config.run_dir, self.config.options):
                    log.info("%s: %s of sample files (%s, ...) not read: with --sampler the samples come from the "
                             "weights; to read the files, watch without --sampler (into another --store)",
                             self.config.run_dir, counted(len(files), "checkpoint"), files[0].source)
            return self.config.sampler.scan(self.config.run_dir, self.config.options)
        found = scan_run(self.config.run_dir, self.config.options)
        logged = [] if found else self._logged_images.scan(self.config.run_dir, self.config.options)
        self._stand_in = self._logged_images if logged else None
        return found or logged

    def _ready(self, checkpoint: Checkpoint, now: float) -> bool:
        """Whether the trainer is done with a checkpoint, by its files or by the stand-in that reads it."""
        return (self._stand_in.is_ready if self._stand_in else is_ready)(checkpoint, self._options, now)
