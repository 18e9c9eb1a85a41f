"""A store belongs to one run: renamed, copied and moved checkpoints, and another run's store refused."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from engine.cli import main
from stores.zarr_store import StoreReader, superseded_flags
from tests.watch_runs import info, write_step


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
