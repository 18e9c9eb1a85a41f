"""What became of alerts said before, or left unsaid by a killed watch: withdrawn, moved, announced late."""
from __future__ import annotations

import logging
import sys

import numpy as np

from engine.alerts import Alert
from engine.backlog_log import counted
from engine.pause import move_pause, pause_path, read_pause
from stores.format import one_line
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)
class _Withdrawals:
    """:class:`~engine.signals.hook.Signals`' lines on the alert list's changes. Signals gives
    them ``run_dir``, ``_renamed``, ``_abandoned``, ``_announced``, ``_unannounced`` and :meth:`_announce`."""

    def _say_withdrawn_failing(self, store: StoreWriter, before: dict[tuple[int, str], dict]) -> None:
        """:meth:`_say_withdrawn` as the pass fails: a store failing too (moved, its disk full)
        raised from there in place of the pass's error (a Ctrl-C said as a full disk, rc 2); its
        unsaid record then stays, said by the next watch."""
        try:
            self._say_withdrawn(store, before)
        except Exception as exc:
            log.debug("withdrawals not marked said (%s): the next watch says them again", exc)

    def start(self, store: StoreWriter) -> None:
        """The watch starts: note the onsets a watch killed before their ALERT lines left unsaid
        (stored, never said nor acted on). They are said, and --on-alert run, once this watch's
        first whole pass confirms they still hold (:meth:`_say_unannounced`): said here, one whose
        step was rewritten healthy meanwhile ran its command, then was withdrawn (round BL). The
        withdrawals left unsaid are said by that pass too, those still true."""
        self._unannounced = {(a["step"], a["rule"]): a for a in store.unsaid_onsets()}

    def _say_unannounced(self, store: StoreWriter) -> None:
        """After a whole pass: say the onsets noted at :meth:`start` that the alert list still holds
        (at the step their checkpoint is read at now), in step order, and run --on-alert for them."""
        if not self._unannounced:
            return
        now = {(a["step"], a["rule"]): a for a in store.alerts()}
        for key in sorted(self._unannounced):
            if key in now and key not in self._announced:  # not said as a new onset in the pass
                record = now[key]
                alert = Alert(record["step"], record["rule"], np.nan if record["value"] is None else record["value"],
                              record["message"])
                self._announce(alert, store, late=" (stored by a watch killed before it said so)")
        store.said_onsets(list(self._unannounced.values()))
        self._unannounced = {}

    def _say_withdrawn(self, store: StoreWriter, before: dict[tuple[int, str], dict]) -> None:
        """One line per rule whose alerts stored before this call (or announced in it, or taken off
        the list by a watch killed before it said so) it no longer raises: a step measured late or
        again changed the history they read (round BF: a healthy step 850 that came after 900 broke
        FD's rise to 900, and the alert announced there, acted on by --on-alert, left the list
        without a word). Said like an alert: -q keeps it; then the store's unsaid ones are said."""
        now = {(a["step"], a["rule"]) for a in store.alerts()}
        unsaid = {(a["step"], a["rule"]): a for a in store.unsaid_withdrawals()}
        gone: dict[str, list[dict]] = {}
        for key, alert in sorted({**unsaid, **before, **self._announced}.items()):
            if key in self._unannounced and key not in now:
                self._say_unannounced_gone(key, now)
            elif key not in now:
                gone.setdefault(key[1], []).append(alert)
        for rule, alerts in gone.items():
            moved = [a for a in alerts if (self._renamed.get(a["step"]), rule) in now]
            if moved:
                self._say_moved(store, rule, moved)
            if alerts := [a for a in alerts if a not in moved]:
                more = f" (and {counted(len(alerts) - 1, 'later step')})" if len(alerts) > 1 else ""
                print(one_line(f"evowatch: ALERT WITHDRAWN step {alerts[0]['step']}{more} [{rule}]: "
                               f"{self._why_gone(alerts[0]['step'])}; it said: {alerts[0]['message']}"
                               f"{self._pause_kept(alerts, now)}"), file=sys.stderr)
        store.said_withdrawals()

    def _why_gone(self, step: int) -> str:
        """Why the alerts of ``step`` left the list: its checkpoint renamed, abandoned, or measured anew."""
        new, skipped = self._renamed.get(step), self._abandoned.get(step)
        return (f"its checkpoint is read at step {new} now (renamed), where it does not hold" if new is not None
                else f"step {step} is the abandoned run's: the run resumed at step {skipped[0]} went on to step "
                     f"{skipped[1]} without it" if skipped
                else "no longer holds on the steps as measured now (a step measured late or again)")

    def _say_unannounced_gone(self, key: tuple[int, str], now: set[tuple[int, str]]) -> None:
        """An onset a killed watch left unsaid (:meth:`start`) that this watch's pass took off the list:
        no ALERT line nor --on-alert for it; one line says it was never announced and is gone (a
        WITHDRAWN line of an alert never said), unless its checkpoint was renamed to a step where it
        holds: announced there (:meth:`_say_unannounced`)."""
        alert = self._unannounced.pop(key)
        if (moved := (self._renamed.get(key[0]), key[1])) in now:
            self._unannounced[moved] = alert
            return
        print(one_line(f"evowatch: step {key[0]} [{key[1]}], stored by a watch killed before it said so, was never "
                       f"announced nor --on-alert run, and is gone: {self._why_gone(key[0])}; it said: "
                       f"{alert['message']}{self._pause_kept([alert], now)}"), file=sys.stderr)

    def _say_moved(self, store: StoreWriter, rule: str, moved: list[dict]) -> None:
        """One line for a rule's alerts whose checkpoints were renamed to another step where they
        hold on: not a new onset (a folder renamed from step_200 to step_250 had its collapse said
        at 250 as new, the trainer paused and --on-alert run again, and 200's left unsaid)."""
        old, new = moved[0]["step"], self._renamed[moved[0]["step"]]
        at = {a["step"]: a for a in store.alerts() if a["rule"] == rule}
        now = at[new]
        try:  # the pause file written for it named the old step
            move_pause(self.run_dir, [(alert, at[self._renamed[alert["step"]]]) for alert in moved])
        except OSError as exc:
            log.error("%s names step %d still, not %d (%s): make it writable", pause_path(self.run_dir), old, new,
                      exc.strerror or exc)
        more = f" (and {counted(len(moved) - 1, 'other step')})" if len(moved) > 1 else ""
        print(one_line(f"evowatch: ALERT MOVED step {old} -> {new}{more} [{rule}]: its checkpoint is read at step {new} "
                       f"now (renamed); it says: {now['message']}"), file=sys.stderr)

    def _pause_kept(self, withdrawn: list[dict], now: set[tuple[int, str]]) -> str:
        """What becomes of the pause file written for a withdrawn alert: it stays (docs/metrics.md),
        so a trainer paused on it waits on; the WITHDRAWN line said only "no longer holds"."""
        record = read_pause(self.run_dir)
        named = {(a.get("step"), a.get("rule")) for a in record["alerts"]} if record else set()
        if not named & {(a["step"], a["rule"]) for a in withdrawn}:
            return ""
        if holding := sorted({rule for _, rule in named & now}):
            return f"; {pause_path(self.run_dir)} stays: it names {', '.join(holding)} too, still holding"
        return f"; {pause_path(self.run_dir)}, written for it, stays: delete it to resume training"
