"""Pixel values of any dtype and range made RGB uint8, a chunk of samples at a time."""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from engine.decode.file_rows import FileRows
from engine.decode.skip import SkipFile, _diverged
from stores.format import listed


_CHUNK = 256


#: ``--value-range``: the range float pixels are in, by name; ``auto`` (None) guesses per file.
VALUE_RANGES: dict[str, tuple[float, float] | None] = {"auto": None, "tanh": (-1.0, 1.0), "unit": (0.0, 1.0),
                                                       "byte": (0.0, 255.0)}


def pixel_scaling(array: np.ndarray, given: tuple[float, float] | None = None) -> tuple[float, float]:
    """(offset, scale) so that ``(x + offset) * scale`` maps the file's values onto [0, 255].
    Float values are in ``given`` (lo, hi) when set (``--value-range``, a sampler's
    ``value_range``); else guessed from the file alone: [-1, 1] when a value is negative,
    so a tanh generator's file that happens to hold none is read as [0, 1]; else [0, 1] up to a
    maximum of 2 (an unclamped sampler's overshoot), [0, 255] up to 300, beyond refused."""
    if given is not None and np.issubdtype(array.dtype, np.floating):
        lo, hi = given
        return -lo, 255.0 / (hi - lo)
    if array.dtype == np.uint8:
        return 0.0, 1.0
    if array.dtype == np.bool_:
        return 0.0, 255.0
    if not np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.floating):
        raise SkipFile(f"holds {array.dtype} values, not image pixels")  # complex (an FFT), datetimes
    lo, hi = _extremes(array)
    if not np.isfinite([lo, hi]).all():
        raise _diverged("holds no finite value (NaN or infinite everywhere)")
    if np.issubdtype(array.dtype, np.integer):
        if lo < 0 or hi > 65535:  # labels, counts, a signed difference: clipped, they were stored as white or black
            raise SkipFile(f"integer values span [{lo:.0f}, {hi:.0f}]: not images in [0, 255] or [0, 65535]")
        return 0.0, (1 / 257 if hi > 255 else 1.0)
    if lo < -1.5:
        raise SkipFile(f"values span [{lo:.3g}, {hi:.3g}]: not images in [-1, 1], [0, 1] or [0, 255]")
    if lo < 0:
        return 1.0, 127.5
    if hi > 300:  # clipped at 255 a third of the pixels were white, without a word
        raise SkipFile(f"values span [{lo:.3g}, {hi:.3g}]: not images in [-1, 1], [0, 1] or [0, 255]; "
                       "--value-range gives the range when it is one of them")
    # [0, 1] up to 2: an unclamped sampler overshoots 1 a little (1.007 read as [0, 255] was black)
    return 0.0, (255.0 if hi <= 2.0 else 1.0)


def _extremes(array: np.ndarray | FileRows) -> tuple[float, float]:
    """Smallest and largest finite value (NaN when none is): a file's rows a chunk at a time.
    NaN and infinities are a diverged generator's samples, left out (:func:`uint8_rows`)."""
    if not array.size:
        return 0.0, 0.0
    chunks = (array[i:i + _CHUNK] for i in range(0, len(array), _CHUNK)) if isinstance(array, FileRows) else (array,)
    with warnings.catch_warnings():  # all NaN: numpy warns, the caller says why the file is skipped
        warnings.simplefilter("ignore", RuntimeWarning)
        found = np.array([(np.nanmin(finite), np.nanmax(finite)) for chunk in chunks
                          for finite in [chunk if chunk.dtype.kind in "biu" else np.where(np.isfinite(chunk), chunk, np.nan)]],
                         np.float64)
        return float(np.nanmin(found[:, 0])), float(np.nanmax(found[:, 1]))


def to_uint8(array: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Map integer or float pixel values to uint8 (see :func:`pixel_scaling` for the rule)."""
    offset, scale = value_range or pixel_scaling(array)
    if array.dtype == np.uint8:
        return np.asarray(array)
    values = np.nan_to_num(np.asarray(array, dtype=np.float32))
    return np.clip(np.rint((values + offset) * scale), 0, 255).astype(np.uint8)


def uint8_rows(images: np.ndarray | FileRows, value_range: tuple[float, float]) -> Iterator[tuple[int, np.ndarray]]:
    """(row, uint8 pixels) of each sample of a tensor, a chunk at a time. Samples holding NaN
    or infinite values (a generator diverging) are left out, then said by a ``SkipFile``
    naming them: made uint8 they were flat grey images, stored without a word."""
    bad = []
    for start in range(0, len(images), _CHUNK):
        chunk = np.asarray(images[start:start + _CHUNK])
        finite = (np.ones(len(chunk), bool) if chunk.dtype.kind in "biu"
                  else np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1))
        bad += [start + i for i in np.flatnonzero(~finite)]
        with np.errstate(over="ignore", invalid="ignore"):  # the samples left out, made uint8 all the same
            pixels_of_chunk = to_uint8(chunk, value_range)
        for row, pixels in zip(range(start, start + len(chunk)), pixels_of_chunk):
            if finite[row - start]:
                yield row, pixels
    if bad:
        rows = listed([str(row) for row in bad], 5)
        raise _diverged(f"{len(bad)} of {len(images)} samples hold NaN or infinite values "
                        f"(row{'s' if len(bad) > 1 else ''} {rows}), not stored")


def to_rgb(array: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) with C in 1..4 to (H, W, 3): gray repeated, alpha dropped.

    The result owns its memory and is writable (not a view of a memory-mapped file or a
    read-only Pillow buffer), so consumers such as ``torch.from_numpy`` can take it as is.
    """
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels in (1, 2):
        array = np.repeat(array[:, :, :1], 3, axis=2)
    elif channels == 4:
        array = array[:, :, :3]
    return np.require(array, requirements=["C", "W", "O"])  # an owned, writable copy only if needed

