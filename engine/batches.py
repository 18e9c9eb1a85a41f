"""What flows between the ingest's stages, and how a producer makes it.

A producer (a decode worker process, or a thread beside a ``--sampler``) turns each job,
a checkpoint or a part of one, into a stream of messages: a :class:`Start`, skipped files,
batches (:class:`PreparedBatch`: model pixels and the store's columns) and a
:class:`Done`.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from engine.decode.samples import iter_samples
from engine.discovery.options import DiscoveryOptions
from engine.encoders import Preprocessor
from engine.records import Checkpoint, Sample, SkippedFile

SampleSource = Callable[[Checkpoint, DiscoveryOptions], Iterable[Sample | SkippedFile]]

#: Preparation threads in each decode process and beside a sampler (Pillow releases the GIL).
PROCESS_THREADS = 2

#: A batch is cut once its decoded images hold this many bytes, even if short of the batch
#: size: a producer keeps a few batches in hand, and 1,024 decoded 1024 x 1024 samples are 3 GiB.
#: The encoder still takes the short batches that are waiting together (engine.pipeline._encode).
BATCH_IMAGE_BYTES = 64 << 20

#: The end of a stream.
END = object()


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


def make_thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-cropped square RGB thumbnail, so the store stays useful after the files are gone."""
    return np.asarray(ImageOps.fit(Image.fromarray(image), (size, size), Image.Resampling.BILINEAR))


def prepare_batch(samples: list[Sample], preprocessor: Preprocessor, thumbnail_size: int) -> PreparedBatch:
    """Decoded samples -> their model pixels and store columns (a worker's thread's work)."""
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


@dataclass(frozen=True, slots=True)
class Start:
    """A checkpoint's rows follow (the consumer opens its store transaction)."""

    checkpoint: Checkpoint
    content_hash: str


@dataclass(frozen=True, slots=True)
class Done:
    """A checkpoint's rows are all sent."""

    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class Part:
    """Files [lo, hi) of a job's checkpoint, decoded by one process."""

    lo: int
    hi: int
    first: bool
    last: bool


@dataclass(frozen=True, slots=True)
class PartDone:
    """The end of a part that is not its checkpoint's last (which ends with a Done)."""


@dataclass(frozen=True, slots=True)
class Failed:
    """A stage's exception, handed down the stream to the consumer, which re-raises it."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class Preparation:
    """How a producer turns samples into batches; picklable, so a decode process gets it too."""

    options: DiscoveryOptions
    preprocessor: Preprocessor
    batch_size: int
    thumbnail_size: int


def messages(jobs: Iterable[tuple[Checkpoint, str, Part | None]], prep: Preparation, pool: ThreadPoolExecutor,
             stop: threading.Event, samples: SampleSource = iter_samples) -> Iterator:
    """The producer's stream: a Start, skipped files and batches being prepared, a Done per
    job (for a job given in parts: the Start with its first, a PartDone after the others)."""
    for checkpoint, content_hash, part in jobs:
        if stop.is_set():
            return
        if part is None or part.first:
            yield Start(checkpoint, content_hash)
        batch: list[Sample] = []
        batch_bytes = 0
        found = samples(checkpoint, prep.options) if part is None else \
            iter_samples(checkpoint, prep.options, files=checkpoint.files[part.lo:part.hi], content_hash=content_hash)
        for item in found:
            if stop.is_set():
                return
            if isinstance(item, SkippedFile):
                yield item
                continue
            batch.append(item)
            batch_bytes += item.image.nbytes
            if len(batch) == prep.batch_size or batch_bytes >= BATCH_IMAGE_BYTES:
                yield pool.submit(prepare_batch, batch, prep.preprocessor, prep.thumbnail_size)
                batch, batch_bytes = [], 0
        if batch:
            yield pool.submit(prepare_batch, batch, prep.preprocessor, prep.thumbnail_size)
        yield Done(checkpoint) if part is None or part.last else PartDone()
