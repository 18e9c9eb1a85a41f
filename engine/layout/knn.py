"""Exact k-nearest neighbours, shaped for openTSNE's precomputed-neighbour socket.

Vectors are compared by cosine similarity: they are L2-normalised and searched by exact
inner product; similarities are turned into Euclidean distances between the unit
vectors (``sqrt(2 - 2 s)``), which is what openTSNE's perplexity calibration expects.
The search runs on a GPU when there is one (:mod:`engine.nearest`).
"""
from __future__ import annotations

import numpy as np
from openTSNE import affinity
from openTSNE.nearest_neighbors import PrecomputedNeighbors

from ..nearest import ExactIndex
from ..stopping import deferred_stop


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Return float32, C-contiguous, L2-normalised rows (zero rows stay zero)."""
    x = np.array(vectors, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"Expected a 2-D array of vectors. Got shape {x.shape} instead.")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def search(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN of normalised ``queries`` among normalised ``base``.

    Returns ``(indices, similarities)``, each (len(queries), k), best first.
    """
    k = min(k, len(base))
    sims, idx = ExactIndex(base, "ip").search(queries, k)
    return idx.astype(np.int64, copy=False), sims


def self_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """kNN of every row of normalised ``x`` among the others, self excluded.

    Returns ``(indices (n, k) int64, distances (n, k) float64)`` with Euclidean distances
    between the unit vectors. The self match is removed wherever the search put it (exact
    duplicates may tie with it); where it is missing, the last column is dropped.
    """
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"Expected 1 <= k < n for a self kNN. Got k={k}, n={n} instead.")
    idx, sims = search(x, x, k + 1)
    is_self = idx == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    keep = ~is_self
    idx = idx[keep].reshape(n, k)
    sims = sims[keep].reshape(n, k)
    dist = np.sqrt(np.maximum(2.0 - 2.0 * sims.astype(np.float64), 0.0))
    return idx, dist


def _ties_broken(x: np.ndarray) -> np.ndarray:
    """Exact duplicates (a collapsed step's identical samples) tie in every kNN search, which
    broke the ties by row order: the first rows became everyone's neighbours, and the map of
    one repeated sample showed a core of 80 inside a ring of 120. Duplicated rows are moved
    apart by a seeded 1e-3 (far below any real neighbour distance, resolvable in the float32
    search), so their neighbours are drawn at random; other rows are untouched."""
    _, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    repeated = counts[inverse.reshape(-1)] > 1
    if not repeated.any():
        return x
    noise = np.random.default_rng(0).normal(size=(int(repeated.sum()), x.shape[1]))
    out = x.copy()
    out[repeated] += (1e-3 * noise / np.linalg.norm(noise, axis=1, keepdims=True)).astype(x.dtype)
    return normalise(out)


def tsne_affinities(x: np.ndarray, perplexity: float, n_jobs: int = 1) -> affinity.PerplexityBasedNN:
    """openTSNE perplexity affinities from an exact kNN graph (k = 3 x perplexity, < n).

    The perplexity is clamped to what ``n`` allows ((n - 1) / 3), as openTSNE does.
    """
    n = len(x)
    perplexity = float(min(perplexity, max((n - 1) / 3.0, 1.0)))
    k = int(min(max(round(3 * perplexity), 1), n - 1))
    idx, dist = self_knn(x, k)
    if (dist[:, 0] < 1e-3).any():  # duplicates, maybe (the check costs a sort: only then)
        idx, dist = self_knn(_ties_broken(x), k)
    with deferred_stop():  # openTSNE's Cython: a stop raised inside it was a SIGSEGV
        return affinity.PerplexityBasedNN(
            knn_index=PrecomputedNeighbors(idx, dist), perplexity=perplexity, n_jobs=n_jobs
        )
