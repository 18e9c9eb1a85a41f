"""A backlog's store writes in a process of their own (engine/writer_process.py): the same
store as in-process writing, the caller's writer usable afterwards, and every way it can
end (an earlier stage's failure, its own, its death, Ctrl-C) leaving the committed state."""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from engine.pipeline import WRITER_PROCESS_ENV
from stores.zarr_store import StoreReader
from tests.watch_runs import cli_argv, cli_env, processes_using, write_step

STEPS = (10, 20, 30, 40, 50)


def _run(tmp_path: Path, per: int = 6) -> Path:
    run = tmp_path / "run"
    for step in STEPS:
        write_step(run, step, per, seed=step)
    return run


def _ingest(run: Path, store, steps: tuple[int, ...] | None = None) -> list:
    from engine.discovery.identity import content_hash
    from engine.discovery.options import DiscoveryOptions
    from engine.discovery.scan import scan_run
    from engine.encoders import make_encoder
    from engine.pipeline import ingest

    options, encoder = DiscoveryOptions(), make_encoder("pixels", batch_size=4)
    jobs = [(c, content_hash(c)) for c in scan_run(run, options) if steps is None or c.step in steps]
    return [(r.checkpoint.step, r.rows) for r in ingest(store, jobs, encoder, options, workers=1)]


def _writer(path: Path):
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from stores.zarr_store import StoreWriter

    return StoreWriter(path, encoder_record(make_encoder("pixels")))


def _writing_pids(monkeypatch, tmp_path: Path) -> Path:
    """A file naming the process of each store write (a forked child's writes included)."""
    import stores.zarr_store.writer  # write_columns' _write_all: every write of an ingest

    record, real = tmp_path / "writers.txt", stores.zarr_store.writer._write_all

    def noted(writes):
        with open(record, "a") as out:
            out.write(f"{os.getpid()}\n")
        real(writes)

    monkeypatch.setattr(stores.zarr_store.writer, "_write_all", noted)
    return record


def test_the_writer_process_stores_what_in_process_writing_stores_and_the_writer_goes_on(tmp_path, monkeypatch):
    run = _run(tmp_path)
    record = _writing_pids(monkeypatch, tmp_path)
    stores = {}
    for forced in ("0", "1"):
        monkeypatch.setenv(WRITER_PROCESS_ENV, forced)
        stores[forced] = path = tmp_path / f"w{forced}.zarr"
        with _writer(path) as store:
            record.unlink(missing_ok=True)
            assert _ingest(run, store, STEPS[:3]) == [(10, 6), (20, 6), (30, 6)]
            writers = set(record.read_text().split())
            assert writers == {str(os.getpid())} if forced == "0" else str(os.getpid()) not in writers
            # The same writer object goes on after its child wrote: cached shapes re-read.
            monkeypatch.setenv(WRITER_PROCESS_ENV, "0")
            assert _ingest(run, store, STEPS[3:4]) == [(40, 6)]
            monkeypatch.setenv(WRITER_PROCESS_ENV, forced)
            assert _ingest(run, store, STEPS[4:]) == [(50, 6)]
        assert not processes_using(path)
    a, b = StoreReader(stores["0"]), StoreReader(stores["1"])
    assert a.n_rows == b.n_rows == 30 and b.info()["steps"] == list(STEPS)
    for name in ("embedding", "step", "instance", "checkpoint", "path", "thumbnail"):
        np.testing.assert_array_equal(a.samples(name), b.samples(name))
    for name in ("step", "row_start", "row_stop", "source", "hash", "superseded"):
        np.testing.assert_array_equal(a.checkpoints()[name], b.checkpoints()[name])


def test_the_writer_processs_warnings_reach_this_processs_log(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")
    run = _run(tmp_path)
    (run / "step_000020" / "samples" / "00002.png").write_bytes(b"not a png")
    with caplog.at_level("WARNING"), _writer(tmp_path / "s.zarr") as store:
        assert _ingest(run, store) == [(10, 6), (20, 5), (30, 6), (40, 6), (50, 6)]
    assert "skipped" in caplog.text and "step_000020/samples/00002.png" in caplog.text
    assert StoreReader(tmp_path / "s.zarr").n_warnings == 1


class EncoderBroke(Exception):
    def __init__(self, detail: str, code: int) -> None:  # pickles, but does not unpickle: stays in this process
        super().__init__(f"{detail} ({code})")


def test_an_encoder_failure_is_raised_as_is_and_the_complete_checkpoints_stay(tmp_path, monkeypatch):
    from engine.encoders import PixelsEncoder

    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")
    calls = []
    real = PixelsEncoder.encode_pixels

    def breaks_at_the_fourth_call(self, pixels):
        calls.append(1)
        if len(calls) == 4:
            raise EncoderBroke("CUDA error", 719)
        return real(self, pixels)

    monkeypatch.setattr(PixelsEncoder, "encode_pixels", breaks_at_the_fourth_call)
    with _writer(tmp_path / "s.zarr") as store, pytest.raises(EncoderBroke, match=r"CUDA error \(719\)"):
        _ingest(_run(tmp_path), store)
    reader = StoreReader(tmp_path / "s.zarr")
    steps = reader.checkpoints()["step"].tolist()
    assert steps == list(STEPS[:len(steps)]) and reader.n_rows == 6 * len(steps) and len(steps) < len(STEPS)


def test_a_store_write_failure_in_the_writer_process_is_raised_here(tmp_path, monkeypatch):
    """A full disk while the child writes: the same OSError here, the commits before it kept,
    and the next ingest (a fresh writer) resumes from them."""
    import stores.zarr_store.writer

    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")
    monkeypatch.setattr("engine.pipeline.GROUP_ROWS", 8)  # several commits in the backlog
    writes = []
    real = stores.zarr_store.writer._write_all

    def disk_full_at_the_third_write(coroutines):  # inherited by the forked writer
        writes.append(1)
        if len(writes) == 3:
            for c in coroutines:
                c.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        real(coroutines)

    monkeypatch.setattr(stores.zarr_store.writer, "_write_all", disk_full_at_the_third_write)
    run = _run(tmp_path)
    with _writer(tmp_path / "s.zarr") as store, pytest.raises(OSError) as raised:
        _ingest(run, store)
    assert raised.value.errno == errno.ENOSPC
    kept = StoreReader(tmp_path / "s.zarr").checkpoints()["step"].tolist()
    assert 1 <= len(kept) < len(STEPS)
    monkeypatch.setattr(stores.zarr_store.writer, "_write_all", real)
    with _writer(tmp_path / "s.zarr") as store:
        _ingest(run, store, tuple(s for s in STEPS if s not in kept))
    reader = StoreReader(tmp_path / "s.zarr")
    assert reader.info()["steps"] == list(STEPS) and reader.n_rows == 30


def test_a_failure_re_reading_the_store_afterwards_does_not_hide_the_one_that_ended_the_ingest(tmp_path, monkeypatch):
    """A read-only remount: the child's write fails, then so does the caller's re-read of
    the store; the write's error is the one told."""
    import stores.zarr_store.writer

    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")

    def fails(coroutines):
        for c in coroutines:
            c.close()
        raise OSError(errno.EROFS, "Read-only file system")

    def cannot_re_read(self):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(stores.zarr_store.writer, "_write_all", fails)
    monkeypatch.setattr(stores.zarr_store.StoreWriter, "reload_after_child", cannot_re_read)
    with pytest.raises(OSError) as raised:
        with _writer(tmp_path / "s.zarr") as store:
            _ingest(_run(tmp_path), store)
    assert raised.value.errno == errno.EROFS


def test_a_writer_process_that_dies_is_one_clear_error_and_the_next_run_resumes(tmp_path, monkeypatch):
    import stores.zarr_store.writer
    from engine.errors import EvowatchError

    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")
    monkeypatch.setattr("engine.pipeline.GROUP_ROWS", 8)
    writes = []
    real = stores.zarr_store.writer._write_all

    def killed_at_the_third_write(coroutines):  # the OOM killer, say
        writes.append(1)
        if len(writes) == 3:
            os._exit(9)
        real(coroutines)

    monkeypatch.setattr(stores.zarr_store.writer, "_write_all", killed_at_the_third_write)
    run = _run(tmp_path)
    with _writer(tmp_path / "s.zarr") as store:
        with pytest.raises(EvowatchError, match=r"store's writer process exited \(code 9\); everything committed is kept"):
            _ingest(run, store)
        kept = StoreReader(tmp_path / "s.zarr").checkpoints()["step"].tolist()
        assert 1 <= len(kept) < len(STEPS)
        monkeypatch.setattr(stores.zarr_store.writer, "_write_all", real)
        _ingest(run, store, tuple(s for s in STEPS if s not in kept))  # the same writer goes on
    reader = StoreReader(tmp_path / "s.zarr")
    assert reader.info()["steps"] == list(STEPS) and reader.n_rows == 30
    np.testing.assert_array_equal(reader.samples("instance"), np.tile(np.arange(6), len(STEPS)))


N_BACKLOG, PER_CHECKPOINT = 40, 256


@pytest.fixture(scope="module")
def backlog(tmp_path_factory) -> Path:
    """A finished run of 40 checkpoints of 256 images (10,240 files, 5 s to write), which the
    Ctrl-C tests' watches only read: written once for both."""
    run = tmp_path_factory.mktemp("backlog") / "run"
    for step in range(N_BACKLOG):
        write_step(run, step * 10, PER_CHECKPOINT, seed=step, size=32)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("forced", ["0", "1"])
def test_ctrl_c_during_a_backlog_keeps_the_complete_checkpoints_and_the_next_run_resumes(tmp_path, forced, backlog, capsys):
    from engine.cli import main

    run, store = backlog, tmp_path / "s.zarr"
    n_ckpt, per = N_BACKLOG, PER_CHECKPOINT
    env = {**cli_env(tmp_path), WRITER_PROCESS_ENV: forced}
    argv = cli_argv("watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--workers", "1",
                "--no-layout", "--no-metrics")
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((store / "zarr.json").exists() and StoreReader(store).n_checkpoints >= 1):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err
    reader = StoreReader(store)
    stopped_at = reader.n_checkpoints
    assert 1 <= stopped_at < n_ckpt, "the stop should land mid-ingest"
    assert reader.n_rows == stopped_at * per  # whole checkpoints only
    assert not processes_using(store)
    # The next run in this process: what it is checked for is the store, not the process boundary.
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WRITER_PROCESS_ENV, forced)
        assert main(argv[3:]) == 0
    err = capsys.readouterr().err
    assert "interrupted" not in err, err
    reader = StoreReader(store)
    assert reader.n_rows == n_ckpt * per and sorted(reader.checkpoints()["step"].tolist()) == [s * 10 for s in range(n_ckpt)]


def test_a_backlog_gets_the_writer_process_only_with_a_core_to_spare(monkeypatch):
    from engine.pipeline import writer_process_wanted

    monkeypatch.delenv(WRITER_PROCESS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert writer_process_wanted(40, processes=8)       # the lent GPU machine: 8 decode processes, 16 cores
    assert not writer_process_wanted(1, processes=8)    # a live run's new checkpoint: written here
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert not writer_process_wanted(40, processes=2)   # 2 cores, 2 decode processes: nothing to spare
    assert writer_process_wanted(40, processes=0)       # a --sampler: decoding in this process
    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")
    assert writer_process_wanted(1, processes=2)
    monkeypatch.setenv(WRITER_PROCESS_ENV, "0")
    assert not writer_process_wanted(40, processes=0)


def test_an_unknown_writer_process_setting_is_said_once_not_ignored_silently(monkeypatch, caplog):
    from engine.pipeline import writer_process_wanted

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv(WRITER_PROCESS_ENV, "yes")
    with caplog.at_level("WARNING"):
        assert not writer_process_wanted(40, processes=2) and not writer_process_wanted(40, processes=2)
    assert caplog.text.count("EVOWATCH_WRITER_PROCESS='yes' is not 1 or 0 and is ignored") == 1


def test_decode_processes_failing_to_start_are_an_error_not_a_hang(tmp_path, monkeypatch):
    """Too many open files (ulimit -n) or a fork refused (a container's pid limit, memory)
    after some decode processes had been forked: the writer process was told to stop only by
    the end of its pipe, which those processes also held, so it waited for input and this
    process for it, for ever (in-process writing: one line, exit status 2)."""
    import multiprocessing
    import threading

    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")
    forked = []

    def forks_one_then_runs_out_of_descriptors(jobs, prep, n, out):
        worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,), daemon=True)
        worker.start()  # holds every descriptor this process had, as a decode process does
        forked.append(worker)
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr("engine.pipeline.start_decode_processes", forks_one_then_runs_out_of_descriptors)
    raised = []

    def ingest_catching():
        try:
            _ingest(_run(tmp_path), store)
        except BaseException as exc:
            raised.append(exc)

    with _writer(tmp_path / "s.zarr") as store:
        ingesting = threading.Thread(target=ingest_catching, daemon=True)
        ingesting.start()
        ingesting.join(timeout=20)
        hung = ingesting.is_alive()
        for worker in forked:  # lets a hung ingest end, so the store can be closed
            worker.kill()
            worker.join()
        ingesting.join(timeout=20)
    assert not hung, "the ingest hung waiting for the writer process"
    assert len(raised) == 1 and isinstance(raised[0], OSError) and raised[0].errno == errno.EMFILE


def test_a_decoding_failure_that_does_not_pickle_is_raised_as_is(tmp_path, monkeypatch):
    """An earlier stage's failure reaches the writer inside an encoder call's items: it is
    kept here and raised as it is, after the checkpoints before it are committed."""
    import threading

    from engine.decode.samples import iter_samples
    from engine.discovery.identity import content_hash
    from engine.discovery.options import DiscoveryOptions
    from engine.discovery.scan import scan_run
    from engine.encoders import make_encoder
    from engine.pipeline import ingest

    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")
    broken = RuntimeError("decoder state", threading.Lock())  # a lock does not pickle

    def breaks_at_step_40(checkpoint, options):
        if checkpoint.step == 40:
            raise broken
        return iter_samples(checkpoint, options)

    options, encoder = DiscoveryOptions(), make_encoder("pixels", batch_size=4)
    jobs = [(c, content_hash(c)) for c in scan_run(_run(tmp_path), options)]
    with _writer(tmp_path / "s.zarr") as store, pytest.raises(RuntimeError) as raised:
        list(ingest(store, jobs, encoder, options, workers=0, samples=breaks_at_step_40))
    assert raised.value is broken
    assert StoreReader(tmp_path / "s.zarr").info()["steps"] == [10, 20, 30]


def test_repeated_ctrl_c_kills_the_writer_process_before_the_store_is_let_go(tmp_path, monkeypatch):
    """Each Ctrl-C cut one wait for the child short; after a few the ingest gave up with the
    child still writing, and the store was then closed (unlocked, cut back) under it."""
    import _thread
    import threading

    import stores.zarr_store.writer
    from stores.owner import process_alive

    monkeypatch.setenv(WRITER_PROCESS_ENV, "1")
    real, writers = stores.zarr_store.writer._write_all, tmp_path / "writers.txt"

    def slow_disk(writes):  # a network filesystem: the child is still writing when the presses come
        with open(writers, "a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(0.7)
        real(writes)

    monkeypatch.setattr(stores.zarr_store.writer, "_write_all", slow_disk)
    run, done = tmp_path / "run", threading.Event()
    for step in range(10, 110, 10):
        write_step(run, step, 4, seed=step)

    def presses_ctrl_c_again_and_again():  # once the child is in a write, however slow the start
        deadline = time.time() + 60
        while not (writers.exists() and set(writers.read_text().split()) - {str(os.getpid())}):
            if time.time() > deadline:
                return
            time.sleep(0.01)
        for _ in range(12):
            if done.is_set():
                return
            _thread.interrupt_main()
            time.sleep(0.08)

    threading.Thread(target=presses_ctrl_c_again_and_again, daemon=True).start()
    with _writer(tmp_path / "s.zarr") as store:
        try:
            with pytest.raises(KeyboardInterrupt):
                _ingest(run, store)
                pytest.fail("the ingest ended before the presses")
        finally:
            done.set()
            with contextlib.suppress(KeyboardInterrupt):  # a press already on its way lands here
                time.sleep(0.3)
        # By its pid: multiprocessing's own list keeps a child whose reaping a press interrupted.
        children = set(writers.read_text().split()) - {str(os.getpid())}
        assert children and not [pid for pid in children if process_alive(pid)]
    monkeypatch.setattr(stores.zarr_store.writer, "_write_all", real)
    reader = StoreReader(tmp_path / "s.zarr")
    assert reader.n_rows == 4 * reader.n_checkpoints  # whole checkpoints only
    with _writer(tmp_path / "s.zarr") as store:  # not locked, and resumes
        _ingest(run, store, tuple(s for s in range(10, 110, 10) if s not in reader.checkpoints()["step"].tolist()))
    assert StoreReader(tmp_path / "s.zarr").info()["steps"] == list(range(10, 110, 10))
