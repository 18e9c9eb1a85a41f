"""Alert rules over the history of per-step metrics (pure functions, no I/O).

:func:`evaluate_alerts` looks at the NEWEST checkpoint of a history of
:func:`engine.metrics.step_metrics` dicts (each with a ``"step"`` key) and returns the
alerts that hold there. It keeps no state: an alert whose condition persists is
returned again at the next checkpoint (the caller decides whether to repeat actions). A
:class:`History` keeps a growing run's metric columns between steps, so that a step's
evaluation does not walk every step before it.

Rule names are stable identifiers: ``collapse``, ``memorisation``, ``fd_rising``,
``label_drift``, ``probe_drift``, ``convergence``. Defaults are chosen so that a healthy
run raises none (see ``docs/metrics.md`` and ``tests/test_alerts.py``).
"""
from __future__ import annotations

import bisect
import functools
import heapq
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from stores.format import json_number

RULE_NAMES: tuple[str, ...] = ("collapse", "memorisation", "fd_rising", "label_drift", "probe_drift", "convergence")

_D_TOKENS = {"d", "disc", "dis", "discriminator", "critic"}
_G_TOKENS = {"g", "gen", "generator"}
#: A generator loss also when no discriminator token says otherwise (MMGeneration's loss_gan).
_G_ONLY_TOKENS = _G_TOKENS | {"gan"}
#: Learning rates named after their network (MMGeneration's lr/generator) are no losses.
_NOT_LOSS_TOKENS = {"lr", "learning"}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: the checkpoint step, the rule's stable name, the value that tripped it
    and one sentence for a human."""

    step: int
    rule: str
    value: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """``{"step", "rule", "value", "message"}`` (what ``info --json`` lists); a NaN value
        (a NaN loss) is None (:func:`stores.format.json_number`)."""
        return {**asdict(self), "value": json_number(self.value)}


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds of every rule (defaults documented in ``docs/metrics.md``)."""

    enabled: tuple[str, ...] = RULE_NAMES
    #: checkpoints seen before collapse / label_drift / probe_drift may fire
    warmup: int = 2
    # collapse: diversity fell by more than max_drop below min(best so far, real's value),
    # or (partial collapse, which Vendi underrates) the share of samples with a near-duplicate
    # among the step's samples rose more than duplicate_rise above its lowest so far (real
    # data: ~1%; trained healthy runs: <= 11%; an untrained generator's blobs: up to 100%)
    collapse_metrics: tuple[str, ...] = ("vendi", "pairwise_cosine")
    collapse_max_drop: float = 0.5
    # ... and, where the row has the metric's real spread at the step's size (real_<metric>_sd), to
    # below the real's value by more than collapse_noise_z of it: the pairwise cosine distance of 2
    # fresh samples fell more than half below the real's at 10% of steps (two of one digit)
    collapse_noise_z: float = 4.0
    # without a real reference, the best so far counts only values that rose more than
    # built_rise above an earlier one, that the next held_steps checkpoints kept within
    # held_within, or that the run settled at (see _built_or_held): an untrained diffusion
    # model's noise is more diverse than the data, and its fall to the data's level is no collapse
    collapse_built_rise: float = 0.25
    collapse_held_within: float = 0.1
    collapse_held_steps: int = 2
    collapse_duplicate_rise: float = 0.25
    # ... at two checkpoints running for steps of fewer samples than this
    collapse_duplicate_hold_below: int = 32
    # or (mode dropping without labels) the step's shares of the real data's regions are off
    # by more than chance (engine.metrics.per_step.REGION_NOISE_Z), at the previous realistic step too,
    # and their total variation rose more than region_tv_rise above its lowest so far
    collapse_region_tv_rise: float = 0.1
    # memorisation: near-copy fraction above max(min_frac, q + z * binomial sd) or the
    # median log(d_train / d_holdout) over distinct neighbourhoods below copy_log_ratio_max,
    # significantly (sign test over those neighbourhoods, p < copy_log_ratio_alpha): a
    # collapsed generator's few neighbourhoods are too few evidence of copying
    near_copy_min_frac: float = 0.15
    near_copy_z: float = 4.0
    copy_log_ratio_max: float = -0.2
    copy_log_ratio_alpha: float = 0.01
    # ... at the previous checkpoint whose test could pass (_sign_testable) too, unless p <
    # copy_log_ratio_alone_alpha: one test per checkpoint at alpha, a healthy run of 100
    # checkpoints of 8 fresh samples beside 20 held-out images alerted in 4 of 40 runs (1 of 40
    # at 32 samples); two running, in none
    # (benchmarks/memorisation_null.py)
    copy_log_ratio_alone_alpha: float = 1e-4
    # fd_rising: FD rose at each of the last k transitions by > min_step_rise (relative)
    # and over the k transitions by > max(min_total_rise x FD, noise_z x a robust sd of
    # FD's checkpoint-to-checkpoint noise estimated from at least noise_steps earlier
    # checkpoints; before those, by > early_total_rise: a healthy run's FD on 64 samples rose
    # +25% by chance at its sixth checkpoint, early divergences +100% and more)
    fd_rising_k: int = 3
    fd_min_step_rise: float = 0.0
    fd_min_total_rise: float = 0.2
    fd_noise_z: float = 4.0
    fd_noise_steps: int = 5
    fd_early_total_rise: float = 0.5
    # ... or FD jumped and held: each of the last jump_hold checkpoints' FD above the lowest
    # median of 3 running among the FD_JUMP_LOOKBACK before them by > max(jump_rise x that
    # level, noise_z x sd) (round AH: a run
    # broken from one checkpoint to the next, precision 0.92 -> 0.02 and FD 0.04 -> 0.29
    # then flat, rose once, and nothing fired; round AI: one whose FD rose +77%, precision
    # 0.7 -> 0, stayed under a bar of +100%)
    fd_jump_rise: float = 0.5
    fd_jump_hold: int = 2
    # both compare checkpoints whose sizes are within fd_size_ratio of each other: FD's
    # upward bias grows as 1/n (a healthy run halved from 32 to 16 samples per checkpoint
    # read as a jump of +60%, held; within 2x, 64 -> 32 -> 16 fired on 6 of 6 seeds); at
    # 1.25x a run diverging 14x while its sizes took turns, 64 and 48, was never judged
    fd_size_ratio: float = 1.5
    # label_drift / probe_drift are evaluated only once samples are realistic (precision
    # >= drift_min_precision; shares of off-manifold samples mean little)
    drift_min_precision: float = 0.25
    # label_drift: TV distance to the reference shares above max(tv_max, the TV that chance
    # exceeds as rarely as z standard deviations of a normal)
    label_tv_max: float = 0.2
    label_noise_z: float = 4.0
    # probe_drift: |share - reference share| above max(diff_max, z * the sd of their gap), z as
    # label_drift's (round AQ: at z = 3, 4-7% of healthy 20-step runs alerted, whatever the
    # reference's size; benchmarks/probe_drift.py)
    probe_max_diff: float = 0.15
    probe_noise_z: float = 4.0
    # convergence: non-finite loss, or discriminator loss below d_loss_floor while the
    # generator loss rose to g_loss_rise x its earlier median
    d_loss_floor: float = 0.05
    g_loss_rise: float = 2.0
    loss_recent_frac: float = 0.1
    loss_recent_min: int = 5
    d_loss_names: tuple[str, ...] = ()
    g_loss_names: tuple[str, ...] = ()
    # convergence from the samples (no losses needed): over the last stall_checkpoints
    # checkpoints no step's precision reached stall_max_precision and FD's median over the
    # window's second half is not stall_min_fd_gain below its first half's
    stall_checkpoints: int = 8
    stall_max_precision: float = 0.05
    stall_min_fd_gain: float = 0.1

    def __post_init__(self) -> None:
        unknown = set(self.enabled) - set(RULE_NAMES)
        if unknown:
            raise ValueError(f"Expected rule names among {RULE_NAMES}. Got {sorted(unknown)} instead.")
        if self.fd_rising_k < 1:
            raise ValueError(f"Expected fd_rising_k >= 1. Got {self.fd_rising_k} instead.")
        if not self.fd_size_ratio >= 1:
            raise ValueError(f"Expected fd_size_ratio >= 1. Got {self.fd_size_ratio} instead.")
        if self.stall_checkpoints < 2:
            raise ValueError(f"Expected stall_checkpoints >= 2. Got {self.stall_checkpoints} instead.")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "AlertRules":
        """Build from a plain dict (e.g. parsed from JSON/CLI), refusing unknown keys."""
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Expected alert settings among {sorted(known)}. Got {sorted(unknown)} instead.")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**kw)


DEFAULT_RULES = AlertRules()

Losses = Mapping[str, tuple[Sequence[float], Sequence[float]]]


# --------------------------------------------------------------------------- helpers


def _get(rec: Mapping[str, Any], key: str) -> float:
    v = rec.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def _finite(*vals: float) -> bool:
    return all(math.isfinite(v) for v in vals)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


class History:
    """Per-step metric records in step order, with each metric as a float array (NaN where a
    record lacks it), kept up to date as steps are put: the rules read columns, not every
    record, at each step (walking the records was 12 ms a step at 2,000 steps, so a backlog's
    alert rules cost O(T^2); docs/ingest.md). Pass :meth:`upto` to :func:`evaluate_alerts`."""

    def __init__(self, columns: Mapping[str, np.ndarray] | None = None) -> None:
        """``columns``: a metrics table (``"step"`` and one column per metric), rows in any order."""
        columns = dict(columns or {})
        steps = np.asarray(columns.pop("step", np.zeros(0, np.int64)))
        order = np.argsort(steps, kind="stable")
        self._steps: list[int] = steps[order].tolist()
        self._arrays = {key: np.asarray(values, dtype=float)[order] for key, values in columns.items()}
        values = [self._arrays[key].tolist() for key in self._arrays]
        rows = list(zip(*values)) or [()] * len(self._steps)
        self._records: list[dict] = [{"step": s, **dict(zip(self._arrays, row))} for s, row in zip(self._steps, rows)]
        self._valid = dict.fromkeys(self._arrays, len(self._steps))  # rows of each array still true
        self._baselines: dict[tuple, _Baseline] = {}  # see best_built_or_held

    def put(self, record: Mapping[str, Any]) -> None:
        """Add a step's record, or replace the one of its step (measured again)."""
        step = int(record["step"])
        i = bisect.bisect_left(self._steps, step)
        if i < len(self._steps) and self._steps[i] == step:
            self._records[i] = dict(record)
        else:
            self._steps.insert(i, step)
            self._records.insert(i, dict(record))
        for key, valid in self._valid.items():
            self._valid[key] = min(valid, i)
        self._baselines = {key: kept for key, kept in self._baselines.items() if kept.read <= i}

    def upto(self, step: int) -> "_Prefix":
        """The steps up to ``step``, as the rules read them."""
        return _Prefix(self._records[:bisect.bisect_right(self._steps, step)], self)

    def column(self, key: str, stop: int) -> np.ndarray:
        """``key``'s values of the first ``stop`` records (a view: do not write to it)."""
        array, valid = self._arrays.get(key), self._valid.get(key, 0)
        if array is None or valid < stop:
            fresh = np.array([_get(r, key) for r in self._records[valid:]], dtype=float)
            kept = array[:valid] if array is not None else np.zeros(0)
            self._arrays[key], self._valid[key] = np.concatenate([kept, fresh]), len(self._records)
        return self._arrays[key][:stop]

    def best_built_or_held(self, key: str, n: float, stop: int, rules: "AlertRules") -> tuple[int, float] | None:
        """:func:`_built_or_held`'s best (its index among the first ``stop`` records, its value) of
        ``key``'s finite values of the records comparable with a step of ``n`` samples, kept up to
        date as records are added after those it read (worked out from every value at each step,
        it was 18.6 ms a step at 5,000 steps without a real reference; docs/ingest.md)."""
        settings = (rules.collapse_held_within, rules.collapse_max_drop, rules.collapse_held_steps,
                    rules.collapse_built_rise)
        ident = (key, n if math.isfinite(n) else None, settings)
        baseline = self._baselines.get(ident)
        if baseline is None or baseline.read > stop:
            baseline = self._baselines[ident] = _Baseline(rules)
        values, sizes = self.column(key, stop), self.column("n_generated", stop)
        new = baseline.read + np.flatnonzero(np.isfinite(values[baseline.read:])
                                             & _comparable_to(sizes[baseline.read:], n))
        baseline.extend(new.tolist(), values[new])
        baseline.read = stop
        return baseline.best()


class _Baseline:
    """:func:`_built_or_held` of a sequence growing at its end, and its best, kept as values are
    added: a value's "built" is known when it comes and its "held" once ``held_steps`` more came
    (the best of them kept); a value settled at (within ``held_within`` of the one before) is
    kept in a heap until a later value fades it, checked at the heap's top only."""

    def __init__(self, rules: "AlertRules") -> None:
        self.rules = rules
        self.read = 0  # the History's records read
        self.rows: list[int] = []  # each value's record
        self.values = np.empty(64)  # the values, in ``self.values[:len(self.rows)]``
        self.low = math.inf
        self.kept: tuple[float, int] | None = None  # the best (value, -position) built or held
        self.settled: list[tuple[float, int]] = []  # a heap of (-value, position) settled at, not seen faded
        self.clear = (-1, 0)  # (the heap top's position, the values up to which it is not faded)

    def extend(self, rows: list[int], values: np.ndarray) -> None:
        """Add ``values`` (finite), those of the records ``rows``."""
        rules, old = self.rules, len(self.rows)
        within, steps, m = rules.collapse_held_within, rules.collapse_held_steps, old + len(values)
        if m > len(self.values):
            self.values = np.concatenate([self.values[:old], np.empty(max(m, 2 * len(self.values)) - old)])
        self.values[old:m] = values
        self.rows += rows
        everything = self.values[:m]
        lows = np.minimum.accumulate(np.concatenate([[self.low], values]))
        built = np.flatnonzero(values > lows[:-1] * (1 + rules.collapse_built_rise)) + old
        self.low = float(lows[-1])
        held = np.arange(max(0, old - steps), m - steps)
        ok = np.ones(len(held), bool)
        for d in range(1, steps + 1):
            ok &= np.abs(everything[held + d] - everything[held]) <= within * everything[held]
        for k in (built, held[ok]):
            if len(k):
                best = int(k[np.argmax(everything[k])])  # the first highest
                if self.kept is None or (everything[best], -best) > self.kept:
                    self.kept = (float(everything[best]), -best)
        at = np.arange(max(1, old), m)
        settled = at[np.abs(everything[at - 1] - everything[at]) <= within * everything[at]]
        for k in settled.tolist():
            heapq.heappush(self.settled, (-float(everything[k]), k))

    def best(self) -> tuple[int, float] | None:
        """(record, value) of the first highest value built, held or settled at; None if none."""
        rules, m = self.rules, len(self.rows)
        while self.settled:  # faded: a later value between (1 - max_drop) and (1 - held_within) of it
            v, k = -self.settled[0][0], self.settled[0][1]
            later = self.values[self.clear[1] if self.clear[0] == k else k + 1:m]
            if not np.any((later > (1 - rules.collapse_max_drop) * v) & (later < (1 - rules.collapse_held_within) * v)):
                self.clear = (k, m)
                break
            heapq.heappop(self.settled)
        top = (-self.settled[0][0], -self.settled[0][1]) if self.settled else None
        found = max(filter(None, (self.kept, top)), default=None)
        return None if found is None else (self.rows[-found[1]], found[0])


class _Prefix(list):
    """The records a rule reads (a list, step order), with their columns from a :class:`History`."""

    def __init__(self, records: list, history: "History | None" = None) -> None:
        super().__init__(records)
        self.history = history
        self._own: dict[str, np.ndarray] = {}

    def column(self, key: str) -> np.ndarray:
        if self.history is not None:
            return self.history.column(key, len(self))
        if key not in self._own:
            self._own[key] = np.array([_get(r, key) for r in self], dtype=float)
        return self._own[key]


def _comparable_to(sizes: np.ndarray, n: float, both_ways: bool = False) -> np.ndarray:
    """:func:`_comparable` of each record of these ``sizes`` with a step of ``n`` samples (and, with
    ``both_ways``, of that step with each record)."""
    if not math.isfinite(n):
        return np.ones(len(sizes), bool)
    with np.errstate(invalid="ignore"):
        ok = sizes <= 2 * n
        if both_ways:
            ok &= n <= 2 * sizes
    return ok | ~np.isfinite(sizes)


_LABELS = {"vendi": "Vendi score", "pairwise_cosine": "mean pairwise cosine distance"}


# --------------------------------------------------------------------------- rules


def _collapse(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    if len(hist) <= rules.warmup:
        return None
    return (_diversity_drop(hist, rules) or _duplicates(hist, rules) or _recall_drop(hist, rules)
            or _regions_dropped(hist, rules))


def _realistic(rec: Mapping, rules: AlertRules) -> bool:
    """Samples that look like the data (precision >= drift_min_precision): an untrained
    generator's blobs are not, whatever their diversity."""
    precision = _get(rec, "precision")
    return math.isfinite(precision) and precision >= rules.drift_min_precision


def _realistic_mask(hist: "_Prefix", rules: AlertRules) -> np.ndarray:
    """:func:`_realistic` of each record."""
    precision = hist.column("precision")
    with np.errstate(invalid="ignore"):
        return np.isfinite(precision) & (precision >= rules.drift_min_precision)


def _recall_drop(hist: "_Prefix", rules: AlertRules) -> Alert | None:
    """Mode dropping: realistic samples that cover less and less of the real data. Recall (the
    share of real samples inside the generated samples' k-NN balls) fell 0.96 -> 0.35 as digit
    classes disappeared one by one, while Vendi fell under its bar only with one class left.
    Compared with realistic steps of about the same size (the balls shrink as n grows)."""
    cur = hist[-1]
    recall, n = _get(cur, "recall"), _get(cur, "n_generated")
    if not (math.isfinite(recall) and _realistic(cur, rules)):
        return None
    recalls = hist.column("recall")[:-1]
    past = np.flatnonzero(_realistic_mask(hist, rules)[:-1] & np.isfinite(recalls)
                          & _comparable_to(hist.column("n_generated")[:-1], n, both_ways=True))
    if not len(past):
        return None
    i = past[int(np.argmax(recalls[past]))]  # the first best
    best_rec, best = hist[i], float(recalls[i])
    drop = 1.0 - recall / best if best > 0 else 0.0
    if drop <= rules.collapse_max_drop:
        return None
    step = int(cur["step"])
    return Alert(step, "collapse", recall,
                 f"mode dropping at step {step}: recall fell {_pct(drop)} from {best:.2f} at step "
                 f"{int(best_rec['step'])} to {recall:.2f} (the samples cover less of the real data; "
                 f"precision {_get(cur, 'precision'):.2f})")


def _regions_dropped(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    """Mode dropping without labels: the samples fill the real data's regions (k-means of
    its vectors) off their real shares by more than chance, at two realistic steps running,
    and further off than the model once was. Digits with 6 of 10 classes left at 256 samples
    per step: recall fell 23% (under its 50% bar), the regions' total variation rose 0.13 ->
    0.36 (chance: 0.16). At 64 samples (8 regions) it tells 4 of 10 classes left, not 6."""
    tvs, chances = hist.column("region_tv"), hist.column("region_tv_chance")
    realistic = np.flatnonzero(_realistic_mask(hist, rules) & np.isfinite(tvs) & np.isfinite(chances))
    if len(realistic) < 3 or realistic[-1] != len(hist) - 1:
        return None
    cur = hist[-1]
    tv = _get(cur, "region_tv")
    tv_of = tvs[realistic]
    off = tv_of > chances[realistic]
    # once fired, it holds while the steps stay off by more than chance: re-decided at each
    # step, 4 of 6 classes lost for good lapsed and fired again, a new onset each time
    for end in range(len(realistic) - 1, 1, -1):
        if not (off[end - 1] and off[end]):
            return None
        k = int(np.argmin(tv_of[:end]))  # the first lowest
        low_rec, low = hist[realistic[k]], float(tv_of[k])
        if tv_of[end] - low > rules.collapse_region_tv_rise:
            break
    else:
        return None
    step = int(cur["step"])
    empty = _get(cur, "region_empty_share")
    missing = f"; regions holding {_pct(empty)} of the real data have no sample" if empty > 0 else ""
    onset = hist[realistic[end]]
    held = "" if onset is cur else \
        f", held above chance since step {int(onset['step'])} ({_get(onset, 'region_tv'):.2f} there)"
    return Alert(step, "collapse", tv,
                 f"mode dropping at step {step}: the samples' shares of the real data's {_get(cur, 'regions'):.0f} regions off "
                 f"the real ones by {tv:.2f} (total variation; chance {_get(cur, 'region_tv_chance'):.2f}), "
                 f"from {low:.2f} at step {int(low_rec['step'])}{held}{missing}")


def _duplicates(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    """Partial collapse: a share of the samples sits on a few modes. Vendi underrates it (75%
    of 64 samples on 2 modes: -43%, under the 50% bar), but each such sample has a
    near-duplicate in the batch, which real data of the batch's size has at a rate of ~1%.
    Measured from the lowest share so far, as Vendi from its best: an untrained generator's
    look-alike blobs start high and fall, a collapse rises from what the model once did."""
    cur = hist[-1]
    frac, expected, n = _get(cur, "duplicate_frac"), _get(cur, "duplicate_expected"), _get(cur, "n_generated")
    fracs = hist.column("duplicate_frac")[:-1]
    past = np.flatnonzero(np.isfinite(fracs))
    if not _finite(frac, expected, n) or not len(past):
        return None
    i = past[int(np.argmin(fracs[past]))]  # the first lowest
    low_rec, low = hist[i], float(fracs[i])
    if frac - low <= rules.collapse_duplicate_rise:
        return None
    if n < rules.collapse_duplicate_hold_below:  # a few look-alikes are a large share of a small step:
        before = float(fracs[past[-1]])  # real digits, 16 a step, had 5 at 0.05% of steps (2% of 40-step runs, round AL)
        if before - (float(np.min(fracs[past[:-1]])) if len(past) > 1 else before) <= rules.collapse_duplicate_rise:
            return None
    step, n_real = int(cur["step"]), _get(cur, "n_reference")
    parts = math.ceil(n / n_real) if n_real > 0 else 1  # measured in sets no larger than the real reference
    among = (f"within their set of about {n / parts:.0f} ({parts} sets, none larger than the real reference's "
             f"{n_real:.0f}: a lower bound; " if parts > 1 else "among the step's samples (")
    return Alert(step, "collapse", frac,
                 f"partial mode collapse at step {step}: {round(frac * n)} of {n:.0f} samples ({_pct(frac)}) have a "
                 f"near-duplicate {among}lowest so far {_pct(low)}, at step {int(low_rec['step'])}); "
                 f"real data: {_pct(expected)}")


def _comparable(rec: Mapping, n: float) -> bool:
    """Whether a step's diversity can be compared with one of ``n`` samples: it had at most
    twice as many (Vendi is bounded by the count: a step whose folder was half deleted, or
    whose files were mostly corrupt, is no collapse)."""
    size = _get(rec, "n_generated")
    return not _finite(size, n) or size <= 2 * n


def _built_or_held(past: list[tuple[int, float]], rules: AlertRules) -> list[tuple[int, float]]:
    """The values a model built (more than ``built_rise`` above an earlier one), held (the
    next ``held_steps`` checkpoints within ``held_within`` of it) or settled at (the one
    before within ``held_within``, and no later one between half and 1 - ``held_within`` of
    it: a fade passes through there, a collapse falls past it at once): not the noise it
    started from. A healthy run's Vendi fell 49.8 -> 14.7 -> 5.6, the data's own level, as
    its noise faded: without a real reference that read as a 71% collapse at every later
    checkpoint; 5.7, 6.0 then 1.7 is a collapse."""
    values = [v for _, v in past]
    within, steps = rules.collapse_held_within, rules.collapse_held_steps
    settled, later = [False] * len(values), []  # later: the values after k, sorted (walked from the end:
    for k in range(len(values) - 1, 0, -1):  # a scan of them for each k cost 0.2 s a step at 2,000 steps)
        v = values[k]
        above = bisect.bisect_right(later, (1 - rules.collapse_max_drop) * v)
        faded = above < len(later) and later[above] < (1 - within) * v
        settled[k] = abs(values[k - 1] - v) <= within * v and not faded
        bisect.insort(later, v)
    kept, low = [], math.inf
    for k, (i, v) in enumerate(past):
        after = values[k + 1:k + 1 + steps]
        held = len(after) == steps and all(abs(a - v) <= within * v for a in after)
        if held or settled[k] or v > low * (1 + rules.collapse_built_rise):
            kept.append((i, v))
        low = min(low, v)
    return kept


def _best_built_or_held(hist: "_Prefix", key: str, n: float, prev: np.ndarray, finite: np.ndarray,
                        values: np.ndarray, rules: AlertRules) -> tuple[int, float] | None:
    """The first highest of :func:`_built_or_held` (its index in ``prev``, its value) of ``key``'s
    ``values`` of the records ``prev`` (comparable with the step's ``n`` samples; ``finite``: those
    finite): a History's, kept between steps (:meth:`History.best_built_or_held`)."""
    if hist.history is not None and rules.collapse_held_steps >= 0:
        found = hist.history.best_built_or_held(key, n, len(hist) - 1, rules)
        return None if found is None else (int(np.searchsorted(prev, found[0])), found[1])
    past = _built_or_held(list(zip(finite.tolist(), values[finite].tolist())), rules)
    return max(past, key=lambda iv: iv[1]) if past else None


def _diversity_drop(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    cur = hist[-1]
    n = _get(cur, "n_generated")
    prev = np.flatnonzero(_comparable_to(hist.column("n_generated")[:-1], n))  # their indices in hist
    worst: tuple[float, Alert] | None = None
    for key in rules.collapse_metrics:
        value = _get(cur, key)
        values = hist.column(key)[prev]
        finite = np.flatnonzero(np.isfinite(values))  # past: their indices in prev
        real = _get(cur, f"real_{key}")
        if not math.isfinite(value) or not len(finite):
            continue
        i_best = int(finite[np.argmax(values[finite])])  # the first best
        best = float(values[i_best])
        # realistic samples are held to the real's diversity (a run collapsed from its first
        # checkpoint has no better past to fall from); others to the best so far, capped at it
        capped = math.isfinite(real) and (real < best or _realistic(cur, rules))
        # without a real reference, or while no sample of any step came near the data (a healthy
        # DCGAN's noise fading through blobs, Vendi 6.7 -> 3.3 under the real's 7.4, at precision
        # 0): the best so far counts only what the model built or held, not the noise it started
        # from (a fine-tuned model's diverse start, off the new data but not nowhere, still counts)
        if not capped and (not math.isfinite(real) or not np.any(hist.column("precision") > 0)):
            if (found := _best_built_or_held(hist, key, n, prev, finite, values, rules)) is None:
                continue
            i_best, best = found
        baseline = real if capped else best
        if baseline <= 0:
            continue
        drop = 1.0 - value / baseline
        spread = _get(cur, f"real_{key}_sd")
        if _finite(real, spread) and value >= real - rules.collapse_noise_z * spread:
            continue  # where n real samples fall by chance (a few samples a step)
        if drop > rules.collapse_max_drop and (worst is None or drop > worst[0]):
            name = _LABELS.get(key, key)
            step = int(cur["step"])
            if capped:
                msg = (f"diversity fell {_pct(drop)} below the real reference's by step {step}: "
                       f"{name} {value:.3g} vs {real:.3g} (best so far {best:.3g} at step {int(hist[prev[i_best]]['step'])})")
            else:
                ref_txt = f", real reference {real:.3g}" if math.isfinite(real) else ""
                msg = (f"diversity fell {_pct(drop)} between step {int(hist[prev[i_best]]['step'])} and {step}: "
                       f"{name} {best:.3g} -> {value:.3g}{ref_txt}")
            worst = (drop, Alert(step, "collapse", value, msg))
    return worst[1] if worst else None


@functools.lru_cache(maxsize=1024)  # the same few (q, n) at every step: scipy's tail, ~2 ms a call
def _copy_bar(q: float, n: int, n_holdout: float, z: float) -> float:
    """The share of n fresh samples flagged below a held-out quantile that is exceeded as rarely
    as z standard deviations of a normal. The threshold is an order statistic of the n_holdout
    held-out distances, so the chance q it gives a fresh sample is itself drawn, Beta(q(N+1),
    (1-q)(N+1)), once for the whole store, and the count is beta-binomial: taken as exactly q
    (a binomial), a held-out set whose nearest image happened to sit far flagged fresh samples
    at 6x q at every checkpoint (round AK: 8 of 64 with 100 held out). Without n_holdout (a
    store measured before it was kept) the binomial. Exact tails: the normal bar q + z·sd was
    crossed by one flagged sample of a one-sample step, a chance of q."""
    from scipy.stats import betabinom, binom, norm

    tail = norm.sf(z)
    if math.isfinite(n_holdout) and n_holdout > 0:
        a = q * (n_holdout + 1)
        return float(betabinom.isf(tail, n, a, n_holdout + 1 - a)) / n
    return float(binom.isf(tail, n, q)) / n


def memorisation_blind(record: Mapping, rules: AlertRules = DEFAULT_RULES) -> bool:
    """Whether memorisation could not fire at a step even were every sample a copy: its bars at
    100% (a few samples beside a few held-out images) and too few samples for the sign test
    to pass (round AQ: 4 of 4 exact copies beside 10 held out raised nothing, unsaid)."""
    n, n_holdout = _get(record, "n_generated"), _get(record, "n_holdout")
    q, q_tight = _get(record, "near_copy_expected"), _get(record, "tight_copy_expected")
    if not _finite(n, q) or n <= 0:
        return False
    bars = [_copy_bar(share, int(n), n_holdout, rules.near_copy_z) for share in (q, q_tight) if math.isfinite(share)]
    return min(bars) >= 1 and _least_sign_p(record, n) >= rules.copy_log_ratio_alpha


def _memorisation(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    cur = hist[-1]
    step = int(cur["step"])
    frac, q, n = _get(cur, "near_copy_frac"), _get(cur, "near_copy_expected"), _get(cur, "n_generated")
    n_holdout = _get(cur, "n_holdout")
    if _finite(frac, q, n) and n > 0:
        limit = max(rules.near_copy_min_frac, _copy_bar(q, int(n), n_holdout, rules.near_copy_z))
        if frac > limit:
            return Alert(step, "memorisation", frac,
                         f"{_pct(frac)} of samples are near-copies of training images at step {step}, about "
                         f"{_pct((frac - q) / (1 - q))} beyond chance (a fresh sample is one with probability "
                         f"{_pct(q)}; alert above {_pct(limit)})")
    tight, q_tight = _get(cur, "tight_copy_frac"), _get(cur, "tight_copy_expected")
    if _finite(tight, q_tight, n) and n > 0:
        limit = _copy_bar(q_tight, int(n), n_holdout, rules.near_copy_z)
        if tight > limit:  # exact copies among a few samples (round AJ: 4 of 16 stayed under the near-copy bar)
            return Alert(step, "memorisation", tight,
                         f"{round(tight * n):.0f} of {n:.0f} samples at step {step} are copies of training images: "
                         f"closer to one than nearly every held-out image is (a fresh sample is, with probability "
                         f"{100 * q_tight:.2g}%; alert above {round(limit * n):.0f})")
    ratio, p, hoods = _get(cur, "copy_log_ratio"), _get(cur, "copy_log_ratio_p"), _get(cur, "copy_neighbourhoods")
    prev = next((hist[i] for i in range(len(hist) - 2, -1, -1) if _sign_testable(hist[i], rules)), None)
    if _closer_to_training(cur, rules) and (p < rules.copy_log_ratio_alone_alpha
                                            or prev is not None and _closer_to_training(prev, rules)):
        closer = 1.0 - math.exp(ratio)
        before = "" if p < rules.copy_log_ratio_alone_alpha else f", as at step {int(prev['step'])}"
        return Alert(step, "memorisation", ratio,
                     f"samples at step {step} sit {_pct(closer)} closer to training images than to "
                     f"held-out ones{before} (median log distance ratio {ratio:.3f} over {hoods:.0f} distinct "
                     f"neighbourhoods on equal-size subsets; sign test p = {p:.2g})")
    return None


def _least_sign_p(record: Mapping, count: float) -> float:
    """The copy sign test's p were all ``count`` neighbourhoods closer: each one is by chance with
    the store's ``copy_null_share`` (1/2 in a store measured before it was kept)."""
    share = _get(record, "copy_null_share")
    return (share if math.isfinite(share) else 0.5) ** count


def _sign_testable(record: Mapping, rules: AlertRules) -> bool:
    """Whether a checkpoint's sign test could pass at all: the one the log-ratio route asks
    besides the newest. A step of 0 samples (NaN) or of too few neighbourhoods (7 at 1/2) between
    two closer ones made a copying run alternating 8 and 4 samples a step never alert on it."""
    hoods = _get(record, "copy_neighbourhoods")
    return _finite(_get(record, "copy_log_ratio_p"), hoods) and _least_sign_p(record, hoods) < rules.copy_log_ratio_alpha


def _closer_to_training(record: Mapping, rules: AlertRules) -> bool:
    """Whether a checkpoint's samples sit significantly closer to training than to held-out data
    (the log-ratio route of memorisation, before it asks the previous checkpoint too)."""
    ratio, p = _get(record, "copy_log_ratio"), _get(record, "copy_log_ratio_p")
    hoods = _get(record, "copy_neighbourhoods")
    return _finite(ratio, p, hoods) and ratio < rules.copy_log_ratio_max and p < rules.copy_log_ratio_alpha


def _fd_noise(fd: np.ndarray, rules: AlertRules) -> float | None:
    """A robust sd of FD around its trend, from the second differences of these checkpoints'
    FD values (insensitive to the early steady decrease); None with too few to tell."""
    values = fd[np.isfinite(fd)]
    if len(values) < max(rules.fd_noise_steps, 3):
        return None
    return 1.4826 * float(np.median(np.abs(np.diff(values, n=2)))) / math.sqrt(6.0)


def _comparable_sizes(window: list[Mapping], rules: AlertRules) -> bool:
    """FD is biased upward at small n: samples per step from 1,000 to 64 read as a rise of
    +187% on a healthy run (round X), from 32 to 16 as a jump of +60%."""
    sizes = [_get(r, "n_generated") for r in window]
    return not (_finite(*sizes) and max(sizes) > rules.fd_size_ratio * min(sizes))


def _fd_rising(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    return _fd_rose(hist, rules) or _fd_jumped(hist, rules)


#: Checkpoints before a jump's last fd_jump_hold whose lowest level (median of 3) it is measured from.
FD_JUMP_LOOKBACK = 8
#: Share of its bar a held jump stays above where FD was (its onset met the whole bar).
FD_JUMP_KEEP = 0.5
#: Checkpoints up to the start of a rise whose median FD it is measured from (at least).
FD_LEVEL_STEPS = 3


def _fd_rose(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    k = rules.fd_rising_k
    if len(hist) < k + 1:
        return None
    window = hist[-(k + 1):]
    fd = [_get(r, "fd") for r in window]
    if not _finite(*fd) or fd[0] <= 0 or not _comparable_sizes(window, rules):
        return None
    if not all(b > a * (1 + rules.fd_min_step_rise) for a, b in zip(fd, fd[1:])):
        return None
    # from where FD was, not from a low outlier: at least the median of the window's start
    # and the two checkpoints before it (round AL: a stationary healthy run rose "3 times" from
    # a dip to a peak past the bar in 8% of simulated 40-checkpoint runs, 2% now; the median of
    # 5 gave 1% but lagged a decline: FD 1.0 ... 0.6 then 0.7, 0.8, 0.9 was no rise)
    lead = [v for v in (_get(r, "fd") for r in hist[-(k + FD_LEVEL_STEPS):-k]) if math.isfinite(v)]
    base = max(fd[0], float(np.median(lead))) if _comparable_sizes(hist[-(k + FD_LEVEL_STEPS):], rules) else fd[0]
    rise = fd[-1] - base
    need = rules.fd_min_total_rise * base
    sd = _fd_noise(hist.column("fd")[:-k], rules)
    if sd is None:  # no noise floor yet (round X: +25% by chance at 64 samples)
        need = max(need, rules.fd_early_total_rise * base)
    else:
        need = max(need, rules.fd_noise_z * sd)
    if rise > need:
        s0, s1 = int(window[0]["step"]), int(window[-1]["step"])
        level = "" if base == fd[0] else f" over its level of {base:.4g} before"  # round AN: +% was of neither
        return Alert(s1, "fd_rising", fd[-1],
                     f"FD rose for {k} consecutive checkpoints: {fd[0]:.4g} at step {s0} -> {fd[-1]:.4g} "
                     f"at step {s1} (+{_pct(rise / base)}{level})")
    return None


def _fd_jumped(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    """FD far above where it was at each of ``fd_jump_hold`` checkpoints running: a run broken
    from one checkpoint to the next rises once, then stays (a single outlier comes back).
    Held while FD stays more than :data:`FD_JUMP_KEEP` of the bar above where it was."""
    hold = rules.fd_jump_hold
    if len(hist) < hold + 3:
        return None
    window = hist[-(hold + FD_JUMP_LOOKBACK):]
    while len(window) > hold + 3 and not _comparable_sizes(window, rules):
        window = window[1:]
    fd = [_get(r, "fd") for r in window]
    if not _finite(*fd) or not _comparable_sizes(window, rules):
        return None
    # from the lowest level of the checkpoints before (the median of 3 running): from the 3 just
    # before, a divergence going on lapsed once they had diverged too, and each return was
    # announced as a new onset (round AL: 3 times in one divergence)
    lead = fd[:-hold]
    base = min(float(np.median(lead[i:i + 3])) for i in range(len(lead) - 2))
    if not base > 0:
        return None
    # the noise from before the checkpoints above that level: measured with the jump in it, the
    # bar grew past a collapse's held FD, which lapsed and was announced again (round AN: the
    # README's collapse demo, FD 0.17 -> 0.56-0.76 for 7 checkpoints)
    column = hist.column("fd")
    values = column.tolist()
    start = len(hist)
    while start > 0 and math.isfinite(values[start - 1]) and values[start - 1] > base * (1 + rules.fd_jump_rise):
        start -= 1
    sd = _fd_noise(column[:start], rules)
    if sd is None or start > len(hist) - hold:
        return None
    bar = max(rules.fd_jump_rise * base, rules.fd_noise_z * sd)
    # the jump: where FD first stayed past the bar for fd_jump_hold checkpoints (round AJ: not the
    # window's start, "jumped at step 900, 0.385 before" of a jump at 800 from 0.336)
    onset = next((i for i in range(start, len(hist) - hold + 1) if min(values[i:i + hold]) - base > bar), None)
    if onset is None or min(values[-hold:]) - base <= (1.0 if onset == len(hist) - hold else FD_JUMP_KEEP) * bar:
        return None
    prior = [v for v in values[max(0, onset - 3):onset] if math.isfinite(v)]
    before = float(np.median(prior)) if prior else base
    up = values[onset:]
    s0, s1 = int(hist[onset]["step"]), int(hist[-1]["step"])
    return Alert(s1, "fd_rising", fd[-1],
                 f"FD jumped at step {s0} and stayed up for {len(up)} checkpoints: {before:.4g} before -> "
                 f"{'..., ' if len(up) > 6 else ''}{', '.join(f'{v:.4g}' for v in up[-6:])} "
                 f"(+{_pct((min(up) - before) / before)} at least)")


def _shares(rec: Mapping, prefix: str) -> dict[str, tuple[float, float]]:
    out = {}
    for key in rec:
        if key.startswith(prefix + "_share:"):
            name = key[len(prefix) + 7:]
            out[name] = (_get(rec, key), _get(rec, f"{prefix}_ref_share:{name}"))
    return out


def _drift_ready(hist: list[Mapping], rules: AlertRules) -> bool:
    precision = _get(hist[-1], "precision")
    realistic = not math.isfinite(precision) or precision >= rules.drift_min_precision
    return len(hist) > rules.warmup and realistic


def _label_drift(hist: list[Mapping], rules: AlertRules, names: Mapping[str, str]) -> Alert | None:
    if not _drift_ready(hist, rules):
        return None
    cur = hist[-1]
    tv, n = _get(cur, "label_tv"), _get(cur, "n_labelled")
    if not math.isfinite(n):  # measured by a version that did not record it
        n = _get(cur, "n_generated")
    shares = _shares(cur, "label")
    if not _finite(tv, n) or n <= 0 or not shares:
        return None
    # sorted: the seeded draws take the shares in turn, and a row as measured and as read back
    # from the store (columns by name) had bars 0.3076 and 0.3062 (round AW)
    ref = tuple(sorted(round(r, 6) for _, r in shares.values() if math.isfinite(r)))
    from engine.metrics.shares import chance_tv  # lazily: the viewer reads alerts without the metrics' stack

    n_ref = _get(cur, "n_real")
    # at the size a little below n on a grid of 2^(1/8) (a higher bar, by at most ~4%): a run
    # whose labelled samples vary from step to step paid a second of draws for each size
    n_grid = max(1, int(2 ** (math.floor(8 * math.log2(n)) / 8)))
    limit = max(rules.label_tv_max, chance_tv(ref, n_grid, rules.label_noise_z, int(n_ref) if n_ref > 0 else None))
    if tv <= limit:
        return None
    diffs = sorted(shares.items(), key=lambda kv: kv[1][0] - kv[1][1])
    under, over = diffs[0], diffs[-1]
    step = int(cur["step"])
    return Alert(step, "label_drift", tv,
                 f"label shares drifted from the reference at step {step} (total variation {tv:.3g} > {limit:.3g}): "
                 f"'{names.get(f'label_share:{over[0]}', over[0])}' {_pct(over[1][0])} vs {_pct(over[1][1])}, "
                 f"'{names.get(f'label_share:{under[0]}', under[0])}' {_pct(under[1][0])} vs {_pct(under[1][1])}")


def _share_gap_sd(share: float, n: float, ref: float, n_ref: float) -> float:
    """The standard deviation of a share's gap to the reference's when both are samples of one
    distribution (the pooled two-proportion test): taken as exact, a reference of 10 images
    (a share's SD up to 0.16) had 5 of 6 healthy runs alert (round AQ). A store measured
    before ``n_reference`` was kept: the reference's share as exact."""
    if not (math.isfinite(n_ref) and n_ref > 0):
        return math.sqrt(ref * (1 - ref) / n)
    pooled = (share * n + ref * n_ref) / (n + n_ref)
    return math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n_ref))


def _probe_limit(share: float, n: float, ref: float, n_ref: float, rules: AlertRules) -> float:
    return max(rules.probe_max_diff, rules.probe_noise_z * _share_gap_sd(share, n, ref, n_ref))


def probe_drift_reach(record: Mapping, rules: AlertRules = DEFAULT_RULES) -> dict[str, float]:
    """Per probe, the smallest gap to the reference's share that could alert at this step's size
    (inf: none could, were every sample to go one way): beside 10 real images a share is known
    to +-0.16 and probe_drift was blind, unsaid (round AQ)."""
    n = _get(record, "n_generated")
    if not math.isfinite(n) or n <= 0:
        return {}
    n_ref = _get(record, "n_reference")
    return {name: min((abs(share - ref) for share in (k / n for k in range(int(n) + 1))
                       if abs(share - ref) > _probe_limit(share, n, ref, n_ref, rules)), default=math.inf)
            for name, (_, ref) in _shares(record, "probe").items() if math.isfinite(ref)}


def _probe_drift(hist: list[Mapping], rules: AlertRules, names: Mapping[str, str]) -> Alert | None:
    if not _drift_ready(hist, rules):
        return None
    cur = hist[-1]
    n = _get(cur, "n_generated")
    if not math.isfinite(n) or n <= 0:
        return None
    drifting = []
    for name, (share, ref) in _shares(cur, "probe").items():
        if not _finite(share, ref):
            continue
        if abs(share - ref) > _probe_limit(share, n, ref, _get(cur, "n_reference"), rules):
            drifting.append((abs(share - ref), name, share, ref))
    if not drifting:
        return None
    drifting.sort(reverse=True)
    step = int(cur["step"])
    parts = ", ".join(f"'{names.get(f'probe_share:{name}', name)}' {_pct(s)} vs {_pct(r)}"
                      for _, name, s, r in drifting)
    return Alert(step, "probe_drift", drifting[0][0],
                 f"probe shares drifted from the real reference at step {step}: {parts}")


def _tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return {t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t}


def loss_roles(names: Sequence[str], rules: AlertRules = DEFAULT_RULES) -> tuple[list[str], list[str]]:
    """Split loss names into discriminator and generator losses (explicit names in
    ``rules`` win; else by tokens: ``loss_D``, ``errD``, ``d_loss``, ``Loss/discriminator``,
    ``Loss/D/loss``..., ``loss_gan``; learning rates such as ``lr/generator`` have no role)."""
    if rules.d_loss_names or rules.g_loss_names:
        return [n for n in names if n in rules.d_loss_names], [n for n in names if n in rules.g_loss_names]
    tokens = {n: _tokens(n) for n in names if not _tokens(n) & _NOT_LOSS_TOKENS}
    d = [n for n, t in tokens.items() if t & _D_TOKENS and not t & _G_TOKENS]
    g = [n for n, t in tokens.items() if t & _G_ONLY_TOKENS and not t & _D_TOKENS]
    return d, g


def _series(losses: Losses, name: str, upto: float) -> np.ndarray:
    steps, values = (np.asarray(a, dtype=float) for a in losses[name])
    keep = steps <= upto
    return values[keep]


def _convergence(hist: list[Mapping], rules: AlertRules, losses: Losses | None) -> Alert | None:
    return (_loss_failure(hist, rules, losses) if losses else None) or _no_progress(hist, rules)


def _no_progress(hist: list[Mapping], rules: AlertRules) -> Alert | None:
    """Convergence failure seen in the samples, for runs that log no losses: for the last
    ``stall_checkpoints`` checkpoints no sample looked like the data (precision under
    ``stall_max_precision``) and FD did not fall. A healthy run's FD falls steadily long
    before its precision rises (1.26 -> 0.30 over the 10 checkpoints at precision 0 of a
    slowly learning run), while noise throughout keeps FD flat (1.62-1.67 over 20)."""
    window = hist[-rules.stall_checkpoints:]
    if len(hist) < rules.stall_checkpoints:
        return None
    precision = [_get(r, "precision") for r in window]
    fd = [_get(r, "fd") for r in window]
    if not _finite(*precision, *fd) or max(precision) >= rules.stall_max_precision:
        return None
    half = len(window) // 2
    before, after = float(np.median(fd[:half])), float(np.median(fd[-half:]))
    if after < (1.0 - rules.stall_min_fd_gain) * before:
        return None
    s0, s1 = int(window[0]["step"]), int(window[-1]["step"])
    return Alert(s1, "convergence", precision[-1],
                 f"no progress from step {s0} to {s1}: in {len(window)} checkpoints no sample looked like the "
                 f"real data (precision at most {max(precision):.2f}) and FD did not fall (median {before:.3g} -> "
                 f"{after:.3g}); the model may have failed to converge")


def _non_finite(name: str, steps: Sequence[float], values: Sequence[float], prev_step: float,
                step: int) -> tuple[int, str, float, float] | None:
    """(the step its run of non-finite values began, name, the value there, the first in this
    window) for a loss not finite since the previous checkpoint, else None: "became nan at step
    810" at the checkpoint after, when it became nan at 750."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    bad = (steps > prev_step) & (steps <= step) & ~np.isfinite(values)
    if not bad.any():
        return None
    first_bad = steps[bad].min()
    finite_before = steps[np.isfinite(values) & (steps < first_bad)]
    since = finite_before.max() if finite_before.size else -math.inf
    run = ~np.isfinite(values) & (steps > since)
    began = steps[run].min()
    return int(began), name, float(values[run & (steps == began)][0]), float(values[bad & (steps == first_bad)][0])


def _loss_failure(hist: list[Mapping], rules: AlertRules, losses: Losses) -> Alert | None:
    """A non-finite loss since the previous checkpoint, or the discriminator winning."""
    cur = hist[-1]
    step = int(cur["step"])
    prev_step = int(hist[-2]["step"]) if len(hist) > 1 else -math.inf
    broken = sorted(filter(None, (_non_finite(name, *losses[name], prev_step, step) for name in losses)))
    if broken:  # the loss that broke first (loss_G at 750, not loss_D at 850 because 'D' sorts first)
        began, name, first, now = broken[0]
        if began > prev_step:
            said = f"became {first} at step {began}"
        elif str(first) == str(now):  # nan and nan, inf and inf
            said = f"has been {now} since step {began}"
        else:
            said = f"has not been finite since step {began} ({first} there, {now} now)"
        return Alert(step, "convergence", now, f"loss '{name}' {said}")
    d_names, g_names = loss_roles(list(losses), rules)
    for dn in d_names:
        d = _series(losses, dn, step)
        for gn in g_names:
            g = _series(losses, gn, step)
            n_recent = max(rules.loss_recent_min, int(rules.loss_recent_frac * min(len(d), len(g))))
            if len(d) < 2 * n_recent or len(g) < 2 * n_recent:
                continue
            d_rec, d_old = np.nanmedian(d[-n_recent:]), np.nanmedian(d[:-n_recent])
            g_rec, g_old = np.nanmedian(g[-n_recent:]), np.nanmedian(g[:-n_recent])
            if (abs(d_rec) < rules.d_loss_floor and abs(d_old) > 2 * rules.d_loss_floor
                    and g_old > 0 and g_rec > rules.g_loss_rise * g_old):
                return Alert(step, "convergence", float(d_rec),
                             f"discriminator loss '{dn}' collapsed to {d_rec:.3g} (was {d_old:.3g}) while generator "
                             f"loss '{gn}' climbed to {g_rec:.3g} (was {g_old:.3g}) by step {step}")
    return None


# --------------------------------------------------------------------------- showing them


def alert_step(alert: Mapping[str, Any]) -> int:
    """A stored alert's step, for sorting (-1 when it has none)."""
    step = alert.get("step")
    return step if isinstance(step, int) else -1


def alert_name(alert: Mapping[str, Any]) -> str:
    """A stored alert named in a line: ``step 200 [collapse]``."""
    return f"step {alert['step']} [{alert['rule']}]"


#: Alerts listed (by `info`, above the viewer's map) besides each rule's first: the newest this many.
NEWEST_ALERTS = 3


def onsets_and_newest(alerts: Sequence[Mapping[str, Any]], newest: int = NEWEST_ALERTS) -> list[Mapping[str, Any]]:
    """The stored alerts worth listing, in step order: each rule's first (where a failure
    began: an alert holds at every later step too, 568 lines of `info` on a 600-step store)
    and the ``newest``."""
    ordered = sorted(alerts, key=alert_step)
    firsts: dict[Any, int] = {}
    for i, alert in enumerate(ordered):
        firsts.setdefault(alert.get("rule"), i)
    keep = set(firsts.values()) | set(range(max(0, len(ordered) - newest), len(ordered)))
    return [ordered[i] for i in sorted(keep)]


# --------------------------------------------------------------------------- entry point


def evaluate_alerts(
    history: Sequence[Mapping[str, Any]],
    rules: AlertRules = DEFAULT_RULES,
    losses: Losses | None = None,
    names: Mapping[str, str] | None = None,
) -> list[Alert]:
    """Alerts that hold at the newest checkpoint of ``history``.

    Parameters
    ----------
    history : per-step metric dicts (from :func:`engine.metrics.step_metrics`), each with
        a ``"step"`` key; any order (sorted by step here). Missing keys or NaN values
        disable the rules that need them. Or :meth:`History.upto` (a growing run's steps, its
        columns kept between calls: the same alerts, at a cost that grows little with the run).
    rules : thresholds; :data:`DEFAULT_RULES` by default.
    losses : trainer scalars ``{name: (steps, values)}`` (from
        :func:`engine.trainer_logs.read_trainer_scalars`) for the ``convergence`` rule.
    names : the labels' and probes' own names by their shares' keys
        (``label_share:round_thing`` -> ``round thing``), for the messages.

    Returns
    -------
    list[Alert]
        At most one alert per rule, in :data:`RULE_NAMES` order.
    """
    if not history:
        return []
    if isinstance(history, _Prefix):  # a History's steps, sorted as they were put
        hist = history
    else:
        for rec in history:
            if "step" not in rec:
                raise ValueError(f"Expected every history record to have a 'step' key. Got keys {sorted(rec)[:8]} instead.")
        hist = _Prefix(sorted(history, key=lambda r: int(r["step"])))
    checks = {
        "collapse": lambda: _collapse(hist, rules),
        "memorisation": lambda: _memorisation(hist, rules),
        "fd_rising": lambda: _fd_rising(hist, rules),
        "label_drift": lambda: _label_drift(hist, rules, names or {}),
        "probe_drift": lambda: _probe_drift(hist, rules, names or {}),
        "convergence": lambda: _convergence(hist, rules, losses),
    }
    out = []
    for name in RULE_NAMES:
        if name in rules.enabled:
            alert = checks[name]()
            if alert is not None:
                out.append(alert)
    return out
