"""Per-checkpoint metrics: pure functions on arrays of L2-normalised encoder vectors.

Layering follows clean-fid (``cleanfid/fid.py``): the mathematics lives in small pure
functions on feature arrays (``frechet_distance``, ``vendi_score``, ``prdc`` ...); the
real reference is summarised ONCE in a :class:`ReferenceStats` (kNN radii, mean and
covariance, nearest-neighbour indexes, the real's own diversity, label and probe shares,
the calibrated near-copy threshold); :func:`compute_step` / :func:`step_metrics` then
need only the new checkpoint's vectors and that summary, never the run's history.

Distances are Euclidean on the L2-normalised vectors (``||a - b||^2 = 2 - 2 cos``), the
convention of the ``prdc`` package, so values agree with it. Formulas and citations are
in ``docs/metrics.md``.
"""
from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .nearest import ExactIndex

log = logging.getLogger(__name__)

#: Neighbourhood size for precision / recall / density / coverage (Naeem et al. 2020).
NEAREST_K = 5
#: Quantile of held-out-to-train NN distances below which a generated sample is a near-copy.
NEAR_COPY_QUANTILE = 0.05
#: Share of held-out images at most that a tight copy is closer to a training image than (the
#: closest held-out image up to 500 of them): a handful of exact copies among 16 samples.
TIGHT_COPY_QUANTILE = 0.002
#: Seed for the equal-size train / held-out subsets of the copying comparison.
COPY_SEED = 0
#: Cap on the equal-size subsets (keeps the per-step NN search cheap).
COPY_SUBSET_MAX = 20_000
#: Distances below this count as it in the copying log ratio. Identical vectors come out 0 to
#: ~1e-7 apart (rounding), so an exact copy read anything from -15 to -27 and an image in both
#: reference sets up to +-27 (round BA); vectors the store tells apart (float16) are ~1e-5 apart.
COPY_DISTANCE_FLOOR = 1e-6
#: Reference vectors outside the copy subsets (fresh samples of the data to T_m and H_m) the copy
#: sign test's chance is measured on: a seeded draw of at most COPY_NULL_POINTS of each; with fewer than
#: COPY_NULL_MIN (a held-out set as large as the training set) the chance is taken as 1/2.
COPY_NULL_POINTS = 2000
COPY_NULL_MIN = 200
#: Quantile of real samples' NN distances among n real samples (n = the checkpoint's size)
#: below which two generated samples are near-duplicates: real data has a share q of them.
DUPLICATE_QUANTILE = 0.01
#: Real NN distances pooled (from random size-n subsets) to calibrate that threshold.
DUPLICATE_POOL = 4096
#: Real vectors drawn (in seeded subsets of n) for the real's expected Vendi score at n: one
#: subset of 6 digits read 4.70 against their mean of 3.94 (round BA). Its standard error is
#: then at most ~0.6% of the mean (Vendi's spread over subsets: 12% at n = 4, 1.5% at 256).
VENDI_POOL = 2048
#: Neutral contrast prompt for zero-shot probes given without an explicit contrast.
NEUTRAL_PROMPT = "a photo"
#: Version of the serialised :class:`ReferenceStats` layout.
STATS_VERSION = 3  # 2: label_count; 3: near_copy_threshold the held-out order statistic (2's are read, it made again)
#: Regions of the real data for mode dropping without labels: k-means of the real vectors with
#: about REGION_SAMPLES of a batch per region (REGION_MIN to REGION_MAX regions, each with
#: REGION_REAL_MIN real vectors or more on average); fitted on at most REGION_FIT_POINTS per region.
REGION_SAMPLES = 8
REGION_MIN = 6
REGION_MAX = 16
REGION_REAL_MIN = 20
REGION_FIT_POINTS = 256
#: The region shares' total variation that chance exceeds as rarely as this many normal sds.
REGION_NOISE_Z = 3.0
#: Version of the metrics' definitions: a store's steps measured under another are measured again
#: (2: label shares over the labelled samples; precision, density and coverage of small steps;
#: 3: the real data's regions; 4: metrics named in every script's letters: CJK labels' shares
#: were one column, label_drift's false alerts with them; 5: per-sample near_copy NaN, not 0,
#: where it is not measured: without held-out data the viewer's filter said "0 near-copies";
#: 6: tight copies, closer to a training image than nearly every held-out image is; the store's
#: float16 vectors made unit length again before they are measured; 7: ``n_real``, the size of
#: the reference the label shares are compared with: label_drift's bar counts its noise too;
#: 8: near-duplicates calibrated on random real sets pooled to DUPLICATE_POOL distances, a batch
#: larger than the real reference measured in sets of at most its size; 9: ``n_reference``, the
#: real reference's size: probe_drift's bar counts the noise of its shares too, a partial
#: collapse's message says its sets; labels apart by ``/`` and ``_`` two columns; 10: the run's
#: labels beyond the reference's keyed in the order the store read them, not sorted: one read
#: later whose array name another's already had took that column at every later step; 11:
#: ``real_pairwise_cosine_sd``, the chance spread of the pairwise cosine distance at the step's
#: size: collapse read two fresh look-alikes of a 2-sample step as a 80% fall; 12: the near-copy
#: threshold an order statistic of the held-out distances, ``near_copy_expected`` its chance, not q;
#: 13: ``real_vendi`` the mean over seeded real subsets of the step's size, not one subset's;
#: 14: the copying log ratio's distances floored at COPY_DISTANCE_FLOOR, not offset by 1e-12;
#: 15: the copy sign test against the store's own chance of "closer to T_m" (``copy_null_share``), not 1/2).
METRICS_VERSION = 15

_BLOCK = 2048  # rows per block in blocked distance computations
_REFINE = 8  # float32 candidates re-ranked exactly in float64
_BRUTE_MAX = 4_000_000  # query x base size below which NN search is numpy brute force


# --------------------------------------------------------------------------- parsing


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


# --------------------------------------------------------------------------- distances


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
        base64 = base.astype(np.float64, copy=False)
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
            diff = base64[idx] - q.astype(np.float64)[:, None, :]
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


# --------------------------------------------------------------------------- diversity


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


# --------------------------------------------------------------------------- Frechet


def mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof=1) in float64, as pytorch-fid / clean-fid."""
    x64 = np.asarray(x, dtype=np.float64)
    return x64.mean(axis=0), np.cov(x64, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Reference Frechet distance ``|mu1-mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))``.

    The scipy ``sqrtm`` formula as in clean-fid's ``frechet_distance``: if the product
    is singular, ``eps * I`` is added to both covariances; a large imaginary part
    raises ``ValueError``.
    """
    from scipy import linalg

    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Expected a real matrix square root. Got imaginary part {np.max(np.abs(covmean.imag)):.3g} instead.")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def sym_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root via ``eigh`` (negative round-off eigenvalues clipped)."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_fast(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2_sqrt: np.ndarray, sigma2_trace: float
) -> float:
    """Frechet distance with ``sqrt(S2)`` precomputed: ``Tr sqrtm(S1 S2)`` equals the sum
    of square roots of the eigenvalues of the PSD matrix ``sqrt(S2) S1 sqrt(S2)``.
    One ``eigvalsh`` per step; agrees with :func:`frechet_distance` to ~1e-10."""
    diff = mu1 - mu2
    m = sigma2_sqrt @ sigma1 @ sigma2_sqrt
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    return float(diff.dot(diff) + np.trace(sigma1) + sigma2_trace - 2.0 * tr_covmean)


def frechet_distance_samples(
    x: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, sigma2_sqrt: np.ndarray, sigma2_trace: float
) -> float:
    """Frechet distance of the samples ``x`` (n, d) to a reference ``(mu2, sigma2)``.

    When n <= d the samples' covariance ``S1 = A^T A`` (``A`` the centred rows over
    ``sqrt(n - 1)``) has rank < n, and the non-zero eigenvalues of ``S1 S2`` are those of
    the n x n PSD matrix ``A S2 A^T``: ``Tr sqrtm(S1 S2)`` then costs O(n d^2) instead of
    the O(d^3) of :func:`frechet_distance_fast` (64 samples of 768-d features: ~100x
    faster). Otherwise it is :func:`frechet_distance_fast`. Same value to round-off.
    """
    x64 = np.asarray(x, dtype=np.float64)
    n, d = x64.shape
    if n > d:
        mu1, sigma1 = mean_cov(x64)
        return frechet_distance_fast(mu1, sigma1, mu2, sigma2_sqrt, sigma2_trace)
    mu1 = x64.mean(axis=0)
    a = (x64 - mu1) / math.sqrt(n - 1)
    m = a @ sigma2 @ a.T
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    diff = mu1 - mu2
    tr_covmean = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    return float(diff.dot(diff) + float(np.einsum("ij,ij->", a, a)) + sigma2_trace - 2.0 * tr_covmean)


# --------------------------------------------------------------------------- PRDC


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


# --------------------------------------------------------------------------- copying


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
    held-out sets, the copy bars' :func:`engine.alerts._copy_bar`). ``np.quantile``'s interpolated
    q-quantile flagged fresh samples at (q (n_holdout - 1) + 1) / (n_holdout + 1) on average, not
    the q the bar and the message took: 13% with 10 held out, 8% with 30 (round AY)."""
    k = max(1, math.ceil(share * len(held_out_nn)))
    return float(np.partition(held_out_nn, k - 1)[k - 1]), k / (len(held_out_nn) + 1)


# --------------------------------------------------------------------------- probes


def parse_probe(spec: str) -> tuple[str, str]:
    """``"a woman|a man"`` -> ("a woman", "a man"); ``"grey hair"`` -> ("grey hair", NEUTRAL_PROMPT)."""
    prompt, sep, contrast = spec.partition("|")
    prompt, contrast = prompt.strip(), contrast.strip()
    if not prompt or (sep and not contrast):
        raise ValueError(f'Expected a probe "PROMPT" or "PROMPT|CONTRAST". Got {spec!r} instead.')
    return prompt, contrast or NEUTRAL_PROMPT


def valid_probe(spec: str) -> str:
    """``spec`` as given, once :func:`parse_probe` reads it (the CLI's check of ``--probe``,
    before anything is ingested: a malformed one was refused after the whole backlog)."""
    parse_probe(spec)
    return spec


def probe_scores(
    image_vectors: np.ndarray, text_vectors: np.ndarray, contrast_vectors: np.ndarray
) -> np.ndarray:
    """Zero-shot probe margins (n_images, n_probes): ``cos(x, t_p) - cos(x, c_p)``.

    A sample *has* probe p when its margin is > 0, i.e. CLIP prefers prompt p over its
    contrast prompt ``c_p`` (a user-given opposite such as "a man" for "a woman", else the
    neutral :data:`NEUTRAL_PROMPT`). This is the two-way zero-shot classification of CLIP
    (softmax over {p, c_p} at any temperature > 0.5 <=> margin > 0).
    ``contrast_vectors`` has one row per probe, or a single row shared by all probes.
    """
    x = as_vectors(image_vectors, "image vectors")
    t = as_vectors(text_vectors, "text vectors", dim=x.shape[1])
    c = as_vectors(contrast_vectors, "contrast vectors", dim=x.shape[1])
    if c.shape[0] not in (1, t.shape[0]):
        raise ValueError(f"Expected 1 or {t.shape[0]} contrast vectors. Got {c.shape[0]} instead.")

    def unit(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    xu = unit(x)
    return xu @ unit(t).T - xu @ np.broadcast_to(unit(c), t.shape).T


def probe_shares(margins: np.ndarray) -> np.ndarray:
    """Share of samples with a positive margin, per probe."""
    return (np.asarray(margins) > 0).mean(axis=0).astype(np.float64)


def encode_probes(encoder, specs: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parse probe specs and encode prompts and contrasts with ``encoder.encode_text``.

    Returns (names, text_vectors, contrast_vectors); feed them to :func:`probe_scores`.
    """
    pairs = [parse_probe(s) for s in specs]
    names = [p for p, _ in pairs]
    texts = np.asarray(encoder.encode_text(names), dtype=np.float32)
    contrasts = np.asarray(encoder.encode_text([c for _, c in pairs]), dtype=np.float32)
    return names, texts, contrasts


# --------------------------------------------------------------------------- labels


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


# --------------------------------------------------------------------------- reference


@dataclass(frozen=True, eq=False)
class ReferenceStats:
    """Everything per-step metrics need from the real (training) and held-out references.

    Build once with :meth:`build`; serialise with :meth:`to_arrays` / :meth:`from_arrays`
    (plain arrays + a JSON-able dict) or :meth:`save` / :meth:`load` (npz, no pickle).
    Nearest-neighbour indexes and per-size diversity figures are rebuilt lazily and never stored.
    """

    real: np.ndarray  # float32 (n_real, d)
    holdout: np.ndarray | None  # float32 (n_holdout, d)
    k: int
    real_radii: np.ndarray  # float64 (n_real,): distance to the k-th NN inside real
    mu: np.ndarray  # float64 (d,)
    sigma: np.ndarray  # float64 (d, d)
    sigma_sqrt: np.ndarray  # float64 (d, d)
    real_pairwise_cosine: float
    real_vendi: float  # on all of real (see real_vendi_at for a size-matched figure)
    copy_train_idx: np.ndarray  # int64 (m,): equal-size training subset
    copy_holdout_idx: np.ndarray  # int64 (m,): equal-size held-out subset
    holdout_nn_train: np.ndarray  # float64 (n_holdout,): held-out -> real NN distance
    near_copy_quantile: float
    near_copy_threshold: float
    label_names: tuple[str, ...] = ()
    label_shares: np.ndarray = field(default_factory=lambda: np.zeros(0))
    label_count: int = 0  # the labelled real samples label_shares were read from
    probe_names: tuple[str, ...] = ()
    probe_shares: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seed: int = COPY_SEED
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ---- construction

    @classmethod
    def build(
        cls,
        real_vectors: np.ndarray,
        holdout_vectors: np.ndarray | None = None,
        real_labels: Sequence | None = None,
        *,
        label_names: Sequence[str] | None = None,
        probe_names: Sequence[str] = (),
        real_probe_scores: np.ndarray | None = None,
        k: int = NEAREST_K,
        near_copy_quantile: float = NEAR_COPY_QUANTILE,
        seed: int = COPY_SEED,
        copy_subset_max: int = COPY_SUBSET_MAX,
    ) -> "ReferenceStats":
        """Summarise the references.

        Parameters
        ----------
        real_vectors : (n_real, d) L2-normalised vectors of the training reference.
        holdout_vectors : (n_holdout, d) vectors of held-out real data, or None (then
            the copying metrics are NaN).
        real_labels : labels of ``real_vectors`` (row-aligned; ``None`` for an unlabelled one), or None.
        label_names : label order; default sorted distinct ``real_labels``.
        probe_names, real_probe_scores : probe prompts and the real vectors' margins
            from :func:`probe_scores` (n_real, n_probes).
        k : neighbourhood size for PRDC.
        near_copy_quantile : q; a generated sample is a near-copy when its NN distance to
            the training reference is below the q-quantile of held-out-to-training NN
            distances (:func:`held_out_order_statistic`: a fresh sample from the data
            distribution is one with probability :attr:`near_copy_expected`, about q).
        seed, copy_subset_max : the equal-size subsets of the copying comparison.
        """
        real = as_vectors(real_vectors, "real vectors")
        n_real, d = real.shape
        if n_real <= k + 1:
            raise ValueError(f"Expected more than {k + 1} real reference vectors. Got {n_real} instead.")
        hold = None if holdout_vectors is None else as_vectors(holdout_vectors, "held-out vectors", dim=d)
        if hold is not None and hold.shape[0] < 2:
            raise ValueError(f"Expected at least 2 held-out vectors. Got {hold.shape[0]} instead.")
        real_index = ExactIndex(real, "l2") if n_real * n_real > _BRUTE_MAX else None
        radii = knn_radii(real, k, index=real_index)
        mu, sigma = mean_cov(real)
        rng = np.random.default_rng(seed)
        if hold is not None:
            m = min(n_real, hold.shape[0], copy_subset_max)
            train_idx = np.sort(rng.choice(n_real, m, replace=False)).astype(np.int64)
            hold_idx = np.sort(rng.choice(hold.shape[0], m, replace=False)).astype(np.int64)
            hold_nn = knn_distances(hold, real, 1, index=real_index)[:, 0]
            threshold = held_out_order_statistic(hold_nn, near_copy_quantile)[0]
        else:
            train_idx = hold_idx = np.zeros(0, dtype=np.int64)
            hold_nn = np.zeros(0)
            threshold = float("nan")
        if real_labels is not None:
            if len(real_labels) != n_real:
                raise ValueError(f"Expected {n_real} real labels. Got {len(real_labels)} instead.")
            names = tuple(str(x) for x in (label_names if label_names is not None
                                           else sorted({str(x) for x in real_labels if x is not None})))
            shares = label_shares(real_labels, names)
            label_count = sum(x is not None for x in real_labels)
        else:
            names, shares, label_count = (), np.zeros(0), 0
        probe_names = tuple(probe_names)
        if probe_names:
            if real_probe_scores is None or np.shape(real_probe_scores) != (n_real, len(probe_names)):
                raise ValueError(
                    f"Expected real probe scores of shape {(n_real, len(probe_names))}. "
                    f"Got {None if real_probe_scores is None else np.shape(real_probe_scores)} instead."
                )
            pshares = probe_shares(real_probe_scores)
        else:
            pshares = np.zeros(0)
        stats = cls(
            real=real, holdout=hold, k=k, real_radii=radii, mu=mu, sigma=sigma,
            sigma_sqrt=sym_sqrt(sigma),
            real_pairwise_cosine=mean_pairwise_cosine_distance(real),
            real_vendi=vendi_score(real), copy_train_idx=train_idx, copy_holdout_idx=hold_idx,
            holdout_nn_train=hold_nn, near_copy_quantile=float(near_copy_quantile),
            near_copy_threshold=threshold, label_names=names, label_shares=shares, label_count=label_count,
            probe_names=probe_names, probe_shares=pshares, seed=seed,
        )
        if real_index is not None:
            stats._cache["index:real"] = real_index
        log.debug("reference statistics: %d real, %d held-out, d=%d, copy subsets of %d",
                  n_real, 0 if hold is None else hold.shape[0], d, len(train_idx))
        return stats

    # ---- lazily derived, never serialised

    @property
    def dim(self) -> int:
        return self.real.shape[1]

    def nearest(self, which: str, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance (float64) of each query vector to its nearest neighbour in ``real``,
        the copy ``train`` subset or the copy ``holdout`` subset, and that neighbour's
        index in it (index built once, on first use, when the search is large enough to
        need one)."""
        key = f"base:{which}"
        if key not in self._cache:
            base = {"real": lambda: self.real,
                    "train": lambda: self.real[self.copy_train_idx],
                    "holdout": lambda: self.holdout[self.copy_holdout_idx]}[which]()
            self._cache[key] = np.ascontiguousarray(base)
        base = self._cache[key]
        index = None
        if len(query) * len(base) > _BRUTE_MAX:
            if f"index:{which}" not in self._cache:
                self._cache[f"index:{which}"] = ExactIndex(base, "l2")
            index = self._cache[f"index:{which}"]
        dist, idx = knn(query, base, 1, index=index)
        return dist[:, 0], idx[:, 0]

    @property
    def near_copy_expected(self) -> float:
        """The chance that a fresh sample of the data is a near-copy: k / (n_holdout + 1) for the
        held-out order statistic the threshold is (:func:`held_out_order_statistic`), about
        ``near_copy_quantile`` (5.0% with 400 held out, 9.1% with 10); NaN without held-out data."""
        if self.holdout is None:
            return float("nan")
        return held_out_order_statistic(self.holdout_nn_train, self.near_copy_quantile)[1]

    def tight_copy_threshold(self) -> tuple[float, float]:
        """(threshold, q): the k-th smallest held-out-to-training NN distance, k the
        :data:`TIGHT_COPY_QUANTILE` share of the held-out set (at least 1), and the chance
        k / (n_holdout + 1) that a fresh sample falls below it. A quarter of 16 samples exact
        copies of training images stayed under the near-copy bar (6 of 16 at q = 5%); so few
        fresh samples come this close that 4 of 16 are evidence with 400 held out (the bar is
        beta-binomial in the held-out size: :func:`engine.alerts._copy_bar`)."""
        if "tight_copies" not in self._cache:
            self._cache["tight_copies"] = held_out_order_statistic(self.holdout_nn_train, TIGHT_COPY_QUANTILE)
        return self._cache["tight_copies"]

    def copy_ratios(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each vector's log(d(y, T_m) / d(y, H_m)), distances floored at :data:`COPY_DISTANCE_FLOOR`,
        and the index of its nearest vector in ``T_m`` and in ``H_m``."""
        d_t, i_t = self.nearest("train", query)
        d_h, i_h = self.nearest("holdout", query)
        return np.log(np.maximum(d_t, COPY_DISTANCE_FLOOR) / np.maximum(d_h, COPY_DISTANCE_FLOOR)), i_t, i_h

    def copy_null_share(self) -> float:
        """The chance that a fresh sample of the data sits closer to ``T_m`` than to ``H_m``: the
        share of the reference vectors outside both subsets (such samples) that do; 1/2 with
        fewer than :data:`COPY_NULL_MIN` of them, NaN without held-out data. The subsets are
        drawn once per store, so it is not 1/2: with 10 held out it was 0.36-0.64 (5-95%) over
        simulated stores, and a sign test against 1/2 made healthy runs beside one at 0.6-0.7
        alert (round BD: 3.5% of runs of 500 checkpoints of 32 samples)."""
        if self.holdout is None:
            return float("nan")
        if "copy_null_share" not in self._cache:
            rng = np.random.default_rng(self.seed)
            fresh = np.concatenate([base[rng.permutation(np.setdiff1d(np.arange(len(base)), idx))[:COPY_NULL_POINTS]]
                                    for base, idx in ((self.real, self.copy_train_idx),
                                                      (self.holdout, self.copy_holdout_idx))])
            ratio = self.copy_ratios(fresh)[0] if len(fresh) else np.zeros(0)
            signed = ratio[ratio != 0]
            self._cache["copy_null_share"] = float(np.mean(signed < 0)) if len(signed) >= COPY_NULL_MIN else 0.5
        return self._cache["copy_null_share"]

    def duplicate_threshold_at(self, n: int, quantile: float = DUPLICATE_QUANTILE) -> tuple[float, float]:
        """Near-duplicate threshold for a set of ``n`` samples and the real's own share below it.

        NN distances inside a set shrink as it grows, so the threshold is calibrated on sets
        of the batch's size: the ``quantile`` of each real vector's NN distance within seeded
        random real sets of ``n`` vectors, drawn until about :data:`DUPLICATE_POOL` distances
        are pooled (``n`` at most the reference's size: :func:`near_duplicates`). Disjoint
        sets pooled a few hundred distances from a reference of hundreds, the 1% quantile
        their smallest one or two: 25 real images gave a bar that 0-23% of healthy samples
        fell under (round AN). Returns
        ``(threshold, share of the pooled real distances below it)``, the latter ~ quantile.
        """
        key = f"duplicates:{n}:{quantile}"
        if key not in self._cache:
            n_real = self.real.shape[0]
            assert 2 <= n <= n_real, f"no real set of {n} samples among {n_real}"
            rng = np.random.default_rng(self.seed + 2)
            sets = [rng.choice(n_real, n, replace=False) for _ in range(-(-DUPLICATE_POOL // n))]
            dist = nearest_others(self.real, sets).ravel()
            threshold = float(np.quantile(dist, quantile))
            self._cache[key] = (threshold, float(np.mean(dist < threshold)))
        return self._cache[key]

    def regions_at(self, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(centres, real shares) of the real data's k-means regions sized for a batch of n
        (about :data:`REGION_SAMPLES` samples per region); None when the batch or the
        reference is too small for :data:`REGION_MIN` of them. Labels find a dropped class;
        regions find a dropped mode without them (Richardson and Weiss 2018's bins)."""
        n_real = self.real.shape[0]
        k = min(REGION_MAX, n // REGION_SAMPLES, n_real // REGION_REAL_MIN)
        if k < REGION_MIN:
            return None
        key = f"regions:{k}"
        if key not in self._cache:
            import faiss  # seeded, deterministic; 0.3 s for 20,000 x 512 where scikit-learn took 22

            kmeans = faiss.Kmeans(self.dim, k, niter=25, nredo=3, seed=self.seed + 3, min_points_per_centroid=1,
                                  max_points_per_centroid=REGION_FIT_POINTS)  # fitted on k x that many vectors
            kmeans.train(np.ascontiguousarray(self.real, dtype=np.float32))
            centres = kmeans.centroids.astype(np.float32)
            nearest = knn(self.real, centres, 1)[1][:, 0]
            self._cache[key] = (centres, np.bincount(nearest, minlength=k) / n_real)
        return self._cache[key]

    def pairwise_cosine_sd(self, n: int) -> float:
        """Standard deviation of the mean pairwise cosine distance of ``n`` samples drawn from the
        real data: Hoeffding's variance of a U-statistic of degree 2, ``(4(n-2) z1 + 2 z2) / (n(n-1))``,
        with ``z1 = Var(x . mu)`` and ``z2 = Var(x . y)`` from the real's mean and covariance. The
        figure of a step of a few samples is mostly chance: 2 fresh digits a step fell more than
        half below the real's at 10% of steps, a false collapse in 37 of 40 healthy runs."""
        if n < 2:
            return float("nan")
        if "pairwise_spread" not in self._cache:
            n_real = self.real.shape[0]
            sigma = self.sigma * ((n_real - 1) / n_real)  # the population's (np.cov has ddof = 1)
            second = sigma + np.outer(self.mu, self.mu)  # E[x x^T]
            self._cache["pairwise_spread"] = (float(self.mu @ sigma @ self.mu),
                                              float(np.sum(second * second) - float(self.mu @ self.mu) ** 2))
        z1, z2 = self._cache["pairwise_spread"]
        return math.sqrt(max(0.0, (4 * (n - 2) * z1 + 2 * z2) / (n * (n - 1))))

    def real_vendi_at(self, n: int) -> float:
        """The real's expected Vendi score at ``n`` samples (size-matched to a generated batch:
        the cosine-kernel Vendi score grows with n until n >> d): the mean over seeded random
        subsets of ``n`` real vectors, drawn until about :data:`VENDI_POOL` vectors are (at
        least one subset). One subset's score strays by ~12% at a few samples (round BA: 4.70
        at n = 6 where the mean is 3.94), and the collapse bar moved with it."""
        key = f"vendi:{n}"
        if key not in self._cache:
            n_real = self.real.shape[0]
            if n >= n_real:
                self._cache[key] = self.real_vendi
            else:
                rng = np.random.default_rng(self.seed + 1)
                sets = np.stack([rng.choice(n_real, n, replace=False) for _ in range(-(-VENDI_POOL // n))])
                self._cache[key] = float(vendi_scores(self.real[sets]).mean())
        return self._cache[key]

    # ---- serialisation

    _ARRAYS = ("real", "holdout", "real_radii", "mu", "sigma", "sigma_sqrt", "copy_train_idx",
               "copy_holdout_idx", "holdout_nn_train", "label_shares", "probe_shares")
    _SCALARS = ("k", "real_pairwise_cosine", "real_vendi", "near_copy_quantile",
                "near_copy_threshold", "seed", "label_count")

    def to_arrays(self, include_vectors: bool = True) -> tuple[dict[str, np.ndarray], dict]:
        """Plain numpy arrays and a JSON-able dict. With ``include_vectors=False`` the
        real and held-out vectors are left out (pass them back to :meth:`from_arrays`)."""
        arrays = {}
        for name in self._ARRAYS:
            val = getattr(self, name)
            if val is None or (not include_vectors and name in ("real", "holdout")):
                continue
            arrays[name] = np.asarray(val)
        meta = {name: getattr(self, name) for name in self._SCALARS}
        meta.update(version=STATS_VERSION, label_names=list(self.label_names),
                    probe_names=list(self.probe_names), has_holdout=self.holdout is not None)
        meta = json.loads(json.dumps(meta))  # plain types only (NaN allowed by json)
        return arrays, meta

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], meta: dict, *, real: np.ndarray | None = None,
        holdout: np.ndarray | None = None,
    ) -> "ReferenceStats":
        """Inverse of :meth:`to_arrays`."""
        if meta.get("version") not in (2, STATS_VERSION):
            raise ValueError(f"Expected reference stats version {STATS_VERSION}. Got {meta.get('version')!r} instead.")
        kw: dict[str, Any] = {name: meta[name] for name in cls._SCALARS}
        for name in cls._ARRAYS:
            if name in arrays:
                kw[name] = np.asarray(arrays[name])
        kw["real"] = as_vectors(kw.get("real", real), "real vectors")
        hv = kw.get("holdout", holdout)
        kw["holdout"] = as_vectors(hv, "held-out vectors") if meta["has_holdout"] and hv is not None else None
        if meta["has_holdout"] and kw["holdout"] is None:
            raise ValueError("Expected the held-out vectors (stats were saved without them). Got None instead.")
        kw["label_names"] = tuple(meta["label_names"])
        kw["probe_names"] = tuple(meta["probe_names"])
        kw["k"] = int(kw["k"])
        kw["seed"] = int(kw["seed"])
        if meta["version"] == 2 and kw["holdout"] is not None:  # saved with the interpolated quantile, which flagged
            # fresh samples past the near_copy_expected these stats now give (13% against 9.1% with 10 held out)
            kw["near_copy_threshold"] = held_out_order_statistic(kw["holdout_nn_train"], kw["near_copy_quantile"])[0]
        return cls(**kw)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` (no pickled objects; meta as a JSON string)."""
        arrays, meta = self.to_arrays()
        np.savez(path, __meta__=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceStats":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
        return cls.from_arrays(arrays, meta)


# --------------------------------------------------------------------------- per step


def metric_key(prefix: str, name: str) -> str:
    """``"label_share:cat"``: the key of a per-label / per-probe metric, the name as given: the
    store makes it an array name (:func:`stores.format.array_names`: ``cat/dog`` and ``cat_dog``
    two arrays; ``/`` made ``_`` here, the second's share replaced the first's; round AT)."""
    return f"{prefix}:{name}"


@dataclass(frozen=True)
class StepResult:
    """Scalars for the step (stored per checkpoint) and per-sample arrays (row-aligned
    with the generated vectors; the viewer colours points by them)."""

    scalars: dict[str, float]
    per_sample: dict[str, np.ndarray]


def _region_shares(gen: np.ndarray, ref: ReferenceStats) -> dict[str, float]:
    """How far the batch's shares of the real data's regions are from the real's
    (:meth:`ReferenceStats.regions_at`), the chance level of that distance, and the real
    share of the regions no sample fell in."""
    regions = ref.regions_at(len(gen))
    if regions is None:
        return dict.fromkeys(("regions", "region_tv", "region_tv_chance", "region_empty_share"), float("nan"))
    centres, real_shares = regions
    shares = np.bincount(knn(gen, centres, 1)[1][:, 0], minlength=len(centres)) / len(gen)
    return {"regions": float(len(centres)), "region_tv": total_variation(shares, real_shares),
            "region_tv_chance": chance_tv(tuple(np.round(real_shares, 6)), len(gen), REGION_NOISE_Z),
            "region_empty_share": float(real_shares[shares == 0].sum())}


def near_duplicates(gen: np.ndarray, nearest_other: np.ndarray,
                    ref: ReferenceStats) -> tuple[np.ndarray, float, float]:
    """(which samples have a near-duplicate, the threshold, the real's own share below it).

    The threshold is calibrated on random real sets of the batch's size
    (:meth:`ReferenceStats.duplicate_threshold_at`). A batch larger than the reference is
    cut into seeded sets of equal size, each sample's nearest other taken within its set:
    calibrated on the whole reference, a smaller set, 64 healthy samples beside 25 real
    ones had 20-50% "near-duplicates" and raised a partial collapse (round AN). Not a batch
    up to the reference's size: cut in two, a mode of 2-3 samples mostly fell apart and a
    partial collapse of 16 samples beside 25 real ones was missed (round AO).
    ``nearest_other`` is each sample's nearest other in the whole batch."""
    n = gen.shape[0]
    size = min(n, ref.real.shape[0])
    if n == size:
        threshold, expected = ref.duplicate_threshold_at(n)
        return nearest_other < threshold, threshold, expected
    sets = np.array_split(np.random.default_rng(ref.seed + 4).permutation(n), -(-n // size))
    threshold, expected = ref.duplicate_threshold_at(min(map(len, sets)))  # sizes differ by one at most
    within = np.empty(n)
    for length in {len(members) for members in sets}:
        alike = [members for members in sets if len(members) == length]
        within[np.concatenate(alike)] = nearest_others(gen, alike).ravel()
    return within < threshold, threshold, expected


def compute_step(
    generated: np.ndarray,
    ref: ReferenceStats,
    labels: Sequence | None = None,
    probe_scores: np.ndarray | None = None,
    label_names: Sequence[str] = (),
) -> StepResult:
    """All metrics of one checkpoint's generated vectors against cached reference stats.

    Scalar keys (NaN where an input is missing):

    - ``n_generated``
    - diversity: ``pairwise_cosine``, ``vendi`` and the real's ``real_pairwise_cosine``,
      ``real_vendi`` (the mean over seeded real subsets of the batch's size), and
      ``real_pairwise_cosine_sd``, the spread of ``pairwise_cosine`` over real batches of this size
      (:meth:`ReferenceStats.pairwise_cosine_sd`)
    - fidelity/coverage: ``precision``, ``recall``, ``density``, ``coverage`` (k = ref.k),
      ``fd``
    - partial collapse: ``duplicate_frac`` (share of samples whose nearest OTHER sample of
      the batch is closer than ``duplicate_threshold``, the real's 1% quantile at this
      batch size: :meth:`ReferenceStats.duplicate_threshold_at`), ``duplicate_threshold``,
      ``duplicate_expected`` (the real's own share at that threshold, ~0.01;
      a batch larger than the real reference is measured in sets of its size:
      :func:`near_duplicates`)
    - mode dropping without labels: ``regions`` (k-means regions of the real data, sized
      for the batch: :meth:`ReferenceStats.regions_at`), ``region_tv`` (total variation
      between the batch's and the real's region shares), ``region_tv_chance`` (what a batch
      drawn from the real data exceeds as rarely as 3 sd of a normal), ``region_empty_share``
      (real share of the regions without a sample)
    - copying: ``nn_train_median`` (median NN distance to the whole training reference),
      ``copy_log_ratio`` (median of log(d_train / d_holdout) on the equal-size subsets,
      each distinct neighbourhood counted once; < 0 means closer to training than to
      held-out data), ``copy_neighbourhoods`` and ``copy_log_ratio_p`` (see
      :func:`neighbourhood_log_ratio`), ``copy_null_share`` (the chance its test counts a
      neighbourhood closer at: :meth:`ReferenceStats.copy_null_share`),
      ``copy_zu`` (Meehan et al. Z_U of generated vs held-out NN distances to training),
      ``near_copy_frac``, ``near_copy_threshold``, ``near_copy_expected`` (the chance of a fresh
      sample, about q: :attr:`ReferenceStats.near_copy_expected`),
      ``tight_copy_frac``, ``tight_copy_threshold``, ``tight_copy_expected``
      (:meth:`ReferenceStats.tight_copy_threshold`), ``n_holdout`` (the held-out samples the
      thresholds are quantiles of: how uncertain their chances are)
    - labels: ``n_labelled``, ``label_tv`` and, per label name L, ``label_share:L`` and
      ``label_ref_share:L``. Shares are over the labelled samples (``None`` in ``labels`` is
      unlabelled); a label the reference lacks, here or in ``label_names`` (the labels the run
      has seen, in the order it showed them), has a reference share of 0 and counts in the
      total variation. The keys of those follow the reference's, in ``label_names``' order.
    - probes: per prompt P, ``probe_share:P`` and ``probe_ref_share:P``

    Per-sample arrays: ``nn_train_dist`` (float32), ``near_copy`` (bool; NaN without held-out data),
    ``copy_log_ratio`` (float32), ``near_duplicate`` (bool).
    """
    gen = as_vectors(generated, "generated vectors", dim=ref.dim)
    n = gen.shape[0]
    nan = float("nan")
    # the real samples: probe shares' reference size, near-duplicates' set size
    s: dict[str, float] = {"n_generated": float(n), "n_reference": float(ref.real.shape[0])}
    per: dict[str, np.ndarray] = {}

    s["pairwise_cosine"] = mean_pairwise_cosine_distance(gen) if n >= 2 else nan
    s["real_pairwise_cosine"] = ref.real_pairwise_cosine
    s["real_pairwise_cosine_sd"] = ref.pairwise_cosine_sd(n)
    s["vendi"] = vendi_score(gen) if n >= 1 else nan
    s["real_vendi"] = ref.real_vendi_at(n) if n >= 1 else nan

    # one kNN of the batch among itself: its nearest neighbours give the near-duplicates,
    # its k-th the generated radii of PRDC's recall
    self_nn = knn_distances(gen, gen, min(ref.k, n - 1), exclude_self=True) if n >= 2 else None
    if self_nn is not None:
        per["near_duplicate"], threshold, expected = near_duplicates(gen, self_nn[:, 0], ref)
        s.update(duplicate_frac=float(per["near_duplicate"].mean()), duplicate_threshold=threshold,
                 duplicate_expected=expected)
    else:
        per["near_duplicate"] = np.zeros(n, dtype=bool)
        s.update(duplicate_frac=nan, duplicate_threshold=nan, duplicate_expected=nan)
    if n:
        fake_radii = self_nn[:, -1] if n > ref.k else None  # the k-th other sample's distance
        s.update(prdc(ref.real, gen, ref.k, real_radii=ref.real_radii, fake_radii=fake_radii))
    else:
        s.update(precision=nan, recall=nan, density=nan, coverage=nan)
    if n >= 2:
        s["fd"] = frechet_distance_samples(gen, ref.mu, ref.sigma, ref.sigma_sqrt, float(np.trace(ref.sigma)))
    else:
        s["fd"] = nan

    s.update(_region_shares(gen, ref))

    nn_train = ref.nearest("real", gen)[0] if n else np.zeros(0)
    per["nn_train_dist"] = nn_train.astype(np.float32)
    s["nn_train_median"] = float(np.median(nn_train)) if n else nan
    if ref.holdout is not None and n:
        ratio, i_t, i_h = ref.copy_ratios(gen)
        per["copy_log_ratio"] = ratio.astype(np.float32)
        null_share = ref.copy_null_share()
        s.update(neighbourhood_log_ratio(ratio, i_t, i_h, null_share), copy_null_share=null_share)
        s["copy_zu"] = mann_whitney_z(nn_train, ref.holdout_nn_train)
        near = nn_train < ref.near_copy_threshold
        per["near_copy"] = near
        s["near_copy_frac"] = float(near.mean())
        tight, tight_q = ref.tight_copy_threshold()
        s.update(tight_copy_frac=float(np.mean(nn_train < tight)), tight_copy_threshold=tight,
                 tight_copy_expected=tight_q, n_holdout=float(len(ref.holdout_nn_train)))
    else:
        per["copy_log_ratio"] = np.full(n, np.nan, dtype=np.float32)
        per["near_copy"] = np.full(n, np.nan, dtype=np.float32)  # not measured: no sample said to be no copy
        s.update(copy_log_ratio=nan, copy_neighbourhoods=nan, copy_log_ratio_p=nan, copy_null_share=nan, copy_zu=nan,
                 near_copy_frac=nan,
                 tight_copy_frac=nan, tight_copy_threshold=nan, tight_copy_expected=nan, n_holdout=nan)
    s["near_copy_threshold"] = ref.near_copy_threshold
    s["near_copy_expected"] = ref.near_copy_expected

    if ref.label_names:
        if labels is not None and len(labels) != n:
            raise ValueError(f"Expected {n} labels for the generated vectors. Got {len(labels)} instead.")
        given = [str(x) for x in labels if x is not None] if labels is not None else []
        # in the order the run first showed them (the store's), a label only given here last: the
        # store names arrays in key order, and a label read later that sorted first took the
        # array of another already named (cat/dog after cat_dog: label_share:cat_dog was cat_dog's
        # share at the steps before, cat/dog's after)
        seen = dict.fromkeys([*(str(x) for x in label_names), *sorted(given)])
        foreign = [name for name in seen if name not in ref.label_names]
        names = ref.label_names + tuple(foreign)
        ref_shares = np.concatenate([ref.label_shares, np.zeros(len(foreign))])
        s["n_labelled"] = float(len(given))
        s["n_real"] = float(ref.label_count)  # the labelled reference samples its shares were read from (chance_tv)
        if given:
            shares = label_shares(given, names)
            s["label_tv"] = total_variation(shares, ref_shares)
        else:
            shares = np.full(len(names), np.nan)
            s["label_tv"] = nan
        for name, g, r in zip(names, shares, ref_shares):
            s[metric_key("label_share", name)] = float(g)
            s[metric_key("label_ref_share", name)] = float(r)
    if ref.probe_names:
        if probe_scores is not None:
            if np.shape(probe_scores) != (n, len(ref.probe_names)):
                raise ValueError(f"Expected probe scores of shape {(n, len(ref.probe_names))}. Got {np.shape(probe_scores)} instead.")
            pshares = probe_shares(probe_scores)
        else:
            pshares = np.full(len(ref.probe_names), np.nan)
        for name, g, r in zip(ref.probe_names, pshares, ref.probe_shares):
            s[metric_key("probe_share", name)] = float(g)
            s[metric_key("probe_ref_share", name)] = float(r)
    return StepResult(scalars={k: float(v) for k, v in s.items()}, per_sample=per)


def step_metrics(
    generated: np.ndarray,
    ref: ReferenceStats,
    labels: Sequence | None = None,
    probe_scores: np.ndarray | None = None,
) -> dict[str, float]:
    """The scalar part of :func:`compute_step` (see there for the keys)."""
    return compute_step(generated, ref, labels=labels, probe_scores=probe_scores).scalars
