"""Stored alerts as `info` and the viewer list them: each rule's onset and the newest."""
from __future__ import annotations

from typing import Any, Mapping, Sequence


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
    keep = _onset_places(ordered) | set(range(max(0, len(ordered) - newest), len(ordered)))
    return [ordered[i] for i in sorted(keep)]


def rule_onsets(alerts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Each rule's first stored alert (where its failure began), in step order."""
    ordered = sorted(alerts, key=alert_step)
    return [ordered[i] for i in sorted(_onset_places(ordered))]


def _onset_places(ordered: Sequence[Mapping[str, Any]]) -> set[int]:
    """Where in ``ordered`` (alerts in step order) each rule's first alert is."""
    firsts: dict[Any, int] = {}
    for i, alert in enumerate(ordered):
        firsts.setdefault(alert.get("rule"), i)
    return set(firsts.values())
