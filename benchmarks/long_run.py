"""A live watch's cost per new checkpoint as the run grows: a diffusion run sampling every
500 steps for 1M steps stores 2,000 checkpoints of a few samples each.

    .venv/bin/python benchmarks/long_run.py [--lengths 100 500 1000 2000] [--new 3]

One run, grown in place: ``step_NNNNNNN/`` folders of 8 PNGs of 32 x 32, a ``--real`` set of
64 images and a ``--holdout`` of 32 (every metric and alert rule measured), the small
random-initialised CLIP the tests use (``tests/data/evowatch-tiny.json``, 64-d: encoding is
cheap), one watch session in this process (``--workers 0``, ``--settle 0``, layout and
signals on). At each length the backlog up to it is ingested first (not timed), then
``--new`` checkpoints are written one at a time and the watch pass that stores each
(``Watcher.run_once``, as a live watch runs it on the new folder's events) is timed, by
stage: discovery (``Watcher.pending``: the scan of the run, the readiness and versions of
its checkpoints), the ingest (the rest of the pass: decode, encode, append, commit), the layout update, and the
signals (trainer logs, metrics, alerts); then the viewer's reload of the store at that
commit (``viewer.data.commits.read_commit`` and the map data and metric table a commit reads
again). Medians of the ``--new`` passes, wall seconds; the last column is the pass against
the same pass at the first length, measured in the same run (flat: about 1).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.cli import build_parser  # noqa: E402
from engine.session import open_session  # noqa: E402

TINY_CLIP = f"clip:{ROOT / 'tests' / 'data' / 'evowatch-tiny.json'}/random"
SAMPLES = 8
STAGES = ("discovery", "ingest", "layout", "signals", "pass", "viewer reload")


def write_images(folder: Path, images: np.ndarray, age_s: float = 100.0) -> None:
    """PNGs of ``images``, dated ``age_s`` ago (settled: a folder renamed into place keeps its times)."""
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    then = time.time() - age_s
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (then, then))


def write_checkpoint(run: Path, k: int, rng: np.random.Generator, base: np.ndarray) -> None:
    noisy = np.clip(base.astype(np.int16) + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)
    write_images(run / f"step_{500 * (k + 1):07d}", noisy)


def timed(stages: dict[str, float], name: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stages[name] += time.perf_counter() - start
    return wrapper


def viewer_reload(store: Path) -> None:
    """What the page reads again at a new commit: its counts, the map's columns, the metrics."""
    from viewer.data import commits, map_data

    logging.getLogger("streamlit.runtime.caching").setLevel(logging.ERROR)  # "No runtime found": no page here

    commit = commits.read_commit(store)
    map_data._map_data.__wrapped__(str(store), commit)  # noqa: SLF001 (the cached function's body)
    commits.reader(store, commit).step_metrics()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 500, 1000, 2000])
    parser.add_argument("--new", type=int, default=3, help="checkpoints timed at each length")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (SAMPLES, 32, 32, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        run, store = work / "run", work / "run.zarr"
        write_images(work / "real", rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8))
        write_images(work / "holdout", rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8))
        cli = build_parser().parse_args(["-q", "watch", str(run), "--store", str(store), "--encoder", TINY_CLIP,
                                         "--real", str(work / "real"), "--holdout", str(work / "holdout"),
                                         "--workers", "0", "--settle", "0"])
        written = 0
        rows = []
        with open_session(cli) as watcher:  # one watch, as left running for days
            for length in args.lengths:
                while written < length - args.new:
                    write_checkpoint(run, written, rng, base)
                    written += 1
                watcher.run_once()  # the backlog up to this length, not timed
                watcher.live = True
                per: dict[str, list[float]] = defaultdict(list)
                for _ in range(args.new):
                    write_checkpoint(run, written, rng, base)
                    written += 1
                    stages: dict[str, float] = defaultdict(float)
                    watcher.pending = timed(stages, "discovery", type(watcher).pending.__get__(watcher))
                    layout, signals = watcher.after_ingest
                    watcher.after_ingest = [timed(stages, "layout", layout), timed(stages, "signals", signals)]
                    try:
                        timed(stages, "pass", watcher.run_once)()
                    finally:
                        watcher.after_ingest = [layout, signals]
                        del watcher.pending
                    stages["ingest"] = stages["pass"] - stages["discovery"] - stages["layout"] - stages["signals"]
                    timed(stages, "viewer reload", viewer_reload)(store)
                    for name in STAGES:
                        per[name].append(stages[name])
                rows.append((written, {name: statistics.median(values) for name, values in per.items()}))
                print(f"{written} checkpoints: " + ", ".join(f"{k} {v:.3f} s" for k, v in rows[-1][1].items()),
                      file=sys.stderr, flush=True)
    first = rows[0][1]["pass"]
    print("| checkpoints stored | " + " | ".join(STAGES) + f" | pass / pass at {rows[0][0]:,} |")
    print("|---" * (len(STAGES) + 2) + "|")
    for length, median in rows:
        print(f"| {length:,} | " + " | ".join(f"{median[name]:.3f}" for name in STAGES)
              + f" | {median['pass'] / first:.2f} |")


if __name__ == "__main__":
    main()
