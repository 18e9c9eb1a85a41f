"""Log lines for a pass over many checkpoints: one per checkpoint when there are few (a live
run's new checkpoint), a progress line every few seconds and a summary for a backlog.

Pointing ``watch`` at a finished run of 1,200 checkpoints printed 2,400 lines ("ingested
step …", "laid out step …"); the progress bar is not drawn when stderr is no terminal (a
job's log file), so the periodic line is what says the backlog moves. Each checkpoint's
line is still logged at DEBUG (``-v``).
"""
from __future__ import annotations

import logging
import time

#: A pass over more checkpoints than this logs progress and a summary instead of a line each.
EACH_UP_TO = 20
#: Seconds between the progress lines of a backlog.
PROGRESS_EVERY_S = 10.0


class BacklogLog:
    """Counts a pass's checkpoints and says what a user needs of them, by the pass's size."""

    def __init__(self, logger: logging.Logger, total: int, doing: str, done: str, noun: str = "checkpoint") -> None:
        self._log, self.total, self._verb, self._noun, self._doing = logger, total, done, noun, doing
        self.count, self._rows = 0, 0
        self._steps: list[int] = []
        self._backlog = total > EACH_UP_TO
        self._last = time.monotonic()
        if self._backlog:
            self._log.info("%s %s %ss (-v lists each)", doing, f"{total:,}", noun)

    def item(self, step: int | None, message: str, *args: object) -> None:
        """One checkpoint done (``step`` None for a reference set): its own line, or progress."""
        self.count += 1
        if step is not None:
            self._steps.append(step)
        if not self._backlog:
            self._log.info(message, *args)
            return
        self._log.debug(message, *args)
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S and self.count < self.total:
            self._last = now
            self._log.info("%s %s of %s %ss%s", self._verb, f"{self.count:,}", f"{self.total:,}", self._noun,
                           f" (step {self._steps[-1]:,})" if self._steps else "")

    def rows(self, n: int) -> None:
        """Rows of the checkpoints under way: a line every few seconds when no checkpoint has
        finished meanwhile (one folder of 20,000 images was silent for minutes)."""
        self._rows += n
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self._log.info("%s: %s so far, %s of %s done", self._doing, counted(self._rows, "sample"),
                           f"{self.count:,}", counted(self.total, self._noun))

    def finish(self, details: str = "") -> None:
        """The summary of a backlog (a pass of few checkpoints said each already)."""
        if not self._backlog:
            return
        steps = f", steps {min(self._steps):,} to {max(self._steps):,}" if self._steps else ""
        self._log.info("%s %s %ss%s%s", self._verb, f"{self.count:,}", self._noun, steps, details)


def counted(n: int, noun: str) -> str:
    """``1 sample``, ``2,565 samples``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
