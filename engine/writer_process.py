"""A backlog's store writes in a forked process of their own.

A CUDA encoder is host-bound: its thread holds the GIL between kernel launches, and zarr's
writes are Python too (~40 ms of it per 1,000 rows on the development machine). In one
process the two took turns under the GIL instead of overlapping (docs/ingest.md, "On a GPU
machine"). Here the same consumer (``engine.pipeline._consume``) runs in a child forked
with the caller's :class:`~stores.zarr_store.StoreWriter`: the encoded batches reach it
through a pipe, and its committed checkpoints and log records come back through another.

The child holds the store's lock while it lives and dies with its parent (Linux), so a
killed watcher leaves what a killed single process leaves: the committed state, which the
next writer resumes from. Ctrl-C stops the parent, which tells the child to commit the
complete checkpoints and stop, as the consumer does in-process.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import logging.handlers
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from engine.batches import END, Failed
from engine.decode_workers import widen_pipe
from engine.errors import EvowatchError, sendable
from stores.inherited import close_in_forked_children, forget
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)

# Forked like the decode workers (engine/decode_workers.py): the child needs the caller's
# StoreWriter as it is; zarr re-creates its event loop and thread pool in a forked child.
_FORK = multiprocessing.get_context("fork")
_PR_SET_PDEATHSIG = 1
_END_OF_INPUT = None  # END is an object(): its identity does not survive the pipe


def _close(conn) -> None:
    """Close one of this process's pipe ends (and forget it for later forks)."""
    with contextlib.suppress(OSError):
        forget(conn.fileno())
    conn.close()


class _Stopped(EvowatchError):
    """The parent stopped (Ctrl-C, an earlier stage failed): commit what is complete, drop the rest."""

    def __init__(self, message: str = "the ingest was stopped; everything committed is kept") -> None:
        super().__init__(message)


class _Sender:
    """One pipe end shared by the child's threads (zarr's may log): one message at a time."""

    def __init__(self, conn) -> None:
        self.conn, self.lock = conn, threading.Lock()

    def put_nowait(self, message: Any) -> None:  # logging.handlers.QueueHandler's queue
        with self.lock:
            self.conn.send(message)


class _PipeInbox:
    """The parent's pipe as the consumer's queue (``get`` with a timeout)."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def get(self, timeout: float | None = None) -> Any:
        if timeout is not None and not self.conn.poll(timeout):
            raise queue.Empty
        try:
            item = self.conn.recv()
        except EOFError:  # the parent is gone without a word
            return Failed(_Stopped())
        return END if item is _END_OF_INPUT else item


class _LogRecords(logging.handlers.QueueHandler):
    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put_nowait(("log", record))


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies (Linux; elsewhere the pipe's end stops the child)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # died before the line above
        os._exit(1)


def _child(store: StoreWriter, consume: Callable, inbox, outbox, parent: int, inherited: list[int]) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the parent's to handle: it stops this child
        signal.signal(signum, signal.SIG_IGN)
    for fd in inherited:  # the parent's ends: once it is gone, a receive here sees the end
        os.close(fd)
    _die_with_parent(parent)
    gc.freeze()  # the parent's objects stay shared pages
    sender = _Sender(outbox)
    logging.getLogger().handlers = [_LogRecords(sender)]  # the parent's handlers print them
    try:
        for result in consume(store, _PipeInbox(inbox)):
            sender.put_nowait(("result", result))
        last = ("done", None)
    except BaseException as exc:
        last = ("failed", sendable(exc))
    with contextlib.suppress(OSError):  # the parent is gone (not Linux: no PDEATHSIG): nobody to tell
        sender.put_nowait(last)


def _forward(inbox: queue.Queue, conn, stopping: threading.Event, failure: list[BaseException],
             on_item: Callable[[Any], None] | None) -> None:
    """Hand the consumer's items to the child until the end. On a stop, an earlier stage's
    failure or one here (kept in ``failure`` for the parent to raise as it is: it need not
    pickle), tell the child to stop instead, after the items that came before the failure."""
    try:
        while True:
            try:
                got = inbox.get(timeout=0.1)
            except queue.Empty:
                got = None
            items = got if isinstance(got, list) else [] if got is None else [got]
            failed = next((i for i, x in enumerate(items) if isinstance(x, Failed)), None)
            if failed is not None:
                failure.append(items[failed].error)
                items = items[:failed]
            if items and not stopping.is_set():
                conn.send(_END_OF_INPUT if got is END else items if isinstance(got, list) else got)
                if on_item and got is not END:
                    on_item(items)
            if failed is not None or stopping.is_set():
                conn.send(Failed(_Stopped()))
                return
            if got is END:
                return
    except (OSError, ValueError):  # the child is gone: the parent reports why
        pass
    except BaseException as exc:  # an item that does not pickle, on_item: the parent raises it
        failure.append(exc)
        with contextlib.suppress(OSError, ValueError):
            conn.send(Failed(_Stopped()))
    finally:
        _close(conn)


class WriterProcess:
    """A forked child running ``consume(store, inbox)`` on the caller's ``store``; fork it
    before the ingest's threads and decode processes start (none of their locks or pipe ends
    in the child), then read its results with :meth:`results`."""

    def __init__(self, store: StoreWriter, consume: Callable[[StoreWriter, Any], Iterator[Any]]) -> None:
        self.store, self._ended = store, False
        self._forwarder: threading.Thread | None = None
        to_child, self._to_child = _FORK.Pipe(duplex=False)
        self._from_child, from_child_send = _FORK.Pipe(duplex=False)
        widen_pipe(to_child)
        lock_fd = store.lock_descriptor_for_child()
        self._child = _FORK.Process(target=_child, name="evowatch-store-writer", daemon=True,
                                    args=(store, consume, to_child, from_child_send, os.getpid(),
                                          [self._to_child.fileno(), self._from_child.fileno()]))
        try:
            self._child.start()
        finally:
            os.close(lock_fd)
            to_child.close()
            from_child_send.close()
        try:
            # Processes forked later (the decode processes) close their copies: else closing
            # them here was no end of input there, and a child told to stop so waited for ever.
            for conn in (self._to_child, self._from_child):
                close_in_forked_children(conn.fileno())
            # The child's messages are read by a thread of their own: a Ctrl-C lands in the main
            # thread, and one landing in the middle of a message garbled the rest of the pipe.
            self._received: queue.Queue = queue.Queue()
            self._reader = threading.Thread(target=self._read, name="evowatch-from-writer", daemon=True)
            self._reader.start()
        except BaseException:  # a Ctrl-C now: nobody would close this child
            self._child.kill()
            self._child.join()
            raise

    def _read(self) -> None:
        """Queue the child's messages up to its last; ``("gone", None)`` if it ended without one."""
        try:
            while True:
                message = self._from_child.recv()
                self._received.put(message)
                if message[0] not in ("result", "log"):
                    return
        except Exception as exc:  # EOFError: the child died (killed, out of memory)
            log.debug("the store's writer process's messages ended: %r", exc)
            self._received.put(("gone", None))

    def __enter__(self) -> WriterProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.close(raising=exc_type is None)  # an error on its way out is the one to tell

    def results(self, inbox: queue.Queue, on_item: Callable[[Any], None] | None = None) -> Iterator[Any]:
        """The child's results as it commits, ``inbox``'s items handed to it (``on_item`` sees
        each encoder call's). Afterwards the caller's store is re-read from disk (unless a
        repeated Ctrl-C cut that short: the caller's close then restores the commit points)."""
        stopping, failure = threading.Event(), []
        self._forwarder = threading.Thread(target=_forward, name="evowatch-to-writer", daemon=True,
                                           args=(inbox, self._to_child, stopping, failure, on_item))
        try:
            self._forwarder.start()  # it closes the pipe to the child when it ends
            for kind, payload in self._messages():
                if kind == "result":
                    yield payload
                elif kind == "failed":
                    raise failure[0] if failure and isinstance(payload, _Stopped) else payload
        except BaseException:
            stopping.set()
            self.close(raising=False)  # the error that ended the ingest is the one to tell
            raise
        finally:
            stopping.set()  # stopped early: the child commits the complete checkpoints, then ends
            self.close()
            if self._forwarder.ident is not None:
                self._forwarder.join()

    def close(self, raising: bool = True) -> None:
        """Wait for the child (told to stop if it has not ended), then re-read the store
        (an error doing so is logged instead of raised when ``raising`` is false). Interrupted
        while waiting (a second Ctrl-C), it kills the child first: a killed child leaves the
        commit points, and the store must not be closed (unlocked, cut) under a live writer."""
        if self._child is None:
            return
        if self._forwarder is None or self._forwarder.ident is None:
            _close(self._to_child)  # no forwarder to tell it: a child waiting for items sees the end and stops
        interrupted: BaseException | None = None
        try:
            with contextlib.suppress(EvowatchError):  # it ended without its last message: said already, or now
                for _ in self._messages():
                    pass
        except BaseException as exc:
            interrupted = exc
            self._child.kill()
        self._child.join()
        self._reader.join()
        _close(self._from_child)
        self._child = None
        try:
            self.store.reload_after_child()
        except Exception as exc:
            if raising and interrupted is None:
                raise
            log.debug("%s: not re-read after the writer process: %s", self.store.path, exc)
        if interrupted is not None:
            raise interrupted

    def _messages(self) -> Iterator[tuple[str, Any]]:
        """The child's messages until its last one, its log records re-emitted here."""
        while not self._ended:
            try:
                kind, payload = self._received.get(timeout=0.1)
            except queue.Empty:  # the reader ended and its last was taken (a Ctrl-C right after): all read
                self._ended = not self._reader.is_alive() and self._received.empty()  # dead first: its puts are in
                continue
            if kind == "gone":
                self._ended = True
                self._child.join(timeout=5)
                raise EvowatchError(f"the store's writer process exited (code {self._child.exitcode}); everything "
                                    "committed is kept: run the same command again to resume")
            if kind == "log":
                logging.getLogger(payload.name).handle(payload)
                continue
            self._ended = kind != "result"
            yield kind, payload
