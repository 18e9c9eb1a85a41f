"""An OSError a command met (a full disk, an unwritable store, a vanished file) said in one line with its fix."""
from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

from stores.errors import NO_ROOM


def _os_error(exc: OSError, args: argparse.Namespace) -> str:
    """A full disk or an unwritable store as one line naming the store and what to do."""
    store, out = getattr(args, "store", None), getattr(args, "out", None)
    if args.command == "export" and out is not None and exc.filename is not None and Path(exc.filename) == Path(out):
        return f"{out}: cannot write the export there ({exc.strerror}); choose another --out"
    if store is None or exc.errno not in NO_ROOM | {errno.EROFS, errno.EACCES, errno.EPERM}:
        return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM) and exc.filename and not _of_the_store(exc.filename, store):
        # a run's file made unreadable between a scan and its reading: "cannot write there ...
        # choose a writable --store" sent the user to the store
        return f"{exc.filename}: {exc.strerror}; fix its permissions and run the same command again"
    if exc.errno in NO_ROOM:
        kept = ("everything committed before is kept" if Path(store).exists()
                else "nothing was stored yet")  # a store that never committed is not left behind
        if exc.errno == errno.EFBIG:  # a file size limit, not a full disk (round BE)
            return f"{store}: a file reached the size limit ({exc.strerror}); {kept}: raise the limit (ulimit -f) " \
                   "and run the same command again to resume"
        return f"{store}: no space left on the device ({exc.strerror}); {kept}: free some space and run the same " \
               "command again to resume"
    fix = "choose a writable --store" if args.command == "watch" else "copy the store where it can be written"
    return f"{store}: cannot write there ({exc.strerror}: {exc.filename or store}); {fix}"


def _of_the_store(filename: str | os.PathLike, store: str | os.PathLike) -> bool:
    """Whether a file is the store's: in it, or its lock file or staging folder beside it."""
    path, root = os.path.realpath(filename), os.path.realpath(store)
    return path == root or path.startswith(root + os.sep) or (
        os.path.dirname(path) == os.path.dirname(root) and os.path.basename(root) in os.path.basename(path))
