"""Alerts as the store keeps them: one record's form, the rows of the ``alerts/`` arrays, and
the onsets and withdrawals a watch is still to say."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stores import format as fmt


def _alert_record(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An alert as the store gives it back: ``{"step", "rule", "value", "message"}``, the value
    None where JSON has no number for it (:func:`stores.format.json_number`), so that a list read
    back equals the list written."""
    value = alert.get("value")
    return {"step": int(alert["step"]), "rule": str(alert["rule"]),
            "value": None if value is None else fmt.json_number(float(value)), "message": str(alert["message"])}


def _unsaid(records: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], listed: bool) -> list[dict[str, Any]]:
    """The alerts of ``records`` whose (step, rule) ``new`` holds (``listed``) or lacks, once each:
    what a watch is still to say, stored with the list it is said of (a kill between the list and
    its line lost the line: the next watch read the list as if it had been said)."""
    kept = {(a["step"], a["rule"]) for a in new}
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for alert in map(_alert_record, records):
        if ((alert["step"], alert["rule"]) in kept) == listed:
            out.setdefault((alert["step"], alert["rule"]), alert)
    return list(out.values())


def _alert_columns(alerts: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The ``alerts/`` arrays' rows of ``alerts``."""
    return {"step": np.array([a["step"] for a in alerts], np.int64),
            "rule": np.array([a["rule"] for a in alerts], dtype=str),
            "value": np.array([np.nan if a["value"] is None else a["value"] for a in alerts], np.float64),
            "message": np.array([a["message"] for a in alerts], dtype=str)}
