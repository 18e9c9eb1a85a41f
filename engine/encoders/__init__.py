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

Modules, each importing only those listed before it
---------------------------------------------------
``spec``        the spec grammar (:class:`EncoderSpec`, :func:`parse_encoder_spec`)
``device``      ``--device`` and the CPU fallback (:func:`parse_device`, :func:`resolve_device`)
``preprocess``  numpy/Pillow preprocessing (:class:`ClipPreprocessor`, :class:`PixelsPreprocessor`)
``base``        the :class:`Encoder` protocol and what both encoders share
``pixels``      :class:`PixelsEncoder`
``clip``        :class:`ClipEncoder`
``loading``     open_clip model loading (weights, configs, one-line failures)
``make``        :func:`make_encoder`
"""
from engine.encoders.base import Encoder
from engine.encoders.clip import CPU_BATCH_SIZE, CUDA_BATCH_SIZE, CUDA_BATCH_SIZE_LARGE_INPUT, ClipEncoder
from engine.encoders.device import CPU_FALLBACK_NOTE, Device, parse_device, resolve_device
from engine.encoders.loading import _load_clip
from engine.encoders.make import make_encoder
from engine.encoders.pixels import PIXELS_BATCH_SIZE, PixelsEncoder
from engine.encoders.preprocess import ClipPreprocessor, PixelsPreprocessor, Preprocessor
from engine.encoders.spec import (
    DEFAULT_ENCODER_SPEC,
    PIXELS_DEFAULT_SIZE,
    PIXELS_SIZE_RANGE,
    RANDOM_SEED,
    RANDOM_TAG,
    EncoderSpec,
    WeightsSource,
    parse_encoder_spec,
)

__all__ = [
    "CPU_BATCH_SIZE",
    "CPU_FALLBACK_NOTE",
    "CUDA_BATCH_SIZE",
    "CUDA_BATCH_SIZE_LARGE_INPUT",
    "DEFAULT_ENCODER_SPEC",
    "PIXELS_BATCH_SIZE",
    "PIXELS_DEFAULT_SIZE",
    "PIXELS_SIZE_RANGE",
    "RANDOM_SEED",
    "RANDOM_TAG",
    "ClipEncoder",
    "ClipPreprocessor",
    "Device",
    "Encoder",
    "EncoderSpec",
    "PixelsEncoder",
    "PixelsPreprocessor",
    "Preprocessor",
    "WeightsSource",
    "_load_clip",
    "make_encoder",
    "parse_device",
    "parse_encoder_spec",
    "resolve_device",
]
