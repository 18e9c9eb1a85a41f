"""The single writer of a store (:class:`StoreWriter`): its lock and lifecycle, recovery from the
commit points, checkpoints appended and committed, supersession, the alert list and the layout."""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shlex
import shutil
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import zarr

from stores import format as fmt
from stores.errors import NO_ROOM, EncoderMismatchError, StoreFormatError
from stores.format import is_store, stored_text
from stores.lock import WriterLock
from stores.owner import owner_gone
from stores.uninterrupted import after_writes_end, uninterrupted
from stores.zarr_store.alert_records import _alert_columns, _alert_record, _unsaid
from stores.zarr_store.create import (DEFAULT_THUMBNAIL_SIZE, _create, _create_alert_arrays, _create_array,
                                      _create_superseded_by, _described_arrays, _staged_name)
from stores.zarr_store.paths import _staging, check_store_path
from stores.zarr_store.primitives import (_GROUP_COUNTS, WRITE_CONFIG, _fill_by_chunks, _open_array, _open_root,
                                          _past_its_shape, _write_all, folder_identity)
from stores.zarr_store.reader import _LAYOUT_NEXT, _LAYOUT_OLD, StoreReader
from stores.zarr_store.sources import _CurrentSources, _replacements, superseded_flags
from stores.zarr_store.tables import _TableWrites
from stores.zarr_store.transaction import CheckpointTransaction, _Staging, _take


log = logging.getLogger(__name__)


def encoder_mismatch(path: Path, stored: dict[str, Any], wanted: str) -> EncoderMismatchError:
    """The one line refusing to mix encoders in a store (``wanted``: what this run uses)."""
    return EncoderMismatchError(f"{path}: written with encoder '{stored.get('identity')}' (dim {stored.get('dim')}), "
                                f"this run uses {wanted}; pass --encoder {stored.get('spec') or stored.get('identity')} "
                                f"or use another --store")


def _tag_as_file(stored: str | None, given: str | None) -> bool:
    """Whether ``given`` is a pretrained tag's weights copied by hand (``clip:ARCH/TAG@FILE``,
    identity ``clip:ARCH/TAG@sha256-…``) for a store of that tag's vectors: offline, the way
    its message gives to resume such a store; refused, that way had no way out."""
    if not stored or not given:
        return False
    match = re.fullmatch(r"(clip:[^@]+/[^/@]+)@sha256-[0-9a-f]{12}(\+quickgelu)?", given)
    return bool(match) and stored == match[1] + (match[2] or "")


class StoreWriter(_TableWrites, StoreReader):
    """The single writer of a store: creates it, appends checkpoints, commits, recovers.

    Opening takes an exclusive lock and rolls back anything past the committed counts
    (what a killed process left behind), so ingest resumes exactly where it stopped.
    """

    def __init__(self, path: str | os.PathLike[str], encoder: dict[str, Any],
                 thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE, *, ingests: bool = True,
                 recover_now: bool = True) -> None:
        """``ingests``: the writer ingests the run's checkpoints (a watch), so a commit point
        past the rows on disk may go back to the last complete checkpoint, the rest ingested
        again; a writer that does not (``evowatch layout``) refuses instead of cutting.
        ``recover_now=False``: opened locked and read-only until :meth:`recover` (a watch checks
        first that its run is the store's: round BC, another run's was refused only after a store
        copied mid-write had been cut back)."""
        self.path = Path(path)
        self._ingests = ingests
        self._let_go = uninterrupted.let_go  # writes let go unfinished before this writer: not its own
        if not is_store(self.path):
            self._create_atomically(encoder, thumbnail_size)
        self._lock = WriterLock(self.path)
        self._folder = folder_identity(self.path)  # to tell when the store folder is deleted or moved
        self._handles: dict[tuple[str, str], zarr.Array] = {}
        self._lengths: dict[tuple[str, str], int] = {}  # rows written; arrays grow ahead of them
        self._scalars_written: dict[str, np.ndarray] | None = None  # the scalars table as this writer left it,
        self._scalars_written_at = (0, 0)  # at these committed_rows and rewrites (else read back: files restored)
        self._label_folders: frozenset[str] | None = None  # label_folders(), once read
        self._alert_list: list[dict[str, Any]] | None = None  # alerts(), once read: this is the only writer
        try:
            self.refresh()
            self._check_encoder(encoder)
        except BaseException:
            self._lengths.clear()  # nothing written: close only lets go of the lock
            self.close()
            raise
        if recover_now:
            self.recover()

    def recover(self) -> None:
        """Go on from the commit points (what a killed writer or a copy taken mid-write left),
        and refuse a store with chunk files missing; before it, this writer writes nothing."""
        try:
            if missing := self.missing_metadata():  # before any write: a watch made a table's column again over
                raise self._incomplete(missing)  # its chunks, and recorded itself in a store it then refused
            for group in _GROUP_COUNTS:  # a count missing is named before any write (read as 0, rows were cut)
                self._group_attrs(group)
            if self._load_state():  # a cleanly closed store ends at its commit points
                log.warning("%s: the last write was interrupted; resuming from the last commit (%d rows, %d checkpoints)",
                            self.path, self.n_rows, self.n_checkpoints)
            self.check_complete()  # appended to, a store with holes kept them (zeros measured, exported)
        except BaseException:
            self._lengths.clear()  # close only lets go of the lock
            self.close()
            raise

    def _load_state(self) -> bool:
        """Cut back to the commit points and read what writing goes on from; whether anything
        was past them."""
        cut = self._recover()  # and the current source of each checkpoint (_write_superseded)
        self._alert_list = None
        self._pending: list[CheckpointTransaction] = []
        self._staging = _Staging()
        self._labels = list(self.labels)
        self._label_codes = {name: code for code, name in enumerate(self._labels)}
        return cut

    def lock_descriptor_for_child(self) -> int:
        """A copy of the lock's descriptor for a child about to be forked to write for this
        writer (engine/writer_process.py): the store stays locked while the child lives.
        The caller closes its copy once the child is started."""
        return self._lock.duplicate()

    def reload_after_child(self) -> None:
        """Forget the arrays' cached shapes and lengths after a child wrote for this writer,
        and go on from the commit points it left (whether it finished, failed or was killed)."""
        self._handles.clear()
        self._lengths.clear()
        self.refresh()
        self._load_state()

    # --- lifecycle ------------------------------------------------------------------
    @property
    def _holding(self) -> bool:
        """Whether this writer holds its lock (not yet closed; made far enough to take it)."""
        lock = getattr(self, "_lock", None)
        return lock is not None and lock.held

    @property
    def write_let_go(self) -> bool:
        """Whether a second Ctrl-C (or SIGTERM) let a write of this writer go unfinished
        (:mod:`stores.uninterrupted`): it may still land, so the arrays are not cut back, nor
        the store removed; the next writer recovers from the commit points as after a kill."""
        return uninterrupted.let_go != getattr(self, "_let_go", uninterrupted.let_go)

    def holds_its_folder(self) -> bool:
        """Whether the store path still leads to the folder this writer opened, with its root
        metadata: not deleted (``rm -rf`` under way included), moved away or replaced (a copy
        put back is another folder)."""
        return folder_identity(self.path) == getattr(self, "_folder", None) and is_store(self.path)

    def _ensure_intact(self) -> None:
        """Stop before writing into a store folder deleted or moved while open: zarr would
        make a headless half store of the new chunks, and the next read would fail obscurely."""
        if self._holding and not self.holds_its_folder():
            raise self._gone()

    def _gone(self) -> StoreFormatError:
        # writes under way may have made chunk folders again there (zarr's local store makes a
        # chunk's folders): the same command then refused them as "not an evowatch store" (round
        # AN). Said, not removed: a store being copied back looks the same (round AO)
        again = (" (a folder is there again without the store's zarr.json: pieces writes under way made again, "
                 "to remove first, or a copy not finished)" if self.path.exists() and not is_store(self.path) else "")
        return StoreFormatError(f"{self.path}: the store was deleted or moved while being written; nothing more "
                                f"is written there: restore it, or run the same command again to start a new one{again}")

    def refresh(self) -> None:
        self._ensure_intact()
        super().refresh()

    def close(self) -> None:
        if self._holding and getattr(self, "_lengths", None) and self.holds_its_folder() and not self.write_let_go:
            try:  # a closed store's arrays end at their commit points
                self.refresh()
                self._cut_to_committed()
            except Exception as exc:  # readers stop at the commit points anyway; the next writer cuts
                if self.holds_its_folder():  # else deleted meanwhile: there is nothing to cut; a full disk is said
                    full = getattr(exc, "errno", None) in NO_ROOM  # by the error that closes it
                    log.log(logging.DEBUG if full else logging.WARNING,
                            "%s: could not cut the arrays' spare capacity on close (%s)", self.path, exc)
        if self._holding:
            lock, self._lock = self._lock, None
            if self.write_let_go:  # it may land yet: no other writer before it has
                after_writes_end(lock.release)
            else:
                lock.release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        # Whatever failed once the store folder was deleted (a read of a vanished array, a
        # metrics table gone empty) failed because of that: say so, on one line.
        gone = isinstance(exc, Exception) and self._holding and not self.holds_its_folder()
        self.close()
        if gone:
            raise self._gone() from exc

    def _create_atomically(self, encoder: dict[str, Any], thumbnail_size: int) -> None:
        """Build the empty store beside its final path and rename it into place.

        A reader or a restarted writer then never meets a half-created store.
        """
        check_store_path(self.path)
        where = Path(os.path.abspath(self.path))  # `--store .` has no name of its own
        if os.path.ismount(where):  # a fresh `docker -v` volume: it cannot be renamed over ("Device or resource busy")
            raise StoreFormatError(f"{self.path}: a mount point cannot become a store (a store is made beside its path "
                                   f"and renamed into place); give --store a path inside it, e.g. {where / 'run.zarr'}")
        stem, staging = _staging(self.path)
        for left in where.parent.glob(f".{glob.escape(stem)}.creating-*"):  # a killed creation's or removal's
            if left == staging or owner_gone(left.name.rpartition(".creating-")[2]):
                shutil.rmtree(left, ignore_errors=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create(staging, encoder, thumbnail_size)
        except BaseException as exc:  # a full disk, an interrupt: leave nothing half-made behind
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno not in NO_ROOM:  # those say "free space"
                # a file where a folder must be (--store notes.txt/s.zarr), /proc, a read-only mount
                raise StoreFormatError(f"{self.path}: cannot create a store there ({exc.strerror or exc}: "
                                       f"{exc.filename or self.path.parent}); choose another --store path") from None
            raise
        try:
            if self.path.is_dir():
                self.path.rmdir()
            os.rename(staging, self.path)
        except OSError:  # another writer created it first: use theirs
            shutil.rmtree(staging, ignore_errors=True)
            if not is_store(self.path):
                raise


    def _check_encoder(self, encoder: dict[str, Any]) -> None:
        stored = self.encoder or {}
        same = stored.get("identity") == encoder.get("identity") or _tag_as_file(stored.get("identity"), encoder.get("identity"))
        if not same or int(stored.get("dim", -1)) != int(encoder["dim"]):
            raise encoder_mismatch(self.path, stored, f"'{encoder.get('identity')}' (dim {encoder['dim']})")
        if stored.get("identity") != encoder.get("identity"):
            log.info("%s: %s taken for the weights of %s, as its spec says (a file cannot be checked against a tag)",
                     self.path, encoder.get("spec"), stored.get("identity"))
        if encoder.get("spec") and stored.get("spec") != encoder["spec"]:  # the same weights, moved: a resume
            self._update_root({"encoder": {**stored, "spec": encoder["spec"]}})  # without --encoder finds them

    def _recover(self) -> bool:
        """Cut every array back to its committed length and repair superseded flags; whether
        anything was past the commit points."""
        self._finish_layout_swap()
        for group in ("samples", "metrics", "scalars"):  # arrays a killed writer was making (_create_array)
            for left in (self.path / group).glob(_staged_name("*")):
                shutil.rmtree(left, ignore_errors=True)
        behind = self._commit_point_behind_its_rows()
        self._metrics_behind_their_columns()
        cut = self._cut_to_committed()
        self._write_superseded()
        if self.attrs["evowatch"]["version"] != fmt.SCHEMA_VERSION:  # what makes it this version is done
            self._raise_version()
        return cut or behind

    @uninterrupted
    def _raise_version(self) -> None:
        """Make an older store this schema version: its alerts (version 1 and 2 kept them in the
        root attributes) are written into the ``alerts/`` arrays first, then one root write sets
        the version and drops ``attrs["alerts"]``. Killed in between, the store is still the older
        version, read from its root attributes (readers go by the version, not by the arrays),
        and the next writer does it again."""
        alerts = [_alert_record(a) for a in self.attrs.get("alerts", [])]
        root = _open_root(self.path, "r+")
        _create_alert_arrays(root)
        for name in fmt.ALERT_ARRAYS:  # made again: no handle or length of before holds
            self._handles.pop(("alerts", name), None)
            self._lengths.pop(("alerts", name), None)
        if alerts:
            self.write_columns("alerts", 0, _alert_columns(alerts))
            self._ensure_group("alerts").update_attributes({"committed_rows": len(alerts)})
        attrs = {key: value for key, value in self.attrs.items() if key != "alerts"}
        attrs["evowatch"] = {**attrs["evowatch"], "version": fmt.SCHEMA_VERSION}
        attrs["arrays"] = _described_arrays(attrs.get("arrays"))
        self._ensure_intact()
        root.attrs.put(attrs)  # one write of the root zarr.json
        self.refresh()

    @uninterrupted
    def _commit_point_behind_its_rows(self) -> bool:
        """Move the commit point back to the last checkpoint whose rows and record all exist,
        when it counts more (an earlier evowatch stopped by Ctrl-C while committing; files lost
        on disk): readers would index past the arrays, and a resumed watch would append after
        rows that are not there. Whether it was moved."""
        counts = self.attrs["committed"]
        length = {group: min(self.handle(group, name).shape[0] for name in fmt.GROUPS[group])
                  for group in ("samples", "checkpoints", "warnings")}
        if (length["samples"] >= counts["rows"] and length["checkpoints"] >= counts["checkpoints"]
                and length["warnings"] >= counts["warnings"]):
            return False
        n = min(counts["checkpoints"], length["checkpoints"])
        row_stop = self._read(self.handle("checkpoints", "row_stop"), n, None)
        while n and row_stop[n - 1] > min(counts["rows"], length["samples"]):
            n -= 1
        warned = self._read(self.handle("warnings", "checkpoint"), min(counts["warnings"], length["warnings"]), None)
        kept = {"rows": int(row_stop[n - 1]) if n else 0, "checkpoints": n, "warnings": int(np.sum(warned < n))}
        complete = f"but only {n} {'is' if n == 1 else 'are'} complete on disk"
        if not self._ingests:  # it would cut rows no one ingests again (a store copied while written: round AY-2)
            raise StoreFormatError(f"{self.path}: the commit point counts {counts['checkpoints']} checkpoints "
                                   f"({counts['rows']} rows) {complete} (a store copied while it was written, or "
                                   "files lost); nothing changed: copy it again from its source, or `evowatch watch "
                                   f"RUN_DIR --store {shlex.quote(str(self.path))}` goes on from {'it' if n == 1 else 'those'} "
                                   "and ingests the rest again")
        log.warning("%s: the commit point counted %d checkpoints (%d rows) %s; going on from %s (the rest is "
                    "ingested again)", self.path, counts["checkpoints"], counts["rows"], complete,
                    "it" if n == 1 else "those")
        self._update_root({"committed": kept})  # the layout's commit point follows it (_cut_to_committed)
        return True

    def _metrics_behind_their_columns(self) -> None:
        """Move the per-step metrics' commit point back to the rows every column holds, when it
        counts more (a store copied while a watch measured: a column's zarr.json copied before its
        last rows): the watch read past the short column (an IndexError), and a next row would
        have grown it with zeros under the rows between. The steps past it are measured again; a
        writer that measures nothing (``evowatch layout``) leaves them to the next watch."""
        committed = int(self._group_attrs("metrics").get("committed_rows", 0))
        if not self._ingests or not committed:
            return
        held = min((self._length_on_disk("metrics", name) for name in self._array_names("metrics")), default=committed)
        if held < committed:
            log.warning("%s: the metrics' commit point counted %d steps but only %d are complete on disk (a store "
                        "copied while it was written); the rest is measured again", self.path, committed, held)
            self._ensure_group("metrics").update_attributes({"committed_rows": held})
            for name in self._array_names("metrics"):  # not then said as an interrupted write's rows
                self.handle("metrics", name).resize((held,))

    def _cut_to_committed(self) -> bool:
        """Drop rows past the commit points (uncommitted rows and the capacity grown ahead);
        whether there were any."""
        cut = False
        counts = self.attrs["committed"]
        layout_rows = self.layout_rows  # no more than the store's rows; its own count may be past them (the
        if self.has_array("layout", "xy") and int(self._group_attrs("layout").get("committed_rows", 0)) > layout_rows:
            self._set_layout_rows(layout_rows)  # commit point moved back): the rows ingested again were not laid out
        for group_name, n in (("samples", counts["rows"]), ("checkpoints", counts["checkpoints"]),
                              ("warnings", counts["warnings"]), ("layout", layout_rows)):
            extra = {"samples": ["latent"], "checkpoints": list(fmt.OPTIONAL_CHECKPOINT_ARRAYS)}.get(group_name, [])
            for name in list(fmt.GROUPS[group_name]) + extra:
                optional = name in extra or group_name == "layout"  # made when first needed
                if optional and not self.has_array(group_name, name):
                    continue
                array = self.handle(group_name, name)  # the cached handle must see the cut
                if array.shape[0] > n:
                    log.debug("%s: cutting %s/%s from %d to its %d committed rows", self.path, group_name, name,
                              array.shape[0], n)
                    array.resize((n, *array.shape[1:]))
                    cut = True
                self._lengths[(group_name, name)] = min(n, array.shape[0])
        table_rows = int(self._group_attrs("metrics").get("committed_rows", 0))  # the table's: one read
        for group_name in ("metrics", "sample_metrics"):  # grown ahead too (_ensure_column)
            for name in self._array_names(group_name):
                array = self.handle(group_name, name)
                n = table_rows if group_name == "metrics" else int(array.attrs.get("committed_rows", 0))
                if array.shape[0] > n:
                    array.resize((n,))
                    cut = True
        if int(self.attrs["evowatch"]["version"]) >= fmt.ALERT_ARRAYS_VERSION:  # grown ahead too (set_alerts)
            n = int(self._group_attrs("alerts").get("committed_rows", 0))
            for name in self._array_names("alerts"):
                array = self.handle("alerts", name)
                if array.shape[0] > n:
                    array.resize((n,))
                    cut = True
                self._lengths[("alerts", name)] = min(n, array.shape[0])
        return cut

    def handle(self, group: str, name: str) -> zarr.Array:
        """A cached writable handle: this process is the only writer, so its metadata stays true."""
        self._ensure_intact()  # every array write comes here
        key = (group, name)
        if key not in self._handles:
            # open_array ignores its ``config`` argument (zarr 3.1): with_config applies it.
            self._handles[key] = _open_array(self.path / group / name, "r+").with_config(WRITE_CONFIG)
        return self._handles[key]

    @uninterrupted
    def _supersede(self, group: Sequence[CheckpointTransaction]) -> np.ndarray:
        """Before the commit point: each checkpoint the group replaces gets the index of its
        replacement in ``superseded_by`` (a reader of the earlier count still reads it current).
        Returns their indices, flagged ``superseded`` once the commit point has moved."""
        pairs = [(i, tx.checkpoint_index) for tx in group for i in self._current.commit(tx.source, tx.checkpoint_index)]
        if pairs:
            old, new = (np.array(x) for x in zip(*pairs))
            self.handle("checkpoints", "superseded_by").set_coordinate_selection(old, new.astype(np.int32))
            return old
        return np.zeros(0, np.int64)

    @uninterrupted
    def _write_superseded(self) -> None:
        """Repair both records of supersession from the committed sources (after a crash, a
        checkpoint renamed, or in a store made before ``superseded_by``: where the replacement
        is not known, the next reading of its source, else of its step, else the next checkpoint)."""
        if not self.has_array("checkpoints", "superseded_by"):
            _create_superseded_by(zarr.open_group(str(self.path / "checkpoints"), mode="r+"))
        ckpt = self.checkpoints()
        flags = superseded_flags(ckpt)
        n = len(flags)
        if n and not np.array_equal(flags, ckpt["superseded"]):
            self.handle("checkpoints", "superseded")[:n] = flags
        by = self.handle("checkpoints", "superseded_by")
        stored = by[:n] if by.shape[0] >= n else np.full(n, -2, np.int32)
        fixed = _replacements(ckpt, flags, stored)
        if not np.array_equal(fixed, stored):
            if by.shape[0] < n:
                by.resize((n,))
            by[:n] = fixed
        self._current = _CurrentSources(ckpt["source"], flags)

    def current_checkpoints(self) -> np.ndarray:
        """Boolean mask of the committed checkpoints that are current: ``~superseded_flags``
        of the committed table, from the current checkpoint of each source this writer keeps up
        to date as it commits (worked out again from every source, three times a call, it was
        0.1 s of the signals hook at 2,000 checkpoints)."""
        n = self.n_checkpoints
        if self._current.count != n:  # a commit that failed once its supersession was noted, a writer
            return ~superseded_flags(self.checkpoints())  # process's checkpoints not read back
        current = np.zeros(n, bool)
        current[self._current.indices()] = True
        return current

    # --- queries the pipeline needs -------------------------------------------------
    def committed_hashes(self) -> dict[str, str]:
        """Content hash of each source's current checkpoint: the idempotency check."""
        return {source: digest for source, (digest, _) in self.committed_readings().items()}

    def intact_checkpoints(self) -> dict[str, np.ndarray]:
        """The committed checkpoint table, once the store is known not deleted or moved (each
        watch pass starts here, and reads it once)."""
        self._ensure_intact()
        return self.checkpoints()

    def committed_readings(self, table: Mapping[str, np.ndarray] | None = None) -> dict[str, tuple[str, int]]:
        """(content hash, step) of each source's current checkpoint: the idempotency check, and
        the step it was read at (a reading that changed as more of the run was written stores
        it again at its new step). ``table``: the :meth:`intact_checkpoints` the caller read."""
        ckpt = self.intact_checkpoints() if table is None else table
        return {str(s): (str(h), int(t)) for s, h, t, old in zip(ckpt["source"], ckpt["hash"], ckpt["step"],
                                                                  superseded_flags(ckpt)) if not old}

    # --- writing --------------------------------------------------------------------
    @uninterrupted
    def rename_source(self, old: str, new: str, content_hash: str | None = None) -> None:
        """Name the checkpoints read from ``old`` by ``new``, where the run moved them (a
        trainer's ``tmp-checkpoint-500/`` renamed ``checkpoint-500/``): read again there, the
        earlier reading is then that source's superseded version, not a second current copy.
        ``content_hash``: the current reading's hash under ``new`` (the same files seen from
        another folder: taken as stored, not read again); written after the name, so a write
        cut between the two has them read again, never taken for another run's."""
        ckpt = self.checkpoints()
        where = np.flatnonzero(ckpt["source"] == stored_text(old))
        if not len(where):
            return
        handle = self.handle("checkpoints", "source")
        for i in where:
            handle[int(i)] = stored_text(new)
        if content_hash is not None:
            self.handle("checkpoints", "hash")[int(where.max())] = content_hash
        self._write_superseded()
        by, newest = self.handle("checkpoints", "superseded_by"), int(np.flatnonzero(ckpt["source"] == stored_text(new)).max(initial=-1))
        for i in where:  # replaced by the reading at the new name
            if newest > i:
                by[int(i)] = newest

    @contextlib.contextmanager
    def checkpoint(self, step: int, source: str, content_hash: str, kind: str = "generated",
                   defer: bool = False) -> Iterator[CheckpointTransaction]:
        """Append one checkpoint's rows; committed on normal exit, rolled back on error.

        With ``defer`` a complete checkpoint waits in memory for :meth:`commit_pending`, so
        a backlog of small checkpoints is written and committed as one group (one write per
        array instead of one per array and checkpoint). Only complete checkpoints wait.
        """
        tx = CheckpointTransaction(self, step, source, content_hash, fmt.KIND_CODES[kind])
        tx.defer = defer  # the caller may decide when the checkpoint is complete
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        self._pending.append(tx)
        if not tx.defer or tx.rows_written:
            self.commit_pending()

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    @property
    def pending_rows(self) -> int:
        return sum(tx.n_rows for tx in self._pending)

    def _next(self) -> tuple[int, int, int]:
        """Row, checkpoint and warning index after the committed and pending checkpoints."""
        return (self.n_rows + self.pending_rows, self.n_checkpoints + len(self._pending),
                self.n_warnings + sum(len(tx.skipped) for tx in self._pending))

    def label_code(self, label: str | None) -> int:
        if label is None:
            return -1
        label = stored_text(label)  # a label folder's name
        code = self._label_codes.get(label)
        if code is None:
            code = self._label_codes[label] = len(self._labels)
            self._labels.append(label)
        return code

    @uninterrupted
    def commit_pending(self) -> None:
        """Write the waiting checkpoints' rows and records, then move the commit point once."""
        if not self._pending:
            return
        group, self._pending = self._pending, []
        with_rows = [tx for tx in group if tx.buffer.n]
        if len({tx.latent_shape for tx in with_rows}) == 1:  # same columns: one write per array
            self._write_staged(with_rows)
        else:
            for tx in with_rows:
                self._write_staged([tx])
        records = [tx.record() for tx in group]
        self.write_columns("checkpoints", group[0].checkpoint_index,
                                            {k: np.array([r[k] for r in records]) for k in records[0]})
        skipped = [(tx.checkpoint_index, path, reason) for tx in group for path, reason in tx.skipped]
        if skipped:
            index, paths, reasons = zip(*skipped)
            self.write_columns("warnings", self.n_warnings, {
                "checkpoint": np.array(index, np.int32), "path": np.array(paths, dtype=str),
                "reason": np.array(reasons, dtype=str)})
        last = group[-1]
        self._latents_end_at_their_chunks(last.row_start + last.n_rows)
        replaced = self._supersede(group)
        # The commit point: one atomic rewrite of the root zarr.json.
        self._update_root({
            "labels": list(self._labels),
            "committed": {"rows": last.row_start + last.n_rows, "checkpoints": last.checkpoint_index + 1,
                          "warnings": self.n_warnings + len(skipped)},
        })
        if len(replaced):
            self.handle("checkpoints", "superseded").set_coordinate_selection(replaced, True)

    def _latents_end_at_their_chunks(self, rows: int) -> None:
        """Before a commit to ``rows``: cut ``samples/latent``'s capacity grown ahead back to its
        last chunk written, once rows without latents pass it (it ends at the last rows with
        latents, docs/store.md); under the commit point, its unwritten chunks were said missing
        and the store refused as copied incompletely (round BK)."""
        written = self._lengths.get(("samples", "latent"))
        if written is None or not self.has_array("samples", "latent"):
            return
        array = self.handle("samples", "latent")
        end = -(-written // array.chunks[0]) * array.chunks[0]
        if written < rows and end < array.shape[0]:
            array.resize((end, *array.shape[1:]))

    def record_history(self, entry: dict[str, Any]) -> None:
        """Note a run event (device, fallback, encoder) in the root attributes."""
        history = list(self.attrs.get("history", []))[-99:]
        history.append({"time": time.time(), **entry})
        self._update_root({"history": history})

    def alerts(self) -> list[dict[str, Any]]:
        """:meth:`StoreReader.alerts`, read once: this writer is the store's only one."""
        if self._alert_list is None:
            self._alert_list = super().alerts()
        return list(self._alert_list)

    @uninterrupted
    def set_alerts(self, alerts: Sequence[Mapping[str, Any]], onsets: Sequence[Mapping[str, Any]] = ()) -> None:
        """Store ``alerts`` as the alert list (:meth:`StoreReader.alerts`), in place of the one
        stored. Rows are never changed under the commit point, so a reader or a kill sees the
        old list or the new one, whole: a list that only grew (a new step's alerts, the common
        case) has its new rows appended past ``committed_rows``, which then moves on; any other
        change (a step measured again, steps dropped) writes the whole new list where no
        committed row is (at row 0 when it fits before ``first_row``, else past
        ``committed_rows``) and moves ``first_row`` and ``committed_rows`` to it in one attribute
        write, counting it in ``rewrites``. Rewriting rows in place, or appending new versions
        with tombstones on the old, each needed a second commit point or a filter a plain reader
        must apply; a rewrite costs the list's length, about as the root attribute it replaces
        cost at every write. ``onsets``: alerts of the list to announce, kept unsaid with it
        (:meth:`StoreReader.unsaid_onsets`) until :meth:`said_onsets`."""
        old = self.alerts()
        grown = len(alerts) >= len(old) and list(alerts[:len(old)]) == old  # the stored list's records, equal
        new = old + [_alert_record(a) for a in alerts[len(old):]] if grown else [_alert_record(a) for a in alerts]
        if new == old and not onsets:
            return
        group, attrs = self._ensure_group("alerts"), self._group_attrs("alerts")
        stored_onsets = attrs.get("unsaid_onsets", [])
        unsaid_onsets = _unsaid([*stored_onsets, *onsets], new, listed=True)
        first, stop = int(attrs["first_row"]), int(attrs["committed_rows"])
        if grown or new[:len(old)] == old:
            start, rows, commit = stop, new[len(old):], {"committed_rows": stop + len(new) - len(old)}
        else:
            start = 0 if len(new) <= first else stop
            rows = new
            commit = {"first_row": start, "committed_rows": start + len(new),
                      "rewrites": int(attrs["rewrites"]) + 1,
                      "unsaid_withdrawals": _unsaid([*attrs.get("unsaid_withdrawals", []), *old], new, listed=False)}
        if unsaid_onsets != stored_onsets:  # the onsets, and those of the old list still in the new one
            commit["unsaid_onsets"] = unsaid_onsets
        if rows:
            self.write_columns("alerts", start, _alert_columns(rows))
        group.update_attributes(commit)
        self._alert_list = new

    def said_withdrawals(self) -> None:
        """The withdrawals kept unsaid (:meth:`StoreReader.unsaid_withdrawals`) have been said."""
        self._said("unsaid_withdrawals")

    def said_onsets(self, said: Sequence[Mapping[str, Any]]) -> None:
        """The onsets ``said`` (by step and rule) have been announced, their --on-alert commands
        handed to the runner: the others stay unsaid (:meth:`StoreReader.unsaid_onsets`; a
        killed watch's, said once a pass confirms them, outlive a new onset's line)."""
        self._said("unsaid_onsets", {(a["step"], a["rule"]) for a in said})

    @uninterrupted
    def _said(self, key: str, said: set[tuple[int, str]] | None = None) -> None:
        """Empty the record ``key``, or drop the alerts ``said`` from it."""
        records = self._unsaid_alerts(key)
        left = [a for a in records if said is not None and (a["step"], a["rule"]) not in said]
        if left != records:
            self._ensure_group("alerts").update_attributes({key: left})

    def label_folders(self) -> frozenset[str]:
        """The run's label folders kept (:meth:`note_label_folders`); in a store made before they
        were kept, the folders its generated rows' labels came from (a file labelled by the
        folder it sits in: round AU, an upgraded store whose mixed steps were deleted read its
        one-class steps again, unlabelled). Read once a writer."""
        if self._label_folders is None:
            if "label_folders" in self.attrs:
                self._label_folders = frozenset(self.attrs["label_folders"])
            else:
                n, labels = self.n_rows, self.labels
                code, kind = self.samples("label", slice(0, n)), self.samples("kind", slice(0, n))
                rows = np.flatnonzero((code >= 0) & (kind == fmt.KIND_CODES["generated"]))
                paths = self.samples("path", rows) if len(rows) else []
                self._label_folders = frozenset(labels[c] for c, path in zip(code[rows], paths)
                                                if PurePosixPath(str(path)).parent.name == labels[c])
        return self._label_folders

    def note_label_folders(self, names: Iterable[str]) -> None:
        """Keep the names of the run's label folders (ImageFolder checkpoints' sub-folders), so
        that a one-class step is labelled by its folder after the checkpoints that showed the
        folder was a label's are deleted (a rotating trainer)."""
        known = self.label_folders()
        if not known.issuperset(names) or "label_folders" not in self.attrs:
            self._label_folders = known.union(names)
            self._update_root({"label_folders": sorted(self._label_folders)})

    @uninterrupted
    def _update_root(self, changes: dict[str, Any]) -> None:
        self._ensure_intact()
        root = _open_root(self.path, "r+")
        root.update_attributes(changes)  # one write: attrs.update writes zarr.json once per key
        self.refresh()

    @uninterrupted
    def _write_staged(self, group: Sequence[CheckpointTransaction]) -> None:
        """Write the waiting rows of consecutive transactions, the first in the staging."""
        start, n, columns = _take(group, self._staging)
        self.write_columns("samples", start, columns)
        self._staging.drop_front(n)

    def write_columns(self, group: str, start: int, columns: dict[str, np.ndarray]) -> None:
        """Write several arrays' rows at once, in one pass through zarr's event loop.

        Their I/O and compression overlap there, without a thread per array each blocking
        on that same loop (a 1,024-row commit: 25-28k -> 33-38k rows/s, docs/ingest.md).
        """
        _write_all(w for name, values in columns.items() for w in self._row_writes(group, name, start, values))

    def _row_writes(self, group: str, name: str, start: int, values: np.ndarray) -> list[Coroutine]:
        """Make room for one array's rows [start, start+len(values)); return their writes."""
        path = self.path / group / name
        if name == "latent" and not (path / "zarr.json").is_file():
            # reference rows never have latents: only generated rows without them are news
            kinds = self.handle("samples", "kind")[:start]
            generated = int((kinds == fmt.KIND_CODES["generated"]).sum())
            if generated:
                log.warning("%s: latents appear at row %d; the %d generated rows before have none (NaN)",
                            self.path, start, generated)
            group_handle = zarr.open_group(str(self.path / group), mode="r+")
            # rows never written read NaN, not 0 (a checkpoint without latents, once the writer cut
            # the array back to the committed rows and the next one wrote past them)
            _create_array(group_handle, name, values.shape[1:], "float32", fmt.OPTIONAL_SAMPLE_ARRAYS[name],
                          fill_value=np.nan, rows=start)
            self._lengths[(group, name)] = start  # rows before ``start`` written NaN: their chunks on disk
        array = self.handle(group, name)
        if name == "latent" and array.shape[1:] != values.shape[1:]:
            log.warning("%s: latent width %s differs from the store's %s; these latents are not stored",
                        self.path, values.shape[1:], array.shape[1:])
            return []
        stop = start + len(values)
        length = self._lengths.get((group, name), array.shape[0])
        if length < start:  # latent array joined late, or skipped checkpoints: the rows between NaN, their
            chunk = array.chunks[0]  # chunks written before a resize shows them (shown first, a live reader or
            end = -(-start // chunk) * chunk  # a kill met them missing under the commit point: round BK)
            _fill_by_chunks(_past_its_shape(array, max(end, array.shape[0])), length, end, np.nan)
            length = start
        if array.shape[0] < stop:
            # Grow ahead, by whole chunks and at least a quarter: each resize rewrites the
            # array's zarr.json, which cost more than the rows themselves at one per commit.
            # Rows past the commit point (capacity included) are cut on close and on recovery.
            chunk = array.chunks[0]
            capacity = -(-max(stop, array.shape[0] + array.shape[0] // 4) // chunk) * chunk
            array.resize((capacity, *array.shape[1:]))
        self._lengths[(group, name)] = max(length, stop)
        return [array.async_array.setitem(slice(start, stop), values)]

    @uninterrupted
    def commit_layout(self, xy: np.ndarray, start: int) -> None:
        """Write layout rows [start, start+len(xy)) and then move the layout commit point."""
        if start != self.layout_rows:
            raise ValueError(f"layout rows must be appended in order: expected start {self.layout_rows}, got {start}")
        stop = start + len(xy)
        if stop > self.n_rows:
            raise ValueError(f"layout rows {stop} exceed the {self.n_rows} committed sample rows")
        array = self.handle("layout", "xy")
        array.resize((stop, 2))
        array[start:stop] = np.asarray(xy, np.float32)
        self._set_layout_rows(stop)

    def _set_layout_rows(self, n: int) -> None:
        """Move the layout's commit point."""
        zarr.open_group(str(self.path / "layout"), mode="r+").update_attributes({"committed_rows": n})

    def _ensure_group(self, name: str) -> zarr.Group:
        self._ensure_intact()
        return zarr.open_group(str(self.path / name), mode="a", zarr_format=3)

    def check_layout_writable(self) -> None:
        """Raise the OSError :meth:`replace_layout` would meet on a store it cannot write (a
        read-only mount), before a full recompute spends minutes on a layout it cannot keep
        (round AV: it failed on ``layout/xy.next`` only after them), or an incremental one on
        the first step's (round AY-2); in the store's root while it has no layout yet."""
        folder = self.path / "layout"
        probe = (folder if folder.is_dir() else self.path) / f".writable-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()

    @uninterrupted
    def replace_layout(self, xy: np.ndarray) -> None:
        """Put a recomputed layout of the first ``len(xy)`` rows in place of the old one, whole
        (a full recompute). It is written beside the old one and renamed into its place: reset
        and written again a step at a time, a kill -9 in between (seconds at 400 steps) left
        the store with no layout. Its ``generation`` counts the recomputes: one has as many
        rows as before, and readers that key on counts (the viewer) kept drawing the old one."""
        if len(xy) > self.n_rows:
            raise ValueError(f"layout rows {len(xy)} exceed the {self.n_rows} committed sample rows")
        folder = self.path / "layout"
        shutil.rmtree(folder / _LAYOUT_NEXT, ignore_errors=True)
        _create_array(zarr.open_group(str(folder), mode="r+"), _LAYOUT_NEXT, (2,), "float32",
                      fmt.GROUPS["layout"]["xy"])
        new = _open_array(folder / _LAYOUT_NEXT, "r+").with_config(WRITE_CONFIG)
        new.resize((len(xy), 2))
        new[:] = np.asarray(xy, np.float32)
        new.update_attributes({"generation": int(self._group_attrs("layout").get("generation", 0)) + 1})
        self._handles.pop(("layout", "xy"), None)
        if (folder / "xy").exists():
            os.rename(folder / "xy", folder / _LAYOUT_OLD)
        os.rename(folder / _LAYOUT_NEXT, folder / "xy")
        self._finish_layout_swap()

    def _finish_layout_swap(self) -> None:
        """Complete a :meth:`replace_layout` cut short by a kill: the new layout renamed into
        place once the old one was moved aside, the commit point and generation it carries
        taken, the old one removed; one not yet complete is dropped (the old one stands)."""
        folder = self.path / "layout"
        if not (folder / "xy" / "zarr.json").is_file() and (folder / _LAYOUT_NEXT / "zarr.json").is_file():
            os.rename(folder / _LAYOUT_NEXT, folder / "xy")
        shutil.rmtree(folder / _LAYOUT_NEXT, ignore_errors=True)
        if (folder / "xy" / "zarr.json").is_file():
            xy = _open_array(folder / "xy", "r")
            generation = xy.attrs.get("generation")
            if generation is not None and int(generation) > int(self._group_attrs("layout").get("generation", 0)):
                zarr.open_group(str(folder), mode="r+").update_attributes(
                    {"committed_rows": min(int(xy.shape[0]), self.n_rows), "generation": int(generation)})
        shutil.rmtree(folder / _LAYOUT_OLD, ignore_errors=True)
