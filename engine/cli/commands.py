"""The `evowatch` commands: watch, info, layout, export, view and demo, each from its parsed arguments."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from engine.backlog_log import counted
from engine.cli.interrupts import STOP_REQUESTED
from engine.cli.logs import log
from stores.format import listed, one_line


def cmd_watch(args: argparse.Namespace) -> int:
    if args.once and not args.run_dir.is_dir():  # nothing to wait for
        print(one_line(f"evowatch watch: error: argument RUN_DIR: {args.run_dir}: no such directory"), file=sys.stderr)
        return 2

    if args.once:
        from engine.session import open_session

        with open_session(args) as watcher:
            watcher.run_until_settled()
            watcher.end_hooks(wait=True)
            # no checkpoint stored (a wrong path, --step-regex or --samples, a folder that cannot be read,
            # none complete yet): said, and a status a script stops at (`watch --once && export` exported nothing)
            stored_nothing = watcher.stored_nothing
        _say_pause_left(args.run_dir)
        return 1 if stored_nothing else 0
    left = 0
    try:  # a live watch stopped is a watch done, also while it starts (its imports, the encoder loading: seconds)
        from engine.session import open_session

        with open_session(args) as watcher:
            _say_pause_left(args.run_dir)  # a watch restarted while the trainer waits, or a pause file left from before
            try:
                watcher.run_forever(STOP_REQUESTED)  # returns when a stop's exception was dropped
            except KeyboardInterrupt:
                pass
            left = watcher.steps_left()
            watcher.say_unfinished(("the next watch ingests it", "the next watch ingests them"))
    except KeyboardInterrupt:
        pass
    log.info("stopped; everything ingested so far is committed%s",
             f" ({counted(left, 'step')} not measured yet: the next watch measures them)" if left else "")
    _say_pause_left(args.run_dir)
    return 0


def _say_pause_left(run_dir: Path) -> None:
    """The pause file outlives the watch (``--once`` on a finished run left it unsaid): said, with
    when and why it was written, so that a trainer started there later is not held without a word."""
    from engine.pause import pause_left

    if line := pause_left(run_dir):
        log.warning("%s", line)


def cmd_info(args: argparse.Namespace) -> int:
    from engine.alerts import NEWEST_ALERTS, onsets_and_newest
    from stores.zarr_store import StoreReader, missing_rows

    summary = StoreReader(args.store).info()
    if summary["missing_chunks"]:  # what is there is still shown: which steps a new copy must bring back
        log.warning("%s: %s: the store was copied or restored incompletely; copy it again from its source",
                    summary["store"], missing_rows(summary["missing_chunks"]))
    if args.json:
        print(json.dumps(summary))
        return 0
    steps = summary["steps"]
    span = f"{steps[0]}..{steps[-1]}" if steps else "none"
    print(f"store       {summary['store']}")
    print(f"rows        {summary['rows']} ({summary['current_rows']} current)")
    print(f"checkpoints {summary['checkpoints']}; {counted(len(steps), 'step')}: {span}")
    print(f"encoder     {summary['encoder']} (dim {summary['dim']}, {summary['device']})")
    print("kinds       " + ", ".join(f"{k} {v}" for k, v in summary["kinds"].items()))
    print(f"labels      {len(summary['labels'])}")
    laid, rows = summary["layout_rows"], summary["rows"]
    print(f"layout      {counted(laid, 'row')}" if laid >= rows else  # a watch --no-layout, or stopped before it
          f"layout      {laid:,} of {counted(rows, 'row')}: `evowatch layout {shlex.quote(str(summary['store']))}` "
          "lays out the rest")
    print(f"warnings    {counted(summary['warnings'], 'skipped file')} ({summary['current_warnings']} in current "
          f"version{'' if summary['current_warnings'] == 1 else 's'})")
    for skipped in summary["skipped_files"]:  # the newest first
        print(one_line(f"  skipped {skipped['path']}: {skipped['reason']}"))  # a file named with a newline
    if (more := summary["current_warnings"] - len(summary["skipped_files"])) > 0:
        print(f"  ... and {more} more: the store's warnings/ arrays hold them all (docs/store.md)")
    if summary["scalars"]:
        print("scalars     " + ", ".join(summary["scalars"]))
    latest = summary["latest_metrics"]
    if latest:
        shown = [k for k in ("vendi", "pairwise_cosine", "precision", "recall", "coverage", "region_tv", "fd",
                                  "near_copy_frac", "label_tv") if k in latest]
        print(f"metrics     {counted(summary['metric_steps'], 'step')}; at step {latest['step']}: "
              + (", ".join(f"{k} {latest[k]:.3g}" for k in shown) or "none measured (too few readable samples)"))
    alerts = summary["alerts"]
    if alerts is None:  # an alerts array's zarr.json missing: named above
        print("alerts      not read: their arrays' metadata is missing (above)")
        alerts = []
    else:
        print(f"alerts      {len(alerts)}")
    shown = onsets_and_newest(alerts)
    for alert in shown:
        print(one_line(f"  step {alert['step']}: [{alert['rule']}] {alert['message']}"))
    if len(shown) < len(alerts):
        print(f"  ({len(shown)} shown: each rule's first and the newest {NEWEST_ALERTS}; "
              f"`evowatch info --json` lists all {len(alerts)})")
    if line := _unsaid_line(summary["unsaid_alerts"]):
        print(one_line(line))
    return 0


def _unsaid_line(unsaid: dict[str, list[dict]]) -> str:
    """The onsets and withdrawals a watch killed before their lines left unsaid (docs/metrics.md),
    else "": info listed such an alert as if announced and its --on-alert command run."""
    from engine.alerts import alert_name

    parts = [f"{counted(len(alerts), noun)} {what} ({listed([alert_name(a) for a in alerts])})"
             for noun, what, alerts in (("onset", "never announced nor --on-alert run", unsaid["onsets"]),
                                        ("withdrawal", "never said withdrawn", unsaid["withdrawals"])) if alerts]
    return ("unsaid      " + "; ".join(parts) + ": a watch was killed before saying so; the next watch says what its "
            "first pass confirms") if parts else ""


def cmd_layout(args: argparse.Namespace) -> int:
    from engine.layout import LayoutParams
    from engine.layout_runner import recompute_layout, update_layout
    from stores.zarr_store import StoreReader, StoreWriter

    encoder = StoreReader(args.store).encoder
    params = LayoutParams(alignment=args.alignment)
    with StoreWriter(args.store, encoder, ingests=False) as store:
        rows = recompute_layout(store, params) if args.full else update_layout(store, params)
    log.info("layout: %d rows %s", rows, "recomputed" if args.full else "added")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.export import export_store, is_stream

    path, rows = export_store(args.store, args.to, args.out, embeddings=args.embeddings)
    if not args.quiet:  # -q: warnings, errors and alerts only, as every command
        print(f"wrote {rows} rows to {path}", file=sys.stderr if is_stream(path) else sys.stdout)  # not into the rows
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from viewer.launch import launch

    return launch(args.store, host=args.host, port=args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    fail = f"{args.fail.kind}@{args.fail.step}" if args.fail else None
    if args.fail:
        from examples.demo_trainer import DEFAULT_STEPS

        if args.fail.step > (steps := args.steps or DEFAULT_STEPS):  # nothing was induced, nothing said
            print(f"evowatch demo: error: argument --fail: step {args.fail.step} is past the demo's last step "
                  f"({steps}); choose an earlier one or more --steps", file=sys.stderr)
            return 2
    return run_demo(args.out, steps=args.steps, fail=fail, encoder=args.encoder, progress=not args.quiet)


COMMANDS = {"watch": cmd_watch, "info": cmd_info, "layout": cmd_layout, "export": cmd_export, "view": cmd_view,
            "demo": cmd_demo}
