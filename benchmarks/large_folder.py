"""One large folder of single images against the same images as 64-sample checkpoints.

    .venv/bin/python benchmarks/large_folder.py [--images 3072] [--encoder pixels] [--repeats 2]

A reference set (`--real`, `--holdout`) or a large sample folder is one checkpoint; the
decode processes share it in parts (``engine.decode_workers.PART_FILES`` files each) instead of
one process decoding it all. Reported: end-to-end samples/s of each layout, alternately,
and the ratio of the large folder's rate to the checkpoints' (1.0 = no penalty).
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

from engine.discovery.identity import content_hash  # noqa: E402
from engine.discovery.options import DiscoveryOptions  # noqa: E402
from engine.discovery.scan import scan_reference, scan_run  # noqa: E402
from engine.encoders import make_encoder  # noqa: E402
from engine.pipeline import ingest  # noqa: E402
from engine.session import encoder_record  # noqa: E402
from stores.zarr_store import StoreWriter  # noqa: E402


def write_images(work: Path, n: int) -> tuple[Path, Path]:
    """The same n 32-px images as one folder and as folders of 64 (settled: mtimes in the past)."""
    folder, run = work / "folder", work / "run"
    rng = np.random.default_rng(0)
    for i in range(n):
        image = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        (run / f"step_{i // 64:06d}").mkdir(parents=True, exist_ok=True)
        folder.mkdir(exist_ok=True)
        image.save(folder / f"{i:06d}.png")
        image.save(run / f"step_{i // 64:06d}" / f"{i % 64:05d}.png")
    past = time.time() - 10
    for path in work.rglob("*"):
        os.utime(path, (past, past))
    return folder, run


def rate(jobs, encoder, options, work: Path) -> float:
    start = time.perf_counter()
    with StoreWriter(Path(tempfile.mkdtemp(dir=work)) / "s.zarr", encoder_record(encoder)) as store:
        rows = sum(r.rows for r in ingest(store, jobs, encoder, options))
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3072)
    parser.add_argument("--encoder", default="pixels")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    options, encoder = DiscoveryOptions(), make_encoder(args.encoder)
    with tempfile.TemporaryDirectory(prefix="evowatch-bench-") as tmp:
        folder, run = write_images(Path(tmp), args.images)
        reference = scan_reference(folder, "real", options)
        layouts = {"one folder": [(reference, content_hash(reference))],
                   "checkpoints of 64": [(c, content_hash(c)) for c in scan_run(run, options)]}
        print(f"cores: {len(os.sched_getaffinity(0))}; {args.images} images; encoder {encoder.identity}")
        print("| repeat | one folder | checkpoints of 64 | ratio |")
        print("|---|---|---|---|")
        for k in range(args.repeats):
            one, many = (rate(jobs, encoder, options, Path(tmp)) for jobs in layouts.values())
            print(f"| {k + 1} | {one:,.0f} | {many:,.0f} | {one / many:.2f} |", flush=True)


if __name__ == "__main__":
    main()
