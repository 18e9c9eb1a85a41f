"""Which process a temporary name belongs to, so that a killed one's leftovers can go.

A store being created and an export being written live under names that carry their
writer's tag, ``PID@HOST``: on a shared file system (NFS, a cluster's scratch) a process of
another machine has a PID of its own, which says nothing here, so its files are left alone.
"""
from __future__ import annotations

import os
import socket


def owner_tag() -> str:
    """This process's tag, ``PID@HOST``."""
    return f"{os.getpid()}@{socket.gethostname()}"


def owner_gone(tag: str) -> bool:
    """Whether the process a tag names has ended: only this host's can be asked; a tag
    without a host (``PID``, names before the host was added) is this host's."""
    pid, _, host = tag.partition("@")
    if host and host != socket.gethostname():
        return False
    return not process_alive(pid)


def process_alive(pid: str) -> bool:
    """Whether a process of this id runs on this host; a malformed id: no."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, OverflowError, ProcessLookupError):
        return False
    except PermissionError:  # another user's
        return True
    try:  # a zombie (killed, not yet reaped by its parent) runs no more (Linux's /proc)
        with open(f"/proc/{int(pid)}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
