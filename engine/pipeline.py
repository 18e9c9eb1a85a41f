"""Ingest: decode, encode and store writes overlap in stages joined by bounded queues.

Decoding runs in ``workers`` forked worker processes (:mod:`engine.decode_workers`),
whose batches come back in job order; a ``--sampler`` (a model living in this process)
produces in a thread instead (:mod:`engine.batches` describes what flows). An encoder
thread encodes batch after batch (torch releases the GIL); the calling thread writes them
into the checkpoint's store transaction. Every queue and pipe is bounded, so memory stays
at a few batches whatever the size of the run (an encoded batch keeps its vectors and
store columns, not its model pixels).
"""
from __future__ import annotations

import collections
import contextlib
import functools
import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from engine import heap
from engine.backlog_log import counted
from engine.batches import END, PROCESS_THREADS, Done, Failed, PreparedBatch, Preparation, SampleSource, Start, \
    StoreColumns, messages
from engine.decode.samples import iter_samples
from engine.decode.skip import VANISHED
from engine.decode_workers import start_decode_processes
from engine.discovery.options import DiscoveryOptions
from engine.encoders import Encoder
from engine.errors import EvowatchError
from engine.records import Checkpoint, SkippedFile
from engine.writer_process import WriterProcess
from stores.format import listed
from stores.zarr_store import WRITE_ROWS, StoreWriter, available_cores

log = logging.getLogger(__name__)

heap.bound_arenas()  # at import: before the ingest's threads exist, so that they all share the bounded arenas


def writer_process_wanted(n_jobs: int, processes: int) -> bool:
    """Whether a backlog's store writes get a process of their own: when a core is left for
    it beside the decode processes and this one. Then the store's Python no longer takes
    turns with the encoder's under this process's GIL (a CUDA encoder is host-bound); on a
    machine without a spare core the batches' extra copy to it costs more than it saves (2
    cores, ``pixels``: 5,100-6,300 against 7,200-8,300 images/s; docs/ingest.md)."""
    forced = os.environ.get(WRITER_PROCESS_ENV)
    if forced in ("0", "1"):
        return forced == "1" and n_jobs > 0
    if forced is not None and forced not in _said_ignored:
        _said_ignored.add(forced)
        log.warning("%s=%r is not 1 or 0 and is ignored: set it to 1 (the store written by a process of its own) "
                    "or 0 (by the watcher's)", WRITER_PROCESS_ENV, forced)
    return n_jobs >= WRITER_PROCESS_JOBS and available_cores() >= processes + 2


def default_workers() -> int:
    """One decode process per core this process may run on, at most 8: measured faster than
    leaving cores to the encoder and store threads, which mostly wait on the GIL or the disk
    (docs/ingest.md). Cores as :func:`~stores.zarr_store.available_cores` counts them: a
    container pinned to 2 of 64 cores would otherwise fork 8 workers onto 2."""
    return min(8, available_cores())


@dataclass(frozen=True, slots=True)
class IngestResult:
    checkpoint: Checkpoint
    rows: int
    skipped: int
    #: False: nothing stored, to be read again by the next run (its --sampler failed), or, with
    #: ``kept`` > 0, once its files change (no file of the new version could be read)
    stored: bool = True
    #: a new version whose every file was skipped: the earlier version's samples, kept current
    kept: int = 0
    #: samples stored without a label, and the path of the first of them
    unlabelled: int = 0
    first_unlabelled: str | None = None


# A backlog of complete checkpoints is committed in groups: at most GROUP_ROWS rows, and no
# checkpoint waits more than GROUP_SECONDS for its commit.
GROUP_ROWS = WRITE_ROWS
GROUP_SECONDS = 1.0
# A backlog (this many checkpoints or more) is written by a process of its own when a core is
# spare for it (engine/writer_process.py, :func:`writer_process_wanted`); a live run's single
# new checkpoint is written here (a fork and a re-read cost more than the overlap saves).
WRITER_PROCESS_JOBS = 2
#: "1" or "0" forces the writer process on or off (tests; a machine whose cores are busy elsewhere).
WRITER_PROCESS_ENV = "EVOWATCH_WRITER_PROCESS"
_said_ignored: set[str] = set()
# The encoder may run this many rows ahead of the store's writes, so that a group commit
# does not stop it (docs/ingest.md, "The encoder ahead of the store").
ENCODED_AHEAD_ROWS = WRITE_ROWS


@dataclass(frozen=True, slots=True)
class _Encoded:
    """A batch's vectors and store columns; its model pixels, the bulk of it, are dropped."""

    vectors: np.ndarray
    columns: StoreColumns


def _produce(jobs: Iterable[tuple[Checkpoint, str]], prep: Preparation, pool: ThreadPoolExecutor,
             out: queue.Queue, stop: threading.Event, samples: SampleSource) -> None:
    """The producer thread (a sampler, or ``workers=0``): batches go on as futures, resolved by
    the encoder thread."""
    try:
        for item in messages(((c, h, None) for c, h in jobs), prep, pool, stop, samples):
            out.put(item)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        out.put(Failed(exc))
    finally:
        out.put(END)


def ingest(store: StoreWriter, jobs: Iterable[tuple[Checkpoint, str]], encoder: Encoder,
           options: DiscoveryOptions, workers: int | None = None, prefetch: int = 4,
           on_rows: Callable[[int], None] | None = None,
           samples: SampleSource = iter_samples) -> Iterator[IngestResult]:
    """Ingest ``(checkpoint, content_hash)`` jobs in order, yielding each one once committed.

    ``samples`` turns a checkpoint into samples: the files' decoder by default, in
    ``workers`` decode processes (:func:`default_workers` when None; 0 decodes in a thread
    of this process), or a ``--sampler``'s :meth:`engine.sampler.Sampler.iter_samples` for
    weight-only checkpoints, always in a thread (the model lives in this process).

    A checkpoint whose decoding or encoding fails is rolled back as a whole; the error
    propagates and everything committed before it stays.
    """
    jobs = list(jobs)
    prep = Preparation(options, encoder.preprocessor, encoder.batch_size, int(store.attrs["thumbnail_size"]))
    workers = default_workers() if workers is None else workers
    processes = workers if samples is iter_samples and jobs else 0  # at most one per part: start_decode_processes
    # Batches from decode processes are views of their shared slots, which bound them: a
    # deeper queue lets the encoder take several small checkpoints at once.
    decoded: queue.Queue = queue.Queue(maxsize=prefetch * (4 if processes else 1))
    encoded = encoded_queue(encoder)
    stop = threading.Event()
    children: list = []
    # Forked first: the ingest's threads and decode processes are not in it.
    wanted = writer_process_wanted(len(jobs), processes)
    with WriterProcess(store, functools.partial(_consume, n_jobs=len(jobs), on_rows=None)) if wanted \
            else contextlib.nullcontext() as writer, \
            ThreadPoolExecutor(PROCESS_THREADS, thread_name_prefix="evowatch-prep") as pool:
        if processes:
            producer, children = start_decode_processes(jobs, prep, processes, decoded)
        else:
            producer = threading.Thread(target=_produce, name="evowatch-decode", daemon=True,
                                        args=(jobs, prep, pool, decoded, stop, samples))
            producer.start()
        threads = [producer, threading.Thread(target=_encode, name="evowatch-encode", daemon=True,
                                              args=(encoder, decoded, encoded, stop))]
        threads[1].start()
        try:
            if writer:
                yield from writer.results(encoded, _counting_rows(on_rows) if on_rows else None)
            else:
                yield from _consume(store, encoded, len(jobs), on_rows)
        finally:
            stop.set()
            for child in children:
                if child.is_alive():
                    child.terminate()  # decoding only: nothing to lose
            _drain([decoded, encoded], threads)
            for child in children:
                child.join()
            if children:
                gc.unfreeze()


def _counting_rows(on_rows: Callable[[int], None]) -> Callable[[object], None]:
    """``on_rows`` for the encoder's output as it is handed to the writer process."""
    def count(got: object) -> None:
        on_rows(sum(len(x.vectors) for x in (got if isinstance(got, list) else [got]) if isinstance(x, _Encoded)))
    return count


def encoded_queue(encoder: Encoder) -> queue.Queue:
    """The encoder thread's outbox: one entry per encoder call, ENCODED_AHEAD_ROWS at most."""
    return queue.Queue(maxsize=max(2, -(-ENCODED_AHEAD_ROWS // encoder.batch_size)))


def _encode(encoder: Encoder, inbox: queue.Queue, outbox: queue.Queue, stop: threading.Event) -> None:
    """The encoder's own thread, so encoding overlaps the store writes of earlier batches.

    Batches already waiting are encoded in one call, up to the encoder's batch size: a run's
    checkpoints are often smaller than a GPU batch (64-sample grids), and each call pays a
    fixed cost and waits for its result. Nothing waits longer for it: with nothing queued,
    what has arrived is encoded at once. A call's items go to ``outbox`` as one list.
    """
    try:
        waiting: list = []
        while True:
            try:
                item = inbox.get(block=False) if waiting else inbox.get(timeout=0.1)
            except queue.Empty:
                if not waiting:
                    if stop.is_set():
                        return  # stopped: the producer's END may have gone to _drain
                    continue
                item = None
            if isinstance(item, Future) and not stop.is_set():
                item = item.result()  # a batch prepared in this process
            if item is not None and item is not END:
                waiting.append(item)
            rows = sum(len(x.pixels) for x in waiting if isinstance(x, PreparedBatch))
            if item is None or item is END or rows >= encoder.batch_size or stop.is_set():
                if waiting:
                    outbox.put(_encoded_together(encoder, waiting, stop))
                waiting = []
            if item is END:
                return
    except BaseException as exc:  # handed to the consumer, which re-raises it
        outbox.put(Failed(exc))
    finally:
        outbox.put(END)


def _encoded_together(encoder: Encoder, items: list, stop: threading.Event) -> list:
    """``items`` in their order, each batch replaced by its vectors (one encoder call)."""
    batches = [x for x in items if isinstance(x, PreparedBatch)]
    if not batches or stop.is_set():
        return items
    vectors = encoder.encode_pixels([b.pixels for b in batches])
    vectors = iter(np.split(vectors, np.cumsum([len(b.pixels) for b in batches])[:-1]))
    for batch in batches:
        if batch.release:
            batch.release()  # the pixels were a worker's slot: it may fill it again
    return [_Encoded(next(vectors), x.columns) if isinstance(x, PreparedBatch) else x for x in items]


def _drain(queues: list[queue.Queue], threads: list[threading.Thread]) -> None:
    """Unblock and finish the worker threads after the consumer stopped early. A thread still
    busy after a second is in a call that cannot be cut short (a --sampler's: a stop waited
    for it in silence, 17 s for a slow one): said once, with how to stop at once."""
    said, start = False, time.monotonic()
    while any(t.is_alive() for t in threads) or any(not q.empty() for q in queues):
        if not said and time.monotonic() - start > 1.0:
            said = True
            log.warning("stopping: waiting for the call under way to end (a --sampler's, an encoder's); Ctrl-C again "
                        "stops at once, and the same command resumes")
        for q in queues:
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


def _options_misfit(checkpoint: Checkpoint, misfits: list[SkippedFile]) -> EvowatchError:
    """No file of an ingest's checkpoints fits the grid the options force: a wrong --grid printed
    a line per file of every checkpoint (576), exited 0 and left a store of 0 rows (round AJ)."""
    first = misfits[0]
    what = "its file does not fit" if len(misfits) == 1 else f"none of its {len(misfits):,} files fits"
    return EvowatchError(f"{checkpoint.source}: {what} the grid the options force ({first.path}: "
                         f"{first.reason.rstrip('.')}); nothing stored")


def _say_misfits(checkpoint: Checkpoint, misfits: list[SkippedFile]) -> None:
    """A checkpoint's files that do not fit the forced grid, in one line past three."""
    if len(misfits) <= 3:
        for skipped in misfits:
            log.warning("skipped %s: %s", skipped.path, skipped.reason)
    else:
        log.warning("skipped %s of %s: %s (%s, ...)", counted(len(misfits), "file"), checkpoint.source,
                    misfits[0].reason, ", ".join(s.path for s in misfits[:2]))


class _NotStored(Exception):
    """Rolls back a checkpoint deleted while it was read, or whose sampler failed."""


def deleted(checkpoint: Checkpoint) -> bool:
    """Whether none of a checkpoint's files is left (a rotated-out checkpoint folder)."""
    return not any(os.path.lexists(path) for path in checkpoint.files)


def say_deleted_while_read(checkpoint: Checkpoint) -> None:
    """One line for a checkpoint rotated out while it was hashed or decoded: nothing is stored."""
    log.info("%s was deleted while being read; nothing stored for it", checkpoint.source)


def _committed(waiting: list[IngestResult]) -> Iterator[IngestResult]:
    """Report the checkpoints a commit just made visible, then hand their memory back."""
    heap.release_freed_memory()
    yield from waiting
    waiting.clear()


def _current_samples(store: StoreWriter, source: str) -> int:
    """The samples of a checkpoint's current stored version: a new version of it whose every
    file is skipped keeps them current (a grid rewritten in place by a trainer killed or out of
    disk halfway superseded its 64 good rows with none, for good; round AY-4), unless one was
    read and refused for its NaN (a diverged generator's: the map showed the healthy earlier
    samples; round AZ)."""
    table = store.checkpoints()
    current = (table["source"] == source) & ~table["superseded"].astype(bool)
    return int((table["row_stop"] - table["row_start"])[current].sum())


def _consume(store: StoreWriter, out: queue.Queue, n_jobs: int,
             on_rows: Callable[[int], None] | None) -> Iterator[IngestResult]:
    """Write encoded batches into checkpoint transactions; yield each checkpoint once committed.

    While more checkpoints of this ingest are to come (a backlog, e.g. the initial scan of a
    long run), complete ones are committed in groups of up to GROUP_ROWS rows, none waiting
    more than GROUP_SECONDS: fewer, larger writes. The last one is committed at once.
    ``out`` holds items or lists of items (an encoder call's).
    """
    tx_context = tx = None
    current: Start | None = None
    rows = done = unlabelled = 0
    retry = diverged = False
    misfits: list[SkippedFile] = []  # the checkpoint's files that do not fit a forced grid
    fitted = False  # a generated checkpoint of this ingest had samples
    unfit: list[tuple[Checkpoint, list[SkippedFile]]] = []  # no file of them fits, nothing having fitted before
    first_unlabelled = None
    waiting: list[IngestResult] = []
    deadline = 0.0
    received: collections.deque = collections.deque()

    def not_stored(result: IngestResult | None) -> Iterator[IngestResult]:
        """Drop this checkpoint's transaction (its result waits with the others); yield those committed."""
        nonlocal tx_context, tx
        if result is not None:
            waiting.append(result)
        tx_context.__exit__(_NotStored, _NotStored(), None)  # commits those waiting
        tx_context = tx = None
        yield from _committed(waiting)

    try:
        while True:
            if not received:
                try:
                    got = out.get(timeout=max(0.0, deadline - time.monotonic()) if store.has_pending else None)
                except queue.Empty:  # the group waited long enough
                    store.commit_pending()
                    yield from _committed(waiting)
                    continue
                received.extend(got if isinstance(got, list) else (got,))
            item = received.popleft()
            if item is END:
                break
            if isinstance(item, Failed):
                raise item.error
            if isinstance(item, Start):
                current, rows, retry, diverged, unlabelled, first_unlabelled = item, 0, False, False, 0, None
                kind = item.checkpoint.kind
                tx_context = store.checkpoint(item.checkpoint.step, item.checkpoint.source, item.content_hash, kind)
                tx = tx_context.__enter__()
            elif isinstance(item, SkippedFile):
                if item.misfit:  # said at the end, in one line: every file may misfit alike
                    misfits.append(item)
                elif item.reason != VANISHED:  # said at the end: the whole checkpoint may be gone
                    log.warning("skipped %s: %s", item.path, item.reason)
                tx.skip(item.path, item.reason)
                retry, diverged = retry or item.retry, diverged or item.diverged
            elif isinstance(item, _Encoded):
                c = item.columns
                tx.add(item.vectors, c.instances, c.labels, c.thumbnails, c.paths, c.latents)
                rows += len(item.vectors)
                if missing := [path for path, label in zip(c.paths, c.labels) if label is None]:
                    unlabelled, first_unlabelled = unlabelled + len(missing), first_unlabelled or missing[0]
                if on_rows:
                    on_rows(len(item.vectors))
            elif isinstance(item, Done):
                done += 1
                gone = [path for path, reason in tx.skipped if reason == VANISHED]
                rotated = bool(gone) and deleted(item.checkpoint)  # while read (rotation): its rows would be a part of it
                if rotated or retry:  # nothing stored for it
                    if rotated:
                        say_deleted_while_read(item.checkpoint)
                    # a failed sampler: the next run samples it again
                    yield from not_stored(None if rotated else
                                          IngestResult(item.checkpoint, 0, len(tx.skipped), stored=False))
                    continue
                if len(gone) > 3:  # a folder emptied while read: one line, not one per file
                    log.warning("%s: %s vanished before they could be read (%s, ...): stored without them",
                                item.checkpoint.source, counted(len(gone), "file"), ", ".join(gone[:2]))
                for path in gone if len(gone) <= 3 else ():
                    log.warning("skipped %s: %s", path, VANISHED)
                if misfits:
                    if (rows == 0 and len(misfits) == len(tx.skipped) and not fitted
                            and not store.holds_generated(with_rows=True)):
                        # none fitted yet: an error once none of this ingest does; a later one may (a
                        # progressive GAN's tiles grow): not stored, read again by the next pass
                        unfit.append((item.checkpoint, misfits))
                        misfits = []
                        yield from not_stored(None)
                        continue
                    _say_misfits(item.checkpoint, misfits)
                    misfits = []
                if rows == 0 and tx.skipped and not diverged and (
                        kept := _current_samples(store, item.checkpoint.source)):
                    yield from not_stored(IngestResult(item.checkpoint, 0, len(tx.skipped), stored=False, kept=kept))
                    continue
                fitted = fitted or (rows > 0 and item.checkpoint.kind == "generated")
                if not store.has_pending:
                    deadline = time.monotonic() + GROUP_SECONDS
                tx.defer = done < n_jobs and store.pending_rows + tx.n_rows < GROUP_ROWS
                tx_context.__exit__(None, None, None)
                waiting.append(IngestResult(item.checkpoint, rows, len(tx.skipped), unlabelled=unlabelled,
                                            first_unlabelled=first_unlabelled))
                tx_context = tx = None
                if not store.has_pending:
                    yield from _committed(waiting)
        store.commit_pending()
        yield from waiting
        if unfit and not fitted:
            raise _options_misfit(*unfit[0])
        if unfit:
            log.warning("%s: none of %s fits the grid the options force, where later ones fit (%s): not stored, "
                        "read again by the next watch", listed([c.source for c, _ in unfit]),
                        "its files" if len(unfit) == 1 else "their files", unfit[0][1][0].reason.rstrip("."))
    except BaseException as exc:
        if tx_context is not None:
            tx_context.__exit__(type(exc), exc, exc.__traceback__)  # commits waiting checkpoints, drops this one
            log.debug("rolled back %s", current.checkpoint.source if current else "?")
        else:
            store.commit_pending()  # complete checkpoints are kept
        raise
