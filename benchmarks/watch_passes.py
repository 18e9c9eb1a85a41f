"""CPU of a live ``evowatch watch`` against the run's length: idle, a trainer log written
every 2 s, and each new checkpoint.

Builds a run of N checkpoints (48 PNGs of 32 x 32 each), ingests it with ``--once``, then
starts a live watch (pixels encoder, layout and signals on) and reads its CPU time (its
own and its finished decode workers', ``/proc/PID/stat``) over three phases: 40 s idle,
40 s with a JSON-lines loss line every 2 s, and 6 new checkpoints 5 s apart (each copied
into a hidden folder, then renamed into place). Run at two lengths; the ratio of the
longer run's figures to the shorter's says how the cost grows with the run.

    .venv/bin/python benchmarks/watch_passes.py [--lengths 20 200]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

EVOWATCH = [sys.executable, "-m", "engine.cli"]
ROOT = Path(__file__).resolve().parents[1]


def write_run(run: Path, n_checkpoints: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
    for k in range(n_checkpoints):
        folder = run / f"step_{500 * k:06d}"
        folder.mkdir(parents=True)
        noisy = np.clip(base.astype(np.int16) + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)
        for i, image in enumerate(noisy):
            Image.fromarray(image).save(folder / f"{i:03d}.png")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def measure(n_checkpoints: int, work: Path) -> dict[str, float]:
    run, store = work / f"run{n_checkpoints}", work / f"s{n_checkpoints}.zarr"
    write_run(run, n_checkpoints)
    time.sleep(2.5)  # the files settle
    subprocess.run([*EVOWATCH, "-q", "watch", str(run), "--store", str(store), "--encoder", "pixels", "--once"],
                   cwd=ROOT, check=True)
    err = work / f"watch{n_checkpoints}.err"
    with open(err, "w") as log:
        watch = subprocess.Popen([*EVOWATCH, "watch", str(run), "--store", str(store), "--encoder", "pixels"],
                                 cwd=ROOT, stderr=log, stdout=subprocess.DEVNULL)
    try:
        while "watching" not in err.read_text():
            time.sleep(0.5)
        time.sleep(3)
        out = {}
        c0 = cpu_seconds(watch.pid)
        time.sleep(40)
        out["idle, CPU s per minute"] = (cpu_seconds(watch.pid) - c0) * 1.5
        c0 = cpu_seconds(watch.pid)
        for i in range(20):
            with open(run / "losses.jsonl", "a") as losses:
                losses.write(f'{{"step": {i}, "loss": 0.5}}\n')
            time.sleep(2)
        out["a loss line every 2 s, CPU s per minute"] = (cpu_seconds(watch.pid) - c0) * 1.5
        time.sleep(3)
        last = sorted(p for p in run.iterdir() if p.name.startswith("step_"))[-1]
        c0 = cpu_seconds(watch.pid)
        for i in range(6):
            name = f"step_{900000 + i:06d}"
            shutil.copytree(last, run / f".tmp_{name}")
            (run / f".tmp_{name}").rename(run / name)
            time.sleep(5)
        time.sleep(8)
        out["each new checkpoint, CPU s"] = (cpu_seconds(watch.pid) - c0) / 6
        return out
    finally:
        watch.terminate()
        watch.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs=2, default=[20, 200], help="checkpoints in the two runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        short, long = (measure(n, Path(work)) for n in args.lengths)
    print(f"| live watch | {args.lengths[0]} checkpoints | {args.lengths[1]} checkpoints | ratio |")
    print("|---|---|---|---|")
    for key in short:
        print(f"| {key} | {short[key]:.2f} | {long[key]:.2f} | {long[key] / short[key]:.1f} |")


if __name__ == "__main__":
    main()
