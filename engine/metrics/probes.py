"""Zero-shot attribute probes: prompt specs, their CLIP margins and shares."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.metrics.vectors import as_vectors


#: Neutral contrast prompt for zero-shot probes given without an explicit contrast.
NEUTRAL_PROMPT = "a photo"


def parse_probe(spec: str) -> tuple[str, str]:
    """``"a woman|a man"`` -> ("a woman", "a man"); ``"grey hair"`` -> ("grey hair", NEUTRAL_PROMPT)."""
    prompt, sep, contrast = spec.partition("|")
    prompt, contrast = prompt.strip(), contrast.strip()
    if not prompt or (sep and not contrast) or "|" in contrast:  # "a|b|c" was read as contrast "b|c"
        raise ValueError(f'Expected a probe "PROMPT" or "PROMPT|CONTRAST" (one --probe for each prompt). '
                         f'Got {spec!r} instead.')
    return prompt, contrast or NEUTRAL_PROMPT


def valid_probe(spec: str) -> str:
    """``spec`` as given, once :func:`parse_probe` reads it (the CLI's check of ``--probe``,
    before anything is ingested: a malformed one was refused after the whole backlog)."""
    parse_probe(spec)
    return spec


def probe_scores(
    image_vectors: np.ndarray, text_vectors: np.ndarray, contrast_vectors: np.ndarray
) -> np.ndarray:
    """Zero-shot probe margins (n_images, n_probes): ``cos(x, t_p) - cos(x, c_p)``.

    A sample *has* probe p when its margin is > 0, i.e. CLIP prefers prompt p over its
    contrast prompt ``c_p`` (a user-given opposite such as "a man" for "a woman", else the
    neutral :data:`NEUTRAL_PROMPT`). This is the two-way zero-shot classification of CLIP
    (softmax over {p, c_p} at any temperature > 0.5 <=> margin > 0).
    ``contrast_vectors`` has one row per probe, or a single row shared by all probes.
    """
    x = as_vectors(image_vectors, "image vectors")
    t = as_vectors(text_vectors, "text vectors", dim=x.shape[1])
    c = as_vectors(contrast_vectors, "contrast vectors", dim=x.shape[1])
    if c.shape[0] not in (1, t.shape[0]):
        raise ValueError(f"Expected 1 or {t.shape[0]} contrast vectors. Got {c.shape[0]} instead.")

    def unit(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    xu = unit(x)
    return xu @ unit(t).T - xu @ np.broadcast_to(unit(c), t.shape).T


def probe_shares(margins: np.ndarray) -> np.ndarray:
    """Share of samples with a positive margin, per probe."""
    return (np.asarray(margins) > 0).mean(axis=0).astype(np.float64)


def encode_probes(encoder, specs: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parse probe specs and encode prompts and contrasts with ``encoder.encode_text``.

    Returns (names, text_vectors, contrast_vectors); feed them to :func:`probe_scores`.
    """
    pairs = [parse_probe(s) for s in specs]
    names = [p for p, _ in pairs]
    texts = np.asarray(encoder.encode_text(names), dtype=np.float32)
    contrasts = np.asarray(encoder.encode_text([c for _, c in pairs]), dtype=np.float32)
    return names, texts, contrasts

