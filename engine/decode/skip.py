"""Why a sample file is not used: :class:`SkipFile` and the refusals raised before any decoding."""
from __future__ import annotations

import os
from pathlib import Path


from engine.errors import GONE


class SkipFile(Exception):
    """A sample file that cannot be used; the message is the :class:`SkippedFile` reason.
    ``rows``: the samples a tensor file holds, read or not, so that the next file's instance
    ids start after them (a last row gone NaN shifted them, and trails joined other samples)."""

    rows: int = 0
    misfit: bool = False  # the file does not fit the grid the options force (SkippedFile.misfit)
    diverged: bool = False  # read, its values NaN or infinite (SkippedFile.diverged)


def _diverged(what: str) -> SkipFile:
    """The refusal of samples read whole whose values are NaN or infinite: the run's own output,
    a new version of a checkpoint even so (not a torn file that keeps the earlier one current)."""
    exc = SkipFile(f"{what}: a diverged generator?")
    exc.diverged = True
    return exc


#: The reason a file deleted between the scan and its reading is skipped (rotation).
VANISHED = "vanished before it could be read"


def _require_content(path: Path) -> None:
    """Skip files that vanished, are empty (a trainer just created them) or may not be read
    before decoding them: a decoder would call an unreadable file corrupt."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
    except GONE:
        raise SkipFile(VANISHED) from None
    except PermissionError as exc:
        raise SkipFile(f"cannot be read ({exc.strerror}): fix its permissions; it is read again when watch restarts") from None
    if size == 0:
        raise SkipFile("empty file (0 bytes), maybe still being written")

