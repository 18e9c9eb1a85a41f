"""Ingest end to end, as a user runs it: `evowatch watch`, `evowatch info`, restarts and kills."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.errors import EvowatchError
from stores.zarr_store import StoreReader, superseded_flags

REPO = Path(__file__).resolve().parents[1]
TINY_CLIP = f"clip:{REPO / 'tests/data/evowatch-tiny.json'}/random"


def write_step(run: Path, step: int, n: int, seed: int, size: int = 24, rename: bool = True) -> Path:
    """A checkpoint folder `step_000100/samples/00000.png ...`, renamed into place like the demo does."""
    rng = np.random.default_rng(seed)
    final = run / f"step_{step:06d}"
    tmp = run / f".step_{step:06d}.tmp" if rename else final
    (tmp / "samples").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(tmp / "samples" / f"{i:05d}.png")
    if rename:
        os.rename(tmp, final)
    old = time.time() - 10  # settled
    for path in final.rglob("*"):
        os.utime(path, (old, old))
    return final


def info(store: Path) -> dict:
    return StoreReader(store).info()


def test_watch_once_bad_files_idempotent_and_rotation(tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 10, seed=0)
    broken = write_step(run, 200, 10, seed=1)
    (broken / "samples" / "00010.png").write_bytes(b"")                              # zero-byte
    good = (broken / "samples" / "00000.png").read_bytes()
    (broken / "samples" / "00011.png").write_bytes(good[: len(good) // 2])          # truncated
    (broken / "samples" / "00012.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)  # corrupt
    (broken / "samples" / "00013.png").write_text("not an image at all")            # non-image
    old = time.time() - 10
    for path in broken.rglob("*"):
        os.utime(path, (old, old))

    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    first = info(store)
    assert first["rows"] == 20 and first["steps"] == [100, 200] and first["warnings"] == 4
    reasons = StoreReader(store).warnings()
    assert sorted(Path(p).name for p in reasons["path"]) == ["00010.png", "00011.png", "00012.png", "00013.png"]
    assert all(len(r) > 5 for r in reasons["reason"])

    # Idempotent: a second pass adds nothing.
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    assert info(store)["rows"] == 20

    # Rotation: the trainer deletes an old checkpoint; its rows and thumbnails stay.
    thumbs_before = StoreReader(store).samples("thumbnail", slice(0, 10))
    shutil.rmtree(run / "step_000100")
    write_step(run, 300, 10, seed=2)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    after = info(store)
    assert after["rows"] == 30 and after["steps"] == [100, 200, 300]
    np.testing.assert_array_equal(StoreReader(store).samples("thumbnail", slice(0, 10)), thumbs_before)
    assert thumbs_before.std() > 10  # real thumbnails, not fill values

    capsys.readouterr()
    assert main(["info", str(store), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"rows", "checkpoints", "steps", "encoder", "dim", "kinds", "layout_rows", "alerts"} <= set(printed)
    assert printed["kinds"] == {"generated": 30, "real": 0, "holdout": 0}


def test_grid_rewritten_in_place_is_reingested_and_old_rows_superseded(tmp_path):
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "dcgan", tmp_path / "s.zarr"
    run.mkdir()
    rng = np.random.default_rng(0)
    grid = run / "fake_samples_epoch_003.png"
    save_torchvision_grid(smooth_images(rng, 64, 32), grid)
    os.utime(grid, (time.time() - 10,) * 2)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    assert info(store)["rows"] == 64
    save_torchvision_grid(smooth_images(rng, 64, 32), grid)  # DCGAN rewrites the epoch grid
    os.utime(grid, (time.time() - 10,) * 2)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    reader = StoreReader(store)
    assert reader.n_rows == 128 and reader.info()["current_rows"] == 64
    assert reader.current_rows().tolist() == [False] * 64 + [True] * 64
    assert reader.samples("instance", slice(64, 128)).tolist() == list(range(64))


def test_a_rewrite_cut_short_keeps_the_earlier_version_current_until_the_file_is_written_again(tmp_path, capsys):
    """A trainer killed (or out of disk) halfway through rewriting its grid left a file no one can
    read: its new version, every file skipped, superseded the 64 good rows with none, for good."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "dcgan", tmp_path / "s.zarr"
    run.mkdir()
    rng = np.random.default_rng(0)
    grid = run / "fake_samples_epoch_001.png"
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]
    save_torchvision_grid(smooth_images(rng, 64, 32), grid)
    assert main(argv) == 0
    whole = grid.read_bytes()
    grid.write_bytes(whole[:len(whole) // 2])  # the rewrite cut short
    capsys.readouterr()
    for _ in range(2):  # the next run says it again: nothing was stored for the torn version
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert "no file of its new version could be read (1 file skipped, each named above): the earlier " \
               "version's 64 samples stay current until it is written again" in err
        reader = StoreReader(store)
        assert reader.n_checkpoints == 1 and reader.info()["current_rows"] == 64
    save_torchvision_grid(smooth_images(rng, 64, 32), grid)  # written again, whole
    assert main(argv) == 0
    reader = StoreReader(store)
    assert reader.n_rows == 128 and reader.current_rows().tolist() == [False] * 64 + [True] * 64


def test_a_rewrite_whose_samples_all_diverged_is_the_new_version(tmp_path, capsys):
    """A file read whole whose samples are all NaN is the run's own output, no torn rewrite: it
    kept the healthy earlier samples current, and the map showed them (round AZ)."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    run.mkdir()
    samples = run / "samples_epoch_001.npy"
    np.save(samples, np.random.default_rng(0).random((16, 3, 8, 8), dtype=np.float32))
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]
    assert main(argv) == 0
    np.save(samples, np.full((16, 3, 8, 8), np.nan, np.float32))
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "a diverged generator?" in err and "stay current" not in err
    reader = StoreReader(store)
    assert reader.n_checkpoints == 2 and reader.info()["current_rows"] == 0


def test_references_and_labels_and_real_open_clip_path(tmp_path):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 10, 6, seed=0)
    for kind, seed in (("train", 3), ("val", 4)):
        for label in ("cat", "dog"):
            folder = tmp_path / kind / label
            folder.mkdir(parents=True)
            rng = np.random.default_rng(seed)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{label}{i}.jpg")
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", TINY_CLIP,
            "--real", str(tmp_path / "train"), "--holdout", str(tmp_path / "val")]
    assert main(argv) == 0
    summary = info(store)
    assert summary["kinds"] == {"generated": 6, "real": 6, "holdout": 6}
    assert summary["encoder"].startswith("clip:evowatch-tiny") and summary["dim"] == 64
    reader = StoreReader(store)
    kinds = reader.samples("kind")
    labels = np.array(reader.labels)[reader.samples("label")[kinds == 1]]
    assert sorted(labels.tolist()) == ["cat"] * 3 + ["dog"] * 3
    emb = reader.samples("embedding").astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=2e-3)
    assert main(argv) == 0 and info(store)["rows"] == 18  # references are ingested once


def test_other_encoder_on_same_store_is_one_line_error(tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 1, 3, seed=0)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels:8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pixels:16" in err[0] and "--encoder" in err[0]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}


def _processes_using(store: Path) -> list[int]:
    """Live processes whose command line names ``store`` (a watcher and its forked workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(store).encode() in (proc / "cmdline").read_bytes() \
                    and (proc / "stat").read_text().split()[2] != "Z":
                found.append(int(proc.name))
        except OSError:
            pass
    return found


@pytest.mark.slow
@pytest.mark.parametrize("writer_process", ["0", "1"])  # the store written here, or by its own process
def test_kill_9_during_watch_then_restart(tmp_path, writer_process):
    from engine.pipeline import WRITER_PROCESS_ENV

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    n_ckpt, per = 40, 256  # many commit groups, so the kill lands between commits
    for step in range(n_ckpt):
        write_step(run, step * 10, per, seed=step, size=32)
    proc = subprocess.Popen(_cli("watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--workers", "1"),
                            env={**_env(tmp_path), WRITER_PROCESS_ENV: writer_process}, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (store / "zarr.json").exists() and StoreReader(store).n_checkpoints >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = StoreReader(store).n_checkpoints
    assert 1 <= killed_at < n_ckpt, "the kill should land mid-ingest"
    deadline = time.time() + 20  # its decode workers notice (their next send fails) and exit
    while _processes_using(store) and time.time() < deadline:
        time.sleep(0.1)
    assert not _processes_using(store), "decode workers or the store's writer process outlived the killed watcher"
    assert subprocess.run(_cli("watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"),
                          env=_env(tmp_path), capture_output=True).returncode == 0
    reader = StoreReader(store)
    ckpt = reader.checkpoints()
    assert reader.n_rows == n_ckpt * per
    assert sorted(ckpt["step"].tolist()) == [s * 10 for s in range(n_ckpt)]          # none lost, none repeated
    assert np.array_equal(np.diff(ckpt["row_start"]), np.full(n_ckpt - 1, per))
    steps = reader.samples("step")
    assert all((steps == s * 10).sum() == per for s in range(n_ckpt))
    np.testing.assert_array_equal(reader.samples("instance"), np.tile(np.arange(per), n_ckpt))


def _stop(proc: subprocess.Popen, signum: int) -> str:
    """Send a live watch the signal and return its stderr; kill it if it does not stop (no orphans)."""
    proc.send_signal(signum)
    try:
        return proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
            deadline = time.time() + 30
            while "watching " not in caplog.text and time.time() < deadline:  # its first pass done
                time.sleep(0.1)
            write_step(old, 200, 2, seed=2)
            for path in (old / "step_000200").rglob("*"):
                os.utime(path)  # written just now: settling
            while not watcher._settling and time.time() < deadline:
                time.sleep(0.1)
            seen = [c.source for c in watcher._settling]
            if how.startswith("link"):
                link.unlink()
                link.symlink_to(new)
            else:
                shutil.rmtree(old)
                write_step(old, 100, 2, seed=1)
            while "the run directory was replaced" not in caplog.text and time.time() < deadline:
                time.sleep(0.1)
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


def test_live_watch_picks_up_new_checkpoints_and_stops_cleanly_on_ctrl_c(tmp_path):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 5, seed=0)
    proc = subprocess.Popen(_cli("watch", str(run), "--store", str(store), "--encoder", "pixels", "--settle", "0.5"),
                            env=_env(tmp_path), stderr=subprocess.PIPE, text=True)
    try:
        def wait_rows(n: int, timeout: float = 30) -> None:
            deadline = time.time() + timeout
            while time.time() < deadline:
                if (store / "zarr.json").exists() and StoreReader(store).n_rows >= n:
                    return
                time.sleep(0.1)
            raise AssertionError(f"store never reached {n} rows")

        wait_rows(5)
        write_step(run, 200, 5, seed=1)               # renamed into place: taken at once
        wait_rows(10)
        write_step(run, 300, 5, seed=2, rename=False)  # written in place: taken once settled
        wait_rows(15)
        # A half-written file: the checkpoint waits until it settles, then the broken file is a warning.
        slow = run / "step_000400" / "samples"
        slow.mkdir(parents=True)
        rng = np.random.default_rng(5)
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(slow / "00000.png")
        with open(slow / "00001.png", "wb") as handle:
            handle.write(b"\x89PNG\r\n\x1a\n")
            handle.flush()
            time.sleep(0.2)
            assert StoreReader(store).n_rows == 15   # not ingested while being written
        wait_rows(16)
    finally:
        err = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0, err
    reader = StoreReader(store)
    assert reader.info()["steps"] == [100, 200, 300, 400] and reader.n_warnings == 1


# ------------------------------------------------------------------ decode worker processes
def _ingest_run(run: Path, store_path: Path, workers: int, batch_size: int | None = None) -> list:
    from engine.discovery.identity import content_hash
    from engine.discovery.options import DiscoveryOptions
    from engine.discovery.scan import scan_run
    from engine.encoders import make_encoder
    from engine.pipeline import ingest
    from engine.session import encoder_record
    from stores.zarr_store import StoreWriter

    options, encoder = DiscoveryOptions(), make_encoder("pixels", batch_size=batch_size)
    jobs = [(c, content_hash(c)) for c in scan_run(run, options)]
    with StoreWriter(store_path, encoder_record(encoder)) as store:
        return [r.checkpoint.step for r in ingest(store, jobs, encoder, options, workers=workers)]


def test_a_checkpoint_changed_while_hashed_is_named_or_read_again(tmp_path, capsys, monkeypatch):
    """Round BE's fault campaign: a checkpoint deleted after the scan found it, while the watch
    hashed it (rotation), was dropped without a word; one that lost a file then was not read at
    all by `--once` (nothing said either). Gone: one line, as when deleted while decoded;
    changed: looked at again, as a checkpoint still being written is."""
    import engine.watch

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 50, 3, seed=50)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    capsys.readouterr()
    for step in (100, 200, 300):
        write_step(run, step, 3, seed=step)
    real = engine.watch.file_digests

    def rotated(checkpoint):
        if checkpoint.source == "step_000050":  # stored already: its rotation is no news
            shutil.rmtree(run / "step_000050", ignore_errors=True)
        if checkpoint.source == "step_000200" and (run / "step_000200").exists():
            shutil.rmtree(run / "step_000200")
        if checkpoint.source == "step_000300" and (gone := run / "step_000300" / "samples" / "00002.png").exists():
            gone.unlink()
        return real(checkpoint)

    monkeypatch.setattr(engine.watch, "file_digests", rotated)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    err = capsys.readouterr().err
    assert err.count("step_000200 was deleted while being read; nothing stored for it") == 1 and "step_000050" not in err
    assert not (run / "step_000050").exists()
    ckpt = StoreReader(store).checkpoints()
    assert ckpt["step"].tolist() == [50, 100, 300] and (ckpt["row_stop"] - ckpt["row_start"]).tolist() == [3, 3, 2]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_checkpoint_folder_replaced_by_a_file_while_read_is_as_deleted(tmp_path, capsys, monkeypatch, workers):
    """Round BE's fault campaign: a checkpoint folder replaced by a file (``step_000200``, a
    trainer's archive of it) while the watch hashed or decoded it stopped the watch, "error:
    .../step_000200/00000.png: Not a directory" (NotADirectoryError, not FileNotFoundError)."""
    import engine.pipeline
    import engine.watch

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200, 300):
        write_step(run, step, 3, seed=step)
    replace = {"step_000200": "hashed", "step_000300": "decoded"}

    def replaced(name: str, real: Callable) -> Callable:
        def read(checkpoint, *args, **kwargs):
            folder = run / checkpoint.source
            if replace.get(checkpoint.source) == name and folder.is_dir():
                shutil.rmtree(folder)
                folder.write_bytes(b"an archive of the folder")
            return real(checkpoint, *args, **kwargs)
        return read

    monkeypatch.setattr(engine.watch, "file_digests", replaced("hashed", engine.watch.file_digests))
    monkeypatch.setattr(engine.watch, "ingest", lambda store, jobs, *a, **k: engine.pipeline.ingest(
        store, [(replaced("decoded", lambda c: c)(c), h) for c, h in jobs], *a, **k))
    args = ["--once", "--settle", "0", "--encoder", "pixels", "--workers", str(workers)]
    assert main(["watch", str(run), "--store", str(store), *args]) == 0
    err = capsys.readouterr().err
    assert [err.count(f"step_000{s}00 was deleted while being read; nothing stored for it") for s in (2, 3)] == [1, 1], err
    assert StoreReader(store).checkpoints()["step"].tolist() == [100]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_checkpoint_deleted_while_being_read_is_not_stored(tmp_path, caplog, workers):
    """Rotation deletes a checkpoint between the scan and its reading: one line says so and
    nothing is stored for it (not a step of 0 samples with every file a warning); a file
    gone from a checkpoint that is still there is a warning as before."""
    from engine.discovery.identity import content_hash
    from engine.discovery.options import DiscoveryOptions
    from engine.discovery.scan import scan_run
    from engine.encoders import make_encoder
    from engine.pipeline import ingest
    from engine.session import encoder_record
    from stores.zarr_store import StoreWriter

    run = tmp_path / "run"
    for step in (100, 200, 300, 400):
        write_step(run, step, 3 if step < 400 else 12, seed=step)
    options, encoder = DiscoveryOptions(), make_encoder("pixels")
    jobs = [(c, content_hash(c)) for c in scan_run(run, options)]
    shutil.rmtree(run / "step_000200")
    (run / "step_000300" / "samples" / "00001.png").unlink()
    for i in range(2, 12):  # a folder emptied while read: one line, not one per file
        (run / "step_000400" / "samples" / f"{i:05d}.png").unlink()
    with caplog.at_level("INFO"), StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store:
        results = [(r.checkpoint.step, r.rows, r.skipped) for r in ingest(store, jobs, encoder, options, workers=workers)]
    assert results == [(100, 3, 0), (300, 2, 1), (400, 2, 10)]
    assert info(tmp_path / "s.zarr")["steps"] == [100, 300, 400] and info(tmp_path / "s.zarr")["warnings"] == 11
    assert caplog.text.count("step_000200 was deleted while being read; nothing stored for it") == 1
    assert "step_000200/samples" not in caplog.text and "00001.png: vanished before it could be read" in caplog.text
    assert ("step_000400: 10 files vanished before they could be read (step_000400/samples/00002.png, "
            "step_000400/samples/00003.png, ...): stored without them") in caplog.text
    assert "00004.png" not in caplog.text


@pytest.mark.parametrize("workers", [0, 2])
def test_a_checkpoint_deleted_after_some_of_its_files_were_read_is_not_stored(tmp_path, caplog, monkeypatch, workers):
    """Rotation deletes a checkpoint folder while its files are being read: the files read
    before were stored as the step (3 of 8 samples, 5 warnings) and its low diversity raised a
    collapse alert."""
    import engine.decode.samples

    run = tmp_path / "run"
    for step, n in ((100, 4), (200, 8), (300, 4)):
        write_step(run, step, n, seed=step)
    load_image = engine.decode.samples.load_image

    def rotating(path: Path, *args) -> np.ndarray:
        image = load_image(path, *args)
        if path.name == "00002.png" and "step_000200" in str(path):
            shutil.rmtree(run / "step_000200")  # the trainer's rotation, after three of its files
        return image

    monkeypatch.setattr(engine.decode.samples, "load_image", rotating)
    with caplog.at_level("INFO"):
        assert _ingest_run(run, tmp_path / "s.zarr", workers=workers) == [100, 300]
    assert info(tmp_path / "s.zarr")["rows"] == 8 and info(tmp_path / "s.zarr")["warnings"] == 0
    assert "step_000200 was deleted while being read; nothing stored for it" in caplog.text


def test_decode_processes_keep_job_order_and_match_in_thread_decoding(tmp_path):
    run = tmp_path / "run"
    for step, n in zip(range(0, 70, 10), (3, 9, 1, 6, 4, 8, 2)):  # uneven sizes: workers finish out of order
        write_step(run, step, n, seed=step)
    assert _ingest_run(run, tmp_path / "threads.zarr", workers=0) == list(range(0, 70, 10))
    assert _ingest_run(run, tmp_path / "procs.zarr", workers=3) == list(range(0, 70, 10))
    a, b = StoreReader(tmp_path / "threads.zarr"), StoreReader(tmp_path / "procs.zarr")
    assert a.n_rows == b.n_rows == 33
    for name in ("embedding", "step", "instance", "path", "thumbnail"):
        np.testing.assert_array_equal(a.samples(name), b.samples(name))


def test_shared_slots_are_reused_in_order_for_checkpoints_of_many_batches(tmp_path):
    """Batches of 4 through each worker's 3 shared slots: every slot is filled many times,
    and every row still matches in-thread decoding (a slot reused too early would not)."""
    from engine.slots import SLOTS

    run = tmp_path / "run"
    for step, n in zip((5, 10, 15, 20), (30, 7, 25, 13)):
        write_step(run, step, n, seed=step)
    assert 30 // 4 > SLOTS
    assert _ingest_run(run, tmp_path / "threads.zarr", workers=0, batch_size=4) == [5, 10, 15, 20]
    assert _ingest_run(run, tmp_path / "procs.zarr", workers=2, batch_size=4) == [5, 10, 15, 20]
    a, b = StoreReader(tmp_path / "threads.zarr"), StoreReader(tmp_path / "procs.zarr")
    assert a.n_rows == b.n_rows == 75
    for name in ("embedding", "instance", "path", "thumbnail"):
        np.testing.assert_array_equal(a.samples(name), b.samples(name))


def test_a_large_folder_is_decoded_in_parts_by_all_workers_as_one_checkpoint(tmp_path, monkeypatch):
    """A reference set of 300 images (two label folders, numbered names) in parts of ~64
    files, spread over three worker processes: one checkpoint, rows in file order, labels and
    instance ids from the whole folder, exactly as decoded in one thread; one broken file
    is one warning."""
    import engine.decode_workers
    from engine.decode_workers import split_parts
    from engine.discovery.identity import content_hash
    from engine.discovery.options import DiscoveryOptions
    from engine.discovery.scan import scan_reference
    from engine.encoders import make_encoder
    from engine.pipeline import ingest
    from engine.session import encoder_record
    from stores.zarr_store import StoreWriter

    monkeypatch.setattr(engine.decode_workers, "PART_FILES", 64)
    rng = np.random.default_rng(0)
    for label, first in (("cat", 0), ("dog", 150)):
        (tmp_path / "train" / label).mkdir(parents=True)
        for i in range(first, first + 150):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "train" / label / f"{i:04d}.png")
    (tmp_path / "train" / "dog" / "0200.png").write_bytes(b"not a png")
    options, encoder = DiscoveryOptions(), make_encoder("pixels", batch_size=16)
    reference = scan_reference(tmp_path / "train", "real", options)
    assert [(p.lo, p.hi, p.first, p.last) for _, p in split_parts([(reference, "")], options)] == [
        (0, 75, True, False), (75, 150, False, False), (150, 225, False, False), (225, 300, False, True)]
    readers = []
    for workers in (0, 3):
        store_path = tmp_path / f"w{workers}.zarr"
        with StoreWriter(store_path, encoder_record(encoder)) as store:
            results = list(ingest(store, [(reference, content_hash(reference))], encoder, options, workers=workers))
        assert [(r.checkpoint, r.rows, r.skipped) for r in results] == [(reference, 299, 1)]
        readers.append(StoreReader(store_path))
    a, b = readers
    assert a.n_rows == b.n_rows == 299 and b.n_warnings == 1 and len(b.checkpoints()["step"]) == 1
    for name in ("embedding", "instance", "label", "path", "thumbnail"):
        np.testing.assert_array_equal(a.samples(name), b.samples(name))
    assert b.samples("instance")[[0, 298]].tolist() == [0, 299]


def test_a_decode_worker_that_dies_is_one_clear_error_and_earlier_checkpoints_stay(tmp_path, monkeypatch):
    import engine.decode.samples

    run = tmp_path / "run"
    for step in (10, 20, 30):
        write_step(run, step, 4, seed=step)
    real = engine.decode.samples._grid_or_image

    def dies_on_step_30(path, *args):  # inherited by the forked worker
        if "step_000030" in str(path):
            os._exit(3)
        return real(path, *args)

    monkeypatch.setattr(engine.decode.samples, "_grid_or_image", dies_on_step_30)
    with pytest.raises(EvowatchError, match=r"decode worker process exited \(code 3\); checkpoints from step_0000[23]0 on"):
        _ingest_run(run, tmp_path / "s.zarr", workers=1)
    reader = StoreReader(tmp_path / "s.zarr")
    steps = reader.checkpoints()["step"].tolist()  # the worker prepares ahead: step 20 may or may not have arrived
    assert steps in ([10], [10, 20]) and reader.n_rows == 4 * len(steps)


def test_the_encoder_takes_waiting_checkpoints_together_and_keeps_their_order():
    """Small checkpoints already queued go to the encoder in one call, up to its batch size;
    every batch gets its own rows back, in order, between its checkpoint's markers."""
    import queue
    import threading

    from engine.batches import END, Done, PreparedBatch, Start, StoreColumns
    from engine.pipeline import _Encoded, _encode

    class Recording:
        def __init__(self, batch_size):
            self.batch_size, self.calls = batch_size, []

        def encode_pixels(self, parts):  # one call, the batches it was given as parts
            pixels = np.concatenate(parts)
            self.calls.append(len(pixels))
            return pixels.reshape(len(pixels), -1)[:, :2].astype(np.float32)  # rows identify the sample

    def batch(first, n):
        pixels = np.arange(first, first + n, dtype=np.uint8)[:, None, None, None].repeat(2, axis=1)
        return PreparedBatch(pixels, StoreColumns(np.zeros((n, 1, 1, 3), np.uint8), [0] * n, [None] * n, [""] * n, None))

    def run(batch_size):
        inbox, outbox, encoder = queue.Queue(), queue.Queue(), Recording(batch_size)
        for k, (first, n) in enumerate(((0, 3), (3, 5), (8, 2))):
            for item in (Start(k, ""), batch(first, n), Done(k)):
                inbox.put(item)
        inbox.put(END)
        _encode(encoder, inbox, outbox, threading.Event())
        items = []
        while (got := outbox.get()) is not END:
            assert isinstance(got, list)  # one entry per encoder call
            items += got
        return encoder.calls, items

    calls, items = run(batch_size=256)
    assert calls == [10]  # all three waiting checkpoints in one call
    assert [type(x).__name__ for x in items] == ["Start", "_Encoded", "Done"] * 3
    encoded = [x for x in items if isinstance(x, _Encoded)]
    assert [x.vectors[:, 0].tolist() for x in encoded] == [[0, 1, 2], [3, 4, 5, 6, 7], [8, 9]]
    assert run(batch_size=4)[0] == [8, 2]  # a call ends once the batch size is reached


def test_a_batch_is_cut_once_its_decoded_images_are_large(monkeypatch):
    """A producer keeps a few batches in hand: 1,024 decoded 768 x 768 samples held per batch
    took a decode worker past 1 GB. A batch now ends at BATCH_IMAGE_BYTES, every sample kept."""
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    from engine import batches
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.records import Checkpoint, Sample

    image_bytes = 256 * 256 * 3
    monkeypatch.setattr(batches, "BATCH_IMAGE_BYTES", 5 * image_bytes)

    def samples(checkpoint, options):
        rng = np.random.default_rng(0)
        for i in range(23):
            yield Sample(image=rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), instance=i, path=f"{i}.png")

    pixels = make_encoder("pixels")
    prep = batches.Preparation(DiscoveryOptions(), pixels.preprocessor, pixels.batch_size, 16)
    with ThreadPoolExecutor(2) as pool:
        stream = batches.messages([(Checkpoint(1, "step_1", ()), "hash", None)], prep, pool, threading.Event(), samples)
        prepared = [item.result() for item in stream if isinstance(item, Future)]
    assert [len(batch.pixels) for batch in prepared] == [5, 5, 5, 5, 3]
    assert sum((batch.columns.instances for batch in prepared), []) == list(range(23))


def test_the_encoder_runs_a_group_commit_ahead_of_the_store():
    """While the store is busy (a group commit), the encoder goes on until ENCODED_AHEAD_ROWS
    rows wait for it, however small the checkpoints: its queue counts calls, not items."""
    import queue
    import threading

    from engine.batches import END, Done, PreparedBatch, Start, StoreColumns
    from engine.pipeline import ENCODED_AHEAD_ROWS, _encode, encoded_queue

    class Counting:
        batch_size, calls = 64, 0

        def encode_pixels(self, parts):
            self.calls += 1
            return np.zeros((sum(len(p) for p in parts), 2), np.float32)

    encoder, inbox = Counting(), queue.Queue()
    n = ENCODED_AHEAD_ROWS // encoder.batch_size - 2  # what fits, with the last Done and END
    for k in range(n):
        columns = StoreColumns(np.zeros((64, 1, 1, 3), np.uint8), [0] * 64, [None] * 64, [""] * 64, None)
        for item in (Start(k, ""), PreparedBatch(np.zeros((64, 3, 2, 2), np.uint8), columns), Done(k)):
            inbox.put(item)
    inbox.put(END)
    outbox = encoded_queue(encoder)
    thread = threading.Thread(target=_encode, args=(encoder, inbox, outbox, threading.Event()), daemon=True)
    thread.start()
    thread.join(timeout=30)  # nobody reads the outbox: the store is committing
    assert not thread.is_alive() and encoder.calls == n
    assert outbox.qsize() == n + 2


def test_default_workers_count_the_cores_this_process_may_use(monkeypatch):
    """A container pinned to 2 of a machine's 64 cores gets 2 decode processes, not 8."""
    from engine.pipeline import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert default_workers() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert default_workers() == 8


def test_a_store_copied_back_while_a_watch_ends_empty_is_kept(tmp_path):
    """Round AP: a watch waiting for its first checkpoint, its store moved away and copied back
    (as the "deleted or moved while being written" line asks): the empty store this watch had
    made was removed at its end, and with it the copy put back."""
    from engine.cli import build_parser
    from engine.session import open_session

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    run.mkdir()
    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout",
                                      "--no-metrics", "--workers", "0"])
    with open_session(args):
        store.rename(tmp_path / "moved.zarr")
        shutil.copytree(tmp_path / "moved.zarr", store)
    assert StoreReader(store).n_checkpoints == 0  # the copy is still there
    shutil.rmtree(store)
    with open_session(args):
        pass
    assert not store.exists()  # an empty store of its own: removed as before


def test_a_second_ctrl_c_while_an_empty_store_is_removed_leaves_no_half_store(tmp_path, monkeypatch):
    """Round AV: Ctrl-C twice early in a first watch (before a checkpoint was committed) stopped
    the removal of its empty store half-way: the store's root metadata stayed without some of
    its arrays, and the same command failed on it ever after ("missing array metadata")."""
    from engine.cli import build_parser
    from engine.session import open_session

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    run.mkdir()
    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout",
                                      "--no-metrics", "--workers", "0"])
    rmtree = shutil.rmtree

    def second_ctrl_c(path, ignore_errors=False):  # a part removed, then stopped
        rmtree(Path(path) / "warnings")
        raise KeyboardInterrupt

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        with open_session(args):
            patched.setattr(shutil, "rmtree", second_ctrl_c)
            raise KeyboardInterrupt  # the first Ctrl-C
    assert not store.exists()  # whole or not at all
    with open_session(args):  # the same command again
        assert StoreReader(store).n_checkpoints == 0
    assert not store.exists() and not list(tmp_path.glob(".s.zarr.*"))  # the part left aside is cleared too


def test_an_empty_store_whose_write_a_second_ctrl_c_let_go_is_kept(tmp_path):
    """Round AV: a first commit let go by a second Ctrl-C (a slow file system) goes on in
    zarr's thread; the store, empty when the watch ended, was removed, and the commit point
    landing after made its zarr.json again alone: the same command failed on it ever after."""
    from engine.cli import build_parser
    from engine.session import open_session
    from stores.uninterrupted import uninterrupted

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    run.mkdir()
    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout",
                                      "--no-metrics", "--workers", "0"])
    with pytest.raises(KeyboardInterrupt), open_session(args):
        with uninterrupted:  # a write under way
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # asked twice: let go
    assert StoreReader(store).n_checkpoints == 0  # kept for the write still to land
    with open_session(args) as watcher:  # and used by the same command again
        assert watcher.store.n_checkpoints == 0


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


def test_once_waits_for_checkpoints_just_written_and_names_those_still_changing(tmp_path, capsys, monkeypatch):
    """`--once` right after a copy or a trainer's write: fresh checkpoints get their --settle
    seconds of quiet and are ingested; one still being written is named, not dropped silently."""
    import threading

    from engine import watch
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

    real_scan = watch.scan_run
    monkeypatch.setattr(watch, "scan_run", scan_just_written)
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


def test_a_steps_metrics_cover_its_current_samples_a_rewrite_and_every_checkpoint_at_that_step(tmp_path):
    """DCGAN rewrites ``fake_samples_epoch_003.png`` during epoch 3: the step is measured again
    on the new grid, not left with the first version's figures. Several checkpoints at one
    step (lucidrains' ``12.png`` and ``12-ema.png``) are measured together."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    grid = run / "fake_samples_epoch_003.png"
    save_torchvision_grid(smooth_images(rng, 16, 16), grid, nrow=4)
    old = time.time() - 10
    os.utime(grid, (old, old))
    argv = ["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]
    assert main(argv) == 0
    diverse = StoreReader(store).step_metrics()
    assert diverse["step"].tolist() == [3] and diverse["n_generated"].tolist() == [16]

    save_torchvision_grid(np.repeat(smooth_images(rng, 1, 16), 16, axis=0), grid, nrow=4)  # collapsed
    os.utime(grid, (old + 1, old + 1))
    assert main(argv) == 0
    collapsed = StoreReader(store).step_metrics()
    assert collapsed["step"].tolist() == [3] and collapsed["vendi"][0] < 0.5 * diverse["vendi"][0]

    save_torchvision_grid(smooth_images(rng, 16, 16), run / "fake_samples_epoch_003-ema.png", nrow=4)
    os.utime(run / "fake_samples_epoch_003-ema.png", (old, old))
    assert main(argv) == 0
    both = StoreReader(store).step_metrics()
    assert both["step"].tolist() == [3] and both["n_generated"].tolist() == [32]
    assert collapsed["vendi"][0] < both["vendi"][0]


def test_reading_a_run_again_with_another_grid_supersedes_the_rows_read_before(tmp_path):
    """A wrong --grid, then the right one (or none): the checkpoints are read again, not skipped."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    for epoch in (1, 2):
        save_torchvision_grid(smooth_images(rng, 16, 16), run / f"fake_samples_epoch_{epoch:03d}.png", nrow=4)
    old = time.time() - 10
    for path in run.iterdir():
        os.utime(path, (old, old))
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(watch + ["--grid", "2x2"]) == 0
    assert info(store)["rows"] == 8
    assert main(watch) == 0  # geometry detected: 4x4 tiles of 16 px
    reader = StoreReader(store)
    assert reader.n_rows == 8 + 32 and int(reader.current_rows().sum()) == 32
    assert sorted(reader.samples("instance")[reader.current_rows()].tolist()) == sorted(list(range(16)) * 2)
    assert main(watch) == 0 and StoreReader(store).n_rows == 40  # read the same way: nothing new


def test_a_checkpoint_read_again_when_the_run_grows_leaves_one_current_version(tmp_path):
    """``step_500/grid_500.png`` alone is step 500's checkpoint (it read as a run holding one
    grid at step 500 until round AN), and it stays one once ``step_1000/`` appears: not
    doubled, no reading superseded."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)

    def grid(step):
        save_torchvision_grid(smooth_images(rng, 16, 16), run / f"step_{step}" / f"grid_{step}.png", nrow=4)
        old = time.time() - 10
        for path in run.rglob("*"):
            os.utime(path, (old, old))

    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    grid(500)
    assert main(watch) == 0 and info(store)["steps"] == [500]
    grid(1000)
    assert main(watch) == 0
    reader = StoreReader(store)
    current = reader.current_rows()
    assert reader.n_rows == 32 and int(current.sum()) == 32 and info(store)["steps"] == [500, 1000]
    assert sorted(set(reader.checkpoints()["source"][reader.samples("checkpoint")[current]])) == ["step_1000", "step_500"]
    assert main(watch) == 0 and StoreReader(store).n_rows == 32


def test_a_flat_folder_of_samples_named_by_step_and_index_is_ingested_per_step(tmp_path):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    (run / "samples").mkdir(parents=True)
    for step in (1000, 2000, 3000):
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(run / "samples" / f"step{step}_{i:02d}.png")
    old = time.time() - 10
    for path in run.rglob("*"):
        os.utime(path, (old, old))
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--no-metrics"]) == 0
    reader = StoreReader(store)
    assert info(store)["steps"] == [1000, 2000, 3000] and reader.n_rows == 12
    assert reader.samples("instance").tolist() == [0, 1, 2, 3] * 3
    assert reader.checkpoints()["source"].tolist() == [f"samples/step{s}_*.png" for s in (1000, 2000, 3000)]



def test_a_flat_folders_first_file_read_alone_is_superseded_once_its_step_fills(tmp_path):
    """A slow sampler: ``step1000_00.png`` alone is a checkpoint of its own until more come."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    (run / "samples").mkdir(parents=True)
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]

    def sample(step, i):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(run / "samples" / f"step{step}_{i:02d}.png")
        old = time.time() - 10
        for path in run.rglob("*"):
            os.utime(path, (old, old))

    sample(1000, 0)
    assert main(watch) == 0 and StoreReader(store).n_rows == 1
    for i in (1, 2, 3):
        sample(1000, i)
    assert main(watch) == 0
    reader = StoreReader(store)
    assert reader.n_rows == 5 and int(reader.current_rows().sum()) == 4 and info(store)["steps"] == [1000]


def test_a_grid_split_into_far_more_tiles_than_the_runs_others_is_named(tmp_path, capsys):
    """An unpadded grid misread as quarter tiles gave 4x the samples of its neighbours without a word."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for epoch, n in ((1, 16), (2, 16), (3, 16), (4, 64)):
        save_torchvision_grid(smooth_images(np.random.default_rng(epoch), n, 16), run / f"fake_samples_epoch_{epoch:03d}.png",
                              nrow=int(n ** 0.5))
    old = time.time() - 10
    for path in run.iterdir():
        os.utime(path, (old, old))
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--no-metrics"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "grids so far" in line]
    assert warned == ["evowatch: step 4 (fake_samples_epoch_004.png): 64 samples where the series' grids so far had 16: "
                      "if its grid was misread, force it with --grid ROWSxCOLS"]


def test_a_grid_read_as_one_sample_is_named_and_so_is_a_series_of_single_images(tmp_path, capsys):
    """LynnHo's blurry 10x10 JPEG grids: a step whose grid was not found was stored as one
    sample without a word (only grids split into more tiles were named); a series read as one
    sample per image says so once, with the way to force a grid."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images, write_png

    run = tmp_path / "run"
    for epoch in (1, 2, 3):
        save_torchvision_grid(smooth_images(np.random.default_rng(epoch), 16, 16), run / "grids" / f"fakes_{epoch:03d}.png",
                              nrow=4)
        write_png(run / "single" / f"sample_{epoch:03d}.png", smooth_images(np.random.default_rng(epoch), 1, 64)[0])
        write_png(run / "folders" / f"step_{epoch}" / "0000.png", smooth_images(np.random.default_rng(epoch), 1, 64)[0])
    write_png(run / "grids" / "fakes_004.png", smooth_images(np.random.default_rng(4), 1, 70)[0])  # no grid found
    old = time.time() - 10
    for path in run.rglob("*.png"):
        os.utime(path, (old, old))
    capsys.readouterr()
    for folder in ("grids", "single", "folders"):  # a folder of one image is no image read as one sample
        assert main(["watch", str(run / folder), "--store", str(tmp_path / f"{folder}.zarr"), "--once", "--settle", "0", "--encoder",
                     "pixels", "--no-layout", "--no-metrics"]) == 0
    err = capsys.readouterr().err
    assert ("evowatch: step 4 (fakes_004.png): 1 sample where the series' grids so far had 16: if its grid was misread, "
            "force it with --grid ROWSxCOLS") in err
    assert err.count("are read as one sample each") == 1
    assert (f"{run / 'single'}: sample_001.png and the images named like it are read as one sample each (no grid "
            "found): if they are grids, force their geometry with --grid ROWSxCOLS") in err


def test_sheets_of_several_sizes_at_each_step_are_no_misread_grids(tmp_path, capsys):
    """StarGAN v2 writes ``{step:06d}_cycle_consistency.jpg``, ``_reference.jpg`` and
    ``_latent_psi_1.0.jpg`` sheets of different sizes at each step: each was compared with the
    others' tile counts and named as misread."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (5000, 10000, 15000):
        for name, n in (("cycle_consistency", 4), ("latent_psi_1.0", 16), ("reference", 4)):
            save_torchvision_grid(smooth_images(np.random.default_rng(step + n), n, 16),
                                  run / "samples" / f"{step:06d}_{name}.png", nrow=int(n ** 0.5))
    old = time.time() - 10
    for path in (run / "samples").iterdir():
        os.utime(path, (old, old))
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--no-metrics"]) == 0
    err = capsys.readouterr().err
    assert "grids so far" not in err and "3 steps have several checkpoints" in err
    assert StoreReader(store).n_rows == 3 * (4 + 16 + 4)


def test_kohya_samples_with_a_seed_for_some_prompts_are_one_step_and_a_lone_first_file_is_superseded(tmp_path):
    """kohya-ss names a prompt's image ``{name}_{steps:06d}_{i:02d}_{time}.png`` and adds
    ``_{seed}`` when the prompt sets one: a step whose prompts differ in that was read as one
    checkpoint per file, steps 0, 1, ... (the prompt index); the step's first file, ingested
    alone while the sampler was still at work, was never superseded (its pattern's time
    matched no file name)."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    (run / "sample").mkdir(parents=True)
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]

    def prompt(steps: int, i: int, seed: str = "") -> None:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(1.7e9 + steps + i))
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            run / "sample" / f"mylora_{steps:06d}_{i:02d}_{stamp}{seed}.png")
        old = time.time() - 10
        for path in run.rglob("*"):
            os.utime(path, (old, old))

    prompt(500, 0)
    assert main(watch) == 0 and StoreReader(store).n_rows == 1
    prompt(500, 1, "_42")
    prompt(500, 2)
    prompt(1000, 0)
    prompt(1000, 1, "_42")
    assert main(watch) == 0
    reader = StoreReader(store)
    assert info(store)["steps"] == [500, 1000] and int(reader.current_rows().sum()) == 5
    current = reader.current_rows()
    assert reader.samples("instance")[current].tolist() == [0, 1, 2, 0, 1]



@pytest.mark.parametrize("trainer", ["SimpleTuner", "EveryDream2"])
def test_samples_named_by_a_step_and_a_prompt_are_one_checkpoint_per_step_labelled_by_prompt(tmp_path, trainer):
    """SimpleTuner's ``validation_images/step_{step}_{shortname}_{i}_{W}x{H}.png`` and
    EveryDream2's ``samples/gs{step:05}-{i}-{prompt}.jpg`` were a checkpoint per file (the
    prompts' digits made EveryDream2's steps up): a step's prompts are one checkpoint, each
    prompt the same instance at every step and its label; a step's first image, taken alone
    while the sampler was still at work, is superseded by the step."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    prompts = ["street 1990s", "a photo of 2 cats", "3 dogs in the snow 4k"]
    folder = run / ("validation_images" if trainer == "SimpleTuner" else "proj-20240514-101233/samples")
    folder.mkdir(parents=True)
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]

    def sample(step: int, i: int) -> None:
        name = (f"step_{step}_{prompts[i].replace(' ', '_')}_0_1024x1024.png" if trainer == "SimpleTuner"
                else f"gs{step:05d}-{i}-{prompts[i]}.jpg")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / name)
        old = time.time() - 10
        for path in run.rglob("*"):
            os.utime(path, (old, old))

    sample(250, 0)
    assert main(watch) == 0 and StoreReader(store).n_rows == 1
    for step in (250, 500):
        for i in range(3):
            if (step, i) != (250, 0):
                sample(step, i)
    assert main(watch) == 0
    reader = StoreReader(store)
    current = reader.current_rows()
    assert info(store)["steps"] == [250, 500] and int(current.sum()) == 6
    labels = [reader.labels[code] for code in reader.samples("label")[current]]
    if trainer == "SimpleTuner":  # numbered in the order of the names ("3_dogs" is a prompt, no index)
        assert reader.samples("instance")[current].tolist() == [0, 1, 2] * 2
        assert labels == ["3_dogs_in_the_snow_4k_0_1024x1024", "a_photo_of_2_cats_0_1024x1024",
                          "street_1990s_0_1024x1024"] * 2
    else:  # numbered by the index the names begin with
        assert reader.samples("instance")[current].tolist() == [0, 1, 2] * 2 and labels == prompts * 2



def test_onetrainers_folder_per_prompt_is_read_as_a_checkpoint_per_step_across_them(tmp_path):
    """OneTrainer writes ``samples/{i} - {prompt}/{time}-training-sample-{step}-{epoch}-{epoch_step}.jpg``:
    each prompt folder was a checkpoint at a step made of the prompt's digits, and the step
    read from a name was the step in the epoch, which starts again each epoch. Its images
    read one by one, before the folders told what they are, are superseded by the steps."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    prompts = ["a photo of 2 cats", "portrait 4k", "3 dogs"]
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    written = iter(range(100))
    start = time.time() - 1000

    def sample(i: int, step: int, epoch: int, epoch_step: int) -> None:
        n = next(written)
        path = (run / "samples" / f"{i} - {prompts[i]}" /
                f"2024-05-14_10-{n:02d}-00-training-sample-{step}-{epoch}-{epoch_step}.jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
        os.utime(path, (start + 5 * n, start + 5 * n))  # a prompt's image every 5 s

    sample(0, 0, 0, 0)
    assert main(watch) == 0
    for step, epoch, epoch_step in ((0, 0, 0), (100, 0, 100), (200, 1, 50)):
        for i in range(3):
            if (i, step) != (0, 0):
                sample(i, step, epoch, epoch_step)
        assert main(watch) == 0
    reader = StoreReader(store)
    current = reader.current_rows()
    assert info(store)["steps"] == [0, 100, 200] and int(current.sum()) == 9
    assert reader.samples("instance")[current].tolist() == [0, 1, 2] * 3
    assert [reader.labels[code] for code in reader.samples("label")[current]] == prompts * 3
    sources = reader.checkpoints()["source"][~reader.checkpoints()["superseded"]].tolist()
    assert sources == [f"samples/{{sample}}/?-training-sample-{name}.jpg" for name in ("0-0-0", "100-0-100", "200-1-50")]


def test_onetrainers_custom_sample_and_no_ema_folders(tmp_path):
    """A sample asked for from OneTrainer's UI goes to ``samples/custom/`` (one image, named
    ``…-training-sample-200-1-80.jpg``): read alone at its epoch step, 80, it took the name of
    step 200's checkpoint and that step's samples were lost. With non-EMA sampling the trainer
    writes ``samples/0 - {prompt} - no-ema/`` beside ``samples/0 - {prompt}/``: two models'
    samples were one checkpoint."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(1)
    start, n = time.time() - 1000, 0
    for step, epoch, epoch_step in ((0, 0, 0), (100, 0, 100), (200, 1, 80)):
        folders = [f"{i} - prompt {i}{variant}" for variant in ("", " - no-ema") for i in range(2)]
        for folder in folders + (["custom"] if step == 200 else []):
            path = run / "samples" / folder / f"2024-05-14_10-{n:02d}-00-training-sample-{step}-{epoch}-{epoch_step}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
            os.utime(path, (start + 5 * n, start + 5 * n))
            n += 1
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--no-metrics"]) == 0
    reader = StoreReader(store)
    checkpoints = reader.checkpoints()
    assert [(int(step), source.split("/")[1]) for step, source in zip(checkpoints["step"], checkpoints["source"])] == [
        (0, "{sample} - no-ema"), (0, "{sample}"), (100, "{sample} - no-ema"), (100, "{sample}"),
        (200, "{sample} - no-ema"), (200, "{sample}")]
    last = reader.samples("checkpoint") == 5
    assert [reader.labels[code] for code in reader.samples("label")[last]] == ["prompt 0", "prompt 1", "custom"]
    assert reader.samples("instance")[last].tolist() == [0, 1, 2]
    no_ema = reader.samples("checkpoint") == 4
    assert [reader.labels[code] for code in reader.samples("label")[no_ema]] == ["prompt 0", "prompt 1"]


def test_a_resumed_watch_uses_the_stores_encoder_and_a_missing_labels_file_is_named(tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 0
    write_step(run, 200, 2, seed=1)
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--no-layout", "--no-metrics"]) == 0  # no --encoder
    assert info(store)["rows"] == 4 and info(store)["encoder"].startswith("pixels")
    # a restart names what the store holds (it said only "watching run", as if nothing were stored)
    assert f"evowatch: {store}: resuming: it holds 1 step (100); only new or changed checkpoints are read" \
        in capsys.readouterr().err.splitlines()
    missing = tmp_path / "nowhere" / "labels.csv"
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--labels", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"evowatch: error: {missing}: --labels file not found; check the path"


def test_an_encoder_of_another_kind_is_refused_before_its_model_is_built(tmp_path, capsys, monkeypatch):
    """A pixels store watched with --encoder clip:... (or another pixels size): one line at
    once, not after loading a model for seconds; a CLIP spec still goes to the identity check."""
    import engine.session

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels:8", "--no-layout"]) == 0
    capsys.readouterr()
    built = []
    monkeypatch.setattr(engine.session, "make_encoder", lambda *a, **k: built.append(a))
    for other in (TINY_CLIP, "pixels:16"):
        assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", other]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"evowatch: error: {store}: written with encoder 'pixels:8' (dim 192), this run uses "
            f"'{engine.session.parse_encoder_spec(other).text()}'; pass --encoder pixels:8 or use another --store"]
    assert not built


def test_a_run_file_that_cannot_be_read_is_named_not_blamed_on_the_store(tmp_path, capsys, monkeypatch):
    """A run's file made unreadable between a scan and its reading stopped the watch on "STORE:
    cannot write there (Permission denied: RUN/step_100/0.png); choose a writable --store"."""
    import errno

    import engine.watch

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    unreadable = write_step(run, 100, 2, seed=0) / "samples" / "00000.png"

    def denied(checkpoint):
        raise PermissionError(errno.EACCES, "Permission denied", str(unreadable))

    monkeypatch.setattr(engine.watch, "file_digests", denied)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"evowatch: error: {unreadable}: Permission denied; fix its permissions and run the same command again")


def test_a_full_disk_is_one_line_naming_the_store_and_the_committed_state_is_kept(tmp_path, capsys, monkeypatch):
    import errno

    from stores.zarr_store import StoreWriter

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 0
    write_step(run, 200, 2, seed=1)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StoreWriter, "write_columns", full)
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--no-layout", "--no-metrics"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"evowatch: error: {store}: no space left on the device (No space left on device); everything "
                       "committed before is kept: free some space and run the same command again to resume")
    fresh = tmp_path / "fresh.zarr"  # nothing committed yet: no store is left behind, and the line says so
    assert main(["watch", str(run), "--store", str(fresh), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"evowatch: error: {fresh}: no space left on the device (No space left on device); nothing was stored yet: "
        "free some space and run the same command again to resume")
    assert not fresh.exists()
    monkeypatch.undo()
    assert info(store)["rows"] == 2
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--no-layout", "--no-metrics"]) == 0
    assert info(store)["rows"] == 4 and info(store)["steps"] == [100, 200]


def test_a_file_size_limit_is_one_line_naming_the_store_and_a_resume_loses_nothing(tmp_path):
    """Round BE's fault campaign: a watch under a file size limit (`ulimit -f`, a batch
    scheduler's RLIMIT_FSIZE) stopped with "error: [Errno 27] File too large", naming neither
    the store nor the fix, as a full disk's line does."""
    import resource

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 4, seed=0)
    watch = _cli("watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                 "--no-layout", "--no-metrics", "--workers", "0")
    assert subprocess.run(watch, env=_env(tmp_path), capture_output=True).returncode == 0
    for step in range(200, 600, 100):
        write_step(run, step, 64, seed=step)
    limit = 64 * 1024  # less than the 256 new thumbnails' chunk; Python ignores SIGXFSZ: the write fails, EFBIG
    limited = subprocess.run(watch, env=_env(tmp_path), capture_output=True, text=True,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert limited.returncode == 2 and limited.stderr.strip().splitlines()[-1] == (
        f"evowatch: error: {store}: a file reached the size limit (File too large); everything committed before is "
        "kept: raise the limit (ulimit -f) and run the same command again to resume"), limited.stderr
    assert subprocess.run(watch, env=_env(tmp_path), capture_output=True).returncode == 0
    reader = StoreReader(store)
    assert reader.n_rows == 4 + 4 * 64 and sorted(reader.checkpoints()["step"].tolist()) == [100, 200, 300, 400, 500]


def test_a_thumbnail_size_for_an_existing_store_is_said_to_be_kept(tmp_path, capsys):
    """--thumbnail-size applies to new stores only: given for an existing one, it was ignored without a word."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(watch + ["--thumbnail-size", "32"]) == 0
    capsys.readouterr()
    assert main(watch + ["--thumbnail-size", "64"]) == 0
    assert (f"{store}: thumbnails stay 32 px, the size the store was made with (--thumbnail-size applies to new stores)"
            in capsys.readouterr().err)
    assert main(watch) == 0 and "thumbnails stay" not in capsys.readouterr().err
    assert StoreReader(store).attrs["thumbnail_size"] == 32


def test_a_reference_set_given_as_another_folder_replaces_the_earlier_one(tmp_path):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    rng = np.random.default_rng(1)
    for name, n in (("real_a", 3), ("real_b", 5)):
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(watch + ["--real", str(tmp_path / "real_a")]) == 0
    assert main(watch + ["--real", str(tmp_path / "real_b")]) == 0
    reader = StoreReader(store)
    current = reader.current_rows()
    assert reader.n_rows == 10 and int(current.sum()) == 7
    assert int((reader.samples("kind")[current] == 1).sum()) == 5  # the real rows now: real_b's


def test_a_reference_set_given_by_another_spelling_of_its_path_is_not_read_again(tmp_path, monkeypatch):
    """Relative, then absolute: the same --real content was ingested again, every step measured
    again and every alert announced (and its --on-alert command run) a second time."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200):
        write_step(run, step, 8, seed=step)
    rng = np.random.default_rng(1)
    (tmp_path / "real").mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "real" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    watch = ["watch", "run", "--store", "s.zarr", "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]
    assert main(watch + ["--real", "real"]) == 0
    before = StoreReader(store)
    assert f"real:{(tmp_path / 'real').as_posix()}" in set(before.checkpoints()["source"])  # findable later
    monkeypatch.chdir(run)
    assert main(["watch", ".", "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--real", str(tmp_path / "real")]) == 0
    after = StoreReader(store)
    assert after.n_rows == before.n_rows == 28
    assert after.metrics_reference == before.metrics_reference


def test_real_without_holdout_says_memorisation_is_not_measured(tmp_path, capsys):
    """Half the samples byte-identical to training images raised nothing and said nothing
    (--probe without --real is named; --real without --holdout was not)."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 8, seed=0)
    rng = np.random.default_rng(1)
    for kind in ("real", "holdout"):
        (tmp_path / kind).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / kind / f"{i}.png")
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]
    assert main(watch + ["--real", str(tmp_path / "real")]) == 0
    assert ("evowatch: no --holdout: the memorisation signals (near-copies calibrated on held-out data) are not "
            "measured; give a folder of real images never trained on") in capsys.readouterr().err.splitlines()
    assert main(watch + ["--real", str(tmp_path / "real"), "--holdout", str(tmp_path / "holdout")]) == 0
    assert "no --holdout" not in capsys.readouterr().err
    held_out_only = watch[:3] + [str(tmp_path / "s2.zarr")] + watch[4:] + ["--holdout", str(tmp_path / "holdout")]
    assert main(held_out_only) == 0
    assert ("evowatch: --holdout without --real: nothing uses it: the memorisation signals (near-copies calibrated "
            "on held-out data) need the training images too; give --real the folder of the training images"
            ) in capsys.readouterr().err.splitlines()


def test_a_reference_set_too_small_to_use_is_named_with_the_signals_it_turns_off(tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    (tmp_path / "hold").mkdir()
    for i in range(3):
        (tmp_path / "hold" / f"{i}.png").write_bytes(b"not an image")
    real = tmp_path / "real"
    real.mkdir()
    rng = np.random.default_rng(2)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(real / f"{i}.png")
    capsys.readouterr()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--real", str(real), "--holdout", str(tmp_path / "hold")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "fewer than 8" in line]
    assert warned == [f"evowatch: --holdout {tmp_path / 'hold'}: 0 readable samples, fewer than 8: the memorisation "
                      "signals (near-copies calibrated on held-out data) are not measured; give it a folder of "
                      "images (hundreds for stable figures)"]


def test_a_later_watch_lays_out_and_measures_what_an_earlier_one_left(tmp_path):
    """Ctrl-C before the first layout/metrics pass, or --no-metrics once: a later watch of the
    finished run, with nothing new to ingest, still computes what is missing."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for k, step in enumerate((100, 200, 300)):
        write_step(run, step, 12, seed=k)
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]
    assert main(watch + ["--no-layout", "--no-metrics"]) == 0
    assert info(store)["layout_rows"] == 0 and not StoreReader(store).step_metrics()
    assert main(watch) == 0
    assert info(store)["layout_rows"] == 36
    assert list(StoreReader(store).step_metrics()["step"]) == [100, 200, 300]


# ------------------------------------------------------------------ the command line's contract
def test_version_a_labels_folder_and_one_step(tmp_path, capsys):
    """Round AF: no --version; `--labels FOLDER` said "file not found" of a folder that exists;
    `info` printed "1 steps"."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"evowatch {version('evowatch')}\n"
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    watch = ["watch", str(run), "--store", str(store), "--encoder", "pixels", "--settle", "0", "--once", "--no-layout"]
    assert main([*watch, "--labels", str(run)]) == 2
    assert capsys.readouterr().err == (f"evowatch: error: {run}: --labels names a folder; give the labels file (CSV or "
                                       "JSON), or leave --labels out for one folder per label\n")
    assert main(watch) == 0 and main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "checkpoints 1; 1 step: 100..100" in out and "metrics     1 step; at step 100" in out, out  # round AV too


def test_info_counts_one_laid_out_row(tmp_path, capsys):
    """Round AW: `info` printed "layout      1 rows" of a store with one sample laid out."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 1, seed=0)
    assert main(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--settle", "0", "--once"]) == 0
    assert info(store)["layout_rows"] == 1
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    assert "layout      1 row\n" in capsys.readouterr().out


def test_info_says_how_to_lay_out_the_rows_not_laid_out(tmp_path, capsys):
    """A watch --no-layout (or one killed before its layout) left "layout      0 rows", and
    export NaN coordinates, without a word of `evowatch layout` (round AY-2)."""
    run, store = tmp_path / "run", tmp_path / "my run.zarr"
    write_step(run, 100, 3, seed=0)
    assert main(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--settle", "0", "--once",
                 "--no-layout"]) == 0
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    assert f"layout      0 of 3 rows: `evowatch layout '{store}'` lays out the rest\n" in capsys.readouterr().out
    assert main(["layout", str(store)]) == 0
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    assert "layout      3 rows\n" in capsys.readouterr().out


def _usage_error(argv: list[str], capsys) -> str:
    """The stderr of a command line argparse refuses: exit 2, and (the contract) one line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.splitlines()) == 1, err
    return err.strip()


def test_a_usage_error_of_any_subcommand_is_one_line_naming_the_argument(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    run = tmp_path / "run"
    run.mkdir()
    watch = ["watch", str(run), "--store", str(tmp_path / "s.zarr")]
    assert main(["watch", str(tmp_path / "absent"), "--store", str(tmp_path / "s.zarr"), "--once", "--settle", "0"]) == 2
    assert capsys.readouterr().err == f"evowatch watch: error: argument RUN_DIR: {tmp_path / 'absent'}: no such directory\n"
    assert not (tmp_path / "s.zarr").exists()
    assert _usage_error(["watch", str(tmp_path / "file.txt"), "--store", "s.zarr"], capsys) == (
        f"evowatch watch: error: argument RUN_DIR: {tmp_path / 'file.txt'}: not a directory")
    assert _usage_error([*watch, "--real", str(tmp_path / "file.txt")], capsys) == (
        f"evowatch watch: error: argument --real: {tmp_path / 'file.txt'}: not a directory")
    assert _usage_error(["watch", str(tmp_path / "file.txt" / "run"), "--store", "s.zarr"], capsys) == (  # round BF:
        f"evowatch watch: error: argument RUN_DIR: {tmp_path / 'file.txt' / 'run'}: {tmp_path / 'file.txt'} is a "
        "file, not a directory; give the run's folder")  # a live watch waited for it for ever
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from stores.zarr_store import StoreWriter

    StoreWriter(tmp_path / "old.zarr", encoder_record(make_encoder("pixels"))).close()  # it said "no checkpoints"
    assert _usage_error(["watch", str(tmp_path / "old.zarr"), "--store", "s.zarr"], capsys) == (
        f"evowatch watch: error: argument RUN_DIR: {tmp_path / 'old.zarr'}: is an evowatch store, not a training run: "
        f"watch the folder the trainer writes its samples to (`evowatch view {tmp_path / 'old.zarr'}` shows this store)")
    assert _usage_error([*watch, "--grid", "8by8"], capsys).startswith(
        "evowatch watch: error: argument --grid: Expected a grid as ROWSxCOLS")
    assert "argument --device: Expected device" in _usage_error([*watch, "--device", "gpu"], capsys)
    # an option mistyped, a pattern that does not compile: the subcommand and the fix, as typed
    assert _usage_error([*watch, "--grids", "4x4"], capsys) == (
        "evowatch watch: error: unrecognized arguments: --grids 4x4 (did you mean --grid?)")
    assert _usage_error(["info", "s.zarr", "--jsn"], capsys) == (
        "evowatch info: error: unrecognized arguments: --jsn (did you mean --json?)")
    assert _usage_error([*watch, "--step-regex", r"iter(\d+"], capsys) == (
        r"evowatch watch: error: argument --step-regex: iter(\d+ is no regular expression (missing ), unterminated "
        r"subpattern at position 4); e.g. 'iter_(\d+)'")
    assert _usage_error([*watch, "--ready-file", "{epoch}.done"], capsys) == (  # a KeyError at the first checkpoint
        "evowatch watch: error: argument --ready-file: '{epoch}.done' cannot be filled in (KeyError: 'epoch'); its "
        "placeholders are {stem}, {name} and {step} (write {{ and }} for braces)")
    # numbers out of range: a ZeroDivisionError traceback (--workers -3), "waiting nans" (--settle
    # nan), an allocation without end (--thumbnail-size 100000), an OverflowError (--port 99999)
    assert _usage_error([*watch, "--workers", "-3"], capsys) == (
        "evowatch watch: error: argument --workers: expected an integer of at least 0, got '-3'")
    assert _usage_error([*watch, "--settle", "nan"], capsys) == (
        "evowatch watch: error: argument --settle: expected a finite number from 0 to 86400, got 'nan'")
    assert _usage_error([*watch, "--settle", "1e12"], capsys) == (  # round AF: an OverflowError traceback
        "evowatch watch: error: argument --settle: expected a finite number from 0 to 86400, got '1e12'")
    assert _usage_error([*watch, "--thumbnail-size", "100000"], capsys) == (
        "evowatch watch: error: argument --thumbnail-size: expected an integer from 8 to 256, got '100000'")
    assert "argument --alignment: expected a finite number" in _usage_error([*watch, "--alignment", "nan"], capsys)
    assert "argument --port: expected an integer from 1 to 65535" in _usage_error(["view", "s.zarr", "--port", "99999"], capsys)
    assert "argument --sampler-seed: expected an integer from 0 to 4294967295" in _usage_error(  # was "Overflow" at
        [*watch, "--sampler", "s.py:f", "--sampler-seed", "99999999999999999999"], capsys)  # every checkpoint
    assert "argument --steps: expected an integer of at least 1" in _usage_error(["demo", "--steps", "-5"], capsys)
    assert _usage_error(["info"], capsys) == "evowatch info: error: the following arguments are required: STORE"
    assert _usage_error(["export", "s.zarr", "--to", "xlsx"], capsys).startswith("evowatch export: error: argument --to")
    assert _usage_error(["bogus"], capsys).startswith("evowatch: error: argument command: invalid choice")
    assert not (tmp_path / "s.zarr").exists()
    with pytest.raises(SystemExit) as exited:  # --help still prints the usage
        main(["watch", "--help"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("usage: evowatch watch")


def test_a_required_option_mistyped_is_named_with_the_one_meant(tmp_path, capsys):
    """Round BO: a new user's `evowatch watch runs/exp42 --sotre exp42.zarr` was told only "the
    following arguments are required: --store", which they had typed (argparse checks the required
    options before the unknown ones)."""
    run = str(tmp_path / "run")
    assert _usage_error(["watch", run, "--sotre", "s.zarr", "--once"], capsys) == (
        "evowatch watch: error: unrecognized arguments: --sotre (did you mean --store?)")
    assert _usage_error(["watch", run, "--sotre=s.zarr"], capsys) == (
        "evowatch watch: error: unrecognized arguments: --sotre=s.zarr (did you mean --store?)")
    # nothing mistyped (an abbreviation argparse takes, a value after `--`): the required one named
    assert _usage_error(["watch", run, "--onc"], capsys) == (
        "evowatch watch: error: the following arguments are required: --store")
    assert _usage_error(["watch", "--", "--sotre"], capsys) == (
        "evowatch watch: error: the following arguments are required: --store")
    assert not (tmp_path / "s.zarr").exists()


def test_a_commands_option_given_before_the_command_is_said_to_go_after_it(tmp_path, capsys):
    """`evowatch --store s.zarr watch RUN` was "invalid choice: 's.zarr' (choose from 'watch', ...)":
    argparse took the option's value for the command; `evowatch --once watch ...` said only
    "unrecognized arguments: --once"."""
    run = str(tmp_path / "run")
    assert _usage_error(["--store", "s.zarr", "watch", run], capsys) == (
        "evowatch: error: --store is an option of `evowatch watch`: give it after watch")
    assert _usage_error(["-q", "--store=s.zarr", "watch", run], capsys) == (
        "evowatch: error: --store is an option of `evowatch watch`: give it after watch")
    assert _usage_error(["--once", "watch", run, "--store", "s.zarr"], capsys) == (
        "evowatch: error: --once is an option of `evowatch watch`: give it after watch")
    assert _usage_error(["--sotre", "s.zarr", "watch", run], capsys) == (
        "evowatch: error: unrecognized arguments: --sotre (did you mean --store? an option of `evowatch watch`: "
        "give it after watch)")
    assert _usage_error(["--jsno", "info", "s.zarr"], capsys) == (
        "evowatch: error: unrecognized arguments: --jsno (did you mean --json? an option of `evowatch info`: "
        "give it after info)")
    assert _usage_error(["--zzz", "info", "s.zarr"], capsys) == "evowatch: error: unrecognized arguments: --zzz"
    assert not (tmp_path / "s.zarr").exists()


def test_store_given_as_an_option_to_a_command_taking_it_plainly_is_said_so(tmp_path, capsys):
    """Round BR: `evowatch --store s.zarr info` said "did you mean --json?": info takes the store as
    a plain argument, and --json was never meant."""
    plain = "(`evowatch info` takes STORE as a plain argument: evowatch info STORE)"
    assert _usage_error(["--store", "s.zarr", "info"], capsys) == f"evowatch: error: unrecognized arguments: --store {plain}"
    assert _usage_error(["info", "--store", "s.zarr"], capsys) == (
        f"evowatch info: error: unrecognized arguments: --store {plain}")
    assert _usage_error(["--store=s.zarr", "view"], capsys) == (
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
        err = _usage_error(["demo", "--fail", fail, "--out", str(tmp_path / "D")], capsys)
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
        proc = subprocess.run(_cli("info", str(store)), env=_env(tmp_path), stdout=writer, stderr=subprocess.PIPE,
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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_stops_a_live_watch_like_ctrl_c(tmp_path, signum):
    """SIGTERM (`kill PID`, `docker stop`) and SIGHUP (round AL: its terminal or SSH session
    closed killed the watch mid-write, no stop line, the lock file and grown arrays left)."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 5, seed=0)
    proc = subprocess.Popen(_cli("watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout"),
                            env=_env(tmp_path), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not ((store / "zarr.json").exists() and StoreReader(store).n_rows == 5) and time.time() < deadline:
            time.sleep(0.1)
    finally:
        err = _stop(proc, signum)
    assert proc.returncode == 0 and not (tmp_path / "s.zarr.lock").exists(), err
    assert re.fullmatch(r"evowatch: stopped; everything ingested so far is committed( \(1 step not measured yet: "
                        r"the next watch measures them\))?", err.splitlines()[-1])  # stopped before it was measured
    again = subprocess.run(_cli("watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"),
                           env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "interrupted" not in again.stderr, again.stderr
    assert info(store)["rows"] == 5


def test_a_live_watch_stopped_while_it_starts_exits_0(tmp_path, monkeypatch, capsys):
    """`docker stop` or systemd stopping a live watch while its encoder loaded (seconds with
    CLIP) got 143 and the --once message: a live watch stopped is a watch done."""
    import contextlib

    from engine import cli, session

    @contextlib.contextmanager
    def loading(args):
        raise cli.Terminated()
        yield

    monkeypatch.setattr(session, "open_session", loading)
    assert cli.main(["watch", str(tmp_path), "--store", str(tmp_path / "s.zarr"), "--encoder", "pixels"]) == 0
    err = capsys.readouterr().err
    assert "interrupted" not in err and err.endswith("evowatch: stopped; everything ingested so far is committed\n")


def test_a_checkpoint_the_run_renamed_is_its_new_version_not_a_second_copy(tmp_path, capsys):
    """A trainer's `tmp-checkpoint-500/` renamed `checkpoint-500/` (transformers, Orbax), or a
    folder renamed by hand to another step: read again at its new name, both readings stayed
    current and every sample was in the map and the export twice."""
    from engine.cli import main

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 4, seed=0)
    write_step(run, 200, 4, seed=1)
    write_step(run, 300, 4, seed=2)
    os.rename(run / "step_000300", run / "tmp-checkpoint-300")
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]
    assert main(argv) == 0
    os.rename(run / "tmp-checkpoint-300", run / "checkpoint-300")  # the same step
    os.rename(run / "step_000200", run / "step_000250")  # another step
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "the files of tmp-checkpoint-300, stored before under that name: its rows kept as superseded" in err
    assert "holds the same samples" not in err
    summary = info(store)
    assert (summary["rows"], summary["current_rows"], summary["steps"]) == (20, 12, [100, 250, 300])
    assert main(argv) == 0 and info(store)["rows"] == 20  # nothing more to read
    ckpt = StoreReader(store).checkpoints()  # round AC: renamed in a backlog, it named checkpoint 0
    for i in np.flatnonzero(ckpt["superseded"]):
        assert ckpt["source"][ckpt["superseded_by"][i]] == ckpt["source"][i] and ckpt["superseded_by"][i] > i


def _run_of_steps_100_and_500(tmp_path: Path, n: int) -> tuple[Path, Path, list[str]]:
    """A run of two checkpoints, its store's path and the `watch --once` that stores it."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, n, seed=0)
    write_step(run, 500, n, seed=1)
    return run, store, ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                        "--no-layout", "--workers", "0"]


def test_a_copy_stored_beside_its_original_then_deleted_is_no_rename_of_it(tmp_path):
    """Round AC: on a restart, the original (its files still there) was taken for the copy's
    rename: superseded, its rows renamed to the copy's vanished files."""
    run, store, argv = _run_of_steps_100_and_500(tmp_path, 3)
    shutil.copytree(run / "step_000500", run / "step_000500-copy")
    assert main(argv) == 0 and info(store)["current_rows"] == 9
    shutil.rmtree(run / "step_000500-copy")
    assert main(argv) == 0
    ckpt = StoreReader(store).checkpoints()
    assert not ckpt["superseded"].any() and "step_000500" in ckpt["source"].tolist()


def _started(tmp_path: Path, *args: str) -> subprocess.Popen:
    """A `watch` given a few seconds to start (import, open the store) before it is stopped."""
    proc = subprocess.Popen(_cli("watch", *args, "--encoder", "pixels", "--no-layout"), env=_env(tmp_path),
                            stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    return proc


def test_an_interrupted_once_says_what_is_kept_and_how_to_resume(tmp_path):
    """Ctrl-C on `watch --once` (here while it waits for a checkpoint still being written)
    exited 130 without a word."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 3, seed=0)
    write_step(run, 200, 3, seed=1)
    proc = _started(tmp_path, str(run), "--store", str(store), "--once", "--settle", "0", "--settle", "120")
    err = _stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == ("evowatch: interrupted; everything ingested so far is committed: "
                                    "run the same command again to resume")


def test_a_live_watch_says_a_pause_file_left_from_before_as_it_starts_and_stops(tmp_path):
    """A pause file from yesterday's alert (or a watch restarted while the trainer waits) held every trainer
    started in the run, and no watch said it. A live watch names it, with its alert and age, as it starts
    and as it stops (the trainer still waits then)."""
    from engine.pause import write_pause

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 3, seed=0)
    yesterday = time.time() - 86400
    os.utime(write_pause(run, {"step": 100, "rule": "collapse", "value": 1.0, "message": "m"}), (yesterday, yesterday))
    said = (f"evowatch: {run / 'EVOWATCH_PAUSE'} is there (step 100 [collapse], written "
            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(yesterday))}): a trainer checking it waits, one started "
            "there later too, until it is deleted\n")
    proc = subprocess.Popen(_cli("watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout",
                                 "--settle", "0"), env=_env(tmp_path), stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "EVOWATCH_PAUSE" in line or "ingested step 100" in line:
                break
        err = _stop(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert line == said and err.endswith(said), err


@pytest.mark.slow
def test_a_second_ctrl_c_during_a_torch_call_stops_at_once_without_an_abort(tmp_path):
    """Round AJ: Ctrl-C twice during a CLIP watch (here a --sampler busy in torch) printed
    "terminate called without an active exception" and died of SIGABRT: the interpreter's
    exit ran torch's destructors under the thread still in its call."""
    (tmp_path / "busy_sampler.py").write_text(
        "import time, torch\n"
        "def sample(checkpoint_path, n_samples, seed):\n"
        "    a, end = torch.randn(400, 400), time.time() + 60\n"
        "    while time.time() < end:\n"
        "        a = torch.tanh(a @ a.T / 400)\n"
        "    return torch.rand(n_samples, 3, 8, 8)\n")
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    run.mkdir()
    (run / "model-100.pt").write_bytes(b"weights")
    env = {**_env(tmp_path), "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    # --settle 0: a watch started in under --settle of the file's writing waited for it, and the
    # first Ctrl-C came with no torch call to stop (the test failed 2 runs in 3, the watch ended)
    proc = subprocess.Popen(_cli("watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout",
                                 "--settle", "0", "--sampler", "busy_sampler:sample", "--samples-per-checkpoint", "2"),
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "sampler busy_sampler:sample" in line:
                break
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        for line in proc.stderr:
            if "Ctrl-C again stops at once" in line:
                break
        err = _stop(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "terminate called" not in err, err
    assert "stopped; everything ingested so far is committed" in err and not Path(f"{store}.lock").exists()


def test_a_grid_option_no_file_fits_is_one_error_and_leaves_no_store(tmp_path, capsys):
    """Round AJ: `--grid 3x3` on 32 px images printed a line per file of every checkpoint
    (576), exited 0 and left a store of 0 rows. The first checkpoint that none fits is an
    error; once one fitted, a checkpoint that does not is said in one line."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200, 300):
        write_step(run, step, 6, seed=step)  # 24 px images
    watch = ["watch", str(run), "--store", str(store), "--once", "--encoder", "pixels", "--no-layout", "--no-metrics",
             "--settle", "0", "--tile-size"]
    assert main([*watch, "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evowatch: error: step_000100: none of its 6 files fits the grid the options force "
                          "(step_000100/samples/00000.png: Expected an image that splits into 100px tiles") and "\n" not in err
    assert not store.exists()
    assert main([*watch, "12"]) == 0  # 2x2 grids of 12 px
    write_step(run, 400, 6, seed=400, size=10)  # a checkpoint the same option does not fit, after others did
    capsys.readouterr()
    assert main([*watch, "12"]) == 0
    skipped = [line for line in capsys.readouterr().err.splitlines() if line.startswith("evowatch: skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("evowatch: skipped 6 files of step_000400: Expected an image")
    assert StoreReader(store).info()["rows"] == 3 * 6 * 4
    # round AK: a first checkpoint that does not fit, later ones that do (a progressive GAN's tiles
    # grow): it refused the run; they are stored, it is said in one line and read again next time
    grown, other = tmp_path / "grown", tmp_path / "g.zarr"
    write_step(grown, 100, 3, seed=1, size=10)
    for step in (200, 300):
        write_step(grown, step, 3, seed=step)
    capsys.readouterr()
    assert main([watch[0], str(grown), "--store", str(other), *watch[4:], "12"]) == 0
    err = capsys.readouterr().err
    assert ("step_000100: none of their files fits the grid the options force, where later ones fit" not in err
            and "step_000100: none of its files fits the grid the options force, where later ones fit" in err), err
    assert StoreReader(other).info()["steps"] == [200, 300]


def test_a_live_watch_stopped_before_the_last_checkpoint_settled_names_it(tmp_path):
    """Round AJ: Ctrl-C within --settle of the trainer's last checkpoint left it out, and the
    stop line said only "everything ingested so far is committed"."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    proc = _started(tmp_path, str(run), "--store", str(store), "--settle", "9")
    deadline = time.time() + 60  # on a loaded machine the first pass took longer than _started's 6 s
    while time.time() < deadline and not ((store / "zarr.json").is_file() and info(store)["steps"] == [100]):
        time.sleep(0.2)
    write_step(run, 200, 2, seed=1)
    folder = run / "step_000200"
    now = time.time()
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (now, now))  # just written
    time.sleep(4)  # the watch sees it, still settling
    err = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0, err
    assert "evowatch: not ingested, still being written: step_000200; the next watch ingests it" in err, err
    assert info(store)["steps"] == [100]


def test_stored_metrics_are_those_of_the_stored_vectors_made_unit_length(tmp_path):
    """Round AJ: the float16 vectors were measured as read (norms 1 +- 1e-4), not as the
    documented unit vectors: recomputed from the store as docs/metrics.md says, precision,
    coverage and near-copies differed near their thresholds."""
    from engine.metrics.per_step import compute_step
    from engine.metrics.reference import ReferenceStats
    from engine.metrics.vectors import unit_rows
    from stores.format import KIND_CODES

    run, store, real, holdout = tmp_path / "run", tmp_path / "s.zarr", tmp_path / "real", tmp_path / "holdout"
    for step in (100, 200):
        write_step(run, step, 12, seed=step)
    for folder, seed in ((real, 1), (holdout, 2)):
        rng = np.random.default_rng(seed)
        folder.mkdir()
        for i in range(24):
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                 "--no-layout", "--real", str(real), "--holdout", str(holdout)]) == 0
    reader = StoreReader(store)
    emb, kinds, steps = reader.samples("embedding"), reader.samples("kind"), reader.samples("step")
    ref = ReferenceStats.build(unit_rows(emb[kinds == KIND_CODES["real"]]), unit_rows(emb[kinds == KIND_CODES["holdout"]]))
    table = reader.step_metrics()
    for i, step in enumerate(table["step"]):
        want = compute_step(unit_rows(emb[(kinds == KIND_CODES["generated"]) & (steps == step)]), ref).scalars
        for key in ("fd", "vendi", "nn_train_median", "near_copy_threshold", "copy_zu"):
            assert table[key][i] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


def test_stopping_a_watch_still_waiting_for_its_run_leaves_no_empty_store(tmp_path):
    run, store = tmp_path / "not_yet", tmp_path / "s.zarr"
    proc = _started(tmp_path, str(run), "--store", str(store))
    err = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0 and "waiting for the trainer to create it" in err, err
    assert not store.exists() and not Path(f"{store}.lock").exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped exception, on purpose
def test_a_stop_whose_exception_python_drops_still_stops_a_live_watch(tmp_path):
    """SIGTERM landing while Python ran a weakref callback: its exception was printed
    ("Exception ignored in ...") and dropped, and the live watch ran on (seen once in a full
    test run: the SIGTERM test timed out)."""
    from engine.cli import STOP_REQUESTED, Terminated, _stop_on_sigterm

    run = tmp_path / "run"
    write_step(run, 100, 2, seed=0)
    STOP_REQUESTED.clear()
    restore = _stop_on_sigterm()
    try:
        class Dropper:
            def __del__(self) -> None:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler runs here; what it raises, Python drops

        Dropper()
        assert STOP_REQUESTED.is_set()
        with pytest.raises(Terminated):  # signalled again: raised here, not in pytest's own code after the test
            time.sleep(5)
        with _live_watch(run, tmp_path / "s.zarr", STOP_REQUESTED) as thread:
            thread.join(timeout=20)
            assert not thread.is_alive()
    finally:
        restore()
        STOP_REQUESTED.clear()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_python_drops_prints_no_traceback(tmp_path, signum):
    """Round BE's fault campaign: a Ctrl-C landing in a library's ``__del__`` (regex's
    ``SetBase.__del__``) printed "Exception ignored in ... Traceback ... KeyboardInterrupt" on
    the watch's stderr; the stop is noted and kept, so the dropped exception is not news. It is
    raised again where the program is next (a live watch went on with its pass: 12 checkpoints)."""
    script = f"""
import os, signal, time
from engine.cli import STOP_REQUESTED, _stop_on_sigterm
_stop_on_sigterm()
class Dropper:
    def __del__(self):
        os.kill(os.getpid(), {int(signum)})
        time.sleep(1)  # the handler runs here; what it raises, Python drops
try:
    Dropper()
    print(STOP_REQUESTED.is_set(), flush=True)
    time.sleep(30)
    print("went on")
except KeyboardInterrupt as stop:
    print(type(stop).__name__)
"""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    raised = "Terminated" if signum == signal.SIGTERM else "KeyboardInterrupt"
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, ["True", raised], "")
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_dropped_as_a_command_ends_is_not_signalled_again_after_main_returned(tmp_path, signum):
    """A stop dropped in a ``__del__`` is signalled again 50 ms later from a thread (round BE).
    Dropped as the command ended (objects freed as its store closed), it came after main()
    had put the caller's handlers back: a process whose main() returned 0 died of SIGTERM, and
    a caller of main() (a test) got a KeyboardInterrupt."""
    script = f"""
import os, signal, time
from engine import cli
class Dropper:
    def __del__(self):
        os.kill(os.getpid(), {int(signum)})
        time.sleep(1)  # the handler runs here; what it raises, Python drops
cli.COMMANDS["info"] = lambda args: (Dropper(), 0)[1]
print(cli.main(["info", "s.zarr"]), flush=True)
time.sleep(0.5)
print("went on")
"""
    done = subprocess.run([sys.executable, "-c", script], env=_env(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout.split()) == (0, ["0", "went", "on"]), done.stderr


def test_a_stop_dropped_in_a_forked_child_does_not_signal_the_parent(tmp_path):
    """A forked child (a decode worker) inherits the stop handling and STOP_REQUESTED: a
    KeyboardInterrupt dropped there was signalled again to the parent (the owner), a second
    stop that lets a store write under way go at once."""
    script = """
import os, time
from engine.cli import STOP_REQUESTED, _stop_on_sigterm
_stop_on_sigterm()
STOP_REQUESTED.set()
child = os.fork()
if child == 0:
    class Dropper:
        def __del__(self):
            raise KeyboardInterrupt
    Dropper()
    time.sleep(0.5)
    os._exit(0)
os.waitpid(child, 0)
time.sleep(0.5)
print("went on")
"""
    done = subprocess.run([sys.executable, "-c", script], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout.split()) == (0, ["went", "on"]), done.stderr


@pytest.mark.parametrize("stop, raised", [(signal.SIGTERM, "Terminated"), (signal.SIGINT, "KeyboardInterrupt")])
def test_a_stop_during_opentsne_is_raised_once_its_call_returns(stop, raised):
    """Round AD: SIGTERM in a layout's first 0.1 s killed the watch with SIGSEGV (2 of 10):
    raised inside openTSNE's gradient, the handler's exception crashed its Cython."""
    from engine.cli import STOP_REQUESTED, _stop_on_sigterm
    from engine.stopping import deferred_stop

    restore, finished = _stop_on_sigterm(), False
    try:
        with pytest.raises(BaseException) as exc:
            with deferred_stop():
                os.kill(os.getpid(), stop)
                time.sleep(0.2)  # the handler runs here, inside the block
                finished = True
        assert finished and type(exc.value).__name__ == raised and STOP_REQUESTED.is_set()
    finally:
        restore()
        STOP_REQUESTED.clear()


def test_a_forked_child_dies_of_sigterm_instead_of_running_the_parents_handler():
    """A decode worker inherits the CLI's SIGTERM handler with the fork: it must die as
    multiprocessing's terminate() expects, not raise the parent's KeyboardInterrupt."""
    import multiprocessing

    from engine.cli import Terminated, _stop_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    restore = _stop_on_sigterm()
    try:
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,), daemon=True)
        child.start()
        time.sleep(0.2)
        child.terminate()
        child.join(timeout=10)
        assert child.exitcode == -signal.SIGTERM
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        with pytest.raises(Terminated) as hung_up:  # the terminal closed
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1)
        assert hung_up.value.signum == signal.SIGHUP
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is before
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # started under nohup: SIGHUP stays ignored
    try:
        restore = _stop_on_sigterm()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        restore()
    finally:
        signal.signal(signal.SIGHUP, previous)


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
    watch = _without_root_powers(_cli("watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                                      "--no-layout"))
    (run / "step_000200").chmod(0o644)
    try:
        done = subprocess.run(watch, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert (f"{run / 'step_000200'}: cannot be read (Permission denied); what it holds is left out: "
                "fix its permissions") in done.stderr
        assert info(store)["steps"] == [100]
        run.chmod(0o444)  # the run folder itself
        done = subprocess.run(watch, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and f"{run}: cannot be read (Permission denied)" in done.stderr, done.stderr
    finally:
        run.chmod(0o755)
        (run / "step_000200").chmod(0o755)
    done = subprocess.run(watch, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and info(store)["steps"] == [100, 200]


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


@contextlib.contextmanager
def _live_watch(run: Path, store: Path, stop: threading.Event | None = None,
                *options: str) -> Iterator[threading.Thread]:
    """``evowatch watch RUN --store STORE`` (pixels, no layout or metrics) running in a thread, ticking
    every 0.1 s; stopped and joined on exit. What ended it early is the thread's ``error``."""
    from engine.cli import build_parser
    from engine.session import open_session

    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels",
                                      "--no-layout", "--no-metrics", "--workers", "0", *options])
    stop = stop or threading.Event()
    with open_session(args) as watcher:
        watcher.config.tick = 0.1

        def watch() -> None:
            try:
                watcher.run_forever(stop)
            except EvowatchError as exc:
                thread.error = exc

        thread = threading.Thread(target=watch)
        thread.error = None
        thread.start()
        try:
            yield thread
        finally:
            stop.set()
            thread.join(timeout=10)


def _wait_until(condition: Callable[[], bool], thread: threading.Thread, seconds: float = 20) -> None:
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline and thread.is_alive():
        time.sleep(0.05)


def test_a_run_directory_not_created_yet_is_waited_for(tmp_path, caplog):
    """`evowatch watch lightning_logs/version_0` started before the trainer was refused (no
    such directory); creating the folder by hand to please it made Lightning write version_1."""
    run, store = tmp_path / "lightning_logs" / "version_0", tmp_path / "s.zarr"
    with caplog.at_level("INFO", logger="engine.watch"), _live_watch(run, store) as thread:
        _wait_until(lambda: "waiting for the trainer to create it" in caplog.text, thread)
        write_step(run, 100, 2, seed=0)
        _wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        write_step(run, 200, 3, seed=1)  # watched by events from then on
        _wait_until(lambda: StoreReader(store).n_rows >= 5, thread)
    assert info(store)["steps"] == [100, 200]
    assert "created; watching it" in caplog.text and "deleted" not in caplog.text


def test_a_run_directory_deleted_while_watched_is_waited_for_and_watched_again(tmp_path, caplog):
    """A trainer restarted from scratch (`rm -rf RUN`, then a new RUN): the watch ended with
    "RUN: run directory not found ...; check the path" unless it came back within a tick."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    with caplog.at_level("INFO", logger="engine.watch"), _live_watch(run, store) as thread:
        _wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        shutil.rmtree(run)
        _wait_until(lambda: "was deleted" in caplog.text, thread)
        run.mkdir()
        write_step(run, 200, 3, seed=1)
        _wait_until(lambda: StoreReader(store).n_rows >= 5, thread)
    assert info(store)["steps"] == [100, 200] and info(store)["rows"] == 5
    assert caplog.text.count("the run directory was deleted") == 1 and "is back" in caplog.text


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
    from engine import watch as watch_module

    monkeypatch.setattr(watch_module, "RESCAN_S", 0.2)
    logs = tmp_path / "lightning_logs"
    run, store = logs / "version_3", tmp_path / "s.zarr"
    write_step(run, 100, 2, seed=0)
    for name in ("version_7", "version_1", "other_9"):  # there from the start, earlier, another name
        (logs / name).mkdir()
    if given == ".":
        monkeypatch.chdir(run)
    watched, later = (run, logs / "version_4") if given != "." else (Path("."), Path("../version_4"))
    with caplog.at_level("WARNING", logger="engine.watch"), _live_watch(watched, store) as thread:
        _wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        for name in ("version_4", "version_2", "checkpoints", "version_10.txt"):
            (logs / name).mkdir() if not name.endswith(".txt") else (logs / name).write_text("")
        _wait_until(lambda: "version_4 appeared" in caplog.text, thread, seconds=10)
        time.sleep(0.5)
    said = [r.getMessage() for r in caplog.records if "appeared beside it" in r.getMessage()]
    assert said == [f"{watched}: version_4 appeared beside it, named as it is with a higher number: were the trainer "
                    f"restarted there, it writes there, not here; to go on with it in this store, stop this watch, "
                    f"then: evowatch watch {later} --store {store} --same-run"], said


@pytest.mark.parametrize("change", ["made again at once", "given as a link", "its link retargeted"])
def test_new_checkpoints_come_by_events_whatever_the_run_directory_went_through(tmp_path, caplog, monkeypatch, change):
    """Round AF: a run directory deleted and made again between two looks (`rm -rf out &&
    mkdir out`), a RUN_DIR given as a symbolic link (inotify watched the link) or a link later
    pointed at another folder: no file event came any more, each checkpoint waited for the
    30 s rescan. Here the rescan never comes: the events alone bring them."""
    from engine import watch as watch_module

    monkeypatch.setattr(watch_module, "RESCAN_S", 3600.0)
    real = tmp_path / "real_run"
    write_step(real, 100, 2, seed=0)
    run = real
    if change != "made again at once":
        run = tmp_path / "latest"
        run.symlink_to(real, target_is_directory=True)
    store = tmp_path / "s.zarr"
    same_run = ("--same-run",) if change == "its link retargeted" else ()  # a run resumed in a new folder
    with caplog.at_level("INFO", logger="engine.watch"), _live_watch(run, store, None, *same_run) as thread:
        _wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        if change == "made again at once":
            shutil.rmtree(real)
            real.mkdir()
        elif change == "its link retargeted":
            other = tmp_path / "next_run"
            other.mkdir()
            (tmp_path / "new_link").symlink_to(other, target_is_directory=True)
            os.replace(tmp_path / "new_link", run)
            real = other
        time.sleep(0.5)
        write_step(real, 200, 3, seed=1)
        _wait_until(lambda: StoreReader(store).n_rows >= 5, thread, seconds=15)
        assert StoreReader(store).n_rows == 5
        write_step(real, 300, 1, seed=2)  # and the next one too
        _wait_until(lambda: StoreReader(store).n_rows >= 6, thread, seconds=15)
    assert info(store)["steps"] == [100, 200, 300]


def test_a_run_directory_link_pointed_at_another_run_while_watched_is_refused(tmp_path):
    """Round AN: `latest -> run_a` pointed at run_b during a live watch took run_b's
    checkpoints for new versions of run_a's (run_a's rows superseded); a new watch refused
    the same switch. The live watch stops with the same line."""
    run_a, run_b, latest, store = tmp_path / "run_a", tmp_path / "run_b", tmp_path / "latest", tmp_path / "s.zarr"
    write_step(run_a, 100, 2, seed=0)
    write_step(run_b, 100, 3, seed=1)
    write_step(run_b, 200, 3, seed=2)
    latest.symlink_to(run_a, target_is_directory=True)
    with _live_watch(latest, store) as thread:
        _wait_until(lambda: StoreReader(store).n_rows >= 2, thread)
        (tmp_path / "new_link").symlink_to(run_b, target_is_directory=True)
        os.replace(tmp_path / "new_link", latest)
        _wait_until(lambda: thread.error is not None, thread, seconds=15)
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
    with _live_watch(run, store) as thread:
        _wait_until(lambda: StoreReader(store).n_rows >= 3, thread)
        time.sleep(2.5)  # settled and hashed
        for i in range(3):
            path = folder / f"{i}.npy"
            st = os.stat(path)
            np.save(path, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        _wait_until(lambda: StoreReader(store).n_rows >= 6, thread, seconds=40)
    assert info(store)["rows"] == 6 and info(store)["current_rows"] == 3


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


def test_a_checkpoint_folder_copied_or_renamed_in_the_run_is_measured_once(tmp_path, capsys):
    """`step_002000` copied to `step_2000_backup` (or renamed, a new source either way): the
    step held each sample twice, every sample had an exact duplicate, and a healthy step
    showed a partial collapse (duplicate_frac 1.0)."""
    from stores.zarr_store import StoreReader

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    real = tmp_path / "real"
    for i, image in enumerate(np.random.default_rng(5).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)):
        real.mkdir(exist_ok=True)
        Image.fromarray(image).save(real / f"{i:03d}.png")
    for k, step in enumerate((1000, 2000)):
        write_step(run, step, 12, seed=k)
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--real", str(real)]
    assert main(argv) == 0
    before = StoreReader(store).step_metrics()
    shutil.copytree(run / "step_002000", run / "step_2000_backup")
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert ("step 2000: step_2000_backup holds the same samples as step_002000 (a checkpoint renamed or copied in "
            "the run, or a run repeated with the same seed?): measured once") in err
    after = StoreReader(store).step_metrics()
    assert after["duplicate_frac"][1] == before["duplicate_frac"][1] < 0.5
    assert after["n_generated"][1] == 12
    per_sample = StoreReader(store).sample_metric("near_duplicate")
    np.testing.assert_array_equal(per_sample[-12:], per_sample[-24:-12])  # the copy's rows get its twin's values
    for copy in range(5):  # many copies (a sampler repeating its seed): three lines, then one for the rest
        shutil.copytree(run / "step_001000", run / f"step_1000_copy{copy}")
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("holds the same samples as step_001000") == 3
    assert err.count("more checkpoints hold the same samples as another of their step: each measured once") == 1


def test_a_store_kept_in_a_checkpoint_folder_does_not_hold_that_checkpoint_back(tmp_path, capsys):
    """``--store run/step_000100/evo.zarr``: its writes made step 100 "still being written" (waited
    for, ingested last) and ``--samples '*'`` read its files as samples, skipped as unreadable."""
    run = tmp_path / "run"
    for step, seed in ((100, 0), (200, 1), (300, 2)):
        write_step(run, step, 4, seed=seed)
    time.sleep(0.6)  # settled: only the store's own writes could hold step 100 back
    store = run / "step_000100" / "evo.zarr"
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0.5", "--encoder", "pixels", "--no-layout",
             "--no-metrics", "--samples", "*"]
    assert main(watch) == 0
    err = capsys.readouterr().err
    assert [line.split(" (")[0] for line in err.splitlines() if "ingested" in line] == [
        "evowatch: ingested step 100", "evowatch: ingested step 200", "evowatch: ingested step 300"]
    assert "being written" not in err and "skipped" not in err
    assert main(watch) == 0  # a restart: the store now has chunks, its lock file is written anew
    assert capsys.readouterr().err.splitlines() == [  # nothing read again
        f"evowatch: {store}: resuming: it holds 3 steps (100..300); only new or changed checkpoints are read"]
    assert info(store)["rows"] == 12 and info(store)["warnings"] == 0


def test_a_backlog_of_steps_to_measure_says_so_and_writes_them_together(tmp_path, monkeypatch, capsys):
    """Round AF: a finished run of 1,500 checkpoints was measured for 145 s after its layout
    without a line on stderr (the ingest and the layout say their progress), a row written
    and the whole table read back at every step."""
    from stores.zarr_store import StoreWriter

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for k in range(25):
        write_step(run, 100 * (k + 1), 2, seed=k, size=8)
    writes = []
    monkeypatch.setattr(StoreWriter, "write_steps_metrics",
                        lambda self, rows, real=StoreWriter.write_steps_metrics: writes.append(len(rows)) or real(self, rows))
    argv = ["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout", "--settle", "0", "--once"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "measuring 25 steps (-v lists each)" in err and "measured 25 steps, steps 100 to 2,500" in err
    assert sum(writes) == 25 and len(writes) < 25
    assert sorted(StoreReader(store).measured_steps()) == [100 * (k + 1) for k in range(25)]


def test_a_store_without_reference_sets_is_measured_again_when_the_metrics_change(tmp_path, monkeypatch, capsys):
    """Round AF: a store watched without --real never recorded what its steps were measured
    under (an empty reference key looked unchanged), so an upgrade whose metrics or alert
    rules changed kept the old version's metrics and alerts (false collapse alerts) for good."""
    from engine import signals

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for k in range(3):
        write_step(run, 100 * (k + 1), 4, seed=k)
    argv = ["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout", "--settle", "0", "--once"]
    assert main(argv) == 0 and len(StoreReader(store).measured_steps()) == 3
    assert StoreReader(store).metrics_reference  # what they were measured under
    capsys.readouterr()
    assert main(argv) == 0 and "measuring" not in capsys.readouterr().err  # a restart: nothing changed
    monkeypatch.setattr(signals, "METRICS_VERSION", signals.METRICS_VERSION + 1)
    assert main(argv) == 0
    assert "measuring the 3 steps again" in capsys.readouterr().err
    assert all(StoreReader(store).measured_steps().values())


@pytest.mark.parametrize("real", ["run", "run/step_000100", "."])
def test_a_reference_folder_holding_the_runs_own_samples_is_refused(tmp_path, monkeypatch, capsys, real):
    """Round AF: `--real RUN_DIR` (or a checkpoint folder, or a folder above the run) took the
    generated samples for training images, and every step raised a false memorisation alert."""
    monkeypatch.chdir(tmp_path)
    for k in range(2):
        write_step(tmp_path / "run", 100 * (k + 1), 4, seed=k)
    argv = ["watch", "run", "--store", "s.zarr", "--encoder", "pixels", "--no-layout", "--settle", "0", "--once"]
    assert main([*argv, "--real", real]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"evowatch: error: --real {real}: holds the run's own samples (step 100, step_000100), which would be taken for "
        "training images; give --real the folder of the training images")
    assert not (tmp_path / "s.zarr").exists()  # refused before anything is stored
    (tmp_path / "run" / "real").mkdir()  # the training images kept in the run folder: no samples of it
    for i in range(8):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(tmp_path / "run" / "real" / f"{i}.png")
    assert main([*argv, "--real", "run/real"]) == 0 and info(tmp_path / "s.zarr")["kinds"]["real"] == 8


def test_a_reference_folder_holding_a_run_it_does_not_read_is_accepted(tmp_path, capsys):
    """Round AG: DCGAN's --outf inside its --dataroot (R/out/fake_samples_epoch_000.png): the
    reference leaves files named as generated samples out, yet the check refused it."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    real = tmp_path / "R"
    real.mkdir()
    for i, image in enumerate(smooth_images(np.random.default_rng(0), 12, 16)):
        Image.fromarray(image).save(real / f"{i:05d}.png")
    for epoch in range(2):
        save_torchvision_grid(smooth_images(np.random.default_rng(epoch + 1), 4, 16),
                              real / "out" / f"fake_samples_epoch_{epoch:03d}.png", nrow=2)
    old = time.time() - 10
    for path in real.rglob("*.png"):
        os.utime(path, (old, old))
    assert main(["watch", str(real / "out"), "--store", str(tmp_path / "s.zarr"), "--encoder", "pixels", "--no-layout",
                 "--settle", "0", "--once", "--real", str(real)]) == 0, capsys.readouterr().err
    assert info(tmp_path / "s.zarr")["kinds"] == {"generated": 8, "real": 12, "holdout": 0}


def test_a_live_watch_stopped_while_measuring_says_how_many_steps_are_left(tmp_path, monkeypatch, capsys):
    """Round AF: a live watch stopped while it measured steps again said only "everything
    ingested so far is committed", and `info` then showed fewer measured steps than steps."""
    from engine import cli, signals
    from engine import watch as watch_module

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for k in range(4):
        write_step(run, 100 * (k + 1), 3, seed=k)
    argv = ["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout", "--settle", "0"]
    assert main([*argv, "--once"]) == 0
    monkeypatch.setattr(signals, "METRICS_VERSION", signals.METRICS_VERSION + 1)  # every step measured again
    monkeypatch.setattr(watch_module, "HOOK_BUDGET_S", 0.0, raising=False)  # a step per call
    real_measure = signals.Signals._measure

    def measure_then_stop(self, *args):
        real_measure(self, *args)
        cli.STOP_REQUESTED.set()  # Ctrl-C after the first step measured

    monkeypatch.setattr(signals.Signals, "_measure", measure_then_stop)
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.endswith("evowatch: stopped; everything ingested so far is committed (3 steps not measured yet: the "
                        "next watch measures them)\n"), err
    monkeypatch.setattr(signals.Signals, "_measure", real_measure)
    assert main([*argv, "--once"]) == 0 and all(StoreReader(store).measured_steps().values())


def test_a_live_watch_measuring_every_step_again_goes_on_ingesting(tmp_path, monkeypatch):
    """Round Y: a watch restarted under changed metrics measured every step again before it
    did anything else (30 new checkpoints waited over a minute at 250 steps). Live, it measures
    for a while, looks for new checkpoints, and goes on until every step is measured."""
    from engine import signals
    from engine import watch as watch_module
    from engine.cli import build_parser
    from engine.session import open_session

    run, real, store = tmp_path / "run", tmp_path / "real", tmp_path / "s.zarr"
    for k in range(6):
        write_step(run, 100 * (k + 1), 3, seed=k)
    real.mkdir()
    rng = np.random.default_rng(7)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(real / f"{i}.png")
    argv = ["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout", "--settle", "0",
            "--workers", "0", "--real", str(real)]
    assert main([*argv, "--once"]) == 0 and len(StoreReader(store).measured_steps()) == 6
    monkeypatch.setattr(signals, "METRICS_VERSION", signals.METRICS_VERSION + 1)  # every step measured again
    monkeypatch.setattr(watch_module, "HOOK_BUDGET_S", 0.0, raising=False)  # a step per call
    measured = []  # (step, whether step 700 was stored by then)
    real_measure = signals.Signals._measure

    def slow_measure(self, store_, step, *rest):
        time.sleep(0.4)
        measured.append((step, 700 in StoreReader(store).info()["steps"]))
        return real_measure(self, store_, step, *rest)

    monkeypatch.setattr(signals.Signals, "_measure", slow_measure)
    stop = threading.Event()
    with open_session(build_parser().parse_args(argv)) as watcher:
        watcher.config.tick = 0.1
        thread = threading.Thread(target=watcher.run_forever, args=(stop,))
        thread.start()
        try:
            _wait_until(lambda: len(measured) >= 1, thread)
            write_step(run, 700, 3, seed=9)
            _wait_until(lambda: len(measured) >= 7, thread, 60)
        finally:
            stop.set()
            thread.join(timeout=10)
    assert [step for step, _ in measured] == [100, 200, 300, 400, 500, 600, 700]
    assert any(stored for step, stored in measured if step < 700)  # ingested while the others were measured
    assert len(StoreReader(store).measured_steps()) == 7


def test_a_pass_asks_only_checkpoints_not_stored_as_they_are_whether_they_are_complete(tmp_path, monkeypatch):
    """Every pass walked and stat-ed every checkpoint stored long ago to ask whether it was still
    being written (30% of a pass at 300 checkpoints); one rewritten since is asked again."""
    from engine import watch as watch_module
    from engine.cli import build_parser
    from engine.session import open_session

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for k in range(3):
        write_step(run, 100 * (k + 1), 3, seed=k)
    asked = []
    is_ready = watch_module.is_ready
    monkeypatch.setattr(watch_module, "is_ready", lambda checkpoint, *rest: asked.append(checkpoint.source)
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


def test_numbers_past_the_stores_integers_are_no_instance_id_nor_step(tmp_path, capsys):
    """A seed in a sample's name (AUTOMATIC1111's 00000-3141592653.png, seeds up to 2**32-1),
    a photo's id in --real (Flickr's 53241234567.jpg) and a 20-digit step read by --step-regex
    ended every watch with an OverflowError (ids are int32, steps int64)."""
    run, real, store = tmp_path / "run", tmp_path / "real", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    for folder, names in ((run / "step_100", ["00000-3141592653", "00001-1234567890"]),
                          (run / "step_99999999999999999999", ["00000-1", "00001-2"]),
                          (real, [f"{53241234567 + i}" for i in range(8)])):
        folder.mkdir(parents=True)
        for name in names:
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                 "--no-layout", "--workers", "0", "--real", str(real), "--step-regex", r"step_(\d+)"]) == 0
    assert "one past 2,147,483,647 (00000-3141592653.png)" in capsys.readouterr().err
    reader = StoreReader(store)
    assert reader.info()["steps"] == [100] and reader.info()["kinds"] == {"generated": 2, "real": 8, "holdout": 0}
    generated = reader.samples("kind") == 0
    assert sorted(reader.samples("instance")[generated].tolist()) == [-1, 1234567890]


def test_a_rename_left_undone_by_a_stopped_watch_is_done_by_the_next(tmp_path, monkeypatch):
    """Round AB: a watch stopped (SIGTERM, a full disk) after it stored a renamed checkpoint
    but before it renamed the old reading left both current for good: every sample twice.
    Round AD renames first, but stores left so by the earlier order are healed."""
    from stores.zarr_store import StoreWriter

    run, store, argv = _run_of_steps_100_and_500(tmp_path, 4)
    os.rename(run / "step_000500", run / "tmp-checkpoint-500")
    assert main(argv) == 0
    os.rename(run / "tmp-checkpoint-500", run / "checkpoint-500")
    with monkeypatch.context() as patch:
        patch.setattr(StoreWriter, "rename_source", lambda *_: None)  # the new reading stored, the rename not made
        assert main(argv) == 0
    assert info(store)["current_rows"] == 12
    assert main(argv) == 0
    summary, reader = info(store), StoreReader(store)
    assert (summary["rows"], summary["current_rows"], summary["steps"]) == (12, 8, [100, 500])
    assert reader.checkpoints()["superseded_by"].tolist() == [-1, 2, -1]  # the reading at the new name


def test_a_renamed_checkpoints_old_reading_is_renamed_before_the_new_one_is_committed(tmp_path, monkeypatch):
    """Round AD: renamed after the pass's ingest, the old reading stayed current beside the new
    one meanwhile: a live reader saw the step twice (106 of 280 snapshots of a 245-checkpoint pass)."""
    from stores.zarr_store import StoreReader, StoreWriter

    monkeypatch.delenv("EVOWATCH_WRITER_PROCESS", raising=False)  # the commits seen in this process
    run, store, argv = _run_of_steps_100_and_500(tmp_path, 4)
    os.rename(run / "step_000500", run / "tmp-checkpoint-500")
    assert main(argv) == 0
    os.rename(run / "tmp-checkpoint-500", run / "checkpoint-500")
    seen, commit = [], StoreWriter.checkpoint

    def noting_current_sources(self, *args, **kwargs):
        checkpoints = StoreReader(store).checkpoints()
        seen.append(sorted(s for s, by in zip(checkpoints["source"], checkpoints["superseded_by"]) if by < 0))
        return commit(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(StoreWriter, "checkpoint", noting_current_sources)
        assert main(argv) == 0
    assert seen == [["checkpoint-500", "step_000100"]]  # the old reading already under its new name
    assert info(store)["current_rows"] == 8


def test_a_rotated_step_whose_bytes_come_again_later_is_no_rename(tmp_path):
    """Round AB: a diverged run (black samples, the same bytes at every step) that keeps its
    newest folders: a deleted step was taken as renamed to the next one with the same bytes,
    and vanished from the steps, the map and the metrics."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"

    def black(step: int) -> None:
        (run / f"step_{step}").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(run / f"step_{step}" / f"{i:03d}.png")

    black(100)
    black(200)
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
            "--workers", "0"]
    assert main(argv) == 0
    shutil.rmtree(run / "step_100")
    time.sleep(0.05)
    black(300)
    assert main(argv) == 0
    summary = info(store)
    assert (summary["current_rows"], summary["steps"]) == (12, [100, 200, 300])


def test_a_live_watch_stopped_while_it_imports_exits_0(tmp_path, monkeypatch):
    """Round AB: Ctrl-C or SIGTERM in a live watch's first second (engine.session's import,
    0.5 s warm) exited 130/143 with the --once message: systemd and docker count 143 as a failure."""
    import types

    class Stopped(types.ModuleType):
        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "engine.session", Stopped("engine.session"))
    (tmp_path / "run").mkdir()
    assert main(["watch", str(tmp_path / "run"), "--store", str(tmp_path / "s.zarr"), "--encoder", "pixels"]) == 0


def test_labels_given_to_a_store_read_without_them_are_said_to_label_new_checkpoints_only(tmp_path, capsys):
    """Round AB: --labels added when resuming a store was silently of no use to the samples
    stored (a checkpoint is read once): label shares and label_drift stayed empty, unsaid."""
    run, store, labels = tmp_path / "run", tmp_path / "s.zarr", tmp_path / "labels.csv"
    write_step(run, 100, 4, seed=0)
    labels.write_text("".join(f"{i},{'cat' if i % 2 else 'dog'}\n" for i in range(4)))
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout"]
    assert main(argv) == 0
    capsys.readouterr()
    write_step(run, 200, 4, seed=1)
    assert main([*argv, "--labels", str(labels)]) == 0
    assert (f"{store}: the 4 samples stored before were read without labels and keep none (a checkpoint is read "
            f"once): --labels {labels} labels new checkpoints") in capsys.readouterr().err
    reader = StoreReader(store)
    assert sorted(reader.labels) == ["cat", "dog"] and (reader.samples("label")[reader.samples("step") == 200] >= 0).all()


def test_a_labels_file_that_is_not_utf8_is_said_once_whatever_the_decode_processes(tmp_path):
    """Round AJ: "not UTF-8; read as Windows-1252" was said by each decode process that read
    the file (twice with two workers); the watch reads it before they fork now."""
    run, store, labels = tmp_path / "run", tmp_path / "s.zarr", tmp_path / "labels.csv"
    for step in (100, 200):
        write_step(run, step, 2, seed=step)
    labels.write_bytes("file,label\n00000.png,caf\xe9\n00001.png,na\xefve\n".encode("cp1252"))
    done = subprocess.run(_cli("watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                               "--no-layout", "--no-metrics", "--workers", "2", "--labels", str(labels)),
                          env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("not UTF-8; read as Windows-1252") == 1, done.stderr
    reader = StoreReader(store)
    assert [reader.labels[code] for code in reader.samples("label")] == ["café", "naïve"] * 2


def test_a_relative_labels_path_found_nowhere_is_an_error_before_anything_is_stored(tmp_path, capsys, monkeypatch):
    """Round AJ: a mistyped relative --labels was a warning and the run went on: every sample
    stored kept no label for good. A name found in each checkpoint folder is read there."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200):
        write_step(run, step, 2, seed=step)
    monkeypatch.chdir(tmp_path)
    argv = ["watch", "run", "--store", "s.zarr", "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
            "--no-metrics"]
    assert main([*argv, "--labels", "lab/labels.csv"]) == 2
    assert capsys.readouterr().err == ("evowatch: error: lab/labels.csv: --labels file not found in run, its checkpoint "
                                       "folders (step_000100, step_000200) or the current folder; check the path\n")
    assert not store.exists()
    for step in (100, 200):
        (run / f"step_{step:06d}" / "labels.csv").write_text("file,label\n00000.png,cat\n00001.png,dog\n")
    assert main([*argv, "--labels", "labels.csv"]) == 0
    assert "labels.csv" not in capsys.readouterr().err
    reader = StoreReader(store)
    assert [reader.labels[code] for code in reader.samples("label")] == ["cat", "dog"] * 2


def test_labels_that_match_no_sample_or_some_are_said_once_per_run(tmp_path, capsys, monkeypatch):
    """Round AJ: a --labels file whose rows matched no sample (instance ids out of range, names
    of another run) or only some was accepted without a word: label_drift went off unsaid."""
    run, labels = tmp_path / "run", tmp_path / "labels.csv"
    for step in (100, 200, 300):
        write_step(run, step, 4, seed=step)
    monkeypatch.chdir(tmp_path)
    argv = ["watch", str(run), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics",
            "--labels", str(labels)]
    labels.write_text("instance,label\n-1,cat\n99999999999,dog\nabc,x\n")
    assert main([*argv, "--store", str(tmp_path / "none.zarr")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "--labels" in line]
    assert err == [f"evowatch: --labels {labels}: no row matched any sample of step_000100 (4 samples, e.g. "
                   "step_000100/samples/00000.png); expected columns file,label or instance,label: a sample's path, "
                   "file name, stem or instance id, then its label"]
    labels.write_text("file,label\n00000.png,cat\n00001.png,dog\n")
    assert main([*argv, "--store", str(tmp_path / "some.zarr")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "--labels" in line]
    assert err == [f"evowatch: --labels {labels}: 2 of 4 samples of step_000100 have no label "
                   "(first: step_000100/samples/00002.png)"]
    labels.write_text("".join(f"{i},{i % 2}\n" for i in range(4)))
    assert main([*argv, "--store", str(tmp_path / "all.zarr")]) == 0
    assert "--labels" not in capsys.readouterr().err
    for step in (100, 200):  # a name meant for each checkpoint folder, missing from one
        shutil.copy(labels, run / f"step_{step:06d}" / "own.csv")
    assert main([*argv[:-1], "own.csv", "--store", str(tmp_path / "own.zarr")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "--labels" in line]
    assert err == [f"evowatch: --labels own.csv: none in step_000300, {run} or the current folder: its 4 samples have "
                   "no label"]


def test_a_stop_that_waits_for_a_call_under_way_says_so(caplog):
    """Round AB: Ctrl-C during a slow --sampler call waited for it (17 s) without a word."""
    import queue

    from engine.pipeline import _drain

    busy = threading.Thread(target=time.sleep, args=(1.3,))
    busy.start()
    with caplog.at_level("WARNING", logger="engine.pipeline"):
        _drain([queue.Queue()], [busy])
    assert caplog.text.count("stopping: waiting for the call under way to end") == 1 and "Ctrl-C again" in caplog.text


def test_alert_options_with_no_metrics_are_said_to_be_unused(tmp_path, capsys):
    """Round AB: --on-alert and --pause-on-alert with --no-metrics were accepted and never used, unsaid."""
    write_step(tmp_path / "run", 100, 2, seed=0)
    assert main(["watch", str(tmp_path / "run"), "--store", str(tmp_path / "s.zarr"), "--once", "--settle", "0",
                 "--encoder", "pixels", "--no-layout", "--no-metrics", "--on-alert", "true", "--pause-on-alert"]) == 0
    assert ("--on-alert, --pause-on-alert: not used with --no-metrics (no signal is measured, no alert raised)"
            in capsys.readouterr().err)


def test_a_store_refuses_another_run_and_goes_on_with_its_own_run_moved_copied_or_seen_from_above(tmp_path, capsys):
    """Another run of the trainer (the same checkpoint names, other samples) watched into a
    store was taken for rewrites of its run: the first run's rows superseded. Refused with one
    line, nothing written, even when a checkpoint of both is the same (step 0 from one seed)
    or the store was watched at the folder above; the run moved, copied, watched from the
    folder above or both goes on, and --same-run says a run resumed in a new folder is it."""
    first, second, store = tmp_path / "exp" / "run1", tmp_path / "exp43", tmp_path / "s.zarr"
    for step, seed in ((0, 7), (100, 0), (200, 1)):
        write_step(first, step, 2, seed=seed)
        write_step(second, step, 2, seed=seed if step == 0 else seed + 10)
    watch = ["--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(["watch", str(first.parent), *watch]) == 0  # exp/ holds run1 only
    before = StoreReader(store).checkpoints()["hash"].tolist()
    capsys.readouterr()
    write_step(first.parent / "run2", 100, 2, seed=20)  # a sibling run inside the folder watched
    for other in (second, tmp_path / "new-run", first.parent / "run2"):
        other.mkdir(exist_ok=True)
        assert main(["watch", str(other), *watch]) == 2
        assert capsys.readouterr().err.strip() == (
            f"evowatch: error: {store}: holds the checkpoints of the run watched at {first.parent}, which {other} "
            "does not hold (another run): watch it into its own --store (one store holds one run), or pass "
            "--same-run if it goes on with that run (resumed in a new folder)")
        assert StoreReader(store).checkpoints()["hash"].tolist() == before
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(first, moved)
    write_step(moved, 300, 2, seed=2)  # the copy went on
    for watched in (moved.parent, moved, first):  # moved and seen from above; moved; inside the folder watched
        assert main(["watch", str(watched), *watch]) == 0
        err = capsys.readouterr().err
        assert "(another run)" not in err
        if watched == moved.parent:  # round AQ: each said "which is gone (renamed)", the old folder still there
            assert (f"{watched}: the store's run was watched at {first.parent}; 3 checkpoints stored there are here "
                    "under other names (copy/step_000200 for run1/step_000200): taken as stored, not read again\n"
                    ) in err  # round BC: each was read again, its rows twice

    assert (info(store)["rows"], info(store)["current_rows"]) == (8, 8)  # steps 0 to 300, each read once
    assert main(["watch", str(second), *watch, "--same-run"]) == 0


def test_a_run_watched_from_the_folder_above_or_inside_keeps_its_rows_and_reads_nothing_again(tmp_path, capsys):
    """Round BC: `watch runs/` after `watch runs/exp1` into the same store read every checkpoint
    again under its new name (rows doubled, the first reading superseded; back inside, tripled).
    The stored readings take the names from here, nothing is read or measured again; a file
    rewritten since is read again, and a new checkpoint is ingested."""
    import zarr

    run, store = tmp_path / "runs" / "exp1", tmp_path / "s.zarr"
    for step in (0, 100, 200):
        write_step(run, step, 3, seed=step)
    watch = ["--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]
    assert main(["watch", str(run), *watch]) == 0
    measured = dict(zarr.open_group(str(store / "metrics"), mode="r").attrs)
    capsys.readouterr()
    assert main(["watch", str(run.parent), *watch]) == 0
    assert capsys.readouterr().err == (
        f"evowatch: {run.parent}: the store's run was watched at {run}; 3 checkpoints stored there are here under other "
        "names (exp1/step_000200 for step_000200): taken as stored, not read again\n"
        f"evowatch: {store}: resuming: it holds 3 steps (0..200); only new or changed checkpoints are read\n")
    assert StoreReader(store).checkpoints()["source"].tolist() == [f"exp1/step_{s:06d}" for s in (0, 100, 200)]
    assert dict(zarr.open_group(str(store / "metrics"), mode="r").attrs) == measured
    write_step(run, 300, 3, seed=300)
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(run / "step_000100" / "samples" / "00000.png")
    assert main(["watch", str(run), *watch]) == 0  # back inside
    err = capsys.readouterr().err
    assert ("2 checkpoints stored there are here under other names (step_000200 for exp1/step_000200): taken as "
            "stored, not read again; 1 checkpoint changed since (step_000100): read again, the stored reading kept as "
            "superseded\n") in err
    assert "ingested step 100 (step_000100)" in err and "ingested step 300 (step_000300)" in err
    assert (info(store)["rows"], info(store)["current_rows"], info(store)["checkpoints"]) == (15, 12, 5)


def _exp1_stored_then_its_step_100_deleted(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """`runs/exp1` (steps 100-300) watched into `s.zarr`, then its step_000100 deleted: the
    runs folder, the store and the watch's options."""
    runs, store = tmp_path / "runs", tmp_path / "s.zarr"
    for step in (100, 200, 300):
        write_step(runs / "exp1", step, 2, seed=step)
    watch = ["--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(["watch", str(runs / "exp1"), *watch]) == 0
    shutil.rmtree(runs / "exp1" / "step_000100")
    return runs, store, watch


def test_a_store_copied_without_its_checkpoint_hashes_is_said_so_not_another_run(tmp_path, capsys):
    """Round BE: a store copied in part (its checkpoints/hash chunk lost) watched at the run's
    new folder was refused as holding "another run": the lost hashes read as empty."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200):
        write_step(run, step, 2, seed=step)
    watch = ["--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(["watch", str(run), *watch]) == 0
    shutil.copytree(run, tmp_path / "moved")
    shutil.rmtree(store / "checkpoints" / "hash" / "c")
    capsys.readouterr()
    assert main(["watch", str(tmp_path / "moved"), *watch]) == 2
    assert capsys.readouterr().err == (f"evowatch: error: {store}: chunk files missing (checkpoints/hash rows 0-1; zarr "
                                       "reads them as zeros): the store was copied or restored incompletely; copy it "
                                       "again from its source\n")


def test_a_store_copied_mid_write_watched_with_another_run_is_refused_as_another_run(tmp_path, capsys):
    """An array whose zarr.json ends before the commit point (a copy taken while a watch wrote)
    reads fewer rows, no wrong hash: a watch of another run is refused as one, naming --same-run
    (docs/store.md: the store's run goes on from it). The check for lost hash chunks said "copied
    incompletely; copy it again" instead, though --same-run goes on from that store."""
    run, other, store = tmp_path / "run", tmp_path / "resumed", tmp_path / "s.zarr"
    for step in (100, 200):
        write_step(run, step, 2, seed=step)
    for step in (300, 400):
        write_step(other, step, 2, seed=step)
    watch = ["--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(["watch", str(run), *watch]) == 0
    meta = store / "samples" / "step" / "zarr.json"
    metadata = json.loads(meta.read_text())
    metadata["shape"] = [2]  # copied when one checkpoint of two was written
    meta.write_text(json.dumps(metadata))
    capsys.readouterr()
    assert main(["watch", str(other), *watch]) == 2
    assert "(another run)" in capsys.readouterr().err
    assert main(["watch", str(other), *watch, "--same-run"]) == 0
    assert StoreReader(store).info()["steps"] == [100, 300, 400]


def test_a_checkpoint_deleted_since_is_not_superseded_by_another_runs_of_its_name(tmp_path, capsys):
    """Round BC took a stored checkpoint found under one other name only for one rewritten
    since: watched at `runs/exp1`, its step_000100 deleted by the trainer, then from `runs/`
    beside a new run's `exp2/step_000100`, the first run's reading was renamed to that and
    superseded by the other run's samples ("1 checkpoint changed since"). Only a name moved as
    the same files' names did (`step_000200` to `exp1/step_000200`) is such a rewrite."""
    runs, store, watch = _exp1_stored_then_its_step_100_deleted(tmp_path)
    write_step(runs / "exp2", 100, 2, seed=7)
    capsys.readouterr()
    assert main(["watch", str(runs), *watch]) == 0
    assert "changed since" not in capsys.readouterr().err
    ckpt = StoreReader(store).checkpoints()
    current = [source for source, old in zip(ckpt["source"], superseded_flags(ckpt)) if not old]
    assert current == ["step_000100", "exp1/step_000200", "exp1/step_000300", "exp2/step_000100"]


def test_a_checkpoint_rewritten_since_beside_another_runs_of_its_name_supersedes_its_stored_reading(tmp_path):
    """Round BC read a checkpoint rewritten since a watch of `runs/exp1` again from `runs/`,
    its stored reading kept current beside the new one (the step's samples twice) when another
    run beside held a checkpoint of its name (`exp2/step_000100`): two were found under that
    name, and one was needed. The one named as the run's other checkpoints moved is it."""
    runs, store, watch = _exp1_stored_then_its_step_100_deleted(tmp_path)
    write_step(runs / "exp1", 100, 2, seed=42)  # rewritten
    write_step(runs / "exp2", 100, 2, seed=7)
    assert main(["watch", str(runs), *watch]) == 0
    ckpt = StoreReader(store).checkpoints()
    current = [source for source, old in zip(ckpt["source"], superseded_flags(ckpt)) if not old]
    assert current == ["exp1/step_000200", "exp1/step_000300", "exp1/step_000100", "exp2/step_000100"]


def test_a_stored_checkpoint_whose_files_two_runs_hold_keeps_its_runs_name(tmp_path):
    """Round BC named a stored checkpoint by the first folder found with its files: watched at
    `runs/exp1`, then from `runs/` beside another run whose step 0 came from the same seed, the
    first run's step_000000 was named `exp2/step_000000` (the other run's), and read again as
    `exp1/step_000000`. The one named as the run's other checkpoints moved keeps it."""
    runs, store = tmp_path / "runs", tmp_path / "s.zarr"
    for step in (0, 100, 200):
        write_step(runs / "exp1", step, 2, seed=step)
    watch = ["--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(["watch", str(runs / "exp1"), *watch]) == 0
    write_step(runs / "exp2", 0, 2, seed=0)  # the same samples: the same seed, no training yet
    assert main(["watch", str(runs), *watch]) == 0
    assert StoreReader(store).checkpoints()["source"].tolist() == [
        "exp1/step_000000", "exp1/step_000100", "exp1/step_000200", "exp2/step_000000"]


def test_another_run_is_refused_before_a_store_copied_mid_write_is_cut_back(tmp_path, capsys):
    """Round BC: a store copied while it was written (an array's zarr.json from before it grew)
    went back to its last complete checkpoint, then refused the wrong run: the store changed by a
    watch that refused it. Refused first, no file changed; its own run goes on from there."""
    import zarr

    run, other, store = tmp_path / "run", tmp_path / "other", tmp_path / "s.zarr"
    for step in (0, 100, 200):
        write_step(run, step, 3, seed=step)
        write_step(other, step, 3, seed=step + 50)
    watch = ["--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(["watch", str(run), *watch]) == 0
    zarr.open_array(str(store / "samples" / "step"), mode="r+").resize((7,))
    before = {path: path.read_bytes() for path in store.rglob("*") if path.is_file()}
    capsys.readouterr()
    assert main(["watch", str(other), *watch]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert {path: path.read_bytes() for path in store.rglob("*") if path.is_file()} == before
    assert main(["watch", str(run), *watch]) == 0
    assert "only 2 are complete on disk; going on from those" in capsys.readouterr().err
    assert (info(store)["rows"], info(store)["current_rows"]) == (9, 9)


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
