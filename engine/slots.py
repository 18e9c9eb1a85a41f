"""Pixel batches handed from a decode process to the ingest's process through shared memory.

A batch of 224-pixel CLIP inputs is ~150 kB a sample; pickled through a pipe it was copied
four times (pickling, the pipe's write and read, unpickling into fresh pages), ~450 MB/s or
~3,000 samples/s, on a 16-core machine whose GPU encodes 12,000/s (docs/ingest.md). Each
decode worker instead writes its batches into a small ring of slots in an anonymous shared
mapping made before the fork: only the slot's index goes through the pipe, and the encoder
reads the slot in place. A token pipe back to the worker says when a slot is free again.
Slots are used and freed in order (the parent takes a worker's batches in the order they
were sent). The token pipe is closed only when the ingest has let go of the ring (never
while the encoder's thread may still release a slot: a closed descriptor's number can be
reused by a store file), and when the parent is gone, so a worker never waits for ever;
an ingest that stops early terminates its workers.
"""
from __future__ import annotations

import math
import mmap
from dataclasses import dataclass

import numpy as np

#: Slots per worker: one being filled, one in the pipe or the receiver, one being encoded.
SLOTS = 3


@dataclass(frozen=True, slots=True)
class SlotRef:
    """Where a worker put a batch's pixels: what travels through the pipe instead of them."""

    index: int
    shape: tuple[int, ...]


class SlotRing:
    """``SLOTS`` slots of ``slot_bytes`` each, shared by the parent and one forked worker.

    Made in the parent before the fork; the worker calls :meth:`put`, the parent
    :meth:`view` and :meth:`release`. ``parent_fds`` are the parent's ends, which the
    worker closes after the fork (see ``engine.decode_workers._decode_process``).
    """

    def __init__(self, slot_bytes: int, context) -> None:
        self.slot_bytes = slot_bytes
        self._memory = mmap.mmap(-1, SLOTS * slot_bytes)  # MAP_SHARED | MAP_ANONYMOUS: survives the fork shared
        self._slots = np.frombuffer(self._memory, np.uint8).reshape(SLOTS, slot_bytes)
        self._tokens, self._give = context.Pipe(duplex=False)
        for _ in range(SLOTS):
            self._give.send_bytes(b"\0")
        self._next = 0

    @property
    def parent_fds(self) -> list[int]:
        return [self._give.fileno()]

    def after_fork_in_parent(self) -> None:
        """The worker holds the only token-reading end: the parent's copy goes."""
        self._tokens.close()

    def put(self, pixels: np.ndarray) -> SlotRef | None:
        """Copy ``pixels`` into the next slot once it is free (worker side); None when they
        do not fit a slot, for the caller to send them in the pickle instead."""
        if pixels.dtype != np.uint8 or pixels.nbytes > self.slot_bytes:
            return None
        self._tokens.recv_bytes()  # EOFError once the parent is gone
        index, self._next = self._next, (self._next + 1) % SLOTS
        self._slots[index, : pixels.nbytes] = pixels.reshape(-1)
        return SlotRef(index, tuple(pixels.shape))

    def view(self, ref: SlotRef) -> np.ndarray:
        """The pixels a :class:`SlotRef` points at, in place (parent side): valid until released."""
        return self._slots[ref.index, : math.prod(ref.shape)].reshape(ref.shape)

    def release(self) -> None:
        """The oldest slot in use is free again; a worker that has exited needs none."""
        try:
            self._give.send_bytes(b"\0")
        except OSError:  # BrokenPipeError
            pass
