"""The store's contract: commit protocol, recovery, lock, encoder identity, plain-zarr reading."""
from __future__ import annotations

import errno
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from engine.errors import EncoderMismatchError, StoreFormatError, StoreLockedError
from stores import format as fmt
from stores.zarr_store import StoreReader, StoreWriter

ENCODER = {"identity": "test:8", "dim": 8}
REPO = Path(__file__).resolve().parents[1]


def add_rows(tx, n: int, rng, label: str | None = "cat") -> None:
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tx.add(vectors, list(range(n)), [label] * n, np.zeros((n, 4, 4, 3), np.uint8), [f"s{i}.png" for i in range(n)])


def killed_in_a_fork(body: Callable[[], object]) -> int:
    """Run ``body`` in a forked child that kills itself (SIGKILL) at the point under test; its exit
    status as subprocess gives it (-9 when killed, 1 when ``body`` raised, 0 when it returned). A
    fork, not ``python -c``: the same process killed mid-write, without a new interpreter importing
    zarr and the store (1-2 s a test)."""
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        code = 1
        try:
            body()
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def kill_when(owner: type, name: str, dies: Callable[..., bool]) -> None:
    """Make ``owner.name`` kill the process (SIGKILL) when ``dies(self, *args)``, else run as it was:
    the point under test of a :func:`killed_in_a_fork` body (patched in the forked child only)."""
    original = getattr(owner, name)

    def killed(self, *args):
        if dies(self, *args):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args)
    setattr(owner, name, killed)


def test_commit_and_read(tmp_path, rng):
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        for step in (100, 200):
            with store.checkpoint(step, f"step_{step}", f"h{step}") as tx:
                add_rows(tx, 10, rng)
                tx.skip("broken.png", "truncated PNG")
    reader = StoreReader(tmp_path / "s.zarr")
    info = reader.info()
    assert info["rows"] == 20 and info["checkpoints"] == 2 and info["steps"] == [100, 200]
    assert info["kinds"] == {"generated": 20, "real": 0, "holdout": 0}
    assert info["warnings"] == 2 and info["encoder"] == "test:8" and info["dim"] == 8
    assert reader.samples("step").tolist() == [100] * 10 + [200] * 10
    assert reader.samples("instance", slice(8, 12)).tolist() == [8, 9, 0, 1]
    assert reader.labels == ["cat"]
    np.testing.assert_allclose(np.linalg.norm(reader.samples("embedding").astype(np.float32), axis=1), 1, atol=1e-3)


def test_each_checkpoints_rows_hold_its_own_vectors_labels_instances_and_thumbnails(tmp_path, rng):
    """The fixed-width columns wait in a staging area reused from write to write: every column
    read back is the one added for that checkpoint, written alone, deferred in a group, or in
    parts (a checkpoint larger than a write), not an earlier checkpoint's rows again."""
    path, added = tmp_path / "s.zarr", []
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step, n, defer in ((1, 3, False), (2, 4, True), (3, 5, True), (4, 2100, False), (5, 6, False)):
            vectors = rng.normal(size=(n, 8)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            columns = (vectors.astype(np.float16), rng.integers(0, 1000, n), [f"l{step}"] * n,
                       rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8))
            with store.checkpoint(step, f"c{step}", f"h{step}", defer=defer) as tx:
                tx.add(*columns, [f"c{step}/{i}.png" for i in range(n)])
            added.append(columns)
    reader = StoreReader(path)
    np.testing.assert_array_equal(reader.samples("embedding"), np.concatenate([c[0] for c in added]))
    assert reader.samples("instance").tolist() == [int(i) for c in added for i in c[1]]
    assert [reader.labels[code] for code in reader.samples("label")] == [label for c in added for label in c[2]]
    np.testing.assert_array_equal(reader.samples("thumbnail"), np.concatenate([c[3] for c in added]))


def test_a_reader_never_reads_a_row_past_the_commit_point(tmp_path, rng):
    """A row index at or past the committed count is refused, not read: while a writer is open its
    arrays are grown ahead of the commit point, and rows there are unwritten or half-written."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(1, "c1", "h1") as tx:
            add_rows(tx, 5, rng)
        reader = StoreReader(path)
        assert zarr.open_array(str(path / "samples" / "step"), mode="r").shape[0] > 5  # grown ahead
        assert reader.samples("step", np.array([0, 4])).tolist() == [1, 1]
        with pytest.raises(IndexError, match="outside the 5 committed rows"):
            reader.samples("step", np.array([4, 5]))
        assert reader.samples("step", np.ones(8, bool)).tolist() == [1] * 5  # a mask past them is cut


def test_info_names_the_newest_skipped_files_of_the_current_versions(tmp_path, rng, capsys):
    """The viewer sends a store whose files were all skipped to `evowatch info STORE`, which
    "names the skipped files and why": it printed their count only (and --json too)."""
    from engine.cli import main
    from stores.zarr_store import SKIPPED_FILES_SHOWN

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h1") as tx:
            add_rows(tx, 2, rng)
            tx.skip("step_100/old.png", "truncated PNG")
        with store.checkpoint(100, "step_100", "h2") as tx:  # rewritten in place: read again, nothing skipped
            add_rows(tx, 2, rng)
        for step in (200, 300):
            with store.checkpoint(step, f"step_{step}", f"h{step}") as tx:
                add_rows(tx, 2, rng)
                for i in range(6):
                    tx.skip(f"step_{step}/{i}.png", f"a 3x3 grid has no tile {i}")
    newest = [(step, i) for step in (300, 200) for i in range(5, -1, -1)][:SKIPPED_FILES_SHOWN]
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("warnings    13 skipped files (12 in current versions)")
    assert out[at + 1:at + 12] == [f"  skipped step_{step}/{i}.png: a 3x3 grid has no tile {i}" for step, i in newest] + [
        "  ... and 2 more: the store's warnings/ arrays hold them all (docs/store.md)"]
    assert main(["info", str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["warnings"] == 13 and printed["current_warnings"] == 12  # as before
    assert printed["skipped_files"] == [{"step": step, "path": f"step_{step}/{i}.png",
                                         "reason": f"a 3x3 grid has no tile {i}"} for step, i in newest]


def test_info_lists_each_rules_first_alert_and_the_newest_not_every_one(tmp_path, capsys):
    """Round AL: an alert holds at every later checkpoint, and `info` printed all of them: 568
    lines on a 600-step store, its summary scrolled away. As the viewer: each rule's first (the
    onset) and the newest 3; --json keeps them all."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    alerts = [{"step": step, "rule": "memorisation", "value": 0.5, "message": f"copies at step {step}"}
              for step in range(100, 2100, 100)] + [{"step": 700, "rule": "collapse", "value": 0.1, "message": "collapse"}]
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.set_alerts(alerts)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("alerts      21")
    assert out[at + 1:] == ["  step 100: [memorisation] copies at step 100", "  step 700: [collapse] collapse",
                            *(f"  step {s}: [memorisation] copies at step {s}" for s in (1800, 1900, 2000)),
                            "  (5 shown: each rule's first and the newest 3; `evowatch info --json` lists all 21)"]
    assert main(["info", str(path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["alerts"]) == 21


def test_a_writers_partial_file_in_a_table_is_read_past_without_a_warning(tmp_path, rng):
    """zarr writes a group's zarr.json through a temporary zarr.<id>.partial: a reader listing
    the group meanwhile printed a ZarrUserWarning (seen in a live watch's loss-log test)."""
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h100") as tx:
            add_rows(tx, 4, rng)
        store.write_step_metrics(100, {"vendi": 2.0})
    (tmp_path / "s.zarr" / "metrics" / "zarr.0123abcd.partial").write_bytes(b"{")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert StoreReader(tmp_path / "s.zarr").step_metrics()["vendi"].tolist() == [2.0]


def test_a_store_copied_with_a_file_managers_files_is_read_and_written_without_a_warning(tmp_path, rng):
    """A store copied through macOS holds ``.DS_Store`` and ``._zarr.json`` files in its folders:
    `info`, `export` and a watch writing its metrics or losses printed a ZarrUserWarning each
    (zarr's listing of a group warns about any file it does not know)."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h100") as tx:
            add_rows(tx, 4, rng)
        store.write_step_metrics(100, {"vendi": 2.0})
        store.write_scalars({"step": np.array([100]), "loss": np.array([0.5])})
    for group in ("metrics", "scalars"):
        (path / group / ".DS_Store").write_bytes(b"\0")
        (path / group / "._zarr.json").write_bytes(b"\0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader = StoreReader(path)
        assert reader.step_metrics()["vendi"].tolist() == [2.0] and reader.scalars()["loss"].tolist() == [0.5]
        with StoreWriter(path, ENCODER) as store:
            store.write_step_metrics(200, {"vendi": 3.0})
            store.write_scalars({"step": np.array([100, 200]), "loss": np.array([0.5, 0.25])})
        assert StoreReader(path).step_metrics()["vendi"].tolist() == [2.0, 3.0]


def test_a_metrics_table_begun_before_any_step_is_read_as_docs_store_md_says(tmp_path):
    """A watch waiting for its first checkpoint after reading --real left the metrics group
    with no ``step`` column: ``root["metrics/step"][:committed_rows]`` raised KeyError."""
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        store.restart_step_metrics("real:abc", [])
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    metrics = root["metrics"]
    assert root["metrics/step"][:metrics.attrs["committed_rows"]].tolist() == []


def test_a_metrics_row_replaced_in_place_is_marked_while_its_columns_are_written(tmp_path, monkeypatch):
    """Round AD: a step measured again is rewritten column by column: a live reader got rows
    half old, half new with nothing to tell it (11 in 248 snapshots of the demo)."""
    from stores.zarr_store import tables  # the module whose write_steps_metrics calls _write_all

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.write_step_metrics(100, {"vendi": 2.0, "fd": 1.0}, measured=[0, 8])
        seen, write_all = [], tables._write_all

        def noting(columns):
            seen.append(StoreReader(path).measured_steps()[100])
            return write_all(columns)

        monkeypatch.setattr(tables, "_write_all", noting)
        store.write_step_metrics(100, {"vendi": 3.0, "fd": 0.5}, measured=[1, 8])
    assert seen == [[]]  # being measured again: read it once more
    assert StoreReader(path).measured_steps() == {100: [1, 8]}


def test_a_kill_while_dropping_a_steps_metrics_leaves_no_row_half_moved(tmp_path, monkeypatch):
    """Round AN: dropping a step's row moved the later rows up column by column below the
    commit point; killed between two columns, the resumed watch kept the later steps with
    their predecessors' values in the columns not yet moved. The commit point goes back to
    the first row dropped first: the rows after it are measured again."""
    import zarr as zarr_module

    path = tmp_path / "s.zarr"
    steps = [100, 200, 300, 400, 500]
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.write_steps_metrics([(s, {"vendi": s / 100, "fd": s / 1000}, [i, 8]) for i, s in enumerate(steps)])

    class Killed(Exception):
        pass

    writes, setitem = [], zarr_module.Array.__setitem__

    def dies_at_the_second_column(self, key, value):
        writes.append(key)
        if len(writes) == 2:
            raise Killed
        return setitem(self, key, value)

    with pytest.raises(Killed), StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        monkeypatch.setattr(zarr_module.Array, "__setitem__", dies_at_the_second_column)
        store.drop_step_metrics([300])
    monkeypatch.undo()
    table, measured = StoreReader(path).step_metrics(), StoreReader(path).measured_steps()
    assert table["step"].tolist() == [100, 200] and table["vendi"].tolist() == [1.0, 2.0]
    assert table["fd"].tolist() == [0.1, 0.2] and measured == {100: [0, 8], 200: [1, 8]}
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:  # the resumed watch measures them again
        store.write_steps_metrics([(s, {"vendi": s / 100, "fd": s / 1000}, [i, 8]) for i, s in enumerate(steps) if s > 300])
    table = StoreReader(path).step_metrics()
    assert table["step"].tolist() == [100, 200, 400, 500] and table["vendi"].tolist() == [1.0, 2.0, 4.0, 5.0]
    assert table["fd"].tolist() == [0.1, 0.2, 0.4, 0.5]


def test_a_full_disk_when_closing_adds_no_second_line(tmp_path, rng, monkeypatch, caplog):
    """Round AD: a full disk stopped the watch with its one-line error, after a warning that the
    arrays' spare capacity could not be cut on close ([Errno 28]): two lines for one cause."""
    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    with caplog.at_level("WARNING"):
        with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
            with store.checkpoint(100, "step_100", "h100") as tx:
                add_rows(tx, 4, rng)
            monkeypatch.setattr(StoreWriter, "_cut_to_committed", full)
    assert caplog.text == ""


def test_writes_bound_zarrs_chunk_concurrency_for_themselves_only(tmp_path, rng, monkeypatch):
    """The writer's chunk limit holds during its writes and leaves zarr's process-wide
    setting as it was (a trainer or notebook writing a store keeps its own zarr config)."""
    from stores.zarr_store import primitives  # _write_all's module: its limit and its sync

    monkeypatch.delenv("ZARR_ASYNC__CONCURRENCY", raising=False)
    monkeypatch.setattr(primitives, "_CHUNKS_IN_FLIGHT", 3)
    before = zarr.config.get("async.concurrency")
    seen, real_sync = [], primitives.sync

    def sync_noting_the_limit(coro):
        seen.append(zarr.config.get("async.concurrency"))
        return real_sync(coro)

    monkeypatch.setattr(primitives, "sync", sync_noting_the_limit)
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(1, "step_1", "h1") as tx:
            add_rows(tx, 10, rng)
        assert zarr.config.get("async.concurrency") == before
    assert seen and set(seen) == {3}
    assert zarr.config.get("async.concurrency") == before and StoreReader(tmp_path / "s.zarr").n_rows == 10


def test_a_source_read_again_as_a_run_or_as_part_of_one_is_superseded(tmp_path, rng):
    """The same files read another way as the run grew: the earlier reading is superseded,
    in the flags plain zarr readers use and in what the writer treats as already ingested."""
    from stores.zarr_store import superseded_flags

    sources = ["version_0", "other", "version_0/images/e=1-s=1000", "step_5/grid_5.png", "step_5", "other2"]
    assert superseded_flags({"source": np.array(sources)}).tolist() == [True, False, False, True, False, False]
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for i, source in enumerate(sources[:4]):
            with store.checkpoint(i, source, f"h{i}") as tx:
                add_rows(tx, 2, rng)
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:  # reopened: the same state, kept up to date
        assert store.committed_hashes() == {"other": "h1", "version_0/images/e=1-s=1000": "h2", "step_5/grid_5.png": "h3"}
        for i, source in enumerate(sources[4:], 4):
            with store.checkpoint(i, source, f"h{i}") as tx:
                add_rows(tx, 2, rng)
    root = zarr.open_group(str(path), mode="r")
    assert root["checkpoints/superseded"][:].tolist() == [True, False, False, True, False, False]
    assert StoreReader(path).current_rows().tolist() == [False] * 2 + [True] * 4 + [False] * 2 + [True] * 4


def test_a_file_and_the_per_step_pattern_covering_it_are_one_reading(tmp_path, rng):
    """``step1000_00.png`` read alone, then ``step1000_*.png`` (and the reverse): the later wins."""
    from stores.zarr_store import superseded_flags

    sources = ["s/step1000_00.png", "s/step1000_*.png", "s/step2000_*.png", "s/step2000_03.png", "s/step300_*.png",
               "t/step1000_01.png", "real:/data/a", "holdout:/data/h", "real:/data/b",  # --real given another folder
               "w/samples_1000_2afb32b3f5f03f5f48a5.png", "w/samples_1000_????????????????????.png"]  # W&B's first image
    expected = [True, False, True, False, False, False, True, False, False, True, False]
    assert superseded_flags({"source": np.array(sources)}).tolist() == expected
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        for i, source in enumerate(sources):
            with store.checkpoint(i, source, f"h{i}") as tx:
                add_rows(tx, 1, rng)
    assert zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["checkpoints/superseded"][:].tolist() == expected


def test_the_trainers_own_files_supersede_the_logged_images_and_tracker_copies_read_before(tmp_path, rng):
    """Round AV: a live watch read the images logged to TensorBoard (``runs/fake@2``) or W&B's
    copies while the run had no sample file yet; once the trainer's own files came, discovery
    read only those, and the earlier rows stayed current beside them: two series in one (steps
    2, 4 of iterations beside epochs 0, 1). A stand-in read after the files, and a reference
    set, are left alone."""
    from stores.zarr_store import superseded_flags

    sources = ["runs/fake@2", "wandb/run-20240105_103000-k3j9x2pq/files/media/images/samples_1000_????.png",
               "real:/data/train", "fake_samples_epoch_000.png", "runs/fake@6"]
    expected = [True, True, False, False, False]
    assert superseded_flags({"source": np.array(sources)}).tolist() == expected
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for i, source in enumerate(sources[:3]):
            with store.checkpoint(i, source, f"h{i}", kind="real" if source.startswith("real:") else "generated") as tx:
                add_rows(tx, 1, rng)
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:  # reopened: kept up to date one commit at a time
        for i, source in enumerate(sources[3:], 3):
            with store.checkpoint(i, source, f"h{i}") as tx:
                add_rows(tx, 1, rng)
        assert sorted(store.committed_hashes()) == sorted(sources[2:])
    assert zarr.open_group(str(path), mode="r")["checkpoints/superseded"][:].tolist() == expected
    assert StoreReader(path).current_rows().tolist() == [not old for old in expected]


def test_a_reference_set_in_a_folder_named_as_a_trackers_is_no_stand_in_for_the_files():
    """Round AW: ``--real /data/wandb/train`` (or a folder ending ``@100``) was named among the
    checkpoints "stored before from W&B's copies ... kept as superseded" when the trainer's
    own files came; it stays current, as it should."""
    from stores.format import stand_in_for_files
    from stores.zarr_store import superseded_flags

    sources = ["runs/fake@2", "real:/data/wandb/train", "holdout:/data/held@100", "fake_samples_epoch_000.png"]
    assert [stand_in_for_files(source) for source in sources] == ["images logged to TensorBoard", None, None, None]
    assert superseded_flags({"source": np.array(sources)}).tolist() == [True, False, False, False]
    assert stand_in_for_files("logs/wandb/run-1/files/media/images/samples_1000_ab12.png") == "W&B's copies"


def test_an_array_whose_making_failed_leaves_no_folder(tmp_path, monkeypatch):
    """The disk filled while a new metric's column was made: an empty metrics/density/ folder
    stayed, and plain zarr warned about it at every read until a resume succeeded."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.write_step_metrics(100, {"vendi": 2.0})

        import zarr.storage._local as local

        put = local._put

        def full(at, *args, **kwargs):  # the folder made, its zarr.json not written
            if any("density" in part for part in at.parts):  # also under its staged name (.density.new)
                at.parent.mkdir(parents=True, exist_ok=True)
                raise OSError(errno.ENOSPC, "No space left on device")
            return put(at, *args, **kwargs)

        monkeypatch.setattr(local, "_put", full)
        with pytest.raises(OSError):
            store.write_step_metrics(100, {"vendi": 2.0, "density": 0.9})
        monkeypatch.undo()
    assert not (path / "metrics" / "density").exists() and not list((path / "metrics").glob(".density*"))
    assert list(StoreReader(path).step_metrics()) == ["step", "vendi"]


def test_error_inside_checkpoint_rolls_back(tmp_path, rng):
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(1, "a", "h1") as tx:
            add_rows(tx, 5, rng)
        with pytest.raises(RuntimeError):
            with store.checkpoint(2, "b", "h2") as tx:
                add_rows(tx, 20000, rng)  # more than one flush (16,384 rows here): rows hit the disk
                raise RuntimeError("decoder crashed")
        assert store.n_rows == 5
        assert zarr.open_array(str(tmp_path / "s.zarr/samples/embedding"), mode="r").shape[0] == 5
        with store.checkpoint(2, "b", "h2") as tx:
            add_rows(tx, 3, rng)
    assert StoreReader(tmp_path / "s.zarr").samples("step").tolist() == [1] * 5 + [2] * 3
    assert zarr.open_array(str(tmp_path / "s.zarr/samples/step"), mode="r").shape == (8,)


def test_rewritten_checkpoint_supersedes_the_old_rows(tmp_path, rng):
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        for digest in ("v1", "v2"):
            with store.checkpoint(3, "fake_samples_epoch_003.png", digest) as tx:
                add_rows(tx, 4, rng)
                if digest == "v1":  # a file half-written the first time: its warning is the old version's
                    tx.skip("fake_samples_epoch_003.png", "truncated or corrupt image")
        assert store.committed_hashes() == {"fake_samples_epoch_003.png": "v2"}
    reader = StoreReader(tmp_path / "s.zarr")
    assert reader.n_rows == 8
    assert reader.current_rows().tolist() == [False] * 4 + [True] * 4
    assert (reader.info()["warnings"], reader.info()["current_warnings"]) == (1, 0)
    # Plain-zarr readers get the flag stored too.
    assert zarr.open_array(str(tmp_path / "s.zarr/checkpoints/superseded"), mode="r")[:].tolist() == [True, False]


def test_history_keeps_each_watch_sessions_entry_the_newest_100(tmp_path):
    """docs/store.md: ``history`` holds each watch session's entry (where the run was watched,
    its device and encoder), in order, bounded to the newest 100 so the root zarr.json, which
    every commit rewrites, stays small."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER) as store:
        for session in range(105):
            store.record_history({"event": "watch", "run_dir": f"run{session}"})
    history = StoreReader(path).attrs["history"]
    assert [entry["run_dir"] for entry in history] == [f"run{session}" for session in range(5, 105)]


def test_second_writer_is_refused(tmp_path):
    (tmp_path / "link.zarr").symlink_to(tmp_path / "s.zarr")  # round AB: through a link it took a lock of its own
    (tmp_path / "here").symlink_to(tmp_path)
    with StoreWriter(tmp_path / "s.zarr", ENCODER):
        for other in ("s.zarr", "link.zarr", "here/s.zarr"):
            with pytest.raises(StoreLockedError, match=r"already being written by pid \d+ \(an evowatch watch or layout\); "
                                                        "wait for it or stop it, or write to another store"):
                StoreWriter(tmp_path / other, ENCODER)


def test_other_encoder_is_refused(tmp_path):
    StoreWriter(tmp_path / "s.zarr", ENCODER).close()
    with pytest.raises(EncoderMismatchError, match="--encoder test:8"):
        StoreWriter(tmp_path / "s.zarr", {"identity": "pixels:16", "dim": 768})
    with pytest.raises(EncoderMismatchError, match=r"\(dim 8\), this run uses 'test:8' \(dim 16\)"):
        StoreWriter(tmp_path / "s.zarr", {"identity": "test:8", "dim": 16})  # the recorded width is checked too
    # the hint names the recorded spec, which loads (an identity may not: '@sha256-…')
    StoreWriter(tmp_path / "t.zarr", {"identity": "clip:m@sha256-0123", "dim": 8, "spec": "clip:m@/w/m.pt"}).close()
    with pytest.raises(EncoderMismatchError, match="pass --encoder clip:m@/w/m.pt or"):
        StoreWriter(tmp_path / "t.zarr", {"identity": "pixels:16", "dim": 768})


def test_a_part_of_a_store_or_a_zip_of_one_names_the_store_to_point_at(tmp_path, rng, monkeypatch):
    """An analyst pointing `info`/`export`/`layout` at ``run.zarr/samples``, ``run.zarr/zarr.json``
    or the zip a store came in was told it is no evowatch store, or has no zarr.json, and to
    choose another: nothing said which path to give instead."""
    import zipfile

    path = tmp_path / "run.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h100") as tx:
            add_rows(tx, 2, rng)
    for part, line in (("samples", "the group 'samples'"), ("samples/step", "the array 'samples/step'"),
                       ("zarr.json", "'zarr.json'")):
        with pytest.raises(StoreFormatError, match=re.escape(f"run.zarr/{part}: is {line} inside the evowatch store "
                                                             f"{path}; point at {path}") + "$"):
            StoreReader(path / part)
    monkeypatch.chdir(path / "samples")
    with pytest.raises(StoreFormatError, match=re.escape(f"step: is the array 'samples/step' inside the evowatch "
                                                         f"store {path}; point at {path}")):
        StoreReader(Path("step"))
    with zipfile.ZipFile(tmp_path / "run.zip", "w") as archive:  # zip -r run.zip run.zarr
        for file in path.rglob("*"):
            archive.write(file, file.relative_to(tmp_path))
    with pytest.raises(StoreFormatError, match=r"run.zip: is a zip archive holding run.zarr; unzip it \(unzip "
                                               r".*run.zip\) and point at the store folder$"):
        StoreReader(tmp_path / "run.zip")
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as archive:  # cd run.zarr && zip -r ../flat.zip .
        for file in path.rglob("*"):
            archive.write(file, file.relative_to(path))
    with pytest.raises(StoreFormatError, match=r"flat.zip: is a zip archive of a store; unzip it into a folder "
                                               r"\(unzip .*flat.zip -d .*flat.zarr\) and point at that$"):
        StoreReader(tmp_path / "flat.zip")


def test_the_unzip_command_said_for_a_zip_of_a_store_runs_as_given(tmp_path):
    """A zip of a store named as a store (``store.zarr``) was told ``unzip store.zarr -d store.zarr``,
    which unzip refuses (that path is the zip), and a path holding a space was given unquoted."""
    import shlex
    import zipfile

    path = tmp_path / "run.zarr"
    StoreWriter(path, ENCODER, thumbnail_size=4).close()
    (tmp_path / "my runs").mkdir()
    for name, folder in (("store.zarr", "store-unzipped.zarr"), ("flat.zip", "flat.zarr")):
        zipped = tmp_path / "my runs" / name
        with zipfile.ZipFile(zipped, "w") as archive:  # cd run.zarr && zip -r ../NAME .
            for file in path.rglob("*"):
                archive.write(file, file.relative_to(path))
        with pytest.raises(StoreFormatError) as said:
            StoreReader(zipped)
        command = re.search(r"\(unzip (.*)\) and point at that$", str(said.value)).group(1)
        assert shlex.split(command) == [str(zipped), "-d", str(zipped.parent / folder)]


def test_a_new_store_inside_another_is_refused(tmp_path, monkeypatch):
    """``watch --store run.zarr/new.zarr`` (a path completed one folder too far) made a store
    inside the other: every plain reader listing run.zarr's groups then met a foreign one."""
    StoreWriter(tmp_path / "run.zarr", ENCODER, thumbnail_size=4).close()
    for inside in ("new.zarr", "samples/new.zarr"):
        with pytest.raises(StoreFormatError, match=re.escape(f"run.zarr/{inside}: is inside the evowatch store "
                                                             f"{tmp_path / 'run.zarr'}; choose a --store path outside it")):
            StoreWriter(tmp_path / "run.zarr" / inside, ENCODER)
    monkeypatch.chdir(tmp_path / "run.zarr")
    with pytest.raises(StoreFormatError, match="new.zarr: is inside the evowatch store"):
        StoreWriter("new.zarr", ENCODER)
    assert sorted(zarr.open_group(str(tmp_path / "run.zarr"), mode="r").group_keys()) == [
        "alerts", "checkpoints", "layout", "samples", "warnings"]
    StoreWriter(tmp_path / "beside.zarr", ENCODER).close()  # beside it: a store as any


def test_a_path_out_of_a_store_through_dot_dot_is_not_inside_it(tmp_path, monkeypatch):
    """``watch --store ../new.zarr`` run in a store's folder, or ``--store run.zarr/../new.zarr``, was
    refused as inside the store, and ``info ../typo.zarr`` named it as a part of it: the path's
    folders were taken as spelled, the store among them, though ``..`` leaves it."""
    from stores.zarr_store import is_store

    StoreWriter(tmp_path / "run.zarr", ENCODER, thumbnail_size=4).close()
    StoreWriter(tmp_path / "run.zarr" / ".." / "beside.zarr", ENCODER).close()
    monkeypatch.chdir(tmp_path / "run.zarr" / "samples")
    StoreWriter("../../next.zarr", ENCODER).close()
    with pytest.raises(StoreFormatError, match=r"^\.\./\.\./typo\.zarr: no such store"):
        StoreReader("../../typo.zarr")
    with pytest.raises(StoreFormatError, match="new.zarr: is inside the evowatch store"):  # still refused
        StoreWriter("../new.zarr", ENCODER)
    assert is_store(tmp_path / "beside.zarr") and is_store(tmp_path / "next.zarr")


def test_missing_and_foreign_stores_give_one_line(tmp_path):
    from stores import format as fmt

    with pytest.raises(StoreFormatError, match="no such store"):
        StoreReader(tmp_path / "nope.zarr")
    (tmp_path / "dir").mkdir()
    with pytest.raises(StoreFormatError, match="not a Zarr v3 store") as refused:
        StoreReader(tmp_path / "dir")
    assert "it holds" not in str(refused.value)
    StoreWriter(tmp_path / "dir" / "run.zarr", ENCODER, thumbnail_size=4).close()
    with pytest.raises(StoreFormatError, match=r"created \(it holds run.zarr\)$"):  # round AQ: `view live`
        StoreReader(tmp_path / "dir")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(StoreFormatError, match="not an evowatch store .*; choose another store$"):
        StoreReader(tmp_path / "other.zarr")  # `info STORE`, `view STORE`: no --store option there
    damaged = tmp_path / "damaged.zarr"  # round AJ: a root without its commit point crashed info and export
    zarr.open_group(str(damaged), mode="w").update_attributes({"evowatch": {"schema": fmt.SCHEMA,
                                                                           "version": fmt.SCHEMA_VERSION}})
    with pytest.raises(StoreFormatError, match=r"damaged.zarr: its commit point \(root attribute 'committed'\) is "
                                               "missing or damaged; restore the folder or start a new --store"):
        StoreReader(damaged)
    zarr.open_array(str(tmp_path / "arr.zarr"), mode="w", shape=(3,), dtype="i4")  # round AF: "unreadable ...,
    with pytest.raises(StoreFormatError, match=r"arr.zarr: not an evowatch store \(a Zarr array\); choose another"):
        StoreReader(tmp_path / "arr.zarr")  # restore the folder"
    (tmp_path / "notempty").mkdir()
    (tmp_path / "notempty/notes.txt").write_text("mine")
    with pytest.raises(StoreFormatError, match="exists and is not an evowatch store; choose another --store path$"):
        StoreWriter(tmp_path / "notempty", ENCODER)
    assert (tmp_path / "notempty/notes.txt").read_text() == "mine"
    with pytest.raises(StoreFormatError, match=r"choose another --store path \(it holds run.zarr\)$"):  # round AS
        StoreWriter(tmp_path / "dir", ENCODER)  # the folder of a store given for it: a new store is not what was meant


def test_a_file_given_as_the_store_is_named_a_file_not_pieces_of_a_store(tmp_path, rng):
    """`watch --store notes.txt` said the file "holds pieces of an evowatch store without its
    zarr.json (a store moved or deleted while written ...): restore the store, or remove the
    folder": os.walk finds nothing in a file. A zip of a store is named as one (unzip it)."""
    import zipfile

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreFormatError, match=r"notes.txt: is a file, not a store folder; choose another --store path"):
        StoreWriter(tmp_path / "notes.txt", ENCODER)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(1, "c1", "h1") as tx:
            add_rows(tx, 2, rng)
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as archive:
        for file in (tmp_path / "s.zarr").rglob("*"):
            archive.write(file, file.relative_to(tmp_path / "s.zarr"))
    with pytest.raises(StoreFormatError, match=r"s.zip: is a zip archive of a store; unzip it"):
        StoreWriter(tmp_path / "s.zip", ENCODER)


def test_a_damaged_or_missing_array_metadata_file_is_one_line_naming_it(tmp_path, rng, caplog):
    """A truncated or deleted array ``zarr.json`` (a copy cut short, a bad sync): the reader and
    the writer name that file and leave every other file as it was."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h100") as tx:
            add_rows(tx, 5, rng)
    meta = path / "checkpoints" / "step" / "zarr.json"
    meta.write_text(meta.read_text()[:40])
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file() and p.name != "writer.lock"}
    with pytest.raises(StoreFormatError, match=f"^{meta}: unreadable array metadata .*JSONDecodeError.*restore") as error:
        StoreWriter(path, ENCODER)
    assert "\n" not in str(error.value) and not caplog.records  # no second message from closing
    with pytest.raises(StoreFormatError, match=f"^{meta}: unreadable array metadata"):
        StoreReader(path).checkpoints()
    assert {p: p.read_bytes() for p in before} == before

    (path / "samples" / "step" / "zarr.json").unlink()
    with pytest.raises(StoreFormatError, match="samples/step/zarr.json: missing array metadata; restore"):
        StoreReader(path).samples("step")


WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from stores.zarr_store import StoreWriter
    rng = np.random.default_rng(1)
    with StoreWriter(sys.argv[1], {"identity": "test:8", "dim": 8}, thumbnail_size=4) as store:
        step = store.n_checkpoints
        while True:
            with store.checkpoint(step, f"step_{step}", f"h{step}") as tx:
                for _ in range(4):
                    v = rng.normal(size=(300, 8)).astype(np.float32)
                    tx.add(v, range(300), [None] * 300, np.zeros((300, 4, 4, 3), np.uint8), ["p"] * 300)
                    time.sleep(0.01)
            print(step, flush=True)
            step += 1
""")


def test_kill_9_mid_write_loses_and_repeats_nothing(tmp_path, caplog):
    store_path = tmp_path / "s.zarr"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(store_path)], stdout=subprocess.PIPE, env=env, text=True)
    reader_rows = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line and int(line) >= 3:
            break
        if (store_path / "zarr.json").exists():
            reader = StoreReader(store_path)
            n = reader.n_rows
            steps = reader.samples("step")
            reader_rows.append((n, len(steps)))
    time.sleep(0.05)  # land inside the next checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader = StoreReader(store_path)
    committed = reader.n_rows
    ckpt = reader.checkpoints()
    assert committed == 1200 * reader.n_checkpoints
    assert ckpt["row_stop"].tolist() == [1200 * (i + 1) for i in range(reader.n_checkpoints)]
    # A reader never sees rows past the committed count.
    assert all(n == seen for n, seen in reader_rows)
    # Restart: rolled back to the commit point, then ingest continues without duplicates.
    with caplog.at_level("WARNING", logger="stores.zarr_store"), StoreWriter(store_path, {"identity": "test:8", "dim": 8}) as store:
        assert "the last write was interrupted" in caplog.text
        assert zarr.open_array(str(store_path / "samples/embedding"), mode="r").shape[0] == committed
        with store.checkpoint(99, "step_99", "h99") as tx:
            tx.add(np.ones((2, 8), np.float32), [0, 1], [None, None], np.zeros((2, 4, 4, 3), np.uint8), ["a", "b"])
    reader = StoreReader(store_path)
    assert reader.n_rows == committed + 2
    sources = reader.checkpoints()["source"].tolist()
    assert len(sources) == len(set(sources))


def test_plain_zarr_reader_without_evowatch(tmp_path, rng):
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(5, "step_5", "h") as tx:
            add_rows(tx, 6, rng, label="dog")
    code = textwrap.dedent(f"""
        import sys, json, zarr, numpy as np
        assert not any(m.startswith(("engine", "stores", "viewer")) for m in sys.modules)
        root = zarr.open_group({str(tmp_path / 's.zarr')!r}, mode="r")
        n = root.attrs["committed"]["rows"]
        emb = root["samples/embedding"][:n].astype(np.float32)
        labels = [root.attrs["labels"][c] for c in root["samples/label"][:n]]
        kinds = [root.attrs["kinds"][c] for c in root["samples/kind"][:n]]
        print(json.dumps({{"n": int(n), "shape": list(emb.shape), "labels": labels[:2], "kinds": kinds[:1],
                          "steps": root["samples/step"][:n].tolist()[:1], "arrays": len(root.attrs["arrays"])}}))
    """)
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    got = json.loads(out.stdout)
    assert got == {"n": 6, "shape": [6, 8], "labels": ["dog", "dog"], "kinds": ["generated"], "steps": [5],
                   "arrays": got["arrays"]}
    assert got["arrays"] >= 15


def test_steps_measured_again_together_keep_every_new_value(tmp_path):
    """Round AJ: steps 200 and 400 measured again in one pass (rows apart) were written a run
    of rows at a time, all at once, onto each column's one chunk: the writes raced, and a
    step kept its earlier values in some columns (a collapse read as healthy), a new step
    NaN or step 0 in others. Every pass here must leave each row all new."""
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        store.write_steps_metrics([(step, {"vendi": 10.0, "fd": 0.3, "recall": 1.0}, [i, 32])
                                   for i, step in enumerate((100, 200, 300, 400))])
        for again in range(1, 9):
            rows = [(200, {"vendi": again, "fd": again, "recall": -again}, [10 + again, 32]),
                    (400, {"vendi": 2 * again, "fd": 2 * again, "recall": -2 * again}, [20 + again, 32]),
                    (500 + again, {"vendi": 3 * again, "fd": 3 * again}, [30 + again, 32])]
            store.write_steps_metrics(rows)
            table = StoreReader(tmp_path / "s.zarr").step_metrics()
            by_step = {int(s): i for i, s in enumerate(table["step"])}
            assert sorted(by_step) == [100, 200, 300, 400] + [500 + k for k in range(1, again + 1)]
            for step, values, _ in rows:
                assert {k: table[k][by_step[step]] for k in values} == values
            assert table["vendi"][by_step[300]] == 10.0 and np.isnan(table["recall"][by_step[500 + again]])


def test_metric_tables(tmp_path, rng):
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(5, "step_5", "h") as tx:
            add_rows(tx, 6, rng)
        store.write_step_metrics(5, {"vendi": 3.5})
        store.write_step_metrics(10, {"vendi": 2.0, "fd": 1.5})
        store.write_step_metrics(5, {"fd": 0.5})  # measured again: its row replaced, not merged
        store.write_sample_metric("nn_train_distance", 2, np.arange(4, dtype=np.float32))
        store.write_scalars({"step": np.array([1, 2]), "loss_d": np.array([0.5, 0.4])})
    reader = StoreReader(tmp_path / "s.zarr")
    table = reader.step_metrics()
    assert table["step"].tolist() == [5, 10]
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")  # round AJ: "metrics column fd" said nothing
    assert root["metrics/fd"].attrs["description"].startswith("per-step metric 'fd' over the step's current generated")
    assert root["scalars/loss_d"].attrs["description"] == ("trainer scalar 'loss_d' read from the run's logs, at the "
                                                           "steps in scalars/step")
    assert "row-aligned with samples/" in root["sample_metrics/nn_train_distance"].attrs["description"]
    assert np.isnan(table["vendi"][0]) and table["vendi"][1] == 2.0 and table["fd"].tolist() == [0.5, 1.5]
    got = reader.sample_metric("nn_train_distance")
    assert np.isnan(got[:2]).all() and got[2:].tolist() == [0, 1, 2, 3]
    assert reader.scalars()["loss_d"].tolist() == [0.5, 0.4]
    assert reader.sample_metric("absent").shape == (6,)
    summary = reader.info()
    assert summary["metric_steps"] == 2 and summary["latest_metrics"] == {"step": 10, "vendi": 2.0, "fd": 1.5}
    assert summary["scalars"] == ["loss_d"]


def test_metric_tables_grow_ahead_while_written_and_end_at_their_commit_points(tmp_path, rng, caplog):
    """A backlog's metrics resized and NaN-filled every column at every write (half a second a
    write at 1,000 steps): they grow by whole chunks now, per-sample metrics of several steps in
    one write; a closed store's tables end at their commit points, as its sample arrays do."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(5, "step_5", "h") as tx:
            add_rows(tx, 12, rng)
        store.write_steps_metrics([(5, {"fd": 1.0}, None), (10, {"fd": 2.0}, None)])
        store.write_sample_metrics({"near_copy": [(0, np.ones(3, np.float32)), (8, np.full(2, 2, np.float32))]})
        store.write_sample_metrics({"near_copy": [(4, np.full(2, 3, np.float32))]})  # between: the rest kept
        assert zarr.open_array(str(path / "metrics" / "fd"), mode="r").shape[0] > 2  # grown ahead while open
        assert zarr.open_array(str(path / "sample_metrics" / "near_copy"), mode="r").shape[0] > 10
        got = StoreReader(path).sample_metric("near_copy")
        np.testing.assert_array_equal(got, [1, 1, 1, np.nan, 3, 3, np.nan, np.nan, 2, 2, np.nan, np.nan])
        store.write_steps_metrics([(15, {"fd": 3.0, "vendi": 4.0}, None)])  # a new column joins: NaN before
    assert zarr.open_array(str(path / "metrics" / "fd"), mode="r").shape == (3,)
    assert zarr.open_array(str(path / "sample_metrics" / "near_copy"), mode="r").shape == (10,)
    table = StoreReader(path).step_metrics()
    assert table["step"].tolist() == [5, 10, 15] and table["fd"].tolist() == [1.0, 2.0, 3.0]
    assert np.isnan(table["vendi"][:2]).all() and table["vendi"][2] == 4.0
    with caplog.at_level("WARNING"), StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.write_sample_metrics({"near_copy": [(10, np.zeros(2, np.float32))]})
    assert "interrupted" not in caplog.text  # a clean close left nothing to cut
    np.testing.assert_array_equal(StoreReader(path).sample_metric("near_copy")[8:], [2, 2, 0, 0])


def test_a_metrics_write_reads_back_only_the_rows_it_keeps_between(tmp_path, rng, monkeypatch):
    """Round BD: each step's row was read back from every metric column before it was written
    (33 columns: a third of the write of a live watch's new step); read only where a row is
    kept between those written."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.write_steps_metrics([(5, {"fd": 1.0, "vendi": 2.0}, None), (10, {"fd": 2.0}, None), (15, {"fd": 3.0}, None)])
        read = []
        getitem = zarr.Array.__getitem__
        monkeypatch.setattr(zarr.Array, "__getitem__", lambda self, key: read.append((str(self.store_path).rsplit("/", 1)[-1], key)) or
                            getitem(self, key))
        store.write_steps_metrics([(20, {"fd": 4.0, "vendi": 5.0}, None)])  # a new step
        store.write_steps_metrics([(10, {"fd": 6.0}, None)])  # one measured again
        assert read == [("step", slice(None, 3)), ("step", slice(None, 4))]  # where each step's row is
        store.write_steps_metrics([(5, {"fd": 7.0}, None), (15, {"fd": 8.0}, None)])  # 10's row kept between
        assert sorted(name for name, _ in read[2:]) == ["fd", "step", "step", "vendi"]
    table = StoreReader(path).step_metrics()
    assert table["step"].tolist() == [5, 10, 15, 20] and table["fd"].tolist() == [7.0, 6.0, 8.0, 4.0]
    np.testing.assert_array_equal(table["vendi"], [np.nan, np.nan, np.nan, 5.0])


def test_a_plain_reader_sees_each_commit_point_move_in_one_write(tmp_path, rng, monkeypatch):
    """attrs.update wrote zarr.json once per key: a reader saw a metrics commit without its
    'measured' entry, and the scalars table empty (committed_rows 0) while it was rewritten."""
    import zarr.storage._local as local

    written: list[tuple[str, dict]] = []
    put = local._put

    def noting(path, value, *args, **kwargs):
        if path.name == "zarr.json" and path.parent.name in ("s.zarr", "metrics", "scalars"):
            written.append((path.parent.name, json.loads(value.to_bytes()).get("attributes", {})))
        return put(path, value, *args, **kwargs)

    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        store.write_scalars({"step": np.array([1, 2]), "loss_d": np.array([0.5, 0.4])})
        monkeypatch.setattr(local, "_put", noting)
        with store.checkpoint(5, "step_5", "h") as tx:
            add_rows(tx, 6, rng, label="new label")
        store.write_step_metrics(5, {"vendi": 3.5}, measured=[0, 6])
        store.write_scalars({"step": np.array([1, 2]), "loss_d": np.array([0.5, 0.4])})  # unchanged
        store.write_scalars({"step": np.array([1, 2, 3]), "loss_d": np.array([0.5, 0.4, 0.3])})
    roots = [a for g, a in written if g == "s.zarr" and a["committed"]["rows"] == 6]
    assert roots and roots[0]["labels"] == ["new label"]  # the labels arrive with the rows
    metrics = [a for g, a in written if g == "metrics" and a.get("committed_rows")]
    assert metrics == [{"committed_rows": 1, "measured": {"5": [0, 6]}}]
    assert [a["committed_rows"] for g, a in written if g == "scalars"] == [3]


def test_a_rewritten_scalars_table_is_never_read_torn(tmp_path, monkeypatch):
    """Round AQ: a log rewritten (a trainer restarted with a fresh losses.jsonl) was written
    over the old rows column by column under an unchanged commit point: a live reader took
    loss_d from the new log, loss_g from the old. The commit point moves back to the first row
    that changes (not to 0 when the log only grew), and new columns show their rows whole."""
    import zarr.storage._local as local

    path = tmp_path / "s.zarr"
    steps = np.arange(6)
    seen: list[tuple[int, ...]] = []
    put = local._put

    def read_as_a_reader(at, value, *args, **kwargs):  # a plain reader's view after each file written
        out = put(at, value, *args, **kwargs)
        if "scalars" in at.parts:
            root = zarr.open_group(str(path), mode="r")
            n = root["scalars"].attrs.get("committed_rows", 0)
            if n and "loss_g" in root["scalars"]:
                d, g = root["scalars/loss_d"][:n], root["scalars/loss_g"][:n]
                scale = np.concatenate([d[1:] / steps[1:n], (g[1:] - 0.5) / steps[1:n]])
                seen.append((n, *{round(float(x)) for x in scale}))
        return out

    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.write_scalars({"step": steps, "loss_d": 1.0 * steps, "loss_g": 1.0 * steps + 0.5})
        monkeypatch.setattr(local, "_put", read_as_a_reader)
        store.write_scalars({"step": steps, "loss_d": 1.0 * steps, "loss_g": 1.0 * steps + 0.5,
                             "lr": np.full(6, 2e-4)})  # a new column only: no row changes
        assert all(n == 6 for n, *_ in seen)
        seen.clear()
        store.write_scalars({"step": steps, "loss_d": 2.0 * steps, "loss_g": 2.0 * steps + 0.5, "lr": np.full(6, 2e-4)})
    assert seen and all(len(scales) <= 1 for _, *scales in seen), seen  # each read one log's rows
    assert StoreReader(path).scalars()["loss_g"].tolist() == (2.0 * steps + 0.5).tolist()
    # round AR: back to the same count, a reader comparing counts alone saw nothing: rewrites counts
    assert zarr.open_group(str(path), mode="r")["scalars"].attrs["rewrites"] == 1
    monkeypatch.undo()
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:  # round AR: a log that loses a column, then gets
        more = np.arange(8)  # it back, ended every later watch ("operands could not be broadcast")
        store.write_scalars({"step": more, "loss_d": 3.0 * more})
        assert np.isnan(StoreReader(path).scalars()["loss_g"]).all()  # not the abandoned run's values
        store.write_scalars({"step": more, "loss_d": 3.0 * more, "loss_g": np.r_[np.full(6, np.nan), 1.0, 2.0]})
    scalars = StoreReader(path).scalars()
    assert scalars["loss_d"].tolist() == (3.0 * more).tolist() and scalars["loss_g"][-2:].tolist() == [1.0, 2.0]
    assert np.isnan(scalars["lr"]).all() and len(scalars["lr"]) == 8
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:  # round AT: the table as this writer left it is
        shutil.copytree(path / "scalars", tmp_path / "snapshot")  # kept, not read back each pass: files put back
        store.write_scalars({"step": more, "loss_d": 4.0 * more})  # under it were trusted stale for good
        shutil.rmtree(path / "scalars")
        shutil.copytree(tmp_path / "snapshot", path / "scalars")
        store.write_scalars({"step": more, "loss_d": 4.0 * more})
        assert StoreReader(path).scalars()["loss_d"].tolist() == (4.0 * more).tolist()


def test_a_new_per_sample_metric_has_its_commit_point_from_its_first_write(tmp_path, rng, monkeypatch):
    """Round AQ: a per-sample metric's array was made, then given ``committed_rows``: a live
    reader reading ``attrs["committed_rows"]`` as store.md says got a KeyError in between."""
    import zarr.storage._local as local

    written: list[dict] = []
    put = local._put

    def noting(path, value, *args, **kwargs):
        if path.name == "zarr.json" and path.parent.name == "near_copy":
            written.append(json.loads(value.to_bytes()).get("attributes", {}))
        return put(path, value, *args, **kwargs)

    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(5, "step_5", "h") as tx:
            add_rows(tx, 6, rng)
        monkeypatch.setattr(local, "_put", noting)
        store.write_sample_metric("near_copy", 0, np.ones(6, np.float32))
    assert written and all("committed_rows" in attributes for attributes in written)
    assert written[-1]["committed_rows"] == 6


def test_a_plain_reader_never_sees_a_rewritten_checkpoint_current_twice_or_not_at_all(tmp_path, rng, monkeypatch):
    """checkpoints/superseded was set after the commit point moved: a plain reader polling a live
    watch saw both versions of a rewritten checkpoint current (18 of 7,290 polls). superseded_by
    is written before the commit, and read against the reader's own count."""
    import shutil

    path = tmp_path / "s.zarr"

    def plain_current() -> list[int]:
        root = zarr.open_group(str(path), mode="r")
        c = root.attrs["committed"]["checkpoints"]
        by = root["checkpoints/superseded_by"][:c]
        return np.flatnonzero((by < 0) | (by >= c)).tolist()

    seen = []
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(5, "step_5", "h1") as tx:
            add_rows(tx, 3, rng)
        commit = StoreWriter._update_root

        def read_around_the_commit(self, changes):
            if "committed" in changes:
                seen.append(plain_current())
            commit(self, changes)
            if "committed" in changes:
                seen.append(plain_current())

        monkeypatch.setattr(StoreWriter, "_update_root", read_around_the_commit)
        with store.checkpoint(5, "step_5", "h2") as tx:
            add_rows(tx, 3, rng)
    assert seen == [[0], [1]]
    # a store written before superseded_by (schema version 1): read from `superseded`, added
    # when next written, and the store is of this version (3: alerts in their arrays) from then on
    shutil.rmtree(path / "checkpoints" / "superseded_by")
    root = zarr.open_group(str(path), mode="r+")
    root.update_attributes({"evowatch": {**root.attrs["evowatch"], "version": 1}})
    assert StoreReader(path).checkpoints()["superseded_by"].tolist() == [1, -1]  # the next reading of its source
    assert StoreReader(path).current_rows().tolist() == [False] * 3 + [True] * 3
    assert StoreReader(path).attrs["evowatch"]["version"] == 1  # reading changes nothing
    StoreWriter(path, ENCODER, thumbnail_size=4).close()
    assert zarr.open_array(str(path / "checkpoints" / "superseded_by"), mode="r")[:].tolist() == [1, -1]
    assert zarr.open_group(str(path), mode="r").attrs["evowatch"]["version"] == 3


def test_a_folder_renamed_onto_a_deleted_checkpoints_name_is_its_replacement(tmp_path, rng):
    """Round AQ: step_200/ deleted, tmp-step_200/ written then renamed step_200/: the first
    reading of step_200 was given checkpoint 0 (step 100's) as its replacement."""
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        for step, source, digest in ((100, "step_100", "a"), (200, "step_200", "b"), (200, "tmp-step_200", "c")):
            with store.checkpoint(step, source, digest) as tx:
                add_rows(tx, 2, rng)
        store.rename_source("tmp-step_200", "step_200")
        with store.checkpoint(200, "step_200", "d") as tx:
            add_rows(tx, 2, rng)
        assert store.checkpoints()["superseded_by"].tolist() == [-1, 2, 3, -1]
    with StoreWriter(tmp_path / "r.zarr", ENCODER, thumbnail_size=4) as store:  # round AR: a --real set replaced
        for source, kind in (("real:/a", "real"), ("holdout:/h", "holdout"), ("real:/b", "real")):
            with store.checkpoint(-1, source, source, kind=kind) as tx:
                add_rows(tx, 2, rng)
    shutil.rmtree(tmp_path / "r.zarr" / "checkpoints" / "superseded_by")  # as a store made before it
    assert StoreReader(tmp_path / "r.zarr").checkpoints()["superseded_by"].tolist() == [2, -1, -1]  # not the holdout


@pytest.mark.parametrize("named", [0, 1])
def test_a_replacement_that_is_no_later_checkpoint_is_repaired_to_the_next_reading(tmp_path, rng, named):
    """A ``superseded_by`` naming the checkpoint itself or an earlier one (round AQ's evowatch wrote
    checkpoint 0 as a replacement) is no replacement: the next writer names the next reading of
    its source, as a plain reader following it expects."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step, digest in ((100, "a"), (200, "b"), (200, "c")):
            with store.checkpoint(step, f"step_{step}", digest) as tx:
                add_rows(tx, 2, rng)
    zarr.open_array(str(path / "checkpoints" / "superseded_by"), mode="r+")[1] = named
    with StoreWriter(path, ENCODER, thumbnail_size=4):
        pass
    assert zarr.open_array(str(path / "checkpoints" / "superseded_by"), mode="r")[:].tolist() == [-1, 2, -1]


def test_an_evowatch_that_knows_only_older_versions_refuses_a_newer_store(tmp_path, rng, monkeypatch):
    """Round AF: an evowatch of before superseded_by appended checkpoints to a newer store
    without it, and the documented plain reader indexed past the array (IndexError). The format
    is version 3 now (alerts in their arrays: one of version 2 would write them into the root
    attributes, where no reader of a 3 looks); what an older evowatch does with it is what this
    one does with a 4."""
    from stores import format as fmt

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(5, "step_5", "h1") as tx:
            add_rows(tx, 3, rng)
    assert StoreReader(path).attrs["evowatch"]["version"] == 3
    monkeypatch.setattr(fmt, "SUPPORTED_VERSIONS", (1, 2))
    for opened in (lambda: StoreReader(path), lambda: StoreWriter(path, ENCODER, thumbnail_size=4)):
        with pytest.raises(StoreFormatError, match="store schema version 3 is not supported by this evowatch .*; "
                                                   "upgrade evowatch"):
            opened()


def test_a_chunk_damaged_on_disk_is_one_line_naming_the_array(tmp_path, rng, capsys):
    """A chunk file overwritten on disk: `export --embeddings` and `layout --full` ended in a
    traceback (RuntimeError: Zstd decompression error)."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(5, "step_5", "h") as tx:
            add_rows(tx, 6, rng)
    chunk = next(p for p in (path / "samples" / "embedding").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(bytes(range(100)))
    with pytest.raises(StoreFormatError, match=r"s.zarr/samples/embedding: cannot be read \(.*\): the store is damaged "
                                               r"on disk; restore it from a copy, or ingest the run again"):
        StoreReader(path).samples("embedding")
    capsys.readouterr()
    assert main(["export", str(path), "--embeddings"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "the store is damaged on disk" in err


def test_a_store_name_near_the_file_name_limit_is_created(tmp_path, rng):
    """A 241-character store name failed with "File name too long" on its staging folder
    (``.NAME.creating-PID``), a name the user never chose."""
    path = tmp_path / ("r" * 236 + ".zarr")
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(5, "step_5", "h") as tx:
            add_rows(tx, 2, rng)
    assert StoreReader(path).n_rows == 2 and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_group_commit_of_deferred_checkpoints(tmp_path, rng):
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step, label in ((1, "a"), (2, "b")):
            with store.checkpoint(step, f"c{step}", f"h{step}", defer=True) as tx:
                add_rows(tx, 5, rng, label=label)
                tx.skip(f"bad{step}.png", "truncated")
        assert StoreReader(path).n_rows == 0          # waiting in memory: nothing visible yet
        with pytest.raises(RuntimeError):
            with store.checkpoint(3, "c3", "h3") as tx:
                add_rows(tx, 5, rng, label="c")
                raise RuntimeError("decoder crashed")
        # The failure kept the complete, waiting checkpoints and dropped the broken one.
        reader = StoreReader(path)
        assert reader.n_rows == 10 and reader.info()["steps"] == [1, 2]
        assert reader.checkpoints()["row_stop"].tolist() == [5, 10]
        assert [reader.labels[c] for c in reader.samples("label")] == ["a"] * 5 + ["b"] * 5
        assert reader.warnings()["checkpoint"].tolist() == [0, 1]
        with store.checkpoint(3, "c3", "h3", defer=True) as tx:
            add_rows(tx, 5, rng, label="c")
        store.commit_pending()
    reader = StoreReader(path)
    assert reader.n_rows == 15 and reader.samples("step").tolist() == [1] * 5 + [2] * 5 + [3] * 5


def test_an_array_added_beside_committed_rows_reads_whole_to_a_live_reader(tmp_path, rng, monkeypatch):
    """Round BE: a metric or loss column that appears late (a label first seen at step 200, a new
    loss in the log) and the latents of a checkpoint after one without were made empty and grown
    after: a plain reader between the two found a column shorter than its committed rows (1 of about
    40 new labels' columns in a live watch; the viewer's table, cut to the rows every column holds,
    to none), then 0.0 where NaN is stored. Each state a reader can meet is read here."""
    path = tmp_path / "s.zarr"
    seen: list[tuple[str, int, np.ndarray]] = []

    def observe() -> None:  # a plain zarr reader, after each change of an array's metadata
        root = zarr.open_group(str(path), mode="r")
        for group in ("metrics", "scalars"):
            k = root[group].attrs.get("committed_rows", 0) if group in root else 0
            names = [name for name in (root[group].array_keys() if k else ()) if not name.startswith(".")]  # being made
            seen.extend((f"{group}/{name}", k, root[group][name][:k]) for name in names)
            assert StoreReader(path).missing_chunks() == []  # its chunks written before it is seen (round BK)
        if "latent" in root["samples"]:
            n = root.attrs["committed"]["rows"]
            seen.append(("samples/latent", n, root["samples/latent"][:n]))

    def observed(method):
        def call(*args, **kwargs):
            result = method(*args, **kwargs)
            observe()
            return result
        return call

    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h100") as tx:
            add_rows(tx, 5, rng)
        store.write_step_metrics(100, {"vendi": 1.0, "label_share:cat": 1.0})
        store.write_scalars({"step": np.array([0, 50]), "loss_g": np.array([2.0, 1.5])})
        monkeypatch.setattr(zarr.Group, "create_array", observed(zarr.Group.create_array))
        monkeypatch.setattr(zarr.Array, "resize", observed(zarr.Array.resize))
        with store.checkpoint(200, "step_200", "h200") as tx:
            tx.add(rng.normal(size=(3, 8)).astype(np.float32), [0, 1, 2], ["dog"] * 3, np.ones((3, 4, 4, 3), np.uint8),
                   ["0.png", "1.png", "2.png"], np.ones((3, 2), np.float32))
        store.write_step_metrics(200, {"vendi": 2.0, "label_share:cat": 0.0, "label_share:dog": 1.0})
        store.write_scalars({"step": np.array([0, 50, 100]), "loss_g": np.array([2.0, 1.5, 1.0]),
                             "loss_d": np.array([np.nan, np.nan, 0.7])})
    final = zarr.open_group(str(path), mode="r")
    added = {"metrics/label_share:dog", "scalars/loss_d", "samples/latent"}
    assert added <= {name for name, k, _ in seen if k}
    torn = [(name, k, values) for name, k, values in seen
            if not np.array_equal(values, final[name][:k], equal_nan=True)]
    assert not torn


def test_arrays_grow_ahead_but_end_at_the_commit_point_on_close(tmp_path, rng, caplog):
    """Arrays grow by whole chunks while writing (fewer metadata rewrites) and are cut on close;
    a gap in the latents (a checkpoint without them) reads as NaN, not as the fill value."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step, n, with_latents in ((1, 7, True), (2, 5, False), (3, 3, True)):
            with store.checkpoint(step, f"step_{step}", f"h{step}") as tx:
                vectors = rng.normal(size=(n, 8)).astype(np.float32)
                latents = np.full((n, 2), step, np.float32) if with_latents else None
                tx.add(vectors, list(range(n)), [None] * n, np.zeros((n, 4, 4, 3), np.uint8),
                       [f"{i}.png" for i in range(n)], latents)
        grown = zarr.open_array(str(path / "samples/step"), mode="r").shape[0]
        assert grown > 15 and StoreReader(path).samples("step").tolist() == [1] * 7 + [2] * 5 + [3] * 3
    for group, rows in (("samples", 15), ("checkpoints", 3)):
        for name in zarr.open_group(str(path / group), mode="r").array_keys():
            assert zarr.open_array(str(path / group / name), mode="r").shape[0] == rows, f"{group}/{name}"
    with caplog.at_level("WARNING", logger="stores.zarr_store"), StoreWriter(path, ENCODER, thumbnail_size=4):
        assert "interrupted" not in caplog.text  # a cleanly closed store needs no recovery
    latent = StoreReader(path).samples("latent")
    assert latent[:7].tolist() == [[1, 1]] * 7 and np.isnan(latent[7:12]).all() and latent[12:].tolist() == [[3, 3]] * 3
    # round AB: a gap at the end of a writer's rows, cut back to the commit on close and written
    # past by the next, read 0 (the fill value), not NaN
    other = tmp_path / "t.zarr"
    for steps in ((1, 2), (3,)):
        with StoreWriter(other, ENCODER, thumbnail_size=4) as store:
            for step in steps:
                with store.checkpoint(step, f"step_{step}", f"h{step}") as tx:
                    tx.add(rng.normal(size=(2, 8)).astype(np.float32), [0, 1], [None] * 2,
                           np.zeros((2, 4, 4, 3), np.uint8), ["0.png", "1.png"],
                           None if step == 2 else np.full((2, 2), step, np.float32))
    latent = StoreReader(other).samples("latent")
    assert latent[:2].tolist() == [[1, 1]] * 2 and np.isnan(latent[2:4]).all() and latent[4:].tolist() == [[3, 3]] * 2


def test_the_lock_file_sits_beside_the_store_and_exists_only_while_held(tmp_path, rng):
    """zarr warns about any file in a group it does not know ("Object at .evowatch.lock is
    not recognized as a component of a Zarr hierarchy"): a notebook listing a store during a
    live watch saw that warning while the lock file lived inside the store."""
    import warnings

    path = tmp_path / "s.zarr"
    lock = tmp_path / "s.zarr.lock"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        assert lock.read_text() == f"pid {os.getpid()}"
        with store.checkpoint(5, "step_5", "h") as tx:
            add_rows(tx, 3, rng)
        store.commit_pending()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a reader during the live watch
            names = sorted(name for name, _ in zarr.open_group(str(path), mode="r").members())
        assert names == ["alerts", "checkpoints", "layout", "samples", "warnings"]
    assert not lock.exists()
    lock.write_text("pid 999999")  # a killed writer's: harmless, taken over, removed
    StoreWriter(path, ENCODER).close()
    assert not lock.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_a_lock_taken_on_a_lock_file_just_removed_is_taken_again_on_the_new_one(tmp_path, monkeypatch):
    """Between our open() and flock() another writer closed (unlinking the file it locked)
    and a third opened a new one: the lock on the removed file excludes no one, so the
    writer retries on the file the path names now."""
    import fcntl

    from stores import lock

    path = tmp_path / "s.zarr"
    StoreWriter(path, ENCODER).close()
    real_flock, raced = fcntl.flock, []

    def flock(handle, op):
        if not raced:
            raced.append(True)
            os.unlink(tmp_path / "s.zarr.lock")
            (tmp_path / "s.zarr.lock").write_text("")
        return real_flock(handle, op)

    monkeypatch.setattr(lock.fcntl, "flock", flock)
    with StoreWriter(path, ENCODER):
        monkeypatch.setattr(lock.fcntl, "flock", real_flock)
        with pytest.raises(StoreLockedError, match="already being written"):
            StoreWriter(path, ENCODER)
    assert raced and not (tmp_path / "s.zarr.lock").exists()


def test_a_store_deleted_while_open_stops_the_writer_on_one_line_and_is_not_half_recreated(tmp_path, rng):
    """`rm -rf STORE` during a watch: zarr made a headless half store of the next chunks, and
    the watch ended with "checkpoints/step/zarr.json: missing array metadata" or a KeyError."""
    import shutil

    gone = "the store was deleted or moved while being written"
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h100") as tx:
            add_rows(tx, 3, rng)
        shutil.rmtree(tmp_path / "s.zarr")
        with pytest.raises(StoreFormatError, match=gone):
            store.committed_hashes()  # a watch pass starts here
        with pytest.raises(StoreFormatError, match=gone):
            with store.checkpoint(200, "step_200", "h200") as tx:
                add_rows(tx, 3, rng)
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "s.zarr.lock").exists()

    with pytest.raises(StoreFormatError, match=gone):  # whatever failed on reading what vanished
        with StoreWriter(tmp_path / "t.zarr", ENCODER, thumbnail_size=4):
            shutil.rmtree(tmp_path / "t.zarr")
            raise KeyError("step")


def test_pieces_of_a_store_remade_by_writes_under_way_when_it_was_moved_are_said_not_removed(tmp_path, rng):
    """Round AN: `mv STORE elsewhere` during a watch: writes under way made chunk folders and an
    array's zarr.json again at the old path, and the rerun the error asks for was refused as
    "exists and is not an evowatch store". Both lines say so; nothing is removed (round AO:
    a store being copied back looks the same, and removing it lost the copy)."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h100") as tx:
            add_rows(tx, 3, rng)
        path.rename(tmp_path / "moved.zarr")
        for piece in ("samples/embedding/c/1/0", "samples/embedding/zarr.json", "checkpoints/step/c/0"):
            (path / piece).parent.mkdir(parents=True, exist_ok=True)
            (path / piece).write_bytes(b"x")
        with pytest.raises(StoreFormatError, match=r"deleted or moved while being written; .* start a new one \(a folder "
                                                   r"is there again without the store's zarr.json: pieces writes under "
                                                   r"way made again, to remove first, or a copy not finished\)"):
            store.committed_hashes()
    assert (path / "samples" / "embedding" / "zarr.json").exists()
    with pytest.raises(StoreFormatError, match="holds pieces of an evowatch store without its zarr.json"):
        StoreWriter(path, ENCODER, thumbnail_size=4)
    (path / "notes.txt").write_text("mine")
    with pytest.raises(StoreFormatError, match="exists and is not an evowatch store"):
        StoreWriter(path, ENCODER, thumbnail_size=4)
    assert StoreReader(tmp_path / "moved.zarr").n_rows == 3
    outputs = tmp_path / "outputs"  # round AP: a folder of the user's own called pieces of a store
    (outputs / "samples").mkdir(parents=True)
    (outputs / "samples" / "0.png").write_bytes(b"png")
    with pytest.raises(StoreFormatError, match="exists and is not an evowatch store"):
        StoreWriter(outputs, ENCODER, thumbnail_size=4)


def test_a_store_path_that_cannot_be_made_is_one_line_naming_it(tmp_path):
    """A file where a folder must be: it said "[Errno 17] File exists: 'notes.txt'" alone."""
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StoreFormatError, match=r"notes.txt/s.zarr: cannot create a store there \(File exists: .*notes.txt\); "
                                               "choose another --store path"):
        StoreWriter(tmp_path / "notes.txt" / "s.zarr", ENCODER)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_lock_file_that_cannot_be_removed_does_not_hide_the_error_or_keep_the_lock(tmp_path, monkeypatch):
    """A read-only folder (a remounted disk): close() raised "Permission denied: STORE.lock"
    over the write error that ended the watch, still holding the lock."""
    real_unlink = Path.unlink

    def refusing_unlink(self, missing_ok=False):
        if self.name == "s.zarr.lock":
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refusing_unlink)
    with pytest.raises(OSError, match="the write that failed"):
        with StoreWriter(tmp_path / "s.zarr", ENCODER):
            raise OSError(30, "the write that failed")
    monkeypatch.undo()
    StoreWriter(tmp_path / "s.zarr", ENCODER).close()  # the lock was let go


def test_the_current_folder_as_store_path_is_refused_with_the_fix(tmp_path, monkeypatch):
    """`--store .` failed with "PosixPath('.') has an empty name" (its lock and staging names),
    or, in an empty folder, replaced the folder the process stood in."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreFormatError, match=r"^\.: is the current folder; name a store folder in it"):
        StoreWriter(".", ENCODER)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StoreFormatError, match=r"^\.: exists and is not an evowatch store"):
        StoreWriter(".", ENCODER)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_killed_creations_staging_folder_is_removed_by_the_next(tmp_path):
    """`kill -9` while a store was being created left `.s.zarr.creating-PID@HOST` behind for
    good; another live creator's is left alone, and so is another machine's (a shared file
    system: its PID says nothing here)."""
    import socket

    host = socket.gethostname()
    dead = [tmp_path / f".s.zarr.creating-999999999@{host}", tmp_path / ".s.zarr.creating-999999998"]
    live = [tmp_path / f".s.zarr.creating-{os.getppid()}@{host}", tmp_path / ".s.zarr.creating-999999999@node-2.hpc"]
    for folder in (*dead, *live):
        (folder / "samples").mkdir(parents=True)
    StoreWriter(tmp_path / "s.zarr", ENCODER).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["s.zarr", *(folder.name for folder in live)])


@pytest.mark.parametrize("where", ["metrics", "samples"])
def test_a_ctrl_c_while_a_write_is_prepared_leaves_no_never_awaited_warning(tmp_path, rng, monkeypatch, where):
    """Ctrl-C or SIGTERM arriving while a write's arrays are being prepared (a resize, an
    array created) dropped the writes already made: Python printed "RuntimeWarning:
    coroutine 'AsyncArray.setitem' was never awaited" on stderr after the stop (seen
    stopping a watch during its signals)."""
    import gc
    import warnings

    store = StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4)
    calls = []

    def interrupted_on_the_second(real):
        def prepare(*args, **kwargs):
            calls.append(args)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        return prepare

    name = "_ensure_column" if where == "metrics" else "_row_writes"
    monkeypatch.setattr(store, name, interrupted_on_the_second(getattr(store, name)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KeyboardInterrupt):
            if where == "metrics":
                store.write_step_metrics(5, {"vendi": 3.5, "fd": 1.0})
            else:
                with store.checkpoint(100, "step_100", "h100") as tx:
                    add_rows(tx, 10, rng)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    monkeypatch.undo()
    store.close()


def test_a_killed_process_not_yet_reaped_is_not_alive():
    """A zombie: an export or a store creation killed a moment ago, its parent not waiting
    yet; its leftovers (temporary file, staging folder) may go."""
    from stores.owner import process_alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stat = Path(f"/proc/{child.pid}/stat")
    try:
        assert process_alive(str(child.pid))
        os.kill(child.pid, signal.SIGKILL)  # not reaped: Popen waits only when asked
        deadline = time.time() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z" and time.time() < deadline:
            time.sleep(0.02)
        os.kill(child.pid, 0)  # a zombie still takes signals: the check must look further
        assert not process_alive(str(child.pid))
    finally:
        child.kill()
        child.wait()
    assert not process_alive(str(child.pid)) and not process_alive("not a pid")


def test_ctrl_c_while_the_commit_point_is_written_leaves_a_consistent_store(tmp_path, rng, monkeypatch):
    """zarr writes on its own thread: Ctrl-C raised while this one waited for the commit
    point left that write running, the writer cut its arrays back to the old commit point,
    and the new one landed after: it counted a checkpoint whose record had been cut (a
    resumed watch stored it again; seen once as 46 checkpoints' rows instead of 40)."""
    import asyncio

    real_set = zarr.storage.LocalStore.set
    interrupted = []

    async def commit_point_written_slowly(self, key, value):
        if key == "zarr.json" and not interrupted and b'"checkpoints": 2' in value.to_bytes():
            interrupted.append(key)
            os.kill(os.getpid(), signal.SIGINT)  # to the process: wakes the main thread waiting here
            await asyncio.sleep(0.3)
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", commit_point_written_slowly)
    with pytest.raises(KeyboardInterrupt):
        with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
            for step in (1, 2, 3):
                with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                    add_rows(tx, 5, rng)
    time.sleep(0.5)  # a write left running would land by now
    reader = StoreReader(tmp_path / "s.zarr")
    assert interrupted and reader.n_checkpoints == 2  # the commit under way finished; the next never began
    assert reader.checkpoints()["hash"].tolist() == ["h1", "h2"] and reader.checkpoints()["row_stop"].tolist() == [5, 10]
    assert reader.n_rows == 10 and len(reader.samples("embedding")) == 10


def _second_ctrl_c_at_the_second_commit(path: Path, rng, monkeypatch, landing_s: float) -> list:
    """Write 3 checkpoints; Ctrl-C twice while the second's commit point is written, which
    lands ``landing_s`` later in zarr's thread (a slow file system). What was interrupted."""
    import asyncio

    real_set = zarr.storage.LocalStore.set
    interrupted = []

    async def commit_point_written_slowly(self, key, value):
        if key == "zarr.json" and not interrupted and b'"checkpoints": 2' in value.to_bytes():
            interrupted.append(key)
            os.kill(os.getpid(), signal.SIGINT)  # held: the write goes on
            await asyncio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)  # asked twice: the writer stops waiting for it
            await asyncio.sleep(landing_s)
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", commit_point_written_slowly)
    with pytest.raises(KeyboardInterrupt):
        with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
            for step in (1, 2, 3):
                with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                    add_rows(tx, 5, rng)
    return interrupted


def test_a_second_ctrl_c_while_the_commit_point_is_written_leaves_it_over_whole_rows(tmp_path, rng, monkeypatch):
    """Round AV: a second Ctrl-C lets a store write go (one hung on a slow file system), but
    the write goes on in zarr's thread: the writer cut its arrays back to the old commit point
    as it closed, and the new commit point landed after, counting rows and checkpoints that
    had been cut (`info` said 512 rows over arrays of 288; a plain reader indexed past them)."""
    path = tmp_path / "s.zarr"
    interrupted = _second_ctrl_c_at_the_second_commit(path, rng, monkeypatch, 0.3)
    time.sleep(0.6)  # the write let go has landed by now
    reader = StoreReader(path)
    assert interrupted and reader.n_checkpoints == 2 and reader.n_rows == 10
    assert reader.checkpoints()["hash"].tolist() == ["h1", "h2"] and len(reader.samples("embedding")) == 10
    monkeypatch.undo()
    with StoreWriter(path, ENCODER) as store:  # the next writer cuts the capacity left past the commit point
        assert store.n_rows == 10
    assert zarr.open_array(str(path / "samples" / "step"), mode="r").shape == (10,)


def test_a_write_a_second_ctrl_c_let_go_keeps_the_lock_until_it_lands(tmp_path, rng, monkeypatch):
    """Round AW-4: a writer whose write a second Ctrl-C let go released its lock as it closed,
    while the write went on in zarr's thread (and the process waited for it as it exited): a
    watch started then opened the store, and the late commit point landed over it (its
    checkpoints counted back, or rows counted that it had cut). The lock is held until the
    write lands, then released (its file removed)."""
    path = tmp_path / "s.zarr"
    assert _second_ctrl_c_at_the_second_commit(path, rng, monkeypatch, 1.0)
    with pytest.raises(StoreLockedError):  # the write let go is still under way
        StoreWriter(path, ENCODER)
    deadline = time.monotonic() + 10
    while (tmp_path / "s.zarr.lock").exists() and time.monotonic() < deadline:  # released once it has landed
        time.sleep(0.05)
    monkeypatch.undo()
    with StoreWriter(path, ENCODER) as store:
        assert store.n_checkpoints == 2 and store.n_rows == 10
    assert not (tmp_path / "s.zarr.lock").exists()


def test_ctrl_c_while_the_alert_list_is_written_lets_it_finish(tmp_path, monkeypatch):
    """Round AU: a method put between ``@uninterrupted`` and ``_update_root`` took its guard:
    Ctrl-C during ``set_alerts`` lost the alert list (and history, the encoder's spec)."""
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        written = zarr.Group.update_attributes

        def ctrl_c_meanwhile(self, changes):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            return written(self, changes)

        monkeypatch.setattr(zarr.Group, "update_attributes", ctrl_c_meanwhile)
        with pytest.raises(KeyboardInterrupt):
            store.set_alerts([{"step": 1, "rule": "collapse", "value": 1.0, "message": "written"}])
        monkeypatch.undo()
    assert [a["message"] for a in StoreReader(tmp_path / "s.zarr").alerts()] == ["written"]


def test_a_store_write_holds_ctrl_c_to_its_end_and_a_second_one_stops_it_at_once():
    from stores.uninterrupted import uninterrupted

    before, done = signal.getsignal(signal.SIGINT), []
    with pytest.raises(KeyboardInterrupt):
        with uninterrupted:
            with uninterrupted:  # a write made of writes
                signal.raise_signal(signal.SIGINT)
                done.append("inner")
            done.append("outer")
    assert done == ["inner", "outer"] and signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt):
        with uninterrupted:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            done.append("after the second")
    assert done == ["inner", "outer"] and signal.getsignal(signal.SIGINT) is before


def test_a_store_write_holds_a_hangup_as_it_holds_sigterm():
    """Round AM: SIGHUP (a closed terminal) stopped a watch as SIGTERM does, but in the middle
    of a store write, which SIGTERM waits for: `watch --once` hung in 2 of 10 runs."""
    from engine.cli import Terminated, _stop_on_sigterm
    from stores.uninterrupted import uninterrupted

    # as a watch started from a terminal has it: under `nohup pytest` SIGHUP is ignored, and a
    # watch leaves it so (the hangup never came)
    hangup = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    restore, done = _stop_on_sigterm(), []
    try:
        with pytest.raises(Terminated) as stopped:
            with uninterrupted:
                signal.raise_signal(signal.SIGHUP)
                done.append("written")
        assert done == ["written"] and stopped.value.signum == signal.SIGHUP
    finally:
        restore()
        signal.signal(signal.SIGHUP, hangup)


@pytest.mark.parametrize("lost", ["record", "rows", "rows_to_a_checkpoint_end"])
def test_a_commit_point_past_the_rows_on_disk_goes_back_to_the_last_complete_checkpoint(tmp_path, rng, caplog, lost):
    """A store left by the Ctrl-C race above (the checkpoint table cut, the commit point
    counting it), or one that lost the end of its rows: readers indexed past the arrays and a
    resumed watch appended after rows that were not there. Rows ending exactly where a checkpoint
    does (a copy taken with an array's zarr.json from the last close, cut to its commit point)
    keep that checkpoint: it is complete."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (1, 2, 3):
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_rows(tx, 5, rng)
                tx.skip(f"bad{step}.png", "truncated")
        store.commit_layout(np.zeros((15, 2), np.float32), 0)
    if lost == "record":
        for name in StoreReader(path).checkpoints():
            zarr.open_array(str(path / "checkpoints" / name), mode="r+").resize((2,))
    else:
        zarr.open_array(str(path / "samples" / "embedding"), mode="r+").resize((12 if lost == "rows" else 10, 8))
    with caplog.at_level("WARNING"):
        with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
            assert (store.n_checkpoints, store.n_rows, store.n_warnings, store.layout_rows) == (2, 10, 2, 10)
            with store.checkpoint(3, "c3", "h3") as tx:  # ingested again
                add_rows(tx, 5, rng)
    assert "the commit point counted 3 checkpoints (15 rows) but only 2 are complete on disk" in caplog.text
    reader = StoreReader(path)
    assert reader.checkpoints()["hash"].tolist() == ["h1", "h2", "h3"] and reader.checkpoints()["row_stop"].tolist() == [5, 10, 15]
    assert len(reader.samples("embedding")) == 15 and reader.warnings()["checkpoint"].tolist() == [0, 1]


def test_a_kill_as_layout_rows_are_written_leaves_the_layouts_commit_point_before_them(tmp_path, rng):
    """The layout's commit point moves only after its rows: killed while they are written, a
    reader reads the rows laid out before, never rows that were not written."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (1, 2):
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_rows(tx, 5, rng)
        store.commit_layout(np.ones((5, 2), np.float32), 0)

    def killed_writing_the_layout() -> None:
        kill_when(zarr.Array, "__setitem__", lambda array, *_: str(array.store_path).rstrip("/").endswith("layout/xy"))
        with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
            store.commit_layout(np.full((5, 2), 2.0, np.float32), 5)

    assert killed_in_a_fork(killed_writing_the_layout) == -signal.SIGKILL
    reader = StoreReader(path)
    assert reader.layout_rows == 5 and reader.layout_xy().tolist() == [[1.0, 1.0]] * 5


def test_a_watch_going_back_to_the_last_complete_checkpoint_moves_the_layouts_commit_point_with_it(tmp_path, rng):
    """A store copied while it was written (an array's zarr.json from before it grew): a watch
    went back to the last complete checkpoint and cut ``layout/xy`` to it, but left the layout's
    commit point counting the rows cut (it was compared clamped to the moved commit point). The
    rows ingested again were never laid out, and the next watch, ``layout`` and ``export``
    refused the store: "layout/xy rows 10-14 (its zarr.json ends at row 10)"."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (1, 2, 3):
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_rows(tx, 5, rng)
        store.commit_layout(np.zeros((15, 2), np.float32), 0)
    zarr.open_array(str(path / "samples" / "step"), mode="r+").resize((12,))
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(3, "c3", "h3") as tx:  # ingested again
            add_rows(tx, 5, rng)
        assert store.layout_rows == 10  # step 3 to be laid out again
    reader = StoreReader(path)
    assert (reader.n_rows, reader.layout_rows, reader.missing_chunks()) == (15, 10, [])
    with StoreWriter(path, ENCODER, thumbnail_size=4):  # the next watch opens it
        pass


def test_layout_refuses_a_commit_point_past_the_rows_on_disk_instead_of_cutting_them(tmp_path, rng, capsys):
    """A store copied while it was written (an array's zarr.json copied before it grew, the
    root's after): ``evowatch layout`` moved the commit point back and cut every array, the
    rows no layout ingests again lost (round AY-2). It refuses, nothing changed."""
    from engine.cli import main

    path = tmp_path / "my s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (1, 2, 3):
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_rows(tx, 5, rng)
    zarr.open_array(str(path / "samples" / "step"), mode="r+").resize((12,))
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert main(["layout", str(path)]) != 0
    err = capsys.readouterr().err
    assert "the commit point counts 3 checkpoints (15 rows) but only 2 are complete on disk" in err
    assert "nothing changed: copy it again from its source" in err and len(err.strip().splitlines()) == 1
    assert f"`evowatch watch RUN_DIR --store '{path}'` goes on from those and ingests the rest again" in err
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before


def test_a_checkpoint_across_per_sample_folders_supersedes_the_earlier_readings_of_its_files():
    from stores.zarr_store import superseded_flags

    sources = ["samples/cat", "samples/cat/step_1000.png", "samples/dog/x_1000.png", "other/cat/step_1000.png",
               "samples/{sample}/step_1000.png", "samples/{sample}/step_2000.png"]
    assert superseded_flags({"source": np.array(sources)}).tolist() == [True, True, False, False, False, False]


def test_a_mount_point_as_the_store_is_one_line_naming_a_path_inside_it(tmp_path, monkeypatch):
    """Round AB: an empty mount point (a fresh `docker -v` volume) as --store failed with only
    "Device or resource busy": a store is renamed into place, which a mount point refuses."""
    mount = tmp_path / "volume"
    mount.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda path: os.fspath(path) == os.fspath(mount))
    with pytest.raises(StoreFormatError, match=r"volume: a mount point cannot become a store .* give --store a path "
                                               r"inside it, e\.g\. .*volume/run\.zarr"):
        StoreWriter(mount, ENCODER)


def test_a_tags_store_takes_its_weights_given_as_a_file_of_that_tag(tmp_path, caplog):
    """Round AC: offline, the message said to resume a store of clip:ARCH/TAG with
    --encoder clip:ARCH/TAG@FILE, and the store refused that identity: no way out."""
    tag = {"identity": "clip:ViT-B-32/openai+quickgelu", "dim": 8, "device": "cpu", "fallback": None,
           "spec": "clip:ViT-B-32/openai"}
    StoreWriter(tmp_path / "s.zarr", tag).close()
    as_file = {**tag, "identity": "clip:ViT-B-32/openai@sha256-0123456789ab+quickgelu", "spec": "clip:ViT-B-32/openai@/w.pt"}
    with caplog.at_level("INFO"):
        StoreWriter(tmp_path / "s.zarr", as_file).close()
    assert "taken for the weights of clip:ViT-B-32/openai+quickgelu" in caplog.text
    for other in ("clip:ViT-B-32/laion2b_s34b_b79k@sha256-0123456789ab", "clip:ViT-B-32/openai@sha256-0123456789ab",
                  "clip:ViT-B-32@sha256-0123456789ab+quickgelu"):
        with pytest.raises(EncoderMismatchError):
            StoreWriter(tmp_path / "s.zarr", {**as_file, "identity": other})


def test_an_array_copied_before_it_grew_is_named_as_rows_missing(tmp_path, rng, capsys):
    """A store copied while a watch wrote it can hold an array's zarr.json from before it grew
    past rows the root's (later) commit point counts: `info` showed every row, its reads stopped
    short, and `export` failed with "All arrays must be of the same length"."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (1, 2):
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_rows(tx, 5, rng)
    meta = path / "samples" / "step" / "zarr.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "shape": [5]}))
    assert StoreReader(path).missing_chunks() == ["samples/step rows 5-9 (its zarr.json ends at row 5)"]
    assert main(["export", str(path), "--out", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert ": arrays shorter than the commit point (samples/step rows 5-9 (its zarr.json ends at row 5)): the " \
           "store was copied" in err and "copy it again from its source" in err  # not "chunk files missing"
    assert err.count("\n") == 1 and not (tmp_path / "e.csv").exists()
    assert main(["info", str(path), "--json"]) == 0  # shown, with the warning
    assert json.loads(capsys.readouterr().out)["missing_chunks"] == ["samples/step rows 5-9 (its zarr.json ends at row 5)"]


def test_the_arrays_lengths_are_checked_without_opening_each_through_zarr(tmp_path, rng, monkeypatch):
    """Checking each array's length opened all 21 of them through zarr (about 1 ms each): the
    check took 18 ms where 5 ms before, and the viewer's reload of the map at each commit of a
    300-checkpoint store 65 ms where 50. Their chunk files are looked for from their zarr.json too."""
    from stores.zarr_store import reader as zs  # StoreReader._array's _open_array

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(1, "c1", "h1") as tx:
            add_rows(tx, 5, rng)
        store.commit_layout(np.zeros((5, 2), np.float32), 0)
    reader = StoreReader(path)
    opened = []
    monkeypatch.setattr(zs, "_open_array", lambda where, mode, _open=zs._open_array: opened.append(where) or _open(where, mode))
    assert reader.missing_chunks() == []
    assert opened == []


@pytest.mark.parametrize("held", [1, 2])
def test_a_metrics_column_copied_before_it_grew_is_read_to_the_rows_all_hold_and_measured_again(tmp_path, caplog, held):
    """Round BA: a store copied while a watch measured can hold a metrics column's zarr.json from
    before its last rows: `info` and the next watch failed an IndexError past the short column,
    and a row written after it would have grown it with zeros under the rows between. One row
    short (a copy taken while the last step's row was written) is the same."""
    path = tmp_path / "s.zarr"
    steps = [100, 200, 300]
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.write_steps_metrics([(step, {"vendi": float(step), "fd": 1.0}, [step, 1]) for step in steps])
    meta = path / "metrics" / "vendi" / "zarr.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "shape": [held]}))
    assert {name: list(values) for name, values in StoreReader(path).step_metrics().items()} == {
        "step": steps[:held], "vendi": [float(s) for s in steps[:held]], "fd": [1.0] * held}
    assert StoreReader(path).info()["latest_metrics"] == {"step": steps[held - 1], "vendi": float(steps[held - 1]),
                                                          "fd": 1.0}  # info's line
    assert StoreReader(path).measured_steps() == {100: [100, 1], 200: [200, 1], 300: [300, 1]}  # a reader's: as stored
    with caplog.at_level("WARNING"), StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        assert f"the metrics' commit point counted 3 steps but only {held} are complete on disk" in caplog.text
        assert "interrupted" not in caplog.text
        assert list(store.measured_steps()) == steps[:held]  # the others are measured again
        store.write_steps_metrics([(step, {"vendi": 2.0 * step, "fd": 2.0}, [step, 1]) for step in steps[held:]])
    table = StoreReader(path).step_metrics()
    assert list(table["step"]) == steps
    assert list(table["vendi"]) == [float(s) for s in steps[:held]] + [2.0 * s for s in steps[held:]]


def test_chunk_files_missing_under_the_commit_point_are_named_not_read_as_zeros(tmp_path, rng, capsys):
    """Round AJ: a store copied incompletely (a chunk folder not copied) exported its embeddings
    as zeros, said nothing in `info`, and a watch appended to it: zarr reads a missing chunk as
    its fill value."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (1, 2):
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_rows(tx, 5, rng)
    assert StoreReader(path).missing_chunks() == []
    for chunk in (path / "samples" / "embedding" / "c").iterdir():
        os.replace(chunk, tmp_path / "aside")
    said = r"s.zarr: chunk files missing \(samples/embedding rows 0-9; .*\): .*copy it again from its source"
    assert StoreReader(path).missing_chunks() == ["samples/embedding rows 0-9"]
    assert main(["export", str(path), "--embeddings", "--out", str(tmp_path / "e.csv")]) == 2
    assert re.search(said, capsys.readouterr().err) and not (tmp_path / "e.csv").exists()
    assert main(["info", str(path), "--json"]) == 0  # what is there is still shown, with the warning
    out, err = capsys.readouterr()
    assert json.loads(out)["missing_chunks"] == ["samples/embedding rows 0-9"] and re.search(said, err)
    with pytest.raises(StoreFormatError, match=said):
        StoreWriter(path, ENCODER, thumbnail_size=4)
    assert not (tmp_path / "s.zarr.lock").exists() and StoreReader(path).n_rows == 10  # let go, nothing cut


def test_latents_after_reference_rows_are_no_news_but_after_generated_rows_are_said(tmp_path, capsys):
    """Round BC: examples/README.md's plain loop saves latents; watched with --real (the README's
    quick start) it warned "latents appear after row 0; earlier rows have none (NaN)" at every
    new store: the earlier rows were the reference images, which never have latents."""
    from PIL import Image

    from engine.cli import main
    from engine.hooks import save_samples

    rng = np.random.default_rng(0)
    real = tmp_path / "real"
    real.mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(real / f"{i}.png")
    watch = ["-q", "watch", "--once", "--settle", "0", "--encoder", "pixels:4", "--no-layout", "--no-metrics"]
    save_samples(tmp_path / "run", 100, rng.integers(0, 256, (4, 12, 12, 3), dtype=np.uint8), latents=rng.normal(size=(4, 3)))
    assert main(watch + [str(tmp_path / "run"), "--store", str(tmp_path / "a.zarr"), "--real", str(real)]) == 0
    assert "latents" not in capsys.readouterr().err
    latent = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")["samples/latent"][:]
    assert np.isnan(latent[:8]).all() and not np.isnan(latent[8:]).any()

    save_samples(tmp_path / "late", 100, rng.integers(0, 256, (4, 12, 12, 3), dtype=np.uint8))
    save_samples(tmp_path / "late", 200, rng.integers(0, 256, (4, 12, 12, 3), dtype=np.uint8), latents=rng.normal(size=(4, 3)))
    assert main(watch + [str(tmp_path / "late"), "--store", str(tmp_path / "b.zarr"), "--real", str(real)]) == 0
    assert "b.zarr: latents appear at row 12; the 4 generated rows before have none (NaN)" in capsys.readouterr().err


def test_latents_appearing_late_are_padded_a_chunk_at_a_time(tmp_path, rng):
    """Round BG: the NaN rows before latents first appear were made in memory at once (a million
    rows of 512 latents: 2 GB); a chunk at a time, they read NaN all the same."""
    import tracemalloc

    n, width = 60_000, 256
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h1") as tx:
            add_rows(tx, n, rng)
        tracemalloc.start()
        with store.checkpoint(200, "step_200", "h2") as tx:
            vectors = rng.normal(size=(2, 8)).astype(np.float32)
            tx.add(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), [0, 1], ["cat"] * 2,
                   np.zeros((2, 4, 4, 3), np.uint8), ["a.png", "b.png"], latents=np.ones((2, width)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < n * width * 4 / 4  # padded at once: 61 MB
    latent = StoreReader(tmp_path / "s.zarr").samples("latent")
    assert latent.shape == (n + 2, width) and np.isnan(latent[:n]).all() and (latent[n:] == 1).all()


def test_the_writers_current_checkpoints_are_the_ones_superseded_flags_leaves(tmp_path, rng):
    """The signals hook takes the current checkpoints from the writer's own record, kept as it
    commits (worked out again from every source, three times a call, they were 0.1 s of each
    call at 2,000 checkpoints): the same as :func:`superseded_flags` of the committed table
    after every commit, a reopen, a rename and a --real set replaced."""
    from stores.zarr_store import superseded_flags

    sources = ["version_0", "step_5/grid_5.png", "real:/data/a", "version_0/images/e=1-s=1000", "step_5",
               "s/step1000_00.png", "s/step1000_*.png", "runs/fake@2", "samples/cat", "holdout:/data/h",
               "samples/{sample}/step_1000.png", "fake_samples_epoch_000.png", "real:/data/b", "step_5", "tmp-step_9"]
    path = tmp_path / "s.zarr"
    for part in (sources[:8], sources[8:]):  # reopened between: the record is made again from the table
        with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
            for source in part:
                kind = source.split(":")[0] if ":" in source else "generated"
                with store.checkpoint(5, source, f"h{store.n_checkpoints}", kind=kind) as tx:
                    add_rows(tx, 1, rng)
                assert store.current_checkpoints().tolist() == (~superseded_flags(store.checkpoints())).tolist()
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.rename_source("tmp-step_9", "step_5")
        assert store.current_checkpoints().tolist() == (~superseded_flags(store.checkpoints())).tolist()
        assert store.current_checkpoints().sum() == 7


ALERTS = [{"step": step, "rule": rule, "value": 0.5, "message": f"{rule} at step {step}"}
          for step in (100, 200, 300) for rule in ("collapse", "memorisation")]


def plain_alerts_of(paths: list[Path]) -> list[list[dict]]:
    """Each store's alerts as docs/store.md's plain-zarr recipe reads them, without evowatch (one
    interpreter for them all: starting one and importing zarr costs about a second)."""
    code = textwrap.dedent(f"""
        import json, math, sys, zarr
        assert not any(m.startswith(("engine", "stores", "viewer")) for m in sys.modules)

        def alerts_of(path):
            root = zarr.open_group(path, mode="r")
            if root.attrs["evowatch"]["version"] >= 3:
                a = root["alerts"].attrs
                lo, hi = a["first_row"], a["committed_rows"]
                cols = {{name: root[f"alerts/{{name}}"][lo:hi].tolist() for name in ("step", "rule", "value", "message")}}
                alerts = [dict(zip(cols, row)) for row in zip(*cols.values())]
            else:  # schema version 1 or 2: in the root attributes
                alerts = root.attrs.get("alerts", [])
            return [{{**a, "value": None if a["value"] is None or math.isnan(a["value"]) else a["value"]}} for a in alerts]
        print(json.dumps([alerts_of(path) for path in {[str(p) for p in paths]!r}]))
    """)
    return json.loads(subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


def plain_alerts(path: Path) -> list[dict]:
    """The alerts of one store as a plain-zarr reader reads them (:func:`plain_alerts_of`)."""
    return plain_alerts_of([path])[0]


def as_read_then(path: Path, copies: list[Path]) -> None:
    """A copy of the store as it is now, for :func:`plain_alerts_of` to read with the later states."""
    copies.append(path.with_name(f"{path.name}.then{len(copies)}"))
    shutil.copytree(path, copies[-1])


def as_version_2(path: Path, alerts: list[dict]) -> None:
    """The layout schema version 2 wrote (evowatch before the alerts/ arrays): no alerts/ group,
    the alert list in the root attributes, the version 2."""
    shutil.rmtree(path / "alerts")
    root = zarr.open_group(str(path), mode="r+")
    attrs = dict(root.attrs)
    attrs.update(evowatch={**attrs["evowatch"], "version": 2}, alerts=alerts,
                 arrays={k: v for k, v in attrs["arrays"].items() if not k.startswith("alerts/")})
    root.attrs.put(attrs)


def test_alerts_live_in_their_own_arrays_and_the_commit_point_stays_small(tmp_path, rng):
    """DESIGN: "per-step metrics and alerts live in their own arrays". The root attributes held
    every alert, and their zarr.json, rewritten at every commit (it holds the commit point),
    grew with the run: 958 kB at 4,000 alerts, 74 ms a commit (round BD)."""
    path = tmp_path / "s.zarr"
    many = [{"step": 500 * (k // 2 + 1), "rule": ("collapse", "memorisation")[k % 2], "value": 0.25,
             "message": "diversity fell 60% between two steps (Vendi 3.1 -> 1.2)"} for k in range(1000)]
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h1") as tx:
            add_rows(tx, 2, rng)
        before = (path / "zarr.json").stat().st_size
        store.set_alerts(many)
        with store.checkpoint(200, "step_200", "h2") as tx:
            add_rows(tx, 2, rng)
        assert (path / "zarr.json").stat().st_size < before + 100  # the commit point's digits, not the alerts
    root = zarr.open_group(str(path), mode="r")
    assert "alerts" not in root.attrs and root.attrs["evowatch"]["version"] == 3
    assert {f"alerts/{name}" for name in ("step", "rule", "value", "message")} <= set(root.attrs["arrays"])
    assert StoreReader(path).alerts() == many == plain_alerts(path)


def test_an_alert_chunk_missing_from_a_copy_is_named(tmp_path, rng):
    """A store copied incompletely read a lost chunk of the alerts as empty rules and messages
    without a word; the alert list is rows [first_row, committed_rows) of its arrays."""
    path = tmp_path / "s.zarr"
    alerts = [{"step": 100 * k, "rule": "collapse", "value": 0.5, "message": f"fell {k}"} for k in range(1100)]
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h1") as tx:
            add_rows(tx, 2, rng)
        store.set_alerts(alerts)
        store.set_alerts(alerts[:5])  # changed: written whole past the old list, rows 1100-1104
        store.set_alerts(alerts[:5] + alerts[6:1050])  # grown: appended, rows 1100-2148
    assert StoreReader(path).missing_chunks() == []
    (path / "alerts" / "message" / "c" / "1").unlink()  # rows 1024-2047
    assert StoreReader(path).missing_chunks() == ["alerts/message rows 1100-2047"]


def test_a_grown_alert_list_is_appended_and_a_changed_one_written_whole_beside_the_old(tmp_path):
    """Rows under the alerts' commit point are never rewritten: a live reader (and a kill) sees
    the old list or the new one. A new step's alerts are appended; a step measured again, or
    dropped, writes the whole list where no committed row is and moves the window to it. The
    viewer's commit key changes with each (it redraws the alerts on it)."""
    from viewer.data.commits import read_commit

    path = tmp_path / "s.zarr"

    def window() -> tuple[int, int, int]:
        attrs = zarr.open_group(str(path / "alerts"), mode="r").attrs
        return attrs["first_row"], attrs["committed_rows"], attrs["rewrites"]

    changed = [dict(a, value=float("nan"), message="again") if a["step"] == 200 else a for a in ALERTS]
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        assert store.alerts() == [] and window() == (0, 0, 0)
        steps, commits, copies, reads = [], [read_commit(path)], [], []
        for alerts, expected in ((ALERTS[:4], (0, 4, 0)),  # appended
                                 (ALERTS, (0, 6, 0)),  # appended after
                                 (changed, (6, 12, 1)),  # step 200 measured again: beside the old list
                                 (changed, (6, 12, 1)),  # the same: nothing written
                                 (changed[:2], (0, 2, 2)),  # steps dropped: before it, where it fits
                                 ([], (0, 0, 3))):
            store.set_alerts(alerts)
            assert window() == expected
            read = StoreReader(path).alerts()
            assert read == store.alerts() == [dict(a, value=None) if a["value"] != a["value"] else a for a in alerts]
            as_read_then(path, copies)
            reads.append(read)
            steps.append([a["step"] for a in read])
            commits.append(read_commit(path))
    assert zarr.open_array(str(path / "alerts" / "step"), mode="r").shape == (0,)  # cut to the commit point on close
    assert plain_alerts_of(copies) == reads
    assert steps[2] == [100, 100, 200, 200, 300, 300]
    assert [before != after for before, after in zip(commits, commits[1:])] == [True, True, True, False, True, True]


def killed_at_the_alerts_commit(path: Path, alerts: list[dict], new: list[dict], at: str = "commit") -> None:
    """A writer storing ``alerts``, then ``new``, killed as the alerts' commit point moves, or
    (``at="rows"``) as the new rows are written (in a fork)."""
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        store.set_alerts(alerts)
        if at == "commit":  # in the forked child only
            kill_when(zarr.Group, "update_attributes", lambda group, changes: str(group.store_path).rstrip("/").endswith(
                "/alerts") and "committed_rows" in changes)
        else:
            kill_when(StoreWriter, "write_columns", lambda _, group, *__: group == "alerts")
        store.set_alerts(new)


@pytest.mark.parametrize("then", ["appended", "changed"])
def test_a_kill_between_alert_rows_and_their_commit_keeps_the_old_list(tmp_path, then):
    """The rows of the new list written, the process killed before its commit point moves: a
    reader reads the old list whole, and the next writer cuts the rows and goes on."""
    path = tmp_path / "s.zarr"
    new = ALERTS + [{"step": 400, "rule": "collapse", "value": 1.0, "message": "new"}] if then == "appended" \
        else [dict(a, message="again") for a in ALERTS]
    assert killed_in_a_fork(lambda: killed_at_the_alerts_commit(path, ALERTS, new)) == -signal.SIGKILL
    assert zarr.open_array(str(path / "alerts" / "message"), mode="r").shape[0] > len(ALERTS)  # the new rows landed
    assert StoreReader(path).alerts() == ALERTS
    as_read_then(path, copies := [])
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        assert zarr.open_array(str(path / "alerts" / "message"), mode="r").shape[0] == len(ALERTS)
        assert store.alerts() == ALERTS
        store.set_alerts(new)
    assert StoreReader(path).alerts() == new
    assert plain_alerts_of([*copies, path]) == [ALERTS, new]


@pytest.mark.parametrize("then", ["appended", "changed"])
def test_a_kill_as_alert_rows_are_written_keeps_the_old_list(tmp_path, then):
    """The commit point moves only after the rows: killed while the new list's rows are written,
    a reader reads the old list, never rows that were not written."""
    path = tmp_path / "s.zarr"
    new = ALERTS + [{"step": 400, "rule": "collapse", "value": 1.0, "message": "new"}] if then == "appended" \
        else [dict(a, message="again") for a in ALERTS]
    assert killed_in_a_fork(lambda: killed_at_the_alerts_commit(path, ALERTS, new, at="rows")) == -signal.SIGKILL
    assert StoreReader(path).alerts() == ALERTS


def test_a_version_2_store_is_read_from_its_root_attributes_and_moved_to_arrays_when_written(tmp_path, rng, capsys):
    """Schema version 3 moved the alerts out of the root attributes. A version 2 store (as an
    earlier evowatch wrote it) is read as it is by info, the viewer and plain zarr, and a writer
    opening it writes the alerts/ arrays first, then the root (version 3, no attrs["alerts"])."""
    from engine.cli import main
    from viewer.data import commits, map_data

    path = tmp_path / "s.zarr"
    old = ALERTS + [{"step": 400, "rule": "convergence", "value": None, "message": "loss NaN"}]
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h1") as tx:
            add_rows(tx, 2, rng)
    as_version_2(path, old)
    reader = StoreReader(path)
    assert reader.attrs["evowatch"]["version"] == 2 and reader.alerts() == old
    as_read_then(path, copies := [])
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["alerts"] == old and info["schema_version"] == 2
    commit = commits.read_commit(path)
    assert map_data.map_data(path, commit).alerts == tuple(old)
    StoreWriter(path, ENCODER, thumbnail_size=4).close()
    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["evowatch"]["version"] == 3 and "alerts" not in root.attrs
    assert "alerts/message" in root.attrs["arrays"] and "samples/embedding" in root.attrs["arrays"]
    assert StoreReader(path).alerts() == old
    assert plain_alerts_of([*copies, path]) == [old, old]
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {**info, "schema_version": 3}  # the same summary, the version apart
    assert commits.read_commit(path) != commit and map_data.map_data(path, commits.read_commit(path)).alerts == tuple(old)


def migration_killed(path: Path) -> None:
    """A writer opening a version 2 store, killed as it writes the root (in a fork)."""
    from zarr.core.attributes import Attributes

    Attributes.put = lambda self, d: os.kill(os.getpid(), signal.SIGKILL)  # the root's one write; in the child only
    StoreWriter(path, ENCODER, thumbnail_size=4)


def test_a_migration_killed_before_the_root_is_written_leaves_a_version_2_store_moved_again(tmp_path, rng):
    """Killed once the alerts/ arrays are written but before the root says version 3: the store
    is the version 2 store it was (its alerts read from the root), and the next writer moves
    them again, once."""
    path = tmp_path / "s.zarr"
    StoreWriter(path, ENCODER, thumbnail_size=4).close()
    as_version_2(path, ALERTS)
    assert killed_in_a_fork(lambda: migration_killed(path)) == -signal.SIGKILL
    assert zarr.open_group(str(path / "alerts"), mode="r").attrs["committed_rows"] == len(ALERTS)  # written
    reader = StoreReader(path)
    assert reader.attrs["evowatch"]["version"] == 2 and reader.alerts() == ALERTS
    as_read_then(path, copies := [])
    StoreWriter(path, ENCODER, thumbnail_size=4).close()
    assert StoreReader(path).attrs["evowatch"]["version"] == 3
    assert StoreReader(path).alerts() == ALERTS
    assert plain_alerts_of([*copies, path]) == [ALERTS, ALERTS]


@pytest.mark.parametrize("group, damage", [("metrics", "missing"), ("metrics", "garbled"), ("layout", "garbled")])
def test_a_group_zarr_json_missing_or_damaged_is_named_and_nothing_is_cut(tmp_path, rng, capsys, group, damage):
    """A group's zarr.json missing beside its arrays (a copy cut short) was read as no group:
    `evowatch layout` said "the last write was interrupted" and cut the metrics arrays to no rows,
    and a watch then failed a KeyError traceback; a damaged one said only "evowatch: error:
    Invalid control character at: line 1 column 9 (char 8)", naming no file."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(1, "c1", "h1") as tx:
            add_rows(tx, 5, rng)
        store.commit_layout(np.zeros((5, 2), np.float32), 0)
        store.write_steps_metrics([(1, {"vendi": 2.0}, [0, 5])])
    meta = path / group / "zarr.json"
    meta.unlink() if damage == "missing" else meta.write_text('{"broken')
    for command in ("info", "layout"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        said = f"{meta}: {'missing' if damage == 'missing' else 'unreadable'} group metadata"
        if damage == "missing" and command == "layout":  # a writer names every metadata file missing, first
            said = f"{path}: metadata files missing ({group}/zarr.json)"
        assert err.count("\n") == 1 and said in err and ("from a copy" in err or "copy it again" in err)
    assert json.loads((path / "metrics" / "vendi" / "zarr.json").read_text())["shape"] == [1]  # not cut


def _store_with_every_table(path: Path, rng) -> None:
    """Two checkpoints with layout, per-step metrics, losses, a per-sample metric and an alert."""
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (1, 2):
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_rows(tx, 5, rng)
        store.commit_layout(np.zeros((10, 2), np.float32), 0)
        store.write_steps_metrics([(step, {"vendi": 2.0}, [step - 1, 5]) for step in (1, 2)])
        store.write_scalars({"step": np.array([1, 2]), "loss": np.array([0.5, 0.25])})
        store.write_sample_metric("nn_train_dist", 0, np.ones(10, np.float32))
        store.set_alerts([{"step": 2, "rule": "collapse", "value": 0.5, "message": "fell"}])


@pytest.fixture(scope="module")
def every_table_store(tmp_path_factory) -> Path:
    """:func:`_store_with_every_table` made once for the tests that damage a copy of it (a store
    with every table: a store creation and seven writes each)."""
    path = tmp_path_factory.mktemp("every-table") / "s.zarr"
    _store_with_every_table(path, np.random.default_rng(0))
    return path


def _files(path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("array", ["samples/embedding", "samples/thumbnail", "checkpoints/superseded_by", "layout/xy",
                                   "metrics/vendi", "scalars/loss", "sample_metrics/nn_train_dist", "warnings/path",
                                   "alerts/rule", "alerts/value"])
def test_an_arrays_zarr_json_missing_is_named_and_the_store_refused_unchanged(tmp_path, every_table_store, capsys, array):
    """Round BJ: an array's zarr.json gone from a copy was said by no one: `info` and `export`
    (which reads no embedding) showed the store as whole, the viewer drew it, and a watch made
    a missing metric column, loss or superseded_by again (a metric's old values NaN) or, for
    layout/xy, recorded itself in the store before failing. Round BP: `info` refused a store
    missing an alerts array's (the others a warning); it shows the rest and says the alerts unread."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    shutil.copytree(every_table_store, path)  # a copy: the test damages it
    (path / array / "zarr.json").unlink()
    before = _files(path)
    assert StoreReader(path).missing_chunks() == [f"{array}/zarr.json"]
    said = f"s.zarr: metadata files missing ({array}/zarr.json): the store was copied or restored incompletely; " \
           "copy it again from its source"
    assert main(["info", str(path)]) == 0  # what is there is still shown, with the warning
    out, err = capsys.readouterr()
    assert said in err
    alerts_line = [line for line in out.splitlines() if line.startswith("alerts")]
    assert alerts_line == (["alerts      not read: their arrays' metadata is missing (above)"] if array.startswith("alerts")
                           else ["alerts      1"])
    assert main(["info", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["missing_chunks"] == [f"{array}/zarr.json"]
    assert summary["alerts"] is None if array.startswith("alerts") else len(summary["alerts"]) == 1
    assert main(["export", str(path), "--out", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and not (tmp_path / "e.csv").exists()
    for ingests in (True, False):  # a watch's writer, `evowatch layout`'s
        with pytest.raises(StoreFormatError, match=re.escape(said)):
            StoreWriter(path, ENCODER, thumbnail_size=4, ingests=ingests)
    assert _files(path) == before and not (tmp_path / "s.zarr.lock").exists()


@pytest.mark.parametrize("array, rows", [("samples/thumbnail", "0-9"), ("samples/step", "0-9"), ("checkpoints/step", "0-1"),
                                         ("metrics/step", "0-1"), ("scalars/loss", "0-1"),
                                         ("sample_metrics/nn_train_dist", "0-9"), ("alerts/value", "0-0")])
def test_a_chunk_missing_under_any_commit_point_is_named_even_one_zarr_fills(tmp_path, every_table_store, capsys, array, rows):
    """Round BJ: only six arrays' chunks were looked for: a copy that lost a thumbnail chunk,
    or the metrics' steps, showed black previews and step 0 without a word. Every committed
    chunk of a store made with an id is written (write_empty_chunks), so one gone is damage."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    shutil.copytree(every_table_store, path)  # a copy: the test damages it
    chunk = next(p for p in (path / array / "c").rglob("*") if p.is_file())
    chunk.unlink()
    assert StoreReader(path).missing_chunks() == [f"{array} rows {rows}"]
    assert main(["export", str(path), "--out", str(tmp_path / "e.csv")]) == 2
    assert f"chunk files missing ({array} rows {rows}; zarr reads" in capsys.readouterr().err


def test_an_empty_chunk_file_is_named_as_missing_and_an_older_stores_fill_chunks_are_not(tmp_path, every_table_store):
    """A copy to a full disk goes on making each next file, empty (cp: "No space left on
    device"): zarr fails on it only when read, and `info` reads no embedding. A store made
    before ids (and write_empty_chunks) left out chunks of fill values: only the arrays no real
    chunk can hold fill values only are looked at there."""
    path = tmp_path / "s.zarr"
    shutil.copytree(every_table_store, path)  # a copy: the test damages it
    (path / "samples" / "embedding" / "c" / "0" / "0").write_bytes(b"")
    assert StoreReader(path).missing_chunks() == ["samples/embedding rows 0-9"]
    (path / "samples" / "embedding" / "c" / "0" / "0").unlink()
    (path / "samples" / "step" / "c" / "0").unlink()
    root = json.loads((path / "zarr.json").read_text())
    del root["attributes"]["evowatch"]["id"]
    (path / "zarr.json").write_text(json.dumps(root))
    assert StoreReader(path).missing_chunks() == ["samples/embedding rows 0-9"]


@pytest.mark.parametrize("array", ["sample_metrics/nn_train_dist", "checkpoints/superseded_by"])
def test_an_array_shorter_than_its_commit_point_is_named(tmp_path, every_table_store, capsys, array):
    """Round BJ: only the fixed arrays' lengths were compared with the commit point: a per-sample
    metric copied before it grew made `export` fail "could not broadcast input array from shape
    (5,) into shape (10,)", naming nothing, and `info` said nothing of either."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    shutil.copytree(every_table_store, path)  # a copy: the test damages it
    meta = path / array / "zarr.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "shape": [1]}))
    committed = 10 if array.startswith("sample") else 2
    entry = f"{array} rows 1-{committed - 1} (its zarr.json ends at row 1)"
    assert StoreReader(path).missing_chunks() == [entry]
    assert main(["export", str(path), "--out", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert f"arrays shorter than the commit point ({entry})" in err and err.count("\n") == 1



def killed_at_a_new_chunk(path: Path, case: str) -> None:
    """A writer killed as it writes the first chunk of a new column's rows under the commit point (in a fork)."""
    rng = np.random.default_rng(0)
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(1, "c1", "h1") as tx:
            add_latent_rows(tx, 5, case == "gap")
        for step in range(2, 40 if case == "gap" else 3):  # 2,432 rows without latents: 4 latent chunks
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_rows(tx, 64, rng)
        store.write_scalars({"step": np.array([1, 2]), "loss": np.array([0.5, 0.25])})
        set_chunk = zarr.storage.LocalStore.set

        async def set_or_die(self, key, value):  # killed as the array's next chunk is written
            if any(name in f"{self.root}/{key}" for name in ("loss_new", "latent")) and "c/" in key:
                os.kill(os.getpid(), signal.SIGKILL)
            return await set_chunk(self, key, value)
        zarr.storage.LocalStore.set = set_or_die  # in the forked child only
        if case == "loss":  # a loss the log holds from its third step on
            store.write_scalars({"step": np.array([1, 2, 3]), "loss": np.array([0.5, 0.25, 0.1]),
                                 "loss_new": np.array([np.nan, np.nan, 1.0])})
        else:  # latents from a later checkpoint on (first ones, or again after checkpoints without)
            with store.checkpoint(99, "c99", "h99") as tx:
                add_latent_rows(tx, 3)


def add_latent_rows(tx, n: int, latents: bool = True) -> None:
    """``n`` rows whose latents (512 wide: 512 rows a chunk) are all 1 (none: ``latents`` False)."""
    tx.add(np.eye(n, 8, dtype=np.float32), list(range(n)), ["cat"] * n, np.zeros((n, 4, 4, 3), np.uint8),
           [f"{i}.png" for i in range(n)], np.ones((n, 512), np.float32) if latents else None)


@pytest.mark.parametrize("case", ["loss", "latent", "gap"])
def test_a_writer_killed_writing_chunks_under_the_commit_point_leaves_a_store_it_resumes(tmp_path, case):
    """Round BK: a loss column appearing mid-run, latents from a later checkpoint on, and latents
    again after 2,432 rows without were shown (zarr.json made or resized) before their NaN chunks
    under the commit point were written: a SIGKILL between the two left those chunks missing, and
    every later watch refused the store as 'copied or restored incompletely; copy it again from
    its source' (a live reader between the two said the same). Chunks are written first."""
    path = tmp_path / "s.zarr"
    assert killed_in_a_fork(lambda: killed_at_a_new_chunk(path, case)) == -signal.SIGKILL
    assert StoreReader(path).missing_chunks() == []
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:  # resumes: the next watch goes on
        store.write_scalars({"step": np.array([1, 2, 3]), "loss": np.array([0.5, 0.25, 0.1]),
                             "loss_new": np.array([np.nan, np.nan, 1.0])})
        with store.checkpoint(99, "c99", "h99") as tx:
            add_latent_rows(tx, 3)
    reader = StoreReader(path)
    assert reader.missing_chunks() == [] and np.isnan(reader.scalars()["loss_new"][:2]).all()
    assert sorted(p.name for p in (path / "scalars").iterdir()) == ["loss", "loss_new", "step", "zarr.json"]
    latent, n = reader.samples("latent"), reader.n_rows
    with_latents = (5 if case == "gap" else 0) + 3
    assert len(latent) == n and np.isnan(latent[with_latents - 3:n - 3]).all() and (latent[n - 3:] == 1).all()
    assert (latent[:with_latents - 3] == 1).all()


def test_latents_then_rows_without_are_no_missing_chunks(tmp_path):
    """Round BK: 3,000 rows with latents grew samples/latent ahead to 3,584 rows; 6,500 rows
    without latents then put its unwritten last chunk under the commit point, and a healthy store
    was said to have 'chunk files missing (samples/latent rows 3072-3583)': every later watch
    refused it."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in range(19):
            with store.checkpoint(step, f"c{step}", f"h{step}") as tx:
                add_latent_rows(tx, 500, step < 6)
            assert StoreReader(path).missing_chunks() == [], step
    with StoreWriter(path, ENCODER, thumbnail_size=4):
        pass
    latent = StoreReader(path).samples("latent")
    assert (latent[:3000] == 1).all() and np.isnan(latent[3000:]).all() and len(latent) == 3072  # its last chunk


def test_the_store_docs_say_plain_zarr_lists_an_array_being_made(tmp_path):
    """Round BL: docs/store.md said a plain reader "may meet it for an instant"; zarr lists
    ``scalars/.loss_d.new`` as a member while it is made, and a killed watch leaves it until the
    next one: the docs tell plain readers to skip such names."""
    from stores.zarr_store import _staged_name

    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w").create_group("scalars")
    group.create_array(_staged_name("loss_d"), shape=(2,), dtype="float32")
    assert list(zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["scalars"].array_keys()) == [".loss_d.new"]
    docs = " ".join((Path(__file__).parent.parent / "docs" / "store.md").read_text().split())
    assert "`scalars/.loss_d.new`" in docs and "skip member names that start with `.`" in docs


def _drop_attribute(path: Path, group: str, key: str) -> Path:
    """``group``'s zarr.json without the attribute ``key`` (a hand edit, a copy from mixed versions)."""
    meta = path / group / "zarr.json"
    doc = json.loads(meta.read_text())
    del doc["attributes"][key]
    meta.write_text(json.dumps(doc))
    return meta


@pytest.mark.parametrize("group, key", [("alerts", "first_row"), ("alerts", "committed_rows"), ("alerts", "rewrites"),
                                        ("metrics", "committed_rows"), ("scalars", "committed_rows"),
                                        ("layout", "committed_rows")])
def test_a_group_s_count_missing_is_named_and_nothing_is_changed(tmp_path, every_table_store, capsys, group, key):
    """Round BP: a group's count missing was read as 0: `alerts` without first_row gave an earlier
    list's rows, and a watch said "the last write was interrupted", cut the metrics and measured
    again. Each is one line naming the group's zarr.json and the fix; nothing is written."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    shutil.copytree(every_table_store, path)  # a copy: the test damages it
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:  # an alert list written whole: first_row 1
        store.set_alerts([{"step": 1, "rule": "fd_rising", "value": 0.25, "message": "rose"}])
        store.write_scalars({"step": np.array([1, 2]), "loss": np.array([0.5, 0.125])})  # scalars' rewrites: 1
    meta = _drop_attribute(path, group, key)
    before = _files(path)
    said = f"{meta}: attribute '{key}' missing or not a row count (a hand edit, or a copy from mixed versions): " \
           "restore the store folder from a copy, or start a new --store"
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err
    for ingests in (True, False):  # a watch's writer, `evowatch layout`'s
        with pytest.raises(StoreFormatError, match=re.escape(said)):
            StoreWriter(path, ENCODER, thumbnail_size=4, ingests=ingests)
    assert _files(path) == before


def test_attributes_an_earlier_evowatch_did_not_write_are_read_as_docs_store_md_says(tmp_path, every_table_store):
    """What a missing count is not: a metrics or scalars group made and its first write killed (no
    attribute yet), and the keys later versions added (measured, rewrites, generation, the unsaid
    alerts, alerts_rewritten), are read as none, as before."""
    path = tmp_path / "s.zarr"
    shutil.copytree(every_table_store, path)  # a copy: the test damages it
    for group, key in [("metrics", "measured"), ("scalars", "rewrites"), ("alerts", "unsaid_onsets"),
                       ("alerts", "unsaid_withdrawals")]:
        doc = json.loads((path / group / "zarr.json").read_text())
        if key in doc["attributes"]:
            _drop_attribute(path, group, key)
    reader = StoreReader(path)
    assert reader.measured_steps() == {1: None, 2: None} and reader.alerts_rewritten == {}
    assert len(reader.scalars()["loss"]) == 2 and reader.unsaid_onsets() == [] and len(reader.alerts()) == 1
    for group in ("metrics", "scalars"):  # made, then killed before its first commit
        meta = path / group / "zarr.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "attributes": {}}))
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        assert len(store.step_metrics()["step"]) == 0 and len(store.scalars()["step"]) == 0


def test_a_metrics_group_an_earlier_watch_left_with_a_reference_and_nothing_measured_is_read(tmp_path, rng, capsys):
    """Round BQ2: evowatch 13f8c6f..90e1bc4 (2026-12-06) wrote ``{"measured": {}, "reference": ...}``
    alone when a watch read --real before any step was measured: no ``committed_rows``. That store is
    healthy (no row); ``info`` and ``watch`` refused it as a hand edit."""
    from engine.cli import main

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store, store.checkpoint(100, "step_100", "h100") as tx:
        add_rows(tx, 3, rng)
    zarr.open_group(str(path / "metrics"), mode="w", attributes={"measured": {}, "reference": "3ab0d63a1a9662e518c65b74"})
    assert main(["info", str(path)]) == 0
    assert "missing" not in capsys.readouterr().err
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        assert len(store.step_metrics().get("step", [])) == 0 and store.metrics_reference == "3ab0d63a1a9662e518c65b74"
        store.write_step_metrics(100, {"vendi": 2.0}, [0, 3])
    assert StoreReader(path).step_metrics()["vendi"].tolist() == [2.0]


def test_a_table_is_read_in_one_wait_on_zarrs_event_loop(tmp_path, rng, monkeypatch):
    """Round BV: the checkpoint table's columns were opened and read one by one, each open and
    each read waited on zarr's event loop in turn (a watch pass read it three times: 58% of a
    pass); now together, in one wait. A column's damaged chunk is still one line naming it."""
    import zarr.api.synchronous
    import zarr.core.array
    import zarr.core.sync
    from stores.zarr_store import reader as reader_module

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (100, 200):
            with store.checkpoint(step, f"step_{step}", f"h{step}") as tx:
                add_rows(tx, 3, rng)
    reader, waits, real = StoreReader(path), [], zarr.core.sync.sync

    def counted(*args, **kwargs):
        waits.append(1)
        return real(*args, **kwargs)

    for module in (zarr.api.synchronous, zarr.core.array, reader_module):  # where the reads wait
        monkeypatch.setattr(module, "sync", counted, raising=False)  # (the reader had none before round BV)
    table = reader.checkpoints()
    assert len(waits) == 1
    assert list(table["step"]) == [100, 200] and list(table["hash"]) == ["h100", "h200"]
    assert list(table["row_start"]) == [0, 3] and list(table["superseded_by"]) == [-1, -1]
    chunk = next(p for p in (path / "checkpoints" / "hash").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(bytes(range(100)))
    with pytest.raises(StoreFormatError, match=r"s.zarr/checkpoints/hash: cannot be read \(.*\): the store is damaged "
                                               r"on disk; restore it from a copy, or ingest the run again") as error:
        reader.checkpoints()
    assert "\n" not in str(error.value)


def test_info_reads_the_checkpoint_table_once(tmp_path, rng, monkeypatch):
    """`info` read the checkpoint table twice and worked out which checkpoints are superseded
    twice (the current rows, then the steps): 17 ms of each 1,000 checkpoints' 60 ms."""
    from stores.zarr_store import reader as reader_module

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step, source in ((100, "step_100"), (200, "step_200"), (200, "step_200")):  # the last a rewrite
            with store.checkpoint(step, source, f"h{store.n_checkpoints}") as tx:
                add_rows(tx, 3, rng)
    reads, flags = [], []
    real_columns, real_flags = reader_module._read_columns, reader_module.superseded_flags
    monkeypatch.setattr(reader_module, "_read_columns", lambda folder, *a: reads.append(folder.name) or real_columns(folder, *a))
    monkeypatch.setattr(reader_module, "superseded_flags", lambda table: flags.append(1) or real_flags(table))
    info = StoreReader(path).info()
    assert reads.count("checkpoints") == 1 and len(flags) == 1
    assert info["rows"] == 9 and info["current_rows"] == 6 and info["steps"] == [100, 200]


STEPPED_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from stores.zarr_store import StoreWriter
    with StoreWriter(sys.argv[1], {"identity": "test:8", "dim": 8}, thumbnail_size=4) as store:
        for k in range(int(sys.argv[2])):
            with store.checkpoint(100 * k, f"step_{k}", f"h{k}") as tx:
                for part in range(3):  # the arrays grow while the checkpoint is written
                    tx.add(np.ones((500, 8), np.float32), range(500), [None] * 500, np.zeros((500, 4, 4, 3), np.uint8),
                           ["p"] * 500)
            print(k, flush=True)
            sys.stdin.readline()  # the reader has read this commit: write the next
""")


def _read_whole(reader: StoreReader) -> None:
    """Read the committed rows twice (the second from the arrays opened for the first) and check
    them against the checkpoint table, as a reader sees them."""
    for _ in range(2):
        n, ckpt = reader.n_rows, reader.checkpoints()
        steps, owners = reader.samples("step"), reader.samples("checkpoint")
        assert len(steps) == len(owners) == n and len(ckpt["step"]) == reader.n_checkpoints
        assert ckpt["row_stop"][-1] == n and (np.diff(ckpt["row_start"]) == 1500).all()
        assert (steps == np.repeat(ckpt["step"], 1500)).all() and (owners == np.repeat(np.arange(len(ckpt["step"])), 1500)).all()
        assert reader.samples("step", np.array([n - 1])).tolist() == [ckpt["step"][-1]]


def test_a_reader_sees_a_writer_in_another_process_grow_the_arrays(tmp_path):
    """The reader keeps the arrays it opened for its commit point (opening one cost as much as
    reading 16,000 rows): an array held open keeps the shape it had then, and zarr reads its
    rows past it as missing. A writer in another process commits checkpoints of 1,500 rows past
    the arrays' first growth (16,384 rows), the reader reading while it writes and after each
    commit: every read holds every committed row, no more, and agrees with the checkpoint table."""
    path, count = tmp_path / "s.zarr", 13  # 19,500 rows
    script = tmp_path / "writer.py"
    script.write_text(STEPPED_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(count)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        seen, reader = [], None
        for k in range(count):
            assert int(proc.stdout.readline()) == k
            reader = reader or StoreReader(path)
            _read_whole(reader)  # the earlier commit point, held open
            reader.refresh()
            _read_whole(reader)
            seen.append(reader.n_rows)
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            if k < count - 1:  # while the next checkpoint is written
                while not select.select([proc.stdout], [], [], 0)[0]:
                    reader.refresh()
                    _read_whole(reader)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert seen == [1500 * (k + 1) for k in range(count)]


def test_a_reader_sees_an_arrays_metadata_damaged_and_restored_under_one_commit_point(tmp_path, rng, monkeypatch):
    """Arrays held open for a commit point are opened again when their zarr.json changes: one
    damaged, gone or cut short (a copy put back) after a read is said or read as it was when
    every read opened the array again, and read again once restored; one held shorter than the
    committed rows is opened again even where the file's inode, time and size do not tell."""
    from stores.zarr_store import opened
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (100, 200):
            with store.checkpoint(step, f"step_{step}", f"h{step}") as tx:
                add_rows(tx, 40, rng)
    reader = StoreReader(path)

    def put(meta: Path, data: bytes) -> None:  # as zarr and copies write it: a new file put in place
        (meta.parent / "zarr.json.new").write_bytes(data)
        os.replace(meta.parent / "zarr.json.new", meta)

    for group, name, read in (("samples", "step", lambda: reader.samples("step")),
                              ("checkpoints", "hash", reader.checkpoints)):
        meta = path / group / name / "zarr.json"
        good = meta.read_bytes()
        read()
        put(meta, good[:40])
        with pytest.raises(StoreFormatError, match=f"^{meta}: unreadable array metadata"):
            read()
        meta.unlink()
        with pytest.raises(StoreFormatError, match=f"^{meta}: missing array metadata"):
            read()
        put(meta, good)
        read()
    meta = path / "samples" / "step" / "zarr.json"
    good = meta.read_bytes()
    monkeypatch.setattr(opened, "_metadata_stamp", lambda path: (1, 1, 1))  # a coarse clock, an inode used again
    put(meta, json.dumps({**json.loads(good), "shape": [50]}).encode())
    assert reader.samples("step").tolist() == [100] * 40 + [200] * 10  # the rows its zarr.json holds
    assert reader.missing_chunks() == ["samples/step rows 50-79 (its zarr.json ends at row 50)"]
    put(meta, good)  # the copy finished
    assert reader.samples("step").tolist() == [100] * 40 + [200] * 40


def test_reads_under_one_commit_point_open_each_array_once(tmp_path, rng, monkeypatch):
    """A reader opened an array again at every read (its zarr.json read and parsed: about as long
    as reading 16,000 rows; 200 single rows read one by one spent a third of their time opening).
    Under one commit point each array of the samples, checkpoint and warning tables is opened
    once; after :meth:`StoreReader.refresh`, once again (a writer may have grown it since)."""
    import zarr.api.asynchronous

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(100, "step_100", "h100") as tx:
            add_rows(tx, 5, rng)
            tx.skip("broken.png", "truncated PNG")
    reader, opens, real = StoreReader(path), [], zarr.api.asynchronous.open_array

    async def counted(*args, **kwargs):
        opens.append(Path(kwargs["store"]).relative_to(path).as_posix())
        return await real(*args, **kwargs)

    monkeypatch.setattr(zarr.api.asynchronous, "open_array", counted)
    for _ in range(3):
        assert reader.samples("step").tolist() == [100] * 5 and reader.samples("embedding", [1, 3]).shape == (2, 8)
        assert reader.checkpoints()["hash"].tolist() == ["h100"] and reader.warnings()["path"].tolist() == ["broken.png"]
    assert sorted(opens) == sorted(["samples/step", "samples/embedding", *(f"checkpoints/{name}" for name in
                                    [*fmt.CHECKPOINT_ARRAYS, "superseded_by"]), *(f"warnings/{name}" for name in fmt.WARNING_ARRAYS)])
    reader.refresh()
    reader.samples("step")
    assert opens.count("samples/step") == 2
