"""The label_drift and probe_drift rules: the samples' label or probe shares off the reference's by more than chance."""
from __future__ import annotations

import math
from typing import Mapping

from engine.alerts.settings import DEFAULT_RULES, Alert, AlertRules
from engine.alerts.values import _finite, _get, _pct


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
    # only the labels the step had: a store's column is NaN at the steps before its label's first
    measured = [(name, pair) for name, pair in shares.items() if _finite(*pair)]
    diffs = sorted(measured, key=lambda kv: kv[1][0] - kv[1][1])
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
