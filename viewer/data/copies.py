"""The training image each sample lies nearest to: what a near-copy copies.

The store keeps each sample's distance to its nearest training image (``nn_train_dist``),
not which image that is; a page flagging near-copies must show the copied image too. It is
found here as the watcher found the distance: the nearest current real-reference row, in
Euclidean distance between unit-length vectors (``engine.metrics``' convention).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import streamlit as st

from stores import format as fmt
from viewer.data.commits import Commit, reader


@st.cache_resource(max_entries=2, show_spinner="Reading the training images' vectors…")
def _training(path: str, store_id: str | None, rows: np.ndarray, _commit: Commit) -> np.ndarray:
    """The unit vectors of the real-reference ``rows``, keyed on the rows, not the commit:
    kept while the reference is unchanged (a live run's commits add steps, not training images)."""
    from engine.metrics.vectors import unit_rows

    return unit_rows(reader(path, _commit).samples("embedding", rows))


@st.cache_data(max_entries=4, show_spinner=False)
def _training_rows(path: str, commit: Commit) -> np.ndarray:
    r = reader(path, commit)
    if not commit.rows:
        return np.zeros(0, np.int64)
    return np.flatnonzero((r.samples("kind") == fmt.KIND_CODES["real"]) & r.current_rows())


def nearest_training(path: str | Path, commit: Commit, rows: np.ndarray, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows`` (their ``kind`` codes beside them), the nearest training image's
    row and the distance to it (as ``nn_train_dist``); -1 and NaN for reference rows and in a
    store without a real reference."""
    rows = np.asarray(rows, np.int64)
    nearest = np.full(len(rows), -1, np.int64)
    dist = np.full(len(rows), np.nan, np.float32)
    training = _training_rows(str(path), commit)
    generated = np.flatnonzero(np.asarray(kind) == fmt.KIND_CODES["generated"])
    if not len(training) or not len(generated):
        return nearest, dist
    from engine.metrics.neighbours import knn
    from engine.metrics.vectors import unit_rows

    base = _training(str(path), commit.store_id, training, commit)
    query = rows[generated]
    order = np.argsort(query)
    vectors = np.empty((len(query), base.shape[1]), np.float32)
    vectors[order] = unit_rows(reader(path, commit).samples("embedding", query[order]))
    d, i = knn(vectors, base, 1)
    nearest[generated] = training[i[:, 0]]
    dist[generated] = d[:, 0]
    return nearest, dist


def training_names(nearest: np.ndarray, paths_of: Callable[[np.ndarray], Sequence]) -> list[str]:
    """The path of each ``nearest`` training row, read by ``paths_of``; "" where there is none
    (a reference row, or a store without a real reference)."""
    found, names = nearest >= 0, np.full(len(nearest), "", object)
    names[found] = [str(p) for p in paths_of(nearest[found])]
    return names.tolist()
