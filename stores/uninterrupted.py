"""Store writes that Ctrl-C, SIGTERM and SIGHUP wait for.

zarr's synchronous API runs each write on zarr's own event-loop thread and waits for it. An
interrupt raised while this thread waits leaves the write running: the writer then cut its
arrays back to the commit point it still saw, and the commit point written a moment later
counted rows that had been cut (a resumed watch read those checkpoints as never stored and
stored them again). So a store write holds the signals and delivers them when it is done
(a commit takes well under a second); a second one goes through at once, for a write hung on
a network filesystem. The write it lets go may still land after that (zarr's threads go on
with it), so :attr:`_HeldSignals.let_go` counts such writes: their writer's arrays are not
cut back on close, nor its store removed as empty (round AV: cut back
under a commit point that landed a moment later, the store's readers indexed past its rows),
and their writer's lock is released only once they have ended (:func:`after_writes_end`).
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: a closed terminal (round AM)


class _HeldSignals(contextlib.ContextDecorator):
    """Re-entrant: a write made of writes holds the signals from the outermost one's start
    to its end. Only the main thread receives signals, so other threads change nothing."""

    def __init__(self) -> None:
        self._depth = 0
        self._held: list[int] = []
        self._previous: dict[int, Any] = {}
        self.let_go = 0  # writes a second signal stopped waiting for: perhaps still under way

    def __enter__(self) -> _HeldSignals:
        if threading.current_thread() is threading.main_thread():
            if self._depth == 0:
                self._held = []
                # None: a handler installed from C, which Python cannot put back.
                self._previous = {s: h for s in _SIGNALS if (h := signal.getsignal(s)) is not None}
                for signum in self._previous:
                    signal.signal(signum, self._hold)
            self._depth += 1
        return self

    def __exit__(self, *exc: object) -> bool:
        if threading.current_thread() is threading.main_thread():
            self._depth -= 1
            if self._depth == 0:
                held, self._held = self._held, []
                self._restore()
                for signum in dict.fromkeys(held):  # to the handlers put back: as if it came now
                    signal.raise_signal(signum)
        return False

    def _hold(self, signum: int, frame: object) -> None:
        self._held.append(signum)
        if len(self._held) > 1:  # asked twice: stop now
            self.let_go += 1
            self._held = []
            self._restore()
            signal.raise_signal(signum)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


#: Decorates (or wraps, as ``with``) a store write that must finish once started.
uninterrupted = _HeldSignals()


def after_writes_end(then: Callable[[], None]) -> None:
    """Call ``then`` once the store writes under way have ended: at once when none is, else in
    zarr's event-loop thread as the last of them ends. A write let go by a second Ctrl-C goes
    on there (the process waits for it as it exits, seconds on a slow file system): its
    writer's lock released at once let a watch started meanwhile open the store, and the late
    commit point landed over that watch's (round AW-4). Never called if the process ends
    first: the lock goes with it, as a kill's does."""
    from zarr.core.sync import loop  # zarr's own loop: [None] before its first write

    io = loop[0]
    if io is None or io.is_closed():
        then()
        return

    async def once_ended() -> None:
        under_way = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if under_way:
            await asyncio.wait(under_way)
        then()

    asyncio.run_coroutine_threadsafe(once_ended(), io)
