"""make_encoder: the encoder a spec names, on the device asked for."""
from __future__ import annotations

import logging

from engine.encoders.base import Encoder
from engine.encoders.clip import ClipEncoder
from engine.encoders.device import parse_device, resolve_device
from engine.encoders.loading import _load_clip
from engine.encoders.pixels import PixelsEncoder
from engine.encoders.spec import DEFAULT_ENCODER_SPEC, EncoderSpec, parse_encoder_spec

log = logging.getLogger(__name__)


def make_encoder(spec: str | EncoderSpec = DEFAULT_ENCODER_SPEC, device: str = "auto",
                 batch_size: int | None = None) -> Encoder:
    """Build the encoder a spec names, on ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Parameters
    ----------
    spec : str or EncoderSpec
        See the package docstring (:mod:`engine.encoders`) for the grammar.
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

