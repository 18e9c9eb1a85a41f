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
  truncated last record (a file being written) ends the read quietly. A watch keeps a
  :class:`TrainerLogs`, which reads each event file on from where its last pass stopped:
  tensorboard's ``EventAccumulator``, used before, re-read the whole file at every pass, 3.9x
  slower than this reader's first read, 76x its pass after a step (``benchmarks/tensorboard_scan.py``).

:func:`read_trainer_scalars` returns ``{name: (steps, values)}``, sorted by step; when a
step repeats (a resumed run), the value read last wins (files are read in path order). A tag
logged by event files in several folders is a series per folder (see :func:`_tags_by_folder`:
``add_scalars``' ``loss_D``/``loss_G``, runs side by side).
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from engine.event_files import Cursor, event_summary, fields, is_event_file, plugin_name, summary_values, varint

log = logging.getLogger(__name__)

#: mmengine's ``LocalVisBackend`` (mmagic, MMEngine-based trainers): ``vis_data/scalars.json``, JSON lines.
MMENGINE_SCALARS = "scalars.json"
STEP_KEYS: tuple[str, ...] = ("step", "global_step", "iter", "iteration", "it", "_step", "trainer/global_step")
Scalars = dict[str, tuple[np.ndarray, np.ndarray]]

_MAX_DEPTH = 4


# --------------------------------------------------------------------------- public


def find_log_files(run_dir: str | os.PathLike) -> list[Path]:
    """JSON-lines, CSV and TensorBoard event files under ``run_dir`` (at most 4 levels deep)."""
    root = Path(run_dir)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= _MAX_DEPTH:
            dirnames[:] = []
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / name for name in sorted(filenames) if is_log_name(name)]
    return sorted(out)


def is_log_name(name: str) -> bool:
    """Whether a file of this name is read as a trainer log (JSON lines, CSV, TensorBoard)."""
    return name.endswith((".jsonl", ".log.json", ".csv")) or name == MMENGINE_SCALARS or is_event_file(name)


class TrainerLogs:
    """A run's trainer scalars, kept between passes of a watch: an event file is read on from
    where the last pass stopped (a live run's file only grows, and may hold its logged images
    too), a text log again when its size or time changed."""

    def __init__(self) -> None:
        self._events: dict[Path, _EventScalars] = {}
        self._text: dict[Path, tuple[tuple[int, int], list[tuple[str, int, float]]]] = {}
        self._said: set[object] = set()

    def read(self, run_dir: str | os.PathLike, files: list[Path] | None = None) -> Scalars:
        """Every scalar series found in the run directory's logs (see the module docstring)."""
        read: list[tuple[Path, list[tuple[str, int, float]]]] = []
        for path in files if files is not None else find_log_files(run_dir):
            try:
                read.append((path, self._events_of(path) if is_event_file(path.name) else self._text_of(path)))
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                if path not in self._said:
                    self._said.add(path)
                    log.warning("skipping trainer log %s: %s", path, exc)
        renamed = _tags_by_folder(Path(run_dir), read)
        merged: dict[str, dict[int, float]] = {}
        for path, points in read:
            names = renamed.get(path.parent, {})
            for name, step, value in points:
                merged.setdefault(names.get(name, name), {})[int(step)] = float(value)
        out: Scalars = {}
        for name, by_step in merged.items():
            steps = np.array(sorted(by_step), dtype=np.int64)
            out[name] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
        return out

    def _events_of(self, path: Path) -> list[tuple[str, int, float]]:
        known = self._events.setdefault(path, _EventScalars())
        with open(path, "rb") as fh:
            known.read_on(fh)
        for news in known.damage_news(path):
            log.warning("trainer log %s", news)
        return known.points()

    def _text_of(self, path: Path) -> list[tuple[str, int, float]]:
        st = os.stat(path)
        version = (st.st_size, st.st_mtime_ns)
        cached = self._text.get(path)
        if cached is None or cached[0] != version:
            cached = self._text[path] = (version, read_jsonl(path) if path.suffix in (".jsonl", ".json") else read_csv(path))
        return cached[1]


def _tags_by_folder(root: Path, read: list[tuple[Path, list[tuple[str, int, float]]]]) -> dict[Path, dict[str, str]]:
    """Names for event-file tags that several folders log: one series each, not one merged
    series. ``add_scalars("loss", {"D": d, "G": g})`` writes tag ``loss`` into ``loss_D/`` and
    ``loss_G/`` (named so); runs side by side (``version_0/``, ``version_1/``) as
    ``version_0/d_loss``. Event files of one folder (a resumed run) stay one series."""
    folders: dict[str, set[Path]] = {}
    for path, points in read:
        if is_event_file(path.name):
            for name in {name for name, _, _ in points}:
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
    if isinstance(v, (int, float)):
        return float(v)
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


def _step_of(record: dict[str, Any]) -> tuple[str, int] | None:
    lower = {str(k).lower(): k for k in record}
    for key in STEP_KEYS:
        if key in lower:
            v = _number(record[lower[key]])
            if v is not None and math.isfinite(v):
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
    if step is None or not math.isfinite(step):
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


def read_jsonl(path: Path) -> list[tuple[str, int, float]]:
    """(name, step, value) triples of a JSON-lines log; lines without a step or not JSON are skipped."""
    out = []
    # errors="replace": one Latin-1 byte in a run name or a prompt lost the whole log before
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
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


def read_csv(path: Path) -> list[tuple[str, int, float]]:
    """(name, step, value) triples of a CSV log with a step column; other files yield nothing."""
    out = []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        step_key = next((fk for key in STEP_KEYS for fk in fields if fk.strip().lower() == key), None)
        if step_key is None:
            return []
        for row in reader:
            try:
                step = int(float(row[step_key]))
            except (TypeError, ValueError):
                continue
            for k, v in row.items():
                if k in (step_key, None) or v is None or v.strip() == "":
                    continue
                try:
                    out.append((k, step, float(v)))
                except ValueError:
                    continue
    return out


# --------------------------------------------------------------------------- TensorBoard


_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8", 19: "<f2"}  # TensorProto.dtype -> numpy


def _tensor_value(buf: bytes) -> float | None:
    """The value of a one-element numeric TensorProto, else None."""
    dtype, vals = None, []
    for field, wire, val in fields(buf):
        if field == 1 and wire == 0:
            dtype = val
        elif field == 4 and wire == 2 and dtype in _DTYPES:  # tensor_content
            vals.extend(np.frombuffer(val, dtype=_DTYPES[dtype]).tolist())
        elif field == 5:  # float_val (packed or not)
            vals.extend(np.frombuffer(val, dtype="<f4").tolist())
        elif field == 6:  # double_val
            vals.extend(np.frombuffer(val, dtype="<f8").tolist())
        elif field in (7, 10) and wire == 0:  # int_val / int64_val, unpacked
            vals.append(float(val))
        elif field in (7, 10) and wire == 2:  # packed varints
            j = 0
            while j < len(val):
                v, j = varint(val, j)
                vals.append(float(v - (1 << 64) if v >= 1 << 63 else v))
    if dtype is not None and dtype not in _DTYPES:
        return None
    return float(vals[0]) if len(vals) == 1 else None


@dataclass
class _EventScalars(Cursor):
    """What one event file holds so far: its scalars, and where the next read starts."""

    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin (sent with a tag's first value)
    simple: list[tuple[str, int, float]] = field(default_factory=list)
    tensors: list[tuple[str, int, float]] = field(default_factory=list)  # kept if their plugin is "scalars"

    def read_on(self, fh: BinaryIO) -> None:
        """Read the records appended since the last call (all of them again if the file was
        rewritten); damage is read past (:meth:`Cursor.records_from`)."""
        if self.rewind_if_rewritten(fh):
            self.plugins.clear()
            self.simple.clear()
            self.tensors.clear()
        for _, record in self.records_from(fh):
            step, _, summary = event_summary(record)
            for value in summary_values(summary) if summary is not None else ():
                tag = value[1].decode("utf-8", "replace") if isinstance(value.get(1), bytes) else None
                if tag is None:
                    continue
                if isinstance(value.get(9), bytes) and (name := plugin_name(value[9])) is not None:
                    self.plugins.setdefault(tag, name)
                if isinstance(value.get(2), bytes) and len(value[2]) == 4:
                    self.simple.append((tag, step, float(struct.unpack("<f", value[2])[0])))
                elif isinstance(value.get(8), bytes) and (number := _tensor_value(value[8])) is not None:
                    self.tensors.append((tag, step, number))

    def points(self) -> list[tuple[str, int, float]]:
        return self.simple + [p for p in self.tensors if self.plugins.get(p[0], "scalars") == "scalars"]


def read_tensorboard(path: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) triples of one event file: ``simple_value`` scalars and one-element
    tensors of the scalars plugin (TensorFlow 2's ``tf.summary.scalar``)."""
    events = _EventScalars()
    with open(path, "rb") as fh:
        events.read_on(fh)
    return events.points()
