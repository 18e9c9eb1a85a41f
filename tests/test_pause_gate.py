"""engine.pause.PauseGate: every rank of a plain torch.distributed loop pauses at the same step."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from engine.pause import PauseGate, clear_pause, evowatch_should_pause, wait_if_paused, write_pause

#: The step at which rank 0 writes the pause file, after its own look and before rank 1's.
RACE_STEP, STEPS, GROUP_TIMEOUT_S = 3, 8, 5


def _train(rank: int, run: Path, gated: bool) -> None:
    """A rank of a two-process gloo loop: a pause check, then an all-reduce standing for the gradients'."""
    dist.init_process_group("gloo", init_method=f"file://{run / 'rendezvous'}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=GROUP_TIMEOUT_S))
    torch.set_num_threads(1)
    gate = PauseGate(run, check_every_s=0, poll_s=0.1)
    try:
        for step in range(STEPS):
            if step == RACE_STEP and rank == 1:  # rank 1 reaches its check once the file is there (1 s at most)
                deadline = time.monotonic() + 1
                while not evowatch_should_pause(run) and time.monotonic() < deadline:
                    time.sleep(0.01)
            gate.wait() if gated else wait_if_paused(run, poll_s=0.1)
            if step == RACE_STEP and rank == 0:
                write_pause(run, {"step": step, "rule": "collapse", "value": 1.0, "message": "m"})
            dist.all_reduce(torch.ones(4))
            with open(run / f"rank{rank}.log", "a") as log:
                log.write(f"{step} {time.time():.3f}\n")
    finally:
        dist.destroy_process_group()


def _two_ranks(rank_fn, *args) -> None:
    """``rank_fn(rank, *args)`` in two fresh processes, as mp.spawn starts them, forked from one
    forkserver that imported this module (and torch) once: each spawn imported torch again in both
    ranks, most of each test's time."""
    mp.set_forkserver_preload([__name__])
    mp.start_processes(rank_fn, args=args, nprocs=2, start_method="forkserver")


def _run(run: Path, gated: bool) -> None:
    def resume_later():  # the user deletes the file once the process group's timeout has passed
        deadline = time.monotonic() + 60
        while not evowatch_should_pause(run) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(GROUP_TIMEOUT_S + 2)
        clear_pause(run)

    threading.Thread(target=resume_later, daemon=True).start()
    _two_ranks(_train, run, gated)


def test_two_gloo_ranks_pause_together_past_the_group_timeout_and_train_on(tmp_path):
    """Round BM: plain torch.distributed loops had no safe pause (see the test below). With PauseGate the
    file written between the ranks' looks pauses both at the next step, longer than the group's timeout."""
    _run(tmp_path, gated=True)
    for rank in (0, 1):
        ends = [line.split() for line in (tmp_path / f"rank{rank}.log").read_text().splitlines()]
        assert [int(step) for step, _ in ends] == list(range(STEPS))
        gaps = np.diff([float(t) for _, t in ends])
        assert gaps.argmax() == RACE_STEP and gaps.max() > GROUP_TIMEOUT_S  # paused before step RACE_STEP + 1


def test_each_rank_calling_wait_if_paused_times_out_in_the_all_reduce(tmp_path):
    """Why the gate: rank 1 waits in the pause while rank 0 waits in the all-reduce, which the group ends."""
    with pytest.raises(mp.ProcessRaisedException, match="Timed out"):
        _run(tmp_path, gated=False)


def test_without_a_process_group_it_is_wait_if_paused(tmp_path):
    """One process: each call looks (no pacing), blocks while the file is in any of its folders."""
    other = tmp_path / "checkpoints"
    other.mkdir()
    gate = PauseGate([tmp_path, other], check_every_s=60, poll_s=0.01)
    assert gate.wait() is False
    write_pause(other, {"step": 1, "rule": "collapse", "value": 1.0, "message": "m"})
    start = time.monotonic()  # before the timer starts: taken after it, a loaded machine measured 0.197 s
    threading.Timer(0.2, clear_pause, (other,)).start()
    assert gate.wait() is True and time.monotonic() - start >= 0.2 and not evowatch_should_pause(other)


def test_the_look_after_the_first_is_paced_by_the_steps_not_by_the_gate_s_making(tmp_path):
    """Round BN: the first look timed its pace from the gate's making, microseconds before the first call:
    with 0.1 s steps and check_every_s=1 rank 0 put its next look 43,511 calls (72 minutes) off, so a pause
    written at step 2 went unseen. The first look now has rank 0 look again at the next call."""
    gate = PauseGate(tmp_path, check_every_s=1, poll_s=0.01, share=lambda look: look())  # a one-host share
    assert gate.wait() is False
    write_pause(tmp_path, {"step": 1, "rule": "collapse", "value": 1.0, "message": "m"})
    threading.Timer(0.2, clear_pause, (tmp_path,)).start()
    assert gate.wait() is True and not evowatch_should_pause(tmp_path)


def _refused(rank: int, run: Path) -> None:
    """A rank of a two-process gloo loop whose rank 0 is refused the pause file's folder at step 2; each
    rank writes the error it ends with to ``RUN/rank{N}.err``."""
    dist.init_process_group("gloo", init_method=f"file://{run / 'rendezvous'}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=GROUP_TIMEOUT_S))
    gate = PauseGate(run, check_every_s=0, poll_s=0.1)
    exists = Path.exists

    def refused(path: Path) -> bool:
        if path.name == "EVOWATCH_PAUSE":
            raise PermissionError(13, "Permission denied", str(path))
        return exists(path)

    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            for step in range(4):
                if step == 2 and rank == 0:
                    monkeypatch.setattr(Path, "exists", refused)
                gate.wait()
                dist.all_reduce(torch.ones(4))
    except Exception as exc:
        (run / f"rank{rank}.err").write_text(f"{type(exc).__name__}: {exc}")
    finally:
        dist.destroy_process_group()


def test_rank_0_refused_the_run_folder_ends_every_rank_with_the_same_line(tmp_path):
    """Round BO: rank 0's look raised PermissionError on rank 0 alone; rank 1 waited in the broadcast and
    died of the group's timeout (or a reset connection), naming neither the file nor the fix."""
    _two_ranks(_refused, tmp_path)
    said = {(tmp_path / f"rank{rank}.err").read_text() for rank in (0, 1)}
    assert said == {f"PauseCheckError: evowatch: cannot look for {tmp_path / 'EVOWATCH_PAUSE'} (Permission denied): "
                    f"let the trainer (rank 0 of several) read {tmp_path}, or give PauseGate a folder it can read"}


def test_one_process_refused_the_run_folder_says_the_same_line(tmp_path, monkeypatch):
    """Without a process group the refusal is the same line (it was PermissionError's own traceback)."""
    from engine.pause import PauseCheckError

    def refused(path: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "exists", refused)
    with pytest.raises(PauseCheckError, match=f"cannot look for {tmp_path / 'EVOWATCH_PAUSE'} .Permission denied.: "):
        PauseGate(tmp_path, poll_s=0.01).wait()


def _refused_after(monkeypatch, looks: int) -> None:
    """The run folder refused to the pause file's looks after the first ``looks`` (made unreadable mid-wait)."""
    exists, seen = Path.exists, []

    def refused(path: Path) -> bool:
        if path.name == "EVOWATCH_PAUSE":
            seen.append(path)
            if len(seen) > looks:
                raise PermissionError(13, "Permission denied", str(path))
        return exists(path)

    monkeypatch.setattr(Path, "exists", refused)


@pytest.mark.parametrize("waiter", ["wait_if_paused", "PauseGate"])
def test_a_run_folder_refused_mid_wait_is_the_one_line_error(tmp_path, monkeypatch, waiter):
    """Round BP: refused while paused, `wait_if_paused` and a one-process PauseGate's wait ended in a bare
    PermissionError traceback; now the line PauseGate's first look says (and training does not go on)."""
    from engine.pause import PauseCheckError

    write_pause(tmp_path, {"step": 1, "rule": "collapse", "value": 1.0, "message": "m"})
    _refused_after(monkeypatch, 2)
    fix = {"wait_if_paused": f"let the trainer read {tmp_path}, or give wait_if_paused a folder it can read",
           "PauseGate": f"let the trainer (rank 0 of several) read {tmp_path}, or give PauseGate a folder it can read"}
    with pytest.raises(PauseCheckError) as raised:
        wait_if_paused(tmp_path, poll_s=0.01) if waiter == "wait_if_paused" else PauseGate(tmp_path, poll_s=0.01).wait()
    assert str(raised.value) == f"evowatch: cannot look for {tmp_path / 'EVOWATCH_PAUSE'} (Permission denied): {fix[waiter]}"
