"""The `evowatch` argument parser: its commands and options, usage errors in one line."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine.cli.values import _encoder_spec, _existing_dir, _number, _parsed_by, _ready_file, _regex, _run_folder
from engine.errors import DiscoveryError
from stores.format import did_you_mean

if TYPE_CHECKING:  # the CLI imports heavy modules lazily, so `--help` stays fast
    from engine.discovery.options import DiscoveryOptions


DEFAULT_ENCODER = "clip:ViT-B-32/laion2b_s34b_b79k"
DEMO_STEPS = 3000  # examples/demo_trainer.py's DEFAULT_STEPS (not imported: it imports torch)
DEFAULT_ALIGNMENT = 10.0  # engine.layout.LayoutParams.alignment (not imported: keeps `--help` fast)


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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evowatch")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "(not installed)"


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
