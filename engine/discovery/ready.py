"""Whether the trainer has finished writing a checkpoint: its ready file is there, or none of
its files changed for ``settle`` seconds."""
from __future__ import annotations

import os
import time
from pathlib import Path

from engine.discovery.folders import walk_files
from engine.discovery.names import _stem
from engine.discovery.options import DiscoveryOptions
from engine.errors import GONE
from engine.records import Checkpoint
from stores.format import SAMPLE_KEY


def checkpoint_path(checkpoint: Checkpoint) -> Path:
    """The checkpoint's folder or file on disk."""
    return checkpoint.root / checkpoint.source if checkpoint.kind == "generated" else checkpoint.root


def ready_file_name(checkpoint: Checkpoint, template: str) -> str:
    """The ``--ready-file`` a checkpoint waits for, its ``{step}``, ``{stem}``, ``{name}`` filled in."""
    name = checkpoint_path(checkpoint).name
    return template.format(stem=_stem(name), name=name, step=checkpoint.step)


def is_ready(checkpoint: Checkpoint, options: DiscoveryOptions | None = None, now: float | None = None) -> bool:
    """Whether the trainer has finished writing the checkpoint.

    With ``ready_file``: once that file exists. Otherwise once no file in it was modified for
    ``settle`` seconds (a folder renamed into place keeps its old mtimes, so it is taken at
    once). A checkpoint that vanished is not ready.
    """
    options = options or DiscoveryOptions()
    path = checkpoint_path(checkpoint)
    is_folder = path.is_dir()
    if options.ready_file:
        name = ready_file_name(checkpoint, options.ready_file)
        if path.parent.name.startswith(SAMPLE_KEY):  # across per-sample folders: in each of them
            return all((file.parent / name).exists() for file in checkpoint.files)
        return ((path if is_folder else path.parent) / name).exists()
    files = list(walk_files(path)) if is_folder else list(checkpoint.files)  # a file, or a pattern's files
    now = time.time() if now is None else now
    try:
        newest = max(_arrived(st, now) for st in map(os.stat, files)) if files else None
    except (*GONE, PermissionError):  # gone, or made unreadable since the scan
        return False
    if newest is None:
        return False
    return now - newest >= options.settle


def _arrived(st: os.stat_result, now: float) -> float:
    """When a file was last written here: its modification time, or its change time when later
    (a copy keeping the source's old times: ``rsync -a``, ``cp -a``), or alone when the
    modification time lies ahead (copied from a machine whose clock runs ahead: held back for
    the whole skew, as "still being written")."""
    return max(st.st_mtime if st.st_mtime <= now else 0.0, st.st_ctime)
