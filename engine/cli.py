"""The `evowatch` command line (contract: shared DESIGN.md, "Command line")."""
from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import math
import os
import re
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine import stopping
from engine.backlog_log import counted
from engine.errors import DiscoveryError, EvowatchError
from stores.errors import NO_ROOM
from stores.format import did_you_mean, listed, one_line, stored_text

if TYPE_CHECKING:  # the CLI imports heavy modules lazily, so `--help` stays fast
    from engine.discovery.options import DiscoveryOptions

DEFAULT_ENCODER = "clip:ViT-B-32/laion2b_s34b_b79k"
DEMO_STEPS = 3000  # examples/demo_trainer.py's DEFAULT_STEPS (not imported: it imports torch)
DEFAULT_ALIGNMENT = 10.0  # engine.layout.LayoutParams.alignment (not imported: keeps `--help` fast)
log = logging.getLogger("evowatch")


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line (the CLI contract), not argparse's usage block; ``--help``
    still prints the usage. Subcommand parsers are of this class too."""

    _given: tuple[str, ...] = ()  # the arguments being parsed, up to a `--`

    def error(self, message: str) -> NoReturn:
        """A required option missing because it was mistyped (`--sotre x.zarr`) names the typo,
        as an unknown option does: argparse checks the required ones first and said only
        "the following arguments are required: --store"."""
        mistyped = [token for token in self._given if self._unknown_option(token)]
        if mistyped and message.startswith("the following arguments are required"):
            message = f"unrecognized arguments: {' '.join(mistyped)}{self._meant(mistyped[0])}"
        self.exit(2, f"{self.prog}: error: {_choice_meant(message)}\n")

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 (argparse's signature)
        """A subcommand names an option it does not know itself, with the one meant (`evowatch
        watch: error: unrecognized arguments: --grids (did you mean --grid?)`); argparse's top
        parser said only "evowatch: error: unrecognized arguments"."""
        given = list(sys.argv[1:] if args is None else args)
        self._given = tuple(given[:given.index("--")] if "--" in given else given)
        if (misplaced := self._option_before_command()) is not None:
            self.error(misplaced)
        parsed, extra = super().parse_known_args(args, namespace)
        if extra and " " in self.prog:  # a subcommand's parser
            self.error(f"unrecognized arguments: {' '.join(extra)}{self._meant(extra[0])}")
        return parsed, extra

    def _option_before_command(self) -> str | None:
        """A command's option given before the command (`evowatch --store x.zarr watch run`): argparse
        took its value for the command ("invalid choice: 'x.zarr'") or said "unrecognized arguments"."""
        commands = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
        at = next((i for i, token in enumerate(self._given) if token in commands), None)
        if at is None:
            return None
        command, parser = self._given[at], commands[self._given[at]]
        for token in self._given[:at]:
            if self._unknown_option(token):
                name = token.split("=")[0]
                where = f"an option of `evowatch {command}`: give it after {command}"
                if not parser._unknown_option(token):
                    return f"{name} is {where}"
                if plain := parser._plain_argument(name):
                    return f"unrecognized arguments: {token}{plain}"
                if meant := did_you_mean(name, parser._options()):
                    return f"unrecognized arguments: {token}{meant[:-1]} {where})"
        return None

    def _options(self) -> list[str]:
        return [option for action in self._actions for option in action.option_strings]

    def _meant(self, token: str) -> str:
        name = token.split("=")[0]
        return self._plain_argument(name) or did_you_mean(name, self._options())

    def _plain_argument(self, name: str) -> str:
        """`` (`evowatch info` takes STORE as a plain argument: ...)`` for an option named after one of
        this command's positionals (`evowatch --store s.zarr info`): a near option (--json) was meant."""
        plain = next((a for a in self._actions if not a.option_strings and a.dest == name[2:].replace("-", "_")), None)
        if plain is None or plain.metavar is None:
            return ""
        return f" (`{self.prog}` takes {plain.metavar} as a plain argument: {self.prog} {plain.metavar})"

    def _unknown_option(self, token: str) -> bool:
        """A ``--long`` option that no option of this parser is, nor starts with (argparse's abbreviations)."""
        name = token.split("=")[0]
        return name.startswith("--") and len(name) > 2 and not any(o.startswith(name) for o in self._options())


def _choice_meant(message: str) -> str:
    """argparse's "invalid choice: 'wach' (choose from 'watch', ...)" with the choice meant first:
    "(did you mean watch?; choose from ...)"."""
    found = re.fullmatch(r"(.*invalid choice: '?(.*?)'?) \(choose from (.*)\)", message)
    if found is None or not (meant := did_you_mean(found[2], re.findall(r"'([^']*)'", found[3]) or found[3].split(", "))):
        return message
    return f"{found[1]}{meant[:-1]}; choose from {found[3]})"


def _run_folder(value: str) -> Path:
    """A folder that is no store, or a path nothing is at yet (a run the trainer has not created)."""
    from stores.format import is_store

    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: not a directory")
    if not path.exists():  # waited for, unless it lies below a file: it never comes (waited for ever)
        where = next(parent for parent in path.absolute().parents if parent.exists())
        if not where.is_dir():
            raise argparse.ArgumentTypeError(f"{value}: {where} is a file, not a directory; give the run's folder")
    if is_store(path):
        raise argparse.ArgumentTypeError(f"{value}: is an evowatch store, not a training run: watch the folder the "
                                         f"trainer writes its samples to (`evowatch view {value}` shows this store)")
    return path


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evowatch")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "(not installed)"


def _existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: {'not a directory' if path.exists() else 'no such directory'}")
    return path


def _number(kind: type[int] | type[float], low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` for a finite number in [low, high]: "--workers -3" crashed in the
    decode pool, "--settle nan" waited "nans", "--thumbnail-size 100000" allocated for ever."""
    def convert(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not math.isfinite(number) or number < low or (high is not None and number > high):
            said = (lambda v: str(int(v))) if kind is int else (lambda v: f"{v:g}")
            span = f"from {said(low)} to {said(high)}" if high is not None else f"of at least {said(low)}"
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a finite number'} {span}, got {value!r}")
        return number

    convert.__name__ = kind.__name__
    return convert


def _parsed_by(module: str, name: str) -> Callable[[str], Any]:
    """An argparse ``type=`` from a ``parse_*`` function, imported when a value comes (keeps
    ``--help`` fast). Its ValueError becomes "argument --grid: Expected ..." (argparse
    itself would only say "invalid value")."""
    def convert(value: str) -> Any:
        try:
            return getattr(importlib.import_module(module), name)(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def _encoder_spec(value: str) -> str:
    """An argparse ``type=`` for the demo's ``--encoder``: checked before anything is trained
    (a typo was found 9 s into training, its folders left behind), kept as typed."""
    _parsed_by("engine.encoders", "parse_encoder_spec")(value)
    return value


def _regex(value: str) -> str:
    """An argparse ``type=`` for ``--step-regex``: said as the option, the pattern as typed."""
    try:
        re.compile(value)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{value} is no regular expression ({exc}); e.g. 'iter_(\\d+)'") from None
    return value


def _ready_file(value: str) -> str:
    """An argparse ``type=`` for ``--ready-file``: its placeholders are known ones (an unknown
    one ended the watch with a KeyError at the first checkpoint)."""
    try:
        value.format(stem="s", name="n", step=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{value!r} cannot be filled in ({type(exc).__name__}: {exc}); its "
                                         "placeholders are {stem}, {name} and {step} (write {{ and }} for braces)") from None
    return value


def _discovery_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("discovery")
    group.add_argument("--step-regex", type=_regex, metavar="REGEX", help="regex searched in each name (without its extension, then with it) "
                       "whose group named step, else first group, else whole match is the step; default: the number "
                       "the name calls a step (step=1000, gs-005000, iter5000), else its last integer that is no date, "
                       "time, setting, shape or hash")
    group.add_argument("--samples", action="append", metavar="GLOB", help="sample file glob (repeatable); default: images and .npy/.npz/.pt tensors; "
                       "for a run that logs its samples to TensorBoard only: the image tags to read")
    group.add_argument("--grid", type=_parsed_by("engine.discovery.options", "parse_grid"), metavar="ROWSxCOLS", help="force the grid geometry of grid images, e.g. 8x8")
    group.add_argument("--tile-size", type=_number(int, 1), metavar="PX", help="force the tile size of grid images (pixels)")
    group.add_argument("--value-range", choices=("auto", "tanh", "unit", "byte"), default="auto",
                       help="the range of float pixels in tensor files, float images (32-bit TIFF) and sampler outputs: "
                            "tanh [-1, 1], unit [0, 1], byte [0, 255]; auto (default) guesses per file: [-1, 1] when a "
                            "value is negative")
    for axis, example in (("rows", "2: (MUNIT's translations), 4 (U-GAT-IT's)"), ("cols", "1: (StarGAN's outputs), 1::2")):
        group.add_argument(f"--tile-{axis}", type=_parsed_by("engine.grids", "parse_tile_slice"), metavar="SLICE",
                           help=f"keep only these {'columns' if axis == 'cols' else 'rows'} of each grid, a Python "
                                f"slice from 0, e.g. {example}: the others hold the trainer's real inputs, "
                                "reconstructions or attention maps")
    group.add_argument("--ready-file", type=_ready_file, metavar="NAME", help="a checkpoint is complete when this file exists in it "
                       "({stem}, {name} and {step} are the checkpoint's)")
    group.add_argument("--settle", type=_number(float, 0, 86400), metavar="S",
                       help="otherwise, when nothing in it changed for S seconds (at most a day: 86400; default 2, "
                            "lengthened for a trainer seen writing a checkpoint's files further apart)")
    group.add_argument("--labels", type=Path, metavar="FILE", help="labels file (CSV file,label or instance,label; or JSON)")


def discovery_options(args: argparse.Namespace) -> DiscoveryOptions:
    """The discovery settings of a `watch` command line."""
    from engine.decode.pixels import VALUE_RANGES
    from engine.discovery.options import DiscoveryOptions

    if args.labels is not None and not any(p.is_file() for p in (args.labels, args.run_dir / args.labels)):
        if args.labels.is_dir():
            raise DiscoveryError(f"{args.labels}: --labels names a folder; give the labels file (CSV or JSON), or "
                                 "leave --labels out for one folder per label")
        if args.labels.is_absolute():  # a relative one may name a file in each checkpoint folder: Watcher looks
            raise DiscoveryError(f"{args.labels}: --labels file not found; check the path")
    kwargs = dict(step_regex=args.step_regex, grid=args.grid, tile_size=args.tile_size, tile_rows=args.tile_rows,
                  tile_cols=args.tile_cols, ready_file=args.ready_file, labels_file=args.labels,
                  value_range=VALUE_RANGES[args.value_range])
    if args.samples:
        kwargs["sample_globs"] = tuple(args.samples)
    if args.settle is not None:
        kwargs["settle"] = args.settle
    return DiscoveryOptions(**kwargs)


def _verbosity_args(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="only warnings, errors and alerts")
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="debug output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evowatch", description="Watch a generative model while it trains.")
    _verbosity_args(parser, False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    watch = sub.add_parser("watch", help="ingest a run directory's checkpoints into a store, then keep watching it")
    watch.add_argument("run_dir", type=_run_folder, metavar="RUN_DIR",
                       help="the trainer's output folder; without --once, one not created yet is waited for")
    watch.add_argument("--store", type=Path, required=True, metavar="STORE", help="the Zarr store (created if missing)")
    watch.add_argument("--once", action="store_true", help="ingest what is there and exit")
    watch.add_argument("--same-run", action="store_true",
                       help="RUN_DIR goes on with the run the store was watched at (resumed in a new folder): "
                            "not refused for holding none of its checkpoints")
    watch.add_argument("--encoder", default=None, metavar="SPEC",
                       help="clip:ARCH/PRETRAINED, clip:ARCH/random, clip:ARCH@/path/to/weights, "
                            "clip:ARCH/PRETRAINED@/path/to/weights, clip:local-dir:FOLDER, "
                            f"pixels or pixels:N (default: the store's own, else {DEFAULT_ENCODER})")
    watch.add_argument("--device", type=_parsed_by("engine.encoders", "parse_device"), default="auto",
                       metavar="auto|cpu|cuda|cuda:N", help="where to encode (default auto: CUDA when there is one)")
    watch.add_argument("--real", type=_existing_dir, metavar="DIR", help="real training images (reference)")
    watch.add_argument("--holdout", type=_existing_dir, metavar="DIR", help="real held-out images never trained on")
    watch.add_argument("--poll", action="store_true", help="poll instead of native file events (network filesystems)")
    watch.add_argument("--workers", type=_number(int, 0), default=None,
                       help="decode worker processes (default: one per usable core, at most 8); 0 decodes in a thread")
    watch.add_argument("--thumbnail-size", type=_number(int, 8, 256), default=None, metavar="PX", help="thumbnail size stored per sample, 8 to 256 (new stores; default 48)")
    watch.add_argument("--no-layout", action="store_true", help="do not update the evolutionary map after each ingest")
    watch.add_argument("--alignment", type=_number(float, 0), default=DEFAULT_ALIGNMENT, metavar="W",
                       help=f"strength of the cross-step alignment term (default {DEFAULT_ALIGNMENT:g}; 0 turns it off)")
    watch.add_argument("--no-metrics", action="store_true",
                       help="do not compute per-step metrics and alerts, nor read the trainer's losses")
    watch.add_argument("--probe", action="append", metavar="PROMPT[|CONTRAST]", type=_parsed_by("engine.metrics.probes", "valid_probe"),
                       help="zero-shot attribute probe scored with the CLIP text encoder (repeatable), e.g. 'grey hair'")
    watch.add_argument("--on-alert", metavar="CMD", help="shell command run on each new alert (EVOWATCH_STEP, EVOWATCH_RULE, EVOWATCH_VALUE, EVOWATCH_MESSAGE, "
                       "EVOWATCH_STORE, EVOWATCH_RUN_DIR set)")
    watch.add_argument("--pause-on-alert", action="store_true", help="write RUN_DIR/EVOWATCH_PAUSE on an alert (see engine.pause for the trainer side)")
    _discovery_args(watch)
    sampling = watch.add_argument_group("weight-only checkpoints (see engine/sampler.py)")
    sampling.add_argument("--sampler", metavar="MODULE:FUNCTION",
                          help="package.module:function or path/to/file.py:function called as function(checkpoint_path, "
                               "n_samples, seed[, device]) for each weight checkpoint (model-12.pt, checkpoint-500/, *.ckpt)")
    sampling.add_argument("--samples-per-checkpoint", type=_number(int, 1), default=64, metavar="N", help="images per checkpoint (default 64)")
    sampling.add_argument("--sampler-seed", type=_number(int, 0, 2**32 - 1), default=0, metavar="SEED", help="the same seed for every checkpoint (default 0)")
    sampling.add_argument("--weights", action="append", metavar="GLOB", help="weight file names to sample (repeatable), e.g. 'netG_*.pth'")
    sampling.add_argument("--trust-checkpoints", action="store_true",
                          help="let load_checkpoint unpickle arbitrary objects (runs code from the file: only for your own checkpoints)")

    layout = sub.add_parser("layout", help="(re)compute a store's evolutionary map offline")
    layout.add_argument("store", type=Path, metavar="STORE")
    layout.add_argument("--full", action="store_true", help="recompute jointly over all steps (polish a finished run)")
    layout.add_argument("--alignment", type=_number(float, 0), default=DEFAULT_ALIGNMENT, metavar="W",
                        help=f"strength of the cross-step alignment term (default {DEFAULT_ALIGNMENT:g}; 0 turns it off)")

    info = sub.add_parser("info", help="summarise a store")
    info.add_argument("store", type=Path, metavar="STORE")
    info.add_argument("--json", action="store_true", help="machine-readable output")

    export = sub.add_parser("export", help="write a store's rows to Parquet or CSV (pandas/polars)")
    export.add_argument("store", type=Path, metavar="STORE")
    export.add_argument("--to", choices=("parquet", "csv"), help="file format (default: what --out's suffix names, else parquet)")
    export.add_argument("--out", type=Path, metavar="FILE", help="default: STORE with the format's suffix; - for standard output")
    export.add_argument("--embeddings", action="store_true", help="include the encoder vectors")

    view = sub.add_parser("view", help="start the Streamlit viewer on a store")
    view.add_argument("store", type=Path, metavar="STORE")
    view.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    view.add_argument("--port", type=_number(int, 1, 65535), default=8501, help="port (default 8501)")

    demo = sub.add_parser("demo", help="train a small GAN offline and watch it live")
    demo.add_argument("--out", type=Path, default=Path("evowatch-demo"), metavar="DIR",
                      help="folder for the run, its data and demo.zarr (default evowatch-demo)")
    demo.add_argument("--steps", type=_number(int, 1), default=None, help=f"training steps (default {DEMO_STEPS})")
    demo.add_argument("--fail", type=_parsed_by("examples.demo_trainer", "parse_fail"), metavar="MODE@STEP",
                      help="induce a failure: collapse@STEP, drop@STEP (mode dropping) or copy@STEP")
    demo.add_argument("--encoder", default="pixels", metavar="SPEC", type=_encoder_spec,
                      help="encoder (default pixels: no weights needed)")
    for command in sub.choices.values():  # -q/-v after the subcommand too; SUPPRESS keeps one given before it
        _verbosity_args(command, argparse.SUPPRESS)
    return parser


#: Loggers whose info lines are evowatch's progress; a library's info lines (zarr logs every
#: array it opens, torch its cache statistics at exit) are not shown, its warnings are.
_OUR_LOGGERS = ("evowatch", "engine", "stores", "viewer", "examples")


class _StoredNames(logging.Formatter):
    """Lines that spell a file name as the store and `export` do: its bytes that are not
    UTF-8 as ``\\xff`` (round AN: the log said ``\\udcff`` for the same file), each message
    one line (:func:`one_line`; a traceback at ``-v`` keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        return stored_text(super().format(record))


def _configure_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, format="evowatch: %(message)s", stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_StoredNames("evowatch: %(message)s"))
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    for ours in _OUR_LOGGERS:
        logging.getLogger(ours).setLevel(level)
    if not args.verbose:
        for noisy in ("openTSNE", "faiss", "faiss.loader", "urllib3", "httpx", "huggingface_hub", "timm"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


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


def _os_error(exc: OSError, args: argparse.Namespace) -> str:
    """A full disk or an unwritable store as one line naming the store and what to do."""
    store, out = getattr(args, "store", None), getattr(args, "out", None)
    if args.command == "export" and out is not None and exc.filename is not None and Path(exc.filename) == Path(out):
        return f"{out}: cannot write the export there ({exc.strerror}); choose another --out"
    if store is None or exc.errno not in NO_ROOM | {errno.EROFS, errno.EACCES, errno.EPERM}:
        return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM) and exc.filename and not _of_the_store(exc.filename, store):
        # a run's file made unreadable between a scan and its reading: "cannot write there ...
        # choose a writable --store" sent the user to the store
        return f"{exc.filename}: {exc.strerror}; fix its permissions and run the same command again"
    if exc.errno in NO_ROOM:
        kept = ("everything committed before is kept" if Path(store).exists()
                else "nothing was stored yet")  # a store that never committed is not left behind
        if exc.errno == errno.EFBIG:  # a file size limit, not a full disk (round BE)
            return f"{store}: a file reached the size limit ({exc.strerror}); {kept}: raise the limit (ulimit -f) " \
                   "and run the same command again to resume"
        return f"{store}: no space left on the device ({exc.strerror}); {kept}: free some space and run the same " \
               "command again to resume"
    fix = "choose a writable --store" if args.command == "watch" else "copy the store where it can be written"
    return f"{store}: cannot write there ({exc.strerror}: {exc.filename or store}); {fix}"


def _of_the_store(filename: str | os.PathLike, store: str | os.PathLike) -> bool:
    """Whether a file is the store's: in it, or its lock file or staging folder beside it."""
    path, root = os.path.realpath(filename), os.path.realpath(store)
    return path == root or path.startswith(root + os.sep) or (
        os.path.dirname(path) == os.path.dirname(root) and os.path.basename(root) in os.path.basename(path))


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``docker stop``, systemd) or SIGHUP (its terminal or SSH session
    closed) stops a command the way Ctrl-C does."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


#: Set by Ctrl-C and SIGTERM as well as raised: an exception raised while Python runs a
#: weakref callback or ``__del__`` is dropped (its "Exception ignored in ..." traceback is not
#: printed), and a live watch then ran on; its loop checks this between passes.
STOP_REQUESTED = threading.Event()


class _SignalAgain:
    """Signals a stop Python dropped again from a thread, to be raised where the main thread is
    next once the dropping hook has returned; never after :meth:`cancel` (the command is over:
    its handlers put back, the caller's got it, a test's KeyboardInterrupt or SIGTERM's default,
    which killed a process whose main() had returned 0) nor from a forked child (a decode worker
    signalled its parent)."""

    def __init__(self, owner: int) -> None:
        self.owner, self._live, self._timers = owner, True, []
        self._lock = threading.Lock()

    def later(self, signum: int, delay: float = 0.05) -> None:
        if os.getpid() != self.owner:
            return
        timer = threading.Timer(delay, self._send, (signum,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _send(self, signum: int) -> None:
        with self._lock:
            if self._live:
                os.kill(self.owner, signum)

    def cancel(self) -> None:
        with self._lock:
            self._live = False
        for timer in self._timers:
            timer.cancel()


def _stop_on_sigterm() -> Callable[[], object]:
    """Raise :class:`Terminated` on SIGTERM in this process, and KeyboardInterrupt on Ctrl-C
    as Python does, both noted in :data:`STOP_REQUESTED`; returns what restores the previous
    handlers. A forked decode worker inherits the handler: there it dies of the signal as it
    would without one (multiprocessing's ``terminate()`` counts on that)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        return lambda: None
    owner = os.getpid()

    def on_sigterm(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        STOP_REQUESTED.set()
        if stopping.deferring():  # inside openTSNE: raised there, a SIGSEGV
            return stopping.defer(Terminated(signum))
        raise Terminated(signum)

    def on_sigint(signum: int, frame: object) -> None:
        if os.getpid() == owner:
            STOP_REQUESTED.set()
            if stopping.deferring():
                return stopping.defer(KeyboardInterrupt())
        signal.default_int_handler(signum, frame)

    again = _SignalAgain(owner)

    def on_dropped(unraisable: Any, hook: Callable[[Any], object] = sys.unraisablehook) -> None:
        """A stop Python dropped is noted already: no traceback (round BE); it is signalled again
        (a live watch acted on it only after its pass: 12 checkpoints ingested, laid out, measured)."""
        stop = unraisable.exc_value
        if not (isinstance(stop, KeyboardInterrupt) and STOP_REQUESTED.is_set()):
            hook(unraisable)
            return
        again.later(getattr(stop, "signum", signal.SIGINT))

    previous = signal.signal(signal.SIGTERM, on_sigterm), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGHUP)
    previous_hook, sys.unraisablehook = sys.unraisablehook, on_dropped
    if previous[1] is signal.default_int_handler:  # not when Ctrl-C is ignored or handled by the caller
        signal.signal(signal.SIGINT, on_sigint)
    if previous[2] is signal.SIG_DFL:  # a closed terminal killed a watch mid-write (round AL); not under nohup
        signal.signal(signal.SIGHUP, on_sigterm)

    def restore() -> None:
        again.cancel()  # before the handlers go: a caller's (a test's), or SIG_DFL, would get it
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        signal.signal(signal.SIGHUP, previous[2])
        sys.unraisablehook = previous_hook

    return restore


def _closed_pipe() -> int:
    """stdout's reader went away (``evowatch info STORE | head -3``): exit quietly with the
    status of a tool killed by SIGPIPE. stdout is pointed at /dev/null so the interpreter's
    final flush does not fail again (the Python docs' recipe)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def _left_when_interrupted(args: argparse.Namespace) -> str | None:
    """What a command stopped by Ctrl-C or SIGTERM left behind: a live watch says so itself,
    the viewer has Streamlit's own line, and `info` writes nothing."""
    if args.command == "watch":  # --once
        return "everything ingested so far is committed: run the same command again to resume"
    if args.command == "layout":
        return (f"{args.store}: its layout is whole (the one before, or the new one if it was being written)" if args.full else
                f"{args.store}: the steps laid out so far are kept: run the same command again to go on")
    if args.command == "demo":  # said nothing: where the steps so far are, and that the demo starts over
        store = args.out.resolve() / "demo.zarr"
        return (f"the steps ingested so far are in {store} (evowatch view {store}); the same command trains the demo "
                "again from its first step" if store.exists() else "nothing was stored yet")
    if args.command == "export":
        from engine.export import is_stream

        return ("the rows written so far are incomplete" if args.out is not None and is_stream(args.out)
                else "no file written or changed")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    STOP_REQUESTED.clear()
    restore_sigterm = _stop_on_sigterm()
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except (EvowatchError, ValueError, OSError) as exc:
        # EvowatchError names the file and the fix; ValueError comes from parse_* functions
        # ("Expected X. Got Y instead."); OSError covers a full disk or a vanished path.
        if args.verbose:  # the traceback for a bug report, then the same line and status as without -v
            log.debug("the error's traceback", exc_info=True)
        print(f"evowatch: error: {one_line(_os_error(exc, args) if isinstance(exc, OSError) else str(exc))}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # 128 + the signal, as a shell reports a process it stopped
        if left := _left_when_interrupted(args):
            print(f"evowatch: interrupted; {left}", file=sys.stderr)
        return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)
    finally:
        restore_sigterm()


def _exit_past_busy_threads(code: int) -> int:
    """A second Ctrl-C leaves a --sampler's or the encoder's thread inside a torch call: the
    interpreter's exit ran torch's destructors under it and aborted ("terminate called without
    an active exception", SIGABRT, round AJ). Everything is committed by then: exit without them."""
    if any(t.is_alive() for t in threading.enumerate() if t.name in ("evowatch-encode", "evowatch-decode")):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def run() -> None:
    """The ``evowatch`` command (:func:`main` returns its status instead, for callers in Python)."""
    sys.exit(_exit_past_busy_threads(main()))


if __name__ == "__main__":
    run()
