"""Whether an image beside a tensor file of its name is a preview of some of its samples.

A trainer that saves ``sample.npz`` (every sample) beside ``sample.png`` (a grid of the first
16) keeps its samples twice, but the image shows only a few: read for them, 48 of 64 were lost.
Told from headers alone (the tensor's shape, the image's size); a file rewritten gets a new
size or time, and is asked again.
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

from PIL import Image

from engine.decode.tensors import header_samples


def _tiles_at_most(image_size: tuple[int, int], tile: tuple[int, int]) -> int:
    """The most ``tile`` (H, W) samples an image of ``image_size`` (W, H) can show as a grid
    (padding only lowers it), either way up (a phone's EXIF turns it at decoding)."""
    (iw, ih), (h, w) = image_size, tile
    return max((ih // h) * (iw // w), (iw // h) * (ih // w))


def shows_fewer(image: Path, tensor: Path) -> tuple[int, int] | None:
    """(the most samples ``image`` can show, those ``tensor`` holds) when the tensor holds more:
    the image is a preview of a subset, and the tensor is to be read; None when it holds as many,
    or only reading the files tells (a ``.pt``, a compressed ``.npz``: the same samples packed)."""
    try:
        return _shows_fewer(_file_facts(image), _file_facts(tensor))
    except OSError:  # gone: the next pass lists it no more
        return None


def _file_facts(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return os.fspath(path), st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=1 << 14)  # a pass asks about every pair; kept while both files are as they were
def _shows_fewer(image: tuple[str, int, int], tensor: tuple[str, int, int]) -> tuple[int, int] | None:
    shape = header_samples(Path(tensor[0]))
    if shape is None or (header := _image_header(Path(image[0]))) is None:  # said when decoded; the pair stays as it was
        return None
    (size, mode), (held, h, w, channels) = header, shape
    shown = _tiles_at_most(size, (h, w))
    return (shown, held) if held > shown and _could_show(shown, channels, mode) else None


def _image_header(image: Path) -> tuple[tuple[int, int], str] | None:
    """(size, mode) of ``image`` from its header, the pixels not decoded; None where it cannot be opened."""
    try:
        with warnings.catch_warnings():  # a large grid is said by the decoding, if at all
            warnings.simplefilter("ignore")
            with Image.open(image) as opened:
                return opened.size, opened.mode
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def could_picture(channels: int, image: Path) -> bool:
    """Whether samples of ``channels`` can be what ``image`` pictures (a folder's PNGs packed as a
    tensor beside it): not Stable Diffusion's 4-channel latents beside RGB images (:func:`_could_show`)."""
    return (header := _image_header(image)) is not None and _could_show(1, channels, header[1])


def _could_show(shown: int, channels: int, mode: str) -> bool:
    """Whether an image of ``mode`` that fits ``shown`` of a tensor's samples can picture them: not when
    none fits (a (64, 512) array of features beside a grid, one 64 x 512 "sample"), nor 4 or 2 channels
    beside an image without alpha (Stable Diffusion's N x 4 x 64 x 64 latents beside the decoded grid)."""
    return shown >= 1 and (channels in (1, 3) or "A" in mode.upper())


def previews_line(folder: Path, previews: list[tuple[Path, Path, tuple[int, int]]]) -> str:
    """The line saying which images (image, tensor, (shown, held)) are left out as previews of
    the tensor files beside them, read instead."""
    image, tensor, (shown, held) = previews[0]
    if len(previews) == 1:
        return (f"{folder}: {image.name} shows at most {shown} of the {held} samples in {tensor.name} beside it: a "
                f"preview, not read; {tensor.name} is read instead (--samples GLOB picks one)")
    return (f"{folder}: {len(previews)} images show fewer samples than the tensor files of their names beside them "
            f"({image.name}: at most {shown} of {tensor.name}'s {held}, ...): previews, not read; the tensor files "
            "are read instead (--samples GLOB picks one)")
