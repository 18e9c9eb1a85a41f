"""Wire a `watch` invocation together: encoder, store, watcher and the after-ingest steps."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.alerts import alert_name
from engine.backlog_log import counted
from engine.encoders import DEFAULT_ENCODER_SPEC, make_encoder, parse_encoder_spec
from engine.errors import EvowatchError, WeightsNotFoundError
from engine.pause import missing_program
from engine.watch import AfterIngest, WatchConfig, Watcher
from stores.errors import StoreFormatError, StoreLockedError
from stores.format import KIND_CODES, listed
from stores.zarr_store import (DEFAULT_THUMBNAIL_SIZE, StoreReader, StoreWriter, check_store_path, discard_store,
                                encoder_mismatch, superseded_flags)

log = logging.getLogger(__name__)


def _stored_encoder(store: Path) -> dict:
    """The encoder record of an existing store ({} for a new one): its spec is the default
    for a resumed run."""
    if not (Path(store) / "zarr.json").is_file():
        return {}
    return StoreReader(store).encoder or {}


def _refuse_another_kind(store: Path, stored: dict, spec: str) -> None:
    """An encoder that cannot be the store's (pixels for a CLIP store, another pixels size)
    is refused before a model is built; CLIP specs that differ may still name the same
    weights, which the writer checks by identity once they are loaded."""
    try:
        wanted, have = parse_encoder_spec(spec), parse_encoder_spec(stored.get("spec") or "")
    except ValueError:  # no spec recorded: the identity check decides
        return
    if wanted.kind != have.kind or wanted.size != have.size:
        raise encoder_mismatch(store, stored, f"'{wanted.text()}'")


def encoder_record(encoder) -> dict:
    """What the store keeps about the encoder: identity and dim decide compatibility; the
    spec loads it again (the viewer's text query, a resumed run's --encoder)."""
    return {"identity": encoder.identity, "dim": int(encoder.dim), "device": encoder.device,
            "fallback": encoder.fallback, "spec": getattr(encoder, "spec", encoder.identity)}


def after_ingest_steps(args: argparse.Namespace, encoder) -> list[AfterIngest]:
    """What runs after each pass of committed checkpoints: the layout, then the signals."""
    steps: list[AfterIngest] = []
    if not args.no_layout:
        from engine.layout import LayoutParams
        from engine.layout_runner import update_layout

        params = LayoutParams(alignment=args.alignment)
        steps.append(lambda store, results: update_layout(store, params))
    if not args.no_metrics:
        from engine.signals import Signals

        steps.append(Signals(run_dir=args.run_dir, encoder=encoder, probes=tuple(args.probe or ()),
                             on_alert=args.on_alert, pause_on_alert=args.pause_on_alert))
        if args.on_alert and (program := missing_program(args.on_alert)):
            log.warning("--on-alert: %s: no such program (not on PATH, or no executable file there); the command "
                        "fails at each alert: check it", program)
    elif unused := [option for option, given in (("--probe", args.probe), ("--on-alert", args.on_alert),
                                                  ("--pause-on-alert", args.pause_on_alert)) if given]:
        log.warning("%s: not used with --no-metrics (no signal is measured, no alert raised)", ", ".join(unused))
    return steps


def _say_loading(spec: str) -> None:
    """Say a CLIP encoder is loading: importing open_clip and building the model take 5-40 s on
    a CPU, and the watch said nothing until the encoder's line."""
    try:
        kind = parse_encoder_spec(spec).kind
    except ValueError:  # make_encoder says what is wrong with it
        return
    if kind == "clip":
        log.info("loading the encoder %s", spec)


@contextlib.contextmanager
def open_session(args: argparse.Namespace) -> Iterator[Watcher]:
    from engine.cli import discovery_options
    from engine.signals import check_probe_names

    options = discovery_options(args)
    check_store_path(args.store)  # before the encoder's weights are looked for
    stored = _stored_encoder(args.store)
    try:
        check_probe_names(args.probe or ())  # before the encoder loads
    except ValueError as exc:
        raise EvowatchError(str(exc)) from None
    if args.encoder and stored:
        _refuse_another_kind(args.store, stored, args.encoder)
    spec = args.encoder or stored.get("spec") or DEFAULT_ENCODER_SPEC
    _say_loading(spec)
    try:
        encoder = make_encoder(spec, device=args.device)
    except WeightsNotFoundError as exc:
        if args.encoder or not stored.get("spec"):
            raise
        raise WeightsNotFoundError(f"{args.store}: the store's encoder {stored['spec']}: {exc} Moved? Pass --encoder "
                                   "with the weights where they are now (the store checks they are the same)") from None
    if args.probe and not args.no_metrics and not encoder.supports_text:  # said before ingesting, not after
        raise EvowatchError(f"--probe needs a clip: encoder to score its prompts; {encoder.spec} has no text tower: "
                            "drop --probe or use --encoder clip:ARCH/PRETRAINED")
    if args.probe and not args.no_metrics and "/random-seed" in encoder.identity:  # round AJ: all probe shares 0
        log.warning("--probe with %s: an untrained CLIP scores prompts at random, so the probe shares and "
                    "probe_drift mean nothing; use pretrained weights (--encoder clip:ARCH/PRETRAINED)", encoder.identity)
    record = encoder_record(encoder)
    sampler = None
    if getattr(args, "sampler", None):
        from engine.sampler import load_sampler

        sampler = load_sampler(args.sampler, n_samples=args.samples_per_checkpoint, seed=args.sampler_seed,
                               device=args.device, trust_checkpoints=args.trust_checkpoints, weight_globs=args.weights)
    size = args.thumbnail_size
    if stored and size is not None and size != (kept := StoreReader(args.store).attrs.get("thumbnail_size")):
        log.warning("%s: thumbnails stay %s px, the size the store was made with (--thumbnail-size applies to new "
                    "stores)", args.store, kept)
    if stored and args.labels:
        _say_stored_unlabelled(args.store, args.labels)
    opened: list[StoreWriter] = []
    with _discarded_if_left_empty(args.store, opened), \
            StoreWriter(args.store, record, thumbnail_size=size or DEFAULT_THUMBNAIL_SIZE, recover_now=False) as store:
        opened.append(store)
        config = WatchConfig(run_dir=args.run_dir, options=options, real=args.real, holdout=args.holdout,
                             poll=args.poll, workers=args.workers, progress=not args.quiet, sampler=sampler,
                             same_run=getattr(args, "same_run", False),  # the demo has no such option
                             adapt_settle=args.settle is None)
        watcher = Watcher(config, store, encoder, after_ingest_steps(args, encoder))
        renamed = watcher.check_same_run(_watched_at(store))  # another run refused before the store changes
        store.recover()  # (a copy taken mid-write cut back: round BC)
        watcher.take_renamed(renamed)
        store.record_history({"event": "watch", "run_dir": str(args.run_dir),
                              "run_path": os.path.realpath(args.run_dir), **record,
                              **({"sampler": sampler.identity} if sampler else {}),
                              **({"no_metrics": True} if args.no_metrics else {})})
        _say_resumed(store)
        if args.no_metrics:
            _say_kept_unsaid(store)
        watcher.start_hooks()
        try:
            yield watcher
        finally:
            watcher.end_hooks(wait=False)  # no --on-alert command outlives the watch


def _say_resumed(store: StoreReader) -> None:
    """A watch started on a store that holds steps names them: only new or changed checkpoints
    are read (a restart with nothing new said only "watching run", as if nothing were stored)."""
    ckpt = store.checkpoints()
    steps = np.unique(ckpt["step"][~superseded_flags(ckpt) & (ckpt["kind"] == KIND_CODES["generated"])])
    if len(steps):
        span = f"{steps[0]:,}" + (f"..{steps[-1]:,}" if len(steps) > 1 else "")
        log.info("%s: resuming: it holds %s (%s); only new or changed checkpoints are read", store.path,
                 counted(len(steps), "step"), span)


def _say_kept_unsaid(store: StoreReader) -> None:
    """--no-metrics on a store holding alerts a killed watch left unsaid: no pass measures, so none is
    confirmed nor said; without this line they stayed unsaid silently (info promised the next watch)."""
    if unsaid := store.unsaid_onsets() + store.unsaid_withdrawals():
        names = listed([alert_name(a) for a in unsaid])
        log.warning("%s: %s %s unsaid (a watch was killed before saying %s): --no-metrics measures nothing; the "
                    "next watch without it says what its first pass confirms", store.path, names,
                    "stays" if len(unsaid) == 1 else "stay", "it" if len(unsaid) == 1 else "them")


def _watched_at(store: StoreReader) -> str | None:
    """Where the store's run was last watched (its real path); None when no watch said it
    (earlier versions kept only the path as typed: an absolute one is taken as it is)."""
    for entry in reversed(store.attrs.get("history", [])):
        if entry.get("event") == "watch":
            typed = entry.get("run_path") or entry.get("run_dir") or ""
            return os.path.realpath(typed) if os.path.isabs(typed) else None
    return None


def _say_stored_unlabelled(store: Path, labels: Path) -> None:
    """--labels given to a store whose samples were read without labels: a checkpoint is read
    once, so they stay unlabelled (label shares and label_drift left out), which was unsaid."""
    reader = StoreReader(store)
    generated = (reader.samples("kind") == KIND_CODES["generated"]) & reader.current_rows()
    if generated.any() and (reader.samples("label")[generated] < 0).all():
        log.warning("%s: the %s samples stored before were read without labels and keep none (a checkpoint is read "
                    "once): --labels %s labels new checkpoints; for all of them, watch into a new --store",
                    store, f"{int(generated.sum()):,}", labels)


@contextlib.contextmanager
def _discarded_if_left_empty(store: Path, opened: list[StoreWriter]) -> Iterator[None]:
    """A store this invocation created is removed again when it ends before committing a
    checkpoint: failed (an empty --holdout folder, a bad --sampler), stopped (Ctrl-C on a live
    watch still waiting for its run) or done (`--once` on a run with none yet): no empty store
    folder is left behind. Runs once the writer has closed. A store another process holds is
    its own, even one it has just created (two watches started together on a new store), and
    so is one put at the path since the writer opened its own (round AP: a store copied back
    after the "moved while being written" error was removed). ``opened``: the writer, once open."""
    ours = not Path(store).exists()
    try:
        yield
    except StoreLockedError:
        ours = False
        raise
    finally:
        if ours and all(writer.holds_its_folder() and not writer.write_let_go for writer in opened) \
                and _is_empty_store(store):  # a commit let go by a second Ctrl-C may land yet: kept
            discard_store(store)  # whole: a second Ctrl-C left half a store the same command refused


def _is_empty_store(store: Path) -> bool:
    try:
        return StoreReader(store).n_checkpoints == 0
    except (StoreFormatError, OSError):  # not made, or not ours: leave it be
        return False
