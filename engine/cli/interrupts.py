"""Stopping a command on Ctrl-C, SIGTERM, SIGHUP or a closed pipe, and what it says it left."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from engine import stopping


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``docker stop``, systemd) or SIGHUP (its terminal or SSH session
    closed) stops a command the way Ctrl-C does."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


#: Set by Ctrl-C and SIGTERM as well as raised: an exception raised while Python runs a
#: weakref callback or ``__del__`` is dropped (its "Exception ignored in ..." traceback is not
#: printed), and a live watch then ran on; its loop checks this between passes.
STOP_REQUESTED = threading.Event()


class _SignalAgain:
    """Signals a stop Python dropped again from a thread, to be raised where the main thread is
    next once the dropping hook has returned; never after :meth:`cancel` (the command is over:
    its handlers put back, the caller's got it, a test's KeyboardInterrupt or SIGTERM's default,
    which killed a process whose main() had returned 0) nor from a forked child (a decode worker
    signalled its parent)."""

    def __init__(self, owner: int) -> None:
        self.owner, self._live, self._timers = owner, True, []
        self._lock = threading.Lock()

    def later(self, signum: int, delay: float = 0.05) -> None:
        if os.getpid() != self.owner:
            return
        timer = threading.Timer(delay, self._send, (signum,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _send(self, signum: int) -> None:
        with self._lock:
            if self._live:
                os.kill(self.owner, signum)

    def cancel(self) -> None:
        with self._lock:
            self._live = False
        for timer in self._timers:
            timer.cancel()


def _stop_on_sigterm() -> Callable[[], object]:
    """Raise :class:`Terminated` on SIGTERM in this process, and KeyboardInterrupt on Ctrl-C
    as Python does, both noted in :data:`STOP_REQUESTED`; returns what restores the previous
    handlers. A forked decode worker inherits the handler: there it dies of the signal as it
    would without one (multiprocessing's ``terminate()`` counts on that)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        return lambda: None
    owner = os.getpid()

    def on_sigterm(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        STOP_REQUESTED.set()
        if stopping.deferring():  # inside openTSNE: raised there, a SIGSEGV
            return stopping.defer(Terminated(signum))
        raise Terminated(signum)

    def on_sigint(signum: int, frame: object) -> None:
        if os.getpid() == owner:
            STOP_REQUESTED.set()
            if stopping.deferring():
                return stopping.defer(KeyboardInterrupt())
        signal.default_int_handler(signum, frame)

    again = _SignalAgain(owner)

    def on_dropped(unraisable: Any, hook: Callable[[Any], object] = sys.unraisablehook) -> None:
        """A stop Python dropped is noted already: no traceback (round BE); it is signalled again
        (a live watch acted on it only after its pass: 12 checkpoints ingested, laid out, measured)."""
        stop = unraisable.exc_value
        if not (isinstance(stop, KeyboardInterrupt) and STOP_REQUESTED.is_set()):
            hook(unraisable)
            return
        again.later(getattr(stop, "signum", signal.SIGINT))

    previous = signal.signal(signal.SIGTERM, on_sigterm), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGHUP)
    previous_hook, sys.unraisablehook = sys.unraisablehook, on_dropped
    if previous[1] is signal.default_int_handler:  # not when Ctrl-C is ignored or handled by the caller
        signal.signal(signal.SIGINT, on_sigint)
    if previous[2] is signal.SIG_DFL:  # a closed terminal killed a watch mid-write (round AL); not under nohup
        signal.signal(signal.SIGHUP, on_sigterm)

    def restore() -> None:
        again.cancel()  # before the handlers go: a caller's (a test's), or SIG_DFL, would get it
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        signal.signal(signal.SIGHUP, previous[2])
        sys.unraisablehook = previous_hook

    return restore


def _closed_pipe() -> int:
    """stdout's reader went away (``evowatch info STORE | head -3``): exit quietly with the
    status of a tool killed by SIGPIPE. stdout is pointed at /dev/null so the interpreter's
    final flush does not fail again (the Python docs' recipe)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def _left_when_interrupted(args: argparse.Namespace) -> str | None:
    """What a command stopped by Ctrl-C or SIGTERM left behind: a live watch says so itself,
    the viewer has Streamlit's own line, and `info` writes nothing."""
    if args.command == "watch":  # --once
        return "everything ingested so far is committed: run the same command again to resume"
    if args.command == "layout":
        return (f"{args.store}: its layout is whole (the one before, or the new one if it was being written)" if args.full else
                f"{args.store}: the steps laid out so far are kept: run the same command again to go on")
    if args.command == "demo":  # said nothing: where the steps so far are, and that the demo starts over
        store = args.out.resolve() / "demo.zarr"
        return (f"the steps ingested so far are in {store} (evowatch view {store}); the same command trains the demo "
                "again from its first step" if store.exists() else "nothing was stored yet")
    if args.command == "export":
        from engine.export import is_stream

        return ("the rows written so far are incomplete" if args.out is not None and is_stream(args.out)
                else "no file written or changed")
    return None


def _exit_past_busy_threads(code: int) -> int:
    """A second Ctrl-C leaves a --sampler's or the encoder's thread inside a torch call: the
    interpreter's exit ran torch's destructors under it and aborted ("terminate called without
    an active exception", SIGABRT, round AJ). Everything is committed by then: exit without them."""
    if any(t.is_alive() for t in threading.enumerate() if t.name in ("evowatch-encode", "evowatch-decode")):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
