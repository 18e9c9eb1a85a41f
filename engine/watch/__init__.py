"""Watch a run directory: an initial scan, then filesystem events, each followed by a rescan.

Events are only a hint that something changed (inotify gives no close event for files
written quickly into a new folder, and polling reports final states only), so an event
leads to a rescan, a readiness check, and the ingest of checkpoints whose content hash the
store has not committed yet. A rescan reads the whole run, so nothing leads to one that
need not: a tick while a checkpoint settles only re-checks that checkpoint's files until it
is ready, and a write to a trainer log only has the logs read again (at most every
LOGS_S); a safety rescan every RESCAN_S catches what events missed.

The modules: ``config`` (:class:`WatchConfig`, the timings), ``events`` (file events that wake
the watch), ``pending`` (what to ingest), ``moves`` (stored readings met under other names),
``settling`` (checkpoints still being written), ``found_notes`` and ``labels`` (what is said of
the checkpoints found and their labels), ``ingest_pass`` (one pass), ``after_ingest`` (the
hooks), ``live`` (the live loop), ``run_folder`` (the folder deleted, replaced, later runs) and
``watcher`` (:class:`Watcher`, their state). This package gives the names the rest of evowatch imports.
"""
from engine.watch.config import AfterIngest, WatchConfig
from engine.watch.ingest_pass import _WholeLines
from engine.watch.run_folder import _LaterRuns
from engine.watch.watcher import Watcher

__all__ = ["AfterIngest", "WatchConfig", "Watcher", "_LaterRuns", "_WholeLines"]
