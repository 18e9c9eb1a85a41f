"""Image files decoded with Pillow: upright, every TIFF page, decompression bombs refused."""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from engine.decode.pixels import pixel_scaling, to_rgb, to_uint8
from engine.decode.skip import VANISHED, SkipFile, _diverged, _require_content
from engine.errors import GONE


# EXIF Orientation -> the turn that shows the image upright (ImageOps.exif_transpose's table).
_ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                 8: Image.Transpose.ROTATE_90}


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF Orientation says (a phone photo in ``--real`` is stored
    sideways); reading the tag is cheap, only a tagged image pays for the transpose. Only the
    pixels are turned: ImageOps.exif_transpose also re-writes the EXIF block, and failed on a
    damaged one (a tag of the wrong type), which ended the ingest."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # an EXIF block Pillow cannot parse: the image as stored
        return image
    method = _ORIENTATIONS.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def _pil_to_array(image: Image.Image, value_range: tuple[float, float] | None = None,
                  shared: tuple[float, float] | None = None) -> np.ndarray:
    """RGB uint8 pixels; a float image's (a 32-bit TIFF) are in ``value_range`` when given
    (``--value-range``), else in the range its values suggest, as a tensor file's; ``shared``:
    the (offset, scale) of the float pages of its stack, worked out over them all."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image)
        if image.mode == "F" and not (finite := np.isfinite(values)).all():  # made 0, they were stored as black
            raise _diverged(f"{values.size - np.count_nonzero(finite):,} of {values.size:,} pixels are NaN or infinite, "
                            "not stored")
        # a 16-bit PGM/PPM opens as "I", its values scaled to 0..65535: a dark one was read as 8-bit
        sixteen_bit = image.mode.startswith("I;16") or image.mode == "I" and image.format == "PPM"
        scale = ((0.0, 1 / 257) if sixteen_bit else
                 shared if shared and image.mode == "F" else pixel_scaling(values, value_range))
        return to_rgb(to_uint8(values, scale))
    return to_rgb(np.asarray(image.convert("RGB")))


def load_image(path: Path, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Decode an image file to RGB uint8 (H, W, 3); raises :class:`SkipFile` with the reason.
    ``value_range``: the range of a float image's values (``--value-range``), else guessed."""
    _require_content(path)
    return decode_image(path, value_range)


def load_pages(path: Path, value_range: tuple[float, float] | None = None) -> list[np.ndarray | None]:
    """Each page of a multi-page TIFF (a stack of samples: ``tifffile.imwrite`` of a batch), its
    reduced-resolution previews left out, None for a page holding NaN or infinite values (left out
    alone, as a tensor file's row is); else the one image :func:`load_image` reads. The last
    page alone was read, as an animation's last frame is: one sample of the batch, without a word."""
    _require_content(path)
    return _decoded(path, value_range, every_page=True)


def _is_tiff(source: Path | BinaryIO) -> bool:
    """Whether a file's first bytes are a TIFF's (little- or big-endian, classic or BigTIFF)."""
    try:
        if isinstance(source, Path):
            with open(source, "rb") as f:
                head = f.read(4)
        else:
            source.seek(0)
            head = source.read(4)
    except OSError:
        return False
    return head in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def decode_image(source: Path | BinaryIO, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Decode an image file or an image's bytes (``io.BytesIO``) to RGB uint8 (H, W, 3);
    raises :class:`SkipFile` with the reason."""
    return _decoded(source, value_range, every_page=False)[0]


def _decoded(source: Path | BinaryIO, value_range: tuple[float, float] | None,
             every_page: bool) -> list[np.ndarray | None]:
    compression = None  # a TIFF's: a compression Pillow's libtiff lacks fails as a truncated file does
    try:
        with warnings.catch_warnings():  # a large grid of the trainer's own; twice Pillow's limit still raises
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # A damaged EXIF block ("Corrupt EXIF data", "Tag data larger than file"): the pixels are
            # fine, and Pillow's raw warnings went to stderr file by file, through the progress line
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with Image.open(source) as image:
                compression = image.info.get("compression") if image.format == "TIFF" else None
                if every_page and image.format == "TIFF" and getattr(image, "n_frames", 1) > 1:
                    return _tiff_pages(image, value_range) or [_pil_to_array(_upright(image), value_range)]
                if getattr(image, "is_animated", False):  # a sampling trajectory (minRF's sample_3.gif) ends
                    image.seek(image.n_frames - 1)  # with the samples, its first frame is noise; a video any frame
                image.load()
                return [_pil_to_array(_upright(image), value_range)]
    except SkipFile:  # pixels that are no image's (a float TIFF's range): said as they are, not as a corrupt file
        raise
    except GONE:
        raise SkipFile(VANISHED) from None
    except UnidentifiedImageError:
        if _is_tiff(source):  # a float RGB TIFF (tifffile's default for a float batch), a compression Pillow lacks
            raise SkipFile("a TIFF Pillow cannot decode (float RGB pixels or a compression it lacks, or a damaged "
                           "file): have the trainer save its samples as PNG, or as a .npy batch") from None
        raise SkipFile("not a readable image (unknown or corrupt format)") from None
    except Image.DecompressionBombError as exc:
        raise SkipFile(_too_large(exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        if compression not in (None, "raw"):  # e.g. webp or zstd: libtiff built without it
            raise SkipFile(f"truncated or corrupt image, or a TIFF compression ({compression}) this Pillow cannot "
                           f"decode ({exc}): read again when it changes; if it stays, have the trainer save PNG") \
                from None
        raise SkipFile(f"truncated or corrupt image ({exc}): it is read again when the file changes") from None
    except Exception as exc:  # a damaged file can fail a decoder in any way (struct.error, IndexError)
        raise SkipFile(f"corrupt image ({type(exc).__name__}: {exc})") from None


def _tiff_pages(image: Image.Image, value_range: tuple[float, float] | None) -> list[np.ndarray | None]:
    """A multi-page TIFF's full-resolution pages (NewSubfileType's bit 0 marks a preview), its
    float pages in one range, guessed over them all as a tensor file's rows are: each page's own
    guess read a tanh batch's page without a negative value as [0, 1]. None for a page holding
    NaN or infinite values: one sample diverged skipped the whole stack."""
    pages = []
    for index in range(image.n_frames):
        image.seek(index)
        if not image.tag_v2.get(254, 0) & 1:
            image.load()
            pages.append(_upright(image).copy())  # the next seek reuses the image
    finite = [page.mode != "F" or bool(np.isfinite(np.asarray(page)).all()) for page in pages]
    floats = [np.asarray(page).ravel() for page, ok in zip(pages, finite) if ok and page.mode == "F"]
    shared = pixel_scaling(np.concatenate(floats), value_range) if floats else None
    return [_pil_to_array(page, value_range, shared) if ok else None for page, ok in zip(pages, finite)]


def _too_large(error: Image.DecompressionBombError) -> str:
    """Why an image past twice Pillow's pixel limit is skipped, and what the trainer can do."""
    numbers = [int(n) for n in re.findall(r"\d+", str(error))]
    size = f"{numbers[0]:,} pixels, over {numbers[1]:,}" if len(numbers) >= 2 else str(error)
    return f"too large to decode safely ({size}: a decompression bomb's size); save fewer or smaller samples per file"

