"""Ingest: decode, encode and store writes overlap in stages joined by bounded queues.

Decoding sample files (PNG decode, grid split, preprocessing, thumbnails) is mostly
per-sample Python under the GIL, so it runs in ``workers`` forked worker processes, each
taking every ``workers``-th checkpoint (or part of a large folder of single images: see
``_split``) and preparing batches in a small thread pool; a
receiving thread puts their batches back in job order (the pixels come through shared
memory: :mod:`engine.slots`). A ``--sampler`` (a model living in this process)
produces in a thread instead. An encoder thread encodes batch after batch (torch releases
the GIL); the calling thread writes them into the checkpoint's store transaction. Every
queue and pipe is bounded, so memory stays at a few batches whatever the size of the run
(an encoded batch keeps its vectors and store columns, not its model pixels).
"""
from __future__ import annotations

import collections
import gc
import logging
import multiprocessing
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from engine import heap
from engine.decode import iter_samples
from engine.discovery import TENSOR_EXTENSIONS, DiscoveryOptions
from engine.encoders import Encoder, Preprocessor
from engine.errors import EvowatchError
from engine.records import Checkpoint, Sample, SkippedFile
from engine.slots import SlotRef, SlotRing
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)

SampleSource = Callable[[Checkpoint, DiscoveryOptions], Iterable[Sample | SkippedFile]]

#: Preparation threads in each decode process and beside a sampler (Pillow releases the GIL).
PROCESS_THREADS = 2
#: A folder of single images at least twice this size (a reference set, a large sample
#: folder) is decoded in parts of about this many files, shared among the decode processes.
PART_FILES = 256
PIPE_BYTES = 1 << 20
# Forked, as torch's DataLoader workers are: a forkserver or spawn child would re-import the
# user's __main__ (seconds per ingest for the console script, an error for an unguarded
# script). Safe here because the child only decodes files with Pillow and numpy: it never
# touches the parent's zarr, torch or CUDA threads, and logging's locks are re-created at fork.
_FORK = multiprocessing.get_context("fork")
heap.bound_arenas()  # at import: before the ingest's threads exist, so that all of them share


def default_workers() -> int:
    """One decode process per core, at most 8: measured faster than leaving cores to the
    encoder and store threads, which mostly wait on the GIL or the disk (docs/ingest.md)."""
    return min(8, os.cpu_count() or 2)


@dataclass(frozen=True, slots=True)
class StoreColumns:
    """What the store keeps of a batch of samples of one checkpoint, beside their vectors."""

    thumbnails: np.ndarray
    instances: list[int]
    labels: list[str | None]
    paths: list[str]
    latents: np.ndarray | None


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """Model pixels (uint8, the preprocessor's first half) and store columns of up to
    ``batch_size`` samples of one checkpoint. ``release`` is called once the pixels have
    been used when they are a decode worker's shared slot (:mod:`engine.slots`)."""

    pixels: np.ndarray
    columns: StoreColumns
    release: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class _InSlot:
    """A decode worker's batch on its way to the parent: the pixels are in a shared slot."""

    ref: SlotRef
    columns: StoreColumns


@dataclass(frozen=True, slots=True)
class IngestResult:
    checkpoint: Checkpoint
    rows: int
    skipped: int


def make_thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-cropped square RGB thumbnail, so the store stays useful after the files are gone."""
    return np.asarray(ImageOps.fit(Image.fromarray(image), (size, size), Image.Resampling.BILINEAR))


def _prepare(samples: list[Sample], preprocessor: Preprocessor, thumbnail_size: int) -> PreparedBatch:
    pixels = np.stack([preprocessor.pixels(s.image) for s in samples])
    thumbnails = np.stack([make_thumbnail(s.image, thumbnail_size) for s in samples])
    latents = [s.latent for s in samples]
    has_latents = all(x is not None for x in latents) and len({np.shape(x) for x in latents}) == 1
    return PreparedBatch(pixels, StoreColumns(
        thumbnails=thumbnails,
        instances=[s.instance for s in samples],
        labels=[s.label for s in samples],
        paths=[s.path for s in samples],
        latents=np.stack(latents).reshape(len(samples), -1) if has_latents else None,
    ))


# A backlog of complete checkpoints is committed in groups: at most GROUP_ROWS rows, and no
# checkpoint waits more than GROUP_SECONDS for its commit.
GROUP_ROWS = 1024
GROUP_SECONDS = 1.0

# Messages from the producer thread to the encoding thread.
_END = object()


@dataclass(frozen=True, slots=True)
class _Start:
    checkpoint: Checkpoint
    content_hash: str


@dataclass(frozen=True, slots=True)
class _Done:
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class _Part:
    """Files [lo, hi) of a job's checkpoint, decoded by one process."""

    lo: int
    hi: int
    first: bool
    last: bool


@dataclass(frozen=True, slots=True)
class _PartDone:
    """The end of a part that is not its checkpoint's last (which ends with a Done)."""


@dataclass(frozen=True, slots=True)
class _Encoded:
    """A batch's vectors and store columns; its model pixels, the bulk of it, are dropped."""

    vectors: np.ndarray
    columns: StoreColumns


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


@dataclass(frozen=True, slots=True)
class _Preparation:
    """How a producer turns samples into batches; picklable, so a decode process gets it too."""

    options: DiscoveryOptions
    preprocessor: Preprocessor
    batch_size: int
    thumbnail_size: int


def _items(jobs: Iterable[tuple[Checkpoint, str, _Part | None]], prep: _Preparation, pool: ThreadPoolExecutor,
           stop: threading.Event, samples: SampleSource = iter_samples) -> Iterator:
    """The producer's stream: a Start, skipped files and batches being prepared, a Done per
    job (for a job given in parts: the Start with its first, a PartDone after the others)."""
    for checkpoint, content_hash, part in jobs:
        if stop.is_set():
            return
        if part is None or part.first:
            yield _Start(checkpoint, content_hash)
        batch: list[Sample] = []
        found = samples(checkpoint, prep.options) if part is None else \
            iter_samples(checkpoint, prep.options, files=checkpoint.files[part.lo:part.hi])
        for item in found:
            if stop.is_set():
                return
            if isinstance(item, SkippedFile):
                yield item
                continue
            batch.append(item)
            if len(batch) == prep.batch_size:
                yield pool.submit(_prepare, batch, prep.preprocessor, prep.thumbnail_size)
                batch = []
        if batch:
            yield pool.submit(_prepare, batch, prep.preprocessor, prep.thumbnail_size)
        yield _Done(checkpoint) if part is None or part.last else _PartDone()


def _produce(jobs: Iterable[tuple[Checkpoint, str]], prep: _Preparation, pool: ThreadPoolExecutor,
             out: queue.Queue, stop: threading.Event, samples: SampleSource) -> None:
    """The producer thread (a sampler, or ``workers=0``): batches go on as futures, resolved by
    the encoder thread."""
    try:
        for item in _items(((c, h, None) for c, h in jobs), prep, pool, stop, samples):
            out.put(item)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        out.put(_Failed(exc))
    finally:
        out.put(_END)


def _decode_process(inbox, prep: _Preparation, conn, ring: SlotRing, inherited: list[int]) -> None:
    """A decode worker process: jobs read one at a time from ``inbox``, their items and
    resolved batches sent back over ``conn`` in order, each batch's pixels through ``ring``.

    A few batches are prepared ahead (the thread pool stays busy) and the pipe blocks when
    the parent is behind, so memory stays bounded. ``inherited`` are the parent's pipe ends
    the fork copied: closed first, so that once the parent is gone a send fails and a
    receive sees the end instead of blocking forever.
    """
    for fd in inherited:
        os.close(fd)
    gc.freeze()  # the parent's objects stay shared pages: this process's collections never touch them
    ahead: collections.deque = collections.deque()

    def send(item) -> None:
        if isinstance(item, Future):
            item = item.result()
        if isinstance(item, PreparedBatch) and (ref := ring.put(item.pixels)) is not None:
            item = _InSlot(ref, item.columns)
        conn.send(item)

    try:
        with ThreadPoolExecutor(PROCESS_THREADS, thread_name_prefix="evowatch-prep") as pool:
            for item in _items(_received(inbox), prep, pool, threading.Event()):
                ahead.append(item)
                while len(ahead) > PROCESS_THREADS + 1:
                    send(ahead.popleft())
            while ahead:
                send(ahead.popleft())
    except (KeyboardInterrupt, BrokenPipeError, EOFError):
        return  # Ctrl-C, or the parent stopped reading or sending: it is stopping too
    except BaseException as exc:  # the parent re-raises it; a plain exception always pickles
        conn.send(_Failed(exc if _picklable(exc) else EvowatchError(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def _received(inbox) -> Iterator[tuple[Checkpoint, str, _Part]]:
    """A worker's parts of jobs until an empty message: each part is a pickled
    :class:`_Part`, after its job's pickle when the worker has not had that job yet."""
    job = None
    while message := inbox.recv_bytes():
        item = pickle.loads(message)
        if isinstance(item, _Part):
            yield (*job, item)
        else:
            job = item


def _split(jobs: list[tuple[Checkpoint, str]], options: DiscoveryOptions) -> list[tuple[int, _Part]]:
    """``(job index, part)`` in order: one part per checkpoint, or parts of about PART_FILES
    files for a large folder of single images (grids and tensors number their samples
    across files, so they stay whole)."""
    parts = []
    for j, (checkpoint, _) in enumerate(jobs):
        files = checkpoint.files
        forced = checkpoint.kind == "generated" and (options.grid or options.tile_size)
        if len(files) < 2 * PART_FILES or forced or any(f.suffix.lower() in TENSOR_EXTENSIONS for f in files):
            parts.append((j, _Part(0, len(files), True, True)))
            continue
        k = len(files) // PART_FILES
        bounds = [round(i * len(files) / k) for i in range(k + 1)]
        parts += [(j, _Part(bounds[i], bounds[i + 1], i == 0, i == k - 1)) for i in range(k)]
    return parts


class _PickledJobs:
    """The jobs and their parts pickled into one buffer before the workers are forked, fed
    to them from it.

    A worker that walked an inherited list of jobs touched every job's reference count,
    which copied the pages they sit on into the worker (~1 kB per checkpoint per worker,
    far more for a folder of single-image files); pickling them after the fork did the same
    in the parent. Read from one buffer, the pages stay shared.
    """

    def __init__(self, jobs: list[tuple[Checkpoint, str]], parts: list[tuple[int, _Part]]) -> None:
        pickles = [pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL) for x in jobs + [p for _, p in parts]]
        self.ends = np.cumsum([0] + [len(p) for p in pickles], dtype=np.int64).tolist()
        self.blob = b"".join(pickles)
        self.parts = [(j, len(jobs) + p) for p, (j, _) in enumerate(parts)]  # (job, its part's pickle)

    def feed(self, outboxes: list) -> None:
        """Send part i to worker i mod n (its job first, when new to that worker), then an
        end to each; a worker gone ends the feeding (its failure reaches the consumer
        through its output pipe)."""
        view = memoryview(self.blob)
        sent_job = [-1] * len(outboxes)
        try:
            for i, (job, part) in enumerate(self.parts):
                w = i % len(outboxes)
                for k in ([job] if sent_job[w] != job else []) + [part]:
                    outboxes[w].send_bytes(view[self.ends[k]:self.ends[k + 1]])
                sent_job[w] = job
            for box in outboxes:
                box.send_bytes(b"")
        except (OSError, ValueError):  # BrokenPipeError, or a pipe closed by ingest()'s cleanup
            pass
        finally:
            view.release()
            for box in outboxes:
                box.close()


def _picklable(exc: BaseException) -> bool:
    try:
        multiprocessing.reduction.ForkingPickler.dumps(exc)
        return True
    except Exception:
        return False


def _receive(jobs: list[tuple[Checkpoint, str]], parts: list[tuple[int, _Part]], conns: list, workers: list,
             rings: list[SlotRing], out: queue.Queue) -> None:
    """Merge the decode processes' streams back into job order (part i comes from process i mod n)."""
    try:
        for i, (j, _) in enumerate(parts):
            conn, worker, ring = conns[i % len(conns)], workers[i % len(conns)], rings[i % len(conns)]
            while True:
                try:
                    item = conn.recv()
                except EOFError:
                    worker.join(timeout=5)
                    raise EvowatchError(f"a decode worker process exited (code {worker.exitcode}); checkpoints from "
                                        f"{jobs[j][0].source} on are not stored yet: run again to resume") from None
                if isinstance(item, _PartDone):
                    break
                if isinstance(item, _InSlot):
                    item = PreparedBatch(ring.view(item.ref), item.columns, ring.release)
                out.put(item)
                if isinstance(item, _Failed):
                    return
                if isinstance(item, _Done):
                    break
    except BaseException as exc:
        out.put(_Failed(exc))
    finally:
        out.put(_END)


def _widen(conn) -> None:
    """A 1 MB pipe instead of 64 kB: a batch arrives in a few reads, each of which must retake
    the GIL from the encoder and store threads (many small reads stalled the receiver)."""
    try:
        import fcntl
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError) as exc:  # not Linux, or over pipe-max-size: only slower
        log.debug("pipe left at its default size: %s", exc)


def _start_decode_processes(jobs: list[tuple[Checkpoint, str]], prep: _Preparation, n: int,
                            out: queue.Queue) -> tuple[threading.Thread, list]:
    conns, outboxes, workers, rings = [], [], [], []
    parts = _split(jobs, prep.options)
    n = min(n, len(parts))
    pickled = _PickledJobs(jobs, parts)  # before the fork: see _PickledJobs
    slot_bytes = prep.batch_size * 3 * prep.preprocessor.size ** 2
    gc.freeze()  # unfrozen by ingest() once the workers are gone: no collection copies the shared pages
    for k in range(n):
        receiver, sender = _FORK.Pipe(duplex=False)
        inbox, outbox = _FORK.Pipe(duplex=False)
        ring = SlotRing(slot_bytes, _FORK)
        _widen(receiver)
        inherited = [c.fileno() for c in conns + outboxes] + [receiver.fileno(), outbox.fileno()]
        inherited += [fd for r in rings + [ring] for fd in r.parent_fds]
        worker = _FORK.Process(target=_decode_process, args=(inbox, prep, sender, ring, inherited),
                               name=f"evowatch-decode-{k}", daemon=True)
        worker.start()
        sender.close()  # the child holds the only sending end: its exit means EOF here
        inbox.close()
        ring.after_fork_in_parent()
        conns.append(receiver)
        outboxes.append(outbox)
        workers.append(worker)
        rings.append(ring)
    threading.Thread(target=pickled.feed, name="evowatch-feed", daemon=True, args=(outboxes,)).start()
    thread = threading.Thread(target=_receive, name="evowatch-receive", daemon=True,
                              args=(jobs, parts, conns, workers, rings, out))
    thread.start()
    return thread, workers


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
    prep = _Preparation(options, encoder.preprocessor, encoder.batch_size, int(store.attrs["thumbnail_size"]))
    workers = default_workers() if workers is None else workers
    processes = workers if samples is iter_samples and jobs else 0  # at most one per part: _start_decode_processes
    # Batches from decode processes are views of their shared slots, which bound them: a
    # deeper queue lets the encoder take several small checkpoints at once.
    decoded: queue.Queue = queue.Queue(maxsize=prefetch * (4 if processes else 1))
    encoded: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    children: list = []
    with ThreadPoolExecutor(PROCESS_THREADS, thread_name_prefix="evowatch-prep") as pool:
        if processes:
            producer, children = _start_decode_processes(jobs, prep, processes, decoded)
        else:
            producer = threading.Thread(target=_produce, name="evowatch-decode", daemon=True,
                                        args=(jobs, prep, pool, decoded, stop, samples))
            producer.start()
        threads = [producer, threading.Thread(target=_encode, name="evowatch-encode", daemon=True,
                                              args=(encoder, decoded, encoded, stop))]
        threads[1].start()
        try:
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


def _encode(encoder: Encoder, inbox: queue.Queue, outbox: queue.Queue, stop: threading.Event) -> None:
    """The encoder's own thread, so encoding overlaps the store writes of earlier batches.

    Batches already waiting are encoded in one call, up to the encoder's batch size: a run's
    checkpoints are often smaller than a GPU batch (64-sample grids), and each call pays a
    fixed cost and waits for its result. Nothing waits longer for it: with nothing queued,
    what has arrived is encoded at once.
    """
    try:
        waiting: list = []
        while True:
            try:
                item = inbox.get(block=not waiting)
            except queue.Empty:
                item = None
            if isinstance(item, Future) and not stop.is_set():
                item = item.result()  # a batch prepared in this process
            if item is not None and item is not _END:
                waiting.append(item)
            rows = sum(len(x.pixels) for x in waiting if isinstance(x, PreparedBatch))
            if item is None or item is _END or rows >= encoder.batch_size or stop.is_set():
                for out in _encoded_together(encoder, waiting, stop):
                    outbox.put(out)
                waiting = []
            if item is _END:
                return
    except BaseException as exc:  # handed to the consumer, which re-raises it
        outbox.put(_Failed(exc))
    finally:
        outbox.put(_END)


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
    """Unblock and finish the worker threads after the consumer stopped early."""
    while any(t.is_alive() for t in threads) or any(not q.empty() for q in queues):
        for q in queues:
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


def _committed(waiting: list[IngestResult]) -> Iterator[IngestResult]:
    """Report the checkpoints a commit just made visible, then hand their memory back."""
    heap.release_freed_memory()
    yield from waiting
    waiting.clear()


def _consume(store: StoreWriter, out: queue.Queue, n_jobs: int,
             on_rows: Callable[[int], None] | None) -> Iterator[IngestResult]:
    """Write encoded batches into checkpoint transactions; yield each checkpoint once committed.

    While more checkpoints of this ingest are to come (a backlog, e.g. the initial scan of a
    long run), complete ones are committed in groups of up to GROUP_ROWS rows, none waiting
    more than GROUP_SECONDS: fewer, larger writes. The last one is committed at once.
    """
    tx_context = tx = None
    current: _Start | None = None
    rows = done = 0
    waiting: list[IngestResult] = []
    deadline = 0.0
    try:
        while True:
            try:
                item = out.get(timeout=max(0.0, deadline - time.monotonic()) if store.has_pending else None)
            except queue.Empty:  # the group waited long enough
                store.commit_pending()
                yield from _committed(waiting)
                continue
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _Start):
                current, rows = item, 0
                kind = item.checkpoint.kind
                tx_context = store.checkpoint(item.checkpoint.step, item.checkpoint.source, item.content_hash, kind)
                tx = tx_context.__enter__()
            elif isinstance(item, SkippedFile):
                log.warning("skipped %s: %s", item.path, item.reason)
                tx.skip(item.path, item.reason)
            elif isinstance(item, _Encoded):
                c = item.columns
                tx.add(item.vectors, c.instances, c.labels, c.thumbnails, c.paths, c.latents)
                rows += len(item.vectors)
                if on_rows:
                    on_rows(len(item.vectors))
            elif isinstance(item, _Done):
                done += 1
                if not store.has_pending:
                    deadline = time.monotonic() + GROUP_SECONDS
                tx.defer = done < n_jobs and store.pending_rows + tx.n_rows < GROUP_ROWS
                tx_context.__exit__(None, None, None)
                waiting.append(IngestResult(item.checkpoint, rows, len(tx.skipped)))
                tx_context = tx = None
                if not store.has_pending:
                    yield from _committed(waiting)
        store.commit_pending()
        yield from waiting
    except BaseException as exc:
        if tx_context is not None:
            tx_context.__exit__(type(exc), exc, exc.__traceback__)  # commits waiting checkpoints, drops this one
            log.debug("rolled back %s", current.checkpoint.source if current else "?")
        else:
            store.commit_pending()  # complete checkpoints are kept
        raise
