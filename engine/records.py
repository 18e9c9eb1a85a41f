"""Frozen values passed between discovery, the pipeline and the store."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Kind = Literal["generated", "real", "holdout"]
KINDS: tuple[Kind, ...] = ("generated", "real", "holdout")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One checkpoint of a run as found on disk.

    ``source`` is the checkpoint's identity inside the run directory (a folder or a file,
    relative, POSIX separators); ``files`` are the sample files it holds, sorted.
    Real/held-out reference sets are checkpoints too, with ``step == -1``.
    """

    step: int
    source: str
    files: tuple[Path, ...]
    kind: Kind = "generated"
    root: Path = Path(".")


@dataclass(frozen=True, slots=True)
class Sample:
    """One decoded sample image, RGB uint8 (H, W, 3), ready for encoding and thumbnailing."""

    image: np.ndarray
    instance: int
    path: str
    label: str | None = None
    latent: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file that could not be decoded: recorded as a warning in the store, never fatal.
    ``retry``: the failure is the reader's, not the file's (a ``--sampler`` raised: a flag
    missing, the GPU out of memory), so nothing of its checkpoint is stored and the next run
    reads it again; a stored empty checkpoint was never sampled again. ``misfit``: the file
    does not fit the grid the options force (--grid, --tile-size, --tile-rows/--tile-cols)."""

    path: str
    reason: str
    retry: bool = False
    misfit: bool = False
    #: read, its values NaN or infinite (a diverged generator's): a new version of its
    #: checkpoint all the same, where a torn file keeps the earlier version current
    diverged: bool = False
