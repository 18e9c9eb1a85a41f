"""engine.metrics against reference implementations on the same vectors (to 1e-6)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.metrics import neighbours
from engine.metrics.copying import mann_whitney_z, neighbourhood_log_ratio
from engine.metrics.diversity import mean_pairwise_cosine_distance, vendi_score, vendi_scores
from engine.metrics.frechet import frechet_distance, frechet_distance_fast, mean_cov, sym_sqrt
from engine.metrics.neighbours import knn, knn_distances, knn_radii, nearest_others, pairwise_distances
from engine.metrics.per_step import compute_step, step_metrics
from engine.metrics.prdc import prdc
from engine.metrics.probes import NEUTRAL_PROMPT, encode_probes, parse_probe, probe_scores
from engine.metrics.reference import (COPY_DISTANCE_FLOOR, DUPLICATE_POOL, DUPLICATE_QUANTILE, NEAR_COPY_QUANTILE, REGION_MAX,
                                      ReferenceStats)
from engine.metrics.vectors import unit_rows


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    real = unit(rng.normal(size=(900, 24)))
    fake = unit(rng.normal(size=(400, 24)) + 0.25)
    hold = unit(rng.normal(size=(150, 24)))
    return real, fake, hold


def test_prdc_matches_prdc_package(data):
    prdc_pkg = pytest.importorskip("prdc")
    real, fake, _ = data
    for k in (3, 5):
        want = prdc_pkg.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
        got = prdc(real, fake, k)
        for name in ("precision", "recall", "density", "coverage"):
            assert got[name] == pytest.approx(float(want[name]), abs=1e-6), (k, name)
    # and through the cached reference path (radii from ReferenceStats)
    ref = ReferenceStats.build(real, None)
    got = step_metrics(fake, ref)
    want = prdc_pkg.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert got[name] == pytest.approx(float(want[name]), abs=1e-6), name


def test_knn_faiss_path_matches_brute_force(data, monkeypatch):
    real, fake, _ = data
    brute = knn_distances(fake, real, 5)
    radii = knn_radii(real, 5)
    monkeypatch.setattr(neighbours, "_BRUTE_MAX", 0)  # force the FAISS + float64 re-rank path
    np.testing.assert_allclose(knn_distances(fake, real, 5), brute, atol=1e-9)
    np.testing.assert_allclose(knn_radii(real, 5), radii, atol=1e-9)
    d = np.sort(pairwise_distances(fake, real), axis=1)[:, :5]
    np.testing.assert_allclose(brute, d, atol=1e-12)
    want = np.argsort(pairwise_distances(fake, real), axis=1)[:, :5]
    np.testing.assert_array_equal(knn(fake, real, 5)[1], want)  # the FAISS path, still forced
    monkeypatch.undo()
    np.testing.assert_array_equal(knn(fake, real, 5)[1], want)


def test_log_ratio_counts_each_neighbourhood_once():
    """Samples sharing both nearest neighbours are one comparison: the median and the sign
    test run over neighbourhoods (their samples' median), not over samples."""
    ratio = np.array([-0.5] * 60 + [0.1, 0.2, 0.3])
    train_nn = np.array([4] * 60 + [1, 2, 3])
    holdout_nn = np.array([9] * 60 + [1, 1, 2])
    got = neighbourhood_log_ratio(ratio, train_nn, holdout_nn)
    assert got == {"copy_log_ratio": pytest.approx(0.15), "copy_neighbourhoods": 4,
                   "copy_log_ratio_p": pytest.approx(15 / 16)}


def test_fd_matches_scipy_sqrtm(data):
    real, fake, _ = data
    mu1, s1 = mean_cov(fake)
    mu2, s2 = mean_cov(real)
    from scipy import linalg

    covmean = linalg.sqrtm(s1 @ s2).real
    want = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, abs=1e-9)
    fast = frechet_distance_fast(mu1, s1, mu2, sym_sqrt(s2), float(np.trace(s2)))
    assert fast == pytest.approx(want, abs=1e-6)
    ref = ReferenceStats.build(real, None)
    assert step_metrics(fake, ref)["fd"] == pytest.approx(want, abs=1e-6)
    # identical sets: FD 0
    assert frechet_distance(mu2, s2, mu2, s2) == pytest.approx(0.0, abs=1e-6)


def test_a_small_references_covariance_root_is_the_same_without_a_d_by_d_eigh(monkeypatch):
    """Round BV: a --real of 24 images in the pixels encoder's 768 dimensions spent 0.3-1 s of each
    watch in eigh of the 768 x 768 covariance (rank 23). Its root comes from the 24 x 24 Gram
    matrix now: the same to round-off, the same FD, duplicate rows and two rows included."""
    from engine.metrics.frechet import cov_sqrt

    rng = np.random.default_rng(0)
    for x in (unit_rows(rng.normal(size=(24, 768))), unit_rows(np.repeat(rng.normal(size=(6, 200)), 4, axis=0)),
              rng.normal(size=(2, 64)), unit_rows(rng.normal(size=(300, 64)))):  # the last: more rows, eigh of sigma
        mu, sigma = mean_cov(x)
        want, got = sym_sqrt(sigma), cov_sqrt(x, sigma)
        # apart by the roots of the round-off eigenvalues sym_sqrt keeps (1e-9 beside entries of 1e-2)
        assert np.abs(got - want).max() < 1e-6 * np.abs(want).max() and np.abs(got @ got - sigma).max() < 1e-12
        assert np.abs(got - got.T).max() < 1e-14
        fake = unit_rows(rng.normal(size=(3 * x.shape[1], x.shape[1])))
        m1, s1 = mean_cov(fake)
        assert frechet_distance_fast(m1, s1, mu, got, float(np.trace(sigma))) == pytest.approx(
            frechet_distance_fast(m1, s1, mu, want, float(np.trace(sigma))), rel=1e-7)  # scipy sqrtm: as far from both
    shapes, eigh = [], np.linalg.eigh
    monkeypatch.setattr(np.linalg, "eigh", lambda a, *args, **kw: shapes.append(a.shape) or eigh(a, *args, **kw))
    ReferenceStats.build(unit_rows(rng.normal(size=(24, 768))).astype(np.float32), None)
    assert shapes and max(shapes) <= (24, 24), shapes


def _vendi_by_definition(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(x @ x.T / len(x))
    lam = lam[lam > 1e-15]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def test_vendi_matches_definition_both_paths(data):
    real, fake, _ = data
    small = fake[:16]  # n < d: the n x n kernel path
    assert vendi_score(small) == pytest.approx(_vendi_by_definition(small), abs=1e-6)
    assert vendi_score(fake) == pytest.approx(_vendi_by_definition(fake), abs=1e-6)  # d < n: Gram trick
    # n identical vectors: 1 effective sample; n orthonormal vectors: n
    assert vendi_score(np.repeat(fake[:1], 10, axis=0)) == pytest.approx(1.0, abs=1e-6)
    assert vendi_score(np.eye(8, dtype=np.float32)) == pytest.approx(8.0, abs=1e-6)


def test_the_real_vendi_at_a_few_samples_is_its_expectation_not_one_subsets():
    """Round BA: the real's Vendi score at n came from one seeded subset of n, 4.70 at n = 6 where
    the mean over 4,000 subsets was 3.94, and the 50% collapse bar moved with it (a false
    collapse at 3 samples a step). It is the mean over seeded subsets."""
    rng = np.random.default_rng(3)
    centres = unit(rng.normal(size=(10, 32)))
    real = unit(centres[rng.integers(0, 10, 1000)] + 0.15 * rng.normal(size=(1000, 32)))
    ref = ReferenceStats.build(real, None)
    draw = np.random.default_rng(11)
    for n in (2, 3, 4, 6, 16):
        sets = np.stack([draw.choice(len(real), n, replace=False) for _ in range(4000)])
        scores = vendi_scores(real[sets])
        assert scores[:3] == pytest.approx([vendi_score(real[i]) for i in sets[:3]], abs=1e-9)
        assert ref.real_vendi_at(n) == pytest.approx(scores.mean(), rel=0.015), n
    assert ref.real_vendi_at(1000) == ref.real_vendi == pytest.approx(vendi_score(real))


def test_an_exact_copys_log_ratio_is_the_floors_not_roundings():
    """Round BA: identical vectors come out 0 to ~1e-7 apart, so an exact copy's copy_log_ratio
    read anything from -15 to -27 (the docs said -27), and an image in both reference sets up
    to +-27 by chance. Distances are floored at COPY_DISTANCE_FLOOR: log(floor / d_H), and 0."""
    rng = np.random.default_rng(5)
    vectors = unit_rows(unit(rng.normal(size=(400, 96))).astype(np.float16))  # as the store keeps them
    real, hold = vectors[:200], np.concatenate([vectors[200:380], vectors[:20]])  # 20 images in both
    ref = ReferenceStats.build(real, hold)  # equal sizes: T_m and H_m are the whole sets
    copies = real[20:84]
    ratio = compute_step(copies, ref).per_sample["copy_log_ratio"]
    d_h = knn_distances(copies, hold, 1)[:, 0]
    assert ratio == pytest.approx(np.log(COPY_DISTANCE_FLOOR / d_h), abs=1e-5)
    both = compute_step(real[:20], ref)
    assert np.all(both.per_sample["copy_log_ratio"] == 0)
    assert both.scalars["copy_log_ratio"] == 0 and both.scalars["copy_log_ratio_p"] == 1.0


def test_mean_pairwise_cosine_matches_dense(data):
    _, fake, _ = data
    x = fake.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c = x @ x.T
    n = len(x)
    want = float((1 - c)[~np.eye(n, dtype=bool)].mean())
    assert mean_pairwise_cosine_distance(fake) == pytest.approx(want, abs=1e-9)
    collapsed = np.repeat(np.random.default_rng(3).standard_normal((1, 17)), 64, axis=0)
    assert [mean_pairwise_cosine_distance(collapsed * s) for s in (1, 3.7, 1e-3)] == [0.0] * 3  # no -4.4e-16


def test_real_pairwise_cosine_sd_is_the_spread_of_real_batches_of_the_steps_size():
    """The chance spread collapse's pairwise-cosine drop is held to: the standard deviation of the
    mean pairwise cosine distance of n samples drawn from the real data (a generator's fresh
    samples), at every n (2 samples a step: one pair's distance; 64: a mean over 2,016 pairs)."""
    rng = np.random.default_rng(5)
    clustered = unit(rng.normal(size=(10, 24))[rng.integers(0, 10, 1500)] + 0.6 * rng.normal(size=(1500, 24)))
    ref = ReferenceStats.build(clustered)
    for n in (2, 3, 8, 64):
        batches = [mean_pairwise_cosine_distance(clustered[rng.choice(1500, n)]) for _ in range(3000)]
        assert ref.pairwise_cosine_sd(n) == pytest.approx(np.std(batches), rel=0.05), n
    assert np.isnan(ref.pairwise_cosine_sd(1))
    row = step_metrics(clustered[:4], ref)
    assert row["real_pairwise_cosine_sd"] == pytest.approx(ref.pairwise_cosine_sd(4))
    assert np.isnan(step_metrics(clustered[:1], ref)["real_pairwise_cosine_sd"])


def test_mann_whitney_z_is_meehan_zu():
    rng = np.random.default_rng(1)
    x, y = rng.random(50), rng.random(70) + 0.1
    u = sum((a > b) + 0.5 * (a == b) for a in x for b in y)
    want = (u - 50 * 70 / 2) / np.sqrt(50 * 70 * (50 + 70 + 1) / 12)
    assert mann_whitney_z(x, y) == pytest.approx(want, abs=1e-9)


def test_copy_metrics_and_per_sample_arrays(data):
    real, fake, hold = data
    ref = ReferenceStats.build(real, hold)
    assert len(ref.copy_train_idx) == len(ref.copy_holdout_idx) == len(hold)
    res = compute_step(fake, ref)
    nn = res.per_sample["nn_train_dist"]
    assert nn.dtype == np.float32 and nn.shape == (len(fake),)
    np.testing.assert_allclose(nn, pairwise_distances(fake, real).min(axis=1), atol=1e-6)
    assert res.per_sample["near_copy"].dtype == bool
    assert res.scalars["near_copy_frac"] == pytest.approx(res.per_sample["near_copy"].mean())
    # threshold: the k-th smallest held-out -> train NN distance, k = ceil(q |H|) (150 held out: the 8th)
    want = np.sort(pairwise_distances(hold, real).min(axis=1))[7]
    assert res.scalars["near_copy_threshold"] == pytest.approx(want, abs=1e-9)
    assert res.scalars["near_copy_expected"] == pytest.approx(8 / 151)
    # copies of training vectors: every sample a near-copy, log ratio very negative
    copies = unit(real[ref.copy_train_idx[:100]] + 1e-3 * np.random.default_rng(0).normal(size=(100, 24)))
    res = compute_step(copies, ref)
    assert res.scalars["near_copy_frac"] == 1.0
    assert res.scalars["copy_log_ratio"] < -2
    assert res.scalars["copy_zu"] < -5


def test_near_copies_of_fresh_samples_come_at_the_chance_the_row_says_whatever_the_held_out_size():
    """near_copy_expected is what the memorisation bar and its message take as the chance of a
    fresh sample. The interpolated 5% quantile of 10 held-out distances flagged 13% of fresh
    samples on average (8% with 30), said to be 5%: the bar's beta-binomial was off as much."""
    rng = np.random.default_rng(11)
    real = unit(rng.normal(size=(300, 6)))
    for n_hold in (10, 30):
        flagged, expected = [], []
        for _ in range(120):
            row = step_metrics(unit(rng.normal(size=(40, 6))), ReferenceStats.build(real, unit(rng.normal(size=(n_hold, 6)))))
            flagged.append(row["near_copy_frac"])
            expected.append(row["near_copy_expected"])
        assert len(set(expected)) == 1 and np.mean(flagged) == pytest.approx(expected[0], abs=0.015), n_hold
    assert expected[0] == pytest.approx(2 / 31)


def test_duplicate_fraction_is_calibrated_on_size_matched_real_subsets(data):
    """The threshold is the 1% quantile of real NN distances within seeded random size-n
    real subsets, so a batch of real vectors has ~1% near-duplicates; a batch half made of 2
    points has at least that half."""
    real, _, hold = data
    ref = ReferenceStats.build(real, hold)
    n = 64
    rng = np.random.default_rng(ref.seed + 2)
    pooled = np.concatenate([knn_distances(real[g], real[g], 1, exclude_self=True)[:, 0]
                             for g in (rng.choice(len(real), n, replace=False) for _ in range(DUPLICATE_POOL // n))])
    assert len(pooled) == DUPLICATE_POOL
    threshold, expected = ref.duplicate_threshold_at(n)
    assert threshold == pytest.approx(np.quantile(pooled, DUPLICATE_QUANTILE), abs=1e-12)
    assert expected == pytest.approx(np.mean(pooled < threshold)) and 0.005 < expected <= 0.01
    assert ref.duplicate_threshold_at(n) == (threshold, expected)  # seeded: the same figures
    s = step_metrics(hold[:n], ref)  # fresh real vectors
    assert s["duplicate_frac"] <= 0.05 and s["duplicate_threshold"] == threshold
    batch = hold[:n].copy()
    batch[:32] = unit(real[[0, 1] * 16] + 1e-3 * np.random.default_rng(0).normal(size=(32, 24)))
    res = compute_step(batch, ref)
    assert res.per_sample["near_duplicate"][:32].all()
    assert res.scalars["duplicate_frac"] == pytest.approx(res.per_sample["near_duplicate"].mean())
    assert res.scalars["duplicate_frac"] >= 0.5
    assert res.scalars["duplicate_expected"] == expected


@pytest.mark.parametrize("size", [2, 7, 64, 2001])
def test_nearest_others_searches_many_sets_as_one_search_each_would(size):
    """The sets searched together (or one by one, past the brute-force size) give each
    member's nearest other member exactly as knn_distances does."""
    rng = np.random.default_rng(size)
    x = unit(rng.normal(size=(2500, 24)))
    sets = [rng.choice(len(x), size, replace=False) for _ in range(3)]
    want = np.stack([knn_distances(x[s], x[s], 1, exclude_self=True)[:, 0] for s in sets])
    np.testing.assert_allclose(nearest_others(x, sets), want, atol=1e-12)


@pytest.mark.parametrize("n_real", [16, 25, 50])
def test_duplicates_of_a_batch_larger_than_a_small_reference_stay_near_q(n_real):
    """Round AN: 64 healthy samples against 25 real ones had 20-50% "near-duplicates" (the
    threshold taken at the reference's size, its 1% quantile the smallest of 25 distances)
    and raised a partial collapse. Sets of at most half the reference, on both sides."""
    rng = np.random.default_rng(n_real)
    modes = rng.normal(size=(10, 24))

    def draw(n):
        return unit(modes[rng.integers(0, 10, n)] + 0.6 * rng.normal(size=(n, 24)))

    ref = ReferenceStats.build(draw(n_real), draw(50))
    healthy = [compute_step(draw(n), ref).scalars for n in (64, 256) for _ in range(8)]
    fracs = [s["duplicate_frac"] for s in healthy]
    assert np.mean(fracs) <= 0.08 and max(fracs) <= 0.2, fracs
    assert all(s["duplicate_threshold"] == healthy[0]["duplicate_threshold"] for s in healthy[:8])
    batch = draw(64)
    batch[:32] = unit(batch[[0, 1] * 16] + 1e-3 * rng.normal(size=(32, 24)))  # half on 2 modes
    assert compute_step(batch, ref).scalars["duplicate_frac"] >= 0.4


def test_labels_and_probes():
    rng = np.random.default_rng(3)
    real = unit(rng.normal(size=(200, 8)))
    labels = np.array(["a", "b"] * 100)
    text = unit(rng.normal(size=(2, 8)))
    contrast = unit(rng.normal(size=(1, 8)))
    margins = probe_scores(real, text, contrast)
    assert margins.shape == (200, 2)
    want = (real @ text.T).astype(np.float64) - (real @ contrast.T)
    np.testing.assert_allclose(margins, want, atol=1e-6)
    ref = ReferenceStats.build(real, None, labels, probe_names=["p/0", "p1"], real_probe_scores=margins)
    gen = real[:50]
    s = step_metrics(gen, ref, labels=["a"] * 50, probe_scores=margins[:50])
    assert s["label_share:a"] == 1.0 and s["label_ref_share:a"] == 0.5
    assert s["label_tv"] == pytest.approx(0.5)
    assert s["probe_share:p/0"] == pytest.approx((margins[:50, 0] > 0).mean())
    assert s["probe_ref_share:p1"] == pytest.approx((margins[:, 1] > 0).mean())
    assert parse_probe("a woman|a man") == ("a woman", "a man")
    assert parse_probe(" grey hair ") == ("grey hair", NEUTRAL_PROMPT)
    for malformed in ("x|", "|x", "a|b|c"):  # "a|b|c" was read as prompt "a" against contrast "b|c"
        with pytest.raises(ValueError, match="one --probe for each prompt"):
            parse_probe(malformed)


def test_label_shares_leave_unlabelled_samples_out_and_count_labels_the_reference_lacks():
    """Half the samples unlabelled set label_tv at a floor of 0.25 (a false label_drift alert);
    30% of a label the real set lacks counted 0.15 in it instead of 0.30, with no column."""
    rng = np.random.default_rng(4)
    real = unit(rng.normal(size=(200, 8)))
    real_labels = [None if i % 2 else "ab"[i % 4 // 2] for i in range(200)]  # half unlabelled
    ref = ReferenceStats.build(real, None, real_labels)
    assert ref.label_names == ("a", "b") and list(ref.label_shares) == [0.5, 0.5]
    # label_names naming some of the labels: the others still count in the total
    assert list(ReferenceStats.build(real, None, real_labels, label_names=["a"]).label_shares) == [0.5]
    half = step_metrics(real[:40], ref, labels=["a", None, "b", None] * 10)
    assert half["label_tv"] == 0.0 and half["n_labelled"] == 20.0
    assert half["n_real"] == 100.0  # the labelled reference samples (round AM: all 200 lowered label_drift's bar)
    assert half["label_share:a"] == half["label_share:b"] == 0.5
    foreign = step_metrics(real[:10], ref, labels=["a"] * 4 + ["b"] * 3 + ["c"] * 3)
    assert foreign["label_share:c"] == pytest.approx(0.3) and foreign["label_ref_share:c"] == 0.0
    assert foreign["label_tv"] == pytest.approx(0.5 * (0.1 + 0.2 + 0.3))
    # a label the run has seen (named by the caller) but absent from this step: a share of 0
    seen = compute_step(real[:4], ref, labels=["a", "b", "a", "b"], label_names=["a", "b", "c"]).scalars
    assert seen["label_share:c"] == 0.0 and seen["label_tv"] == 0.0
    none = step_metrics(real[:4], ref, labels=[None] * 4)
    assert np.isnan(none["label_tv"]) and none["n_labelled"] == 0.0
    # round AT: 'cat/dog' and 'cat_dog' were one key ('/' made '_'): one share replaced the other
    slash = step_metrics(real[:4], ref, labels=["cat/dog", "cat_dog", "cat_dog", "a"])
    assert slash["label_share:cat/dog"] == 0.25 and slash["label_share:cat_dog"] == 0.5
    # no held-out data: near-copies are not measured, and no sample is said to be no copy (was 0)
    unheld = compute_step(real[:4], ref)
    assert np.isnan(unheld.per_sample["near_copy"]).all() and np.isnan(unheld.scalars["near_copy_frac"])


def test_precision_density_coverage_of_a_few_samples(data):
    """They need only the real set's balls: a step of 4 validation images has them (they were
    NaN up to 6 samples, which also switched the drift rules off); recall needs more than k."""
    real, fake, _ = data
    ref = ReferenceStats.build(real, None)
    for n in (1, 4, 5):
        got = step_metrics(fake[:n], ref)
        d = np.linalg.norm(fake[:n, None].astype(np.float64) - real[None], axis=2)  # (n, N)
        inside = d < ref.real_radii[None]
        assert got["precision"] == pytest.approx(inside.any(axis=1).mean())
        assert got["density"] == pytest.approx(inside.sum() / (5 * n))
        assert got["coverage"] == pytest.approx((d.min(axis=0) < ref.real_radii).mean())
        assert np.isnan(got["recall"])
    assert np.isfinite(step_metrics(fake[:6], ref)["recall"])


def test_the_real_datas_regions_are_sized_for_the_batch_and_find_a_missing_mode():
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(10, 32))
    def draw(n, classes):
        return (centres[rng.choice(classes, n)] + 0.3 * rng.normal(size=(n, 32))).astype(np.float32)
    ref = ReferenceStats.build(draw(1000, range(10)))
    assert ref.regions_at(40) is None  # 5 regions: too coarse to tell modes apart
    centres_64, shares_64 = ref.regions_at(64)
    assert len(centres_64) == 8 and shares_64.sum() == pytest.approx(1.0)
    assert len(ref.regions_at(10_000)[0]) == REGION_MAX
    fresh = step_metrics(draw(256, range(10)), ref)
    assert fresh["regions"] == 16 and fresh["region_tv"] < fresh["region_tv_chance"]
    assert fresh["region_empty_share"] == 0
    dropped = step_metrics(draw(256, range(5)), ref)
    assert dropped["region_tv"] > 0.4 and dropped["region_empty_share"] > 0.4
    assert np.isnan(step_metrics(draw(32, range(10)), ref)["region_tv"])


def test_encode_probes_uses_encode_text():
    class FakeEncoder:
        def encode_text(self, texts):
            return unit(np.array([[len(t), 1.0, 0.0] for t in texts]))

    names, t, c = encode_probes(FakeEncoder(), ["ab|abcd", "x"])
    assert names == ["ab", "x"]
    assert t.shape == c.shape == (2, 3)


def test_reference_stats_saved_before_the_order_statistic_take_it_up_when_loaded(tmp_path, data):
    """Round BA: stats saved before METRICS_VERSION 12 hold the interpolated 5% quantile as the
    near-copy threshold; loaded, they kept it while ``near_copy_expected`` said the order
    statistic's chance (with 10 held out, fresh samples flagged at 13% said as 9.1%)."""
    real, _, hold = data
    ref = ReferenceStats.build(real, hold[:10])
    arrays, meta = ref.to_arrays()
    old = {**meta, "version": 2, "near_copy_threshold": float(np.quantile(ref.holdout_nn_train, NEAR_COPY_QUANTILE))}
    assert old["near_copy_threshold"] != ref.near_copy_threshold
    np.savez(tmp_path / "old.npz", __meta__=np.array(json.dumps(old)), **arrays)
    loaded = ReferenceStats.load(tmp_path / "old.npz")
    assert loaded.near_copy_threshold == ref.near_copy_threshold and loaded.near_copy_expected == pytest.approx(1 / 11)
    with pytest.raises(ValueError, match="version"):
        ReferenceStats.from_arrays(arrays, {**meta, "version": 1})


def test_reference_stats_roundtrip(tmp_path, data):
    real, fake, hold = data
    ref = ReferenceStats.build(real, hold, ["x"] * len(real))
    want = step_metrics(fake, ref, labels=["x"] * len(fake))
    arrays, meta = ref.to_arrays(include_vectors=False)
    json.dumps(meta)
    assert "real" not in arrays and all(isinstance(a, np.ndarray) for a in arrays.values())
    back = ReferenceStats.from_arrays(arrays, meta, real=real, holdout=hold)
    ref.save(tmp_path / "ref.npz")
    loaded = ReferenceStats.load(tmp_path / "ref.npz")
    for other in (back, loaded):
        got = step_metrics(fake, other, labels=["x"] * len(fake))
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-12, nan_ok=True), key


def test_input_validation(data):
    real, fake, _ = data
    ref = ReferenceStats.build(real, None)
    with pytest.raises(ValueError, match="dimension"):
        step_metrics(fake[:, :10], ref)
    with pytest.raises(ValueError, match="finite"):
        step_metrics(np.full((5, 24), np.nan), ref)
    s = step_metrics(fake, ref)  # no held-out set: copying metrics are NaN, not errors
    assert np.isnan(s["near_copy_frac"]) and np.isnan(s["copy_log_ratio"])
