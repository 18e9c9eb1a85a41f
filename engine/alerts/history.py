"""A growing run's metric columns kept between steps (History) and the records a rule reads (_Prefix)."""
from __future__ import annotations

import bisect
import heapq
import math
from typing import Any, Mapping

import numpy as np

from engine.alerts.settings import AlertRules
from engine.alerts.values import _finite, _get


class History:
    """Per-step metric records in step order, with each metric as a float array (NaN where a
    record lacks it), kept up to date as steps are put: the rules read columns, not every
    record, at each step (walking the records was 12 ms a step at 2,000 steps, so a backlog's
    alert rules cost O(T^2); docs/ingest.md). Pass :meth:`upto` to :func:`evaluate_alerts`."""

    def __init__(self, columns: Mapping[str, np.ndarray] | None = None) -> None:
        """``columns``: a metrics table (``"step"`` and one column per metric), rows in any order."""
        columns = dict(columns or {})
        steps = np.asarray(columns.pop("step", np.zeros(0, np.int64)))
        order = np.argsort(steps, kind="stable")
        self._steps: list[int] = steps[order].tolist()
        self._arrays = {key: np.asarray(values, dtype=float)[order] for key, values in columns.items()}
        values = [self._arrays[key].tolist() for key in self._arrays]
        rows = list(zip(*values)) or [()] * len(self._steps)
        self._records: list[dict] = [{"step": s, **dict(zip(self._arrays, row))} for s, row in zip(self._steps, rows)]
        self._valid = dict.fromkeys(self._arrays, len(self._steps))  # rows of each array still true
        self._baselines: dict[tuple, _Baseline] = {}  # see best_built_or_held

    def put(self, record: Mapping[str, Any]) -> None:
        """Add a step's record, or replace the one of its step (measured again)."""
        step = int(record["step"])
        i = bisect.bisect_left(self._steps, step)
        if i < len(self._steps) and self._steps[i] == step:
            self._records[i] = dict(record)
        else:
            self._steps.insert(i, step)
            self._records.insert(i, dict(record))
        for key, valid in self._valid.items():
            self._valid[key] = min(valid, i)
        self._baselines = {key: kept for key, kept in self._baselines.items() if kept.read <= i}

    def upto(self, step: int) -> "_Prefix":
        """The steps up to ``step``, as the rules read them."""
        return _Prefix(self._records[:bisect.bisect_right(self._steps, step)], self)

    def column(self, key: str, stop: int) -> np.ndarray:
        """``key``'s values of the first ``stop`` records (a view: do not write to it)."""
        array, valid = self._arrays.get(key), self._valid.get(key, 0)
        if array is None or valid < stop:
            fresh = np.array([_get(r, key) for r in self._records[valid:]], dtype=float)
            kept = array[:valid] if array is not None else np.zeros(0)
            self._arrays[key], self._valid[key] = np.concatenate([kept, fresh]), len(self._records)
        return self._arrays[key][:stop]

    def best_built_or_held(self, key: str, n: float, stop: int, rules: "AlertRules") -> tuple[int, float] | None:
        """:func:`_built_or_held`'s best (its index among the first ``stop`` records, its value) of
        ``key``'s finite values of the records comparable with a step of ``n`` samples, kept up to
        date as records are added after those it read (worked out from every value at each step,
        it was 18.6 ms a step at 5,000 steps without a real reference; docs/ingest.md)."""
        settings = (rules.collapse_held_within, rules.collapse_max_drop, rules.collapse_held_steps,
                    rules.collapse_built_rise)
        ident = (key, n if math.isfinite(n) else None, settings)
        baseline = self._baselines.get(ident)
        if baseline is None or baseline.read > stop:
            baseline = self._baselines[ident] = _Baseline(rules)
        values, sizes = self.column(key, stop), self.column("n_generated", stop)
        new = baseline.read + np.flatnonzero(np.isfinite(values[baseline.read:])
                                             & _comparable_to(sizes[baseline.read:], n))
        baseline.extend(new.tolist(), values[new])
        baseline.read = stop
        return baseline.best()


class _Baseline:
    """:func:`_built_or_held` of a sequence growing at its end, and its best, kept as values are
    added: a value's "built" is known when it comes and its "held" once ``held_steps`` more came
    (the best of them kept); a value settled at (within ``held_within`` of the one before) is
    kept in a heap until a later value fades it, checked at the heap's top only."""

    def __init__(self, rules: "AlertRules") -> None:
        self.rules = rules
        self.read = 0  # the History's records read
        self.rows: list[int] = []  # each value's record
        self.values = np.empty(64)  # the values, in ``self.values[:len(self.rows)]``
        self.low = math.inf
        self.kept: tuple[float, int] | None = None  # the best (value, -position) built or held
        self.settled: list[tuple[float, int]] = []  # a heap of (-value, position) settled at, not seen faded
        self.clear = (-1, 0)  # (the heap top's position, the values up to which it is not faded)

    def extend(self, rows: list[int], values: np.ndarray) -> None:
        """Add ``values`` (finite), those of the records ``rows``."""
        rules, old = self.rules, len(self.rows)
        within, steps, m = rules.collapse_held_within, rules.collapse_held_steps, old + len(values)
        if m > len(self.values):
            self.values = np.concatenate([self.values[:old], np.empty(max(m, 2 * len(self.values)) - old)])
        self.values[old:m] = values
        self.rows += rows
        everything = self.values[:m]
        lows = np.minimum.accumulate(np.concatenate([[self.low], values]))
        built = np.flatnonzero(values > lows[:-1] * (1 + rules.collapse_built_rise)) + old
        self.low = float(lows[-1])
        held = np.arange(max(0, old - steps), m - steps)
        ok = np.ones(len(held), bool)
        for d in range(1, steps + 1):
            ok &= np.abs(everything[held + d] - everything[held]) <= within * everything[held]
        for k in (built, held[ok]):
            if len(k):
                best = int(k[np.argmax(everything[k])])  # the first highest
                if self.kept is None or (everything[best], -best) > self.kept:
                    self.kept = (float(everything[best]), -best)
        at = np.arange(max(1, old), m)
        settled = at[np.abs(everything[at - 1] - everything[at]) <= within * everything[at]]
        for k in settled.tolist():
            heapq.heappush(self.settled, (-float(everything[k]), k))

    def best(self) -> tuple[int, float] | None:
        """(record, value) of the first highest value built, held or settled at; None if none."""
        rules, m = self.rules, len(self.rows)
        while self.settled:  # faded: a later value between (1 - max_drop) and (1 - held_within) of it
            v, k = -self.settled[0][0], self.settled[0][1]
            later = self.values[self.clear[1] if self.clear[0] == k else k + 1:m]
            if not np.any((later > (1 - rules.collapse_max_drop) * v) & (later < (1 - rules.collapse_held_within) * v)):
                self.clear = (k, m)
                break
            heapq.heappop(self.settled)
        top = (-self.settled[0][0], -self.settled[0][1]) if self.settled else None
        found = max(filter(None, (self.kept, top)), default=None)
        return None if found is None else (self.rows[-found[1]], found[0])


class _Prefix(list):
    """The records a rule reads (a list, step order), with their columns from a :class:`History`."""

    def __init__(self, records: list, history: "History | None" = None) -> None:
        super().__init__(records)
        self.history = history
        self._own: dict[str, np.ndarray] = {}

    def column(self, key: str) -> np.ndarray:
        if self.history is not None:
            return self.history.column(key, len(self))
        if key not in self._own:
            self._own[key] = np.array([_get(r, key) for r in self], dtype=float)
        return self._own[key]


def _comparable_to(sizes: np.ndarray, n: float, both_ways: bool = False) -> np.ndarray:
    """:func:`_comparable` of each record of these ``sizes`` with a step of ``n`` samples (and, with
    ``both_ways``, of that step with each record)."""
    if not math.isfinite(n):
        return np.ones(len(sizes), bool)
    with np.errstate(invalid="ignore"):
        ok = sizes <= 2 * n
        if both_ways:
            ok &= n <= 2 * sizes
    return ok | ~np.isfinite(sizes)


def _comparable(rec: Mapping, n: float) -> bool:
    """Whether a step's diversity can be compared with one of ``n`` samples: it had at most
    twice as many (Vendi is bounded by the count: a step whose folder was half deleted, or
    whose files were mostly corrupt, is no collapse)."""
    size = _get(rec, "n_generated")
    return not _finite(size, n) or size <= 2 * n
