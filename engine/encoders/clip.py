"""The CLIP encoder: an open_clip model encoding on one device."""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable

import numpy as np

from engine.encoders.base import _check_batch, _EncoderBase, _parts, checked_batch_size
from engine.encoders.preprocess import ClipPreprocessor

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 32
CUDA_BATCH_SIZE = 256
CUDA_BATCH_SIZE_LARGE_INPUT = 64  # input side above 256 px


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
        if self._cuda:
            default = CUDA_BATCH_SIZE if self.input_size <= 256 else CUDA_BATCH_SIZE_LARGE_INPUT
        else:
            default = CPU_BATCH_SIZE
        self.batch_size = checked_batch_size(batch_size, default)
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

