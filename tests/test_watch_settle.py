"""When a checkpoint is complete: settling, files still coming, rotation by the trainer, and steps read anew."""
from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from tests.watch_runs import info, swap_folders, wait_until, write_step


@pytest.mark.slow
def test_a_checkpoint_taken_again_as_its_files_keep_coming_names_settle(tmp_path, caplog):
    """A trainer writing a checkpoint's files further apart than --settle: every pass took it
    again as a new version, rows grew as the square of its files, and nothing said why. A grid
    rewritten in place (DCGAN) keeps its one file and says nothing."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreWriter
    from tests.sample_fixtures import save_torchvision_grid, smooth_images, write_png

    run, encoder = tmp_path / "run", make_encoder("pixels", device="cpu")
    folder = run / "step_000100"
    old = time.time() - 100
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store, caplog.at_level("WARNING"):
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.0), progress=False, workers=0),
                          store, encoder)
        for i in range(4):
            write_png(folder / f"{i:05d}.png", smooth_images(np.random.default_rng(i), 1, 16)[0])
            os.utime(folder / f"{i:05d}.png", (old + i, old + i))
            grid = save_torchvision_grid(smooth_images(np.random.default_rng(i), 4, 16), run / "fake_samples_epoch_001.png")
            os.utime(grid, (old + i, old + i))
            watcher.run_once()
    said = [r.getMessage() for r in caplog.records if "taken again" in r.getMessage()]
    assert said == ["step_000100: taken again as more files came (3 now): the trainer writes them more than --settle "
                    "0 s apart; raise --settle, or have it write a --ready-file"]


def test_a_trainer_writing_a_checkpoints_files_apart_lengthens_the_default_settle(tmp_path, caplog, monkeypatch):
    """kohya-ss writes one image per prompt, seconds apart: with --settle at its default, each
    step was stored (and measured) once per image. Once a checkpoint grows (here from the lone
    first file, read under another name), the watch waits longer than its files' gap; a --settle
    given is kept. The clock is the test's: files written a second apart, passes 0.6 s after."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreReader, StoreWriter
    from tests.sample_fixtures import smooth_images, write_png

    encoder, clock = make_encoder("pixels", device="cpu"), [0.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    stored = {}
    for adapt in (True, False):
        run, base = tmp_path / f"run{adapt}", os.stat(tmp_path).st_ctime + 1000  # mtimes ahead of the ctimes
        with StoreWriter(tmp_path / f"{adapt}.zarr", encoder_record(encoder)) as store, caplog.at_level("WARNING"):
            config = WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.5), progress=False, workers=0,
                                 adapt_settle=adapt)
            watcher = Watcher(config, store, encoder)
            for i, look in enumerate((0.6, 1.6, 2.6, 3.6, 5.1)):
                if i < 4:
                    path = run / f"lora_000100_{i:02d}_20240514120000.png"
                    write_png(path, smooth_images(np.random.default_rng(i), 1, 16)[0])
                    os.utime(path, (base + i, base + i))
                clock[0] = base + look
                watcher.run_once()
        table = StoreReader(tmp_path / f"{adapt}.zarr").checkpoints()
        stored[adapt] = (table["row_stop"] - table["row_start"]).tolist()
    assert stored[False] == [1, 2, 3, 4]  # --settle given: once per file
    assert stored[True] == [1, 2, 4]  # the second file's gap (1 s) lengthened it to 2 s
    said = [r.getMessage() for r in caplog.records if "taken again" in r.getMessage()]
    assert said == ["lora_000100_*_??????????????.png: taken again as more files came (2 now), written up to 1.0 s "
                    "apart: a checkpoint is now taken after 2 s without a change (--settle S sets it; or have the "
                    "trainer write a --ready-file)",
                    "lora_000100_*_??????????????.png: taken again as more files came (3 now): the trainer writes "
                    "them more than --settle 0.5 s apart; raise --settle, or have it write a --ready-file"]


def test_a_checkpoint_grown_after_the_trainer_exited_does_not_lengthen_settle_again(tmp_path, monkeypatch):
    """The demo's last pass, once its trainer exited, takes every checkpoint as it is
    (Watcher.trainer_exited: --settle 0). A checkpoint taken again there with more files
    lengthened --settle in the middle of that pass, and a checkpoint found after it, written
    a moment before, was left unstored ("still being written") when the demo ended."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreReader, StoreWriter
    from tests.sample_fixtures import smooth_images, write_png

    encoder, clock, run = make_encoder("pixels", device="cpu"), [0.0], tmp_path / "run"
    monkeypatch.setattr(time, "time", lambda: clock[0])
    base = os.stat(tmp_path).st_ctime + 1000  # mtimes ahead of the ctimes

    def write(step: int, i: int, at: float) -> None:
        path = run / f"lora_{step:06d}_{i:02d}_20240514120000.png"
        write_png(path, smooth_images(np.random.default_rng(step + i), 1, 16)[0])
        os.utime(path, (base + at, base + at))

    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store:
        config = WatchConfig(run_dir=run, options=DiscoveryOptions(), progress=False, workers=0, adapt_settle=True)
        watcher = Watcher(config, store, encoder)
        write(100, 0, 0)
        clock[0] = base + 2.5
        watcher.run_once()  # step 100's lone first file, settled
        write(100, 1, 3)  # its second file, 3 s later: would lengthen --settle to 5 s
        write(200, 0, 3)  # and the next step's first, as the trainer exits
        watcher.trainer_exited()
        clock[0] = base + 3
        watcher.run_once()
    table = StoreReader(tmp_path / "s.zarr").checkpoints()
    assert sorted(zip(table["step"].tolist(), (table["row_stop"] - table["row_start"]).tolist())) == \
        [(100, 1), (100, 2), (200, 1)]


def test_only_a_settle_left_out_is_lengthened(tmp_path):
    """`watch` without --settle waits 2 s and may lengthen it; --settle 2 given is kept."""
    from engine.cli import build_parser
    from engine.session import open_session

    (tmp_path / "run").mkdir()
    argv = ["watch", str(tmp_path / "run"), "--store", str(tmp_path / "s.zarr"), "--encoder", "pixels", "--no-layout",
            "--no-metrics", "--workers", "0"]
    for extra, adapt in (([], True), (["--settle", "2"], False)):
        with open_session(build_parser().parse_args(argv + extra)) as watcher:
            assert (watcher.config.options.settle, watcher.config.adapt_settle) == (2.0, adapt)


def test_a_checkpoint_rotated_away_before_it_settled_is_named(tmp_path, caplog):
    """Round AV: a trainer keeping its newest checkpoints deleted those that lived less than
    --settle (a burst of 8 rotated away 0.1 s apart; keeping 1 a second, all but the last):
    never ingested, and nothing said. One renamed (its step still there) or read otherwise
    now (its files still there) is not deleted."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreWriter

    run, encoder = tmp_path / "run", make_encoder("pixels", device="cpu")
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store, caplog.at_level("INFO"):
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=60.0), progress=False, workers=0),
                          store, encoder)
        for step in (200, 300, 400):
            write_step(run, step, 2, seed=step)  # renamed into place just now: settling for a minute
        watcher.run_once()
        os.rename(run / "step_000400", run / "step_400")  # renamed while settling: not deleted
        shutil.rmtree(run / "step_000200")  # rotated away before they settled
        shutil.rmtree(run / "step_000300")
        watcher.run_once()
        os.rename(run / "step_400", run / "step_000400")
        watcher.run_once()
    said = [r.getMessage() for r in caplog.records if "deleted before" in r.getMessage()]
    assert said == ["step 200 (step_000200) was deleted before it was complete (changed within the last --settle 60 "
                    "s): not ingested; a trainer that deletes its checkpoints this soon (rotation) needs them taken "
                    "sooner: lower --settle, or have the trainer write a --ready-file once a checkpoint is complete",
                    "step 300 (step_000300) was deleted before it was complete (changed within the last --settle 60 "
                    "s): not ingested"]


@pytest.mark.parametrize("ready", [False, True])
def test_a_watch_stopped_before_a_stored_checkpoint_settled_does_not_name_it_unfinished(tmp_path, capsys, ready):
    """A watch started within --settle of a checkpoint a watch had just stored, and stopped at
    once, said "not ingested, still being written: step_000100" of a checkpoint stored as it is;
    one whose files changed since it was stored is still named, with a --ready-file too (round
    BW9: every stored one was taken as stored as it is, a rewritten one went unsaid)."""
    from engine.cli import build_parser
    from engine.session import open_session

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200):
        write_step(run, step, 2, seed=step)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                 "--no-layout", "--no-metrics"]) == 0
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(run / "step_000200" / "00000.png")  # being rewritten
    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout",
                                      "--no-metrics", "--settle", "60", "--workers", "0",
                                      *(["--ready-file", "DONE"] if ready else [])])
    capsys.readouterr()
    with open_session(args) as watcher:
        assert watcher.run_once() == []  # both changed within the last minute (or have no ready file): settling
        watcher.say_unfinished(("the next watch ingests it", "the next watch ingests them"))
    said = [line for line in capsys.readouterr().err.splitlines() if "not ingested" in line]
    why = "no ready file (DONE) yet" if ready else "still being written"
    assert said == [f"evowatch: not ingested, {why}: step_000200; the next watch ingests it"]


def test_a_checkpoint_rotated_away_while_the_watch_was_busy_is_not_said_incomplete(tmp_path, caplog):
    """Round AW: kept 3 s (a checkpoint a second, the newest 3), --settle 2, a watch busy laying
    out and measuring looked again after they had settled: "deleted before it was complete
    (changed within the last --settle 2 s) ... lower --settle" of checkpoints that may have been
    complete for a second, where a lower --settle does not help and keeping more does."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreWriter

    run, encoder = tmp_path / "run", make_encoder("pixels", device="cpu")
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store, caplog.at_level("INFO"):
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.5), progress=False, workers=0),
                          store, encoder)
        for step in (200, 300):
            write_step(run, step, 2, seed=step)
            for path in (run / f"step_{step:06d}").rglob("*"):
                os.utime(path)  # written just now
        watcher.run_once()
        time.sleep(1.0)  # the watch busy with others: settled meanwhile
        shutil.rmtree(run / "step_000200")
        shutil.rmtree(run / "step_000300")
        watcher.run_once()
    said = [re.sub(r"\d+\.\d s before", "N s before", r.getMessage()) for r in caplog.records
            if "deleted before" in r.getMessage()]
    assert said == ["step 200 (step_000200) was deleted before the watch looked again (changed within the last "
                    "--settle 0.5 s when it looked, N s before): not ingested; a trainer that deletes its checkpoints "
                    "this soon (rotation) needs them kept longer than the watch takes between its looks: have it keep "
                    "more of them",
                    "step 300 (step_000300) was deleted before the watch looked again (changed within the last "
                    "--settle 0.5 s when it looked, N s before): not ingested"]


def _held(watcher) -> dict[str, int]:
    """The entries each of a watcher's containers holds, those of the containers inside them too."""
    def size(value) -> int:
        inner = value.values() if isinstance(value, dict) else value
        return len(value) + sum(len(v) for v in inner if isinstance(v, (dict, set, frozenset, list)))
    return {name: size(value) for name, value in vars(watcher).items() if isinstance(value, (dict, set, list))}


@pytest.mark.parametrize("layout", ["folders", "grids"])
def test_a_watch_of_a_rotating_trainer_holds_no_more_after_many_checkpoints(tmp_path, layout):
    """Round BJ: a trainer keeping its newest 3 checkpoints, watched for days: the watcher kept
    the hashes, file lists and move checks of every checkpoint it ever saw (12 kB a checkpoint of
    8 files), and the size of every grid (a list as long as the run, sorted at each grid). What
    it holds after 25 checkpoints it holds after 40."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreWriter
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    def write(k: int) -> Path:
        if layout == "folders":
            return write_step(run, 100 * k, 3, seed=k, size=8)
        grid = run / f"fake_samples_epoch_{k:03d}.png"
        save_torchvision_grid(smooth_images(np.random.default_rng(k), 4, 16), grid, nrow=2)
        os.utime(grid, (time.time() - 10,) * 2)
        return grid

    run, encoder = tmp_path / "run", make_encoder("pixels:4", device="cpu")
    written, held = [], {}
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store:
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.0), progress=False, workers=0),
                          store, encoder)
        watcher.live = True
        for k in range(1, 41):
            written.append(write(k))
            if len(written) > 3:
                shutil.rmtree(written[-4]) if written[-4].is_dir() else written[-4].unlink()
            watcher.run_once()
            if k in (25, 40):
                held[k] = _held(watcher)
        assert len(info(tmp_path / "s.zarr")["steps"]) == 40
    assert held[40] == held[25]


def test_a_watch_pass_reads_the_checkpoint_table_once(tmp_path, monkeypatch):
    """Round BV: a pass that stored a checkpoint read the store's checkpoint table three times
    (what is stored, which checkpoints moved, which stand-ins the run's own files supersede), each
    read 10 arrays: 58% of the rotating trainer's passes above. A pass with nothing new reads it once too."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreReader, StoreWriter

    run, encoder, reads = tmp_path / "run", make_encoder("pixels:4", device="cpu"), []
    read = StoreReader.checkpoints
    monkeypatch.setattr(StoreReader, "checkpoints", lambda self: reads.append(1) or read(self))
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store:
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.0), progress=False, workers=0),
                          store, encoder)
        watcher.live = True
        for k in (1, 2, 3):
            write_step(run, 100 * k, 3, seed=k, size=8)
            reads.clear()
            assert [r.checkpoint.step for r in watcher.run_once()] == [100 * k] and len(reads) == 1
        reads.clear()
        assert watcher.run_once() == [] and len(reads) == 1
    assert info(tmp_path / "s.zarr")["steps"] == [100, 200, 300]


@pytest.mark.parametrize("how", ["link pointed elsewhere", "made again"])
def test_a_checkpoint_being_written_when_the_run_directory_was_replaced_is_not_said_rotated(tmp_path, caplog, how):
    """Round AW: RUN_DIR a link (runs/latest) pointed at a resumed run's folder while the old
    folder's newest checkpoint settled: "step 200 was deleted before it was complete ... (rotation)
    ... lower --settle", the checkpoint still there; a run folder made again (a restarted trainer)
    was given the same advice. The run directory's own line says what happened."""
    from engine.cli import build_parser
    from engine.session import open_session

    old, new, link = tmp_path / "A", tmp_path / "B", tmp_path / "latest"
    write_step(old, 100, 2, seed=1)
    write_step(new, 100, 2, seed=1)  # resumed: the same first checkpoint
    link.symlink_to(old)
    time.sleep(3.1)  # settled (a file's change time counts)
    args = build_parser().parse_args(["watch", str(link if how.startswith("link") else old), "--store",
                                      str(tmp_path / "s.zarr"), "--encoder", "pixels", "--no-layout", "--no-metrics",
                                      "--settle", "3", "--workers", "0"])
    stop = threading.Event()
    with open_session(args) as watcher, caplog.at_level("INFO"):
        watcher.config.tick = 0.1
        thread = threading.Thread(target=watcher.run_forever, args=(stop,))
        thread.start()
        try:
            wait_until(lambda: "watching " in caplog.text, thread)  # its first pass done
            write_step(old, 200, 2, seed=2)
            for path in (old / "step_000200").rglob("*"):
                os.utime(path)  # written just now: settling
            wait_until(lambda: bool(watcher._settling), thread)
            seen = [c.source for c in watcher._settling]
            # In one step, so that no look of the watch falls between the old folder's going and the
            # new one's coming (it flaked under load: a look there says "deleted", then "back")
            if how.startswith("link"):
                (tmp_path / "new_link").symlink_to(new)
                os.replace(tmp_path / "new_link", link)
            else:
                write_step(tmp_path / "again", 100, 2, seed=1)
                swap_folders(old, tmp_path / "again")
                shutil.rmtree(tmp_path / "again")
            wait_until(lambda: "the run directory was replaced" in caplog.text, thread)
        finally:
            stop.set()
            thread.join(timeout=10)
    assert seen == ["step_000200"] and "the run directory was replaced" in caplog.text
    assert "deleted before" not in caplog.text


def test_a_checkpoint_taken_again_with_a_ready_file_names_the_ready_file(tmp_path, caplog):
    """rsync copies in name order: a ready file `done` came before `sample_*.png`, and the
    advice was to use the --ready-file already in use."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreWriter
    from tests.sample_fixtures import smooth_images, write_png

    run, encoder = tmp_path / "run", make_encoder("pixels", device="cpu")
    folder = run / "step_000100"
    options = DiscoveryOptions(settle=0.0, ready_file="done")
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store, caplog.at_level("WARNING"):
        watcher = Watcher(WatchConfig(run_dir=run, options=options, progress=False, workers=0), store, encoder)
        folder.mkdir(parents=True)
        (folder / "done").touch()
        for i in range(4):
            write_png(folder / f"sample_{i}.png", smooth_images(np.random.default_rng(i), 1, 16)[0])
            watcher.run_once()
    (said,) = [r.getMessage() for r in caplog.records if "taken again" in r.getMessage()]
    assert said == ("step_000100: taken again as more files came (3 now): its --ready-file done came before the "
                    "last of them (a sync tool copies in name order: give it a name that sorts after the samples', "
                    "or copy it last)")


def test_once_exits_1_when_no_checkpoint_is_complete_yet_and_the_store_holds_none(tmp_path, capsys):
    """Round BC: `watch --once --ready-file F` with no ready file yet exited 0, leaving no store:
    `watch --once && export` went on to a store that was not there. Status 1, said why; once a
    store holds the run's checkpoints, a new one not ready yet is no failure."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
             "--no-layout", "--no-metrics", "--ready-file", "DONE"]
    assert main(watch) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "evowatch: not ingested, no ready file (DONE) yet: step_000100; run the same command again once it is complete")
    assert not store.exists()
    (run / "step_000100" / "DONE").touch()
    write_step(run, 200, 2, seed=1)
    assert main(watch) == 0 and info(store)["steps"] == [100]


def test_files_whose_step_is_read_anew_are_stored_again_at_it(tmp_path):
    """CogVideoX's ``validation-{step}-{rank}-{prompt}-{hash}.png`` watched live: the first
    step's files alone carry the rank as their last number (step 0); once the second step
    came they read as step 100, but their content was stored already and they stayed at 0."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreWriter
    from tests.sample_fixtures import smooth_images, write_png

    run, encoder = tmp_path / "run", make_encoder("pixels", device="cpu")
    old = time.time() - 100
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store:
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.0), progress=False, workers=0),
                          store, encoder)
        for k, step in enumerate((100, 200)):
            for i, (prompt, digest) in enumerate((("A_cat_walks", "d527f"), ("A_panda_eats", "b04f5"))):
                path = write_png(run / "validation_res" / f"validation-{step}-0-{prompt}-{digest}.png",
                                 smooth_images(np.random.default_rng(10 * k + i), 1, 16)[0])
                os.utime(path, (old + 30 * k + i, old + 30 * k + i))
            watcher.run_once()
    assert info(tmp_path / "s.zarr")["steps"] == [100, 200] and info(tmp_path / "s.zarr")["current_rows"] == 4


def test_once_waits_for_checkpoints_just_written_and_names_those_still_changing(tmp_path, capsys, monkeypatch):
    """`--once` right after a copy or a trainer's write: fresh checkpoints get their --settle
    seconds of quiet and are ingested; one still being written is named, not dropped silently."""
    import threading

    from engine.watch import pending
    from stores.zarr_store import StoreReader

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    folder = write_step(run, 100, 3, seed=0)
    scans = []

    def scan_just_written(*args, **kwargs):
        if not scans:  # the trainer's last write lands just before the first scan, however slow the start
            for path in folder.rglob("*"):
                os.utime(path)
        scans.append(True)
        return real_scan(*args, **kwargs)

    real_scan = pending.scan_run
    monkeypatch.setattr(pending, "scan_run", scan_just_written)
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics",
            "--settle", "0.5"]
    assert main(argv) == 0
    assert "waiting 0.5s for 1 checkpoint still being written" in capsys.readouterr().err and len(scans) == 2
    assert StoreReader(store).info()["steps"] == [100]

    busy = write_step(run, 200, 3, seed=1) / "samples" / "00000.png"
    stop = threading.Event()

    def trainer_still_writing():
        while not stop.wait(0.05):
            os.utime(busy)

    os.utime(busy)  # write_step back-dated it: being written from the first scan on, however fast the start
    writer = threading.Thread(target=trainer_still_writing)
    writer.start()
    try:
        assert main(argv) == 0
    finally:
        stop.set()
        writer.join()
    err = capsys.readouterr().err
    assert "not ingested, still being written: step_000200; run the same command again once it is complete" in err
    assert StoreReader(store).info()["steps"] == [100]

    assert main([*argv, "--ready-file", "DONE"]) == 0  # no ready file: named at once, no wait
    assert "not ingested, no ready file (DONE) yet: step_000200; run the same command again once it is complete" in capsys.readouterr().err
    assert main([*argv, "--ready-file", "ok-{step}"]) == 0  # round AN: the template was named unfilled
    assert "not ingested, no ready file (ok-200) yet: step_000200;" in capsys.readouterr().err


def test_a_pass_asks_only_checkpoints_not_stored_as_they_are_whether_they_are_complete(tmp_path, monkeypatch):
    """Every pass walked and stat-ed every checkpoint stored long ago to ask whether it was still
    being written (30% of a pass at 300 checkpoints); one rewritten since is asked again."""
    from engine.cli import build_parser
    from engine.session import open_session
    from engine.watch import pending

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for k in range(3):
        write_step(run, 100 * (k + 1), 3, seed=k)
    asked = []
    is_ready = pending.is_ready
    monkeypatch.setattr(pending, "is_ready", lambda checkpoint, *rest: asked.append(checkpoint.source)
                        or is_ready(checkpoint, *rest))
    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout",
                                      "--no-metrics", "--settle", "0", "--workers", "0"])
    with open_session(args) as watcher:
        assert len(watcher.run_once()) == 3 and sorted(asked) == ["step_000100", "step_000200", "step_000300"]
        asked.clear()
        assert watcher.pending() == ([], []) and asked == []
        write_step(run, 400, 3, seed=3)
        Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(run / "step_000200" / "00000.png")  # rewritten in place
        jobs, _ = watcher.pending()
        assert sorted(asked) == ["step_000200", "step_000400"] and sorted(c.source for c, _ in jobs) == ["step_000200", "step_000400"]
