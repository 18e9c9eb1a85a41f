"""`evowatch demo`: train the digits GAN in a subprocess and watch its run directory live."""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

from engine.errors import EvowatchError

log = logging.getLogger(__name__)


def _wait_for(paths: list[Path], proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not all(p.is_dir() for p in paths):
        if proc.poll() is not None:
            raise EvowatchError(f"the demo trainer exited with code {proc.returncode} before writing {paths[0].parent}")
        if time.time() > deadline:
            raise EvowatchError(f"the demo trainer did not write {paths[0].parent} within {timeout:.0f} s")
        time.sleep(0.2)


def run_demo(out: Path, steps: int | None = None, fail: str | None = None, encoder: str = "pixels",
             progress: bool = True, extra_watch_args: list[str] | None = None) -> int:
    """Train in a subprocess (its own core) while this process ingests each checkpoint as it lands."""
    from engine.cli import build_parser
    from engine.session import open_session

    from stores.format import is_store

    out = out.resolve()
    if is_store(out) or any(is_store(folder) for folder in out.parents):  # its files went inside a user's store
        raise EvowatchError(f"{out} is {'an' if is_store(out) else 'inside an'} evowatch store: give the demo another "
                            "--out")
    if file := next((path for path in (out, *out.parents) if path.is_file()), None):  # said "OUT/run: Not a directory"
        raise EvowatchError(f"{file} is a file: give the demo a folder as --out (made if missing)")
    run_dir, data = out / "run", out / "data"
    store = out / "demo.zarr"
    if encoder != "pixels":  # CLIP weights missing: said before a checkpoint is trained (17 s) and left behind
        from engine.encoders import make_encoder

        make_encoder(encoder, device="cpu")  # a check: the watch loads it where it encodes
    _replace_earlier_demo(run_dir, store)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = [sys.executable, "-m", "examples.demo_trainer", str(out), "--no-stop-line"]  # a Ctrl-C: the demo's line
    if steps:
        trainer += ["--steps", str(steps)]
    if fail:
        trainer += ["--fail", fail]
    if not progress:  # -q: its per-checkpoint loss lines too
        trainer.append("--quiet")
    log.info("training the demo GAN on scikit-learn's digits (CPU) into %s", run_dir)
    proc = subprocess.Popen(trainer)
    try:
        _wait_for([data / "train", data / "holdout"], proc)
        watch_argv = ["watch", str(run_dir), "--store", str(store), "--encoder", encoder,
                      "--real", str(data / "train"), "--holdout", str(data / "holdout"), *(extra_watch_args or [])]
        args = build_parser().parse_args(watch_argv)
        args.quiet = not progress
        with open_session(args) as watcher:
            watcher.live = True  # the trainer has not written a checkpoint yet
            while proc.poll() is None:
                watcher.run_once()
                time.sleep(0.5)
            if proc.returncode != 0:
                raise EvowatchError(f"the demo trainer failed with exit code {proc.returncode}")
            watcher.trainer_exited()
            watcher.run_once()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"\nDemo store written: {store}\nExplore it:\n  evowatch view {store}\n  evowatch info {store}", file=sys.stderr)
    return 0


def _replace_earlier_demo(run_dir: Path, store: Path) -> None:
    """An earlier demo into the same --out is replaced: its checkpoints past this run's last
    step stayed in the run and the store (a --fail run showed the old healthy steps after its
    own, and no alert). Only a run the demo trainer wrote (its ``demo.json``) and a store the
    demo made of it are taken for one; a demo still running there keeps them (its lock)."""
    import shutil

    from stores.errors import StoreLockedError
    from stores.lock import WriterLock
    from stores.zarr_store import StoreReader

    ours = (run_dir / "demo.json").is_file()
    if store.exists():
        try:
            ours = any(h.get("run_dir") == str(run_dir) for h in StoreReader(store).attrs.get("history", []))
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise EvowatchError(f"{store} is no store of an earlier demo: give the demo another --out")
    elif run_dir.is_dir() and any(run_dir.iterdir()) and not ours:
        raise EvowatchError(f"{run_dir} is not empty and holds no earlier demo: give the demo another --out")
    if not ours:
        return
    try:
        lock = WriterLock(store)  # refused while another demo writes there: nothing of it deleted
    except StoreLockedError:
        raise EvowatchError(f"{run_dir.parent}: another demo is running there; wait for it to end or give the demo "
                            "another --out") from None
    try:
        log.info("replacing the earlier demo in %s", run_dir.parent)
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)
    finally:
        lock.release()
