"""A stop (Ctrl-C, SIGTERM) held back while native code that cannot take an exception runs.

evowatch's signal handlers raise where the main thread is; raised inside openTSNE's gradient
(its Cython calls back into Python), the process died of SIGSEGV instead of stopping cleanly.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


def deferring() -> bool:
    """Whether this thread is inside :func:`deferred_stop` (a handler then calls :func:`defer`)."""
    return getattr(_state, "depth", 0) > 0


def defer(stop: BaseException) -> None:
    """Raise ``stop`` when the outermost :func:`deferred_stop` block ends."""
    _state.pending = stop


@contextlib.contextmanager
def deferred_stop() -> Iterator[None]:
    """Hold a stop raised by a signal handler until the block is done."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        pending = getattr(_state, "pending", None)
        if pending is not None and _state.depth == 0:
            _state.pending = None
            raise pending
