"""Trainer scalars (losses, learning rates...) by step, read from a run directory.

Three formats, found recursively under the run directory:

- JSON lines (``*.jsonl``, OpenMMLab / MMGeneration's ``{timestamp}.log.json`` and
  mmengine's ``vis_data/scalars.json``): one
  JSON object per line with a step key (``step``, ``global_step``, ``iter``, ``iteration``,
  ``it`` or ``_step``); every other numeric field is a scalar; nested objects are
  flattened with ``/`` (``{"loss": {"D": 1}}`` -> ``loss/D``). Lines without a step (the
  environment line MMGeneration writes first) are skipped. StyleGAN2-ADA / StyleGAN3 / EDM
  ``stats.jsonl`` lines, ``{"Loss/G/loss": {"num", "mean", "std"}, "Progress/kimg": {...},
  ...}``, are read as their authors plot them (see :func:`stats_points`).
- CSV (``*.csv``) with a step column (same names, any case), as PyTorch Lightning's
  ``CSVLogger`` writes ``metrics.csv``; empty cells are skipped.
- TensorBoard event files (``events.out.tfevents.*``): the TFRecord framing and the few
  ``Event`` protobuf fields that hold scalars (``simple_value``, or a one-element numeric
  ``tensor`` of the scalars plugin; :mod:`engine.event_files`), no TensorFlow needed. A
  truncated last record (a file being written) ends the read quietly.

A watch keeps a :class:`TrainerLogs`, which reads each log on from where its last pass
stopped (:mod:`engine.appended`): tensorboard's ``EventAccumulator``, used before, re-read a
whole event file at every pass, 3.9x slower than this reader's first read, 76x its pass after
a step (``benchmarks/tensorboard_scan.py``); a 20,000-line JSON-lines log was parsed whole at
each write (``benchmarks/text_logs.py``).

:func:`read_trainer_scalars` returns ``{name: (steps, values)}``, sorted by step; when a
step repeats (a resumed run), the value read last wins (files are read in path order). A tag
logged by event files in several folders is a series per folder (see :func:`_tags_by_folder`:
``add_scalars``' ``loss_D``/``loss_G``, runs side by side).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np

from engine import listings
from engine.appended import AppendedFile
from engine.event_files import Cursor, event_summary, fields, is_event_file, plugin_name, summary_values, varint
from engine.listings import is_dir, kept_while_listed_alike
from stores.format import EXPORT_COLUMNS

log = logging.getLogger(__name__)

#: mmengine's ``LocalVisBackend`` (mmagic, MMEngine-based trainers): ``vis_data/scalars.json``, JSON lines.
MMENGINE_SCALARS = "scalars.json"
STEP_KEYS: tuple[str, ...] = ("step", "global_step", "iter", "iteration", "it", "_step", "trainer/global_step")
Scalars = dict[str, tuple[np.ndarray, np.ndarray]]
#: one log's series so far: (name, steps, values); a name may come twice (simple and tensor values)
Parts = list[tuple[str, list[int], list[float]]]

_MAX_DEPTH = 4


# --------------------------------------------------------------------------- public


def find_log_files(run_dir: str | os.PathLike) -> list[Path]:
    """JSON-lines, CSV and TensorBoard event files under ``run_dir`` (at most 4 levels deep;
    no hidden folder, no symlinked one)."""
    return sorted(_log_files_below(Path(run_dir), 0))


@kept_while_listed_alike
def _log_files_below(folder: Path, depth: int) -> tuple[Path, ...]:
    """A folder's log files and those of its folders: looked for at every pass of a watch,
    in every checkpoint's folder too (:mod:`engine.listings`)."""
    try:
        entries = listings.listed_entries(folder)
    except OSError:
        return ()
    # a file as os.walk tells them: not a folder (a link to nothing is one)
    out = [Path(entry.path) for entry in entries if is_log_name(entry.name) and not is_dir(entry)]
    if depth < _MAX_DEPTH:
        for entry in entries:
            if not entry.name.startswith(".") and not entry.is_symlink() and is_dir(entry):
                out += _log_files_below(Path(entry.path), depth + 1)
    return tuple(out)




def is_log_name(name: str) -> bool:
    """Whether a file of this name is read as a trainer log (JSON lines, CSV, TensorBoard)."""
    return name.endswith((".jsonl", ".log.json", ".csv")) or name == MMENGINE_SCALARS or is_event_file(name)


class TrainerLogs:
    """A run's trainer scalars, kept between passes of a watch: each log is read on from where
    the last pass stopped (a live run's file only grows; an event file may hold its logged
    images too), and read again whole when it was replaced or rewritten."""

    def __init__(self) -> None:
        self._events: dict[Path, _EventScalars] = {}
        self._text: dict[Path, _TextLog] = {}
        self._said: set[object] = set()

    def read(self, run_dir: str | os.PathLike, files: list[Path] | None = None) -> Scalars:
        """Every scalar series found in the run directory's logs (see the module docstring)."""
        read: list[tuple[Path, Parts]] = []
        for path in files if files is not None else find_log_files(run_dir):
            try:
                read.append((path, self._events_of(path) if is_event_file(path.name) else self._text_of(path)))
            except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:  # csv.Error: a field past its limit
                if path not in self._said:
                    self._said.add(path)
                    log.warning("skipping trainer log %s: %s", path, exc)
        renamed = _tags_by_folder(Path(run_dir), read)
        collected: dict[str, list[tuple[list[int], list[float]]]] = {}
        for path, parts in read:
            names = renamed.get(path.parent, {})
            for name, steps, values in parts:
                collected.setdefault(names.get(name, name), []).append((steps, values))
        return {name: _last_per_step(parts) for name, parts in collected.items()}

    def _events_of(self, path: Path) -> Parts:
        known = self._events.setdefault(path, _EventScalars())
        with open(path, "rb") as fh:
            known.read_on(fh)
        for news in known.damage_news(path):
            log.warning("trainer log %s", news)
        return known.parts()

    def _text_of(self, path: Path) -> Parts:
        known = self._text.setdefault(path, _TextLog(csv=path.suffix not in (".jsonl", ".json")))
        with open(path, "rb") as fh:
            return known.read_on(fh)


class _Series(dict[str, tuple[list[int], list[float]]]):
    """One log's points so far, as steps and values by name: a pass merges them as arrays
    (:func:`_last_per_step`), not point by point (0.15 s a pass for a 20,000-line log)."""

    def add(self, points: Iterable[tuple[str, int, float]]) -> _Series:
        for name, step, value in points:
            steps, values = self.setdefault(name, ([], []))
            steps.append(step)
            values.append(value)
        return self

    def parts(self) -> Parts:
        return [(name, steps, values) for name, (steps, values) in self.items()]


def _last_per_step(parts: list[tuple[list[int], list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """One series from its parts in reading order, sorted by step; a step read twice (a
    resumed run) keeps the value read last."""
    steps = np.concatenate([np.asarray(s, dtype=np.int64) for s, _ in parts])
    values = np.concatenate([np.asarray(v, dtype=np.float64) for _, v in parts])
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    last = np.append(steps[1:] != steps[:-1], True)
    return steps[last], values[last]


def _points(parts: Parts) -> list[tuple[str, int, float]]:
    return [(name, step, value) for name, steps, values in parts for step, value in zip(steps, values)]


def _tags_by_folder(root: Path, read: list[tuple[Path, Parts]]) -> dict[Path, dict[str, str]]:
    """Names for event-file tags that several folders log: one series each, not one merged
    series. ``add_scalars("loss", {"D": d, "G": g})`` writes tag ``loss`` into ``loss_D/`` and
    ``loss_G/`` (named so); runs side by side (``version_0/``, ``version_1/``) as
    ``version_0/d_loss``. Event files of one folder (a resumed run) stay one series."""
    folders: dict[str, set[Path]] = {}
    for path, parts in read:
        if is_event_file(path.name):
            for name in {name for name, _, _ in parts}:
                folders.setdefault(name, set()).add(path.parent)
    renamed: dict[Path, dict[str, str]] = {}
    for name, where in folders.items():
        if len(where) < 2:
            continue
        for folder in where:
            own = folder.name if folder.name.startswith(f"{name}_") else f"{folder.relative_to(root).as_posix()}/{name}"
            renamed.setdefault(folder, {})[name] = own.removeprefix("./")
    return renamed


def read_trainer_scalars(run_dir: str | os.PathLike, files: list[Path] | None = None) -> Scalars:
    """Every scalar series found in the run directory's logs, read once (see :class:`TrainerLogs`)."""
    return TrainerLogs().read(run_dir, files)


# --------------------------------------------------------------------------- text formats


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        return v
    if isinstance(v, int):
        try:
            return float(v)
        except OverflowError:  # an integer past float's range (JSON has no bound) ended the watch
            return None
    if isinstance(v, str) and v.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
        return float(v.strip().lower().replace("infinity", "inf"))
    return None


def _flatten(obj: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flatten(v, key + "/")
        else:
            yield key, v


def _is_step(v: float | None) -> bool:
    """A value that can be a step: finite and within int64 (``1e19`` ended the watch with an
    OverflowError when the steps were made an array)."""
    return v is not None and math.isfinite(v) and abs(v) < 2**63


def _step_of(record: dict[str, Any]) -> tuple[str, int] | None:
    lower = {str(k).lower(): k for k in record}
    for key in STEP_KEYS:
        if key in lower:
            v = _number(record[lower[key]])
            if _is_step(v):
                return lower[key], int(v)
    return None


#: The step of a ``stats.jsonl`` line: thousands of images shown, the number in ``fakes000200.png``.
STATS_STEP = "Progress/kimg"
#: ``stats.jsonl`` entries left out: the machine's clocks, counters and memory, not the model's
#: training; ADA's augmentation probability, which rises as the discriminator overfits, is kept.
STATS_SKIPPED = ("Timing/", "Resources/", "Progress/")
STATS_KEPT = ("Progress/augment",)


def stats_points(record: dict[str, Any]) -> list[tuple[str, int, float]] | None:
    """(name, step, value) triples of a StyleGAN2-ADA / StyleGAN3 / EDM ``stats.jsonl`` line,
    or None for a line in another format.

    Each statistic is ``{"num", "mean", "std"}`` over a tick; its value is the mean, under the
    statistic's own name, so ``Loss/D/loss`` and ``Loss/G/loss`` keep the roles the alert
    rules give them (flattening would make ``Loss/G/loss/std`` a generator loss too). The step
    is :data:`STATS_STEP`'s mean, truncated as the trainer names its ``fakes`` grids. A
    statistic with ``num`` 0 had no sample in the tick: its NaN mean is no NaN loss. Timing,
    resources and progress counters are left out (:data:`STATS_SKIPPED`): a viewer's scalar
    panel is for the model, and a clock that only grows would crowd it.
    """
    kimg = record.get(STATS_STEP)
    if not (isinstance(kimg, dict) and "mean" in kimg):
        return None
    step = _number(kimg["mean"])
    if not _is_step(step):
        return []
    out = []
    for name, stat in record.items():
        if not isinstance(stat, dict) or stat.get("num") == 0:
            continue
        if name.startswith(STATS_SKIPPED) and name not in STATS_KEPT:
            continue
        value = _number(stat.get("mean"))
        if value is not None:
            out.append((name, int(step), value))
    return out


def _jsonl_points(lines: Iterable[str]) -> list[tuple[str, int, float]]:
    """(name, step, value) triples of JSON lines; lines without a step or not JSON are skipped."""
    out = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)  # accepts NaN / Infinity
        except ValueError:
            continue  # a half-written last line, or a non-JSON line
        if not isinstance(rec, dict):
            continue
        stats = stats_points(rec)
        if stats is not None:
            out.extend(stats)
            continue
        flat = dict(_flatten(rec))
        found = _step_of(flat)
        if found is None:
            continue
        _, step = found
        for k, v in flat.items():
            num = _number(v)
            if k.lower() not in STEP_KEYS and num is not None:  # mmengine logs iter beside step
                out.append((k, step, num))
    return out


def _csv_points(rows: Iterable[list[str]], header: list[str]) -> list[tuple[str, int, float]]:
    """(name, step, value) triples of CSV rows under ``header``; empty without a step column,
    and for ``evowatch export``'s table (its 768 embedding columns read as 768 scalars)."""
    step_column = next((i for key in STEP_KEYS for i, name in enumerate(header) if name.strip().lower() == key), None)
    if step_column is None or tuple(header[:len(EXPORT_COLUMNS)]) == EXPORT_COLUMNS:
        return []
    out = []
    for row in rows:
        try:
            step = float(row[step_column])
        except (IndexError, ValueError):
            continue
        if not _is_step(step):
            continue
        step = int(step)
        for i, (name, v) in enumerate(zip(header, row)):
            if i == step_column or v.strip() == "":
                continue
            try:
                out.append((name, step, float(v)))
            except ValueError:
                continue
    return out


@dataclass
class _TextLog(AppendedFile):
    """What one JSON-lines or CSV log holds so far: the points of its whole lines (a CSV's
    header first), read on from where the last pass stopped. A 20,000-line log was parsed
    whole at every write (0.5 s a time, at most every 2 s: a quarter of a core)."""

    csv: bool = False
    header: list[str] | None = None
    series: _Series = field(default_factory=_Series)
    #: the hash of the bytes read (up to :attr:`end`), and the (size, mtime) they were read at
    read_hash: Any = field(default_factory=hashlib.blake2b)
    version: tuple[int, int] = (-1, -1)

    def read_on(self, fh: BinaryIO) -> Parts:
        """Every series of the file: the points kept, those of the lines added since, and those
        of a last line not ended yet (read, not kept: it may still be written on)."""
        if self.rewind_if_rewritten(fh):
            self.header, self.series, self.read_hash = None, _Series(), hashlib.blake2b()
        st = os.fstat(fh.fileno())
        self.version = (st.st_size, st.st_mtime_ns)
        fh.seek(self.end)
        added = fh.read()
        whole = added[:added.rfind(b"\n") + 1]
        if self.csv and whole.count(b'"') % 2:  # a quoted field goes on past the last newline
            whole = b""
        # errors="replace": one Latin-1 byte in a run name or a prompt lost the whole log before
        self.series.add(self._parse(whole.decode("utf-8", "replace"), keep=True))
        self.end, self.tail = self.end + len(whole), (self.tail + whole)[-64:]
        self.read_hash.update(whole)
        unfinished = self._parse(added[len(whole):].decode("utf-8", "replace"), keep=False)
        return self.series.parts() + _Series().add(unfinished).parts()

    def still_there(self, fh: BinaryIO, st: os.stat_result) -> bool:
        """The last bytes read, and, once the file changed, all of them: a trainer restarted
        from scratch rewrote its log in place, and lines of one width left the last bytes as
        they were (hashing them costs a few ms a MB, a small part of parsing them)."""
        if not super().still_there(fh, st):
            return False
        if (st.st_size, st.st_mtime_ns) == self.version:
            return True
        fh.seek(0)
        again, left = hashlib.blake2b(), self.end
        while left > 0 and (block := fh.read(min(left, 1 << 22))):
            again.update(block)
            left -= len(block)
        return again.digest() == self.read_hash.digest()

    def _parse(self, text: str, keep: bool) -> list[tuple[str, int, float]]:
        text = text.removeprefix("\ufeff")  # a byte-order mark (pandas' encoding="utf-8-sig") hid the step column
        if not self.csv:
            return _jsonl_points(text.split("\n"))
        rows = csv.reader(io.StringIO(text, newline=""))
        header = self.header
        if header is None:
            header = next(rows, None)
            if header is None:
                return []
            if keep:
                self.header = header
        return _csv_points(rows, header)


def read_jsonl(path: Path) -> list[tuple[str, int, float]]:
    """(name, step, value) triples of a JSON-lines log; lines without a step or not JSON are skipped."""
    with open(path, "rb") as fh:
        return _points(_TextLog().read_on(fh))


def read_csv(path: Path) -> list[tuple[str, int, float]]:
    """(name, step, value) triples of a CSV log with a step column; other files yield nothing."""
    with open(path, "rb") as fh:
        return _points(_TextLog(csv=True).read_on(fh))


# --------------------------------------------------------------------------- TensorBoard


_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8", 19: "<f2"}  # TensorProto.dtype -> numpy


def _signed(varint_value: int) -> float:
    """An int32/int64 field's value: a negative one is written as its 64-bit two's complement."""
    return float(varint_value - (1 << 64) if varint_value >= 1 << 63 else varint_value)


def _tensor_value(buf: bytes) -> float | None:
    """The value of a one-element numeric TensorProto, else None."""
    dtype, vals = None, []
    for number, wire, val in fields(buf):
        if number == 1 and wire == 0:
            dtype = val
        elif number == 4 and wire == 2 and dtype in _DTYPES:  # tensor_content
            vals.extend(np.frombuffer(val, dtype=_DTYPES[dtype]).tolist())
        elif number == 5:  # float_val (packed or not)
            vals.extend(np.frombuffer(val, dtype="<f4").tolist())
        elif number == 6:  # double_val
            vals.extend(np.frombuffer(val, dtype="<f8").tolist())
        elif number in (7, 10) and wire == 0:  # int_val / int64_val, unpacked
            vals.append(_signed(val))
        elif number in (7, 10) and wire == 2:  # packed varints
            j = 0
            while j < len(val):
                v, j = varint(val, j)
                vals.append(_signed(v))
    if dtype is not None and dtype not in _DTYPES:
        return None
    return float(vals[0]) if len(vals) == 1 else None


@dataclass
class _EventScalars(Cursor):
    """What one event file holds so far: its scalars, and where the next read starts."""

    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin (sent with a tag's first value)
    simple: _Series = field(default_factory=_Series)
    tensors: _Series = field(default_factory=_Series)  # kept if their plugin is "scalars"

    def read_on(self, fh: BinaryIO) -> None:
        """Read the records appended since the last call (all of them again if the file was
        rewritten); damage is read past (:meth:`Cursor.records_from`)."""
        if self.rewind_if_rewritten(fh):
            self.plugins.clear()
            self.simple.clear()
            self.tensors.clear()
        for offset, record in self.records_from(fh):
            try:
                self._add(record)
            except ValueError as exc:  # sound framing (CRCs), no event inside (a foreign or buggy writer): said and
                self.damage.append((offset, f"not an event: {exc}"))  # read past as damage is; the file was lost

    def _add(self, record: bytes) -> None:
        step, _, summary = event_summary(record)
        for value in summary_values(summary) if summary is not None else ():
            tag = value[1].decode("utf-8", "replace") if isinstance(value.get(1), bytes) else None
            if tag is None:
                continue
            if isinstance(value.get(9), bytes) and (name := plugin_name(value[9])) is not None:
                self.plugins.setdefault(tag, name)
            if isinstance(value.get(2), bytes) and len(value[2]) == 4:
                self.simple.add([(tag, step, float(struct.unpack("<f", value[2])[0]))])
            elif isinstance(value.get(8), bytes) and (number := _tensor_value(value[8])) is not None:
                self.tensors.add([(tag, step, number)])

    def parts(self) -> Parts:
        return self.simple.parts() + [p for p in self.tensors.parts() if self.plugins.get(p[0], "scalars") == "scalars"]


def read_tensorboard(path: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) triples of one event file: ``simple_value`` scalars and one-element
    tensors of the scalars plugin (TensorFlow 2's ``tf.summary.scalar``)."""
    events = _EventScalars()
    with open(path, "rb") as fh:
        events.read_on(fh)
    return _points(events.parts())
