"""A checkpoint's identity: its files' versions and content hash, salted with the settings it
is read with, so that ingest is idempotent and a rewritten or re-read checkpoint is superseded."""
from __future__ import annotations

import hashlib
import os

from engine.discovery.folders import _relative
from engine.discovery.options import DiscoveryOptions
from engine.discovery.ready import checkpoint_path
from engine.grids import format_tile_slice
from engine.records import Checkpoint


def file_versions(checkpoint: Checkpoint, changes: bool = False) -> tuple[tuple[str, int, int], ...]:
    """(name relative to the run, size, mtime in ns) of each file: a version read from the
    file system without reading the files; with ``changes``, each file's change time too (a
    file made readable again, or rewritten keeping its size and mtime: ``cp -p``, ``touch -d``).
    Raises ``FileNotFoundError`` if one vanished."""
    versions = []
    for path in checkpoint.files:
        st = os.stat(path)
        versions.append((_relative(path, checkpoint.root), st.st_size, st.st_mtime_ns)
                        + ((st.st_ctime_ns,) if changes else ()))
    return tuple(versions)


def in_one_folder(checkpoint: Checkpoint) -> bool:
    """Whether all of a checkpoint's files sit in one folder just below its own
    (``step_1000/circle/``), a label's in a run of ImageFolder checkpoints."""
    parents = {f.parent for f in checkpoint.files}
    return len(parents) == 1 and next(iter(parents)).parent == checkpoint_path(checkpoint)


def in_a_label_folder(checkpoint: Checkpoint, options: DiscoveryOptions) -> bool:
    """Whether a checkpoint's files all sit in one folder that is a label folder of the run's
    other checkpoints (``options.folder_label_names``): labelled by it (auto ``label_folders``)."""
    return options.label_folders is None and in_one_folder(checkpoint) and \
        checkpoint.files[0].parent.name in options.folder_label_names


def reading_settings(checkpoint: Checkpoint, options: DiscoveryOptions | None) -> str:
    """How the files are read, where a user set it by hand (empty with the defaults)."""
    if options is None:
        return ""
    if checkpoint.kind != "generated":  # a reference set is never split into tiles and has no step:
        # salted alike, --grid read every --real/--holdout image again and measured every step again
        return f"range={options.value_range[0]:g},{options.value_range[1]:g}" if options.value_range else ""
    parts = [f"grid={options.grid[0]}x{options.grid[1]}" if options.grid else "",
             f"tile={options.tile_size}" if options.tile_size else "",
             f"rows={format_tile_slice(options.tile_rows)}" if options.tile_rows else "",
             f"cols={format_tile_slice(options.tile_cols)}" if options.tile_cols else "",
             f"step={checkpoint.step}" if options.step_regex is not None else "",
             f"range={options.value_range[0]:g},{options.value_range[1]:g}" if options.value_range else "",
             # a lone folder that became a label folder of the run (a live watch saw it before the
             # run's other steps showed it was one): read again, labelled (round AR)
             "labels=folder" if in_a_label_folder(checkpoint, options) else ""]
    return ";".join(p for p in parts if p)


def content_hash(checkpoint: Checkpoint, options: DiscoveryOptions | None = None) -> str:
    """BLAKE2b of the sample files' relative names and bytes, and of ``--grid``,
    ``--tile-size``, ``--tile-rows``/``--tile-cols``, ``--value-range`` and the step when set by hand.

    A grid the trainer rewrites in place (DCGAN rewrites each epoch's file every 100
    iterations) gets a new hash, and so does a checkpoint read again with another grid or
    step setting: its rows read the old way are then superseded, as a rewritten grid's are.
    A file this process may not read counts by its name (decoding skips it, naming it).
    Raises ``FileNotFoundError`` if a file vanished meanwhile.
    """
    return combined_hash(reading_settings(checkpoint, options), file_digests(checkpoint))


def file_digests(checkpoint: Checkpoint) -> list[tuple[str, bytes]]:
    """(name relative to the run, BLAKE2b of the bytes) of each file, in path order."""
    out = []
    for path in sorted(checkpoint.files):
        try:
            name = _relative(path, checkpoint.root)
        except ValueError:
            name = path.name
        try:
            with open(path, "rb") as fh:
                out.append((name, hashlib.file_digest(fh, "blake2b").digest()))
        except PermissionError:  # ingested with the file skipped; read again once its permissions change
            out.append((name, b"unreadable\0"))
    return out


def combined_hash(settings: str, digests: list[tuple[str, bytes]]) -> str:
    """:func:`content_hash` from a checkpoint's :func:`file_digests`: with the names of another
    source, it is the hash that checkpoint had there (a folder renamed: the same files)."""
    digest = hashlib.blake2b(digest_size=16)
    if settings:
        digest.update(settings.encode() + b"\0")
    for name, file_digest in digests:
        digest.update(os.fsencode(name) + b"\0")  # a name that is not UTF-8 has its own bytes
        digest.update(file_digest)
    return digest.hexdigest()
