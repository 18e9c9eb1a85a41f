"""TensorBoard event files without TensorFlow: the TFRecord framing and the few protobuf fields read.

An event file (``events.out.tfevents.*``) is a sequence of records, each
``length (u64) | masked CRC-32C of length (u32) | data | masked CRC-32C of data (u32)``, each
``data`` a serialised ``Event`` protobuf: ``wall_time`` (1, double), ``step`` (2, int64),
``summary`` (5) whose ``value`` entries (1) carry a ``tag`` (1), a ``simple_value`` (2), an
``image`` (4), a ``tensor`` (8) and the plugin's ``metadata`` (9). Writers append, so a record
cut short at the end of the file is one still being written: reading stops before it and
picks it up from its offset on a later read.

Used by :mod:`engine.trainer_logs` (scalars) and :mod:`engine.tensorboard_images` (images).
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c

from engine.appended import AppendedFile

EVENT_FILE_PREFIX = "events.out.tfevents."


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), by google-crc32c's C code (zarr's own dependency)."""
    return google_crc32c.value(data)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def is_event_file(name: str) -> bool:
    return name.startswith(EVENT_FILE_PREFIX)


def read_records(fh: BinaryIO, start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """``(data offset, next record's offset, data)`` of each complete record from ``start``.

    Both CRCs are checked: a record whose bytes are all there but wrong (a file cut and
    written on: half a record and the next one's bytes) raises ``ValueError`` naming the byte.
    """
    fh.seek(start)
    offset = start
    while True:
        header = fh.read(12)
        if len(header) < 12:
            return
        (length,) = struct.unpack("<Q", header[:8])
        (len_crc,) = struct.unpack("<I", header[8:])
        if masked_crc32c(header[:8]) != len_crc:
            raise ValueError(f"corrupt TFRecord length at byte {offset}")
        data = fh.read(length)
        footer = fh.read(4)
        if len(data) < length or len(footer) < 4:
            return  # the last record is still being written
        if struct.unpack("<I", footer)[0] != masked_crc32c(data):
            raise ValueError(f"corrupt TFRecord data at byte {offset}")
        yield offset + 12, offset + 16 + length, data
        offset += 16 + length


def _frame_at(fh: BinaryIO, offset: int) -> bool:
    """Whether a whole record with both CRCs right starts at ``offset``."""
    try:
        return next(read_records(fh, offset))[0] == offset + 12
    except (StopIteration, ValueError):
        return False


def next_record(fh: BinaryIO, start: int, window: int = 1 << 22) -> int | None:
    """The offset of the first whole record (both CRCs right) after ``start``, or None: where
    reading goes on past damage (a record torn by a full disk, the trainer writing on)."""
    position = start + 1
    while True:
        fh.seek(position)
        chunk = fh.read(window + 11)
        for i in range(len(chunk) - 11):
            header = chunk[i:i + 12]
            if masked_crc32c(header[:8]) == struct.unpack("<I", header[8:])[0] and _frame_at(fh, position + i):
                return position + i
        if len(chunk) < window + 11:
            return None
        position += window


@dataclass
class Cursor(AppendedFile):
    """Where an incremental read of one event file stands (:class:`AppendedFile`, whose
    :attr:`~AppendedFile.tail` is the CRC that ended the last record read), and how many
    records were read."""

    records: int = 0
    #: (offset, reason) of each damaged stretch met, read past to the next whole record
    damage: list[tuple[int, str]] = field(default_factory=list)
    _said: int = 0

    def rewind_if_rewritten(self, fh: BinaryIO) -> bool:
        if not super().rewind_if_rewritten(fh):
            return False
        self.records, self.damage, self._said = 0, [], 0
        return True

    def records_from(self, fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
        """``(data offset, data)`` of the records appended since the last call. Damage is
        noted in :attr:`damage` and read past, to the next whole record; with none after it
        yet, the read stops there and the next call looks again."""
        while True:
            try:
                for offset, end, data in read_records(fh, self.end):
                    self.end, self.tail, self.records = end, struct.pack("<I", masked_crc32c(data)), self.records + 1
                    yield offset, data
                return
            except ValueError as exc:
                if not self.damage or self.damage[-1][0] != self.end:
                    self.damage.append((self.end, str(exc)))
                resume = next_record(fh, self.end)
                if resume is None:
                    return
                self.end = resume

    def damage_news(self, path: Path) -> list[str]:
        """One line for each damaged stretch not said yet."""
        news = [f"{path}: damaged at byte {offset} ({reason.replace(f' at byte {offset}', '')}); "
                + ("read on from the next whole record" if self.end > offset else "read on once whole records follow")
                for offset, reason in self.damage[self._said:]]
        self._said = len(self.damage)
        return news


def records(path: Path) -> Iterator[bytes]:
    """The data of every complete record of an event file."""
    with open(path, "rb") as fh:
        for _, _, data in read_records(fh):
            yield data


def varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated protobuf varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def signed(value: int) -> int:
    """An int64 field read as a varint."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, raw value) of a serialised protobuf message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, i = varint(buf, i)
        elif wire == 1:
            val, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = varint(buf, i)
            val, i = buf[i : i + length], i + length
        elif wire == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > n:
            raise ValueError(f"protobuf field {field} runs past the end of its message")
        yield field, wire, val


def plugin_name(metadata: bytes) -> str | None:
    """SummaryMetadata.plugin_data.plugin_name (fields 1.1)."""
    for f, w, v in fields(metadata):
        if f == 1 and w == 2:
            for f2, w2, v2 in fields(v):
                if f2 == 1 and w2 == 2:
                    return v2.decode("utf-8", "replace")
    return None


def event_summary(record: bytes) -> tuple[int, float, bytes | None]:
    """``(step, wall_time, serialised Summary or None)`` of one Event record."""
    step, wall_time, summary = 0, 0.0, None
    for number, wire, val in fields(record):
        if number == 1 and wire == 1:
            (wall_time,) = struct.unpack("<d", val)
        elif number == 2 and wire == 0:
            step = signed(val)
        elif number == 5 and wire == 2:
            summary = val
    return step, wall_time, summary


def summary_values(summary: bytes) -> Iterator[dict[int, Any]]:
    """Each ``Summary.value`` as ``{field number: raw value}`` (tag 1, simple_value 2, image 4,
    tensor 8, metadata 9; the last occurrence of a field wins)."""
    for number, wire, value_msg in fields(summary):
        if number == 1 and wire == 2:
            yield {f: v for f, _, v in fields(value_msg)}
