"""The convergence rule: a non-finite loss, the discriminator winning, or no progress in the samples; loss_roles."""
from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

import numpy as np

from engine.alerts.settings import DEFAULT_RULES, Alert, AlertRules, Losses
from engine.alerts.values import _finite, _get


_D_TOKENS = {"d", "disc", "dis", "discriminator", "critic"}
_G_TOKENS = {"g", "gen", "generator"}
#: A generator loss also when no discriminator token says otherwise (MMGeneration's loss_gan).
_G_ONLY_TOKENS = _G_TOKENS | {"gan"}
#: Learning rates named after their network (MMGeneration's lr/generator) are no losses, nor are the
#: discriminator's outputs the PyTorch DCGAN tutorial logs beside its losses (D(x), D_x: near 1 as
#: D wins, so read as a loss that "collapsed" they could only misfire).
_NOT_LOSS_TOKENS = {"lr", "learning", "x"}


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
