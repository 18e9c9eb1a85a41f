"""The per-step metric table, which of its columns the page shows, and the alerts' text."""
from __future__ import annotations

import logging
import re
from typing import Any, Sequence

import numpy as np
import streamlit as st

from engine.alerts import NEWEST_ALERTS, onsets_and_newest
from viewer.data.commits import Commit, reader

log = logging.getLogger(__name__)


def alerts_shown(alerts: Sequence[dict[str, Any]], newest: int = NEWEST_ALERTS) -> list[dict[str, Any]]:
    """The alerts listed above the map (:func:`engine.alerts.onsets_and_newest`)."""
    return onsets_and_newest(alerts, newest)


_STEP_NUMBERS = re.compile(r"\bstep (\d+)(?: (and|to) (\d+))?")


def step_numbers(message: str) -> str:
    """The step numbers in an alert message written as the viewer writes steps ("between step
    1,250 and 2,500", "from step 1,000 to 8,000", not "1250 and 2500"); the stored message is
    left as the engine wrote it."""
    return _STEP_NUMBERS.sub(lambda m: f"step {int(m[1]):,}" + (f" {m[2]} {int(m[3]):,}" if m[3] else ""), message)


def alert_text(alert: dict[str, Any]) -> str:
    """One alert as the page lists it, named by its rule (the expander says "each rule's
    first"): "Step 2,500 · collapse: diversity fell … between step 1,250 and 2,500 …"."""
    message = step_numbers(str(alert.get("message", alert.get("rule", "alert"))))
    rule = str(alert.get("rule", "")).replace("_", " ")
    step = alert.get("step")
    where = f"Step {step:,}" if isinstance(step, int) else ""
    label = " · ".join(filter(None, (where, rule)))
    return f"{label}: {message}" if label else message


def _alert_line(alert: dict[str, Any]) -> str:
    """"rule: message", steps written as the page writes them."""
    return f"{alert.get('rule', 'alert')}: {step_numbers(str(alert.get('message', '')))}"


_RULE_METRICS = {
    "collapse": ("vendi", "pairwise_cosine", "duplicate_frac", "coverage", "recall", "region_tv"),
    "memorisation": ("near_copy_frac", "tight_copy_frac", "copy_log_ratio", "copy_zu", "nn_train_median"),
    "fd_rising": ("fd",),
    "label_drift": ("label_tv",),
    "probe_drift": ("probe_share",),
    "convergence": ("loss",),
}


#: A collapse or memorisation alert's metric, by the words of its message (the conditions of
#: engine/alerts/collapse.py and memorisation.py; a fall in diversity names its metric: a
#: pairwise-cosine alert was marked on Vendi's chart; a tight-copy alert opened the near-copy chart, round AN).
_MESSAGE_METRICS = {
    "collapse": {"Vendi score": ("vendi",), "pairwise cosine": ("pairwise_cosine",),
                 "diversity fell": ("vendi", "pairwise_cosine"), "partial mode collapse": ("duplicate_frac",),
                 "recall fell": ("recall",), "regions off": ("region_tv",)},
    "memorisation": {"near-copies": ("near_copy_frac",), "are copies of training images": ("tight_copy_frac",),
                     "log distance ratio": ("copy_log_ratio",)},
}


def _watched(alert: dict[str, Any]) -> tuple[str, ...] | None:
    """The metrics an alert's rule watches (None: unknown rule). `convergence` seen in the
    samples ("no progress …": precision and FD stalled) watches those, not the losses; a
    `collapse` or `memorisation` alert the metric its message names (a mode-dropping alert
    showed Vendi)."""
    rule, message = str(alert.get("rule", "")), str(alert.get("message", ""))
    if rule == "convergence" and message.startswith("no progress"):
        return ("precision", "fd")
    if rule in _MESSAGE_METRICS:
        return next((m for words, m in _MESSAGE_METRICS[rule].items() if words in message), _RULE_METRICS[rule])
    return _RULE_METRICS.get(rule)


def _alert_matches(alert: dict[str, Any], column: str) -> bool:
    """Mark an alert on the charts of the metrics its rule watches (all, when unknown)."""
    watched = _watched(alert)
    return watched is None or any(column.startswith(w) for w in watched)


DEFAULT_SIGNALS = ("vendi", "coverage", "precision", "fd", "near_copy_frac", "nn_train_median", "label_tv")


def _first_watched(alert: dict[str, Any], columns: Sequence[str]) -> str | None:
    """The first of the columns an alert's rule watches, in the rule's order."""
    watched = _watched(alert) or ()
    return next((c for w in watched for c in columns if c.startswith(w)), None)


def _measured_columns(table: dict[str, np.ndarray]) -> list[str]:
    return [c for c in table if c != "step" and np.isfinite(np.asarray(table[c], np.float64)).any()]


def alerted_signal_columns(table: dict[str, np.ndarray], alerts: Sequence[dict[str, Any]]) -> list[str]:
    """The metric each alert is marked on (its rule's first measured one), once each."""
    cols = _measured_columns(table)
    return list(dict.fromkeys(c for a in alerts if (c := _first_watched(a, cols))))


def default_signal_columns(table: dict[str, np.ndarray], alerts: Sequence[dict[str, Any]] = (), k: int = 4) -> list[str]:
    """The metrics plotted at first: the first of each alerting rule's (a memorisation alert
    showed no near-copy chart), then the usual ones, ``k`` in all when no rule adds more."""
    cols = _measured_columns(table)
    chosen = alerted_signal_columns(table, alerts)
    usual = [c for c in DEFAULT_SIGNALS if c in cols] or cols
    return chosen + [c for c in usual if c not in chosen][:max(0, k - len(chosen))]


@st.cache_data(max_entries=8, show_spinner=False)
def step_metrics(path: str, commit: Commit) -> dict[str, np.ndarray]:
    return reader(path, commit).step_metrics()


@st.cache_data(max_entries=8, show_spinner=False)
def scalars(path: str, commit: Commit) -> dict[str, np.ndarray]:
    return reader(path, commit).scalars()


#: What each per-step metric says and which way is good, behind the Metrics picker's help
#: icon (the page showed raw names: copy_zu, duplicate_expected). docs/metrics.md has the formulas.
METRIC_GLOSSARY = (
    "**Diversity** — `vendi`: effective number of distinct samples (higher: more diverse; a fall: collapse); "
    "`pairwise_cosine`: mean cosine distance between samples (a fall: collapse); `duplicate_frac`: share of "
    "samples with a near-duplicate among the step's (a rise: partial collapse; `duplicate_expected`: real data's).  \n"
    "**Fidelity** — `precision`: share of samples that look like real data (higher better); `recall` and "
    "`coverage`: share of the real data the samples cover (higher better); `density`; `fd`: Fréchet distance "
    "to the real features (lower better); `region_tv`: how far the samples' shares of the real data's regions "
    "(k-means of its features) are from the real ones (a rise past `region_tv_chance`: modes dropped); "
    "`region_empty_share`: real data in regions without a sample.  \n"
    "**Copying** — `near_copy_frac`: share of samples nearly identical to a training image (a rise: "
    "memorisation; `near_copy_expected`: chance level); `tight_copy_frac`: share closer to a training image than "
    "nearly every held-out image is (exact copies; `tight_copy_expected`: chance level); `nn_train_median`: median distance to the nearest "
    "training image; `copy_log_ratio`: about 0 when samples are no closer to training than to held-out data, "
    "below 0 when copying; `copy_zu`: Meehan's test, far below 0 copying, far above underfitting.  \n"
    "**Bias** — `label_tv`: distance between the samples' label shares and the real ones (lower better); "
    "`label_share:L`, `probe_share:P` and their `_ref_` counterparts.  \n"
    "**The real reference's** — `real_vendi`, `real_pairwise_cosine`: the real data's values at the step's size "
    "(the diversity bar); `real_pairwise_cosine_sd`: how far `pairwise_cosine` of that many real samples moves by "
    "chance.  \n"
    "**Counts and thresholds** — `n_generated`: the samples measured; `n_reference`, `n_holdout`: the real and "
    "held-out samples; `regions`: the real data's regions; `duplicate_threshold`, `near_copy_threshold`, "
    "`tight_copy_threshold`: the distances under which a sample counts as a duplicate or a copy; "
    "`copy_neighbourhoods`, `copy_log_ratio_p`: the distinct training neighbourhoods `copy_log_ratio` is over, and "
    "its sign test's p-value; `copy_null_share`: the chance that test counts a fresh sample's neighbourhood closer "
    "in this store. Formulas and sources: docs/metrics.md.")


#: Which way is good, after a metric's name on its chart (the glossary says why).
METRIC_BETTER = {
    **dict.fromkeys(("vendi", "pairwise_cosine", "precision", "recall", "coverage", "nn_train_median"),
                    "higher is better"),
    **dict.fromkeys(("duplicate_frac", "fd", "near_copy_frac", "tight_copy_frac", "label_tv", "region_tv", "region_empty_share"),
                    "lower is better"),
    **dict.fromkeys(("copy_log_ratio", "copy_zu"), "best near 0"),
}


def watched_without_metrics(path: str, commit: Commit) -> bool:
    """Whether the store's latest watch ran with ``--no-metrics`` (no metrics nor losses will come)."""
    watches = [entry for entry in reader(path, commit).attrs.get("history", []) if entry.get("event") == "watch"]
    return bool(watches and watches[-1].get("no_metrics"))

