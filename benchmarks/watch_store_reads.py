"""What a watch pass spends reading the store's checkpoint table, against the run's length.

    .venv/bin/python benchmarks/watch_store_reads.py [--lengths 100 1000] [--new 9] [--baseline DIR]

A run of N ``step_NNNNNNN/`` folders of 3 PNGs of 8 x 8 is stored by one watch session in
this process (``pixels:4`` encoder, ``--workers 0``, ``--settle 0``, no layout or signals: the
pass itself), then ``--new`` checkpoints are written one at a time and the pass that stores
each (``Watcher.run_once``) is timed, with the time and number of its reads of the checkpoint
table (``StoreReader.checkpoints``), and the time of one read alone. Medians, wall
milliseconds. ``--baseline DIR``: the same measurement on the code checked out at DIR (a
``git worktree`` of an earlier commit), the two taking turns, so both share the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_step(run: Path, step: int) -> None:
    """A checkpoint folder written whole and renamed into place, its files settled."""
    rng = np.random.default_rng(step)
    tmp, final = run / f".step_{step:07d}", run / f"step_{step:07d}"
    tmp.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp / f"{i:03d}.png")
    os.rename(tmp, final)
    old = time.time() - 10
    for path in [final, *final.iterdir()]:
        os.utime(path, (old, old))


def measure(n_checkpoints: int, new: int) -> dict[str, float]:
    """This process's code (its sys.path) at one length: medians in ms, and reads per pass."""
    from engine.discovery.options import DiscoveryOptions
    from engine.encoders import make_encoder
    from engine.session import encoder_record
    from engine.watch import WatchConfig, Watcher
    from stores.zarr_store import StoreReader, StoreWriter

    reads: list[float] = []
    real = StoreReader.checkpoints

    def timed(self):
        t0 = time.perf_counter()
        try:
            return real(self)
        finally:
            reads.append(time.perf_counter() - t0)

    StoreReader.checkpoints = timed
    with tempfile.TemporaryDirectory() as work:
        run, encoder = Path(work) / "run", make_encoder("pixels:4", device="cpu")
        for k in range(n_checkpoints):
            write_step(run, 500 * k)
        with StoreWriter(Path(work) / "s.zarr", encoder_record(encoder)) as store:
            watcher = Watcher(WatchConfig(run_dir=run, options=DiscoveryOptions(settle=0.0), progress=False,
                                          workers=0), store, encoder)
            watcher.live = True
            watcher.run_once()
            passes, in_reads, counts = [], [], []
            for k in range(n_checkpoints, n_checkpoints + new):
                write_step(run, 500 * k)
                reads.clear()
                t0 = time.perf_counter()
                assert len(watcher.run_once()) == 1
                passes.append(time.perf_counter() - t0)
                in_reads.append(sum(reads))
                counts.append(len(reads))
            one = []
            for _ in range(new):
                reads.clear()
                store.checkpoints()
                one.append(reads[0])
    ms = lambda values: 1000 * statistics.median(values)  # noqa: E731
    return {"pass": ms(passes), "table reads in a pass": ms(in_reads), "reads a pass": statistics.median(counts),
            "one read": ms(one)}


def run_tree(tree: Path, n_checkpoints: int, new: int) -> dict[str, float]:
    """:func:`measure` in a fresh interpreter importing the code at ``tree``."""
    out = subprocess.run([sys.executable, __file__, "--measure", str(n_checkpoints), str(new)], check=True,
                         capture_output=True, text=True, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000], help="checkpoints stored before")
    parser.add_argument("--new", type=int, default=9, help="passes timed at each length (each stores one)")
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--measure", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    trees = {"before": args.baseline.resolve(), "now": ROOT} if args.baseline else {"now": ROOT}
    rows = []
    for n in args.lengths:
        got = {name: run_tree(tree, n, args.new) for name, tree in trees.items()}
        rows += [(n, key, {name: got[name][key] for name in trees}) for key in got["now"]]
    print("| stored | " + " | ".join(trees) + (" | now / before |" if args.baseline else " |"))
    print("|---|" + "---|" * (len(trees) + bool(args.baseline)))
    for n, key, values in rows:
        ratio = f" | {values['now'] / values['before']:.2f}" if args.baseline and values["before"] else ""
        print(f"| {n}: {key} | " + " | ".join(f"{v:.1f}" for v in values.values()) + ratio + " |")


if __name__ == "__main__":
    main()
