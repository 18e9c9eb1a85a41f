"""Encoder vectors as the metrics take them: checked 2-D float32 arrays, rows of unit length."""
from __future__ import annotations

from typing import Any

import numpy as np


def as_vectors(x: Any, name: str = "vectors", dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 (n, d) array, or raise ``ValueError``."""
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if a.ndim != 2:
        raise ValueError(f"Expected {name} as a 2-D (n, d) array. Got shape {a.shape} instead.")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"Expected {name} of dimension {dim}. Got {a.shape[1]} instead.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"Expected finite {name}. Got NaN or inf instead.")
    return a


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, in float32 (a zero row stays zero). The store keeps float16
    vectors, whose norms stray by ~1e-4: measured as read, the metrics were not those of the
    documented ``2 - 2 cos`` distances, and samples near a threshold flipped (round AJ)."""
    a = np.asarray(x, dtype=np.float32)
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), np.float32(1e-12))

