"""The watched run folder over time: not there yet, deleted, replaced, linked elsewhere, later runs beside it."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stores.zarr_store import StoreReader
from tests.watch_runs import TAKEN_AT_ONCE, info, live_watch, swap_folders, wait_until, write_step


def test_a_live_watch_of_a_run_that_has_no_checkpoint_yet_waits_without_a_warning(tmp_path, caplog):
    """`evowatch demo` watches its trainer from before the first checkpoint: no "no checkpoints found",
    and no layout hint while the run holds no samples at all."""
    from engine.cli import build_parser
    from engine.session import open_session

    (tmp_path / "run").mkdir()
    args = build_parser().parse_args(["watch", str(tmp_path / "run"), "--store", str(tmp_path / "s.zarr"),
                                      "--encoder", "pixels", "--no-layout", "--no-metrics"])
    with open_session(args) as watcher, caplog.at_level("INFO", logger="engine.watch"):
        watcher.live = True
        assert watcher.run_once() == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"{tmp_path / 'run'}: no samples yet, waiting for the first checkpoint")]
    # Images there that no layout rule reads as checkpoints: the hint names what is looked for.
    Image.new("RGB", (8, 8)).save(tmp_path / "run" / "sample.png")
    caplog.clear()
    with open_session(args) as watcher, caplog.at_level("INFO", logger="engine.watch"):
        watcher.live = True
        assert watcher.run_once() == []
    assert [(r.levelname, "waiting for them (folders or sample files whose names carry a step" in r.getMessage())
            for r in caplog.records] == [("INFO", True)]


def test_a_run_directory_not_created_yet_is_waited_for(tmp_path, caplog):
    """`evowatch watch lightning_logs/version_0` started before the trainer was refused (no
    such directory); creating the folder by hand to please it made Lightning write version_1."""
    run, store = tmp_path / "lightning_logs" / "version_0", tmp_path / "s.zarr"
    with caplog.at_level("INFO", logger="engine.watch"), live_watch(run, store, None, *TAKEN_AT_ONCE) as thread:
        wait_until(lambda: "waiting for the trainer to create it" in caplog.text, thread)
        write_step(run, 100, 2, seed=0)
        wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        write_step(run, 200, 3, seed=1)  # watched by events from then on
        wait_until(lambda: StoreReader(store).n_rows >= 5, thread)
    assert info(store)["steps"] == [100, 200]
    assert "created; watching it" in caplog.text and "deleted" not in caplog.text


def test_a_run_directory_deleted_while_watched_is_waited_for_and_watched_again(tmp_path, caplog):
    """A trainer restarted from scratch (`rm -rf RUN`, then a new RUN): the watch ended with
    "RUN: run directory not found ...; check the path" unless it came back within a tick."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    with caplog.at_level("INFO", logger="engine.watch"), live_watch(run, store, None, *TAKEN_AT_ONCE) as thread:
        wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        shutil.rmtree(run)
        wait_until(lambda: "was deleted" in caplog.text, thread)
        run.mkdir()
        write_step(run, 200, 3, seed=1)
        wait_until(lambda: StoreReader(store).n_rows >= 5, thread)
    assert info(store)["steps"] == [100, 200] and info(store)["rows"] == 5
    assert caplog.text.count("the run directory was deleted") == 1 and "is back" in caplog.text
    assert "was replaced" not in caplog.text  # the new folder's events followed at once, not found missing a tick later


@pytest.mark.parametrize("watched, appeared, later", [
    ("version_0", "version_10", True), ("version_3", "version_2", False), ("version_0", "version_0_old", False),
    ("00000-stylegan2-ffhq", "00001-stylegan2-ffhq-resumecustom", True), ("exp42", "exp4", False),
    ("run_2024-05-01_3", "run_2024-05-01_4", True), ("12-30-00", "12-45-00", True), ("run", "run2", False)])
def test_which_folders_are_later_runs_of_the_watched_one(watched, appeared, later):
    """Round AX: only the first number was compared: `run_2024-05-01_4` beside `run_2024-05-01_3`
    (2024 = 2024) and Hydra's `12-45-00` beside `12-30-00` were never named."""
    from engine.watch import _LaterRuns

    assert _LaterRuns(Path("/runs") / watched)._later(appeared) == later


@pytest.mark.parametrize("given", ["its path", "."])
def test_a_later_run_folder_beside_the_watched_one_is_named(tmp_path, caplog, monkeypatch, given):
    """Round AV: `evowatch watch lightning_logs/version_0` went quiet without a word when the
    trainer, restarted, wrote to `version_1/` beside it. A folder named as the watched one with a
    higher number that appears is named once, with the command that goes on with it; one there
    from the start, an earlier number or another name is not. Round AX: the command, run as
    said, was refused while this watch held the store's lock (it is stopped first), and a watch
    of `.` from inside `version_3/` named none."""
    from engine.watch import live, run_folder

    monkeypatch.setattr(live, "RESCAN_S", 0.2)  # the loop's rescans
    monkeypatch.setattr(run_folder, "RESCAN_S", 0.2)  # _LaterRuns' looks beside the run
    logs = tmp_path / "lightning_logs"
    run, store = logs / "version_3", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    for name in ("version_7", "version_1", "other_9"):  # there from the start, earlier, another name
        (logs / name).mkdir()
    if given == ".":
        monkeypatch.chdir(run)
    watched, later = (run, logs / "version_4") if given != "." else (Path("."), Path("../version_4"))
    with caplog.at_level("WARNING", logger="engine.watch"), live_watch(watched, store, None, *TAKEN_AT_ONCE) as thread:
        wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        for name in ("version_4", "version_2", "checkpoints", "version_10.txt"):
            (logs / name).mkdir() if not name.endswith(".txt") else (logs / name).write_text("")
        wait_until(lambda: "version_4 appeared" in caplog.text, thread, seconds=10)
        time.sleep(0.5)
    said = [r.getMessage() for r in caplog.records if "appeared beside it" in r.getMessage()]
    assert said == [f"{watched}: version_4 appeared beside it, named as it is with a higher number: were the trainer "
                    f"restarted there, it writes there, not here; to go on with it in this store, stop this watch, "
                    f"then: evowatch watch {later} --store {store} --same-run"], said


def test_a_later_run_folder_made_during_the_first_pass_is_named(tmp_path, caplog, monkeypatch):
    """The folders beside the run were first looked at after the first pass, which ingests the
    whole backlog (minutes for a long run): a trainer restarted meanwhile into ``version_4/`` was
    taken as there from the start, never named. The first look is taken before the first pass."""
    from engine.watch import Watcher, live, run_folder

    monkeypatch.setattr(live, "RESCAN_S", 0.2)
    monkeypatch.setattr(run_folder, "RESCAN_S", 0.2)
    logs = tmp_path / "lightning_logs"
    run, store = logs / "version_3", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    run_once = Watcher.run_once

    def restarted_during_the_first_pass(self):
        (logs / "version_4").mkdir(exist_ok=True)
        return run_once(self)
    monkeypatch.setattr(Watcher, "run_once", restarted_during_the_first_pass)
    with caplog.at_level("WARNING", logger="engine.watch"), live_watch(run, store, None, *TAKEN_AT_ONCE) as thread:
        wait_until(lambda: "version_4 appeared" in caplog.text, thread, seconds=10)
    assert "version_4 appeared beside it" in caplog.text


@pytest.mark.parametrize("change", ["made again at once", "made again, its inode number reused", "given as a link",
                                    "its link retargeted"])
def test_new_checkpoints_come_by_events_whatever_the_run_directory_went_through(tmp_path, caplog, monkeypatch, change):
    """Round AF: a run directory deleted and made again between two looks (`rm -rf out &&
    mkdir out`), a RUN_DIR given as a symbolic link (inotify watched the link) or a link later
    pointed at another folder: no file event came any more, each checkpoint waited for the
    30 s rescan. Here the rescan never comes: the events alone bring them. The watch must follow
    the new folder's events, not only look at it: left on the old folder, each tick found the run
    folder replaced again, said so again (a line a second) and rescanned the whole run (0.27 s of
    CPU per 10 s idle at 200 checkpoints, 0.01 s when followed), which hid the missing events.
    The new folder may get the deleted one's inode number (ext4 reuses them): the deleted
    folder's own event tells it then."""
    from engine.watch import live, run_folder

    monkeypatch.setattr(live, "RESCAN_S", 3600.0)
    if change == "made again, its inode number reused":
        for module in (live, run_folder):  # the run folder's (device, inode) the same before and after
            monkeypatch.setattr(module, "folder_identity", lambda path: (0, 0))
    real = tmp_path / "real_run"
    write_step(real, 100, 2, seed=0)
    run = real
    if change != "made again at once":
        run = tmp_path / "latest"
        run.symlink_to(real, target_is_directory=True)
    store = tmp_path / "s.zarr"
    same_run = ("--same-run",) if change == "its link retargeted" else ()  # a run resumed in a new folder
    with caplog.at_level("INFO", logger="engine.watch"), live_watch(run, store, None, *same_run, *TAKEN_AT_ONCE) as thread:
        wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        if change.startswith("made again"):
            (tmp_path / "fresh").mkdir()
            swap_folders(real, tmp_path / "fresh")  # no look between the two: the rm -rf; mkdir case
            shutil.rmtree(tmp_path / "fresh")
        elif change == "its link retargeted":
            other = tmp_path / "next_run"
            other.mkdir()
            (tmp_path / "new_link").symlink_to(other, target_is_directory=True)
            os.replace(tmp_path / "new_link", run)
            real = other
        time.sleep(0.5)
        write_step(real, 200, 3, seed=1)
        wait_until(lambda: StoreReader(store).n_rows >= 5, thread, seconds=15)
        assert StoreReader(store).n_rows == 5
        write_step(real, 300, 1, seed=2)  # and the next one too
        wait_until(lambda: StoreReader(store).n_rows >= 6, thread, seconds=15)
    assert info(store)["steps"] == [100, 200, 300]
    assert caplog.text.count("the run directory was replaced") == (change != "given as a link")


def test_a_run_directory_link_pointed_at_another_run_while_watched_is_refused(tmp_path):
    """Round AN: `latest -> run_a` pointed at run_b during a live watch took run_b's
    checkpoints for new versions of run_a's (run_a's rows superseded); a new watch refused
    the same switch. The live watch stops with the same line."""
    run_a, run_b, latest, store = tmp_path / "run_a", tmp_path / "run_b", tmp_path / "latest", tmp_path / "s.zarr"
    write_step(run_a, 100, 2, seed=0)
    write_step(run_b, 100, 3, seed=1)
    write_step(run_b, 200, 3, seed=2)
    latest.symlink_to(run_a, target_is_directory=True)
    with live_watch(latest, store, None, *TAKEN_AT_ONCE) as thread:
        wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        (tmp_path / "new_link").symlink_to(run_b, target_is_directory=True)
        os.replace(tmp_path / "new_link", latest)
        wait_until(lambda: thread.error is not None, thread, seconds=15)
    assert "does not hold (another run): watch it into its own --store" in str(thread.error)
    assert info(store)["rows"] == 2 and StoreReader(store).current_rows().all()


def test_a_live_watch_sees_a_rewrite_that_kept_the_files_sizes_and_times(tmp_path):
    """Round AF: samples re-synced with their times kept (`cp -p`, `touch -d`, `tar x`), same
    shapes hence same sizes, were read again by a restarted watch but never by the live one:
    its "unchanged since hashed" shortcut looked at names, sizes and mtimes only."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    folder = run / "step_000100"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(folder / f"{i}.npy", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    with live_watch(run, store) as thread:
        wait_until(lambda: StoreReader(store).n_rows >= 3, thread)
        time.sleep(2.5)  # settled and hashed
        for i in range(3):
            path = folder / f"{i}.npy"
            st = os.stat(path)
            np.save(path, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        wait_until(lambda: StoreReader(store).n_rows >= 6, thread, seconds=40)
    assert info(store)["rows"] == 6 and info(store)["current_rows"] == 3
