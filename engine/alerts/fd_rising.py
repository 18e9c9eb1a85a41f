"""The fd_rising rule: Fréchet distance rose for several checkpoints running, or jumped and held."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from engine.alerts.settings import Alert, AlertRules
from engine.alerts.values import _finite, _get, _pct


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
