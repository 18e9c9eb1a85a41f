"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int, warm: bool = False,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """The median time of ``repeats`` calls of ``fn`` (after one untimed call if ``warm``), by
    ``clock``: wall time, or ``time.process_time`` for CPU time."""
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)
