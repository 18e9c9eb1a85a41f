"""The evolutionary (iteration-aligned) t-SNE layout: one 2-D solution per checkpoint.

Objective (EvolvED, Prasad et al. 2024, made progressive; see docs/layout.md)::

    C = sum_t KL(P_t || Q_t)  +  sum_{t>0} lambda / (2 N_t) * || U_t - A_t U_{t-1} ||^2

with ``U_t = (Y_t - mean(Y_t)) / rms_radius(Y_t)`` each step in its own band radii (so the
term fixes shapes, not the overall scale, which t-SNE is free to grow).

* ``KL(P_t || Q_t)`` is t-SNE *within* step ``t`` only: points of different steps never
  attract or repel each other (EvolvED's semantic term). ``P_t`` comes from an exact
  kNN graph (:mod:`.knn`), gradients from openTSNE (Barnes-Hut below 10,000
  samples per step, FFT interpolation above: see ``LayoutParams.negative_gradient_method``).
* EvolvED's displacement term (grouping a step on its own ring/column) is not optimised:
  each step has its own plane, so the grouping is exact by construction and the band /
  ring is applied afterwards by :func:`engine.layout.placement.place`.
* The alignment term ties sample ``i`` of step ``t`` to its *anchor* ``(A_t Y_{t-1})_i``:
  the previous position of the same instance id when it exists, else the mean position of
  its ``init_neighbours`` nearest previous-step samples in encoder space (Dynamic t-SNE's
  quadratic movement penalty, Rauber et al. 2016, generalised to partial matches).

:func:`layout_step` minimises C over the new step only, earlier steps fixed (cost
proportional to the new step); :func:`layout_full` minimises it jointly over all steps.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import scipy.sparse as sp
from openTSNE import initialization
from openTSNE.tsne import kl_divergence_bh, kl_divergence_fft
from threadpoolctl import threadpool_limits

from ..stopping import deferred_stop
from .knn import normalise, search, tsne_affinities

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayoutParams:
    """Settings of the evolutionary layout (all optional).

    perplexity
        t-SNE perplexity; the kNN graph uses k = 3 x perplexity (clamped below n).
    alignment
        lambda, the strength of the alignment term. After every t-SNE update, one plain
        gradient step on the term moves each point a fraction lambda / r^2 (r the step's RMS
        radius, capped at 0.5) of the way to its anchor; 0 disables it.
    n_iter
        Iterations of a warm-started step (no early exaggeration).
    first_exaggeration_iter, first_exaggeration, first_n_iter
        The cold first step (and ``layout_full`` from scratch): PCA init, early
        exaggeration, then normal iterations (openTSNE's defaults).
    init_neighbours
        Neighbours in the previous step whose mean position warm-starts (and anchors) a
        sample without a matching instance id.
    momentum, max_step_norm
        Gradient descent with momentum and delta-bar-delta gains, as openTSNE.
    negative_gradient_method
        ``"fft"`` (openTSNE's interpolation), ``"bh"`` (Barnes-Hut) or ``"auto"``: BH below
        10,000 samples in a step, FFT above (openTSNE's rule; at 1,000 samples BH measured
        3-5 ms per gradient against 11-120 ms for FFT, whose grid grows with the extent).
    n_jobs, random_state
        Threads for openTSNE (1 is fastest at ~1,000 samples per step); seed for the PCA
        init and the tie-breaking jitter.
    """

    perplexity: float = 30.0
    alignment: float = 10.0
    n_iter: int = 100
    first_exaggeration_iter: int = 250
    first_exaggeration: float = 12.0
    first_n_iter: int = 500
    init_neighbours: int = 10
    momentum: float = 0.8
    max_step_norm: float = 5.0
    negative_gradient_method: Literal["auto", "fft", "bh"] = "auto"
    n_jobs: int = 1
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.perplexity <= 0:
            raise ValueError(f"Expected perplexity > 0. Got {self.perplexity} instead.")
        if self.alignment < 0:
            raise ValueError(f"Expected alignment >= 0. Got {self.alignment} instead.")
        if self.negative_gradient_method not in ("auto", "fft", "bh"):
            raise ValueError(f"Expected negative_gradient_method 'auto', 'fft' or 'bh'. "
                             f"Got {self.negative_gradient_method!r} instead.")


@dataclass(frozen=True)
class StepState:
    """One laid-out step, as plain arrays (what the store holds for it).

    ``xy`` (n, 2) float32 is the per-step solution (placement is derived from it);
    ``instances`` (n,) int64 the instance ids (-1 = unknown); ``vectors`` (n, d) float32
    the L2-normalised encoder vectors, used to match the next step's samples.
    """

    xy: np.ndarray
    instances: np.ndarray
    vectors: np.ndarray
    kl: float = field(default=float("nan"), compare=False)

    def __len__(self) -> int:
        return len(self.xy)


# ---------------------------------------------------------------------------------------
# pieces


def _instances(instances, n: int) -> np.ndarray:
    inst = np.asarray(instances, dtype=np.int64).reshape(-1)
    if len(inst) != n:
        raise ValueError(f"Expected one instance id per vector ({n}). Got {len(inst)} instead.")
    return inst


def anchor_operator(vectors: np.ndarray, instances: np.ndarray, prev_vectors: np.ndarray,
                    prev_instances: np.ndarray, k: int) -> sp.csr_matrix:
    """The sparse (n, n_prev) matrix ``A`` with ``A @ prev_xy`` = each sample's anchor.

    Row i is one-hot on the previous sample with the same instance id (>= 0; the first one
    if ids repeat), else uniform over the ``k`` nearest previous samples (cosine, exact).
    """
    n, n_prev = len(vectors), len(prev_vectors)
    rows = np.arange(n)
    cols = np.full(n, -1, dtype=np.int64)
    valid = prev_instances >= 0
    if valid.any():
        ids, first = np.unique(prev_instances[valid], return_index=True)
        id_rows = np.flatnonzero(valid)[first]
        pos = np.clip(np.searchsorted(ids, instances), 0, len(ids) - 1)
        hit = (instances >= 0) & (ids[pos] == instances)
        cols[hit] = id_rows[pos[hit]]
    matched = cols >= 0
    if not _ids_follow_samples(vectors[matched], prev_vectors[cols[matched]]):
        log.debug("instance ids do not follow the samples from the previous step (fresh noise at each "
                  "checkpoint?): anchored by nearest neighbours instead")
        cols[:], matched[:] = -1, False
    r = [rows[matched]]
    c = [cols[matched]]
    w = [np.ones(matched.sum())]
    todo = np.flatnonzero(~matched)
    if len(todo):
        kk = int(min(max(k, 1), n_prev))
        idx, _ = search(prev_vectors, np.ascontiguousarray(vectors[todo]), kk)
        r.append(np.repeat(todo, kk))
        c.append(idx.reshape(-1))
        w.append(np.full(len(todo) * kk, 1.0 / kk))
    return sp.csr_matrix((np.concatenate(w), (np.concatenate(r), np.concatenate(c))), shape=(n, n_prev))


#: Matched pairs below which the ids are taken as given (too few to test).
MIN_TESTED_IDS = 5
#: Same-id pairs ranked over this many standard deviations closer than chance follow samples.
IDS_FOLLOW_Z = 3.0


#: Below this diversity (1 - |mean unit vector|^2) a step's samples are too alike for the test:
#: an untrained generator draws nearly one image for every noise (the demo's first steps:
#: 0.02; its trained steps 0.36-0.42, fresh-noise grids 0.92), and its ids are kept.
MIN_TESTED_DIVERSITY = 0.05


def _diversity(x: np.ndarray) -> float:
    mean = np.asarray(x, np.float64).mean(axis=0)
    return 1.0 - float(mean @ mean)


def _ids_follow_samples(now: np.ndarray, before: np.ndarray, most: int = 512) -> bool:
    """Whether the samples sharing an instance id across two steps are the same sample drawn
    again (a fixed noise batch) rather than unrelated ones (fresh noise at every checkpoint,
    whose grid tiles and tensor rows still carry indices); kept when too few match or the
    samples are too alike to tell (see MIN_TESTED_DIVERSITY). Each sample's same-id partner is
    ranked among the other matched previous samples by similarity; unrelated ids rank at
    0.5 on average, followed ones near 0. Anchoring samples to an unrelated sample's place
    left 100 iterations unable to untangle the map (neighbourhood preservation 0.08 against
    an independent t-SNE's 0.66)."""
    m = len(now)
    if m < MIN_TESTED_IDS or min(_diversity(now), _diversity(before)) < MIN_TESTED_DIVERSITY:
        return True
    pick = np.sort(np.random.default_rng(0).choice(m, most, replace=False)) if m > most else np.arange(m)
    with threadpool_limits(limits=1, user_api="blas"):  # BLAS threads left spinning cost the step 20% more CPU
        sims = np.asarray(now[pick], np.float64) @ np.asarray(before[pick], np.float64).T
    same = np.diag(sims)[:, None]
    others = ~np.eye(len(pick), dtype=bool)
    rank = ((sims > same) & others).sum(axis=1) + 0.5 * ((sims == same) & others).sum(axis=1)
    mean_rank = float(np.mean(rank / (len(pick) - 1)))
    return (0.5 - mean_rank) * np.sqrt(12 * len(pick)) >= IDS_FOLLOW_Z


BH_MAX_SAMPLES = 10_000


def _method(params: LayoutParams, n: int) -> str:
    if params.negative_gradient_method != "auto":
        return params.negative_gradient_method
    return "bh" if n < BH_MAX_SAMPLES else "fft"


_GRADIENT_PARAMS = {"dof": 1, "bh_params": {"theta": 0.5},
                    "fft_params": {"n_interpolation_points": 3, "min_num_intervals": 50, "ints_in_interval": 1}}


def _kl_gradient(method: str, n_jobs: int) -> Callable[[np.ndarray, sp.csr_matrix], np.ndarray]:
    """openTSNE's KL gradient (BH or FFT, openTSNE's default accuracy settings)."""
    objective = kl_divergence_fft if method == "fft" else kl_divergence_bh

    def gradient(y: np.ndarray, P: sp.csr_matrix) -> np.ndarray:
        with deferred_stop():  # a stop raised inside openTSNE's gradient was a SIGSEGV
            return objective(y, P, n_jobs=n_jobs, **_GRADIENT_PARAMS)[1]

    return gradient


def _kl(method: str, n_jobs: int, y: np.ndarray, P: sp.csr_matrix) -> float:
    objective = kl_divergence_fft if method == "fft" else kl_divergence_bh
    with deferred_stop():
        err, _ = objective(np.ascontiguousarray(y, dtype=np.float64), P, n_jobs=n_jobs,
                           should_eval_error=True, **_GRADIENT_PARAMS)
    return float(err)


def _descend(y: np.ndarray, gradient: Callable[[np.ndarray], np.ndarray], n_iter: int,
             learning_rate, momentum: float, max_step_norm: float, centre: bool,
             align: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """openTSNE's gradient descent (momentum, delta-bar-delta gains, step clipping), in place.

    ``align``, when given, is applied after every t-SNE update: a plain gradient step on
    the alignment term (no momentum, no gains), as EvolvED applies its alignment update.
    """
    update = np.zeros_like(y)
    gains = np.ones_like(y)
    for _ in range(n_iter):
        g = gradient(y)
        flipped = np.sign(update) != np.sign(g)
        gains = np.where(flipped, gains + 0.2, gains * 0.8 + 0.01)
        update = momentum * update - learning_rate * gains * g
        norms = np.linalg.norm(update, axis=1, keepdims=True)
        update *= max_step_norm / np.maximum(norms, max_step_norm)  # clip, no division by a zero norm
        y += update
        if align is not None:
            align(y)
        if centre:
            y -= y.mean(axis=0)
    return y


MAX_PULL = 0.5   # the alignment step never moves a point more than half-way to its target


def _pull(lam: float, r: float) -> float:
    """Fraction of the way to the target one alignment step moves (lr N x gradient)."""
    return min(lam / (r * r), MAX_PULL)


def _radius(y: np.ndarray) -> float:
    """RMS distance from the centroid: the alignment term is measured in band radii."""
    r = float(np.sqrt(np.mean(np.sum((y - y.mean(axis=0)) ** 2, axis=1)))) if len(y) else 0.0
    return r if r > 0 else 1.0


def _jitter(y: np.ndarray, rng: np.random.Generator, radius: float | None = None) -> np.ndarray:
    """Tiny noise so samples sharing an anchor (duplicates, same neighbours) can separate,
    1e-4 of ``radius`` (the previous step's: anchors that all coincide have no spread of
    their own, and noise of their 1e-8 floor was lost in the stored float32)."""
    scale = float(np.sqrt(np.mean(np.sum((y - y.mean(axis=0)) ** 2, axis=1)))) if len(y) else 0.0
    return y + rng.normal(scale=1e-4 * max(scale, radius or 0.0, 1e-4), size=y.shape)


def _start(x: np.ndarray, random_state: int) -> np.ndarray:
    """openTSNE's PCA initialisation; for a step whose samples are all the same (a generator
    collapsed from the start) PCA has no spread to scale by and gave NaN for the whole map:
    those start from openTSNE's small random initialisation instead."""
    with np.errstate(divide="ignore", invalid="ignore"):
        y = initialization.pca(x, random_state=random_state)
    if not np.isfinite(y).all():
        y = initialization.random(len(x), random_state=random_state)
    return np.ascontiguousarray(y, dtype=np.float64)


def _cold(x: np.ndarray, P: sp.csr_matrix, params: LayoutParams) -> np.ndarray:
    n = len(x)
    y = _start(x, params.random_state)
    grad = _kl_gradient(_method(params, n), params.n_jobs)
    ex = params.first_exaggeration
    if params.first_exaggeration_iter > 0 and ex != 1:
        Pex = P * ex
        _descend(y, lambda v: grad(v, Pex), params.first_exaggeration_iter, max(n / ex, 1.0),
                 params.momentum, params.max_step_norm, centre=True)
    return _descend(y, lambda v: grad(v, P), params.first_n_iter, float(n),
                    params.momentum, params.max_step_norm, centre=True)


def _tiny(x: np.ndarray, anchor: np.ndarray | None, rng: np.random.Generator, radius: float) -> np.ndarray:
    """Fewer than 5 samples: no t-SNE; sit on the anchors, or on a small circle."""
    if anchor is not None:
        return _jitter(anchor, rng, radius)
    angle = 2 * np.pi * np.arange(len(x)) / max(len(x), 1)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1) * (len(x) > 1)


MIN_TSNE_SAMPLES = 5


# ---------------------------------------------------------------------------------------
# public


def layout_step(vectors: np.ndarray, instances, previous: StepState | None = None,
                params: LayoutParams = LayoutParams()) -> StepState:
    """Lay out one new checkpoint, given only the previous step's state.

    The first step (``previous`` None or empty) is a plain t-SNE (PCA init, early
    exaggeration). Later steps start at their anchors (previous position of the same
    instance, else the mean position of the nearest previous samples) and minimise the
    step's KL plus the alignment term for ``params.n_iter`` iterations, without early
    exaggeration. ``previous`` is never modified. Cost: O(n_new) per iteration plus one
    n_new x n_prev kNN search for the unmatched samples.
    """
    x = normalise(vectors)
    n = len(x)
    inst = _instances(instances, n)
    rng = np.random.default_rng(params.random_state)
    warm = previous is not None and len(previous) > 0
    if n == 0:
        return StepState(np.zeros((0, 2), np.float32), inst, x)
    anchor, radius = None, None
    if warm:
        A = anchor_operator(x, inst, previous.vectors, previous.instances, params.init_neighbours)
        prev_xy = np.asarray(previous.xy, dtype=np.float64)
        centre = prev_xy.mean(axis=0)
        radius = _radius(prev_xy)
        shape = A @ ((prev_xy - centre) / radius)   # A_t U_{t-1}: anchors in band radii
        anchor = centre + radius * shape
    if n < MIN_TSNE_SAMPLES:
        return StepState(_tiny(x, anchor, rng, radius).astype(np.float32), inst, x)
    P = tsne_affinities(x, params.perplexity, params.n_jobs).P
    if not warm:
        y = _cold(x, P, params)
    else:
        grad = _kl_gradient(_method(params, n), params.n_jobs)

        def align(v: np.ndarray) -> None:
            r = _radius(v)
            v -= _pull(params.alignment, r) * (v - centre - r * shape)

        y = _descend(_jitter(anchor, rng, radius), lambda v: grad(v, P), params.n_iter, float(n),
                     params.momentum, params.max_step_norm, centre=False,
                     align=align if params.alignment > 0 else None)
    kl = _kl(_method(params, n), params.n_jobs, y, P)
    return StepState(y.astype(np.float32), inst, x, kl=kl)


def layout_full(vectors_per_step: Sequence[np.ndarray], instances_per_step: Sequence,
                params: LayoutParams = LayoutParams(),
                init: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Minimise the same objective jointly over all steps (``evowatch layout --full``).

    Without ``init`` it starts from scratch: step 0 from PCA, step t from ``A_t`` applied to
    step t-1's start, then early exaggeration and normal iterations on all steps at once
    (each step's KL with its own FFT grid; the alignment term couples neighbours both
    ways). With ``init`` (e.g. the incremental solution) it polishes for ``params.n_iter``
    iterations without exaggeration. Returns one float32 (n_t, 2) array per step.
    """
    T = len(vectors_per_step)
    if T != len(instances_per_step):
        raise ValueError(f"Expected as many instance arrays as steps ({T}). "
                         f"Got {len(instances_per_step)} instead.")
    if T == 0:
        return []
    xs = [normalise(v) for v in vectors_per_step]
    insts = [_instances(i, len(x)) for i, x in zip(instances_per_step, xs)]
    sizes = np.array([len(x) for x in xs])
    if (sizes < MIN_TSNE_SAMPLES).any():
        raise ValueError(f"Expected at least {MIN_TSNE_SAMPLES} samples in every step for the "
                         f"joint layout. Got {sizes.min()} instead.")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    sl = [slice(bounds[t], bounds[t + 1]) for t in range(T)]
    Ps = [tsne_affinities(x, params.perplexity, params.n_jobs).P for x in xs]
    As = [None] + [anchor_operator(xs[t], insts[t], xs[t - 1], insts[t - 1], params.init_neighbours)
                   for t in range(1, T)]
    rng = np.random.default_rng(params.random_state)
    if init is None:
        ys = [_start(xs[0], params.random_state)]
        for t in range(1, T):
            ys.append(_jitter(As[t] @ ys[t - 1], rng, _radius(ys[t - 1])))
    else:
        if len(init) != T:
            raise ValueError(f"Expected an init per step ({T}). Got {len(init)} instead.")
        ys = [np.asarray(y, dtype=np.float64) for y in init]
    y = np.ascontiguousarray(np.concatenate(ys))
    grad = _kl_gradient(_method(params, int(sizes.max())), params.n_jobs)

    def gradient(v: np.ndarray, Ps_: list) -> np.ndarray:
        g = np.empty_like(v)
        for t in range(T):
            g[sl[t]] = grad(v[sl[t]], Ps_[t])
        return g

    def align(v: np.ndarray) -> None:
        # the same alignment step as layout_step, on both ends of every consecutive pair,
        # in each step's own band radii (residuals first, then all updates)
        cs = [v[s].mean(axis=0) for s in sl]
        rs = [_radius(v[s]) for s in sl]
        us = [(v[s] - c) / r for s, c, r in zip(sl, cs, rs)]
        moves = [np.zeros_like(u) for u in us]
        for t in range(1, T):
            res = us[t] - As[t] @ us[t - 1]
            moves[t] -= _pull(params.alignment, rs[t]) * rs[t] * res
            back = params.alignment * sizes[t - 1] / sizes[t]
            moves[t - 1] += _pull(back, rs[t - 1]) * rs[t - 1] * (As[t].T @ res)
        for s, m in zip(sl, moves):
            v[s] += m

    aligner = align if params.alignment > 0 else None
    lr_rows = np.repeat(sizes.astype(np.float64), sizes)[:, None]
    if init is None:
        ex = params.first_exaggeration
        if params.first_exaggeration_iter > 0 and ex != 1:
            Pex = [P * ex for P in Ps]
            _descend(y, lambda v: gradient(v, Pex), params.first_exaggeration_iter, np.maximum(lr_rows / ex, 1.0),
                     params.momentum, params.max_step_norm, centre=True, align=aligner)
        _descend(y, lambda v: gradient(v, Ps), params.first_n_iter, lr_rows,
                 params.momentum, params.max_step_norm, centre=True, align=aligner)
    else:
        _descend(y, lambda v: gradient(v, Ps), params.n_iter, lr_rows,
                 params.momentum, params.max_step_norm, centre=True, align=aligner)
    return [y[s].astype(np.float32) for s in sl]
