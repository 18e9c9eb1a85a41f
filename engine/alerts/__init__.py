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

The modules, each depending only on those above it: ``settings`` (:class:`Alert`,
:class:`AlertRules`), ``values`` (a record's values), ``history`` (:class:`History`), one per
rule family (``collapse``, ``memorisation``, ``fd_rising``, ``drift``, ``convergence``),
``listing`` (stored alerts as listed) and ``evaluate`` (:func:`evaluate_alerts`). This package
gives the names the rest of evowatch imports.
"""
from engine.alerts.collapse import _built_or_held
from engine.alerts.convergence import loss_roles
from engine.alerts.drift import probe_drift_reach
from engine.alerts.evaluate import evaluate_alerts
from engine.alerts.fd_rising import FD_JUMP_KEEP, FD_JUMP_LOOKBACK, FD_LEVEL_STEPS
from engine.alerts.history import History, _Baseline
from engine.alerts.listing import NEWEST_ALERTS, alert_name, alert_step, onsets_and_newest, rule_onsets
from engine.alerts.memorisation import memorisation_blind
from engine.alerts.settings import DEFAULT_RULES, RULE_NAMES, Alert, AlertRules, Losses
from engine.alerts.values import _get

__all__ = ["DEFAULT_RULES", "FD_JUMP_KEEP", "FD_JUMP_LOOKBACK", "FD_LEVEL_STEPS", "NEWEST_ALERTS", "RULE_NAMES",
           "Alert", "AlertRules", "History", "Losses", "_Baseline", "_built_or_held", "_get", "alert_name",
           "alert_step", "evaluate_alerts", "loss_roles", "memorisation_blind", "onsets_and_newest", "rule_onsets",
           "probe_drift_reach"]
