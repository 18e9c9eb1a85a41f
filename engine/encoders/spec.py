"""The ``--encoder`` spec grammar: :class:`EncoderSpec` and :func:`parse_encoder_spec` (syntax only, no I/O)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.errors import EncoderSpecError

DEFAULT_ENCODER_SPEC = "clip:ViT-B-32/laion2b_s34b_b79k"
RANDOM_TAG = "random"
RANDOM_SEED = 0
PIXELS_DEFAULT_SIZE = 16
PIXELS_SIZE_RANGE = (4, 64)

_SPEC_HELP = (
    "'clip:ARCH/PRETRAINED' (e.g. 'clip:ViT-B-32/laion2b_s34b_b79k'), 'clip:ARCH/random', "
    "'clip:ARCH@/path/to/weights.pt', 'clip:ARCH/PRETRAINED@/path/to/weights.pt' (a tag's weights copied by hand), "
    "'clip:local-dir:/path/to/folder' or 'pixels[:N]'"
)

WeightsSource = Literal["tag", "random", "path", "local-dir"]


@dataclass(frozen=True, slots=True)
class EncoderSpec:
    """A parsed encoder spec; see the package docstring (:mod:`engine.encoders`) for the grammar.

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
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise EncoderSpecError(
            f"Expected 'pixels' or 'pixels:N' with an integer N in [{lo}, {hi}]. Got {text!r} instead."
        )
    return EncoderSpec(kind="pixels", size=int(raw))

