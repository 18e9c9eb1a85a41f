"""The weight-free ``pixels`` encoder: a thumbnail as the embedding."""
from __future__ import annotations

import numpy as np

from engine.encoders.base import _check_batch, _EncoderBase, checked_batch_size
from engine.encoders.preprocess import PixelsPreprocessor
from engine.encoders.spec import PIXELS_DEFAULT_SIZE
from engine.errors import EvowatchError

PIXELS_BATCH_SIZE = 1024


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
        self.batch_size = checked_batch_size(batch_size, PIXELS_BATCH_SIZE)

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

