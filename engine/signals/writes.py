"""The measured rows written to the store with the alert list they led to, and the alerts' history."""
from __future__ import annotations

import time

import numpy as np

from engine.alerts import History
from stores.zarr_store import StoreWriter

#: Seconds of measuring a backlog between writes of the rows measured (a row a step cost more
#: than the metrics); a reader sees them that much later at most.
WRITE_EVERY_S = 2.0


class _Writes:
    """:class:`~engine.signals.hook.Signals`' writes of its measured rows and alert list. Signals
    gives them the state ``_history``, ``_unwritten``, ``_unwritten_samples``, ``_written_at``,
    ``_alert_list``, ``_alerts_behind``, ``_rewrites`` and ``_abandoned``."""

    def _steps_measured(self, store: StoreWriter) -> History:
        """The per-step metrics as the alert rules' history, read from the store once per call
        and kept up to date as steps are measured: read again for each step of a 1,500-step
        backlog, the table cost 21 s."""
        if self._history is None:  # without the steps a resumed run went past (:func:`_abandoned_steps`)
            table = store.step_metrics()
            kept = ~np.isin(table.get("step", []), list(self._abandoned))
            self._history = History({name: np.asarray(column)[kept] for name, column in table.items()})
        return self._history

    def _write_measured(self, store: StoreWriter, at_once: bool = False, alerts_complete: bool = True) -> None:
        """Write the measured steps' rows together, then the alert list they led to: every
        WRITE_EVERY_S seconds, and at the end (a reader never sees an alert before its row).
        ``alerts_complete``: the alert list holds every alert of the rows (not when an onset is
        still to be added, or a stop came before their evaluation)."""
        if not (at_once or time.monotonic() - self._written_at >= WRITE_EVERY_S):
            return
        if self._unwritten_samples:  # before the steps' rows: a reader seeing a row sees its samples' values
            store.write_sample_metrics(self._unwritten_samples)
            self._unwritten_samples = {}
        if self._unwritten:
            if not (alerts_complete and self._alerts_stored(store)):
                self._note_alerts_behind(store, min(step for step, _, _ in self._unwritten))
            store.write_steps_metrics(self._unwritten)
        if self._alert_list is not None and self._alert_list != store.alerts():
            store.set_alerts(self._alert_list)
        if alerts_complete:
            self._alerts_caught_up(store)
        self._unwritten, self._written_at = [], time.monotonic()

    def _alerts_stored(self, store: StoreWriter) -> bool:
        """Whether the store holds the alert list the rows to write lead to, and the steps
        rewritten so far: they are then never ahead of their alerts, and nothing is noted (a
        note and its undoing rewrote the metrics' attributes, every step's record with them,
        twice at each new step: 30 ms of a call at 2,000 steps)."""
        return (self._alerts_behind is None and self._alert_list in (None, store.alerts())
                and self._rewrites == store.alerts_rewritten)

    def _note_alerts_behind(self, store: StoreWriter, first: int) -> None:
        """Before rows are stored ahead of their alerts: the store's ``alerts_from`` is moved to
        just before ``first``, so that a watch stopped before the alert list is written has the
        next one evaluate the alerts of the steps from ``first`` on (round AV: a watch killed, or
        stopped by a Ctrl-C that came during the rows' write, between the two lost the alert for
        good: the step kept its row, so it was not measured again)."""
        kept = store.alerts_from
        if self._alerts_behind is None:
            self._alerts_behind = (kept,)
        if kept is None or first - 1 < kept or self._rewrites != store.alerts_rewritten:
            self._set_alerts_from(store, first - 1 if kept is None else min(kept, first - 1))  # evaluated again after it

    def _alerts_caught_up(self, store: StoreWriter) -> None:
        """The alert list stored holds the alerts of every row stored: ``alerts_from`` back as
        it was before (:meth:`_note_alerts_behind`)."""
        if self._alerts_behind is not None:
            self._set_alerts_from(store, self._alerts_behind[0])
            self._alerts_behind = None

    def _stored_alerts(self, store: StoreWriter) -> list[dict]:
        """The alert list as this call has it (written with the rows, see _write_measured)."""
        if self._alert_list is None:
            self._alert_list = store.alerts()
        return self._alert_list

    def _set_alerts_from(self, store: StoreWriter, step: int | None) -> None:
        """Note the step after which alerts are evaluated again, with the steps rewritten so far:
        a watch resumed after a stop skips the steps before a rewrite too (see _before_a_rewrite)."""
        store.set_alerts_from(step, dict(self._rewrites))
