"""Warnings about a folder said once a process: the watcher rescans on every change, and a
layout it doubts would otherwise be said again at every pass."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


_warned: set[str] = set()


def warn_once(folder: Path, message: str, about: str = "layout", say: Callable[..., None] = log.warning) -> None:
    """A warning (or what ``say`` logs) about a folder, once per folder, subject and process
    (the watcher rescans on every change)."""
    if (key := f"{folder}\0{about}") not in _warned:
        _warned.add(key)
        say("%s", message)
