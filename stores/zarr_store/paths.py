"""Where a store may be: a path checked before a command loads anything, the store a path lies
inside, the one line for a path that is part of a store or a zip of one, and the hidden name a
store is made under and removed from."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import zipfile
from pathlib import Path

from stores import format as fmt
from stores.errors import StoreFormatError
from stores.format import is_store
from stores.owner import owner_tag
from stores.zarr_store.primitives import _node_type


def _store_pieces(path: Path) -> bool:
    """Whether a folder holds nothing but pieces of a store: its groups' folders, their arrays'
    chunks (GROUP/ARRAY/c/...) and zarr.json files (round AP: `outputs/samples/*.png` was
    called pieces of a store, and the user told to remove the folder)."""
    groups = set(fmt.GROUPS) | {"metrics", "sample_metrics", "scalars", "alerts"}
    for folder, _, files in os.walk(path):
        parts = Path(folder).relative_to(path).parts
        if parts and parts[0] not in groups or not parts and files or any(
                name != "zarr.json" and (len(parts) < 3 or parts[2] != "c") for name in files):
            return False
    return True


def check_store_path(path: str | os.PathLike[str]) -> None:
    """Refuse a path that is no store and cannot become one (a file, a folder with other
    contents, the current folder), before a command loads anything else."""
    path = Path(path)
    if is_store(path):
        return
    if (store := enclosing_store(path)) is not None:  # its group, listed by every plain reader of the outer store
        raise StoreFormatError(f"{path}: is inside the evowatch store {store}; choose a --store path outside it")
    if path.exists() and not path.is_dir():  # os.walk finds nothing in a file: it read as "pieces of a store"
        raise StoreFormatError(_not_the_store(path) or f"{path}: is a file, not a store folder; choose another "
                                                       "--store path (a folder, made if missing: run.zarr)")
    if path.exists() and any(path.iterdir()):
        if _store_pieces(path):
            raise StoreFormatError(f"{path}: holds pieces of an evowatch store without its zarr.json (a store moved or "
                                   "deleted while written, or one being copied): restore the store, or remove the "
                                   "folder, or choose another --store path")
        raise StoreFormatError(f"{path}: exists and is not an evowatch store; choose another --store path"
                               f"{_stores_inside(path)}")
    if Path.cwd().is_relative_to(os.path.abspath(path)):  # an empty folder is replaced by the store: not under our feet
        raise StoreFormatError(f"{path}: is the current folder; name a store folder in it, e.g. --store run.zarr")


def _stores_inside(folder: Path) -> str:
    """``; it holds run.zarr``: the stores just inside a folder given for one (round AQ: `view
    live` said only that live is none)."""
    try:
        found = sorted(child.name for child in folder.iterdir() if child.is_dir() and is_store(child))
    except OSError:
        return ""
    return f" (it holds {fmt.listed(found)})" if found else ""


def _evowatch_store(folder: Path) -> bool:
    """Whether ``folder`` is the root of an evowatch store (not another Zarr hierarchy)."""
    try:
        attrs = json.loads((folder / fmt.STORE_MARKER).read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False
    return fmt.schema_of(attrs) is not None


def enclosing_store(path: Path) -> Path | None:
    """The evowatch store ``path`` lies inside (a group, array or file of it, or a new path in its
    folder), as spelled where it can be, else None: a command pointed at ``run.zarr/samples``
    was told only that it is no evowatch store, and ``watch --store run.zarr/new.zarr`` made a
    store inside another, a group every plain reader of the outer one then listed."""
    if ".." in path.parts:  # `run.zarr/../new.zarr`, `../new.zarr` in a store's folder: beside it, not in it
        path = Path(os.path.abspath(path))
    above = [Path.cwd() if str(folder) == "." else folder for folder in path.parents]
    for folder in above + ([] if path.is_absolute() else list(Path.cwd().parents)):
        if _evowatch_store(folder):
            return folder
    return None


def _not_the_store(path: Path) -> str | None:
    """The one line for a path that is no store's root but part of one, or a zip archive of
    one (unzip it first), else None."""
    if (store := enclosing_store(path)) is not None:
        part = os.path.relpath(os.path.abspath(path), os.path.abspath(store))
        node = _node_type(path) if path.is_dir() else None
        return f"{path}: is {f'the {node} ' if node else ''}'{part}' inside the evowatch store {store}; point at {store}"
    try:
        names = zipfile.ZipFile(path).namelist() if path.is_file() and zipfile.is_zipfile(path) else []
    except (OSError, zipfile.BadZipFile):
        names = []
    inside = sorted({name[:-len("/zarr.json")] for name in names if name.count("/") == 1 and name.endswith("/zarr.json")})
    if fmt.STORE_MARKER in names:  # zipped from inside the store: its files at the archive's top
        folder = path.with_suffix("" if path.stem.lower().endswith(".zarr") else ".zarr")
        if folder == path:  # named as a store (store.zarr): unzip refuses to make a folder where the zip is
            folder = path.with_name(f"{path.stem}-unzipped.zarr")
        return (f"{path}: is a zip archive of a store; unzip it into a folder (unzip {shlex.quote(str(path))} -d "
                f"{shlex.quote(str(folder))}) and point at that")
    if inside:
        return (f"{path}: is a zip archive holding {fmt.listed(inside)}; unzip it (unzip {shlex.quote(str(path))}) "
                "and point at the store folder")
    return None


def _staging(path: Path) -> tuple[str, Path]:
    """The name a store at ``path`` is made under before it is renamed into place, and put
    under before it is removed (``.NAME.creating-PID@HOST``), with the stem its leftovers are
    found by."""
    where = Path(os.path.abspath(path))  # `--store .` has no name of its own
    stem = where.name[:200]  # a name near the file system's 255-byte limit: its staging name must fit too
    return stem, where.with_name(f".{stem}.creating-{owner_tag()}")


def discard_store(path: Path) -> None:
    """Remove a store folder whole or not at all: it is renamed aside first, then removed
    there. Removed in place, a second Ctrl-C (or a kill) during the removal left a part of it
    at its path, its root metadata without some arrays, which the same command then refused
    ("missing array metadata; restore the store folder", round AV). A removal cut short
    leaves the hidden name, which the next store made at the path clears."""
    _, aside = _staging(path)
    try:
        os.rename(path, aside)
    except OSError:  # gone already, or cannot be renamed (a mount point): left as it is
        return
    shutil.rmtree(aside, ignore_errors=True)
