"""Shares of labels and how far two share vectors are apart, with the distance chance reaches."""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np


def label_shares(labels: Sequence, names: Sequence[str]) -> np.ndarray:
    """Share of each name among the labelled samples: ``None`` (unlabelled) is left out of the
    total, labels outside ``names`` count in it only."""
    labs = [str(x) for x in labels if x is not None]
    if not labs:
        return np.full(len(names), np.nan)
    counts = {n: 0 for n in names}
    for lab in labs:
        if lab in counts:
            counts[lab] += 1
    return np.array([counts[n] / len(labs) for n in names], dtype=np.float64)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """``0.5 * sum |p - q|``."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


#: Seeded draws behind :func:`chance_tv`: enough for ~15 past its tail (z = 3: 20,000; z = 4,
#: a tail of 3.2e-5: 400,000, ~1 s; round AM: 400,000 for every chance made region_tv_chance slow).
CHANCE_TV_MIN_DRAWS, CHANCE_TV_MAX_DRAWS = 20_000, 400_000


@functools.lru_cache(maxsize=256)
def chance_tv(ref: tuple[float, ...], n: int, z: float, n_ref: int | None = None) -> float:
    """The total variation between n samples and the shares ``ref`` that chance exceeds as
    rarely as z standard deviations of a normal (seeded draws). With ``n_ref``, the shares
    are themselves read from that many reference samples, drawn too (two samples of one
    distribution): taken as exact, a generator of exactly the data's classes crossed a z = 3
    bar at 0.3% of its checkpoints, 8% of 30-checkpoint runs (round AL). z times the mean TV
    was above 1 at 8 samples of 10 labels (a rule could not fire) and near 0.45 at 64, where
    chance never passes 0.37."""
    from scipy.stats import norm

    p = np.asarray(ref, float)
    if n <= 0 or p.sum() <= 0:
        return math.inf
    p = p / p.sum()
    rng = np.random.default_rng(0)
    tail = norm.sf(z)
    draws = int(min(CHANCE_TV_MAX_DRAWS, max(CHANCE_TV_MIN_DRAWS, 15 / tail)))
    tv = []
    for size in [min(100_000, draws - done) for done in range(0, draws, 100_000)]:  # 400,000 x 10 at once: 32 MB
        shares = rng.multinomial(n, p, size=size) / n
        base = rng.multinomial(n_ref, p, size=size) / n_ref if n_ref else p
        tv.append(0.5 * np.abs(shares - base).sum(axis=1))
    return float(np.quantile(np.concatenate(tv), 1.0 - tail))

