"""What a watch says: one line per problem naming the file and the fix, usage errors, and advice on layouts."""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from stores.zarr_store import StoreReader
from tests.watch_runs import TINY_CLIP, cli_argv, cli_env, info, usage_error, write_step


@pytest.mark.parametrize("hidden", [".samples", "logs/.cache"])
def test_a_run_whose_checkpoints_sit_in_a_hidden_folder_names_it(tmp_path, capsys, hidden):
    """Hidden folders are never read: a run keeping its checkpoints in ``.samples/step_N/`` got
    "no checkpoints found" without a word of them (round AY-4)."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200):
        write_step(run / hidden, step, 2, seed=step)
    (run / ".git").mkdir()  # a hidden folder holding no sample: not named
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"; a hidden folder is not read: {hidden}/ holds sample files (point evowatch at "
                        f"{run / hidden})") and len(err.splitlines()) == 1, err
    assert main([*argv[:1], str(run / hidden), *argv[2:]]) == 0
    assert info(store)["kinds"]["generated"] == 4


def test_a_file_named_with_a_newline_or_an_escape_is_said_on_one_line(tmp_path, capsys):
    """A skipped file whose name holds a newline (or a terminal escape) split its warning in two
    lines, the second without the ``evowatch:`` prefix (round AY-4); the error line too."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200):
        write_step(run, step, 2, seed=step)
    (run / "step_000200" / "samples" / "bad\nname\x1b[31m.png").write_bytes(b"junk")
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    err = capsys.readouterr().err
    assert "evowatch: skipped step_000200/samples/bad\\nname\\x1b[31m.png: not a readable image" in err
    assert all(line.startswith("evowatch: ") for line in err.splitlines()), err
    assert main(["info", str(tmp_path / "no\nstore.zarr")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "no\\nstore.zarr" in err, err


def test_an_alert_and_the_viewers_refusal_naming_a_newline_are_one_line(tmp_path, capsys):
    """The ALERT line and `evowatch view`'s refusal were printed as they were: a label or a path
    holding a newline split them in two (round BA-2)."""
    from types import SimpleNamespace

    from engine.alerts import Alert
    from engine.signals import Signals

    Signals._announce(SimpleNamespace(on_alert=None, _announced={}), Alert(200, "label_drift", 0.5, "label 'cat\ndog' grew"))
    assert capsys.readouterr().err == "evowatch: ALERT step 200 [label_drift] label 'cat\\ndog' grew\n"
    not_a_store = tmp_path / "a\nfile.zarr"
    not_a_store.write_text("x")
    assert main(["view", str(not_a_store)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "a\\nfile.zarr" in err, err


def test_info_and_the_error_lines_say_a_strange_file_name_on_one_line_as_the_log_does(tmp_path, capsys):
    """Round BA: `info` listed the skipped file named with a newline on two lines (its escape
    coloured the terminal), and the error line wrote a name's bytes that are not UTF-8 as
    ``\\udcff`` where the log and the store write ``\\xff`` (round AN)."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200):
        write_step(run, step, 2, seed=step)
    (run / "step_000200" / "samples" / "bad\nname\x1b[31m.png").write_bytes(b"junk")
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                 "--no-layout"]) == 0
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "  skipped step_000200/samples/bad\\nname\\x1b[31m.png: not a readable image" in out
    assert "\x1b" not in out and all(not line.startswith("name") for line in out.splitlines()), out
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/no\xffstore\n")
    for argv in (["info", odd + ".zarr"], ["watch", odd, "--store", str(store), "--once"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "no\\xffstore\\n" in err and "udcff" not in err, err
    from engine.cli import one_line

    assert one_line("label \ud800\n") == "label \ud800\\n"  # no file name's byte (a JSON "\\ud800"): no UnicodeEncodeError


def test_messages_say_an_empty_run_found_nothing_and_name_each_skipped_file_once(tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    run.mkdir()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 1
    assert f"{run}: no checkpoints found" in capsys.readouterr().err
    assert not store.exists()  # nothing to keep: no empty store left behind
    (run / "plots").mkdir()  # DVCLive's samples.png, rewritten at every step: no step to read, but named
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(run / "plots" / "samples.png")
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 1
    assert capsys.readouterr().err.rstrip().endswith("see --step-regex and --samples); seen, read as no checkpoint: "
                                                     "plots/samples.png")
    shutil.rmtree(run / "plots")
    sampler = tmp_path / "my_sampler.py"
    sampler.write_text("import numpy as np\ndef sample(path, n, seed):\n    return np.zeros((n, 8, 8, 3), np.uint8)\n")
    with_sampler = ["--sampler", f"{sampler}:sample", "--samples-per-checkpoint", "2"]
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", *with_sampler]) == 1
    assert f"{run}: no weights whose names carry a step found (model-12.pt" in capsys.readouterr().err
    (run / "local_output").mkdir()  # VAR: its weights rewritten every epoch, the epoch inside the file
    (run / "local_output" / "ar-ckpt-last.pth").write_bytes(b"weights")
    for extra in ([], with_sampler):  # said the same whether a sampler is given or not
        assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", *extra]) == 1
        assert (f"{run}: no sample files, and no name of its weights (local_output/ar-ckpt-last.pth) carries a step: "
                "a file the trainer rewrites has no step to place its samples at") in capsys.readouterr().err
    shutil.rmtree(run / "local_output")

    for step in (500, 1000):  # diffusers' weight-only checkpoints: the way to sample them is named
        (run / f"checkpoint-{step}" / "unet").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"w")
        (run / f"checkpoint-{step}" / "optimizer.bin").write_bytes(b"o")
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 1
    assert (f"{run}: no sample files, but 2 checkpoints of weights (checkpoint-500, checkpoint-1000): sample them "
            "with --sampler module:function") in capsys.readouterr().err
    folder = write_step(run, 100, 1, seed=0)
    # a --samples glob that matches nothing says so, not "weights" or "no checkpoints"
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--samples", "*.jpeg"]) == 1
    assert (f"{run}: --samples '*.jpeg' matches no file name here (nor an image tag logged to TensorBoard)"
            in capsys.readouterr().err)
    for step in (500, 1000):
        shutil.rmtree(run / f"checkpoint-{step}")

    (folder / "samples" / "00001.png").write_bytes(b"")
    old = time.time() - 10
    os.utime(folder / "samples" / "00001.png", (old, old))
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 0
    err = capsys.readouterr().err
    assert err.count("00001.png") == 1 and "1 sample, 1 file skipped" in err and "no checkpoints" not in err


def test_several_weights_of_a_step_name_the_weights_option(tmp_path, capsys):
    """EDM2's ``network-snapshot-0001000-0.050.pkl`` beside ``…-0.100.pkl`` (two EMA lengths):
    the fix offered was ``--samples``, which a sampled run does not read."""
    run, sampler = tmp_path / "run", tmp_path / "my_sampler.py"
    run.mkdir()
    sampler.write_text("import numpy as np\ndef sample(path, n, seed):\n    return np.zeros((n, 8, 8, 3), np.uint8)\n")
    for kimg in (1000, 2000):
        for ema in ("0.050", "0.100"):
            (run / f"network-snapshot-{kimg:07d}-{ema}.pkl").write_bytes(b"w")
    assert main(["watch", str(run), "--store", str(tmp_path / "s.zarr"), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--sampler", f"{sampler}:sample", "--samples-per-checkpoint", "2", "--trust-checkpoints"]) == 0
    assert "a step's signals measure them together; --weights GLOB watches one series\n" in capsys.readouterr().err


def test_a_usage_error_of_any_subcommand_is_one_line_naming_the_argument(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    run = tmp_path / "run"
    run.mkdir()
    watch = ["watch", str(run), "--store", str(tmp_path / "s.zarr")]
    assert main(["watch", str(tmp_path / "absent"), "--store", str(tmp_path / "s.zarr"), "--once", "--settle", "0"]) == 2
    assert capsys.readouterr().err == f"evowatch watch: error: argument RUN_DIR: {tmp_path / 'absent'}: no such directory\n"
    assert not (tmp_path / "s.zarr").exists()
    assert usage_error(["watch", str(tmp_path / "file.txt"), "--store", "s.zarr"], capsys) == (
        f"evowatch watch: error: argument RUN_DIR: {tmp_path / 'file.txt'}: not a directory")
    assert usage_error([*watch, "--real", str(tmp_path / "file.txt")], capsys) == (
        f"evowatch watch: error: argument --real: {tmp_path / 'file.txt'}: not a directory")
    assert usage_error(["watch", str(tmp_path / "file.txt" / "run"), "--store", "s.zarr"], capsys) == (  # round BF:
        f"evowatch watch: error: argument RUN_DIR: {tmp_path / 'file.txt' / 'run'}: {tmp_path / 'file.txt'} is a "
        "file, not a directory; give the run's folder")  # a live watch waited for it for ever
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from stores.zarr_store import StoreWriter

    StoreWriter(tmp_path / "old.zarr", encoder_record(make_encoder("pixels"))).close()  # it said "no checkpoints"
    assert usage_error(["watch", str(tmp_path / "old.zarr"), "--store", "s.zarr"], capsys) == (
        f"evowatch watch: error: argument RUN_DIR: {tmp_path / 'old.zarr'}: is an evowatch store, not a training run: "
        f"watch the folder the trainer writes its samples to (`evowatch view {tmp_path / 'old.zarr'}` shows this store)")
    assert usage_error([*watch, "--grid", "8by8"], capsys).startswith(
        "evowatch watch: error: argument --grid: Expected a grid as ROWSxCOLS")
    assert "argument --device: Expected device" in usage_error([*watch, "--device", "gpu"], capsys)
    # an option mistyped, a pattern that does not compile: the subcommand and the fix, as typed
    assert usage_error([*watch, "--grids", "4x4"], capsys) == (
        "evowatch watch: error: unrecognized arguments: --grids 4x4 (did you mean --grid?)")
    assert usage_error(["info", "s.zarr", "--jsn"], capsys) == (
        "evowatch info: error: unrecognized arguments: --jsn (did you mean --json?)")
    assert usage_error([*watch, "--step-regex", r"iter(\d+"], capsys) == (
        r"evowatch watch: error: argument --step-regex: iter(\d+ is no regular expression (missing ), unterminated "
        r"subpattern at position 4); e.g. 'iter_(\d+)'")
    assert usage_error([*watch, "--ready-file", "{epoch}.done"], capsys) == (  # a KeyError at the first checkpoint
        "evowatch watch: error: argument --ready-file: '{epoch}.done' cannot be filled in (KeyError: 'epoch'); its "
        "placeholders are {stem}, {name} and {step} (write {{ and }} for braces)")
    assert usage_error([*watch, "--ready-file", "{name.done}"], capsys) == (  # an AttributeError traceback
        "evowatch watch: error: argument --ready-file: '{name.done}' cannot be filled in (KeyError: 'name.done'); its "
        "placeholders are {stem}, {name} and {step} (write {{ and }} for braces)")
    for template in ("{step[0]}", "{stem.upper}", "{}.done"):  # {stem.upper}: a method's repr, a file never made
        assert f"{template!r} cannot be filled in (KeyError: " in usage_error([*watch, "--ready-file", template], capsys)
    from engine.cli import build_parser

    assert build_parser().parse_args([*watch, "--ready-file", "{step:06d}.done"]).ready_file == "{step:06d}.done"
    # numbers out of range: a ZeroDivisionError traceback (--workers -3), "waiting nans" (--settle
    # nan), an allocation without end (--thumbnail-size 100000), an OverflowError (--port 99999)
    assert usage_error([*watch, "--workers", "-3"], capsys) == (
        "evowatch watch: error: argument --workers: expected an integer of at least 0, got '-3'")
    assert usage_error([*watch, "--settle", "nan"], capsys) == (
        "evowatch watch: error: argument --settle: expected a finite number from 0 to 86400, got 'nan'")
    assert usage_error([*watch, "--settle", "1e12"], capsys) == (  # round AF: an OverflowError traceback
        "evowatch watch: error: argument --settle: expected a finite number from 0 to 86400, got '1e12'")
    assert usage_error([*watch, "--thumbnail-size", "100000"], capsys) == (
        "evowatch watch: error: argument --thumbnail-size: expected an integer from 8 to 256, got '100000'")
    assert "argument --alignment: expected a finite number" in usage_error([*watch, "--alignment", "nan"], capsys)
    assert "argument --port: expected an integer from 1 to 65535" in usage_error(["view", "s.zarr", "--port", "99999"], capsys)
    assert "argument --sampler-seed: expected an integer from 0 to 4294967295" in usage_error(  # was "Overflow" at
        [*watch, "--sampler", "s.py:f", "--sampler-seed", "99999999999999999999"], capsys)  # every checkpoint
    assert "argument --steps: expected an integer of at least 1" in usage_error(["demo", "--steps", "-5"], capsys)
    assert usage_error(["info"], capsys) == "evowatch info: error: the following arguments are required: STORE"
    assert usage_error(["export", "s.zarr", "--to", "xlsx"], capsys).startswith("evowatch export: error: argument --to")
    assert usage_error(["bogus"], capsys).startswith("evowatch: error: argument command: invalid choice")
    assert not (tmp_path / "s.zarr").exists()
    with pytest.raises(SystemExit) as exited:  # --help still prints the usage
        main(["watch", "--help"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("usage: evowatch watch")


def test_a_required_option_mistyped_is_named_with_the_one_meant(tmp_path, capsys):
    """Round BO: a new user's `evowatch watch runs/exp42 --sotre exp42.zarr` was told only "the
    following arguments are required: --store", which they had typed (argparse checks the required
    options before the unknown ones)."""
    run = str(tmp_path / "run")
    assert usage_error(["watch", run, "--sotre", "s.zarr", "--once"], capsys) == (
        "evowatch watch: error: unrecognized arguments: --sotre (did you mean --store?)")
    assert usage_error(["watch", run, "--sotre=s.zarr"], capsys) == (
        "evowatch watch: error: unrecognized arguments: --sotre=s.zarr (did you mean --store?)")
    # nothing mistyped (an abbreviation argparse takes, a value after `--`): the required one named
    assert usage_error(["watch", run, "--onc"], capsys) == (
        "evowatch watch: error: the following arguments are required: --store")
    assert usage_error(["watch", "--", "--sotre"], capsys) == (
        "evowatch watch: error: the following arguments are required: --store")
    assert not (tmp_path / "s.zarr").exists()


def test_a_commands_option_given_before_the_command_is_said_to_go_after_it(tmp_path, capsys):
    """`evowatch --store s.zarr watch RUN` was "invalid choice: 's.zarr' (choose from 'watch', ...)":
    argparse took the option's value for the command; `evowatch --once watch ...` said only
    "unrecognized arguments: --once"."""
    run = str(tmp_path / "run")
    assert usage_error(["--store", "s.zarr", "watch", run], capsys) == (
        "evowatch: error: --store is an option of `evowatch watch`: give it after watch")
    assert usage_error(["-q", "--store=s.zarr", "watch", run], capsys) == (
        "evowatch: error: --store is an option of `evowatch watch`: give it after watch")
    assert usage_error(["--once", "watch", run, "--store", "s.zarr"], capsys) == (
        "evowatch: error: --once is an option of `evowatch watch`: give it after watch")
    assert usage_error(["--sotre", "s.zarr", "watch", run], capsys) == (
        "evowatch: error: unrecognized arguments: --sotre (did you mean --store? an option of `evowatch watch`: "
        "give it after watch)")
    assert usage_error(["--jsno", "info", "s.zarr"], capsys) == (
        "evowatch: error: unrecognized arguments: --jsno (did you mean --json? an option of `evowatch info`: "
        "give it after info)")
    assert usage_error(["--zzz", "info", "s.zarr"], capsys) == "evowatch: error: unrecognized arguments: --zzz"
    assert not (tmp_path / "s.zarr").exists()


def test_store_given_as_an_option_to_a_command_taking_it_plainly_is_said_so(tmp_path, capsys):
    """Round BR: `evowatch --store s.zarr info` said "did you mean --json?": info takes the store as
    a plain argument, and --json was never meant."""
    plain = "(`evowatch info` takes STORE as a plain argument: evowatch info STORE)"
    assert usage_error(["--store", "s.zarr", "info"], capsys) == f"evowatch: error: unrecognized arguments: --store {plain}"
    assert usage_error(["info", "--store", "s.zarr"], capsys) == (
        f"evowatch info: error: unrecognized arguments: --store {plain}")
    assert usage_error(["--store=s.zarr", "view"], capsys) == (
        "evowatch: error: unrecognized arguments: --store=s.zarr "
        "(`evowatch view` takes STORE as a plain argument: evowatch view STORE)")
    assert not (tmp_path / "s.zarr").exists()


def test_quiet_and_verbose_are_accepted_after_the_subcommand_too():
    from engine.cli import build_parser

    def verbosity(*argv: str) -> tuple[bool, bool]:
        args = build_parser().parse_args(argv)
        return args.quiet, args.verbose

    assert verbosity("-q", "info", "s.zarr") == verbosity("info", "s.zarr", "-q") == verbosity("info", "--quiet", "s.zarr") == (True, False)
    assert verbosity("-v", "export", "s.zarr", "-q") == verbosity("layout", "s.zarr", "-v", "--quiet") == (True, True)
    assert verbosity("info", "s.zarr") == (False, False)


def test_a_bad_demo_failure_is_refused_before_anything_is_trained_or_created(tmp_path, capsys):
    for fail in ("explode@100", "collapse"):
        err = usage_error(["demo", "--fail", fail, "--out", str(tmp_path / "D")], capsys)
        assert err.startswith("evowatch demo: error: argument --fail: Expected collapse@STEP, drop@STEP or copy@STEP")
    assert not (tmp_path / "D").exists()


def test_a_failed_watch_leaves_no_store_it_created_and_keeps_one_it_did_not(tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "new.zarr"
    write_step(run, 100, 3, seed=0)
    (tmp_path / "empty").mkdir()
    bad = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--holdout", str(tmp_path / "empty")]
    capsys.readouterr()
    assert main(bad) == 2
    assert "--holdout holds no sample files" in capsys.readouterr().err
    assert not store.exists()
    # A store that was there before (here: committed to) stays whatever happens.
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 0
    assert main(bad) == 2
    assert info(store)["rows"] == 3


def test_a_watch_refused_a_new_store_another_watch_just_created_leaves_it_be(tmp_path, capsys, monkeypatch):
    """Two watches started together on a store not there yet: the one refused by the lock
    saw no store when it started, took the other's (still empty) store for its own and
    deleted it under the other's feet."""
    import engine.session
    from stores.zarr_store import StoreWriter

    run, store = tmp_path / "run", tmp_path / "new.zarr"
    write_step(run, 100, 3, seed=0)
    held = []

    def second_to_the_lock(path, *args, **kwargs):
        held.append(StoreWriter(path, *args, **kwargs))  # the other watch: creates the store, holds it
        return StoreWriter(path, *args, **kwargs)

    monkeypatch.setattr(engine.session, "StoreWriter", second_to_the_lock)
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 2
    assert "already being written by pid" in capsys.readouterr().err
    assert store.is_dir() and held[0]._lock.held
    held[0].close()


def test_an_unavailable_cuda_device_is_one_line_for_pixels_and_creates_nothing(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 3, seed=0)
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--device", "cuda:0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("evowatch: error: --device cuda:0 was requested") and not store.exists()


def test_info_into_a_pipe_closed_early_exits_quietly(tmp_path):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 3, seed=0)
    assert main(["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 0
    reader, writer = os.pipe()
    os.close(reader)  # `evowatch info STORE | head -0`: the reader is gone before anything is written
    try:
        proc = subprocess.run(cli_argv("info", str(store)), env=cli_env(tmp_path), stdout=writer, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(writer)
    assert (proc.returncode, proc.stderr) == (128 + signal.SIGPIPE, "")


def test_a_log_line_and_its_newline_are_one_write():
    """tqdm wrote them apart: a SIGTERM between the two ran the stop line onto the ingest line
    ("... 5 samplesevowatch: stopped; ...")."""
    from engine.watch import _WholeLines

    class Writes(io.StringIO):
        calls: list[str] = []

        def write(self, s):
            self.calls.append(s)
            return super().write(s)

    _WholeLines.write("evowatch: ingested step 100", file=Writes())
    assert [s for s in Writes.calls if s] == ["evowatch: ingested step 100\n"]


@pytest.mark.parametrize("flags, shown", [([], ["ours: info", "lib: warning"]),
                                          (["-q"], ["lib: warning"]),
                                          (["-v"], ["ours: debug", "ours: info", "lib: warning"])])
def test_progress_lines_are_evowatchs_own_a_librarys_info_lines_are_not(capsys, flags, shown):
    """torch printed "FakeTensor cache stats" at exit through the root logger's info level."""
    import logging

    from engine import cli

    cli._configure_logging(cli.build_parser().parse_args(flags + ["info", "s.zarr"]))
    try:
        ours, library = logging.getLogger("engine.watch"), logging.getLogger("zarr.core.sync")
        ours.debug("ours: debug")
        ours.info("ours: info")
        library.info("lib: info")
        library.warning("lib: warning")
        assert capsys.readouterr().err.splitlines() == [f"evowatch: {line}" for line in shown]
    finally:  # other tests' caplog sees our loggers' records at its own levels
        for name in cli._OUR_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_steps_with_several_checkpoints_are_named_once(tmp_path, capsys):
    """lucidrains-style ``sample-12.png`` beside ``sample-12-ema.png``: one warning, naming the fix."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (1, 2):
        for suffix in ("", "-ema"):
            save_torchvision_grid(smooth_images(np.random.default_rng(step), 4, 16), run / f"sample-{step}{suffix}.png",
                                  nrow=2)
            os.utime(run / f"sample-{step}{suffix}.png", (time.time() - 10,) * 2)
    capsys.readouterr()
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(watch) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "several checkpoints" in line]
    assert warned == [f"evowatch: {run}: 2 steps have several checkpoints (step 1: sample-1-ema.png, sample-1.png): "
                      "a step's signals measure them together; --samples GLOB watches one series "
                      "(--samples 'sample-*-ema.png')"]
    for series in ("sample-?.png", "sample-*-ema.png"):  # the example given works
        assert main(watch + ["--samples", series]) == 0
        assert "several checkpoints" not in capsys.readouterr().err

    # Round AD: a series that changed its files mid-run (step_N.npy, then step_N.pt beside
    # latents_N.pt): 'step_*.pt', made from the first shared step, dropped the earlier steps
    changed = tmp_path / "changed"
    for step in (1, 2, 3, 4):
        images = smooth_images(np.random.default_rng(step), 4, 16)
        if step < 3:
            save_torchvision_grid(images, changed / f"step_{step}.png", nrow=2)
        else:
            for name in (f"step_{step}-ema.png", f"step_{step}.png"):
                save_torchvision_grid(images, changed / name, nrow=2)
    assert main(["watch", str(changed), "--store", str(tmp_path / "c.zarr"), *watch[4:]]) == 0
    (warned,) = [line for line in capsys.readouterr().err.splitlines() if "several checkpoints" in line]
    assert warned.endswith("--samples GLOB watches one series")


def test_controlnets_image_log_offers_the_samples_series_and_leaves_its_control_images_out(tmp_path, capsys):
    """ControlNet's ``image_log/train/{key}_gs-{step:06}_e-{epoch:06}_b-{batch:06}.png``: its
    ``control_`` images (the edge map or pose drawn from the input) were read as samples, and
    the fix offered was the shortest series glob, the control images'; its reconstructions
    (the inputs through the autoencoder) were a second series of every step."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    folder = run / "image_log" / "train"
    for step in (0, 300):
        for key in ("control", "conditioning", "reconstruction", "samples_cfg_scale_9.00"):
            path = folder / f"{key}_gs-{step:06d}_e-000000_b-{step:06d}.png"
            save_torchvision_grid(smooth_images(np.random.default_rng(step), 4, 16), path, nrow=4)
            os.utime(path, (time.time() - 10,) * 2)
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    capsys.readouterr()
    assert main(watch) == 0
    err = capsys.readouterr().err
    assert "6 files named as real data or made from it (conditioning_gs-000000" in err
    assert "several checkpoints" not in err
    sources = StoreReader(store).checkpoints()["source"].tolist()
    assert sources == [f"image_log/train/samples_cfg_scale_9.00_gs-{step:06d}_e-000000_b-{step:06d}.png" for step in (0, 300)]

def _several_checkpoints_said(run: Path, store: Path, capsys) -> list[str]:
    """The several-checkpoints lines of a `watch --once` of ``run`` whose files are all settled."""
    for path in run.rglob("*"):
        os.utime(path, (time.time() - 10,) * 2)
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--no-metrics"]) == 0
    return [line for line in capsys.readouterr().err.splitlines() if "several checkpoints" in line]


def test_folders_of_one_step_in_one_folder_get_no_glob_advice(tmp_path, capsys):
    """score_sde on several hosts: ``samples/iter_500_host_0/sample.png`` beside ``…_host_1/``:
    the advice was ``--samples GLOB``, which picks files and cannot tell the folders apart."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run = tmp_path / "run"
    for step in (500, 1000):
        for host in (0, 1):
            save_torchvision_grid(smooth_images(np.random.default_rng(step + host), 4, 16),
                                  run / "samples" / f"iter_{step}_host_{host}" / "sample.png", nrow=2)
    assert _several_checkpoints_said(run, tmp_path / "s.zarr", capsys) == [
        f"evowatch: {run}: 2 steps have several checkpoints (step 500: samples/iter_500_host_0, "
        "samples/iter_500_host_1): a step's signals measure them together"]


def test_checkpoints_of_one_step_differing_in_a_larger_number_get_step_regex_advice(tmp_path, capsys):
    """SiT's sample folders end in `-ODE-250-dopri5`: every one read as step 5, and the advice
    was `--samples GLOB`, which cannot fix that; the number that differs is the step."""
    from tests.sample_fixtures import smooth_images, write_png

    run = tmp_path / "samples"
    for step in (400000, 800000):
        folder = run / f"SiT-XL-2-{step:07d}-size-256-vae-ema-cfg-1.0-seed-0-ODE-250-dopri5"
        for i, image in enumerate(smooth_images(np.random.default_rng(step), 2, 16)):
            write_png(folder / f"{i:06d}.png", image)
    (said,) = _several_checkpoints_said(run, tmp_path / "s.zarr", capsys)
    assert said.endswith("; if another number in their names is the step, give --step-regex 'SiT-XL-2-(\\d+)'")


def test_runs_side_by_side_are_named_as_folders_to_point_at(tmp_path, capsys):
    """``baseline/samples/step_1000/`` beside ``wider/samples/step_1000/``: the fix is to watch one run."""
    from tests.sample_fixtures import smooth_images, write_png

    run = tmp_path / "exps"
    for exp in ("baseline", "wider"):
        for step in (1000, 2000):
            for i, image in enumerate(smooth_images(np.random.default_rng(step), 2, 16)):
                write_png(run / exp / "samples" / f"step_{step}" / f"{i:03d}.png", image)
    assert _several_checkpoints_said(run, tmp_path / "s.zarr", capsys) == [
        f"evowatch: {run}: 2 steps have several checkpoints (step 1000: baseline/samples/step_1000, "
        "wider/samples/step_1000): a step's signals measure them together; point evowatch at one of baseline, wider"]


def test_a_dreambooth_project_root_is_told_to_watch_the_trainers_output_folder(tmp_path, capsys):
    """Round BP: a diffusers DreamBooth project watched at its root read the instance photos
    ``dog/`` and the prior-preservation images ``class_images/{i}-{sha1}.jpg`` as steps and said
    "point evowatch at one of class_images, dog": neither is the run. ``output/`` is, where
    train_dreambooth.py writes its checkpoints; a bare ``checkpoints/`` beside runs side by side is not."""
    import hashlib

    from tests.sample_fixtures import smooth_images, write_png

    run, rng = tmp_path / "project", np.random.default_rng(0)
    for name in ("alvan-nee-9M0tSjb-unsplash", "alvan-nee-bQaAJCbNq3g-unsplash"):  # steps 9 and 3, read so
        write_png(run / "dog" / f"{name}.png", smooth_images(rng, 1, 16)[0])
    for i, image in enumerate(smooth_images(rng, 10, 16)):
        write_png(run / "class_images" / f"{i}-{hashlib.sha1(image.tobytes()).hexdigest()}.png", image)
    for step in (500, 1000):
        for name in ("model.safetensors", "optimizer.bin"):
            (run / "output" / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
            (run / "output" / f"checkpoint-{step}" / name).write_bytes(b"0" * 64)
    (said,) = _several_checkpoints_said(run, tmp_path / "s.zarr", capsys)
    assert said.endswith("; point evowatch at output, where the trainer writes its checkpoints and logs "
                         "(class_images, dog hold none: its training data?)")
    exps = tmp_path / "exps"
    for exp in ("baseline", "wider"):
        write_png(exps / exp / "samples" / "step_1000" / "0.png", smooth_images(rng, 1, 16)[0])
        (exps / "checkpoints").mkdir(exist_ok=True)
        (exps / "checkpoints" / f"{exp}-1000.safetensors").write_bytes(b"0" * 64)
    (said,) = _several_checkpoints_said(exps, tmp_path / "e.zarr", capsys)
    assert said.endswith("; point evowatch at one of baseline, wider")


def test_a_run_resumed_in_a_new_version_folder_is_told_how_to_supersede_its_steps(tmp_path, capsys):
    """Lightning's ``version_1/`` resumed from ``version_0/``'s step 1000 checkpoint writes step
    1500 again: "point evowatch at one of version_0, version_1" lost half the run either way."""
    from tests.sample_fixtures import smooth_images, write_png

    run = tmp_path / "lightning_logs"
    for version, steps in ((0, (500, 1000, 1500)), (1, (1500, 2000))):
        for step in steps:
            for i, image in enumerate(smooth_images(np.random.default_rng(step + version), 2, 16)):
                write_png(run / f"version_{version}" / "images" / f"epoch={step // 500 - 1}-step={step}" / f"{i}.png", image)
    (said,) = _several_checkpoints_said(run, tmp_path / "s.zarr", capsys)
    assert said.endswith("a step's signals measure them together; if version_1 resumed version_0's run, watch "
                         "version_0, then version_1 with --same-run, into one store: the steps written again then supersede")


def test_a_backlog_is_summed_up_not_listed_a_line_per_checkpoint(tmp_path, capsys, monkeypatch):
    """A finished run of 1,200 checkpoints printed 2,400 lines ("ingested step …", "laid out
    step …"): a backlog gets a start line, progress every few seconds (here every checkpoint)
    and a summary; -v still lists each, and a pass of few checkpoints (a live run) lists each."""
    from engine import backlog_log

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    n = backlog_log.EACH_UP_TO + 2
    for k in range(n):
        write_step(run, 100 * (k + 1), 2, seed=k, size=8)
    monkeypatch.setattr(backlog_log, "PROGRESS_EVERY_S", 0.0)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-metrics"]) == 0
    err = capsys.readouterr().err
    assert "ingested step" not in err and "laid out step" not in err
    assert f"ingesting {n} checkpoints (-v lists each)" in err and f"laying out {n} checkpoints" in err
    assert f"ingested {n - 1} of {n} checkpoints (step {100 * (n - 1):,})" in err
    assert f"ingested {n} checkpoints, steps 100 to {100 * n:,}: {2 * n} samples\n" in err
    assert f"laid out {n} checkpoints, steps 100 to {100 * n:,}: {2 * n} samples in " in err
    write_step(run, 100 * (n + 1), 2, seed=99, size=8)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-metrics"]) == 0
    err = capsys.readouterr().err
    assert f"ingested step {100 * (n + 1)} (step_{100 * (n + 1):06d}): 2 samples" in err and "checkpoints," not in err
    shutil.rmtree(store)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-metrics",
                 "--no-layout", "-v"]) == 0
    assert capsys.readouterr().err.count("ingested step") == n + 1


def test_file_and_folder_names_that_are_not_utf8_are_stored_escaped_and_not_read_twice(tmp_path, capsys):
    """A name from a Latin-1 zip (``cl\\xe9.png``): zarr's strings refused it, the watch died.
    The log spells it as the store does (round AN: ``\\udce9`` there, ``\\xe9`` in the store)."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    folder = write_step(run, 100, 2, seed=0)
    odd = os.fsencode(run) + b"/step_\xe9t\xe9_200/cl\xe9"
    os.makedirs(odd)
    for name in (b"/a.png", b"/b\xff.png"):
        shutil.copy(folder / "samples" / "00000.png", odd + name)
    old = time.time() - 10
    os.utime(odd + b"/a.png", (old, old))
    os.utime(odd + b"/b\xff.png", (old, old))
    for _ in range(2):
        assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 0
    err = capsys.readouterr().err
    assert "ingested step 200 (step_\\xe9t\\xe9_200): 2 samples" in err and "\\udc" not in err
    assert info(store)["rows"] == 4 and info(store)["checkpoints"] == 2
    reader = StoreReader(store)
    assert list(reader.checkpoints()["source"]) == ["step_000100", "step_\\xe9t\\xe9_200"]
    assert list(reader.samples("path")[2:]) == ["step_\\xe9t\\xe9_200/cl\\xe9/a.png", "step_\\xe9t\\xe9_200/cl\\xe9/b\\xff.png"]


def _without_root_powers(argv: list[str]) -> list[str]:
    """``argv`` run with file permissions enforced: as root, without the capabilities that
    override them (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("root ignores file permissions and setpriv (util-linux) is not there to drop that")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *argv]


def test_a_folder_listed_but_not_searchable_is_named_and_left_out(tmp_path):
    """`chmod -R 644 run` leaves folders whose names can be listed but whose files cannot be
    opened: the watch stopped with "s.zarr: cannot write there (Permission denied:
    run/step_000200/...); choose a writable --store", blaming the store."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 3, seed=0)
    write_step(run, 200, 2, seed=1)
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]
    watch = _without_root_powers(cli_argv(*argv))  # a process of its own, without root's powers over permissions
    (run / "step_000200").chmod(0o644)
    try:
        done = subprocess.run(watch, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert (f"{run / 'step_000200'}: cannot be read (Permission denied); what it holds is left out: "
                "fix its permissions") in done.stderr
        assert info(store)["steps"] == [100]
        run.chmod(0o444)  # the run folder itself
        done = subprocess.run(watch, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and f"{run}: cannot be read (Permission denied)" in done.stderr, done.stderr
    finally:
        run.chmod(0o755)
        (run / "step_000200").chmod(0o755)
    assert main(argv) == 0 and info(store)["steps"] == [100, 200]  # readable again: no powers to drop


def test_an_unreadable_file_is_skipped_by_name_and_an_unreadable_folder_is_named(tmp_path, capsys, monkeypatch):
    """chmod 000 (root reads anyway, so the refusal is simulated): it stopped the watch with
    "cannot write there ... choose a writable --store", and a folder was left out silently."""
    import builtins

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 3, seed=0)
    write_step(run, 200, 2, seed=1)
    locked_file, locked_folder = run / "step_000100" / "samples" / "00001.png", run / "step_000200" / "samples"
    real_open, real_scandir = builtins.open, os.scandir

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(locked_file):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def refusing_scandir(path="."):
        if str(path) == str(locked_folder):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(builtins, "open", refusing_open)
    monkeypatch.setattr(os, "scandir", refusing_scandir)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "step_000100/samples/00001.png: cannot be read (Permission denied): fix its permissions" in err
    assert f"{locked_folder}: cannot be read (Permission denied); what it holds is left out" in err
    assert info(store)["rows"] == 2 and info(store)["warnings"] == 1

    monkeypatch.undo()  # permissions fixed: the file is read on the next start
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 0
    assert info(store)["current_rows"] == 5 and info(store)["steps"] == [100, 200]


def test_probes_that_cannot_be_scored_are_said_before_anything_is_done(tmp_path, capsys):
    """`--probe` with the pixels encoder ingested the whole run, then failed ("no text tower");
    without a real reference the probes were silently not measured."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 3, seed=0)
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--no-layout", "--probe", "a thick stroke"]
    assert main([*argv, "--encoder", "pixels"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "evowatch: error: --probe needs a clip: encoder to score its prompts; pixels:16 has no text tower: "
        "drop --probe or use --encoder clip:ARCH/PRETRAINED"]
    assert not store.exists()
    tiny = Path(__file__).parent / "data" / "evowatch-tiny.json"
    assert main([*argv, "--encoder", f"clip:{tiny}/random", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "--probe: probes are scored against the real reference (--real DIR), which this store lacks: " \
           "they are not measured" in err
    assert "an untrained CLIP scores prompts at random, so the probe shares and probe_drift mean nothing" in err
    # round Z: a malformed probe was refused after the whole backlog was ingested; two probes of
    # one prompt (or prompts that read the same as array names) shared a column, one of them lost
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--probe", "|a man"])
    assert exit_.value.code == 2 and "argument --probe: Expected a probe" in capsys.readouterr().err
    other = tmp_path / "other.zarr"
    argv[argv.index(str(store))] = str(other)
    assert main([*argv, "--encoder", f"clip:{tiny}/random", "--probe", "a thick stroke!|a thin stroke"]) == 2
    assert capsys.readouterr().err.strip() == (
        "evowatch: error: --probe 'a thick stroke!|a thin stroke' and --probe 'a thick stroke' would be stored under "
        "one name (probe_share:a_thick_stroke): give each probe its own prompt")
    assert not other.exists()


def test_a_store_path_that_cannot_be_a_store_is_said_before_the_encoder_is_loaded(tmp_path, capsys, monkeypatch):
    """`watch --store .` with the default CLIP encoder, offline: the missing weights were
    reported instead of the store path's own one-line error."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    assert main(["watch", str(tmp_path), "--store", ".", "--once", "--settle", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "evowatch: error: .: is the current folder; name a store folder in it, e.g. --store run.zarr")


def test_a_step_regex_that_reads_no_step_says_whether_it_matched_nothing_or_captured_no_number(tmp_path, capsys):
    """A --step-regex whose group captured no number got the generic "no checkpoints found"."""
    run = tmp_path / "run"
    write_step(run, 100, 2, seed=0)
    watch = ["watch", str(run), "--store", str(tmp_path / "s.zarr"), "--once", "--settle", "0", "--encoder", "pixels"]
    for regex, why in (("ckpt-(\\d+)", "matches no name here (step_000100, samples, 00000.png, ...)"),
                       ("(?P<step>[a-z]+)_", "captures no number ('step' of step_000100): let its group, or the "
                                             "named group step, capture the digits only, e.g. 'step_(\\d+)'")):
        assert main([*watch, "--step-regex", regex]) == 1
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"evowatch: {run}: no checkpoints found: --step-regex '{regex}' {why}")
    assert main([*watch, "--step-regex", "step_(\\d+)"]) == 0
    assert info(tmp_path / "s.zarr")["rows"] == 2


def test_one_large_checkpoint_says_its_samples_as_they_come(tmp_path, capsys, monkeypatch):
    """A folder of 20,000 images said nothing for minutes: its samples so far are said every
    few seconds (here every batch)."""
    from engine import backlog_log

    run = tmp_path / "run"
    write_step(run, 100, 12, seed=0, size=8)
    monkeypatch.setattr(backlog_log, "PROGRESS_EVERY_S", 0.0)
    assert main(["watch", str(run), "--store", str(tmp_path / "s.zarr"), "--once", "--settle", "0", "--encoder",
                 "pixels", "--no-metrics", "--no-layout", "--workers", "0"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "so far" in line]
    assert said and said[-1] == "evowatch: ingesting: 12 samples so far, 0 of 1 checkpoint done"


def test_a_clip_encoder_is_said_to_load_before_it_loads_and_pixels_is_not(tmp_path, capsys, monkeypatch):
    """Importing open_clip and building the model took 5-40 s on a CPU with nothing said."""
    import engine.session

    said_before: list[str] = []
    build = engine.session.make_encoder

    def make_encoder(spec, **kwargs):
        said_before.append(capsys.readouterr().err)
        return build(spec, **kwargs)

    monkeypatch.setattr(engine.session, "make_encoder", make_encoder)
    run = tmp_path / "run"
    write_step(run, 100, 2, seed=0)
    for encoder, store in ((TINY_CLIP, "clip.zarr"), ("pixels", "pixels.zarr")):
        capsys.readouterr()
        assert main(["watch", str(run), "--store", str(tmp_path / store), "--once", "--settle", "0", "--encoder", encoder]) == 0
    assert said_before == [f"evowatch: loading the encoder {TINY_CLIP}\n", ""]


def test_a_mistyped_command_or_choice_is_named_with_the_one_meant(tmp_path, capsys):
    """argparse listed the choices without saying which was meant, as it does for a mistyped option."""
    assert usage_error(["wach", str(tmp_path)], capsys) == (
        "evowatch: error: argument command: invalid choice: 'wach' (did you mean watch?; choose from 'watch', 'layout', "
        "'info', 'export', 'view', 'demo')")
    assert usage_error(["export", str(tmp_path / "s.zarr"), "--to", "parqet"], capsys) == (
        "evowatch export: error: argument --to: invalid choice: 'parqet' (did you mean parquet?; choose from 'parquet', 'csv')")
    assert usage_error(["xyz"], capsys) == (  # nothing near: the choices alone, as before
        "evowatch: error: argument command: invalid choice: 'xyz' (choose from 'watch', 'layout', 'info', 'export', 'view', 'demo')")
