"""Ingest: decode, encode and store writes overlap in three stages joined by bounded queues.

One producer thread walks the checkpoints' samples in order and hands fixed-size batches to
a thread pool (Pillow and numpy release the GIL) for preprocessing and thumbnails; an
encoder thread encodes batch after batch (torch releases the GIL); the calling thread
writes them into the checkpoint's store transaction, committing each checkpoint as its
last batch lands. Queues are bounded, so
memory stays at a few batches whatever the size of the run.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from engine.decode import iter_samples
from engine.discovery import DiscoveryOptions
from engine.encoders import Encoder
from engine.records import Checkpoint, Sample, SkippedFile
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)

SampleSource = Callable[[Checkpoint, DiscoveryOptions], Iterable[Sample | SkippedFile]]


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """Model inputs and store columns of up to ``batch_size`` samples of one checkpoint."""

    inputs: np.ndarray
    thumbnails: np.ndarray
    instances: list[int]
    labels: list[str | None]
    paths: list[str]
    latents: np.ndarray | None


@dataclass(frozen=True, slots=True)
class IngestResult:
    checkpoint: Checkpoint
    rows: int
    skipped: int


def make_thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-cropped square RGB thumbnail, so the store stays useful after the files are gone."""
    return np.asarray(ImageOps.fit(Image.fromarray(image), (size, size), Image.Resampling.BILINEAR))


def _prepare(samples: list[Sample], encoder: Encoder, thumbnail_size: int) -> PreparedBatch:
    inputs = np.stack([encoder.preprocess(s.image) for s in samples])
    thumbnails = np.stack([make_thumbnail(s.image, thumbnail_size) for s in samples])
    latents = [s.latent for s in samples]
    has_latents = all(x is not None for x in latents) and len({np.shape(x) for x in latents}) == 1
    return PreparedBatch(
        inputs=inputs,
        thumbnails=thumbnails,
        instances=[s.instance for s in samples],
        labels=[s.label for s in samples],
        paths=[s.path for s in samples],
        latents=np.stack(latents).reshape(len(samples), -1) if has_latents else None,
    )


# Largest group of backlogged checkpoints committed together.
GROUP_ROWS = 1024

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
class _Encoded:
    batch: PreparedBatch
    vectors: np.ndarray


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


def _produce(jobs: Iterable[tuple[Checkpoint, str]], options: DiscoveryOptions, encoder: Encoder,
             thumbnail_size: int, pool: ThreadPoolExecutor, out: queue.Queue, stop: threading.Event,
             samples: SampleSource = iter_samples) -> None:
    try:
        for checkpoint, content_hash in jobs:
            if stop.is_set():
                break
            out.put(_Start(checkpoint, content_hash))
            batch: list[Sample] = []
            for item in samples(checkpoint, options):
                if stop.is_set():
                    break
                if isinstance(item, SkippedFile):
                    out.put(item)
                    continue
                batch.append(item)
                if len(batch) == encoder.batch_size:
                    out.put(pool.submit(_prepare, batch, encoder, thumbnail_size))
                    batch = []
            if batch:
                out.put(pool.submit(_prepare, batch, encoder, thumbnail_size))
            out.put(_Done(checkpoint))
    except BaseException as exc:  # handed to the consumer, which re-raises it
        out.put(_Failed(exc))
    finally:
        out.put(_END)


def ingest(store: StoreWriter, jobs: Iterable[tuple[Checkpoint, str]], encoder: Encoder,
           options: DiscoveryOptions, workers: int = 2, prefetch: int = 4,
           on_rows: Callable[[int], None] | None = None,
           samples: SampleSource = iter_samples) -> Iterator[IngestResult]:
    """Ingest ``(checkpoint, content_hash)`` jobs in order, yielding each one once committed.

    ``samples`` turns a checkpoint into samples: the files' decoder by default, a
    ``--sampler``'s :meth:`engine.sampler.Sampler.iter_samples` for weight-only checkpoints.

    A checkpoint whose decoding or encoding fails is rolled back as a whole; the error
    propagates and everything committed before it stays.
    """
    thumbnail_size = int(store.attrs["thumbnail_size"])
    decoded: queue.Queue = queue.Queue(maxsize=prefetch)
    encoded: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="evowatch-prep") as pool:
        threads = [
            threading.Thread(target=_produce, name="evowatch-decode", daemon=True,
                             args=(jobs, options, encoder, thumbnail_size, pool, decoded, stop, samples)),
            threading.Thread(target=_encode, name="evowatch-encode", daemon=True,
                             args=(encoder, decoded, encoded, stop)),
        ]
        for thread in threads:
            thread.start()
        try:
            yield from _consume(store, encoded, on_rows)
        finally:
            stop.set()
            _drain([decoded, encoded], threads)


def _encode(encoder: Encoder, inbox: queue.Queue, outbox: queue.Queue, stop: threading.Event) -> None:
    """The encoder's own thread, so encoding overlaps the store writes of the previous batch."""
    try:
        while (item := inbox.get()) is not _END:
            if isinstance(item, Future) and not stop.is_set():
                batch = item.result()
                item = _Encoded(batch, encoder.encode(batch.inputs))
            outbox.put(item)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        outbox.put(_Failed(exc))
    finally:
        outbox.put(_END)


def _drain(queues: list[queue.Queue], threads: list[threading.Thread]) -> None:
    """Unblock and finish the worker threads after the consumer stopped early."""
    while any(t.is_alive() for t in threads) or any(not q.empty() for q in queues):
        for q in queues:
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


def _consume(store: StoreWriter, out: queue.Queue, on_rows: Callable[[int], None] | None) -> Iterator[IngestResult]:
    """Write encoded batches into checkpoint transactions; yield each checkpoint once committed.

    While more work is already queued (a backlog, e.g. the initial scan of a long run),
    complete checkpoints are committed in groups of up to GROUP_ROWS rows: fewer, larger
    writes. A live checkpoint arriving alone is committed at once.
    """
    tx_context = tx = None
    current: _Start | None = None
    rows = 0
    waiting: list[IngestResult] = []
    try:
        while (item := out.get()) is not _END:
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
                batch, vectors = item.batch, item.vectors
                tx.add(vectors, batch.instances, batch.labels, batch.thumbnails, batch.paths, batch.latents)
                rows += len(vectors)
                if on_rows:
                    on_rows(len(vectors))
            elif isinstance(item, _Done):
                tx.defer = not out.empty() and store.pending_rows + tx.n_rows < GROUP_ROWS
                tx_context.__exit__(None, None, None)
                waiting.append(IngestResult(item.checkpoint, rows, len(tx.skipped)))
                tx_context = tx = None
                if not store.has_pending:
                    yield from waiting
                    waiting = []
        store.commit_pending()
        yield from waiting
    except BaseException as exc:
        if tx_context is not None:
            tx_context.__exit__(type(exc), exc, exc.__traceback__)  # commits waiting checkpoints, drops this one
            log.debug("rolled back %s", current.checkpoint.source if current else "?")
        else:
            store.commit_pending()  # complete checkpoints are kept
        raise
