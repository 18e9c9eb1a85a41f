"""Decoding in forked worker processes.

Decoding sample files (PNG decode, grid split, preprocessing, thumbnails) is mostly
per-sample Python under the GIL, so it runs in worker processes, each taking every n-th
job: a checkpoint, or a part of a large folder of single images (:func:`split_parts`).
Jobs reach the workers from one buffer pickled before the fork, each worker prepares
batches in a small thread pool and writes their pixels into shared slots
(:mod:`engine.slots`), and a receiving thread puts the streams back in job order.
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
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from engine.batches import (END, PROCESS_THREADS, Done, Failed, Part, PartDone, PreparedBatch, Preparation,
                            StoreColumns, messages)
from engine.discovery.options import TENSOR_EXTENSIONS, DiscoveryOptions
from engine.errors import EvowatchError, sendable
from engine.records import Checkpoint
from engine.slots import SlotRef, SlotRing

log = logging.getLogger(__name__)

#: A folder of single images at least twice this size (a reference set, a large sample
#: folder) is decoded in parts of about this many files, shared among the decode processes.
PART_FILES = 256
PIPE_BYTES = 1 << 20
# Forked, as torch's DataLoader workers are: a forkserver or spawn child would re-import the
# user's __main__ (seconds per ingest for the console script, an error for an unguarded
# script). Safe here because the child only decodes files with Pillow and numpy: it never
# touches the parent's zarr, torch or CUDA threads, and logging's locks are re-created at fork.
_FORK = multiprocessing.get_context("fork")


@dataclass(frozen=True, slots=True)
class _InSlot:
    """A decode worker's batch on its way to the parent: the pixels are in a shared slot."""

    ref: SlotRef
    columns: StoreColumns


def _decode_process(inbox, prep: Preparation, conn, ring: SlotRing, inherited: list[int]) -> None:
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
            for item in messages(_received(inbox), prep, pool, threading.Event()):
                ahead.append(item)
                while len(ahead) > PROCESS_THREADS + 1:
                    send(ahead.popleft())
            while ahead:
                send(ahead.popleft())
    except (KeyboardInterrupt, BrokenPipeError, EOFError):
        return  # Ctrl-C, or the parent stopped reading or sending: it is stopping too
    except BaseException as exc:  # the parent re-raises it; a plain exception always pickles
        conn.send(Failed(sendable(exc)))
    finally:
        conn.close()


def _received(inbox) -> Iterator[tuple[Checkpoint, str, Part]]:
    """A worker's parts of jobs until an empty message: each part is a pickled
    :class:`Part`, after its job's pickle when the worker has not had that job yet."""
    job = None
    while message := inbox.recv_bytes():
        item = pickle.loads(message)
        if isinstance(item, Part):
            yield (*job, item)
        else:
            job = item


def split_parts(jobs: list[tuple[Checkpoint, str]], options: DiscoveryOptions) -> list[tuple[int, Part]]:
    """``(job index, part)`` in order: one part per checkpoint, or parts of about PART_FILES
    files for a large folder of single images (grids and tensors number their samples
    across files, so they stay whole)."""
    parts = []
    for j, (checkpoint, _) in enumerate(jobs):
        files = checkpoint.files
        forced = checkpoint.kind == "generated" and (options.grid or options.tile_size)
        if len(files) < 2 * PART_FILES or forced or any(f.suffix.lower() in TENSOR_EXTENSIONS for f in files):
            parts.append((j, Part(0, len(files), True, True)))
            continue
        k = len(files) // PART_FILES
        bounds = [round(i * len(files) / k) for i in range(k + 1)]
        parts += [(j, Part(bounds[i], bounds[i + 1], i == 0, i == k - 1)) for i in range(k)]
    return parts


class _PickledJobs:
    """The jobs and their parts pickled into one buffer before the workers are forked, fed
    to them from it.

    A worker that walked an inherited list of jobs touched every job's reference count,
    which copied the pages they sit on into the worker (~1 kB per checkpoint per worker,
    far more for a folder of single-image files); pickling them after the fork did the same
    in the parent. Read from one buffer, the pages stay shared.
    """

    def __init__(self, jobs: list[tuple[Checkpoint, str]], parts: list[tuple[int, Part]]) -> None:
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


def _receive(jobs: list[tuple[Checkpoint, str]], parts: list[tuple[int, Part]], conns: list, workers: list,
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
                if isinstance(item, PartDone):
                    break
                if isinstance(item, _InSlot):
                    item = PreparedBatch(ring.view(item.ref), item.columns, ring.release)
                out.put(item)
                if isinstance(item, Failed):
                    return
                if isinstance(item, Done):
                    break
    except BaseException as exc:
        out.put(Failed(exc))
    finally:
        out.put(END)


def widen_pipe(conn) -> None:
    """A 1 MB pipe instead of 64 kB: a batch arrives in a few reads, each of which must retake
    the GIL from the encoder and store threads (many small reads stalled the receiver)."""
    try:
        import fcntl
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError) as exc:  # not Linux, or over pipe-max-size: only slower
        log.debug("pipe left at its default size: %s", exc)


def start_decode_processes(jobs: list[tuple[Checkpoint, str]], prep: Preparation, n: int,
                           out: queue.Queue) -> tuple[threading.Thread, list]:
    """Fork up to ``n`` decode processes (one per part at most) for ``jobs``; their messages
    arrive on ``out`` in job order, then :data:`~engine.batches.END`. Returns the receiving
    thread and the processes."""
    conns, outboxes, workers, rings = [], [], [], []
    parts = split_parts(jobs, prep.options)
    n = min(n, len(parts))
    pickled = _PickledJobs(jobs, parts)  # before the fork: see _PickledJobs
    slot_bytes = prep.batch_size * 3 * prep.preprocessor.size ** 2
    gc.freeze()  # unfrozen by ingest() once the workers are gone: no collection copies the shared pages
    for k in range(n):
        receiver, sender = _FORK.Pipe(duplex=False)
        inbox, outbox = _FORK.Pipe(duplex=False)
        ring = SlotRing(slot_bytes, _FORK)
        widen_pipe(receiver)
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
