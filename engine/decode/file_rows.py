"""Arrays stored plainly in ``.npy`` files and ``np.savez`` members, read a chunk of rows at a time."""
from __future__ import annotations

import copy
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.decode.skip import SkipFile



class FileRows:
    """The rows of an array stored plainly in a file (a ``.npy``, an ``np.savez`` member), read
    a chunk at a time: memory stays bounded as with a memory map, but a file the trainer
    rewrites meanwhile is a short read, said and skipped, not a SIGBUS that killed the reader."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype
        self.ndim = len(shape)
        self.size = int(np.prod(shape))
        self._stored = shape
        self._row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        self._convert: Callable[[np.ndarray], np.ndarray] | None = None
        self._written_ns = os.stat(path).st_mtime_ns  # a short read then: rewritten, or cut at rest

    def converted(self, convert: Callable[[np.ndarray], np.ndarray]) -> FileRows:
        """These rows with ``convert`` applied to each chunk read (NCHW to NHWC), shaped as it makes them."""
        rows = copy.copy(self)
        rows._convert = convert
        rows.shape = (len(self), *convert(self[:1]).shape[1:])
        rows.ndim = len(rows.shape)
        return rows

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice | int) -> np.ndarray:
        rows = range(len(self))[index]
        if isinstance(rows, int):
            return self[rows:rows + 1][0]
        if rows.step != 1:
            raise TypeError("FileRows reads contiguous rows only")
        want = len(rows) * self._row_bytes
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + rows.start * self._row_bytes)
            data = fh.read(want)
            st = os.fstat(fh.fileno())
        if len(data) != want:
            whole = self.offset + self._stored[0] * self._row_bytes
            if st.st_mtime_ns == self._written_ns:  # as it was: a trainer's np.save cut short (it crashed, a full disk)
                raise SkipFile(f"truncated: {st.st_size:,} of the {whole:,} bytes its header says "
                               f"({(st.st_size - self.offset) // max(self._row_bytes, 1)} of {self._stored[0]} rows); "
                               "it is read again when the file changes")
            raise SkipFile("changed while it was read (rewritten or cut): it is read again once it settles")
        chunk = np.frombuffer(data, self.dtype).reshape((len(rows), *self._stored[1:]))
        return self._convert(chunk) if self._convert else chunk

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[:], dtype)


def _file_rows(path: Path, offset: int) -> FileRows | None:
    """A :class:`FileRows` of the ``.npy`` data at ``offset`` in ``path``; None for what numpy
    reads better whole (Fortran order, objects, an unusual header, an empty array)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            read_header = readers.get(np.lib.format.read_magic(fh))
            if read_header is None:
                return None
            shape, fortran_order, dtype = read_header(fh)
            data = fh.tell()
    except (OSError, ValueError):  # numpy's own reading says what is wrong
        return None
    if fortran_order or dtype.hasobject or not shape or 0 in shape:
        return None
    return FileRows(path, data, tuple(shape), dtype)


def _read_through(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    """Read one member to its end, a chunk at a time: zipfile checks its CRC there (raising
    ``BadZipFile``)."""
    with archive.open(member) as data:
        while data.read(16 << 20):
            pass


def _stored_member(path: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> FileRows | None:
    """An uncompressed ``.npz`` member (``np.savez``) as :class:`FileRows`; None for a
    compressed or unusual one (numpy reads those whole). Its CRC is checked first, a chunk
    at a time, as numpy's reading would: damaged bytes are said, not stored as samples."""
    if not _is_plain(member):
        return None
    _read_through(archive, member)
    return member_rows(path, member)


def _is_plain(member: zipfile.ZipInfo) -> bool:
    return member.compress_type == zipfile.ZIP_STORED and not member.flag_bits & 0x1 and member.file_size > 0


def member_rows(path: Path, member: zipfile.ZipInfo) -> FileRows | None:
    """An uncompressed ``.npz`` member as :class:`FileRows` from its headers alone, its CRC unchecked
    (what discovery asks of its shape at every pass); None for a compressed or unusual one."""
    if not _is_plain(member):
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(member.header_offset)
            local = fh.read(30)  # the member's local header: its name and extra field lengths are its own
    except OSError:
        return None
    if local[:4] != b"PK\x03\x04":
        return None
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    return _file_rows(path, member.header_offset + 30 + name_length + extra_length)
