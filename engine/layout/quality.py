"""Quality measures of an evolutionary layout (used by tests, benchmarks and the viewer)."""
from __future__ import annotations

import numpy as np

from .knn import normalise, self_knn


def _xy_knn(xy: np.ndarray, k: int) -> np.ndarray:
    """Exact 2-D kNN (self excluded), by brute force in blocks: n is one step."""
    y = np.asarray(xy, dtype=np.float64)
    n = len(y)
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, 2048):
        d = ((y[s:s + 2048, None, :] - y[None, :, :]) ** 2).sum(-1)
        d[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        out[s:s + 2048] = part
    return out


def neighbourhood_preservation(vectors: np.ndarray, xy: np.ndarray, k: int = 10) -> float:
    """Mean kNN recall@k between encoder space (cosine) and the 2-D layout, within one step.

    For each sample, the share of its ``k`` nearest neighbours in encoder space that are
    also among its ``k`` nearest in 2-D; averaged over samples. ``k`` is clamped below n.
    """
    n = len(xy)
    if len(vectors) != n:
        raise ValueError(f"Expected as many vectors as points ({n}). Got {len(vectors)} instead.")
    k = min(k, n - 1)
    if k < 1:
        return float("nan")
    hd, _ = self_knn(normalise(vectors), k)
    ld = _xy_knn(xy, k)
    hd.sort(axis=1)
    ld.sort(axis=1)
    hits = sum(np.sum(hd[:, [j]] == ld, axis=1) for j in range(k))
    return float(np.mean(hits) / k)


def rms_radius(xy: np.ndarray) -> float:
    """Root-mean-square distance of the points from their centroid."""
    y = np.asarray(xy, dtype=np.float64)
    return float(np.sqrt(np.mean(np.sum((y - y.mean(axis=0)) ** 2, axis=1)))) if len(y) else float("nan")


def matched_pairs(inst_prev, inst_next) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i_prev, i_next)`` of the instance ids (>= 0) present in both steps."""
    a = np.asarray(inst_prev, dtype=np.int64)
    b = np.asarray(inst_next, dtype=np.int64)
    ids, ia, ib = np.intersect1d(a, b, assume_unique=False, return_indices=True)
    keep = ids >= 0
    return ia[keep], ib[keep]


def band_coordinates(xy: np.ndarray) -> np.ndarray:
    """A step's points as its band shows them: centred, in units of its RMS radius."""
    y = np.asarray(xy, dtype=np.float64)
    r = rms_radius(y)
    return (y - y.mean(axis=0)) / (r if r > 0 else 1.0)


def alignment_error(xy_prev: np.ndarray, inst_prev, xy_next: np.ndarray, inst_next) -> float:
    """Median displacement of same-instance points between two consecutive steps, in band
    radii: each step is centred and scaled to RMS radius 1 first, as :func:`place` shows it
    (so a step that only grows or shrinks as a whole is not counted as moved).
    NaN when no instance id (>= 0) is in both steps."""
    ia, ib = matched_pairs(inst_prev, inst_next)
    if len(ia) == 0:
        return float("nan")
    d = np.linalg.norm(band_coordinates(xy_next)[ib] - band_coordinates(xy_prev)[ia], axis=1)
    return float(np.median(d))
