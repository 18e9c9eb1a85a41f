"""Listing and walking folders: a vanished entry is an absent one; stores and their lock files,
hidden, temporary and system folders, and links that loop are not walked."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from engine import listings
from engine.discovery.names import _is_temporary
from engine.discovery.said_once import warn_once
from engine.errors import GONE
from engine.listings import is_dir as _is_dir
from stores.format import STORE_MARKER, is_store
from stores.lock import LOCK_SUFFIX


#: Folders a file server or an operating system keeps beside the user's files: Synology's
#: ``@eaDir/NAME.png/SYNOFILE_THUMB_M.jpg`` (thumbnails of every image, in every folder) and
#: ``#recycle``, QNAP's ``@Recycle``, a zip's ``__MACOSX``, Windows' ``$RECYCLE.BIN``.
_SYSTEM_FOLDERS = frozenset({"@eadir", "#recycle", "#snapshot", "@recycle", "@recently-snapshot", "__macosx",
                             "$recycle.bin", "system volume information", "lost+found"})


_MAX_DEPTH = 8


def folder_entries(folder: Path) -> list[os.DirEntry]:
    """A folder's entries, sorted; none in a store, and no store's lock file (``STORE.lock``;
    its staging folder ``.STORE.creating-PID@HOST`` is hidden)."""
    try:
        entries = sorted(listings.listed_entries(folder), key=lambda e: e.name)
        if entries:  # listed but not searchable (`chmod -R 644`): its files cannot be opened
            os.stat(entries[0].path, follow_symlinks=False)
    except GONE:
        listings.note(None)  # gone, or its first entry gone since: a listing not to keep
        return []
    except PermissionError as exc:  # said, or a checkpoint folder would be left out without a word
        warn_once(folder, f"{folder}: cannot be read ({exc.strerror}); what it holds is left out: fix its permissions")
        listings.note(None)
        return []
    if not entries:
        return []
    names = {entry.name for entry in entries}
    if STORE_MARKER in names and is_store(folder):
        return []
    entries = [entry for entry in entries if not _aliases_a_sibling(entry, folder) and not _loops_back(entry, folder)]
    locks = {name for name in names if name.endswith(LOCK_SUFFIX) and name.removesuffix(LOCK_SUFFIX) in names
             and is_store(folder / name.removesuffix(LOCK_SUFFIX))}
    return [entry for entry in entries if entry.name not in locks]


def _aliases_a_sibling(entry: os.DirEntry, folder: Path) -> bool:
    """A symlink to a folder beside it (W&B's ``wandb/latest-run``, a ``latest/`` link to the
    newest checkpoint): that folder is read once, under its own name."""
    if not entry.is_symlink():
        return False
    target = os.path.realpath(entry.path)
    return os.path.dirname(target) == os.path.realpath(folder) and os.path.isdir(target)


def _loops_back(entry: os.DirEntry, folder: Path) -> bool:
    """A symlink to the folder it sits in or to one above it (``run/here -> .``,
    ``run/project -> ..``): followed, every checkpoint was read again under each path through
    it, down to the depth limit (32 rows for 8 samples; 510 checkpoints with two such links)."""
    return entry.is_symlink() and _leads_up(entry.path, (os.path.realpath(folder),))


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_hidden_dir(entry: os.DirEntry) -> bool:
    """Hidden, still being written under a temporary name, or a file server's or the system's
    own (``@eaDir``: its thumbnails were read as three more samples of each image): not looked into."""
    return (entry.name.startswith(".") or _is_temporary(entry.name) or entry.name.lower() in _SYSTEM_FOLDERS) \
        and _is_dir(entry)


def walk_files(folder: Path, depth: int = 0, _above: tuple[str, ...] = ()) -> Iterator[Path]:
    """Every file below ``folder`` (sorted, depth-limited; hidden and temporary folders,
    stores and their lock files skipped). A symlinked folder is followed unless it leads
    back up the walk (a loop); a link to nothing is said once and left out."""
    above = (*_above, os.path.realpath(folder))
    for entry in folder_entries(folder):
        if _is_file(entry):
            yield Path(entry.path)
        elif depth < _MAX_DEPTH and not _is_hidden_dir(entry) and _is_dir(entry):
            if not (entry.is_symlink() and _leads_up(entry.path, above)):
                yield from walk_files(Path(entry.path), depth + 1, above)
        elif entry.is_symlink() and not os.path.exists(entry.path):
            warn_once(Path(entry.path), f"{entry.path}: a link to nothing ({_link_target(entry.path)}) is left out: "
                                         "restore what it names or remove the link", about="link")


def _link_target(link: str) -> str:
    try:
        return os.readlink(link)
    except OSError:  # replaced meanwhile
        return "?"


def _leads_up(link: str, above: tuple[str, ...]) -> bool:
    """Whether a symlinked folder is one of the folders it sits in, or holds one (a loop)."""
    target = os.path.realpath(link)
    return any(folder == target or folder.startswith(target.rstrip(os.sep) + os.sep) for folder in above)


def _relative(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``os.path.relpath(path, root)``, by slicing when ``path`` is spelt below ``root`` (as a
    scan's paths are: relpath makes both absolute first, 0.1 s of a 0.9 s pass at 300 checkpoints)."""
    text, prefix = os.fspath(path), os.path.join(os.fspath(root), "")
    rest = text[len(prefix):] if text.startswith(prefix) else ""
    return rest if rest and os.path.normpath(rest) == rest else os.path.relpath(text, root)
