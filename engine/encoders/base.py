"""The :class:`Encoder` protocol the pipeline needs, and what both encoders share."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from engine.encoders.preprocess import Preprocessor


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


def checked_batch_size(batch_size: int | None, default: int) -> int:
    """``batch_size``, or ``default`` when None; 0 or less is refused (a batch of 0 never
    advanced: an encode of 0 rows a batch raised deep in numpy, or the default was silently used)."""
    if batch_size is None:
        return default
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:  # 1.5 was taken as 1
        raise ValueError(f"Expected a batch size that is a whole number of at least 1. Got {batch_size!r} instead.")
    return int(batch_size)


def _check_batch(batch: np.ndarray, size: int) -> np.ndarray:
    arr = np.asarray(batch)
    if arr.ndim != 4 or arr.shape[1:] != (3, size, size):
        raise ValueError(
            f"Expected a batch of preprocessed inputs of shape (n, 3, {size}, {size}). "
            f"Got shape {arr.shape} instead."
        )
    return np.ascontiguousarray(arr, dtype=np.float32)



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
        if not parts:  # no stacks: no rows (as on CUDA)
            return np.zeros((0, self.dim), np.float32)  # type: ignore[attr-defined]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self.encode(self._pre.to_input(joined))  # type: ignore[attr-defined]


def _parts(pixels: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [pixels] if isinstance(pixels, np.ndarray) else list(pixels)

