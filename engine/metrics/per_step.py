"""One checkpoint's metrics against the cached reference (:func:`compute_step`), and the version
of their definitions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.metrics.copying import mann_whitney_z, neighbourhood_log_ratio
from engine.metrics.diversity import mean_pairwise_cosine_distance, vendi_score
from engine.metrics.frechet import frechet_distance_samples
from engine.metrics.neighbours import knn, knn_distances, nearest_others
from engine.metrics.prdc import prdc
from engine.metrics.probes import probe_shares
from engine.metrics.reference import ReferenceStats
from engine.metrics.shares import chance_tv, label_shares, total_variation
from engine.metrics.vectors import as_vectors


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

