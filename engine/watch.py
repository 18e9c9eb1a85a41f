"""Watch a run directory: an initial scan, then filesystem events, each followed by a rescan.

Events are only a hint that something changed (inotify gives no close event for files
written quickly into a new folder, and polling reports final states only), so an event
leads to a rescan, a readiness check, and the ingest of checkpoints whose content hash the
store has not committed yet. A rescan reads the whole run, so nothing leads to one that
need not: a tick while a checkpoint settles only re-checks that checkpoint's files until it
is ready, and a write to a trainer log only has the logs read again (at most every
LOGS_S); a safety rescan every RESCAN_S catches what events missed.
"""
from __future__ import annotations

import fnmatch
import logging
import math
import os
import re
import shlex
import statistics
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from engine.backlog_log import BacklogLog, counted
from engine.decode.labels import label_folder_names, labels_file_path, labels_table
from engine.decode.samples import iter_samples
from engine.discovery.identity import (combined_hash, file_digests, file_versions, in_a_label_folder, in_one_folder,
                                       reading_settings)
from engine.discovery.names import SAMPLE_WORDS
from engine.discovery.options import IMAGE_EXTENSIONS, DiscoveryOptions
from engine.discovery.ready import checkpoint_path, is_ready, ready_file_name
from engine.discovery.said_once import warn_once
from engine.discovery.samples import WEIGHT_FOLDER, hidden_sample_folders, sample_files
from engine.discovery.scan import resumed_run, scan_reference, scan_run
from engine.discovery.steps import series_glob, step_regex_miss
from engine.encoders import Encoder
from engine.errors import GONE, DiscoveryError, EvowatchError
from engine.pipeline import IngestResult, deleted, ingest, say_deleted_while_read
from engine.records import Checkpoint
from engine.sampler import Sampler, scan_weights
from engine.tensorboard_images import TensorBoardImages, find_event_files, logged_tags
from engine.trainer_logs import is_event_file, is_log_name
from stores.format import KIND_CODES, listed, stand_in_for_files, stored_text
from stores.zarr_store import StoreWriter, folder_identity, superseded_flags

log = logging.getLogger(__name__)

RESCAN_S = 30.0
#: A burst of file events is one: the watch rescans once none came for QUIET_S (QUIET_MAX_S at most).
QUIET_S = 0.3
QUIET_MAX_S = 2.0
#: The least time between two readings of the trainer logs for their writes alone.
LOGS_S = 2.0
#: A live watch's hooks measure for at most this long a call, then the loop looks for new
#: checkpoints before they go on (:attr:`engine.signals.Signals.budget_s`)
HOOK_BUDGET_S = 5.0
#: The longest quiet --settle's default is lengthened to (Watcher._lengthen_settle): a trainer
#: adding a file to a checkpoint minutes later is not waited for at every checkpoint.
SETTLE_MAX_S = 60

#: The sizes of a series' latest grids a new grid's is compared with (Watcher._check_grid_size):
#: all of them were kept, a list as long as the run.
GRID_SIZES_KEPT = 20

#: Seconds between two snapshots of the run with --poll (each stats every file of the run).
POLL_S = 5.0

AfterIngest = Callable[[StoreWriter, list[IngestResult]], None]


@dataclass
class WatchConfig:
    run_dir: Path
    options: DiscoveryOptions = field(default_factory=DiscoveryOptions)
    real: Path | None = None
    holdout: Path | None = None
    poll: bool = False
    tick: float = 1.0
    #: decode worker processes; None: engine.pipeline.default_workers()
    workers: int | None = None
    progress: bool = True
    #: ``--sampler``: checkpoints are weight files, sampled by the user's function (engine.sampler)
    sampler: Sampler | None = None
    #: ``--same-run``: another run's folder goes on with the store's run (resumed elsewhere)
    same_run: bool = False
    #: --settle was not given: a trainer seen writing a checkpoint's files further apart than it
    #: lengthens it for the rest of the watch (kohya-ss writes one image per prompt, seconds apart)
    adapt_settle: bool = False


class _WholeLines(tqdm):
    """tqdm whose ``write`` puts a line and its newline in one write: tqdm writes them apart, and
    a stop (SIGTERM) between the two ran the next line on ("...: 5 samplesevowatch: stopped")."""

    @classmethod
    def write(cls, s: str, file=None, end: str = "\n", nolock: bool = False) -> None:
        super().write(s + end, file=file, end="", nolock=nolock)


def _reference_stored(committed: dict[str, tuple[str, int]], kind: str, digest: str | None) -> bool:
    """The same --real/--holdout content is stored under another spelling of its path (relative
    then absolute, from another folder, a moved project): reading it again duplicated its rows
    and measured every step again, announcing every alert again."""
    return any(source.startswith(f"{kind}:") and stored == digest for source, (stored, _) in committed.items())


def _run_folders(sources: list[str]) -> list[str]:
    """The folders that set a step's checkpoints apart when they lie in different ones (runs
    side by side: ``baseline/samples/step_1000``, ``wider/samples/step_1000``): each parent
    without the trailing folders they all share. Empty for checkpoints in one folder (series
    of one run: ``sample-12.png`` beside ``sample-12-ema.png``)."""
    parents = [Path(source).parent.parts for source in sources]
    if len(set(parents)) < 2:
        return []
    shared = 0
    while all(len(p) > shared for p in parents) and len({p[len(p) - 1 - shared] for p in parents}) == 1:
        shared += 1
    return list(dict.fromkeys(Path(*p[:len(p) - shared]).as_posix() if len(p) > shared else "." for p in parents))


def _resumed_run(found: list[Checkpoint], folders: list[str]) -> tuple[str, str] | None:
    """(earlier, later) when two run folders read together are one run resumed from an earlier
    checkpoint (:func:`resumed_run`), from the steps of the checkpoints below each."""
    return resumed_run({folder: [c.step for c in found if c.source.startswith(f"{folder}/")] for folder in folders})


def _trainer_folder(run_dir: Path, options: DiscoveryOptions, folders: list[str]) -> str | None:
    """The folder of ``run_dir`` the trainer writes to, when the sample folders read together
    (``folders``) are not it: the first one outside them holding its weight checkpoints or
    TensorBoard logs (a DreamBooth project's ``output/`` beside the instance photos ``dog/``
    and the prior-preservation ``class_images/``, whose names carry no step); never a bare
    weights folder (``checkpoints/``, beside runs side by side)."""
    written = [Path(c.source) for c in scan_weights(run_dir, options)]
    written += [path.relative_to(run_dir) for path in find_event_files(run_dir)]
    tops = dict.fromkeys(path.parts[0] for path in written if len(path.parts) > 1)
    return next((top for top in tops if not any(top == f or top.startswith(f"{f}/") or f.startswith(f"{top}/")
                                                for f in folders) and not WEIGHT_FOLDER.fullmatch(top)), None)


def _one_series_glob(sources: list[str]) -> str | None:
    """A ``--samples`` glob that picks one of a step's sample files and not the others: one
    named as samples first (ControlNet's ``samples_cfg_scale_9.00_gs-…``, not
    ``reconstruction_gs-…``), else the shortest (``samples_gs-*_e-*_b-*.png`` beside
    ``samples_inpainting_gs-…``, ``*-ema.jpg`` beside ``100.jpg``); None when the checkpoints are folders."""
    names = [PurePosixPath(source).name for source in sources]
    globs = sorted({series_glob(name) for name in names if PurePosixPath(name).suffix},
                   key=lambda glob: (not SAMPLE_WORDS.search(glob), len(glob)))
    return next((glob for glob in globs if sum(fnmatch.fnmatch(name, glob) for name in names) == 1), None)


def _step_elsewhere(sources: list[str], step: int) -> str | None:
    """A --step-regex for checkpoints of one step whose names differ in a larger number (SiT's
    `SiT-XL-2-0400000-…-dopri5/` beside `SiT-XL-2-0800000-…-dopri5/`: both read as step 5):
    the text before the first number that differs, then the number. (Smaller ones differing,
    score_sde's `iter_500_host_0/` and `…_host_1/`, are ranks or indices, not steps.)"""
    names = [PurePosixPath(source).name for source in sources]
    numbers = [list(re.finditer(r"\d+", name)) for name in names]
    if len({len(found) for found in numbers}) != 1:
        return None
    for position, first in enumerate(numbers[0]):
        values = {int(found[position].group()) for found in numbers}
        if len(values) > 1:
            prefix = names[0][:first.start()][-12:].lstrip("0123456789")
            if not prefix or min(values) <= step:
                return None
            return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", prefix) + r"(\d+)"
    return None


def _names_in(files: list[Path], run_dir: Path) -> list[str]:
    """The folder and file names of a run's sample files, each once: where steps are read."""
    return list(dict.fromkeys(part for path in files[:200] for part in path.relative_to(run_dir).parts))


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


def _fingerprint(checkpoint: Checkpoint) -> tuple:
    """The files' versions a checkpoint's hash holds for: their change times count (a file
    made readable by chmod, one rewritten keeping its size and mtime were read again only by a
    restarted watch, not a live one)."""
    try:
        return file_versions(checkpoint, changes=True)
    except GONE:
        return ()


class Watcher:
    """Keeps a store in step with a run directory; every pass is idempotent."""

    def __init__(self, config: WatchConfig, store: StoreWriter, encoder: Encoder,
                 after_ingest: list[AfterIngest] | None = None) -> None:
        self.config, self.store, self.encoder = config, store, encoder
        self.after_ingest = after_ingest or []
        self._hashes: dict[str, tuple[tuple, str]] = {}
        self._changed = threading.Event()
        self._references_checked = False
        self._settling: list[Checkpoint] = []  # found by the last scan, still being written
        self._found = 0  # checkpoints of the run seen by the last scan, ready or not
        #: the options checkpoints are hashed and read with: the run's label folders named
        #: (_note_label_folders), --settle lengthened (_lengthen_settle)
        self._options = config.options
        self._label_folders_of: tuple = ()  # the checkpoints (source, files) the options' label folders are of
        self._shared_steps_noted = False
        self.live = False  # more checkpoints may come (run_forever, the demo): none yet is no warning
        self._run_dir_gone = False
        self._run_path = os.path.realpath(config.run_dir)  # where a RUN_DIR link led when last looked at
        self._replacing: set[str] = set()  # sources committed before with other content
        self._unsampled: dict[str, str] = {}  # sources whose sampler failed, by content: not retried by this process
        self._moved: dict[str, str] = {}  # new source -> the vanished source its files were read from
        self._move_checked: set[tuple[str, str]] = set()  # (source, content hash) looked for as a move
        self._digests: dict[str, list] = {}  # file digests of the checkpoints hashed in this pass
        self._taken_files: dict[int, list[frozenset]] = {}  # each step's checkpoints' files when last taken
        self._grew: Counter[int] = Counter()  # times a step's checkpoint was taken again with more files
        # Samples of each one-image checkpoint ingested (a grid's tiles), by series: StarGAN v2
        # writes sheets of several sizes at each step (cycle consistency, reference, latent).
        self._grid_sizes: dict[str, deque[int]] = {}
        self._logged_images = TensorBoardImages()
        # What reads the generated checkpoints instead of their files: the --sampler, or the
        # images logged to TensorBoard of a run that writes no sample file; None: the files.
        self._stand_in: Sampler | TensorBoardImages | None = config.sampler
        self._wake: _Wake | None = None  # the file events' handler, once the run directory is watched
        self._sampler_files_noted = False  # said that a --sampler leaves the run's sample files unread
        self._labels_looked_for = False  # a relative --labels looked for by a pass with generated checkpoints
        self._unlabelled_said: set[str] = set()  # why samples went without a label, said (_say_unlabelled)
        self._watched: tuple[int, int] | None = None  # the (device, inode) of the folder whose events come
        self._said_deleted_unread = False  # a checkpoint deleted before it was complete, said (_say_deleted_unread)
        self._looked_at = 0.0  # when the last scan found the checkpoints of self._settling being written
        self._trainer_exited = False  # trainer_exited(): --settle 0 from then on, never lengthened again
        self._later_runs = _LaterRuns(config.run_dir)

    # --- what to ingest -------------------------------------------------------------
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

    def pending(self) -> tuple[list[tuple[Checkpoint, str]], list[Checkpoint]]:
        """Checkpoints ready to ingest (new or changed), and those still being written."""
        committed = self.store.committed_readings()
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
        self._find_moves([c for c, _ in jobs], self._stored_this_pass(found, jobs, committed))
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

    def _stored_this_pass(self, found: list[Checkpoint], jobs: list, committed: dict) -> list[Checkpoint]:
        """Checkpoints stored as they are and hashed by this pass (its first: a restart hashes
        every one): one stored at its new name by a watch stopped before it renamed the old
        reading (SIGTERM or a full disk right after the commit) is found moved again here."""
        taken = {c.source for c, _ in jobs}
        return [c for c in found if c.source in self._digests and c.source not in taken
                and committed.get(stored_text(c.source), (None,))[0] == self._hashes[c.source][1]]

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
        are renamed as they are stored): else both stayed current for good, every sample twice."""
        for source in [s for s in self._moved if s not in jobs]:
            old = self._moved.pop(source)
            if stored_text(source) in committed:  # else not stored after all (a sampler that failed)
                self.store.rename_source(old, source)
                log.info("%s: the files of %s, stored before under that name: its rows kept as superseded",
                         source, old)

    def _find_moves(self, new: list[Checkpoint], stored: list[Checkpoint] = ()) -> None:
        """Checkpoints the run moved: the same files under a new name, the old one gone (a
        trainer's ``tmp-checkpoint-500/`` renamed ``checkpoint-500/``, a folder renamed by
        hand). Read again at the new name, both readings stayed current (every sample twice);
        the earlier one is renamed after the new one is stored, so it is its superseded version.
        A move to another step (a folder renamed by hand) has files written before the old
        reading was stored; one already ``stored`` (its rename left undone) keeps its step."""
        if self._stand_in is not None or not (new or stored):
            return
        ckpt = self.store.checkpoints()
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

    def _note_shared_steps(self, found: list[Checkpoint]) -> None:
        """Say once that a step has several checkpoints (``samples_1000.png`` and
        ``samples_ema_1000.png``, ``step_1000/`` and ``step_1000_ema/``; runs side by side):
        a step's signals measure them together, and their instance ids repeat."""
        if self._shared_steps_noted:
            return
        by_step: dict[int, list[str]] = {}
        for checkpoint in found:
            by_step.setdefault(checkpoint.step, []).append(checkpoint.source)
        shared = {step: sources for step, sources in sorted(by_step.items()) if len(sources) > 1}
        if shared:
            step, sources = next(iter(shared.items()))
            folders = _run_folders(sources)
            example = _one_series_glob(sources)
            if example and not all(any(fnmatch.fnmatch(PurePosixPath(s).name, example) for s in at_step)
                                   for at_step in by_step.values()):  # followed, it dropped the other steps
                example = None  # (step_N.npy, then step_N.pt beside latents_N.pt: 'step_*.pt')
            option = "--weights" if self.config.sampler else "--samples"  # EDM2's two EMA snapshots of a step
            files = all(PurePosixPath(source).suffix for source in sources)  # a glob picks files, not folders
            fix = (f"; point evowatch at one of {', '.join(folders[:3])}{', ...' if len(folders) > 3 else ''}"
                   if folders else f"; {option} GLOB watches one series" + (f" ({option} '{example}')" if example else "")
                   if files or self.config.sampler else "")  # score_sde's iter_500_host_0/ beside iter_500_host_1/
            if folders and (trainer := _trainer_folder(self.config.run_dir, self.config.options, folders)):
                fix = (f"; point evowatch at {trainer}, where the trainer writes its checkpoints and logs "
                       f"({', '.join(folders[:3])}{', ...' if len(folders) > 3 else ''} hold none: its training data?)")
            if folders and (resumed := _resumed_run(found, folders)):
                fix = (f"; if {resumed[1]} resumed {resumed[0]}'s run, watch {resumed[0]}, then {resumed[1]} with "
                       "--same-run, into one store: the steps written again then supersede")
            if (regex := _step_elsewhere(sources, step)) and self.config.options.step_regex is None:
                fix = f"; if another number in their names is the step, give --step-regex '{regex}'"
            log.warning("%s: %s several checkpoints (step %d: %s): a step's signals measure them together%s",
                        self.config.run_dir, f"{counted(len(shared), 'step')} {'has' if len(shared) == 1 else 'have'}",
                        step, listed(sources), fix)
            self._shared_steps_noted = True

    def _note_label_folders(self, found: list[Checkpoint], keep: bool = True) -> None:
        """Name the run's label folders in the options, so that a checkpoint whose files all sit
        in one of them (a step drifted to one class, ``step_1000/circle/``) is labelled by it
        (round AQ: it lost every label, and label_drift stopped at the worst step). They are
        the sub-folders of the run's ImageFolder checkpoints, kept in the store (round AS: a
        rotating trainer deleted the checkpoints that showed them, and the later steps were read
        again, unlabelled); never the reference sets' class folders or other labels (round AT:
        a --real of images/ and masks/ labelled every step_N/images/ 'images'). One stored
        before its folder was named (a live watch) is read again, labelled (round AR): its
        reading settings say it, so its hash changes. ``keep``: kept in the store (not by the
        check of whether the run is the store's: nothing is written before it passes)."""
        shape = tuple((c.source, len(c.files)) for c in found)  # asked again only when they change
        if self.config.options.label_folders is not None or shape == self._label_folders_of:
            return
        self._label_folders_of = shape if keep else ()  # (40 ms a pass at 300 checkpoints of 48 files)
        found_names = label_folder_names(found, self.config.options)
        if found_names and keep:
            self.store.note_label_folders(found_names)
        if not any(in_one_folder(c) for c in found):  # before label_folders(): an older store's are read from
            return  # its rows, not at each watch's start for nothing
        names = found_names | self.store.label_folders()
        if names == self._options.folder_label_names:
            return
        self._options = replace(self._options, folder_label_names=names)
        for checkpoint in found:
            if in_a_label_folder(checkpoint, self._options):
                self._hashes.pop(checkpoint.source, None)  # hashed again with its settings

    # --- doing it -------------------------------------------------------------------
    def run_once(self) -> list[IngestResult]:
        """Ingest everything that is ready now."""
        first_pass = not self._references_checked
        jobs, self._settling = self.pending()
        if first_pass and not self._found:  # a wrong path or layout, or a run that has not sampled yet
            self._say_nothing_found()
        if not jobs:
            self._references_checked = True
            # a store left before its layout or signals were done (Ctrl-C, --no-metrics); live,
            # trainer logs grown since the newest checkpoint (a NaN loss is said at once)
            if first_pass or self.live:
                self._run_hooks([])
            return []
        self._read_labels_files(jobs)
        self._say_stand_ins_superseded(jobs)
        results: list[IngestResult] = []
        bar = tqdm(total=None, unit="img", desc="ingest", file=sys.stderr, disable=None if self.config.progress else True, leave=False)
        said = BacklogLog(log, len(jobs), "ingesting", "ingested")
        unit = "logged image" if self._stand_in is self._logged_images else "file"  # what a skipped one is
        for job, _ in jobs:  # before the new reading's commit, which then supersedes the old one: made after
            if (old := self._moved.get(job.source)) is not None:  # the ingest, both were current meanwhile
                self.store.rename_source(old, job.source)  # (a live reader saw the step twice)
        with bar, logging_redirect_tqdm(tqdm_class=_WholeLines):
            for result in ingest(self.store, jobs, self.encoder, self._options,
                                 workers=self.config.workers, on_rows=lambda n: (bar.update(n), said.rows(n)),
                                 samples=self._stand_in.iter_samples if self._stand_in else iter_samples):
                results.append(result)
                c = result.checkpoint
                if not result.stored:
                    self._unsampled[c.source] = self._hashes[c.source][1]
                    if result.kept:
                        log.warning("step %d (%s): no file of its new version could be read (%s skipped, each named "
                                    "above): the earlier version's %s stay current until it is written again",
                                    c.step, c.source, counted(result.skipped, unit),
                                    counted(result.kept, "sample"))
                    else:
                        log.warning("step %d (%s): nothing stored; the next run of this command samples it again "
                                    "(a live watch: once its weights change; a fixed sampler is read when the watch "
                                    "restarts)", c.step, c.source)
                    continue
                generated = c.kind == "generated"
                note = f", {counted(result.skipped, unit)} skipped" if result.skipped else ""
                if c.source in self._replacing:
                    note += "; a new version, the earlier one's rows kept as superseded"
                if (old := self._moved.pop(c.source, None)) is not None:
                    note += f"; the files of {old}, stored before under that name: its rows kept as superseded"
                said.item(c.step if generated else None, "ingested %s (%s): %s%s",
                          f"step {c.step}" if generated else f"{c.kind} reference", c.source,
                          counted(result.rows, "sample"), note)
                if generated and result.unlabelled:
                    self._say_unlabelled(result)
                if generated and len(c.files) == 1 and c.files[0].suffix.lower() in IMAGE_EXTENSIONS and \
                        c.source.rsplit("/", 1)[-1] == c.files[0].name:  # an image, not a folder holding one
                    self._check_grid_size(c, result.rows)
        skipped = sum(r.skipped for r in results)
        said.finish(f": {counted(sum(r.rows for r in results), 'sample')}"
                    + (f", {counted(skipped, unit)} skipped (each named above)" if skipped else ""))
        self._references_checked = True
        self._run_hooks(results)
        return results

    def _say_stand_ins_superseded(self, jobs: list[tuple[Checkpoint, str]]) -> None:
        """Say that the trainer's own files supersede the images logged to TensorBoard or a
        tracker's copies stored before them (a live watch read those while the run had no
        sample file yet; :func:`stores.format.stand_in_for_files`)."""
        own = [c.source for c, _ in jobs if c.kind == "generated" and stand_in_for_files(c.source) is None]
        if not own:
            return
        committed = self.store.committed_readings()
        stand_ins = sorted((step, source) for source, (_, step) in committed.items() if stand_in_for_files(source))
        if stand_ins:
            what = sorted({stand_in_for_files(source) for _, source in stand_ins})
            tags = logged_tags([source for _, source in stand_ins if "@" in source], self.config.run_dir)
            picks = " ".join(f"--samples '{tag}'" for tag in tags)
            back = (f"; were they no samples (a model card's images_0.png), {picks} reads the logged images again"
                    if tags else "")  # round AW: diffusers' model card images hid every logged step
            log.warning("%s: the run's own checkpoints came (%s): the %s stored before from %s (%s) %s kept as "
                        "superseded%s", self.config.run_dir, listed(own, 2), counted(len(stand_ins), "checkpoint"),
                        " and ".join(what), listed([source for _, source in stand_ins], 2),
                        "is" if len(stand_ins) == 1 else "are", back)

    def _read_labels_files(self, jobs: list[tuple[Checkpoint, str]]) -> None:
        """Read each labels file of this pass's checkpoints here, once, before the decode
        processes fork: a --labels file that cannot be read, or a relative one found nowhere
        for the first checkpoints read, stops the watch before anything is stored (each sample
        stored then kept no label for good), and what reading one says (not UTF-8) is said by
        this process, whose notes they inherit, not once by each of them."""
        options, first, found = self.config.options, {}, False
        generated = [c for c, _ in jobs if c.kind == "generated"]
        for checkpoint, _ in jobs:
            if self._stand_in and checkpoint.kind == "generated":
                continue  # read by the sampler or from TensorBoard: no sample file, no labels file
            if (path := labels_file_path(checkpoint, options)) is not None:
                first.setdefault(path, checkpoint)
                found = True
        if options.labels_file is not None and generated and not self._stand_in and not self._labels_looked_for:
            self._labels_looked_for = True  # a name meant for each checkpoint folder may miss some later
            if not found:
                names = listed([c.source for c in generated], 2)
                raise DiscoveryError(f"{options.labels_file}: --labels file not found in {self.config.run_dir}, its "
                                     f"checkpoint folders ({names}) or the current folder; check the path")
        for checkpoint in first.values():
            labels_table(checkpoint, options)

    def _say_unlabelled(self, result: IngestResult) -> None:
        """Samples of a checkpoint stored without a label though --labels was given, once per
        run for each reason (no row matched, some missed, no file for it): label shares and
        label_drift leave them out, and a file that matched nothing turned them off unsaid."""
        c, given = result.checkpoint, self.config.options.labels_file
        if given is None or self._stand_in:  # no labels file asked for, or none read (a sampler's, TensorBoard's)
            return
        path = labels_file_path(c, self.config.options)
        verb = "has" if result.unlabelled == 1 else "have"
        if path is None:  # a name meant for each checkpoint folder, missing from this one
            why, message = "no file", (f"--labels {given}: none in {c.source}, {self.config.run_dir} or the current "
                                       f"folder: its {counted(result.unlabelled, 'sample')} {verb} no label")
        elif result.unlabelled == result.rows:
            why, message = "no match", (f"--labels {path}: no row matched any sample of {c.source} "
                                        f"({counted(result.rows, 'sample')}, e.g. {result.first_unlabelled}); expected "
                                        "columns file,label or instance,label: a sample's path, file name, stem or "
                                        "instance id, then its label")
        else:
            why, message = "some", (f"--labels {path}: {result.unlabelled:,} of {counted(result.rows, 'sample')} of "
                                    f"{c.source} {verb} no label (first: {result.first_unlabelled})")
        if why not in self._unlabelled_said:
            self._unlabelled_said.add(why)
            log.warning("%s", message)

    def _say_nothing_found(self) -> None:
        """Why the first pass found no checkpoint, and what to do about it."""
        run_dir, options, sampler = self.config.run_dir, self.config.options, self.config.sampler
        without_step: list[str] = []
        weights = scan_weights(run_dir, options, sampler.weight_globs if sampler else (), without_step)
        samples = [] if sampler else sample_files(run_dir, options)
        has_samples = bool(samples)
        say = log.info if self.live and not weights else log.warning
        if options.samples_chosen and not sampler and not has_samples:
            say("%s: --samples %s matches no file name here%s (nor an image tag logged to TensorBoard)",
                run_dir, " ".join(f"'{glob}'" for glob in options.sample_globs), " yet" if self.live else "")
        elif weights and not sampler:
            say("%s: no sample files, but %s of weights (%s): sample them with --sampler module:function "
                "(README, weight-only runs)", run_dir, counted(len(weights), "checkpoint"),
                listed([c.source for c in weights]))
        elif without_step and not has_samples:
            say("%s: no sample files%s, and no name of its weights (%s%s) carries a step: a file the trainer "
                "rewrites has no step to place its samples at; have it save samples, or weights named with the step "
                "(ckpt-{step}.pth)", run_dir, " yet" if self.live else "", ", ".join(without_step[:3]),
                ", ..." if len(without_step) > 3 else "")
        elif sampler:
            say("%s: no weights whose names carry a step %s (model-12.pt, checkpoint-500/, "
                "network-snapshot-000200.pkl; see --weights and --step-regex)", run_dir,
                "yet, waiting for them" if self.live else "found")
        elif self.live and not has_samples:
            say("%s: no samples yet, waiting for the first checkpoint", run_dir)  # a run just started
        elif options.step_regex is not None and (miss := step_regex_miss(_names_in(samples, run_dir), options)):
            say("%s: no checkpoints %s: --step-regex '%s' %s", run_dir, "yet" if self.live else "found",
                options.step_regex, miss)
        else:  # samples the layout rules do not read as checkpoints, or a wrong path
            seen = (f"; seen, read as no checkpoint: {', '.join(f.relative_to(run_dir).as_posix() for f in samples[:3])}"
                    if samples else "")  # what was seen (DVCLive's samples.png, rewritten at every step)
            if hidden := hidden_sample_folders(run_dir, options):  # never looked into: said, with where to point
                seen += (f"; a hidden folder is not read: {listed([h.relative_to(run_dir).as_posix() + '/' for h in hidden])} "
                         f"holds sample files (point evowatch at {shlex.quote(str(hidden[0]))})")
            say("%s: no checkpoints %s (folders or sample files whose names carry a step: step_500/, "
                "sample-12.png, fakes000200.png, or images logged to TensorBoard; see --step-regex and --samples)%s",
                run_dir, "yet, waiting for them" if self.live else "found", seen)

    def _check_grid_size(self, checkpoint: Checkpoint, rows: int) -> None:
        """Say when a grid splits into far more or fewer tiles than its series' latest grids (its
        geometry misread: an unpadded grid cut into quarter tiles, a blurry one not found), with
        the way to force it; and once per series that its images are read as one sample each."""
        series = series_glob(checkpoint.source)
        sizes = self._grid_sizes.setdefault(series, deque(maxlen=GRID_SIZES_KEPT))
        usual = statistics.median(sizes) if len(sizes) >= 2 else None
        first = not sizes
        sizes.append(rows)
        if usual and rows >= 1 and not usual / 2 <= rows <= usual * 2:
            log.warning("step %d (%s): %s where the series' grids so far had %g: if its grid was misread, force it "
                        "with --grid ROWSxCOLS", checkpoint.step, checkpoint.source, counted(rows, "sample"), usual)
        elif rows == 1 and first:
            warn_once(self.config.run_dir, f"{self.config.run_dir}: {checkpoint.source} and the images named like it "
                      "are read as one sample each (no grid found): if they are grids, force their geometry with "
                      "--grid ROWSxCOLS", about=f"single {series}", say=log.info)

    def _run_hooks(self, results: list[IngestResult]) -> None:
        """Hooks catch up from the store's committed state, so a pass that failed or was
        stopped half-way is covered by the next one."""
        for hook in self.after_ingest:
            hook(self.store, results)

    def start_hooks(self) -> None:
        """Let the hooks note, before the first pass, what a watch killed before left unsaid
        (:meth:`engine.signals.Signals.start`: said once that pass confirms it)."""
        for hook in self.after_ingest:
            if hasattr(hook, "start"):
                hook.start(self.store)

    def end_hooks(self, wait: bool) -> None:
        """Let the hooks end what they run beside the watch (:meth:`engine.signals.Signals.end`):
        waited for after ``--once``, stopped when the watch stops."""
        for hook in self.after_ingest:
            if hasattr(hook, "end"):
                hook.end(wait)

    @property
    def stored_nothing(self) -> bool:
        """Whether the store holds no checkpoint of the run (the line before says why): none
        found (a wrong path, --step-regex or --samples), or none complete yet (no ready file,
        still being written: round BC, `watch --once --ready-file F && export` went on, status 0,
        to a store that was not there). Not a run whose files were deleted after they were stored."""
        return not self.store.holds_generated()

    def steps_left(self) -> int:
        """Steps the hooks have yet to measure (:meth:`engine.signals.Signals.steps_left`)."""
        return sum(hook.steps_left(self.store) for hook in self.after_ingest if hasattr(hook, "steps_left"))

    def _hooks_pending(self) -> bool:
        """Whether a hook stopped at its time budget with work left (a live watch's re-measure)."""
        return any(getattr(hook, "pending", False) for hook in self.after_ingest)

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

    def say_unfinished(self, then: tuple[str, str]) -> None:
        """Name the checkpoints the last scan found still being written (or without their ready
        file), not ingested; ``then`` says what ingests it, or them. A live watch stopped within
        --settle of the run's last checkpoint left it out without a word (round AJ)."""
        ready_file = self.config.options.ready_file
        committed = self.store.committed_hashes() if ready_file else {}  # stored before a --ready-file was set
        waiting = [c for c in self._settling if stored_text(c.source) not in committed]
        unfinished = [c.source for c in waiting]
        if unfinished:  # the ready file named as the first one waits for it ('ok-{step}' said as such, round AN)
            awaited = ready_file and ready_file_name(waiting[0], ready_file) + (", ..." if len(waiting) > 1 else "")
            log.warning("not ingested, %s: %s; %s", f"no ready file ({awaited}) yet" if ready_file else
                        "still being written", ", ".join(unfinished[:5]) + (", ..." if len(unfinished) > 5 else ""),
                        then[len(unfinished) > 1])

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
            if not self._run_dir_gone:
                self.run_once()
                log.info("watching %s (Ctrl-C to stop)", self.config.run_dir)
            self._say_later_runs()  # the first look: the folders there now are not new
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

    def _say_later_runs(self) -> None:
        """Name a run folder that appeared beside the watched one, and how to follow it."""
        for path in self._later_runs.appeared():  # this watch holds the store's lock: stopped first
            log.warning("%s: %s appeared beside it, named as it is with a higher number: were the trainer restarted "
                        "there, it writes there, not here; to go on with it in this store, stop this watch, then: "
                        "evowatch watch %s --store %s --same-run", self.config.run_dir, path.name,
                        shlex.quote(str(path)), shlex.quote(str(self.store.path)))

    def _quiet(self) -> None:
        """Wait for a burst of events to end (QUIET_S without one, QUIET_MAX_S at most): a
        checkpoint's files written one by one each started a rescan of the whole run."""
        self._changed.clear()
        end = time.monotonic() + QUIET_MAX_S
        while time.monotonic() < end and self._changed.wait(QUIET_S):
            self._changed.clear()

    def _settled(self) -> bool:
        """Whether a checkpoint still being written at the last scan is ready now: its own files
        are checked, not the whole run's (a tick's rescan of 300 checkpoints took 1.2 s of CPU)."""
        now = time.time()
        return any(self._ready(checkpoint, now) for checkpoint in self._settling)

    def _ready(self, checkpoint: Checkpoint, now: float) -> bool:
        """Whether the trainer is done with a checkpoint, by its files or by the stand-in that reads it."""
        return (self._stand_in.is_ready if self._stand_in else is_ready)(checkpoint, self._options, now)

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
        """Whether anything but a trainer log changed since the last call."""
        other = self._other.is_set()
        self._other.clear()
        return other

    def take_event_files(self) -> list[str]:
        """The TensorBoard event files written since the last call."""
        with self._lock:
            written, self._event_files = sorted(self._event_files), set()
        return written
