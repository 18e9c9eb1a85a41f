"""Precision, recall, density and coverage of generated vectors against the real ones."""
from __future__ import annotations

import numpy as np

from engine.metrics.neighbours import _BLOCK, NEAREST_K, knn_radii, pairwise_distances


def prdc(
    real: np.ndarray,
    fake: np.ndarray,
    k: int = NEAREST_K,
    *,
    real_radii: np.ndarray | None = None,
    fake_radii: np.ndarray | None = None,
) -> dict[str, float]:
    """Precision, recall (Kynkaanniemi et al. 2019), density, coverage (Naeem et al. 2020).

    Same definitions and strict inequalities as ``prdc.compute_prdc``; distances are
    computed blockwise in float64 so memory stays O(block x len(fake)). ``real_radii``
    (the cached k-NN radii of the reference) may be passed to skip their computation.
    Precision, density and coverage need only the reference's balls, so they are defined for
    any number of fake samples; recall needs the fakes' own k-NN radii: NaN for k or fewer.
    """
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    if fake_radii is None:
        fake_radii = knn_radii(fake, k) if fake.shape[0] > k else np.full(fake.shape[0], np.nan)
    n_fake = fake.shape[0]
    fake_in_real = np.zeros(n_fake, dtype=bool)  # precision
    density_count = np.zeros(n_fake, dtype=np.int64)
    real_in_fake = 0  # recall numerator
    covered = 0  # coverage numerator
    for lo in range(0, real.shape[0], _BLOCK):
        d = pairwise_distances(real[lo : lo + _BLOCK], fake)  # (block, n_fake)
        r = real_radii[lo : lo + _BLOCK, None]
        inside = d < r
        fake_in_real |= inside.any(axis=0)
        density_count += inside.sum(axis=0)
        real_in_fake += int((d < fake_radii[None, :]).any(axis=1).sum())
        covered += int((d.min(axis=1) < r[:, 0]).sum())
    n_real = real.shape[0]
    return {
        "precision": float(fake_in_real.mean()),
        "recall": float(real_in_fake / n_real) if fake.shape[0] > k else float("nan"),
        "density": float(density_count.sum() / (k * n_fake)),
        "coverage": float(covered / n_real),
    }

