"""Decode a checkpoint's sample files into RGB uint8 samples, one file at a time.

Images go through Pillow; ``.npy``/``.npz`` through numpy without pickle; ``.pt`` through
``torch.load(weights_only=True)`` (never arbitrary unpickling). A file that cannot be read
becomes a :class:`SkippedFile` with a one-line reason, and the rest of the checkpoint still
decodes.

Rules
-----
* A checkpoint that is one image, or a folder with exactly one image, is a grid candidate:
  it is split when :func:`engine.grids.detect_grid` finds a grid. The several images of a
  generated checkpoint are grid candidates each when its first and last are grids of one
  geometry with tiles of at least 16 px (BigGAN's sample sheets ``{itr}/samples{i}.jpg``, one
  grid per process ``{step}_rank{r}.png``): a folder of single samples costs two detections,
  and one small sample the detector takes for blocks does not cut the folder. With forced geometry
  (``grid``/``tile_size``) every image of a generated checkpoint is split (reference sets
  are never force-split: the geometry describes the trainer's grids).
* Instance ids: the tile index in a grid, the row in a tensor (both offset by the samples of
  earlier grid/tensor files in the same checkpoint, so they stay distinct), the integer in an
  image's file name when no other file of the checkpoint yields it (``00007.png`` is 7), else
  -1 (said once per checkpoint when others keep theirs).
* Labels, first found: a tensor's ``labels``/``y`` key, the labels file (keyed by file path,
  name, stem or instance id; without ``labels_file``, a ``labels.csv``/``labels.json`` in the
  checkpoint folder is used), the per-label sub-folder (see ``DiscoveryOptions.label_folders``).
* Tensor values: uint8 as is; other integers above 255 as 16-bit; floats in ``--value-range``,
  else by the file's range (:func:`_value_range`). Floats below -1.5 are not images (latents,
  say) and the file is skipped.
* Large tensor files are not read whole: a ``.npy`` and an ``.npz`` written by ``np.savez``
  (uncompressed) are read and converted a chunk of samples at a time (:class:`FileRows`; a
  50k x 256 x 256 samples file is 10 GB). A ``.pt`` is read whole.
"""
from __future__ import annotations

import codecs
import copy
import csv
import json
import logging
import os
import pickle
import re
import struct
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from engine.backlog_log import counted
from engine.discovery.identity import in_a_label_folder
from engine.discovery.options import TENSOR_EXTENSIONS, DiscoveryOptions
from engine.discovery.ready import checkpoint_path
from engine.discovery.said_once import warn_once
from engine.discovery.steps import index_in_name, last_integer
from engine.errors import GONE, DiscoveryError
from engine.grids import MIN_TILE, detect_grid, resolve_grid, select_tiles, split_grid
from engine.records import Checkpoint, Sample, SkippedFile
from stores.format import MAX_INSTANCE, SAMPLE_KEY, listed
from stores.zarr_store import pattern_regex

log = logging.getLogger(__name__)

IMAGE_KEYS = ("images", "samples", "x", "imgs", "image", "sample", "fakes", "fake", "generated", "arr_0", "data")
#: Formats whose grids' pad lines are not one exact value.
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".jp2")
LABEL_KEYS = ("labels", "y", "label", "targets", "target", "classes", "class")
LATENT_KEYS = ("latents", "z", "features", "latent", "feats", "noise", "w")
_CHUNK = 256


class SkipFile(Exception):
    """A sample file that cannot be used; the message is the :class:`SkippedFile` reason.
    ``rows``: the samples a tensor file holds, read or not, so that the next file's instance
    ids start after them (a last row gone NaN shifted them, and trails joined other samples)."""

    rows: int = 0
    misfit: bool = False  # the file does not fit the grid the options force (SkippedFile.misfit)
    diverged: bool = False  # read, its values NaN or infinite (SkippedFile.diverged)


def _diverged(what: str) -> SkipFile:
    """The refusal of samples read whole whose values are NaN or infinite: the run's own output,
    a new version of a checkpoint even so (not a torn file that keeps the earlier one current)."""
    exc = SkipFile(f"{what}: a diverged generator?")
    exc.diverged = True
    return exc


# --- pixels ------------------------------------------------------------------------------

#: ``--value-range``: the range float pixels are in, by name; ``auto`` (None) guesses per file.
VALUE_RANGES: dict[str, tuple[float, float] | None] = {"auto": None, "tanh": (-1.0, 1.0), "unit": (0.0, 1.0),
                                                       "byte": (0.0, 255.0)}


def _value_range(array: np.ndarray, given: tuple[float, float] | None = None) -> tuple[float, float]:
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
    """Map integer or float pixel values to uint8 (see :func:`_value_range` for the rule)."""
    offset, scale = value_range or _value_range(array)
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
                 shared if shared and image.mode == "F" else _value_range(values, value_range))
        return to_rgb(to_uint8(values, scale))
    return to_rgb(np.asarray(image.convert("RGB")))


#: The reason a file deleted between the scan and its reading is skipped (rotation).
VANISHED = "vanished before it could be read"


def _require_content(path: Path) -> None:
    """Skip files that vanished, are empty (a trainer just created them) or may not be read
    before decoding them: a decoder would call an unreadable file corrupt."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
    except GONE:
        raise SkipFile(VANISHED) from None
    except PermissionError as exc:
        raise SkipFile(f"cannot be read ({exc.strerror}): fix its permissions; it is read again when watch restarts") from None
    if size == 0:
        raise SkipFile("empty file (0 bytes), maybe still being written")


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
    shared = _value_range(np.concatenate(floats), value_range) if floats else None
    return [_pil_to_array(page, value_range, shared) if ok else None for page, ok in zip(pages, finite)]


def _too_large(error: Image.DecompressionBombError) -> str:
    """Why an image past twice Pillow's pixel limit is skipped, and what the trainer can do."""
    numbers = [int(n) for n in re.findall(r"\d+", str(error))]
    size = f"{numbers[0]:,} pixels, over {numbers[1]:,}" if len(numbers) >= 2 else str(error)
    return f"too large to decode safely ({size}: a decompression bomb's size); save fewer or smaller samples per file"


# --- tensors -------------------------------------------------------------------------------

def _to_nhwc(array: np.ndarray) -> np.ndarray:
    """Image batches as (N, H, W, C): NHWC, NCHW, a single HWC/CHW/HW image, or NHW gray."""
    shape = array.shape
    if array.ndim == 2:
        out = array[None, :, :, None]
    elif array.ndim == 3:
        if shape[-1] in (1, 3, 4):
            out = array[None]
        elif shape[0] in (1, 3):
            out = array.transpose(1, 2, 0)[None]
        else:
            out = array[..., None]
    elif array.ndim == 4 and shape[-1] in (1, 2, 3, 4) and (shape[1] not in (1, 3) or array.dtype == np.uint8):
        out = array
    elif array.ndim == 4 and shape[1] in (1, 2, 3, 4):
        out = array.transpose(0, 2, 3, 1)
    else:
        out = None
    if out is None or min(out.shape[1:3]) < 8:
        raise _no_image_array(shape, array.dtype)
    return out


def _no_image_array(shape: tuple[int, ...], dtype: np.dtype) -> SkipFile:
    return SkipFile(f"holds no image array (shape {tuple(shape)} {dtype})")


def _image_shaped(array: np.ndarray) -> bool:
    """A batch of images by its shape alone: N x C x H x W or N x H x W x C, C of 1, 3 or 4 and
    16 px or more (a conv layer's weights are 3-9 px wide)."""
    shape = array.shape
    if len(shape) != 4:
        return False
    channels_first = shape[1] in (1, 3, 4) and min(shape[2:]) >= 16
    return channels_first or (shape[-1] in (1, 3, 4) and min(shape[1:3]) >= 16)


#: Words of a key that names generated images (``fake_images``, ``x_gen``, ``gen_imgs``); a
#: parameter's dotted name, latents, noise or real data never does.
_IMAGE_KEY_WORDS = re.compile(r"sample|fake|image|img|gen|output|pred|grid", re.IGNORECASE)
_NOT_IMAGE_KEY = re.compile(r"\.|real|latent|noise|^z$|^z_|weight|bias", re.IGNORECASE)


def _image_key(arrays: Mapping[str, np.ndarray]) -> str | None:
    """The key of the images: a name trainers use (``IMAGE_KEYS``), else the one array shaped
    like a batch of images under a key that says so (``torch.save({"fake_images": x, "step": s})``
    was skipped as "a weights or state file?"; round AM: any image-shaped tensor read attention
    maps, a ViT's 16x16 patch filters and latents as samples); None when neither or several."""
    lowered = {k.lower(): k for k in arrays}
    named = next((lowered[k] for k in IMAGE_KEYS if k in lowered), None)
    if named is not None:
        return named
    shaped = [k for k, v in arrays.items() if _image_shaped(v) and _IMAGE_KEY_WORDS.search(k)
              and not _NOT_IMAGE_KEY.search(k)]
    return shaped[0] if len(shaped) == 1 else None


def _holds_fid_statistics(arrays: Mapping[str, np.ndarray]) -> bool:
    """Whether the arrays include FID reference statistics' ``mu`` and ``sigma``."""
    return {"mu", "sigma"} <= {k.lower() for k in arrays}


def _not_samples(arrays: Mapping[str, np.ndarray]) -> None:
    """FID reference statistics (``mu`` and ``sigma``), with or without the reference images
    beside them as ``arr_0`` (guided-diffusion's ``VIRTUAL_imagenet64_labeled.npz``: real
    images, which were stored as a step of generated samples), are no samples; images under a
    name of their own beside a VAE's ``mu``/``sigma`` are."""
    named = {k.lower() for k in arrays} & (set(IMAGE_KEYS) - {"arr_0", "data"})
    if _holds_fid_statistics(arrays) and not named:
        raise SkipFile("holds FID reference statistics (mu, sigma), not samples")


def _first_line(exc: BaseException) -> str:
    """An exception's message for a skip line: its first line, else its type (a file rewritten
    during an ``.npz``'s CRC pass was said as "not a readable numpy file ()")."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _pick(arrays: Mapping[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray | None:
    lowered = {k.lower(): v for k, v in arrays.items()}
    return next((lowered[k] for k in keys if k in lowered), None)


def _torch_arrays(path: Path) -> dict[str, np.ndarray]:
    import torch  # lazy: only .pt files need it

    try:
        if zipfile.is_zipfile(path):  # torch.save's archive: torch.load checks no CRC, a flipped byte was a pixel
            with zipfile.ZipFile(path) as archive:
                for member in archive.infolist():
                    _read_through(archive, member)
        with warnings.catch_warnings():  # torch's multi-line notes on a plain pickle; the skip reason says it
            warnings.simplefilter("ignore", UserWarning)
            # read whole, not mmap=True: a mapped file the trainer rewrites meanwhile (torch.save
            # truncates it first) killed the decode worker with SIGBUS, and the watch with it
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if zipfile.is_zipfile(path):  # a well-formed torch.save archive with non-tensor objects
            raise SkipFile("holds objects other than tensors (refused to unpickle: weights_only)") from None
        raise SkipFile("not a readable torch file (corrupt or not written by torch.save)") from None
    except Exception as exc:  # damaged bytes fail the weights-only unpickler in any way (IndexError: pop from empty list)
        raise SkipFile(f"not a readable torch file ({type(exc).__name__}: {_first_line(exc)})") from None

    def as_numpy(value):
        return value.detach().float().numpy() if value.dtype == torch.bfloat16 else value.detach().numpy()

    if isinstance(obj, torch.Tensor):
        return {"images": as_numpy(obj)}
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(v, torch.Tensor) for v in obj):
        if len({tuple(v.shape) for v in obj}) == 1:
            return {"images": np.stack([as_numpy(v) for v in obj])}
    if isinstance(obj, Mapping):
        arrays = {str(k): as_numpy(v) for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if _image_key(arrays) is not None or _holds_fid_statistics(arrays):
            return arrays
        keys = ", ".join(map(str, list(obj)[:8]))
        raise SkipFile(f"holds no image tensor (keys: {keys}); a weights or state file? (samples are read from "
                       f"the key {IMAGE_KEYS[0]!r} or {IMAGE_KEYS[1]!r}, or the one image batch under a name like fake_images)")
    raise SkipFile(f"holds no image tensor (a {type(obj).__name__})")


def _numpy_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.suffix.lower() == ".npy":
            rows = _file_rows(path, 0)
            return {"images": rows if rows is not None else np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as archive:
            arrays = {}
            for name, member in zip(archive.files, archive.zip.namelist()):
                rows = _stored_member(path, archive.zip, archive.zip.getinfo(member))
                arrays[name] = archive[name] if rows is None else rows
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):  # object dtype, or no numpy header at all
            with open(path, "rb") as fh:
                head = fh.read(6)
            if head.startswith((b"\x93NUMPY", b"PK", b"\x80")):  # .npy, .npz, a pickle
                raise SkipFile("holds Python objects, not a plain numpy array (refused to unpickle)") from None
            raise SkipFile("not a numpy file (no .npy or .npz header): damaged, or another format under this name") \
                from None
        raise SkipFile(f"not a readable numpy file ({_first_line(exc)})") from None
    except Exception as exc:  # a cut or damaged .npz: zipfile.BadZipFile ("Bad CRC-32"), EOFError, OSError
        raise SkipFile(f"not a readable numpy file ({_first_line(exc)})") from None
    if _image_key(arrays) is None and len(arrays) != 1 and not _holds_fid_statistics(arrays):
        raise SkipFile(f"holds no image array (keys: {', '.join(arrays)})")
    return arrays


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
    if member.compress_type != zipfile.ZIP_STORED or member.flag_bits & 0x1 or member.file_size == 0:
        return None
    _read_through(archive, member)
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


def load_tensor_file(path: Path, reference: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None,
                                                                 tuple[float, float] | None]:
    """(images as NHWC, labels or None, latents or None, the float images' range the file says
    or None) from a ``.npy``/``.npz``/``.pt`` file; a ``reference`` set's may be an FID
    reference batch (its images are real data)."""
    _require_content(path)
    arrays = _torch_arrays(path) if path.suffix.lower() == ".pt" else _numpy_arrays(path)
    if not reference:
        _not_samples(arrays)
    key = _image_key(arrays)
    images = next(iter(arrays.values())) if key is None else arrays[key]
    # a batch read from the file a chunk at a time; a single image or a gray stack at once
    if isinstance(images, FileRows) and images.ndim == 4:
        try:
            images = images.converted(_to_nhwc)
        except SkipFile:  # judged on its first row: said with the file's whole shape
            raise _no_image_array(images.shape, images.dtype) from None
    else:
        images = _to_nhwc(np.asarray(images))
    extras = []
    # np.savez(path, images, labels) without names, as openai's guided-diffusion samples
    positional = ("arr_1",) if set(arrays) == {"arr_0", "arr_1"} else ()
    for keys, what in ((LABEL_KEYS + positional, "labels"), (LATENT_KEYS, "latents")):
        extra = _pick(arrays, keys)
        extra = None if extra is None else np.asarray(extra)  # small: read whole
        if extra is not None and (extra.ndim == 0 or len(extra) != len(images)):
            log.warning("%s: %d %s for %d images; ignoring them", path, len(extra), what, len(images))
            extra = None
        extras.append(extra)
    return images, extras[0], extras[1], _said_range(arrays)


def _said_range(arrays: Mapping[str, np.ndarray]) -> tuple[float, float] | None:
    """A ``value_range`` array of two finite numbers (low, high) beside the images: what
    :func:`engine.hooks.save_samples` writes beside floats it could not make uint8 (NaN or inf
    among them); read with it, whatever ``--value-range`` says. Anything else under that name
    is not a range (round AS: a string there skipped the file)."""
    said = _pick(arrays, ("value_range",))
    try:
        low, high = np.asarray(said, dtype=np.float64).reshape(-1) if said is not None else (0.0, 0.0)
    except (TypeError, ValueError):  # not numbers, or not two of them
        return None
    return (float(low), float(high)) if np.isfinite([low, high]).all() and low < high else None


def _label_text(value: np.ndarray) -> str:
    value = np.asarray(value)
    if value.ndim >= 1 and value.size > 1:  # one-hot or scores
        return str(int(np.argmax(value)))
    item = value.reshape(-1)[0].item() if value.size else ""
    if isinstance(item, bytes):
        return item.decode(errors="replace")
    return str(int(item)) if isinstance(item, float) and item.is_integer() else str(item)


# --- labels ------------------------------------------------------------------------------

#: What a labels file holds, said with each error about one.
LABELS_FORMAT = "expected CSV file,label or instance,label, or a JSON mapping"
#: A CSV header's first column that names the keys (skipped), or the labels (the columns swapped).
_KEY_HEADERS = ("file", "filename", "path", "instance", "index", "id", "name")
_LABEL_HEADERS = ("label", "labels", "class", "category", "target")


def read_labels_file(path: Path) -> dict[str, str]:
    """A labels file as ``{key: label}``; keys are file paths/names or instance ids.

    CSV rows are ``file,label`` or ``instance,label`` (a header row is skipped); JSON is a
    mapping or a list indexed by instance id. Empty, ``null`` or non-scalar labels are
    unknown (no entry), not labels named "None". A file that gives no label at all (empty,
    a header ``label,file``, only lists as JSON values) raises :class:`DiscoveryError`: read
    as it was, every sample went unlabelled without a word.
    """
    items = None
    try:
        raw = path.read_bytes()
        try:
            text = raw.decode(_text_encoding(raw))
        except UnicodeDecodeError:  # a spreadsheet's CSV saved on Windows: every label was lost for one byte
            if b"\0" in raw:  # no text at all
                raise
            text = raw.decode("cp1252", errors="replace")
            warn_once(path, f"{path}: not UTF-8; read as Windows-1252 (save it as UTF-8 if a label reads wrong)",
                      about="encoding")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            items = list(enumerate(data) if isinstance(data, list) else data.items())
        else:
            rows = [r for r in csv.reader(text.splitlines(), _csv_dialect(text)) if any(f.strip() for f in r)]
    except PermissionError as exc:  # the file may be fine: no format hint
        raise DiscoveryError(f"{path}: cannot read labels ({exc.strerror}): fix its permissions") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise DiscoveryError(f"{path}: cannot read labels ({exc}); {LABELS_FORMAT}") from None
    if items is not None:
        table = {str(k): str(v) for k, v in items if isinstance(v, (str, int, float)) and str(v).strip()}
        if not table and any(isinstance(v, (list, dict)) for _, v in items):
            raise DiscoveryError(f"{path}: its values are lists or objects, not one label each; expected a JSON "
                                 'mapping {"00007.png": "cat", ...} or a list of labels')
        return _some_labels(path, table)
    first = rows[0][0].strip().lower() if rows else ""
    if first in _LABEL_HEADERS:
        raise DiscoveryError(f"{path}: its header {','.join(f.strip() for f in rows[0])} puts the labels first; "
                             "expected columns file,label or instance,label (swap them)")
    if first in _KEY_HEADERS:
        rows = rows[1:]
    if short := sum(len(r) < 2 for r in rows):
        warn_once(path, f"{path}: {short} of {len(rows)} rows {'has' if short == 1 else 'have'} no label column, "
                        "ignored (expected file,label or instance,label)", about="short rows")
    return _some_labels(path, {r[0].strip(): r[1].strip() for r in rows if len(r) >= 2 and r[1].strip()})


def _text_encoding(raw: bytes) -> str:
    """UTF-16 or UTF-32 when the bytes start with its byte-order mark (Excel's "Unicode text",
    Windows PowerShell's `>`: refused as "'utf-8' codec can't decode byte 0xff"), else UTF-8."""
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    return "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"


def _some_labels(path: Path, table: dict[str, str]) -> dict[str, str]:
    """``table``, unless it holds no label (an empty file, a header alone, only nulls)."""
    if not table:
        raise DiscoveryError(f"{path}: holds no label; {LABELS_FORMAT}")
    return table


def _csv_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """Commas, or the semicolons or tabs a spreadsheet wrote."""
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:  # one column, or nothing to tell by
        return csv.excel


DEFAULT_LABEL_FILES = ("labels.csv", "labels.json")


def labels_file_path(checkpoint: Checkpoint, options: DiscoveryOptions) -> Path | None:
    """The labels file a checkpoint's samples are read with: ``options.labels_file`` (a
    relative one looked for in the checkpoint folder, the run's folder, then the current
    one), else a ``labels.csv``/``labels.json`` in the checkpoint folder, or in the folder
    below it that holds all its samples (``step_N/samples/labels.csv`` was ignored without a
    word); None when none is."""
    folder = checkpoint_path(checkpoint)
    if options.labels_file is None:
        parents = {file.parent for file in checkpoint.files}
        folders = [folder, *parents] if len(parents) == 1 and folder not in parents else [folder]
        candidates = [where / name for where in folders for name in DEFAULT_LABEL_FILES] if folder.is_dir() else []
    else:
        given = Path(options.labels_file)
        candidates = [given] if given.is_absolute() else [folder / given, checkpoint.root / given, given]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def labels_table(checkpoint: Checkpoint, options: DiscoveryOptions) -> dict[str, str]:
    """A checkpoint's labels file as ``{key: label}`` ({} without one). Raises
    :class:`DiscoveryError` for a ``--labels`` file that cannot be read; a checkpoint's own
    unreadable file is said once and labels nothing."""
    if (path := labels_file_path(checkpoint, options)) is None:
        if options.labels_file is not None:
            log.debug("no labels file %s for %s", options.labels_file, checkpoint.source)
        return {}
    try:
        return read_labels_file(path)
    except DiscoveryError as exc:
        if options.labels_file is not None:
            raise  # a setting: the whole run is read with it
        warn_once(path, f"{exc}; this checkpoint's samples get no label", about="labels")  # one checkpoint's own file
        return {}


def folder_labels(checkpoint: Checkpoint, options: DiscoveryOptions) -> dict[Path, str]:
    """Labels from per-label sub-folders (ImageFolder layout), per ``options.label_folders``.
    Files at the folder's top beside the label folders (fewer than the largest of them holds:
    as many are a folder's variant, ``step_100/ema/`` beside ``step_100/*.png``) get no label
    and are said once per run; they counted as a folder of their own, and one stray image cost
    every other its label (round BA: a --real of 260 images in class folders read unlabelled).
    Class folders differ in size, variants do not: measured against the smallest, one stray
    image beside a class of one (8 samples a step over 4 classes) still cost every label."""
    folder = checkpoint_path(checkpoint)
    if options.label_folders is False or not folder.is_dir():
        return {}
    nested = _class_folders(folder, checkpoint.files)
    loose = [f for f in checkpoint.files if f not in nested]
    if options.label_folders is None:
        parents = set(nested.values())
        if not in_a_label_folder(checkpoint, options) and (
                len(parents) < 2 or len({p.parent for p in parents}) != 1 or _numbered_buckets(nested)
                or len(loose) >= max(Counter(nested.values()).values())):
            return {}
    if loose and nested:
        one = len(loose) == 1
        warn_once(checkpoint.root, f"{folder}: {counted(len(loose), 'file')} beside its label folders "
                                   f"({listed([f.name for f in loose])}) {'has' if one else 'have'} no label; move "
                                   f"{'it' if one else 'them'} into the folder of {'its' if one else 'their'} label, "
                                   f"or out of {folder.name}", about="files beside label folders")
    return {f: parent.name for f, parent in nested.items()}


def _class_folders(folder: Path, files: Iterable[Path]) -> dict[Path, Path]:
    """Each file's class folder, its ancestor at one depth below ``folder`` (as torchvision's
    ImageFolder, a file deeper in a class folder has its class: one image in ``real/cat/extra/``
    left every image of the --real unlabelled, unsaid): the depth of the shallowest file in a
    folder, where that gives sibling folders (``dog/*.png`` beside ``cat/indoor/``: cat and
    dog; at the depth most files sit at, ``indoor`` and ``outdoor`` were the labels and dog's
    files none), else that depth most files sit at (``samples/cat/`` beside one
    ``samples/preview.png``); files above it have none."""
    parts = {f: f.relative_to(folder).parts for f in files if f.parent != folder}
    if not parts:
        return {}
    counts = Counter(len(p) for p in parts.values())
    shallowest, most = min(counts), max(counts, key=lambda d: (counts[d], -d))  # a tie: the shallower
    for depth in (shallowest, most):
        classes = {f: folder.joinpath(*p[:depth - 1]) for f, p in parts.items() if len(p) >= depth}
        if len(set(classes.values())) >= 2 and len({c.parent for c in classes.values()}) == 1:
            break
    return classes


def label_folder_names(checkpoints: Iterable[Checkpoint], options: DiscoveryOptions) -> frozenset[str]:
    """The label folders of a run's ImageFolder checkpoints (files spread over sibling folders)."""
    return frozenset(name for checkpoint in checkpoints if len({f.parent for f in checkpoint.files}) > 1
                     for name in folder_labels(checkpoint, options).values())


def _numbered_buckets(parents: dict[Path, Path]) -> bool:
    """Folders that split numbered files by range, not by label: EDM's ``--subdirs`` puts
    seed 1012 in ``001000/001012.png``; each folder's number is where its files' begin."""
    starts = sorted({int(p.name) for p in parents.values() if p.name.isdigit()})
    if len(starts) != len(set(parents.values())):
        return False
    for path, parent in parents.items():
        number, start = last_integer(path.stem), int(parent.name)
        following = [s for s in starts if s > start]
        if number is None or number < start or (following and number >= following[0]):
            return False
    return True


def name_ids(files: tuple[Path, ...], pattern: str | None = None) -> dict[Path, int]:
    """Instance ids from file names: the number at the ``*`` of a per-step pattern
    (``img_*_step_0500.png``, ``mylora_000500_*_??????????????.png``), else a name's last;
    none for a pattern without an index (``validation_500_????????????????????.png``: names
    apart by a hash). A file whose number another file shares, or that has none (a stray
    ``00003 (1).png`` beside the samples), gets no id; the others keep theirs."""
    if pattern and "?" in pattern and "*" not in pattern:
        return {}
    wildcard = pattern_regex(pattern) if pattern and "*" in pattern else None
    numbers = {}
    for path in files:
        match = wildcard.fullmatch(path.name) if wildcard else None
        if (number := int(match[1]) if match else index_in_name(path.stem)) is not None:
            numbers[path] = number
    shared = Counter(numbers.values())
    return {path: number for path, number in numbers.items() if shared[number] == 1}


def sample_keys(files: tuple[Path, ...], pattern: Path) -> dict[Path, str]:
    """What tells the samples of a pattern apart: the part of each name at ``{sample}``
    (``step_500_{sample}.png``: ``street_0_512x512``, ``1-a photo of 2 cats``), or the folder
    at it (``samples/{sample}/step_500.png``: ``cat``); {} for other sources."""
    if pattern.parent.name.startswith(SAMPLE_KEY):  # samples/{sample} - no-ema/: the variant is no part of the key
        variant = pattern.parent.name.removeprefix(SAMPLE_KEY)
        return {path: path.parent.name.removesuffix(variant) for path in files}
    if SAMPLE_KEY not in pattern.name:
        return {}
    regex = pattern_regex(pattern.name)
    return {path: match[1] for path in files if (match := regex.fullmatch(path.name))}


def key_ids_and_labels(keys: dict[Path, str]) -> tuple[dict[Path, int], dict[Path, str]]:
    """Instance ids and labels of samples named by a prompt or class: the index every key
    begins with and the prompt after it, when each has a distinct one (EveryDream2's
    ``1-a photo of 2 cats``), else the keys' order and the keys themselves (``3_dogs`` is a
    prompt): the same prompts get the same ids at every step."""
    split = {path: m.groups() for path, key in keys.items() if (m := re.fullmatch(r"(\d+)[-_ .]+(.+)", key))}
    if len(split) * 2 > len(keys) and len({int(index) for index, _ in split.values()}) == len(split):
        # the few others (OneTrainer's samples/custom/, asked for once) numbered after them
        others = {key: max(int(index) for index, _ in split.values()) + 1 + i
                  for i, key in enumerate(sorted({key for path, key in keys.items() if path not in split}))}
        return ({path: int(split[path][0]) if path in split else others[key] for path, key in keys.items()},
                {path: split[path][1] if path in split else key for path, key in keys.items()})
    order = {key: i for i, key in enumerate(sorted(set(keys.values())))}
    return {path: order[key] for path, key in keys.items()}, dict(keys)


def folder_name_ids(files: tuple[Path, ...], folders: dict[Path, str]) -> dict[Path, int]:
    """Instance ids of numbered files in per-label folders whose numbers start again in each
    (invoke-training's ``prompt_0000/0000.jpg``, ``prompt_0001/0000.jpg``): the folder's place
    among them times a power of ten past the largest number, plus the number; {} unless every
    file is in such a folder with a number of its own there."""
    numbers = {path: last_integer(path.stem) for path in files}
    if not folders or len(folders) != len(files) or None in numbers.values() or \
            len({(folders[path], number) for path, number in numbers.items()}) != len(files):
        return {}
    order = {name: i for i, name in enumerate(sorted(set(folders.values())))}
    stride = 10 ** len(str(max(numbers.values())))
    return {path: order[folders[path]] * stride + number for path, number in numbers.items()}


def _say_unnumbered(checkpoint: Checkpoint, files: list[Path]) -> None:
    """Once per checkpoint and process: which files got no instance id, so a user sees why
    those samples are not followed from step to step."""
    names = listed([f.name for f in files])
    warn_once(checkpoint.root / checkpoint.source,
              f"{checkpoint.source}: {len(files)} of {len(checkpoint.files)} files share their number with another, "
              f"have none or one past {MAX_INSTANCE:,} ({names}): no instance id for them; the others keep theirs "
              "(rename or remove the strays)",
              about="ids", say=log.warning)


# --- samples -------------------------------------------------------------------------------

class _Context:
    """What every file of one checkpoint needs: relative names, labels and instance ids."""

    def __init__(self, checkpoint: Checkpoint, options: DiscoveryOptions) -> None:
        self.checkpoint, self.options = checkpoint, options
        self.folder = checkpoint_path(checkpoint)
        self.table = labels_table(checkpoint, options)
        self.folders = folder_labels(checkpoint, options)
        # A checkpoint that is one file carries its step in its name, not an instance id.
        key_ids, self.key_labels = key_ids_and_labels(sample_keys(checkpoint.files, self.folder))
        self.ids = {} if self.folder.is_file() else key_ids or name_ids(checkpoint.files, self.folder.name)
        generated = checkpoint.kind == "generated"  # a reference set's images align with nothing
        if generated and len(self.ids) < len(checkpoint.files) and (
                by_folder := folder_name_ids(checkpoint.files, self.folders)):
            self.ids = by_folder
        # the store keeps ids as int32: a seed in the name (AUTOMATIC1111's 00000-3141592653.png,
        # up to 2**32-1) or a photo's id (Flickr's 53241234567.jpg) ended the watch
        self.ids = {path: number for path, number in self.ids.items() if 0 <= number <= MAX_INSTANCE}
        #: images left without an id though the names number them (said unless they are grids)
        unnumbered = [f for f in checkpoint.files if f not in self.ids and f.suffix.lower() not in TENSOR_EXTENSIONS]
        self.unnumbered = unnumbered if generated and (self.ids or any(last_integer(f.stem) is not None for f in unnumbered)) \
            and not self.folder.is_file() and "?" not in self.folder.name else []
        # Forced geometry describes the trainer's grids, never a reference data set.
        self.grid = options.grid if generated else None
        self.tile_size = options.tile_size if generated else None
        self.tile_rows = options.tile_rows if generated else None
        self.tile_cols = options.tile_cols if generated else None

    def name(self, path: Path) -> str:
        try:
            return path.relative_to(self.checkpoint.root).as_posix()
        except ValueError:
            return path.name

    def label(self, path: Path, instance: int, tile: int | None = None) -> str | None:
        """The labels file's entry for a sample, else its label folder's name, else the prompt
        or class its name gives."""
        if tile is not None:
            keys = [str(instance), f"{path.name}#{tile}"]
        else:
            keys = [self.name(path), path.name, path.stem] + ([str(instance)] if instance >= 0 else [])
            if path.is_relative_to(self.folder):
                keys.insert(0, path.relative_to(self.folder).as_posix())
        found = next((self.table[k] for k in keys if k in self.table), None)
        if found is None:
            found = self.folders.get(path)
        return found if found is not None else self.key_labels.get(path)


#: Why an image is skipped when ``--tile-rows``/``--tile-cols`` ask for tiles of it and no grid
#: is found in it (a sample file, or an image logged to TensorBoard).
NO_GRID_TO_SLICE = ("no grid found to keep rows or columns of (tiles too alike or too noisy to tell apart); "
                    "force its geometry with --grid ROWSxCOLS")


def _misfit(reason: str) -> SkipFile:
    exc = SkipFile(reason)
    exc.misfit = True
    return exc


def _grid_or_image(path: Path, ctx: _Context, split: bool, offset: int) -> Iterator[Sample]:
    value_range = ctx.options.value_range
    pages = load_pages(path, value_range) if path.suffix.lower() in (".tif", ".tiff") else [load_image(path, value_range)]
    name = ctx.name(path)
    if len(pages) > 1 or pages[0] is None:  # a stack of samples, each page one, never split (a tensor file's rows)
        for page, image in enumerate(pages):
            if image is not None:
                yield Sample(image=image, instance=offset + page, path=f"{name}#{page}",
                             label=ctx.label(path, offset + page, page))
        if bad := [str(page) for page, image in enumerate(pages) if image is None]:  # said as uint8_rows says rows
            exc = _diverged(f"{len(bad)} of {len(pages)} pages hold NaN or infinite values "
                            f"(page{'s' if len(bad) > 1 else ''} {listed(bad, 5)}), not stored")
            exc.rows = len(pages)
            raise exc
        return
    image = pages[0]
    geometry = None
    if split:
        try:
            geometry = resolve_grid(image, ctx.grid, ctx.tile_size, lossy=path.suffix.lower() in LOSSY_EXTENSIONS)
        except ValueError as exc:
            raise _misfit(str(exc)) from None
    if geometry is None and split and (ctx.tile_rows or ctx.tile_cols):  # the user's choice cannot be made
        raise _misfit(NO_GRID_TO_SLICE)
    if geometry is None:
        instance = ctx.ids.get(path, -1)
        yield Sample(image=image, instance=instance, path=name, label=ctx.label(path, instance))
        return
    try:
        tiles = select_tiles(split_grid(image, geometry), geometry, ctx.tile_rows, ctx.tile_cols)
    except ValueError as exc:
        raise _misfit(str(exc)) from None
    for tile_index, tile in tiles:
        instance = offset + tile_index
        yield Sample(image=tile, instance=instance, path=f"{name}#{tile_index}",
                     label=ctx.label(path, instance, tile_index))


def _sheets_of_grids(images: Sequence[Path], value_range: tuple[float, float] | None) -> bool:
    """Whether a checkpoint's several images are sheets of samples (then each may be a grid):
    its first and last images are grids of one tile size, at least 2 * MIN_TILE px (BigGAN's
    ``samples0.jpg``, 10 x 10, beside ``interpZ0.jpg``, 16 x 10).
    A folder of single samples whose first one the detector takes for a grid (a small
    nearest-neighbour upscaled digit on black) must not be cut into blocks, every file of it."""
    found = []
    for path in (images[0], images[-1]):
        try:
            image = load_image(path, value_range)
        except SkipFile:
            return False
        grid = detect_grid(image, lossy=path.suffix.lower() in LOSSY_EXTENSIONS)
        if grid is None or min(grid.tile_h, grid.tile_w) < 2 * MIN_TILE:
            return False
        found.append((grid.tile_h, grid.tile_w))
    return found[0] == found[1]


def _tensor_samples(path: Path, ctx: _Context, offset: int) -> Iterator[Sample]:
    images, labels, latents, said_range = load_tensor_file(path, reference=ctx.checkpoint.kind != "generated")
    name = ctx.name(path)
    try:
        # the file's own range wins, as a sampler's does (round AT: under --value-range tanh, a
        # save_samples batch read otherwise on the steps where a sample held NaN)
        value_range = _value_range(images, said_range or ctx.options.value_range)
        for row, pixels in uint8_rows(images, value_range):
            instance = offset + row
            # an empty label is none, as in a labels file (save_samples stores None so)
            label = (_label_text(labels[row]) or None) if labels is not None else ctx.label(path, instance, row)
            latent = np.asarray(latents[row], dtype=np.float32).reshape(-1) if latents is not None else None
            yield Sample(image=to_rgb(pixels), instance=instance, path=f"{name}#{row}", label=label, latent=latent)
    except SkipFile as exc:
        exc.rows = len(images)
        raise


_last_context: tuple[tuple, _Context, bool] | None = None


def _context(checkpoint: Checkpoint, options: DiscoveryOptions, content_hash: str | None) -> tuple[_Context, bool]:
    """A checkpoint's :class:`_Context`, and whether its images are split as grids. Made once
    per version of a checkpoint (its ``content_hash``) in a process, not once per part of a
    large folder: each of the 78 parts of 20,000 files went over all 20,000 names (17x the
    CPU of 2,000 files)."""
    global _last_context
    key = (checkpoint.source, content_hash, options)
    if content_hash is None or _last_context is None or _last_context[0] != key:
        ctx = _Context(checkpoint, options)
        images = [f for f in checkpoint.files if f.suffix.lower() not in TENSOR_EXTENSIONS]
        split = ctx.grid is not None or ctx.tile_size is not None or len(images) == 1 or (
            len(images) > 1 and checkpoint.kind == "generated" and _sheets_of_grids(images, options.value_range))
        _last_context = (key, ctx, split)
    return _last_context[1], _last_context[2]


def iter_samples(checkpoint: Checkpoint, options: DiscoveryOptions | None = None,
                 files: Sequence[Path] | None = None, content_hash: str | None = None) -> Iterator[Sample | SkippedFile]:
    """Every sample of a checkpoint, file by file, in file order; unreadable files are skipped.

    ``files``: only these of the checkpoint's files (one decode worker's part of a large
    folder of single images); names, instance ids, labels and grid detection still come from
    the whole checkpoint, worked out once per ``content_hash`` (the checkpoint's version)
    when it is given. Raises :class:`DiscoveryError` only for a labels file that cannot be
    read (a setting, not a sample).
    """
    options = options or DiscoveryOptions()
    ctx, split = _context(checkpoint, options, content_hash)
    if ctx.unnumbered and not split:
        _say_unnumbered(checkpoint, ctx.unnumbered)
    offset = 0  # instance ids of multi-sample files (grids, tensors) continue across files
    for path in checkpoint.files if files is None else files:
        is_tensor = path.suffix.lower() in TENSOR_EXTENSIONS
        produced = _tensor_samples(path, ctx, offset) if is_tensor else _grid_or_image(path, ctx, split, offset)
        after, multi = offset, False  # past the file's last instance (a grid's rows left out too)
        whole = ctx.name(path)  # a single image's sample path; a grid's, a stack's or a tensor's are NAME#i
        try:
            for sample in produced:
                after = max(after, sample.instance + 1)
                multi = multi or sample.path != whole  # not "#" in it: an image named x#5.png moved the next file's ids
                yield sample
        except SkipFile as exc:  # the consumer logs it and records it in the store
            yield SkippedFile(path=ctx.name(path), reason=str(exc), misfit=exc.misfit, diverged=exc.diverged)
            if exc.rows:  # a tensor file's rows, some or all left out: the next file's ids follow them all
                after, multi = max(after, offset + exc.rows), True
        except Exception as exc:  # never one file's failure the whole ingest's: named, recorded, the rest goes on
            log.debug("reading %s failed", path, exc_info=True)
            yield SkippedFile(path=ctx.name(path), reason=f"could not be read ({type(exc).__name__}: {exc})")
        if multi:
            offset = after
