"""Image -> model input in numpy and Pillow only (picklable, torch-free, for worker pools)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from engine.encoders.spec import PIXELS_DEFAULT_SIZE
from engine.errors import EvowatchError


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 RGB image. Got dtype {arr.dtype} instead.")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"Expected an RGB image of shape (H, W, 3). Got shape {arr.shape} instead.")
    return np.ascontiguousarray(arr)


_PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


class Preprocessor(Protocol):
    """Image -> model input in two halves, so a worker process sends uint8 (4x smaller than
    the float input) and the encoder's thread finishes the batch."""

    size: int  # side of the square pixels and model input

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) image -> the model's uint8 (3, S, S) pixels (resize, crop)."""
        ...

    def to_input(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (n, 3, S, S) -> float32 (n, 3, S, S) model input (scale, normalise)."""
        ...

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Both halves for one image."""
        ...


class _TwoHalves:
    """``__call__`` of a :class:`Preprocessor` from its two halves."""

    __slots__ = ()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.to_input(self.pixels(image)[None])[0]


@dataclass(frozen=True, slots=True)
class ClipPreprocessor(_TwoHalves):
    """open_clip's inference transform in numpy/Pillow: the same Pillow resize calls and crop
    arithmetic as torchvision's ``Resize``/``CenterCrop`` on PIL images, then ``/255`` and
    per-channel normalisation.

    Attributes
    ----------
    size : int
        Side of the square output.
    mean, std : tuple of float
        Per-channel normalisation (RGB).
    interpolation : {"bicubic", "bilinear"}
    resize_mode : {"shortest", "longest", "squash"}
    fill_color : int
        Padding value for ``"longest"``.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    @classmethod
    def from_open_clip_cfg(cls, cfg: dict[str, Any]) -> "ClipPreprocessor":
        """Build from a model's ``visual.preprocess_cfg`` dict."""
        size = cfg["size"]
        if isinstance(size, (tuple, list)):
            if len(size) != 2 or size[0] != size[1]:
                raise EvowatchError(f"Only square CLIP inputs are supported; this model wants {tuple(size)}.")
            size = size[0]
        interpolation = cfg.get("interpolation") or "bicubic"
        if interpolation == "random":  # open_clip uses bicubic for inference
            interpolation = "bicubic"
        resize_mode = cfg.get("resize_mode") or "shortest"
        if interpolation not in _PIL_FILTERS or resize_mode not in ("shortest", "longest", "squash"):
            raise EvowatchError(
                f"Unsupported open_clip preprocess config: interpolation={interpolation!r}, "
                f"resize_mode={resize_mode!r}."
            )
        return cls(
            size=int(size),
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
            interpolation=interpolation,
            resize_mode=resize_mode,
            fill_color=int(cfg.get("fill_color", 0) or 0),
        )

    def pixels(self, image: np.ndarray) -> np.ndarray:
        arr = _as_rgb_uint8(image)
        h, w = arr.shape[:2]
        s = self.size
        if self.resize_mode == "squash":
            target = (s, s)
        elif self.resize_mode == "shortest":  # torchvision Resize(int): int() truncation on the long side
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = s, int(s * long / short)
            if w <= h:  # target is (h, w)
                target = (new_long, new_short)
            else:
                target = (new_short, new_long)
        else:  # "longest": open_clip ResizeKeepRatio(longest=1)
            ratio = max(h / s, w / s)
            target = (round(h / ratio), round(w / ratio))
        if target != (h, w):
            pil = Image.fromarray(arr).resize((target[1], target[0]), _PIL_FILTERS[self.interpolation])
            arr = np.asarray(pil)
        return np.ascontiguousarray(_center_crop_or_pad(arr, s, self.fill_color).transpose(2, 0, 1))

    def to_input(self, pixels: np.ndarray) -> np.ndarray:
        out = np.asarray(pixels, np.float32) / np.float32(255.0)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        return np.ascontiguousarray((out - mean) / std, dtype=np.float32)


def _center_crop_or_pad(arr: np.ndarray, size: int, fill: int) -> np.ndarray:
    """torchvision ``CenterCrop`` / open_clip ``CenterCropOrPad`` arithmetic on an (H, W, 3) array."""
    h, w = arr.shape[:2]
    if h < size or w < size:
        top, left = max(size - h, 0) // 2, max(size - w, 0) // 2
        padded = np.full((max(h, size), max(w, size), 3), fill, dtype=arr.dtype)
        padded[top:top + h, left:left + w] = arr
        arr, (h, w) = padded, padded.shape[:2]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return arr[top:top + size, left:left + size]


@dataclass(frozen=True, slots=True)
class PixelsPreprocessor(_TwoHalves):
    """RGB uint8 image -> float32 (3, size, size) in [0, 1], area-filtered (Pillow BOX)."""

    size: int = PIXELS_DEFAULT_SIZE

    def pixels(self, image: np.ndarray) -> np.ndarray:
        arr = _as_rgb_uint8(image)
        if arr.shape[:2] != (self.size, self.size):
            arr = np.asarray(Image.fromarray(arr).resize((self.size, self.size), Image.Resampling.BOX))
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def to_input(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(pixels, np.float32) / np.float32(255.0)

