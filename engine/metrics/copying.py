"""Statistics of data copying: generated samples' distances to training against held-out data's."""
from __future__ import annotations

import math

import numpy as np


def mann_whitney_z(x: np.ndarray, y: np.ndarray) -> float:
    """Meehan et al. (2020) Z_U: z-scored Mann-Whitney U of ``x`` against ``y``.

    ``U`` counts pairs with ``x_i > y_j`` (ties 1/2). ``Z_U << 0`` when ``x`` (the
    generated samples' NN distances to training data) is smaller than ``y`` (the
    held-out samples'), i.e. data copying; ``>> 0`` when it is larger (underfitting).
    """
    from scipy.stats import mannwhitneyu

    n, m = len(x), len(y)
    u = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").statistic
    return float((u - n * m / 2.0) / math.sqrt(n * m * (n + m + 1) / 12.0))


def neighbourhood_log_ratio(ratio: np.ndarray, train_nn: np.ndarray, holdout_nn: np.ndarray,
                            null_share: float = 0.5) -> dict[str, float]:
    """The copying log ratio over the samples' distinct neighbourhoods, with its significance.

    A sample's ratio compares its nearest training and nearest held-out vectors, so samples
    sharing both (the near-duplicates a collapsed generator draws) repeat ONE comparison.
    Counted as independent samples, a two-mode collapse made the median one neighbourhood's
    value and raised a false memorisation alert. So each distinct (nearest training, nearest
    held-out) pair counts once, with its samples' median ratio. Returns ``copy_log_ratio``
    (median over neighbourhoods), ``copy_neighbourhoods`` (their number: the effective
    sample size) and ``copy_log_ratio_p``: the one-sided sign test (the median's own test)
    that neighbourhoods sit closer to training than to held-out data, which a handful of
    neighbourhoods cannot pass (7 at least, all closer, for p < 0.01 at 1/2), each one closer
    by chance with probability ``null_share`` (:meth:`ReferenceStats.copy_null_share`).
    """
    from scipy.stats import binomtest

    pair = np.asarray(train_nn, np.int64) * (int(np.max(holdout_nn)) + 1) + np.asarray(holdout_nn, np.int64)
    order = np.lexsort((ratio, pair))
    starts = np.flatnonzero(np.r_[True, np.diff(pair[order]) != 0])
    per_pair = np.array([np.median(g) for g in np.split(ratio[order], starts[1:])])
    closer, signed = int((per_pair < 0).sum()), int((per_pair != 0).sum())
    p = binomtest(closer, signed, null_share, alternative="greater").pvalue if signed else 1.0
    return {"copy_log_ratio": float(np.median(per_pair)), "copy_neighbourhoods": float(len(per_pair)),
            "copy_log_ratio_p": float(p)}


def held_out_order_statistic(held_out_nn: np.ndarray, share: float) -> tuple[float, float]:
    """(threshold, chance): the k-th smallest held-out-to-training NN distance, k = max(1,
    ceil(share * n_holdout)), and k / (n_holdout + 1), the chance that a fresh sample of the data
    falls below it (the k-th of n_holdout + 1 exchangeable draws; Beta(k, n_holdout + 1 - k) over
    held-out sets, the copy bars' :func:`engine.alerts.memorisation._copy_bar`). ``np.quantile``'s interpolated
    q-quantile flagged fresh samples at (q (n_holdout - 1) + 1) / (n_holdout + 1) on average, not
    the q the bar and the message took: 13% with 10 held out, 8% with 30 (round AY)."""
    k = max(1, math.ceil(share * len(held_out_nn)))
    return float(np.partition(held_out_nn, k - 1)[k - 1]), k / (len(held_out_nn) + 1)

