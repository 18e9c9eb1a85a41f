"""Which checkpoints are current: a checkpoint's source read again another way (a folder, a run
of folders, a per-step pattern, a reference set of its kind, a stand-in for the trainer's files)
supersedes the earlier reading, worked out from the whole table (:func:`superseded_flags`) or
one commit at a time (:class:`_CurrentSources`)."""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import numpy as np

from stores import format as fmt


def _folders_above(source: str) -> list[str]:
    """The folders a checkpoint's source lies in: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = source.split("/")
    return ["/".join(parts[:k]) for k in range(1, len(parts))]


def _folder_and_name(source: str) -> tuple[str, str]:
    folder, _, name = source.rpartition("/")
    return folder, name


def is_pattern(name: str) -> bool:
    """Whether a source's name is a per-step pattern standing for several files (W&B's and
    MLflow's have only ``?`` runs, their hashes)."""
    return "*" in name or "?" in name or fmt.SAMPLE_KEY in name


@functools.lru_cache(maxsize=1024)
def pattern_regex(name: str) -> re.Pattern:
    """A per-step pattern source's name (``step1000_*.png``: its ``*`` a sample index, group
    1; its ``?`` runs a date, time or hash, with a seed after it or not: kohya-ss's
    ``mylora_000500_*_??????????????.png``; its ``{sample}`` a prompt or a class, group 1) as a
    regular expression for its files' names."""
    escaped = re.sub(r"(?:\\\?)+", ".+", re.escape(name))
    return re.compile(escaped.replace(re.escape(fmt.SAMPLE_KEY), "(.+)", 1).replace(r"\*", r"(\d+)", 1))


class _Names:
    """Names of sources directly in one folder, patterns apart: a name is compared only with
    those of the other kind (a folder of 1,000 grids holds no pattern to compare with)."""

    def __init__(self) -> None:
        self.patterns: set[str] = set()
        self.others: set[str] = set()

    def _side(self, name: str) -> set[str]:
        return self.patterns if is_pattern(name) else self.others

    def add(self, name: str) -> None:
        self._side(name).add(name)

    def discard(self, name: str) -> None:
        self._side(name).discard(name)

    def same_files(self, name: str) -> set[str]:
        """The names that are ``name``'s files read the other way (a pattern and one of its files)."""
        if is_pattern(name):
            return {other for other in self.others if pattern_regex(name).fullmatch(other)}
        return {other for other in self.patterns if pattern_regex(other).fullmatch(name)}


def _series_cover(source: str) -> Callable[[str], bool] | None:
    """For a checkpoint across per-sample folders (``samples/{sample}/step_1000.png``): what
    tells an earlier reading of the same files, before they were seen as one (a folder
    ``samples/cat``, a file ``samples/cat/step_1000.png``); None for other sources."""
    parts = source.split("/")
    at = next((i for i, part in enumerate(parts[:-1]) if part.startswith(fmt.SAMPLE_KEY)), None)  # {sample} - no-ema too
    if at is None:
        return None
    head, name = parts[:at], parts[-1] if len(parts) == at + 2 else None

    def covers(other: str) -> bool:  # the name's regex made only when asked (one per checkpoint was most of a pass)
        other_parts = other.split("/")
        return (fmt.SAMPLE_KEY not in other and other_parts[:at] == head
                and (len(other_parts) == at + 1 or (name is not None and len(other_parts) == at + 2
                                                    and bool(pattern_regex(name).fullmatch(other_parts[-1])))))
    return covers


def _reading_key(source: str) -> str:
    """What a checkpoint is a reading of: its source, but one slot per reference kind (a
    ``--real`` folder given instead of another replaces it: metrics compare with one set)."""
    for kind in fmt.KINDS[1:]:
        if source.startswith(f"{kind}:"):
            return f"{kind}:"
    return source


def superseded_flags(checkpoints: dict[str, np.ndarray]) -> np.ndarray:
    """A checkpoint is superseded when a later committed one has the same source, or a source
    inside it or around it, or a per-step pattern covering it or covered by it: the same files
    read again once the run's layout became clear (a lone ``version_0/`` first read as one
    checkpoint, later as a run of ``version_0/images/epoch=3-step=1000/`` ...; a flat folder's
    ``step1000_00.png`` first alone, later in ``step1000_*.png``); or, for a reference set,
    a later one of its kind; or, for images logged to TensorBoard or a tracker's copies, a
    later checkpoint of the trainer's own files (:func:`stores.format.stand_in_for_files`)."""
    sources = checkpoints["source"]
    flags = np.zeros(len(sources), bool)
    own_later = False  # a later checkpoint read from the trainer's own sample files
    later: set[str] = set()
    around_later: set[str] = set()  # the folders later sources lie in
    names_later: dict[str, _Names] = {}  # folder -> names of later sources in it
    series_later: list[Callable[[str], bool]] = []  # later sources across per-sample folders
    for i in range(len(sources) - 1, -1, -1):
        source = _reading_key(str(sources[i]))
        above = _folders_above(source)
        folder, name = _folder_and_name(source)
        flags[i] = (source in later or source in around_later or not later.isdisjoint(above)
                    or bool(folder in names_later and names_later[folder].same_files(name))
                    or fmt.SAMPLE_KEY not in source and any(covers(source) for covers in series_later)  # never one
                    # across per-sample folders itself: asking them all made a pass O(checkpoints^2), 0.67 s at 2,000
                    or own_later and fmt.stand_in_for_files(source) is not None)
        own_later = own_later or _own_files(source)
        if covers := _series_cover(source):
            series_later.append(covers)
        later.add(source)
        around_later.update(above)
        names_later.setdefault(folder, _Names()).add(name)
    return flags


def _own_files(source: str) -> bool:
    """Whether a reading key is a generated checkpoint of the trainer's own files (no
    reference set, no stand-in for them)."""
    return not source.endswith(":") and fmt.stand_in_for_files(source) is None


def _replacements(checkpoints: dict[str, np.ndarray], flags: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """``superseded_by`` for the superseded ``flags``: the stored replacement where it is a later
    checkpoint, else the next reading of the same source (a reference set: of its kind), else
    of the same step, else the next checkpoint (0 was written: a renamed ``tmp-`` folder's step
    named checkpoint 0, another step's, as its replacement; round AQ); -1 for the current ones."""
    n = len(flags)
    out = np.full(n, -1, np.int32)
    next_of_source: dict[str, int] = {}
    next_of_step: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        source, step = _reading_key(str(checkpoints["source"][i])), int(checkpoints["step"][i])
        if flags[i]:
            out[i] = stored[i] if i < stored[i] < n else next_of_source.get(source, next_of_step.get(step, i + 1))
        next_of_source[source], next_of_step[step] = i, i
    return out


class _CurrentSources:
    """The current checkpoint of each source, kept up to date as checkpoints are committed:
    :func:`superseded_flags` one commit at a time."""

    def __init__(self, sources: Sequence[str], superseded: np.ndarray) -> None:
        self._index: dict[str, int] = {}
        self._below: dict[str, set[str]] = {}  # folder -> current sources inside it
        self._names: dict[str, _Names] = {}  # folder -> names of current sources directly in it
        self._stand_ins: set[str] = set()  # current sources standing in for the trainer's own files
        self.count = len(sources)  # the checkpoints it has seen
        for i, (source, old) in enumerate(zip(sources, superseded)):
            if not old:
                self._add(_reading_key(str(source)), i)

    def indices(self) -> list[int]:
        """The current checkpoints' indices, in no particular order."""
        return list(self._index.values())

    def _add(self, source: str, index: int) -> None:
        self._index[source] = index
        for folder in _folders_above(source):
            self._below.setdefault(folder, set()).add(source)
        folder, name = _folder_and_name(source)
        self._names.setdefault(folder, _Names()).add(name)
        if fmt.stand_in_for_files(source) is not None:
            self._stand_ins.add(source)

    def _remove(self, source: str) -> int:
        for folder in _folders_above(source):
            self._below[folder].discard(source)
        folder, name = _folder_and_name(source)
        self._names[folder].discard(name)
        self._stand_ins.discard(source)
        return self._index.pop(source)

    def commit(self, source: str, index: int) -> list[int]:
        """Make checkpoint ``index`` the current one of ``source``; the checkpoints it supersedes."""
        source = _reading_key(source)
        folder, name = _folder_and_name(source)
        gone = {s for s in [source, *_folders_above(source)] if s in self._index} | self._below.get(source, set())
        if folder in self._names:
            gone |= {f"{folder}/{other}" if folder else other for other in self._names[folder].same_files(name)}
        if covers := _series_cover(source):
            gone |= {other for other in self._index if covers(other)}
        if _own_files(source):
            gone |= self._stand_ins
        old = [self._remove(s) for s in gone]
        self._add(source, index)
        self.count = max(self.count, index + 1)
        return old
