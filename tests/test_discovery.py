"""Checkpoint discovery on the trainers' real layouts, readiness, content hashes, references."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.sample_fixtures import save_torchvision_grid, smooth_images, stylegan_grid, write_png

from engine.decode.samples import iter_samples
from engine.discovery import said_once, scan
from engine.discovery.identity import content_hash
from engine.discovery.names import is_real_data, is_sample_name, is_weight_file
from engine.discovery.options import DiscoveryOptions, parse_grid
from engine.discovery.ready import is_ready
from engine.discovery.samples import sample_files
from engine.discovery.scan import scan_reference, scan_run
from engine.discovery.steps import step_in_name, step_of
from engine.errors import DiscoveryError
from stores.zarr_store import StoreWriter

RNG = np.random.default_rng(0)
OLD = time.time() - 3600


def _folder_of_images(folder, n=4, size=16, names="{:05d}.png"):
    for i, image in enumerate(smooth_images(RNG, n, size)):
        write_png(folder / names.format(i), image)
    return folder


def _age(root, seconds_ago=3600.0):
    """Give every file below ``root`` an old mtime, as if it had been written long ago."""
    stamp = time.time() - seconds_ago
    for path in [root, *root.rglob("*")]:
        os.utime(path, (stamp, stamp))


def _listings_settle():
    """Wait until folders whose times were just set (:func:`_age`: their change time is now) may
    have their listings kept (engine.listings.SETTLED_LISTING_S)."""
    from engine.listings import SETTLED_LISTING_S

    time.sleep(SETTLED_LISTING_S + 0.05)


def _summary(checkpoints):
    return [(c.step, c.source, [f.relative_to(c.root).as_posix() for f in c.files]) for c in checkpoints]


@pytest.mark.parametrize("names, steps", [
    (["checkpoint-500", "checkpoint-1000"], [500, 1000]),
    (["iter5000", "iter10000"], [5000, 10000]),
    (["epoch=3-step=1000", "epoch=7-step=2000"], [1000, 2000]),
])
def test_folder_per_checkpoint(tmp_path, names, steps):
    for name in names:
        _folder_of_images(tmp_path / name)
    found = scan_run(tmp_path)
    assert [(c.step, c.source, len(c.files)) for c in found] == [(s, n, 4) for s, n in zip(steps, names)]
    assert all(c.kind == "generated" and c.root == tmp_path for c in found)


def test_nested_samples_folder_and_hf_weights_beside(tmp_path):
    for step in (1000, 500):
        ckpt = tmp_path / f"step_{step:06d}"
        _folder_of_images(ckpt / "samples")
        for name in ("optimizer.pt", "scheduler.pt", "rng_state_0.pth", "model.safetensors", "trainer_state.json"):
            (ckpt / name).write_bytes(b"x")
    (tmp_path / "checkpoint-1500").mkdir()  # weights only so far: not a checkpoint
    (tmp_path / "checkpoint-1500" / "optimizer.pt").write_bytes(b"x")
    found = scan_run(tmp_path)
    assert _summary(found) == [
        (500, "step_000500", [f"step_000500/samples/{i:05d}.png" for i in range(4)]),
        (1000, "step_001000", [f"step_001000/samples/{i:05d}.png" for i in range(4)]),
    ]


def test_lone_checkpoint_folder_with_numbered_samples_is_one_checkpoint(tmp_path):
    _folder_of_images(tmp_path / "checkpoint-500", n=8)
    assert [(c.step, c.source, len(c.files)) for c in scan_run(tmp_path)] == [(500, "checkpoint-500", 8)]
    # round AJ: one sample missing (00006.png) made it a checkpoint per image, steps 0 to 7
    (tmp_path / "checkpoint-500" / "00006.png").unlink()
    assert [(c.step, c.source, len(c.files)) for c in scan_run(tmp_path)] == [(500, "checkpoint-500", 7)]



@pytest.mark.parametrize("folder", ["step_100", "checkpoint-100", "epoch_100", "step_100/samples"])
@pytest.mark.parametrize("n, beside", [
    (16, {"broken.png": b"not a png"}),  # a corrupt or unnumbered image
    (16, {"grid.png": None}),  # a grid of the samples
    (3, {"notes.png": None, "notes.txt": b"x", "samples.json": b"{}", "labels.csv": b"file,label\n"}),
    (1, {"grid.png": None}),
    (300, {"reals.png": None}),  # the real batch saved with each checkpoint
    (16, {"model_100.pt": b"weights"}),  # the checkpoint's own weights
    (16, {"grid_100.png": None}),  # named with the checkpoint's step
    (4, {"samples_step_100.png": None}),
])
def test_a_lone_checkpoint_folder_with_a_file_beside_its_samples_is_one_checkpoint(tmp_path, folder, n, beside):
    """Round AZ: the run's only checkpoint folder holding 00000.png ... and one unnumbered image
    (a grid, a corrupt file) or its weights was read as a checkpoint per sample, at steps 0 to 15,
    until a second checkpoint came: a live watch ingested, laid out and alerted on them first."""
    _folder_of_images(tmp_path / folder, n=n, size=8)
    for name, data in beside.items():
        if data is None:
            write_png(tmp_path / folder / name, smooth_images(RNG, 1, 8)[0])
        else:
            (tmp_path / folder / name).write_bytes(data)
    top = folder.split("/")[0]
    found = scan_run(tmp_path)
    assert [(c.step, c.source) for c in found] == [(100, top)]
    assert {f.name for f in found[0].files} >= {f"{i:05d}.png" for i in range(n)}
    _folder_of_images(tmp_path / folder.replace("100", "200"), n=n, size=8)  # as read once a second one comes
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(100, top), (200, top.replace("100", "200"))]


def test_a_run_folder_with_its_reals_beside_its_first_sample_is_still_a_run(tmp_path):
    """StyleGAN's ``00000-mydata-auto1/`` at its first tick: ``reals.png`` and ``fakes_init.png``
    beside ``fakes000000.png`` say a run, not one checkpoint of three images."""
    for name in ("reals.png", "fakes_init.png", "fakes000000.png"):
        write_png(tmp_path / "00000-mydata-auto1" / name, smooth_images(RNG, 1, 8)[0])
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(0, "00000-mydata-auto1/fakes000000.png")]

def test_lightning_logs_with_one_image_folder_so_far(tmp_path):
    """``lightning_logs/version_0/images/epoch=3-step=1000/``: step 1000, not a checkpoint ``version_0``."""
    version = tmp_path / "version_0"
    _folder_of_images(version / "images" / "epoch=3-step=1000", n=4, names="{}.png")
    (version / "checkpoints").mkdir()
    torch.save({"w": torch.zeros(1)}, version / "checkpoints" / "epoch=3-step=1000.ckpt")
    (version / "hparams.yaml").write_text("lr: 0.1\n")
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(1000, "version_0/images/epoch=3-step=1000")]
    _folder_of_images(version / "images" / "epoch=7-step=2000", n=4, names="{}.png")
    assert [c.step for c in scan_run(tmp_path)] == [1000, 2000]


@pytest.mark.parametrize("names, step_regex, pattern", [
    ("step{step}_{i:02d}.png", None, "step1000_*.png"),
    ("sample_{step}_{i}.png", None, "sample_1000_*.png"),
    ("epoch_{step:05d}_img_{i:02d}.jpg", None, "epoch_01000_img_*.jpg"),
    ("step{step}_{i:02d}.png", r"step(\d+)", "step1000_*.png"),
    ("img_{i:04d}_step_{step:04d}.png", None, "img_*_step_1000.png"),  # the index first
    ("img_{i:04d}_step_{step:04d}.png", r"step_(\d+)", "img_*_step_1000.png"),
    ("sample_{k}k_{i}.png", None, "sample_1k_*.png"),  # counted in thousands: were steps 1, 2, 3
    ("img_{i:02d}_{k}k.png", None, "img_*_1k.png"),
    ("sample_{k:.1f}k_{i}.png", None, "sample_1.0k_*.png"),
    ("step_{k}k_{i:02d}.png", None, "step_1k_*.png"),
])
def test_a_flat_folder_of_single_samples_named_by_step_and_index(tmp_path, names, step_regex, pattern):
    """``samples/step1000_03.png``: one checkpoint per step (not one per index, nor per file)."""
    for step in (1000, 2000, 3000):
        for i, image in enumerate(smooth_images(RNG, 8 if step < 3000 else 3, 8)):  # step 3000 still being written
            write_png(tmp_path / "samples" / names.format(step=step, i=i, k=step // 1000), image)
    found = scan_run(tmp_path, DiscoveryOptions(step_regex=step_regex))
    assert [(c.step, len(c.files)) for c in found] == [(1000, 8), (2000, 8), (3000, 3)]
    assert found[0].source == f"samples/{pattern}"
    assert all(f.parent.name == "samples" and f.name in {names.format(step=c.step, i=i, k=c.step // 1000)
                                                         for i in range(8)} for c in found for f in c.files)
    assert all(is_ready(c, now=time.time() + 5) for c in found) and len({content_hash(c) for c in found}) == 3


def test_latent_diffusion_validation_batches_are_grouped_by_their_global_step(tmp_path):
    """latent-diffusion's ImageLogger writes ``{key}_gs-{step:06}_e-{epoch:06}_b-{batch:06}.png``;
    with two validation batches per logging step the last two numbers (epoch, batch) were read
    as step and index: steps 0, 1, 2."""
    for epoch, step in enumerate((500, 1000, 1500)):
        for batch in (0, 1):
            write_png(tmp_path / "images" / "val" / f"samples_gs-{step:06}_e-{epoch:06}_b-{batch:06}.png",
                      smooth_images(RNG, 1, 8)[0])
    found = scan_run(tmp_path)
    assert [(c.step, c.source, len(c.files)) for c in found] == [
        (step, f"images/val/samples_gs-{step:06}_e-{epoch:06}_b-*.png", 2) for epoch, step in enumerate((500, 1000, 1500))]
    # Its other default keys: the inputs and what is drawn from them are no samples.
    for key in ("inputs", "conditioning", "mask", "diffusion_row", "samples", "progressive_row", "denoise_row",
                "samples_inpainting", "samples_outpainting"):  # sampling step by step; the real input kept
        write_png(tmp_path / "images" / "train" / f"{key}_gs-000500_e-000000_b-000007.png", smooth_images(RNG, 1, 8)[0])
    assert [c.source for c in scan_run(tmp_path / "images" / "train")] == ["samples_gs-000500_e-000000_b-000007.png"]


def test_checkpoints_a_numbered_file_at_the_top_hides_are_said(tmp_path, caplog):
    """Round AF: one sample file at a run's top (`samples_2500.npz`, a plot `final_grid_3000.png`)
    makes the run read at that level, and `samples/step_N/` was never read, without a word."""
    for step in (1000, 2000):
        for i, image in enumerate(smooth_images(RNG, 3, 8)):
            write_png(tmp_path / "samples" / f"step_{step}" / f"{i}.png", image)
    np.save(tmp_path / "samples_2500.npy", smooth_images(RNG, 4, 8))
    said_once._warned.clear()
    with caplog.at_level("WARNING", logger="engine.discovery"):
        assert [c.source for c in scan_run(tmp_path)] == ["samples_2500.npy"]  # the rule stands
        scan_run(tmp_path)  # said once
    assert caplog.messages == [f"{tmp_path}: samples/ holds 2 more checkpoints (steps 1,000 to 2,000) that are not "
                               f"read: the run is read at this level (samples_2500.npy); to read them, point evowatch "
                               f"at {tmp_path / 'samples'}"]
    caplog.clear()
    (tmp_path / "samples" / "step_2000").rename(tmp_path / "real")  # real data beside: not checkpoints
    said_once._warned.clear()
    with caplog.at_level("WARNING", logger="engine.discovery"):
        scan_run(tmp_path)
    assert not [m for m in caplog.messages if "more checkpoints" in m]


def test_a_copy_of_one_checkpoint_is_not_hinted_as_checkpoints(tmp_path, caplog):
    """Round AN: ``latest/``, a copy of the newest checkpoint's ``0000.png`` ... beside
    ``checkpoint-N/``, was hinted as "16 more checkpoints (steps 0 to 15)"."""
    for step in (100, 200):
        _folder_of_images(tmp_path / f"checkpoint-{step}", names="{:04d}.png")
    shutil.copytree(tmp_path / "checkpoint-200", tmp_path / "latest")
    said_once._warned.clear()
    with caplog.at_level("WARNING", logger="engine.discovery"):
        assert [c.source for c in scan_run(tmp_path)] == ["checkpoint-100", "checkpoint-200"]
    assert not [m for m in caplog.messages if "more checkpoints" in m]


@pytest.mark.parametrize("inside", ["checkpoint-500", "step_000500/samples", "iter500", "step-500-ema"])
def test_pointed_at_one_checkpoint_says_so(tmp_path, inside, caplog):
    """Round AN: pointed at one checkpoint's folder, its ``0000.png`` ... were read as a
    checkpoint each, of one sample, at steps 0, 1, 2 ..., unsaid: one line says to point at
    the run. Said, not refused: a run may look so too (round AP: `ep25/` of per-epoch grids)."""
    run = tmp_path / "run"
    _folder_of_images(run / inside, n=12, names="{}.png")
    _folder_of_images(run / "checkpoint-1000", n=5, names="{:04d}.png")
    said_once._warned.clear()
    with caplog.at_level("WARNING", logger="engine.discovery"):
        assert [c.step for c in scan_run(run / inside)] == list(range(12))
    assert caplog.messages == [f"{run / inside}: looks like one checkpoint (its name says step 500; 12 files numbered as "
                               f"samples, 0.png to 11.png), read as a checkpoint per file: if it is one, point evowatch at "
                               f"the run folder that holds it ({run}); --step-regex says how its files' names carry steps"]
    caplog.clear()
    assert [c.step for c in scan_run(run / inside, DiscoveryOptions(step_regex=r"(\d+)\.png"))] == list(range(12))
    assert [c.step for c in scan_run(run)] == [500, 1000] and not caplog.messages


@pytest.mark.parametrize("folders, name", [
    (["step_500", "step_1000", "step_1500"], "samples_ddim50.png"),
    (["checkpoint-500", "checkpoint-1000"], "grid_512.png"),
    (["epoch_1", "epoch_2", "epoch_3"], "fake_64.png"),
    (["step_500"], "samples_ddim50.png"),
    (["step-500-ema", "step-1000-ema"], "samples_ddim50.png"),  # round AP: a word beside the counter
    (["ema_step_500", "ema_step_1000"], "fake_64.png"),
    (["checkpoint_epoch_500"], "grid_512.png"),
    (["iteration_5", "iteration_10"], "fake_64.png"),
])
def test_checkpoint_folders_whose_image_carries_a_setting_are_checkpoints(tmp_path, folders, name):
    """Round AN: `step_500/samples_ddim50.png` ... were read as folders of one prompt each
    (the whole run one checkpoint at step 50, the folders its labels); a lone such folder as
    a run of one checkpoint at step 50."""
    for folder in folders:
        (tmp_path / "r" / folder).mkdir(parents=True)
        save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "r" / folder / name, nrow=2)
    found = scan_run(tmp_path)
    assert [(c.step, c.source) for c in found] == [(step_in_name(f), f"r/{f}") for f in folders]


@pytest.mark.parametrize("run", ["ddpm_ep500/results", "run-it2", "sd15_ckpt2/samples", "lr1e-4_ep50/results"])
def test_a_run_whose_name_holds_a_counter_is_not_taken_for_one_checkpoint(tmp_path, run, caplog):
    """Round AO: a project named `ddpm_ep500` or `run-it2` holding denoising-diffusion-pytorch's
    `sample-1.png` ... was refused as one checkpoint (a live watch stopped at its second)."""
    for milestone in (1, 2, 3):
        write_png(tmp_path / run / f"sample-{milestone}.png", smooth_images(RNG, 1, 16)[0])
    said_once._warned.clear()
    with caplog.at_level("WARNING", logger="engine.discovery"):
        assert [c.step for c in scan_run(tmp_path / run)] == [1, 2, 3]
    assert "one checkpoint" not in caplog.text


def test_one_checkpoint_given_as_dot_is_said_too(tmp_path, monkeypatch, caplog):
    """Round AO: `cd checkpoint-500 && evowatch watch .` read a checkpoint per image, unsaid."""
    _folder_of_images(tmp_path / "run" / "checkpoint-500", n=3, names="{:04d}.png")
    monkeypatch.chdir(tmp_path / "run" / "checkpoint-500")
    said_once._warned.clear()
    with caplog.at_level("WARNING", logger="engine.discovery"):
        scan_run(".")
    assert "looks like one checkpoint (its name says step 500;" in caplog.text
    monkeypatch.chdir(tmp_path / "run")
    assert [(c.step, c.source) for c in scan_run(".")] == [(500, "checkpoint-500")]


@pytest.mark.parametrize("folders", [["gs_3", "gs_7", "gs_12"], ["gs-3", "gs-7"], ["gs7.5", "gs3.0"],
                                     ["0 - a dog at ep1 style", "1 - a cat"], ["step2_finetune", "step3_finetune"]])
def test_folders_per_prompt_or_setting_with_a_counter_word_are_still_series(tmp_path, folders):
    """Round AO: folders per guidance scale (`gs_3/`) or a prompt holding `ep1`, each holding
    `step_500.png` ..., were split into one checkpoint per folder (or read at the scale)."""
    for folder in folders:
        for step in (500, 1000):
            write_png(tmp_path / "samples" / folder / f"step_{step}.png", smooth_images(RNG, 1, 16)[0])
    found = scan_run(tmp_path)
    assert [(c.step, len(c.files)) for c in found] == [(500, len(folders)), (1000, len(folders))]


def test_a_project_holding_a_run_named_with_a_counter_reads_its_first_checkpoint_at_its_step(tmp_path):
    """Round AO: `exp/run_it2/samples/001000.png` alone was stored at step 2 (the run's name)."""
    write_png(tmp_path / "exp" / "run_it2" / "samples" / "001000.png", smooth_images(RNG, 1, 16)[0])
    assert [c.step for c in scan_run(tmp_path / "exp")] == [1000]


def test_run_named_like_a_step_of_series_is_still_a_run(tmp_path):
    """A folder named with a counter that holds steps (``epoch_3/step_100.png``, ``iter5/``
    holding ``sample-500.png``, ``sample-1000.png``) is a run, not one checkpoint."""
    for name in ("step_100.png", "step_200.png"):
        write_png(tmp_path / "epoch_3" / name, smooth_images(RNG, 1, 16)[0])
    for step in (500, 1000):
        write_png(tmp_path / "iter5" / f"sample-{step}.png", smooth_images(RNG, 1, 16)[0])
    assert [c.step for c in scan_run(tmp_path / "epoch_3")] == [100, 200]
    assert [c.step for c in scan_run(tmp_path / "iter5")] == [500, 1000]


@pytest.mark.parametrize("lone", ["G_3000.pt", "unet_3000.pt", "G_ema_4000.pt"])
def test_the_generators_state_dict_beside_the_samples_folder_hides_nothing(tmp_path, caplog, lone):
    """The generator's state dict (``torch.save(G.state_dict(), f"G_{step}.pt")``) beside
    ``samples/step_N``: the level was read as numbered and ``samples/`` never walked, one
    checkpoint of 0 samples stored and nothing said."""
    (tmp_path / "samples").mkdir()
    for step in (1000, 2000, 3000):
        np.save(tmp_path / "samples" / f"step_{step}.npy", smooth_images(RNG, 4, 8))
    torch.save({"w": torch.zeros(3)}, tmp_path / lone)
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(s, f"samples/step_{s}.npy") for s in (1000, 2000, 3000)]
    # round AE: only .pt state dicts: arrays so named are a trainer's samples, and inpainting models' runs are runs
    assert not any(is_weight_file(name) for name in ("gen_1000.npy", "G_1000.npz", "d_1000.npy"))
    for k, name in enumerate(("inpainting_001000.png", "sd-inpainting/step_1000.png")):
        write_png(tmp_path / f"inpaint{k}" / name, smooth_images(RNG, 1, 8)[0])
        assert [c.step for c in scan_run(tmp_path / f"inpaint{k}")] == [1000]


def test_kohya_samples_per_step_and_per_epoch_in_one_folder_are_named(tmp_path, caplog):
    """kohya-ss with --sample_every_n_steps and --sample_every_n_epochs writes both series into
    sample/: epochs 1, 2 landed before step 250 on the map without a word."""
    for k, (name, steps) in enumerate((("mylora_{:06d}", (250, 500)), ("mylora_e{:06d}", (1, 2)))):
        for step in steps:
            for i in range(2):
                stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(OLD + 1000 * k + step + i))
                write_png(tmp_path / "sample" / f"{name.format(step)}_{i:02d}_{stamp}.png", smooth_images(RNG, 1, 8)[0])
    with caplog.at_level("WARNING"):
        assert [c.step for c in scan_run(tmp_path)] == [1, 2, 250, 500]
    assert caplog.text.count("2 series of per-step files (like mylora_000250_00_") == 1
    assert "steps 250 to 500; mylora_e000001_00_" in caplog.text and "--samples GLOB reads one" in caplog.text
    caplog.clear()
    at_first = tmp_path / "at_first" / "sample"  # --sample_at_first names its step-0 sample as epoch 0: no other count
    for step, name in ((0, "mylora_e000000"), (500, "mylora_000500"), (1000, "mylora_001000")):
        for i in range(2):
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(OLD + step + i))
            write_png(at_first / f"{name}_{i:02d}_{stamp}.png", smooth_images(RNG, 1, 8)[0])
    with caplog.at_level("WARNING"):
        assert [c.step for c in scan_run(at_first.parent)] == [0, 500, 1000]
    assert "series of per-step files" not in caplog.text


def test_a_live_runs_first_per_sample_file_alone_gives_its_step_not_its_index(tmp_path):
    """A live watch of kohya-ss's ``sample/`` reads the first file, ``mylora_000500_00_<time>.png``,
    alone until the second prompt's comes: it was step 0 (the prompt index), and beside
    ``--sample_at_first``'s ``mylora_e000000_*`` it joined step 0 as a second checkpoint.
    ai-toolkit's ``<time>__000000250_0.jpg`` and ``sample_1000_0.png`` the same."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(OLD))
    for k, (name, step) in enumerate(((f"mylora_000500_00_{stamp}.png", 500), (f"000500_00_{stamp}_42.png", 500),
                                      (f"mylora_e000003_00_{stamp}.png", 3), ("1712345678901__000000250_0.jpg", 250),
                                      ("sample_1000_0.png", 1000), (f"mylora_000000_00_{stamp}.png", 0),
                                      ("cifar10_0.png", 0))):  # a number glued to a word is no step
        write_png(tmp_path / f"lone{k}" / "sample" / name, smooth_images(RNG, 1, 8)[0])
        assert [c.step for c in scan_run(tmp_path / f"lone{k}")] == [step], name
    at_first = tmp_path / "at_first" / "sample"
    for i in range(3):
        write_png(at_first / f"mylora_e000000_{i:02d}_{stamp}.png", smooth_images(RNG, 1, 8)[0])
    write_png(at_first / f"mylora_000100_00_{stamp}.png", smooth_images(RNG, 1, 8)[0])
    assert [(c.step, len(c.files)) for c in scan_run(at_first)] == [(0, 3), (100, 1)]


def test_a_lone_file_named_with_a_date_and_an_index_0_is_not_read_at_the_date(tmp_path):
    """Round BC's lone-file rule read the number before a trailing 0 as the step, a date too:
    a live run's first ``run_20240514_0.png`` was step 20,240,514 (``2024_05_14_0.png``: 14)
    until the next file came and it was read again at step 0."""
    for k, name in enumerate(("run_20240514_0.png", "2024_05_14_0.png", "samples_2024.05.14_0.png")):
        write_png(tmp_path / f"lone{k}" / "sample" / name, smooth_images(RNG, 1, 8)[0])
        assert [c.step for c in scan_run(tmp_path / f"lone{k}")] == [0], name


def test_ai_toolkit_edm2_and_muse_maskgit_runs_give_the_training_step(tmp_path, caplog):
    """ostris ai-toolkit: ``output/my_first_lora_v1/samples/{time_ms}__{step:09d}_{i}.jpg`` was
    a checkpoint per image at steps 0..5 (the prompt index; the time in front kept a step's
    files apart), and watched from ``output/``, all at step 1 (the v1). NVlabs EDM2's
    ``network-snapshot-0001000-0.100/`` folders were all step 100 (the EMA length, a decimal).
    muse-maskgit's ``vae.1000.pt`` beside its ``1000.png`` was an empty checkpoint."""
    from engine.decode.samples import iter_samples

    samples = tmp_path / "output" / "my_first_lora_v1" / "samples"
    for k, step in enumerate((0, 250, 500)):
        for i in range(3):
            write_png(samples / f"{1712345678901 + 60_000 * k + 1500 * i}__{step:09d}_{i}.jpg", smooth_images(RNG, 1, 8)[0])
    for root in (tmp_path / "output", samples.parent):
        found = scan_run(root)
        assert [(c.step, len(c.files)) for c in found] == [(0, 3), (250, 3), (500, 3)], root
    assert [s.instance for s in iter_samples(found[1])] == [0, 1, 2]
    for kimg in (1000, 2000):
        _folder_of_images(tmp_path / "edm2" / f"network-snapshot-{kimg:07d}-0.100", n=2, names="{:06d}.png")
    assert [c.step for c in scan_run(tmp_path / "edm2")] == [1000, 2000]
    for step in (1000, 2000):
        save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "muse" / f"{step}.png", nrow=2)
        torch.save({"w": torch.zeros(2)}, tmp_path / "muse" / f"vae.{step}.pt")
    assert [c.source for c in scan_run(tmp_path / "muse")] == ["1000.png", "2000.png"]
    assert "series of per-step files" not in caplog.text


def test_prompts_of_the_same_steps_are_not_called_series_of_other_counts(tmp_path, caplog):
    """SimpleTuner's ``step_{s}_{prompt}_{WxH}.png``: a series per prompt at the same steps is
    no kohya-style mix of epochs and steps."""
    for step in (100, 200):
        for prompt in ("cat", "dog"):
            for i in range(2):
                write_png(tmp_path / f"{prompt}_step{step}_{i:02d}.png", smooth_images(RNG, 1, 8)[0])
    with caplog.at_level("WARNING"):
        scan_run(tmp_path)
    assert "series of per-step files" not in caplog.text


def test_wandb_media_images_of_a_step_are_one_checkpoint_without_instance_ids(tmp_path):
    """``wandb.log({"validation": [wandb.Image(...) x 4]}, step=s)`` (diffusers' scripts) saves
    ``files/media/images/validation_{s}_{content hash}.png``: each image was a checkpoint of
    its own, one sample each, all laid out on one point."""
    import hashlib

    from engine.decode.samples import iter_samples
    media = tmp_path / "wandb" / "run-20240105_103000-3kq8x1zb" / "files" / "media" / "images"
    for step in (500, 1000):
        for image in smooth_images(RNG, 3, 8):
            write_png(media / "tmp.png", image)
            (media / "tmp.png").rename(media / f"validation_{step}_{hashlib.sha256(image.tobytes()).hexdigest()[:20]}.png")
    found = scan_run(tmp_path)
    assert [(c.step, len(c.files)) for c in found] == [(500, 3), (1000, 3)]
    assert found[0].source.endswith("media/images/validation_500_" + "?" * 20 + ".png")
    assert [s.instance for s in iter_samples(found[1])] == [-1, -1, -1]  # the hash says nothing of the order
    xflux = tmp_path / "xflux" / "media" / "images"  # x-flux: wandb.log({f"Results, step {global_step}": images})
    for step in (250, 500):
        for image in smooth_images(RNG, 4, 8):
            write_png(xflux / f"Results, step {step}_{step}_{hashlib.sha256(image.tobytes()).hexdigest()[:20]}.png", image)
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path / "xflux")] == [(250, 4), (500, 4)]  # each file alone before


def test_wandb_media_of_a_key_per_prompt_are_one_checkpoint_per_step_with_the_keys_number_as_id(tmp_path, caplog):
    """kohya-ss logs each prompt's sample as ``wandb.log({f"sample_{i}": wandb.Image(...)})``:
    W&B saves ``sample_{i}_{step}_{hash}.png``, and each file was a checkpoint of its own, one
    sample without an id, three "checkpoints" a step said to be series to pick with --samples.
    A list under such a key (its number repeated) stays the step's files as a whole."""
    import hashlib

    from engine.decode.samples import iter_samples
    media = tmp_path / "logs" / "wandb" / "run-20240105_103000-k3j9x2pq" / "files" / "media" / "images"
    for step in (500, 1000):
        for i, image in enumerate(smooth_images(RNG, 3, 8)):
            digest = hashlib.sha256(image.tobytes()).hexdigest()[:20]
            write_png(media / f"sample_{i}_{step}_{digest}.png", image)
            write_png(tmp_path / "list" / f"sample_0_{step}_{digest}.png", image)
    with caplog.at_level("WARNING"):
        found = scan_run(tmp_path / "logs")
        assert [(c.step, len(c.files)) for c in scan_run(tmp_path / "list")] == [(500, 3), (1000, 3)]
    assert [(c.step, len(c.files)) for c in found] == [(500, 3), (1000, 3)]
    assert [s.instance for s in iter_samples(found[1])] == [0, 1, 2]
    assert "either number may be the step" not in caplog.text


def test_a_flat_folders_per_sample_names_with_a_time_are_grouped_per_step(tmp_path):
    """kohya-ss's ``sample/{name}_{steps:06d}_{i:02d}_{%Y%m%d%H%M%S}.png`` (and
    ``_e{epoch:06d}_…_{seed}.png``): the time was read as the step, one checkpoint per file; the
    seed, as the step of every checkpoint. mmengine's ``{%Y%m%d_%H%M%S}/vis_data/vis_image/`` run folders are no steps."""
    from engine.decode.samples import iter_samples
    for k, steps in enumerate((500, 1000)):
        for i in range(3):
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(OLD + 300 * k + 2 * i))
            write_png(tmp_path / "sample" / f"mylora_{steps:06d}_{i:02d}_{stamp}.png", smooth_images(RNG, 1, 8)[0])
            write_png(tmp_path / "seed" / f"mylora_e{k + 1:06d}_{i:02d}_{stamp}_42.png", smooth_images(RNG, 1, 8)[0])
            write_png(tmp_path / "steps_seed" / f"mylora_{steps:06d}_{i:02d}_{stamp}_1234.png",
                      smooth_images(RNG, 1, 8)[0])
    found = scan_run(tmp_path / "sample")
    assert [(c.step, c.source, len(c.files)) for c in found] == [
        (500, "mylora_000500_*_??????????????.png", 3), (1000, "mylora_001000_*_??????????????.png", 3)]
    assert [s.instance for s in iter_samples(found[1])] == [0, 1, 2]
    by_epoch = scan_run(tmp_path / "seed", DiscoveryOptions(step_regex=r"_e(\d+)_"))
    assert [(c.step, len(c.files)) for c in by_epoch] == [(1, 3), (2, 3)]
    assert [s.instance for s in iter_samples(by_epoch[0])] == [0, 1, 2]
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path / "seed")] == [(1, 3), (2, 3)]  # no --step-regex
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path / "steps_seed")] == [(500, 3), (1000, 3)]
    assert step_in_name("samples_20240105103000_5000") == 5000  # a time that no number precedes: a run's name
    for stamp, iters in (("20240105_103000", (500, 1000)), ("20240106_091512", (1500,))):
        for it in iters:
            save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "work_dir" / stamp / "vis_data" / "vis_image"
                                  / f"fake_img_{it}.png", nrow=2)
    assert [c.step for c in scan_run(tmp_path / "work_dir")] == [500, 1000, 1500]


def test_a_flat_folder_with_a_gap_in_a_steps_indices_is_still_one_checkpoint_per_step(tmp_path):
    for step, indices in ((1000, (0, 1, 2, 3)), (2000, (0, 1, 3))):  # sample 2 of step 2000 not written (yet)
        for i in indices:
            write_png(tmp_path / "samples" / f"sample_{step}_{i}.png", smooth_images(RNG, 1, 8)[0])
    assert [(c.step, c.source, len(c.files)) for c in scan_run(tmp_path)] == [
        (1000, "samples/sample_1000_*.png", 4), (2000, "samples/sample_2000_*.png", 3)]


def _written_at(path, seconds_ago):
    os.utime(path, (time.time() - seconds_ago,) * 2)


def test_when_both_numbers_could_be_the_step_the_files_times_tell_which_one_is(tmp_path, caplog):
    """Keras WGAN-GP's ``generated_img_{i}_{epoch}.png``: both numbers small and dense; a
    step's files are written together, so the epoch is the step. Without telling times
    (a copied run), step-then-index is read, as before, and said (it was read silently: the
    sample indices as steps, the map transposed)."""
    for epoch in range(4):
        for i in range(3):
            path = write_png(tmp_path / f"generated_img_{i}_{epoch}.png", smooth_images(RNG, 1, 8)[0])
            _written_at(path, 3600 - 60 * epoch - 0.01 * i)
    found = scan_run(tmp_path)
    assert [(c.step, c.source, len(c.files)) for c in found] == [
        (epoch, f"generated_img_*_{epoch}.png", 3) for epoch in range(4)]
    assert "either number may be the step" not in caplog.text
    for path in tmp_path.iterdir():
        _written_at(path, 3600)
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path)] == [(i, 4) for i in range(3)]
    assert (f"{tmp_path}: in names like generated_img_0_0.png either number may be the step, and the files' times "
            "do not tell (written at one time: a copy?); read as step, then sample index (steps 0 to 2); if the other "
            "number is the step, say so with --step-regex") in caplog.text


def test_grids_named_by_epoch_and_batch_are_not_grouped_when_their_times_say_they_were_written_apart(tmp_path):
    """DCGAN-tensorflow's ``train_{epoch:02d}_{batch:04d}.png``, one grid per file: grouping the
    epochs of each batch number would put grids written an epoch apart into one step."""
    images = smooth_images(RNG, 4, 8)
    for epoch in range(3):
        for batch in (99, 199):
            path = save_torchvision_grid(images, tmp_path / "samples" / f"train_{epoch:02d}_{batch:04d}.png", nrow=2)
            _written_at(path, 7200 - 600 * epoch - batch)
    assert sorted(len(c.files) for c in scan_run(tmp_path)) == [1] * 6


def test_a_grid_per_step_named_with_two_numbers_stays_one_checkpoint_per_file(tmp_path):
    images = smooth_images(RNG, 16, 8)
    for name in ("epoch=3-step=1000.png", "epoch=3-step=1500.png", "epoch=4-step=2000.png"):
        save_torchvision_grid(images, tmp_path / name, nrow=4)
    assert [(c.step, c.source, len(c.files)) for c in scan_run(tmp_path)] == [
        (1000, "epoch=3-step=1000.png", 1), (1500, "epoch=3-step=1500.png", 1), (2000, "epoch=4-step=2000.png", 1)]


def test_several_runs_below_the_folder_are_read_as_runs_with_a_warning(tmp_path, caplog):
    """``lightning_logs/version_0/``, ``version_1/``: their checkpoints, not two checkpoints 0 and 1."""
    for version, steps in (("version_0", (1000, 2000)), ("version_1", (1000,))):
        for step in steps:
            _folder_of_images(tmp_path / version / "images" / f"epoch={step // 250}-step={step}", n=2, names="{}.png")
    with caplog.at_level("WARNING"):
        found = scan_run(tmp_path)
    assert [(c.step, c.source) for c in found] == [(1000, "version_0/images/epoch=4-step=1000"),
                                                   (1000, "version_1/images/epoch=4-step=1000"),
                                                   (2000, "version_0/images/epoch=8-step=2000")]
    assert "holds several runs (version_0, version_1)" in caplog.text


def test_several_runs_one_resumed_from_the_other_are_told_to_watch_them_in_turn(tmp_path, caplog):
    """Round BP: ``lightning_logs/`` whose ``version_1/`` resumed ``version_0/``'s run said "point
    evowatch at one of them" (half the run lost either way), then, at a step both wrote, to watch
    them in turn with --same-run. Runs side by side (both from step 1000) are still told to pick one."""
    for root, runs in (("resumed", (("version_0", (500, 1000, 1500)), ("version_1", (1250, 1750)))),
                       ("sweep", (("version_0", (1000, 2000)), ("version_1", (1000, 2000))))):
        for version, steps in runs:
            for step in steps:
                _folder_of_images(tmp_path / root / version / "images" / f"step={step}", n=2, names="{}.png")
    with caplog.at_level("WARNING"):
        scan_run(tmp_path / "resumed")
        scan_run(tmp_path / "sweep")
    assert (f"{tmp_path / 'resumed'}: holds several runs (version_0, version_1); their checkpoints are read together: "
            "if version_1 resumed version_0's run, watch version_0, then version_1 with --same-run, into one store"
            ) in caplog.text
    assert (f"{tmp_path / 'sweep'}: holds several runs (version_0, version_1); their checkpoints are read together: "
            "point evowatch at one of them") in caplog.text


def test_checkpoint_folders_numbered_like_runs_stay_checkpoints(tmp_path):
    for epoch in range(3):
        _folder_of_images(tmp_path / f"epoch_{epoch}", n=4)
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(0, "epoch_0"), (1, "epoch_1"), (2, "epoch_2")]


def test_samples_folders_below_an_unnumbered_folder(tmp_path):
    for step in (100, 200):
        _folder_of_images(tmp_path / "samples" / f"step_{step}", n=2)
    (tmp_path / "logs").mkdir()
    _folder_of_images(tmp_path / ".ipynb_checkpoints" / "step_300", n=1)  # hidden: ignored
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(100, "samples/step_100"), (200, "samples/step_200")]


def test_a_file_servers_own_folders_are_not_read(tmp_path):
    """Synology keeps thumbnails of every image in an ``@eaDir`` folder beside it: each sample
    was read three more times, and beside a flat folder of grids the thumbnails' folders were
    offered as checkpoints ("point evowatch at run/@eaDir")."""
    for step in (100, 200):
        folder = _folder_of_images(tmp_path / "samples" / f"step_{step}", n=2)
        for image in sorted(folder.glob("*.png")):
            _folder_of_images(folder / "@eaDir" / image.name, n=1, names="SYNOFILE_THUMB_M.png")
    _folder_of_images(tmp_path / "samples" / "#recycle" / "step_50", n=2)
    found = scan_run(tmp_path)
    assert [(c.step, c.source, len(c.files)) for c in found] == [(100, "samples/step_100", 2), (200, "samples/step_200", 2)]
    grids = tmp_path / "dcgan"
    for epoch in range(3):
        grid = save_torchvision_grid(smooth_images(RNG, 16, 16), grids / f"fake_samples_epoch_{epoch:03d}.png", nrow=4)
        _folder_of_images(grids / "@eaDir" / grid.name, n=1, names="SYNOFILE_THUMB_M.png")
    assert [c.source for c in scan_run(grids)] == [f"fake_samples_epoch_{e:03d}.png" for e in range(3)]


def _dcgan(outf):
    images = smooth_images(RNG, 64, 64)
    save_torchvision_grid(images, outf / "real_samples.png")
    for epoch in range(3):
        save_torchvision_grid(images, outf / f"fake_samples_epoch_{epoch:03d}.png")
        torch.save({"w": torch.zeros(2)}, outf / f"netG_epoch_{epoch}.pth")
        torch.save({"w": torch.zeros(2)}, outf / f"netD_epoch_{epoch}.pth")
    return images


def test_dcgan_layout(tmp_path):
    _dcgan(tmp_path)
    assert _summary(scan_run(tmp_path)) == [(e, f"fake_samples_epoch_{e:03d}.png", [f"fake_samples_epoch_{e:03d}.png"])
                                            for e in range(3)]


def _lucidrains(run):
    results = run / "results"
    for milestone in (1, 2, 12):
        save_torchvision_grid(smooth_images(RNG, 25, 16), results / f"sample-{milestone}.png", nrow=5)
        torch.save({"step": milestone * 1000, "model": {"w": torch.zeros(2)}}, results / f"model-{milestone}.pt")
    torch.save({"step": 0}, results / "model-latest.pt")


def test_lucidrains_results_layout(tmp_path):
    _lucidrains(tmp_path)
    found = scan_run(tmp_path)
    assert _summary(found) == [(m, f"results/sample-{m}.png", [f"results/sample-{m}.png"]) for m in (1, 2, 12)]
    assert _summary(scan_run(tmp_path / "results")) == [(m, f"sample-{m}.png", [f"sample-{m}.png"]) for m in (1, 2, 12)]


def _stylegan_run(run, kimgs=(0, 200, 400)):
    run.mkdir(parents=True)
    grid = stylegan_grid(smooth_images(RNG, 28, 16), 4, 7)
    for name in ("reals.png", "fakes_init.png", *(f"fakes{k:06d}.png" for k in kimgs)):
        write_png(run / name, grid)
    for k in kimgs:
        (run / f"network-snapshot-{k:06d}.pkl").write_bytes(b"pickle")
    for name in ("stats.jsonl", "log.txt", "training_options.json", "metric-fid50k_full.jsonl"):
        (run / name).write_text("{}")


@pytest.mark.parametrize("kimgs", [(0, 200, 400), (0,), (200,)])
def test_stylegan_run_dir_or_its_parent_outdir(tmp_path, kimgs):
    run = tmp_path / "00000-mydata-auto1"
    _stylegan_run(run, kimgs)
    expected = [(k, f"fakes{k:06d}.png") for k in kimgs]
    assert [(c.step, c.source) for c in scan_run(run)] == expected
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(k, f"00000-mydata-auto1/{s}") for k, s in expected]


def test_tensor_checkpoints(tmp_path):
    np.save(tmp_path / "samples_100.npy", np.zeros((4, 8, 8, 3), np.uint8))
    np.savez(tmp_path / "samples_200.npz", images=np.zeros((4, 3, 8, 8), np.float32))
    torch.save({"x": torch.zeros(4, 3, 8, 8)}, tmp_path / "samples_300.pt")
    torch.save({"model": {}}, tmp_path / "model-300.pt")  # weights by name: never a sample file
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [
        (100, "samples_100.npy"), (200, "samples_200.npz"), (300, "samples_300.pt")]


def test_tensor_per_checkpoint_folder(tmp_path):
    for step in (10, 20):
        (tmp_path / f"ckpt_{step}").mkdir()
        np.savez(tmp_path / f"ckpt_{step}" / "samples.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    assert [(c.step, c.source, [f.name for f in c.files]) for c in scan_run(tmp_path)] == [
        (10, "ckpt_10", ["samples.npz"]), (20, "ckpt_20", ["samples.npz"])]


def test_step_regex_and_empty_and_temp_files(tmp_path):
    _folder_of_images(tmp_path / "run3_ep10", n=1)
    _folder_of_images(tmp_path / "run3_ep20", n=1)
    (tmp_path / "run3_ep30").mkdir()  # empty: not a checkpoint yet
    (tmp_path / "run3_ep40").mkdir()
    (tmp_path / "run3_ep40" / "00000.png.tmp").write_bytes(b"partial")
    options = DiscoveryOptions(step_regex=r"run\d+_ep(?P<step>\d+)")
    assert [(c.step, c.source) for c in scan_run(tmp_path, options)] == [(10, "run3_ep10"), (20, "run3_ep20")]


def test_steps_named_in_names_and_numbers_that_are_no_steps():
    """The step a name says it is wins over later numbers; dates, shapes and hashes are no steps."""
    from engine.discovery.steps import step_in_name

    for name, step in [("samples_gs-005000_e-000003_b-000123", 5000),  # taming / latent-diffusion ImageLogger
                       ("epoch=3-step=1000", 1000), ("iter5000", 5000), ("step_000500", 500), ("kimg000400", 400),
                       ("img_0001_step_0500", 500), ("step1000_03", 1000),
                       ("samples_1000_3f2a9b81c0d4e5f6a7b8", 1000),  # a W&B media file: step, then a hash
                       ("checkpoint-500", 500), ("fakes000200", 200), ("fake_samples_epoch_003", 3), ("sample-12", 12),
                       ("network-snapshot-002000", 2000), ("00007", 7), ("split_3", 3), ("cafe1234", 1234),
                       ("openai-2026-01-05-10-00-00-123456", None), ("samples_16x32x32x3", None),  # guided-diffusion
                       ("2026-01-05T10-00-00_run", None),
                       ("10-30-00", None),  # Hydra's outputs/2026-12-04/10-30-00/: a time of day
                       ("DiT-XL-2-0400000-size-256-vae-ema-cfg-1.5-seed-0", 400000),  # DiT's sample_ddp.py folder
                       ("GPT-B-0050000-size-384-size-256-VQ-16-topk-0-topp-1.0-temperature-1.0-cfg-1.5-seed-0",
                        50000),  # LlamaGen's sample_c2i_ddp.py folder (was 0: topk-0)
                       ("vq_1000", 1000), ("temp_500", 500),
                       ("lr1e-4_bs64_seed0", None), ("0001000_rank1", 1000), ("image_size-64-12", 12),
                       ("batch_5000", 5000),  # PyTorch-GAN names its images by batches_done
                       ("20240105_103000", None), ("mylora_000500_00_20240105103000", 0),
                       ("gen_a2b_train_current", None), ("gen_b2a_test_00010000", 10000),  # MUNIT: "a to b"
                       ("selfie2anime_params_latest", None), ("img2img_step_300", 300),
                       ("gen_train_current_00", None),  # FUNIT's rolling copy, its image index
                       ("sample_e0_s500_p1_3", 500), ("s5_i16000", 16000),  # naifu; pytorch_GAN_zoo's scale
                       ("mylora_000500_00_20231114221548_42_000", 0),  # musubi-tuner: a seed, a frame after the time
                       ("sample_10k", 10000), ("sample_1.5k", 1500), ("ckpt_2K_07", 7),  # counted in thousands
                       ("cifar10k_step_200", 200), ("size_4k_1000", 1000),
                       ("sample_1M", 1_000_000), ("sample_1.2M", 1_200_000), ("sample_2m", 2_000_000),  # millions
                       ("run-20261206_100000-k3j9x2pq", None), ("offline-run-20261206_120000-aaaa1111", None)]:  # W&B
        assert step_in_name(name) == step, name


def test_dit_sample_folders_and_hydra_run_folders_give_the_training_step(tmp_path, caplog):
    """DiT's ``sample_ddp.py`` names its folder after the checkpoint and its settings (the
    last number is the seed) and packs it into ``FOLDER.npz`` beside it (read as a second
    checkpoint of the step: every sample twice); its weights in ``results/…/checkpoints/``
    were read as sample tensors. Hydra's ``outputs/DATE/HH-MM-SS/`` folders are runs, not steps."""
    for ckpt in ("0100000", "0200000"):
        name = f"DiT-XL-2-{ckpt}-size-256-vae-ema-cfg-1.5-seed-0"
        _folder_of_images(tmp_path / "dit" / name, n=2, names="{:06d}.png")
        np.savez(tmp_path / "dit" / f"{name}.npz", arr_0=np.zeros((2, 8, 8, 3), np.uint8))
    weights = tmp_path / "dit" / "results" / "000-DiT-XL-2" / "checkpoints"
    weights.mkdir(parents=True)
    torch.save({"model": {"w": torch.zeros(2)}}, weights / "0100000.pt")
    with caplog.at_level("WARNING"):
        assert [(c.step, c.source) for c in scan_run(tmp_path / "dit")] == [
            (100000, "DiT-XL-2-0100000-size-256-vae-ema-cfg-1.5-seed-0"),
            (200000, "DiT-XL-2-0200000-size-256-vae-ema-cfg-1.5-seed-0")]
    assert "2 files named as a folder, an image or a video beside them (DiT-XL-2-0100000-" in caplog.text
    for clock in ("10-30-00", "14-05-12"):
        for step in (1000, 2000):
            save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "outputs" / "2026-12-03" / clock / "samples"
                                  / f"step_{step:06d}.png", nrow=2)
    assert [(c.step, c.source) for c in scan_run(tmp_path / "outputs")] == [
        (1000, "2026-12-03/10-30-00/samples/step_001000.png"), (1000, "2026-12-03/14-05-12/samples/step_001000.png"),
        (2000, "2026-12-03/10-30-00/samples/step_002000.png"), (2000, "2026-12-03/14-05-12/samples/step_002000.png")]


def test_taming_image_logger_and_wandb_media_layouts(tmp_path):
    """taming-transformers' ImageLogger (``images/train/samples_gs-…_e-…_b-….png``: the batch
    index last) and a W&B run's media files (``samples_{step}_{hash}.png``) give the training step."""
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    rng = np.random.default_rng(0)
    taming, wandb = tmp_path / "taming" / "images" / "train", tmp_path / "wandb" / "media" / "images"
    for k, step in enumerate((5000, 10000, 15000)):
        save_torchvision_grid(smooth_images(rng, 8, 16), taming / f"samples_gs-{step:06d}_e-{k:06d}_b-{311 * k + 7:06d}.png", nrow=4)
        digest = f"{(step * 2654435761) % 16**20:020x}".replace("0", "a")
        save_torchvision_grid(smooth_images(rng, 8, 16), wandb / f"samples_{step}_{digest}.png", nrow=4)
    for run in (taming, wandb):
        assert [c.step for c in scan_run(run)] == [5000, 10000, 15000]


def test_weight_names():
    for name in ("model-12.pt", "model-best.pt", "netG_epoch_3.pth", "network-snapshot-000200.pkl", "last.ckpt",
                 "epoch=3-step=1000.ckpt", "model.safetensors", "optimizer.pt", "ema.pt", "training_args.bin",
                 "opt050000.pt", "training-state-002000.pt",  # guided-diffusion's optimiser, EDM's state
                 "selfie2anime_params_latest.pt", "horse2zebra_params_0010000.pt",  # U-GAT-IT
                 "ResNetGenerator_5000.npz", "SNResNetProjectionDiscriminator_5000.npz",  # sngan_projection (Chainer)
                 "otcfm_cifar10_weights_step_20000.pt",  # torchcfm: the dict of both nets, optimiser and step
                 "target_model010000.pt", "teacher_model010000.pt", "ema_0.9999_010000.pt",  # consistency models
                 "mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt", "layer_00-model_states.pt"):
        assert is_weight_file(name), name
    for name in ("sample-12.png", "samples_300.pt", "00001.npy", "fakes000200.png", "model-12.png",
                 "ema_samples_1000.pt", "model_samples_1000.npy", "generator_outputs_1000.npy", "netG_fakes_3.npz"):
        assert not is_weight_file(name), name


def test_evaluation_results_saved_as_tensors_are_no_samples(tmp_path):
    """score_sde's ``eval/ckpt_{k}/samples_{r}.npz`` beside ``statistics_{r}.npz`` (Inception
    pool_3 and logits) and ``eval/report_{k}.npz`` (IS, FID, KID): the report was a checkpoint of
    its own and every statistics file a skipped sample file."""
    for k in (1, 2):
        ckpt = tmp_path / "eval" / f"ckpt_{k}"
        ckpt.mkdir(parents=True)
        for r in range(2):
            np.savez_compressed(ckpt / f"samples_{r}.npz", samples=np.zeros((2, 8, 8, 3), np.uint8))
            np.savez_compressed(ckpt / f"statistics_{r}.npz", pool_3=np.zeros((2, 2048)), logits=np.zeros((2, 1008)))
        np.savez_compressed(tmp_path / "eval" / f"report_{k}.npz", IS=1.0, fid=2.0, kid=3.0)
    assert _summary(scan_run(tmp_path)) == [
        (k, f"eval/ckpt_{k}", [f"eval/ckpt_{k}/samples_{r}.npz" for r in range(2)]) for k in (1, 2)]
    for name in ("fid_stats.npz", "cifar10_stats.npz", "real_activations.npy", "features_1000.npy", "metrics.pt",
                 "test_ckpt_1_bpd_0.npz", "ckpt_1_loss.npz",  # score_sde / RectifiedFlow: bits per dim, eval loss
                 # guided-diffusion's FID reference batches (round AL: real images stored as generated at step 64)
                 "VIRTUAL_imagenet64_labeled.npz", "VIRTUAL_lsun_bedroom256.npz"):
        assert not is_sample_name(name, DiscoveryOptions()), name
        assert is_sample_name(name, DiscoveryOptions(), reference=True) == name.startswith("VIRTUAL"), name
    for name in ("fid_samples_1000.npz", "feature_samples.npz", "stats_1000.png", "x_1000.npy",
                 "samples_16x64x64x3.npz", "grid-8x8_1000.npz",
                 # round AM: a resolution or "virtual" in a step-numbered name dropped the whole run
                 "gen_1000_32x32.npz", "001000-32x32.npz", "epoch1000_32x32.npz", "virtual_1000.npz"):
        assert is_sample_name(name, DiscoveryOptions()), name


def test_tensor_samples_named_after_the_model_are_checkpoints(tmp_path):
    for step in (1000, 2000):
        np.save(tmp_path / f"ema_samples_{step}.npy", np.zeros((2, 8, 8, 3), np.uint8))
        torch.save({"state": torch.zeros(1)}, tmp_path / f"ema_{step}.pt")  # the weights beside them
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(1000, "ema_samples_1000.npy"),
                                                                (2000, "ema_samples_2000.npy")]


def test_a_folder_under_a_temporary_name_is_taken_once_renamed(tmp_path):
    """A trainer (or cp) writing ``step_3000.tmp/`` and renaming it: one checkpoint, step 3000."""
    for step in (1000, 2000):
        _folder_of_images(tmp_path / f"step_{step}")
    _folder_of_images(tmp_path / "step_3000.tmp")
    _folder_of_images(tmp_path / "step_2000" / "extra.partial")  # a sub-folder still being written
    found = scan_run(tmp_path)
    assert [(c.step, c.source) for c in found] == [(1000, "step_1000"), (2000, "step_2000")]
    assert all("extra.partial" not in f.as_posix() for c in found for f in c.files)
    os.rename(tmp_path / "step_3000.tmp", tmp_path / "step_3000")
    assert [c.source for c in scan_run(tmp_path)] == ["step_1000", "step_2000", "step_3000"]


def test_missing_run_dir_is_a_discovery_error(tmp_path):
    with pytest.raises(DiscoveryError, match="run directory not found"):
        scan_run(tmp_path / "nope")


def test_folder_vanishing_mid_scan_is_absent(tmp_path, monkeypatch):
    for name in ("checkpoint-500", "checkpoint-1000"):
        _folder_of_images(tmp_path / name)
    real_sample_files = sample_files

    def rotated_away(folder, options):
        if folder.name == "checkpoint-500":
            shutil.rmtree(folder)
        return real_sample_files(folder, options)

    monkeypatch.setattr(scan, "sample_files", rotated_away)
    assert [c.source for c in scan_run(tmp_path)] == ["checkpoint-1000"]


def test_is_ready_settle_and_ready_file(tmp_path):
    settle = DiscoveryOptions(settle=0.5)
    _folder_of_images(tmp_path / "checkpoint-500")
    time.sleep(0.6)
    _folder_of_images(tmp_path / "checkpoint-1000")
    old, fresh = scan_run(tmp_path)
    assert is_ready(old, settle) and not is_ready(fresh)
    now = time.time()
    assert is_ready(fresh, DiscoveryOptions(settle=2.0), now=now + 5)
    with_ready = DiscoveryOptions(ready_file="DONE")
    assert not is_ready(old, with_ready)
    (tmp_path / "checkpoint-500" / "DONE").touch()
    assert is_ready(old, with_ready)
    assert [len(c.files) for c in scan_run(tmp_path, with_ready)] == [4, 4]  # the ready file is no sample
    shutil.rmtree(tmp_path / "checkpoint-1000")
    assert not is_ready(fresh)


def test_a_store_kept_in_a_checkpoint_folder_is_no_sample_and_no_sign_of_writing(tmp_path):
    """``--store run/step_000100/evo.zarr``: the store's writes kept step 100 "being written"
    (a live watch took it only once the trainer stopped), and ``--samples '*'`` read its lock
    file as a sample; at any depth, with a killed creation's staging folder beside it."""
    run = tmp_path / "run"
    for step in (100, 200):
        _folder_of_images(run / f"step_{step:06d}")
    time.sleep(0.6)
    staging = run / "step_000100" / ".evo.zarr.creating-999999999"
    staging.mkdir()
    (staging / "zarr.json").write_text("{}")
    encoder = {"identity": "test:8", "dim": 8}
    with StoreWriter(run / "step_000100" / "evo.zarr", encoder), \
            StoreWriter(run / "step_000200" / "eval" / "s.zarr", encoder):
        assert (run / "step_000100" / "evo.zarr.lock").is_file()  # held while the writer runs: written just now
        for options in (DiscoveryOptions(settle=0.5), DiscoveryOptions(sample_globs=("*",), settle=0.5)):
            found = scan_run(run, options)
            assert _summary(found) == [(step, f"step_{step:06d}", [f"step_{step:06d}/{i:05d}.png" for i in range(4)])
                                       for step in (100, 200)]
            assert all(is_ready(c, options) for c in found)


def test_a_copy_that_keeps_old_file_times_is_taken_once_it_settles(tmp_path):
    """rsync -a, cp -a, scp -p and sshfs give each file the source's old mtime: read by mtime,
    a checkpoint being copied was taken at once, again with each file that came (a version per
    file), whatever --settle. The file's change time, which no copy can set, says it came now."""
    _folder_of_images(tmp_path / "checkpoint-500")
    _age(tmp_path / "checkpoint-500")  # the times the copy kept
    (checkpoint,) = scan_run(tmp_path)
    assert not is_ready(checkpoint)
    assert is_ready(checkpoint, now=time.time() + 5)
    _age(tmp_path / "checkpoint-500", seconds_ago=-600)  # a clock 10 minutes ahead: not held back for them
    assert is_ready(checkpoint, now=time.time() + 5)


def test_ready_file_beside_a_single_file_checkpoint(tmp_path):
    write_png(tmp_path / "sample-3.png", smooth_images(RNG, 1, 16)[0])
    write_png(tmp_path / "sample-4.png", smooth_images(RNG, 1, 16)[0])
    options = DiscoveryOptions(ready_file="{stem}.done")
    (tmp_path / "sample-3.done").touch()
    assert [is_ready(c, options) for c in scan_run(tmp_path, options)] == [True, False]


def test_a_checkpoint_across_per_sample_folders_waits_for_the_ready_file_in_each(tmp_path):
    """``samples/cat/step_1000.png`` beside ``samples/dog/step_1000.png`` is one checkpoint: its
    --ready-file is written beside each folder's image, and it is complete once all are there (one
    folder's alone says nothing of the other folders' images)."""
    for label in ("cat", "dog"):
        for step in (1000, 2000):
            write_png(tmp_path / "samples" / label / f"step_{step}.png", np.zeros((8, 8, 3), np.uint8))
    options = DiscoveryOptions(ready_file="{stem}.done")
    checkpoint = scan_run(tmp_path, options)[0]
    assert checkpoint.source == "samples/{sample}/step_1000.png" and not is_ready(checkpoint, options)
    (tmp_path / "samples" / "cat" / "step_1000.done").touch()
    assert not is_ready(checkpoint, options)
    (tmp_path / "samples" / "dog" / "step_1000.done").touch()
    assert is_ready(checkpoint, options)


def test_folder_renamed_into_place_is_ready_at_once(tmp_path):
    """Its files were written, and their times set, before the rename: it is taken at once."""
    staging = tmp_path / "staging"
    _folder_of_images(staging / "tmp-write")
    time.sleep(0.6)
    (tmp_path / "run").mkdir()
    os.rename(staging / "tmp-write", tmp_path / "run" / "checkpoint-700")
    (checkpoint,) = scan_run(tmp_path / "run")
    assert checkpoint.step == 700 and is_ready(checkpoint, DiscoveryOptions(settle=0.5))


def test_content_hash_follows_bytes_and_names(tmp_path):
    images = _dcgan(tmp_path)
    first = scan_run(tmp_path)
    hashes = [content_hash(c) for c in first]
    assert len(set(hashes)) == 3  # same pixels, different names
    assert content_hash(first[0]) == hashes[0]
    kept = {content_hash(first[0], DiscoveryOptions(**choice)) for choice in (
        {}, {"tile_rows": (2, None, None)}, {"tile_rows": (3, 4, None)}, {"tile_cols": (2, None, None)})}
    assert len(kept) == 4  # read again, the rows read before superseded, when another choice of tiles is made
    save_torchvision_grid(images[::-1].copy(), tmp_path / "fake_samples_epoch_000.png")  # rewritten in place
    assert content_hash(scan_run(tmp_path)[0]) != hashes[0]
    os.remove(tmp_path / "fake_samples_epoch_001.png")
    with pytest.raises(FileNotFoundError):
        content_hash(first[1])


def test_a_reference_folder_leaves_out_files_named_as_generated(tmp_path, caplog):
    """`--real checkpoints/NAME/web/images` (pix2pix writes real_A, real_B and fake_B there):
    its fake_B images were taken as real data, and every sample was a near-copy of it."""
    for epoch in (1, 2):
        for series in ("real_A", "real_B", "fake_B"):
            write_png(tmp_path / "images" / f"epoch{epoch:03d}_{series}.png", smooth_images(RNG, 1, 8)[0])
    with caplog.at_level("WARNING"):
        ref = scan_reference(tmp_path / "images", "real")
    assert sorted(f.name for f in ref.files) == [f"epoch00{e}_real_{x}.png" for e in (1, 2) for x in "AB"]
    assert ("2 files named as generated samples (epoch001_fake_B.png, epoch002_fake_B.png) are not read as --real "
            "data") in caplog.text
    assert len(scan_reference(tmp_path / "images", "real", DiscoveryOptions(sample_globs=("*.png",))).files) == 6


def test_reading_settings_of_the_samples_leave_a_reference_sets_hash_alone(tmp_path):
    """--grid, --tile-size, --tile-rows/--tile-cols and --step-regex salted the --real and
    --holdout sets' hashes too: a watch given one read every reference image again and
    measured every step again."""
    _folder_of_images(tmp_path / "real")
    real = scan_reference(tmp_path / "real", "real")
    options = DiscoveryOptions(grid=(2, 2), tile_size=8, tile_rows=slice(1, None), step_regex=r"step(\d+)")
    assert content_hash(real, options) == content_hash(real)
    assert content_hash(real, DiscoveryOptions(value_range=(-1.0, 1.0))) != content_hash(real)  # tensors read otherwise


def test_scan_reference_imagefolder(tmp_path):
    for label in ("cat", "dog"):
        _folder_of_images(tmp_path / "train" / label, n=3)
    (tmp_path / "train" / "README.txt").write_text("not a sample")
    ref = scan_reference(tmp_path / "train", "real")
    assert (ref.step, ref.kind, ref.root, len(ref.files)) == (-1, "real", tmp_path / "train", 6)
    held = scan_reference(tmp_path / "train", "holdout")
    assert held.kind == "holdout" and held.source != ref.source
    with pytest.raises(DiscoveryError, match="not found"):
        scan_reference(tmp_path / "val", "holdout")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiscoveryError, match="no sample files"):
        scan_reference(tmp_path / "empty", "real")
    with pytest.raises(ValueError, match="'real' or 'holdout'"):
        scan_reference(tmp_path / "train", "generated")


def test_parse_grid():
    assert parse_grid("8x8") == (8, 8)
    assert parse_grid(" 16X30 ") == (16, 30)
    for bad in ("8", "8x", "0x8", "axb", "8x8x8", ""):
        with pytest.raises(ValueError, match="ROWSxCOLS"):
            parse_grid(bad)


def test_options_validation():
    with pytest.raises(ValueError, match="regular expression"):
        DiscoveryOptions(step_regex="(")
    with pytest.raises(ValueError, match="settle"):
        DiscoveryOptions(settle=-1)
    assert DiscoveryOptions(sample_globs="*.png").sample_globs == ("*.png",)


def test_files_named_as_real_data_are_no_samples_unless_the_globs_name_them(tmp_path, caplog):
    """CycleGAN's ``web/images/epoch001_real_A.png`` beside ``epoch001_fake_B.png``; its
    ``rec_A`` (real_A through both generators) is a reconstruction of a real input."""
    for epoch in (1, 2):
        for series in ("real_A", "fake_B", "rec_A", "real_B"):
            write_png(tmp_path / "web" / "images" / f"epoch{epoch:03d}_{series}.png", smooth_images(RNG, 1, 8)[0])
    with caplog.at_level("WARNING", logger="engine.discovery"):
        sources = [c.source for c in scan_run(tmp_path)]
    assert sources == [f"web/images/epoch{e:03d}_fake_B.png" for e in (1, 2)]
    assert "6 files named as real data or made from it (epoch001_real_A.png, epoch001_real_B.png, ...)" in caplog.text
    chosen = scan_run(tmp_path, DiscoveryOptions(sample_globs=("*_real_A.png",)))
    assert [c.source for c in chosen] == ["web/images/epoch001_real_A.png", "web/images/epoch002_real_A.png"]


def test_plots_of_the_runs_numbers_are_no_samples_unless_the_globs_name_them(tmp_path):
    """A GAN tutorial saving ``images/epoch_001.png`` grids and ``plots/loss_epoch_1.png`` each
    epoch: the loss plot was a one-sample checkpoint beside each epoch's grid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for epoch in (1, 2):
        save_torchvision_grid(smooth_images(RNG, 16, 16), tmp_path / "images" / f"epoch_{epoch:03d}.png", nrow=4)
        for name in (f"plots/loss_epoch_{epoch}.png", f"images/G_D_losses_{epoch}.png", f"fid_curve_{epoch}.png"):
            fig = plt.figure(figsize=(3, 2))
            plt.plot(RNG.normal(size=20).cumsum())
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(tmp_path / name)
            plt.close(fig)
    assert [c.source for c in scan_run(tmp_path)] == ["images/epoch_001.png", "images/epoch_002.png"]
    chosen = scan_run(tmp_path, DiscoveryOptions(sample_globs=("loss_epoch_*.png",)))
    assert [c.source for c in chosen] == ["plots/loss_epoch_1.png", "plots/loss_epoch_2.png"]
    assert is_sample_name("samples_curve_3.png", DiscoveryOptions())  # named as samples
    assert is_sample_name("loss_3.png", DiscoveryOptions(), reference=True)  # a reference set is never filtered


def test_files_left_out_as_plots_are_said(tmp_path, caplog):
    """A 2-D toy GAN's ``plot_1000.png`` (the scatter of its samples), a curve model's
    ``step_1000/curve_0.png``: left out as plots with no word, the run said only "no checkpoints
    found"; a ``loss_curve.png`` beside a checkpoint's samples is said too, at -v's level of detail."""
    for step in (1000, 2000):
        write_png(tmp_path / "toy" / f"plot_{step}.png", smooth_images(RNG, 1, 32)[0])
        for i, image in enumerate(smooth_images(RNG, 2, 16)):
            write_png(tmp_path / "curves" / f"step_{step}" / f"curve_{i}.png", image)
        save_torchvision_grid(smooth_images(RNG, 16, 16), tmp_path / "gan" / f"step_{step}" / "samples.png", nrow=4)
        write_png(tmp_path / "gan" / f"step_{step}" / "loss_curve.png", smooth_images(RNG, 1, 32)[0])
    with caplog.at_level("INFO", logger="engine.discovery"):
        assert scan_run(tmp_path / "toy") == [] and scan_run(tmp_path / "curves") == []
        assert [[Path(f).name for f in c.files] for c in scan_run(tmp_path / "gan")] == [["samples.png"]] * 2
    said = "not read as samples (--samples GLOB reads them)"
    assert (f"{tmp_path / 'toy'}: 2 files named as plots of the run's numbers (plot_1000.png, plot_2000.png) "
            f"are {said}") in caplog.text
    assert (f"{tmp_path / 'curves'}: 4 files named as plots of the run's numbers (step_1000/curve_0.png, "
            f"step_1000/curve_1.png, ...) are {said}") in caplog.text
    assert (f"{tmp_path / 'gan' / 'step_1000'}: 1 file named as plots of the run's numbers (loss_curve.png) "
            f"{said}") in caplog.text
    assert [c.step for c in scan_run(tmp_path / "toy", DiscoveryOptions(sample_globs=("plot_*.png",)))] == [1000, 2000]


def test_a_tensor_file_beside_an_image_of_its_name_in_a_checkpoint_folder_is_not_read_twice(tmp_path, caplog):
    """``samples/iter_1000/sample.png`` (a grid) beside ``sample.npz`` (the same 16 samples, as
    score_sde keeps them): every sample was stored twice, each its own near-duplicate."""
    for step in (1000, 2000):
        images = smooth_images(RNG, 16, 16)
        save_torchvision_grid(images, tmp_path / "samples" / f"iter_{step}" / "sample.png", nrow=4)
        np.savez(tmp_path / "samples" / f"iter_{step}" / "sample.npz", samples=images)
    with caplog.at_level("INFO", logger="engine.discovery"):
        found = scan_run(tmp_path)
    assert [(c.step, [Path(f).name for f in c.files]) for c in found] == [(1000, ["sample.png"]), (2000, ["sample.png"])]
    assert "sample.npz beside an image of its name: the same samples packed, not read again" in caplog.text
    chosen = scan_run(tmp_path, DiscoveryOptions(sample_globs=("*.npz",)))
    assert [[Path(f).name for f in c.files] for c in chosen] == [["sample.npz"], ["sample.npz"]]


def _preview_beside_tensor(folder: Path, stem: str, held: int, shown: int = 16, layout: str = "nhwc",
                           save=np.savez) -> np.ndarray:
    """``{stem}.png``, a grid of the first ``shown`` samples (torchvision's, padding 2), beside
    ``{stem}.npz`` holding ``held`` samples (laid out NHWC or NCHW); returns them, NHWC."""
    images = smooth_images(RNG, held, 16)
    save_torchvision_grid(images[:shown], folder / f"{stem}.png", nrow=4)
    save(folder / f"{stem}.npz", samples=images if layout == "nhwc" else images.transpose(0, 3, 1, 2))
    return images


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("flat", [False, True], ids=["in_checkpoint_folders", "beside_at_a_level"])
def test_a_tensor_file_holding_more_samples_than_the_image_of_its_name_shows_is_read_instead(tmp_path, caplog,
                                                                                              layout, flat):
    """Round BQ1: ``iter_1000/sample.png`` (the first 16 samples) beside ``sample.npz`` (all 64)
    was read for the image: 48 of 64 samples lost, and said to be "the same samples packed"."""
    held = {}
    for step in (1000, 2000):
        folder, stem = (tmp_path / "samples", f"step_{step}") if flat else (tmp_path / f"iter_{step}", "sample")
        held[step] = _preview_beside_tensor(folder, stem, 64, layout=layout)
    with caplog.at_level("INFO", logger="engine.discovery"):
        found = scan_run(tmp_path)
    assert [(c.step, [Path(f).name for f in c.files]) for c in found] == [
        (1000, ["step_1000.npz" if flat else "sample.npz"]), (2000, ["step_2000.npz" if flat else "sample.npz"])]
    said = ("2 images show fewer samples than the tensor files of their names beside them (step_1000.png: at most "
            "16 of step_1000.npz's 64, ...): previews, not read" if flat else
            "sample.png shows at most 16 of the 64 samples in sample.npz beside it: a preview, not read; sample.npz "
            "is read instead (--samples GLOB picks one)")
    assert said in caplog.text and "the same samples packed" not in caplog.text
    samples = list(iter_samples(found[0]))
    assert len(samples) == 64 and np.array_equal(np.stack([s.image for s in samples]), held[1000])  # every one, exact


def test_a_tensor_file_of_as_many_samples_or_compressed_beside_an_image_is_still_read_once_from_the_image(tmp_path):
    """What the headers cannot tell apart from the same samples packed stays read from the image:
    16 samples beside a grid of 16, a compressed ``.npz`` (its header is inside the compressed
    bytes), a ``.pt``; ``--samples`` still picks the tensor."""
    _preview_beside_tensor(tmp_path / "same" / "iter_1000", "sample", 16)
    _preview_beside_tensor(tmp_path / "compressed" / "iter_1000", "sample", 64, save=np.savez_compressed)
    _preview_beside_tensor(tmp_path / "flat_same" / "samples", "step_1000", 16)
    for run in ("same", "compressed", "flat_same"):
        assert [[Path(f).suffix for f in c.files] for c in scan_run(tmp_path / run)] == [[".png"]], run
    chosen = scan_run(tmp_path / "same", DiscoveryOptions(sample_globs=("*.npz",)))
    assert [[Path(f).name for f in c.files] for c in chosen] == [["sample.npz"]]


def test_a_lone_checkpoint_folder_read_as_a_probe_says_nothing_left_out_at_its_level(tmp_path, caplog):
    """Round BR: ``iter_1000/`` alone, ``sample.npz`` beside ``sample.png`` (16 each): asking whether
    ``iter_1000`` is a run read its level and warned the npz "left out: ... weights saved beside
    their samples", beside the checkpoint's own line; a level read as a run's still says it."""
    said_once._warned.clear()
    _preview_beside_tensor(tmp_path / "run" / "iter_1000", "sample", 16)
    _preview_beside_tensor(tmp_path / "flat", "step_1000", 16)
    with caplog.at_level("INFO", logger="engine.discovery"):
        assert [[Path(f).name for f in c.files] for c in scan_run(tmp_path / "run")] == [["sample.png"]]
    assert "left out" not in caplog.text and "sample.npz beside an image of its name" in caplog.text
    assert [[Path(f).name for f in c.files] for c in scan_run(tmp_path / "flat")] == [["step_1000.png"]]
    assert "1 file named as a folder, an image or a video beside it (step_1000.npz) left out" in caplog.text


@pytest.mark.parametrize("beside", [np.zeros((64, 4, 32, 32), np.float32), np.zeros((64, 512), np.float32)],
                         ids=["latents_nx4xhxw", "features_64x512"])
def test_an_array_beside_a_grid_that_cannot_be_its_samples_leaves_the_grid_read(tmp_path, beside):
    """Round BR: Stable Diffusion's N x 4 x 32 x 32 latents beside the decoded grid were read as 64
    RGBA samples, and (64, 512) features as one 64 x 512 "sample" the grid "shows 0 of": the grid
    was left out as their preview."""
    folder = tmp_path / "iter_1000"
    save_torchvision_grid(smooth_images(RNG, 16, 32), folder / "sample.png", nrow=4)
    np.save(folder / "sample.npy", beside)
    assert [[Path(f).name for f in c.files] for c in scan_run(tmp_path)] == [["sample.png"]]


def test_a_tensor_file_rewritten_in_place_with_more_samples_is_asked_again(tmp_path):
    """Whether the image is a preview is asked of the files at every pass, apart from the kept
    listings: ``np.savez`` over the file leaves its folder's times as they were (first seen
    being written, with as many samples as the image shows, it stayed unread)."""
    folder = tmp_path / "iter_1000"
    _preview_beside_tensor(folder, "sample", 16)
    _age(tmp_path)  # settled: its listing is kept
    assert [Path(f).name for f in scan_run(tmp_path)[0].files] == ["sample.png"]
    times = os.stat(folder).st_mtime_ns, os.stat(folder).st_ctime_ns
    np.savez(folder / "sample.npz", samples=smooth_images(RNG, 64, 16))
    assert (os.stat(folder).st_mtime_ns, os.stat(folder).st_ctime_ns) == times
    assert [Path(f).name for f in scan_run(tmp_path)[0].files] == ["sample.npz"]


def test_reconstructions_of_real_inputs_are_no_samples(tmp_path, caplog):
    """pytorch/examples VAE's ``results/reconstruction_3.png`` (8 test inputs above their
    reconstructions) beside ``sample_3.png``, PyTorch-VAE's ``Reconstructions/`` beside
    ``Samples/``: every step measured real inputs and their copies with its samples (a false
    memorisation alert). Alone (taming's VQGAN, an autoencoder) they are left out too, said,
    so that a live watch does not read them before the samples of the same step appear."""
    for epoch in (1, 2):
        for name in (f"reconstruction_{epoch}.png", f"sample_{epoch}.png"):
            save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "vae" / "results" / name, nrow=2)
        for name in (f"Reconstructions/recons_VanillaVAE_Epoch_{epoch}.png", f"Samples/VanillaVAE_Epoch_{epoch}.png"):
            save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "antixk" / "version_0" / name, nrow=2)
        save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "alone" / f"reconstructions_gs-{epoch:06d}.png", nrow=2)
    with caplog.at_level("WARNING", logger="engine.discovery"):
        assert [c.source for c in scan_run(tmp_path / "vae")] == ["results/sample_1.png", "results/sample_2.png"]
        assert [c.source for c in scan_run(tmp_path / "antixk" / "version_0")] == [
            "Samples/VanillaVAE_Epoch_1.png", "Samples/VanillaVAE_Epoch_2.png"]
        assert scan_run(tmp_path / "alone") == []
    assert (f"{tmp_path / 'vae' / 'results'}: 2 files named as real data or made from it (reconstruction_1.png, "
            "reconstruction_2.png) are not read as samples (--samples GLOB reads them)") in caplog.text
    assert f"{tmp_path / 'antixk' / 'version_0'}: 1 folder named as real data or made from it (Reconstructions/)" in caplog.text
    chosen = scan_run(tmp_path / "vae", DiscoveryOptions(sample_globs=("reconstruction_*.png",)))
    assert [c.source for c in chosen] == ["results/reconstruction_1.png", "results/reconstruction_2.png"]
    for name in ("rec_A", "x_recon", "recons", "reconst-3", "Reconstructions", "reconstructed_500",
                 "train_img", "train_img_0", "train_images"):  # MONAI's tags of a training image
        assert is_real_data(name, DiscoveryOptions()), name
    for name in ("record_500", "recall", "precision", "recipe_3", "direction", "validation_images", "val_diff_synimg"):
        assert not is_real_data(name, DiscoveryOptions()), name


def test_folders_named_as_real_data_are_no_samples(tmp_path, caplog):
    """A copy of the training images beside the samples (``run/real/00000.png``, which was read
    as 16 checkpoints, steps 0..15), and ``step_1000/real/`` beside ``step_1000/fake/``."""
    _folder_of_images(tmp_path / "run" / "real", n=16)
    for step in (1000, 2000):
        _folder_of_images(tmp_path / "run" / "samples" / f"step_{step}", n=2)
        for series in ("real", "fake"):
            _folder_of_images(tmp_path / "pairs" / f"step_{step}" / series, n=2)
    (tmp_path / "run" / "inputs").mkdir()
    (tmp_path / "run" / "inputs" / "prompts.txt").write_text("a cat\n")  # no images: not named
    with caplog.at_level("WARNING", logger="engine.discovery"):
        assert [(c.step, c.source) for c in scan_run(tmp_path / "run")] == [(1000, "samples/step_1000"),
                                                                            (2000, "samples/step_2000")]
    assert f"{tmp_path / 'run'}: 1 folder named as real data or made from it (real/) is not read as samples" in caplog.text
    assert [[f.relative_to(c.root).as_posix() for f in c.files] for c in scan_run(tmp_path / "pairs")] == [
        [f"step_{step}/fake/{i:05d}.png" for i in range(2)] for step in (1000, 2000)]
    assert [len(c.files) for c in scan_run(tmp_path / "pairs", DiscoveryOptions(sample_globs=("*.png",)))] == [4, 4]


def test_tensor_files_in_a_checkpoint_folder_are_weights_whatever_their_names(tmp_path):
    """rosinality's stylegan2-pytorch: ``checkpoint/000100.pt`` beside ``sample/000100.png``."""
    (tmp_path / "checkpoint").mkdir()
    for step in (0, 100):
        torch.save({"g": {"w": torch.zeros(2)}}, tmp_path / "checkpoint" / f"{step:06d}.pt")
        save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "sample" / f"{step:06d}.png", nrow=2)
    assert [c.source for c in scan_run(tmp_path)] == ["sample/000000.png", "sample/000100.png"]


def test_imaginaire_checkpoints_are_weights_and_taming_inputs_are_real_data(tmp_path):
    """Imaginaire: ``epoch_00001_iteration_000001000_checkpoint.pt`` beside ``images/``;
    taming's ImageLogger: ``inputs_gs-…`` (its training images) beside ``samples_gs-…`` and
    ``reconstructions_gs-…`` (the inputs through the autoencoder)."""
    for step in (500, 1000):
        torch.save({"net_G": {"w": torch.zeros(2)}}, tmp_path / f"epoch_00001_iteration_{step:09d}_checkpoint.pt")
        for series in ("inputs", "reconstructions", "samples"):
            save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "images" / f"{series}_gs-{step:06d}_e-000001.png",
                                  nrow=2)
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [
        (500, "images/samples_gs-000500_e-000001.png"), (1000, "images/samples_gs-001000_e-000001.png")]


def test_step_regex_may_name_the_extension_and_tiff_and_gif_are_images(tmp_path):
    for step in (5, 10):
        for ext in (".tiff", ".gif"):
            write_png(tmp_path / f"grid_{step}_x{ext}", smooth_images(RNG, 1, 8)[0])
    assert [c.step for c in scan_run(tmp_path, DiscoveryOptions(step_regex=r"_(\d+)_x\.tiff"))] == [5, 10]
    assert len(scan_run(tmp_path, DiscoveryOptions(step_regex=r"grid_(\d+)"))) == 4


@pytest.mark.parametrize("names, expected", [
    # a grid per step and the EMA model's beside it: two series, not one checkpoint of both
    (["step_1000.png", "step_1000_ema.png", "step_2000.png", "step_2000_ema.png"],
     [(1000, "step_1000.png"), (1000, "step_1000_ema.png"), (2000, "step_2000.png"), (2000, "step_2000_ema.png")]),
    # Lightning's logged images, one of each kind per step: no name comes back twice in a step
    (["step=1000-val_samples.png", "step=2000-val_samples.png"],
     [(1000, "step=1000-val_samples.png"), (2000, "step=2000-val_samples.png")]),
    # every step's prompts are new ones: nothing tells the step's files are its samples
    (["step_100_cat.png", "step_100_dog.png", "step_200_cow.png", "step_200_owl.png"], None),
    # prompts that come back at every step: one checkpoint per step
    (["step_100_cat.png", "step_100_dog.png", "step_200_cat.png", "step_200_dog.png"],
     [(100, "step_100_{sample}.png"), (200, "step_200_{sample}.png")]),
])
def test_a_steps_files_named_by_prompt_are_grouped_only_when_the_names_come_back(tmp_path, names, expected):
    for name in names:
        write_png(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    found = [(c.step, c.source) for c in scan_run(tmp_path)]
    assert found == (expected or sorted((int(n.split("_")[1]), n) for n in names))



def test_folders_of_one_class_each_holding_its_image_per_step_are_one_checkpoint_per_step(tmp_path, caplog):
    """``samples/cat/step_1000.png`` beside ``samples/dog/step_1000.png``: a checkpoint per
    file, two per step, before; each folder is a sample now. Folders of indexed samples
    (``checkpoint-500/00000.png``) and a lone folder stay as they were."""
    for label in ("cat", "dog"):
        for step in (1000, 2000):
            write_png(tmp_path / "run" / "samples" / label / f"step_{step}.png", np.zeros((8, 8, 3), np.uint8))
    with caplog.at_level("INFO", logger="engine.discovery"):  # an info line: a CLI test may have set "engine" quieter
        found = scan_run(tmp_path / "run")
    assert "2 folders (cat, dog) hold an image at every step: one checkpoint per step, each folder's samples" in caplog.text
    assert [(c.step, c.source) for c in found] == [(1000, "samples/{sample}/step_1000.png"),
                                                   (2000, "samples/{sample}/step_2000.png")]
    assert [p.parent.name for p in found[0].files] == ["cat", "dog"]
    for step in (500, 1000):
        for i in range(2):
            write_png(tmp_path / "ckpt" / f"checkpoint-{step}" / f"{i:05d}.png", np.zeros((8, 8, 3), np.uint8))
    assert [(c.step, c.source) for c in scan_run(tmp_path / "ckpt")] == [(500, "checkpoint-500"), (1000, "checkpoint-1000")]
    write_png(tmp_path / "one" / "samples" / "cat" / "step_1000.png", np.zeros((8, 8, 3), np.uint8))
    assert [c.source for c in scan_run(tmp_path / "one")] == ["samples/cat/step_1000.png"]


def test_folders_of_one_sample_counted_from_zero_are_steps_when_written_together(tmp_path):
    """DVCLive's ``live.log_image(f"sample_{i}/{live.step}.png", img)`` at its default step
    (0, 1, 2 ...): each folder was a checkpoint at its index, its steps read as 3 samples. The
    times tell them from folders of indexed samples written one class after another."""
    start = time.time() - 1000
    for step in range(3):
        for i in range(4):
            path = write_png(tmp_path / "dvclive" / "plots" / "images" / f"sample_{i}" / f"{step}.png",
                             smooth_images(RNG, 1, 8)[0])
            os.utime(path, (start + 60 * step + i, start + 60 * step + i))
    found = scan_run(tmp_path / "dvclive")
    assert [(c.step, [f.parent.name for f in c.files]) for c in found] == [
        (step, [f"sample_{i}" for i in range(4)]) for step in range(3)]
    for k, label in enumerate(("cat", "dog")):  # a sampler's classes, one after the other: indexed samples
        for i in range(3):
            path = write_png(tmp_path / "classes" / "step_1000" / label / f"{i}.png", smooth_images(RNG, 1, 8)[0])
            os.utime(path, (start + 30 * k + 5 * i, start + 30 * k + 5 * i))
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path / "classes")] == [(1000, 6)]


def test_the_training_data_folder_of_a_trainers_working_directory_is_no_checkpoint(tmp_path, caplog):
    """Self-Attention-GAN watched from where it runs: ``data/CelebA/img_align_celeba/000001.jpg``
    ... were each a checkpoint (step 1, 2, ...) beside ``samples/sagan_1/3000_fake.png``."""
    run = tmp_path / "run"
    for i in (1, 2, 3):
        write_png(run / "data" / "CelebA" / "img_align_celeba" / f"{i:06d}.png", np.zeros((8, 8, 3), np.uint8))
    for step in (3000, 3100):
        write_png(run / "samples" / "sagan_1" / f"{step}_fake.png", np.zeros((8, 8, 3), np.uint8))
        (run / "models" / "sagan_1").mkdir(parents=True, exist_ok=True)
        torch.save({"w": torch.zeros(1)}, run / "models" / "sagan_1" / f"{step}_G.pth")
    with caplog.at_level("WARNING"):
        found = [(c.step, c.source) for c in scan_run(run)]
    assert found == [(3000, "samples/sagan_1/3000_fake.png"), (3100, "samples/sagan_1/3100_fake.png")]
    assert "1 folder named as real data or made from it (data/) is not read as samples" in caplog.text


@pytest.mark.parametrize("names, steps", [
    # DCGAN-tensorflow: train_{epoch:02d}_{idx:04d}.png, the batch index starting again each epoch
    (["train_00_0899.png", "train_00_0999.png", "train_01_0006.png", "train_01_0106.png"], [899, 999, 10006, 10106]),
    # dome272's VQGAN: results/{epoch}_{i}.jpg, unpadded
    (["0_0.png", "0_10.png", "0_20.png", "1_0.png", "1_10.png"], [0, 10, 20, 100, 110]),
])
def test_files_named_by_epoch_and_batch_in_it_are_in_training_order(tmp_path, names, steps):
    """Read by their last number, epoch 1's samples came before epoch 0's (steps 6, 106, 899, 999)."""
    start = time.time() - 1000
    for i, name in enumerate(names):
        write_png(tmp_path / "run" / name, np.zeros((8, 8, 3), np.uint8))
        os.utime(tmp_path / "run" / name, (start + 10 * i,) * 2)  # in the order the trainer wrote them
    found = {c.source: c.step for c in scan_run(tmp_path / "run")}
    assert [found[name] for name in names] == steps
    for name in names:  # a copy, every file of one time: nothing tells the batch starts again
        os.utime(tmp_path / "run" / name, (start,) * 2)
    assert sorted(c.step for c in scan_run(tmp_path / "run")) != sorted(steps)


@pytest.mark.parametrize("names, steps", [
    # VQ-Diffusion's default config samples at each epoch's end: itr is the same in every name
    (["e0000000000_itr0000002999_rank0_ema.jpg", "e0000000001_itr0000002999_rank0_ema.jpg",
      "e0000000002_itr0000002999_rank0_ema.jpg"], [2999, 10000002999, 20000002999]),
    # every 2000 of 3000 iterations per epoch: itr 1999, 999, 2999, 1999 (epochs 0, 1, 1, 2)
    (["e0_itr1999.png", "e1_itr999.png", "e1_itr2999.png", "e2_itr1999.png"], [1999, 10999, 12999, 21999]),
    # a step counted over the whole run stays as it is (naifu's sample_e{epoch}_s{step}_p{rank}_{i})
    (["sample_e0_s500_p0_0.png", "sample_e1_s1000_p0_0.png", "sample_e2_s1500_p0_0.png"], [500, 1000, 1500]),
])
def test_a_step_counted_within_each_epoch_is_read_with_its_epoch(tmp_path, names, steps):
    """Every epoch of VQ-Diffusion's default config was one checkpoint, step 2999; at another
    sampling interval epochs 0 and 2 were merged, and epoch 1 came before epoch 0."""
    for name in names:  # one time for all: the epoch, named, tells without the files' times
        write_png(tmp_path / "run" / name, np.zeros((8, 8, 3), np.uint8))
    found = {c.source: c.step for c in scan_run(tmp_path / "run")}
    assert [found[name] for name in names] == steps


def test_pictures_beside_the_samples_that_are_no_samples_are_left_out(tmp_path, caplog):
    """Palette's Process_ (the sampling step by step) were 6 more samples of each epoch and took
    the Out_ images' ids; stable-diffusion's grid-0000.png was a 7th sample; the conditioning
    Stability's generative-models draws (txt_gs-…) was read as samples."""
    pixels = np.zeros((8, 8, 3), np.uint8)
    for epoch in (5, 10):
        for name in (28001, 28002, 28003):
            for kind in ("GT", "Process", "Out", "Mask"):
                write_png(tmp_path / "palette" / "results" / "val" / str(epoch) / f"{kind}_{name}.png", pixels)
    with caplog.at_level("INFO", logger="engine.discovery"):
        found = scan_run(tmp_path / "palette")
    assert [c.step for c in found] == [5, 10]
    assert (f"{tmp_path / 'palette' / 'results' / 'val' / '10'}: 9 files named as real data or made from it "
            "(GT_28001.png, GT_28002.png, ...) not read as samples (--samples GLOB reads them)") in caplog.text
    assert all(sorted(f.name for f in c.files) == ["Out_28001.png", "Out_28002.png", "Out_28003.png"] for c in found)
    for step in (1000, 2000):
        write_png(tmp_path / "sd" / f"step_{step}" / "grid-0000.png", pixels)
        for i in range(3):
            write_png(tmp_path / "sd" / f"step_{step}" / "samples" / f"{i:05d}.png", pixels)
    assert all([f.name for f in c.files] == ["00000.png", "00001.png", "00002.png"] for c in scan_run(tmp_path / "sd"))
    write_png(tmp_path / "grids" / "step_1000" / "grid-0000.png", pixels)  # a grid alone is the samples
    assert [f.name for c in scan_run(tmp_path / "grids") for f in c.files] == ["grid-0000.png"]
    for name in ("grid.png", "interpolation.png", "truncation.png"):  # beside other figures, not its samples
        write_png(tmp_path / "figures" / "step_1000" / name, pixels)
    assert len([f for c in scan_run(tmp_path / "figures") for f in c.files]) == 3
    for key in ("samples", "txt", "original_size_as_tuple", "crop_coords_top_left", "target_size_as_tuple"):
        write_png(tmp_path / "sgm" / f"{key}_gs-000500_e-000000_b-000500.png", pixels)
    assert [c.source for c in scan_run(tmp_path / "sgm")] == ["samples_gs-000500_e-000000_b-000500.png"]


def test_a_copy_that_gave_every_file_one_time_is_ordered_by_the_times_in_the_names(tmp_path):
    """OneTrainer's names end with the step in the epoch, which starts again each epoch; the
    step is the number that grows as the files are written. After `cp -r` (one time for all)
    the epoch steps 0, 100, 50 were read as the steps, out of training order, without a word;
    the names carry the time they were written."""
    n = 0
    for step, epoch, epoch_step in ((0, 0, 0), (100, 0, 100), (200, 1, 50)):
        for i, prompt in enumerate(("a cat", "a dog")):
            write_png(tmp_path / "samples" / f"{i} - {prompt}" /
                      f"2024-05-14_10-{n:02d}-00-training-sample-{step}-{epoch}-{epoch_step}.jpg",
                      np.zeros((8, 8, 3), np.uint8))
            n += 1
    assert sorted(c.step for c in scan_run(tmp_path)) == [0, 100, 200]


def test_munit_and_ugatit_runs_give_their_iterations_not_the_2_of_a2b(tmp_path):
    """MUNIT's ``gen_a2b_train_current.jpg`` (rewritten every 100 iterations) was a checkpoint
    at step 2, before every real step; U-GAT-IT's ``selfie2anime_params_latest.pt`` was an
    empty checkpoint at step 2."""
    munit = tmp_path / "munit" / "images"
    for name in ("gen_a2b_train_00010000", "gen_b2a_train_00010000", "gen_a2b_train_00020000",
                 "gen_b2a_train_00020000", "gen_a2b_train_current", "gen_b2a_train_current"):
        save_torchvision_grid(smooth_images(RNG, 4, 8), munit / f"{name}.png", nrow=2)
    assert sorted({c.step for c in scan_run(munit.parent)}) == [10000, 20000]
    ugatit = tmp_path / "results"
    ugatit.mkdir()
    torch.save({"genA2B": {"w": torch.zeros(2)}}, ugatit / "selfie2anime_params_latest.pt")
    for step in (1000, 2000):
        for series in ("A2B", "B2A"):
            save_torchvision_grid(smooth_images(RNG, 4, 8), ugatit / "selfie2anime" / "img" / f"{series}_{step:07d}.png",
                                  nrow=2)
    assert [(c.step, c.source) for c in scan_run(ugatit)] == [
        (1000, "selfie2anime/img/A2B_0001000.png"), (1000, "selfie2anime/img/B2A_0001000.png"),
        (2000, "selfie2anime/img/A2B_0002000.png"), (2000, "selfie2anime/img/B2A_0002000.png")]


def test_automatic1111_previews_without_the_weights_and_the_captioned_copies(tmp_path, caplog):
    """stable-diffusion-webui's ``textual_inversion/DATE/NAME/``: ``images/NAME-500.png`` are
    the previews; ``hypernetworks/NAME-500.pt`` (``embeddings/`` for an embedding) were empty
    checkpoints beside them, and ``image_embeddings/NAME-500.png`` (the preview captioned,
    the embedding's data drawn in) a second sample of every step."""
    run = tmp_path / "textual_inversion" / "2024-01-05" / "mycat"
    for step in (500, 1000):
        write_png(run / "images" / f"mycat-{step}.png", smooth_images(RNG, 1, 16)[0])
        write_png(run / "image_embeddings" / f"mycat-{step}.png", smooth_images(RNG, 1, 16)[0])
        for folder in ("hypernetworks", "embeddings"):
            (run / folder).mkdir(exist_ok=True)
            torch.save({"string_to_param": {"*": torch.zeros(1, 8)}, "step": step}, run / folder / f"mycat-{step}.pt")
    with caplog.at_level("INFO", logger="engine.discovery"):
        found = [(c.step, c.source, c.files) for c in scan_run(run)]
    assert [(step, source) for step, source, _ in found] == [(500, "images/mycat-500.png"), (1000, "images/mycat-1000.png")]
    assert "image_embeddings/ holds copies of the samples made to carry an embedding" in caplog.text


def test_symlinked_sample_folders_are_followed_but_not_round_a_loop_and_dead_links_are_said(tmp_path, caplog):
    """``step_000200/samples`` linked to a folder elsewhere: the step vanished without a word.
    A link back up the run (a loop) is not followed; a link to nothing is named once."""
    elsewhere = tmp_path / "scratch" / "s200"
    run = tmp_path / "run"
    for step in (100, 200, 300):
        folder = elsewhere if step == 200 else run / f"step_{step:06d}" / "samples"
        for i in range(2):
            write_png(folder / f"{i:05d}.png", smooth_images(RNG, 1, 8)[0])
    (run / "step_000200").mkdir()
    (run / "step_000200" / "samples").symlink_to(elsewhere)
    (run / "step_000300" / "samples" / "again").symlink_to(run / "step_000300")  # a loop
    (run / "step_000300" / "samples" / "00002.png").symlink_to(tmp_path / "gone.png")  # a link to nothing
    with caplog.at_level("WARNING"):
        found = {c.step: [p.name for p in c.files] for c in scan_run(run)}
        scan_run(run)
    assert found == {100: ["00000.png", "00001.png"], 200: ["00000.png", "00001.png"], 300: ["00000.png", "00001.png"]}
    assert caplog.text.count("00002.png: a link to nothing") == 1
    wandb = tmp_path / "repa" / "wandb"  # W&B's latest-run: another name for the run folder beside it
    for step, digest in ((0, "a3998ea0c45f80315867"), (9999, "5a57e99892399f5b97e3")):
        write_png(wandb / "run-20240514_101233-k3x9q2ab" / "files" / "media" / "images" / f"samples_{step}_{digest}.png",
                  smooth_images(RNG, 1, 8)[0])
    (wandb / "latest-run").symlink_to("run-20240514_101233-k3x9q2ab")
    assert [c.source.split("/")[1] for c in scan_run(wandb.parent)] == ["run-20240514_101233-k3x9q2ab"] * 2
    assert "restore what it names or remove the link" in caplog.text


def test_a_last_number_the_same_in_every_name_is_no_step_when_an_earlier_one_differs(tmp_path):
    """``validation-{step}-{rank}-{prompt}-{hash}.png`` (CogVideoX): the rank (0 in every
    name) was the step of every file."""
    for step in (100, 200, 300):
        for prompt, digest in (("A_cat_walks", "d527f"), ("A_panda_eats", "b04f5")):
            write_png(tmp_path / "cog" / f"validation-{step}-0-{prompt}-{digest}.png", smooth_images(RNG, 1, 16)[0])
    assert sorted({c.step for c in scan_run(tmp_path / "cog")}) == [100, 200, 300]
    write_png(tmp_path / "named" / "step1000_00.png", smooth_images(RNG, 1, 16)[0])  # a number named as the step stays
    write_png(tmp_path / "named" / "step1000_01.png", smooth_images(RNG, 1, 16)[0])
    assert {c.step for c in scan_run(tmp_path / "named")} == {1000}


def test_video_samples_are_named_and_their_input_images_and_hashes_are_no_samples(tmp_path, caplog):
    """CogVideoX's ``validation_res/validation-{step}-{rank}-{prompt}-{md5[:5]}.mp4`` (image-to-
    video: its input saved beside it as ``.png``) and DynamiCrafter's ``images/train/
    samples-gs500_….mp4`` beside ``image_condition-gs500_….jpg``: the videos were left out
    without a word, the inputs stored as generated, and ``d527f`` made step 527."""
    cog = tmp_path / "cog" / "validation_res"
    dyn = tmp_path / "dyn" / "images" / "train"
    for step in (100, 200):
        for prompt, digest in (("A_cat_walks_on_the_grass_", "d527f"), ("A_panda_dressed_in_a_smal", "b04f5")):
            name = f"validation-{step}-0-{prompt}-{digest}"
            write_png(cog / f"{name}.png", smooth_images(RNG, 1, 16)[0])
            (cog / f"{name}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
        write_png(dyn / f"image_condition-gs{step}_ep0_idx{step - 1}_rank0.jpg", smooth_images(RNG, 1, 16)[0])
        (dyn / f"samples-gs{step}_ep0_idx{step - 1}_rank0.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with caplog.at_level("WARNING"):
        assert scan_run(tmp_path / "cog") == [] and scan_run(tmp_path / "dyn") == []
    assert (f"{cog}: 4 video files (validation-100-0-A_cat_walks_on_the_grass_-d527f.mp4, "
            "validation-100-0-A_panda_dressed_in_a_smal-b04f5.mp4, ...) not read: evowatch reads images") in caplog.text
    assert "4 files named as a folder, an image or a video beside them (validation-100-0-" in caplog.text
    assert "2 files named as real data or made from it (image_condition-gs100_ep0_idx99_rank0.jpg" in caplog.text
    for name, step in (("sample-b04f5.png", None), ("mylora_e000003_00.png", 0), ("img_cafe1.png", 1)):
        assert step_of(name, DiscoveryOptions()) == step, name


def test_a_grid_of_a_sample_folder_and_weights_named_as_an_image_are_left_out(tmp_path, caplog):
    """AnimateDiff writes ``samples/sample-500/{i}.gif`` and their grid ``samples/sample-500.gif``
    beside it: each step was two checkpoints, its samples measured twice. pytorch_GAN_zoo
    writes ``celebaHQ_s5_i16000.pt`` (weights) beside ``celebaHQ_s5_i16000.jpg``: empty
    checkpoints, and the several-series warning offered the weights' glob."""
    anim = tmp_path / "animatediff" / "samples"
    for step in (500, 1000):
        for i in range(2):
            write_png(anim / f"sample-{step}" / f"{i}.gif", smooth_images(RNG, 1, 8)[0])
        save_torchvision_grid(smooth_images(RNG, 2, 8), anim / f"sample-{step}.gif", nrow=2)
    with caplog.at_level("WARNING"):
        assert [(c.step, c.source) for c in scan_run(anim.parent)] == [(500, "samples/sample-500"),
                                                                      (1000, "samples/sample-1000")]
    assert "2 files named as a folder, an image or a video beside them (sample-1000.gif, sample-500.gif) left out" in caplog.text
    pgan = tmp_path / "celebaHQ"
    for scale, it in ((5, 16000), (5, 32000)):
        save_torchvision_grid(smooth_images(RNG, 4, 8), pgan / f"celebaHQ_s{scale}_i{it}.jpg", nrow=2)
        torch.save({"config": {"scale": scale}, "netG": {"w": torch.zeros(2)}}, pgan / f"celebaHQ_s{scale}_i{it}.pt")
    caplog.clear()
    assert [c.source for c in scan_run(pgan)] == ["celebaHQ_s5_i16000.jpg", "celebaHQ_s5_i32000.jpg"]
    # round AJ: the weights were said to "repeat" the image, in "1 file that repeat"
    assert "2 files named as a folder, an image or a video beside them (celebaHQ_s5_i16000.pt, " in caplog.text
    assert "weights saved beside their samples" in caplog.text


def _checkpoint_with_samples(run):
    """``run/iter_1000/samples/000.png..002.png``: the checkpoint's own samples, beside which copies are put."""
    for i, image in enumerate(smooth_images(RNG, 3, 8)):
        write_png(run / "iter_1000" / "samples" / f"{i:03d}.png", image)
    return run / "iter_1000"


def _read_names(run, options=None):
    [checkpoint] = scan_run(run, options)
    return [f.relative_to(checkpoint.root / checkpoint.source).as_posix() for f in checkpoint.files]


@pytest.mark.parametrize("copy", ["samples.npz", "samples.gif", "cat.png+compressed.webp", "cat+compressed.webp",
                                  "cat_thumb.jpg", "clip.png"])
def test_a_file_that_repeats_a_sibling_inside_a_checkpoint_folder_is_left_out(tmp_path, caplog, copy):
    """Inside a checkpoint folder the copies a run's level leaves out were all read as more samples:
    DiT's ``samples.npz`` packing ``samples/`` (or its grid), MLflow's smaller ``+compressed.webp``
    beside ``cat.png``, CogVideoX's input ``clip.png`` beside ``clip.mp4``: 4 to 6 samples, not 4."""
    ckpt = _checkpoint_with_samples(tmp_path / "run")
    write_png(ckpt / "cat.png", smooth_images(RNG, 1, 8)[0])
    (ckpt / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    if copy.endswith(".npz"):
        np.savez(ckpt / copy, arr_0=smooth_images(RNG, 3, 8))
    else:
        write_png(ckpt / copy, smooth_images(RNG, 1, 4 if "compressed" in copy or "thumb" in copy else 8)[0])
    with caplog.at_level("INFO", logger="engine.discovery"):
        assert _read_names(tmp_path / "run") == ["cat.png", "samples/000.png", "samples/001.png", "samples/002.png"]
    assert f"{ckpt}: 1 file named as a folder, an image or a video beside it ({copy}) left out" in caplog.text
    chosen = DiscoveryOptions(sample_globs=("*.png", "*.npz", "*.gif", "*.webp", "*.jpg"))  # --samples decides alone
    assert copy in _read_names(tmp_path / "run", chosen)


def test_a_packed_folder_holding_more_samples_than_the_folder_is_read_instead(tmp_path, caplog):
    """``samples.npz`` of 5 beside ``samples/`` of 3 (PNGs deleted once packed): the folder is the
    part, the tensor is read; as many or a header that does not tell (a ``.pt``): the folder is."""
    ckpt = _checkpoint_with_samples(tmp_path / "run")
    np.savez(ckpt / "samples.npz", arr_0=smooth_images(RNG, 5, 8))
    with caplog.at_level("INFO", logger="engine.discovery"):
        assert _read_names(tmp_path / "run") == ["samples.npz"]
    assert f"{ckpt}: samples.npz holds 5 samples, more than the 3 files of samples/ beside it" in caplog.text
    (ckpt / "samples.npz").unlink()
    torch.save(torch.zeros(5, 3, 8, 8), ckpt / "samples.pt")
    assert _read_names(tmp_path / "run") == ["samples/000.png", "samples/001.png", "samples/002.png"]


def test_latents_packed_beside_a_sample_folder_are_not_read_instead_of_its_images(tmp_path):
    """Stable Diffusion's ``samples.npz`` of 5 x 4 x 8 x 8 latents beside ``samples/`` of 3 RGB PNGs: it
    held more samples than the folder has files, so the latents were read as RGBA samples, the images not."""
    ckpt = _checkpoint_with_samples(tmp_path / "run")
    np.savez(ckpt / "samples.npz", latents=RNG.standard_normal((5, 4, 8, 8)).astype(np.float32))
    assert _read_names(tmp_path / "run") == ["samples/000.png", "samples/001.png", "samples/002.png"]


def test_a_checkpoint_of_a_video_and_its_poster_says_the_video_is_not_read(tmp_path, caplog):
    """A video model's ``iter_500/clip.mp4`` beside its ``clip.png``: the image is left out as the video's
    input, and the checkpoint held no sample; the only line said the samples are read "from the folder
    or the full-size image", not that evowatch reads no video."""
    for step in (500, 1000):
        (tmp_path / "run" / f"iter_{step}").mkdir(parents=True)
        write_png(tmp_path / "run" / f"iter_{step}" / "clip.png", smooth_images(RNG, 1, 8)[0])
        (tmp_path / "run" / f"iter_{step}" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    scan_run(tmp_path / "run")
    assert ": 1 video file (clip.mp4) not read: evowatch reads images" in caplog.text


def test_a_checkpoint_folder_without_copies_is_read_unchanged(tmp_path, caplog):
    """Names near a copy's that repeat nothing: ``samples_ema.npz`` beside ``samples/``, ``cat.webp``
    beside ``cat.png``, ``dog.png`` beside ``walk.mp4``, a thumbnail's name in another folder."""
    ckpt = _checkpoint_with_samples(tmp_path / "run")
    np.savez(ckpt / "samples_ema.npz", arr_0=smooth_images(RNG, 3, 8))
    for name in ("cat.png", "cat.webp", "dog.png", "ema/cat_thumb.png"):
        write_png(ckpt / name, smooth_images(RNG, 1, 8)[0])
    (ckpt / "walk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with caplog.at_level("INFO", logger="engine.discovery"):
        assert _read_names(tmp_path / "run") == ["cat.png", "cat.webp", "dog.png", "ema/cat_thumb.png", "samples/000.png",
                                                 "samples/001.png", "samples/002.png", "samples_ema.npz"]
    assert "left out" not in caplog.text


def test_tensors_not_named_as_samples_beside_a_folder_of_sample_images_are_weights(tmp_path):
    """StyleSwin, run as its README says (``--checkpoint_path /tmp --sample_path /tmp``):
    ``{iter:06d}.pt`` weights beside ``samples/eval_{n}/{i:06d}.png``. Each .pt was an empty
    checkpoint and the samples were never read."""
    for it in (0, 10000, 20000):
        torch.save({"g": {"w": torch.zeros(2)}, "args": {"lr": 2e-4}}, tmp_path / f"{it:06d}.pt")
    for n in (800000, 1600000):
        for i in range(2):
            write_png(tmp_path / "samples" / f"eval_{n}" / f"{i:06d}.png", smooth_images(RNG, 1, 8)[0])
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(800000, "samples/eval_800000"),
                                                               (1600000, "samples/eval_1600000")]
    sngan = tmp_path / "sngan"  # pfnet-research sngan_projection: Chainer weights as .npz beside preview/
    for it in (5000, 10000):
        sngan.mkdir(exist_ok=True)
        np.savez_compressed(sngan / f"opt_gen_{it}.npz", w=np.zeros(2))  # its optimiser's state
        write_png(sngan / "preview" / f"image{it:08d}.png", smooth_images(RNG, 1, 8)[0])
    write_png(sngan / "preview" / "image_latest.png", smooth_images(RNG, 1, 8)[0])
    assert [c.source for c in scan_run(sngan)] == ["preview/image00005000.png", "preview/image00010000.png"]
    for it in (0, 10000):  # sample tensors named by their number alone, with no images beside: still samples
        (tmp_path / "tensors").mkdir(exist_ok=True)
        np.save(tmp_path / "tensors" / f"{it:06d}.npy",
                np.zeros((2, 8, 8, 3), np.uint8))
    assert [c.step for c in scan_run(tmp_path / "tensors")] == [0, 10000]


def test_mlflow_and_sacred_image_names_and_copies(tmp_path, caplog):
    """MLflow 3's ``log_image(img, key, step)`` writes ``artifacts/images/{key}+step+{step}+timestamp+{ms}+{uuid}.png``
    (``%`` for ``+`` before) with a ``…+compressed.webp`` thumbnail beside each: steps came from the UUIDs' digits
    and every thumbnail was a sample. ``log_artifact`` copies the trainer's files into ``mlruns/<18-digit
    experiment id>/<run id>/artifacts/``: one more checkpoint, at the experiment id as its step."""
    images = tmp_path / "mlruns" / "215357636247220652" / "5ca6410846a24016955cd94962bccd81" / "artifacts" / "images"
    for k, step in enumerate((500, 1000, 1500)):
        for sep in "+%":
            stem = (f"samples{sep}step{sep}{step}{sep}timestamp{sep}{1796467646884 + 60_000 * k}{sep}"
                    f"3a7ebaa9-da80-4c9b-89cb-8e5f2a42537{k}")
            save_torchvision_grid(smooth_images(RNG, 4, 8), images / sep.replace("%", "percent") / f"{stem}.png", nrow=2)
            write_png(images / sep.replace("%", "percent") / f"{stem}{sep}compressed.webp", smooth_images(RNG, 1, 8)[0])
    for sep in ("+", "percent"):
        found = scan_run(images / sep)
        assert [(c.step, [f.suffix for f in c.files]) for c in found] == [(s, [".png"]) for s in (500, 1000, 1500)]
    project = tmp_path / "project"
    for epoch in (1, 2, 3):
        save_torchvision_grid(smooth_images(RNG, 4, 8), project / "samples" / f"epoch_{epoch:03d}.png", nrow=2)
        copies = project / "mlruns" / "598819322417409832" / "0a1b2c3d4e5f60718293a4b5c6d7e8f9" / "artifacts"
        copies.mkdir(parents=True, exist_ok=True)
        shutil.copy(project / "samples" / f"epoch_{epoch:03d}.png", copies / f"epoch_{epoch:03d}.png")
    with caplog.at_level("INFO", logger="engine.discovery"):
        assert [c.source for c in scan_run(project)] == [f"samples/epoch_{e:03d}.png" for e in (1, 2, 3)]
    assert f"{project}: mlruns/ holds MLflow's copies of the images the trainer logged" in caplog.text
    assert [c.step for c in scan_run(project / "mlruns")] == [1, 2, 3]  # the id is no step
    sacred = tmp_path / "sacred" / "runs" / "1"  # Sacred's FileStorageObserver: run 1 copies the artifacts
    for epoch in (1, 2, 3):
        save_torchvision_grid(smooth_images(RNG, 4, 8), sacred / f"epoch_{epoch:03d}.png", nrow=2)
    (sacred / "run.json").write_text("{}")
    assert [c.step for c in scan_run(sacred.parent)] == [1, 2, 3]  # epochs counted, not 3 samples of run 1


@pytest.mark.parametrize("below", [".", "logs"])
def test_wandb_copies_of_the_sample_files_are_left_out_but_read_when_they_are_all(tmp_path, caplog, below):
    """U-ViT saves ``samples/{step}.png`` and logs the same grid with ``wandb.log``, which
    keeps a re-encoded copy in ``wandb/run-…/files/media/images/samples_{step}_{hash}.png``:
    every step was two checkpoints, its samples measured twice. Round AW: Lightning's
    ``WandbLogger(save_dir="logs")`` keeps them in ``logs/wandb/…`` beside ``samples/``: only a
    ``wandb/`` beside ``samples/`` was left out (the store, which takes the copies for
    stand-ins, superseded each copy as soon as it was read)."""
    folder = tmp_path / below
    media = folder / "wandb" / "offline-run-20240105_103000-3kx9q2ab" / "files" / "media" / "images"
    for step, digest in ((5000, "48d4ecea738945015632"), (10000, "f252181176979c20b7f9")):
        grid = smooth_images(RNG, 4, 8)
        save_torchvision_grid(grid, tmp_path / "samples" / f"{step}.png", nrow=2)
        save_torchvision_grid(grid, media / f"samples_{step}_{digest}.png", nrow=2)
    with caplog.at_level("INFO", logger="engine.discovery"):
        assert [c.source for c in scan_run(tmp_path)] == ["samples/5000.png", "samples/10000.png"]
    shown = "wandb/" if below == "." else f"{below}/wandb/"
    assert f"{shown} holds W&B's copies of the images the trainer logged" in caplog.text
    assert [c.step for c in scan_run(folder if below != "." else tmp_path / "wandb")] == [5000, 10000]


def test_studiogans_run_named_by_its_start_time_gives_no_step_and_its_losses_are_no_samples(tmp_path):
    """StudioGAN names a run ``CIFAR10-BigGAN-train-2024_05_14_10_12_33`` (``%Y_%m_%d_%H_%M_%S``):
    its ``statistics/RUN/losses.npy`` (a pickled dict) was an empty checkpoint at step 33."""
    run = "CIFAR10-BigGAN-train-2024_05_14_10_12_33"
    for step in (2000, 4000):
        save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / "figures" / run / f"generated_canvas_{step}.png",
                              nrow=2)
    (tmp_path / "statistics" / run).mkdir(parents=True)
    np.save(tmp_path / "statistics" / run / "losses.npy", {"gen_loss": [1.0, 0.5]}, allow_pickle=True)
    assert [c.step for c in scan_run(tmp_path)] == [2000, 4000]
    from engine.discovery.steps import step_in_name

    assert step_in_name("samples_2024_05_14_10_12_33") is None and step_in_name("step_2000_01_05") == 2000


def test_ddgans_noised_training_batch_is_no_sample(tmp_path):
    """DDGAN's ``train_ddgan.py`` writes ``sample_discrete_epoch_{e}.png`` and, every 10
    epochs, ``xpos_epoch_{e}.png``: x_t of the last training batch, real data noised. It was
    ingested as generated (128 samples at steps 0 and 10, false collapse alerts after)."""
    for epoch in range(0, 12, 5):
        save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / f"sample_discrete_epoch_{epoch}.png", nrow=2)
        if epoch % 10 == 0:
            save_torchvision_grid(smooth_images(RNG, 4, 8), tmp_path / f"xpos_epoch_{epoch}.png", nrow=2)
    assert [c.source for c in scan_run(tmp_path)] == [f"sample_discrete_epoch_{e}.png" for e in (0, 5, 10)]


@pytest.mark.parametrize("seconds_per_image", [2, 37, 120])
def test_kohya_samples_written_one_by_one_stay_one_checkpoint_per_step(tmp_path, seconds_per_image):
    """sd-scripts samples prompt after prompt, each taking seconds to minutes, with the file's
    time as written: when a step's sampling took more than half the time between steps, the
    times were read as against step-then-index, and the epoch-batch rule made the prompt
    index a step (steps 0, 1, 2, 50000, 50001...)."""
    t = OLD
    for step in (0, 500, 1000):
        for i in range(3):
            t += seconds_per_image
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(t))
            path = tmp_path / "sample" / f"mylora_{step:06d}_{i:02d}_{stamp}.png"
            write_png(path, smooth_images(RNG, 1, 8)[0])
            os.utime(path, (t, t))
        t += 30  # the training steps between samplings
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path)] == [(0, 3), (500, 3), (1000, 3)]


def test_naifus_samples_of_several_processes_are_one_checkpoint_per_step(tmp_path):
    """naifu's ``generate_samples_dist``: ``sample_e{epoch}_s{step}_p{rank}_{i}.png``; every
    file was a checkpoint at step 0 or 1."""
    for step in (500, 1000):
        for rank in range(3):
            for i in range(2):
                write_png(tmp_path / f"sample_e0_s{step}_p{rank}_{i}.png", smooth_images(RNG, 1, 8)[0])
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path)] == [(500, 6), (1000, 6)]


def test_musubi_tuners_frame_index_after_the_time_is_no_step(tmp_path):
    """musubi-tuner saves an image sample as ``mylora_000500_00_<time>[_seed]_000.png`` (a
    frame index after kohya-ss's name): every file was a checkpoint at step 0 or 1."""
    t = OLD
    for step in (500, 1000):
        for i, seed in enumerate(("_42", "", "_7")):
            t += 20
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(t))
            path = tmp_path / "sample" / f"mylora_{step:06d}_{i:02d}_{stamp}{seed}_000.png"
            write_png(path, smooth_images(RNG, 1, 8)[0])
            os.utime(path, (t, t))
    found = scan_run(tmp_path)
    assert [(c.step, len(c.files)) for c in found] == [(500, 3), (1000, 3)]
    from engine.decode.samples import iter_samples

    assert [s.instance for s in iter_samples(found[1])] == [0, 1, 2]


def test_the_current_folder_as_run_dir_and_options_given_as_lists(tmp_path, monkeypatch):
    """Round AA: `evowatch watch .` with a file at the run's top exited "error: no path
    specified" (a relative name cut from ""), and DiscoveryOptions given lists raised
    "unhashable type: 'list'" in the name checks' cache."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("lr: 0.1\n")
    (tmp_path / "grid.png").write_bytes(b"")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.png").write_bytes(b"")
    assert [p.name for p in sample_files(Path("."), DiscoveryOptions())] == ["grid.png"]
    options = DiscoveryOptions(sample_globs=["*.png"], grid=[4, 4], value_range=[-1, 1])
    assert options.sample_globs == ("*.png",) and options.grid == (4, 4) and options.value_range == (-1, 1)
    assert scan_run(Path("."), options) == [] and hash(options)


@pytest.mark.parametrize("times", ["each folder at once", "a copy"])
def test_checkpoint_folders_of_samples_named_by_seed_are_not_series(tmp_path, times):
    """EDM's generate.py --seeds=100-107 into each snapshot's folder was read as series folders
    (OneTrainer's folder per prompt): each seed a step, each checkpoint one sample."""
    for k, step in enumerate((200, 400, 600)):
        folder = tmp_path / f"network-snapshot-{step:06d}"
        _folder_of_images(folder, n=8, names="{:06d}.png")
        for j, path in enumerate(sorted(folder.iterdir())):
            path.rename(folder / f"{100 + j:06d}.png")
            _written_at(folder / f"{100 + j:06d}.png", 3600 if times == "a copy" else 3600 - 600 * k - j)
    found = scan_run(tmp_path)
    assert [(c.step, c.source, len(c.files)) for c in found] == [
        (200, "network-snapshot-000200", 8), (400, "network-snapshot-000400", 8), (600, "network-snapshot-000600", 8)]


def test_folders_per_class_of_images_named_by_step_written_step_by_step_are_series(tmp_path):
    """The same names (bare numbers) in folders per class, each step's images written across
    the folders together: series, one checkpoint per step."""
    for k, step in enumerate((1000, 2000, 3000)):
        for c, name in enumerate(("cat", "dog")):
            write_png(tmp_path / name / f"{step}.png", np.full((16, 16, 3), 40 * k + c, np.uint8))
            _written_at(tmp_path / name / f"{step}.png", 3600 - 600 * k - c)
    found = scan_run(tmp_path)
    assert [(c.step, len(c.files)) for c in found] == [(1000, 2), (2000, 2), (3000, 2)]


def test_a_link_back_up_the_run_is_not_followed(tmp_path):
    """Round AB: `run/project -> ..` or `run/here -> .` had every checkpoint read again under
    each path through the link, down to the depth limit (510 checkpoints with two links)."""
    run = tmp_path / "run"
    for step in (100, 200):
        _folder_of_images(run / "samples" / f"step_{step}")
    (run / "project").symlink_to("..")
    (run / "samples" / "here").symlink_to(".")
    (run / "elsewhere").symlink_to(tmp_path / "run" / "samples")  # an alias, not a loop: read once
    assert [(c.step, c.source) for c in scan_run(run)] == [(100, "samples/step_100"), (200, "samples/step_200")]


@pytest.mark.parametrize("link, target", [("latest", "runs/run1"), ("other/s2", "../samples/step_100/.."),
                                          ("latest", "samples/step_200")])  # round AP: read a checkpoint per file
def test_a_link_to_a_folder_elsewhere_in_the_run_is_read_once(tmp_path, link, target):
    """Round AN: a link to a nephew or cousin folder of the run (`latest -> runs/run1`,
    `other/s2 -> ../samples`) had every checkpoint read twice, each step measured on twice
    its samples. A link out of the run (`samples -> /scratch/...`) is still followed."""
    run = tmp_path / "run"
    folder = run / ("runs/run1" if target == "runs/run1" else "samples")
    for step in (100, 200):
        _folder_of_images(folder / f"step_{step}", n=2)
    (run / link).parent.mkdir(parents=True, exist_ok=True)
    (run / link).symlink_to(target)
    inside = folder.relative_to(run).as_posix()
    assert [(c.step, c.source) for c in scan_run(run)] == [(100, f"{inside}/step_100"), (200, f"{inside}/step_200")]
    outside = tmp_path / "scratch"
    folder.rename(outside)
    (run / "linked").symlink_to(outside)
    assert [(c.step, c.source) for c in scan_run(run)] == [(100, "linked/step_100"), (200, "linked/step_200")]


def test_a_link_to_a_folder_the_scan_reads_otherwise_is_followed(tmp_path):
    """Round AO: `samples -> data/outputs` (a folder named as training data, not read itself)
    lost its checkpoints when every link into the run was left out: only a checkpoint with
    the same files as one read through fewer links is."""
    run = tmp_path / "p1"
    for step in (500, 1000):
        _folder_of_images(run / "data" / "outputs" / f"step_{step}", n=2)
    (run / "samples").symlink_to("data/outputs")
    assert [(c.step, c.source) for c in scan_run(run)] == [(500, "samples/step_500"), (1000, "samples/step_1000")]


def test_runs_numbered_with_a_gap_are_still_runs(tmp_path):
    """Round AB: `lightning_logs/version_0/` beside `version_2/` (a failed version_1 deleted)
    read each run as one checkpoint named by its version number, its steps merged, unsaid."""
    for version in (0, 2):
        for step in (100, 200):
            _folder_of_images(tmp_path / f"version_{version}" / "images" / f"epoch=0-step={step}", n=2, names="{}.png")
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [
        (100, "version_0/images/epoch=0-step=100"), (100, "version_2/images/epoch=0-step=100"),
        (200, "version_0/images/epoch=0-step=200"), (200, "version_2/images/epoch=0-step=200")]


def test_a_grid_beside_a_folder_of_weights_of_its_name_is_read(tmp_path):
    """Round AB: `epoch_1.png` (a grid) beside `epoch_1/model.safetensors` was left out as the
    folder's copy, though the folder holds no samples: nothing was read ("no sample files")."""
    for epoch in (1, 2):
        save_torchvision_grid(smooth_images(np.random.default_rng(epoch), 16, 16), tmp_path / f"epoch_{epoch}.png")
        (tmp_path / f"epoch_{epoch}").mkdir()
        (tmp_path / f"epoch_{epoch}" / "model.safetensors").write_bytes(b"\0" * 64)
    assert [(c.step, c.source) for c in scan_run(tmp_path)] == [(1, "epoch_1.png"), (2, "epoch_2.png")]


def test_samples_globs_pick_files_named_like_weights(tmp_path):
    """Round AB: `--samples 'ema_*.npy'` said it matched no file name, as `ema_1000.npy` is
    named like weights: a glob the user gives decides alone."""
    for step in (1000, 2000):
        np.save(tmp_path / f"ema_{step}.npy", smooth_images(np.random.default_rng(step), 4, 8))
    assert scan_run(tmp_path) == []
    found = scan_run(tmp_path, DiscoveryOptions(sample_globs=("ema_*.npy",)))
    assert [(c.step, c.source) for c in found] == [(1000, "ema_1000.npy"), (2000, "ema_2000.npy")]


def test_runs_left_consecutive_and_checkpoints_saved_every_other_epoch(tmp_path):
    """Round AC: version_3 beside version_4 (the earlier deleted) were each read as one
    checkpoint once runs had to start at 0 or 1; epoch_1/ and epoch_3/ of weights and samples
    were read as two runs, each sample's index a step."""
    for version in (3, 4):
        for step in (100, 200):
            _folder_of_images(tmp_path / "a" / f"version_{version}" / "images" / f"epoch=0-step={step}", n=2, names="{}.png")
    assert [c.step for c in scan_run(tmp_path / "a")] == [100, 100, 200, 200]
    for epoch in (1, 3):
        _folder_of_images(tmp_path / "b" / f"epoch_{epoch}", n=3, names="sample_{}.png")
        (tmp_path / "b" / f"epoch_{epoch}" / f"model_epoch{epoch}.safetensors").write_bytes(b"\0" * 64)
    assert [(c.step, c.source) for c in scan_run(tmp_path / "b")] == [(1, "epoch_1"), (3, "epoch_3")]


def test_folders_of_a_prompt_each_copied_or_at_their_first_step_are_series(tmp_path):
    """Round AC: bare-step images in folders per prompt, copied (one time for all) or at their
    first step, were taken for checkpoints of seeds: each folder a checkpoint."""
    for step in (500, 1000):
        for name in ("bird", "cat"):
            write_png(tmp_path / "samples" / name / f"{step}.png", np.zeros((16, 16, 3), np.uint8))
    _age(tmp_path)  # a copy: every file the same time
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path)] == [(500, 2), (1000, 2)]


def test_steps_in_millions_keep_their_order_and_none_is_dropped(tmp_path):
    """``sample_1M.png`` was step 1, before ``sample_900k.png``, and ``sample_1.2M.png`` left out."""
    for name in ("900k", "1M", "1.2M", "1500K", "2M"):
        _folder_of_images(tmp_path / "samples", n=1, names=f"sample_{name}.png")
    assert [c.step for c in scan_run(tmp_path)] == [900_000, 1_000_000, 1_200_000, 1_500_000, 2_000_000]


def test_wandb_run_folders_are_no_steps_and_their_media_give_the_steps(tmp_path):
    """Two W&B runs (a resumed training): each ``run-DATE_TIME-ID/`` folder was one checkpoint
    whose step was a digit of the run's random id."""
    for run_id, steps in (("k3j9x2pq", (100, 200)), ("aaaa1111", (300, 400))):
        images = tmp_path / "wandb" / f"run-20261206_100000-{run_id}" / "files" / "media" / "images"
        for step in steps:
            for i in range(2):
                _folder_of_images(images, n=1, names=f"samples_{step}_{i:02d}3f2a9b81c0d4e5f6a7.png")
    assert [(c.step, len(c.files)) for c in scan_run(tmp_path)] == [(100, 2), (200, 2), (300, 2), (400, 2)]


@pytest.mark.parametrize("restarts", [False, True])
def test_checkpoints_in_folders_per_epoch_are_read_one_per_iteration(tmp_path, restarts):
    """``epoch_005/iter_000300/`` and ``iter_000600/``: the epoch folder was one checkpoint at
    step 5, both iterations' samples mixed (labelled by folder). Each iteration is one now, at
    its step; where the count starts again each epoch, at epoch x 10^digits + iteration."""
    inner = {5: (300, 600), 6: (300,)} if restarts else {5: (300, 600), 6: (900,)}
    for epoch, iters in inner.items():
        for it in iters:
            _folder_of_images(tmp_path / "run" / f"epoch_{epoch:03d}" / f"iter_{it:06d}", n=3)
    found = [(c.step, c.source, len(c.files)) for c in scan_run(tmp_path / "run")]
    assert found == [(step if restarts else it, f"epoch_{epoch:03d}/iter_{it:06d}", 3)
                     for epoch, iters in inner.items() for it in iters
                     for step in [epoch * 1_000_000 + it]]
    plain = tmp_path / "plain"  # epoch folders of one checkpoint's samples each stay checkpoints
    for epoch in (1, 2):
        _folder_of_images(plain / f"epoch_{epoch}", n=3)
    assert [(c.step, len(c.files)) for c in scan_run(plain)] == [(1, 3), (2, 3)]


def test_two_folders_whose_checkpoints_take_turns_in_step_are_said(tmp_path, caplog):
    """Two experiments side by side with no step in common (``baseline/`` at 1000, 2000, 3000,
    ``ablation/`` at 1500, 2500) were read as one run without a word; a run's second phase
    going on where the first stopped is no such thing."""
    said_once._warned.clear()
    for name, steps in (("baseline", (1000, 2000, 3000)), ("ablation", (1500, 2500)),):
        for step in steps:
            _folder_of_images(tmp_path / "two" / name / "samples", n=1, names=f"step_{step:06d}.png")
    for name, steps in (("first", (1000, 2000)), ("resumed", (3000, 4000))):
        for step in steps:
            _folder_of_images(tmp_path / "resumed" / name, n=1, names=f"step_{step:06d}.png")
    with caplog.at_level("WARNING", logger="engine.discovery"):
        assert len(scan_run(tmp_path / "two")) == 5 and len(scan_run(tmp_path / "resumed")) == 4
    assert caplog.messages == [
        f"{tmp_path / 'two'}: the checkpoints of ablation/ (steps 1,500 to 2,500) and baseline/ (1,000 to 3,000) take "
        f"turns in step: they are read as one series; if they are two runs or two series (train and validation "
        f"samples), point evowatch at one of them ({tmp_path / 'two' / 'ablation'})"]


def test_one_checkpoint_of_label_folders_numbered_in_the_data_sets_order_is_one_checkpoint(tmp_path, caplog):
    """``step_001000/{cat,dog,eel}/0000i.png`` with i spread over the folders (none of them
    consecutive) was read as a run: a checkpoint per image, and a notice that the folders
    were two runs taking turns in step."""
    said_once._warned.clear()
    for i in range(9):
        _folder_of_images(tmp_path / "run" / "step_001000" / "cat dog eel".split()[i % 3], n=1, names=f"{i:05d}.png")
    with caplog.at_level("WARNING", logger="engine.discovery"):
        assert [(c.step, len(c.files)) for c in scan_run(tmp_path / "run")] == [(1000, 9)]
    assert caplog.messages == []


def test_a_python_environment_is_not_named_as_a_hidden_folder_of_samples(tmp_path):
    """Round BA: a project's folder given as the run, its checkpoints not written yet, was told
    "a hidden folder is not read: .venv/ holds sample files (point evowatch at .venv)": the
    images of its packages (matplotlib's icons). A folder of environments (``.tox``) alike."""
    from engine.discovery.samples import hidden_sample_folders

    rng = np.random.default_rng(0)
    for env in (".venv", ".tox/py311"):
        (tmp_path / env / "pyvenv.cfg").parent.mkdir(parents=True)
        (tmp_path / env / "pyvenv.cfg").write_text("home = /usr/bin\n")
        write_png(tmp_path / env / "lib/python3.11/site-packages/matplotlib/mpl-data/images/back.png",
                  smooth_images(rng, 1, 16)[0])
    write_png(tmp_path / ".conda-env/share/icon.png", smooth_images(rng, 1, 16)[0])
    (tmp_path / ".conda-env/conda-meta").mkdir()
    assert hidden_sample_folders(tmp_path, DiscoveryOptions()) == []
    write_png(tmp_path / ".samples/step_100/0.png", smooth_images(rng, 1, 16)[0])
    assert hidden_sample_folders(tmp_path, DiscoveryOptions()) == [tmp_path / ".samples"]


def test_settled_checkpoint_folders_are_not_listed_again(tmp_path, monkeypatch):
    """A watch's pass classified every file of every checkpoint again (2.2 s at 2,000
    checkpoints): what a settled folder's listing gave is kept until the folder changes."""
    for step in (500, 1000, 1500):
        _folder_of_images(tmp_path / f"step_{step:06d}")
    _age(tmp_path)
    _listings_settle()
    first = scan_run(tmp_path)
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: listed.append(Path(path)) or real_scandir(path))
    assert scan_run(tmp_path) == first
    assert listed == [tmp_path]  # the run's own folder only: a new checkpoint shows there
    write_png(tmp_path / "step_000500" / "00004.png", smooth_images(RNG, 1, 16)[0])  # added: the folder changed
    _folder_of_images(tmp_path / "step_002000")  # just written: listed again at every scan until settled
    listed.clear()
    again = scan_run(tmp_path)
    assert [len(c.files) for c in again] == [5, 4, 4, 4]
    assert set(listed) == {tmp_path, tmp_path / "step_000500", tmp_path / "step_002000"}
    listed.clear()
    assert scan_run(tmp_path) == again and tmp_path / "step_002000" in listed  # written in the last 2 s: again
    _age(tmp_path)  # settled
    _listings_settle()
    assert scan_run(tmp_path) == again
    listed.clear()
    assert scan_run(tmp_path) == again and listed == [tmp_path]


def test_a_settled_folder_whose_times_were_set_back_or_permissions_changed_is_listed_again(tmp_path, monkeypatch):
    """A kept listing held while the folder kept its modification time, which a chmod leaves
    as it was (a live watch read a checkpoint folder made unreadable from its kept listing, and
    stopped on "cannot write there ... choose a writable --store") and ``touch -d`` or
    ``cp -a`` sets back (a file added then was not found). The change time moves with both."""
    folder = _folder_of_images(tmp_path / "step_000500")
    _folder_of_images(tmp_path / "step_001000")
    _age(tmp_path)
    _listings_settle()
    assert [len(c.files) for c in scan_run(tmp_path)] == [4, 4]  # kept
    before = folder.stat()
    write_png(folder / "00004.png", smooth_images(RNG, 1, 16)[0])
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -d: its time as it was
    assert [len(c.files) for c in scan_run(tmp_path)] == [5, 4]
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: listed.append(Path(path)) or real_scandir(path))
    folder.chmod(0o700)  # its times as they were, its permissions not
    scan_run(tmp_path)
    assert folder in listed


def test_a_folder_whose_times_were_just_set_back_is_listed_again_until_they_settled(tmp_path, monkeypatch):
    """On a file system that keeps times to the second (ext4 with 128-byte inodes, ext3, HFS+), a
    settled folder listed in the second its times were set back (``cp -a``, ``rsync -a``, ``touch
    -d``), then given a file and its times set back again in that second, kept both times: the file
    was never found by that watch (a new one found it). Its change time must have settled too."""
    for step in (500, 1000, 1500):
        _folder_of_images(tmp_path / f"step_{step:06d}")
    _age(tmp_path)  # their modification times set back long ago, their change times now
    assert [len(c.files) for c in scan_run(tmp_path)] == [4, 4, 4]
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: listed.append(Path(path)) or real_scandir(path))
    scan_run(tmp_path)
    assert tmp_path / "step_000500" in listed


def test_a_listing_another_thread_could_not_keep_leaves_this_threads_result_kept(tmp_path, monkeypatch):
    """What a kept function listed is recorded per thread: the trainer-log search of the signals
    hook and discovery may list at once, and a folder one of them could not keep made the
    other's result unkept (or a folder it never listed decided when its result went stale)."""
    import threading

    from engine import listings

    monkeypatch.setattr(listings, "SETTLED_LISTING_S", 0.0)  # a folder's times set just now: not what is tested
    (tmp_path / "a").mkdir()
    _age(tmp_path)
    calls, inside, noted = [], threading.Event(), threading.Event()

    @listings.kept_while_listed_alike
    def names(folder):
        calls.append(folder)
        listings.note(listings.time_before_listing(folder))
        inside.set()
        assert noted.wait(10)  # the other thread's listing comes while this one computes
        return sorted(os.listdir(folder))

    @listings.kept_while_listed_alike
    def unkeepable(folder):
        listings.note(None)  # e.g. a folder changed in the last 2 s
        return 0

    other = threading.Thread(target=lambda: (inside.wait(10), unkeepable(tmp_path / "a"), noted.set()))
    other.start()
    assert names(tmp_path) == ["a"]
    other.join()
    assert names(tmp_path) == ["a"] and len(calls) == 1  # kept


def test_the_listing_memo_keeps_the_last_used_results_only(tmp_path, monkeypatch):
    """A trainer deleting its old checkpoints left one kept result for each folder it ever
    wrote, for as long as the watch ran: the memo keeps the KEPT_MOST last used."""
    from engine import listings

    monkeypatch.setattr(listings, "SETTLED_LISTING_S", 0.0)  # a folder's times set just now: not what is tested
    monkeypatch.setattr(listings, "KEPT_MOST", 2)
    for name in "abc":
        (tmp_path / name).mkdir()
    _age(tmp_path)
    calls = []

    @listings.kept_while_listed_alike
    def names(folder):
        calls.append(folder.name)
        listings.note(listings.time_before_listing(folder))
        return sorted(os.listdir(folder))

    for name in "abab":
        names(tmp_path / name)
    assert calls == ["a", "b"]  # kept
    names(tmp_path / "c")  # the least recently used, a, goes
    names(tmp_path / "b")
    names(tmp_path / "a")
    assert calls == ["a", "b", "c", "a"]


def test_the_listing_memo_drops_the_results_of_folders_gone_long_before_it_is_full(tmp_path, monkeypatch):
    """Round BJ: a trainer keeping its newest 3 checkpoints, watched for days: the memo held a
    result for each of its last 20,000 (KEPT_MOST) folders, 9 kB a checkpoint of 8 files. Those
    of folders gone are dropped as they pile up; those still there stay kept."""
    import shutil

    from engine import listings

    monkeypatch.setattr(listings, "SETTLED_LISTING_S", 0.0)  # a folder's times set just now: not what is tested
    calls = []

    @listings.kept_while_listed_alike
    def names(folder):
        calls.append(folder.name)
        listings.note(listings.time_before_listing(folder))
        return sorted(os.listdir(folder))

    for k in range(300):
        (tmp_path / f"step_{k}").mkdir()
        (tmp_path / f"step_{k}" / "0.png").touch()
        _age(tmp_path / f"step_{k}")
        names(tmp_path / f"step_{k}")
        if k >= 3:
            shutil.rmtree(tmp_path / f"step_{k - 3}")
    assert names.held() < 150  # of the 300 folders written, 3 left
    calls.clear()
    for k in (297, 298, 299):
        assert names(tmp_path / f"step_{k}") == ["0.png"]
    assert calls == []  # the folders still there: kept
