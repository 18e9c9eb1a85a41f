"""Which torch device encodes: ``--device`` checked, and the CPU fallback announced."""
from __future__ import annotations

import logging
from typing import Literal

from engine.errors import EncoderSpecError, EvowatchError

log = logging.getLogger(__name__)

CPU_FALLBACK_NOTE = "CUDA requested/auto but unavailable: encoding on CPU"

Device = Literal["cpu", "cuda"]


def parse_device(device: str) -> str:
    """Check a ``--device`` value: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    if isinstance(device, str):
        value = device.strip().lower()
        if value in ("auto", "cpu", "cuda"):
            return value
        if value.startswith("cuda:") and value[5:].isascii() and value[5:].isdigit():
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

