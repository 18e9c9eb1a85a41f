"""The store's checkpoints met under other names: the run watched from elsewhere, moved or renamed."""
from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from engine.backlog_log import counted
from engine.discovery.identity import combined_hash, file_digests, reading_settings
from engine.discovery.ready import checkpoint_path
from engine.errors import GONE, EvowatchError
from engine.records import Checkpoint
from engine.watch.pending import _fingerprint
from stores.format import KIND_CODES, listed, stored_text
from stores.zarr_store import superseded_flags

log = logging.getLogger(__name__)


def _partners(found: list[Checkpoint], stored: dict[str, str]) -> dict[str, list[Checkpoint]]:
    """The stored sources that found checkpoints may be, in the order first found: names that
    end alike (the same name; watched from the folder above: ``run/step_1000`` for
    ``step_1000``; from inside: ``step_1000`` for ``run/step_1000``; moved too:
    ``copy/step_1000`` for ``run/step_1000``)."""
    by_tail: dict[str, list[str]] = {}
    for source in stored:
        parts = source.split("/")
        for k in range(len(parts)):
            by_tail.setdefault("/".join(parts[k:]), []).append(source)
    partners: dict[str, list[Checkpoint]] = {}
    for checkpoint in found:
        parts = stored_text(checkpoint.source).split("/")
        for source in dict.fromkeys(s for k in range(len(parts)) for s in by_tail.get("/".join(parts[k:]), [])):
            partners.setdefault(source, []).append(checkpoint)
    return partners


def _hash_renamed(settings: str, digests: list, prefix: str, source: str) -> str | None:
    """The content hash of files read under ``prefix`` had they been read under ``source``
    (a moved checkpoint, its files renamed alike); None if one is not under ``prefix``."""
    if not all(name.startswith(prefix) for name, _ in digests):
        return None
    return combined_hash(settings, [(source + name[len(prefix):], d) for name, d in digests])


def _moved_by(source: str, here: str) -> tuple[str, str]:
    """The folders a stored source's name lost and gained to become ``here`` (the names before
    the parts both end in): ``("", "exp1")`` for ``step_100`` seen as ``exp1/step_100``."""
    old, new = source.split("/"), here.split("/")
    alike = 0
    while alike < min(len(old), len(new)) and old[-1 - alike] == new[-1 - alike]:
        alike += 1
    return "/".join(old[:len(old) - alike]), "/".join(new[:len(new) - alike])


class _Moves:
    """The watch's renames of stored readings (:class:`~engine.watch.watcher.Watcher` gives it
    ``config``, ``store``, ``_hashes``, ``_digests``, ``_moved``, ``_move_checked``, ``_options``,
    ``_stand_in``, ``_scan`` and ``_note_label_folders``)."""

    def check_same_run(self, watched_at: str | None) -> list[tuple[str, Checkpoint, str | None]]:
        """Refuse a run directory that does not hold the store's checkpoints when the store was
        watched at another one: a store holds one run, and another run's checkpoints at the same
        names (``step_1000/`` of a second run of the trainer) were taken for rewrites of the
        first's, its rows superseded. The run moved, copied, or watched from the folder above
        or inside it goes on: most of its latest checkpoints there are the same files (under
        names that end alike: ``run/step_1000`` for ``step_1000``). With a --sampler or images
        logged to TensorBoard, whose versions copies do not keep, the names decide. Only reads
        the store (a store copied mid-write is cut back after it: round BC); returns the stored
        readings whose files are here under other names, for :meth:`take_renamed`."""
        here = os.path.realpath(self.config.run_dir)
        if watched_at is None or watched_at == here:
            return []
        ckpt = self.store.checkpoints()
        stored = {str(s): str(h) for s, h, k, old in zip(ckpt["source"], ckpt["hash"], ckpt["kind"],
                                                            superseded_flags(ckpt))
                  if not old and k == KIND_CODES["generated"]}
        if not stored:
            return []
        found = self._scan() if self.config.run_dir.is_dir() else []
        self._note_label_folders(found, keep=False)
        partners = _partners(found[::-1], stored)  # the latest stored names found, newest first
        latest = list(partners)[:5]
        digests: dict[str, list | None] = {}  # a checkpoint may be the partner of several names: read once

        def hash_as(checkpoint: Checkpoint, source: str) -> str | None:
            if checkpoint.source not in digests:
                try:
                    digests[checkpoint.source] = file_digests(checkpoint)
                except GONE:
                    digests[checkpoint.source] = None
            read = digests[checkpoint.source]
            return None if read is None else _hash_renamed(reading_settings(checkpoint, self._options), read,
                                                           checkpoint.source, source)

        same = bool(latest) and (self._stand_in is not None or 2 * sum(
            any(hash_as(c, source) == stored[source] for c in partners[source]) for source in latest) > len(latest))
        if not same and not self.config.same_run:
            # hashes lost with a chunk (a store copied in part) are no other run; an array cut short by a
            # copy taken mid-write reads fewer hashes, none wrong: the refusal below (and --same-run) stands
            self.store.check_complete(chunk_files_only=True)
            raise EvowatchError(f"{self.store.path}: holds the checkpoints of the run watched at {watched_at}, which "
                                f"{self.config.run_dir} does not hold (another run): watch it into its own --store (one "
                                "store holds one run), or pass --same-run if it goes on with that run (resumed in a new "
                                "folder)")
        renamed = [] if self._stand_in is not None else self._stored_here(partners, stored, hash_as, ckpt["source"],
                                                                             changed_too=same)
        moved = next(((c.source, source) for source in latest for c in partners[source] if c.source != source), None)
        if renamed:
            kept = [(source, c) for source, c, digest in renamed if digest is not None]
            changed = [c.source for _, c, digest in renamed if digest is None]
            said = [f"{counted(len(kept), 'checkpoint')} stored there {'is' if len(kept) == 1 else 'are'} here under "
                    f"other names ({kept[0][1].source} for {kept[0][0]}): taken as stored, not read again"] if kept else []
            said += [f"{counted(len(changed), 'checkpoint')} changed since ({listed(changed)}): read again, the stored "
                     "reading kept as superseded"] if changed else []
            log.info("%s: the store's run was watched at %s; %s", self.config.run_dir, watched_at, "; ".join(said))
        elif same and moved is None:
            log.info("%s: the store's run was watched at %s; its checkpoints are here (moved or copied): going on",
                     self.config.run_dir, watched_at)
        elif same:  # a --sampler's or TensorBoard's, whose versions are no files' bytes
            log.warning("%s: the store's run was watched at %s; its checkpoints are here under other names (%s for "
                        "%s): each is read again under its name from here, the earlier rows kept as superseded",
                        self.config.run_dir, watched_at, *moved)
        return renamed

    @staticmethod
    def _stored_here(partners: dict[str, list[Checkpoint]], stored: dict[str, str],
                     hash_as: Callable[[Checkpoint, str], str | None], names: Iterable[str],
                     changed_too: bool) -> list[tuple[str, Checkpoint, str | None]]:
        """(stored source, checkpoint here, its hash here) for each current stored reading whose
        files are here under another name, one no reading in the store has (``names``); with
        ``changed_too`` (the run is the store's), hash None for one found here only under another
        name with other files (rewritten since): read again, it supersedes the stored reading, which
        stayed current beside it (the step's samples twice). Only the one name moved as those of the
        same files did (``step_100`` to ``exp1/step_100``, not to ``exp2/step_100`` of another run
        beside: a checkpoint the trainer deleted since was superseded by that run's, and one
        rewritten since stayed current beside its new reading). Of several with the same files
        (step 0 of another run from the same seed), the one moved as most others were."""
        taken = {str(name) for name in names}
        renamed: list[tuple[str, Checkpoint, str | None]] = []
        same = {source: [c for c in candidates if c.source not in taken and hash_as(c, source) == stored[source]]
                for source, candidates in partners.items()}
        how_often = Counter(_moved_by(source, c.source) for source, found in same.items() for c in found)
        for source, found in same.items():
            here = max((c for c in found if c.source not in taken), default=None,
                       key=lambda c: how_often[_moved_by(source, c.source)])  # a tie: the first, the newest
            if here is not None:
                taken.add(here.source)
                renamed.append((source, here, hash_as(here, here.source)))
        done = {source for source, _, _ in renamed}
        moves = {_moved_by(source, here.source) for source, here, _ in renamed}
        for source, candidates in partners.items() if changed_too else ():
            moved = [c for c in candidates if _moved_by(source, c.source) in moves]
            if source not in done and len(moved) == 1 and moved[0].source not in taken:
                taken.add(moved[0].source)
                renamed.append((source, moved[0], None))
        return renamed

    def take_renamed(self, renamed: list[tuple[str, Checkpoint, str | None]]) -> None:
        """Name the stored readings :meth:`check_same_run` found here under other names by those
        names, their hashes as read here: the run watched from the folder above or inside the one
        the store was watched at read every checkpoint again, its rows twice (round BC)."""
        for source, checkpoint, digest in renamed:
            self.store.rename_source(source, checkpoint.source, content_hash=digest)
            if digest is not None:  # else rewritten since: read again, a rewrite in place
                self._hashes[checkpoint.source] = (_fingerprint(checkpoint), digest)

    @staticmethod
    def _changed_at(checkpoint: Checkpoint) -> float:
        """When a checkpoint's folder or file last changed, a rename into place included (a
        rename sets the change time); 0 if it is gone."""
        try:
            return os.stat(checkpoint_path(checkpoint)).st_ctime
        except OSError:
            return 0.0

    def _rename_stored_moves(self, jobs: set[str], committed: dict) -> None:
        """Rename now the old readings of moves whose new reading is stored already (jobs'
        are renamed as they are stored): else both stayed current for good, every sample twice.
        ``committed`` (the store's current readings) is read again after a rename."""
        renamed = False
        for source in [s for s in self._moved if s not in jobs]:
            old = self._moved.pop(source)
            if stored_text(source) in committed:  # else not stored after all (a sampler that failed)
                self.store.rename_source(old, source)
                renamed = True
                log.info("%s: the files of %s, stored before under that name: its rows kept as superseded",
                         source, old)
        if renamed:
            committed.clear()
            committed.update(self.store.committed_readings())

    def _find_moves(self, new: list[Checkpoint], ckpt: dict[str, np.ndarray], stored: list[Checkpoint] = ()) -> None:
        """Checkpoints the run moved: the same files under a new name, the old one gone (a
        trainer's ``tmp-checkpoint-500/`` renamed ``checkpoint-500/``, a folder renamed by
        hand). Read again at the new name, both readings stayed current (every sample twice);
        the earlier one is renamed after the new one is stored, so it is its superseded version.
        A move to another step (a folder renamed by hand) has files written before the old
        reading was stored; one already ``stored`` (its rename left undone) keeps its step.
        ``ckpt``: the checkpoint table as this pass read it."""
        if self._stand_in is not None or not (new or stored):
            return
        vanished = {str(s): (str(h), int(t), float(at)) for s, h, t, at, k, old in zip(
                        ckpt["source"], ckpt["hash"], ckpt["step"], ckpt["time"], ckpt["kind"], superseded_flags(ckpt))
                    if not old and k == KIND_CODES["generated"] and not (self.config.run_dir / str(s)).exists()}
        stored_sources = {c.source for c in stored}
        for checkpoint in [*new, *stored] if vanished else ():
            key = (checkpoint.source, self._hash(checkpoint) or "")
            if key in self._move_checked or checkpoint.kind != "generated":
                continue
            self._move_checked.add(key)
            try:  # read by _hash this pass, unless its hash was known from an earlier one
                digests = self._digests.get(checkpoint.source) or file_digests(checkpoint)
            except GONE:
                continue
            settings = reading_settings(checkpoint, self._options)
            prefix = checkpoint.source
            versions = self._hashes.get(checkpoint.source, ((),))[0]
            written = max((version[2] for version in versions), default=0) / 1e9  # (name, size, mtime, ctime)
            # one stored already moved only if renamed into place since the old reading (a copy stored
            # beside its original, then deleted, left the original taken for the copy's rename)
            renamed_at = self._changed_at(checkpoint) if checkpoint.source in stored_sources else None
            for old, (old_hash, step, stored_at) in vanished.items():
                # to another step, only files written before the old reading was stored (a rotated step's
                # bytes again later are no move: a dead generator's black images at every step), and never
                # for a checkpoint stored already (the step beside a rotated one, with the same bytes)
                if step != checkpoint.step and (written > stored_at or renamed_at is not None):
                    continue
                if renamed_at is not None and renamed_at <= stored_at:
                    continue
                if _hash_renamed(settings, digests, prefix, old) == old_hash:
                    self._moved[checkpoint.source] = old
                    break
