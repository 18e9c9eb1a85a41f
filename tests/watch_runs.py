"""Helpers the watch tests share: a checkpoint written as a trainer does, the CLI in a subprocess, waiting on a live watch."""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.errors import EvowatchError
from stores.zarr_store import StoreReader


REPO = Path(__file__).resolve().parents[1]
TINY_CLIP = f"clip:{REPO / 'tests/data/evowatch-tiny.json'}/random"
#: For a live watch of checkpoints that :func:`write_step` renames into place whole, where the wait for
#: quiet is not what is tested (tests/test_watch_settle.py tests it): the default --settle 2 made each
#: checkpoint wait 2 s more (write_step's os.utime sets its files' change time, which counts, to now).
TAKEN_AT_ONCE = ("--settle", "0")


def write_step(run: Path, step: int, n: int, seed: int, size: int = 24, rename: bool = True) -> Path:
    """A checkpoint folder `step_000100/samples/00000.png ...`, renamed into place like the demo does."""
    rng = np.random.default_rng(seed)
    final = run / f"step_{step:06d}"
    tmp = run / f".step_{step:06d}.tmp" if rename else final
    (tmp / "samples").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(tmp / "samples" / f"{i:05d}.png")
    if rename:
        os.rename(tmp, final)
    old = time.time() - 10  # settled
    for path in final.rglob("*"):
        os.utime(path, (old, old))
    return final


def swap_folders(a: Path, b: Path) -> None:
    """Exchange two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``): a run folder made
    again between two looks of a watch, whatever the load. ``rm -rf RUN && mkdir RUN`` leaves a gap
    in which a watch may find no folder (then it says "deleted", then "back": another path)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), str(a))


def info(store: Path) -> dict:
    return StoreReader(store).info()


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def cli_env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}


def processes_using(store: Path) -> list[int]:
    """Live processes whose command line names ``store`` (a watcher and its forked workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(store).encode() in (proc / "cmdline").read_bytes() \
                    and (proc / "stat").read_text().split()[2] != "Z":
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def usage_error(argv: list[str], capsys) -> str:
    """The stderr of a command line argparse refuses: exit 2, and (the contract) one line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.splitlines()) == 1, err
    return err.strip()


@contextlib.contextmanager
def live_watch(run: Path, store: Path, stop: threading.Event | None = None,
                *options: str) -> Iterator[threading.Thread]:
    """``evowatch watch RUN --store STORE`` (pixels, no layout or metrics) running in a thread, ticking
    every 0.1 s; stopped and joined on exit. What ended it early is the thread's ``error``."""
    from engine.cli import build_parser
    from engine.session import open_session

    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels",
                                      "--no-layout", "--no-metrics", "--workers", "0", *options])
    stop = stop or threading.Event()
    with open_session(args) as watcher:
        watcher.config.tick = 0.1

        def watch() -> None:
            try:
                watcher.run_forever(stop)
            except EvowatchError as exc:
                thread.error = exc

        thread = threading.Thread(target=watch)
        thread.error = None
        thread.start()
        try:
            yield thread
        finally:
            stop.set()
            thread.join(timeout=10)


def wait_until(condition: Callable[[], bool], thread: threading.Thread, seconds: float = 20) -> None:
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline and thread.is_alive():
        time.sleep(0.05)
