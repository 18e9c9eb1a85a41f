"""Ingest end to end, as a user runs it: `evowatch watch`, `evowatch info`, restarts and kills."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from stores.zarr_store import StoreReader
from tests.watch_runs import TINY_CLIP, cli_argv, cli_env, info, wait_until, write_step


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

    import engine.watch.pending

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    unreadable = write_step(run, 100, 2, seed=0) / "samples" / "00000.png"

    def denied(checkpoint):
        raise PermissionError(errno.EACCES, "Permission denied", str(unreadable))

    monkeypatch.setattr(engine.watch.pending, "file_digests", denied)
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
    watch = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
             "--no-layout", "--no-metrics", "--workers", "0"]
    assert main(watch) == 0  # the limit is a process's: only the limited watch runs in one of its own
    for step in range(200, 600, 100):
        write_step(run, step, 64, seed=step)
    limit = 64 * 1024  # less than the 256 new thumbnails' chunk; Python ignores SIGXFSZ: the write fails, EFBIG
    limited = subprocess.run(cli_argv(*watch), env=cli_env(tmp_path), capture_output=True, text=True,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert limited.returncode == 2 and limited.stderr.strip().splitlines()[-1] == (
        f"evowatch: error: {store}: a file reached the size limit (File too large); everything committed before is "
        "kept: raise the limit (ulimit -f) and run the same command again to resume"), limited.stderr
    assert main(watch) == 0
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
    from engine.signals import references

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for k in range(3):
        write_step(run, 100 * (k + 1), 4, seed=k)
    argv = ["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout", "--settle", "0", "--once"]
    assert main(argv) == 0 and len(StoreReader(store).measured_steps()) == 3
    assert StoreReader(store).metrics_reference  # what they were measured under
    capsys.readouterr()
    assert main(argv) == 0 and "measuring" not in capsys.readouterr().err  # a restart: nothing changed
    monkeypatch.setattr(references, "METRICS_VERSION", references.METRICS_VERSION + 1)
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


def test_a_live_watch_measuring_every_step_again_goes_on_ingesting(tmp_path, monkeypatch):
    """Round Y: a watch restarted under changed metrics measured every step again before it
    did anything else (30 new checkpoints waited over a minute at 250 steps). Live, it measures
    for a while, looks for new checkpoints, and goes on until every step is measured."""
    from engine import signals
    from engine.cli import build_parser
    from engine.signals import references
    from engine.session import open_session
    from engine.watch import live

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
    monkeypatch.setattr(references, "METRICS_VERSION", references.METRICS_VERSION + 1)  # every step measured again
    monkeypatch.setattr(live, "HOOK_BUDGET_S", 0.0)  # a step per call
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
            wait_until(lambda: len(measured) >= 1, thread)
            write_step(run, 700, 3, seed=9)
            wait_until(lambda: len(measured) >= 7, thread, 60)
        finally:
            stop.set()
            thread.join(timeout=10)
    assert [step for step, _ in measured] == [100, 200, 300, 400, 500, 600, 700]
    assert any(stored for step, stored in measured if step < 700)  # ingested while the others were measured
    assert len(StoreReader(store).measured_steps()) == 7


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
    done = subprocess.run(cli_argv("watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                               "--no-layout", "--no-metrics", "--workers", "2", "--labels", str(labels)),
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
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


def test_alert_options_with_no_metrics_are_said_to_be_unused(tmp_path, capsys):
    """Round AB: --on-alert and --pause-on-alert with --no-metrics were accepted and never used, unsaid."""
    write_step(tmp_path / "run", 100, 2, seed=0)
    assert main(["watch", str(tmp_path / "run"), "--store", str(tmp_path / "s.zarr"), "--once", "--settle", "0",
                 "--encoder", "pixels", "--no-layout", "--no-metrics", "--on-alert", "true", "--pause-on-alert"]) == 0
    assert ("--on-alert, --pause-on-alert: not used with --no-metrics (no signal is measured, no alert raised)"
            in capsys.readouterr().err)
