"""Errors raised by the store; the base class is shared with the engine (engine.errors)."""
from __future__ import annotations


class EvowatchError(Exception):
    """Base class: the message is the one line a user sees, naming the file and the fix."""


class StoreFormatError(EvowatchError, ValueError):
    """The store is missing, malformed, or from an unsupported schema version."""


class EncoderMismatchError(EvowatchError):
    """A store written with one encoder is asked to take vectors from another."""


class StoreLockedError(EvowatchError):
    """Another process is already writing to this store."""
