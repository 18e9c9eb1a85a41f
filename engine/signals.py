"""After each ingest: per-step metrics, trainer scalars and alerts, written into the store.

Each step is measured once over its current generated checkpoints (again only when they
change: a grid rewritten in place, another checkpoint at the same step), against reference
statistics built once from the store's real/held-out rows (rebuilt only when those
references change), so the cost of a step does not grow with the history.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from engine.alerts import (DEFAULT_RULES, Alert, AlertRules, History, evaluate_alerts, memorisation_blind,
                           probe_drift_reach)
from engine.backlog_log import EACH_UP_TO, BacklogLog, counted
from engine.metrics.diversity import mean_pairwise_cosine_distance, vendi_score
from engine.metrics.neighbours import knn_distances
from engine.metrics.per_step import METRICS_VERSION, compute_step, metric_key
from engine.metrics.probes import encode_probes, parse_probe, probe_scores
from engine.metrics.reference import ReferenceStats
from engine.metrics.vectors import unit_rows
from engine.pause import AlertCommands, move_pause, pause_is_users, pause_path, read_pause, write_pause
from engine.pipeline import IngestResult
from engine.trainer_logs import TrainerLogs
from stores.format import KIND_CODES, array_name, array_names, listed, one_line
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)
#: Checkpoints named as holding another's samples before the rest are said in one line.
TWINS_SAID = 3
#: Begins the mark of an alert judged on an earlier step's version that was rewritten since.
JUDGED_BEFORE = " [judged before step "
#: Ends the message of an alert of a loss not finite after the newest checkpoint, said at it.
AFTER_NEWEST = ", after the newest checkpoint (step {})"


def _due(ckpt: dict, by_step: dict[int, list[int]],
         measured: dict) -> Iterator[tuple[int, list[int], list[tuple[int, int]], list[int]]]:
    """(step, its current checkpoints, their row ranges, the basis ``measured`` records) of each
    step to measure, in step order: new, rewritten, joined by another checkpoint, or marked."""
    starts, stops = ckpt["row_start"].tolist(), ckpt["row_stop"].tolist()  # no numpy read per checkpoint
    for step, indices in by_step.items():
        ranges = [(starts[i], stops[i]) for i in indices]
        basis = [max(indices), sum(b - a for a, b in ranges)]
        if step not in measured or measured[step] not in (None, basis):
            yield step, indices, ranges, basis


def _current_generated_by_step(ckpt: dict[str, np.ndarray], current: np.ndarray) -> dict[int, list[int]]:
    """The ``current`` generated checkpoints of each step, by step: a step's metrics cover them
    all (``12.png`` and ``12-ema.png``; a grid rewritten in place counts in its latest version)."""
    indices = np.flatnonzero(current & (ckpt["kind"] == KIND_CODES["generated"]))
    indices = indices[np.argsort(ckpt["step"][indices], kind="stable")]
    by_step: dict[int, list[int]] = {}
    for step, i in zip(ckpt["step"][indices].tolist(), indices.tolist()):
        by_step.setdefault(step, []).append(i)
    return by_step


def _replaced_steps(ckpt: dict[str, np.ndarray], current: np.ndarray,
                    by_step: dict[int, list[int]]) -> dict[int, tuple[int, int]]:
    """Each step whose current checkpoints replaced an earlier version of it: (the earliest
    version's checkpoint index, the current one's). A step whose checkpoint came between the two
    was judged on the version replaced (a run resumed from an earlier checkpoint)."""
    older = np.flatnonzero(~current & (ckpt["kind"] == KIND_CODES["generated"]))  # in index order
    firsts: dict[int, int] = {}
    for step, i in zip(ckpt["step"][older].tolist(), older.tolist()):
        firsts.setdefault(step, i)
    return {step: (first, max(by_step[step])) for step, first in firsts.items() if step in by_step}


def _abandoned_steps(by_step: dict[int, list[int]], replaced: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Each step whose checkpoint came before an earlier step's rewrite (:func:`_replaced_steps`)
    and past which a checkpoint written after that rewrite has landed, once one of those landed at
    or below the newest step before the rewrite: only a run resumed from the earlier checkpoint
    writes there, so the step it went past without rewriting is the abandoned run's for good (left
    "judged again when step S is" for ever, and read in the later steps' history). Steps after the
    rewrite only past every earlier one prove nothing: the run may have gone on (step_200 written
    slowly, rewritten as it settled after a fast step_300, then 400: 300's collapse was withdrawn as
    the abandoned run's; round BL). Step -> (the rewritten step, the first later step)."""
    if not replaced or not by_step:
        return {}
    steps = np.array(list(by_step))  # in step order
    last = np.array([max(indices) for indices in by_step.values()])
    firsts = np.array([min(indices) for indices in by_step.values()])
    earlier, first, index = (np.array(column) for column in zip(*((r, f, i) for r, (f, i) in sorted(replaced.items()))))
    after = firsts[None, :] > index[:, None]  # rewrite x step: the step's checkpoint written after the rewrite
    reached = np.where(after, -1, steps[None, :]).max(axis=1)  # the newest step before each rewrite
    resumed = (after & (steps[None, :] <= reached[:, None])).any(axis=1)
    beyond = np.where(after & resumed[:, None], steps[None, :], -1).max(axis=1)
    skipped = ((earlier[None, :] < steps[:, None]) & (first[None, :] < last[:, None]) & (last[:, None] < index[None, :])
               & (steps[:, None] < beyond[None, :]))
    out = {}
    for i, j in zip(*np.nonzero(skipped)):
        if int(steps[i]) not in out:
            out[int(steps[i])] = (int(earlier[j]), int(steps[after[j] & (steps > steps[i])][0]))
    return out


def _renamed_steps(ckpt: dict[str, np.ndarray], current: np.ndarray, by_step: dict[int, list[int]]) -> dict[int, int]:
    """Each step no current checkpoint is at any more whose checkpoint is read at one other step
    now, under its name (a folder renamed, ``step_200`` to ``step_250``: its earlier reading
    takes the new name, docs/store.md): the old step -> the new one. Its alerts go with it."""
    older = np.flatnonzero(~current & (ckpt["kind"] == KIND_CODES["generated"]) & ~np.isin(ckpt["step"], list(by_step)))
    by, now = ckpt["superseded_by"], older.copy()
    for _ in range(len(by)):  # the replacement's replacement, up to the current reading
        ahead = (now >= 0) & (now < len(by)) & ~current[np.clip(now, 0, len(by) - 1)]
        if not ahead.any():
            break
        now[ahead] = by[now[ahead]]
    targets: dict[int, set[int]] = {}
    for i, j in zip(older.tolist(), now.tolist()):
        same = 0 <= j < len(by) and current[j] and ckpt["source"][i] == ckpt["source"][j]
        targets.setdefault(int(ckpt["step"][i]), set()).add(int(ckpt["step"][j]) if same else -1)
    return {step: new.pop() for step, new in targets.items() if len(new) == 1 and -1 not in new}


#: Seconds of measuring a backlog between writes of the rows measured (a row a step cost more
#: than the metrics); a reader sees them that much later at most.
WRITE_EVERY_S = 2.0
READ_AHEAD_ROWS = 4096  # sample rows read at once by a backlog's steps (~6 MB of 768-d vectors)
#: The logs' newest step past this many times the newest checkpoint's (of 3 or more) is said to
#: be of another unit: an epoch has hundreds of iterations; a run sampled at 0, 10, 100, 1,000
#: ... logs 10x its newest checkpoint's step at most before the next.
UNITS_APART = 50

#: Fewest samples a reference set (--real, --holdout) must have to be used at all.
MIN_REFERENCE = 8
_NEEDS = {"real": "precision/recall, the Fréchet distance, near-copies and label drift",
          "holdout": "the memorisation signals (near-copies calibrated on held-out data)"}


def _warn_small_references(key: tuple, counts: dict[str, int]) -> None:
    """A reference set given but too small to use turns signals off: say which, and why; and
    --real without --holdout, which leaves memorisation unmeasured (said as --probe without
    --real is: a store of copied training images raised nothing), and --holdout without --real."""
    given = {kind for _, _, code in key for kind in counts if code == KIND_CODES[kind]}
    if "real" in given and "holdout" not in given:
        log.warning("no --holdout: %s are not measured; give a folder of real images never trained on",
                    _NEEDS["holdout"])
    elif "holdout" in given and "real" not in given:  # the held-out set calibrates distances to the training set
        log.warning("--holdout without --real: nothing uses it: %s need the training images too; give --real the "
                    "folder of the training images", _NEEDS["holdout"])
    for kind, n in counts.items():
        sources = [source.removeprefix(kind + ":") for source, _, code in key if code == KIND_CODES[kind]]
        if sources and n < MIN_REFERENCE:
            log.warning("--%s %s: %d readable sample%s, fewer than %d: %s are not measured; give it a folder "
                        "of images (hundreds for stable figures)", kind, ", ".join(sources), n, "" if n == 1 else "s",
                        MIN_REFERENCE, _NEEDS[kind])


def _fresh_holdout(real: np.ndarray, holdout: np.ndarray, sources: str) -> np.ndarray | None:
    """The held-out samples that are not also real (training) ones. A --holdout given the
    --real folder, or sharing images with it, calibrates the near-copy rate on copies: every
    sample then looks as close to training data as a held-out one is, and a run copying its
    training images raised no memorisation alert (near_copy_frac 0). Those are left out, said
    once; too few left turns memorisation off."""
    nearest = knn_distances(holdout, real, 1)[:, 0]
    same = nearest <= 1e-3 * float(np.median(np.linalg.norm(real, axis=1)))
    if not same.any():
        return holdout
    left = int(np.count_nonzero(~same))
    log.warning("--holdout %s: %s of %s held-out samples are also in --real (the same images): a held-out set "
                "must be images never trained on; %s", sources, f"{int(same.sum()):,}", f"{len(holdout):,}",
                f"measured on the other {left:,}" if left >= MIN_REFERENCE else f"{_NEEDS['holdout']} are not measured")
    return holdout[~same] if left >= MIN_REFERENCE else None


def check_probe_names(specs: Sequence[str]) -> None:
    """Raise ``ValueError`` for two probes whose metrics would share an array: they are keyed
    by their prompt, and ``"a woman|a man"`` beside ``"a woman|a child"`` stored the second
    one's shares only, under the first one's name."""
    seen: dict[str, str] = {}
    for spec in specs:
        key = array_name(metric_key("probe_share", parse_probe(spec)[0]))
        if key in seen:
            raise ValueError(f"--probe {spec!r} and --probe {seen[key]!r} would be stored under one name ({key}): "
                             "give each probe its own prompt")
        seen[key] = spec


class _RowWindow:
    """Sample columns read ahead in windows of :data:`READ_AHEAD_ROWS`: a backlog's steps are
    consecutive rows, and a zarr read per step and column cost 10 ms (16 ms a step at 600 steps
    of 16 samples, more than their metrics' half). Committed rows never change."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, np.ndarray]] = {}

    def read(self, store: StoreWriter, name: str, rows: slice | np.ndarray) -> np.ndarray:
        if isinstance(rows, slice):
            lo, hi = rows.start, rows.stop
        else:
            lo, hi = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, 0)
        start, window = self._windows.get(name, (0, None))
        if window is None or lo < start or hi > start + len(window):
            start, window = lo, store.samples(name, slice(lo, max(hi, min(lo + READ_AHEAD_ROWS, store.n_rows))))
            self._windows[name] = (start, window)
        return window[rows.start - start:rows.stop - start] if isinstance(rows, slice) else window[rows - start]


@dataclass
class Signals:
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

    def _say_withdrawn_failing(self, store: StoreWriter, before: dict[tuple[int, str], dict]) -> None:
        """:meth:`_say_withdrawn` as the pass fails: a store failing too (moved, its disk full)
        raised from there in place of the pass's error (a Ctrl-C said as a full disk, rc 2); its
        unsaid record then stays, said by the next watch."""
        try:
            self._say_withdrawn(store, before)
        except Exception as exc:
            log.debug("withdrawals not marked said (%s): the next watch says them again", exc)

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

    def _set_alerts_from(self, store: StoreWriter, step: int | None) -> None:
        """Note the step after which alerts are evaluated again, with the steps rewritten so far:
        a watch resumed after a stop skips the steps before a rewrite too (see _before_a_rewrite)."""
        store.set_alerts_from(step, dict(self._rewrites))

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

    # --- trainer scalars ------------------------------------------------------------
    def _update_scalars(self, store: StoreWriter) -> dict:
        losses = self._trainer_logs.read(self.run_dir)
        if losses:
            steps = np.unique(np.concatenate([s for s, _ in losses.values()])).astype(np.int64)
            columns: dict[str, np.ndarray] = {"step": steps}
            keys = array_names(losses)  # a scalar the trainer named "step" (diffusers), "loss/D" beside "loss_D"
            for name, (s, v) in losses.items():
                column = np.full(len(steps), np.nan)
                column[np.searchsorted(steps, s)] = v
                columns[keys[name]] = column
            store.write_scalars(columns)
        return losses

    def _say_other_units(self, ckpt: dict, losses: dict) -> None:
        """Once: the checkpoints' steps and the logs' look like two units. diffusers' scripts log
        their validation images at the epoch and their losses at the global step (1..8 beside
        1..2,000; round AV): the loss charts and the convergence rule match them by number."""
        if self._said_units or not losses:
            return
        steps = np.unique(ckpt["step"][ckpt["kind"] == KIND_CODES["generated"]]) if len(ckpt["step"]) else []
        logged = max((int(np.max(s)) for s, _ in losses.values() if len(s)), default=0)
        if len(steps) < 3 or logged <= UNITS_APART * max(int(steps[-1]), 1):
            return
        self._said_units = True
        log.warning("%s: the checkpoints' steps (%s to %s) and the trainer logs' (to %s) look like two units "
                    "(epochs and iterations?): losses are matched to checkpoints by step number; log both at the "
                    "same step", self.run_dir, f"{int(steps[0]):,}", f"{int(steps[-1]):,}", f"{logged:,}")

    # --- references -----------------------------------------------------------------
    def _refresh_reference(self, store: StoreWriter, ckpt: dict, current: np.ndarray) -> str | None:
        """(Re)build the reference statistics when the reference rows changed (in this process:
        at its first call too); returns a digest of what metrics are measured against then
        (reference checkpoints, probes, rules), else None. A restarted watch whose digest is the
        store's keeps its metrics: re-measuring every step announced each rule's onset again."""
        references = np.flatnonzero(current & (ckpt["kind"] != KIND_CODES["generated"]))
        key = tuple(sorted((str(ckpt["source"][i]), str(ckpt["hash"][i]), int(ckpt["kind"][i])) for i in references))
        if key == self._reference_key:
            return None
        self._reference_key = key
        digest = hashlib.blake2b(repr((key, tuple(self.probes), self.rules, METRICS_VERSION)).encode(), digest_size=12).hexdigest()
        kinds = store.samples("kind")
        live = store.current_rows()
        real_rows = np.flatnonzero(live & (kinds == KIND_CODES["real"]))
        holdout_rows = np.flatnonzero(live & (kinds == KIND_CODES["holdout"]))
        _warn_small_references(key, {"real": len(real_rows), "holdout": len(holdout_rows)})
        if len(real_rows) < MIN_REFERENCE:
            self._reference = None
            return digest
        real = unit_rows(store.samples("embedding", real_rows))
        holdout = unit_rows(store.samples("embedding", holdout_rows)) if len(holdout_rows) >= MIN_REFERENCE else None
        if holdout is not None:
            holdout = _fresh_holdout(real, holdout, ", ".join(s.removeprefix("holdout:") for s, _, k in key
                                                              if k == KIND_CODES["holdout"]))
        labels = self._labels(store, real_rows)
        names = sorted({x for x in labels if x is not None}) or None
        real_scores = self._probe_scores(real)
        log.info("reference statistics: %d real, %d held-out samples", len(real_rows), 0 if holdout is None else len(holdout))
        self._reference = ReferenceStats.build(
            real, holdout, labels if names else None, label_names=names,
            probe_names=[p for p in self._probe_names()], real_probe_scores=real_scores)
        return digest

    def _labels(self, store: StoreWriter, rows: np.ndarray) -> list[str | None]:
        names = store.labels
        return [names[c] if c >= 0 else None for c in self._rows.read(store, "label", rows)]

    def _probe_names(self) -> list[str]:
        return list(self._probe_vectors[0]) if self._probe_vectors else []

    def _probe_scores(self, vectors: np.ndarray) -> np.ndarray | None:
        if not self.probes:
            return None
        if self._probe_vectors is None:
            self._probe_vectors = encode_probes(self.encoder, self.probes)
        _, texts, contrasts = self._probe_vectors
        return probe_scores(vectors, texts, contrasts)

    # --- one step -------------------------------------------------------------------
    def _measure(self, store: StoreWriter, step: int, ranges: list[tuple[int, int]], basis: list[int],
                 losses: dict, sources: list[str]) -> None:
        parts = [self._rows.read(store, "embedding", slice(a, b)) for a, b in ranges]  # once: twins, then metrics
        twins = self._twins(step, parts, sources)
        kept = [r for i, r in enumerate(ranges) if twins[i] == i]
        rows = np.concatenate([np.arange(a, b) for a, b in kept])
        vectors = unit_rows(np.concatenate([p for i, p in enumerate(parts) if twins[i] == i]))
        if self._reference is None:
            # No --real: only what needs no reference (diversity) is measured.
            scalars = {"n_generated": float(len(vectors)),
                       "pairwise_cosine": mean_pairwise_cosine_distance(vectors) if len(vectors) > 1 else np.nan,
                       "vendi": vendi_score(vectors) if len(vectors) else np.nan}
            per_sample: dict[str, np.ndarray] = {}
        else:
            labels = self._labels(store, rows)
            if not self._reference.label_names and any(labels) and not self._said_unlabelled_real:
                self._said_unlabelled_real = True  # labelled samples, an unlabelled --real: unsaid before
                log.warning("the samples carry labels but the --real images none: label shares and label_drift are "
                            "not measured; give --real as one folder per label (ImageFolder) or with a labels file")
            self._say_foreign_labels(step, labels)
            margins = self._probe_scores(vectors)
            result = compute_step(vectors, self._reference, labels, margins, label_names=store.labels)
            scalars, per_sample = result.scalars, dict(result.per_sample)
            if margins is not None:  # per-sample margins: the viewer filters on "probe:<prompt>" > 0
                for j, prompt in enumerate(self._probe_names()):
                    per_sample["probe:" + prompt.replace("/", "_")] = margins[:, j]
        offsets = np.cumsum([0] + [b - a for a, b in kept])
        where = {r: (int(offsets[k]), int(offsets[k + 1])) for k, r in enumerate(kept)}
        for name, values in per_sample.items():
            for (start, _), twin in zip(ranges, twins):  # a repeated checkpoint gets its twin's values
                first, last = where[ranges[twin]]
                self._unwritten_samples.setdefault(name, []).append((start, np.asarray(values[first:last], np.float32)))
        keys = array_names(scalars)
        self._note_names(store, keys)
        row = {keys[k]: float(v) for k, v in scalars.items()}
        self._steps_measured(store).put({"step": step, **row})
        if not self._said_blind and memorisation_blind(row, self.rules):
            self._said_blind = True
            log.warning("step %d: memorisation cannot alert at %s a step beside %s held-out images, were every one a "
                        "copy; sample more a step, or hold out more images (--holdout)", step,
                        counted(int(row["n_generated"]), "sample"), f"{row['n_holdout']:,.0f}")
        self._say_probe_reach(step, row)
        self._unwritten.append((step, row, basis))
        self._alerts(store, step, losses)
        self._write_measured(store)  # after the alerts: the alert list written with a row is its step's

    def _say_probe_reach(self, step: int, row: dict[str, float]) -> None:
        """Once for each remedy: probes whose shares are read from so few samples or real images
        that probe_drift could see only a gap past twice its floor, or none (beside 10 real images
        it was blind, unsaid; round AQ). Said once per remedy, not once: a first step of 4 samples
        ("sample more a step") hid the later steps' 64, still short of real images (round AW)."""
        if "probe_drift" not in self.rules.enabled:
            return
        reach = probe_drift_reach(row, self.rules)
        coarse = {key: gap for key, gap in reach.items() if gap > 2 * self.rules.probe_max_diff}
        if not coarse:
            return
        said = [f"'{self._names.get(f'probe_share:{key}', key)}' "
                f"({'never' if gap == float('inf') else f'past {100 * gap:.0f} points'})"
                for key, gap in sorted(coarse.items(), key=lambda kv: -kv[1])]
        # what each remedy alone would leave: the reference's shares as exact (samples short), and
        # ~64 times as many samples as real images (the reference short; beside 10 real images
        # sampling more never saw a drift under 40 points, and was the only advice at 16 a step)
        exact_reference = probe_drift_reach({k: v for k, v in row.items() if k != "n_reference"}, self.rules)
        many_samples = probe_drift_reach({**row, "n_generated": float(min(64 * row["n_reference"], 2 ** 16))},
                                         self.rules) if row.get("n_reference", 0) > 0 else {}
        samples_short, real_short = (any(reach.get(key, 0) > 2 * self.rules.probe_max_diff for key in coarse)
                                     for reach in (exact_reference, many_samples))
        fix = ("sample more a step and give more --real images" if samples_short and real_short
               else "sample more a step" if samples_short else "give more --real images")
        if fix in self._said_probe_reach:
            return
        self._said_probe_reach.add(fix)
        log.warning("step %d: at %s a step beside %s real images probe_drift can see a drift only when it is large: "
                    "%s; %s", step, counted(int(row["n_generated"]), "sample"),
                    f"{row.get('n_reference', float('nan')):,.0f}", listed(said, 3), fix)

    def _say_foreign_labels(self, step: int, labels: list[str | None]) -> None:
        """Once: the samples' labels are none of the reference's (``0, 1, 2`` against ``cat,
        dog, bird``): label_drift then reads a drift of 100% from the first step, and blamed
        the model for two vocabularies (round AQ)."""
        given = sorted({label for label in labels if label is not None})
        if self._said_foreign or not given or not self._reference.label_names or \
                set(given) & set(self._reference.label_names):
            return
        self._said_foreign = True
        log.warning("step %d: none of the samples' labels (%s) is a label of the --real images (%s): label_drift "
                    "compares different names; label both alike (a labels file, or --real's folder names)", step,
                    listed(given, 4), listed(self._reference.label_names, 4))

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

    def _twins(self, step: int, parts: list[np.ndarray], sources: list[str]) -> list[int]:
        """For each of a step's checkpoints, the first one holding exactly the same samples
        (itself, unless a folder was renamed or copied in the run: stored again under its new
        name, every sample then had an exact duplicate and the step a partial collapse).
        Said once per pair; the step is measured on one copy."""
        seen: dict[bytes, int] = {}
        twins = []
        for i, part in enumerate(parts):
            if not len(part):
                twins.append(i)
                continue
            digest = hashlib.blake2b(np.ascontiguousarray(part).tobytes()).digest()
            twins.append(seen.setdefault(digest, i))
            if twins[-1] != i and (sources[i], sources[twins[-1]]) not in self._said_twins:
                self._said_twins.add((sources[i], sources[twins[-1]]))
                say = log.warning if len(self._said_twins) <= TWINS_SAID else log.debug  # then one line for the rest
                say("step %d: %s holds the same samples as %s (a checkpoint renamed or copied in the run, or a run "
                    "repeated with the same seed?): measured once", step, sources[i], sources[twins[-1]])
                if len(self._said_twins) == TWINS_SAID + 1:
                    log.warning("more checkpoints hold the same samples as another of their step: each measured once "
                                "(-v names them)")
        return twins

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

    def _note_names(self, store: StoreWriter, keys: dict[str, str]) -> None:
        """The labels and probes as given, by their shares' array names: an alert said
        ``'round_thing'`` of the label ``round thing`` (round AQ), and two labels of one array
        name (``dog (small)``, ``dog [small]``: ``dog_small``, ``dog_small_``) are told apart
        as their arrays were (round AR)."""
        given = {metric_key(prefix, name): name for prefix, names in (("label_share", store.labels),
                                                                     ("probe_share", self._probe_names()))
                 for name in names}
        self._names.update({key: given[metric] for metric, key in keys.items() if metric in given})

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
