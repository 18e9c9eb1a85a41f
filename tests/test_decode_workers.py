"""The decode processes and the encoder's batching: order, shared slots, large folders, dying workers."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.errors import EvowatchError
from stores.zarr_store import StoreReader
from tests.watch_runs import info, write_step


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
    import engine.watch.pending

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    write_step(run, 50, 3, seed=50)
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    capsys.readouterr()
    for step in (100, 200, 300):
        write_step(run, step, 3, seed=step)
    real = engine.watch.pending.file_digests

    def rotated(checkpoint):
        if checkpoint.source == "step_000050":  # stored already: its rotation is no news
            shutil.rmtree(run / "step_000050", ignore_errors=True)
        if checkpoint.source == "step_000200" and (run / "step_000200").exists():
            shutil.rmtree(run / "step_000200")
        if checkpoint.source == "step_000300" and (gone := run / "step_000300" / "samples" / "00002.png").exists():
            gone.unlink()
        return real(checkpoint)

    monkeypatch.setattr(engine.watch.pending, "file_digests", rotated)
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
    import engine.watch.ingest_pass
    import engine.watch.pending

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

    monkeypatch.setattr(engine.watch.pending, "file_digests", replaced("hashed", engine.watch.pending.file_digests))
    monkeypatch.setattr(engine.watch.ingest_pass, "ingest", lambda store, jobs, *a, **k: engine.pipeline.ingest(
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
