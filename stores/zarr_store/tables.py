"""The writer's tables, each with its own commit point: per-step metrics (a row per step,
replaced when a step is measured again), the trainer scalars read from the run's logs, and the
per-sample metrics row-aligned with the samples."""
from __future__ import annotations

from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import zarr

from stores.uninterrupted import uninterrupted
from stores.zarr_store.create import _create_array
from stores.zarr_store.primitives import _write_all


def _equal_or_both_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b


def _column_description(group: str, name: str) -> str:
    """What a metric or scalar array holds, for its ``description`` attribute (it said only
    "metrics column fd": round AJ read docs/metrics.md to learn the rest)."""
    if name == "step":
        return ("the step of each row: rows are in the order steps were measured, sort by it" if group == "metrics"
                else "the training step of each logged value")
    return {"metrics": f"per-step metric {name!r} over the step's current generated samples, a row per step "
                       "(metrics/step); its definition: docs/metrics.md",
            "sample_metrics": f"per-sample metric {name!r}, row-aligned with samples/ (flags as 1.0 / 0.0), NaN where "
                              "not computed; its definition: docs/metrics.md",
            "scalars": f"trainer scalar {name!r} read from the run's logs, at the steps in scalars/step"}[group]


class _TableWrites:
    """:class:`~stores.zarr_store.writer.StoreWriter`'s writes of the metrics, scalars and
    sample_metrics tables. The writer gives them ``path``, ``handle``, ``_handles``,
    ``_ensure_group``, the alert list (``alerts``, ``set_alerts``: dropped steps' alerts go) and
    ``_scalars_written``/``_scalars_written_at``, set when it opens; its reader side gives
    ``_array_names`` and ``step_metrics``."""

    @uninterrupted
    def write_step_metrics(self, step: int, values: dict[str, float], measured: list[int] | None = None) -> None:
        """Add or replace one step's row of metrics (:meth:`write_steps_metrics`)."""
        self.write_steps_metrics([(step, values, measured)])

    @uninterrupted
    def write_steps_metrics(self, rows: Sequence[tuple[int, dict[str, float], list[int] | None]]) -> None:
        """Add or replace steps' rows of metrics (a metric not given is NaN there); new metric
        names get new columns. Each row's ``measured``: what it was computed on (see
        :meth:`measured_steps`). Written together: a backlog of 1,500 steps written a row at a
        time spent 46 s growing and writing every column 1,500 times (the metrics 2 s)."""
        if not rows:
            return
        group = self._ensure_group("metrics")
        committed = int(self._group_attrs("metrics").get("committed_rows", 0))
        steps = self.handle("metrics", "step")[:committed] if "step" in group else np.zeros(0, np.int64)
        at = {int(step): row for row, step in enumerate(steps.tolist())}
        n = committed
        for step, _, _ in rows:
            if int(step) not in at:
                at[int(step)], n = n, n + 1
        placed = sorted({at[int(step)]: (int(step), values, measured) for step, values, measured in rows}.items())
        recorded = dict(self._group_attrs("metrics").get("measured", {}))
        replaced = [step for row, (step, _, _) in placed if row < committed]
        if any(recorded.get(str(step)) != [] for step in replaced):  # a reader that sees a row half old, half new
            group.update_attributes({"measured": {**recorded, **{str(step): [] for step in replaced}}})  # can tell
        names = {"step"} | {name for _, (_, values, _) in placed for name in values} | set(self._array_names("metrics"))
        positions = np.array([row for row, _ in placed])
        lo, hi = int(positions[0]), int(positions[-1]) + 1

        def writes() -> Iterator[Coroutine]:  # made inside _write_all: closed there if one fails
            for name in sorted(names):
                column = self._ensure_column(group, "metrics", name, "int64" if name == "step" else "float64", n,
                                             ahead=True)
                # one write per column over the rows' span, the rows between kept: a write per run
                # of consecutive rows raced its siblings on the column's one chunk, and a step
                # measured again with another kept its earlier values in some columns (round AJ)
                # read only for rows kept between: a new step's row was read back from every column
                # before it was written (33 reads, a third of a live watch's metric write)
                span = column[lo:hi] if len(positions) < hi - lo else np.empty(hi - lo, column.dtype)
                span[positions - lo] = [step if name == "step" else values.get(name, np.nan)
                                        for _, (step, values, _) in placed]  # none kept from an earlier measure
                yield column.async_array.setitem(slice(lo, hi), span)

        _write_all(writes())
        for _, (step, _, measured) in placed:
            if measured is not None:
                recorded[str(step)] = [int(x) for x in measured]
        group.update_attributes({"committed_rows": n, "measured": recorded})

    @uninterrupted
    def set_alerts_from(self, step: int | None, rewritten: dict[int, int] | None = None) -> None:
        """Note (or, None, forget) that the alerts of the steps after ``step`` are to be
        evaluated again: a step measured after later ones, their evaluation left to the end of
        a measure a stopped watch did not reach. ``rewritten``: the steps measured again on a
        new version, with its checkpoint index (kept as they are when not given; forgotten
        with ``step``): a watch resumed after a stop evaluated the abandoned run's later steps
        against a run resumed from an earlier checkpoint, for a false alert (round AW)."""
        attrs: dict[str, Any] = {"alerts_from": None if step is None else int(step)}
        if step is None or rewritten is not None:
            attrs["alerts_rewritten"] = {str(int(s)): int(i) for s, i in (rewritten or {}).items()}
        self._ensure_group("metrics").update_attributes(attrs)

    @uninterrupted
    def restart_step_metrics(self, reference: str | None, steps: Iterable[int]) -> None:
        """Have every step measured again (the reference its metrics were measured against
        changed): each of ``steps`` (those with checkpoints now) keeps its row and alerts until
        then, marked as measured on nothing (``[]`` in :meth:`measured_steps`); the rows and
        alerts of other steps go (read at other steps before: a corrected --step-regex).
        ``reference`` names the one the next metrics are measured against
        (:attr:`metrics_reference`). Clearing them all instead had a live viewer see every
        alert go and come back as the steps were measured again."""
        group = self._ensure_group("metrics")
        self._ensure_column(group, "metrics", "step", "int64", 0)  # a reader's table is empty, not missing
        table = self.step_metrics()
        kept = np.isin(table["step"], list({int(step) for step in steps}))
        self._remove_step_rows(table, kept)
        group.update_attributes({"committed_rows": int(kept.sum()), "reference": reference,
                                 "measured": {str(int(step)): [] for step in table["step"][kept]}})

    @uninterrupted
    def drop_step_metrics(self, steps: Iterable[int]) -> None:
        """Remove the rows and alerts of steps no checkpoint is read at any more (a checkpoint
        folder renamed to another step, a corrected --step-regex): their metrics stood in the
        table, `info` and the alerts' messages as if the step still existed."""
        table = self.step_metrics()
        self._remove_step_rows(table, ~np.isin(table["step"], list({int(step) for step in steps})))

    def _remove_step_rows(self, table: dict[str, np.ndarray], kept: np.ndarray) -> None:
        """Keep the metrics rows ``kept`` marks: the alerts of the steps dropped go; the commit
        point moves back to the first row dropped, the kept rows after it are moved up past it,
        then the commit point and ``measured`` are set and the arrays cut. Moved in place below
        the commit point, a kill between two columns left some moved and some not: after the
        resume the later steps showed their predecessors' values in the columns not yet moved
        (round AN). Killed now, the rows after the first dropped one are measured again."""
        if kept.all():
            return
        n, dropped = int(kept.sum()), {int(step) for step in table["step"][~kept]}
        first = int(np.argmin(kept))  # the rows before it stay where they are
        self.set_alerts([a for a in self.alerts() if int(a["step"]) not in dropped])
        group = self._ensure_group("metrics")
        recorded = {step: basis for step, basis in self._group_attrs("metrics").get("measured", {}).items()
                    if int(step) not in dropped}
        group.update_attributes({"committed_rows": first, "measured": recorded})
        for name, values in table.items():
            self.handle("metrics", name)[first:n] = values[first:][kept[first:]]
        group.update_attributes({"committed_rows": n})
        for name in table:
            self.handle("metrics", name).resize((n,))

    @uninterrupted
    def write_scalars(self, columns: dict[str, np.ndarray]) -> None:
        """Replace the trainer scalars table (it is re-read from the run's logs): unchanged, it
        is not written; else the commit point moves back to its first row that changes (none
        when the logs grew: a reader saw an empty table while it was set to 0 for each rewrite;
        round AQ: rows rewritten under it, column by column, a reader took one loss from the
        new log and another from the old) and ``rewrites`` counts it (back to the same count,
        a reader comparing counts alone saw nothing; round AR), the rows from there are
        written, then it moves on. A column the logs no longer hold is NaN (it kept the
        abandoned run's values beside the new run's steps)."""
        group = self._ensure_group("scalars")
        n = len(columns.get("step", []))
        attrs = self._group_attrs("scalars")
        committed, rewrites = int(attrs.get("committed_rows", 0)), int(attrs.get("rewrites", 0))
        written = self._scalars_written  # as this writer left it: read back, 41 columns of 100k rows cost 2 s a
        if written is None or self._scalars_written_at != (committed, rewrites):  # log pass (round AS); not if the
            written = {name: self.handle("scalars", name)[:committed] for name in self._array_names("scalars")}  # files changed
        columns = {**{name: np.full(n, np.nan) for name in written if name not in columns}, **columns}
        old = {name: written[name] for name in columns if name in written}
        same = min(committed, n)  # rows kept as they are: up to the first that differs in some old column
        for name, before in old.items():
            k = min(same, len(before))  # a column left short (a log that lost it, before round AR)
            differs = np.flatnonzero(~_equal_or_both_nan(before[:k], np.asarray(columns[name][:k])))
            same = int(differs[0]) if len(differs) else k
        if same == n == committed and len(old) == len(columns):
            self._scalars_written, self._scalars_written_at = old, (n, rewrites)
            return
        self._scalars_written = None  # until the table is whole again
        arrays = {name: self._ensure_column(group, "scalars", name, "int64" if name == "step" else "float64", n)
                  for name in columns}
        if same < committed:
            rewrites += 1
            group.update_attributes({"committed_rows": same, "rewrites": rewrites})
        for name, values in columns.items():
            arrays[name][same if name in old else 0:n] = values[same if name in old else 0:]
        group.update_attributes({"committed_rows": n})
        for array in arrays.values():
            if array.shape[0] > n:
                array.resize((n,))
        self._scalars_written = {name: np.array(values) for name, values in columns.items()}
        self._scalars_written_at = (n, rewrites)

    def write_sample_metric(self, name: str, start: int, values: np.ndarray) -> None:
        """Write rows [start, start+len) of a per-sample metric, then move its commit point."""
        self.write_sample_metrics({name: [(start, values)]})

    @uninterrupted
    def write_sample_metrics(self, parts: Mapping[str, Sequence[tuple[int, np.ndarray]]]) -> None:
        """Write each per-sample metric's ``(start, values)`` parts in one write over their span
        (rows between them kept, rows past its commit point NaN), then move its commit point: a
        backlog's steps written one at a time cost 4 resizes, writes and attribute updates a
        step (0.1 s of each step's 0.5 s at 1,000 steps of 16 samples)."""
        group = self._ensure_group("sample_metrics")
        for name, pieces in parts.items():
            if not pieces:
                continue
            stop = max(start + len(values) for start, values in pieces)
            array = self._ensure_column(group, "sample_metrics", name, "float32", stop, ahead=True)
            committed = int(array.attrs.get("committed_rows", 0))
            lo = min(committed, *(start for start, _ in pieces))
            span = array[lo:stop] if lo < committed else np.full(stop - lo, np.nan, np.float32)
            span[max(committed - lo, 0):] = np.nan  # past the commit point: a killed writer's, not kept
            for start, values in pieces:
                span[start - lo:start - lo + len(values)] = values
            array[lo:stop] = span
            array.update_attributes({"committed_rows": max(committed, stop)})

    def _ensure_column(self, group: zarr.Group, group_name: str, name: str, dtype: str, length: int,
                       ahead: bool = False) -> zarr.Array:
        """The column, made if new, at least ``length`` rows long; ``ahead``: grown by whole
        chunks, as the sample arrays are (a backlog's metrics resized and NaN-filled each of ~40
        columns at every write: half a second a write at 1,000 steps). Rows past a table's
        commit point are cut on close and on recovery (:meth:`StoreWriter._cut_to_committed`)."""
        if (group_name, name) not in self._handles and not (self.path / group_name / name / "zarr.json").is_file():
            per_step = group_name != "sample_metrics"  # a row per step: small chunks
            # a table's new column is made NaN and as long as the rows its table commits: made empty,
            # then grown, a live reader found it short of committed_rows (the viewer's table then cut
            # to no rows), then 0.0 where NaN is stored (round BE)
            chunk = 1024 if per_step else 16384
            rows = max(length, int(self._group_attrs(group_name).get("committed_rows", 0))) if per_step else 0
            rows = -(-rows // chunk) * chunk if ahead else rows
            is_float = dtype.startswith("float")
            _create_array(group, name, (), dtype, _column_description(group_name, name),
                          chunk, fill_value=np.nan if is_float else None,
                          attributes={} if per_step else {"committed_rows": 0}, rows=rows)
        array = self.handle(group_name, name)
        if array.shape[0] < length:
            old = array.shape[0]
            chunk = array.chunks[0]
            capacity = -(-max(length, old + old // 4) // chunk) * chunk if ahead else length
            array.resize((capacity,))
            if dtype.startswith("float"):
                array[old:capacity] = np.nan
        return array
