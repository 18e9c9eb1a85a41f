"""Exact Euclidean distances and nearest neighbours on encoder vectors (blocked float64, or a
float32 index re-ranked in float64 for large searches)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.nearest import ExactIndex


#: Neighbourhood size for precision / recall / density / coverage (Naeem et al. 2020).
NEAREST_K = 5


_BLOCK = 2048  # rows per block in blocked distance computations
_REFINE = 8  # float32 candidates re-ranked exactly in float64
_BRUTE_MAX = 4_000_000  # query x base size below which NN search is numpy brute force


def _sqnorms(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64, copy=False)
    return np.einsum("ij,ij->i", x64, x64)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense Euclidean distances (len(a), len(b)) in float64 (the expansion sklearn uses)."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    d2 = _sqnorms(a64)[:, None] + _sqnorms(b64)[None, :] - 2.0 * (a64 @ b64.T)
    np.maximum(d2, 0.0, out=d2)
    return np.sqrt(d2)


def knn(
    query: np.ndarray, base: np.ndarray, k: int, *, index=None, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean distances (n_query, k) to the ``k`` nearest points of ``base``, and
    those points' indices in ``base`` (int64), nearest first.

    Small problems (``n_query * n_base <= 4e6``) use blocked float64 brute force. Larger
    ones let an exact float32 L2 search (:class:`~engine.nearest.ExactIndex`, on a GPU
    when there is one) propose ``k + 8`` candidates, which are re-ranked with float64
    differences, so values agree with a float64 reference to ~1e-12. With
    ``exclude_self`` (query is base) each point's own match is dropped.
    """
    n_base = base.shape[0]
    want = k + (1 if exclude_self else 0)
    if want > n_base:
        raise ValueError(f"Expected at least {want} reference points for k={k}. Got {n_base} instead.")
    dist = np.empty((query.shape[0], k), dtype=np.float64)
    found = np.empty((query.shape[0], k), dtype=np.int64)
    lo_col = 1 if exclude_self else 0
    brute = query.shape[0] * n_base <= _BRUTE_MAX
    if not brute:
        index = index if index is not None else ExactIndex(base, "l2")
    for lo in range(0, query.shape[0], _BLOCK):
        q = query[lo : lo + _BLOCK]
        if brute:
            d = pairwise_distances(q, base)
            if exclude_self:  # exact zero on the diagonal, as sklearn does for X vs X
                rows = np.arange(d.shape[0])
                d[rows, lo + rows] = 0.0
            idx = np.argpartition(d, want - 1, axis=1)[:, :want]
            d = np.take_along_axis(d, idx, axis=1)
        else:
            q = np.ascontiguousarray(q, dtype=np.float32)
            _, idx = index.search(q, min(n_base, want + _REFINE))
            diff = base[idx].astype(np.float64) - q.astype(np.float64)[:, None, :]  # the candidates only
            d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        order = np.argsort(d, axis=1, kind="stable")[:, lo_col:want]
        dist[lo : lo + len(q)] = np.take_along_axis(d, order, axis=1)
        found[lo : lo + len(q)] = np.take_along_axis(idx, order, axis=1)
    return dist, found


def knn_distances(
    query: np.ndarray, base: np.ndarray, k: int, *, index=None, exclude_self: bool = False
) -> np.ndarray:
    """The distances of :func:`knn` (n_query, k), nearest first."""
    return knn(query, base, k, index=index, exclude_self=exclude_self)[0]


def nearest_others(x: np.ndarray, sets: Sequence[np.ndarray]) -> np.ndarray:
    """For sets of rows of ``x``, all of one size, each member's distance to its nearest other
    member of its set (sets, size), as :func:`knn_distances` gives it. Many small sets are
    searched together: one search each cost 65 ms per batch size for 4,096 distances (round AO)."""
    size, dim = len(sets[0]), x.shape[1]
    if size * size > _BRUTE_MAX:
        return np.stack([knn_distances(x[s], x[s], 1, exclude_self=True)[:, 0] for s in sets])
    per = max(1, min(_BRUTE_MAX // (size * size), _BRUTE_MAX // (size * dim)))
    diagonal = np.arange(size)
    out = []
    for first in range(0, len(sets), per):
        batch = np.asarray(x[np.stack(sets[first:first + per])], dtype=np.float64)  # (sets, size, dim)
        norms = np.einsum("snd,snd->sn", batch, batch)
        d2 = norms[:, :, None] + norms[:, None, :] - 2.0 * (batch @ batch.transpose(0, 2, 1))
        d2[:, diagonal, diagonal] = np.inf
        out.append(np.sqrt(np.maximum(d2.min(axis=2), 0.0)))
    return np.concatenate(out)


def knn_radii(x: np.ndarray, k: int = NEAREST_K, index=None) -> np.ndarray:
    """Distance of each point to its k-th nearest neighbour in ``x`` (itself excluded)."""
    return knn_distances(x, x, k, index=index, exclude_self=True)[:, -1]

