"""Decoding sample files: images, grids, tensors, labels, instance ids and skipped files."""
from __future__ import annotations

import codecs
import json
import pickle
import struct
import subprocess
import sys
import warnings
import zipfile
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.sample_fixtures import (digit_like, matplotlib_grid, save_torchvision_grid, smooth_images, stylegan_grid,
                                   write_png)

from engine.decode.samples import iter_samples
from engine.discovery.identity import content_hash
from engine.discovery.options import DiscoveryOptions
from engine.discovery.scan import scan_reference, scan_run
from engine.errors import DiscoveryError
from engine.records import Checkpoint, Sample, SkippedFile

RNG = np.random.default_rng(0)


def _checkpoint(root, *names, step=0):
    """A checkpoint of the given files below ``root``: a folder when they share one, else a file."""
    files = tuple(sorted(root / n for n in names))
    source = names[0].split("/")[0] if "/" in names[0] else names[0]
    return Checkpoint(step=step, source=source, files=files, root=root)


def _split(items):
    samples = [s for s in items if isinstance(s, Sample)]
    skipped = [s for s in items if isinstance(s, SkippedFile)]
    return samples, skipped


@pytest.mark.parametrize("names", ["img_{i:04d}_step_{step:04d}.png", "step{step}_{i:02d}.png"])
def test_a_flat_folders_per_step_samples_take_their_ids_from_the_index_not_the_step(tmp_path, names):
    """``img_0003_step_0500.png``: the index (3) is the instance, not the name's last number."""
    for step in (500, 1000):
        for i in (0, 1, 3):
            write_png(tmp_path / names.format(step=step, i=i), smooth_images(RNG, 1, 8)[0])
    for checkpoint in scan_run(tmp_path):
        assert [s.instance for s in iter_samples(checkpoint)] == [0, 1, 3]


def test_folder_of_images_uses_file_name_ids(tmp_path):
    images = smooth_images(RNG, 5, 16)
    for i, image in enumerate(images):
        write_png(tmp_path / "checkpoint-500" / f"{i + 3:05d}.png", image)
    (checkpoint,) = scan_run(tmp_path)
    samples = list(iter_samples(checkpoint))
    assert [s.instance for s in samples] == [3, 4, 5, 6, 7]
    assert [s.path for s in samples] == [f"checkpoint-500/{i:05d}.png" for i in range(3, 8)]
    for sample, image in zip(samples, images):
        assert sample.image.dtype == np.uint8 and sample.image.shape == (16, 16, 3)
        assert sample.image.flags.writeable and sample.image.flags.owndata
        np.testing.assert_array_equal(sample.image, image)
        assert sample.label is None and sample.latent is None


@pytest.mark.parametrize("name", ["sample_{i:03d}_256x256.png", "sample_{i:03d}_cfg7.5.png", "{i:05d}_seed42.png"])
def test_a_size_setting_or_seed_after_the_index_is_no_id(tmp_path, name):
    """Round AB: the last number of the name was taken, the same in every file: no sample had an id."""
    for i, image in enumerate(smooth_images(RNG, 3, 16)):
        write_png(tmp_path / "step_500" / name.format(i=i + 4), image)
    (checkpoint,) = scan_run(tmp_path)
    assert [s.instance for s in iter_samples(checkpoint)] == [4, 5, 6]


def test_names_without_distinct_integers_give_no_ids(tmp_path):
    for name in ("a.png", "b_1.png", "c_1.png"):
        write_png(tmp_path / "ckpt_9" / name, smooth_images(RNG, 1, 16)[0])
    samples = list(iter_samples(_checkpoint(tmp_path, "ckpt_9/a.png", "ckpt_9/b_1.png", "ckpt_9/c_1.png")))
    assert [s.instance for s in samples] == [-1, -1, -1]


def test_a_stray_file_costs_only_its_own_and_its_numbers_ids_and_is_named(tmp_path, caplog):
    """A Finder copy ``00003 (1).png`` beside ``00000.png``..``00003.png`` (its last number is
    1): every id of the checkpoint was -1 without a word, so the step fell out of the
    instances' tracks. Now only the files sharing a number (or without one) lose theirs."""
    names = ["00000.png", "00001.png", "00002.png", "00003.png", "00003 (1).png", "preview.png"]
    for name in names:
        write_png(tmp_path / "checkpoint-200" / name, smooth_images(RNG, 1, 8)[0])
    write_png(tmp_path / "checkpoint-100" / "00000.png", smooth_images(RNG, 1, 8)[0])
    checkpoint = scan_run(tmp_path)[1]
    with caplog.at_level("WARNING", logger="engine.decode"):
        ids = {s.path.rpartition("/")[2]: s.instance for s in iter_samples(checkpoint)}
    assert ids == {"00000.png": 0, "00001.png": -1, "00002.png": 2, "00003.png": 3, "00003 (1).png": -1,
                   "preview.png": -1}
    assert "checkpoint-200: 3 of 6 files share their number with another, have none" in caplog.text
    assert "00001.png, 00003 (1).png, preview.png" in caplog.text


def test_each_processs_numbered_samples_are_ids_with_the_rank(tmp_path, caplog):
    """Round BP: ``step_1000/rank1_3.png``, every rank numbering its samples from 0: all 8 ids
    were -1 and the line called them strays. The rank and the index together are the id, the
    same at every step."""
    for step in (1000, 2000):
        for rank in range(2):
            for i in range(4):
                write_png(tmp_path / "samples" / f"step_{step}" / f"rank{rank}_{i}.png", smooth_images(RNG, 1, 16)[0])
    with caplog.at_level("WARNING", logger="engine.decode"):
        for checkpoint in scan_run(tmp_path):
            ids = {s.path.rpartition("/")[2]: s.instance for s in iter_samples(checkpoint)}
            assert ids == {f"rank{r}_{i}.png": 10000 * r + i for r in range(2) for i in range(4)}
    assert "share their number" not in caplog.text


def test_per_process_ids_stay_the_same_when_a_steps_sample_count_gains_a_digit(tmp_path):
    """Round BQ2: the index was padded to the checkpoint's largest one's digits: 10 samples a rank at
    step 1000 made rank1_0 id 10, 11 at step 2000 made rank1_0 id 100 and rank0_10 id 10, so
    another sample was followed as rank1_0."""
    for step, n in ((1000, 10), (2000, 11)):
        for rank in range(2):
            for i in range(n):
                write_png(tmp_path / "samples" / f"step_{step}" / f"rank{rank}_{i}.png", smooth_images(RNG, 1, 16)[0])
    seen: dict[int, str] = {}
    for checkpoint in scan_run(tmp_path):
        for sample in iter_samples(checkpoint):
            name = sample.path.rpartition("/")[2]
            assert seen.setdefault(sample.instance, name) == name
    assert len(seen) == 22


@pytest.mark.parametrize("name, ranks", [
    ("rank{r}_{i}.png", ({0, 1}, {1}, {0})),  # a step holding one rank's files
    ("rank{r}_{i}.png", ({2, 10}, {10}, {2})),  # ranks of different widths
    ("{i:03d}_rank{r:02d}.png", ({0, 3}, {3}, {0, 3})),
    ("gpu{r}-{i}_2026-01-0{step}_10-30-0{i}.png", ({0, 1}, {1}, {0, 1})),  # a date in the name, apart in each file
])
def test_per_process_ids_are_the_same_whichever_ranks_wrote_the_step(tmp_path, name, ranks):
    """Round BR2: the rank joined the id only where the step's last numbers repeated: a step
    holding rank 1's files alone (a rank crashed, or wrote later) gave rank1_0 and rank1_1 ids 0
    and 1, rank 0's at the other steps: another sample followed as the same one."""
    for step, wrote in enumerate(ranks, start=1):
        for r in wrote:
            for i in range(2):
                write_png(tmp_path / "samples" / f"step_{step}" / name.format(r=r, i=i, step=step),
                          smooth_images(RNG, 1, 16)[0])
    for checkpoint, wrote in zip(scan_run(tmp_path), ranks, strict=True):
        assert sorted(s.instance for s in iter_samples(checkpoint)) == [r * 10000 + i for r in sorted(wrote) for i in range(2)]


def test_one_file_a_rank_named_with_the_step_is_the_same_instance_at_every_step(tmp_path):
    """``step_1000/0001000_rank1.png``, one sample a rank: the step in the name was taken for the
    index, ids 1000 and 11000 at step 1000, 2000 and 12000 at step 2000: no rank's sample followed."""
    for step in (1000, 2000):
        for r in range(2):
            write_png(tmp_path / "samples" / f"step_{step}" / f"{step:07d}_rank{r}.png", smooth_images(RNG, 1, 16)[0])
    assert [sorted(s.instance for s in iter_samples(c)) for c in scan_run(tmp_path)] == [[0, 10000], [0, 10000]]


def test_per_process_samples_beside_each_other_steps_take_rank_ids_not_their_order(tmp_path):
    """Round BR2: ``img_step500_rank1_0.png`` in one folder with every step's: the part after the
    step was taken for a prompt, the id its place among the step's (rank1_0 was 2, then 0 at a step
    rank 1 wrote alone) and the label the name itself (``rank1_0``)."""
    for step, wrote in ((500, (0, 1)), (1000, (1,))):
        for r in wrote:
            for i in range(2):
                write_png(tmp_path / f"img_step{step}_rank{r}_{i}.png", smooth_images(RNG, 1, 16)[0])
    found = [[(s.instance, s.label) for s in iter_samples(c)] for c in scan_run(tmp_path)]
    assert found == [[(0, None), (1, None), (10000, None), (10001, None)], [(10000, None), (10001, None)]]


def test_numbers_that_start_again_in_each_prompt_folder_are_ids_with_the_folder(tmp_path, caplog):
    """invoke-training's ``validation/epoch_00000001-step_00000125/prompt_0000/0000.jpg``: every
    prompt folder numbers its images from 0, so every id was -1, and no line said so. A folder
    of grids or of names without numbers says nothing."""
    for step in (125, 250):
        for prompt in range(3):
            for i in range(2):
                write_png(tmp_path / "validation" / f"epoch_00000001-step_{step:08d}" / f"prompt_{prompt:04d}" /
                          f"{i:04d}.jpg", smooth_images(RNG, 1, 16)[0])
    with caplog.at_level("WARNING", logger="engine.decode"):
        for checkpoint in scan_run(tmp_path):
            samples = list(iter_samples(checkpoint))
            assert [(s.label, s.instance) for s in samples] == [
                (f"prompt_{p:04d}", 10 * p + i) for p in range(3) for i in range(2)]
    assert "share their number" not in caplog.text
    for name in ("0000.png", "0000 copy.png"):  # no file keeps an id: said too (it was not)
        write_png(tmp_path / "flat" / "step_100" / name, smooth_images(RNG, 1, 16)[0])
    with caplog.at_level("WARNING", logger="engine.decode"):
        assert [s.instance for s in iter_samples(scan_run(tmp_path / "flat")[0])] == [-1, -1]
    assert "step_100: 2 of 2 files share their number with another, have none" in caplog.text


def test_modes_are_converted_to_rgb_uint8(tmp_path):
    folder = tmp_path / "ckpt_1"
    folder.mkdir()
    gray = (np.arange(256, dtype=np.uint8).reshape(16, 16))
    Image.fromarray(gray, "L").save(folder / "0_gray.png")
    rgba = np.dstack([smooth_images(RNG, 1, 16)[0], np.full((16, 16), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "1_rgba.png")
    deep = (gray.astype(np.uint16) * 257)
    Image.fromarray(deep).save(folder / "2_deep.png")  # 16-bit grayscale
    Image.fromarray(gray, "L").convert("P").save(folder / "3_palette.bmp")
    Image.fromarray(rgba[..., :3]).save(folder / "4_rgb.webp", lossless=True)
    samples = list(iter_samples(_checkpoint(tmp_path, *(f"ckpt_1/{p.name}" for p in sorted(folder.iterdir())))))
    assert len(samples) == 5 and all(s.image.shape == (16, 16, 3) and s.image.dtype == np.uint8 for s in samples)
    expected_gray = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(samples[0].image, expected_gray)
    np.testing.assert_array_equal(samples[1].image, rgba[..., :3])
    np.testing.assert_array_equal(samples[2].image, expected_gray)
    np.testing.assert_array_equal(samples[3].image, expected_gray)
    np.testing.assert_array_equal(samples[4].image, rgba[..., :3])
    assert [s.instance for s in samples] == [0, 1, 2, 3, 4]


def test_dcgan_grid_file_is_split_into_tiles(tmp_path):
    images = smooth_images(RNG, 64, 64)
    save_torchvision_grid(images, tmp_path / "fake_samples_epoch_003.png")
    save_torchvision_grid(images, tmp_path / "fake_samples_epoch_004.png")
    first = scan_run(tmp_path)[0]
    samples = list(iter_samples(first))
    assert len(samples) == 64
    assert [s.instance for s in samples] == list(range(64))
    assert samples[7].path == "fake_samples_epoch_003.png#7"
    for sample, image in zip(samples, images):
        np.testing.assert_array_equal(sample.image, image)


def test_folder_with_one_grid_image_is_split_and_partial_row_trimmed(tmp_path):
    images = smooth_images(RNG, 13, 32)
    save_torchvision_grid(images, tmp_path / "step_100" / "samples" / "grid.png")
    save_torchvision_grid(images, tmp_path / "step_200" / "samples" / "grid.png")
    samples = list(iter_samples(scan_run(tmp_path)[1]))
    assert [s.instance for s in samples] == list(range(13))
    assert samples[12].path == "step_200/samples/grid.png#12"
    np.testing.assert_array_equal(samples[12].image, images[12])


def test_a_checkpoint_of_several_grids_splits_each_of_them(tmp_path):
    """BigGAN-PyTorch's sample sheets ``samples/EXP/{itr}/samples{i}.jpg`` (10 samples per class
    row) and one grid per process ``samples/{step:07d}_rank{r}.png``: every grid is split, ids
    running on across them; a folder of single samples stays whole."""
    sheets = [smooth_images(RNG, 50, 32) for _ in range(2)]
    for i, sheet in enumerate(sheets):
        save_torchvision_grid(sheet, tmp_path / "biggan" / "2000" / f"samples{i}.jpg", nrow=10)
    # its interpolation sheets beside them, 16 x 10 (sorted first: the two ends differ in shape)
    save_torchvision_grid(smooth_images(RNG, 160, 32), tmp_path / "biggan" / "2000" / "interpZ0.jpg", nrow=10)
    save_torchvision_grid(sheets[0], tmp_path / "biggan" / "fixed_samples2000.jpg", nrow=10)
    for step in (500, 1000):
        for rank in range(2):
            save_torchvision_grid(smooth_images(RNG, 4, 16), tmp_path / "ranks" / f"{step:07d}_rank{rank}.png", nrow=2)
    folder = next(c for c in scan_run(tmp_path / "biggan") if c.source == "2000")
    samples, skipped = _split(list(iter_samples(folder)))
    assert not skipped and [s.instance for s in samples] == list(range(260))
    assert samples[160 + 57].path == "2000/samples1.jpg#7"
    assert np.abs(samples[160 + 57].image.astype(int) - sheets[1][7]).mean() < 8  # JPEG
    assert [[s.instance for s in iter_samples(c)] for c in scan_run(tmp_path / "ranks")] == [list(range(8))] * 2
    for i, image in enumerate(smooth_images(RNG, 3, 64)):
        write_png(tmp_path / "singles" / "step_100" / f"{i:03d}.png", image)
    assert [s.instance for s in iter_samples(scan_run(tmp_path / "singles")[0])] == [0, 1, 2]


@pytest.mark.parametrize("noise", [0.05, 0.55])
def test_a_folder_of_single_small_samples_stays_whole_when_the_first_looks_like_a_grid(tmp_path, noise):
    """16 single 32-px files (scikit-learn digits upscaled 4x, as a small GAN writes them): the
    grid detector may take one for a grid of blocks, which must not cut every file of the
    folder (211 "samples" for 16), nor a --holdout folder of them (468 for 30)."""
    from sklearn.datasets import load_digits

    digits = load_digits().images
    rng = np.random.default_rng(0)
    for i in range(16):
        g = np.clip(np.kron(digits[i] / 16, np.ones((4, 4))) + rng.normal(0, noise, (32, 32)), 0, 1)
        write_png(tmp_path / "run" / "step_1000" / f"{i:03d}.png", (np.stack([g, g * .8, g * .5], -1) * 255).astype(np.uint8))
    samples = list(iter_samples(scan_run(tmp_path / "run")[0]))
    assert [s.instance for s in samples] == list(range(16))
    assert len(list(iter_samples(scan_reference(tmp_path / "run" / "step_1000", "holdout")))) == 16


def test_tensorflow_dcgan_figure_is_split_into_its_subplots(tmp_path):
    """The TF DCGAN tutorial's ``image_at_epoch_0001.png``: 16 samples, ids 0..15, no margins."""
    digits = np.stack([digit_like(RNG, 28)[..., 0] for _ in range(16)]).astype(np.float32) / 127.5 - 1
    matplotlib_grid(digits, tmp_path / "image_at_epoch_0001.png")
    samples = list(iter_samples(_checkpoint(tmp_path, "image_at_epoch_0001.png", step=1)))
    assert [s.instance for s in samples] == list(range(16))
    assert {s.image.shape for s in samples} == {(67, 67, 3)}
    assert all(s.image[0].min() < 255 and s.image[:, 0].min() < 255 for s in samples)


def test_one_natural_image_is_not_split(tmp_path):
    write_png(tmp_path / "sample_500.png", digit_like(RNG, 64))
    samples = list(iter_samples(_checkpoint(tmp_path, "sample_500.png", step=500)))
    assert len(samples) == 1 and samples[0].image.shape == (64, 64, 3) and samples[0].path == "sample_500.png"
    assert samples[0].instance == 0  # the file's number is its step, not a sample's id: the file's first sample


def test_one_image_per_step_is_the_same_instance_at_every_step(tmp_path):
    """Round BP: ``samples/000100.png`` ... ``000400.png``, one fixed-noise sample a step: each had
    instance -1, so the map drew no trail for it. It is its file's sample 0 at every step."""
    for step in (100, 200, 300):
        write_png(tmp_path / "samples" / f"{step:06d}.png", smooth_images(RNG, 1, 64)[0])
    found = [[s.instance for s in iter_samples(checkpoint)] for checkpoint in scan_run(tmp_path)]
    assert found == [[0], [0], [0]]


def test_a_folder_holding_one_image_keeps_its_file_name_id(tmp_path):
    write_png(tmp_path / "step_500" / "00007.png", digit_like(RNG, 64))
    (sample,) = iter_samples(_checkpoint(tmp_path, "step_500/00007.png", step=500))
    assert sample.instance == 7


def test_an_image_over_pillows_pixel_limit_decodes_without_a_warning(tmp_path, monkeypatch, recwarn):
    """A trainer's own large grid: decoded quietly; only twice the limit (a decompression bomb) is skipped."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    write_png(tmp_path / "big" / "a.png", digit_like(RNG, 40))  # 1,600 pixels: over the limit, under twice it
    write_png(tmp_path / "big" / "b.png", digit_like(RNG, 48))  # 2,304 pixels: over twice the limit
    samples, skipped = _split(list(iter_samples(_checkpoint(tmp_path, "big/a.png", "big/b.png"))))
    assert [s.path for s in samples] == ["big/a.png"] and samples[0].image.shape == (40, 40, 3)
    assert [s.path for s in skipped] == ["big/b.png"] and "too large" in skipped[0].reason
    assert "2,304 pixels, over 2,000" in skipped[0].reason and "save fewer or smaller samples" in skipped[0].reason
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_forced_geometry_splits_every_image_with_running_ids(tmp_path):
    images = smooth_images(RNG, 24, 16)
    write_png(tmp_path / "ckpt_5" / "a.png", stylegan_grid(images[:12], 3, 4))
    write_png(tmp_path / "ckpt_5" / "b.png", stylegan_grid(images[12:], 3, 4))
    write_png(tmp_path / "ckpt_5" / "odd.png", RNG.integers(0, 256, (21, 31, 3), dtype=np.uint8))
    checkpoint = scan_run(tmp_path)[0]
    samples, skipped = _split(list(iter_samples(checkpoint, DiscoveryOptions(grid=(3, 4)))))
    assert [s.instance for s in samples] == list(range(24))
    assert samples[13].path == "ckpt_5/b.png#1"
    for sample, image in zip(samples, images):
        np.testing.assert_array_equal(sample.image, image)
    assert [(s.path, "3x4 grid" in s.reason) for s in skipped] == [("ckpt_5/odd.png", True)]


def test_broken_files_are_skipped_and_the_rest_decodes(tmp_path):
    folder = tmp_path / "checkpoint-500"
    images = smooth_images(RNG, 2, 32)
    write_png(folder / "00000.png", images[0])
    write_png(folder / "00001.png", images[1])
    (folder / "00002.png").write_bytes(b"")
    whole = (folder / "00000.png").read_bytes()
    (folder / "00003.png").write_bytes(whole[: len(whole) // 2])  # half-written
    (folder / "00004.png").write_text("<html>not an image</html>")
    (folder / "00005.npy").write_bytes(b"\x93NUMPY garbage")
    (folder / "00006.pt").write_bytes(b"garbage")
    items = list(iter_samples(scan_run(tmp_path)[0]))
    samples, skipped = _split(items)
    assert [s.instance for s in samples] == [0, 1]
    reasons = {s.path.rsplit("/", 1)[1]: s.reason for s in skipped}
    assert set(reasons) == {"00002.png", "00003.png", "00004.png", "00005.npy", "00006.pt"}
    assert "0 bytes" in reasons["00002.png"]
    assert "truncated" in reasons["00003.png"]
    assert "not a readable image" in reasons["00004.png"]
    assert "numpy" in reasons["00005.npy"] and "torch" in reasons["00006.pt"]
    assert all("\n" not in r for r in reasons.values())


# --- tensors ------------------------------------------------------------------------------------

def _expected(float_images, lo):
    return np.clip(np.rint((float_images - lo) * (255.0 / (1 - lo))), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("layout", ["nhwc_uint8", "nchw_pm1", "nchw_01", "nchw_gray", "nhw_gray", "chw_single"])
def test_npy_shapes_and_ranges(tmp_path, layout):
    base = smooth_images(RNG, 4, 16)  # NHWC uint8
    unit = base.astype(np.float32) / 255
    arrays = {
        "nhwc_uint8": (base, base),
        "nchw_pm1": ((unit * 2 - 1).transpose(0, 3, 1, 2), base),
        "nchw_01": (unit.transpose(0, 3, 1, 2), base),
        "nchw_gray": (unit[:, None, :, :, 0], np.repeat(base[..., :1], 3, axis=3)),
        "nhw_gray": (base[..., 0], np.repeat(base[..., :1], 3, axis=3)),
        "chw_single": (unit[0].transpose(2, 0, 1), base[:1]),
    }
    stored, expected = arrays[layout]
    np.save(tmp_path / "samples_100.npy", stored)
    samples = list(iter_samples(scan_run(tmp_path)[0]))
    assert [s.instance for s in samples] == list(range(len(expected)))
    assert [s.path for s in samples] == [f"samples_100.npy#{i}" for i in range(len(expected))]
    for sample, image in zip(samples, expected):
        np.testing.assert_array_equal(sample.image, image)
        assert sample.image.flags.writeable and sample.image.flags.owndata  # not a view of the mmap


def test_a_value_range_given_reads_every_file_alike(tmp_path):
    """Guessed per file, tanh images that happen to hold no negative value (a generator
    collapsed onto a bright mode) were read as [0, 1]: the same images stored 140 at one step
    and 25 at the next. --value-range tanh reads both alike, and its change re-reads them."""
    tanh = np.full((2, 3, 8, 8), 0.1, np.float32)
    tanh[0, 0, 0, 0] = -1.0  # step 1 has one negative value, step 2 none
    np.save(tmp_path / "samples_1.npy", tanh)
    np.save(tmp_path / "samples_2.npy", np.full((2, 3, 8, 8), 0.1, np.float32))
    guessed = [list(iter_samples(c))[1].image[0, 0, 0] for c in scan_run(tmp_path)]
    assert guessed == [140, 26]
    given = DiscoveryOptions(value_range=(-1.0, 1.0))
    assert [list(iter_samples(c, given))[1].image[0, 0, 0] for c in scan_run(tmp_path, given)] == [140, 140]
    checkpoint = scan_run(tmp_path)[1]
    assert content_hash(checkpoint) != content_hash(checkpoint, given)


def test_floats_a_little_over_1_are_0_1_and_far_over_255_are_refused(tmp_path):
    """An unclamped sampler's [0, 1] batch with a maximum of 1.007 was read as [0, 255]
    (thumbnails nearly black); a float file spanning [0, 950] was clipped at 255 (a third of
    the pixels white), both without a word."""
    unit = np.full((2, 3, 8, 8), 0.5, np.float32)
    unit[0, 0, 0, 0] = 1.007
    np.save(tmp_path / "samples_1.npy", unit)
    np.save(tmp_path / "samples_2.npy", np.linspace(0, 950, 2 * 3 * 64, dtype=np.float32).reshape(2, 3, 8, 8))
    first, second = scan_run(tmp_path)
    assert list(iter_samples(first))[1].image[0, 0, 0] == 128
    (skipped,) = list(iter_samples(second))
    assert isinstance(skipped, SkippedFile) and "values span [0, 950]" in skipped.reason
    assert "--value-range" in skipped.reason


def test_npz_with_labels_and_latents(tmp_path):
    base = smooth_images(RNG, 3, 16)
    z = RNG.standard_normal((3, 8)).astype(np.float32)
    np.savez(tmp_path / "step_7.npz", samples=base.transpose(0, 3, 1, 2), y=np.array([4, 1, 4]), z=z)
    samples = list(iter_samples(scan_run(tmp_path)[0]))
    assert [s.label for s in samples] == ["4", "1", "4"]
    np.testing.assert_array_equal(np.stack([s.latent for s in samples]), z)
    np.testing.assert_array_equal(samples[2].image, base[2])


def test_guided_diffusion_samples_with_positional_labels_beside_its_weights(tmp_path):
    """openai guided-diffusion: ``np.savez(out, images, labels)`` (``arr_0``, ``arr_1``) in
    ``samples_ema_0.9999_050000/samples_3x16x16x3.npz``, its model, EMA and optimiser files beside."""
    for step in (50000, 100000):
        folder = tmp_path / f"samples_ema_0.9999_{step:06d}"
        folder.mkdir()
        np.savez(folder / "samples_3x16x16x3.npz", smooth_images(RNG, 3, 16), np.array([7, 0, 7]))
        for name in (f"model{step:06d}.pt", f"ema_0.9999_{step:06d}.pt", f"opt{step:06d}.pt"):
            torch.save({"state": torch.zeros(1)}, tmp_path / name)
    checkpoints = scan_run(tmp_path)
    assert [(c.step, c.source) for c in checkpoints] == [(50000, "samples_ema_0.9999_050000"),
                                                         (100000, "samples_ema_0.9999_100000")]
    assert [s.label for s in iter_samples(checkpoints[0])] == ["7", "0", "7"]


def test_pt_dict_with_images_labels_latents(tmp_path):
    x = torch.from_numpy(smooth_images(RNG, 3, 16)).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.save({"x": x, "labels": torch.tensor([0, 2, 1]), "latents": torch.randn(3, 2, 4)}, tmp_path / "s_1.pt")
    torch.save(x[:2].clone(), tmp_path / "s_2.pt")
    first, second = scan_run(tmp_path)
    samples = list(iter_samples(first))
    assert [s.label for s in samples] == ["0", "2", "1"] and samples[0].latent.shape == (8,)
    expected = np.clip(np.rint((x.permute(0, 2, 3, 1).numpy() + 1) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(samples[1].image, expected[1])
    assert len(list(iter_samples(second))) == 2


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's memory from /proc")
@pytest.mark.parametrize("name", ["samples.npz", "samples.npy"])
def test_a_large_tensor_file_is_not_read_whole_into_memory(tmp_path, name):
    """guided-diffusion's 50k x 256 x 256 samples file is 10 GB: it was read whole (16 GB of
    memory). np.savez and .npy files are read and converted a chunk at a time."""
    images = np.zeros((96, 256, 256, 3), np.uint8)  # 18 MiB, 72 MiB as float
    images[:, :, :, 0] = np.arange(96, dtype=np.uint8)[:, None, None]
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, images.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    else:
        np.save(path, images.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    script = f"""
import re
import numpy as np, torch
from pathlib import Path
from engine.decode.pixels import to_uint8
from engine.decode.tensors import load_tensor_file
def anonymous_mib():
    return int(re.search(r"RssAnon:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
before = anonymous_mib()
images, *_ = load_tensor_file(Path({str(path)!r}))
grown = anonymous_mib() - before
print(grown, to_uint8(np.asarray(images[95]))[0, 0, 0])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) < 24 and int(out[1]) == 95  # 72 MiB of floats: not copied


def test_a_tensor_file_cut_short_at_rest_is_named_as_truncated(tmp_path):
    """Round AD: a .npy whose np.save was cut (a crash, a full disk) an hour ago was said to
    have "changed while it was read ... read again once it settles": neither was true."""
    path = tmp_path / "step_5.npy"
    np.save(path, smooth_images(RNG, 64, 8))
    whole = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(whole // 3)
    (skipped,) = [s for s in iter_samples(scan_run(tmp_path)[0]) if isinstance(s, SkippedFile)]
    assert skipped.reason.startswith(f"truncated: {whole // 3:,} of the {whole:,} bytes its header says (")
    assert skipped.reason.endswith(" of 64 rows); it is read again when the file changes")


@pytest.mark.parametrize("name", ["step_5.npz", "step_5.npy"])
def test_a_tensor_file_rewritten_while_read_is_skipped_not_a_crash(tmp_path, name):
    """Memory-mapped, a file the trainer rewrote meanwhile (np.savez truncates it first) killed
    the decode worker with SIGBUS, and the live watch with it: a short read is a skipped file."""
    save = np.savez if name.endswith(".npz") else np.save
    save(tmp_path / name, smooth_images(RNG, 600, 8))
    samples = iter_samples(scan_run(tmp_path)[0])
    first = next(samples)
    save(tmp_path / name, smooth_images(RNG, 10, 8))  # the trainer writes the step again, smaller
    rest = list(samples)
    assert isinstance(first, Sample) and all(isinstance(s, Sample) for s in rest[:-1])
    assert isinstance(rest[-1], SkippedFile) and "changed while it was read" in rest[-1].reason


def test_weight_and_foreign_tensor_files_are_skipped_unopened_objects(tmp_path):
    folder = tmp_path / "ckpt_3"
    folder.mkdir()
    torch.save(OrderedDict(conv=torch.zeros(64, 3, 4, 4)), folder / "a_state.pt")
    torch.save({"fraction": Fraction(1, 3)}, folder / "b_object.pt")
    np.save(folder / "c_latents.npy", RNG.standard_normal((64, 512)).astype(np.float32))
    np.savez(folder / "d_misc.npz", foo=np.zeros(3), bar=np.zeros(4))
    np.save(folder / "e_objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(folder / "f_ok.npy", smooth_images(RNG, 2, 16))
    np.save(folder / "g_nan.npy", np.full((2, 3, 8, 8), np.nan, np.float32))
    np.save(folder / "h_complex.npy", np.ones((2, 3, 8, 8), np.complex64))  # numpy warned, then cast
    (folder / "i_pickle.pt").write_bytes(pickle.dumps(np.zeros((2, 3, 8, 8))))  # torch warned in two lines
    (folder / "j_random.npy").write_bytes(b"\x00garbage" * 40)  # was said to hold Python objects
    np.save(folder / "n_counts.npy", np.full((2, 8, 8, 3), 254000, np.int64))  # clipped to white before, silently
    np.save(folder / "o_signed.npy", np.full((2, 8, 8, 3), -40, np.int16))
    # damaged bytes that fail torch's weights-only unpickler and numpy's zip reader with errors
    # of other kinds: each stopped the whole ingest with a traceback (diffusion-pipe's cut DeepSpeed files)
    (folder / "k_stack.pt").write_bytes(b"\x80\x02.")  # IndexError: pop from empty list
    (folder / "l_memo.pt").write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x01s.")  # KeyError: 1
    np.savez(folder / "m_cut.npz", x=smooth_images(RNG, 2, 16))
    packed = (folder / "m_cut.npz").read_bytes()
    (folder / "m_cut.npz").write_bytes(packed[:200] + bytes(300) + packed[500:])  # zipfile.BadZipFile: Bad CRC-32
    torch.save(torch.from_numpy(smooth_images(RNG, 2, 16)), folder / "p_flipped.pt")
    packed = bytearray((folder / "p_flipped.pt").read_bytes())
    with zipfile.ZipFile(folder / "p_flipped.pt") as archive:
        storage = next(m for m in archive.infolist() if m.filename.endswith("/data/0"))
    name_length, extra_length = struct.unpack("<HH", packed[storage.header_offset + 26:storage.header_offset + 30])
    packed[storage.header_offset + 30 + name_length + extra_length + 100] ^= 0x40  # torch.load read it as a pixel
    (folder / "p_flipped.pt").write_bytes(bytes(packed))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's own warnings would print before the skip line
        samples, skipped = _split(list(iter_samples(scan_run(tmp_path)[0])))
    assert [s.path for s in samples] == ["ckpt_3/f_ok.npy#0", "ckpt_3/f_ok.npy#1"]
    reasons = {s.path.rsplit("/", 1)[1]: s.reason for s in skipped}
    assert "no image tensor (keys: conv)" in reasons["a_state.pt"]
    assert "refused to unpickle" in reasons["b_object.pt"]
    assert "not images" in reasons["c_latents.npy"]
    assert "no image array (keys: foo, bar)" in reasons["d_misc.npz"]
    assert "refused to unpickle" in reasons["e_objects.npy"]
    assert reasons["g_nan.npy"] == "holds no finite value (NaN or infinite everywhere): a diverged generator?"
    assert "complex64 values, not image pixels" in reasons["h_complex.npy"]
    assert "not a readable torch file" in reasons["i_pickle.pt"]
    assert reasons["j_random.npy"] == "not a numpy file (no .npy or .npz header): damaged, or another format under this name"
    assert reasons["n_counts.npy"] == "integer values span [254000, 254000]: not images in [0, 255] or [0, 65535]"
    assert reasons["o_signed.npy"] == "integer values span [-40, -40]: not images in [0, 255] or [0, 65535]"
    assert reasons["k_stack.pt"] == "not a readable torch file (IndexError: pop from empty list)"
    assert reasons["l_memo.pt"] == "not a readable torch file (KeyError: 1)"
    assert reasons["m_cut.npz"] == "not a readable numpy file (Bad CRC-32 for file 'x.npy')"
    assert reasons["p_flipped.pt"] == "not a readable torch file (BadZipFile: Bad CRC-32 for file 'p_flipped/data/0')"


def test_a_dict_of_tensors_gives_its_one_image_shaped_tensor_and_fid_statistics_are_no_samples(tmp_path):
    """Round AL: ``torch.save({"fake_images": x, "step": s, "labels": y})`` was skipped as "a
    weights or state file?" (its key not among the names trainers use); guided-diffusion's
    reference batch (real images beside ``mu``/``sigma``) was stored as generated samples; a
    .npy of a shape no image has was said with its first row's shape, (1, 8, 8, 8)."""
    folder = tmp_path / "step_5"
    folder.mkdir()
    images = smooth_images(RNG, 3, 16)  # NHWC uint8
    torch.save({"fake_images": torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, "step": torch.tensor(5),
                "labels": torch.tensor([1, 2, 3])}, folder / "a_keyed.pt")
    torch.save({"x_gen": torch.zeros(2, 3, 16, 16), "x_real": torch.zeros(2, 3, 16, 16)}, folder / "b_gen.pt")
    torch.save({"fake_a": torch.zeros(2, 3, 16, 16), "fake_b": torch.zeros(2, 3, 16, 16)}, folder / "b_two.pt")
    torch.save(OrderedDict(conv1=torch.zeros(64, 3, 9, 9), conv2=torch.zeros(64, 64, 3, 3)), folder / "c_state.pt")
    np.savez(folder / "d_reference.npz", arr_0=images, mu=np.zeros(8), sigma=np.eye(8))
    np.save(folder / "e_attention.npy", np.zeros((16, 8, 8, 8), np.float32))
    np.savez(folder / "f_named.npz", generated_batch=images, noise=np.zeros((3, 64), np.float32))
    # round AM: image-shaped tensors that are no samples were read as such (204 "samples" a step)
    torch.save({"attn": torch.full((8, 4, 16, 16), 1 / 256), "step": torch.tensor(5)}, folder / "g_attention.pt")
    torch.save(OrderedDict({"patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}), folder / "h_vit.pt")
    torch.save({"latents": torch.zeros(8, 4, 32, 32)}, folder / "i_latents.pt")
    np.savez(folder / "j_vae.npz", samples=images, mu=np.zeros((3, 8)), sigma=np.ones((3, 8)))  # a VAE's, not FID's
    samples, skipped = _split(list(iter_samples(scan_run(tmp_path)[0])))
    assert [s.path for s in samples] == [*(f"step_5/a_keyed.pt#{i}" for i in range(3)),
                                         "step_5/b_gen.pt#0", "step_5/b_gen.pt#1",  # x_gen, not x_real
                                         *(f"step_5/f_named.npz#{i}" for i in range(3)),
                                         *(f"step_5/j_vae.npz#{i}" for i in range(3))]
    assert [s.label for s in samples[:3]] == ["1", "2", "3"]
    np.testing.assert_allclose(samples[0].image, images[0], atol=1)
    reasons = {s.path.rsplit("/", 1)[1]: s.reason for s in skipped}
    assert reasons["b_two.pt"].startswith("holds no image tensor (keys: fake_a, fake_b); a weights or state file? "
                                          "(samples are read from the key 'images' or 'samples', or the one image")
    assert reasons["c_state.pt"].startswith("holds no image tensor (keys: conv1, conv2); a weights or state file?")
    assert reasons["d_reference.npz"] == "holds FID reference statistics (mu, sigma), not samples"
    assert reasons["e_attention.npy"] == "holds no image array (shape (16, 8, 8, 8) float32)"
    assert {"g_attention.pt", "h_vit.pt", "i_latents.pt"} <= set(reasons)


def test_an_fid_reference_batch_is_read_by_real_not_as_generated_samples(tmp_path):
    """guided-diffusion's reference batch holds real images (arr_0) beside mu/sigma: no run's
    samples (round AL), but what --real wants (round AM: refused, "holds no sample files")."""
    images = smooth_images(RNG, 4, 16)
    (tmp_path / "ref").mkdir()
    np.savez(tmp_path / "ref" / "VIRTUAL_cifar32_labeled.npz", arr_0=images, mu=np.zeros(8), sigma=np.eye(8))
    samples, skipped = _split(list(iter_samples(scan_reference(tmp_path / "ref", "real"))))
    assert len(samples) == 4 and not skipped
    assert scan_run(tmp_path / "ref") == []


def test_a_file_that_fails_in_an_unforeseen_way_is_skipped_and_the_rest_read(tmp_path, monkeypatch):
    """Whatever one file's reading raises, it is that file's skip line, not the ingest's end."""
    from engine.decode import images

    for name in ("a.png", "b.png", "c.png"):
        write_png(tmp_path / "step_1" / name, smooth_images(RNG, 1, 16)[0])
    real = images.decode_image
    monkeypatch.setattr(images, "decode_image", lambda source, *args: (_ for _ in ()).throw(ZeroDivisionError("boom"))
                        if Path(source).name == "b.png" else real(source, *args))
    samples, skipped = _split(list(iter_samples(scan_run(tmp_path)[0])))
    assert [s.path for s in samples] == ["step_1/a.png", "step_1/c.png"]
    assert [(s.path, s.reason) for s in skipped] == [("step_1/b.png", "could not be read (ZeroDivisionError: boom)")]


def test_instance_ids_continue_across_tensor_files(tmp_path):
    folder = tmp_path / "ckpt_4"
    folder.mkdir()
    np.save(folder / "batch_a.npy", smooth_images(RNG, 3, 16))
    np.save(folder / "batch_b.npy", smooth_images(RNG, 2, 16))
    samples = list(iter_samples(scan_run(tmp_path)[0]))
    assert [(s.instance, s.path) for s in samples] == [
        (0, "ckpt_4/batch_a.npy#0"), (1, "ckpt_4/batch_a.npy#1"), (2, "ckpt_4/batch_a.npy#2"),
        (3, "ckpt_4/batch_b.npy#0"), (4, "ckpt_4/batch_b.npy#1")]


# --- labels -------------------------------------------------------------------------------------

def test_label_folders_in_a_reference_set(tmp_path):
    for label in ("cat", "dog"):
        for i in range(2):
            write_png(tmp_path / "train" / label / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    samples = list(iter_samples(scan_reference(tmp_path / "train", "real")))
    assert [(s.label, s.path, s.instance) for s in samples] == [
        ("cat", "cat/0.png", -1), ("cat", "cat/1.png", -1), ("dog", "dog/0.png", -1), ("dog", "dog/1.png", -1)]
    forced = list(iter_samples(scan_reference(tmp_path / "train", "real"), DiscoveryOptions(grid=(2, 2))))
    assert len(forced) == 4  # forced geometry describes the trainer's grids, not the data set
    no_folders = list(iter_samples(scan_reference(tmp_path / "train", "real"), DiscoveryOptions(label_folders=False)))
    assert {s.label for s in no_folders} == {None}
    one = list(iter_samples(scan_reference(tmp_path / "train" / "cat", "real")))
    assert {s.label for s in one} == {None}  # auto: a single folder is no label


def test_a_file_beside_the_label_folders_costs_no_other_its_label(tmp_path, caplog):
    """Round BA: one loose image at the top of a --real of class folders left all 260 images
    unlabelled (label_drift off, and a line asking for class folders, which it had). The loose
    ones are unlabelled, said once a run; a checkpoint's variants of as many files are no labels."""
    for label in ("cat", "dog"):
        for i in range(3):
            write_png(tmp_path / "train" / label / f"{i}.png", smooth_images(RNG, 1, 16)[0])
            for step in (100, 200):
                write_png(tmp_path / "run" / f"step_{step}" / label / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    write_png(tmp_path / "train" / "stray.png", smooth_images(RNG, 1, 16)[0])
    for step in (100, 200):
        write_png(tmp_path / "run" / f"step_{step}" / "stray.png", smooth_images(RNG, 1, 16)[0])
    with caplog.at_level("WARNING"):
        real = list(iter_samples(scan_reference(tmp_path / "train", "real")))
        generated = [s for checkpoint in scan_run(tmp_path / "run") for s in iter_samples(checkpoint)]
    assert [(s.path, s.label) for s in real] == [("cat/0.png", "cat"), ("cat/1.png", "cat"), ("cat/2.png", "cat"),
                                                 ("dog/0.png", "dog"), ("dog/1.png", "dog"), ("dog/2.png", "dog"),
                                                 ("stray.png", None)]
    assert [s.label for s in generated] == ["cat"] * 3 + ["dog"] * 3 + [None] + ["cat"] * 3 + ["dog"] * 3 + [None]
    said = [r.getMessage() for r in caplog.records if "beside its label folders" in r.getMessage()]
    assert len(said) == 2, said  # the --real's, and the run's once
    assert "1 file beside its label folders (stray.png) has no label; move it into the folder of its label" in said[0]
    for i in range(3):  # a checkpoint's samples and two variants of them: no labels
        for folder in ("", "ema/", "raw/"):
            write_png(tmp_path / "variants" / "step_100" / f"{folder}{i}.png", smooth_images(RNG, 1, 16)[0])
    (checkpoint,) = scan_run(tmp_path / "variants")
    assert {s.label for s in iter_samples(checkpoint)} == {None}


def test_a_file_beside_a_class_of_one_costs_no_other_its_label(tmp_path):
    """Round BB: measured against the smallest class folder, one stray image beside a class
    holding a single sample (8 samples a step over 4 classes; a --real with a rare class) left
    every sample unlabelled. Class folders differ in size; only the largest bounds the loose."""
    for root, counts in (("real", {"cat": 5, "dog": 1}), ("run/step_100", {"0": 1, "1": 3, "2": 2, "3": 2})):
        for label, count in counts.items():
            for i in range(count):
                write_png(tmp_path / root / label / f"{i}.png", smooth_images(RNG, 1, 16)[0])
        write_png(tmp_path / root / "stray.png", smooth_images(RNG, 1, 16)[0])
    real = {s.path: s.label for s in iter_samples(scan_reference(tmp_path / "real", "real"))}
    assert real == {**{f"cat/{i}.png": "cat" for i in range(5)}, "dog/0.png": "dog", "stray.png": None}
    (checkpoint,) = scan_run(tmp_path / "run")
    assert [s.label for s in iter_samples(checkpoint)] == ["0", "1", "1", "1", "2", "2", "3", "3", None]


def test_a_file_deeper_in_a_class_folder_has_its_class_and_costs_no_other_its_label(tmp_path):
    """One image in ``real/cat/extra/`` left every image of a --real of class folders unlabelled,
    unsaid: as torchvision's ImageFolder, a file below a class folder has its class. Split
    folders above the classes (``train/cat``, ``val/cat``) are still no labels."""
    for label in ("cat", "dog"):
        for i in range(3):
            write_png(tmp_path / "real" / label / f"{i}.png", smooth_images(RNG, 1, 16)[0])
            for split in ("train", "val"):
                write_png(tmp_path / "splits" / split / label / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    write_png(tmp_path / "real" / "cat" / "extra" / "x.png", smooth_images(RNG, 1, 16)[0])
    real = {s.path: s.label for s in iter_samples(scan_reference(tmp_path / "real", "real"))}
    assert real == {**{f"{label}/{i}.png": label for label in ("cat", "dog") for i in range(3)}, "cat/extra/x.png": "cat"}
    assert {s.label for s in iter_samples(scan_reference(tmp_path / "splits", "real"))} == {None}


def test_a_class_folder_split_in_folders_of_its_own_keeps_its_class(tmp_path):
    """``real/cat/indoor/``, ``real/cat/outdoor/`` beside ``real/dog/``: the depth most files sat
    at made ``indoor`` and ``outdoor`` the labels and dog's images none ("beside its label
    folders"); ImageFolder reads cat and dog. More files in ``cat/extra/`` than in the class
    folders themselves left every image unlabelled."""
    for folder, n in (("cat/indoor", 3), ("cat/outdoor", 3), ("dog", 2)):
        for i in range(n):
            write_png(tmp_path / "split" / folder / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    for folder, n in (("cat", 1), ("dog", 1), ("cat/extra", 3)):
        for i in range(n):
            write_png(tmp_path / "extra" / folder / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    for name in ("split", "extra"):
        labels = {s.path: s.label for s in iter_samples(scan_reference(tmp_path / name, "real"))}
        assert labels == {path: path.split("/")[0] for path in labels}, name


def test_a_step_of_one_class_folder_keeps_its_label_in_a_run_of_class_folders(tmp_path):
    """Round AQ: a run drifting to one class in the ImageFolder layout ended with a step whose
    files all sat in ``circle/``: a single folder, no label, and label_drift stopped at the
    worst step. A lone folder named as another step's label is one; ``samples/`` is not."""
    from engine.cli import main
    from stores.zarr_store import StoreReader

    run = tmp_path / "run"
    for step, classes in ((100, ("circle", "square", "triangle")), (200, ("circle", "square")), (300, ("circle",))):
        for label in classes:
            for i in range(2):
                write_png(run / f"step_{step}" / label / f"{label}_{i}.png", smooth_images(RNG, 1, 16)[0])
    for i in range(2):
        write_png(tmp_path / "other" / "step_100" / "samples" / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    for folder, store in ((run, tmp_path / "run.zarr"), (tmp_path / "other", tmp_path / "other.zarr")):
        assert main(["-q", "watch", str(folder), "--store", str(store), "--once", "--settle", "0",
                     "--encoder", "pixels", "--no-layout", "--no-metrics"]) == 0
    reader = StoreReader(tmp_path / "run.zarr")
    labels, steps = reader.labels, reader.samples("step")
    got = [labels[code] if code >= 0 else None for code in reader.samples("label")]
    assert [label for label, step in zip(got, steps) if step == 300] == ["circle", "circle"]
    assert set(StoreReader(tmp_path / "other.zarr").samples("label").tolist()) == {-1}
    for folder in ("images", "masks"):  # round AT: a --real's class folders named the run's wrapper folder a label
        for i in range(8):
            write_png(tmp_path / "real" / folder / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    for step in (100, 200):
        for i in range(2):
            write_png(tmp_path / "wrapped" / f"step_{step}" / "images" / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    assert main(["-q", "watch", str(tmp_path / "wrapped"), "--store", str(tmp_path / "wrapped.zarr"), "--once",
                 "--settle", "0", "--encoder", "pixels", "--no-layout", "--no-metrics", "--real",
                 str(tmp_path / "real")]) == 0
    wrapped = StoreReader(tmp_path / "wrapped.zarr")
    assert set(wrapped.samples("label")[wrapped.samples("step") >= 0].tolist()) == {-1}
    one = list(iter_samples(scan_reference(tmp_path / "run" / "step_300", "real")))
    assert {s.label for s in one} == {None}  # without the run's other steps: a single folder is no label


def test_a_lone_class_folder_stored_before_the_run_showed_it_was_one_is_read_again_labelled(tmp_path):
    """Round AR: a live watch read ``step_500/circle/`` before ``step_1000/{circle,square}/``
    showed ``circle`` was a label: stored unlabelled for good, where ``--once`` labelled it."""
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreReader, StoreWriter

    run = tmp_path / "run"
    for i in range(2):
        write_png(run / "step_500" / "circle" / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    encoder = make_encoder("pixels", device="cpu")
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store:
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.0), progress=False, workers=0),
                          store, encoder)
        assert [r.checkpoint.step for r in watcher.run_once()] == [500]
        for label in ("circle", "square"):
            write_png(run / "step_1000" / label / "0.png", smooth_images(RNG, 1, 16)[0])
        assert sorted(r.checkpoint.step for r in watcher.run_once()) == [500, 1000]
        assert watcher.run_once() == []
        for label in ("circle", "square"):  # round AS: a rotating trainer deletes the step that showed it
            (run / "step_1000" / label / "0.png").unlink()
            (run / "step_1000" / label).rmdir()
        (run / "step_1000").rmdir()
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store:  # a watch started again
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.0), progress=False, workers=0),
                          store, encoder)
        assert watcher.run_once() == []  # step_500 keeps its labels (it was read again, unlabelled)
    import zarr  # round AU: a store made before label_folders was kept, its mixed steps deleted since

    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")
    del root.attrs["label_folders"]
    assert "label_folders" not in zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs
    for i in range(2):
        write_png(run / "step_1500" / "circle" / f"{i}.png", smooth_images(RNG, 1, 16)[0])
    with StoreWriter(tmp_path / "s.zarr", encoder_record(encoder)) as store:
        watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.0), progress=False, workers=0),
                          store, encoder)
        assert [r.checkpoint.step for r in watcher.run_once()] == [1500]  # step_500 not read again
    reader = StoreReader(tmp_path / "s.zarr")
    current, labels = reader.current_rows(), reader.labels
    got = [(int(step), labels[code] if code >= 0 else None)
           for step, code, keep in zip(reader.samples("step"), reader.samples("label"), current) if keep]
    assert got == [(500, "circle"), (500, "circle"), (1000, "circle"), (1000, "square"), (1500, "circle"),
                   (1500, "circle")]


def test_a_float_images_range_is_the_value_range_given_and_a_refusal_is_said_as_it_is(tmp_path):
    """A 32-bit float TIFF (``tifffile.imwrite`` of a float batch) whose values are no image's
    range was skipped as "corrupt image (SkipFile: ...; --value-range gives the range ...)",
    and ``--value-range`` was not applied to images: the line's fix changed nothing, and a
    dark [0, 255] image (values up to 2) was read as [0, 1], almost white."""
    ramp = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    folder = tmp_path / "step_1"
    folder.mkdir()
    Image.fromarray(ramp * 2).save(folder / "dark.tiff")  # [0, 255] pixels, none above 2
    Image.fromarray(ramp * 1000).save(folder / "wide.tiff")  # [0, 255] with highlights past 300
    checkpoint = _checkpoint(tmp_path, "step_1/dark.tiff", "step_1/wide.tiff")
    samples, skipped = _split(list(iter_samples(checkpoint)))
    assert [s.path for s in samples] == ["step_1/dark.tiff"] and samples[0].image.max() == 255  # the guess: [0, 1]
    assert [s.path for s in skipped] == ["step_1/wide.tiff"]
    assert skipped[0].reason.startswith("values span [0, 1e+03]: not images in") and "corrupt" not in skipped[0].reason
    samples, skipped = _split(list(iter_samples(checkpoint, DiscoveryOptions(value_range=(0.0, 255.0)))))
    assert skipped == [] and samples[0].image.max() == 2 and samples[1].image.max() == 255
    np.testing.assert_array_equal(samples[0].image[..., 0], np.rint(ramp * 2).astype(np.uint8))


def test_a_float_image_holding_nan_is_skipped_as_a_tensor_files_sample_is(tmp_path):
    """A float TIFF of a diverging generator, NaN in part of it: those pixels were stored as
    black without a word, where a tensor file's sample holding NaN is left out and said."""
    image = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    image[4:8] = np.nan
    (tmp_path / "step_1").mkdir()
    Image.fromarray(image).save(tmp_path / "step_1" / "nan.tiff")
    samples, skipped = _split(list(iter_samples(_checkpoint(tmp_path, "step_1/nan.tiff"))))
    assert samples == [] and [s.reason for s in skipped] == [
        "64 of 256 pixels are NaN or infinite, not stored: a diverged generator?"]


@pytest.mark.parametrize("image", ["a5.png", "a#5.png"])
def test_a_hash_sign_in_an_images_name_does_not_move_the_next_files_ids(tmp_path, image):
    """Ids of multi-sample files continue across files, a single image's do not: an image named
    ``a#5.png`` was taken for a grid's tile (its path held ``#``), and the tensor file after it
    numbered its rows from 6 (round AY-4)."""
    rng = np.random.default_rng(0)
    (tmp_path / "step_1").mkdir()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "step_1" / image)
    np.save(tmp_path / "step_1" / "b.npy", rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8))
    samples, skipped = _split(list(iter_samples(_checkpoint(tmp_path, f"step_1/{image}", "step_1/b.npy"))))
    assert skipped == [] and [(s.path, s.instance) for s in samples] == [
        (f"step_1/{image}", 5), ("step_1/b.npy#0", 0), ("step_1/b.npy#1", 1), ("step_1/b.npy#2", 2)]


@pytest.mark.parametrize("name", ["a.png", "a.pgm"])
def test_a_dark_16_bit_image_is_read_as_16_bit_whatever_its_format(tmp_path, name):
    """A 16-bit PGM opens in Pillow as mode "I", not "I;16": a dark one (every value under 256)
    was taken for an 8-bit image, 200 stored as 200 where a 16-bit PNG of it gives 1 (round AY-4)."""
    (tmp_path / "step_1").mkdir()
    Image.fromarray(np.full((8, 8), 200, np.uint16)).save(tmp_path / "step_1" / name)
    samples, skipped = _split(list(iter_samples(_checkpoint(tmp_path, f"step_1/{name}"))))
    assert skipped == [] and samples[0].image.max() == 1 == samples[0].image.min()


def _float_rgb_tiff(path: Path, height: int = 8, width: int = 8) -> None:
    """A 32-bit float RGB TIFF, one strip (what ``tifffile.imwrite`` writes of a float batch's
    image; Pillow cannot open it, and tifffile is not installed here)."""
    pixels = np.random.default_rng(0).random((height, width, 3), dtype=np.float32).tobytes()
    extra_at = 8 + 2 + 11 * 12 + 4  # after the header and the one directory of 11 entries

    def short(tag: int, value: int) -> bytes:
        return struct.pack("<HHIHH", tag, 3, 1, value, 0)

    def long_(tag: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, 4, 1, value)

    entries = [long_(256, width), long_(257, height), struct.pack("<HHII", 258, 3, 3, extra_at), short(259, 1),
               short(262, 2), long_(273, extra_at + 12), short(277, 3), long_(278, height), long_(279, len(pixels)),
               short(284, 1), struct.pack("<HHII", 339, 3, 3, extra_at + 6)]
    path.write_bytes(b"II*\0" + struct.pack("<IH", 8, len(entries)) + b"".join(entries) + struct.pack("<I", 0)
                     + struct.pack("<6H", 32, 32, 32, 3, 3, 3) + pixels)


def test_a_tiff_pillow_cannot_decode_is_said_with_what_to_save_instead(tmp_path):
    """A float RGB TIFF was skipped as "not a readable image (unknown or corrupt format)": no fix
    given, where a PNG or a .npy batch is read (round AY-4)."""
    (tmp_path / "step_1").mkdir()
    _float_rgb_tiff(tmp_path / "step_1" / "rgb.tif")
    samples, skipped = _split(list(iter_samples(_checkpoint(tmp_path, "step_1/rgb.tif"))))
    assert samples == [] and [s.reason for s in skipped] == [
        "a TIFF Pillow cannot decode (float RGB pixels or a compression it lacks, or a damaged file): have the "
        "trainer save its samples as PNG, or as a .npy batch"]


def test_a_tiff_whose_compression_fails_to_decode_names_it(tmp_path):
    """A webp- or zstd-compressed TIFF that the installed libtiff lacks read as only "truncated or
    corrupt image (decoder error -2)": the compression is named, with what to save instead."""
    (tmp_path / "step_1").mkdir()
    path = tmp_path / "step_1" / "0.tif"
    Image.fromarray(smooth_images(RNG, 1, 16)[0]).save(path, compression="tiff_lzw")
    data = bytearray(path.read_bytes())
    (ifd,) = struct.unpack("<I", data[4:8])
    (entries,) = struct.unpack("<H", data[ifd:ifd + 2])
    for entry in range(ifd + 2, ifd + 2 + 12 * entries, 12):
        if struct.unpack("<H", data[entry:entry + 2]) == (259,):  # Compression: zstd, over LZW data
            data[entry + 8:entry + 10] = struct.pack("<H", 50000)
    path.write_bytes(bytes(data))
    samples, skipped = _split(list(iter_samples(_checkpoint(tmp_path, "step_1/0.tif"))))
    assert samples == [] and len(skipped) == 1
    assert skipped[0].reason.startswith("truncated or corrupt image, or a TIFF compression (zstd) this Pillow cannot "
                                        "decode (")
    assert skipped[0].reason.endswith("): read again when it changes; if it stays, have the trainer save PNG")


def test_each_page_of_a_multi_page_tiff_is_a_sample_and_its_preview_pages_are_not(tmp_path):
    """A batch saved as one TIFF stack (``tifffile.imwrite("step_1000.tif", batch)``) was read at
    its last page, as an animation's last frame is: 1 sample of 4 stored, without a word."""
    batch = smooth_images(RNG, 4, 16)
    pages = [Image.fromarray(image) for image in batch]
    preview = Image.fromarray(batch[0]).resize((4, 4))
    preview.encoderinfo = {"tiffinfo": {254: 1}}  # NewSubfileType: a reduced-resolution copy
    (tmp_path / "step_1").mkdir()
    pages[0].save(tmp_path / "step_1" / "a_stack.tif", save_all=True, append_images=[*pages[1:], preview])
    write_png(tmp_path / "step_1" / "b_alone.png", batch[0])
    samples = list(iter_samples(_checkpoint(tmp_path, "step_1/a_stack.tif", "step_1/b_alone.png")))
    assert [(s.path, s.instance) for s in samples] == [(f"step_1/a_stack.tif#{i}", i) for i in range(4)] + [
        ("step_1/b_alone.png", -1)]
    for sample, image in zip(samples, batch):
        np.testing.assert_array_equal(sample.image, image)


def test_the_pages_of_a_float_tiff_stack_share_one_range_guessed_over_them_all(tmp_path):
    """A tanh batch saved as one float TIFF stack: each page's range was guessed on its own, so a
    page without a negative value (a sample collapsed onto a bright mode) was read as [0, 1] beside
    the others' [-1, 1], as a tensor file's rows never are (they share the file's guess)."""
    rng = np.random.default_rng(0)
    batch = np.stack([rng.uniform(-1, 1, (16, 16)), rng.uniform(0.2, 1, (16, 16)),
                      rng.uniform(-1, 1, (16, 16))]).astype(np.float32)
    pages = [Image.fromarray(page) for page in batch]
    (tmp_path / "step_1").mkdir()
    pages[0].save(tmp_path / "step_1" / "stack.tif", save_all=True, append_images=pages[1:])
    samples, skipped = _split(list(iter_samples(_checkpoint(tmp_path, "step_1/stack.tif"))))
    assert skipped == [] and [s.path for s in samples] == [f"step_1/stack.tif#{i}" for i in range(3)]
    for sample, page in zip(samples, batch):
        np.testing.assert_array_equal(sample.image[..., 0], np.rint((page + 1) * 127.5).astype(np.uint8))


def test_a_page_of_a_float_tiff_stack_holding_nan_is_left_out_alone(tmp_path):
    """A float TIFF stack of a batch one sample of which diverged: the whole stack was skipped, said
    as "4 of 256 pixels are NaN" (one page's pixels, no page named), where a tensor file's row
    holding NaN is left out alone, named, its other rows stored and the next file's ids after them."""
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 1, (3, 16, 16)).astype(np.float32)
    batch[1, 0, :4] = np.nan
    pages = [Image.fromarray(page) for page in batch]
    (tmp_path / "step_1").mkdir()
    pages[0].save(tmp_path / "step_1" / "a_stack.tif", save_all=True, append_images=pages[1:])
    np.save(tmp_path / "step_1" / "b_rows.npy", rng.uniform(0, 1, (2, 3, 16, 16)).astype(np.float32))
    samples, skipped = _split(list(iter_samples(_checkpoint(tmp_path, "step_1/a_stack.tif", "step_1/b_rows.npy"))))
    assert [(s.path, s.instance) for s in samples] == [("step_1/a_stack.tif#0", 0), ("step_1/a_stack.tif#2", 2),
                                                      ("step_1/b_rows.npy#0", 3), ("step_1/b_rows.npy#1", 4)]
    np.testing.assert_array_equal(samples[1].image[..., 0], np.rint(batch[2] * 255).astype(np.uint8))
    assert [(s.path, s.reason) for s in skipped] == [
        ("step_1/a_stack.tif", "1 of 3 pages hold NaN or infinite values (page 1), not stored: a diverged generator?")]


def test_a_phone_photos_exif_orientation_is_applied_and_an_untagged_photo_is_kept_as_stored(tmp_path):
    """Orientation 6: the camera stored the photo turned; viewers (and the encoder) see it upright."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red, right half blue as stored
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    (tmp_path / "real").mkdir()
    Image.fromarray(stored).save(tmp_path / "real" / "phone.jpg", exif=exif, quality=95)
    Image.fromarray(stored).save(tmp_path / "real" / "plain.jpg", quality=95)
    phone, plain = iter_samples(scan_reference(tmp_path / "real", "real"))
    assert phone.image.shape == (40, 20, 3) and plain.image.shape == (20, 40, 3)
    assert phone.image[:18, :, 0].min() > 200 and phone.image[22:, :, 2].min() > 200  # red now on top
    assert plain.image[:, :18, 0].min() > 200


def test_a_photo_with_a_damaged_exif_block_is_turned_upright_without_a_crash_or_pillows_warnings(tmp_path):
    """A camera or editing tool's EXIF with a malformed entry (XResolution, a rational, stored
    as text; Make pointing past the block) beside Orientation 6: Pillow's exif_transpose failed
    re-writing that block (TypeError), which ended the whole watch with a traceback; reading
    it printed Pillow's UserWarnings on stderr, through the progress line and past -q."""
    import struct

    def entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
        return struct.pack(">HHI", tag, kind, count) + value

    entries = [entry(0x010F, 2, 100, struct.pack(">I", 0x7FFF)),  # Make: its text lies past the block
               entry(0x0112, 3, 1, b"\x00\x06\x00\x00"),  # Orientation 6
               entry(0x011A, 2, 4, b"abc\x00")]  # XResolution as ASCII
    exif = b"Exif\x00\x00MM\x00*" + struct.pack(">IH", 8, len(entries)) + b"".join(entries) + bytes(4)
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    (tmp_path / "real").mkdir()
    Image.fromarray(stored).save(tmp_path / "real" / "phone.jpg", exif=exif, quality=95)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (phone,) = iter_samples(scan_reference(tmp_path / "real", "real"))
    assert [str(w.message) for w in caught] == []
    assert phone.image.shape == (40, 20, 3)
    assert phone.image[:18, :, 0].min() > 200 and phone.image[22:, :, 2].min() > 200  # red now on top


def test_folders_that_split_numbered_samples_by_range_are_no_labels_but_class_folders_are(tmp_path):
    """EDM's ``generate.py --subdirs``: seed 1001 is ``001000/001001.png``."""
    for seed in (998, 999, 1000, 1001):
        write_png(tmp_path / "network-snapshot-002000" / f"{seed - seed % 1000:06d}" / f"{seed:06d}.png",
                  smooth_images(RNG, 1, 8)[0])
        write_png(tmp_path / "classes" / f"{seed % 2}" / f"{seed:06d}.png", smooth_images(RNG, 1, 8)[0])
    buckets = list(iter_samples(scan_reference(tmp_path / "network-snapshot-002000", "real")))
    assert [(s.label, s.instance) for s in buckets] == [(None, 998), (None, 999), (None, 1000), (None, 1001)]
    classes = list(iter_samples(scan_reference(tmp_path / "classes", "real")))
    assert [s.label for s in classes] == ["0", "0", "1", "1"]



def test_class_folders_named_with_digits_int_cannot_read_are_labels(tmp_path):
    """'\u00b2' (superscript two) is a digit to str.isdigit, not to int(): a --real of class
    folders named so ended the watch with "invalid literal for int() with base 10"."""
    for label in ("\u00b2", "\u00b3"):
        for i in range(2):
            write_png(tmp_path / "train" / label / f"{i}.png", smooth_images(RNG, 1, 8)[0])
    samples = list(iter_samples(scan_reference(tmp_path / "train", "real")))
    assert [s.label for s in samples] == ["\u00b2", "\u00b2", "\u00b3", "\u00b3"]

def test_labels_csv_by_file_and_by_instance(tmp_path):
    for i in range(3):
        write_png(tmp_path / "checkpoint-1" / f"{i:03d}.png", smooth_images(RNG, 1, 16)[0])
    (tmp_path / "checkpoint-1" / "labels.csv").write_text("file,label\n000.png,cat\n001.png,dog\n")
    options = DiscoveryOptions(labels_file="labels.csv")
    assert [s.label for s in iter_samples(scan_run(tmp_path)[0], options)] == ["cat", "dog", None]

    grid_dir = tmp_path / "grids"
    save_torchvision_grid(smooth_images(RNG, 16, 16), grid_dir / "sample-5.png", nrow=4)
    (grid_dir / "labels.csv").write_text("instance,label\n0,zero\n15,fifteen\n")
    samples = list(iter_samples(scan_run(grid_dir)[0], options))
    assert (samples[0].label, samples[1].label, samples[15].label) == ("zero", None, "fifteen")


def test_a_labels_csv_beside_a_checkpoints_samples_below_its_folder_labels_them(tmp_path):
    """Round BE: ``step_N/samples/labels.csv`` beside the images was ignored without a word."""
    for i in range(2):
        write_png(tmp_path / "run" / "step_100" / "samples" / f"{i:03d}.png", smooth_images(RNG, 1, 16)[0])
    (tmp_path / "run" / "step_100" / "samples" / "labels.csv").write_text("file,label\n000.png,cat\n001.png,dog\n")
    assert [s.label for s in iter_samples(scan_run(tmp_path / "run")[0])] == ["cat", "dog"]


def test_labels_csv_written_by_a_spreadsheet_and_rows_without_a_label_column(tmp_path, caplog):
    """Semicolons or tabs (a spreadsheet's export) are read as the columns they are; a row
    with no label column is said, not dropped silently (blank lines are not rows)."""
    from engine.decode.labels import read_labels_file

    path = tmp_path / "labels.csv"
    for text in ("file;label\n000.png;cat\n001.png;dog\n", "000.png\tcat\n001.png\tdog\n",
                 'file,label\n000.png,cat\n"001.png",dog\n'):
        path.write_text(text)
        assert read_labels_file(path) == {"000.png": "cat", "001.png": "dog"}
    assert not caplog.records
    path.write_text("000.png,cat\n001.png\n\n002.png,\n")
    with caplog.at_level("WARNING"):
        assert read_labels_file(path) == {"000.png": "cat"}
    assert f"{path}: 1 of 3 rows has no label column, ignored (expected file,label or instance,label)" in caplog.text
    path.write_bytes("file;label\n000.png;café\n001.png;dog\n".encode("cp1252"))  # round AB: every label lost
    with caplog.at_level("WARNING"):
        assert read_labels_file(path) == {"000.png": "café", "001.png": "dog"}
    assert f"{path}: not UTF-8; read as Windows-1252" in caplog.text
    for codec in ("utf-16", "utf-16-be", "utf-32"):  # Excel's "Unicode text", Windows PowerShell's `>`: refused
        text = "file\tlabel\n000.png\tcafé\n001.png\tdog\n"  # as "'utf-8' codec can't decode byte 0xff"
        path.write_bytes(text.encode(codec) if codec != "utf-16-be" else codecs.BOM_UTF16_BE + text.encode(codec))
        assert read_labels_file(path) == {"000.png": "café", "001.png": "dog"}


def test_empty_and_null_labels_are_unknown_and_a_checkpoints_unreadable_labels_file_is_only_its_own(tmp_path, caplog):
    for step in (1, 2, 3):
        for i in range(3):
            write_png(tmp_path / f"checkpoint-{step}" / f"{i:03d}.png", smooth_images(RNG, 1, 16)[0])
    (tmp_path / "checkpoint-1" / "labels.csv").write_text("file,label\n000.png,cat\n001.png,  \n002.png,\n")
    (tmp_path / "checkpoint-2" / "labels.json").write_text('{"000.png": null, "001.png": {"a": 1}, "002.png": 7}')
    (tmp_path / "checkpoint-3" / "labels.csv").write_bytes(b"\x00\xff\xfe not text")  # no byte-order mark
    first, second, third = scan_run(tmp_path)
    assert [s.label for s in iter_samples(first)] == ["cat", None, None]
    assert [s.label for s in iter_samples(second)] == [None, None, "7"]
    with caplog.at_level("WARNING"):
        assert [s.label for s in iter_samples(third)] == [None, None, None]
    assert "checkpoint-3/labels.csv: cannot read labels" in caplog.text and "get no label" in caplog.text
    with pytest.raises(DiscoveryError, match="cannot read labels"):  # given with --labels: a setting, fatal
        list(iter_samples(third, DiscoveryOptions(labels_file="labels.csv")))


def test_a_labels_file_that_gives_no_label_is_an_error(tmp_path, caplog):
    """Round AJ: an empty file, a header ``label,file`` (its rows read as label -> file) and
    a JSON mapping to lists labelled nothing, without a word; as a checkpoint's own file it
    labels nothing, said."""
    from engine.decode.labels import read_labels_file

    for name, text, reason in (
            ("empty.csv", "", "holds no label; expected CSV file,label or instance,label, or a JSON mapping"),
            ("header.csv", "file,label\n", "holds no label"),
            ("swapped.csv", "label,file\ncat,000.png\n", "its header label,file puts the labels first; "
                                                           "expected columns file,label or instance,label (swap them)"),
            ("lists.json", '{"000.png": ["cat"]}', "its values are lists or objects, not one label each; expected a "
                                                   'JSON mapping {"00007.png": "cat", ...} or a list of labels')):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(DiscoveryError) as caught:
            read_labels_file(path)
        assert str(caught.value).startswith(f"{path}: {reason}"), caught.value
    for step in (1, 2):
        for i in range(2):
            write_png(tmp_path / "run" / f"checkpoint-{step}" / f"{i:03d}.png", smooth_images(RNG, 1, 16)[0])
    (tmp_path / "run" / "checkpoint-1" / "labels.json").write_text('{"000.png": ["cat"]}')
    with caplog.at_level("WARNING"):
        assert [s.label for s in iter_samples(scan_run(tmp_path / "run")[0])] == [None, None]
    assert "its values are lists or objects" in caplog.text and "this checkpoint's samples get no label" in caplog.text


def test_an_unreadable_labels_file_is_said_to_need_its_permissions_fixed(tmp_path, monkeypatch):
    """Round AJ: a labels file this user may not read got a format hint (expected CSV ...)."""
    from engine.decode.labels import read_labels_file

    path = tmp_path / "labels.csv"
    path.write_text("file,label\n000.png,cat\n")
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:  # chmod 000 does not stop root, who runs the tests in CI
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(DiscoveryError) as caught:
        read_labels_file(path)
    assert str(caught.value) == f"{path}: cannot read labels (Permission denied): fix its permissions"


def test_labels_json_list_for_tensor_rows(tmp_path):
    np.save(tmp_path / "samples_1.npy", smooth_images(RNG, 3, 16))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["a", "b", "c"]))
    options = DiscoveryOptions(labels_file=labels)
    assert [s.label for s in iter_samples(scan_run(tmp_path)[0], options)] == ["a", "b", "c"]
    labels.write_text("{broken")
    with pytest.raises(DiscoveryError, match="cannot read labels"):
        list(iter_samples(scan_run(tmp_path)[0], options))


def test_demo_trainer_layout_with_labels_csv_found_by_default(tmp_path):
    run = tmp_path / "run"
    for step in (250, 500):
        folder = run / f"step_{step:06d}"
        for i, image in enumerate(smooth_images(RNG, 3, 16)):
            write_png(folder / "samples" / f"{i:05d}.png", image)
        (folder / "labels.csv").write_text("file,label\n" + "".join(f"samples/{i:05d}.png,{i}\n" for i in range(3)))
    hidden = run / ".step_000750.tmp" / "samples"
    write_png(hidden / "00000.png", smooth_images(RNG, 1, 16)[0])
    checkpoints = scan_run(run)
    assert [(c.step, c.source) for c in checkpoints] == [(250, "step_000250"), (500, "step_000500")]
    samples = list(iter_samples(checkpoints[1]))
    assert [(s.instance, s.label, s.path) for s in samples] == [
        (i, str(i), f"step_000500/samples/{i:05d}.png") for i in range(3)]


def test_every_format_pillow_reads_for_samples_is_found_and_decoded(tmp_path):
    """``.jfif``, ``.ppm``, ``.avif``... were left out without a word: a checkpoint of
    ``.avif`` samples vanished from the run."""
    from PIL import features

    formats = [".jfif", ".jpe", ".ppm", ".pgm", ".pnm", ".tga", ".apng"] + ([".avif"] if features.check("avif") else [])
    image = smooth_images(RNG, 1, 16)[0]
    for step in (100, 200):
        (tmp_path / f"checkpoint-{step}").mkdir()
        for i, ext in enumerate(formats):
            Image.fromarray(image[..., 0] if ext == ".pgm" else image).save(tmp_path / f"checkpoint-{step}" / f"{i:05d}{ext}")
    checkpoints = scan_run(tmp_path)
    assert [c.step for c in checkpoints] == [100, 200]
    samples, skipped = _split(iter_samples(checkpoints[0]))
    assert not skipped and [s.instance for s in samples] == list(range(len(formats)))
    for sample, ext in zip(samples, formats):
        expected = np.repeat(image[..., :1], 3, axis=2) if ext == ".pgm" else image
        assert np.abs(sample.image.astype(int) - expected).mean() < (12 if ext in (".jfif", ".jpe", ".avif") else 0.5), ext


def test_tile_rows_and_cols_keep_the_samples_of_grids_that_set_inputs_beside_them(tmp_path):
    """MUNIT's ``gen_a2b_train_N.jpg``: rows of inputs, reconstructions, then two rows of
    translations; U-GAT-IT's ``A2B_N.png``: a column per sample, its 5th row the translation;
    StarGAN: the input in the first column. Only the chosen rows/columns are samples, each
    tile keeping its index (so two grids of a checkpoint still number theirs apart)."""
    from engine.grids import parse_tile_slice

    images = smooth_images(RNG, 32, 16)
    names = ("images/gen_a2b_train_00010000.png", "images/gen_b2a_train_00010000.png")  # two grids, one checkpoint
    for name in names:
        save_torchvision_grid(images, tmp_path / name, nrow=8)
    munit = list(iter_samples(_checkpoint(tmp_path, *names), DiscoveryOptions(tile_rows=parse_tile_slice("2:"))))
    assert [s.instance for s in munit] == list(range(16, 32)) + list(range(48, 64))
    for sample in munit[:16]:
        np.testing.assert_array_equal(sample.image, images[sample.instance])
    write_png(tmp_path / "ugatit" / "A2B_0001000.png", stylegan_grid(images[:28], 7, 4))
    (checkpoint,) = scan_run(tmp_path / "ugatit")
    ugatit = list(iter_samples(checkpoint, DiscoveryOptions(tile_rows=parse_tile_slice("4"))))
    assert [s.instance for s in ugatit] == [16, 17, 18, 19]
    stargan = list(iter_samples(checkpoint, DiscoveryOptions(tile_cols=parse_tile_slice("1:"), tile_rows=(0, 2, None))))
    assert [s.instance for s in stargan] == [1, 2, 3, 5, 6, 7]
    (skipped,) = iter_samples(checkpoint, DiscoveryOptions(tile_rows=parse_tile_slice("9")))
    assert skipped.reason == ("a 7x4 grid has no tile in rows 9; fix --tile-rows/--tile-cols (Python slices, from 0)")
    write_png(tmp_path / "stage_c" / "000500.png", images[0])
    (single,) = scan_run(tmp_path / "stage_c")  # a collage found no grid in (StableCascade's noised row): said
    (skipped,) = iter_samples(single, DiscoveryOptions(tile_rows=parse_tile_slice("3:")))
    assert skipped.reason.startswith("no grid found to keep rows or columns of") and "--grid ROWSxCOLS" in skipped.reason
    forced = iter_samples(single, DiscoveryOptions(grid=(2, 2), tile_rows=parse_tile_slice("1:")))
    assert [s.instance for s in forced] == [2, 3]
    references = list(iter_samples(Checkpoint(-1, checkpoint.source, checkpoint.files, "real", checkpoint.root),
                                   DiscoveryOptions(tile_rows=parse_tile_slice("4"))))
    assert len(references) == 28  # a reference set's grids are never cut by the trainer's choice


def test_an_animated_image_is_read_at_its_last_frame(tmp_path):
    """minRF writes ``contents/sample_{epoch}.gif``, the sampling trajectory: its first frame
    is the starting noise, its last the samples. The first frame was stored."""
    noise = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    final = np.zeros((16, 16, 3), np.uint8)
    final[:, :8] = 255
    frames = [Image.fromarray(noise), Image.fromarray((noise // 2 + final // 2).astype(np.uint8)), Image.fromarray(final)]
    for suffix in (".gif", ".png"):  # GIF, APNG
        frames[0].save(tmp_path / f"sample_3{suffix}", save_all=True, append_images=frames[1:], duration=50)
        (sample,) = iter_samples(_checkpoint(tmp_path, f"sample_3{suffix}"))
        assert np.abs(sample.image.astype(int) - final).mean() < 8, suffix


def test_a_read_error_without_a_message_is_said_by_its_type(tmp_path, monkeypatch):
    """Round X: an .npz rewritten during its CRC pass was skipped as "not a readable numpy
    file ()": the error (EOFError) had no message."""
    from engine.decode import file_rows

    (tmp_path / "step_1").mkdir()
    np.savez(tmp_path / "step_1" / "s.npz", x=smooth_images(RNG, 2, 16))
    monkeypatch.setattr(file_rows, "_read_through", lambda archive, member: (_ for _ in ()).throw(EOFError()))
    samples, skipped = _split(list(iter_samples(scan_run(tmp_path)[0])))
    assert not samples and [s.reason for s in skipped] == ["not a readable numpy file (EOFError)"]


def test_samples_holding_nan_or_inf_are_left_out_and_said(tmp_path):
    """A tensor file with some samples gone NaN or infinite (a generator diverging): those were
    stored as flat grey or white images without a word, and one infinite value had the whole
    file refused ("values span [-1, inf]"). The others are read, in the range of finite values."""
    images = np.linspace(-1, 1, 6 * 3 * 8 * 8, dtype=np.float32).reshape(6, 3, 8, 8)
    images[1, 0, 0, 0], images[4, 2, 3, 3] = np.nan, np.inf
    (tmp_path / "step_1").mkdir()
    np.save(tmp_path / "step_1" / "samples.npy", images)
    samples, skipped = _split(list(iter_samples(scan_run(tmp_path)[0])))
    assert [s.instance for s in samples] == [0, 2, 3, 5]
    assert [s.reason for s in skipped] == [
        "2 of 6 samples hold NaN or infinite values (rows 1, 4), not stored: a diverged generator?"]
    expected = np.clip(np.rint((images[5].transpose(1, 2, 0) + 1) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(samples[-1].image, expected)  # read as [-1, 1]


def test_a_tensor_files_rows_left_out_still_count_for_the_next_files_ids(tmp_path):
    """Round AA: the first file's last rows gone NaN moved the second's instance ids down (6-13
    for 8-15), all of them NaN to 0-7: trails joined other samples across steps."""
    folder = tmp_path / "step_1"
    folder.mkdir()
    part0 = np.linspace(0, 1, 8 * 3 * 8 * 8, dtype=np.float32).reshape(8, 3, 8, 8)
    np.save(folder / "samples_b.npy", part0)
    for name, bad in [("last_rows", np.s_[6:]), ("all", np.s_[:])]:
        rows = part0.copy()
        rows[bad] = np.nan
        np.save(folder / "samples_a.npy", rows)
        samples, _ = _split(list(iter_samples(scan_run(tmp_path)[0])))
        assert [s.instance for s in samples if "samples_b" in s.path] == list(range(8, 16)), name


def test_a_seed_that_is_a_names_only_number_is_its_id(tmp_path):
    """Round AC: StyleGAN's gen_images.py names samples seed0000.png: masking the seed left
    every sample without an id."""
    for i, image in enumerate(smooth_images(RNG, 3, 16)):
        write_png(tmp_path / "step_500" / f"seed{i:04d}.png", image)
    (checkpoint,) = scan_run(tmp_path)
    assert [s.instance for s in iter_samples(checkpoint)] == [0, 1, 2]


def test_the_parts_of_a_large_folder_share_one_reading_of_its_names(tmp_path, monkeypatch):
    """Each part of a large folder of single images (a decode worker's 256 files) went over
    every name of the folder again for its ids and labels: 20,000 files took 17x the CPU of
    2,000. Worked out once per checkpoint version now; another version is read anew."""
    import engine.decode.samples

    for i, image in enumerate(smooth_images(np.random.default_rng(0), 12, 8)):
        write_png(tmp_path / "step_100" / f"{i:05d}.png", image)
    checkpoint = scan_run(tmp_path)[0]
    made = []
    context = engine.decode.samples._Context
    monkeypatch.setattr(engine.decode.samples, "_Context", lambda *args: made.append(args) or context(*args))
    parts = [list(iter_samples(checkpoint, files=checkpoint.files[lo:lo + 4], content_hash="v1")) for lo in (0, 4, 8)]
    assert len(made) == 1 and [s.instance for part in parts for s in part] == list(range(12))
    list(iter_samples(checkpoint, files=checkpoint.files[:4], content_hash="v2"))
    list(iter_samples(checkpoint))  # a whole checkpoint, no version named: read as it is
    assert len(made) == 3
