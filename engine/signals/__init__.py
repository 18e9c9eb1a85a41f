"""After each ingest: per-step metrics, trainer scalars and alerts, written into the store.

Each step is measured once over its current generated checkpoints (again only when they
change: a grid rewritten in place, another checkpoint at the same step), against reference
statistics built once from the store's real/held-out rows (rebuilt only when those
references change), so the cost of a step does not grow with the history.

The modules: ``steps`` (which steps are due, rewritten, abandoned or renamed), ``row_window``
(the sample rows read ahead), ``references`` (the reference statistics and probes),
``scalars`` (the trainer's logged scalars), ``measure`` (one step measured), ``writes`` (rows
and alert list written together; the alerts' history), ``judge`` (alerts judged and judged
again), ``act`` (pause, ALERT line, --on-alert), ``withdrawals`` (alerts withdrawn, moved or
announced late) and ``hook`` (:class:`Signals`: its state and a call's order, the others as
mixins). This package gives the names the rest of evowatch imports.
"""
from engine.signals.hook import Signals
from engine.signals.judge import AFTER_NEWEST, JUDGED_BEFORE
from engine.signals.measure import TWINS_SAID
from engine.signals.references import MIN_REFERENCE, check_probe_names
from engine.signals.row_window import READ_AHEAD_ROWS
from engine.signals.scalars import UNITS_APART
from engine.signals.writes import WRITE_EVERY_S

__all__ = ["AFTER_NEWEST", "JUDGED_BEFORE", "MIN_REFERENCE", "READ_AHEAD_ROWS", "TWINS_SAID", "UNITS_APART",
           "WRITE_EVERY_S", "Signals", "check_probe_names"]
