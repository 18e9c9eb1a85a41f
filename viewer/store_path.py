"""Whether a viewer's STORE path holds a store, can still become one, or never will.

``evowatch view STORE`` is often started right after ``evowatch watch RUN --store STORE``,
before the watcher has created the store (it does so atomically, by renaming a finished
empty store into place). Like TensorBoard on a log folder that is still empty, the viewer
then waits for it instead of refusing. What cannot become a store is still refused: a file,
a folder with other contents, or a path whose parent folder does not exist (a typo).
"""
from __future__ import annotations

from pathlib import Path

from stores.errors import StoreFormatError
from stores.zarr_store import StoreReader, enclosing_store


def awaited(path: str | Path) -> bool:
    """No store at ``path`` yet, but ``evowatch watch --store PATH`` can create one there:
    the path is absent (in an existing folder, not inside another store) or an empty folder."""
    path = Path(path)
    if enclosing_store(path) is not None:  # `watch --store` refuses it
        return False
    if path.is_dir():
        return not any(path.iterdir())
    return not path.exists() and path.parent.is_dir()


def refusal(path: str | Path) -> str | None:
    """Why ``evowatch view PATH`` refuses ``path`` (one line), or None: a readable store, or
    a place where a store can still appear."""
    path = Path(path)
    try:
        StoreReader(path)
    except StoreFormatError as exc:
        if awaited(path):
            return None
        if not path.exists() and not path.parent.is_dir():
            return f"{path}: no such store, and no folder {path.parent} to hold one; check the path"
        return str(exc)
    return None


def waiting_text(path: str | Path) -> str:
    """The page's line while no store exists at ``path`` yet."""
    return (f"No store at {path} yet: waiting for `evowatch watch RUN_DIR --store {path}` to create it "
            "(the page shows it once it appears).")
