"""`evowatch demo` end to end, as README's first command runs it (shortened): the trainer in a
subprocess, the live watch, the store, the closing lines."""
from __future__ import annotations

import pytest

from engine.cli import main
from stores.zarr_store import StoreReader


@pytest.mark.slow
def test_demo_trains_watches_and_says_how_to_view(tmp_path, capfd):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "500"]) == 0
    err = capfd.readouterr().err
    assert "step 250: loss_d=" in err and "ingested step 500 (step_000500): 64 samples" in err
    assert f"evowatch view {out / 'demo.zarr'}" in err
    info = StoreReader(out / "demo.zarr").info()
    assert info["steps"] == [250, 500] and info["kinds"] == {"generated": 128, "real": 1200, "holdout": 597}
    assert info["layout_rows"] == info["rows"] and info["alerts"] == []


@pytest.mark.slow
def test_a_demo_stopped_by_ctrl_c_says_where_its_steps_are(tmp_path, capfd, monkeypatch):
    """A demo stopped with Ctrl-C ended with status 130 and no word of what it left: the
    steps ingested so far are in the store (how to view it), and the same command starts over.
    Run with -q: warnings, errors and alerts only, the trainer's loss lines too (and where the store is);
    a second demo run to its end for -q alone cost about 15 CPU-s of this file's 87."""
    import subprocess

    from engine.watch import Watcher

    run_once, trainers = Watcher.run_once, []
    popen = subprocess.Popen

    def trainer(*args, **kwargs):
        trainers.append(popen(*args, **kwargs))
        return trainers[-1]

    def stopped_once_stored(self):  # Ctrl-C once the first checkpoint is in the store
        results = run_once(self)
        if any(result.checkpoint.kind == "generated" and result.stored for result in results):
            raise KeyboardInterrupt
        return results

    monkeypatch.setattr(subprocess, "Popen", trainer)
    monkeypatch.setattr(Watcher, "run_once", stopped_once_stored)
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out), "--steps", "2000"]) == 130
    store = out / "demo.zarr"
    said = capfd.readouterr().err.splitlines()
    assert said[-1:] == [
        f"evowatch: interrupted; the steps ingested so far are in {store} (evowatch view {store}); the same command "
        "trains the demo again from its first step"]
    assert not [line for line in said[:-1] if "loss_d=" in line or "ingested" in line]
    assert StoreReader(store).info()["steps"][0] == 250 and trainers[0].poll() is not None  # the trainer stopped too


@pytest.mark.slow
def test_a_demo_stopped_by_a_terminal_s_ctrl_c_says_one_line(tmp_path):
    """A terminal's Ctrl-C reaches the demo and its trainer (one process group): the trainer's own line
    (round BO) named its command, not the demo's; the demo's line alone is said."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "demo", "--out", str(tmp_path / "demo"), "--encoder",
                             "pixels", "--steps", "3000"], cwd=repo, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo)}, start_new_session=True)  # a terminal's group
    try:
        while (line := proc.stderr.readline()) and not line.startswith("step 250: loss_d="):
            pass
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.stderr.read()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert line and proc.wait(60) == 130
    assert [line for line in rest.splitlines() if "interrupted" in line] == [rest.splitlines()[-1]]
    assert rest.splitlines()[-1].startswith("evowatch: interrupted; ")


def test_an_earlier_demo_in_the_same_out_is_replaced_and_a_fail_past_the_end_refused(tmp_path, capsys):
    """Round AB: a second demo into one --out left the first's later checkpoints in the run and
    the store (a --fail run showed the old healthy steps after its own, no alert); --fail past
    the last step induced nothing and said nothing."""
    import numpy as np
    from PIL import Image

    from engine.demo import _replace_earlier_demo
    from engine.errors import EvowatchError

    run, store = tmp_path / "run", tmp_path / "demo.zarr"
    (run / "step_000500").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(run / "step_000500" / "0.png")
    assert main(["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    _replace_earlier_demo(run, store)
    assert not run.exists() and not store.exists()
    (run / "mine").mkdir(parents=True)  # not a demo's: left alone
    with pytest.raises(EvowatchError, match="holds no earlier demo: give the demo another --out"):
        _replace_earlier_demo(run, store)
    assert (run / "mine").is_dir()
    (run / "demo.json").write_text("{}")  # round AC: a demo stopped before its first checkpoint is one
    _replace_earlier_demo(run, store)
    assert not run.exists()
    (run / "step_000500").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(run / "step_000500" / "0.png")
    assert main(["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels"]) == 0
    from stores.lock import WriterLock

    running = WriterLock(store)  # round AC: a demo still running there was deleted, then both failed
    try:
        with pytest.raises(EvowatchError, match="another demo is running there"):
            _replace_earlier_demo(run, store)
    finally:
        running.release()
    assert (run / "step_000500").is_dir() and store.is_dir()
    assert main(["demo", "--out", str(tmp_path / "d"), "--steps", "250", "--fail", "collapse@5000"]) == 2
    assert "step 5000 is past the demo's last step (250)" in capsys.readouterr().err


def test_an_encoder_the_demo_cannot_use_is_said_before_anything_is_trained(tmp_path, capsys):
    """Round AD: a typo in --encoder was found 9 s into training, CLIP weights missing after a
    checkpoint was trained (17 s); both left the demo's folders behind."""
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(out), "--encoder", "foo"])
    assert exc.value.code == 2 and "argument --encoder: Expected an encoder spec" in capsys.readouterr().err
    assert main(["demo", "--out", str(out), "--encoder", "clip:ViT-B-32/laion2b_s34b_b79k"]) != 0
    assert "are not in the local cache" in capsys.readouterr().err
    assert not out.exists()


def test_a_demo_into_an_evowatch_store_is_refused(tmp_path, capsys):
    """Round AF: `demo --out STORE` wrote run/, data/ and demo.zarr inside the user's store."""
    import numpy as np
    from PIL import Image

    store = tmp_path / "mine.zarr"
    (tmp_path / "run" / "step_000100").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "run" / "step_000100" / "0.png")
    assert main(["-q", "watch", str(tmp_path / "run"), "--store", str(store), "--once", "--settle", "0",
                 "--encoder", "pixels", "--no-layout"]) == 0
    before = sorted(p.name for p in store.iterdir())
    for out in (store, store / "demo"):
        assert main(["demo", "--out", str(out)]) == 2
        where = "an" if out == store else "inside an"
        assert capsys.readouterr().err == (f"evowatch: error: {out} is {where} evowatch store: give the demo "
                                           "another --out\n")
    assert sorted(p.name for p in store.iterdir()) == before


def test_a_demo_into_a_file_is_refused_naming_the_file(tmp_path, capsys):
    """`demo --out notes.txt` said only "notes.txt/run: Not a directory", with no fix."""
    (tmp_path / "notes.txt").write_text("mine")
    for out in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "demo"):
        assert main(["demo", "--out", str(out), "--steps", "10"]) == 2
        assert capsys.readouterr().err == (f"evowatch: error: {tmp_path / 'notes.txt'} is a file: give the demo a "
                                           "folder as --out (made if missing)\n")
    assert (tmp_path / "notes.txt").read_text() == "mine"
