"""How long a watcher's pass takes to read a run's text logs while the trainer writes them.

    .venv/bin/python benchmarks/text_logs.py [--lines 20000] [--repeats 5]

Writes, as long runs do, an MMGeneration-style JSON-lines log (``{"iter": ..., "loss_gan":
..., "lr": {"generator": ...}}`` per line) and a PyTorch Lightning ``metrics.csv`` of
``--lines`` lines each. Then times the baseline, both logs read afresh
(``engine.trainer_logs.read_trainer_scalars``: what every pass did before a pass read on
from where the last one stopped), against a watch's pass (``TrainerLogs.read``) after one
line was appended to each, and a pass with nothing new. Medians of ``--repeats``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine.trainer_logs import TrainerLogs, read_trainer_scalars  # noqa: E402
from timing import median_seconds  # noqa: E402


def _append(run: Path, rng: np.random.Generator, start: int, lines: int) -> None:
    with open(run / "20261205_120000.log.json", "a") as jsonl, open(run / "metrics.csv", "a") as csv:
        for i in range(start, start + lines):
            losses = {f"loss_{k}": float(v) for k, v in zip(("gan", "d_real", "d_fake", "pix"), rng.random(4))}
            jsonl.write(json.dumps({"mode": "train", "epoch": i // 1000, "iter": i * 50,
                                    "lr": {"generator": 1e-4, "discriminator": 1e-4}, "time": 0.3, **losses}) + "\n")
            csv.write(f"{i // 1000},{i * 50},{losses['loss_gan']},{losses['loss_d_real']},0.0001,\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        (run / "metrics.csv").write_text("epoch,step,train/loss_d,train/loss_g,lr-Adam,val/fid\n")
        _append(run, rng, 0, args.lines)
        baseline = median_seconds(lambda: read_trainer_scalars(run), args.repeats)
        logs = TrainerLogs()
        logs.read(run)
        appended = []
        for k in range(args.repeats):
            _append(run, rng, args.lines + k, 1)
            start = time.perf_counter()
            scalars = logs.read(run)
            appended.append(time.perf_counter() - start)
        idle = median_seconds(lambda: logs.read(run), args.repeats)
        assert len(scalars["loss_gan"][0]) == args.lines + args.repeats
        assert len(scalars["train/loss_d"][0]) == args.lines + args.repeats
    print(f"a JSON-lines log and a metrics.csv of {args.lines} lines each")
    print(f"{'pass':<48}{'seconds':>10}{'x baseline':>12}")
    for name, seconds in [("baseline: both logs read afresh", baseline),
                          ("a pass after one line more in each", statistics.median(appended)),
                          ("a pass with nothing new", idle)]:
        print(f"{name:<48}{seconds:>10.4f}{seconds / baseline:>12.4f}")


if __name__ == "__main__":
    main()
