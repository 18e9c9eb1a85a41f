"""The offline demo trainer: layout, rename protocol, induced failures, pause file, errors."""
from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from examples import demo_trainer as dt

STEPS, EVERY, N = 400, 100, 32
ONSET = 200


def _load(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p), dtype=np.float32).ravel() / 255.0 for p in paths])


def _samples(ck: Path) -> np.ndarray:
    return _load(sorted((ck / "samples").glob("*.png")))


def _nn_dist(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.sqrt(d.min(1)), d.argmin(1)


def _in_batch_nn(a: np.ndarray) -> float:
    d = np.sqrt(((a[:, None, :] - a[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(d.min(1).mean())


def _n_groups(a: np.ndarray, radius: float) -> int:
    """Greedy grouping: how many balls of ``radius`` around samples cover the batch."""
    d = np.sqrt(((a[:, None, :] - a[None, :, :]) ** 2).sum(-1))
    left = np.ones(len(a), bool)
    groups = 0
    while left.any():
        i = int(np.flatnonzero(left)[0])
        left &= d[i] > radius
        groups += 1
    return groups


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> dict[str, Path]:
    """The healthy run and its three failures at ONSET, trained as its branches (the steps
    before the onset once; test_a_branch_is_the_failure_trained_on_its_own checks they are the
    runs trained one by one)."""
    roots = {name: tmp_path_factory.mktemp(name) for name in ("healthy", "collapse", "copy", "drop")}
    dt.train(roots["healthy"], steps=STEPS, every=EVERY, n_samples=N, seed=0, data_dir=data_dir,
             branches=[dt.Branch(roots[kind], f"{kind}@{ONSET}", STEPS) for kind in ("collapse", "copy", "drop")])
    return roots


@pytest.fixture(scope="module")
def healthy(runs) -> Path:
    return runs["healthy"]


def test_a_branch_is_the_failure_trained_on_its_own(tmp_path, data_dir):
    """Each failure's branch of a healthy run is, file for file, the run `--fail` trains alone: its steps
    before the onset are the healthy run's, and the branch point, the onset, is not shifted by a step.
    Short runs: what is checked (the random streams, the failure's first step) does not depend on the length."""
    import filecmp

    def same(a: Path, b: Path) -> None:
        cmp = filecmp.dircmp(a, b)
        assert not (cmp.left_only or cmp.right_only or cmp.funny_files), (a, cmp.left_only, cmp.right_only)
        _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
        assert not mismatch and not errors, (a, mismatch, errors)
        for sub in cmp.common_dirs:
            same(a / sub, b / sub)

    kinds = {"collapse": ("collapse@15", 30), "copy": ("copy@20", 20), "drop": ("drop@1", 25)}
    dt.train(tmp_path / "healthy", steps=25, every=10, n_samples=4, data_dir=data_dir,
             branches=[dt.Branch(tmp_path / kind, fail, steps) for kind, (fail, steps) in kinds.items()])
    for kind, (fail, steps) in kinds.items():
        dt.train(tmp_path / f"{kind}-alone", steps=steps, every=10, n_samples=4, fail=fail, data_dir=data_dir)
        same(tmp_path / kind, tmp_path / f"{kind}-alone")
    with pytest.raises(ValueError, match="Expected each branch to fork a healthy run"):
        dt.train(tmp_path / "late", steps=25, data_dir=data_dir, branches=[dt.Branch(tmp_path / "x", "copy@26", 30)])



def test_a_branch_trained_again_into_its_folder(tmp_path, data_dir):
    """The same command run again writes over a branch's checkpoints as over a run's (the copy of the
    healthy run's checkpoints failed 'Directory not empty', leaving a .tmp folder that failed every later
    run), and copies only the checkpoints this healthy run wrote, not its folder's other step_* (an
    earlier run's every 3 steps; a step_notes folder failed int())."""
    def train() -> None:
        dt.train(tmp_path / "healthy", steps=12, every=5, n_samples=2, data_dir=data_dir,
                 branches=[dt.Branch(tmp_path / "copy", "copy@11", 12)])

    train()
    for name in ("step_000003", "step_notes"):
        (tmp_path / "healthy" / "run" / name).mkdir()
    (tmp_path / "copy" / "run" / ".step_000005.tmp").mkdir()  # a run killed while it copied
    train()
    assert sorted(p.name for p in (tmp_path / "copy" / "run").iterdir()) == [
        "demo.json", "losses.jsonl", "step_000005", "step_000010", "step_000012"]


def test_a_branch_in_another_runs_folder_is_refused(tmp_path, data_dir):
    """Two runs in one OUT_DIR wrote over each other's checkpoints without a word."""
    for outs in (["healthy"], ["a", "a"], ["a", "./a"]):
        with pytest.raises(ValueError, match="its own OUT_DIR"):
            dt.train(tmp_path / "healthy", steps=4, every=2, n_samples=2, data_dir=data_dir,
                     branches=[dt.Branch(tmp_path / out, "copy@3", 4) for out in outs])
    assert not (tmp_path / "healthy").exists()


def test_a_branch_has_its_reference_sets(tmp_path, capsys):
    """Without --data-dir, a branch's OUT_DIR/data holds the reference sets, as a run trained alone
    does (its run/ was byte-identical, but watch --real OUT2/data/train found no folder); a STEPS
    that is no number is one line naming --branch."""
    assert dt.main([str(tmp_path / "healthy"), "--steps", "3", "--every", "3", "--n-samples", "2", "--quiet",
                    "--branch", str(tmp_path / "drop"), "drop@2", "3"]) == 0
    for out in ("healthy", "drop"):
        assert (tmp_path / out / "data" / "split.json").is_file()
        assert len(list((tmp_path / out / "data" / "train").glob("*/*.png"))) == dt.N_TRAIN
    capsys.readouterr()
    assert dt.main([str(tmp_path / "x"), "--branch", str(tmp_path / "y"), "drop@2", "ten"]) == 2
    assert capsys.readouterr().err == f"error: --branch {tmp_path / 'y'} drop@2 ten: STEPS is the branch's last " \
        f"step, a whole number (e.g. --branch {tmp_path / 'y'} drop@2 {dt.DEFAULT_STEPS})\n"



def test_a_branch_the_stopped_run_never_reached_is_named(tmp_path, data_dir, capsys):
    """A healthy run stopped by its pause file (on_pause="stop") before a branch's onset says the
    branch was not trained; it left only the branch's demo.json, without a word."""
    (tmp_path / "healthy" / "run").mkdir(parents=True)
    (tmp_path / "healthy" / "run" / dt.PAUSE_FILE).touch()
    dt.train(tmp_path / "healthy", steps=4, every=2, n_samples=2, data_dir=data_dir, on_pause="stop",
             branches=[dt.Branch(tmp_path / "copy", "copy@3", 4)])
    run = tmp_path / "healthy" / "run"
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"demo_trainer: {tmp_path / 'copy' / 'run'} not trained: {run} stopped before its onset, step 3; "
        f"delete {run / dt.PAUSE_FILE} and run the same command again")


def test_ctrl_c_during_a_branch_names_every_run_folder(tmp_path, data_dir, monkeypatch, capsys):
    """Round BW7: Ctrl-C while a --branch trained named only what the healthy run's folder keeps;
    the branch's partial run/ (the healthy run's checkpoints before its onset, its own since) and
    its pause file went unsaid."""
    healthy, branch = tmp_path / "healthy" / "run", tmp_path / "copy" / "run"
    write = dt._write_checkpoint

    def interrupted_in_the_branch(run_dir: Path, step: int, *args) -> Path:
        path = write(run_dir, step, *args)
        if run_dir == branch and step == 4:
            (branch / dt.PAUSE_FILE).touch()  # written by the branch's watch meanwhile
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(dt, "_write_checkpoint", interrupted_in_the_branch)
    assert dt.main([str(tmp_path / "healthy"), "--steps", "4", "--every", "2", "--n-samples", "2", "--quiet",
                    "--data-dir", str(data_dir), "--branch", str(tmp_path / "copy"), "copy@3", "6"]) == 130
    assert capsys.readouterr().err == (
        f"demo_trainer: interrupted; {healthy} keeps checkpoints up to step_000004 and losses.jsonl; {branch} keeps "
        "checkpoints up to step_000004 and losses.jsonl; no weights are saved: the same command trains again from "
        f"step 1 (delete {branch / dt.PAUSE_FILE} first, or its run waits at the first step it trains, a branch's "
        "onset)\n")  # a branch checks its pause file from its onset on


@pytest.fixture(scope="module")
def reference(data_dir, healthy) -> dict[str, tuple[np.ndarray, list[int]]]:
    out = {}
    for split in ("train", "holdout"):
        paths = sorted((data_dir / split).glob("*/*.png"))
        out[split] = (_load(paths), [int(p.parent.name) for p in paths])
    return out


def test_layout_labels_losses(healthy, data_dir):
    run = healthy / "run"
    steps = [EVERY * k for k in range(1, STEPS // EVERY + 1)]
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("step_")) == [
        f"step_{s:06d}" for s in steps
    ]
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no leftover temp folders
    for s in steps:
        ck = run / f"step_{s:06d}"
        files = sorted(p.name for p in (ck / "samples").iterdir())
        assert files == [f"{i:05d}.png" for i in range(N)]
        with Image.open(ck / "samples" / "00000.png") as im:
            assert im.mode == "L" and im.size == (32, 32)
        with open(ck / "labels.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["file"] for r in rows] == [f"samples/{i:05d}.png" for i in range(N)]
        assert [int(r["label"]) for r in rows] == [i % 10 for i in range(N)]

    losses = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses] == list(range(10, STEPS + 1, 10))
    assert all(set(r) == {"step", "loss_d", "loss_g"} for r in losses)
    assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in losses)

    meta = json.loads((run / "demo.json").read_text())
    assert meta["checkpoints"] == steps and meta["fail"] is None

    # Reference sets: 1,200 train / 597 held-out, per-label folders, disjoint digits.
    train = sorted((data_dir / "train").glob("*/*.png"))
    hold = sorted((data_dir / "holdout").glob("*/*.png"))
    assert (len(train), len(hold)) == (1200, 597)
    assert {p.parent.name for p in train} == {p.parent.name for p in hold} == {str(i) for i in range(10)}
    assert not {p.stem for p in train} & {p.stem for p in hold}
    assert not (healthy / "data").exists()  # data_dir overrides OUT_DIR/data


def test_samples_improve(healthy, reference):
    """Early samples are blobs far from any digit; later ones come closer to real digits."""
    x_train, _ = reference["train"]
    first, _ = _nn_dist(_samples(healthy / "run" / f"step_{EVERY:06d}"), x_train)
    last, _ = _nn_dist(_samples(healthy / "run" / f"step_{STEPS:06d}"), x_train)
    assert last.mean() < 0.9 * first.mean()


def test_checkpoints_complete_when_they_appear(tmp_path, data_dir):
    """A watcher polling the run folder only ever sees complete checkpoint folders."""
    seen: dict[str, int] = {}
    problems: list[str] = []
    done = threading.Event()
    run = tmp_path / "run"

    def watch() -> None:
        while True:
            if run.is_dir():
                for ck in run.iterdir():
                    if ck.name.startswith("step_") and ck.name not in seen:
                        pngs = sorted((ck / "samples").glob("*.png"))
                        labels = (ck / "labels.csv").read_text().splitlines()
                        if len(pngs) != 64 or len(labels) != 65:
                            problems.append(f"{ck.name}: {len(pngs)} pngs, {len(labels)} label rows")
                        for p in pngs:
                            with Image.open(p) as im:
                                im.load()
                        seen[ck.name] = len(pngs)
            if done.is_set():
                return
            time.sleep(0.001)

    t = threading.Thread(target=watch)
    t.start()
    try:
        dt.train(tmp_path, steps=60, every=5, n_samples=64, seed=1, data_dir=data_dir)
    finally:
        done.set()
        t.join()
    watch()  # one last sweep (done is set: a single pass) so every folder is checked
    assert not problems
    assert len(seen) == 12
    assert len([p for p in run.iterdir() if p.name.startswith("step_")]) == 12
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def collapsed(runs) -> Path:
    return runs["collapse"]


@pytest.fixture(scope="module")
def copying(runs) -> Path:
    return runs["copy"]


def _pngs_equal(a: Path, b: Path) -> bool:
    return all(
        np.array_equal(np.asarray(Image.open(pa)), np.asarray(Image.open(pb)))
        for pa, pb in zip(sorted((a / "samples").glob("*.png")), sorted((b / "samples").glob("*.png")))
    )


@pytest.fixture(scope="module")
def dropping(runs) -> Path:
    return runs["drop"]


def _after_onset(healthy: Path, failed: Path):
    """Check that checkpoints before the onset are identical to the healthy run's; yield
    ``(name, healthy_folder, failed_folder)`` for those at or after it."""
    for s in range(EVERY, STEPS + 1, EVERY):
        name = f"step_{s:06d}"
        h, c = healthy / "run" / name, failed / "run" / name
        if s < ONSET:
            assert _pngs_equal(h, c), f"{name} differs before the onset"
        else:
            yield name, h, c


def test_collapse_after_onset_only(healthy, collapsed):
    for name, h, c in _after_onset(healthy, collapsed):
        xh, xc = _samples(h), _samples(c)
        # Two modes with a small jitter: each sample has a near-duplicate in the batch.
        assert _in_batch_nn(xc) < 0.25 * _in_batch_nn(xh), name
        assert _n_groups(xc, radius=0.5 * _in_batch_nn(xh)) <= dt.COLLAPSE_MODES, name
    meta = json.loads((collapsed / "run" / "demo.json").read_text())
    assert meta["fail"] == {"kind": "collapse", "step": ONSET}


def test_drop_after_onset_only(healthy, dropping):
    """From the onset the generator is fed, and judged by, 4 kept classes' labels only."""
    for name, h, c in _after_onset(healthy, dropping):
        assert not _pngs_equal(h, c), name
    failure = dt._Failure(dt.parse_fail(f"drop@{ONSET}"), None, None, torch.Generator().manual_seed(0))
    y = torch.arange(100) % 10
    assert torch.equal(failure.labels(y, ONSET - 1), y)
    after = failure.labels(y, ONSET)
    assert len(set(after.tolist())) == dt.DROP_KEPT and set(after.tolist()) <= set(range(10))
    meta = json.loads((dropping / "run" / "demo.json").read_text())
    assert meta["fail"] == {"kind": "drop", "step": ONSET}


def test_copy_after_onset_only(healthy, copying, reference):
    x_train, y_train = reference["train"]
    x_hold, _ = reference["holdout"]
    for name, h, c in _after_onset(healthy, copying):
        xc = _samples(c)
        d_train, nearest = _nn_dist(xc, x_train)
        d_hold, _ = _nn_dist(xc, x_hold)
        copied = d_train < 0.5 * d_hold
        assert copied.mean() >= 0.6, name  # 75% of instances are copies (a fixed subset)
        hd_train, _ = _nn_dist(_samples(h), x_train)
        hd_hold, _ = _nn_dist(_samples(h), x_hold)
        assert (hd_train < 0.5 * hd_hold).mean() <= 0.1, name
        # A copy is of a training digit with the conditioning label.
        labels = [i % 10 for i in range(N)]
        assert all(y_train[nearest[i]] == labels[i] for i in np.flatnonzero(copied))
        assert np.median(d_train[copied]) < 0.25 * np.median(hd_train)


@pytest.mark.parametrize("spec", ["collapse", "copy@", "copy@-3", "collapse@1.5", "drift@100", "collapse@@2"])
def test_bad_fail_spec(spec, tmp_path):
    with pytest.raises(ValueError, match=r"Expected collapse@STEP, drop@STEP or copy@STEP.*Got"):
        dt.train(tmp_path, fail=spec)
    assert not (tmp_path / "run").exists()  # refused before writing anything


def test_parse_fail():
    assert dt.parse_fail(None) is None
    assert dt.parse_fail("copy@1500") == dt.FailSpec("copy", 1500)
    assert dt.parse_fail("collapse@0") == dt.FailSpec("collapse", 0)


def test_cli_error_exit_code(tmp_path, capsys):
    assert dt.main([str(tmp_path), "--fail", "oops"]) == 2
    assert "Expected collapse@STEP, drop@STEP or copy@STEP" in capsys.readouterr().err


def test_pause_file_stop(tmp_path, data_dir, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / dt.PAUSE_FILE).touch()
    dt.train(tmp_path, steps=20, every=10, n_samples=4, data_dir=data_dir, on_pause="stop")
    assert not list((tmp_path / "run").glob("step_*"))
    assert "EVOWATCH_PAUSE" in capsys.readouterr().err


def test_pause_file_wait_then_resume(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    run.mkdir()
    pause = run / dt.PAUSE_FILE
    pause.touch()
    t = threading.Thread(
        target=dt.train, args=(tmp_path,),
        kwargs=dict(steps=20, every=10, n_samples=4, data_dir=data_dir),
    )
    t.start()
    time.sleep(1.0)
    assert t.is_alive() and not list(run.glob("step_*"))
    pause.unlink()
    t.join(timeout=30)
    assert not t.is_alive()
    assert sorted(p.name for p in run.glob("step_*")) == ["step_000010", "step_000020"]
    err = capsys.readouterr().err
    assert "waiting" in err and "resuming" in err


def test_the_demo_help_names_the_trainers_default_steps(capsys):
    """`demo --help` said "(default: the demo trainer's)"; the CLI keeps the number itself (the
    trainer imports torch, which `--help` must not wait for)."""
    from engine.cli import DEMO_STEPS, main

    assert DEMO_STEPS == dt.DEFAULT_STEPS
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert f"training steps (default {dt.DEFAULT_STEPS})" in " ".join(capsys.readouterr().out.split())


def test_ctrl_c_of_the_trainer_run_directly_ends_in_one_line(tmp_path, data_dir):
    """Round BO: Ctrl-C of `python -m examples.demo_trainer OUT` ended with status 130 and no word. It
    says what the run keeps and how to go on, as plain_loop does (`--no-stop-line`, evowatch demo's
    trainer: the demo says its own)."""
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "examples.demo_trainer", str(tmp_path), "--steps", "40", "--every",
                             "10", "--n-samples", "4", "--data-dir", str(data_dir), "--sleep", "60"], cwd=repo,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        said = proc.stderr.readline()
        assert said.startswith("step 10: loss_d="), said
        (run / dt.PAUSE_FILE).touch()  # written by the watch meanwhile
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
    finally:
        proc.kill()
    assert proc.wait(60) == 130
    assert rest == (f"demo_trainer: interrupted; {run} keeps checkpoints up to step_000010 and losses.jsonl; no weights "
                    f"are saved: the same command trains again from step 1 (delete {run / dt.PAUSE_FILE} first, or "
                    "it waits at its first step)\n")
