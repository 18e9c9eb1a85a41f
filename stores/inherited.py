"""Descriptors a forked child must not keep open.

A forked child (a decode worker, the store's writer process) inherits every descriptor of
its parent. Some must stay the parent's alone: the store's lock (a child outliving a killed
writer would block the restart) and the parent's ends of a pipe to another child (closing
them in the parent must be that child's end of input). They are closed in every child
forked while they are registered here.
"""
from __future__ import annotations

import contextlib
import os

_registered: set[int] = set()


def close_in_forked_children(fd: int) -> None:
    """Have every child forked from now on close its copy of ``fd``."""
    _registered.add(fd)


def forget(fd: int) -> None:
    """Before closing ``fd`` here: its number may be reused for a descriptor children keep."""
    _registered.discard(fd)


def _close_inherited() -> None:
    for fd in _registered:
        with contextlib.suppress(OSError):
            os.close(fd)
    _registered.clear()


os.register_at_fork(after_in_child=_close_inherited)
