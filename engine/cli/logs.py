"""The CLI's logging: its levels (-q, -v), its one-line format, libraries' info lines kept out."""
from __future__ import annotations

import argparse
import logging
import sys

from stores.format import one_line, stored_text

log = logging.getLogger("evowatch")

#: Loggers whose info lines are evowatch's progress; a library's info lines (zarr logs every
#: array it opens, torch its cache statistics at exit) are not shown, its warnings are.
_OUR_LOGGERS = ("evowatch", "engine", "stores", "viewer", "examples")


class _StoredNames(logging.Formatter):
    """Lines that spell a file name as the store and `export` do: its bytes that are not
    UTF-8 as ``\\xff`` (round AN: the log said ``\\udcff`` for the same file), each message
    one line (:func:`one_line`; a traceback at ``-v`` keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        return stored_text(super().format(record))


def _configure_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, format="evowatch: %(message)s", stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_StoredNames("evowatch: %(message)s"))
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    for ours in _OUR_LOGGERS:
        logging.getLogger(ours).setLevel(level)
    if not args.verbose:
        for noisy in ("openTSNE", "faiss", "faiss.loader", "urllib3", "httpx", "huggingface_hub", "timm"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
