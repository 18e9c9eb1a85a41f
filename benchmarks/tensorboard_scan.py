"""How long a watcher's pass takes to read what a run logs to TensorBoard, images and scalars, in one run.

    .venv/bin/python benchmarks/tensorboard_scan.py [--scalars-per-step 500] [--image-steps 200]

Writes an event file with torch's SummaryWriter, as a diffusers run does: scalars at every
step and, every ``--scalars-per-step`` steps, a batch of 16 32-px samples (``add_images``).
Then times, on that file: the baseline, one pass over its records (the TFRecord framing
alone: the least any reader of the file does); the first scan (every record parsed); a scan
after one more image step was appended (what each pass of a live watch does); and a scan
with nothing new. The same for the trainer's scalars (``engine.trainer_logs.TrainerLogs``),
and tensorboard's ``EventAccumulator`` reading them (what a pass did before: the whole file,
every pass). Ratios are to the baseline, medians of ``--repeats``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine.event_files import records  # noqa: E402
from engine.tensorboard_images import TensorBoardImages, find_event_files  # noqa: E402
from engine.trainer_logs import TrainerLogs  # noqa: E402
from timing import median_seconds  # noqa: E402


def _write(writer, rng: np.random.Generator, step: int, scalars: int) -> None:
    for s in range(scalars):
        writer.add_scalar("loss", float(rng.random()), step + s)
    writer.add_images("test_samples", rng.integers(0, 256, (16, 3, 32, 32), dtype=np.uint8), step)
    writer.flush()


def _event_accumulator(path: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return sum(len(accumulator.Scalars(tag)) for tag in accumulator.Tags()["scalars"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalars-per-step", type=int, default=500)
    parser.add_argument("--image-steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        writer = SummaryWriter(str(run / "logs"), flush_secs=3600, max_queue=1_000_000)
        for k in range(args.image_steps):
            _write(writer, rng, k * args.scalars_per_step, args.scalars_per_step)
        (path,) = find_event_files(run)
        baseline = median_seconds(lambda: sum(1 for _ in records(path)), args.repeats)
        first = median_seconds(lambda: TensorBoardImages().scan(run), args.repeats)
        scalars_first = median_seconds(lambda: TrainerLogs().read(run), args.repeats)
        accumulator = median_seconds(lambda: _event_accumulator(path), args.repeats)
        appended, idle, scalars_appended = [], [], []
        watcher, logs = TensorBoardImages(), TrainerLogs()
        watcher.scan(run)
        logs.read(run)
        for k in range(args.repeats):
            _write(writer, rng, (args.image_steps + k) * args.scalars_per_step, args.scalars_per_step)
            start = time.perf_counter()
            found = watcher.scan(run)
            appended.append(time.perf_counter() - start)
            idle.append(median_seconds(lambda: watcher.scan(run), 1))
            start = time.perf_counter()
            scalars = logs.read(run)
            scalars_appended.append(time.perf_counter() - start)
        writer.close()
        assert len(found) == args.image_steps + args.repeats
        assert len(scalars["loss"][0]) == (args.image_steps + args.repeats) * args.scalars_per_step
        size = path.stat().st_size / 1e6
    print(f"event file: {size:.1f} MB, {args.image_steps} image steps, {args.scalars_per_step} scalars per step")
    print(f"{'pass':<40}{'seconds':>10}{'x baseline':>12}")
    rows = [("baseline: one pass over the records", baseline), ("first scan (every record parsed)", first),
            ("scan after one more step appended", statistics.median(appended)),
            ("scan with nothing new", statistics.median(idle)),
            ("scalars: first read", scalars_first),
            ("scalars: read after one more step", statistics.median(scalars_appended)),
            ("scalars: EventAccumulator, whole file", accumulator)]
    for name, seconds in rows:
        print(f"{name:<40}{seconds:>10.4f}{seconds / baseline:>12.3f}")


if __name__ == "__main__":
    main()
