"""One small error hierarchy: the CLI turns each into a non-zero exit and one line on stderr."""
from __future__ import annotations

import pickle

from stores.errors import EncoderMismatchError, EvowatchError, StoreFormatError, StoreLockedError

__all__ = [
    "EvowatchError", "StoreFormatError", "EncoderMismatchError", "StoreLockedError",
    "WeightsNotFoundError", "DiscoveryError", "GONE", "sendable",
]


#: A path gone from under a read: its file deleted, or a folder on its way deleted or replaced
#: by a file (a checkpoint folder swapped for an archive of it: NotADirectoryError, round BE).
GONE: tuple[type[OSError], ...] = (FileNotFoundError, NotADirectoryError)


class WeightsNotFoundError(EvowatchError):
    """Pretrained encoder weights are not available locally."""


class DiscoveryError(EvowatchError, ValueError):
    """The run directory or a sample file cannot be interpreted."""


class EncoderSpecError(EvowatchError, ValueError):
    """An ``--encoder``/``--device`` value, model name, tag or model config cannot be used."""


def message_lines(exc: BaseException) -> list[str]:
    """An exception's message as its non-empty lines, stripped: what a one-line report of it
    picks from (torch and open_clip put what failed on the line after "Error(s) in ...:")."""
    return [line.strip() for line in str(exc).splitlines() if line.strip()]


def sendable(exc: BaseException) -> BaseException:
    """``exc``, or a plain error saying the same when it does not pickle: what a child process
    sends its parent, which re-raises it."""
    try:
        pickle.loads(pickle.dumps(exc))  # an __init__ of other arguments pickles, then fails to unpickle
        return exc
    except Exception:
        return EvowatchError(f"{type(exc).__name__}: {exc}")
