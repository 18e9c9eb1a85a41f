"""The memorisation rule: copies of training images beyond chance, or samples closer to training than held-out data."""
from __future__ import annotations

import functools
import math
from typing import Mapping

from engine.alerts.settings import DEFAULT_RULES, Alert, AlertRules
from engine.alerts.values import _finite, _get, _pct


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
