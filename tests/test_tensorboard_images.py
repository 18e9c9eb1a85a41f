"""Runs that log their samples to TensorBoard only (diffusers' examples, Lightning modules):
event files written by torch's real SummaryWriter, read as checkpoints."""
from __future__ import annotations

import io
import os
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from engine.cli import main
from engine.discovery.options import DiscoveryOptions
from engine.encoders import make_encoder
from engine.grids import parse_tile_slice
from engine.records import Sample, SkippedFile
from engine.tensorboard_images import IDS_PER_TAG, INCOMPLETE_WAIT, TensorBoardImages
from engine.session import encoder_record
from engine.watch import WatchConfig, Watcher
from stores.zarr_store import StoreReader, StoreWriter

tensorboard = pytest.importorskip("tensorboard")
from tensorboard.compat.proto import summary_pb2, tensor_pb2, types_pb2  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402


def samples(n: int, size: int, seed: int) -> np.ndarray:
    """(n, size, size, 3) uint8 smooth random images, as a young generator's samples look."""
    noise = np.random.default_rng(seed).normal(size=(n, size, size, 3))
    smooth = np.stack([gaussian_filter(x, (size / 10, size / 10, 0)) for x in noise])
    return ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def tf_images_summary(tag: str, images: np.ndarray) -> summary_pb2.Summary:
    """What TensorFlow 2's ``tf.summary.image`` writes: a string tensor (width, height, PNGs...)
    of the ``images`` plugin."""
    h, w = images.shape[1:3]
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[str(w).encode(), str(h).encode(),
                                                                             *(png(x) for x in images)])
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"))
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata)])


def read(logged: TensorBoardImages, checkpoint) -> list[Sample | SkippedFile]:
    return list(logged.iter_samples(checkpoint))


def by_source(checkpoints) -> dict:
    return {c.source: c for c in checkpoints}


def live_watcher(tmp_path: Path, run: Path, **config) -> tuple[StoreWriter, Watcher]:
    """A store and a watcher of ``run`` (pixels, settle 0, no workers; ``config``: more of
    :class:`WatchConfig`): passes run by hand, or its ``run_forever`` in a thread."""
    encoder = make_encoder("pixels", device="cpu")
    store = StoreWriter(tmp_path / "s.zarr", encoder_record(encoder))
    return store, Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0), progress=False, workers=0,
                                      **config), store, encoder)


def test_each_writer_layout_is_read_back_sample_for_sample(tmp_path):
    run = tmp_path / "run"
    diffusers = samples(16, 32, 0)
    validation = samples(4, 48, 1)
    lightning = samples(6, 24, 2)
    tf_batch = samples(3, 16, 3)
    writer = SummaryWriter(str(run / "logs" / "train_unconditional"))
    for step in range(3):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
    # diffusers' train_unconditional: 16 test samples, NCHW uint8 -> 2 rows of 8, unpadded
    writer.add_images("test_samples", diffusers.transpose(0, 3, 1, 2), 5)
    # diffusers' text_to_image / dreambooth: 4 validation images, NHWC -> one row of 4
    writer.add_images("validation", validation, 5, dataformats="NHWC")
    # Lightning's GAN tutorial: torchvision's make_grid (padded) logged as one image
    grid = make_grid(torch.from_numpy(lightning).permute(0, 3, 1, 2).float() / 255, nrow=3)
    writer.add_image("generated_images", grid, 5)
    writer.add_images("real_images", diffusers[:4].transpose(0, 3, 1, 2), 5)  # the training data: left out
    writer._get_file_writer().add_summary(tf_images_summary("tf_samples", tf_batch), 5)  # TensorFlow's images plugin
    writer.close()

    logged = TensorBoardImages()
    found = by_source(logged.scan(run))
    folder = "logs/train_unconditional"
    assert set(found) == {f"{folder}/{tag}@5" for tag in ("test_samples", "validation", "generated_images", "tf_samples")}
    assert all(c.step == 5 and c.kind == "generated" for c in found.values())
    for tag, expected in (("test_samples", diffusers), ("validation", validation),
                          ("generated_images", lightning), ("tf_samples", tf_batch)):
        got = read(logged, found[f"{folder}/{tag}@5"])
        assert all(isinstance(s, Sample) for s in got), got
        assert [s.instance for s in got] == list(range(len(expected))), tag
        np.testing.assert_allclose(np.stack([s.image for s in got]).astype(float), expected.astype(float),
                                   atol=1 if tag == "generated_images" else 0, err_msg=tag)  # make_grid's float round trip


#: A real run's event file: diffusers' ``examples/unconditional_image_generation/train_unconditional.py``
#: (v0.15, DDPM from scratch on 32 coloured 32-px shapes, ``--eval_batch_size 16 --save_images_epochs 1
#: --logger tensorboard``, 41 epochs on the CPU), its ``test_samples`` records of epochs 0, 10, 20 and
#: 40 kept as written, with its first 30 scalar records.
DIFFUSERS_EVENTS = Path(__file__).parent / "data" / "diffusers_train_unconditional.tfevents"


def test_a_real_diffusers_run_is_read_as_its_16_test_samples_per_epoch(tmp_path):
    """Its samples carry noise: 2x8 grids were read as 1x4 by edge counting. Epoch 0's samples
    are near noise, its boundaries do not stand out (the likelier batch is taken)."""
    run = tmp_path / "ddpm-shapes-32"
    (run / "logs" / "train_unconditional").mkdir(parents=True)
    shutil.copy(DIFFUSERS_EVENTS, run / "logs" / "train_unconditional" / "events.out.tfevents.1796429285.vm.2052.0")
    logged = TensorBoardImages()
    found = logged.scan(run)
    assert [c.step for c in found] == [0, 10, 20, 40]
    for checkpoint in found:
        got = read(logged, checkpoint)
        assert [s.instance for s in got] == list(range(16)), checkpoint.source
        assert all(s.image.shape == (32, 32, 3) for s in got)


def test_a_run_logging_only_to_tensorboard_is_watched_end_to_end(tmp_path, capsys):
    run, store = tmp_path / "ddpm-ema-flowers-64", tmp_path / "s.zarr"
    writer = SummaryWriter(str(run / "logs" / "train_unconditional"))
    for epoch in range(3):
        writer.add_scalar("loss", 1.0 / (epoch + 1), epoch * 10)
        writer.add_images("test_samples", samples(16, 32, epoch).transpose(0, 3, 1, 2), epoch)
        writer.add_images("real_images", samples(4, 32, 9).transpose(0, 3, 1, 2), epoch)
    writer.close()
    (run / "unet").mkdir()
    torch.save({"w": torch.zeros(2)}, run / "unet" / "diffusion_pytorch_model.bin")  # weights: no samples

    argv = ["watch", str(run), "--store", str(store), "--once", "--encoder", "pixels", "--no-layout"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "reading the images logged to TensorBoard, tag test_samples; left out: real_images" in err
    reader = StoreReader(store)
    info = reader.info()
    assert info["steps"] == [0, 1, 2] and info["rows"] == 48 and info["checkpoints"] == 3
    steps, instances = reader.samples("step"), reader.samples("instance")
    for step in range(3):
        assert instances[steps == step].tolist() == list(range(16))
    assert main(argv) == 0  # idempotent
    assert StoreReader(store).n_rows == 48

    # --samples names the tags to read
    other = tmp_path / "real.zarr"
    assert main(["watch", str(run), "--store", str(other), "--once", "--encoder", "pixels", "--no-layout",
                 "--samples", "real_*"]) == 0
    assert StoreReader(other).info()["rows"] == 12


def test_sample_files_that_come_after_the_logged_images_supersede_them(tmp_path, caplog):
    """Round AV: a DCGAN-style script logs a grid to TensorBoard every few iterations and saves
    ``fake_samples_epoch_000.png`` at each epoch's end. A live watch read the logged images
    while no file was there; once the files came it read only those, and the logged steps (2
    and 4, iterations) stayed current beside the files' (0 and 1, epochs): one map, one series
    of signals, of two runs' worth of steps."""
    run = tmp_path / "run"
    store, watcher = live_watcher(tmp_path, run)
    writer = SummaryWriter(str(run / "runs"))
    for step in (2, 4):
        writer.add_image("fake", make_grid(torch.from_numpy(samples(16, 16, step).transpose(0, 3, 1, 2)), nrow=4), step)
    writer.close()
    assert [r.checkpoint.source for r in watcher.run_once()] == ["runs/fake@2", "runs/fake@4"]
    for epoch in (0, 1):
        grid = make_grid(torch.from_numpy(samples(16, 16, 10 + epoch).transpose(0, 3, 1, 2)), nrow=4)
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(run / f"fake_samples_epoch_{epoch:03d}.png")
    with caplog.at_level("WARNING"):
        assert [r.checkpoint.source for r in watcher.run_once()] == ["fake_samples_epoch_000.png",
                                                                     "fake_samples_epoch_001.png"]
    assert ("the run's own checkpoints came (fake_samples_epoch_000.png, fake_samples_epoch_001.png): the 2 "
            "checkpoints stored before from images logged to TensorBoard (runs/fake@2, runs/fake@4) are kept as "
            "superseded; were they no samples (a model card's images_0.png), --samples 'fake' reads the logged "
            "images again") in caplog.text
    store.close()
    reader = StoreReader(tmp_path / "s.zarr")
    assert reader.info()["steps"] == [0, 1]
    assert sorted(set(reader.samples("step")[reader.current_rows()].tolist())) == [0, 1]


def test_an_event_file_written_before_the_first_checkpoint_has_the_run_scanned_for_its_images(tmp_path, monkeypatch):
    """Round AV: a run logging scalars and, now and then, an image to TensorBoard only: until
    its first image was read, the event file's writes were a log's (only the logs read
    again), so that image waited for the 30 s rescan. Round AW: every write then had the run
    scanned, however long it logged scalars only (20 a second: a scan every 2 s of a run whose
    first sample may be hours away); the writes that bring images do. Once the run's samples
    are files, the event file is a log again."""
    from engine.watch import live

    monkeypatch.setattr(live, "RESCAN_S", 3600.0)  # the events alone bring the image
    run = tmp_path / "run"
    store, watcher = live_watcher(tmp_path, run, tick=0.1)
    scans = []
    scan = watcher._scan
    monkeypatch.setattr(watcher, "_scan", lambda: scans.append(time.monotonic()) or scan())
    writer = SummaryWriter(str(run / "runs"))
    writer.add_scalar("loss", 0.5, 0)
    writer.flush()
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not scans and time.monotonic() < deadline:
            time.sleep(0.05)
        for step in range(1, 60):  # scalars only, flushed 20 times a second
            writer.add_scalar("loss", 1 / step, step)
            writer.flush()
            time.sleep(0.05)
        assert len(scans) == 1, "a write of scalars had the run scanned"
        writer.add_images("test_samples", samples(4, 16, 1).transpose(0, 3, 1, 2), 60)
        writer.add_scalar("loss", 0.1, 61)
        writer.flush()
        while not StoreReader(tmp_path / "s.zarr").n_rows and time.monotonic() < deadline:
            time.sleep(0.05)
        assert StoreReader(tmp_path / "s.zarr").n_rows == 4
    finally:
        stop.set()
        thread.join(timeout=10)
    Image.fromarray(samples(1, 16, 0)[0]).save(run / "sample_100.png")
    assert [r.checkpoint.source for r in watcher.run_once()] == ["sample_100.png"]
    writer.add_images("test_samples", samples(4, 16, 2).transpose(0, 3, 1, 2), 200)
    writer.close()
    assert not watcher._logged_new_images([os.path.join(os.path.realpath(run), path.relative_to(run))
                                           for path in (run / "runs").glob("events.out.tfevents.*")])
    store.close()


def test_new_steps_are_read_incrementally_and_ready_once_the_trainer_goes_on(tmp_path):
    """A live run: its event file changes all the time (scalars), yet a step's images are
    ingested as soon as the trainer logged anything after them (not once the file settles),
    and only the appended bytes are read."""
    run = tmp_path / "run"
    encoder = make_encoder("pixels", device="cpu")
    store = StoreWriter(tmp_path / "s.zarr", encoder_record(encoder))
    watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=60), progress=False, workers=0),
                      store, encoder)
    writer = SummaryWriter(str(run / "tb"), flush_secs=3600)
    writer.add_images("samples", samples(8, 16, 0).transpose(0, 3, 1, 2), 100)
    writer.add_scalar("loss", 0.5, 101)
    writer.flush()
    assert [r.checkpoint.source for r in watcher.run_once()] == ["tb/samples@100"]
    reads = []
    real_read = TensorBoardImages._read

    def counting(self, path):
        before = self._files[path].end if path in self._files else 0
        reads.append((before, path.stat().st_size))
        return real_read(self, path)

    TensorBoardImages._read = counting
    try:
        for step in (200, 300):
            writer.add_scalar("loss", 0.5, step)
            writer.add_images("samples", samples(8, 16, step).transpose(0, 3, 1, 2), step)
            writer.flush()
            assert watcher.run_once() == []  # the last record: more of the step may follow
            writer.add_scalar("loss", 0.5, step + 1)
            writer.flush()
            assert [r.checkpoint.source for r in watcher.run_once()] == [f"tb/samples@{step}"]
    finally:
        TensorBoardImages._read = real_read
    assert all(before > 0 for before, _ in reads)  # each pass started where the last one ended
    writer.close()
    store.close()
    assert StoreReader(tmp_path / "s.zarr").info()["steps"] == [100, 200, 300]


def test_a_step_of_numbered_tags_waits_for_its_last_tag(tmp_path):
    """``add_image(f"sample_{i}", ...)`` is a record per sample: a live watch stored each step
    eight times, growing, and its first versions raised false collapse alerts."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"), flush_secs=3600)
    batch = samples(4, 16, 0)
    logged = TensorBoardImages()
    for i in range(4):
        writer.add_image(f"sample_{i}", batch[i], 10, dataformats="HWC")
        writer.flush()
        (checkpoint,) = logged.scan(run)
        assert not logged.is_ready(checkpoint, DiscoveryOptions(settle=60))  # sample_{i+1} may follow
    assert checkpoint.source == "tb/sample_*@10"
    assert logged.is_ready(checkpoint, DiscoveryOptions(settle=60), now=time.time() + 61)  # the run's last step
    writer.add_scalar("loss", 0.1, 11)
    writer.flush()
    (checkpoint,) = logged.scan(run)
    assert logged.is_ready(checkpoint, DiscoveryOptions(settle=60))
    assert [s.instance for s in read(logged, checkpoint)] == [0, 1, 2, 3]
    writer.close()

    store = tmp_path / "s.zarr"
    assert main(["watch", str(run), "--store", str(store), "--once", "--encoder", "pixels", "--no-layout",
                 "--settle", "0.2"]) == 0
    assert StoreReader(store).info()["rows"] == 4


def test_a_record_still_being_written_waits_and_a_resumed_step_supersedes(tmp_path):
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "logs"))
    writer.add_images("samples", samples(4, 16, 0).transpose(0, 3, 1, 2), 1)
    writer.add_images("samples", samples(4, 16, 1).transpose(0, 3, 1, 2), 2)
    writer.close()
    (full,) = (run / "logs").iterdir()
    data = full.read_bytes()
    full.write_bytes(data[:-10])  # the trainer is mid-way through step 2's record
    logged = TensorBoardImages()
    assert [c.source for c in logged.scan(run)] == ["logs/samples@1"]
    full.write_bytes(data)
    first = by_source(logged.scan(run))
    assert set(first) == {"logs/samples@1", "logs/samples@2"}

    # A resumed run writes a new event file into the same folder and logs step 2 again.
    time.sleep(1.1)  # event file names carry the second they were opened
    resumed = SummaryWriter(str(run / "logs"))
    resumed.add_images("samples", samples(4, 16, 7).transpose(0, 3, 1, 2), 2)
    resumed.close()
    again = by_source(logged.scan(run))
    assert set(again) == set(first)
    hashes = {s: logged.content_hash(c) for s, c in again.items()}
    fresh = TensorBoardImages()
    fresh_found = by_source(fresh.scan(run))
    assert {s: fresh.content_hash(c) for s, c in fresh_found.items()} == hashes  # a restart agrees
    got = [s.image for s in read(logged, again["logs/samples@2"])]
    np.testing.assert_array_equal(np.stack(got), samples(4, 16, 7))


def test_the_samples_option_said_for_superseded_logged_images_reads_them(tmp_path, caplog):
    """Round AX: the line saying a file superseded the logged images gave the last part of a tag
    holding slashes (``--samples 'fake'`` for ``val/fake``), which matches no tag: the command
    run as said read nothing. The tag is cut from the event files' folder, each tag given."""
    run = tmp_path / "run"
    store, watcher = live_watcher(tmp_path, run)
    writer = SummaryWriter(str(run / "runs" / "a"))
    for step in (2, 4):
        writer.add_image("val/fake", make_grid(torch.from_numpy(samples(16, 16, step).transpose(0, 3, 1, 2)),
                                                nrow=4), step)
        writer.add_image("ema", samples(1, 16, 20 + step)[0].transpose(2, 0, 1), step)
    writer.close()
    assert [r.checkpoint.source for r in watcher.run_once()] == ["runs/a/ema@2", "runs/a/val/fake@2",
                                                                 "runs/a/ema@4", "runs/a/val/fake@4"]
    Image.fromarray(samples(1, 64, 9)[0]).save(run / "images_0.png")
    with caplog.at_level("WARNING"):
        assert [r.checkpoint.source for r in watcher.run_once()] == ["images_0.png"]
    assert "--samples 'ema' --samples 'val/fake' reads the logged images again" in caplog.text, caplog.text
    store.close()
    options = DiscoveryOptions(settle=0, sample_globs=("ema", "val/fake"))
    assert {c.source for c in TensorBoardImages().scan(run, options)} == {
        "runs/a/ema@2", "runs/a/val/fake@2", "runs/a/ema@4", "runs/a/val/fake@4"}


def test_rows_of_a_step_logged_again_are_superseded(tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    argv = ["watch", str(run), "--store", str(store), "--once", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    writer = SummaryWriter(str(run / "logs"))
    for step in (1, 2):
        writer.add_images("samples", samples(4, 16, step).transpose(0, 3, 1, 2), step)
    writer.close()
    assert main(argv) == 0
    time.sleep(1.1)
    resumed = SummaryWriter(str(run / "logs"))
    resumed.add_images("samples", samples(4, 16, 9).transpose(0, 3, 1, 2), 2)
    resumed.add_images("samples", samples(4, 16, 3).transpose(0, 3, 1, 2), 3)
    resumed.close()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "ingested step 2 (logs/samples@2): 4 samples; a new version, the earlier one's rows kept as superseded" in err
    assert "ingested step 3 (logs/samples@3): 4 samples\n" in err
    reader = StoreReader(store)
    current = reader.current_rows()
    assert reader.n_rows == 16 and int(current.sum()) == 12
    assert sorted(set(reader.samples("step")[current].tolist())) == [1, 2, 3]


def test_sample_files_win_and_damaged_images_are_skipped_and_named(tmp_path, capsys):
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    writer.add_images("samples", samples(4, 16, 0).transpose(0, 3, 1, 2), 1)
    bad = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag="samples", image=summary_pb2.Summary.Image(height=16, width=16, colorspace=3, encoded_image_string=b"not a png"))])
    writer._get_file_writer().add_summary(bad, 2)
    writer.close()
    logged = TensorBoardImages()
    found = by_source(logged.scan(run))
    (skipped,) = read(logged, found["tb/samples@2"])
    assert isinstance(skipped, SkippedFile) and skipped.path == "tb/samples@2"
    assert skipped.reason == "not a readable image (unknown or corrupt format)"

    store = tmp_path / "s.zarr"
    argv = ["watch", str(run), "--store", str(store), "--once", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    assert main(argv) == 0
    assert "ingested step 2 (tb/samples@2): 0 samples, 1 logged image skipped" in capsys.readouterr().err
    reader = StoreReader(store)
    assert reader.info()["rows"] == 4 and reader.warnings()["path"].tolist() == ["tb/samples@2"]

    # The run also writes sample files: those are its checkpoints, the logged images are not read.
    (run / "samples").mkdir()
    for step in (10, 20):
        Image.fromarray(samples(1, 16, step)[0]).save(run / "samples" / f"{step}.png")
        os.utime(run / "samples" / f"{step}.png", (time.time() - 60,) * 2)
    other = tmp_path / "files.zarr"
    assert main(["watch", str(run), "--store", str(other), *argv[4:]]) == 0
    assert StoreReader(other).info()["steps"] == [10, 20]


def test_an_event_file_deleted_keeps_what_was_stored(tmp_path):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    argv = ["watch", str(run), "--store", str(store), "--once", "--encoder", "pixels", "--no-layout", "--no-metrics"]
    writer = SummaryWriter(str(run / "tb"))
    writer.add_images("samples", samples(4, 16, 0).transpose(0, 3, 1, 2), 1)
    writer.close()
    assert main(argv) == 0
    shutil.rmtree(run / "tb")
    assert main(argv) == 0
    assert StoreReader(store).info()["rows"] == 4


def test_tags_numbered_alike_are_one_checkpoint_with_their_numbers_as_instances(tmp_path):
    """``add_image(f"sample_{i}", x[i], step)``: one series per step, each sample aligned across
    steps by its number; a tag alone with a number (``fid_grid_1``) stays its own."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    batches = {step: samples(12, 16, step) for step in (10, 20)}
    for step, batch in batches.items():
        for i in (2, 0, 11, 3, 1, 10, 4, 5, 6, 7, 8, 9):  # logged in any order
            writer.add_image(f"sample_{i}", batch[i], step, dataformats="HWC")
        writer.add_image("fid_grid_1", batch[0], step, dataformats="HWC")
    writer.close()
    logged = TensorBoardImages()
    found = logged.scan(run)
    assert [(c.step, c.source) for c in found] == [(10, "tb/fid_grid_1@10"), (10, "tb/sample_*@10"),
                                                   (20, "tb/fid_grid_1@20"), (20, "tb/sample_*@20")]
    got = read(logged, found[3])
    assert [(s.instance, s.path) for s in got] == [(i, f"tb/sample_{i}@20") for i in range(12)]
    np.testing.assert_array_equal(np.stack([s.image for s in got]), batches[20])
    assert [s.instance for s in read(logged, found[0])] == [0]  # a lone tag's one sample: 0 at every step
    assert len({logged.content_hash(c) for c in found}) == 4


def test_a_grid_logged_under_a_tag_per_step_is_split_as_a_lone_tags(tmp_path):
    """Round AQ: ``add_image(f"samples_{step}", grid, step)`` was a numbered series, each step
    one unsplit grid whose instance was the step, ``--grid`` left unused."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    batches = {step: samples(16, 8, step) for step in (100, 200, 300)}
    for step, batch in batches.items():
        writer.add_image(f"samples_{step}", make_grid(torch.from_numpy(batch.transpose(0, 3, 1, 2)), nrow=4), step)
    writer.close()
    for options in (DiscoveryOptions(), DiscoveryOptions(grid=(4, 4))):
        logged = TensorBoardImages()
        found = logged.scan(run, options)
        assert [(c.step, c.source) for c in found] == [(step, f"tb/samples_*@{step}") for step in batches]
        got = list(logged.iter_samples(found[1], options))
        assert [s.instance for s in got] == list(range(16))
        np.testing.assert_array_equal(np.stack([s.image for s in got]), batches[200])


def test_numbered_tags_images_are_never_split(tmp_path):
    """Round AR: splitting numbered tags' grids (``add_images(f"sample_{i}", batch)``, round AQ)
    cut single samples apart: a disc on white into 4 quarters (ids repeating another tag's), a
    wide 16x64 image into 8 columns, and a --grid meant for the run's grid tag into slivers."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    yy, xx = np.mgrid[:32, :32]
    disc = np.where(((yy - 16) ** 2 + (xx - 16) ** 2 < 64)[..., None], np.uint8([200, 30, 30]), np.uint8(255))
    wide = np.repeat(samples(1, 64, 3)[:, :16], 1, axis=0)[0]
    for step in (100, 200):
        for i in range(8):
            writer.add_image(f"disc_{i}", disc, step, dataformats="HWC")
            writer.add_image(f"wide_{i}", wide, step, dataformats="HWC")
        writer.add_image("grid", make_grid(torch.from_numpy(samples(16, 8, step).transpose(0, 3, 1, 2)), nrow=8,
                                           padding=0), step)
    writer.close()
    for options in (DiscoveryOptions(), DiscoveryOptions(grid=(2, 8))):
        logged = TensorBoardImages()
        found = by_source(logged.scan(run, options))
        for series in ("disc_*", "wide_*"):
            got = list(logged.iter_samples(found[f"tb/{series}@200"], options))
            assert [s.instance for s in got] == list(range(8)), (series, options)
        assert len(list(logged.iter_samples(found["tb/grid@200"], options))) == 16


def test_numbered_tags_of_several_images_each_take_ids_apart(tmp_path):
    """Round AS: TensorFlow summaries of 4, 2 and 3 images under class_0 ... class_2 were
    numbered by each tag's own count: ids 2 and 3 twice (all were 0 to 3 before round AQ)."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    for step in (10, 20):
        for tag, count in (("class_0", 4), ("class_1", 2), ("class_2", 3)):
            writer._get_file_writer().add_summary(tf_images_summary(tag, samples(count, 16, step)), step)
    writer.close()
    logged = TensorBoardImages()
    found = logged.scan(run)
    ids = [s.instance for s in read(logged, found[-1])]
    assert ids == [0, 1, 2, 3, 1000, 1001, 2000, 2001, 2002]
    seeds = tmp_path / "seeds"  # round AT: tags numbered by a seed went past int32 and ended the watch
    writer = SummaryWriter(str(seeds / "tb"))
    for tag in ("seed_2500000", "seed_3141592653"):
        writer._get_file_writer().add_summary(tf_images_summary(tag, samples(2, 16, 1)), 10)
        writer.add_image(tag.replace("seed", "one"), samples(1, 16, 2)[0], 10, dataformats="HWC")
    writer.close()
    logged = TensorBoardImages()
    assert {s.instance for c in logged.scan(seeds) for s in read(logged, c)} == {-1, 2_500_000}


def test_figures_of_the_runs_numbers_are_no_samples(tmp_path, capsys):
    """``add_figure("loss_curve", fig, step)`` beside ``add_images("samples", …)``: each step's
    plot was a one-sample checkpoint of its own, measured with the step's samples."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "logs"))
    for step in (100, 200):
        writer.add_images("samples", samples(8, 16, step).transpose(0, 3, 1, 2), step)
        fig = plt.figure(figsize=(3, 2))
        plt.plot(np.random.default_rng(step).normal(size=20).cumsum())
        writer.add_figure("loss_curve", fig, step)
    writer.close()
    assert [c.source for c in TensorBoardImages().scan(run)] == ["logs/samples@100", "logs/samples@200"]
    chosen = TensorBoardImages().scan(run, DiscoveryOptions(sample_globs=("loss_curve",)))
    assert [c.source for c in chosen] == ["logs/loss_curve@100", "logs/loss_curve@200"]


def test_tags_ending_in_a_decimal_are_their_own_series_and_reconstructions_are_left_out(tmp_path):
    """NVAE: ``add_image('generated_%0.1f' % t, grid, step)`` for t in 0.7 ... 1.0 beside
    ``add_image('reconstruction', ...)`` (its inputs, then their reconstructions): 0.7, 0.8
    and 0.9 were one numbered series (instances 7, 8, 9; each grid one sample) and the
    reconstructions a checkpoint of generated samples (made from real data now)."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "eval-exp"))
    temperatures = ("0.7", "0.8", "0.9", "1.0")
    for step in (1563, 3126):
        for t in temperatures:
            writer.add_image(f"generated_{t}", make_grid(torch.rand(16, 3, 8, 8), nrow=4, padding=0), step)
        writer.add_image("reconstruction", make_grid(torch.rand(8, 3, 8, 8), nrow=4, padding=0), step - 564)
    writer.close()
    found = TensorBoardImages().scan(run)
    assert [(c.step, c.source) for c in found] == [
        (step, f"eval-exp/generated_{t}@{step}") for step in (1563, 3126) for t in temperatures]
    with_globs = TensorBoardImages().scan(run, DiscoveryOptions(sample_globs=("reconstruction",)))
    assert [c.source for c in with_globs] == ["eval-exp/reconstruction@999", "eval-exp/reconstruction@2562"]


def test_tags_that_are_prompts_are_one_checkpoint_per_step_labelled_by_their_prompt(tmp_path):
    """PixArt's ``log_validation``: ``add_images(validation_prompt, image[None], step,
    dataformats="NHWC")``, a tag per prompt (its first, "dog", one word): each was a
    checkpoint of one sample, no instance, no label. A tag of another folder stays its own."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "logs" / "text2image-fine-tune"))
    prompts = ["dog", "portrait photo of a girl, photograph", "Astronaut in a jungle, cold color palette"]
    batches = {step: samples(3, 16, step) for step in (1, 250)}
    for step, batch in batches.items():
        for prompt, image in zip(prompts, batch):
            writer.add_images(prompt, image[None], step, dataformats="NHWC")
    writer.close()
    other = SummaryWriter(str(run / "logs" / "eval"))
    other.add_image("a grid of samples", make_grid(torch.rand(4, 3, 8, 8)), 1)
    other.close()
    logged = TensorBoardImages()
    found = by_source(logged.scan(run))
    assert sorted(found) == ["logs/eval/a grid of samples@1", "logs/text2image-fine-tune/{sample}@1",
                             "logs/text2image-fine-tune/{sample}@250"]
    got = read(logged, found["logs/text2image-fine-tune/{sample}@250"])
    order = sorted(prompts)
    assert [(s.instance, s.label) for s in got] == [(i, prompt) for i, prompt in enumerate(order)]
    np.testing.assert_array_equal(np.stack([s.image for s in got]), batches[250][[prompts.index(p) for p in order]])


def test_a_prompts_row_of_images_is_split_into_samples_of_that_prompt(tmp_path):
    """diffusers' ControlNet and T2I-Adapter ``log_validation``: ``add_images(validation_prompt,
    np.stack([conditioning, *images]), step, dataformats="NHWC")``, a tag per prompt whose image
    is a row of 1 + ``num_validation_images``: each row was one sample (a 16x80 strip);
    ``--tile-cols 1:`` (documented for it) was ignored."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "logs" / "train_controlnet"))
    prompts = ["red circle with blue background", "cyan circle with brown floral background"]
    yy, xx = np.mgrid[:16, :16]
    conditioning = np.where((np.abs(np.hypot(yy - 8, xx - 8) - 5) < 1)[..., None], np.uint8(255), np.uint8(0))
    conditioning = np.repeat(conditioning, 3, axis=2)
    generated = {(step, i): samples(4, 16, step * 10 + i) for step in (500, 1000) for i in range(2)}
    for step in (500, 1000):
        for i, prompt in enumerate(prompts):
            writer.add_images(prompt, np.concatenate([conditioning[None], generated[(step, i)]]), step,
                              dataformats="NHWC")
    writer.close()
    order = sorted(prompts)  # both first came at step 500: in name order
    for options, kept in ((DiscoveryOptions(), range(5)),
                          (DiscoveryOptions(tile_cols=parse_tile_slice("1:")), range(1, 5))):
        logged = TensorBoardImages()
        found = by_source(logged.scan(run, options))
        got = read(logged, found["logs/train_controlnet/{sample}@1000"])
        assert [(s.instance, s.label) for s in got] == [
            (p * IDS_PER_TAG + t, prompt) for p, prompt in enumerate(order) for t in kept]
        tiles = [np.concatenate([conditioning[None], generated[(1000, prompts.index(prompt))]])[t]
                 for prompt in order for t in kept]
        np.testing.assert_array_equal(np.stack([s.image for s in got]), np.stack(tiles))


def test_a_prompts_grid_that_tells_nothing_takes_the_layout_of_the_prompts_latest_step(tmp_path):
    """Round AW: a prompt's ``add_images`` of 16 samples of noise (a diffusion model's first)
    was one sample (id 1 for the second prompt: the first prompt's second tile at the next
    steps), then 16 of ids 1000 on; a lone tag's took its latest step's layout. A prompt's
    single sample stays whole."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    for step in (0, 100, 200):
        for i, prompt in enumerate(("a photo of a cat", "a photo of a dog")):
            writer.add_images(prompt, noise if step == 0 else samples(16, 16, step + i), step, dataformats="NHWC")
        writer.add_images("a red car on white", samples(1, 32, step), step, dataformats="NHWC")
    writer.close()
    logged = TensorBoardImages()
    found = by_source(logged.scan(run))
    got = read(logged, found["tb/{sample}@0"])
    assert [s.instance for s in got] == [*range(16), *range(1000, 1016), 2]
    np.testing.assert_array_equal(np.stack([s.image for s in got[:16]]), noise)
    assert [s.instance for s in read(logged, found["tb/{sample}@200"])] == [*range(16), *range(1000, 1016), 2]


def test_rows_or_columns_asked_of_a_logged_image_with_no_grid_found_are_a_misfit(tmp_path, capsys):
    """Round AW: ControlNet's pair (one validation image a prompt: not split by itself) with
    ``--tile-cols 1:`` was stored whole, its conditioning image in the sample, and the option
    ignored without a word; a sample file is a misfit then, named with ``--grid`` to force it."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    writer = SummaryWriter(str(run / "logs" / "train_controlnet"))
    prompts = ["red circle with blue background", "cyan circle with brown floral background"]
    conditioning = np.zeros((16, 16, 3), np.uint8)
    conditioning[4:12, 4] = 255
    for step in (500, 1000):
        for i, prompt in enumerate(prompts):
            writer.add_images(prompt, np.concatenate([conditioning[None], samples(1, 16, step + i)]), step,
                              dataformats="NHWC")
    writer.close()
    options = DiscoveryOptions(tile_cols=parse_tile_slice("1:"))
    logged = TensorBoardImages()
    got = read(logged, by_source(logged.scan(run, options))["logs/train_controlnet/{sample}@1000"])
    assert [(type(s), s.misfit) for s in got] == [(SkippedFile, True)] * 2
    assert "--grid ROWSxCOLS" in got[0].reason
    argv = ["watch", str(run), "--store", str(store), "--once", "--encoder", "pixels", "--no-layout", "--no-metrics",
            "--settle", "0", "--tile-cols", "1:"]
    assert main(argv) == 2 and "no grid found to keep rows or columns" in capsys.readouterr().err
    assert main([*argv, "--grid", "1x2"]) == 0 and StoreReader(store).info()["rows"] == 2 * 2


def test_a_prompt_added_later_leaves_the_earlier_steps_alone(tmp_path):
    """Round AQ: prompts were numbered in their sorted order among all seen: a prompt added at
    step 200 ("a photo of a bird") renumbered step 100's, read again as a new version."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    for prompt, image in zip(["a photo of a cat", "a photo of a dog"], samples(2, 16, 1)):
        writer.add_images(prompt, image[None], 100, dataformats="NHWC")
    writer.flush()
    logged = TensorBoardImages()
    before = {c.source: logged.content_hash(c) for c in logged.scan(run)}
    for prompt, image in zip(["a photo of a bird", "a photo of a cat", "a photo of a dog"], samples(3, 16, 2)):
        writer.add_images(prompt, image[None], 200, dataformats="NHWC")
    writer.close()
    found = by_source(logged.scan(run))
    assert logged.content_hash(found["tb/{sample}@100"]) == before["tb/{sample}@100"]
    assert [(s.instance, s.label) for s in read(logged, found["tb/{sample}@200"])] == [
        (0, "a photo of a cat"), (1, "a photo of a dog"), (2, "a photo of a bird")]


def test_two_grid_tags_of_spaced_words_are_no_prompts(tmp_path):
    """Round AB: `add_image("generated images", grid)` beside `"ema images"` were taken for
    PixArt's prompts: one checkpoint of two whole grids, each a "sample"."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    for step in (100, 200):
        for tag in ("generated images", "ema images"):
            writer.add_image(tag, make_grid(torch.from_numpy(samples(16, 16, step).transpose(0, 3, 1, 2))), step)
    writer.close()
    logged = TensorBoardImages()
    found = by_source(logged.scan(run))
    assert sorted(found) == ["tb/ema images@100", "tb/ema images@200", "tb/generated images@100",
                             "tb/generated images@200"]
    assert len(read(logged, found["tb/generated images@200"])) == 16  # the grid split into its samples


def test_a_damaged_record_is_skipped_and_the_records_after_it_still_count(tmp_path, caplog):
    import struct

    from engine.event_files import masked_crc32c

    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    writer.add_images("samples", samples(4, 16, 1).transpose(0, 3, 1, 2), 1)
    writer.flush()
    (path,) = (run / "tb").iterdir()
    garbage = b"\x2a\xff\xff\xff"  # a summary field whose length runs past the record
    header = struct.pack("<Q", len(garbage))
    with open(path, "ab") as fh:  # framed whole (both CRCs right), its content damaged
        fh.write(header + struct.pack("<I", masked_crc32c(header)) + garbage + struct.pack("<I", masked_crc32c(garbage)))
    writer.add_images("samples", samples(4, 16, 2).transpose(0, 3, 1, 2), 2)
    writer.close()
    logged = TensorBoardImages()
    assert [c.step for c in logged.scan(run)] == [1, 2]
    assert "is damaged (truncated protobuf varint); skipped" in caplog.text

    # A record torn by a full disk, the trainer writing on: read on from the next whole record.
    other = SummaryWriter(str(tmp_path / "other"))
    other.add_images("samples", samples(4, 16, 3).transpose(0, 3, 1, 2), 3)
    other.close()
    (written,) = (tmp_path / "other").iterdir()
    torn = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(written.read_bytes()[:-300])  # cut inside its image record
    assert [c.step for c in logged.scan(run)] == [1, 2]
    assert "damaged at byte" not in caplog.text.split("is damaged")[-1]  # at the end, a torn record is one being written
    with open(path, "ab") as fh:
        fh.write(written.read_bytes())  # whole, after the torn one
    found = logged.scan(run)
    assert [c.step for c in found] == [1, 2, 3]
    np.testing.assert_array_equal(np.stack([s.image for s in read(logged, found[2])]), samples(4, 16, 3))
    logged.scan(run)
    (offset,) = [int(m) for m in re.findall(r"damaged at byte (\d+) \(corrupt TFRecord data", caplog.text)]  # said once
    assert offset > torn and "read on from the next whole record" in caplog.text
    assert [c.step for c in TensorBoardImages().scan(run)] == [1, 2, 3]  # a restart reads past it too


def test_a_file_cut_back_and_written_on_is_read_again_from_its_start(tmp_path):
    """The reader went on from its old offset, in the middle of new records: steps were lost
    without a word."""
    from engine.event_files import read_records

    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    for step in (1, 2, 3):
        writer.add_images("samples", samples(4, 16, step).transpose(0, 3, 1, 2), step)
    writer.close()
    (path,) = (run / "tb").iterdir()
    logged = TensorBoardImages()
    assert [c.step for c in logged.scan(run)] == [1, 2, 3]
    with open(path, "rb") as fh:
        ends = [end for _, end, _ in read_records(fh)]
    other = SummaryWriter(str(tmp_path / "other"))
    for step in (6, 7, 8, 9):
        other.add_images("samples", samples(4, 16, step).transpose(0, 3, 1, 2), step)
    other.close()
    (more,) = (tmp_path / "other").iterdir()
    with open(more, "rb") as fh:
        frames = more.read_bytes()[next(read_records(fh))[1]:]  # its records after the file_version one
    data = path.read_bytes()
    path.write_bytes(data[:ends[1]] + frames)  # back to step 1's end, then written on past the old end
    assert path.stat().st_size > len(data)
    assert [c.step for c in logged.scan(run)] == [1, 6, 7, 8, 9]


def test_a_numbered_series_step_waits_for_as_many_tags_as_before_however_slow(tmp_path):
    """Tags logged more than --settle apart (a slow sampler): each step was taken growing,
    1, 2, ... samples, with false collapse alerts on the partial ones."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"), flush_secs=3600)
    batch = samples(4, 16, 0)
    options = DiscoveryOptions(settle=2)

    def log(step: int, tags: range) -> None:
        for i in tags:
            writer.add_image(f"sample_{i}", batch[i], step, dataformats="HWC")
        writer.add_scalar("loss", 0.1, step)  # the trainer logs something between samples, too
        writer.flush()

    def ready(step: int, later: float = 0.0) -> bool:
        found = {c.step: c for c in logged.scan(run)}
        return logged.is_ready(found[step], options, now=time.time() + later)

    logged = TensorBoardImages()
    log(10, range(4))
    assert ready(10)
    log(20, range(2))
    assert not ready(20) and not ready(20, later=3)  # 2 of 4 tags: quiet for --settle is not enough
    assert ready(20, later=2 * INCOMPLETE_WAIT + 1)  # a last step sampled short is taken in the end
    log(20, range(2, 4))
    assert ready(20)
    log(30, range(3))  # a series that shrank: taken once its next step begins
    assert not ready(30)
    log(40, range(1))
    assert ready(30)
    writer.close()


def test_a_run_logging_only_real_data_tags_says_how_to_read_them(tmp_path, caplog):
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    writer.add_images("real_images", samples(4, 16, 0).transpose(0, 3, 1, 2), 1)
    writer.close()
    assert TensorBoardImages().scan(run) == []
    assert ("no sample files, and the images logged to TensorBoard are under tags named as real data, made from it, or plots (real_images): "
            "--samples TAG reads a tag") in caplog.text


def test_a_step_whose_grid_tells_nothing_takes_the_layout_of_the_tags_latest_step(tmp_path):
    """``add_images`` of 64 samples of noise (a diffusion model's first) is a square image whose
    boundaries do not stand out: it was one sample, then 64 at the next steps."""
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "logs"))
    noise = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    writer.add_images("test_samples", noise.transpose(0, 3, 1, 2), 0)
    for step in (10, 20):
        writer.add_images("test_samples", samples(64, 32, step).transpose(0, 3, 1, 2), step)
    writer.add_image("one_sample", samples(1, 256, 1)[0], 20, dataformats="HWC")  # a single sample stays whole
    writer.close()
    logged = TensorBoardImages()
    found = {c.source: c for c in logged.scan(run)}
    got = read(logged, found["logs/test_samples@0"])
    assert [s.instance for s in got] == list(range(64))
    np.testing.assert_array_equal(np.stack([s.image for s in got]), noise)
    assert [s.instance for s in read(logged, found["logs/one_sample@20"])] == [0]  # followed across steps (was -1)


def test_samples_matching_no_tag_says_so(tmp_path, caplog):
    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    writer.add_images("test_samples", samples(4, 16, 0).transpose(0, 3, 1, 2), 1)
    writer.close()
    assert TensorBoardImages().scan(run, DiscoveryOptions(sample_globs=("validation*",))) == []
    assert "images logged to TensorBoard are under tags --samples does not match (test_samples)" in caplog.text


def test_a_forced_grid_no_logged_image_fits_is_one_error(tmp_path, capsys):
    """Round AK: `--tile-size 40` or `--tile-rows 5:` on logged 4x4 grids printed a line per
    image, exited 0 and left a store of 0 rows (as sample files did before round AJ)."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    writer = SummaryWriter(str(run / "tb"))
    for step in (100, 200):
        grid = make_grid(torch.from_numpy(samples(16, 32, step)).permute(0, 3, 1, 2), nrow=4)
        writer.add_image("samples", grid, step)
    writer.close()
    argv = ["watch", str(run), "--store", str(store), "--once", "--encoder", "pixels", "--no-layout", "--no-metrics",
            "--settle", "0"]
    for option in (["--tile-size", "40"], ["--tile-rows", "5:"]):
        capsys.readouterr()
        assert main([*argv, *option]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("evowatch: error: tb/samples@100: its file does not fit the grid the options force")
        assert not any("skipped" in line for line in err), err
        assert not store.exists()
    assert main([*argv, "--tile-rows", "2:"]) == 0 and StoreReader(store).info()["rows"] == 2 * 8
