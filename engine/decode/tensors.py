"""Tensor files (``.npy``, ``.npz``, ``.pt``): which array holds the samples, their labels and latents."""
from __future__ import annotations

import logging
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from engine.decode.file_rows import FileRows, _file_rows, _read_through, _stored_member, member_rows
from engine.decode.skip import SkipFile, _require_content


log = logging.getLogger(__name__)


IMAGE_KEYS = ("images", "samples", "x", "imgs", "image", "sample", "fakes", "fake", "generated", "arr_0", "data")


LABEL_KEYS = ("labels", "y", "label", "targets", "target", "classes", "class")
LATENT_KEYS = ("latents", "z", "features", "latent", "feats", "noise", "w")


def to_nhwc(array: np.ndarray) -> np.ndarray:
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


def array_under(arrays: Mapping[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray | None:
    """The array stored under the first of ``keys`` the file has, names compared case-blind."""
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
            images = images.converted(to_nhwc)
        except SkipFile:  # judged on its first row: said with the file's whole shape
            raise _no_image_array(images.shape, images.dtype) from None
    else:
        images = to_nhwc(np.asarray(images))
    extras = []
    # np.savez(path, images, labels) without names, as openai's guided-diffusion samples
    positional = ("arr_1",) if set(arrays) == {"arr_0", "arr_1"} else ()
    for keys, what in ((LABEL_KEYS + positional, "labels"), (LATENT_KEYS, "latents")):
        extra = array_under(arrays, keys)
        extra = None if extra is None else np.asarray(extra)  # small: read whole
        if extra is not None and (extra.ndim == 0 or len(extra) != len(images)):
            log.warning("%s: %d %s for %d images; ignoring them", path, len(extra), what, len(images))
            extra = None
        extras.append(extra)
    return images, extras[0], extras[1], _said_range(arrays)


def header_samples(path: Path) -> tuple[int, int, int, int] | None:
    """(N, H, W, C) of the samples a ``.npy`` or ``np.savez`` file holds, from its headers alone, laid
    out as :func:`load_tensor_file` reads them (discovery asks at every pass); None where only
    reading it tells (a ``.pt``, a compressed ``.npz``, no image array)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arrays: dict[str, FileRows | np.ndarray | None] = {"images": _file_rows(path, 0)}
        elif suffix == ".npz":
            with zipfile.ZipFile(path) as archive:  # its directory only: a member's bytes are not read
                arrays = {m.filename.removesuffix(".npy"): member_rows(path, m) for m in archive.infolist()}
        else:
            return None
    except (OSError, zipfile.BadZipFile):
        return None
    named = {k: np.empty(0) if v is None else v for k, v in arrays.items()}  # unread: by name only
    key = _image_key(named)
    images = arrays[key] if key is not None else next(iter(arrays.values())) if len(arrays) == 1 else None
    if not isinstance(images, FileRows) or _holds_fid_statistics(arrays):
        return None
    try:  # a stand-in of the file's shape and dtype that holds no memory
        n, h, w, c = to_nhwc(np.broadcast_to(np.zeros((), images.dtype), images.shape)).shape
    except SkipFile:
        return None
    return n, h, w, c


def _said_range(arrays: Mapping[str, np.ndarray]) -> tuple[float, float] | None:
    """A ``value_range`` array of two finite numbers (low, high) beside the images: what
    :func:`engine.hooks.save_samples` writes beside floats it could not make uint8 (NaN or inf
    among them); read with it, whatever ``--value-range`` says. Anything else under that name
    is not a range (round AS: a string there skipped the file)."""
    said = array_under(arrays, ("value_range",))
    try:
        low, high = np.asarray(said, dtype=np.float64).reshape(-1) if said is not None else (0.0, 0.0)
    except (TypeError, ValueError):  # not numbers, or not two of them
        return None
    return (float(low), float(high)) if np.isfinite([low, high]).all() and low < high else None


def label_text(value: np.ndarray) -> str:
    """A stored label as text: a class index, a string, or the argmax of one-hot scores."""
    value = np.asarray(value)
    if value.ndim >= 1 and value.size > 1:  # one-hot or scores
        return str(int(np.argmax(value)))
    item = value.reshape(-1)[0].item() if value.size else ""
    if isinstance(item, bytes):
        return item.decode(errors="replace")
    return str(int(item)) if isinstance(item, float) and item.is_integer() else str(item)

