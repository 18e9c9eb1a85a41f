"""The after-ingest hook: its state, and a call's order (steps found, references, measures, judgements, lines said)."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from threadpoolctl import threadpool_limits

from engine.alerts import DEFAULT_RULES, AlertRules, History
from engine.backlog_log import EACH_UP_TO, BacklogLog, counted
from engine.metrics.reference import ReferenceStats
from engine.pause import AlertCommands
from engine.pipeline import IngestResult
from engine.signals.act import _Act
from engine.signals.judge import _Judge
from engine.signals.measure import _Measure
from engine.signals.references import _References
from engine.signals.row_window import _RowWindow
from engine.signals.scalars import _Scalars
from engine.signals.steps import _abandoned_steps, _current_generated_by_step, _due, _renamed_steps, _replaced_steps
from engine.signals.withdrawals import _Withdrawals
from engine.signals.writes import _Writes
from engine.trainer_logs import TrainerLogs
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)


@dataclass
class Signals(_References, _Scalars, _Measure, _Writes, _Judge, _Act, _Withdrawals):
    """The after-ingest hook that measures new steps and raises alerts."""

    run_dir: Path
    encoder: object
    probes: Sequence[str] = ()
    rules: AlertRules = DEFAULT_RULES
    on_alert: str | None = None
    pause_on_alert: bool = False
    _reference: ReferenceStats | None = field(default=None, init=False)
    _reference_key: tuple | None = field(default=None, init=False)  # no reference sets is a key too: ()
    _probe_vectors: tuple | None = field(default=None, init=False)
    _said_no_probes: bool = field(default=False, init=False)
    _said_unlabelled_real: bool = field(default=False, init=False)
    _said_blind: bool = field(default=False, init=False)
    _said_foreign: bool = field(default=False, init=False)
    _said_probe_reach: set[str] = field(default_factory=set, init=False)
    _said_units: bool = field(default=False, init=False)
    _names: dict = field(default_factory=dict, init=False)  # a share's array name -> its label or probe
    _said_twins: set = field(default_factory=set, init=False)
    _commands: AlertCommands | None = field(default=None, init=False)  # the --on-alert runs, beside the watch
    _trainer_logs: TrainerLogs = field(default_factory=TrainerLogs, init=False)
    _history: History | None = field(default=None, init=False)  # see _steps_measured
    _unwritten: list = field(default_factory=list, init=False)  # measured rows not yet in the store
    _unwritten_samples: dict = field(default_factory=dict, init=False)  # per-sample metric -> [(start, values)]
    _rows: _RowWindow = field(default_factory=_RowWindow, init=False)  # the rows a call's steps read, ahead
    _written_at: float = field(default=0.0, init=False)
    _alert_list: list[dict] | None = field(default=None, init=False)  # see _stored_alerts
    #: seconds of measuring per call, then :attr:`pending` and back to the caller (a live watch:
    #: measuring every step again, 250 of them, held new checkpoints back for over a minute)
    budget_s: float | None = field(default=None, init=False)
    pending: bool = field(default=False, init=False)
    #: steps measured again on a new version (a rewrite) until the steps after them are evaluated
    #: again: step -> the new version's checkpoint index
    _rewrites: dict = field(default_factory=dict, init=False)
    #: every step rewritten in the store: step -> (its first version's checkpoint index, its current one's)
    _replaced: dict = field(default_factory=dict, init=False)
    #: steps the run resumed from a rewritten one went past: step -> (rewritten step, later step)
    _abandoned: dict = field(default_factory=dict, init=False)
    #: steps whose checkpoint is read at another step now (renamed): old step -> new step
    _renamed: dict = field(default_factory=dict, init=False)
    _moved_to: dict = field(default_factory=dict, init=False)  # new step -> rules of the alerts renamed to it
    #: while rows are stored ahead of their alerts: the store's ``alerts_from`` before (one-tuple)
    _alerts_behind: tuple | None = field(default=None, init=False)
    _took_up: bool = field(default=False, init=False)  # the evaluations a stopped watch left: see _left_behind
    _announced: dict = field(default_factory=dict, init=False)  # (step, rule) -> alert announced in this call
    #: (step, rule) -> an onset a killed watch stored unsaid, till this watch's first whole pass says it (:meth:`start`)
    _unannounced: dict = field(default_factory=dict, init=False)
    def __call__(self, store: StoreWriter, results: list[IngestResult]) -> None:
        self._rows = _RowWindow()  # this call's reads (the reference's labels, then the steps')
        losses = self._update_scalars(store)
        ckpt, current = store.checkpoints(), store.current_checkpoints()
        by_step = _current_generated_by_step(ckpt, current)  # once a call: a pass over every checkpoint
        self._replaced = _replaced_steps(ckpt, current, by_step)
        self._abandoned = _abandoned_steps(by_step, self._replaced)
        self._renamed = _renamed_steps(ckpt, current, by_step)
        self._say_other_units(ckpt, losses)
        reference = self._refresh_reference(store, ckpt, current)
        # before this call's measures and drops of steps no checkpoint is at (a renamed one's go with it)
        before = {(a["step"], a["rule"]): a for a in store.alerts()}
        self._moved_to = {}
        for old, rule in before:
            if old in self._renamed:
                self._moved_to.setdefault(self._renamed[old], set()).add(rule)
        self._announced = {}
        if reference is not None and reference != store.metrics_reference:
            if measured := len(store.measured_steps()):
                log.info("measuring the %d steps again: what they are measured against changed (the reference "
                         "sets, --probe, the alert rules or this evowatch's metrics); each step keeps its metrics "
                         "and alerts until it is measured again", measured)
            store.restart_step_metrics(reference, by_step)
        if self.probes and self._reference is None and not self._said_no_probes:
            self._said_no_probes = True
            log.warning("--probe: probes are scored against the real reference (--real DIR), which this store "
                        "lacks: they are not measured")
        measured = store.measured_steps()  # a read of the whole metrics table: once, unless steps are dropped
        if self._drop_gone_steps(store, by_step, measured):
            measured = store.measured_steps()
        try:
            self._measure_and_judge(store, ckpt, by_step, measured, losses, set(before))
        except BaseException:  # stopped too: the list it stored is the one the next watch starts from (round BG)
            self._say_withdrawn_failing(store, before)
            raise
        self._say_withdrawn(store, before)
        if not self.pending:
            self._say_unannounced(store)

    def _measure_and_judge(self, store: StoreWriter, ckpt: dict, by_step: dict[int, list[int]], measured: dict,
                           losses: dict, raised: set[tuple[int, str]]) -> None:
        """Measure the steps due, then judge again those whose history changed (``raised``: the
        alerts stored before the call)."""
        start, done, self.pending = time.monotonic(), [], False
        due = list(_due(ckpt, by_step, measured))
        self._rewrites = {**store.alerts_rewritten, **self._rewrites}  # noted by a watch stopped before their end
        kept = max(set(measured) - {step for step, *_ in due}, default=None)  # the latest step not measured here
        said = BacklogLog(log, len(due), "measuring", "measured", noun="step") if len(due) > EACH_UP_TO else None
        self._history, self._unwritten, self._written_at, self._alert_list = None, [], start, None
        self._alerts_behind = None
        self._unwritten_samples = {}
        if dropped := [a for a in self._stored_alerts(store) if a["step"] in self._abandoned]:
            self._alert_list = [a for a in self._alert_list if a not in dropped]  # said withdrawn, naming why
        behind = self._left_behind(store, measured, due[0][0] if due else None, losses)
        # one BLAS thread: a step's products are small (16-1,000 samples), and OpenBLAS's threads
        # spin against the decoders, the encoder and the trainer (docs/metrics.md: 3x a backlog)
        blas = threadpool_limits(limits=1, user_api="blas")
        evaluated = False  # every measured step's alerts evaluated (else a stop came between)
        try:
            for step, indices, ranges, basis in due:
                if done and self.budget_s is not None and time.monotonic() - start > self.budget_s:
                    self.pending = True  # the rest at the next call, in step order (alerts read the steps before)
                    break
                if measured.get(step):  # measured before on another version: rewritten
                    self._rewrites[step] = basis[0]
                if not done and kept is not None and step < kept and (store.alerts_from is None or step < store.alerts_from):
                    # noted before its row is stored: a watch stopped before the end still evaluates the later steps
                    self._set_alerts_from(store, step)
                self._measure(store, step, ranges, basis, losses, [str(ckpt["source"][i]) for i in indices])
                done.append(step)
                if said:
                    said.item(step, "measured step %d", step)
            evaluated = True
        finally:
            blas.restore_original_limits()
            self._write_measured(store, at_once=True, alerts_complete=evaluated)
        if said and not self.pending:
            said.finish()
        earliest = store.alerts_from
        if done and any(step > done[0] for step in set(measured) - set(done)) and (earliest is None or done[0] < earliest):
            earliest = done[0]  # kept in the store: a watch stopped before the rest is measured still evaluates them
            self._set_alerts_from(store, earliest)
        if not self.pending and earliest is not None:
            # the steps after one measured late (a checkpoint that came after later ones, one
            # rewritten): their alerts read it, so they are evaluated again, as a fresh ingest would
            for step in sorted(set(measured) - set(done)):
                if step > earliest and step not in behind and self._judged_again(step, measured):
                    self._alerts(store, step, losses)
                elif step > earliest and step not in self._abandoned and \
                        (rewritten := self._rewritten_before(step, measured[step])) is not None:
                    self._mark_judged_before(store, step, rewritten)
            self._write_measured(store, at_once=True)  # their alerts, before the note to evaluate them goes
            store.set_alerts_from(None)
        if not self.pending:  # the newest step measured is the newest checkpoint's
            self._rewrites.clear()
            self._late_losses(store, losses, raised)
        self._write_measured(store, at_once=True)  # an alert that holds on without an onset

    @staticmethod
    def _drop_gone_steps(store: StoreWriter, by_step: dict[int, list[int]], measured: dict) -> bool:
        """Drop the metrics and alerts of steps no current checkpoint is at any more (a folder
        renamed to another step); the steps after the first of them are evaluated again (their
        alerts compared with it: "fell between step 1500 and 2000" once 1500 was renamed 1750).
        Whether any were dropped."""
        gone = set(measured) - set(by_step)
        if not gone:
            return False
        log.info("dropping the metrics of %s no checkpoint is read at any more: %s", counted(len(gone), "step"),
                 ", ".join(map(str, sorted(gone))))
        store.drop_step_metrics(gone)
        first = min(gone)
        if any(step > first for step in set(measured) - gone) and (store.alerts_from is None or first < store.alerts_from):
            store.set_alerts_from(first)
        return True

    @staticmethod
    def steps_left(store: StoreWriter) -> int:
        """Steps whose metrics are not measured yet (a watch stopped while it measured them):
        said when it stops, so that a store with fewer measured steps than steps is explained."""
        ckpt = store.checkpoints()
        return sum(1 for _ in _due(ckpt, _current_generated_by_step(ckpt, store.current_checkpoints()),
                                   store.measured_steps()))
