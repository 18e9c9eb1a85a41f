"""Keep the ingesting process's native heap bounded (glibc; a no-op elsewhere).

Measured with ``benchmarks/ingest.py --rss``: every thread that allocates (encoder, store
writers, zarr's codec threads) gets its own glibc arena, and each keeps the freed blocks of
the large temporary arrays of every commit group, so the process grew ~15 MB per 100k
samples while its live data did not. Two shared arenas and a periodic trim keep it flat at
the same throughput (docs/ingest.md).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import time

ARENAS = 2
#: A trim after every commit cost ~10% of the ``pixels`` throughput (the pages fault back in).
TRIM_SECONDS = 1.0
_M_ARENA_MAX = -8  # glibc's malloc.h


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (AttributeError unless glibc)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()
_last_trim = 0.0


def bound_arenas() -> None:
    """Threads started after this share ARENAS heaps instead of one each."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, ARENAS)


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS, at most once per TRIM_SECONDS."""
    global _last_trim
    if _LIBC is not None and time.monotonic() - _last_trim >= TRIM_SECONDS:
        _LIBC.malloc_trim(0)
        _last_trim = time.monotonic()
