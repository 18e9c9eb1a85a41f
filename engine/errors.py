"""One small error hierarchy: the CLI turns each into a non-zero exit and one line on stderr."""
from __future__ import annotations


class EvowatchError(Exception):
    """Base class: the message is the one line a user sees, naming the file and the fix."""


class StoreFormatError(EvowatchError, ValueError):
    """The store is missing, malformed, or from an unsupported schema version."""


class EncoderMismatchError(EvowatchError):
    """A store written with one encoder is asked to take vectors from another."""


class StoreLockedError(EvowatchError):
    """Another process is already writing to this store."""


class WeightsNotFoundError(EvowatchError):
    """Pretrained encoder weights are not available locally."""


class DiscoveryError(EvowatchError, ValueError):
    """The run directory or a sample file cannot be interpreted."""
