"""Acting on an alert's onset: the pause file, the ALERT line and the --on-alert command."""
from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from engine.alerts import Alert
from engine.pause import AlertCommands, pause_is_users, pause_path, write_pause
from stores.format import one_line
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)
class _Act:
    """:class:`~engine.signals.hook.Signals`' actions on alerts. Signals gives them ``run_dir``,
    ``on_alert``, ``pause_on_alert``, ``_commands`` (the --on-alert runs) and ``_announced``."""

    def _act(self, store: StoreWriter, stored: list[dict], onsets: list[Alert], of_step: Sequence) -> None:
        """Pause naming every alert of the step, store the alert list, then announce each onset.
        The pause comes first: stored, an alert is acted on no more, and a watch stopped while
        an --on-alert command ran (or a run folder it could not write) never paused the trainer."""
        if onsets:  # acted on once the rows they read are in the store (an --on-alert hook reads them)
            self._write_measured(store, at_once=True, alerts_complete=False)
        if onsets and self.pause_on_alert:
            self._pause(onsets, of_step)
        self._alert_list = sorted(stored, key=lambda a: (a["step"], a["rule"]))
        if onsets:  # kept unsaid with the list until announced: a watch killed between has the next one say them
            store.set_alerts(self._alert_list, onsets=[alert.to_dict() for alert in onsets])
            self._alerts_caught_up(store)
            for alert in onsets:
                self._announce(alert, store)
            store.said_onsets([alert.to_dict() for alert in onsets])

    def _pause(self, onsets: list[Alert], of_step: Sequence) -> None:
        """Write the pause file naming every alert of the step (``of_step``), in place of one evowatch
        wrote for an earlier alert; a file of the user's own is kept, said (the trainer waits on it)."""
        if pause_is_users(self.run_dir):
            log.warning("%s is not evowatch's: kept as it is (the trainer waits on it); step %d [%s] is not written "
                        "in it: delete it to resume training", pause_path(self.run_dir), onsets[0].step,
                        ", ".join(alert.rule for alert in onsets))
            return
        try:
            write_pause(self.run_dir, of_step)  # one pause naming every alert of the step
        except OSError as exc:
            log.error("%s: cannot write the pause file (%s): training goes on; make the run folder writable",
                      self.run_dir, exc.strerror or exc)

    def _announce(self, alert: Alert, store: StoreWriter | None = None, late: str = "") -> None:
        self._announced[(alert.step, alert.rule)] = alert.to_dict()
        print(one_line(f"evowatch: ALERT step {alert.step} [{alert.rule}] {alert.message}{late}"), file=sys.stderr)
        if self.on_alert:
            self._commands = self._commands or AlertCommands(self.on_alert, store=store and store.path,
                                                             run_dir=self.run_dir)
            self._commands.submit(alert)

    def end(self, wait: bool) -> None:
        """The watch ends: wait for the --on-alert commands left to run (``--once``), or stop them
        (a watch stopped, or failed)."""
        if self._commands:
            if wait:
                self._commands.finish()
            self._commands.stop()
