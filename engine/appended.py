"""Reading on in a file that its writer appends to (TensorBoard event files, JSON-lines and
CSV logs): a pass reads only what was added since the last one, as TensorBoard's own
``DirectoryWatcher`` does, not the whole file again."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO


@dataclass
class AppendedFile:
    """Where an incremental read of one file stands: the file it read (device, inode), the
    offset the next read starts at, and the bytes just before it (which must still be there)."""

    identity: tuple[int, int] = (0, 0)
    end: int = 0
    tail: bytes = b""

    def rewind_if_rewritten(self, fh: BinaryIO) -> bool:
        """Start again from the beginning, and say so, unless ``fh`` is the file read before,
        grown or not: not when it was replaced, cut shorter, or cut and written on (the bytes
        before :attr:`end` changed: a CSV logger that rewrites its file under a new header)."""
        st = os.fstat(fh.fileno())
        same = (st.st_dev, st.st_ino) == self.identity and st.st_size >= self.end
        if same and self.end:
            same = self.still_there(fh, st)
        if not same:
            self.identity, self.end, self.tail = (st.st_dev, st.st_ino), 0, b""
        return not same

    def still_there(self, fh: BinaryIO, st: os.stat_result) -> bool:
        """Whether the bytes read so far are still the file's: those just before :attr:`end`."""
        fh.seek(self.end - len(self.tail))
        return fh.read(len(self.tail)) == self.tail
