"""Peak memory of ``evowatch watch --once`` on large samples: does it follow the input's size?

Two inputs, each at two sizes: one ``np.savez`` samples file of 256 x 256 images (as
openai's guided-diffusion writes, 10 GB at 50k samples) and a folder of 768 x 768 PNGs. For
each, the peak anonymous memory (proportional, ``Pss_Anon``: pages of a memory-mapped file
are the page cache's, not the ingest's) of the watch and its decode workers, sampled every
50 ms, against the decoded size of the input. Bounded memory: the peak stays flat when the
input doubles (ratio ~1) and far under the input's size.

    .venv/bin/python benchmarks/large_samples.py [--samples 3000] [--images 600]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ingest import _alive, _children  # noqa: E402


def _tensor_run(folder: Path, n: int) -> int:
    """A run with one checkpoint: n 256 x 256 samples in one uncompressed .npz."""
    (folder / "samples_050000").mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
    np.savez(folder / "samples_050000" / f"samples_{n}x256x256x3.npz", images)
    return images.nbytes


def _png_run(folder: Path, n: int) -> int:
    """A run with one checkpoint: n 768 x 768 PNGs (smooth, so they compress like samples do)."""
    (folder / "step_100").mkdir(parents=True)
    base = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for i in range(n):
        image = Image.fromarray(np.roll(base, i, 0)).resize((768, 768), Image.Resampling.BILINEAR)
        image.save(folder / "step_100" / f"{i:05d}.png", compress_level=1)
    return n * 768 * 768 * 3


def _anonymous_kb(pid: int) -> int | None:
    """Pss_Anon of a process and its children in kB; None while a child exits."""
    total = 0
    children = _children(pid)
    for p in [pid, *children]:
        try:
            with open(f"/proc/{p}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup if line.startswith("Pss_Anon:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            return None
    return total if all(_alive(p) for p in children) else None


def peak_watch_mb(run: Path, store: Path) -> tuple[float, float]:
    """(peak anonymous MB, seconds) of one ``evowatch watch --once`` of ``run``."""
    command = [sys.executable, "-m", "engine.cli", "watch", str(run), "--store", str(store), "--once",
               "--encoder", "pixels", "--no-layout", "--no-metrics", "--settle", "0"]
    start, peak = time.perf_counter(), 0
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as watch:
        while watch.poll() is None:
            peak = max(peak, _anonymous_kb(watch.pid) or 0)
            time.sleep(0.05)
        if watch.returncode:
            raise SystemExit(f"watch failed: {watch.stderr.read()}")
    return peak / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="samples in the smaller .npz (doubled next)")
    parser.add_argument("--images", type=int, default=600, help="PNGs in the smaller folder (doubled next)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for name, make, n in (("npz 256x256", _tensor_run, args.samples), ("png 768x768", _png_run, args.images)):
            peaks = []
            for size in (n, 2 * n):
                run = Path(work) / f"{make.__name__}-{size}"
                decoded = make(run, size) / 2**20
                peak, seconds = peak_watch_mb(run, Path(work) / f"{run.name}.zarr")
                peaks.append(peak)
                print(f"{name}: {size:>6} samples, decoded {decoded:7.0f} MB: peak anonymous {peak:6.0f} MB "
                      f"({peak / decoded:.2f}x the input) in {seconds:.1f} s", flush=True)
            print(f"{name}: peak at twice the input / peak at once: {peaks[1] / peaks[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
