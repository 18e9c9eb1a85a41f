"""The hand-off to the hooks that measure and alert after each pass."""
from __future__ import annotations

from engine.pipeline import IngestResult


class _Hooks:
    """The watch's hooks (``after_ingest``, given by :class:`~engine.watch.watcher.Watcher`
    with ``store``)."""

    def _run_hooks(self, results: list[IngestResult]) -> None:
        """Hooks catch up from the store's committed state, so a pass that failed or was
        stopped half-way is covered by the next one."""
        for hook in self.after_ingest:
            hook(self.store, results)

    def start_hooks(self) -> None:
        """Let the hooks note, before the first pass, what a watch killed before left unsaid
        (:meth:`engine.signals.Signals.start`: said once that pass confirms it)."""
        for hook in self.after_ingest:
            if hasattr(hook, "start"):
                hook.start(self.store)

    def end_hooks(self, wait: bool) -> None:
        """Let the hooks end what they run beside the watch (:meth:`engine.signals.Signals.end`):
        waited for after ``--once``, stopped when the watch stops."""
        for hook in self.after_ingest:
            if hasattr(hook, "end"):
                hook.end(wait)

    @property
    def stored_nothing(self) -> bool:
        """Whether the store holds no checkpoint of the run (the line before says why): none
        found (a wrong path, --step-regex or --samples), or none complete yet (no ready file,
        still being written: round BC, `watch --once --ready-file F && export` went on, status 0,
        to a store that was not there). Not a run whose files were deleted after they were stored."""
        return not self.store.holds_generated()

    def steps_left(self) -> int:
        """Steps the hooks have yet to measure (:meth:`engine.signals.Signals.steps_left`)."""
        return sum(hook.steps_left(self.store) for hook in self.after_ingest if hasattr(hook, "steps_left"))

    def _hooks_pending(self) -> bool:
        """Whether a hook stopped at its time budget with work left (a live watch's re-measure)."""
        return any(getattr(hook, "pending", False) for hook in self.after_ingest)
