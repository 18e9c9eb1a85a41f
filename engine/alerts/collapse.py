"""The collapse rule: diversity dropped, near-duplicates rose, recall fell or the real data's regions were dropped."""
from __future__ import annotations

import bisect
import math
from typing import Mapping

import numpy as np

from engine.alerts.history import _comparable_to, _Prefix
from engine.alerts.settings import Alert, AlertRules
from engine.alerts.values import _finite, _get, _pct


_LABELS = {"vendi": "Vendi score", "pairwise_cosine": "mean pairwise cosine distance"}


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
