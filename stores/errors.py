"""Errors raised by the store; the base class is shared with the engine (engine.errors)."""
from __future__ import annotations

import errno

#: A write refused for room: a full disk, a quota, or a file size limit (RLIMIT_FSIZE, `ulimit -f`,
#: which batch schedulers set). The store's commits stand; freed room, the same command resumes.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class EvowatchError(Exception):
    """Base class: the message is the one line a user sees, naming the file and the fix."""


class StoreFormatError(EvowatchError, ValueError):
    """The store is missing, malformed, or from an unsupported schema version."""


class EncoderMismatchError(EvowatchError):
    """A store written with one encoder is asked to take vectors from another."""


class StoreLockedError(EvowatchError):
    """Another process is already writing to this store."""
