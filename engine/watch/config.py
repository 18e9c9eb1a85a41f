"""What a watch is told (its run folder, options, readers) and the timings it keeps."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.discovery.options import DiscoveryOptions
from engine.pipeline import IngestResult
from engine.sampler import Sampler
from stores.zarr_store import StoreWriter

RESCAN_S = 30.0
#: A burst of file events is one: the watch rescans once none came for QUIET_S (QUIET_MAX_S at most).
QUIET_S = 0.3
QUIET_MAX_S = 2.0
#: The least time between two readings of the trainer logs for their writes alone.
LOGS_S = 2.0
#: A live watch's hooks measure for at most this long a call, then the loop looks for new
#: checkpoints before they go on (:attr:`engine.signals.Signals.budget_s`)
HOOK_BUDGET_S = 5.0
#: The longest quiet --settle's default is lengthened to (Watcher._lengthen_settle): a trainer
#: adding a file to a checkpoint minutes later is not waited for at every checkpoint.
SETTLE_MAX_S = 60

#: The sizes of a series' latest grids a new grid's is compared with (Watcher._check_grid_size):
#: all of them were kept, a list as long as the run.
GRID_SIZES_KEPT = 20

#: Seconds between two snapshots of the run with --poll (each stats every file of the run).
POLL_S = 5.0

AfterIngest = Callable[[StoreWriter, list[IngestResult]], None]


@dataclass
class WatchConfig:
    run_dir: Path
    options: DiscoveryOptions = field(default_factory=DiscoveryOptions)
    real: Path | None = None
    holdout: Path | None = None
    poll: bool = False
    tick: float = 1.0
    #: decode worker processes; None: engine.pipeline.default_workers()
    workers: int | None = None
    progress: bool = True
    #: ``--sampler``: checkpoints are weight files, sampled by the user's function (engine.sampler)
    sampler: Sampler | None = None
    #: ``--same-run``: another run's folder goes on with the store's run (resumed elsewhere)
    same_run: bool = False
    #: --settle was not given: a trainer seen writing a checkpoint's files further apart than it
    #: lengthens it for the rest of the watch (kohya-ss writes one image per prompt, seconds apart)
    adapt_settle: bool = False
