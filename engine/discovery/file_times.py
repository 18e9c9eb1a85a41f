"""What files' times tell of the order they were written in (unless a copy gave them all one
time): how the level rule tells which number of a name is the step."""
from __future__ import annotations

import datetime
import re
from pathlib import Path


#: File times spread over less than this say nothing of how a run was written (a copy).
_MIN_TIME_SPREAD_S = 2.0


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


#: A date and time of day in a name (OneTrainer's ``2024-05-14_10-12-33-training-sample-…``,
#: kohya-ss's ``…_20240105103000.png``).
_NAME_TIME = re.compile(r"(?<!\d)(20\d\d)-?(\d\d)-?(\d\d)[-_T ]?(\d\d)[-:]?(\d\d)[-:]?(\d\d)(?!\d)")


def _name_time(path: Path) -> float | None:
    if not (match := _NAME_TIME.search(path.stem)):
        return None
    try:
        return datetime.datetime(*map(int, match.groups())).timestamp()
    except ValueError:  # not a date after all
        return None


def _telling_times(paths: list[Path]) -> list[float] | None:
    """The files' modification times, when they tell in what order the files were written;
    else (a copy gave them one time: ``cp -r``, ``gsutil cp``) the times their names carry,
    when they all carry one; None when neither spreads over _MIN_TIME_SPREAD_S."""
    for times in ([_mtime(path) for path in paths], [_name_time(path) for path in paths]):
        if None not in times and max(times) - min(times) >= _MIN_TIME_SPREAD_S:
            return times
    return None


def _written_together(steps: list[list[float]]) -> bool | None:
    """Whether each step's files were written one after another, no other step's between
    them (a trainer saves a step's samples together, however long each takes to sample):
    ``None`` when the times cannot tell (one step so far, or a copy that gave every file the
    same time)."""
    times = [t for step in steps for t in step]
    if len(steps) < 2 or not times or max(times) - min(times) < _MIN_TIME_SPREAD_S:
        return None
    order = [k for _, k in sorted((t, k) for k, step in enumerate(steps) for t in step)]
    runs = 1 + sum(a != b for a, b in zip(order, order[1:]))
    return runs == sum(1 for step in steps if step)
