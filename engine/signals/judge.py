"""The alerts of a step judged: at its measure, again once the history it reads changed, and after the newest checkpoint."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.alerts import Alert, evaluate_alerts
from engine.metrics.per_step import metric_key
from engine.metrics.probes import parse_probe
from stores.format import array_names
from stores.zarr_store import StoreWriter

#: Begins the mark of an alert judged on an earlier step's version that was rewritten since.
JUDGED_BEFORE = " [judged before step "
#: Ends the message of an alert of a loss not finite after the newest checkpoint, said at it.
AFTER_NEWEST = ", after the newest checkpoint (step {})"


class _Judge:
    """:class:`~engine.signals.hook.Signals`' judgement of alerts. Signals gives them ``rules``,
    ``probes``, ``_reference``, ``_names``, ``_moved_to``, ``_rewrites``, ``_replaced``,
    ``_took_up``, the alert list (``_alert_list``, :meth:`_stored_alerts`) and :meth:`_act`."""

    def _alerts(self, store: StoreWriter, step: int, losses: dict) -> None:
        history = self._steps_measured(store).upto(step)
        fired = evaluate_alerts(history, self.rules, losses or None, {**self._stored_names(store), **self._names})
        stored = list(self._stored_alerts(store))
        late = self._still_late(stored, step, losses, fired)
        if not fired:
            if any(a["step"] == step and a not in late for a in stored):  # measured again: no alert now
                self._alert_list = [a for a in stored if a["step"] != step or a in late]
            return
        previous_step = next((h["step"] for h in reversed(history) if h["step"] < step), None)
        # acted on at onset: still holding from the step before, or raised at this step by an
        # earlier measure of it (a grid rewritten in place, every step measured again: a trainer
        # paused and resumed was paused again for the same alert)
        said = {a["rule"] for a in stored if a["step"] == previous_step or a["step"] == step} | \
            self._moved_to.get(step, set())  # an alert of its checkpoint at its old step: moved
        stored = [a for a in stored if a["step"] != step or a in late] + [a.to_dict() for a in fired]
        self._act(store, stored, [alert for alert in fired if alert.rule not in said], fired)

    def _still_late(self, stored: list[dict], step: int, losses: dict, fired: list[Alert]) -> list[dict]:
        """The alert of a loss not finite after ``step`` said at it (:meth:`_late_losses`) that this
        measure of the step does not raise again, while a loss logged after it is still not finite:
        dropped, a checkpoint after it in the same pass announced the NaN again and this one was
        said withdrawn (round BG: the newest checkpoint rewritten as the next one came)."""
        if "convergence" not in self.rules.enabled or any(alert.rule == "convergence" for alert in fired):
            return []
        late = [a for a in stored if a["step"] == step and a["message"].endswith(AFTER_NEWEST.format(step))]
        broken = any(not np.isfinite(np.asarray(values, float)[np.asarray(steps) > step]).all()
                     for steps, values in losses.values())
        return late if broken else []

    def _stored_names(self, store: StoreWriter) -> dict[str, str]:
        """The labels' and probes' names by their shares' array names as the store's labels give
        them, for steps measured by an earlier watch (round AS: alerts evaluated again on a
        resume said 'square_thing'); those measured here (:meth:`_note_names`) win."""
        # in the order their arrays were named (compute_step: the reference's labels sorted, then
        # the others in the store's order; round AT: the store's order for all, two of one array
        # name swapped names)
        ref = list(self._reference.label_names) if self._reference is not None else []
        labels = ref + [name for name in store.labels if name not in ref]
        out = {}
        for prefix, names in (("label_share", labels), ("probe_share", [parse_probe(p)[0] for p in self.probes])):
            keys = {metric_key(prefix, name): name for name in names}
            out.update({key: keys[metric] for metric, key in array_names(keys).items()})  # dog_small, dog_small_
        return out

    def _late_losses(self, store: StoreWriter, losses: dict, raised: set[tuple[int, str]]) -> None:
        """Losses logged after the newest measured checkpoint: a NaN there (a run that diverged,
        and may never write another checkpoint) is said now, not at the next checkpoint. The
        alert holds at that checkpoint (its message names the loss's step), so the next
        checkpoint, which sees the same losses, does not announce it again; nor does that
        checkpoint measured again (``raised``: the alerts stored before)."""
        if not losses or "convergence" not in self.rules.enabled:
            return
        steps = list(store.measured_steps())  # the step column alone: each metric's was read at every pass
        if not steps:
            return
        newest = max(steps)
        last_logged = max((int(np.max(s)) for s, _ in losses.values() if len(s)), default=newest)
        stored = list(self._stored_alerts(store))
        if last_logged <= newest or any(a["step"] == newest and a["rule"] == "convergence" for a in stored):
            return
        history = [{"step": step} for step in steps] + [{"step": last_logged}]
        fired = [replace(alert, step=newest, message=alert.message + AFTER_NEWEST.format(newest))
                 for alert in evaluate_alerts(history, replace(self.rules, enabled=("convergence",)), losses)]
        if fired:
            stored += [a.to_dict() for a in fired]
            onsets = [alert for alert in fired if (alert.step, alert.rule) not in raised]
            self._act(store, stored, onsets, [a for a in stored if a["step"] == newest])

    def _left_behind(self, store: StoreWriter, measured: dict, first_due: int | None, losses: dict) -> set[int]:
        """At a watch's first call: the alerts a stopped watch left to be evaluated again
        (``alerts_from``) of the steps before the first step due, evaluated before it is
        measured, as a fresh ingest would. Left to the end, the steps measured first raised an
        alert for good whose onset was still to be evaluated: a collapse from step 200 on was
        announced at 300, then at 200, the trainer paused and --on-alert run twice (round
        AW-4). The steps evaluated: not again at the end."""
        earliest = None if self._took_up else store.alerts_from
        self._took_up = True
        if earliest is None:
            return set()
        steps = [step for step in sorted(measured) if earliest < step and (first_due is None or step < first_due)
                 and self._judged_again(step, measured)]
        for step in steps:
            self._alerts(store, step, losses)
        return set(steps)

    def _judged_again(self, step: int, measured: dict) -> bool:
        """Whether a step measured before has its alerts evaluated again now: not one a stopped
        watch left half measured again (``[]``), nor one after a rewrite (:meth:`_before_a_rewrite`)."""
        return measured[step] != [] and not self._before_a_rewrite(step, measured[step])

    def _before_a_rewrite(self, step: int, basis: list[int] | None) -> bool:
        """Whether ``step``'s checkpoint came before the rewrite of an earlier step: a run resumed
        from an earlier checkpoint rewrites the steps after it too, and until it has, comparing
        the abandoned run's later steps with the new one's paused a healthy trainer for a false
        collapse, dropped once those steps were rewritten (round AJ). Evaluated when they are."""
        return self._rewritten_before(step, basis) is not None

    def _rewritten_before(self, step: int, basis: list[int] | None) -> int | None:
        """The first step before ``step`` rewritten after ``step``'s checkpoint came, else None."""
        if not basis:
            return None
        # in this call, or by an earlier one (round BG: once its call ended, a later step measured
        # after 400 had 400, still the abandoned run's, judged on the rewritten 300: a false collapse)
        return min([earlier for earlier, index in self._rewrites.items() if earlier < step and basis[0] < index]
                   + [earlier for earlier, (first, index) in self._replaced.items()
                      if earlier < step and first < basis[0] < index], default=None)

    def _mark_judged_before(self, store: StoreWriter, step: int, rewritten: int) -> None:
        """Mark the alerts of a step left for its own rewrite (:meth:`_before_a_rewrite`) as judged on
        the earlier step's old version: unmarked, step 200's "diversity fell between step 100 and
        200" stood once 100 was rewritten as collapsed as 200, which a fresh ingest does not raise
        (round BF). Judged again, and the mark gone, when the step is rewritten too."""
        mark = f" [judged before step {rewritten} was rewritten; judged again when step {step} is]"
        stored = self._stored_alerts(store)
        if any(a["step"] == step and JUDGED_BEFORE not in a["message"] for a in stored):
            self._alert_list = [{**a, "message": a["message"] + mark}
                                if a["step"] == step and JUDGED_BEFORE not in a["message"] else a for a in stored]
