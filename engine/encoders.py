"""Image encoders behind one small protocol: CLIP (open_clip) and a weight-free ``pixels`` encoder.

Encoder specs (the ``--encoder`` option; parsed by :func:`parse_encoder_spec`)::

    clip:ARCH/PRETRAINED     open_clip model name + pretrained tag, e.g. clip:ViT-B-32/laion2b_s34b_b79k
                             (the default). Weights come from the local Hugging Face cache; they are
                             downloaded only when the hub is reachable. Offline and not cached, this
                             fails within seconds with one line saying how to provide them.
    clip:ARCH/random         random initialisation with a fixed seed (tests, timing); no weights needed.
    clip:ARCH@PATH           local weights: a state_dict or open_clip checkpoint file (.pt, .pth,
                             .bin, .safetensors), or a folder holding one.
    clip:ARCH/PRETRAINED@PATH  a pretrained tag's weights copied here: read as the tag's are
                             (its image preprocessing, QuickGELU where it was trained with it).
    clip:local-dir:FOLDER    an open_clip folder: open_clip_config.json plus a weights file.
    pixels[:N]               weight-free: N x N RGB thumbnail (area filter, N=16 by default),
                             flattened, centred per image, L2-normalised. Works offline.

``ARCH`` is an open_clip model name (``open_clip.list_models()``) or the path of an open_clip
model-config JSON file (``*.json``; registered with ``open_clip.add_model_config`` under its
file stem), which is how the tests use a tiny CLIP.

Every encoder has a stable ``identity`` string, stored with the vectors; a store refuses
vectors from an encoder with another identity. Identities look like ``clip:ViT-B-32/laion2b_s34b_b79k``,
``clip:ViT-B-32/random-seed0``, ``clip:ViT-B-32@sha256-0123456789ab`` (weights named by content,
not by path), ``clip:evowatch-tiny#cfg-0123456789/random-seed0`` (a JSON config, named by its stem and
content) and ``pixels:16``.

Preprocessing is split from encoding: :attr:`Encoder.preprocessor` is a small picklable
callable that needs only numpy and Pillow (no torch), so a thread or process pool can decode
and preprocess while the device encodes. For CLIP it reproduces open_clip's inference
transform (resize the shortest side, bicubic; centre crop; normalise with the model's mean and
std) from the model's own ``preprocess_cfg``.

torch and open_clip are imported only when a ``clip:`` encoder is made, so ``pixels`` stays
light.
"""
from __future__ import annotations

import contextlib
import json
import logging
import pickle
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from engine.clip_weights import find_weights_in_dir, pretrained_weights, refuse_lfs_pointer, sha256_bytes, sha256_file
from engine.errors import EncoderSpecError, EvowatchError, WeightsNotFoundError, message_lines
from stores.format import did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DEFAULT_ENCODER_SPEC",
    "ClipEncoder",
    "ClipPreprocessor",
    "Encoder",
    "EncoderSpec",
    "PixelsEncoder",
    "PixelsPreprocessor",
    "make_encoder",
    "parse_device",
    "parse_encoder_spec",
    "resolve_device",
]

log = logging.getLogger(__name__)

DEFAULT_ENCODER_SPEC = "clip:ViT-B-32/laion2b_s34b_b79k"
RANDOM_TAG = "random"
RANDOM_SEED = 0
PIXELS_DEFAULT_SIZE = 16
PIXELS_SIZE_RANGE = (4, 64)
CPU_BATCH_SIZE = 32
CUDA_BATCH_SIZE = 256
CUDA_BATCH_SIZE_LARGE_INPUT = 64  # input side above 256 px
PIXELS_BATCH_SIZE = 1024
CPU_FALLBACK_NOTE = "CUDA requested/auto but unavailable: encoding on CPU"

_SPEC_HELP = (
    "'clip:ARCH/PRETRAINED' (e.g. 'clip:ViT-B-32/laion2b_s34b_b79k'), 'clip:ARCH/random', "
    "'clip:ARCH@/path/to/weights.pt', 'clip:ARCH/PRETRAINED@/path/to/weights.pt' (a tag's weights copied by hand), "
    "'clip:local-dir:/path/to/folder' or 'pixels[:N]'"
)

Device = Literal["cpu", "cuda"]
WeightsSource = Literal["tag", "random", "path", "local-dir"]


# --------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------
@runtime_checkable
class Encoder(Protocol):
    """What the pipeline needs from an image encoder.

    Attributes
    ----------
    identity : str
        Stable description stored in the store; encoders are interchangeable only when
        their identities are equal.
    spec : str
        The spec that loads this encoder again (:meth:`EncoderSpec.text`), set by
        :func:`make_encoder`.
    dim : int
        Length of each embedding.
    device : str
        ``"cuda"`` or ``"cpu"``: where :meth:`encode` runs.
    fallback : str or None
        A note when an automatic, result-changing fallback happened (for example CUDA
        unavailable), else None.
    input_size : int
        Side of the square model input made by :meth:`preprocess`.
    batch_size : int
        Batch size chosen for the device (bigger on CUDA).
    supports_text : bool
        Whether :meth:`encode_text` works.
    preprocessor : Preprocessor
        Picklable, torch-free version of :meth:`preprocess` for worker pools, in two halves.
    """

    identity: str
    spec: str
    dim: int
    device: str
    fallback: str | None
    input_size: int
    batch_size: int
    supports_text: bool

    @property
    def preprocessor(self) -> Preprocessor: ...

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) image -> float32 (3, input_size, input_size) model input."""
        ...

    def encode(self, batch: np.ndarray) -> np.ndarray:
        """Stack of preprocessed inputs (n, 3, S, S) -> float32 (n, dim), L2-normalised rows."""
        ...

    def encode_pixels(self, pixels: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Stack of ``preprocessor.pixels`` outputs (n, 3, S, S) uint8, or a list of such
        stacks encoded as one batch -> what :meth:`encode` returns for their
        ``preprocessor.to_input``, finishing the inputs where that is cheapest (on the GPU
        for CLIP on CUDA: a quarter of the bytes to copy, no host work, parts joined there)."""
        ...

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        """Prompts -> float32 (n, dim), L2-normalised rows, in the image embedding space."""
        ...


# --------------------------------------------------------------------------------------
# Parsing at the boundary
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EncoderSpec:
    """A parsed encoder spec; see the module docstring for the grammar.

    Attributes
    ----------
    kind : {"clip", "pixels"}
    arch : str
        open_clip model name or path to a model-config JSON; ``""`` for pixels and local-dir.
    source : {"tag", "random", "path", "local-dir"} or None
        Where CLIP weights come from; None for pixels.
    tag : str or None
        Pretrained tag when ``source == "tag"``; with ``"path"``, the tag the weights file holds
        (its preprocessing and activation are the tag's).
    path : Path or None
        Weights file/folder (``"path"``) or open_clip folder (``"local-dir"``).
    size : int
        Thumbnail side for pixels.
    """

    kind: Literal["clip", "pixels"]
    arch: str = ""
    source: WeightsSource | None = None
    tag: str | None = None
    path: Path | None = None
    size: int = PIXELS_DEFAULT_SIZE

    def text(self) -> str:
        """The spec as a string that loads the same encoder from any working directory
        (paths made absolute): what a store records, so that a viewer can load the
        encoder again (identities name weights by content and cannot be loaded)."""
        if self.kind == "pixels":
            return f"pixels:{self.size}"
        arch = str(Path(self.arch).expanduser().resolve()) if self.arch.endswith(".json") else self.arch
        where = str(self.path.expanduser().resolve()) if self.path is not None else ""
        if self.source == "local-dir":
            return f"clip:local-dir:{where}"
        if self.source == "path":
            return f"clip:{arch}{'/' + self.tag if self.tag else ''}@{where}"
        return f"clip:{arch}/{RANDOM_TAG if self.source == 'random' else self.tag}"


def _spec_error(spec: object, hint: str = "") -> EncoderSpecError:
    extra = f" {hint}" if hint else ""
    return EncoderSpecError(f"Expected an encoder spec {_SPEC_HELP}. Got {spec!r} instead.{extra}")


def parse_encoder_spec(spec: str) -> EncoderSpec:
    """Parse an ``--encoder`` value into an :class:`EncoderSpec` (syntax only; no imports, no I/O).

    Raises
    ------
    EncoderSpecError
        (a ``ValueError``) saying "Expected ... Got ... instead." for a malformed spec.
    """
    if not isinstance(spec, str):
        raise _spec_error(spec)
    text = spec.strip()
    if text == "pixels" or text.startswith("pixels:"):
        return _parse_pixels(text)
    if not text.startswith("clip:"):
        raise _spec_error(spec)
    rest = text[len("clip:"):]
    if rest.startswith("hf-hub:"):
        raise _spec_error(spec, _hf_hub_hint(rest[len("hf-hub:"):]))
    if rest.startswith("local-dir:"):
        folder = rest[len("local-dir:"):]
        if not folder:
            raise _spec_error(spec, "The folder after 'local-dir:' is empty.")
        return EncoderSpec(kind="clip", source="local-dir", path=Path(folder).expanduser())
    at = _weights_at(rest)
    if at >= 0:
        arch, where = rest[:at], rest[at + 1:]
        if not arch or not where:
            raise _spec_error(spec, "Both ARCH and the weights path are needed around '@'.")
        base, slash, tag = arch.rpartition("/")
        if slash and base and tag and not arch.endswith(".json"):  # ViT-B-32/openai@FILE: read as the tag's
            return EncoderSpec(kind="clip", arch=base, source="path", tag=tag, path=Path(where).expanduser())
        return EncoderSpec(kind="clip", arch=arch, source="path", path=Path(where).expanduser())
    arch, slash, tag = rest.rpartition("/")
    if not slash or not arch or not tag or tag.endswith(".json"):
        raise _spec_error(spec, "Name the weights: add '/PRETRAINED', '/random' or '@PATH' after ARCH.")
    if tag == RANDOM_TAG:
        return EncoderSpec(kind="clip", arch=arch, source="random")
    return EncoderSpec(kind="clip", arch=arch, source="tag", tag=tag)


def _weights_at(rest: str) -> int:
    """Where the weights' ``@`` is in ``ARCH[/TAG]@PATH``, or -1: the first ``@`` after which
    ARCH reads as one, a model name or a config file's path (``/runs/proj@v2/tiny.json/random``
    has none; ``ViT-B-32@/exports/clip.json-v2/w.pt`` the first)."""
    at = rest.find("@")
    while at >= 0:
        arch = rest[:at]
        if "/" not in arch or re.fullmatch(r"[^/@]+/[^/@]+|.*\.json(/[^/@]+)?", arch):
            return at
        at = rest.find("@", at + 1)
    return -1


def _hf_hub_hint(repo: str) -> str:
    """What to write for open_clip's ``hf-hub:ORG/REPO`` name: the tag whose weights that
    repository holds, else the local-dir form (only on this error: parsing imports nothing)."""
    import open_clip

    tags = [f"clip:{arch}/{tag}" for arch, tag in open_clip.list_pretrained()
            if (open_clip.get_pretrained_cfg(arch, tag).get("hf_hub") or "").rstrip("/") == repo.rstrip("/")]
    named = f" (here {' or '.join(tags[:2])})" if tags else ""
    return (f"open_clip's hf-hub: names are written clip:ARCH/TAG, the tag whose weights that repository "
            f"holds{named}, or clip:local-dir:FOLDER for a copy of the repository.")


def _parse_pixels(text: str) -> EncoderSpec:
    if text == "pixels":
        return EncoderSpec(kind="pixels")
    raw = text[len("pixels:"):]
    lo, hi = PIXELS_SIZE_RANGE
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise EncoderSpecError(
            f"Expected 'pixels' or 'pixels:N' with an integer N in [{lo}, {hi}]. Got {text!r} instead."
        )
    return EncoderSpec(kind="pixels", size=int(raw))


def parse_device(device: str) -> str:
    """Check a ``--device`` value: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    if isinstance(device, str):
        value = device.strip().lower()
        if value in ("auto", "cpu", "cuda"):
            return value
        if value.startswith("cuda:") and value[5:].isdigit():
            return value
    raise EncoderSpecError(f"Expected device 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead.")


def resolve_device(device: str = "auto", announce: bool = True) -> tuple[str, str | None]:
    """Pick the torch device for ``device``; returns ``(torch_device, fallback_note)``.

    ``auto`` falls back to CPU when CUDA is unavailable, logging one warning line (stderr;
    not with ``announce=False``, for a caller that says it once it knows it goes on);
    an explicit ``cuda`` that is unavailable raises :class:`EvowatchError`.
    """
    import torch

    value = parse_device(device)
    available = torch.cuda.is_available()
    if value == "cpu":
        return "cpu", None
    if value == "auto":
        if available:
            return "cuda", None
        if announce:
            log.warning(CPU_FALLBACK_NOTE)
        return "cpu", CPU_FALLBACK_NOTE
    if not available:
        raise EvowatchError(
            f"--device {value} was requested but torch sees no usable CUDA device "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
            "use --device auto or --device cpu."
        )
    index = int(value.split(":")[1]) if ":" in value else 0
    if index >= torch.cuda.device_count():
        raise EvowatchError(
            f"--device {value} was requested but only {torch.cuda.device_count()} CUDA device(s) exist."
        )
    return value, None


# --------------------------------------------------------------------------------------
# Preprocessing (numpy + Pillow only; picklable)
# --------------------------------------------------------------------------------------
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


def _check_batch(batch: np.ndarray, size: int) -> np.ndarray:
    arr = np.asarray(batch)
    if arr.ndim != 4 or arr.shape[1:] != (3, size, size):
        raise ValueError(
            f"Expected a batch of preprocessed inputs of shape (n, 3, {size}, {size}). "
            f"Got shape {arr.shape} instead."
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


# --------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------
class _EncoderBase:
    """What both encoders share: the picklable preprocessor and the repr."""

    _pre: Preprocessor
    identity: str
    device: str
    dim: int

    def __repr__(self) -> str:
        return f"{type(self).__name__}(identity={self.identity!r}, device={self.device!r}, dim={self.dim})"

    @property
    def preprocessor(self) -> Preprocessor:
        """Picklable, torch-free preprocessing for worker threads or processes."""
        return self._pre

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) image -> float32 (3, input_size, input_size) model input."""
        return self._pre(image)

    def encode_pixels(self, pixels: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """uint8 (n, 3, S, S) from ``preprocessor.pixels``, or a list of such stacks ->
        float32 (n, dim), as :meth:`encode`."""
        parts = _parts(pixels)
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self.encode(self._pre.to_input(joined))  # type: ignore[attr-defined]


def _parts(pixels: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [pixels] if isinstance(pixels, np.ndarray) else list(pixels)


class PixelsEncoder(_EncoderBase):
    """Weight-free encoder: a small area-filtered thumbnail, flattened, centred per image and
    L2-normalised (so the cosine similarity is the Pearson correlation of the thumbnails).

    A flat image (zero variance after centring) maps to the constant unit vector
    ``1/sqrt(dim)``, so every row stays unit-length and deterministic.
    """

    supports_text = False
    device = "cpu"
    fallback = None

    def __init__(self, size: int = PIXELS_DEFAULT_SIZE, batch_size: int | None = None) -> None:
        self._pre = PixelsPreprocessor(size)
        self.input_size = size
        self.dim = 3 * size * size
        self.identity = f"pixels:{size}"
        self.batch_size = batch_size or PIXELS_BATCH_SIZE

    def encode(self, batch: np.ndarray) -> np.ndarray:
        # docstring inherited
        # float32 throughout (rows are stored as float16): half the memory traffic of float64,
        # and this runs on the cores that decode and write when there is no GPU.
        arr = _check_batch(batch, self.input_size)
        flat_pixels = arr.reshape(len(arr), -1)
        x = flat_pixels - flat_pixels.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
        flat = norms[:, 0] < 1e-6  # one 1/255 step away from flat is a norm of ~4e-3
        np.divide(x, norms, out=x, where=~flat[:, None])
        x[flat] = 1.0 / np.sqrt(self.dim)
        return x

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        # docstring inherited
        raise EvowatchError("The pixels encoder has no text tower; text probes need a clip: encoder.")


# --------------------------------------------------------------------------------------
# CLIP (open_clip)
# --------------------------------------------------------------------------------------
class ClipEncoder(_EncoderBase):
    """An open_clip model in eval mode on one device. Build it with :func:`make_encoder`.

    On CUDA the model runs in open_clip's ``precision="fp16"`` (half weights, LayerNorms in
    float32) with channels-last inputs; on CPU in float32. Half weights instead of autocast:
    autocast casts every weight at every call and turns off the fused attention path:
    2.5x the operations launched per batch (436 against 174 for ViT-B-32,
    ``benchmarks/encoder_ops.py``), and a CUDA encoder is host-bound. Outputs are always float32 numpy arrays with
    L2-normalised rows.
    """

    supports_text = True

    def __init__(
        self,
        model: "torch.nn.Module",
        model_name: str,
        identity: str,
        device: str,
        fallback: str | None,
        batch_size: int | None = None,
        precision: str = "fp32",
    ) -> None:
        import open_clip
        import torch

        self._model = model.eval()
        self._input_dtype = open_clip.get_input_dtype(precision) or torch.float32  # the model's precision
        self._model_name = model_name  # what open_clip.get_tokenizer understands
        self._tokenizer: Callable[..., "torch.Tensor"] | None = None
        self._lock = threading.Lock()
        self._pre = ClipPreprocessor.from_open_clip_cfg(dict(model.visual.preprocess_cfg))
        self.identity = identity
        self.fallback = fallback
        self.input_size = self._pre.size
        self._torch_device = torch.device(device)
        self.device = self._torch_device.type
        self._cuda = self.device == "cuda"
        if self._cuda:
            self._model.to(self._torch_device)
            self._model.to(memory_format=torch.channels_last)  # conv stems (patch embed, ResNets)
            self._mean = torch.tensor(self._pre.mean, device=self._torch_device).view(1, 3, 1, 1)
            self._std = torch.tensor(self._pre.std, device=self._torch_device).view(1, 3, 1, 1)
        if batch_size is None:
            if self._cuda:
                batch_size = CUDA_BATCH_SIZE if self.input_size <= 256 else CUDA_BATCH_SIZE_LARGE_INPUT
            else:
                batch_size = CPU_BATCH_SIZE
        self.batch_size = int(batch_size)
        dim = getattr(model.visual, "output_dim", None)
        if not isinstance(dim, int):
            dim = int(self.encode(np.zeros((1, 3, self.input_size, self.input_size), np.float32)).shape[1])
        self.dim = int(dim)
        log.info("encoder %s on %s, batch size %d, dim %d", identity, device, self.batch_size, self.dim)

    def encode(self, batch: np.ndarray) -> np.ndarray:
        # docstring inherited
        import torch

        x = _check_batch(batch, self.input_size)
        if len(x) == 0:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            t = torch.from_numpy(x)
            if self._cuda:
                t = t.pin_memory().to(self._torch_device, non_blocking=True)
            return self._embed(t)

    def encode_pixels(self, pixels: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        # docstring inherited
        if not self._cuda:
            return super().encode_pixels(pixels)
        import torch

        parts = _parts(pixels)
        for x in parts:
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (3, self.input_size, self.input_size):
                raise ValueError(
                    f"Expected uint8 pixels of shape (n, 3, {self.input_size}, {self.input_size}). "
                    f"Got {x.dtype} {x.shape} instead."
                )
        if sum(len(x) for x in parts) == 0:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():  # each part straight to the device: no joined copy on the host
            t = torch.cat([torch.from_numpy(np.ascontiguousarray(x)).to(self._torch_device) for x in parts])
            # ClipPreprocessor.to_input's arithmetic, in float32 on the device
            t = (t.float() / 255.0 - self._mean) / self._std
            return self._embed(t)

    def _embed(self, inputs: "torch.Tensor") -> np.ndarray:
        """Model inputs already on the device -> L2-normalised float32 numpy rows."""
        import torch

        inputs = inputs.to(self._input_dtype)
        if self._cuda:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        out = self._model.encode_image(inputs)
        out = torch.nn.functional.normalize(out.float(), dim=-1)
        return out.cpu().numpy().astype(np.float32, copy=False)

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        # docstring inherited
        import open_clip
        import torch

        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"Expected a list of prompt strings. Got {prompts!r} instead.")
        if len(prompts) == 0:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = open_clip.get_tokenizer(self._model_name)
        tokens = self._tokenizer(list(prompts)).to(self._torch_device)
        with torch.inference_mode():
            out = torch.nn.functional.normalize(self._model.encode_text(tokens).float(), dim=-1)
            return out.cpu().numpy().astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------
# make_encoder
# --------------------------------------------------------------------------------------
def make_encoder(spec: str | EncoderSpec = DEFAULT_ENCODER_SPEC, device: str = "auto",
                 batch_size: int | None = None) -> Encoder:
    """Build the encoder a spec names, on ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Parameters
    ----------
    spec : str or EncoderSpec
        See the module docstring for the grammar.
    device : str
        ``auto`` uses CUDA when available, else CPU (noted in ``.fallback`` and logged).
        ``pixels`` always runs on CPU, quietly for ``auto``; an explicit CUDA device is
        still checked, so a typo'd machine or container is an error whatever the encoder.
    batch_size : int, optional
        Override the batch size chosen for the device.

    Raises
    ------
    EncoderSpecError
        Malformed spec or device, unknown model or tag, bad config file.
    WeightsNotFoundError
        Weights are neither local nor downloadable; the message says how to provide them.
    EvowatchError
        CUDA requested but unavailable; weights that do not fit the architecture.
    """
    parsed = spec if isinstance(spec, EncoderSpec) else parse_encoder_spec(spec)
    if parsed.kind == "pixels":
        if parse_device(device).startswith("cuda"):
            resolve_device(device)
        encoder: Encoder = PixelsEncoder(parsed.size, batch_size=batch_size)
    else:
        torch_device, fallback = resolve_device(device, announce=False)
        precision = "fp16" if torch_device.startswith("cuda") else "fp32"
        model, model_name, identity = _load_clip(parsed, precision)
        if fallback:  # said once the weights are found: before a missing weights error it misled (round AN)
            log.warning(fallback)
        encoder = ClipEncoder(model, model_name, identity, torch_device, fallback, batch_size=batch_size,
                              precision=precision)
    encoder.spec = parsed.text()
    return encoder


def _load_clip(spec: EncoderSpec, precision: str = "fp32") -> tuple["torch.nn.Module", str, str]:
    """Create the open_clip model on CPU in ``precision`` (open_clip's: ``fp32``, ``fp16``);
    returns (model, open_clip model name, identity)."""
    import open_clip
    import torch

    if spec.source == "local-dir":
        folder = spec.path
        assert folder is not None
        config = folder / "open_clip_config.json"
        if not config.is_file():
            raise WeightsNotFoundError(
                f"{config} does not exist: 'clip:local-dir:FOLDER' needs open_clip_config.json and a weights file."
            )
        weights = find_weights_in_dir(folder, f"put the weights beside {config.name}")
        refuse_lfs_pointer(weights)
        name = f"local-dir:{folder}"
        # the file hashed into the identity, loaded by us: open_clip's own pick skips .pt files
        # (a random model was used under the identity of those weights) and orders others its way
        with _quiet_random_init_warning():
            model = _create(name, None, load_weights=False, precision=precision)
        _load_weights(model, name, weights)
        cfg_hash = sha256_bytes(config.read_bytes())[:10]
        return model, name, f"clip:local-dir#cfg-{cfg_hash}@sha256-{sha256_file(weights)[:12]}"

    name, arch_label = _resolve_arch(spec.arch)
    if spec.source == "random":
        with torch.random.fork_rng(devices=[]), _quiet_random_init_warning():
            torch.manual_seed(RANDOM_SEED)
            model = _create(name, None, precision=precision)
        return model, name, f"clip:{arch_label}/random-seed{RANDOM_SEED}"
    if spec.source == "path":
        assert spec.path is not None
        weights = find_weights_in_dir(spec.path) if spec.path.is_dir() else spec.path
        if not weights.is_file():
            raise WeightsNotFoundError(
                f"Weights file {weights} does not exist (from clip:{spec.arch}@{spec.path})."
            )
        refuse_lfs_pointer(weights)
        if spec.tag is None:
            model = _create(name, str(weights), precision=precision)
            return model, name, f"clip:{arch_label}@sha256-{sha256_file(weights)[:12]}"
        tag, settings, quick = _as_tag(name, spec.tag)
        model = _create(name, str(weights), precision=precision, **settings)
        return model, name, f"clip:{arch_label}/{tag}@sha256-{sha256_file(weights)[:12]}" + ("+quickgelu" if quick else "")
    assert spec.source == "tag" and spec.tag is not None
    tag, settings, quick = _as_tag(name, spec.tag)
    weights = pretrained_weights(name, tag, open_clip.get_pretrained_cfg(name, tag))
    model = _create(name, str(weights), precision=precision, **settings)
    return model, name, f"clip:{arch_label}/{tag}" + ("+quickgelu" if quick else "")


def _as_tag(name: str, tag: str) -> tuple[str, dict[str, Any], bool]:
    """(tag, open_clip model settings, QuickGELU?) to build ``name`` as pretrained ``tag``'s
    weights were trained: its image preprocessing (SigLIP's mean 0.5 and squash resize, ...)
    and QuickGELU (OpenAI's, laion400m_e3x...). Given a file path, open_clip sets neither from
    a tag nor warns: ViT-B-32/openai ran on GELU, and a copy of a tag's file read as ARCH@FILE
    gave other vectors than the tag (cosine -0.38 for one image). The identity says QuickGELU:
    a store of the GELU model's vectors refuses these."""
    import open_clip

    tag = open_clip.pretrained._clean_tag(tag)
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        known = open_clip.list_pretrained_tags_by_model(name)
        raise EncoderSpecError(f"Expected a pretrained tag for {name} (one of {known}) or 'random'. Got {tag!r} "
                               f"instead{did_you_mean(tag, known)}.")
    pp = {f"image_{k}": cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if cfg.get(k)}
    quick = bool(cfg.get("quick_gelu")) and not (open_clip.get_model_config(name) or {}).get("quick_gelu")
    return tag, {"force_quick_gelu": quick, **pp}, quick


def _create(name: str, pretrained: str | None, **kwargs: Any) -> "torch.nn.Module":
    import open_clip

    try:
        with _no_pickle_protocol_warning():
            model, _, _ = open_clip.create_model_and_transforms(name, pretrained=pretrained, device="cpu", **kwargs)
    except Exception as exc:  # weights of another model, a damaged or foreign file: any error, one line
        raise _cannot_build(name, pretrained, exc) from exc
    return model


@contextlib.contextmanager
def _no_pickle_protocol_warning() -> Iterator[None]:
    """torch's "Detected pickle protocol 4" warning of a file it will not load: on stderr
    before our one line saying why (round AJ)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        yield


def _load_weights(model: "torch.nn.Module", name: str, weights: Path) -> None:
    import open_clip

    try:
        with _no_pickle_protocol_warning():
            open_clip.load_checkpoint(model, str(weights))
    except Exception as exc:
        raise _cannot_build(name, str(weights), exc) from exc


def _cannot_build(name: str, weights: str | None, exc: Exception) -> EvowatchError:
    """One line for a model that could not be built or loaded: the error's first two lines
    (a state dict's "Error(s) in loading state_dict for CLIP:" says what only on the next)."""
    lines = message_lines(exc)[:2] or [type(exc).__name__]
    if isinstance(exc, pickle.UnpicklingError):  # torch's second line advises unpickling anyway: not for
        why = ("not a file torch.save wrote" if "Unsupported operand" in str(exc)  # text, a plain pickle
               else "no checkpoint torch loads without running its code")
        lines = [lines[0].split(". ")[0].rstrip(".") + ": " + why]
    elif isinstance(exc, EOFError):
        lines = ["the file is empty or cut short"]
    where = f" from {weights}" if weights else ""
    said = f"{type(exc).__name__}: " + " ".join(lines)
    if len(said) > 300:  # a state dict's key list: cut between keys, not inside one
        cut = said.rfind(", ", 0, 300)
        said = (said[:cut] if cut > 0 else said[:300]) + ", ..."
    if weights and not _may_be_weights(Path(weights)):  # a text file's pickle error read "KeyError: 101"
        said = "not a file torch.save or safetensors wrote"
    return EvowatchError(f"Cannot build open_clip model {name}{where} ({said}); "
                         "the weights must be the architecture's (a file saved by open_clip or torch.save of its "
                         "state_dict)")


def _may_be_weights(path: Path) -> bool:
    """Whether a file starts as torch.save (a zip since torch 1.6, a pickle's protocol opcode
    before) or safetensors (a little-endian header length, then its JSON) writes one; one that
    cannot be read is said otherwise."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return True
    return not head or head.startswith((b"PK\x03\x04", b"\x80")) or head[8:9] == b"{"  # empty: said as cut short


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("No pretrained weights loaded", "Local config loaded, but no CLIP weights"))


@contextlib.contextmanager
def _quiet_random_init_warning() -> Iterator[None]:
    """open_clip warns on the root logger about random init: for ``/random`` it was asked for,
    for a local-dir folder the weights are loaded next (:func:`_load_weights`)."""
    root, flt = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _resolve_arch(arch: str) -> tuple[str, str]:
    """Return (open_clip model name, identity label) for a built-in name or a config JSON path."""
    import open_clip

    if arch.endswith(".json"):
        return _register_config(Path(arch).expanduser())
    if arch in open_clip.list_models():
        return arch, arch
    raise EncoderSpecError(
        f"Expected an open_clip model name (see open_clip.list_models(), e.g. ViT-B-32) or a model-config "
        f".json path. Got {arch!r} instead{did_you_mean(arch, open_clip.list_models())}."
    )


_registered_configs: dict[str, Path] = {}


def _register_config(path: Path) -> tuple[str, str]:
    """Register an open_clip model-config JSON under its file stem (once per content)."""
    import open_clip

    if not path.is_file():
        raise EncoderSpecError(f"Model config file {path} does not exist.")
    raw = path.read_bytes()
    try:
        cfg = json.loads(raw)
    except ValueError as exc:
        raise EncoderSpecError(f"Model config file {path} is not valid JSON: {exc}") from exc
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise EncoderSpecError(
            f"Expected an open_clip model config with embed_dim, vision_cfg and text_cfg. "
            f"Got {path} without {', '.join(missing)} instead."
        )
    name = path.stem
    label = f"{name}#cfg-{sha256_bytes(raw)[:10]}"
    existing = open_clip.get_model_config(name)
    if existing is not None:
        if existing == cfg:
            return name, label
        source = _registered_configs.get(name, "open_clip's built-in configs")
        raise EncoderSpecError(
            f"A different model config named {name!r} is already registered (from {source}); "
            f"rename {path} to give it a unique file name."
        )
    open_clip.add_model_config(path)
    _registered_configs[name] = path.resolve()
    return name, label
