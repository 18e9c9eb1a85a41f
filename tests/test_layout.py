"""The evolutionary layout on a small synthetic run: the issue-4 bars, scaled down."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

from engine.layout import (LayoutParams, StepState, alignment_error, anchor_operator, layout_full,
                           layout_step, neighbourhood_preservation, place)
from engine.layout.knn import normalise, self_knn
from engine.layout.quality import band_coordinates, matched_pairs

STEPS, SAMPLES = 8, 200
PARAMS = LayoutParams(random_state=0)


def _synthetic():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic.py"
    spec = importlib.util.spec_from_file_location("evowatch_test_synthetic", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run():
    return _synthetic().evolving_run(n_steps=STEPS, n_samples=SAMPLES, seed=0)


def _incremental(run, instances=None, params=PARAMS):
    states, state = [], None
    for t in range(run.n_steps):
        inst = run.instances[t] if instances is None else instances[t]
        state = layout_step(run.vectors[t], inst, state, params)
        states.append(state)
    return states


@pytest.fixture(scope="module")
def ours(run):
    return _incremental(run)


@pytest.fixture(scope="module")
def independent(run):
    """Baseline (a): a cold t-SNE per step, Procrustes-aligned to the previous aligned step."""
    xys, prev = [], None
    for t in range(run.n_steps):
        y = layout_step(run.vectors[t], run.instances[t], None, PARAMS).xy.astype(np.float64)
        if prev is not None:
            ia, ib = matched_pairs(run.instances[t - 1], run.instances[t])
            R, _ = orthogonal_procrustes(y[ib] - y[ib].mean(0), prev[ia] - prev[ia].mean(0))
            y = (y - y[ib].mean(0)) @ R + prev[ia].mean(0)
        xys.append(y)
        prev = y
    return xys


def _quality(run, xys):
    pres = np.mean([neighbourhood_preservation(run.vectors[t], xys[t]) for t in range(1, run.n_steps)])
    al = np.mean([alignment_error(xys[t - 1], run.instances[t - 1], xys[t], run.instances[t])
                  for t in range(1, run.n_steps)])
    return pres, al


def test_preserves_neighbourhoods_like_independent_tsne(run, ours, independent):
    p_ours, _ = _quality(run, [s.xy for s in ours])
    p_ind, _ = _quality(run, independent)
    assert p_ours >= 0.9 * p_ind, (p_ours, p_ind)


def test_aligns_better_than_procrustes_on_independent_runs(run, ours, independent):
    _, a_ours = _quality(run, [s.xy for s in ours])
    _, a_ind = _quality(run, independent)
    assert a_ours <= 0.5 * a_ind, (a_ours, a_ind)


def test_earlier_steps_are_never_moved(run, ours):
    before = [(s.xy.copy(), s.instances.copy(), s.vectors.copy()) for s in ours]
    layout_step(run.vectors[-1], run.instances[-1], ours[-1], PARAMS)
    layout_step(run.vectors[0], run.instances[0], ours[3], PARAMS)
    for s, (xy, inst, vec) in zip(ours, before):
        np.testing.assert_array_equal(s.xy, xy)
        np.testing.assert_array_equal(s.instances, inst)
        np.testing.assert_array_equal(s.vectors, vec)


def test_deterministic(run, ours):
    again = layout_step(run.vectors[2], run.instances[2], ours[1], PARAMS)
    np.testing.assert_array_equal(again.xy, ours[2].xy)


def test_warm_start_uses_instance_ids_not_row_order(run, ours):
    cold = LayoutParams(n_iter=0, random_state=0)
    s = layout_step(run.vectors[3], run.instances[3], ours[2], cold)
    prev = {int(i): xy for i, xy in zip(ours[2].instances, ours[2].xy)}
    want = np.stack([prev[int(i)] for i in run.instances[3]])
    np.testing.assert_allclose(s.xy, want, atol=1e-2 * np.abs(want).max())


def test_warm_start_from_nearest_neighbours_when_ids_unknown(run, ours, independent):
    cold = LayoutParams(n_iter=0, init_neighbours=5, random_state=0)
    unknown = -np.ones(SAMPLES, dtype=np.int64)
    s = layout_step(run.vectors[3], unknown, ours[2], cold)
    sims = normalise(run.vectors[3]) @ ours[2].vectors.T
    nn = np.argsort(-sims, axis=1)[:, :5]
    want = ours[2].xy[nn].mean(axis=1)
    np.testing.assert_allclose(s.xy, want, atol=1e-2 * np.abs(want).max())
    # a whole run without ids still stays aligned (measured with the true ids)
    blind = _incremental(run, instances=[unknown] * STEPS)
    p_blind, a_blind = _quality(run, [b.xy for b in blind])
    p_ind, a_ind = _quality(run, independent)
    assert a_blind <= 0.75 * a_ind, (a_blind, a_ind)
    assert p_blind >= 0.9 * p_ind, (p_blind, p_ind)


def test_ids_that_do_not_follow_samples_are_not_used_as_anchors(run, independent):
    """Fresh noise at every checkpoint: grid tiles and tensor rows still carry indices, but
    tile k is another sample at each step. Anchoring each sample to an unrelated sample's
    place left the map tangled (preservation 0.08 against an independent t-SNE's 0.66)."""
    rng = np.random.default_rng(5)
    shuffled = [run.instances[t][rng.permutation(SAMPLES)] for t in range(STEPS)]
    A = anchor_operator(normalise(run.vectors[3]), shuffled[3], normalise(run.vectors[2]), shuffled[2], k=5)
    assert (A.getnnz(axis=1) == 5).all()  # nearest neighbours, not the same index
    kept = anchor_operator(normalise(run.vectors[3]), run.instances[3], normalise(run.vectors[2]),
                           run.instances[2], k=5)
    assert (kept.getnnz(axis=1) == 1).all()  # the same sample drawn again: its id
    fresh = _incremental(run, instances=shuffled)
    p_fresh, _ = _quality(run, [f.xy for f in fresh])
    p_ind, _ = _quality(run, independent)
    assert p_fresh >= 0.9 * p_ind, (p_fresh, p_ind)


def test_anchor_operator_mixes_ids_and_neighbours():
    rng = np.random.default_rng(1)
    prev_v = normalise(rng.standard_normal((6, 8)))
    prev_i = np.array([10, 11, 12, -1, 12, 14])
    v = normalise(np.vstack([prev_v[2], prev_v[0], prev_v[3] + 1e-3]))
    A = anchor_operator(v, np.array([12, 10, 99]), prev_v, prev_i, k=1).toarray()
    np.testing.assert_array_equal(A[0], np.eye(6)[2])     # first occurrence of a repeated id
    np.testing.assert_array_equal(A[1], np.eye(6)[0])
    np.testing.assert_array_equal(A[2], np.eye(6)[3])     # unknown id -> nearest neighbour


def test_self_knn_drops_self_even_with_duplicates():
    x = normalise(np.repeat(np.eye(4, 16), 5, axis=0))   # 20 rows, groups of 5 identical
    idx, dist = self_knn(x, 6)
    assert idx.shape == (20, 6) and dist.shape == (20, 6)
    assert not (idx == np.arange(20)[:, None]).any()
    assert (dist >= 0).all()


def test_degenerate_steps():
    rng = np.random.default_rng(0)
    first = layout_step(rng.standard_normal((3, 8)), [0, 1, 2])
    assert first.xy.shape == (3, 2) and np.isfinite(first.xy).all()
    same = layout_step(np.ones((30, 8)), np.arange(30), first)      # mode collapse: all identical
    assert same.xy.shape == (30, 2) and np.isfinite(same.xy).all()
    empty = layout_step(np.zeros((0, 8)), [], same)
    assert empty.xy.shape == (0, 2)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_first_step_of_identical_samples_gives_a_finite_map():
    """A generator collapsed from its first checkpoint (16 identical tiles: identical
    vectors): PCA had no spread to scale by and every step's coordinates were NaN."""
    rng = np.random.default_rng(0)
    collapsed = np.repeat(np.eye(1, 32), 16, axis=0)  # centred, exactly zero (other vectors: rounding noise)
    healthy = rng.standard_normal((16, 32))
    first = layout_step(collapsed, np.arange(16))
    later = layout_step(healthy, np.arange(16), first)
    assert np.isfinite(first.xy).all() and np.isfinite(later.xy).all()
    assert np.ptp(later.xy, axis=0).min() > 1  # the healthy step is spread out
    assert all(np.isfinite(y).all() for y in layout_full([collapsed, healthy], [np.arange(16)] * 2))


def test_a_step_of_one_repeated_sample_shows_no_structure_made_by_row_order():
    """200 identical samples: the kNN search broke its ties by row order, the first rows became
    everyone's neighbours, and the band showed a core of 80 inside a ring of 120 (radius
    correlated with the row index at 0.76), as if there were two modes."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    first = layout_step(rng.standard_normal((200, 32)), np.arange(200))
    collapsed = np.repeat(rng.standard_normal((1, 32)), 200, axis=0)
    for previous in (None, first):
        xy = layout_step(collapsed, np.arange(200), previous).xy
        radius = np.linalg.norm(xy - xy.mean(axis=0), axis=1)
        assert abs(spearmanr(np.arange(200), radius).correlation) < 0.2


def test_alignment_error_is_in_band_radii():
    rng = np.random.default_rng(0)
    xy = rng.standard_normal((50, 2))
    inst = np.arange(50)
    assert alignment_error(xy, inst, xy, inst) == pytest.approx(0.0)
    assert alignment_error(xy, inst, 3 * xy + 7, inst) == pytest.approx(0.0, abs=1e-12)
    u = band_coordinates(xy)
    theta = 0.3
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    want = 2 * np.sin(theta / 2) * np.median(np.linalg.norm(u, axis=1))
    assert alignment_error(u, inst, u @ rot.T, inst) == pytest.approx(want)
    perm = rng.permutation(50)
    assert alignment_error(xy, inst, xy[perm], inst[perm]) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(alignment_error(xy, inst, xy, inst + 100))


def test_neighbourhood_preservation_extremes():
    rng = np.random.default_rng(0)
    xy = rng.standard_normal((100, 2))
    lifted = np.hstack([xy, np.full((100, 1), 50.0)])    # on the sphere, cosine ~ 2-D distance
    assert neighbourhood_preservation(lifted, xy) == pytest.approx(1.0)
    assert neighbourhood_preservation(lifted, rng.standard_normal((100, 2))) < 0.3


@pytest.mark.parametrize("layout", ["rectilinear", "radial"])
def test_placement_bands_and_rings(ours, layout):
    xy = np.vstack([ours[0].xy, ours[1].xy, ours[2].xy])
    steps = np.repeat([-1, 0, 1], SAMPLES)            # step 0's solution drawn as the reference
    out = place(xy, steps, layout, band_spacing=6.0, ring_offset=4.0, ring_width=1.0)
    assert out.shape == xy.shape and out.dtype == np.float32
    for s in (-1, 0, 1):
        rows = steps == s
        u = band_coordinates(xy[rows])
        if layout == "rectilinear":
            np.testing.assert_allclose(out[rows].mean(axis=0), [6.0 * s, 0.0], atol=1e-4)
            np.testing.assert_allclose(out[rows] - [6.0 * s, 0.0], u, atol=1e-4)
        else:
            r = np.hypot(out[rows, 0], out[rows, 1])
            assert (r >= 4.0 * (s + 1) - 1e-4).all() and (r <= 4.0 * (s + 1) + 3.5 + 1e-4).all()
            angle = np.angle((out[rows, 0] + 1j * out[rows, 1]) / (u[:, 0] + 1j * u[:, 1]))
            np.testing.assert_allclose(angle, 0.0, atol=1e-4)
    np.testing.assert_array_equal(place(ours[1].xy, 1, layout), place(ours[1].xy, np.ones(SAMPLES, int), layout))


@pytest.mark.parametrize("layout", ["rectilinear", "radial"])
def test_each_solution_of_a_band_is_normalised_on_its_own(ours, layout):
    """A step's superseded version (or the held-out set beside the real one) is a t-SNE of its
    own, at its own scale: normalised together, a current version of a quarter the scale was
    drawn at radius 0.58 instead of 1."""
    xy = np.vstack([ours[1].xy, 4.0 * ours[2].xy + 50.0])
    steps = np.zeros(2 * SAMPLES, int)
    solution = np.repeat([7, 3], SAMPLES)
    out = place(xy, steps, layout, groups=solution)
    alone = place(ours[1].xy, 0, layout)
    np.testing.assert_allclose(out[:SAMPLES], alone, atol=1e-5)
    np.testing.assert_allclose(out[SAMPLES:], place(ours[2].xy, 0, layout), atol=1e-5)
    assert not np.allclose(place(xy, steps, layout)[:SAMPLES], alone, atol=1e-2)  # one solution: shrunk


def test_full_layout_matches_the_incremental_objective(run, independent):
    xys = layout_full(run.vectors[:4], run.instances[:4], LayoutParams(first_n_iter=300, random_state=0))
    assert [x.shape for x in xys] == [(SAMPLES, 2)] * 4
    pres = np.mean([neighbourhood_preservation(run.vectors[t], xys[t]) for t in range(1, 4)])
    p_ind = np.mean([neighbourhood_preservation(run.vectors[t], independent[t]) for t in range(1, 4)])
    al = np.mean([alignment_error(xys[t - 1], run.instances[t - 1], xys[t], run.instances[t]) for t in range(1, 4)])
    a_ind = np.mean([alignment_error(independent[t - 1], run.instances[t - 1], independent[t], run.instances[t])
                     for t in range(1, 4)])
    assert pres >= 0.8 * p_ind, (pres, p_ind)
    assert al <= 0.75 * a_ind, (al, a_ind)
    polished = layout_full(run.vectors[:4], run.instances[:4], LayoutParams(n_iter=20), init=xys)
    assert [x.shape for x in polished] == [(SAMPLES, 2)] * 4


def test_state_is_plain_arrays(ours):
    s = ours[-1]
    assert isinstance(s, StepState)
    assert s.xy.dtype == np.float32 and s.xy.shape == (SAMPLES, 2)
    assert s.instances.dtype == np.int64 and s.vectors.dtype == np.float32
    assert type(s.xy) is np.ndarray
