"""Synthetic evolving training runs for the layout benchmark and tests.

Two generators, both deterministic for a seed, both returning an :class:`EvolvingRun`
(one ``(vectors, instances, labels)`` triple per checkpoint, rows shuffled per step so
that anything aligning steps must use the instance ids, not the row order):

``evolving_run``
    A stand-in for CLIP embeddings of a generator's samples in a 512-d unit sphere.
    Eight clusters, each a 3-d sub-manifold (so within-cluster neighbourhoods mean
    something), whose centres drift slowly; cluster 0 splits in two between 30 % and
    50 % of training; cluster 1 vanishes between 60 % and 80 % (its instances migrate
    into other clusters, as in mode dropping); the per-step sample noise shrinks over
    training like a converging generator, and the early steps are mostly noise (each
    instance's noise is an AR(1) process over steps: its output changes smoothly).

``digits_run``
    scikit-learn's handwritten digits (8 x 8 images, pixels as the encoder) with a
    training-like schedule: instance ``i`` is a fixed digit image seen through heavy blur
    and noise early on, sharpening over the steps; from 60 % of training the 9s collapse
    onto 4s (a mode collapse). This stands in for the demo's digits run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EvolvingRun:
    """``vectors[t]`` (n_t, d) float32 L2-normalised, ``instances[t]`` (n_t,) int64 and
    ``labels[t]`` (n_t,) int64 (the generating cluster / digit, for colouring)."""

    name: str
    vectors: list[np.ndarray]
    instances: list[np.ndarray]
    labels: list[np.ndarray]

    @property
    def n_steps(self) -> int:
        return len(self.vectors)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _ramp(t: float, start: float, end: float) -> float:
    """0 before ``start``, 1 after ``end``, smooth (cosine) in between."""
    if t <= start:
        return 0.0
    if t >= end:
        return 1.0
    return 0.5 - 0.5 * np.cos(np.pi * (t - start) / (end - start))


def evolving_run(n_steps: int = 50, n_samples: int = 1000, dim: int = 512, n_clusters: int = 8,
                 seed: int = 0) -> EvolvingRun:
    """A synthetic run: drifting clusters, one split, one vanishing, shrinking noise."""
    if n_clusters < 3:
        raise ValueError(f"Expected at least 3 clusters. Got {n_clusters} instead.")
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((n_clusters, dim)))
    drift = 0.8 * _unit(rng.standard_normal((n_clusters, dim)))
    bases = np.linalg.qr(rng.standard_normal((n_clusters, dim, 3)))[0]   # (K, dim, 3)
    split_dir = _unit(rng.standard_normal(dim))
    shared = _unit(rng.standard_normal(dim))   # what an untrained generator outputs
    cluster = rng.integers(0, n_clusters, n_samples)
    z = rng.standard_normal((n_samples, 3))
    half = np.where(z[:, 0] > 0, 1.0, -1.0)                 # side of the split for cluster 0
    dest = rng.integers(2, n_clusters, n_samples)           # where cluster 1's instances go
    within = 0.35
    eps = rng.standard_normal((n_samples, dim))             # the instance's own noise, evolving
    vectors, instances, labels = [], [], []
    for t in range(n_steps):
        p = t / max(n_steps - 1, 1)
        centre_t = _unit(centres + p * drift)
        c = centre_t[cluster] + within * np.einsum("ndk,nk->nd", bases[cluster], z)
        split = 0.7 * _ramp(p, 0.3, 0.5)
        c += np.where(cluster == 0, split * half, 0.0)[:, None] * split_dir
        m = _ramp(p, 0.6, 0.8)
        gone = cluster == 1
        if m > 0:
            target = centre_t[dest[gone]] + within * np.einsum("ndk,nk->nd", bases[dest[gone]], z[gone])
            c[gone] = (1 - m) * c[gone] + m * target
        label = np.where(gone & (m >= 0.5), dest, cluster)
        structure = 0.3 + 0.7 * _ramp(p, 0.0, 0.4)
        noise = 0.06 + 0.9 * np.exp(-t / (0.12 * n_steps))
        if t:   # a generator's output for a fixed latent changes smoothly between checkpoints
            eps = 0.85 * eps + np.sqrt(1 - 0.85 ** 2) * rng.standard_normal((n_samples, dim))
        x = structure * c + (1 - structure) * shared + noise * eps / np.sqrt(dim) * 2
        order = rng.permutation(n_samples)
        vectors.append(_unit(x[order]).astype(np.float32))
        instances.append(order.astype(np.int64))
        labels.append(label[order].astype(np.int64))
    return EvolvingRun("synthetic", vectors, instances, labels)


def digits_run(n_steps: int = 50, n_samples: int = 1000, seed: int = 0) -> EvolvingRun:
    """scikit-learn digits seen through a sharpening blur/noise schedule, with 9s collapsing to 4s."""
    from scipy.ndimage import gaussian_filter
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    pick = rng.choice(len(digits.target), size=n_samples, replace=n_samples > len(digits.target))
    images = digits.images[pick].astype(np.float64) / 16.0           # (n, 8, 8)
    target = digits.target[pick].astype(np.int64)
    # mode collapse partner: each 9 turns into its nearest 4 (in pixel space)
    fours = np.flatnonzero(target == 4)
    partner = np.arange(n_samples)
    for i in np.flatnonzero(target == 9):
        d = ((images[fours] - images[i]) ** 2).sum(axis=(1, 2))
        partner[i] = fours[np.argmin(d)]
    fixed_noise = rng.standard_normal(images.shape)                  # the instance's latent
    mean = digits.images.mean(axis=0) / 16.0
    vectors, instances, labels = [], [], []
    for t in range(n_steps):
        p = t / max(n_steps - 1, 1)
        m = _ramp(p, 0.6, 0.76)
        img = (1 - m) * images + m * images[partner]
        blur = 1.6 * (1 - _ramp(p, 0.0, 0.6))
        if blur > 0.05:
            img = np.stack([gaussian_filter(im, blur) for im in img])
        signal = 0.25 + 0.75 * _ramp(p, 0.0, 0.5)
        noise = 0.05 + 0.6 * np.exp(-t / (0.15 * n_steps))
        img = signal * img + noise * (0.6 * fixed_noise + 0.8 * rng.standard_normal(images.shape))
        x = (img - mean).reshape(n_samples, -1)
        order = rng.permutation(n_samples)
        vectors.append(_unit(x[order]).astype(np.float32))
        instances.append(order.astype(np.int64))
        labels.append(np.where(m >= 0.5, target[partner], target)[order])
    return EvolvingRun("digits", vectors, instances, labels)
