"""evaluate_alerts: every enabled rule at a history's newest checkpoint, in RULE_NAMES order."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from engine.alerts.collapse import _collapse
from engine.alerts.convergence import _convergence
from engine.alerts.drift import _label_drift, _probe_drift
from engine.alerts.fd_rising import _fd_rising
from engine.alerts.history import _Prefix
from engine.alerts.memorisation import _memorisation
from engine.alerts.settings import DEFAULT_RULES, RULE_NAMES, Alert, AlertRules, Losses


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
