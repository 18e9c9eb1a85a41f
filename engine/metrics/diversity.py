"""Diversity of a set of vectors: mean pairwise cosine distance and the Vendi score."""
from __future__ import annotations

import numpy as np


def mean_pairwise_cosine_distance(x: np.ndarray) -> float:
    """Mean of ``1 - cos(x_i, x_j)`` over ordered pairs i != j, in O(n d)."""
    x64 = np.asarray(x, dtype=np.float64)
    x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
    n = x64.shape[0]
    if n < 2:
        return float("nan")
    s = x64.sum(axis=0)
    mean_cos = (float(s @ s) - n) / (n * (n - 1))
    return max(0.0, round(1.0 - mean_cos, 12))  # identical samples: 0, not the sum's rounding (-4.4e-16)


def vendi_score(x: np.ndarray) -> float:
    """Vendi score with the cosine kernel (Friedman & Dieng 2022).

    ``exp(-sum_i l_i log l_i)`` with ``l_i`` the eigenvalues of ``K / n``,
    ``K = X X^T`` for row-normalised ``X``. When ``d < n`` the non-zero eigenvalues
    are taken from the d x d matrix ``X^T X / n`` instead (same spectrum).
    """
    x64 = np.asarray(x, dtype=np.float64)
    return float(vendi_scores(x64[None])[0]) if len(x64) else float("nan")


def vendi_scores(sets: np.ndarray) -> np.ndarray:
    """:func:`vendi_score` of each of a stack of equal-size sets of vectors (s, n, d), with one
    batched eigen-decomposition: the real's expected Vendi score at a small n averages
    hundreds of subsets (:meth:`ReferenceStats.real_vendi_at`)."""
    x64 = np.asarray(sets, dtype=np.float64)
    x64 = x64 / np.linalg.norm(x64, axis=-1, keepdims=True)
    n, d = x64.shape[-2:]
    t = np.swapaxes(x64, -1, -2)
    lam = np.linalg.eigvalsh((t @ x64) / n if d < n else (x64 @ t) / n)
    return np.exp(-np.where(lam > 1e-15, lam * np.log(np.maximum(lam, 1e-15)), 0.0).sum(axis=-1))

