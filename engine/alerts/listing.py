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
    firsts: dict[Any, int] = {}
    for i, alert in enumerate(ordered):
        firsts.setdefault(alert.get("rule"), i)
    keep = set(firsts.values()) | set(range(max(0, len(ordered) - newest), len(ordered)))
    return [ordered[i] for i in sorted(keep)]
