"""What each pass of a watch costs before it knows whether anything is new: discovery of the
whole run (``scan_run``), the readiness check and the file versions of every checkpoint.

    .venv/bin/python benchmarks/discovery_scan.py [--checkpoints 20 300] [--files 48] [--watcher] [--beside-tensor]

Builds runs of ``step_XXXXXX/samples/NNNNN.png`` folders (hard links to ``--files`` 32-px
PNGs; with ``--beside-tensor``, ``step_XXXXXX/sample.png``, a grid of 16, beside
``sample.npz`` of 64: whether the image is a preview is asked of both files' headers) and
times, in CPU seconds, the baseline, ``os.walk`` and one ``os.stat`` of every file (the least
a scan of the run does), against the discovery pass. With ``--watcher``, also a watch's own
pass (``Watcher.pending``) over the run once it is stored (ingested first with the pixels
encoder, no layout or metrics), which asks only checkpoints not stored as they are whether
they are complete. Medians of ``--repeats``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine.discovery.identity import file_versions  # noqa: E402
from engine.discovery.options import DiscoveryOptions  # noqa: E402
from engine.discovery.ready import is_ready  # noqa: E402
from engine.discovery.scan import scan_run  # noqa: E402
from timing import median_seconds  # noqa: E402


def _walk_and_stat(run: Path) -> int:
    return sum(1 for folder, _, names in os.walk(run) for name in names if os.stat(os.path.join(folder, name)))


def _discovery_pass(run: Path, options: DiscoveryOptions) -> int:
    found = scan_run(run, options)
    now = time.time()
    ready = [is_ready(c, options, now) for c in found]
    versions = [file_versions(c) for c in found]
    assert all(ready) and len(versions) == len(found)
    return len(found)


def _watch_pass_seconds(run: Path, repeats: int) -> float:
    """CPU seconds of a warm watch's pass over ``run`` once it is stored: nothing new to ingest."""
    from engine.cli import build_parser
    from engine.session import open_session

    store = run.with_suffix(".zarr")
    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-layout",
                                      "--no-metrics", "--settle", "0", "--workers", "0", "-q"])
    with open_session(args) as watcher:
        watcher.config.progress = False
        watcher.run_once()
        assert watcher.pending() == ([], [])
        return median_seconds(watcher.pending, repeats, clock=time.process_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[20, 300])
    parser.add_argument("--files", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--watcher", action="store_true", help="also time a watch's pass over the stored run")
    parser.add_argument("--beside-tensor", action="store_true", help="checkpoints of a grid beside an .npz of its name")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    options = DiscoveryOptions(settle=0)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        if args.beside_tensor:
            samples = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
            grid = samples[:16].reshape(4, 4, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(128, 128, 3)
            Image.fromarray(grid).save(source / "sample.png")
            np.savez(source / "sample.npz", samples=samples)
        else:
            for i in range(args.files):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(source / f"{i:05d}.png")
        watch_header = f"{'watch pass s':>14}{'x baseline':>12}" if args.watcher else ""
        print(f"{'checkpoints':>12}{'files':>8}{'walk+stat s':>13}{'pass s':>9}{'x baseline':>12}{watch_header}")
        for n in args.checkpoints:
            run = Path(tmp) / f"run{n}"
            for k in range(n):
                folder = run / f"step_{k * 500:06d}" / ("" if args.beside_tensor else "samples")
                folder.mkdir(parents=True)
                for png in sorted(source.iterdir()):
                    os.link(png, folder / png.name)
            assert _discovery_pass(run, options) == n
            baseline = median_seconds(lambda: _walk_and_stat(run), args.repeats, clock=time.process_time)
            seconds = median_seconds(lambda: _discovery_pass(run, options), args.repeats, clock=time.process_time)
            watch = ""
            if args.watcher:
                watch_seconds = _watch_pass_seconds(run, args.repeats)
                watch = f"{watch_seconds:>14.3f}{watch_seconds / baseline:>12.2f}"
            files = n * (2 if args.beside_tensor else args.files)
            print(f"{n:>12}{files:>8}{baseline:>13.3f}{seconds:>9.3f}{seconds / baseline:>12.2f}{watch}")


if __name__ == "__main__":
    main()
